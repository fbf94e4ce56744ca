//! Indicator values (DOMAIN.md §5): providers report final and progress
//! values with evidence, one by one or in all-or-nothing batches, checked
//! against the framework and approved targets; a correction is a new
//! version with a reason; values are read by their unit, their provider
//! and the office's side.

use std::collections::{BTreeSet, HashMap, HashSet};

use jixiao_proto::{
    indicators::{
        BatchReportValuesRequest, BatchReportValuesResponse, CorrectValueRequest, GetValueRequest,
        IndicatorValue, ListValueHistoryRequest, ListValueHistoryResponse, ListValuesRequest,
        ListValuesResponse, ReportValueRequest,
    },
    plans::ScoringMethod,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, decimal, evidence, idempotency, names,
    paging::Page,
    text,
    time::now_ms,
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    api::{GroupView, IndicatorsApi, READERS, may_read, value_key},
    flags, rules,
    store::{self, NewValue, ValueFilter, flags::FlagFilter},
};

impl IndicatorsApi {
    /// Validates rows against the framework and targets; `prefix(i)` names
    /// the row in violations. Returns the rows ready to store, with the
    /// views of their groups by group name.
    pub(crate) async fn validate_rows(
        &self,
        p: &Principal,
        cycle: &str,
        rows: &[IndicatorValue],
        prefix: impl Fn(usize) -> String,
    ) -> Result<(Vec<NewValue>, HashMap<String, GroupView>), Error> {
        let year = self.cycle_year(cycle).await?;
        let groups = self.groups(cycle).await?;
        let mut views: HashMap<String, GroupView> = HashMap::new();
        let mut v = Violations::new();
        let mut out = Vec::new();
        let mut denied = Vec::new();
        let mut seen = HashSet::new();
        for (i, row) in rows.iter().enumerate() {
            let f = prefix(i);
            text::optional(&mut v, format!("{f}.comment"), &row.comment, text::NOTE);
            let unit = match names::unit_id(&row.unit, &format!("{f}.unit")) {
                Ok(u) => u.to_string(),
                Err(Error::Invalid(x)) => {
                    x.into_iter().for_each(|x| v.add(x.field, x.description));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(group) = groups.iter().find(|g| g.units.contains(&row.unit)) else {
                v.add(
                    format!("{f}.unit"),
                    format!(
                        "{} is not assessed in any group of cycles/{cycle}",
                        row.unit
                    ),
                );
                continue;
            };
            if !views.contains_key(&group.name) {
                let view = self.group_view(group.clone()).await?;
                views.insert(group.name.clone(), view);
            }
            let view = &views[&group.name];
            let Some(ind) = view.indicator(&row.indicator) else {
                v.add(
                    format!("{f}.indicator"),
                    format!("{:?} is not an indicator of {}", row.indicator, group.name),
                );
                continue;
            };
            // Before the provider check: an ASSESSED indicator may have none.
            if ind.method == ScoringMethod::Assessed as i32 {
                v.add(
                    format!("{f}.indicator"),
                    format!("{} is ASSESSED: an evaluator enters its score", ind.code),
                );
                continue;
            }
            if !(p.has(Role::Office)
                || p.acts_for(Role::Provider, ind.provider.trim_start_matches("units/")))
            {
                denied.push(format!(
                    "{f} ({} is provided by {})",
                    ind.code, ind.provider
                ));
                continue;
            }
            rules::check_period(&row.period, year, &format!("{f}.period"), &mut v);
            match decimal::figure(&row.value) {
                Ok(value) => {
                    let lo = decimal::figure(&ind.plausible_min).unwrap_or(Decimal::MIN);
                    let hi = decimal::figure(&ind.plausible_max).unwrap_or(Decimal::MAX);
                    if value < lo || value > hi {
                        v.add(
                            format!("{f}.value"),
                            format!(
                                "{value} is outside the plausible range [{}, {}] of {}",
                                decimal::canonical(lo),
                                decimal::canonical(hi),
                                ind.code
                            ),
                        );
                    }
                    if !view
                        .targets
                        .contains_key(&(row.unit.clone(), ind.code.clone()))
                    {
                        v.add(
                            format!("{f}.indicator"),
                            format!("{} has no approved target for {}", row.unit, ind.code),
                        );
                    }
                    evidence::check(&row.evidence, &format!("{f}.evidence"), &mut v);
                    if let Some(period) = &row.period {
                        let key = rules::period_key(period);
                        if !seen.insert((unit.clone(), ind.code.clone(), key.clone())) {
                            v.add(
                                f.clone(),
                                format!("{} {} {key} appears twice", row.unit, ind.code),
                            );
                        }
                        out.push(NewValue {
                            cycle: cycle.to_string(),
                            unit,
                            group: view.id().to_string(),
                            provider: ind.provider.trim_start_matches("units/").to_string(),
                            indicator: ind.code.clone(),
                            period_key: key,
                            period_kind: period.kind,
                            period_index: period.index,
                            value,
                            evidence: row.evidence.clone(),
                            comment: row.comment.trim().to_string(),
                        });
                    }
                }
                Err(e) => v.add(format!("{f}.value"), e),
            }
        }
        if !denied.is_empty() {
            return Err(Error::denied(format!(
                "{} is not the data provider of {}",
                p.subject,
                denied.join(", ")
            )));
        }
        v.into_result()?;
        Ok((out, views))
    }

    /// Reports new values in one write; every row is new.
    async fn report(
        &self,
        p: Principal,
        cycle: String,
        rows: Vec<IndicatorValue>,
        request_id: &str,
        digest: &str,
        single: bool,
    ) -> Result<Vec<IndicatorValue>, Error> {
        let prefix = |i: usize| {
            if single {
                "value".to_string()
            } else {
                format!("values[{i}]")
            }
        };
        // A retry answers before any validation against the plans service.
        {
            let mut conn = self.db.read.acquire().await?;
            if let Some(done) =
                idempotency::replay::<BatchReportValuesResponse>(&mut conn, &p, request_id, digest)
                    .await?
            {
                return Ok(done.values);
            }
        }
        let method = if single {
            "ReportValue"
        } else {
            "BatchReportValues"
        };
        let late = self.admit(&p, method, &cycle).await?;
        let (values, views) = self.validate_rows(&p, &cycle, &rows, prefix).await?;
        let ctx = self.quality_context(&cycle, views).await?;
        let key = Key {
            method: "ReportValues",
            request_id,
            digest,
        };
        let response = write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let mut v = Violations::new();
            for (i, nv) in values.iter().enumerate() {
                if let Some(version) = store::current_version(w.conn, nv.key()).await? {
                    v.add(
                        prefix(i),
                        format!(
                            "already reported (version {version}); send a correction with CorrectValue"
                        ),
                    );
                }
            }
            v.into_result()?;
            let mut stored = Vec::with_capacity(values.len());
            let mut groups = BTreeSet::new();
            let mut finals = BTreeSet::new();
            let mut peers = BTreeSet::new();
            let mut digests = BTreeSet::new();
            let now = now_ms();
            for nv in &values {
                stored.push(store::store_version(w.conn, nv, 1, &p.subject, late, "").await?);
                flags::evaluate(w.conn, &ctx, nv, 1, None, now).await?;
                groups.insert(nv.group.clone());
                finals.insert((nv.group.as_str(), nv.unit.as_str(), nv.indicator.as_str()));
                peers.insert((nv.group.as_str(), nv.indicator.as_str(), nv.period_key.as_str()));
                digests.extend(nv.evidence.iter().map(|e| e.sha256.as_str()));
            }
            // Sets are rechecked in one order (finals, outliers, digests;
            // each sorted), as store::flags::take_turn needs.
            for (g, unit, indicator) in finals {
                flags::recheck_final(w.conn, &ctx, &cycle, g, unit, indicator, now).await?;
            }
            for (g, indicator, period) in peers {
                flags::recompute_outliers(w.conn, &ctx, &cycle, g, indicator, period, now).await?;
            }
            for d in digests {
                groups.extend(flags::recompute_shared(w.conn, &cycle, d, now).await?);
            }
            for s in &mut stored {
                s.flags = store::flags::of_value(w.conn, value_key(&s.name, "name")?).await?;
            }
            for g in &groups {
                w.changed(&cycle, g);
            }
            let resource = if single {
                stored[0].name.clone()
            } else {
                format!("cycles/{cycle}/values")
            };
            w.audit(
                if single { "values.report" } else { "values.batch_report" },
                resource,
                "",
                json!({"values": stored.iter().map(|s| json!({"name": s.name, "value": s.value.as_ref().map(|d| &d.value)})).collect::<Vec<_>>(), "late": late}),
            );
            Ok(BatchReportValuesResponse { values: stored })
        })
        .await?;
        self.metrics.values_stored(false, response.values.len());
        Ok(response.values)
    }

    pub(crate) async fn report_value(
        &self,
        p: Principal,
        req: ReportValueRequest,
    ) -> Result<IndicatorValue, Error> {
        let digest = idempotency::request_digest("ReportValue", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let row = req
            .value
            .ok_or_else(|| Error::invalid("value", "is required"))?;
        let mut out = self
            .report(p, cycle, vec![row], &req.request_id, &digest, true)
            .await?;
        Ok(out.remove(0))
    }

    pub(crate) async fn batch_report(
        &self,
        p: Principal,
        req: BatchReportValuesRequest,
    ) -> Result<BatchReportValuesResponse, Error> {
        let digest = idempotency::request_digest("BatchReportValues", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        if req.values.is_empty() {
            return Err(Error::invalid("values", "send at least one value"));
        }
        if req.values.len() > 10_000 {
            return Err(Error::invalid("values", "at most 10,000 values per batch"));
        }
        let values = self
            .report(p, cycle, req.values, &req.request_id, &digest, false)
            .await?;
        Ok(BatchReportValuesResponse { values })
    }

    pub(crate) async fn correct_value(
        &self,
        p: Principal,
        req: CorrectValueRequest,
    ) -> Result<IndicatorValue, Error> {
        let digest = idempotency::request_digest("CorrectValue", &req);
        let k = value_key(&req.name, "name")?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a correction needs a reason",
        )?;
        {
            let mut conn = self.db.read.acquire().await?;
            if let Some(done) = idempotency::replay(&mut conn, &p, &req.request_id, &digest).await?
            {
                return Ok(done);
            }
        }
        let late = self.admit(&p, "CorrectValue", k.cycle).await?;
        let current = self.current(&req.name).await?;
        let row = IndicatorValue {
            unit: format!("units/{}", k.unit),
            indicator: k.indicator.to_string(),
            period: rules::parse_period_key(k.period),
            value: req.value.clone(),
            evidence: req.evidence.clone(),
            comment: current.comment.clone(),
            ..Default::default()
        };
        let (mut nv, views) = self
            .validate_rows(&p, k.cycle, std::slice::from_ref(&row), |_| {
                "value".to_string()
            })
            .await
            .map_err(|e| match e {
                // Name the fields as this request names them.
                Error::Invalid(vs) => Error::Invalid(
                    vs.into_iter()
                        .map(|mut x| {
                            x.field = x.field.replacen("value.value", "value", 1).replacen(
                                "value.evidence",
                                "evidence",
                                1,
                            );
                            x
                        })
                        .collect(),
                ),
                e => e,
            })?;
        let nv = nv.remove(0);
        let ctx = self.quality_context(k.cycle, views).await?;
        let from = decimal::figure(&current.value).ok();
        let key = Key {
            method: "CorrectValue",
            request_id: &req.request_id,
            digest: &digest,
        };
        let reason = req.reason.trim();
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let version = store::current_version(w.conn, k)
                .await?
                .ok_or_else(|| Error::not_found(req.name.clone()))?;
            let mut stored =
                store::store_version(w.conn, &nv, version + 1, &p.subject, late, reason).await?;
            let now = now_ms();
            flags::evaluate(w.conn, &ctx, &nv, version + 1, from, now).await?;
            flags::recheck_final(w.conn, &ctx, k.cycle, &nv.group, k.unit, k.indicator, now)
                .await?;
            flags::recompute_outliers(w.conn, &ctx, k.cycle, &nv.group, k.indicator, k.period, now)
                .await?;
            let mut others = BTreeSet::new();
            // Sorted, as a batch takes its turns (store::flags::take_turn).
            let digests: BTreeSet<&str> = nv.evidence.iter().map(|e| e.sha256.as_str()).collect();
            for d in digests {
                others.extend(flags::recompute_shared(w.conn, k.cycle, d, now).await?);
            }
            stored.flags = store::flags::of_value(w.conn, k).await?;
            w.changed(k.cycle, &nv.group);
            for g in &others {
                w.changed(k.cycle, g);
            }
            w.audit(
                "values.correct",
                &stored.name,
                reason,
                json!({"from": current.value.as_ref().map(|d| &d.value), "to": stored.value.as_ref().map(|d| &d.value), "version": stored.version}),
            );
            Ok(stored)
        })
        .await
        .inspect(|_| self.metrics.values_stored(true, 1))
    }

    /// The value in force under `name` with its flags, or NOT_FOUND.
    async fn current(&self, name: &str) -> Result<IndicatorValue, Error> {
        let mut conn = self.db.read.acquire().await?;
        let k = value_key(name, "name")?;
        let mut value = store::current_value(&mut conn, k)
            .await?
            .ok_or_else(|| Error::not_found(name.to_string()))?;
        value.flags = store::flags::of_value(&mut conn, k).await?;
        Ok(value)
    }

    /// PERMISSION_DENIED unless `p` may read the value under `name`.
    async fn may_read_value(&self, p: &Principal, name: &str) -> Result<(), Error> {
        let k = value_key(name, "name")?;
        let mut conn = self.db.read.acquire().await?;
        let provider = store::provider_of(&mut conn, k).await?;
        if may_read(p, k.unit, &provider) {
            Ok(())
        } else {
            Err(Error::denied(format!("{} may not read {name}", p.subject)))
        }
    }

    pub(crate) async fn get_value(
        &self,
        p: Principal,
        req: GetValueRequest,
    ) -> Result<IndicatorValue, Error> {
        self.may_read_value(&p, &req.name).await?;
        self.current(&req.name).await
    }

    pub(crate) async fn list_values(
        &self,
        p: Principal,
        req: ListValuesRequest,
    ) -> Result<ListValuesResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A code is matched as it is stored; PostgreSQL refuses NUL in a
        // query, so control characters are the caller's mistake here.
        let mut v = Violations::new();
        text::optional(&mut v, "indicator", &req.indicator, text::LABEL);
        v.into_result()?;
        let group = if req.group.is_empty() {
            String::new()
        } else {
            names::group_name(&req.group, "group")?.1.to_string()
        };
        let mut unit = if req.unit.is_empty() {
            String::new()
        } else {
            names::unit_id(&req.unit, "unit")?.to_string()
        };
        let mut provider = if req.provider.is_empty() {
            String::new()
        } else {
            names::unit_id(&req.provider, "provider")?.to_string()
        };
        if !p.has_any(READERS) {
            // A provider lists what it provides, a unit what concerns it.
            let own = p.own_unit()?.to_string();
            if p.has(Role::Provider) && (provider.is_empty() || provider == own) {
                provider = own;
            } else if p.has(Role::Unit) && (unit.is_empty() || unit == own) {
                unit = own;
            } else {
                return Err(Error::denied(format!(
                    "{} may only list values of its own unit",
                    p.subject
                )));
            }
        }
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let filter = ValueFilter {
            cycle: &cycle,
            group: &group,
            unit: &unit,
            indicator: &req.indicator,
            provider: &provider,
        };
        let mut conn = self.db.read.acquire().await?;
        let mut values = store::current_values(&mut conn, &filter, &pg).await?;
        let next_page_token = pg.next_token(&mut values);
        let flag_filter = FlagFilter {
            cycle: &cycle,
            group: &group,
            unit: &unit,
            indicator: &req.indicator,
            provider: &provider,
            open_only: false,
        };
        flags::attach(&mut conn, &mut values, &flag_filter).await?;
        Ok(ListValuesResponse {
            values,
            next_page_token,
        })
    }

    pub(crate) async fn history(
        &self,
        p: Principal,
        req: ListValueHistoryRequest,
    ) -> Result<ListValueHistoryResponse, Error> {
        let k = value_key(&req.name, "name")?;
        self.may_read_value(&p, &req.name).await?;
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let mut conn = self.db.read.acquire().await?;
        let mut versions = store::versions(&mut conn, k, &pg).await?;
        if versions.is_empty() && pg.offset == 0 {
            return Err(Error::not_found(req.name));
        }
        let mut raised = store::flags::of_value(&mut conn, k).await?;
        for v in &mut versions {
            let (on, rest) = raised.into_iter().partition(|f| f.version == v.version);
            v.flags = on;
            raised = rest;
        }
        let next_page_token = pg.next_token(&mut versions);
        Ok(ListValueHistoryResponse {
            versions,
            next_page_token,
        })
    }
}
