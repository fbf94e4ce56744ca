//! Inspection rules (DOMAIN.md §3 rule 2, §7) as plain functions.

use rust_decimal::Decimal;

use jixiao_proto::inspections::{FindingState, ItemState, RectificationState, SpotCheckCase};
use jixiao_runtime::lifecycle::Machine;

/// The inspection adjustment: `clamp(credits − deductions, −cap, 0)`.
/// Credits offset deductions but never make it positive; the net deduction
/// is capped at `cap`.
/// Saturating, so that no sum of deductions can overflow: the result is
/// clamped to at most `cap` below zero long before the 28 digits run out.
pub fn adjustment(deductions: Decimal, credits: Decimal, cap: Decimal) -> Decimal {
    credits
        .saturating_sub(deductions)
        .clamp(-cap.abs(), Decimal::ZERO)
}

/// Whether a finding in this state counts towards the deductions: only
/// confirmed findings and findings upheld after a contest.
pub fn counts(state: FindingState) -> bool {
    matches!(state, FindingState::Confirmed | FindingState::Upheld)
}

/// The finding lifecycle: DRAFT → CONFIRMED (counts) → CONTESTED by the
/// unit → UPHELD or WITHDRAWN by the office.
pub const FINDINGS: Machine<FindingState> = Machine {
    name: FindingState::as_str_name,
    moves: &[
        (FindingState::Draft, FindingState::Confirmed),
        (FindingState::Confirmed, FindingState::Contested),
        (FindingState::Contested, FindingState::Upheld),
        (FindingState::Contested, FindingState::Withdrawn),
    ],
};

/// The rectification of a finding: the unit reports what it did while it
/// is REQUIRED or SENT_BACK; the office accepts or sends back a report.
pub const RECTIFICATIONS: Machine<RectificationState> = Machine {
    name: RectificationState::as_str_name,
    moves: &[
        (RectificationState::Required, RectificationState::Reported),
        (RectificationState::SentBack, RectificationState::Reported),
        (RectificationState::Reported, RectificationState::Accepted),
        (RectificationState::Reported, RectificationState::SentBack),
    ],
};

/// A self-inspection item: REPORTED by the unit, then VERIFIED (credited)
/// or REJECTED by the office, once.
pub const ITEMS: Machine<ItemState> = Machine {
    name: ItemState::as_str_name,
    moves: &[
        (ItemState::Reported, ItemState::Verified),
        (ItemState::Reported, ItemState::Rejected),
    ],
};

/// A defect a spot check found in a licensing case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    /// The finding category.
    pub category: &'static str,
    /// The scheme's `spot_check_deductions` key.
    pub scheme_key: &'static str,
    pub description: String,
}

/// The defects of one case: processed past its legal time limit, and an
/// incomplete case file.
pub fn spot_check_defects(case: &SpotCheckCase) -> Vec<Defect> {
    let mut out = Vec::new();
    if case.actual_days > case.legal_limit_days {
        out.push(Defect {
            category: "overdue_processing",
            scheme_key: "overdue",
            description: format!(
                "case {} took {} working days; the legal limit is {}",
                case.case_reference, case.actual_days, case.legal_limit_days
            ),
        });
    }
    if !case.file_complete {
        out.push(Defect {
            category: "incomplete_file",
            scheme_key: "incomplete_file",
            description: format!("the file of case {} is incomplete", case.case_reference),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn adjustment_examples_of_the_domain() {
        let cap = d("5");
        assert_eq!(adjustment(d("6.3"), d("6.0"), cap), d("-0.3"));
        assert_eq!(adjustment(d("5.0"), d("7.0"), cap), d("0"));
        assert_eq!(adjustment(d("8.0"), d("1.0"), cap), d("-5"));
        assert_eq!(adjustment(d("0"), d("0"), cap), d("0"));
        assert_eq!(adjustment(d("4.0"), d("5.0"), cap), d("0"));
        assert_eq!(adjustment(d("7.5"), d("1.0"), cap), d("-5"));
    }

    #[test]
    fn lifecycle_moves_only_forward_along_its_edges() {
        use FindingState::*;
        assert!(FINDINGS.may_move(Draft, Confirmed));
        assert!(FINDINGS.may_move(Contested, Withdrawn));
        assert!(!FINDINGS.may_move(Draft, Contested));
        assert!(!FINDINGS.may_move(Withdrawn, Confirmed));
        assert!(!FINDINGS.may_move(Upheld, Contested));
        assert!(counts(Confirmed) && counts(Upheld));
        assert!(!counts(Draft) && !counts(Contested) && !counts(Withdrawn));
    }

    #[test]
    fn spot_checks_find_overdue_and_incomplete_cases() {
        let case = SpotCheckCase {
            case_reference: "XK-1".into(),
            legal_limit_days: 20,
            actual_days: 25,
            file_complete: false,
        };
        let defects = spot_check_defects(&case);
        assert_eq!(
            defects.iter().map(|d| d.scheme_key).collect::<Vec<_>>(),
            ["overdue", "incomplete_file"]
        );
        let fine = SpotCheckCase {
            actual_days: 20,
            file_complete: true,
            ..case
        };
        assert!(spot_check_defects(&fine).is_empty());
    }

    fn amount() -> impl Strategy<Value = Decimal> {
        (0i64..2_000, 0u32..3).prop_map(|(m, s)| Decimal::new(m, s))
    }

    #[test]
    fn the_adjustment_at_the_extremes_of_the_type() {
        // Two findings of the largest decimal each: the sum saturates and
        // the adjustment is the cap.
        let total = Decimal::MAX.saturating_add(Decimal::MAX);
        assert_eq!(
            adjustment(total, Decimal::ZERO, Decimal::from(5)),
            Decimal::from(-5)
        );
        assert_eq!(
            adjustment(Decimal::ZERO, Decimal::MAX, Decimal::from(5)),
            Decimal::ZERO
        );
        assert_eq!(
            adjustment(Decimal::MAX, Decimal::MIN, Decimal::MAX),
            -Decimal::MAX
        );
        assert_eq!(
            adjustment(Decimal::new(1, 28), Decimal::ZERO, Decimal::from(5)),
            Decimal::new(-1, 28)
        );
    }

    proptest! {
        #[test]
        fn the_adjustment_lies_in_minus_cap_to_zero_and_never_rises_with_a_deduction(
            deductions in prop::collection::vec(amount(), 0..10),
            extra in amount(),
            credits in amount(),
            cap in amount(),
        ) {
            let total: Decimal = deductions.iter().sum();
            let a = adjustment(total, credits, cap);
            prop_assert!(a >= -cap && a <= Decimal::ZERO);
            let b = adjustment(total + extra, credits, cap);
            prop_assert!(b <= a, "adding a deduction of {} raised {} to {}", extra, a, b);
        }
    }
}
