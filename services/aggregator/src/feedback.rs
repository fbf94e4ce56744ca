//! Each unit's feedback: its row, where its points were lost, its review
//! figures, findings, credits and what is left to rectify, and the change
//! from last year. From the latest published version once there is one,
//! else from the provisional standings.

use jixiao_proto::{
    aggregator::{Feedback, GetFeedbackRequest, IndicatorLoss},
    indicators::{ListValueFlagsRequest, ValueFlagKind},
    reviews::{CampaignMode, ListCampaignsRequest, ListSurveyFlagsRequest, SurveyFlagKind},
    types::QualityFlagState,
};
use jixiao_runtime::{
    Error, Principal, Role,
    client::dependency_error,
    decimal::{round_half_away, to_proto},
    names,
};

use crate::{
    api::{AggregatorApi, decimal_of, fixed},
    inputs::GroupInputs,
    store,
};

impl AggregatorApi {
    pub(crate) async fn get_feedback(
        &self,
        p: Principal,
        req: GetFeedbackRequest,
    ) -> Result<Feedback, Error> {
        names::group_name(&req.group, "group")?;
        let unit_id = names::unit_id(&req.unit, "unit")?;
        if !(p.has_any(&[Role::Office, Role::Evaluator]) || p.acts_for(Role::Unit, unit_id)) {
            return Err(Error::denied(format!(
                "{} may read only its own feedback",
                p.subject
            )));
        }
        let published = store::publication(&self.db, &req.group, None).await?;
        let (inputs, rows, year, is_published) = match published {
            Some(s) => {
                let inputs = GroupInputs::decode(&s.inputs).map_err(|e| {
                    Error::internal(std::io::Error::other(format!("stored inputs: {e}")))
                })?;
                let year = self
                    .plans
                    .cycle(names::group_name(&req.group, "group")?.0)
                    .await
                    .map(|c| c.year)
                    .unwrap_or(0);
                (inputs, s.publication.rows, year, true)
            }
            None => {
                let snapshot = self.live.view(&req.group).await?;
                let inputs =
                    snapshot
                        .inputs
                        .as_deref()
                        .cloned()
                        .ok_or_else(|| Error::Unavailable {
                            dependency: "component services".into(),
                            message: "the provisional inputs are not loaded yet".into(),
                        })?;
                (
                    inputs,
                    snapshot.standings.rows.clone(),
                    snapshot.year,
                    false,
                )
            }
        };
        let unit = inputs
            .units
            .iter()
            .find(|u| u.unit == req.unit)
            .ok_or_else(|| Error::not_found(format!("{} in {}", req.unit, req.group)))?;
        let row = rows
            .into_iter()
            .find(|r| r.unit == req.unit)
            .unwrap_or_default();
        let mut losses: Vec<IndicatorLoss> = Vec::new();
        let mut timeliness: Vec<String> = unit
            .timeliness
            .iter()
            .map(|t| match t.as_str() {
                "PLAN_LATE" => "plan submitted late (方案报送迟缓)".to_string(),
                "PLAN_MISSING" => "plan never submitted".to_string(),
                other => other.to_string(),
            })
            .collect();
        if let Some(ind) = &unit.indicator {
            let mut items: Vec<_> = ind.items.iter().collect();
            items.sort_by(|a, b| {
                (b.weight - b.points)
                    .cmp(&(a.weight - a.points))
                    .then(a.code.cmp(&b.code))
            });
            for i in items {
                losses.push(IndicatorLoss {
                    indicator: i.code.clone(),
                    weight: Some(to_proto(i.weight)),
                    points: Some(to_proto(i.points)),
                    points_lost: Some(to_proto(i.weight - i.points)),
                });
                if i.flags.iter().any(|f| f == "LATE") {
                    timeliness.push(format!("final value of {} reported late", i.code));
                }
            }
        }
        let mut review_details = Vec::new();
        if let Some(r) = &unit.review {
            review_details.push(format!("survey sample {}", r.sample));
            for c in &r.categories {
                review_details.push(format!(
                    "category {}: {} responses, mean {}",
                    c.code,
                    c.responses,
                    round_half_away(c.mean, 3)
                ));
            }
            if let Some(s) = r.satisfaction {
                review_details.push(format!("satisfaction index {}", round_half_away(s, 4)));
            }
            review_details.push(format!("online votes counted {}", r.votes));
            review_details.push(format!("mutual raters {}", r.raters));
            for f in &r.flags {
                review_details.push(format!("flag {f}"));
            }
        }
        let (mut findings, mut credits, mut to_rectify) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(i) = &unit.inspection {
            for f in &i.findings {
                findings.push(format!(
                    "{}: {} ({}), deduction {}",
                    f.name, f.description, f.category, f.deduction
                ));
                if f.to_rectify() {
                    to_rectify.push(format!(
                        "{}: {} (rectification {})",
                        f.name, f.description, f.rectification
                    ));
                }
            }
            for f in &i.contested {
                findings.push(format!(
                    "{}: {} (contested, awaiting the office's decision)",
                    f.name, f.description
                ));
            }
            credits.extend(i.credit_items.iter().map(|c| {
                if c.item_type.is_empty() {
                    c.name.clone()
                } else {
                    format!("{}: {} (+{}, {})", c.item_type, c.problem, c.credit, c.name)
                }
            }));
        }
        let cycle = names::group_name(&req.group, "group")?.0;
        let mut data_quality = self.value_flags(cycle, &req.unit).await?;
        data_quality.extend(self.survey_flags(&req.group, &req.unit).await?);
        let change_from_last_year = match (decimal_of(&row.composite), year) {
            (Some(now), y) if y > 0 => store::archive(&self.db, unit_id)
                .await?
                .into_iter()
                .rfind(|a| a.year < i64::from(y))
                .and_then(|a| decimal_of(&a.row.composite))
                .map(|before| fixed(now - before)),
            _ => None,
        };
        Ok(Feedback {
            unit: req.unit,
            row: Some(row),
            losses,
            review_details,
            findings,
            credits,
            change_from_last_year,
            timeliness_problems: timeliness,
            to_rectify,
            published: is_published,
            data_quality,
        })
    }

    /// The unit's survey flags in the group's raw-responses campaign as
    /// they stand now, one line each.
    async fn survey_flags(&self, group: &str, unit: &str) -> Result<Vec<String>, Error> {
        let cycle = names::group_name(group, "group")?.0;
        let failed = |s| dependency_error("reviews service", s);
        let mut reviews = self.reviews.clone();
        let mut campaigns = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = reviews
                .list_campaigns(ListCampaignsRequest {
                    parent: format!("cycles/{cycle}"),
                    page_size: 500,
                    page_token,
                })
                .await
                .map_err(failed)?
                .into_inner();
            campaigns.extend(
                page.campaigns
                    .into_iter()
                    .filter(|c| c.group == group && c.mode == CampaignMode::RawResponses as i32),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let mut out = Vec::new();
        for c in campaigns {
            let flags = reviews
                .list_survey_flags(ListSurveyFlagsRequest {
                    campaign: c.name.clone(),
                    unit: unit.to_string(),
                    open_only: false,
                })
                .await
                .map_err(failed)?
                .into_inner();
            for f in flags.flags {
                let kind = SurveyFlagKind::try_from(f.kind)
                    .map(|k| k.as_str_name().trim_start_matches("SURVEY_FLAG_KIND_"))
                    .unwrap_or("UNKNOWN");
                out.push(format!(
                    "{}: {kind} ({}): {}",
                    c.name,
                    state_words(f.state, &f.resolution_reason),
                    f.explanation
                ));
            }
        }
        Ok(out)
    }

    /// The unit's value flags as they stand now, one line each.
    async fn value_flags(&self, cycle: &str, unit: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .indicators
                .clone()
                .list_value_flags(ListValueFlagsRequest {
                    parent: format!("cycles/{cycle}"),
                    unit: unit.to_string(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await
                .map_err(|s| dependency_error("indicators service", s))?
                .into_inner();
            for f in page.flags {
                let value = f.name.split("/flags/").next().unwrap_or_default();
                let kind = ValueFlagKind::try_from(f.kind)
                    .map(|k| k.as_str_name().trim_start_matches("VALUE_FLAG_KIND_"))
                    .unwrap_or("UNKNOWN");
                out.push(format!(
                    "{value} version {}: {kind} ({}): {}",
                    f.version,
                    state_words(f.state, &f.resolution_reason),
                    f.explanation
                ));
            }
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }
}

/// A flag's state and, once resolved, why: `EXPLAINED; a reason`.
fn state_words(state: i32, reason: &str) -> String {
    let state = QualityFlagState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("QUALITY_FLAG_STATE_"))
        .unwrap_or("UNKNOWN");
    if reason.is_empty() {
        state.to_string()
    } else {
        format!("{state}; {reason}")
    }
}
