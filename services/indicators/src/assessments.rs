//! Scores of ASSESSED indicators (DOMAIN.md §5), entered by evaluators
//! within the indicator's weight with a justification; a later score for
//! the same unit and indicator replaces the earlier one.

use jixiao_proto::{
    indicators::{AssessedScore, EnterAssessedScoreRequest},
    plans::ScoringMethod,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations,
    decimal::{self, to_proto},
    idempotency, names, text,
    time::{now_ms, timestamp},
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    api::IndicatorsApi,
    store::{self, NewAssessment},
};

impl IndicatorsApi {
    pub(crate) async fn enter_assessed(
        &self,
        p: Principal,
        req: EnterAssessedScoreRequest,
    ) -> Result<AssessedScore, Error> {
        p.require(&[Role::Evaluator, Role::Office], "enter assessed scores")?;
        let digest = idempotency::request_digest("EnterAssessedScore", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "EnterAssessedScore", &cycle).await?;
        let unit_name = req.unit.clone();
        let unit = names::unit_id(&unit_name, "unit")?.to_string();
        let mut v = Violations::new();
        text::required(&mut v, "justification", &req.justification, text::NOTE);
        let group = self
            .plans
            .group_of_unit(&cycle, &unit_name)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "unit",
                    format!("{unit_name} is not assessed in any group of cycles/{cycle}"),
                )
            })?;
        // The framework alone: the scheme and the approved targets play no
        // part in an assessed score.
        let framework = self.plans.framework(&group).await?;
        let ind = framework
            .indicators
            .iter()
            .find(|i| i.code == req.indicator)
            .ok_or_else(|| {
                Error::invalid(
                    "indicator",
                    format!("{:?} is not an indicator of {group}", req.indicator),
                )
            })?;
        if ind.method != ScoringMethod::Assessed as i32 {
            v.add(
                "indicator",
                format!("{} is not ASSESSED; its provider reports a value", ind.code),
            );
        }
        let weight =
            decimal::figure(&ind.weight).map_err(|e| Error::internal(std::io::Error::other(e)))?;
        let score = match decimal::figure(&req.score) {
            Ok(s) if s < Decimal::ZERO || s > weight => {
                v.add(
                    "score",
                    format!("{s} is outside [0, {}]", decimal::canonical(weight)),
                );
                s
            }
            Ok(s) => s,
            Err(e) => {
                v.add("score", e);
                Decimal::ZERO
            }
        };
        v.into_result()?;
        let key = Key {
            method: "EnterAssessedScore",
            request_id: &req.request_id,
            digest: &digest,
        };
        let group_id = group.rsplit('/').next().unwrap_or_default().to_string();
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let now = now_ms();
            store::put_assessment(
                w.conn,
                &NewAssessment {
                    cycle: &cycle,
                    unit: &unit,
                    indicator: &ind.code,
                    group: &group_id,
                    score,
                    justification: req.justification.trim(),
                    by: &p.subject,
                    at_ms: now,
                },
            )
            .await?;
            let out = AssessedScore {
                name: format!(
                    "cycles/{cycle}/units/{unit}/indicators/{}/assessment",
                    ind.code
                ),
                score: Some(to_proto(score)),
                justification: req.justification.trim().into(),
                assessed_by: p.subject.clone(),
                assess_time: Some(timestamp(now)),
            };
            w.changed(&cycle, &group_id);
            w.audit(
                "assessments.enter",
                &out.name,
                &out.justification,
                json!({"score": decimal::canonical(score)}),
            );
            Ok(out)
        })
        .await
    }
}
