//! The plan rules of DOMAIN.md §2 and §4 as plain functions: scheme
//! defaults and checks, framework checks, plan checks and version diffs.
//! The write windows (phases, deadlines, lock exceptions) are the suite's
//! one table in `jixiao_runtime::phases`.
//!
//! By area: `scheme` (defaults and checks of a group's scheme), `framework`
//! (indicators and their targets), `plans` (the plan lifecycle and plan
//! checks), `versions` (field-level diffs between plan versions).

use jixiao_runtime::decimal;
use rust_decimal::Decimal;

mod framework;
mod plans;
mod scheme;
mod versions;

pub use self::{
    framework::{FrameworkContext, check_framework, needs_target, valid_code},
    plans::{PLANS, apply_assigned_targets, check_plan, sort_targets},
    scheme::{check_framework_keeps_overrides, check_override_codes, check_scheme, default_scheme},
    versions::{Change, diff},
};

/// Decimal places of an indicator's weight and of a component maximum:
/// those of points.
pub const WEIGHT_DP: u32 = 6;

fn dec(s: &str) -> Decimal {
    decimal::parse_figure(s).expect("literal decimal")
}

/// Values the tests of the rule areas share.
#[cfg(test)]
mod fixtures {
    use jixiao_proto::plans::{Direction, Indicator, ScoringMethod};

    pub(super) fn d(s: &str) -> Option<jixiao_proto::Decimal> {
        Some(jixiao_proto::Decimal { value: s.into() })
    }

    pub(super) fn indicator(code: &str, weight: &str, method: ScoringMethod) -> Indicator {
        Indicator {
            code: code.into(),
            display_name: code.into(),
            measurement_unit: "%".into(),
            direction: Direction::HigherIsBetter as i32,
            weight: d(weight),
            method: method as i32,
            plausible_min: d("0"),
            plausible_max: d("100"),
            provider: "units/stats".into(),
            ..Default::default()
        }
    }
}
