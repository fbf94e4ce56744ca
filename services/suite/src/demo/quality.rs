//! Three realistic data-quality problems planted in the year
//! (docs/DATA-QUALITY.md), found by the rules of the indicators and reviews
//! services and resolved by the office before publication: huli's foreign
//! trade entered three times over (a peer outlier, corrected by its
//! provider), one city-wide energy bulletin attached to two districts'
//! energy figures (shared evidence, explained), and a batch of identical
//! "all satisfied" online answers for one department (straight-lining,
//! excluded). The correction restores the real figure. The exclusion takes
//! out every straight-lined response of the unit, the 90 genuine ones among
//! them, so housing's published survey score is 0.419 below what its
//! honest answers alone give: excluding is the blunt tool, EXPLAINED the
//! other choice.

use jixiao_proto::{
    indicators::{
        CorrectValueRequest, ListValueFlagsRequest, ResolveValueFlagRequest, ValueFlag,
        indicators_service_client::IndicatorsServiceClient,
    },
    reviews::{
        Answer, Channel, ListSurveyFlagsRequest, ResolveSurveyFlagRequest, SurveyFlagKind,
        SurveyResponse, reviews_service_client::ReviewsServiceClient,
    },
    types::{EvidenceItem, QualityFlagState},
};

use super::{CYCLE, DAY, Demo, GroupSpec, YEAR, dec, evidence, ts, year};
use crate::client::failed;

/// The inflated figure: group, indicator, unit.
const INFLATED: (&str, &str, &str) = ("districts", "FOREIGN_TRADE", "huli");
/// The indicator whose figures share one file, and their units.
const SHARED: (&str, &str, [&str; 2]) = ("districts", "ENERGY_PER_GDP", ["siming", "jimei"]);
/// The unit whose survey gets a straight-lined batch: group, unit.
const STRAIGHT: (&str, &str) = ("departments", "housing");

/// The straight-lined batch planted among `honest`, the group's survey
/// responses: enough identical online answers, ten seconds apart (no
/// burst), for them to be more than half of the unit's.
pub(super) fn planted_survey(
    group: &str,
    honest: &[SurveyResponse],
    now: i64,
) -> Vec<SurveyResponse> {
    if group != STRAIGHT.0 {
        return Vec::new();
    }
    let unit = format!("units/{}", STRAIGHT.1);
    let own: Vec<&SurveyResponse> = honest.iter().filter(|r| r.unit == unit).collect();
    let straight = own
        .iter()
        .filter(|r| {
            r.answers.len() >= 4
                && r.answers[0].answer != "dont_know"
                && r.answers.iter().all(|a| a.answer == r.answers[0].answer)
        })
        .count();
    let n = own.len() - 2 * straight + 100;
    (0..n)
        .map(|i| SurveyResponse {
            response_id: format!("xm{YEAR}-{}-web{i:05}", STRAIGHT.1),
            unit: unit.clone(),
            category: "service_users".into(),
            channel: Channel::Online as i32,
            answer_time: ts(now - 10 * DAY + i as i64 * 10_000),
            answers: year::QUESTIONS
                .iter()
                .map(|(q, _)| Answer {
                    question: q.to_string(),
                    answer: "satisfied".into(),
                })
                .collect(),
            respondent: String::new(),
        })
        .collect()
}

/// The figure and evidence a provider reports for `unit`, with the
/// planted problems in.
pub(super) fn planted(
    group: &str,
    code: &str,
    unit: &str,
    value: String,
    files: Vec<EvidenceItem>,
) -> (String, Vec<EvidenceItem>) {
    if (group, code, unit) == INFLATED {
        let real: i64 = value.parse().expect("an integer figure");
        return ((real * 3).to_string(), files);
    }
    if (group, code) == (SHARED.0, SHARED.1) && SHARED.2.contains(&unit) {
        return (value, evidence(code, "city"));
    }
    (value, files)
}

fn value_name(code: &str, unit: &str) -> String {
    format!(
        "cycles/{CYCLE}/units/{unit}/indicators/{code}/periods/{}",
        year::YEAR
    )
}

impl Demo {
    /// Finds the planted problems among the open flags, has the provider
    /// correct the inflated figure and the office resolve the flags.
    /// Returns what happened, for the step line.
    pub(super) async fn data_quality(&self, groups: &[GroupSpec]) -> Result<String, String> {
        let mut office = IndicatorsServiceClient::new(self.office());
        let open = office
            .list_value_flags(ListValueFlagsRequest {
                parent: format!("cycles/{CYCLE}"),
                open_only: true,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .map_err(failed("open data-quality flags"))?
            .into_inner()
            .flags;
        let find = |value: &str, kind: &str| -> Result<&ValueFlag, String> {
            let name = format!("{value}/flags/{kind}-v1");
            open.iter()
                .find(|f| f.name == name)
                .ok_or_else(|| format!("the planted problem was not flagged: {name}"))
        };
        let (_, code, unit) = INFLATED;
        let inflated = value_name(code, unit);
        let outlier = find(&inflated, "peer_outlier")?.clone();
        let shared = SHARED
            .2
            .iter()
            .map(|u| find(&value_name(SHARED.1, u), "shared_evidence").cloned())
            .collect::<Result<Vec<_>, _>>()?;

        let spec = groups
            .iter()
            .find(|g| g.id == INFLATED.0)
            .and_then(|g| g.framework.iter().find(|i| i.code == code))
            .ok_or("the inflated indicator is in the framework")?;
        let (_, real) = year::target_and_final(spec, unit);
        IndicatorsServiceClient::new(self.unit(spec.provider))
            .correct_value(CorrectValueRequest {
                name: inflated.clone(),
                value: dec(real.clone()),
                evidence: evidence(code, unit),
                reason: "误将三年累计数填报为年度数，按海关年报更正".into(),
                request_id: "demo-quality-correct".into(),
            })
            .await
            .map_err(failed("correcting the inflated figure"))?;
        let mut resolve = async |flag: &ValueFlag, state: QualityFlagState, reason: &str| {
            office
                .resolve_value_flag(ResolveValueFlagRequest {
                    name: flag.name.clone(),
                    resolution: state as i32,
                    reason: reason.into(),
                    request_id: format!("demo-quality-{}", flag.name),
                })
                .await
                .map_err(failed(format!("resolving {}", flag.name)))
        };
        resolve(&outlier, QualityFlagState::Corrected, "数据提供单位已更正").await?;
        for f in &shared {
            resolve(
                f,
                QualityFlagState::Explained,
                "两区能耗数据均取自市能源消费统计公报，同一文件属实",
            )
            .await?;
        }
        Ok(format!(
            "data quality: {} open flags; {unit}'s {code} flagged ({}) and corrected to {real}; \
             one energy bulletin on two districts' figures flagged and explained",
            open.len(),
            outlier.explanation
        ))
    }
}

impl Demo {
    /// Finds the planted straight-lined batch among the survey flags and
    /// has the office exclude it. Returns what happened, for the step line.
    pub(super) async fn survey_quality(&self) -> Result<String, String> {
        let mut office = ReviewsServiceClient::new(self.office());
        let campaign = format!("cycles/{CYCLE}/campaigns/survey-{}", STRAIGHT.0);
        let open = office
            .list_survey_flags(ListSurveyFlagsRequest {
                campaign: campaign.clone(),
                unit: String::new(),
                open_only: true,
            })
            .await
            .map_err(failed("open survey flags"))?
            .into_inner()
            .flags;
        let flag = open
            .iter()
            .find(|f| {
                f.unit == format!("units/{}", STRAIGHT.1)
                    && f.kind == SurveyFlagKind::StraightLining as i32
            })
            .ok_or_else(|| format!("the planted batch was not flagged: {open:?}"))?;
        let done = office
            .resolve_survey_flag(ResolveSurveyFlagRequest {
                name: flag.name.clone(),
                resolution: QualityFlagState::Excluded as i32,
                reason: "同一渠道整批雷同答卷，经核查为刷票，予以剔除".into(),
                request_id: "demo-survey-quality".into(),
            })
            .await
            .map_err(failed(format!("excluding {}", flag.name)))?
            .into_inner();
        Ok(format!(
            "survey quality: {} open survey flag{}; {}'s straight-lined batch flagged ({}) and {} responses excluded",
            open.len(),
            if open.len() == 1 { "" } else { "s" },
            STRAIGHT.1,
            flag.explanation,
            done.excluded_responses
        ))
    }
}
