//! Performance plans (DOMAIN.md §4): a unit drafts and submits its plan,
//! the office approves or returns it, an approved plan is amended with a
//! reason; every submission is a version.

use jixiao_proto::plans::{
    AmendPlanRequest, ApprovePlanRequest, CreatePlanRequest, GetPlanRequest, ListPlansRequest,
    ListPlansResponse, LockScope, Plan, PlanState, ReturnPlanRequest, SubmitPlanRequest,
    UpdatePlanRequest, VersionOutcome,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, idempotency, names, text,
    time::now_ms,
    write::{self, Key},
};
use serde_json::json;

use crate::{api::*, rules, store::*};

impl PlansApi {
    pub(crate) async fn create_plan(
        &self,
        p: Principal,
        req: CreatePlanRequest,
    ) -> Result<Plan, Error> {
        let digest = idempotency::request_digest("CreatePlan", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let mut plan = req.plan.clone().unwrap_or_default();
        let unit = names::unit_id(&plan.unit, "plan.unit")?.to_string();
        p.require_office_or_unit(Role::Unit, &unit, "create a plan")?;
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "CreatePlan",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        admit(&self.db, &p, "CreatePlan", &cycle, Some(&unit)).await?;
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let gid = group_of(w.conn, &cycle, &unit).await?.ok_or_else(|| {
                Error::invalid(
                    "plan.unit",
                    format!("units/{unit} is not in any group of cycles/{cycle}"),
                )
            })?;
            let g = load_settings(w.conn, &cycle, &gid).await?;
            let framework = Self::framework_of(&g)?;
            let mut v = Violations::new();
            rules::check_plan(
                &mut plan,
                &framework,
                &format!("units/{unit}"),
                false,
                &mut v,
            );
            v.into_result()?;
            if plan_exists(w.conn, &cycle, &unit).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/plans/{unit}"),
                });
            }
            let mut targets = plan.targets.clone();
            rules::apply_assigned_targets(&mut targets, &framework, &format!("units/{unit}"));
            let content = Plan {
                targets,
                goals: plan.goals.clone(),
                ..Default::default()
            };
            let now = now_ms();
            insert_plan(w.conn, &cycle, &unit, &gid, &content, now).await?;
            let created = load_plan(w.conn, &cycle, &unit).await?.proto();
            w.audit(
                "plans.create",
                &created.name,
                "",
                json!({"targets": created.targets.len(), "goals": created.goals.len()}),
            );
            Ok(created)
        })
        .await
    }

    pub(crate) fn may_read_plan(p: &Principal, unit: &str) -> Result<(), Error> {
        if p.has_any(PLAN_READERS) || p.acts_for(Role::Unit, unit) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{} may not read the plan of unit {unit}",
                p.subject
            )))
        }
    }

    pub(crate) async fn get_plan(&self, p: Principal, req: GetPlanRequest) -> Result<Plan, Error> {
        let (cycle, unit) = plan_name(&req.name, "name")?;
        Self::may_read_plan(&p, &unit)?;
        let mut conn = self.db.read.acquire().await?;
        Ok(load_plan(&mut conn, &cycle, &unit).await?.proto())
    }

    pub(crate) async fn list_plans(
        &self,
        p: Principal,
        req: ListPlansRequest,
    ) -> Result<ListPlansResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A unit lists only its own plan; readers list all.
        let only_unit = if p.has_any(PLAN_READERS) {
            None
        } else if p.has(Role::Unit) {
            Some(p.own_unit()?.to_string())
        } else {
            return Err(Error::denied(format!("{} may not list plans", p.subject)));
        };
        let group = if req.group.is_empty() {
            None
        } else {
            Some(names::group_name(&req.group, "group")?.1.to_string())
        };
        if PlanState::try_from(req.state).is_err() {
            return Err(Error::invalid(
                "state",
                "must be a plan state, or unset for every state",
            ));
        }
        let pg = page(req.page_size, &req.page_token, 100, 1000)?;
        let mut conn = self.db.read.acquire().await?;
        let filter = PlanFilter {
            cycle: &cycle,
            group: &group.unwrap_or_default(),
            unit: &only_unit.unwrap_or_default(),
            state: req.state,
        };
        let mut plans = plans(&mut conn, &filter, &pg).await?;
        let next_page_token = pg.next_token(&mut plans);
        Ok(ListPlansResponse {
            plans,
            next_page_token,
        })
    }

    pub(crate) async fn update_plan(
        &self,
        p: Principal,
        req: UpdatePlanRequest,
    ) -> Result<Plan, Error> {
        let mut incoming = req.plan.unwrap_or_default();
        let (cycle, unit) = plan_name(&incoming.name, "plan.name")?;
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!("only unit {unit} edits its plan")));
        }
        admit(&self.db, &p, "UpdatePlan", &cycle, Some(&unit)).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "name the fields to change: targets, goals",
            ));
        }
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("UpdatePlan"),
            async |w| {
                let mut plan = load_plan(w.conn, &cycle, &unit).await?;
                check_etag(&plan, &incoming.etag)?;
                require_state(&plan, &[PlanState::Draft, PlanState::Returned], "edit it")?;
                let g = load_settings(w.conn, &cycle, &plan.group).await?;
                let framework = Self::framework_of(&g)?;
                let mut v = Violations::new();
                rules::check_plan(
                    &mut incoming,
                    &framework,
                    &format!("units/{unit}"),
                    false,
                    &mut v,
                );
                for path in &paths {
                    match path.as_str() {
                        "targets" => {
                            let mut targets = incoming.targets.clone();
                            rules::apply_assigned_targets(
                                &mut targets,
                                &framework,
                                &format!("units/{unit}"),
                            );
                            plan.content.targets = targets;
                        }
                        "goals" => plan.content.goals = incoming.goals.clone(),
                        other => v.add(
                            "update_mask",
                            format!("{other:?} cannot be updated; use targets or goals"),
                        ),
                    }
                }
                v.into_result()?;
                save_plan(w.conn, &mut plan).await?;
                let updated = plan.proto();
                w.audit("plans.update", &updated.name, "", json!({"fields": paths}));
                Ok(updated)
            },
        )
        .await
    }

    pub(crate) async fn submit_plan(
        &self,
        p: Principal,
        req: SubmitPlanRequest,
    ) -> Result<Plan, Error> {
        let digest = idempotency::request_digest("SubmitPlan", &req);
        let (cycle, unit) = plan_name(&req.name, "name")?;
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!("only unit {unit} submits its plan")));
        }
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "SubmitPlan",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        let opened_late = admit(&self.db, &p, "SubmitPlan", &cycle, Some(&unit)).await?;
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let c = load_cycle(w.conn, &cycle).await?;
            let mut plan = load_plan(w.conn, &cycle, &unit).await?;
            check_etag(&plan, &req.etag)?;
            require_move(&plan, PlanState::Submitted)?;
            let g = load_settings(w.conn, &cycle, &plan.group).await?;
            let framework = Self::framework_of(&g)?;
            let mut content = plan.content.clone();
            let mut v = Violations::new();
            rules::check_plan(
                &mut content,
                &framework,
                &format!("units/{unit}"),
                true,
                &mut v,
            );
            v.into_result()?;
            // An amendment of an approved plan is the office's decision to take,
            // not a deadline matter (late only when a lock exception let it in
            // outside its phases); a first plan obeys the plan deadline.
            let late = if plan.amending {
                opened_late
            } else {
                let (w, _) = window(w.conn, &c, &unit, LockScope::Plan).await?;
                if !w.open {
                    return Err(closed_error(&c, LockScope::Plan, &w));
                }
                w.late
            };
            plan.version += 1;
            plan.state = PlanState::Submitted;
            plan.late = late;
            plan.return_reason.clear();
            plan.content = content;
            insert_version(w.conn, &plan, &p.subject, late, now_ms()).await?;
            save_plan(w.conn, &mut plan).await?;
            let submitted = plan.proto();
            w.audit(
                "plans.submit",
                &submitted.name,
                &plan.amend_reason,
                json!({"version": plan.version, "late": late, "amendment": plan.amending}),
            );
            changed_name(w, &submitted.group);
            Ok(submitted)
        })
        .await
    }

    pub(crate) async fn approve_plan(
        &self,
        p: Principal,
        req: ApprovePlanRequest,
    ) -> Result<Plan, Error> {
        p.require(&[Role::Office], "approve plans")?;
        let (cycle, unit) = plan_name(&req.name, "name")?;
        admit(&self.db, &p, "ApprovePlan", &cycle, Some(&unit)).await?;
        let mut v = Violations::new();
        text::optional(&mut v, "comment", &req.comment, text::NOTE);
        v.into_result()?;
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("ApprovePlan"),
            async |w| {
                let mut plan = load_plan(w.conn, &cycle, &unit).await?;
                check_etag(&plan, &req.etag)?;
                require_move(&plan, PlanState::Approved)?;
                decide_version(
                    w.conn,
                    &p,
                    &plan,
                    VersionOutcome::Approved,
                    req.comment.trim(),
                )
                .await?;
                if plan.approved_version > 0 {
                    supersede_version(w.conn, &cycle, &unit, plan.approved_version).await?;
                }
                plan.state = PlanState::Approved;
                plan.approved_version = plan.version;
                plan.amending = false;
                plan.amend_reason.clear();
                save_plan(w.conn, &mut plan).await?;
                let approved = plan.proto();
                w.audit(
                    "plans.approve",
                    &approved.name,
                    req.comment.trim(),
                    json!({"version": plan.version}),
                );
                changed_name(w, &approved.group);
                Ok(approved)
            },
        )
        .await
    }

    pub(crate) async fn return_plan(
        &self,
        p: Principal,
        req: ReturnPlanRequest,
    ) -> Result<Plan, Error> {
        p.require(&[Role::Office], "return plans")?;
        let (cycle, unit) = plan_name(&req.name, "name")?;
        admit(&self.db, &p, "ReturnPlan", &cycle, Some(&unit)).await?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a returned plan needs a reason",
        )?;
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("ReturnPlan"),
            async |w| {
                let mut plan = load_plan(w.conn, &cycle, &unit).await?;
                check_etag(&plan, &req.etag)?;
                require_move(&plan, PlanState::Returned)?;
                decide_version(
                    w.conn,
                    &p,
                    &plan,
                    VersionOutcome::Returned,
                    req.reason.trim(),
                )
                .await?;
                plan.state = PlanState::Returned;
                plan.return_reason = req.reason.trim().to_string();
                save_plan(w.conn, &mut plan).await?;
                let returned = plan.proto();
                w.audit(
                    "plans.return",
                    &returned.name,
                    req.reason.trim(),
                    json!({"version": plan.version}),
                );
                changed_name(w, &returned.group);
                Ok(returned)
            },
        )
        .await
    }

    pub(crate) async fn amend_plan(
        &self,
        p: Principal,
        req: AmendPlanRequest,
    ) -> Result<Plan, Error> {
        let (cycle, unit) = plan_name(&req.name, "name")?;
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!("only unit {unit} amends its plan")));
        }
        admit(&self.db, &p, "AmendPlan", &cycle, Some(&unit)).await?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "an amendment needs a reason",
        )?;
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("AmendPlan"),
            async |w| {
                let mut plan = load_plan(w.conn, &cycle, &unit).await?;
                check_etag(&plan, &req.etag)?;
                require_move(&plan, PlanState::Draft)?;
                plan.state = PlanState::Draft;
                plan.amending = true;
                plan.amend_reason = req.reason.trim().to_string();
                save_plan(w.conn, &mut plan).await?;
                let amended = plan.proto();
                w.audit(
                    "plans.amend",
                    &amended.name,
                    req.reason.trim(),
                    json!({"approved_version": plan.approved_version}),
                );
                changed_name(w, &amended.group);
                Ok(amended)
            },
        )
        .await
    }
}
