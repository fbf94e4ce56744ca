//! What every handler of the service shares: the service value with its
//! database, plans look-ups and change broadcast; the phase gate; who
//! reads everything; and the look-ups of a unit's group and scheme.

use jixiao_proto::plans::{Scheme, WeightedKey};
use jixiao_runtime::{
    Db, Error, Principal, Role, changes::Changes, client::ServiceChannel, decimal, host::Shutdown,
    names, plans_lookup::PlansLookup,
};
use rust_decimal::Decimal;

/// Roles that read every inspection record.
pub const READERS: &[Role] = &[
    Role::Office,
    Role::Inspector,
    Role::Evaluator,
    Role::Service,
];
/// Roles that record inspections.
pub const RECORDERS: &[Role] = &[Role::Office, Role::Inspector];

/// The inspections service.
#[derive(Clone)]
pub struct InspectionsApi {
    pub(crate) db: Db,
    pub(crate) plans: PlansLookup,
    pub(crate) changes: Changes,
}

impl InspectionsApi {
    pub fn new(db: Db, plans: ServiceChannel, shutdown: Shutdown) -> Self {
        InspectionsApi {
            db,
            plans: PlansLookup::new(plans),
            changes: Changes::new(shutdown),
        }
    }

    /// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a
    /// write of `method` to `cycle`; returns whether it is late.
    pub(crate) async fn admit(
        &self,
        p: &Principal,
        method: &str,
        cycle: &str,
    ) -> Result<bool, Error> {
        let path = format!("/jixiao.inspections.v1.InspectionsService/{method}");
        self.plans.admit(p, &path, cycle).await
    }

    /// The group a unit is assessed in (its id), or INVALID_ARGUMENT naming
    /// `field`.
    pub(crate) async fn group_of(
        &self,
        cycle: &str,
        unit_name: &str,
        field: &str,
    ) -> Result<String, Error> {
        names::unit_id(unit_name, field)?;
        let group = self
            .plans
            .group_of_unit(cycle, unit_name)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("{unit_name} is not assessed in any group of cycles/{cycle}"),
                )
            })?;
        Ok(group.rsplit('/').next().unwrap_or_default().to_string())
    }

    pub(crate) async fn scheme_of(&self, cycle: &str, group: &str) -> Result<Scheme, Error> {
        self.plans
            .scheme(&format!("cycles/{cycle}/groups/{group}"))
            .await
    }
}

/// A scheme's figure for `key` (a credit or a spot-check deduction).
pub fn scheme_value(list: &[WeightedKey], key: &str) -> Option<Decimal> {
    list.iter()
        .find(|k| k.key == key)
        .and_then(|k| decimal::figure(&k.value).ok())
}

/// Narrows a read to the caller's unit unless it reads everything:
/// `Ok(None)` for all units, `Ok(Some(unit))` for one.
pub fn scope(p: &Principal, requested: &str, what: &str) -> Result<Option<String>, Error> {
    let requested = if requested.is_empty() {
        None
    } else {
        Some(names::unit_id(requested, "unit")?.to_string())
    };
    if p.has_any(READERS) {
        return Ok(requested);
    }
    let own = p.unit.clone().filter(|_| p.has(Role::Unit));
    match (own, requested) {
        (Some(own), None) => Ok(Some(own)),
        (Some(own), Some(r)) if r == own => Ok(Some(own)),
        _ => Err(Error::denied(format!(
            "{} may only read its own unit's {what}",
            p.subject
        ))),
    }
}
