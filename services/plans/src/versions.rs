//! Plan versions and their field-level differences, and the approved
//! targets of a group that the indicators service scores against.

use jixiao_proto::plans::{
    DiffPlanVersionsRequest, DiffPlanVersionsResponse, FieldChange, GetGroupTargetsRequest,
    GroupTargets, ListPlanVersionsRequest, ListPlanVersionsResponse, Plan, PlanVersion,
    UnitTargets,
};
use jixiao_runtime::{
    Error, Principal, Violations, names,
    time::{opt_timestamp, timestamp},
};
use sqlx::{AnyConnection, Row};

use crate::{api::*, rules, store::*};

impl PlansApi {
    pub(crate) async fn versions(
        conn: &mut AnyConnection,
        cycle: &str,
        unit: &str,
        only: Option<i64>,
    ) -> Result<Vec<PlanVersion>, Error> {
        let rows = sqlx::query(
            "SELECT version, content, submitted_by, submit_ms, late, amendment, amendment_reason, outcome,
             decided_by, decide_ms, decision_note
             FROM plan_versions WHERE cycle_id = $1 AND unit_id = $2 AND ($3 = 0 OR version = $3) ORDER BY version",
        )
        .bind(cycle)
        .bind(unit)
        .bind(only.unwrap_or(0))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get("version")?;
                let content: Plan = decode(&r.try_get::<Vec<u8>, _>("content")?)?;
                Ok(PlanVersion {
                    name: format!("cycles/{cycle}/plans/{unit}/versions/{version}"),
                    version: version as i32,
                    targets: content.targets,
                    goals: content.goals,
                    submitted_by: r.try_get("submitted_by")?,
                    submit_time: Some(timestamp(r.try_get("submit_ms")?)),
                    late: bool_col(r, "late")?,
                    amendment: bool_col(r, "amendment")?,
                    amendment_reason: r.try_get("amendment_reason")?,
                    outcome: r.try_get::<i64, _>("outcome")? as i32,
                    decided_by: r.try_get("decided_by")?,
                    decide_time: opt_timestamp(r.try_get("decide_ms")?),
                    decision_note: r.try_get("decision_note")?,
                })
            })
            .collect()
    }

    pub(crate) async fn group_targets(
        &self,
        p: Principal,
        req: GetGroupTargetsRequest,
    ) -> Result<GroupTargets, Error> {
        p.require(PLAN_READERS, "read a group's approved targets")?;
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        let mut conn = self.db.read.acquire().await?;
        let g = load_group(&mut conn, cycle, gid).await?;
        let rows = sqlx::query(
            "SELECT p.unit_id, p.approved_version, v.content FROM plans p
             JOIN plan_versions v ON v.cycle_id = p.cycle_id AND v.unit_id = p.unit_id AND v.version = p.approved_version
             WHERE p.cycle_id = $1 AND p.group_id = $2 AND p.approved_version > 0",
        )
        .bind(cycle)
        .bind(gid)
        .fetch_all(&mut *conn)
        .await?;
        let mut approved = std::collections::HashMap::new();
        for r in &rows {
            let unit: String = r.try_get("unit_id")?;
            let content: Plan = decode(&r.try_get::<Vec<u8>, _>("content")?)?;
            approved.insert(
                format!("units/{unit}"),
                (
                    r.try_get::<i64, _>("approved_version")? as i32,
                    content.targets,
                ),
            );
        }
        let units = g
            .group
            .units
            .iter()
            .map(|u| {
                let (approved_version, targets) = approved.remove(u).unwrap_or_default();
                UnitTargets {
                    unit: u.clone(),
                    approved_version,
                    targets,
                }
            })
            .collect();
        Ok(GroupTargets {
            group: g.group.name,
            units,
        })
    }

    pub(crate) async fn list_plan_versions(
        &self,
        p: Principal,
        req: ListPlanVersionsRequest,
    ) -> Result<ListPlanVersionsResponse, Error> {
        let (cycle, unit) = plan_name(&req.parent, "parent")?;
        Self::may_read_plan(&p, &unit)?;
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        load_plan(&mut conn, &cycle, &unit).await?;
        let all = Self::versions(&mut conn, &cycle, &unit, None).await?;
        let mut versions: Vec<_> = all
            .into_iter()
            .skip(pg.offset as usize)
            .take(pg.fetch_limit() as usize)
            .collect();
        let next_page_token = pg.next_token(&mut versions);
        Ok(ListPlanVersionsResponse {
            versions,
            next_page_token,
        })
    }

    pub(crate) async fn diff_plan_versions(
        &self,
        p: Principal,
        req: DiffPlanVersionsRequest,
    ) -> Result<DiffPlanVersionsResponse, Error> {
        let (cycle, unit) = plan_name(&req.name, "name")?;
        Self::may_read_plan(&p, &unit)?;
        let mut v = Violations::new();
        v.check(
            req.from_version >= 1,
            "from_version",
            "must be a version number from 1",
        );
        v.check(
            req.to_version >= 1,
            "to_version",
            "must be a version number from 1",
        );
        v.into_result()?;
        let mut conn = self.db.read.acquire().await?;
        let mut get = async |n: i32, field: &str| -> Result<PlanVersion, Error> {
            Self::versions(&mut conn, &cycle, &unit, Some(i64::from(n)))
                .await?
                .pop()
                .ok_or_else(|| {
                    Error::invalid(
                        field,
                        format!("cycles/{cycle}/plans/{unit} has no version {n}"),
                    )
                })
        };
        let a = get(req.from_version, "from_version").await?;
        let b = get(req.to_version, "to_version").await?;
        let changes = rules::diff(&a.targets, &a.goals, &b.targets, &b.goals)
            .into_iter()
            .map(|c| FieldChange {
                field: c.field,
                old_value: c.old,
                new_value: c.new,
            })
            .collect();
        Ok(DiffPlanVersionsResponse { changes })
    }
}
