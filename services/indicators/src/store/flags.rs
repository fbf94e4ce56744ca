//! The SQL of data-quality flags (docs/DATA-QUALITY.md): one row of
//! `value_flags` per value version and kind, its evidence as a JSON list of
//! named figures; and `value_evidence`, the digests of current versions.

use std::collections::HashMap;

use jixiao_proto::{
    indicators::ValueFlag,
    types::{QualityEvidence, QualityFlagState, QualitySeverity},
};
use jixiao_runtime::{
    Error,
    decimal::{self, to_proto},
    paging::Page,
    time::timestamp,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::AnyConnection;

use super::{ValueKey, value_name};
use crate::quality::{Figure, Kind, Raised};

/// On PostgreSQL, the transactions that recompute flags over one set of
/// values (a unit's values of a cumulative indicator, a group's indicator
/// and period, or the holders of a digest) take turns from here to their
/// commit. Under READ COMMITTED each
/// statement then reads every value committed before it, so the last to
/// commit decides over the whole set, as SQLite's one writer does; without
/// it, concurrent reports each saw part of the group. Callers take their
/// turns in one order (finals, outliers, then digests, each sorted), so two
/// writes never wait for each other in a cycle.
pub async fn take_turn(conn: &mut AnyConnection, set: &str) -> Result<(), Error> {
    if conn.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    // pg_advisory_xact_lock returns void, which sqlx cannot decode.
    sqlx::query("SELECT 1 AS turn FROM pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("jixiao.indicators.flags/{set}"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The columns of `value_flags` a flag is read from.
macro_rules! flag_cols {
    () => {
        "cycle_id, unit_id, indicator, period, version, kind, severity, evidence, explanation, state, raise_ms, resolved_by, resolve_ms, resolution_reason"
    };
}

/// The columns of `current_values` the rules read, as `c.`.
macro_rules! peer_cols {
    () => {
        "c.unit_id, c.indicator, c.period, c.version, c.value, c.group_id, c.provider_id"
    };
}

/// A row of `value_flags`.
#[derive(sqlx::FromRow)]
struct FlagRecord {
    cycle_id: String,
    unit_id: String,
    indicator: String,
    period: String,
    version: i64,
    kind: String,
    severity: i64,
    evidence: String,
    explanation: String,
    state: i64,
    raise_ms: i64,
    resolved_by: String,
    resolve_ms: i64,
    resolution_reason: String,
}

/// A flag's resource name.
pub fn flag_name(k: ValueKey<'_>, kind: Kind, version: i64) -> String {
    format!(
        "{}/flags/{}-v{version}",
        value_name(k.cycle, k.unit, k.indicator, k.period),
        kind.id()
    )
}

fn evidence_json(r: &Raised) -> String {
    let items: Vec<Value> = r
        .evidence
        .iter()
        .map(|(name, f)| match f {
            Figure::Number(d) => json!({"name": name, "number": decimal::canonical(*d)}),
            Figure::Text(t) => json!({"name": name, "text": t}),
        })
        .collect();
    Value::Array(items).to_string()
}

fn evidence_proto(text: &str) -> Result<Vec<QualityEvidence>, Error> {
    let items: Vec<Value> = serde_json::from_str(text).map_err(Error::internal)?;
    items
        .into_iter()
        .map(|i| {
            let name = i["name"].as_str().unwrap_or_default().to_string();
            let number = match i["number"].as_str() {
                Some(n) => Some(to_proto(decimal::from_db(n)?)),
                None => None,
            };
            Ok(QualityEvidence {
                name,
                number,
                text: i["text"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

impl FlagRecord {
    fn proto(self) -> Result<ValueFlag, Error> {
        let kind = Kind::parse(&self.kind)
            .ok_or_else(|| Error::internal(std::io::Error::other("unknown flag kind")))?;
        let k = ValueKey {
            cycle: &self.cycle_id,
            unit: &self.unit_id,
            indicator: &self.indicator,
            period: &self.period,
        };
        Ok(ValueFlag {
            name: flag_name(k, kind, self.version),
            kind: kind.proto() as i32,
            severity: self.severity as i32,
            version: self.version as i32,
            evidence: evidence_proto(&self.evidence)?,
            explanation: self.explanation,
            state: self.state as i32,
            raise_time: Some(timestamp(self.raise_ms)),
            resolved_by: self.resolved_by,
            resolve_time: (self.resolve_ms > 0).then(|| timestamp(self.resolve_ms)),
            resolution_reason: self.resolution_reason,
        })
    }
}

fn protos(rows: Vec<FlagRecord>) -> Result<Vec<ValueFlag>, Error> {
    rows.into_iter().map(FlagRecord::proto).collect()
}

/// Where a value belongs, for its flags.
pub struct Owner<'a> {
    pub group: &'a str,
    pub provider: &'a str,
}

/// Raises a flag on a value version; a flag of that kind already open
/// there takes the new evidence, a resolved one stays as decided.
pub async fn raise(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    version: i64,
    owner: &Owner<'_>,
    r: &Raised,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO value_flags (cycle_id, unit_id, indicator, period, version, kind, group_id, provider_id, severity, evidence, explanation, state, raise_ms, resolved_by, resolve_ms, resolution_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, '', 0, '')
         ON CONFLICT (cycle_id, unit_id, indicator, period, version, kind)
         DO UPDATE SET evidence = excluded.evidence, explanation = excluded.explanation
         WHERE value_flags.state = $12",
    )
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .bind(version)
    .bind(r.kind.id())
    .bind(owner.group)
    .bind(owner.provider)
    .bind(r.kind.severity() as i32 as i64)
    .bind(evidence_json(r))
    .bind(r.explanation())
    .bind(QualityFlagState::Open as i32 as i64)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Withdraws an open flag that no longer holds (a resolved one stays).
pub async fn withdraw(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    version: i64,
    kind: Kind,
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM value_flags WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4
         AND version = $5 AND kind = $6 AND state = $7",
    )
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .bind(version)
    .bind(kind.id())
    .bind(QualityFlagState::Open as i32 as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every flag of a value, by version and kind.
pub async fn of_value(conn: &mut AnyConnection, k: ValueKey<'_>) -> Result<Vec<ValueFlag>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        flag_cols!(),
        " FROM value_flags WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4
         ORDER BY version, kind"
    );
    protos(
        sqlx::query_as(SQL)
            .bind(k.cycle)
            .bind(k.unit)
            .bind(k.indicator)
            .bind(k.period)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// One flag, if it exists.
pub async fn get(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    version: i64,
    kind: Kind,
) -> Result<Option<ValueFlag>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        flag_cols!(),
        " FROM value_flags WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4
         AND version = $5 AND kind = $6"
    );
    sqlx::query_as::<_, FlagRecord>(SQL)
        .bind(k.cycle)
        .bind(k.unit)
        .bind(k.indicator)
        .bind(k.period)
        .bind(version)
        .bind(kind.id())
        .fetch_optional(&mut *conn)
        .await?
        .map(FlagRecord::proto)
        .transpose()
}

/// How a flag was resolved, by whom, when and why.
pub struct Resolution<'a> {
    pub state: QualityFlagState,
    pub by: &'a str,
    pub at_ms: i64,
    pub reason: &'a str,
}

/// Records the resolution of an open flag; false when it was not open.
pub async fn resolve(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    version: i64,
    kind: Kind,
    r: &Resolution<'_>,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE value_flags SET state = $1, resolved_by = $2, resolve_ms = $3, resolution_reason = $4
         WHERE cycle_id = $5 AND unit_id = $6 AND indicator = $7 AND period = $8 AND version = $9
         AND kind = $10 AND state = $11",
    )
    .bind(r.state as i32 as i64)
    .bind(r.by)
    .bind(r.at_ms)
    .bind(r.reason)
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .bind(version)
    .bind(kind.id())
    .bind(QualityFlagState::Open as i32 as i64)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a list of flags is narrowed to (empty: any).
pub struct FlagFilter<'a> {
    pub cycle: &'a str,
    pub group: &'a str,
    pub unit: &'a str,
    pub indicator: &'a str,
    pub provider: &'a str,
    pub open_only: bool,
}

/// A page of flags by unit, indicator, period, version and kind (`page`
/// None: all of them).
pub async fn list(
    conn: &mut AnyConnection,
    f: &FlagFilter<'_>,
    page: Option<&Page>,
) -> Result<Vec<ValueFlag>, Error> {
    let (limit, offset) = page.map_or((i64::MAX, 0), |p| (p.fetch_limit(), p.offset));
    const SQL: &str = concat!(
        "SELECT ", flag_cols!(), " FROM value_flags WHERE cycle_id = $1 AND ($2 = '' OR group_id = $2)
         AND ($3 = '' OR unit_id = $3) AND ($4 = '' OR indicator = $4) AND ($5 = '' OR provider_id = $5)
         AND ($6 = '' OR state = $7)
         ORDER BY unit_id, indicator, period, version, kind LIMIT $8 OFFSET $9"
    );
    protos(
        sqlx::query_as(SQL)
            .bind(f.cycle)
            .bind(f.group)
            .bind(f.unit)
            .bind(f.indicator)
            .bind(f.provider)
            .bind(if f.open_only { "open" } else { "" })
            .bind(QualityFlagState::Open as i32 as i64)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// The severities of a group's open flags, by (`units/{u}`, indicator).
pub async fn open_severities(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<HashMap<(String, String), Vec<QualitySeverity>>, Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT unit_id, indicator, severity FROM value_flags WHERE cycle_id = $1 AND group_id = $2 AND state = $3",
    )
    .bind(cycle)
    .bind(group)
    .bind(QualityFlagState::Open as i32 as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: HashMap<(String, String), Vec<QualitySeverity>> = HashMap::new();
    for (unit, indicator, severity) in rows {
        out.entry((format!("units/{unit}"), indicator))
            .or_default()
            .push(QualitySeverity::try_from(severity as i32).unwrap_or(QualitySeverity::Critical));
    }
    Ok(out)
}

/// Makes `digests` the evidence index of a value's current version.
pub async fn index_evidence(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    digests: &[&str],
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM value_evidence WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4",
    )
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .execute(&mut *conn)
    .await?;
    for d in digests {
        sqlx::query(
            "INSERT INTO value_evidence (cycle_id, sha256, unit_id, indicator, period) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (cycle_id, sha256, unit_id, indicator, period) DO NOTHING",
        )
        .bind(k.cycle)
        .bind(*d)
        .bind(k.unit)
        .bind(k.indicator)
        .bind(k.period)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A current value as the rules read it.
#[derive(sqlx::FromRow)]
pub struct Peer {
    pub unit_id: String,
    pub indicator: String,
    pub period: String,
    pub version: i64,
    pub value: String,
    pub group_id: String,
    pub provider_id: String,
}

impl Peer {
    pub fn decimal(&self) -> Result<Decimal, Error> {
        decimal::from_db(&self.value)
    }
}

/// The current values of a cycle with the digest among their evidence, by
/// unit, indicator and period.
pub async fn holders(
    conn: &mut AnyConnection,
    cycle: &str,
    sha256: &str,
) -> Result<Vec<Peer>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        peer_cols!(),
        " FROM value_evidence e JOIN current_values c ON c.cycle_id = e.cycle_id
         AND c.unit_id = e.unit_id AND c.indicator = e.indicator AND c.period = e.period
         WHERE e.cycle_id = $1 AND e.sha256 = $2
         ORDER BY c.unit_id, c.indicator, c.period"
    );
    Ok(sqlx::query_as(SQL)
        .bind(cycle)
        .bind(sha256)
        .fetch_all(&mut *conn)
        .await?)
}

/// The current values of a cycle matching unit, indicator and period of
/// a group (each empty: any), by unit then period.
pub async fn current(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
    unit: &str,
    indicator: &str,
    period: &str,
) -> Result<Vec<Peer>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        peer_cols!(),
        " FROM current_values c WHERE c.cycle_id = $1 AND ($2 = '' OR c.group_id = $2)
         AND ($3 = '' OR c.unit_id = $3) AND c.indicator = $4 AND ($5 = '' OR c.period = $5)
         ORDER BY c.unit_id, c.period"
    );
    Ok(sqlx::query_as(SQL)
        .bind(cycle)
        .bind(group)
        .bind(unit)
        .bind(indicator)
        .bind(period)
        .fetch_all(&mut *conn)
        .await?)
}

/// The group and provider of a flagged value, as the flag recorded them.
pub async fn owner_of(
    conn: &mut AnyConnection,
    k: ValueKey<'_>,
    version: i64,
    kind: Kind,
) -> Result<(String, String), Error> {
    Ok(sqlx::query_as(
        "SELECT group_id, provider_id FROM value_flags WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3
         AND period = $4 AND version = $5 AND kind = $6",
    )
    .bind(k.cycle)
    .bind(k.unit)
    .bind(k.indicator)
    .bind(k.period)
    .bind(version)
    .bind(kind.id())
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or_default())
}
