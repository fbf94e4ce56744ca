//! Provisional standings: read, watched and summarised as distributions.
//! They come from [`Live`](crate::live::Live), never from a fan-out;
//! `GetStandings` itself is answered from the pre-encoded bytes by
//! [`fast`](crate::fast), through [`AggregatorApi::standings`].

use std::{collections::HashMap, pin::Pin, sync::Arc};

use futures::Stream;
use jixiao_proto::aggregator::{
    Component as ProtoComponent, Distribution, GetDistributionRequest, GetStandingsRequest,
    StandingRow, Standings, WatchStandingsRequest,
};
use jixiao_runtime::{Error, Principal, Violations, deadline::Deadline, names};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;
use tonic::Status;

use crate::{
    DOMAIN,
    api::{AggregatorApi, STANDINGS_READERS, decimal_of, fixed},
    live::{Snapshot, View, includes},
    sources::Source,
};

/// The stream of a group's standings a watcher reads.
pub type StandingsStream = Pin<Box<dyn Stream<Item = Result<Standings, Status>> + Send>>;

/// The snapshots behind a watcher's stream: `fast` sends their encoded
/// bytes, so a new table costs each watcher no copy and no encoding.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Arc<Snapshot>, Error>> + Send>>;

impl AggregatorApi {
    /// `GetStandings`, for the pre-encoded read path: the current view, or
    /// with `min_service_revisions` the first that includes them.
    pub(crate) async fn standings(
        &self,
        p: &Principal,
        req: &GetStandingsRequest,
        deadline: Option<Deadline>,
    ) -> Result<Arc<Snapshot>, Error> {
        p.require(STANDINGS_READERS, "read provisional standings")?;
        let wanted = checked(&req.group, &req.min_service_revisions)?;
        if wanted.is_empty() {
            return self.live.view(&req.group).await;
        }
        self.live
            .view_including(&p.subject, &req.group, &wanted, deadline)
            .await
    }

    pub(crate) async fn get_standings(
        &self,
        p: Principal,
        req: GetStandingsRequest,
    ) -> Result<Standings, Error> {
        // Only reached by a server mounted without `fast`, which keeps no
        // deadline: a condition then waits until it holds.
        Ok(self.standings(&p, &req, None).await?.standings.clone())
    }

    /// The snapshots of a group a watcher is sent: the current one (with
    /// `min_service_revisions`, the first that includes them), then each
    /// new one, until the group is gone or the service shuts down.
    pub(crate) async fn watch_snapshots(
        &self,
        p: &Principal,
        req: &WatchStandingsRequest,
        deadline: Option<Deadline>,
    ) -> Result<SnapshotStream, Error> {
        p.require(STANDINGS_READERS, "watch standings")?;
        let wanted = checked(&req.group, &req.min_service_revisions)?;
        if !wanted.is_empty() {
            // The call waits (within its deadline) for standings that
            // include the revisions; the stream starts from them.
            self.live
                .view_including(&p.subject, &req.group, &wanted, deadline)
                .await?;
        }
        let rx = self.live.subscribe(&req.group).await?;
        let stream = tokio_stream::wrappers::WatchStream::new(rx).filter_map(move |v| match v {
            View::Ready(s) if includes(&s.standings, &wanted) => Some(Ok(s)),
            View::Ready(_) | View::Pending => None,
            View::Gone(why) => Some(Err(Error::not_found(why))),
        });
        Ok(Box::pin(self.live.shutdown().cut(stream)))
    }

    pub(crate) async fn watch_standings(
        &self,
        p: Principal,
        req: WatchStandingsRequest,
        deadline: Option<Deadline>,
    ) -> Result<StandingsStream, Error> {
        // Only reached by a server mounted without `fast`.
        let snapshots = self.watch_snapshots(&p, &req, deadline).await?;
        Ok(Box::pin(snapshots.map(|s| {
            s.map(|s| s.standings.clone())
                .map_err(|e| e.into_status(DOMAIN))
        })))
    }

    pub(crate) async fn get_distribution(
        &self,
        p: Principal,
        req: GetDistributionRequest,
    ) -> Result<Distribution, Error> {
        p.require(STANDINGS_READERS, "read distributions")?;
        names::group_name(&req.group, "group")?;
        let component = match ProtoComponent::try_from(req.component) {
            Ok(ProtoComponent::Unspecified) => {
                return Err(Error::invalid("component", "is required"));
            }
            Ok(c) => c,
            Err(_) => {
                return Err(Error::invalid(
                    "component",
                    format!("{} is not one of the Component values", req.component),
                ));
            }
        };
        let snapshot = self.live.view(&req.group).await?;
        let pick = |r: &StandingRow| -> Option<Decimal> {
            decimal_of(match component {
                ProtoComponent::Indicator => &r.indicator,
                ProtoComponent::Survey => &r.survey,
                ProtoComponent::Online => &r.online,
                ProtoComponent::Mutual => &r.mutual,
                ProtoComponent::Inspection => &r.adjustment,
                ProtoComponent::Composite | ProtoComponent::Unspecified => &r.composite,
            })
        };
        let mut values: Vec<Decimal> = snapshot.standings.rows.iter().filter_map(pick).collect();
        values.sort();
        Ok(distribution(&values))
    }
}

/// The group and the condition of a standings request, every bad field
/// named at once.
fn checked(group: &str, condition: &HashMap<String, i64>) -> Result<Vec<(Source, i64)>, Error> {
    let mut v = Violations::new();
    match names::group_name(group, "group") {
        Ok(_) => {}
        Err(Error::Invalid(bad)) => bad.into_iter().for_each(|b| v.add(b.field, b.description)),
        Err(e) => return Err(e),
    }
    let wanted = wanted(condition, &mut v);
    v.into_result()?;
    Ok(wanted)
}

/// The read-your-writes condition of a request, checked: every key names
/// a followed service, every revision is 0 or more (0 asks for nothing).
/// Each bad entry is added to `v`, named `min_service_revisions["key"]`.
fn wanted(map: &HashMap<String, i64>, v: &mut Violations) -> Vec<(Source, i64)> {
    let mut wanted = Vec::new();
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    for (key, &revision) in entries {
        let field = format!("min_service_revisions[{key:?}]");
        match Source::from_key(key) {
            None => v.add(
                field,
                "is not a followed service: use plans, indicators, reviews or inspections",
            ),
            Some(_) if revision < 0 => v.add(field, "a revision is 0 or more"),
            Some(_) if revision == 0 => {}
            Some(source) => wanted.push((source, revision)),
        }
    }
    wanted.sort();
    wanted
}

/// Min, max, mean and median, each a published figure.
fn distribution(sorted: &[Decimal]) -> Distribution {
    let n = sorted.len();
    if n == 0 {
        return Distribution::default();
    }
    let sum = sorted
        .iter()
        .fold(Decimal::ZERO, |a, b| a.saturating_add(*b));
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        sorted[n / 2 - 1] / Decimal::TWO + sorted[n / 2] / Decimal::TWO
    };
    Distribution {
        min: Some(fixed(sorted[0])),
        max: Some(fixed(sorted[n - 1])),
        mean: Some(fixed(sum / Decimal::from(n))),
        median: Some(fixed(median)),
        count: n as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn distribution_of_an_even_count_takes_the_middle_mean() {
        let v: Vec<Decimal> = ["75.1", "80", "82.25", "90"]
            .iter()
            .map(|s| Decimal::from_str(s).unwrap())
            .collect();
        let d = distribution(&v);
        assert_eq!(d.median.unwrap().value, "81.125");
        assert_eq!(d.mean.unwrap().value, "81.838");
        assert_eq!((d.min.unwrap().value.as_str(), d.count), ("75.100", 4));
    }

    #[test]
    fn an_empty_distribution_has_no_figures() {
        assert_eq!(distribution(&[]).count, 0);
    }

    fn map(entries: &[(&str, i64)]) -> HashMap<String, i64> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_condition_names_followed_services_and_revisions_from_zero() {
        let mut v = Violations::new();
        let got = wanted(
            &map(&[("reviews", 17), ("plans", 0), ("inspections", 2)]),
            &mut v,
        );
        assert!(v.is_empty());
        // Zero asks for nothing; the rest in source order.
        assert_eq!(got, [(Source::Reviews, 17), (Source::Inspections, 2)]);

        let mut v = Violations::new();
        let got = wanted(
            &map(&[("reviewz", 1), ("indicators", -1), ("plans", 3)]),
            &mut v,
        );
        assert_eq!(got, [(Source::Plans, 3)]);
        let fields: Vec<&str> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                r#"min_service_revisions["indicators"]"#,
                r#"min_service_revisions["reviewz"]"#
            ]
        );
    }

    #[test]
    fn a_bad_group_and_a_bad_condition_are_named_together() {
        let Err(Error::Invalid(bad)) = checked("groups/x", &map(&[("", 1)])) else {
            panic!("refused")
        };
        let fields: Vec<&str> = bad.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["group", r#"min_service_revisions[""]"#]);
        assert_eq!(
            checked("cycles/2026/groups/districts", &HashMap::new()).unwrap(),
            []
        );
    }

    #[test]
    fn standings_include_a_condition_when_every_revision_is_reached() {
        let s = Standings {
            service_revisions: map(&[("reviews", 17), ("indicators", 4)]),
            ..Default::default()
        };
        assert!(includes(&s, &[]));
        assert!(includes(
            &s,
            &[(Source::Reviews, 17), (Source::Indicators, 3)]
        ));
        assert!(!includes(&s, &[(Source::Reviews, 18)]));
        // A service not read yet includes nothing.
        assert!(!includes(&s, &[(Source::Inspections, 1)]));
    }
}
