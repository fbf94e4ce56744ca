//! Progress during the year (DOMAIN.md §5): each unit's latest monthly or
//! quarterly value against its target, with at-risk flags; and each
//! provider's completeness and timeliness of final values.

use std::collections::BTreeMap;

use jixiao_proto::{
    indicators::{
        GetProgressRequest, GetProgressResponse, GetProviderCompletenessRequest,
        GetProviderCompletenessResponse, ProgressRow, ProviderCompleteness,
    },
    plans::ScoringMethod,
};
use jixiao_runtime::{
    Error, Principal, Role,
    decimal::{self, to_proto},
    names,
};
use rust_decimal::Decimal;

use crate::{
    api::{IndicatorsApi, READERS, higher},
    rules, store,
};

impl IndicatorsApi {
    pub(crate) async fn progress(
        &self,
        p: Principal,
        req: GetProgressRequest,
    ) -> Result<GetProgressResponse, Error> {
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        let mut only = if req.unit.is_empty() {
            None
        } else {
            Some(names::unit_id(&req.unit, "unit")?.to_string())
        };
        if !p.has_any(READERS) {
            let own = p.unit.clone().filter(|_| p.has(Role::Unit));
            match (own, &only) {
                (Some(own), None) => only = Some(own),
                (Some(own), Some(u)) if *u == own => {}
                _ => {
                    return Err(Error::denied(format!(
                        "{} may only read its own unit's progress",
                        p.subject
                    )));
                }
            }
        }
        let expected_override = decimal::optional_figure(&req.expected_share)
            .map_err(|e| Error::invalid("expected_share", e))?;
        let view = self.group_view_by_name(&req.group).await?;
        let threshold =
            decimal::figure(&view.scheme.at_risk_threshold).unwrap_or(Decimal::new(1, 1));
        let rows = {
            let mut conn = self.db.read.acquire().await?;
            store::group_values(&mut conn, cycle, gid, false).await?
        };
        // Latest progress value per unit and indicator (months and quarters
        // compared by the share of the year they cover).
        let mut latest: BTreeMap<(String, String), (Decimal, String, Decimal)> = BTreeMap::new();
        for r in rows {
            let unit = format!("units/{}", r.unit_id);
            let key = r.period;
            let Some(period) = rules::parse_period_key(&key) else {
                continue;
            };
            let share = rules::elapsed_share(&period);
            let value = decimal::from_db(&r.value)?;
            let entry = (unit, r.indicator);
            if latest.get(&entry).is_none_or(|(s, _, _)| share > *s) {
                latest.insert(entry, (share, key, value));
            }
        }
        let mut out = Vec::new();
        for unit in &view.group.units {
            if only.as_ref().is_some_and(|o| format!("units/{o}") != *unit) {
                continue;
            }
            for ind in view
                .indicators
                .iter()
                .filter(|i| i.method != ScoringMethod::Assessed as i32)
            {
                let target = view.targets.get(&(unit.clone(), ind.code.clone())).copied();
                let last = latest.get(&(unit.clone(), ind.code.clone()));
                let achieved = match (target, last) {
                    (Some(t), Some((_, _, v))) => rules::achieved_share(higher(ind), t, *v),
                    _ => None,
                };
                let expected = expected_override.or(last.map(|l| l.0));
                let at_risk = match (achieved, expected) {
                    (Some(a), Some(e)) => rules::at_risk(a, e, threshold),
                    _ => false,
                };
                out.push(ProgressRow {
                    unit: unit.clone(),
                    indicator: ind.code.clone(),
                    target: target.map(to_proto),
                    latest_value: last.map(|l| to_proto(l.2)),
                    latest_period: last.and_then(|l| rules::parse_period_key(&l.1)),
                    achieved_share: achieved.map(to_proto),
                    at_risk,
                });
            }
        }
        Ok(GetProgressResponse { rows: out })
    }

    pub(crate) async fn completeness(
        &self,
        p: Principal,
        req: GetProviderCompletenessRequest,
    ) -> Result<GetProviderCompletenessResponse, Error> {
        let cycle = names::cycle_id(&req.cycle, "cycle")?.to_string();
        let mut only = if req.provider.is_empty() {
            None
        } else {
            Some(req.provider.clone())
        };
        if !p.has_any(READERS) {
            let own = p
                .unit
                .clone()
                .filter(|_| p.has(Role::Provider))
                .map(|u| format!("units/{u}"));
            match (own, &only) {
                (Some(own), None) => only = Some(own),
                (Some(own), Some(x)) if *x == own => {}
                _ => {
                    return Err(Error::denied(format!(
                        "{} may only read its own completeness",
                        p.subject
                    )));
                }
            }
        }
        let reported = {
            let mut conn = self.db.read.acquire().await?;
            store::final_lateness(&mut conn, &cycle).await?
        };
        let year = self.cycle_year(&cycle).await?;
        let mut by_provider: BTreeMap<String, ProviderCompleteness> = BTreeMap::new();
        for group in self.groups(&cycle).await?.iter() {
            let framework = self.plans.framework(&group.name).await?;
            for ind in framework
                .indicators
                .iter()
                .filter(|i| i.method != ScoringMethod::Assessed as i32)
            {
                if only.as_ref().is_some_and(|o| *o != ind.provider) {
                    continue;
                }
                let row = by_provider.entry(ind.provider.clone()).or_insert_with(|| {
                    ProviderCompleteness {
                        provider: ind.provider.clone(),
                        ..Default::default()
                    }
                });
                for unit in &group.units {
                    row.expected += 1;
                    match reported.get(&(unit.clone(), ind.code.clone())) {
                        Some(late) => {
                            row.reported += 1;
                            row.late += i32::from(*late);
                        }
                        None => row.missing.push(store::value_name(
                            &cycle,
                            unit.trim_start_matches("units/"),
                            &ind.code,
                            &year.to_string(),
                        )),
                    }
                }
            }
        }
        Ok(GetProviderCompletenessResponse {
            providers: by_provider.into_values().collect(),
        })
    }
}
