//! The tonic adapter of the inspections service: authorisation, the finding
//! and item lifecycles, storage with audit and idempotency, adjustments and
//! the change stream.

use std::collections::{BTreeMap, HashMap};

use jixiao_proto::{
    inspections::{
        AdjustmentChange, ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
        CreateSelfInspectionItemRequest, DecideContestRequest, Document, DocumentKind, Finding,
        FindingState, GetGroupAdjustmentsRequest, GetInspectionRequest, GroupAdjustments,
        Inspection, InspectionKind, IssueDocumentRequest, ItemState, ListDocumentsRequest,
        ListDocumentsResponse, ListInspectionsRequest, ListInspectionsResponse,
        ListOverdueRectificationsRequest, ListOverdueRectificationsResponse,
        ListSelfInspectionItemsRequest, ListSelfInspectionItemsResponse, RecordSpotCheckRequest,
        RectificationState, ReportRectificationRequest, ReviewRectificationRequest,
        SelfInspectionItem, StaffAction, UnitAdjustment, VerifySelfInspectionItemRequest,
        WatchAdjustmentChangesRequest, inspections_service_server::InspectionsService,
    },
    plans::Scheme,
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
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
    time::{self, now_ms, opt_timestamp, timestamp},
};
use prost::Message;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};
use tokio_stream::StreamExt;
use tonic::{Request, Status};

use crate::{DOMAIN, rules};

/// Roles that read every inspection record.
const READERS: &[Role] = &[
    Role::Office,
    Role::Inspector,
    Role::Evaluator,
    Role::Service,
];
/// Roles that record inspections.
const RECORDERS: &[Role] = &[Role::Office, Role::Inspector];

const STAFF_ACTIONS: &[&str] = &["circulated_criticism", "admonishment", "efficiency_warning"];

/// The inspections service.
#[derive(Clone)]
pub struct InspectionsApi {
    db: Db,
    plans: PlansLookup,
    changes: Changes,
}

impl InspectionsApi {
    /// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a
    /// write of `method` to `cycle`; returns whether it is late.
    async fn admit(&self, p: &Principal, method: &str, cycle: &str) -> Result<bool, Error> {
        let path = format!("/jixiao.inspections.v1.InspectionsService/{method}");
        self.plans.admit(p, &path, cycle).await
    }

    pub fn new(db: Db, plans: ServiceChannel, shutdown: Shutdown) -> Self {
        InspectionsApi {
            db,
            plans: PlansLookup::new(plans),
            changes: Changes::new(shutdown),
        }
    }

    /// The group a unit is assessed in (its id), or INVALID_ARGUMENT naming
    /// `field`.
    async fn group_of(&self, cycle: &str, unit_name: &str, field: &str) -> Result<String, Error> {
        names::unit_id(unit_name, field)?;
        let group = self
            .plans
            .group_of_unit(cycle, unit_name)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("{unit_name} is not assessed in any group of cycles/{cycle}"),
                )
            })?;
        Ok(group
            .name
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string())
    }

    async fn scheme_of(&self, cycle: &str, group: &str) -> Result<Scheme, Error> {
        self.plans
            .scheme(&format!("cycles/{cycle}/groups/{group}"))
            .await
    }
}

fn scheme_value(list: &[jixiao_proto::plans::WeightedKey], key: &str) -> Option<Decimal> {
    list.iter()
        .find(|k| k.key == key)
        .and_then(|k| decimal::figure(&k.value).ok())
}

// ---------------------------------------------------------------- rows

const FINDING_COLS: &str = "cycle_id, inspection_id, id, unit_id, group_id, position, category, description, evidence, deduction, state, contest_reason, decision_note, rect_due_ms, rect_state, rect_report, rect_evidence";

struct FindingRow {
    cycle: String,
    inspection: String,
    id: String,
    unit: String,
    group: String,
    state: FindingState,
    rect_state: RectificationState,
    deduction: Decimal,
    proto: Finding,
}

fn finding_row(r: &AnyRow) -> Result<FindingRow, Error> {
    let cycle: String = r.try_get("cycle_id")?;
    let inspection: String = r.try_get("inspection_id")?;
    let id: String = r.try_get("id")?;
    let state = FindingState::try_from(r.try_get::<i64, _>("state")? as i32)
        .unwrap_or(FindingState::Unspecified);
    let rect_state = RectificationState::try_from(r.try_get::<i64, _>("rect_state")? as i32)
        .unwrap_or(RectificationState::Unspecified);
    let deduction = decimal::from_db(&r.try_get::<String, _>("deduction")?)?;
    let evidence = EvidenceList::decode(r.try_get::<Vec<u8>, _>("evidence")?.as_slice())
        .map_err(Error::internal)?;
    let proto = Finding {
        name: format!("cycles/{cycle}/inspections/{inspection}/findings/{id}"),
        category: r.try_get("category")?,
        description: r.try_get("description")?,
        evidence: evidence.items,
        deduction: Some(to_proto(deduction)),
        state: state as i32,
        contest_reason: r.try_get("contest_reason")?,
        decision_note: r.try_get("decision_note")?,
        rectification_due_time: opt_timestamp(r.try_get("rect_due_ms")?),
        rectification_state: rect_state as i32,
        rectification_report: r.try_get("rect_report")?,
    };
    Ok(FindingRow {
        cycle,
        inspection,
        id,
        unit: r.try_get("unit_id")?,
        group: r.try_get("group_id")?,
        state,
        rect_state,
        deduction,
        proto,
    })
}

/// The cycle id of a finding's name.
fn finding_cycle(name: &str) -> Result<&str, Error> {
    Ok(names::parse(name, "cycles/*/inspections/*/findings/*", "name")?[0])
}

async fn load_finding(conn: &mut AnyConnection, name: &str) -> Result<FindingRow, Error> {
    let ids = names::parse(name, "cycles/*/inspections/*/findings/*", "name")?;
    let sql = format!(
        "SELECT {FINDING_COLS} FROM findings WHERE cycle_id = $1 AND inspection_id = $2 AND id = $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids[0])
        .bind(ids[1])
        .bind(ids[2])
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(name.to_string()))?;
    finding_row(&row)
}

const INSPECTION_COLS: &str =
    "cycle_id, id, unit_id, kind, inspect_ms, inspectors, place, notes, recorded_by";

/// An inspection with its findings; `hide_drafts` for the inspected unit.
async fn inspection_proto(
    conn: &mut AnyConnection,
    r: &AnyRow,
    hide_drafts: bool,
) -> Result<Inspection, Error> {
    let cycle: String = r.try_get("cycle_id")?;
    let id: String = r.try_get("id")?;
    let sql = format!(
        "SELECT {FINDING_COLS} FROM findings WHERE cycle_id = $1 AND inspection_id = $2 ORDER BY position"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&cycle)
        .bind(&id)
        .fetch_all(&mut *conn)
        .await?;
    let mut findings = Vec::new();
    for f in &rows {
        let f = finding_row(f)?;
        if !(hide_drafts && f.state == FindingState::Draft) {
            findings.push(f.proto);
        }
    }
    let inspectors: Vec<String> =
        serde_json::from_str(&r.try_get::<String, _>("inspectors")?).map_err(Error::internal)?;
    Ok(Inspection {
        name: format!("cycles/{cycle}/inspections/{id}"),
        unit: format!("units/{}", r.try_get::<String, _>("unit_id")?),
        kind: r.try_get::<i64, _>("kind")? as i32,
        inspect_time: Some(timestamp(r.try_get("inspect_ms")?)),
        inspectors,
        place: r.try_get("place")?,
        notes: r.try_get("notes")?,
        findings,
        recorded_by: r.try_get("recorded_by")?,
    })
}

async fn update_finding(conn: &mut AnyConnection, f: &FindingRow) -> Result<(), Error> {
    sqlx::query(
        "UPDATE findings SET state = $1, contest_reason = $2, decision_note = $3, rect_state = $4, rect_report = $5
         WHERE cycle_id = $6 AND inspection_id = $7 AND id = $8",
    )
    .bind(f.state as i32 as i64)
    .bind(&f.proto.contest_reason)
    .bind(&f.proto.decision_note)
    .bind(f.rect_state as i32 as i64)
    .bind(&f.proto.rectification_report)
    .bind(&f.cycle)
    .bind(&f.inspection)
    .bind(&f.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const ITEM_COLS: &str = "cycle_id, id, unit_id, group_id, item_type, problem, action_taken, staff_actions, state, credit, note";

fn item_proto(r: &AnyRow) -> Result<SelfInspectionItem, Error> {
    let cycle: String = r.try_get("cycle_id")?;
    let actions: Vec<(String, i32)> =
        serde_json::from_str(&r.try_get::<String, _>("staff_actions")?).map_err(Error::internal)?;
    let credit: String = r.try_get("credit")?;
    Ok(SelfInspectionItem {
        name: format!(
            "cycles/{cycle}/selfInspectionItems/{}",
            r.try_get::<String, _>("id")?
        ),
        unit: format!("units/{}", r.try_get::<String, _>("unit_id")?),
        item_type: r.try_get("item_type")?,
        problem: r.try_get("problem")?,
        action_taken: r.try_get("action_taken")?,
        staff_actions: actions
            .into_iter()
            .map(|(kind, count)| StaffAction { kind, count })
            .collect(),
        state: r.try_get::<i64, _>("state")? as i32,
        credit: if credit.is_empty() {
            None
        } else {
            Some(to_proto(decimal::from_db(&credit)?))
        },
        note: r.try_get("note")?,
    })
}

fn check_state(f: &FindingRow, to: FindingState) -> Result<(), Error> {
    if rules::may_move(f.state, to) {
        Ok(())
    } else {
        Err(Error::precondition(
            "INVALID_STATE",
            format!(
                "{} is {}; it cannot become {}",
                f.proto.name,
                f.state.as_str_name(),
                to.as_str_name()
            ),
        ))
    }
}

// ---------------------------------------------------------------- writes

/// A finding to store, validated.
struct NewFinding {
    category: String,
    description: String,
    evidence: Vec<jixiao_proto::types::EvidenceItem>,
    deduction: Decimal,
    rect_due_ms: Option<i64>,
}

impl InspectionsApi {
    #[allow(clippy::too_many_arguments)]
    async fn store_inspection(
        &self,
        p: &Principal,
        cycle: &str,
        unit: &str,
        group: &str,
        kind: InspectionKind,
        inspect_ms: i64,
        inspectors: &[String],
        place: &str,
        notes: &str,
        findings: Vec<NewFinding>,
        request_id: &str,
        digest: &str,
    ) -> Result<Inspection, Error> {
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, p, request_id, digest).await? {
            return Ok(done);
        }
        let id = names::new_id("insp");
        let sql = format!(
            "INSERT INTO inspections ({INSPECTION_COLS}, create_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cycle)
            .bind(&id)
            .bind(unit)
            .bind(kind as i32 as i64)
            .bind(inspect_ms)
            .bind(serde_json::to_string(inspectors).map_err(Error::internal)?)
            .bind(place)
            .bind(notes)
            .bind(&p.subject)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for (i, f) in findings.iter().enumerate() {
            let sql = format!(
                "INSERT INTO findings ({FINDING_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', '', $12, $13, '', $14)"
            );
            let rect_state = if f.rect_due_ms.is_some() {
                RectificationState::Required
            } else {
                RectificationState::Unspecified
            };
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cycle)
                .bind(&id)
                .bind(format!("f{}", i + 1))
                .bind(unit)
                .bind(group)
                .bind(i as i64)
                .bind(&f.category)
                .bind(&f.description)
                .bind(
                    EvidenceList {
                        items: f.evidence.clone(),
                    }
                    .encode_to_vec(),
                )
                .bind(decimal::canonical(f.deduction))
                .bind(FindingState::Draft as i32 as i64)
                .bind(f.rect_due_ms)
                .bind(rect_state as i32 as i64)
                .bind(EvidenceList::default().encode_to_vec())
                .execute(&mut *tx)
                .await?;
        }
        let sql =
            format!("SELECT {INSPECTION_COLS} FROM inspections WHERE cycle_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cycle)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        let created = inspection_proto(&mut tx, &row, false).await?;
        audit::append(
            &mut tx,
            p,
            audit::Entry {
                action: "inspections.create",
                resource: &created.name,
                reason: "",
                detail: json!({"unit": created.unit, "kind": kind.as_str_name(), "findings": created.findings.iter().map(|f| json!({"category": f.category, "deduction": f.deduction.as_ref().map(|d| &d.value)})).collect::<Vec<_>>()}),
            },
        )
        .await?;
        idempotency::remember(&mut tx, p, request_id, "CreateInspection", digest, &created).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn create_inspection(
        &self,
        p: Principal,
        req: CreateInspectionRequest,
    ) -> Result<Inspection, Error> {
        p.require(RECORDERS, "record inspections")?;
        let digest = idempotency::request_digest("CreateInspection", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "CreateInspection", &cycle).await?;
        let ins = req.inspection.clone().unwrap_or_default();
        let mut v = Violations::new();
        let kind = InspectionKind::try_from(ins.kind).unwrap_or(InspectionKind::Unspecified);
        v.check(
            kind != InspectionKind::Unspecified,
            "inspection.kind",
            "must be OPEN, COVERT, PATROL, CONCENTRATED, CROSS_DISTRICT or SPOT_CHECK",
        );
        let inspect_ms = time::required(&ins.inspect_time, "inspection.inspect_time", &mut v)
            .unwrap_or_default();
        v.check(
            !ins.inspectors.is_empty() && ins.inspectors.iter().all(|i| !i.trim().is_empty()),
            "inspection.inspectors",
            "name at least one inspector",
        );
        for (i, who) in ins.inspectors.iter().enumerate() {
            text::optional(
                &mut v,
                format!("inspection.inspectors[{i}]"),
                who,
                text::LABEL,
            );
        }
        text::optional(&mut v, "inspection.place", &ins.place, text::LABEL);
        text::optional(&mut v, "inspection.notes", &ins.notes, text::NOTE);
        let mut findings = Vec::new();
        for (i, f) in ins.findings.iter().enumerate() {
            let field = format!("inspection.findings[{i}]");
            text::required(
                &mut v,
                format!("{field}.category"),
                &f.category,
                text::LABEL,
            );
            text::required(
                &mut v,
                format!("{field}.description"),
                &f.description,
                text::NOTE,
            );
            evidence::check(&f.evidence, &format!("{field}.evidence"), &mut v);
            let deduction = match decimal::figure(&f.deduction) {
                Ok(d) if d < Decimal::ZERO => {
                    v.add(format!("{field}.deduction"), "must not be negative");
                    d
                }
                Ok(d) => d,
                Err(e) => {
                    v.add(format!("{field}.deduction"), e);
                    Decimal::ZERO
                }
            };
            findings.push(NewFinding {
                category: f.category.trim().to_string(),
                description: f.description.trim().to_string(),
                evidence: f.evidence.clone(),
                deduction,
                rect_due_ms: jixiao_runtime::time::optional(
                    &f.rectification_due_time,
                    &format!("{field}.rectification_due_time"),
                    &mut v,
                ),
            });
        }
        let group = match self.group_of(&cycle, &ins.unit, "inspection.unit").await {
            Ok(g) => Some(g),
            Err(Error::Invalid(x)) => {
                x.into_iter().for_each(|x| v.add(x.field, x.description));
                None
            }
            Err(e) => return Err(e),
        };
        v.into_result()?;
        let unit = ins.unit.trim_start_matches("units/").to_string();
        self.store_inspection(
            &p,
            &cycle,
            &unit,
            &group.unwrap_or_default(),
            kind,
            inspect_ms,
            &ins.inspectors,
            ins.place.trim(),
            ins.notes.trim(),
            findings,
            &req.request_id,
            &digest,
        )
        .await
    }

    async fn record_spot_check(
        &self,
        p: Principal,
        req: RecordSpotCheckRequest,
    ) -> Result<Inspection, Error> {
        p.require(RECORDERS, "record spot checks")?;
        let digest = idempotency::request_digest("RecordSpotCheck", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "RecordSpotCheck", &cycle).await?;
        let mut v = Violations::new();
        let inspect_ms = time::required(&req.inspect_time, "inspect_time", &mut v);
        v.check(
            !req.inspectors.is_empty(),
            "inspectors",
            "name at least one inspector",
        );
        for (i, who) in req.inspectors.iter().enumerate() {
            text::required(&mut v, format!("inspectors[{i}]"), who, text::LABEL);
        }
        v.check(!req.cases.is_empty(), "cases", "name at least one case");
        for (i, c) in req.cases.iter().enumerate() {
            text::required(
                &mut v,
                format!("cases[{i}].case_reference"),
                &c.case_reference,
                text::LABEL,
            );
            v.check(
                c.legal_limit_days > 0,
                format!("cases[{i}].legal_limit_days"),
                "must be positive",
            );
            v.check(
                c.actual_days >= 0,
                format!("cases[{i}].actual_days"),
                "must not be negative",
            );
        }
        let group = self.group_of(&cycle, &req.unit, "unit").await?;
        v.into_result()?;
        let scheme = self.scheme_of(&cycle, &group).await?;
        let mut findings = Vec::new();
        for case in &req.cases {
            for defect in rules::spot_check_defects(case) {
                let deduction = scheme_value(&scheme.spot_check_deductions, defect.scheme_key)
                    .ok_or_else(|| {
                        Error::precondition(
                            "SCHEME_INCOMPLETE",
                            format!(
                                "the scheme has no spot_check_deductions entry {:?}",
                                defect.scheme_key
                            ),
                        )
                    })?;
                findings.push(NewFinding {
                    category: defect.category.to_string(),
                    description: defect.description,
                    evidence: Vec::new(),
                    deduction,
                    rect_due_ms: None,
                });
            }
        }
        let notes = format!(
            "spot check of {} case(s): {}",
            req.cases.len(),
            req.cases
                .iter()
                .map(|c| c.case_reference.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let unit = req.unit.trim_start_matches("units/").to_string();
        self.store_inspection(
            &p,
            &cycle,
            &unit,
            &group,
            InspectionKind::SpotCheck,
            inspect_ms.unwrap_or_default(),
            &req.inspectors,
            "",
            &notes,
            findings,
            &req.request_id,
            &digest,
        )
        .await
    }

    /// Moves a finding along its lifecycle in one transaction with its audit
    /// record and the group's change counter.
    async fn transition(
        &self,
        p: &Principal,
        name: &str,
        action: &str,
        reason: &str,
        apply: impl FnOnce(&mut FindingRow) -> Result<(), Error>,
    ) -> Result<Finding, Error> {
        let mut tx = self.db.write.begin().await?;
        let mut f = load_finding(&mut tx, name).await?;
        let before = (f.state, f.rect_state);
        apply(&mut f)?;
        update_finding(&mut tx, &f).await?;
        // The group's figures list counting and contested findings with
        // their rectification state, so any move of either is a change.
        let change = if before != (f.state, f.rect_state) {
            Some(Changes::bump(&mut tx, &f.cycle, &f.group).await?)
        } else {
            None
        };
        audit::append(
            &mut tx,
            p,
            audit::Entry {
                action,
                resource: name,
                reason,
                detail: json!({"from": before.0.as_str_name(), "to": f.state.as_str_name(), "rectification": f.rect_state.as_str_name()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.changes.announce(change);
        f.proto.state = f.state as i32;
        f.proto.rectification_state = f.rect_state as i32;
        Ok(f.proto)
    }

    async fn confirm(&self, p: Principal, req: ConfirmFindingRequest) -> Result<Finding, Error> {
        p.require(&[Role::Office], "confirm findings")?;
        self.admit(&p, "ConfirmFinding", finding_cycle(&req.name)?)
            .await?;
        self.transition(&p, &req.name, "findings.confirm", "", |f| {
            check_state(f, FindingState::Confirmed)?;
            f.state = FindingState::Confirmed;
            Ok(())
        })
        .await
    }

    async fn contest(&self, p: Principal, req: ContestFindingRequest) -> Result<Finding, Error> {
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a contest needs a reason",
        )?;
        self.admit(&p, "ContestFinding", finding_cycle(&req.name)?)
            .await?;
        let unit_check = {
            let mut conn = self.db.read.acquire().await?;
            load_finding(&mut conn, &req.name).await?.unit
        };
        if !p.acts_for(Role::Unit, &unit_check) {
            return Err(Error::denied(format!(
                "only unit {unit_check} contests its findings"
            )));
        }
        let reason = req.reason.trim().to_string();
        self.transition(
            &p,
            &req.name,
            "findings.contest",
            &reason.clone(),
            move |f| {
                check_state(f, FindingState::Contested)?;
                f.state = FindingState::Contested;
                f.proto.contest_reason = reason;
                Ok(())
            },
        )
        .await
    }

    async fn decide(&self, p: Principal, req: DecideContestRequest) -> Result<Finding, Error> {
        p.require(&[Role::Office], "decide contests")?;
        self.admit(&p, "DecideContest", finding_cycle(&req.name)?)
            .await?;
        text::one("note", &req.note, text::NOTE, "a decision needs a note")?;
        let to = if req.uphold {
            FindingState::Upheld
        } else {
            FindingState::Withdrawn
        };
        let note = req.note.trim().to_string();
        self.transition(
            &p,
            &req.name,
            if req.uphold {
                "findings.uphold"
            } else {
                "findings.withdraw"
            },
            &note.clone(),
            move |f| {
                check_state(f, to)?;
                f.state = to;
                f.proto.decision_note = note;
                Ok(())
            },
        )
        .await
    }

    async fn report_rectification(
        &self,
        p: Principal,
        req: ReportRectificationRequest,
    ) -> Result<Finding, Error> {
        // The cycle's rectification deadline closes reports; a finding's own
        // due time does not: a late report is what the overdue list is for.
        self.admit(&p, "ReportRectification", finding_cycle(&req.name)?)
            .await?;
        let mut v = Violations::new();
        text::required(&mut v, "report", &req.report, text::NOTE);
        evidence::check(&req.evidence, "evidence", &mut v);
        v.into_result()?;
        let unit = {
            let mut conn = self.db.read.acquire().await?;
            load_finding(&mut conn, &req.name).await?.unit
        };
        p.require_office_or_unit(Role::Unit, &unit, "report rectifications")?;
        let report = req.report.trim().to_string();
        self.transition(&p, &req.name, "rectifications.report", "", move |f| {
            if !rules::counts(f.state)
                || !matches!(
                    f.rect_state,
                    RectificationState::Required | RectificationState::SentBack
                )
            {
                return Err(Error::precondition(
                    "INVALID_STATE",
                    format!(
                        "{} awaits no rectification report (finding {}, rectification {})",
                        f.proto.name,
                        f.state.as_str_name(),
                        f.rect_state.as_str_name()
                    ),
                ));
            }
            f.rect_state = RectificationState::Reported;
            f.proto.rectification_report = report;
            Ok(())
        })
        .await
    }

    async fn review_rectification(
        &self,
        p: Principal,
        req: ReviewRectificationRequest,
    ) -> Result<Finding, Error> {
        p.require(&[Role::Office], "review rectifications")?;
        self.admit(&p, "ReviewRectification", finding_cycle(&req.name)?)
            .await?;
        if !req.accept && req.note.trim().is_empty() {
            return Err(Error::invalid(
                "note",
                "say why the rectification is sent back",
            ));
        }
        let mut v = Violations::new();
        text::optional(&mut v, "note", &req.note, text::NOTE);
        v.into_result()?;
        let note = req.note.trim().to_string();
        let accept = req.accept;
        self.transition(
            &p,
            &req.name,
            if accept {
                "rectifications.accept"
            } else {
                "rectifications.send_back"
            },
            &note.clone(),
            move |f| {
                if f.rect_state != RectificationState::Reported {
                    return Err(Error::precondition(
                        "INVALID_STATE",
                        format!("{} has no rectification report to review", f.proto.name),
                    ));
                }
                f.rect_state = if accept {
                    RectificationState::Accepted
                } else {
                    RectificationState::SentBack
                };
                f.proto.decision_note = note;
                Ok(())
            },
        )
        .await
    }

    async fn create_item(
        &self,
        p: Principal,
        req: CreateSelfInspectionItemRequest,
    ) -> Result<SelfInspectionItem, Error> {
        let digest = idempotency::request_digest("CreateSelfInspectionItem", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "CreateSelfInspectionItem", &cycle).await?;
        let item = req.item.clone().unwrap_or_default();
        let unit = names::unit_id(&item.unit, "item.unit")?.to_string();
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!(
                "only unit {unit} reports its self-inspection"
            )));
        }
        let group = self.group_of(&cycle, &item.unit, "item.unit").await?;
        let scheme = self.scheme_of(&cycle, &group).await?;
        let mut v = Violations::new();
        v.check(
            scheme_value(&scheme.credit_points, &item.item_type).is_some(),
            "item.item_type",
            format!(
                "{:?} is not an item type of the scheme ({})",
                item.item_type,
                scheme
                    .credit_points
                    .iter()
                    .map(|k| k.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        text::required(&mut v, "item.problem", &item.problem, text::NOTE);
        text::required(&mut v, "item.action_taken", &item.action_taken, text::NOTE);
        for (i, a) in item.staff_actions.iter().enumerate() {
            v.check(
                STAFF_ACTIONS.contains(&a.kind.as_str()),
                format!("item.staff_actions[{i}].kind"),
                format!("must be one of {}", STAFF_ACTIONS.join(", ")),
            );
            v.check(
                a.count >= 1,
                format!("item.staff_actions[{i}].count"),
                "must be at least 1",
            );
        }
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let id = names::new_id("item");
        let actions: Vec<(String, i32)> = item
            .staff_actions
            .iter()
            .map(|a| (a.kind.clone(), a.count))
            .collect();
        let sql = format!(
            "INSERT INTO self_items ({ITEM_COLS}, create_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', '', $10)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(&id)
            .bind(&unit)
            .bind(&group)
            .bind(&item.item_type)
            .bind(item.problem.trim())
            .bind(item.action_taken.trim())
            .bind(serde_json::to_string(&actions).map_err(Error::internal)?)
            .bind(ItemState::Reported as i32 as i64)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let created = self.load_item(&mut tx, &cycle, &id).await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "self_items.create",
                resource: &created.name,
                reason: "",
                detail: json!({"item_type": created.item_type}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreateSelfInspectionItem",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn load_item(
        &self,
        conn: &mut AnyConnection,
        cycle: &str,
        id: &str,
    ) -> Result<SelfInspectionItem, Error> {
        let sql = format!("SELECT {ITEM_COLS} FROM self_items WHERE cycle_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cycle)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::not_found(format!("cycles/{cycle}/selfInspectionItems/{id}")))?;
        item_proto(&row)
    }

    async fn verify_item(
        &self,
        p: Principal,
        req: VerifySelfInspectionItemRequest,
    ) -> Result<SelfInspectionItem, Error> {
        p.require(&[Role::Office], "verify self-inspection items")?;
        let ids = names::parse(&req.name, "cycles/*/selfInspectionItems/*", "name")?;
        let (cycle, id) = (ids[0].to_string(), ids[1].to_string());
        self.admit(&p, "VerifySelfInspectionItem", &cycle).await?;
        if !req.verify && req.note.trim().is_empty() {
            return Err(Error::invalid("note", "say why the item is rejected"));
        }
        let mut v = Violations::new();
        text::optional(&mut v, "note", &req.note, text::NOTE);
        v.into_result()?;
        let (item, group) = {
            let mut conn = self.db.read.acquire().await?;
            let item = self.load_item(&mut conn, &cycle, &id).await?;
            let row =
                sqlx::query("SELECT group_id FROM self_items WHERE cycle_id = $1 AND id = $2")
                    .bind(&cycle)
                    .bind(&id)
                    .fetch_one(&mut *conn)
                    .await?;
            (item, row.try_get::<String, _>("group_id")?)
        };
        let credit = if req.verify {
            let scheme = self.scheme_of(&cycle, &group).await?;
            Some(
                scheme_value(&scheme.credit_points, &item.item_type).ok_or_else(|| {
                    Error::precondition(
                        "SCHEME_INCOMPLETE",
                        format!(
                            "the scheme no longer credits item type {:?}",
                            item.item_type
                        ),
                    )
                })?,
            )
        } else {
            None
        };
        let mut tx = self.db.write.begin().await?;
        let current = self.load_item(&mut tx, &cycle, &id).await?;
        if current.state != ItemState::Reported as i32 {
            return Err(Error::precondition(
                "INVALID_STATE",
                format!("{} was already decided", req.name),
            ));
        }
        let state = if req.verify {
            ItemState::Verified
        } else {
            ItemState::Rejected
        };
        sqlx::query("UPDATE self_items SET state = $1, credit = $2, note = $3 WHERE cycle_id = $4 AND id = $5")
            .bind(state as i32 as i64)
            .bind(credit.map(decimal::canonical).unwrap_or_default())
            .bind(req.note.trim())
            .bind(&cycle)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let change = if req.verify {
            Some(Changes::bump(&mut tx, &cycle, &group).await?)
        } else {
            None
        };
        let updated = self.load_item(&mut tx, &cycle, &id).await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: if req.verify {
                    "self_items.verify"
                } else {
                    "self_items.reject"
                },
                resource: &req.name,
                reason: req.note.trim(),
                detail: json!({"credit": credit.map(decimal::canonical)}),
            },
        )
        .await?;
        tx.commit().await?;
        self.changes.announce(change);
        Ok(updated)
    }

    async fn issue_document(
        &self,
        p: Principal,
        req: IssueDocumentRequest,
    ) -> Result<Document, Error> {
        p.require(RECORDERS, "issue documents")?;
        let digest = idempotency::request_digest("IssueDocument", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "IssueDocument", &cycle).await?;
        let doc = req.document.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(
            DocumentKind::try_from(doc.kind).is_ok_and(|k| k != DocumentKind::Unspecified),
            "document.kind",
            "must be SUPERVISION_RECOMMENDATION, EFFICIENCY_RECOMMENDATION or BULLETIN",
        );
        text::required(&mut v, "document.title", &doc.title, text::LABEL);
        text::required(&mut v, "document.body", &doc.body, text::BODY);
        let unit = match names::unit_id(&doc.unit, "document.unit") {
            Ok(u) => u.to_string(),
            Err(_) => {
                v.add("document.unit", "must be a unit, units/{unit}");
                String::new()
            }
        };
        let mut conn = self.db.read.acquire().await?;
        for (i, f) in doc.findings.iter().enumerate() {
            match load_finding(&mut conn, f).await {
                Ok(row) if row.unit == unit && row.cycle == cycle => {}
                Ok(_) => v.add(
                    format!("document.findings[{i}]"),
                    format!("{f} is not a finding of {} in cycles/{cycle}", doc.unit),
                ),
                Err(_) => v.add(
                    format!("document.findings[{i}]"),
                    format!("{f} is not a finding"),
                ),
            }
        }
        drop(conn);
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let id = names::new_id("doc");
        let now = now_ms();
        sqlx::query("INSERT INTO documents (cycle_id, id, kind, unit_id, title, body, findings, issue_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&cycle)
            .bind(&id)
            .bind(i64::from(doc.kind))
            .bind(&unit)
            .bind(doc.title.trim())
            .bind(doc.body.trim())
            .bind(serde_json::to_string(&doc.findings).map_err(Error::internal)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let issued = Document {
            name: format!("cycles/{cycle}/documents/{id}"),
            kind: doc.kind,
            unit: format!("units/{unit}"),
            title: doc.title.trim().into(),
            body: doc.body.trim().into(),
            findings: doc.findings.clone(),
            issue_time: Some(timestamp(now)),
        };
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "documents.issue",
                resource: &issued.name,
                reason: "",
                detail: json!({"unit": issued.unit, "title": issued.title}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "IssueDocument",
            &digest,
            &issued,
        )
        .await?;
        tx.commit().await?;
        Ok(issued)
    }
}

// ---------------------------------------------------------------- reads

/// Narrows a read to the caller's unit unless it reads everything:
/// `Ok(None)` for all units, `Ok(Some(unit))` for one.
fn scope(p: &Principal, requested: &str, what: &str) -> Result<Option<String>, Error> {
    let requested = if requested.is_empty() {
        None
    } else {
        Some(names::unit_id(requested, "unit")?.to_string())
    };
    if p.has_any(READERS) {
        return Ok(requested);
    }
    let own = p.unit.clone().filter(|_| p.has(Role::Unit));
    match (own, requested) {
        (Some(own), None) => Ok(Some(own)),
        (Some(own), Some(r)) if r == own => Ok(Some(own)),
        _ => Err(Error::denied(format!(
            "{} may only read its own unit's {what}",
            p.subject
        ))),
    }
}

impl InspectionsApi {
    async fn get_inspection(
        &self,
        p: Principal,
        req: GetInspectionRequest,
    ) -> Result<Inspection, Error> {
        let ids = names::parse(&req.name, "cycles/*/inspections/*", "name")?;
        let mut conn = self.db.read.acquire().await?;
        let sql =
            format!("SELECT {INSPECTION_COLS} FROM inspections WHERE cycle_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ids[0])
            .bind(ids[1])
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::not_found(req.name.clone()))?;
        let unit: String = row.try_get("unit_id")?;
        let reader = p.has_any(READERS);
        if !reader && !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!(
                "{} may not read {}",
                p.subject, req.name
            )));
        }
        inspection_proto(&mut conn, &row, !reader).await
    }

    async fn list_inspections(
        &self,
        p: Principal,
        req: ListInspectionsRequest,
    ) -> Result<ListInspectionsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "inspections")?;
        let pg = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        let sql = format!(
            "SELECT {INSPECTION_COLS} FROM inspections WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2)
             ORDER BY inspect_ms DESC, id DESC LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(unit.unwrap_or_default())
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&mut *conn)
            .await?;
        let hide = !p.has_any(READERS);
        let mut inspections = Vec::new();
        for r in &rows {
            inspections.push(inspection_proto(&mut conn, r, hide).await?);
        }
        let next_page_token = pg.next_token(&mut inspections);
        Ok(ListInspectionsResponse {
            inspections,
            next_page_token,
        })
    }

    async fn overdue(
        &self,
        p: Principal,
        req: ListOverdueRectificationsRequest,
    ) -> Result<ListOverdueRectificationsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "rectifications")?;
        let sql = format!(
            "SELECT {FINDING_COLS} FROM findings WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2)
             AND rect_due_ms IS NOT NULL AND rect_due_ms < $3 AND rect_state IN ($4, $5) AND state IN ($6, $7)
             ORDER BY rect_due_ms, inspection_id, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(unit.unwrap_or_default())
            .bind(now_ms())
            .bind(RectificationState::Required as i32 as i64)
            .bind(RectificationState::SentBack as i32 as i64)
            .bind(FindingState::Confirmed as i32 as i64)
            .bind(FindingState::Upheld as i32 as i64)
            .fetch_all(&self.db.read)
            .await?;
        let findings = rows
            .iter()
            .map(|r| finding_row(r).map(|f| f.proto))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListOverdueRectificationsResponse { findings })
    }

    async fn list_items(
        &self,
        p: Principal,
        req: ListSelfInspectionItemsRequest,
    ) -> Result<ListSelfInspectionItemsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "self-inspection items")?;
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let sql = format!(
            "SELECT {ITEM_COLS} FROM self_items WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2) ORDER BY create_ms, id LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(unit.unwrap_or_default())
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        let mut items = rows.iter().map(item_proto).collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut items);
        Ok(ListSelfInspectionItemsResponse {
            items,
            next_page_token,
        })
    }

    async fn list_documents(
        &self,
        p: Principal,
        req: ListDocumentsRequest,
    ) -> Result<ListDocumentsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "documents")?;
        let pg = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        let rows = sqlx::query(
            "SELECT id, kind, unit_id, title, body, findings, issue_ms FROM documents WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2)
             ORDER BY issue_ms DESC, id DESC LIMIT $3 OFFSET $4",
        )
        .bind(&cycle)
        .bind(unit.unwrap_or_default())
        .bind(pg.fetch_limit())
        .bind(pg.offset)
        .fetch_all(&self.db.read)
        .await?;
        let mut documents = rows
            .iter()
            .map(|r| {
                Ok(Document {
                    name: format!("cycles/{cycle}/documents/{}", r.try_get::<String, _>("id")?),
                    kind: r.try_get::<i64, _>("kind")? as i32,
                    unit: format!("units/{}", r.try_get::<String, _>("unit_id")?),
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                    findings: serde_json::from_str(&r.try_get::<String, _>("findings")?)
                        .map_err(Error::internal)?,
                    issue_time: Some(timestamp(r.try_get("issue_ms")?)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let next_page_token = pg.next_token(&mut documents);
        Ok(ListDocumentsResponse {
            documents,
            next_page_token,
        })
    }

    async fn adjustments(
        &self,
        p: Principal,
        req: GetGroupAdjustmentsRequest,
    ) -> Result<GroupAdjustments, Error> {
        p.require(
            &[Role::Office, Role::Evaluator, Role::Service],
            "read group adjustments",
        )?;
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        let revision = Changes::revision(&self.db, cycle, gid).await?;
        if unchanged_since(req.known_revision, revision) {
            return Ok(GroupAdjustments {
                group: req.group,
                revision,
                unchanged: true,
                ..Default::default()
            });
        }
        let group = self.plans.group(&req.group).await?;
        let scheme = self.plans.scheme(&req.group).await?;
        let cap = decimal::figure(&scheme.inspection_cap).unwrap_or(Decimal::from(5));
        let sql = format!(
            "SELECT {FINDING_COLS} FROM findings WHERE cycle_id = $1 AND group_id = $2 AND state IN ($3, $4, $5) ORDER BY inspection_id, position"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cycle)
            .bind(gid)
            .bind(FindingState::Confirmed as i32 as i64)
            .bind(FindingState::Upheld as i32 as i64)
            .bind(FindingState::Contested as i32 as i64)
            .fetch_all(&self.db.read)
            .await?;
        let mut deductions: HashMap<String, (Decimal, Vec<Finding>)> = HashMap::new();
        let mut contested: HashMap<String, Vec<Finding>> = HashMap::new();
        for r in &rows {
            let f = finding_row(r)?;
            let unit = format!("units/{}", f.unit);
            if f.state == FindingState::Contested {
                contested.entry(unit).or_default().push(f.proto);
            } else {
                let e = deductions.entry(unit).or_default();
                e.0 = e.0.saturating_add(f.deduction);
                e.1.push(f.proto);
            }
        }
        let rows = sqlx::query("SELECT id, unit_id, item_type, problem, credit FROM self_items WHERE cycle_id = $1 AND group_id = $2 AND state = $3 ORDER BY create_ms, id")
            .bind(cycle)
            .bind(gid)
            .bind(ItemState::Verified as i32 as i64)
            .fetch_all(&self.db.read)
            .await?;
        let mut credits: BTreeMap<String, (Decimal, Vec<SelfInspectionItem>)> = BTreeMap::new();
        for r in &rows {
            let unit = format!("units/{}", r.try_get::<String, _>("unit_id")?);
            let credit = decimal::from_db(&r.try_get::<String, _>("credit")?)?;
            let e = credits.entry(unit.clone()).or_default();
            e.0 = e.0.saturating_add(credit);
            e.1.push(SelfInspectionItem {
                name: format!(
                    "cycles/{cycle}/selfInspectionItems/{}",
                    r.try_get::<String, _>("id")?
                ),
                unit,
                item_type: r.try_get("item_type")?,
                problem: r.try_get("problem")?,
                state: ItemState::Verified as i32,
                credit: Some(to_proto(credit)),
                ..Default::default()
            });
        }
        let units = group
            .units
            .iter()
            .map(|u| {
                let (d, counting) = deductions.remove(u).unwrap_or_default();
                let (c, items) = credits.remove(u).unwrap_or_default();
                UnitAdjustment {
                    unit: u.clone(),
                    deductions: Some(to_proto(d)),
                    credits: Some(to_proto(c)),
                    adjustment: Some(to_proto(rules::adjustment(d, c, cap))),
                    findings: counting.iter().map(|f| f.name.clone()).collect(),
                    items: items.iter().map(|i| i.name.clone()).collect(),
                    counting_findings: counting,
                    contested_findings: contested.remove(u).unwrap_or_default(),
                    verified_items: items,
                }
            })
            .collect();
        Ok(GroupAdjustments {
            group: req.group,
            units,
            revision,
            unchanged: false,
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

type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<AdjustmentChange, Status>> + Send>>;

#[tonic::async_trait]
impl InspectionsService for InspectionsApi {
    async fn create_inspection(&self, req: Request<CreateInspectionRequest>) -> Reply<Inspection> {
        checked!(DOMAIN, self, req, create_inspection)
    }
    async fn get_inspection(&self, req: Request<GetInspectionRequest>) -> Reply<Inspection> {
        checked!(DOMAIN, self, req, get_inspection)
    }
    async fn list_inspections(
        &self,
        req: Request<ListInspectionsRequest>,
    ) -> Reply<ListInspectionsResponse> {
        checked!(DOMAIN, self, req, list_inspections)
    }
    async fn record_spot_check(&self, req: Request<RecordSpotCheckRequest>) -> Reply<Inspection> {
        checked!(DOMAIN, self, req, record_spot_check)
    }
    async fn confirm_finding(&self, req: Request<ConfirmFindingRequest>) -> Reply<Finding> {
        checked!(DOMAIN, self, req, confirm)
    }
    async fn contest_finding(&self, req: Request<ContestFindingRequest>) -> Reply<Finding> {
        checked!(DOMAIN, self, req, contest)
    }
    async fn decide_contest(&self, req: Request<DecideContestRequest>) -> Reply<Finding> {
        checked!(DOMAIN, self, req, decide)
    }
    async fn report_rectification(
        &self,
        req: Request<ReportRectificationRequest>,
    ) -> Reply<Finding> {
        checked!(DOMAIN, self, req, report_rectification)
    }
    async fn review_rectification(
        &self,
        req: Request<ReviewRectificationRequest>,
    ) -> Reply<Finding> {
        checked!(DOMAIN, self, req, review_rectification)
    }
    async fn list_overdue_rectifications(
        &self,
        req: Request<ListOverdueRectificationsRequest>,
    ) -> Reply<ListOverdueRectificationsResponse> {
        checked!(DOMAIN, self, req, overdue)
    }
    async fn create_self_inspection_item(
        &self,
        req: Request<CreateSelfInspectionItemRequest>,
    ) -> Reply<SelfInspectionItem> {
        checked!(DOMAIN, self, req, create_item)
    }
    async fn verify_self_inspection_item(
        &self,
        req: Request<VerifySelfInspectionItemRequest>,
    ) -> Reply<SelfInspectionItem> {
        checked!(DOMAIN, self, req, verify_item)
    }
    async fn list_self_inspection_items(
        &self,
        req: Request<ListSelfInspectionItemsRequest>,
    ) -> Reply<ListSelfInspectionItemsResponse> {
        checked!(DOMAIN, self, req, list_items)
    }
    async fn issue_document(&self, req: Request<IssueDocumentRequest>) -> Reply<Document> {
        checked!(DOMAIN, self, req, issue_document)
    }
    async fn list_documents(
        &self,
        req: Request<ListDocumentsRequest>,
    ) -> Reply<ListDocumentsResponse> {
        checked!(DOMAIN, self, req, list_documents)
    }
    async fn get_group_adjustments(
        &self,
        req: Request<GetGroupAdjustmentsRequest>,
    ) -> Reply<GroupAdjustments> {
        checked!(DOMAIN, self, req, adjustments)
    }

    type WatchAdjustmentChangesStream = ChangeStream;

    async fn watch_adjustment_changes(
        &self,
        req: Request<WatchAdjustmentChangesRequest>,
    ) -> Reply<ChangeStream> {
        let p = principal(&req)?;
        let run = async {
            let changes = self
                .changes
                .watch_for(&self.db, &p, &req.get_ref().cycle)
                .await?;
            let stream = changes.map(|c| {
                Ok(AdjustmentChange {
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
