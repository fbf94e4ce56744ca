//! Each unit's inspection adjustment (DOMAIN.md §3 rule 2): the deductions
//! of its counting findings and the credits of its verified items, capped;
//! the figures the aggregator follows, with their change stream.

use std::collections::{BTreeMap, HashMap};

use jixiao_proto::inspections::{
    AdjustmentChange, Finding, FindingState, GetGroupAdjustmentsRequest, GroupAdjustments,
    SelfInspectionItem, UnitAdjustment,
};
use jixiao_runtime::{
    Error, Principal, Role,
    changes::{Changes, unchanged_since},
    decimal::{self, to_proto},
    names,
};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;

use crate::{api::InspectionsApi, rules, store};

/// The stream of group changes a follower watches.
pub type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<AdjustmentChange, tonic::Status>> + Send>>;

impl InspectionsApi {
    pub(crate) async fn adjustments(
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
        let members = self.plans.members(&req.group).await?.units;
        let scheme = self.plans.scheme(&req.group).await?;
        let cap = decimal::figure(&scheme.inspection_cap).unwrap_or(Decimal::from(5));
        let mut conn = self.db.read.acquire().await?;
        let mut deductions: HashMap<String, (Decimal, Vec<Finding>)> = HashMap::new();
        let mut contested: HashMap<String, Vec<Finding>> = HashMap::new();
        for f in store::group_findings(&mut conn, cycle, gid).await? {
            let unit = format!("units/{}", f.unit);
            if f.state == FindingState::Contested {
                contested.entry(unit).or_default().push(f.proto);
            } else {
                let e = deductions.entry(unit).or_default();
                e.0 = e.0.saturating_add(f.deduction);
                e.1.push(f.proto);
            }
        }
        let mut credits: BTreeMap<String, (Decimal, Vec<SelfInspectionItem>)> = BTreeMap::new();
        for r in store::verified_items(&mut conn, cycle, gid).await? {
            let (full, credit) = (r.proto()?, r.credit()?);
            let e = credits.entry(full.unit.clone()).or_default();
            e.0 = e.0.saturating_add(credit);
            // The adjustment lists what earned the credit, not the report.
            e.1.push(SelfInspectionItem {
                name: full.name,
                unit: full.unit,
                item_type: full.item_type,
                problem: full.problem,
                state: full.state,
                credit: Some(to_proto(credit)),
                ..Default::default()
            });
        }
        let units = members
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

    /// The change signals of a cycle's groups (or of every cycle).
    pub(crate) async fn watch(&self, p: Principal, cycle: &str) -> Result<ChangeStream, Error> {
        let changes = self.changes.watch_for(&self.db, &p, cycle).await?;
        Ok(Box::pin(changes.map(|c| {
            Ok(AdjustmentChange {
                group: c.group,
                revision: c.revision,
                traceparent: c.traceparent.unwrap_or_default(),
                change_time: c.time_ms.map(jixiao_runtime::time::timestamp),
            })
        })))
    }
}
