//! Provisional standings: read, watched and summarised as distributions.
//! They come from [`Live`](crate::live::Live), never from a fan-out;
//! `GetStandings` itself is answered from the pre-encoded bytes by
//! [`fast`](crate::fast), through [`AggregatorApi::standings`].

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use jixiao_proto::aggregator::{
    Component as ProtoComponent, Distribution, GetDistributionRequest, GetStandingsRequest,
    StandingRow, Standings, WatchStandingsRequest,
};
use jixiao_runtime::{Error, Principal, names};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;
use tonic::Status;

use crate::{
    DOMAIN,
    api::{AggregatorApi, STANDINGS_READERS, decimal_of, fixed},
    live::{Snapshot, View},
};

/// The stream of a group's standings a watcher reads.
pub type StandingsStream = Pin<Box<dyn Stream<Item = Result<Standings, Status>> + Send>>;

impl AggregatorApi {
    pub(crate) async fn standings(
        &self,
        p: &Principal,
        req: &GetStandingsRequest,
    ) -> Result<Arc<Snapshot>, Error> {
        p.require(STANDINGS_READERS, "read provisional standings")?;
        names::group_name(&req.group, "group")?;
        self.live.view(&req.group).await
    }

    pub(crate) async fn get_standings(
        &self,
        p: Principal,
        req: GetStandingsRequest,
    ) -> Result<Standings, Error> {
        Ok(self.standings(&p, &req).await?.standings.clone())
    }

    pub(crate) async fn watch_standings(
        &self,
        p: Principal,
        req: WatchStandingsRequest,
    ) -> Result<StandingsStream, Error> {
        p.require(STANDINGS_READERS, "watch standings")?;
        let group = req.group;
        names::group_name(&group, "group")?;
        let rx = self.live.subscribe(&group).await?;
        let stream = tokio_stream::wrappers::WatchStream::new(rx).filter_map(|v| match v {
            View::Ready(s) => Some(Ok(s.standings.clone())),
            View::Gone(why) => Some(Err(Error::not_found(why).into_status(DOMAIN))),
            View::Pending => None,
        });
        let stream = self.live.shutdown().cut(stream);
        Ok(Box::pin(stream))
    }

    pub(crate) async fn get_distribution(
        &self,
        p: Principal,
        req: GetDistributionRequest,
    ) -> Result<Distribution, Error> {
        p.require(STANDINGS_READERS, "read distributions")?;
        names::group_name(&req.group, "group")?;
        let component = req.component();
        if component == ProtoComponent::Unspecified {
            return Err(Error::invalid("component", "is required"));
        }
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
}
