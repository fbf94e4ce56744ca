//! The component services the aggregator reads: plans (members, scheme,
//! names, timeliness), indicators, reviews and inspections, each turned
//! into the parts of [`GroupInputs`](crate::inputs::GroupInputs). Every
//! failure names the service, so a stale mark can say which one is down.

use std::{collections::HashMap, sync::Arc};

use futures::{Stream, StreamExt};
use jixiao_proto::{
    indicators::{
        GetGroupScoresRequest, GroupScores, ScoreFlag, WatchScoreChangesRequest,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        Finding, GetGroupAdjustmentsRequest, GroupAdjustments, RectificationState,
        WatchAdjustmentChangesRequest, inspections_service_client::InspectionsServiceClient,
    },
    plans::{
        GetGroupRequest, GetTimelinessReportRequest, Group, Phase, TimelinessReport,
        WatchPlanChangesRequest, plans_service_client::PlansServiceClient,
    },
    reviews::{
        GetGroupReviewScoresRequest, GroupReviewScores, ReviewFlag, WatchReviewChangesRequest,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{
    Error,
    changes::ALL_CYCLES,
    client::{ServiceChannel, dependency_error},
    decimal,
    plans_lookup::PlansLookup,
    telemetry::{SpanContext, link_of},
};
use prost::Message as _;
use rust_decimal::Decimal;

use crate::inputs::{
    CategoryInput, CreditItem, FindingInput, IndicatorItem, IndicatorPart, InspectionPart,
    ReviewPart, SchemeFigures,
};

/// A service the aggregator follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Plans,
    Indicators,
    Reviews,
    Inspections,
}

impl Source {
    /// The three services with change streams.
    pub const FOLLOWED: [Source; 4] = [
        Source::Plans,
        Source::Indicators,
        Source::Reviews,
        Source::Inspections,
    ];

    /// How errors and stale marks name it.
    pub fn service(self) -> &'static str {
        match self {
            Source::Plans => "plans service",
            Source::Indicators => "indicators service",
            Source::Reviews => "reviews service",
            Source::Inspections => "inspections service",
        }
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// How `Standings.service_revisions` and the `jixiao-revision` header
    /// name it.
    pub fn key(self) -> &'static str {
        match self {
            Source::Plans => "plans",
            Source::Indicators => "indicators",
            Source::Reviews => "reviews",
            Source::Inspections => "inspections",
        }
    }

    /// The source a key names.
    pub fn from_key(key: &str) -> Option<Source> {
        Source::FOLLOWED.into_iter().find(|s| s.key() == key)
    }
}

/// Channels to the four services, authenticated as the aggregator.
#[derive(Clone)]
pub struct Channels {
    pub plans: ServiceChannel,
    pub indicators: ServiceChannel,
    pub reviews: ServiceChannel,
    pub inspections: ServiceChannel,
}

/// What the plans service says about a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlansPart {
    /// Members, `units/{u}`, sorted.
    pub units: Vec<String>,
    pub display_names: HashMap<String, String>,
    pub scheme: SchemeFigures,
    /// Per unit: PLAN_LATE, PLAN_MISSING.
    pub timeliness: HashMap<String, Vec<String>>,
    pub year: i32,
}

/// A group's figures from one service with the change counter they were
/// read under.
#[derive(Debug)]
pub struct Revised<T> {
    pub revision: i64,
    /// `None` when the caller's copy is still current: the service said
    /// "unchanged", or its figures equal the copy (compared on the
    /// background lane, not in the refresh).
    pub part: Option<T>,
    /// The service computed every unit's figures (neither "unchanged" nor
    /// only the units changed since the caller's copy): such an answer
    /// holds whatever plans data changed, and how long it took sets the
    /// source's patience.
    pub whole: bool,
}

/// The largest answer read from a component service. A group's figures
/// grow with its members (the reviews service's are about 200 bytes a
/// unit), so tonic's default of 4 MB would refuse every refresh of a group
/// of some 20,000 units.
const GROUP_READ_LIMIT: usize = 64 * 1024 * 1024;

/// A component's figures of a group, by unit (`units/{u}`). Each unit's
/// are shared: a partial answer's merge and the table's inputs take them
/// without copying.
pub type ByUnit<T> = HashMap<String, Arc<T>>;

/// Reads the component services.
#[derive(Clone)]
pub struct Sources {
    plans: PlansLookup,
    channels: Channels,
}

fn dec(source: Source, field: &str, d: &Option<jixiao_proto::Decimal>) -> Result<Decimal, Error> {
    decimal::required(d).map_err(|e| bad_answer(source, field, e))
}

fn opt_dec(
    source: Source,
    field: &str,
    d: &Option<jixiao_proto::Decimal>,
) -> Result<Option<Decimal>, Error> {
    decimal::optional(d).map_err(|e| bad_answer(source, field, e))
}

fn bad_answer(source: Source, field: &str, e: String) -> Error {
    Error::Unavailable {
        dependency: source.service().into(),
        message: format!("answered with a bad {field}: {e}"),
    }
}

/// A watch call's stream as [`Signal`]s: the four services' change
/// messages have the same fields.
macro_rules! signals {
    ($call:expr, $err:ident) => {
        Box::pin($call.await.map_err($err)?.into_inner().map(move |c| {
            c.map(|c| Signal {
                group: c.group,
                revision: c.revision,
                cause: link_of(&c.traceparent),
                written_ms: c.change_time.as_ref().map(jixiao_runtime::time::millis),
            })
            .map_err($err)
        }))
    };
}

impl Sources {
    pub fn new(c: Channels) -> Self {
        Sources {
            plans: PlansLookup::new(c.plans.clone()),
            channels: c,
        }
    }

    /// Groups of every cycle that is not archived.
    pub async fn active_groups(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for c in self.plans.cycles().await? {
            if c.phase() == Phase::Archived {
                continue;
            }
            let id = c.name.trim_start_matches("cycles/");
            out.extend(self.plans.groups(id).await?.iter().map(|g| g.name.clone()));
        }
        Ok(out)
    }

    /// Members, names, scheme and timeliness of a group, with the group's
    /// plan-side change counter (read before the rest). The group's
    /// members and the cycle's timeliness (a row per unit) are fetched
    /// undecoded and joined on the background lane, as the components'
    /// figures are; `held`: the copy the caller has.
    pub async fn plans_part(
        &self,
        group_name: &str,
        held: Option<Arc<PlansPart>>,
    ) -> Result<Revised<PlansPart>, Error> {
        let (cycle, _) = jixiao_runtime::names::group_name(group_name, "group")?;
        let plans = &self.channels.plans;
        let service = jixiao_proto::plans::plans_service_server::SERVICE_NAME;
        let err = |e| dependency_error(Source::Plans.service(), e);
        // The group (with its counter) first: what is read after it is at
        // least as new as the revision the standings will say they include.
        let group = call_raw(
            plans,
            service,
            "GetGroup",
            GetGroupRequest {
                name: group_name.into(),
            },
        )
        .await
        .map_err(err)?;
        let timeliness = async {
            let req = GetTimelinessReportRequest {
                cycle: format!("cycles/{cycle}"),
            };
            call_raw(plans, service, "GetTimelinessReport", req)
                .await
                .map_err(err)
        };
        let (scheme, cycle_info, units, timeliness) = tokio::try_join!(
            self.plans.scheme(group_name),
            self.plans.cycle(cycle),
            self.plans.units(),
            timeliness,
        )?;
        let p = Source::Plans;
        let scheme = SchemeFigures {
            indicator_max: dec(p, "indicator_max", &scheme.indicator_max)?,
            survey_max: dec(p, "survey_max", &scheme.survey_max)?,
            online_max: dec(p, "online_max", &scheme.online_max)?,
            mutual_max: dec(p, "mutual_max", &scheme.mutual_max)?,
            cap: dec(p, "inspection_cap", &scheme.inspection_cap)?,
        };
        let fetched = Arc::new(PlansAnswers {
            group_name: group_name.to_string(),
            group,
            timeliness,
            units,
            scheme,
            year: cycle_info.year,
        });
        let on_lane = fetched.clone();
        let got = crate::background::run(move || {
            let (revision, part) = on_lane.part()?;
            Ok(Revised {
                revision,
                part: unless_held(part, held.as_deref()),
                whole: true,
            })
        })
        .await;
        // Thousands of names: dropped on the lane too.
        crate::background::discard(fetched);
        got?
    }

    /// Indicator components by unit, unless `known` is still current (or
    /// they equal `held`, the copy the caller has).
    pub async fn indicators(
        &self,
        group: &str,
        known: i64,
        held: Option<Arc<ByUnit<IndicatorPart>>>,
    ) -> Result<Revised<ByUnit<IndicatorPart>>, Error> {
        read_group(
            Source::Indicators,
            &self.channels.indicators,
            jixiao_proto::indicators::indicators_service_server::SERVICE_NAME,
            "GetGroupScores",
            GetGroupScoresRequest {
                group: group.into(),
                known_revision: known,
            },
            known,
            held,
            |a: &GroupScores| (a.unchanged, a.revision),
            |a, held| Ok((unless_held(indicator_parts(a.units)?, held), true)),
        )
        .await
    }

    /// Review components by unit, unless `known` is still current (or
    /// they equal `held`, the copy the caller has, at `known`). The
    /// service is asked for the units changed since `known` alone, which
    /// are merged into `held` here.
    pub async fn reviews(
        &self,
        group: &str,
        known: i64,
        held: Option<Arc<ByUnit<ReviewPart>>>,
    ) -> Result<Revised<ByUnit<ReviewPart>>, Error> {
        read_group(
            Source::Reviews,
            &self.channels.reviews,
            jixiao_proto::reviews::reviews_service_server::SERVICE_NAME,
            "GetGroupReviewScores",
            GetGroupReviewScoresRequest {
                group: group.into(),
                known_revision: known,
                changes_only: known != 0,
            },
            known,
            held,
            |a: &GroupReviewScores| (a.unchanged, a.revision),
            review_answer,
        )
        .await
    }

    /// Inspection components by unit, unless `known` is still current (or
    /// they equal `held`, the copy the caller has).
    pub async fn inspections(
        &self,
        group: &str,
        known: i64,
        held: Option<Arc<ByUnit<InspectionPart>>>,
    ) -> Result<Revised<ByUnit<InspectionPart>>, Error> {
        read_group(
            Source::Inspections,
            &self.channels.inspections,
            jixiao_proto::inspections::inspections_service_server::SERVICE_NAME,
            "GetGroupAdjustments",
            GetGroupAdjustmentsRequest {
                group: group.into(),
                known_revision: known,
            },
            known,
            held,
            |a: &GroupAdjustments| (a.unchanged, a.revision),
            |a, held| Ok((unless_held(inspection_parts(a.units)?, held), true)),
        )
        .await
    }

    /// The change stream of a followed service over every cycle: group
    /// names whose figures may have changed, each with the trace context of
    /// the call that changed them.
    pub async fn watch(
        &self,
        source: Source,
    ) -> Result<std::pin::Pin<Box<dyn Stream<Item = Result<Signal, Error>> + Send>>, Error> {
        let err = move |e| dependency_error(source.service(), e);
        let cycle = ALL_CYCLES.to_string();
        Ok(match source {
            Source::Indicators => signals!(
                IndicatorsServiceClient::new(self.channels.indicators.clone())
                    .watch_score_changes(WatchScoreChangesRequest { cycle }),
                err
            ),
            Source::Reviews => signals!(
                ReviewsServiceClient::new(self.channels.reviews.clone())
                    .watch_review_changes(WatchReviewChangesRequest { cycle }),
                err
            ),
            Source::Inspections => signals!(
                InspectionsServiceClient::new(self.channels.inspections.clone())
                    .watch_adjustment_changes(WatchAdjustmentChangesRequest { cycle }),
                err
            ),
            Source::Plans => signals!(
                PlansServiceClient::new(self.channels.plans.clone())
                    .watch_plan_changes(WatchPlanChangesRequest { cycle }),
                err
            ),
        })
    }
}

/// A group's indicator figures as inputs, by unit (on the background lane).
fn indicator_parts(
    units: Vec<jixiao_proto::indicators::UnitIndicatorScore>,
) -> Result<ByUnit<IndicatorPart>, Error> {
    let s = Source::Indicators;
    let mut out = HashMap::with_capacity(units.len());
    for u in units {
        let mut items = Vec::with_capacity(u.indicators.len());
        for i in u.indicators {
            items.push(IndicatorItem {
                weight: dec(s, "weight", &i.weight)?,
                points: dec(s, "points", &i.points)?,
                flags: i
                    .flags()
                    .filter(|f| *f != ScoreFlag::Unspecified)
                    .map(|f| strip(f.as_str_name(), "SCORE_FLAG_"))
                    .collect(),
                code: i.indicator,
            });
        }
        let part = IndicatorPart {
            complete: u.complete,
            items,
        };
        out.insert(u.unit, Arc::new(part));
    }
    Ok(out)
}

/// A group's review figures as inputs, by unit (on the background lane).
fn review_parts(
    units: Vec<jixiao_proto::reviews::UnitReviewScore>,
) -> Result<ByUnit<ReviewPart>, Error> {
    let s = Source::Reviews;
    let mut out = HashMap::with_capacity(units.len());
    for u in units {
        let mut categories = Vec::with_capacity(u.categories.len());
        for c in &u.categories {
            // A category nobody has answered yet has no mean.
            if c.responses == 0 && c.mean.is_none() {
                continue;
            }
            categories.push(CategoryInput {
                code: c.category.clone(),
                responses: c.responses,
                mean: dec(s, "mean", &c.mean)?,
            });
        }
        let part = ReviewPart {
            survey: opt_dec(s, "survey", &u.survey)?,
            online: opt_dec(s, "online", &u.online)?,
            mutual: opt_dec(s, "mutual", &u.mutual)?,
            sample: u.survey_sample,
            votes: u.votes,
            raters: u.raters.into(),
            satisfaction: opt_dec(s, "satisfaction_index", &u.satisfaction_index)?,
            flags: u
                .flags()
                .filter(|f| *f != ReviewFlag::Unspecified)
                .map(|f| strip(f.as_str_name(), "REVIEW_FLAG_"))
                .collect(),
            categories,
        };
        out.insert(u.unit, Arc::new(part));
    }
    Ok(out)
}

/// A reviews answer as the group's review inputs: a whole answer as it
/// is, one of the units changed since the copy held merged into it.
fn review_answer(
    a: GroupReviewScores,
    held: Option<&ByUnit<ReviewPart>>,
) -> Result<(Option<ByUnit<ReviewPart>>, bool), Error> {
    let listed = review_parts(a.units)?;
    if !a.changes_only {
        return Ok((unless_held(listed, held), true));
    }
    let Some(held) = held else {
        return Err(bad_answer(
            Source::Reviews,
            "changes_only",
            "changes to a copy that was never asked about".into(),
        ));
    };
    if listed
        .iter()
        .all(|(unit, part)| held.get(unit) == Some(part))
    {
        return Ok((None, false));
    }
    let mut merged = held.clone();
    merged.extend(listed);
    Ok((Some(merged), false))
}

/// `new`, or `None` when it equals the copy held.
fn unless_held<T: PartialEq>(new: T, held: Option<&T>) -> Option<T> {
    (held != Some(&new)).then_some(new)
}

/// The plans service's answers behind a group's [`PlansPart`].
struct PlansAnswers {
    group_name: String,
    /// A `Group`, undecoded.
    group: bytes::Bytes,
    /// A `TimelinessReport`, undecoded.
    timeliness: bytes::Bytes,
    units: Vec<jixiao_proto::plans::Unit>,
    scheme: SchemeFigures,
    year: i32,
}

impl PlansAnswers {
    /// The group's plan-side counter and part (on the background lane).
    fn part(&self) -> Result<(i64, PlansPart), Error> {
        let bad = |e: prost::DecodeError| bad_answer(Source::Plans, "message", e.to_string());
        let group = Group::decode(self.group.clone()).map_err(bad)?;
        let timeliness = TimelinessReport::decode(self.timeliness.clone()).map_err(bad)?;
        let mut members = group.units;
        members.sort();
        let display_names = self
            .units
            .iter()
            .filter(|u| members.binary_search(&u.name).is_ok())
            .map(|u| (u.name.clone(), u.display_name_zh.clone()))
            .collect();
        let mut late: HashMap<String, Vec<String>> = HashMap::new();
        for t in timeliness
            .units
            .into_iter()
            .filter(|t| t.group == self.group_name)
        {
            let problems = late.entry(t.unit).or_default();
            if t.missing {
                problems.push("PLAN_MISSING".into());
            } else if t.late {
                problems.push("PLAN_LATE".into());
            }
        }
        let part = PlansPart {
            units: members,
            display_names,
            scheme: self.scheme.clone(),
            timeliness: late,
            year: self.year,
        };
        Ok((group.revision, part))
    }
}

/// A group's inspection figures as inputs, by unit (on the background lane).
fn inspection_parts(
    units: Vec<jixiao_proto::inspections::UnitAdjustment>,
) -> Result<ByUnit<InspectionPart>, Error> {
    let s = Source::Inspections;
    let finding = |f: &Finding| -> Result<FindingInput, Error> {
        let rect = f.rectification_state();
        Ok(FindingInput {
            name: f.name.clone(),
            deduction: dec(s, "deduction", &f.deduction)?,
            rectification: if rect == RectificationState::Unspecified {
                "-".into()
            } else {
                strip(rect.as_str_name(), "RECTIFICATION_STATE_")
            },
            category: f.category.clone(),
            description: f.description.clone(),
        })
    };
    let mut out = HashMap::with_capacity(units.len());
    for u in units {
        let part = InspectionPart {
            deductions: dec(s, "deductions", &u.deductions)?,
            credits: dec(s, "credits", &u.credits)?,
            findings: u
                .counting_findings
                .iter()
                .map(finding)
                .collect::<Result<_, _>>()?,
            contested: u
                .contested_findings
                .iter()
                .map(finding)
                .collect::<Result<_, _>>()?,
            credit_items: u
                .verified_items
                .iter()
                .map(|i| {
                    Ok(CreditItem {
                        name: i.name.clone(),
                        item_type: i.item_type.clone(),
                        credit: dec(s, "verified_items.credit", &i.credit)?,
                        problem: i.problem.clone(),
                    })
                })
                .collect::<Result<_, Error>>()?,
        };
        out.insert(u.unit, Arc::new(part));
    }
    Ok(out)
}

/// A change signal: the group, its new revision, and the context of the
/// call behind it.
#[derive(Debug)]
pub struct Signal {
    /// `cycles/{cycle}/groups/{group}`.
    pub group: String,
    /// The group's counter after the change.
    pub revision: i64,
    /// The call that made the change, for the refresh's trace.
    pub cause: Option<SpanContext>,
    /// When the change was written (the component's clock); `None` for a
    /// counter read back.
    pub written_ms: Option<i64>,
}

/// A component's group read: the answer fetched undecoded, then decoded
/// and turned into inputs on the background lane (thousands of units), or
/// taken as "unchanged" when `head` says so (unchanged, revision).
#[allow(clippy::too_many_arguments)]
async fn read_group<Req, Ans, T>(
    s: Source,
    channel: &ServiceChannel,
    service: &'static str,
    method: &'static str,
    req: Req,
    known: i64,
    held: Option<Arc<T>>,
    head: fn(&Ans) -> (bool, i64),
    parts: Parts<Ans, T>,
) -> Result<Revised<T>, Error>
where
    Req: prost::Message + Send + 'static,
    Ans: prost::Message + Default + 'static,
    T: Send + Sync + 'static,
{
    let answer = call_raw(channel, service, method, req)
        .await
        .map_err(|e| dependency_error(s.service(), e))?;
    crate::background::run(move || {
        let answer =
            Ans::decode(answer.clone()).map_err(|e| bad_answer(s, "message", e.to_string()))?;
        let (unchanged_only, revision) = head(&answer);
        if unchanged_only {
            return unchanged(s, known, revision);
        }
        let (part, whole) = parts(answer, held.as_deref())?;
        Ok(Revised {
            revision,
            part,
            whole,
        })
    })
    .await?
}

/// Turns a component's answer into its part, given the copy held: the
/// part unless it equals the copy, and whether the answer was whole.
type Parts<Ans, T> = fn(Ans, Option<&T>) -> Result<(Option<T>, bool), Error>;

/// Calls `method` of `service` and returns the answer undecoded. A
/// group's figures are some 200 bytes a unit: decoding 3,000 units' on a
/// runtime worker held the reads served by that worker for milliseconds
/// (issue 22), so the caller decodes them on the background lane.
async fn call_raw<Req: prost::Message + Send + 'static>(
    channel: &ServiceChannel,
    service: &'static str,
    method: &'static str,
    req: Req,
) -> Result<bytes::Bytes, tonic::Status> {
    let mut grpc =
        tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(GROUP_READ_LIMIT);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let path = http::uri::PathAndQuery::try_from(format!("/{service}/{method}"))
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let mut req = tonic::Request::new(req);
    req.extensions_mut()
        .insert(tonic::GrpcMethod::new(service, method));
    Ok(grpc
        .unary(req, path, jixiao_proto::codec::Undecoded::default())
        .await?
        .into_inner())
}

/// An "unchanged" answer, which only counts for the revision asked about.
fn unchanged<T>(source: Source, known: i64, revision: i64) -> Result<Revised<T>, Error> {
    if known == 0 || revision != known {
        return Err(bad_answer(
            source,
            "unchanged mark",
            format!("revision {revision} is not the {known} asked about"),
        ));
    }
    Ok(Revised {
        revision,
        part: None,
        whole: false,
    })
}

fn strip(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}
