//! Indicator scores of a group (DOMAIN.md §5) by the five scoring methods,
//! with each indicator's points and what it lost, recomputed from the
//! current values whenever the group's revision moves; and the change
//! stream the aggregator follows.

use std::collections::HashMap;

use jixiao_proto::{
    indicators::{
        GetGroupScoresRequest, GroupScores, IndicatorScore, ScoreChange, ScoreFlag,
        UnitIndicatorScore,
    },
    plans::ScoringMethod,
};
use jixiao_runtime::{
    Error, Principal,
    changes::{Changes, unchanged_since},
    decimal::{self, to_proto},
    names,
    time::{now_ms, timestamp},
};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;

use crate::{
    api::{IndicatorsApi, READERS, higher, method_of},
    quality::Thresholds,
    scoring::{self, Flag, Method, Spec},
    store,
};

/// The stream of group changes a follower watches.
pub type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ScoreChange, tonic::Status>> + Send>>;

impl IndicatorsApi {
    pub(crate) async fn group_scores(
        &self,
        p: Principal,
        req: GetGroupScoresRequest,
    ) -> Result<GroupScores, Error> {
        p.require(READERS, "read group indicator scores")?;
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        // The revision is read first: a change committed meanwhile shows as a
        // newer revision, never as a newer table under an older number.
        let revision = Changes::revision(&self.db, cycle, gid).await?;
        if unchanged_since(req.known_revision, revision) {
            return Ok(GroupScores {
                group: req.group,
                revision,
                unchanged: true,
                ..Default::default()
            });
        }
        let view = self.group_view_by_name(&req.group).await?;
        let (finals, assessed, open_flags) = {
            let mut conn = self.db.read.acquire().await?;
            let mut finals = HashMap::new();
            for r in store::group_values(&mut conn, cycle, gid, true).await? {
                finals.insert(
                    (format!("units/{}", r.unit_id), r.indicator),
                    (decimal::from_db(&r.value)?, r.late != 0),
                );
            }
            (
                finals,
                store::assessed_scores(&mut conn, cycle, gid).await?,
                store::flags::open_severities(&mut conn, cycle, gid).await?,
            )
        };
        let floor = decimal::figure(&view.scheme.peer_rank_floor).unwrap_or(Decimal::new(6, 1));
        let units = &view.group.units;
        let mut per_unit: Vec<Vec<IndicatorScore>> = vec![Vec::new(); units.len()];
        for ind in &view.indicators {
            let weight = decimal::figure(&ind.weight).unwrap_or_default();
            let spec = Spec {
                method: method_of(ind),
                direction: if higher(ind) {
                    scoring::Direction::Higher
                } else {
                    scoring::Direction::Lower
                },
                weight,
                floor,
            };
            let inputs: Vec<scoring::Input> = units
                .iter()
                .map(|u| {
                    let key = (u.clone(), ind.code.clone());
                    scoring::Input {
                        target: view.targets.get(&key).copied(),
                        actual: finals.get(&key).map(|f| f.0),
                        assessed: assessed.get(&key).copied(),
                    }
                })
                .collect();
            for (i, (scored, input)) in scoring::score(&spec, &inputs)
                .into_iter()
                .zip(&inputs)
                .enumerate()
            {
                let mut flags = Vec::new();
                match scored.flag {
                    Some(Flag::MissingValue) => flags.push(ScoreFlag::MissingValue as i32),
                    Some(Flag::MissingTarget) => flags.push(ScoreFlag::MissingTarget as i32),
                    None => {}
                }
                if finals
                    .get(&(units[i].clone(), ind.code.clone()))
                    .is_some_and(|f| f.1)
                {
                    flags.push(ScoreFlag::Late as i32);
                }
                // Only flags of the blocking severity show here: the others
                // are on the values and hold nothing back.
                let quality = Thresholds::of(&view.scheme, &ind.code);
                if open_flags
                    .get(&(units[i].clone(), ind.code.clone()))
                    .is_some_and(|s| s.iter().any(|s| quality.blocks(*s)))
                {
                    flags.push(ScoreFlag::DataQuality as i32);
                }
                per_unit[i].push(IndicatorScore {
                    indicator: ind.code.clone(),
                    method: ScoringMethod::try_from(ind.method)
                        .map(|m| {
                            m.as_str_name()
                                .trim_start_matches("SCORING_METHOD_")
                                .to_string()
                        })
                        .unwrap_or_default(),
                    weight: Some(to_proto(weight)),
                    target: input.target.map(to_proto),
                    actual: if spec.method == Method::Assessed {
                        input.assessed.map(to_proto)
                    } else {
                        input.actual.map(to_proto)
                    },
                    points: Some(to_proto(scored.points)),
                    points_lost: Some(to_proto(weight - scored.points)),
                    flags,
                });
            }
        }
        let units = units
            .iter()
            .zip(per_unit)
            .map(|(u, indicators)| {
                let total: Decimal = indicators
                    .iter()
                    .filter_map(|s| decimal::optional(&s.points).ok().flatten())
                    .sum();
                let complete = indicators.iter().all(|s| {
                    !s.flags.iter().any(|f| {
                        *f == ScoreFlag::MissingValue as i32
                            || *f == ScoreFlag::MissingTarget as i32
                    })
                });
                UnitIndicatorScore {
                    unit: u.clone(),
                    total: Some(to_proto(total)),
                    indicators,
                    complete,
                }
            })
            .collect();
        Ok(GroupScores {
            group: req.group,
            units,
            revision,
            compute_time: Some(timestamp(now_ms())),
            unchanged: false,
        })
    }

    /// The change signals of a cycle's groups (or of every cycle).
    pub(crate) async fn watch(&self, p: Principal, cycle: &str) -> Result<ChangeStream, Error> {
        let changes = self.changes.watch_for(&self.db, &p, cycle).await?;
        Ok(Box::pin(changes.map(|c| {
            Ok(ScoreChange {
                group: c.group,
                revision: c.revision,
                traceparent: c.traceparent.unwrap_or_default(),
                change_time: c.time_ms.map(jixiao_runtime::time::timestamp),
            })
        })))
    }
}
