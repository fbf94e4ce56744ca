//! The lifecycle of a finding and of its rectification (DOMAIN.md §7): the
//! office confirms, the unit contests, the office decides; a finding that
//! needs rectification is reported by the unit and reviewed by the office;
//! overdue rectifications are listed.

use jixiao_proto::inspections::{
    ConfirmFindingRequest, ContestFindingRequest, DecideContestRequest, Finding, FindingState,
    ListOverdueRectificationsRequest, ListOverdueRectificationsResponse, RectificationState,
    ReportRectificationRequest, ReviewRectificationRequest,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, evidence, names, text,
    time::now_ms,
    write::{self, Key},
};
use serde_json::json;

use crate::{
    api::{InspectionsApi, scope},
    rules::{self, FINDINGS, RECTIFICATIONS},
    store::{self, FindingRow},
};

/// A finding's name split into its ids.
fn finding_ids(name: &str) -> Result<[&str; 3], Error> {
    let ids = names::parse(name, "cycles/*/inspections/*/findings/*", "name")?;
    Ok([ids[0], ids[1], ids[2]])
}

impl InspectionsApi {
    /// Moves a finding along its lifecycle in one write with its audit
    /// record; any move of its state or its rectification changes the
    /// group's figures (they list counting and contested findings with
    /// their rectification state).
    async fn transition(
        &self,
        p: &Principal,
        method: &'static str,
        name: &str,
        action: &'static str,
        reason: &str,
        apply: impl FnOnce(&mut FindingRow) -> Result<(), Error>,
    ) -> Result<Finding, Error> {
        let ids = finding_ids(name)?;
        write::write(&self.db, Some(&self.changes), p, Key::none(method), async |w| {
            let mut f = store::finding(w.conn, ids, name).await?;
            let before = (f.state, f.rect_state);
            apply(&mut f)?;
            store::update_finding(w.conn, &f).await?;
            if before != (f.state, f.rect_state) {
                w.changed(&f.cycle, &f.group);
            }
            w.audit(
                action,
                name,
                reason,
                json!({"from": before.0.as_str_name(), "to": f.state.as_str_name(), "rectification": f.rect_state.as_str_name()}),
            );
            f.proto.state = f.state as i32;
            f.proto.rectification_state = f.rect_state as i32;
            Ok(f.proto)
        })
        .await
    }

    /// The unit a finding is about, read before the write to authorise it
    /// (`None` when there is no such finding: the phase gate answers
    /// first, then NOT_FOUND).
    async fn unit_of(&self, name: &str) -> Result<Option<String>, Error> {
        let mut conn = self.db.read.acquire().await?;
        match store::finding(&mut conn, finding_ids(name)?, name).await {
            Ok(f) => Ok(Some(f.unit)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn confirm(
        &self,
        p: Principal,
        req: ConfirmFindingRequest,
    ) -> Result<Finding, Error> {
        p.require(&[Role::Office], "confirm findings")?;
        self.admit(&p, "ConfirmFinding", finding_ids(&req.name)?[0])
            .await?;
        let to = FindingState::Confirmed;
        self.transition(
            &p,
            "ConfirmFinding",
            &req.name,
            "findings.confirm",
            "",
            |f| {
                FINDINGS.require_move(&f.proto.name, f.state, to)?;
                f.state = to;
                Ok(())
            },
        )
        .await
    }

    pub(crate) async fn contest(
        &self,
        p: Principal,
        req: ContestFindingRequest,
    ) -> Result<Finding, Error> {
        let reason = text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a contest needs a reason",
        )?;
        // Whose finding it is comes before when: another unit learns
        // nothing of this one's deadlines.
        if let Some(unit) = self.unit_of(&req.name).await?
            && !p.acts_for(Role::Unit, &unit)
        {
            return Err(Error::denied(format!(
                "only unit {unit} contests its findings"
            )));
        }
        self.admit(&p, "ContestFinding", finding_ids(&req.name)?[0])
            .await?;
        let to = FindingState::Contested;
        let note = reason.clone();
        self.transition(
            &p,
            "ContestFinding",
            &req.name,
            "findings.contest",
            &reason,
            |f| {
                FINDINGS.require_move(&f.proto.name, f.state, to)?;
                f.state = to;
                f.proto.contest_reason = note;
                Ok(())
            },
        )
        .await
    }

    pub(crate) async fn decide(
        &self,
        p: Principal,
        req: DecideContestRequest,
    ) -> Result<Finding, Error> {
        p.require(&[Role::Office], "decide contests")?;
        self.admit(&p, "DecideContest", finding_ids(&req.name)?[0])
            .await?;
        let note = text::one("note", &req.note, text::NOTE, "a decision needs a note")?;
        let (to, action) = if req.uphold {
            (FindingState::Upheld, "findings.uphold")
        } else {
            (FindingState::Withdrawn, "findings.withdraw")
        };
        let kept = note.clone();
        self.transition(&p, "DecideContest", &req.name, action, &note, |f| {
            FINDINGS.require_move(&f.proto.name, f.state, to)?;
            f.state = to;
            f.proto.decision_note = kept;
            Ok(())
        })
        .await
    }

    pub(crate) async fn report_rectification(
        &self,
        p: Principal,
        req: ReportRectificationRequest,
    ) -> Result<Finding, Error> {
        if let Some(unit) = self.unit_of(&req.name).await? {
            p.require_office_or_unit(Role::Unit, &unit, "report rectifications")?;
        }
        // The cycle's rectification deadline closes reports; a finding's own
        // due time does not: a late report is what the overdue list is for.
        self.admit(&p, "ReportRectification", finding_ids(&req.name)?[0])
            .await?;
        let mut v = Violations::new();
        text::required(&mut v, "report", &req.report, text::NOTE);
        evidence::check(&req.evidence, "evidence", &mut v);
        v.into_result()?;
        let report = req.report.trim().to_string();
        let to = RectificationState::Reported;
        self.transition(
            &p,
            "ReportRectification",
            &req.name,
            "rectifications.report",
            "",
            |f| {
                if !rules::counts(f.state) {
                    return Err(Error::precondition(
                        jixiao_runtime::Shared::InvalidState,
                        format!(
                            "{} is {}; only a counting finding is rectified",
                            f.proto.name,
                            f.state.as_str_name()
                        ),
                    ));
                }
                RECTIFICATIONS.require_move(&f.proto.name, f.rect_state, to)?;
                f.rect_state = to;
                f.proto.rectification_report = report;
                Ok(())
            },
        )
        .await
    }

    pub(crate) async fn review_rectification(
        &self,
        p: Principal,
        req: ReviewRectificationRequest,
    ) -> Result<Finding, Error> {
        p.require(&[Role::Office], "review rectifications")?;
        self.admit(&p, "ReviewRectification", finding_ids(&req.name)?[0])
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
        let (to, action) = if req.accept {
            (RectificationState::Accepted, "rectifications.accept")
        } else {
            (RectificationState::SentBack, "rectifications.send_back")
        };
        let kept = note.clone();
        self.transition(&p, "ReviewRectification", &req.name, action, &note, |f| {
            RECTIFICATIONS.require_move(&f.proto.name, f.rect_state, to)?;
            f.rect_state = to;
            f.proto.decision_note = kept;
            Ok(())
        })
        .await
    }

    pub(crate) async fn overdue(
        &self,
        p: Principal,
        req: ListOverdueRectificationsRequest,
    ) -> Result<ListOverdueRectificationsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "rectifications")?;
        let mut conn = self.db.read.acquire().await?;
        let findings =
            store::overdue_findings(&mut conn, &cycle, &unit.unwrap_or_default(), now_ms())
                .await?
                .into_iter()
                .map(|f| f.proto)
                .collect();
        Ok(ListOverdueRectificationsResponse { findings })
    }
}
