//! Final values from the providers and assessed scores from the
//! evaluation group.

use jixiao_proto::{
    indicators::{
        BatchReportValuesRequest, EnterAssessedScoreRequest, IndicatorValue,
        indicators_service_client::IndicatorsServiceClient,
    },
    types::{Period, PeriodKind},
};
use jixiao_runtime::Role;

use super::{CYCLE, Demo, GroupSpec, YEAR, dec, evidence, quality, year};
use crate::client::failed;

impl Demo {
    /// Each provider reports its indicators' final values for every unit in
    /// one all-or-nothing batch (with the problems `quality` plants); the
    /// evaluation group scores the ASSESSED indicators. Returns the number
    /// of values.
    pub(super) async fn indicator_values(&self, groups: &[GroupSpec]) -> Result<usize, String> {
        let annual = Some(Period {
            kind: PeriodKind::Annual as i32,
            year: YEAR,
            index: 0,
        });
        let mut by_provider: std::collections::BTreeMap<&str, Vec<IndicatorValue>> =
            Default::default();
        let mut evaluator = IndicatorsServiceClient::new(self.as_principal(
            "evaluator-zhang",
            &[Role::Evaluator],
            None,
        ));
        for g in groups {
            for i in &g.framework {
                for u in g.units {
                    if i.method == jixiao_proto::plans::ScoringMethod::Assessed {
                        evaluator
                            .enter_assessed_score(EnterAssessedScoreRequest {
                                parent: format!("cycles/{CYCLE}"),
                                unit: format!("units/{}", u.id),
                                indicator: i.code.into(),
                                score: dec(year::assessed_score(i, u.id)),
                                justification: "经评估小组实地核查，按年度任务完成情况评定".into(),
                                request_id: format!("demo-assessed-{}-{}", g.id, u.id),
                            })
                            .await
                            .map_err(failed(format!("assessed score of {}", u.id)))?;
                        continue;
                    }
                    let (_, value) = year::target_and_final(i, u.id);
                    let (value, evidence) =
                        quality::planted(g.id, i.code, u.id, value, evidence(i.code, u.id));
                    by_provider
                        .entry(i.provider)
                        .or_default()
                        .push(IndicatorValue {
                            unit: format!("units/{}", u.id),
                            indicator: i.code.into(),
                            period: annual,
                            value: dec(value),
                            evidence,
                            ..Default::default()
                        });
                }
            }
        }
        let mut count = 0;
        for (provider, values) in by_provider {
            count += values.len();
            IndicatorsServiceClient::new(self.unit(provider))
                .batch_report_values(BatchReportValuesRequest {
                    parent: format!("cycles/{CYCLE}"),
                    values,
                    request_id: format!("demo-values-{provider}"),
                })
                .await
                .map_err(failed(format!("values of provider {provider}")))?;
        }
        Ok(count)
    }
}
