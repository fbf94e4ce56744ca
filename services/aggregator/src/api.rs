//! What every handler of the aggregator shares: the service value with its
//! database, live standings and plans look-ups; who reads what; and the
//! figures as they go on the wire.

use jixiao_proto::{
    Decimal as ProtoDecimal, indicators::indicators_service_client::IndicatorsServiceClient,
    reviews::reviews_service_client::ReviewsServiceClient,
};
use jixiao_runtime::{Db, Role, client::ServiceChannel, plans_lookup::PlansLookup};
use rust_decimal::Decimal;

use crate::{live::Live, rules};

/// Who reads provisional standings: dashboards (a viewer token is the
/// office's grant), the evaluation group and the office.
pub(crate) const STANDINGS_READERS: &[Role] =
    &[Role::Office, Role::Evaluator, Role::Viewer, Role::Service];
/// Who reads published versions: everyone with a role that reads results.
pub(crate) const PUBLISHED_READERS: &[Role] = &[
    Role::Office,
    Role::Evaluator,
    Role::Viewer,
    Role::Unit,
    Role::Service,
];

/// The aggregator service.
#[derive(Clone)]
pub struct AggregatorApi {
    pub(crate) db: Db,
    pub(crate) live: Live,
    pub(crate) plans: PlansLookup,
    /// For the value flags the feedback lists.
    pub(crate) indicators: IndicatorsServiceClient<ServiceChannel>,
    /// For the survey flags the feedback lists.
    pub(crate) reviews: ReviewsServiceClient<ServiceChannel>,
}

impl AggregatorApi {
    pub fn new(
        db: Db,
        live: Live,
        plans: PlansLookup,
        indicators: IndicatorsServiceClient<ServiceChannel>,
        reviews: ReviewsServiceClient<ServiceChannel>,
    ) -> Self {
        AggregatorApi {
            db,
            live,
            plans,
            indicators,
            reviews,
        }
    }
}

/// A figure rounded as published.
pub(crate) fn fixed(d: Decimal) -> ProtoDecimal {
    ProtoDecimal {
        value: rules::published(d).to_string(),
    }
}

pub(crate) fn decimal_of(d: &Option<ProtoDecimal>) -> Option<Decimal> {
    d.as_ref().and_then(|d| d.value.parse().ok())
}
