//! Cycles (DOMAIN.md §2): created by the office with their deadlines, moved
//! forward through their phases, read by everyone with business in them.

use jixiao_proto::plans::{
    CreateCycleRequest, Cycle, GetCycleRequest, ListCyclesRequest, ListCyclesResponse, Phase,
    SetCyclePhaseRequest, UpdateCycleRequest,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, audit, idempotency, names, text,
    time::{millis, now_ms},
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
        v.check(
            names::valid_id(&req.cycle_id),
            "cycle_id",
            "must be 1-63 lower-case letters, digits or dashes",
        );
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
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let exists = sqlx::query("SELECT 1 FROM cycles WHERE id = $1")
            .bind(&req.cycle_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(Error::AlreadyExists {
                resource: format!("cycles/{}", req.cycle_id),
            });
        }
        let now = now_ms();
        let ms = |t: &Option<prost_types::Timestamp>| t.as_ref().map(millis);
        let sql = format!(
            "INSERT INTO cycles ({CYCLE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&req.cycle_id)
            .bind(i64::from(cycle.year))
            .bind(cycle.title.trim())
            .bind(Phase::Planning as i32 as i64)
            .bind(ms(&d.plan_deadline))
            .bind(ms(&d.data_deadline))
            .bind(ms(&d.review_close))
            .bind(ms(&d.rectification_deadline))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let created = load_cycle(&mut tx, &req.cycle_id).await?.proto;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "cycles.create",
                resource: &created.name,
                reason: "",
                detail: json!({"year": cycle.year, "title": created.title}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreateCycle",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
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
        let mut tx = self.db.write.begin().await?;
        let current = load_cycle(&mut tx, &id).await?;
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
                        format!("{other:?} cannot be updated; use title or deadlines[.<field>]"),
                    ),
                },
            }
        }
        v.into_result()?;
        sqlx::query(
            "UPDATE cycles SET title = $1, plan_deadline_ms = $2, data_deadline_ms = $3, review_close_ms = $4,
             rectification_deadline_ms = $5, update_ms = $6 WHERE id = $7",
        )
        .bind(&title)
        .bind(d[0])
        .bind(d[1])
        .bind(d[2])
        .bind(d[3])
        .bind(now_ms())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let updated = load_cycle(&mut tx, &id).await?.proto;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "cycles.update",
                resource: &updated.name,
                reason: "",
                detail: json!({"fields": paths, "deadlines_ms": d}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
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
        let mut tx = self.db.write.begin().await?;
        let current = load_cycle(&mut tx, &id).await?;
        if (phase as i32) <= (current.phase as i32) {
            return Err(Error::precondition(
                "PHASE_ORDER",
                format!(
                    "cycles/{id} is in {}; phases only move forward",
                    current.phase.as_str_name()
                ),
            ));
        }
        sqlx::query("UPDATE cycles SET phase = $1, update_ms = $2 WHERE id = $3")
            .bind(phase as i32 as i64)
            .bind(now_ms())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let updated = load_cycle(&mut tx, &id).await?.proto;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "cycles.set_phase",
                resource: &updated.name,
                reason: "",
                detail: json!({"from": current.phase.as_str_name(), "to": phase.as_str_name()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
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
        let sql = format!(
            "SELECT {CYCLE_COLS} FROM cycles ORDER BY year DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        let mut cycles = rows
            .iter()
            .map(|r| cycle_row(r).map(|c| c.proto))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut cycles);
        Ok(ListCyclesResponse {
            cycles,
            next_page_token,
        })
    }
}
