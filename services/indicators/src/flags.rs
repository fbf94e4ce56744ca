//! Data-quality flags on values (docs/DATA-QUALITY.md): the rules of
//! `quality` evaluated when values are reported or corrected, in the same
//! transaction; the flags shown on values; their resolution by the office
//! or an evaluator; and the office's list of them.

use std::collections::{BTreeSet, HashMap};

use jixiao_proto::{
    indicators::{
        IndicatorValue, ListValueFlagsRequest, ListValueFlagsResponse, ResolveValueFlagRequest,
        ValueFlag,
    },
    types::{PeriodKind, QualityFlagState},
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, idempotency, names,
    paging::Page,
    text,
    time::now_ms,
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::AnyConnection;

use crate::{
    Reason,
    api::{GroupView, IndicatorsApi, READERS, higher, value_key},
    quality::{self, Kind, Raised, Thresholds},
    rules,
    store::{
        self, NewValue, ValueKey,
        flags::{self as fstore, FlagFilter, Owner, Peer, Resolution},
        value_name,
    },
};

/// What the rules need beyond the stored values, read from the plans
/// service before the write.
pub(crate) struct QualityContext {
    pub deadline_ms: Option<i64>,
    /// The cycle of the year before, with its year.
    pub previous: Option<(String, i32)>,
    /// By group id.
    pub views: HashMap<String, GroupView>,
}

impl IndicatorsApi {
    pub(crate) async fn quality_context(
        &self,
        cycle: &str,
        views: HashMap<String, GroupView>,
    ) -> Result<QualityContext, Error> {
        let this = self.plans.cycle(cycle).await?;
        let previous = self
            .plans
            .cycles()
            .await?
            .into_iter()
            .find(|c| c.year == this.year - 1)
            .map(|c| (c.name.trim_start_matches("cycles/").to_string(), c.year));
        let deadline_ms = this
            .deadlines
            .and_then(|d| d.data_deadline)
            .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
        Ok(QualityContext {
            deadline_ms,
            previous,
            views: views
                .into_values()
                .map(|v| (v.id().to_string(), v))
                .collect(),
        })
    }
}

/// The end of a period as a share of the year, and whether it is a
/// progress period.
fn position(period: &str) -> Option<(Decimal, bool)> {
    let p = rules::parse_period_key(period)?;
    Some((
        rules::elapsed_share(&p),
        p.kind != PeriodKind::Annual as i32,
    ))
}

/// The unit's latest progress figure before `period` (for a final value:
/// the latest of the year); on a tie the quarter over the month.
fn latest_earlier<'a>(own: &'a [Peer], period: &str) -> Option<(&'a Peer, Decimal)> {
    let (share, progress) = position(period)?;
    own.iter()
        .filter(|p| p.period != period)
        .filter_map(|p| {
            let (s, prog) = position(&p.period)?;
            (prog && (s < share || !progress)).then_some((p, s))
        })
        .max_by(|(a, sa), (b, sb)| {
            sa.cmp(sb)
                .then_with(|| a.period.contains('Q').cmp(&b.period.contains('Q')))
        })
}

/// Evaluates the rules of the value itself on a stored version (`from`:
/// the value it corrects), raising its flags, and indexes its evidence
/// (a cumulative final against its progress, shared evidence and peer
/// outliers are recomputed once per write).
pub(crate) async fn evaluate(
    conn: &mut AnyConnection,
    ctx: &QualityContext,
    nv: &NewValue,
    version: i64,
    from: Option<Decimal>,
    now: i64,
) -> Result<(), Error> {
    let Some(view) = ctx.views.get(&nv.group) else {
        return Ok(());
    };
    let Some(ind) = view.indicator(&nv.indicator) else {
        return Ok(());
    };
    let t = Thresholds::of(&view.scheme, &ind.code);
    let k = nv.key();
    let owner = Owner {
        group: &nv.group,
        provider: &nv.provider,
    };
    let mut raised: Vec<Raised> = Vec::new();
    let own = fstore::current(conn, &nv.cycle, "", &nv.unit, &nv.indicator, "").await?;
    let annual = !position(&nv.period_key).is_some_and(|p| p.1);
    if let Some((earlier, share)) = latest_earlier(&own, &nv.period_key) {
        let before = earlier.decimal()?;
        let pro_rate = t.cumulative.then(|| {
            let this = position(&nv.period_key).map_or(Decimal::ONE, |p| p.0);
            (share, this)
        });
        raised.extend(quality::jump(
            nv.value,
            before,
            &earlier.period,
            pro_rate,
            t.jump,
        ));
    }
    if annual && let Some((cycle, year)) = &ctx.previous {
        let last =
            fstore::current(conn, cycle, "", &nv.unit, &nv.indicator, &year.to_string()).await?;
        if let Some(last) = last.first() {
            raised.extend(quality::year_on_year(
                nv.value,
                last.decimal()?,
                cycle,
                t.year_on_year,
            ));
        }
    }
    raised.extend(quality::evidence_missing(
        t.evidence_required,
        nv.evidence.len(),
        &ind.code,
    ));
    if let (Some(from), Some(target), Some(deadline)) = (
        from,
        view.targets
            .get(&(format!("units/{}", nv.unit), ind.code.clone())),
        ctx.deadline_ms,
    ) {
        raised.extend(quality::boundary_correction(
            higher(ind),
            *target,
            from,
            nv.value,
            now,
            deadline,
            t.window_hours,
        ));
    }
    let digests: Vec<&str> = nv
        .evidence
        .iter()
        .map(|e| e.sha256.as_str())
        .filter(|d| !d.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    fstore::index_evidence(conn, k, &digests).await?;
    for r in &raised {
        fstore::raise(conn, k, version, &owner, r, now).await?;
    }
    Ok(())
}

/// The unit's current final value among its current values of one
/// indicator, with FINAL_BELOW_PROGRESS if it holds against the latest
/// progress figure: a function of the set of values, whatever order they
/// arrived in.
fn final_against_progress(own: &[Peer]) -> Result<Option<(&Peer, Option<Raised>)>, Error> {
    let Some(last) = own
        .iter()
        .find(|p| position(&p.period).is_some_and(|(_, progress)| !progress))
    else {
        return Ok(None);
    };
    let raised = match latest_earlier(own, &last.period) {
        Some((progress, _)) => {
            quality::final_below_progress(last.decimal()?, progress.decimal()?, &progress.period)
        }
        None => None,
    };
    Ok(Some((last, raised)))
}

/// Re-checks FINAL_BELOW_PROGRESS of a unit's cumulative indicator after
/// any of its values was written, so a progress figure reported or
/// corrected after the final counts as well: the flag is raised on the
/// final's current version when it holds, an open one there that no
/// longer holds is withdrawn; resolved flags stay as decided.
pub(crate) async fn recheck_final(
    conn: &mut AnyConnection,
    ctx: &QualityContext,
    cycle: &str,
    group: &str,
    unit: &str,
    indicator: &str,
    now: i64,
) -> Result<(), Error> {
    let Some(view) = ctx.views.get(group) else {
        return Ok(());
    };
    if !Thresholds::of(&view.scheme, indicator).cumulative {
        return Ok(());
    }
    fstore::take_turn(conn, &format!("{cycle}/units/{unit}/{indicator}")).await?;
    let own = fstore::current(conn, cycle, "", unit, indicator, "").await?;
    let Some((last, raised)) = final_against_progress(&own)? else {
        return Ok(());
    };
    let k = ValueKey {
        cycle,
        unit,
        indicator,
        period: &last.period,
    };
    match raised {
        Some(r) => {
            let owner = Owner {
                group: &last.group_id,
                provider: &last.provider_id,
            };
            fstore::raise(conn, k, last.version, &owner, &r, now).await
        }
        None => fstore::withdraw(conn, k, last.version, Kind::FinalBelowProgress).await,
    }
}

/// Raises SHARED_EVIDENCE on every current value that holds the digest
/// when values of two units or more hold it, naming for each the first
/// value of another unit (by unit, indicator, period): one pass per digest
/// a write touched, linear in its holders. Returns the groups of the
/// flagged values.
pub(crate) async fn recompute_shared(
    conn: &mut AnyConnection,
    cycle: &str,
    digest: &str,
    now: i64,
) -> Result<BTreeSet<String>, Error> {
    let mut touched = BTreeSet::new();
    fstore::take_turn(conn, &format!("{cycle}/evidence/{digest}")).await?;
    let holders = fstore::holders(conn, cycle, digest).await?;
    for h in &holders {
        let Some(other) = holders.iter().find(|o| o.unit_id != h.unit_id) else {
            // Only one unit holds the file: nothing is shared.
            return Ok(touched);
        };
        let k = ValueKey {
            cycle,
            unit: &h.unit_id,
            indicator: &h.indicator,
            period: &h.period,
        };
        let r = quality::shared_evidence(
            digest,
            &value_name(cycle, &other.unit_id, &other.indicator, &other.period),
        );
        let owner = Owner {
            group: &h.group_id,
            provider: &h.provider_id,
        };
        fstore::raise(conn, k, h.version, &owner, &r, now).await?;
        touched.insert(h.group_id.clone());
    }
    Ok(touched)
}

/// Recomputes PEER_OUTLIER over the group's current values of an
/// indicator and period: flags that hold are raised (or take the new
/// figures), open ones that no longer hold are withdrawn.
pub(crate) async fn recompute_outliers(
    conn: &mut AnyConnection,
    ctx: &QualityContext,
    cycle: &str,
    group: &str,
    indicator: &str,
    period: &str,
    now: i64,
) -> Result<(), Error> {
    let Some(view) = ctx.views.get(group) else {
        return Ok(());
    };
    let t = Thresholds::of(&view.scheme, indicator);
    fstore::take_turn(conn, &format!("{cycle}/{group}/{indicator}/{period}")).await?;
    let peers = fstore::current(conn, cycle, group, "", indicator, period).await?;
    let values = peers
        .iter()
        .map(Peer::decimal)
        .collect::<Result<Vec<_>, _>>()?;
    let mut flagged: HashMap<usize, Raised> = quality::outliers(&values, t.outlier, t.min_peers)
        .into_iter()
        .collect();
    for (i, p) in peers.iter().enumerate() {
        let k = ValueKey {
            cycle,
            unit: &p.unit_id,
            indicator,
            period,
        };
        match flagged.remove(&i) {
            Some(r) => {
                let owner = Owner {
                    group: &p.group_id,
                    provider: &p.provider_id,
                };
                fstore::raise(conn, k, p.version, &owner, &r, now).await?
            }
            None => fstore::withdraw(conn, k, p.version, Kind::PeerOutlier).await?,
        }
    }
    Ok(())
}

/// Attaches to each current value every flag of it.
pub(crate) async fn attach(
    conn: &mut AnyConnection,
    values: &mut [IndicatorValue],
    filter: &FlagFilter<'_>,
) -> Result<(), Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut by_value: HashMap<String, Vec<ValueFlag>> = HashMap::new();
    for f in fstore::list(conn, filter, None).await? {
        let value = f
            .name
            .split("/flags/")
            .next()
            .unwrap_or_default()
            .to_string();
        by_value.entry(value).or_default().push(f);
    }
    for v in values {
        v.flags = by_value.remove(&v.name).unwrap_or_default();
    }
    Ok(())
}

/// A flag's name split into its value's key, kind and version.
fn flag_key<'a>(name: &'a str) -> Result<(ValueKey<'a>, Kind, i64), Error> {
    let bad = || {
        Error::invalid(
            "name",
            format!(
                "{name:?} is not a flag name such as cycles/2026/units/u/indicators/X/periods/2026/flags/jump-v1"
            ),
        )
    };
    let (value, flag) = name.split_once("/flags/").ok_or_else(bad)?;
    let (kind, version) = flag.rsplit_once("-v").ok_or_else(bad)?;
    let kind = Kind::parse(kind).ok_or_else(bad)?;
    let version = version.parse::<i64>().map_err(|_| bad())?;
    Ok((value_key(value, "name")?, kind, version))
}

impl IndicatorsApi {
    pub(crate) async fn resolve_value_flag(
        &self,
        p: Principal,
        req: ResolveValueFlagRequest,
    ) -> Result<ValueFlag, Error> {
        let digest = idempotency::request_digest("ResolveValueFlag", &req);
        let (k, kind, version) = flag_key(&req.name)?;
        let resolution = match QualityFlagState::try_from(req.resolution) {
            Ok(s @ (QualityFlagState::Explained | QualityFlagState::Corrected)) => s,
            Ok(QualityFlagState::Excluded) => {
                return Err(Error::invalid(
                    "resolution",
                    "EXCLUDED is for survey flags; a value's flag is EXPLAINED or CORRECTED",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "resolution",
                    "must be EXPLAINED or CORRECTED",
                ));
            }
        };
        let reason = if resolution == QualityFlagState::Explained {
            text::one(
                "reason",
                &req.reason,
                text::NOTE,
                "an explanation needs a reason",
            )?
        } else {
            let mut v = Violations::new();
            text::optional(&mut v, "reason", &req.reason, text::NOTE);
            v.into_result()?;
            req.reason.trim().to_string()
        };
        {
            let mut conn = self.db.read.acquire().await?;
            if let Some(done) = idempotency::replay(&mut conn, &p, &req.request_id, &digest).await?
            {
                return Ok(done);
            }
        }
        self.admit(&p, "ResolveValueFlag", k.cycle).await?;
        let key = Key {
            method: "ResolveValueFlag",
            request_id: &req.request_id,
            digest: &digest,
        };
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let flag = fstore::get(w.conn, k, version, kind)
                .await?
                .ok_or_else(|| Error::not_found(req.name.clone()))?;
            let (group, provider) = fstore::owner_of(w.conn, k, version, kind).await?;
            // The role table admits only the office and evaluators; a token
            // that also acts for the unit or its provider still may not
            // clear flags on its own figures.
            if p.acts_for(Role::Unit, k.unit) || p.acts_for(Role::Provider, &provider) {
                return Err(Error::denied(format!(
                    "{} may not resolve flags on its own values",
                    p.subject
                )));
            }
            if flag.state != QualityFlagState::Open as i32 {
                return Err(Error::precondition(
                    Reason::FlagResolved,
                    format!("{} is resolved already; a resolution is final", req.name),
                ));
            }
            if resolution == QualityFlagState::Corrected {
                let current = store::current_version(w.conn, k).await?.unwrap_or(0);
                if current <= version {
                    return Err(Error::precondition(
                        Reason::NotCorrected,
                        format!(
                            "{} was raised on version {version}, still the value's current version; correct the value first (CorrectValue)",
                            req.name
                        ),
                    ));
                }
            }
            let done = Resolution {
                state: resolution,
                by: &p.subject,
                at_ms: now_ms(),
                reason: &reason,
            };
            fstore::resolve(w.conn, k, version, kind, &done).await?;
            w.changed(k.cycle, &group);
            w.audit(
                "values.resolve_flag",
                &req.name,
                &reason,
                json!({"kind": kind.id(), "version": version, "state": resolution.as_str_name()}),
            );
            fstore::get(w.conn, k, version, kind)
                .await?
                .ok_or_else(|| Error::not_found(req.name.clone()))
        })
        .await
    }

    pub(crate) async fn list_value_flags(
        &self,
        p: Principal,
        req: ListValueFlagsRequest,
    ) -> Result<ListValueFlagsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let mut unit = if req.unit.is_empty() {
            String::new()
        } else {
            names::unit_id(&req.unit, "unit")?.to_string()
        };
        let mut provider = String::new();
        if !p.has_any(READERS) {
            // A unit sees the flags of its own values, a provider those of
            // the values it provides (of any unit it names).
            let own = p.own_unit()?.to_string();
            let own_values =
                p.has(Role::Unit) && (unit == own || (unit.is_empty() && !p.has(Role::Provider)));
            if own_values {
                unit = own;
            } else if p.has(Role::Provider) {
                provider = own;
            } else {
                return Err(Error::denied(format!(
                    "{} may only list flags of its own values",
                    p.subject
                )));
            }
        }
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let filter = FlagFilter {
            cycle: &cycle,
            group: "",
            unit: &unit,
            indicator: "",
            provider: &provider,
            open_only: req.open_only,
        };
        let mut conn = self.db.read.acquire().await?;
        let mut flags = fstore::list(&mut conn, &filter, Some(&pg)).await?;
        let next_page_token = pg.next_token(&mut flags);
        Ok(ListValueFlagsResponse {
            flags,
            next_page_token,
        })
    }
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
