//! Cycles (DOMAIN.md §2): created by the office with their deadlines, moved
//! forward through their phases, read by everyone with business in them.

use jixiao_proto::plans::{
    CreateCycleRequest, Cycle, GetCycleRequest, ListCyclesRequest, ListCyclesResponse, Phase,
    SetCyclePhaseRequest, UpdateCycleRequest,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, idempotency, names, text,
    time::{millis, now_ms},
    write::{self, Key},
};
use serde_json::json;

use crate::{api::*, store::*};

impl PlansApi {
    pub(crate) async fn create_cycle(
        &self,
        p: Principal,
        req: CreateCycleRequest,
    ) -> Result<Cycle, Error> {
        p.require(&[Role::Office], "create cycles")?;
        let digest = idempotency::request_digest("CreateCycle", &req);
        let mut v = Violations::new();
        v.check(names::valid_id(&req.cycle_id), "cycle_id", names::ID_RULE);
        let cycle = req.cycle.clone().unwrap_or_default();
        v.check(
            (2000..=2100).contains(&cycle.year),
            "cycle.year",
            "must be a year between 2000 and 2100",
        );
        text::required(&mut v, "cycle.title", &cycle.title, text::LABEL);
        let d = cycle.deadlines.unwrap_or_default();
        deadlines_ms(&d, "cycle.deadlines", &mut v);
        v.into_result()?;
        let key = Key {
            method: "CreateCycle",
            request_id: &req.request_id,
            digest: &digest,
        };
        write::write(&self.db, None, &p, key, async |w| {
            if cycle_exists(w.conn, &req.cycle_id).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{}", req.cycle_id),
                });
            }
            let ms = |t: &Option<prost_types::Timestamp>| t.as_ref().map(millis);
            let deadlines = [
                ms(&d.plan_deadline),
                ms(&d.data_deadline),
                ms(&d.review_close),
                ms(&d.rectification_deadline),
            ];
            insert_cycle(
                w.conn,
                &req.cycle_id,
                cycle.year,
                cycle.title.trim(),
                deadlines,
                now_ms(),
            )
            .await?;
            let created = load_cycle(w.conn, &req.cycle_id).await?.proto;
            w.audit(
                "cycles.create",
                &created.name,
                "",
                json!({"year": cycle.year, "title": created.title}),
            );
            Ok(created)
        })
        .await
    }

    pub(crate) async fn update_cycle(
        &self,
        p: Principal,
        req: UpdateCycleRequest,
    ) -> Result<Cycle, Error> {
        p.require(&[Role::Office], "update cycles")?;
        let cycle = req.cycle.unwrap_or_default();
        let id = names::cycle_id(&cycle.name, "cycle.name")?.to_string();
        admit(&self.db, &p, "UpdateCycle", &id, None).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("update_mask", "name the fields to change"));
        }
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("UpdateCycle"),
            async |w| {
                let current = load_cycle(w.conn, &id).await?;
                let mut title = current.proto.title.clone();
                let mut d = [
                    current.plan_deadline,
                    current.data_deadline,
                    current.review_close,
                    current.rectification_deadline,
                ];
                let new = cycle.deadlines.unwrap_or_default();
                let mut v = Violations::new();
                let new_d = deadlines_ms(&new, "cycle.deadlines", &mut v);
                let fields = DEADLINE_FIELDS;
                for path in &paths {
                    match path.as_str() {
                        "title" => {
                            text::required(&mut v, "cycle.title", &cycle.title, text::LABEL);
                            title = cycle.title.trim().to_string();
                        }
                        "deadlines" => d = new_d,
                        other => match other
                            .strip_prefix("deadlines.")
                            .and_then(|f| fields.iter().position(|x| *x == f))
                        {
                            Some(i) => d[i] = new_d[i],
                            None => v.add(
                                "update_mask",
                                format!(
                                    "{other:?} cannot be updated; use title or deadlines[.<field>]"
                                ),
                            ),
                        },
                    }
                }
                v.into_result()?;
                update_cycle(w.conn, &id, &title, d, now_ms()).await?;
                let updated = load_cycle(w.conn, &id).await?.proto;
                // Deadlines move every group's windows: each group has changed.
                for g in group_ids(w.conn, &id).await? {
                    w.changed(&id, &g);
                }
                w.audit(
                    "cycles.update",
                    &updated.name,
                    "",
                    json!({"fields": paths, "deadlines_ms": d}),
                );
                Ok(updated)
            },
        )
        .await
    }

    pub(crate) async fn set_cycle_phase(
        &self,
        p: Principal,
        req: SetCyclePhaseRequest,
    ) -> Result<Cycle, Error> {
        p.require(&[Role::Office], "change a cycle's phase")?;
        let id = names::cycle_id(&req.name, "name")?.to_string();
        admit(&self.db, &p, "SetCyclePhase", &id, None).await?;
        let phase = match Phase::try_from(req.phase) {
            Ok(ph) if ph != Phase::Unspecified => ph,
            _ => return Err(Error::invalid("phase", "must be a phase")),
        };
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("SetCyclePhase"),
            async |w| {
                let current = load_cycle(w.conn, &id).await?;
                if (phase as i32) <= (current.phase as i32) {
                    return Err(Error::precondition(
                        crate::Reason::PhaseOrder,
                        format!(
                            "cycles/{id} is in {}; phases only move forward",
                            current.phase.as_str_name()
                        ),
                    ));
                }
                set_phase(w.conn, &id, phase, now_ms()).await?;
                let updated = load_cycle(w.conn, &id).await?.proto;
                for g in group_ids(w.conn, &id).await? {
                    w.changed(&id, &g);
                }
                w.audit(
                    "cycles.set_phase",
                    &updated.name,
                    "",
                    json!({"from": current.phase.as_str_name(), "to": phase.as_str_name()}),
                );
                Ok(updated)
            },
        )
        .await
    }

    pub(crate) async fn get_cycle(&self, req: GetCycleRequest) -> Result<Cycle, Error> {
        let id = names::cycle_id(&req.name, "name")?;
        let mut conn = self.db.read.acquire().await?;
        Ok(load_cycle(&mut conn, id).await?.proto)
    }

    pub(crate) async fn list_cycles(
        &self,
        req: ListCyclesRequest,
    ) -> Result<ListCyclesResponse, Error> {
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        let mut cycles = cycles(&mut conn, &pg).await?;
        let next_page_token = pg.next_token(&mut cycles);
        Ok(ListCyclesResponse {
            cycles,
            next_page_token,
        })
    }
}
