//! The tonic adapter of the indicators service: authorisation, validation
//! against the plans service, storage with audit and idempotency, scores,
//! progress and the change stream.

use std::collections::{BTreeMap, HashMap};

use jixiao_proto::{
    indicators::{
        AssessedScore, BatchReportValuesRequest, BatchReportValuesResponse, CorrectValueRequest,
        EnterAssessedScoreRequest, GetGroupScoresRequest, GetProgressRequest, GetProgressResponse,
        GetProviderCompletenessRequest, GetProviderCompletenessResponse, GetValueRequest,
        GroupScores, IndicatorScore, IndicatorValue, ListValueHistoryRequest,
        ListValueHistoryResponse, ListValuesRequest, ListValuesResponse, ProgressRow,
        ProviderCompleteness, ReportValueRequest, ScoreChange, ScoreFlag, UnitIndicatorScore,
        WatchScoreChangesRequest, indicators_service_server::IndicatorsService,
    },
    plans::{Direction, Group, Indicator, Scheme, ScoringMethod},
    types::{
        EvidenceItem, ListAuditRecordsRequest, ListAuditRecordsResponse, PeriodKind,
        VerifyAuditChainRequest, VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    Db, Error, Principal, Role, Violations, audit,
    auth::principal,
    changes::{Changes, unchanged_since},
    checked,
    client::ServiceChannel,
    decimal::{self, to_proto},
    error::{Reply, reply},
    evidence::{self, EvidenceList},
    host::Shutdown,
    idempotency, names,
    paging::Page,
    plans_lookup::PlansLookup,
    text,
    time::{now_ms, timestamp},
};
use prost::Message;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};
use tokio_stream::StreamExt;
use tonic::{Request, Status};

use crate::{
    DOMAIN, rules,
    scoring::{self, Flag, Method, Spec},
};

/// Roles that read every value and score.
const READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Service];

/// The indicators service.
#[derive(Clone)]
pub struct IndicatorsApi {
    db: Db,
    plans: PlansLookup,
    changes: Changes,
}

impl IndicatorsApi {
    pub fn new(db: Db, plans: ServiceChannel, shutdown: Shutdown) -> Self {
        IndicatorsApi {
            db,
            plans: PlansLookup::new(plans),
            changes: Changes::new(shutdown),
        }
    }
}

// ---------------------------------------------------------------- plans

/// What a group looks like in the plans service, as this service needs it.
struct GroupView {
    group: Group,
    indicators: Vec<Indicator>,
    targets: HashMap<(String, String), Decimal>,
    scheme: Scheme,
}

impl GroupView {
    fn indicator(&self, code: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.code == code)
    }

    fn id(&self) -> &str {
        self.group.name.rsplit('/').next().unwrap_or_default()
    }
}

impl IndicatorsApi {
    async fn cycle_year(&self, cycle: &str) -> Result<i32, Error> {
        Ok(self.plans.cycle(cycle).await?.year)
    }

    async fn groups(&self, cycle: &str) -> Result<Vec<Group>, Error> {
        self.plans.groups(cycle).await
    }

    async fn group_view(&self, group: Group) -> Result<GroupView, Error> {
        let framework = self.plans.framework(&group.name).await?;
        let scheme = self.plans.scheme(&group.name).await?;
        let approved = self.plans.group_targets(&group.name).await?;
        let mut targets = HashMap::new();
        for u in approved.units {
            for t in u.targets {
                if let Ok(v) = decimal::figure(&t.value) {
                    targets.insert((u.unit.clone(), t.indicator), v);
                }
            }
        }
        Ok(GroupView {
            group,
            indicators: framework.indicators,
            targets,
            scheme,
        })
    }

    async fn group_view_by_name(&self, group_name: &str) -> Result<GroupView, Error> {
        let group = self.plans.group(group_name).await?;
        self.group_view(group).await
    }

    /// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a
    /// write of `method` to `cycle`: a provider writes in its own data
    /// window (or under its lock exception, late); the office writes on a
    /// provider's behalf after the deadline too, and is then late.
    async fn admit(&self, p: &Principal, method: &str, cycle: &str) -> Result<bool, Error> {
        let path = format!("/jixiao.indicators.v1.IndicatorsService/{method}");
        self.plans.admit(p, &path, cycle).await
    }
}

// ---------------------------------------------------------------- rows

fn value_key(name: &str, field: &str) -> Result<(String, String, String, String), Error> {
    let ids = names::parse_loose(name, "cycles/*/units/*/indicators/*/periods/*", field)?;
    if rules::parse_period_key(ids[3]).is_none() {
        return Err(Error::invalid(
            field,
            format!(
                "{:?} is not a period such as 2026, 2026-Q1 or 2026-03",
                ids[3]
            ),
        ));
    }
    Ok((ids[0].into(), ids[1].into(), ids[2].into(), ids[3].into()))
}

fn value_name(cycle: &str, unit: &str, indicator: &str, period: &str) -> String {
    format!("cycles/{cycle}/units/{unit}/indicators/{indicator}/periods/{period}")
}

const VERSION_COLS: &str = "cycle_id, unit_id, indicator, period, version, value, evidence, comment, reported_by, report_ms, late, correction_reason";

fn value_proto(r: &AnyRow) -> Result<IndicatorValue, Error> {
    let cycle: String = r.try_get("cycle_id")?;
    let unit: String = r.try_get("unit_id")?;
    let indicator: String = r.try_get("indicator")?;
    let period: String = r.try_get("period")?;
    let evidence = EvidenceList::decode(r.try_get::<Vec<u8>, _>("evidence")?.as_slice())
        .map_err(Error::internal)?;
    Ok(IndicatorValue {
        name: value_name(&cycle, &unit, &indicator, &period),
        unit: format!("units/{unit}"),
        period: rules::parse_period_key(&period),
        indicator,
        value: Some(to_proto(decimal::from_db(
            &r.try_get::<String, _>("value")?,
        )?)),
        evidence: evidence.items,
        comment: r.try_get("comment")?,
        version: r.try_get::<i64, _>("version")? as i32,
        reported_by: r.try_get("reported_by")?,
        report_time: Some(timestamp(r.try_get("report_ms")?)),
        late: r.try_get::<i64, _>("late")? != 0,
        correction_reason: r.try_get("correction_reason")?,
    })
}

/// A validated row ready to store.
struct NewValue {
    cycle: String,
    unit: String,
    group: String,
    provider: String,
    indicator: String,
    period_key: String,
    period_kind: i32,
    period_index: i32,
    value: Decimal,
    evidence: Vec<EvidenceItem>,
    comment: String,
}

/// Stores a new version of a value and makes it current.
#[allow(clippy::too_many_arguments)]
async fn store_version(
    conn: &mut AnyConnection,
    v: &NewValue,
    version: i64,
    by: &str,
    late: bool,
    reason: &str,
) -> Result<IndicatorValue, Error> {
    let now = now_ms();
    let text = decimal::canonical(v.value);
    let sql = format!(
        "INSERT INTO value_versions ({VERSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
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
    })
}

fn method_of(ind: &Indicator) -> Method {
    match ScoringMethod::try_from(ind.method) {
        Ok(ScoringMethod::Threshold) => Method::Threshold,
        Ok(ScoringMethod::PeerBest) => Method::PeerBest,
        Ok(ScoringMethod::PeerRank) => Method::PeerRank,
        Ok(ScoringMethod::Assessed) => Method::Assessed,
        _ => Method::Ratio,
    }
}

fn higher(ind: &Indicator) -> bool {
    ind.direction != Direction::LowerIsBetter as i32
}

// ---------------------------------------------------------------- writes

impl IndicatorsApi {
    /// Validates rows against the framework and targets; `prefix(i)` names
    /// the row in violations. Returns the rows ready to store.
    async fn validate_rows(
        &self,
        p: &Principal,
        cycle: &str,
        rows: &[IndicatorValue],
        prefix: impl Fn(usize) -> String,
    ) -> Result<Vec<NewValue>, Error> {
        let year = self.cycle_year(cycle).await?;
        let groups = self.groups(cycle).await?;
        let mut views: HashMap<String, GroupView> = HashMap::new();
        let mut v = Violations::new();
        let mut out = Vec::new();
        let mut denied = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, row) in rows.iter().enumerate() {
            let f = prefix(i);
            text::optional(&mut v, format!("{f}.comment"), &row.comment, text::NOTE);
            let unit = match names::unit_id(&row.unit, &format!("{f}.unit")) {
                Ok(u) => u.to_string(),
                Err(Error::Invalid(x)) => {
                    x.into_iter().for_each(|x| v.add(x.field, x.description));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(group) = groups.iter().find(|g| g.units.contains(&row.unit)) else {
                v.add(
                    format!("{f}.unit"),
                    format!(
                        "{} is not assessed in any group of cycles/{cycle}",
                        row.unit
                    ),
                );
                continue;
            };
            if !views.contains_key(&group.name) {
                let view = self.group_view(group.clone()).await?;
                views.insert(group.name.clone(), view);
            }
            let view = &views[&group.name];
            let Some(ind) = view.indicator(&row.indicator) else {
                v.add(
                    format!("{f}.indicator"),
                    format!("{:?} is not an indicator of {}", row.indicator, group.name),
                );
                continue;
            };
            if !(p.has(Role::Office)
                || p.acts_for(Role::Provider, ind.provider.trim_start_matches("units/")))
            {
                denied.push(format!(
                    "{f} ({} is provided by {})",
                    ind.code, ind.provider
                ));
                continue;
            }
            if ind.method == ScoringMethod::Assessed as i32 {
                v.add(
                    format!("{f}.indicator"),
                    format!("{} is ASSESSED: an evaluator enters its score", ind.code),
                );
                continue;
            }
            rules::check_period(&row.period, year, &format!("{f}.period"), &mut v);
            match decimal::figure(&row.value) {
                Ok(value) => {
                    let lo = decimal::figure(&ind.plausible_min).unwrap_or(Decimal::MIN);
                    let hi = decimal::figure(&ind.plausible_max).unwrap_or(Decimal::MAX);
                    if value < lo || value > hi {
                        v.add(
                            format!("{f}.value"),
                            format!(
                                "{value} is outside the plausible range [{}, {}] of {}",
                                decimal::canonical(lo),
                                decimal::canonical(hi),
                                ind.code
                            ),
                        );
                    }
                    if !view
                        .targets
                        .contains_key(&(row.unit.clone(), ind.code.clone()))
                    {
                        v.add(
                            format!("{f}.indicator"),
                            format!("{} has no approved target for {}", row.unit, ind.code),
                        );
                    }
                    evidence::check(&row.evidence, &format!("{f}.evidence"), &mut v);
                    if let Some(period) = &row.period {
                        let key = rules::period_key(period);
                        if !seen.insert((unit.clone(), ind.code.clone(), key.clone())) {
                            v.add(
                                f.clone(),
                                format!("{} {} {key} appears twice", row.unit, ind.code),
                            );
                        }
                        out.push(NewValue {
                            cycle: cycle.to_string(),
                            unit,
                            group: view.id().to_string(),
                            provider: ind.provider.trim_start_matches("units/").to_string(),
                            indicator: ind.code.clone(),
                            period_key: key,
                            period_kind: period.kind,
                            period_index: period.index,
                            value,
                            evidence: row.evidence.clone(),
                            comment: row.comment.trim().to_string(),
                        });
                    }
                }
                Err(e) => v.add(format!("{f}.value"), e),
            }
        }
        if !denied.is_empty() {
            return Err(Error::denied(format!(
                "{} is not the data provider of {}",
                p.subject,
                denied.join(", ")
            )));
        }
        v.into_result()?;
        Ok(out)
    }

    /// Reports new values in one transaction; every row is new.
    async fn report(
        &self,
        p: Principal,
        cycle: String,
        rows: Vec<IndicatorValue>,
        request_id: &str,
        digest: &str,
        single: bool,
    ) -> Result<Vec<IndicatorValue>, Error> {
        let prefix = |i: usize| {
            if single {
                "value".to_string()
            } else {
                format!("values[{i}]")
            }
        };
        // A retry answers before any validation against the plans service.
        {
            let mut conn = self.db.read.acquire().await?;
            if let Some(done) =
                idempotency::replay::<BatchReportValuesResponse>(&mut conn, &p, request_id, digest)
                    .await?
            {
                return Ok(done.values);
            }
        }
        let method = if single {
            "ReportValue"
        } else {
            "BatchReportValues"
        };
        let late = self.admit(&p, method, &cycle).await?;
        let values = self.validate_rows(&p, &cycle, &rows, prefix).await?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) =
            idempotency::replay::<BatchReportValuesResponse>(&mut tx, &p, request_id, digest)
                .await?
        {
            return Ok(done.values);
        }
        let mut v = Violations::new();
        for (i, nv) in values.iter().enumerate() {
            let exists = sqlx::query("SELECT version FROM current_values WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4")
                .bind(&nv.cycle)
                .bind(&nv.unit)
                .bind(&nv.indicator)
                .bind(&nv.period_key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = exists {
                let version: i64 = r.try_get("version")?;
                v.add(
                    prefix(i),
                    format!(
                        "already reported (version {version}); send a correction with CorrectValue"
                    ),
                );
            }
        }
        v.into_result()?;
        let mut stored = Vec::new();
        let mut groups = std::collections::BTreeSet::new();
        for nv in &values {
            stored.push(store_version(&mut tx, nv, 1, &p.subject, late, "").await?);
            groups.insert(nv.group.clone());
        }
        let mut changes = Vec::new();
        for g in &groups {
            changes.push(Changes::bump(&mut tx, &cycle, g).await?);
        }
        let resource = if single {
            stored[0].name.clone()
        } else {
            format!("cycles/{cycle}/values")
        };
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: if single { "values.report" } else { "values.batch_report" },
                resource: &resource,
                reason: "",
                detail: json!({"values": stored.iter().map(|s| json!({"name": s.name, "value": s.value.as_ref().map(|d| &d.value)})).collect::<Vec<_>>(), "late": late}),
            },
        )
        .await?;
        let response = BatchReportValuesResponse { values: stored };
        idempotency::remember(&mut tx, &p, request_id, "ReportValues", digest, &response).await?;
        tx.commit().await?;
        self.changes.announce(changes);
        Ok(response.values)
    }

    async fn report_value(
        &self,
        p: Principal,
        req: ReportValueRequest,
    ) -> Result<IndicatorValue, Error> {
        let digest = idempotency::request_digest("ReportValue", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let row = req
            .value
            .ok_or_else(|| Error::invalid("value", "is required"))?;
        let mut out = self
            .report(p, cycle, vec![row], &req.request_id, &digest, true)
            .await?;
        Ok(out.remove(0))
    }

    async fn batch_report(
        &self,
        p: Principal,
        req: BatchReportValuesRequest,
    ) -> Result<BatchReportValuesResponse, Error> {
        let digest = idempotency::request_digest("BatchReportValues", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        if req.values.is_empty() {
            return Err(Error::invalid("values", "send at least one value"));
        }
        if req.values.len() > 10_000 {
            return Err(Error::invalid("values", "at most 10,000 values per batch"));
        }
        let values = self
            .report(p, cycle, req.values, &req.request_id, &digest, false)
            .await?;
        Ok(BatchReportValuesResponse { values })
    }

    async fn correct_value(
        &self,
        p: Principal,
        req: CorrectValueRequest,
    ) -> Result<IndicatorValue, Error> {
        let digest = idempotency::request_digest("CorrectValue", &req);
        let (cycle, unit, indicator, period) = value_key(&req.name, "name")?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a correction needs a reason",
        )?;
        {
            let mut conn = self.db.read.acquire().await?;
            if let Some(done) = idempotency::replay(&mut conn, &p, &req.request_id, &digest).await?
            {
                return Ok(done);
            }
        }
        let late = self.admit(&p, "CorrectValue", &cycle).await?;
        let current = self.get_value_row(&req.name).await?;
        let row = IndicatorValue {
            unit: format!("units/{unit}"),
            indicator: indicator.clone(),
            period: rules::parse_period_key(&period),
            value: req.value.clone(),
            evidence: req.evidence.clone(),
            comment: current.comment.clone(),
            ..Default::default()
        };
        let mut nv = self
            .validate_rows(&p, &cycle, std::slice::from_ref(&row), |_| {
                "value".to_string()
            })
            .await
            .map_err(|e| match e {
                // Name the fields as this request names them.
                Error::Invalid(vs) => Error::Invalid(
                    vs.into_iter()
                        .map(|mut x| {
                            x.field = x.field.replacen("value.value", "value", 1).replacen(
                                "value.evidence",
                                "evidence",
                                1,
                            );
                            x
                        })
                        .collect(),
                ),
                e => e,
            })?;
        let nv = nv.remove(0);
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let row = sqlx::query("SELECT version FROM current_values WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4")
            .bind(&cycle)
            .bind(&unit)
            .bind(&indicator)
            .bind(&period)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found(req.name.clone()))?;
        let version: i64 = row.try_get("version")?;
        let stored = store_version(
            &mut tx,
            &nv,
            version + 1,
            &p.subject,
            late,
            req.reason.trim(),
        )
        .await?;
        let change = Changes::bump(&mut tx, &cycle, &nv.group).await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "values.correct",
                resource: &stored.name,
                reason: req.reason.trim(),
                detail: json!({"from": current.value.as_ref().map(|d| &d.value), "to": stored.value.as_ref().map(|d| &d.value), "version": stored.version}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CorrectValue",
            &digest,
            &stored,
        )
        .await?;
        tx.commit().await?;
        self.changes.announce(vec![change]);
        Ok(stored)
    }

    async fn enter_assessed(
        &self,
        p: Principal,
        req: EnterAssessedScoreRequest,
    ) -> Result<AssessedScore, Error> {
        p.require(&[Role::Evaluator, Role::Office], "enter assessed scores")?;
        let digest = idempotency::request_digest("EnterAssessedScore", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "EnterAssessedScore", &cycle).await?;
        let unit_name = req.unit.clone();
        let unit = names::unit_id(&unit_name, "unit")?.to_string();
        let mut v = Violations::new();
        text::required(&mut v, "justification", &req.justification, text::NOTE);
        let groups = self.groups(&cycle).await?;
        let group = groups
            .into_iter()
            .find(|g| g.units.contains(&unit_name))
            .ok_or_else(|| {
                Error::invalid(
                    "unit",
                    format!("{unit_name} is not assessed in any group of cycles/{cycle}"),
                )
            })?;
        let view = self.group_view(group).await?;
        let ind = view.indicator(&req.indicator).ok_or_else(|| {
            Error::invalid(
                "indicator",
                format!(
                    "{:?} is not an indicator of {}",
                    req.indicator, view.group.name
                ),
            )
        })?;
        if ind.method != ScoringMethod::Assessed as i32 {
            v.add(
                "indicator",
                format!("{} is not ASSESSED; its provider reports a value", ind.code),
            );
        }
        let weight =
            decimal::figure(&ind.weight).map_err(|e| Error::internal(std::io::Error::other(e)))?;
        let score = match decimal::figure(&req.score) {
            Ok(s) if s < Decimal::ZERO || s > weight => {
                v.add(
                    "score",
                    format!("{s} is outside [0, {}]", decimal::canonical(weight)),
                );
                s
            }
            Ok(s) => s,
            Err(e) => {
                v.add("score", e);
                Decimal::ZERO
            }
        };
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let now = now_ms();
        let group_id = view.id().to_string();
        sqlx::query(
            "INSERT INTO assessed_scores (cycle_id, unit_id, indicator, group_id, score, justification, assessed_by, assess_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (cycle_id, unit_id, indicator) DO UPDATE SET score = excluded.score,
             justification = excluded.justification, assessed_by = excluded.assessed_by, assess_ms = excluded.assess_ms",
        )
        .bind(&cycle)
        .bind(&unit)
        .bind(&ind.code)
        .bind(&group_id)
        .bind(decimal::canonical(score))
        .bind(req.justification.trim())
        .bind(&p.subject)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let out = AssessedScore {
            name: format!(
                "cycles/{cycle}/units/{unit}/indicators/{}/assessment",
                ind.code
            ),
            score: Some(to_proto(score)),
            justification: req.justification.trim().into(),
            assessed_by: p.subject.clone(),
            assess_time: Some(timestamp(now)),
        };
        let change = Changes::bump(&mut tx, &cycle, &group_id).await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "assessments.enter",
                resource: &out.name,
                reason: &out.justification,
                detail: json!({"score": decimal::canonical(score)}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "EnterAssessedScore",
            &digest,
            &out,
        )
        .await?;
        tx.commit().await?;
        self.changes.announce(vec![change]);
        Ok(out)
    }
}

// ---------------------------------------------------------------- reads

impl IndicatorsApi {
    async fn get_value_row(&self, name: &str) -> Result<IndicatorValue, Error> {
        let (cycle, unit, indicator, period) = value_key(name, "name")?;
        let sql = format!(
            "SELECT {} FROM value_versions v JOIN current_values c ON c.cycle_id = v.cycle_id AND c.unit_id = v.unit_id
             AND c.indicator = v.indicator AND c.period = v.period AND c.version = v.version
             WHERE v.cycle_id = $1 AND v.unit_id = $2 AND v.indicator = $3 AND v.period = $4",
            prefixed(VERSION_COLS, "v")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(&unit)
            .bind(&indicator)
            .bind(&period)
            .fetch_optional(&self.db.read)
            .await?
            .ok_or_else(|| Error::not_found(name.to_string()))?;
        value_proto(&row)
    }

    /// Who may read values of `unit` provided by `provider`.
    fn may_read(p: &Principal, unit: &str, provider: &str) -> bool {
        p.has_any(READERS) || p.acts_for(Role::Unit, unit) || p.acts_for(Role::Provider, provider)
    }

    async fn provider_of(
        &self,
        cycle: &str,
        unit: &str,
        indicator: &str,
        period: &str,
    ) -> Result<String, Error> {
        let row = sqlx::query("SELECT provider_id FROM current_values WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4")
            .bind(cycle)
            .bind(unit)
            .bind(indicator)
            .bind(period)
            .fetch_optional(&self.db.read)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("provider_id")?,
            None => String::new(),
        })
    }

    async fn get_value(&self, p: Principal, req: GetValueRequest) -> Result<IndicatorValue, Error> {
        let (cycle, unit, indicator, period) = value_key(&req.name, "name")?;
        let provider = self.provider_of(&cycle, &unit, &indicator, &period).await?;
        if !Self::may_read(&p, &unit, &provider) {
            return Err(Error::denied(format!(
                "{} may not read {}",
                p.subject, req.name
            )));
        }
        self.get_value_row(&req.name).await
    }

    async fn list_values(
        &self,
        p: Principal,
        req: ListValuesRequest,
    ) -> Result<ListValuesResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let group = if req.group.is_empty() {
            String::new()
        } else {
            names::group_name(&req.group, "group")?.1.to_string()
        };
        let mut unit = if req.unit.is_empty() {
            String::new()
        } else {
            names::unit_id(&req.unit, "unit")?.to_string()
        };
        let mut provider = if req.provider.is_empty() {
            String::new()
        } else {
            names::unit_id(&req.provider, "provider")?.to_string()
        };
        if !p.has_any(READERS) {
            // A provider lists what it provides, a unit what concerns it.
            let own = p.own_unit()?.to_string();
            if p.has(Role::Provider) && (provider.is_empty() || provider == own) {
                provider = own;
            } else if p.has(Role::Unit) && (unit.is_empty() || unit == own) {
                unit = own;
            } else {
                return Err(Error::denied(format!(
                    "{} may only list values of its own unit",
                    p.subject
                )));
            }
        }
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let sql = format!(
            "SELECT {} FROM current_values c JOIN value_versions v ON c.cycle_id = v.cycle_id AND c.unit_id = v.unit_id
             AND c.indicator = v.indicator AND c.period = v.period AND c.version = v.version
             WHERE c.cycle_id = $1 AND ($2 = '' OR c.group_id = $2) AND ($3 = '' OR c.unit_id = $3)
             AND ($4 = '' OR c.indicator = $4) AND ($5 = '' OR c.provider_id = $5)
             ORDER BY c.unit_id, c.indicator, c.period LIMIT $6 OFFSET $7",
            prefixed(VERSION_COLS, "v")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(&group)
            .bind(&unit)
            .bind(&req.indicator)
            .bind(&provider)
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        let mut values = rows
            .iter()
            .map(value_proto)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut values);
        Ok(ListValuesResponse {
            values,
            next_page_token,
        })
    }

    async fn history(
        &self,
        p: Principal,
        req: ListValueHistoryRequest,
    ) -> Result<ListValueHistoryResponse, Error> {
        let (cycle, unit, indicator, period) = value_key(&req.name, "name")?;
        let provider = self.provider_of(&cycle, &unit, &indicator, &period).await?;
        if !Self::may_read(&p, &unit, &provider) {
            return Err(Error::denied(format!(
                "{} may not read {}",
                p.subject, req.name
            )));
        }
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let sql = format!(
            "SELECT {VERSION_COLS} FROM value_versions WHERE cycle_id = $1 AND unit_id = $2 AND indicator = $3 AND period = $4
             ORDER BY version LIMIT $5 OFFSET $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(&unit)
            .bind(&indicator)
            .bind(&period)
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        if rows.is_empty() && pg.offset == 0 {
            return Err(Error::not_found(req.name));
        }
        let mut versions = rows
            .iter()
            .map(value_proto)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut versions);
        Ok(ListValueHistoryResponse {
            versions,
            next_page_token,
        })
    }

    /// Current final (annual) values and assessed scores of a group.
    async fn group_inputs(
        &self,
        cycle: &str,
        group: &str,
    ) -> Result<
        (
            HashMap<(String, String), (Decimal, bool)>,
            HashMap<(String, String), Decimal>,
        ),
        Error,
    > {
        let rows = sqlx::query("SELECT unit_id, indicator, value, late FROM current_values WHERE cycle_id = $1 AND group_id = $2 AND period_kind = $3")
            .bind(cycle)
            .bind(group)
            .bind(PeriodKind::Annual as i32 as i64)
            .fetch_all(&self.db.read)
            .await?;
        let mut finals = HashMap::new();
        for r in &rows {
            finals.insert(
                (
                    format!("units/{}", r.try_get::<String, _>("unit_id")?),
                    r.try_get("indicator")?,
                ),
                (
                    decimal::from_db(&r.try_get::<String, _>("value")?)?,
                    r.try_get::<i64, _>("late")? != 0,
                ),
            );
        }
        let rows = sqlx::query("SELECT unit_id, indicator, score FROM assessed_scores WHERE cycle_id = $1 AND group_id = $2")
            .bind(cycle)
            .bind(group)
            .fetch_all(&self.db.read)
            .await?;
        let mut assessed = HashMap::new();
        for r in &rows {
            assessed.insert(
                (
                    format!("units/{}", r.try_get::<String, _>("unit_id")?),
                    r.try_get("indicator")?,
                ),
                decimal::from_db(&r.try_get::<String, _>("score")?)?,
            );
        }
        Ok((finals, assessed))
    }

    async fn group_scores(
        &self,
        p: Principal,
        req: GetGroupScoresRequest,
    ) -> Result<GroupScores, Error> {
        p.require(READERS, "read group indicator scores")?;
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        // The revision is read first: a change committed meanwhile shows as a
        // newer revision, never as a newer table under an older number.
        let revision = Changes::revision(&self.db, cycle, gid).await?;
        if unchanged_since(req.known_revision, revision) {
            return Ok(GroupScores {
                group: req.group,
                revision,
                unchanged: true,
                ..Default::default()
            });
        }
        let view = self.group_view_by_name(&req.group).await?;
        let (finals, assessed) = self.group_inputs(cycle, gid).await?;
        let floor = decimal::figure(&view.scheme.peer_rank_floor).unwrap_or(Decimal::new(6, 1));
        let units = &view.group.units;
        let mut per_unit: Vec<Vec<IndicatorScore>> = vec![Vec::new(); units.len()];
        for ind in &view.indicators {
            let weight = decimal::figure(&ind.weight).unwrap_or_default();
            let spec = Spec {
                method: method_of(ind),
                direction: if higher(ind) {
                    scoring::Direction::Higher
                } else {
                    scoring::Direction::Lower
                },
                weight,
                floor,
            };
            let inputs: Vec<scoring::Input> = units
                .iter()
                .map(|u| {
                    let key = (u.clone(), ind.code.clone());
                    scoring::Input {
                        target: view.targets.get(&key).copied(),
                        actual: finals.get(&key).map(|f| f.0),
                        assessed: assessed.get(&key).copied(),
                    }
                })
                .collect();
            for (i, (scored, input)) in scoring::score(&spec, &inputs)
                .into_iter()
                .zip(&inputs)
                .enumerate()
            {
                let mut flags = Vec::new();
                match scored.flag {
                    Some(Flag::MissingValue) => flags.push(ScoreFlag::MissingValue as i32),
                    Some(Flag::MissingTarget) => flags.push(ScoreFlag::MissingTarget as i32),
                    None => {}
                }
                if finals
                    .get(&(units[i].clone(), ind.code.clone()))
                    .is_some_and(|f| f.1)
                {
                    flags.push(ScoreFlag::Late as i32);
                }
                per_unit[i].push(IndicatorScore {
                    indicator: ind.code.clone(),
                    method: ScoringMethod::try_from(ind.method)
                        .map(|m| {
                            m.as_str_name()
                                .trim_start_matches("SCORING_METHOD_")
                                .to_string()
                        })
                        .unwrap_or_default(),
                    weight: Some(to_proto(weight)),
                    target: input.target.map(to_proto),
                    actual: if spec.method == Method::Assessed {
                        input.assessed.map(to_proto)
                    } else {
                        input.actual.map(to_proto)
                    },
                    points: Some(to_proto(scored.points)),
                    points_lost: Some(to_proto(weight - scored.points)),
                    flags,
                });
            }
        }
        let units = units
            .iter()
            .zip(per_unit)
            .map(|(u, indicators)| {
                let total: Decimal = indicators
                    .iter()
                    .filter_map(|s| decimal::optional(&s.points).ok().flatten())
                    .sum();
                let complete = indicators.iter().all(|s| {
                    !s.flags.iter().any(|f| {
                        *f == ScoreFlag::MissingValue as i32
                            || *f == ScoreFlag::MissingTarget as i32
                    })
                });
                UnitIndicatorScore {
                    unit: u.clone(),
                    total: Some(to_proto(total)),
                    indicators,
                    complete,
                }
            })
            .collect();
        Ok(GroupScores {
            group: req.group,
            units,
            revision,
            compute_time: Some(timestamp(now_ms())),
            unchanged: false,
        })
    }

    async fn progress(
        &self,
        p: Principal,
        req: GetProgressRequest,
    ) -> Result<GetProgressResponse, Error> {
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        let mut only = if req.unit.is_empty() {
            None
        } else {
            Some(names::unit_id(&req.unit, "unit")?.to_string())
        };
        if !p.has_any(READERS) {
            let own = p.unit.clone().filter(|_| p.has(Role::Unit));
            match (own, &only) {
                (Some(own), None) => only = Some(own),
                (Some(own), Some(u)) if *u == own => {}
                _ => {
                    return Err(Error::denied(format!(
                        "{} may only read its own unit's progress",
                        p.subject
                    )));
                }
            }
        }
        let expected_override = decimal::optional_figure(&req.expected_share)
            .map_err(|e| Error::invalid("expected_share", e))?;
        let view = self.group_view_by_name(&req.group).await?;
        let threshold =
            decimal::figure(&view.scheme.at_risk_threshold).unwrap_or(Decimal::new(1, 1));
        let rows = sqlx::query(
            "SELECT unit_id, indicator, period, period_kind, period_index, value FROM current_values
             WHERE cycle_id = $1 AND group_id = $2 AND period_kind <> $3",
        )
        .bind(cycle)
        .bind(gid)
        .bind(PeriodKind::Annual as i32 as i64)
        .fetch_all(&self.db.read)
        .await?;
        // Latest progress value per unit and indicator (months and quarters
        // compared by the share of the year they cover).
        let mut latest: BTreeMap<(String, String), (Decimal, String, Decimal)> = BTreeMap::new();
        for r in &rows {
            let unit = format!("units/{}", r.try_get::<String, _>("unit_id")?);
            let key: String = r.try_get("period")?;
            let Some(period) = rules::parse_period_key(&key) else {
                continue;
            };
            let share = rules::elapsed_share(&period);
            let value = decimal::from_db(&r.try_get::<String, _>("value")?)?;
            let entry = (unit, r.try_get::<String, _>("indicator")?);
            if latest.get(&entry).is_none_or(|(s, _, _)| share > *s) {
                latest.insert(entry, (share, key, value));
            }
        }
        let mut out = Vec::new();
        for unit in &view.group.units {
            if only.as_ref().is_some_and(|o| format!("units/{o}") != *unit) {
                continue;
            }
            for ind in view
                .indicators
                .iter()
                .filter(|i| i.method != ScoringMethod::Assessed as i32)
            {
                let target = view.targets.get(&(unit.clone(), ind.code.clone())).copied();
                let last = latest.get(&(unit.clone(), ind.code.clone()));
                let achieved = match (target, last) {
                    (Some(t), Some((_, _, v))) => rules::achieved_share(higher(ind), t, *v),
                    _ => None,
                };
                let expected = expected_override.or(last.map(|l| l.0));
                let at_risk = match (achieved, expected) {
                    (Some(a), Some(e)) => rules::at_risk(a, e, threshold),
                    _ => false,
                };
                out.push(ProgressRow {
                    unit: unit.clone(),
                    indicator: ind.code.clone(),
                    target: target.map(to_proto),
                    latest_value: last.map(|l| to_proto(l.2)),
                    latest_period: last.and_then(|l| rules::parse_period_key(&l.1)),
                    achieved_share: achieved.map(to_proto),
                    at_risk,
                });
            }
        }
        Ok(GetProgressResponse { rows: out })
    }

    async fn completeness(
        &self,
        p: Principal,
        req: GetProviderCompletenessRequest,
    ) -> Result<GetProviderCompletenessResponse, Error> {
        let cycle = names::cycle_id(&req.cycle, "cycle")?.to_string();
        let mut only = if req.provider.is_empty() {
            None
        } else {
            Some(req.provider.clone())
        };
        if !p.has_any(READERS) {
            let own = p
                .unit
                .clone()
                .filter(|_| p.has(Role::Provider))
                .map(|u| format!("units/{u}"));
            match (own, &only) {
                (Some(own), None) => only = Some(own),
                (Some(own), Some(x)) if *x == own => {}
                _ => {
                    return Err(Error::denied(format!(
                        "{} may only read its own completeness",
                        p.subject
                    )));
                }
            }
        }
        let rows = sqlx::query("SELECT unit_id, indicator, late FROM current_values WHERE cycle_id = $1 AND period_kind = $2")
            .bind(&cycle)
            .bind(PeriodKind::Annual as i32 as i64)
            .fetch_all(&self.db.read)
            .await?;
        let mut reported: HashMap<(String, String), bool> = HashMap::new();
        for r in &rows {
            reported.insert(
                (
                    format!("units/{}", r.try_get::<String, _>("unit_id")?),
                    r.try_get("indicator")?,
                ),
                r.try_get::<i64, _>("late")? != 0,
            );
        }
        let year = self.cycle_year(&cycle).await?;
        let mut by_provider: BTreeMap<String, ProviderCompleteness> = BTreeMap::new();
        for group in self.groups(&cycle).await? {
            let framework = self.plans.framework(&group.name).await?;
            for ind in framework
                .indicators
                .iter()
                .filter(|i| i.method != ScoringMethod::Assessed as i32)
            {
                if only.as_ref().is_some_and(|o| *o != ind.provider) {
                    continue;
                }
                let row = by_provider.entry(ind.provider.clone()).or_insert_with(|| {
                    ProviderCompleteness {
                        provider: ind.provider.clone(),
                        ..Default::default()
                    }
                });
                for unit in &group.units {
                    row.expected += 1;
                    match reported.get(&(unit.clone(), ind.code.clone())) {
                        Some(late) => {
                            row.reported += 1;
                            row.late += i32::from(*late);
                        }
                        None => row.missing.push(value_name(
                            &cycle,
                            unit.trim_start_matches("units/"),
                            &ind.code,
                            &year.to_string(),
                        )),
                    }
                }
            }
        }
        Ok(GetProviderCompletenessResponse {
            providers: by_provider.into_values().collect(),
        })
    }

    async fn verify_audit(
        &self,
        p: Principal,
        _req: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, Error> {
        audit::verify_for_readers(&self.db.read, &p).await
    }

    async fn list_audit(
        &self,
        p: Principal,
        req: ListAuditRecordsRequest,
    ) -> Result<ListAuditRecordsResponse, Error> {
        audit::list_for_readers(&self.db.read, &p, &req).await
    }
}

fn prefixed(cols: &str, alias: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ScoreChange, Status>> + Send>>;

#[tonic::async_trait]
impl IndicatorsService for IndicatorsApi {
    async fn report_value(&self, req: Request<ReportValueRequest>) -> Reply<IndicatorValue> {
        checked!(DOMAIN, self, req, report_value)
    }
    async fn batch_report_values(
        &self,
        req: Request<BatchReportValuesRequest>,
    ) -> Reply<BatchReportValuesResponse> {
        checked!(DOMAIN, self, req, batch_report)
    }
    async fn correct_value(&self, req: Request<CorrectValueRequest>) -> Reply<IndicatorValue> {
        checked!(DOMAIN, self, req, correct_value)
    }
    async fn get_value(&self, req: Request<GetValueRequest>) -> Reply<IndicatorValue> {
        checked!(DOMAIN, self, req, get_value)
    }
    async fn list_values(&self, req: Request<ListValuesRequest>) -> Reply<ListValuesResponse> {
        checked!(DOMAIN, self, req, list_values)
    }
    async fn list_value_history(
        &self,
        req: Request<ListValueHistoryRequest>,
    ) -> Reply<ListValueHistoryResponse> {
        checked!(DOMAIN, self, req, history)
    }
    async fn enter_assessed_score(
        &self,
        req: Request<EnterAssessedScoreRequest>,
    ) -> Reply<AssessedScore> {
        checked!(DOMAIN, self, req, enter_assessed)
    }
    async fn get_progress(&self, req: Request<GetProgressRequest>) -> Reply<GetProgressResponse> {
        checked!(DOMAIN, self, req, progress)
    }
    async fn get_provider_completeness(
        &self,
        req: Request<GetProviderCompletenessRequest>,
    ) -> Reply<GetProviderCompletenessResponse> {
        checked!(DOMAIN, self, req, completeness)
    }
    async fn get_group_scores(&self, req: Request<GetGroupScoresRequest>) -> Reply<GroupScores> {
        checked!(DOMAIN, self, req, group_scores)
    }

    type WatchScoreChangesStream = ChangeStream;

    async fn watch_score_changes(
        &self,
        req: Request<WatchScoreChangesRequest>,
    ) -> Reply<ChangeStream> {
        let p = principal(&req)?;
        let run = async {
            let changes = self
                .changes
                .watch_for(&self.db, &p, &req.get_ref().cycle)
                .await?;
            let stream = changes.map(|c| {
                Ok(ScoreChange {
                    group: c.group,
                    revision: c.revision,
                })
            });
            Ok::<ChangeStream, Error>(Box::pin(stream))
        };
        reply(DOMAIN, run.await)
    }

    async fn list_audit_records(
        &self,
        req: Request<ListAuditRecordsRequest>,
    ) -> Reply<ListAuditRecordsResponse> {
        checked!(DOMAIN, self, req, list_audit)
    }
    async fn verify_audit_chain(
        &self,
        req: Request<VerifyAuditChainRequest>,
    ) -> Reply<VerifyAuditChainResponse> {
        checked!(DOMAIN, self, req, verify_audit)
    }
}
