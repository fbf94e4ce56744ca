//! Every SQL statement of the indicators service, as named functions over
//! rows that map their tables. Values are canonical decimal text; every
//! report or correction is a row of `value_versions`, and `current_values`
//! points at the version in force.

use std::collections::HashMap;

use jixiao_proto::{
    indicators::IndicatorValue,
    types::{EvidenceItem, PeriodKind},
};
use jixiao_runtime::{
    Error,
    decimal::{self, to_proto},
    evidence::EvidenceList,
    paging::Page,
    time::{now_ms, timestamp},
};
use prost::Message;
use rust_decimal::Decimal;
use sqlx::AnyConnection;

use crate::rules;

pub mod flags;

/// The columns of `value_versions`, as `v.` of a join.
macro_rules! version_cols {
    () => {
        "v.cycle_id, v.unit_id, v.indicator, v.period, v.version, v.value, v.evidence, v.comment, v.reported_by, v.report_ms, v.late, v.correction_reason"
    };
}

/// A value's name.
pub fn value_name(cycle: &str, unit: &str, indicator: &str, period: &str) -> String {
    format!("cycles/{cycle}/units/{unit}/indicators/{indicator}/periods/{period}")
}

/// The key of a value: cycle, unit, indicator and period ids.
#[derive(Debug, Clone, Copy)]
pub struct ValueKey<'a> {
    pub cycle: &'a str,
    pub unit: &'a str,
    pub indicator: &'a str,
    pub period: &'a str,
}

/// A row of `value_versions`.
#[derive(sqlx::FromRow)]
struct VersionRecord {
    cycle_id: String,
    unit_id: String,
    indicator: String,
    period: String,
    version: i64,
    value: String,
    evidence: Vec<u8>,
    comment: String,
    reported_by: String,
    report_ms: i64,
    late: i64,
    correction_reason: String,
}

impl VersionRecord {
    fn proto(self) -> Result<IndicatorValue, Error> {
        let evidence = EvidenceList::decode(self.evidence.as_slice()).map_err(Error::internal)?;
        Ok(IndicatorValue {
            name: value_name(&self.cycle_id, &self.unit_id, &self.indicator, &self.period),
            unit: format!("units/{}", self.unit_id),
            period: rules::parse_period_key(&self.period),
            indicator: self.indicator,
            value: Some(to_proto(decimal::from_db(&self.value)?)),
            evidence: evidence.items,
            comment: self.comment,
            version: self.version as i32,
            reported_by: self.reported_by,
            report_time: Some(timestamp(self.report_ms)),
            late: self.late != 0,
            correction_reason: self.correction_reason,
            flags: Vec::new(),
        })
    }
}

fn protos(records: Vec<VersionRecord>) -> Result<Vec<IndicatorValue>, Error> {
    records.into_iter().map(VersionRecord::proto).collect()
}

/// A validated row ready to store.
pub struct NewValue {
    pub cycle: String,
    pub unit: String,
    pub group: String,
    pub provider: String,
    pub indicator: String,
    pub period_key: String,
    pub period_kind: i32,
    pub period_index: i32,
    pub value: Decimal,
    pub evidence: Vec<EvidenceItem>,
    pub comment: String,
}

impl NewValue {
    pub fn key(&self) -> ValueKey<'_> {
        ValueKey {
            cycle: &self.cycle,
            unit: &self.unit,
            indicator: &self.indicator,
            period: &self.period_key,
        }
    }
}

/// Stores version `version` of a value and makes it current.
pub async fn store_version(
    conn: &mut AnyConnection,
    v: &NewValue,
    version: i64,
    by: &str,
    late: bool,
    reason: &str,
) -> Result<IndicatorValue, Error> {
    let now = now_ms();
    let text = decimal::canonical(v.value);
    sqlx::query(
        "INSERT INTO value_versions (cycle_id, unit_id, indicator, period, version, value, evidence, comment, reported_by, report_ms, late, correction_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&v.cycle)
    .bind(&v.unit)
    .bind(&v.indicator)
    .bind(&v.period_key)
    .bind(version)
    .bind(&text)
    .bind(
        EvidenceList {
            items: v.evidence.clone(),
        }
        .encode_to_vec(),
    )
    .bind(&v.comment)
    .bind(by)
    .bind(now)
    .bind(i64::from(late))
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO current_values (cycle_id, unit_id, indicator, period, group_id, provider_id, period_kind, period_index, version, value, late)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (cycle_id, unit_id, indicator, period)
         DO UPDATE SET version = excluded.version, value = excluded.value, late = excluded.late",
    )
    .bind(&v.cycle)
    .bind(&v.unit)
    .bind(&v.indicator)
    .bind(&v.period_key)
    .bind(&v.group)
    .bind(&v.provider)
    .bind(i64::from(v.period_kind))
    .bind(i64::from(v.period_index))
    .bind(version)
    .bind(&text)
    .bind(i64::from(late))
    .execute(&mut *conn)
    .await?;
    Ok(IndicatorValue {
        name: value_name(&v.cycle, &v.unit, &v.indicator, &v.period_key),
        unit: format!("units/{}", v.unit),
        indicator: v.indicator.clone(),
        period: rules::parse_period_key(&v.period_key),
        value: Some(to_proto(v.value)),
        evidence: v.evidence.clone(),
        comment: v.comment.clone(),
        version: version as i32,
        reported_by: by.to_string(),
        report_time: Some(timestamp(now)),
        late,
        correction_reason: reason.to_string(),
        flags: Vec::new(),
    })
}

/// The version in force of a value, if it was ever reported.
pub async fn current_version(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
) -> Result<Option<i64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT version FROM current_values WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4",
    )
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The version in force of a value, if any.
pub async fn current_value(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
) -> Result<Option<IndicatorValue>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM value_versions v JOIN current_values c ON c.cycle_id = v.cycle_id AND c.unit_id = v.unit_id
         AND c.indicator = v.indicator AND c.period = v.period AND c.version = v.version
         WHERE v.cycle_id = $1 AND v.unit_id = $2 AND v.indicator = $3 AND v.period = $4"
    );
    sqlx::query_as::<_, VersionRecord>(SQL)
        .bind(k.cycle)
        .bind(k.unit)
        .bind(k.indicator)
        .bind(k.period)
        .fetch_optional(&mut *conn)
        .await?
        .map(VersionRecord::proto)
        .transpose()
}

/// The provider unit of a value (empty when it was never reported).
pub async fn provider_of(conn: &mut AnyConnection, k: ValueKey<'_>) -> Result<String, Error> {
    Ok(sqlx::query_scalar(
        "SELECT provider_id FROM current_values WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4",
    )
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or_default())
}

/// What a list of current values is narrowed to (empty: any).
pub struct ValueFilter<'a> {
    pub cycle: &'a str,
    pub group: &'a str,
    pub unit: &'a str,
    pub indicator: &'a str,
    pub provider: &'a str,
}

/// A page of current values.
pub async fn current_values(
    conn: &mut AnyConnection,
    f: &ValueFilter<'_>,
    page: &Page,
) -> Result<Vec<IndicatorValue>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM current_values c JOIN value_versions v ON c.cycle_id = v.cycle_id AND c.unit_id = v.unit_id
         AND c.indicator = v.indicator AND c.period = v.period AND c.version = v.version
         WHERE c.cycle_id = $1 AND ($2 = '' OR c.group_id = $2) AND ($3 = '' OR c.unit_id = $3)
         AND ($4 = '' OR c.indicator = $4) AND ($5 = '' OR c.provider_id = $5)
         ORDER BY c.unit_id, c.indicator, c.period LIMIT $6 OFFSET $7"
    );
    protos(
        sqlx::query_as(SQL)
            .bind(f.cycle)
            .bind(f.group)
            .bind(f.unit)
            .bind(f.indicator)
            .bind(f.provider)
            .bind(page.fetch_limit())
            .bind(page.offset)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// A page of a value's versions, oldest first.
pub async fn versions(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    page: &Page,
) -> Result<Vec<IndicatorValue>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM value_versions v WHERE v.cycle_id = $1 AND v.unit_id = $2 AND v.indicator = $3 AND v.period = $4
         ORDER BY v.version LIMIT $5 OFFSET $6"
    );
    protos(
        sqlx::query_as(SQL)
            .bind(k.cycle)
            .bind(k.unit)
            .bind(k.indicator)
            .bind(k.period)
            .bind(page.fetch_limit())
            .bind(page.offset)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// A current value as scoring and progress read it.
#[derive(sqlx::FromRow)]
pub struct CurrentRecord {
    pub unit_id: String,
    pub indicator: String,
    pub period: String,
    pub value: String,
    pub late: i64,
}

/// A group's current values: the final (annual) ones, or the progress
/// (monthly and quarterly) ones.
pub async fn group_values(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
    finals: bool,
) -> Result<Vec<CurrentRecord>, Error> {
    let sql = if finals {
        "SELECT unit_id, indicator, period, value, late FROM current_values
         WHERE cycle_id = $1 AND group_id = $2 AND period_kind = $3"
    } else {
        "SELECT unit_id, indicator, period, value, late FROM current_values
         WHERE cycle_id = $1 AND group_id = $2 AND period_kind <> $3"
    };
    Ok(sqlx::query_as(sql)
        .bind(cycle)
        .bind(group)
        .bind(PeriodKind::Annual as i32 as i64)
        .fetch_all(&mut *conn)
        .await?)
}

/// Whether each final value of a cycle was late, by (`units/{u}`,
/// indicator).
pub async fn final_lateness(
    conn: &mut AnyConnection,
    cycle: &str,
) -> Result<HashMap<(String, String), bool>, Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT unit_id, indicator, late FROM current_values WHERE cycle_id = $1 AND period_kind = $2",
    )
    .bind(cycle)
    .bind(PeriodKind::Annual as i32 as i64)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(unit, indicator, late)| ((format!("units/{unit}"), indicator), late != 0))
        .collect())
}

/// The assessed scores of a group, by (`units/{u}`, indicator).
pub async fn assessed_scores(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<HashMap<(String, String), Decimal>, Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT unit_id, indicator, score FROM assessed_scores WHERE cycle_id = $1 AND group_id = $2",
    )
    .bind(cycle)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(unit, indicator, score)| {
            Ok((
                (format!("units/{unit}"), indicator),
                decimal::from_db(&score)?,
            ))
        })
        .collect()
}

/// An evaluator's score for an ASSESSED indicator; a later one replaces it.
pub struct NewAssessment<'a> {
    pub cycle: &'a str,
    pub unit: &'a str,
    pub indicator: &'a str,
    pub group: &'a str,
    pub score: Decimal,
    pub justification: &'a str,
    pub by: &'a str,
    pub at_ms: i64,
}

pub async fn put_assessment(conn: &mut AnyConnection, a: &NewAssessment<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO assessed_scores (cycle_id, unit_id, indicator, group_id, score, justification, assessed_by, assess_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (cycle_id, unit_id, indicator) DO UPDATE SET score = excluded.score,
         justification = excluded.justification, assessed_by = excluded.assessed_by, assess_ms = excluded.assess_ms",
    )
    .bind(a.cycle)
    .bind(a.unit)
    .bind(a.indicator)
    .bind(a.group)
    .bind(decimal::canonical(a.score))
    .bind(a.justification)
    .bind(a.by)
    .bind(a.at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
