//! What every handler of the service shares: the service value with its
//! database, plans look-ups and change broadcast; the phase gate; who
//! reads everything; and a group as this service needs it from plans.

use std::collections::HashMap;

use jixiao_proto::plans::{Direction, Group, Indicator, Scheme, ScoringMethod};
use jixiao_runtime::{
    Db, Error, Principal, Role, changes::Changes, client::ServiceChannel, decimal, host::Shutdown,
    names, plans_lookup::PlansLookup,
};
use rust_decimal::Decimal;

use crate::{rules, scoring::Method, store::ValueKey};

/// Roles that read every value and score.
pub const READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Service];

/// The indicators service.
#[derive(Clone)]
pub struct IndicatorsApi {
    pub(crate) db: Db,
    pub(crate) plans: PlansLookup,
    pub(crate) changes: Changes,
    pub(crate) metrics: jixiao_runtime::metrics::Metrics,
}

impl IndicatorsApi {
    pub fn new(
        db: Db,
        plans: ServiceChannel,
        shutdown: Shutdown,
        metrics: jixiao_runtime::metrics::Metrics,
    ) -> Self {
        IndicatorsApi {
            db,
            plans: PlansLookup::new(plans),
            changes: Changes::new(shutdown),
            metrics,
        }
    }

    /// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a
    /// write of `method` to `cycle`: a provider writes in its own data
    /// window (or under its lock exception, late); the office writes on a
    /// provider's behalf after the deadline too, and is then late.
    pub(crate) async fn admit(
        &self,
        p: &Principal,
        method: &str,
        cycle: &str,
    ) -> Result<bool, Error> {
        let path = format!("/jixiao.indicators.v1.IndicatorsService/{method}");
        self.plans.admit(p, &path, cycle).await
    }

    pub(crate) async fn cycle_year(&self, cycle: &str) -> Result<i32, Error> {
        Ok(self.plans.cycle(cycle).await?.year)
    }

    pub(crate) async fn groups(&self, cycle: &str) -> Result<std::sync::Arc<[Group]>, Error> {
        self.plans.groups(cycle).await
    }

    pub(crate) async fn group_view(&self, group: Group) -> Result<GroupView, Error> {
        let framework = self.plans.framework(&group.name).await?;
        let scheme = self.plans.scheme(&group.name).await?;
        let approved = self.plans.group_targets(&group.name).await?;
        let mut targets = HashMap::new();
        for u in approved.units {
            for t in u.targets {
                if let Ok(v) = decimal::figure(&t.value) {
                    targets.insert((u.unit.clone(), t.indicator), v);
                }
            }
        }
        Ok(GroupView {
            group,
            indicators: framework.indicators,
            targets,
            scheme,
        })
    }

    /// The view of a group by name, for scoring and progress: its members
    /// and name, not its display name or plan-side counter.
    pub(crate) async fn group_view_by_name(&self, group_name: &str) -> Result<GroupView, Error> {
        let group = Group {
            name: group_name.to_string(),
            units: self.plans.members(group_name).await?.units,
            ..Default::default()
        };
        self.group_view(group).await
    }
}

/// What a group looks like in the plans service, as this service needs it.
pub struct GroupView {
    pub group: Group,
    pub indicators: Vec<Indicator>,
    /// Approved targets by (`units/{u}`, indicator).
    pub targets: HashMap<(String, String), Decimal>,
    pub scheme: Scheme,
}

impl GroupView {
    pub fn indicator(&self, code: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.code == code)
    }

    pub fn id(&self) -> &str {
        self.group.name.rsplit('/').next().unwrap_or_default()
    }
}

/// Who may read values of `unit` provided by `provider`.
pub fn may_read(p: &Principal, unit: &str, provider: &str) -> bool {
    p.has_any(READERS) || p.acts_for(Role::Unit, unit) || p.acts_for(Role::Provider, provider)
}

/// A value's name split into its ids, the period checked.
pub fn value_key<'a>(name: &'a str, field: &str) -> Result<ValueKey<'a>, Error> {
    let ids = names::parse_loose(name, "cycles/*/units/*/indicators/*/periods/*", field)?;
    if rules::parse_period_key(ids[3]).is_none() {
        return Err(Error::invalid(
            field,
            format!(
                "{:?} is not a period such as 2026, 2026-Q1 or 2026-03",
                ids[3]
            ),
        ));
    }
    Ok(ValueKey {
        cycle: ids[0],
        unit: ids[1],
        indicator: ids[2],
        period: ids[3],
    })
}

pub fn method_of(ind: &Indicator) -> Method {
    match ScoringMethod::try_from(ind.method) {
        Ok(ScoringMethod::Threshold) => Method::Threshold,
        Ok(ScoringMethod::PeerBest) => Method::PeerBest,
        Ok(ScoringMethod::PeerRank) => Method::PeerRank,
        Ok(ScoringMethod::Assessed) => Method::Assessed,
        _ => Method::Ratio,
    }
}

pub fn higher(ind: &Indicator) -> bool {
    ind.direction != Direction::LowerIsBetter as i32
}
