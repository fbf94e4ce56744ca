//! What the other services read from the plans service: cycles, groups and
//! their members, schemes, frameworks, approved targets and write windows.
//! Every failure maps through [`dependency_error`], so a plans service that
//! is down reaches callers as UNAVAILABLE naming it.
//!
//! A cycle's groups are kept once the cycle has left PLANNING: groups and
//! their members change only in PLANNING and phases only move forward
//! (DOMAIN.md §2), so from then on they are final. Writers look up a
//! unit's group on every score and rating; reading every member of every
//! group each time would make a year's setup grow with the square of its
//! units.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use jixiao_proto::plans::{
    CheckWriteWindowRequest, CheckWriteWindowResponse, Cycle, Framework, GetCycleRequest,
    GetFrameworkRequest, GetGroupRequest, GetGroupTargetsRequest, GetSchemeRequest, Group,
    GroupTargets, ListCyclesRequest, ListGroupsRequest, ListUnitsRequest, LockScope, Phase, Scheme,
    Unit, plans_service_client::PlansServiceClient,
};

use crate::{
    Error, Principal, Role,
    client::{ServiceChannel, dependency_error},
    names,
    phases::{self, Window},
    time::now_ms,
};

const PLANS: &str = "plans service";

/// A client of the plans service for lookups.
#[derive(Clone)]
pub struct PlansLookup {
    client: PlansServiceClient<ServiceChannel>,
    /// The groups of the cycles seen past PLANNING, by cycle id.
    final_groups: Arc<Mutex<HashMap<String, Arc<CycleGroups>>>>,
}

/// A cycle's groups with an index from each member to its group.
struct CycleGroups {
    groups: Arc<[Group]>,
    /// `units/{u}` → its group's position in `groups`.
    of_unit: HashMap<String, usize>,
}

impl CycleGroups {
    fn new(groups: Vec<Group>) -> Self {
        let mut of_unit = HashMap::new();
        for (i, g) in groups.iter().enumerate() {
            for u in &g.units {
                // A unit is in at most one group per cycle; were it in two,
                // the first wins, as a scan in order would find it.
                of_unit.entry(u.clone()).or_insert(i);
            }
        }
        CycleGroups {
            groups: groups.into(),
            of_unit,
        }
    }
}

/// A group's members as [`PlansLookup::members`] read them.
#[derive(Debug, Clone)]
pub struct Members {
    /// `units/{u}`, in the group's order.
    pub units: Vec<String>,
    /// Final: the cycle has left PLANNING, so a copy may be kept. Read in
    /// PLANNING they may change the next moment, and a copy kept would
    /// outlive the edit into the phases that use them.
    pub fixed: bool,
}

/// Whether a cycle's groups and members can no longer change.
fn is_final(phase: Phase) -> bool {
    !matches!(phase, Phase::Planning | Phase::Unspecified)
}

impl PlansLookup {
    pub fn new(channel: ServiceChannel) -> Self {
        PlansLookup {
            client: PlansServiceClient::new(channel),
            final_groups: Arc::default(),
        }
    }

    fn client(&self) -> PlansServiceClient<ServiceChannel> {
        self.client.clone()
    }

    pub async fn cycle(&self, cycle_id: &str) -> Result<Cycle, Error> {
        self.client()
            .get_cycle(GetCycleRequest {
                name: format!("cycles/{cycle_id}"),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| dependency_error(PLANS, s))
    }

    /// Every group of a cycle with its members; shared, not copied, as a
    /// copy of every member for each caller would cost as much as the read.
    pub async fn groups(&self, cycle_id: &str) -> Result<Arc<[Group]>, Error> {
        Ok(self.cycle_groups(cycle_id).await?.groups.clone())
    }

    /// A cycle's groups: kept from an earlier call once the cycle has left
    /// PLANNING (see the module's note), read otherwise. The cycle is read
    /// each time, so that a plans service that is down or a cycle that
    /// does not exist is still answered as before; and before the groups,
    /// so that groups read after a phase past PLANNING are final.
    async fn cycle_groups(&self, cycle_id: &str) -> Result<Arc<CycleGroups>, Error> {
        let phase = self.cycle(cycle_id).await?.phase();
        if let Some(kept) = self.kept(cycle_id) {
            return Ok(kept);
        }
        let groups = Arc::new(CycleGroups::new(self.list_groups(cycle_id).await?));
        if is_final(phase) {
            self.final_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cycle_id.to_string(), groups.clone());
        }
        Ok(groups)
    }

    fn kept(&self, cycle_id: &str) -> Option<Arc<CycleGroups>> {
        self.final_groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(cycle_id)
            .cloned()
    }

    async fn list_groups(&self, cycle_id: &str) -> Result<Vec<Group>, Error> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .client()
                .list_groups(ListGroupsRequest {
                    parent: format!("cycles/{cycle_id}"),
                    page_size: 500,
                    page_token: token,
                })
                .await
                .map_err(|s| dependency_error(PLANS, s))?
                .into_inner();
            out.extend(page.groups);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    /// A group by name (`cycles/{c}/groups/{g}`).
    pub async fn group(&self, group_name: &str) -> Result<Group, Error> {
        names::group_name(group_name, "group")?;
        self.client()
            .get_group(GetGroupRequest {
                name: group_name.to_string(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| dependency_error(PLANS, s))
    }

    /// A group's members (`units/{u}`). Scoring a group reads them on every
    /// refresh of its standings, thousands of names each time; once the
    /// cycle has left PLANNING they are final (see the module's note), so
    /// they come from the kept groups then, and are read otherwise. A
    /// group the kept copy lacks is asked for, so it is answered as before.
    pub async fn members(&self, group_name: &str) -> Result<Members, Error> {
        let (cycle_id, _) = names::group_name(group_name, "group")?;
        let kept = match self.kept(cycle_id) {
            Some(kept) => Some(kept),
            None if is_final(self.cycle(cycle_id).await?.phase()) => {
                Some(self.cycle_groups(cycle_id).await?)
            }
            None => None,
        };
        let kept = kept.and_then(|c| c.groups.iter().find(|g| g.name == group_name).cloned());
        Ok(match kept {
            Some(g) => Members {
                units: g.units,
                fixed: true,
            },
            None => Members {
                units: self.group(group_name).await?.units,
                fixed: false,
            },
        })
    }

    /// The name of the group a unit (`units/{u}`) is assessed in, if any.
    pub async fn group_of_unit(
        &self,
        cycle_id: &str,
        unit_name: &str,
    ) -> Result<Option<String>, Error> {
        let c = self.cycle_groups(cycle_id).await?;
        Ok(c.of_unit.get(unit_name).map(|&i| c.groups[i].name.clone()))
    }

    pub async fn scheme(&self, group_name: &str) -> Result<Scheme, Error> {
        self.client()
            .get_scheme(GetSchemeRequest {
                name: format!("{group_name}/scheme"),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| dependency_error(PLANS, s))
    }

    pub async fn framework(&self, group_name: &str) -> Result<Framework, Error> {
        self.client()
            .get_framework(GetFrameworkRequest {
                name: format!("{group_name}/framework"),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| dependency_error(PLANS, s))
    }

    pub async fn group_targets(&self, group_name: &str) -> Result<GroupTargets, Error> {
        self.client()
            .get_group_targets(GetGroupTargetsRequest {
                group: group_name.to_string(),
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| dependency_error(PLANS, s))
    }

    /// Whether `unit_id` may write in `scope` now.
    pub async fn write_window(
        &self,
        cycle_id: &str,
        unit_id: &str,
        scope: LockScope,
    ) -> Result<CheckWriteWindowResponse, Error> {
        self.client()
            .check_write_window(CheckWriteWindowRequest {
                cycle: format!("cycles/{cycle_id}"),
                unit: format!("units/{unit_id}"),
                scope: scope as i32,
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| dependency_error(PLANS, s))
    }

    /// Every cycle.
    pub async fn cycles(&self) -> Result<Vec<Cycle>, Error> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .client()
                .list_cycles(ListCyclesRequest {
                    page_size: 500,
                    page_token: token,
                })
                .await
                .map_err(|s| dependency_error(PLANS, s))?
                .into_inner();
            out.extend(page.cycles);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    /// Every unit.
    pub async fn units(&self) -> Result<Vec<Unit>, Error> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .client()
                .list_units(ListUnitsRequest {
                    page_size: 1000,
                    page_token: token,
                })
                .await
                .map_err(|s| dependency_error(PLANS, s))?
                .into_inner();
            out.extend(page.units);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            token = page.next_page_token;
        }
    }

    /// The phase gate of DOMAIN.md §2 ([`phases::admit`]) for a write of
    /// `path` to `cycle` by `p`; returns whether the write is late. A unit
    /// or provider writes in its own window (its lock exception included);
    /// the office and platforms are measured against the cycle's own.
    pub async fn admit(&self, p: &Principal, path: &str, cycle: &str) -> Result<bool, Error> {
        let c = self.cycle(cycle).await?;
        let own_window = !p.has(Role::Office) && p.has_any(&[Role::Unit, Role::Provider]);
        let call = phases::Call {
            path,
            cycle,
            phase: c.phase(),
            office: p.has(Role::Office),
        };
        phases::admit(call, |scope| async move {
            if !own_window {
                return Ok(Window::of_cycle(&c, scope, now_ms()));
            }
            let w = self.write_window(cycle, p.own_unit()?, scope).await?;
            Ok(Window::from_response(&w))
        })
        .await
    }
}
