//! Two realistic data-quality problems planted in the year's values
//! (docs/DATA-QUALITY.md), found by the indicators service's rules and
//! resolved by the office before publication: huli's foreign trade entered
//! three times over (a peer outlier, corrected by its provider), and one
//! city-wide energy bulletin attached to two districts' energy figures
//! (shared evidence, explained). The correction restores the real figure,
//! so the published tables are those of a year without the planting.

use jixiao_proto::{
    indicators::{
        CorrectValueRequest, ListValueFlagsRequest, ResolveValueFlagRequest, ValueFlag,
        indicators_service_client::IndicatorsServiceClient,
    },
    types::{EvidenceItem, QualityFlagState},
};

use super::{CYCLE, Demo, GroupSpec, dec, evidence, year};
use crate::client::failed;

/// The inflated figure: group, indicator, unit.
const INFLATED: (&str, &str, &str) = ("districts", "FOREIGN_TRADE", "huli");
/// The indicator whose figures share one file, and their units.
const SHARED: (&str, &str, [&str; 2]) = ("districts", "ENERGY_PER_GDP", ["siming", "jimei"]);

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
