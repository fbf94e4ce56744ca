//! Inspection records and licensing spot checks (DOMAIN.md §7): recorded
//! with their findings in DRAFT, read by the office's side in full and by
//! the inspected unit without drafts.

use jixiao_proto::inspections::{
    CreateInspectionRequest, GetInspectionRequest, Inspection, InspectionKind,
    ListInspectionsRequest, ListInspectionsResponse, RecordSpotCheckRequest,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, decimal, evidence, idempotency, names,
    paging::Page,
    text, time,
    time::now_ms,
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    api::{InspectionsApi, READERS, RECORDERS, scheme_value, scope},
    rules,
    store::{self, NewFinding, NewInspection},
};

/// A validated inspection to store.
struct Recorded<'a> {
    cycle: &'a str,
    /// The caller's id, or the one derived from its request.
    id: String,
    unit: &'a str,
    group: &'a str,
    kind: InspectionKind,
    inspect_ms: i64,
    inspectors: &'a [String],
    place: &'a str,
    notes: &'a str,
    findings: Vec<NewFinding>,
}

impl InspectionsApi {
    async fn store_inspection(
        &self,
        p: &Principal,
        key: Key<'_>,
        r: Recorded<'_>,
    ) -> Result<Inspection, Error> {
        write::write(&self.db, None, p, key, async |w| {
            let id = r.id.clone();
            if store::inspection(w.conn, r.cycle, &id).await?.is_some() {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{}/inspections/{id}", r.cycle),
                });
            }
            store::insert_inspection(
                w.conn,
                &NewInspection {
                    cycle: r.cycle,
                    id: &id,
                    unit: r.unit,
                    kind: r.kind as i32,
                    inspect_ms: r.inspect_ms,
                    inspectors: r.inspectors,
                    place: r.place,
                    notes: r.notes,
                    recorded_by: &p.subject,
                    create_ms: now_ms(),
                },
            )
            .await?;
            store::insert_findings(w.conn, r.cycle, &id, r.unit, r.group, &r.findings).await?;
            let record = store::inspection(w.conn, r.cycle, &id)
                .await?
                .ok_or_else(|| Error::not_found(format!("cycles/{}/inspections/{id}", r.cycle)))?;
            let created = store::inspection_proto(w.conn, record, false).await?;
            w.audit(
                "inspections.create",
                &created.name,
                "",
                json!({"unit": created.unit, "kind": r.kind.as_str_name(), "findings": created.findings.iter().map(|f| json!({"category": f.category, "deduction": f.deduction.as_ref().map(|d| &d.value)})).collect::<Vec<_>>()}),
            );
            Ok(created)
        })
        .await
    }

    pub(crate) async fn create_inspection(
        &self,
        p: Principal,
        req: CreateInspectionRequest,
    ) -> Result<Inspection, Error> {
        p.require(RECORDERS, "record inspections")?;
        let digest = idempotency::request_digest("CreateInspection", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "CreateInspection",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "CreateInspection", &cycle).await?;
        let ins = req.inspection.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = names::chosen_id(
            "insp",
            &req.inspection_id,
            "inspection_id",
            &p.subject,
            &req.request_id,
            &mut v,
        );
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
        let findings = ins
            .findings
            .iter()
            .enumerate()
            .map(|(i, f)| new_finding(f, &format!("inspection.findings[{i}]"), &mut v))
            .collect();
        let group = match self.group_of(&cycle, &ins.unit, "inspection.unit").await {
            Ok(g) => Some(g),
            Err(Error::Invalid(x)) => {
                x.into_iter().for_each(|x| v.add(x.field, x.description));
                None
            }
            Err(e) => return Err(e),
        };
        v.into_result()?;
        let unit = ins.unit.trim_start_matches("units/");
        let recorded = Recorded {
            cycle: &cycle,
            id,
            unit,
            group: &group.unwrap_or_default(),
            kind,
            inspect_ms,
            inspectors: &ins.inspectors,
            place: ins.place.trim(),
            notes: ins.notes.trim(),
            findings,
        };
        self.store_inspection(&p, key, recorded).await
    }

    pub(crate) async fn record_spot_check(
        &self,
        p: Principal,
        req: RecordSpotCheckRequest,
    ) -> Result<Inspection, Error> {
        p.require(RECORDERS, "record spot checks")?;
        let digest = idempotency::request_digest("RecordSpotCheck", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "RecordSpotCheck",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "RecordSpotCheck", &cycle).await?;
        let mut v = Violations::new();
        let id = names::chosen_id(
            "insp",
            &req.inspection_id,
            "inspection_id",
            &p.subject,
            &req.request_id,
            &mut v,
        );
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
                            crate::Reason::SchemeIncomplete,
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
        let recorded = Recorded {
            cycle: &cycle,
            id,
            unit: req.unit.trim_start_matches("units/"),
            group: &group,
            kind: InspectionKind::SpotCheck,
            inspect_ms: inspect_ms.unwrap_or_default(),
            inspectors: &req.inspectors,
            place: "",
            notes: &notes,
            findings,
        };
        self.store_inspection(&p, key, recorded).await
    }

    pub(crate) async fn get_inspection(
        &self,
        p: Principal,
        req: GetInspectionRequest,
    ) -> Result<Inspection, Error> {
        let ids = names::parse(&req.name, "cycles/*/inspections/*", "name")?;
        let mut conn = self.db.read.acquire().await?;
        let record = store::inspection(&mut conn, ids[0], ids[1])
            .await?
            .ok_or_else(|| Error::not_found(req.name.clone()))?;
        let reader = p.has_any(READERS);
        if !reader && !p.acts_for(Role::Unit, &record.unit_id) {
            return Err(Error::denied(format!(
                "{} may not read {}",
                p.subject, req.name
            )));
        }
        store::inspection_proto(&mut conn, record, !reader).await
    }

    pub(crate) async fn list_inspections(
        &self,
        p: Principal,
        req: ListInspectionsRequest,
    ) -> Result<ListInspectionsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "inspections")?;
        let pg = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        let records = store::inspections(&mut conn, &cycle, &unit.unwrap_or_default(), &pg).await?;
        let hide = !p.has_any(READERS);
        let mut inspections = Vec::with_capacity(records.len());
        for r in records {
            inspections.push(store::inspection_proto(&mut conn, r, hide).await?);
        }
        let next_page_token = pg.next_token(&mut inspections);
        Ok(ListInspectionsResponse {
            inspections,
            next_page_token,
        })
    }
}

/// Checks one finding of a new inspection, recording what is wrong under
/// `field`.
fn new_finding(
    f: &jixiao_proto::inspections::Finding,
    field: &str,
    v: &mut Violations,
) -> NewFinding {
    text::required(v, format!("{field}.category"), &f.category, text::LABEL);
    text::required(
        v,
        format!("{field}.description"),
        &f.description,
        text::NOTE,
    );
    evidence::check(&f.evidence, &format!("{field}.evidence"), v);
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
    NewFinding {
        category: f.category.trim().to_string(),
        description: f.description.trim().to_string(),
        evidence: f.evidence.clone(),
        deduction,
        rect_due_ms: time::optional(
            &f.rectification_due_time,
            &format!("{field}.rectification_due_time"),
            v,
        ),
    }
}
