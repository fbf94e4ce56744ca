//! Plan versions and their field-level differences, and the approved
//! targets of a group that the indicators service scores against.

use jixiao_proto::plans::{
    DiffPlanVersionsRequest, DiffPlanVersionsResponse, FieldChange, GetGroupTargetsRequest,
    GroupTargets, ListPlanVersionsRequest, ListPlanVersionsResponse, PlanVersion, UnitTargets,
};
use jixiao_runtime::{Error, Principal, Violations, names};

use crate::{api::*, rules, store::*};

impl PlansApi {
    pub(crate) async fn group_targets(
        &self,
        p: Principal,
        req: GetGroupTargetsRequest,
    ) -> Result<GroupTargets, Error> {
        p.require(PLAN_READERS, "read a group's approved targets")?;
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        let mut conn = self.db.read.acquire().await?;
        let g = load_group(&mut conn, cycle, gid).await?;
        let mut approved = std::collections::HashMap::new();
        for (unit, version, content) in approved_contents(&mut conn, cycle, gid).await? {
            approved.insert(format!("units/{unit}"), (version as i32, content.targets));
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
        let all = plan_versions(&mut conn, &cycle, &unit, None).await?;
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
            plan_versions(&mut conn, &cycle, &unit, Some(i64::from(n)))
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
