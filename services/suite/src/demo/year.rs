//! The demo's evaluation year as data: Xiamen's six districts and ten city
//! departments, two indicator frameworks that use every scoring method, and
//! each unit's targets, final values, survey answers, votes, ratings,
//! inspections and self-inspection items. Everything comes from ChaCha8
//! streams with fixed seeds (ChaCha's output is specified, so the same
//! seed gives the same year on every machine and every version), one
//! stream per unit and purpose, so adding a unit changes no other unit's
//! data. Values are integers scaled by a power of ten until they are
//! written as decimal strings: no binary floating point anywhere.
//!
//! The ranges are tuned to DOMAIN.md §9: indicator scores about 45 to 55,
//! review totals 30 to 36, deductions 3 to 8 before credits.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use jixiao_proto::plans::{Direction, ScoringMethod, UnitKind};

/// The cycle the demo evaluates.
pub const CYCLE: &str = "2026";
pub const YEAR: i32 = 2026;
const SEED: u64 = 2026;

/// A registered unit.
pub struct UnitInfo {
    pub id: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub kind: UnitKind,
}

const fn unit(id: &'static str, zh: &'static str, en: &'static str, kind: UnitKind) -> UnitInfo {
    UnitInfo { id, zh, en, kind }
}

#[rustfmt::skip]
pub const DISTRICTS: [UnitInfo; 6] = [
    unit("siming", "思明区人民政府", "Siming District", UnitKind::DistrictGovernment),
    unit("huli", "湖里区人民政府", "Huli District", UnitKind::DistrictGovernment),
    unit("jimei", "集美区人民政府", "Jimei District", UnitKind::DistrictGovernment),
    unit("haicang", "海沧区人民政府", "Haicang District", UnitKind::DistrictGovernment),
    unit("tongan", "同安区人民政府", "Tong'an District", UnitKind::DistrictGovernment),
    unit("xiangan", "翔安区人民政府", "Xiang'an District", UnitKind::DistrictGovernment),
];

#[rustfmt::skip]
pub const DEPARTMENTS: [UnitInfo; 10] = [
    unit("fgw", "市发展和改革委员会", "Development and Reform Commission", UnitKind::CityDepartment),
    unit("stats", "市统计局", "Statistics Bureau", UnitKind::CityDepartment),
    unit("finance", "市财政局", "Finance Bureau", UnitKind::CityDepartment),
    unit("commerce", "市商务局", "Commerce Bureau", UnitKind::CityDepartment),
    unit("ecology", "市生态环境局", "Ecology and Environment Bureau", UnitKind::CityDepartment),
    unit("approval", "市行政审批管理局", "Administrative Approval Bureau", UnitKind::CityDepartment),
    unit("market", "市市场监督管理局", "Market Regulation Administration", UnitKind::CityDepartment),
    unit("transport", "市交通运输局", "Transport Bureau", UnitKind::CityDepartment),
    unit("housing", "市住房和城乡建设局", "Housing and Urban-Rural Development Bureau", UnitKind::CityDepartment),
    unit("hrss", "市人力资源和社会保障局", "Human Resources and Social Security Bureau", UnitKind::CityDepartment),
];

/// Units that provide data but are not evaluated this year.
#[rustfmt::skip]
pub const PROVIDERS_ONLY: [UnitInfo; 2] = [
    unit("hotline", "市12345政务服务便民热线", "12345 Hotline Centre", UnitKind::Other),
    unit("govoffice", "市人民政府办公厅", "General Office of the City Government", UnitKind::Other),
];

/// An indicator of a framework, with how the demo invents its numbers.
pub struct IndicatorSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub measure: &'static str,
    pub direction: Direction,
    pub method: ScoringMethod,
    /// Points, a whole number.
    pub weight: i64,
    /// Plausible range, in whole units of the measure.
    pub range: (i64, i64),
    pub provider: &'static str,
    /// Decimal places of targets and values.
    pub places: u32,
    /// Targets drawn from this range, scaled by 10^places.
    pub target: (i64, i64),
    /// The final value as a percentage of the target, drawn from this range.
    pub actual_pct: (i64, i64),
}

/// A peer group with its framework and survey volumes.
pub struct GroupSpec {
    pub id: &'static str,
    pub name: &'static str,
    pub units: &'static [UnitInfo],
    pub framework: Vec<IndicatorSpec>,
    pub responses_per_unit: usize,
    pub votes_per_unit: usize,
    /// Licensing cases spot-checked per unit (0: none).
    pub spot_cases: usize,
}

#[allow(clippy::too_many_arguments)]
fn indicator(
    code: &'static str,
    name: &'static str,
    measure: &'static str,
    direction: Direction,
    method: ScoringMethod,
    weight: i64,
    range: (i64, i64),
    provider: &'static str,
    places: u32,
    target: (i64, i64),
    actual_pct: (i64, i64),
) -> IndicatorSpec {
    IndicatorSpec {
        code,
        name,
        measure,
        direction,
        method,
        weight,
        range,
        provider,
        places,
        target,
        actual_pct,
    }
}

#[rustfmt::skip]
pub fn groups() -> Vec<GroupSpec> {
    use Direction::{HigherIsBetter as Higher, LowerIsBetter as Lower};
    use ScoringMethod::*;
    vec![
        GroupSpec {
            id: "districts",
            name: "区人民政府",
            units: &DISTRICTS,
            framework: vec![
                indicator("GDP_GROWTH", "地区生产总值增速", "%", Higher, Ratio, 14, (-20, 30), "stats", 1, (60, 75), (84, 104)),
                indicator("ENERGY_PER_GDP", "单位地区生产总值能耗", "吨标准煤/万元", Lower, Ratio, 8, (0, 2), "fgw", 2, (30, 50), (96, 112)),
                indicator("FIXED_INVESTMENT", "固定资产投资额", "亿元", Higher, PeerRank, 8, (0, 5000), "stats", 0, (400, 1200), (90, 115)),
                indicator("FOREIGN_TRADE", "外贸进出口总额", "亿元", Higher, PeerBest, 8, (0, 10000), "commerce", 0, (900, 1500), (92, 110)),
                indicator("ONLINE_SERVICE", "政务服务事项网上可办率", "%", Higher, Threshold, 6, (0, 100), "approval", 1, (950, 950), (98, 104)),
                indicator("AIR_QUALITY", "空气质量优良天数比例", "%", Higher, Threshold, 4, (0, 100), "ecology", 1, (950, 975), (98, 103)),
                indicator("KEY_PROJECTS", "重点项目推进", "分", Higher, Assessed, 12, (0, 12), "fgw", 1, (0, 0), (0, 0)),
            ],
            responses_per_unit: 3000,
            votes_per_unit: 400,
            spot_cases: 8,
        },
        GroupSpec {
            id: "departments",
            name: "市直部门",
            units: &DEPARTMENTS,
            framework: vec![
                indicator("BUDGET_EXECUTION", "预算执行率", "%", Higher, Ratio, 15, (0, 100), "finance", 1, (900, 980), (92, 106)),
                indicator("ONLINE_SERVICE", "政务服务事项网上可办率", "%", Higher, Threshold, 8, (0, 100), "approval", 1, (950, 950), (99, 104)),
                indicator("HOTLINE_RESOLUTION", "12345热线诉求办结率", "%", Higher, PeerBest, 10, (0, 100), "hotline", 1, (900, 960), (93, 105)),
                indicator("TRANSPARENCY", "政务公开考评得分", "分", Higher, PeerRank, 10, (0, 100), "govoffice", 1, (850, 950), (94, 106)),
                indicator("KEY_TASKS", "重点工作任务", "分", Higher, Assessed, 17, (0, 17), "fgw", 1, (0, 0), (0, 0)),
            ],
            responses_per_unit: 1500,
            votes_per_unit: 200,
            spot_cases: 0,
        },
    ]
}

/// A random stream for one unit and purpose.
pub fn stream(unit: &str, purpose: &str) -> ChaCha8Rng {
    // FNV-1a: a fixed, documented hash, so seeds never change.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ SEED;
    for b in unit.bytes().chain([b'/']).chain(purpose.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// `scaled / 10^places` as a decimal string.
pub fn fixed(scaled: i64, places: u32) -> String {
    if places == 0 {
        return scaled.to_string();
    }
    let p = 10i64.pow(places);
    let sign = if scaled < 0 { "-" } else { "" };
    let a = scaled.abs();
    format!("{sign}{}.{:0width$}", a / p, a % p, width = places as usize)
}

/// A unit's plan target and final value of one indicator (scaled).
pub fn target_and_final(spec: &IndicatorSpec, unit: &str) -> (String, String) {
    let mut rng = stream(unit, spec.code);
    let target = rng.random_range(spec.target.0..=spec.target.1);
    let pct = rng.random_range(spec.actual_pct.0..=spec.actual_pct.1);
    let max = spec.range.1 * 10i64.pow(spec.places);
    let actual = (target * pct / 100).min(max);
    (fixed(target, spec.places), fixed(actual, spec.places))
}

/// The evaluators' score of an ASSESSED indicator: 60 % to 85 % of the
/// weight, in half points.
pub fn assessed_score(spec: &IndicatorSpec, unit: &str) -> String {
    let mut rng = stream(unit, spec.code);
    let halves = rng.random_range(spec.weight * 12 / 10..=spec.weight * 17 / 10);
    fixed(halves * 5, 1)
}

/// How a unit's respondents tend to answer, per mille.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub satisfied: u32,
    pub basically: u32,
    pub dont_know: u32,
}

impl Mix {
    pub fn survey(unit: &str) -> Mix {
        let mut rng = stream(unit, "survey-mix");
        Mix {
            satisfied: rng.random_range(580..=720),
            basically: 210,
            dont_know: rng.random_range(20..=60),
        }
    }

    pub fn portal(unit: &str) -> Mix {
        let mut rng = stream(unit, "portal-mix");
        Mix {
            satisfied: rng.random_range(620..=780),
            basically: 160,
            dont_know: 20,
        }
    }

    /// One answer code.
    pub fn answer(&self, rng: &mut impl Rng) -> &'static str {
        let u = rng.random_range(0..1000);
        if u < self.satisfied {
            "satisfied"
        } else if u < self.satisfied + self.basically {
            "basically_satisfied"
        } else if u < self.satisfied + self.basically + self.dont_know {
            "dont_know"
        } else {
            "dissatisfied"
        }
    }
}

/// The questionnaire (questions asked of every respondent).
pub const QUESTIONS: [(&str, &str); 5] = [
    ("efficiency", "办事效率是否满意"),
    ("attitude", "服务态度是否满意"),
    ("openness", "政务公开是否满意"),
    ("integrity", "廉洁从政是否满意"),
    ("overall", "总体是否满意"),
];

/// Respondent category of the n-th draw: service users 40 %, enterprises
/// 25 %, residents 30 %, deputies 5 % (every category is present).
pub fn category(rng: &mut impl Rng) -> &'static str {
    match rng.random_range(0..100) {
        0..40 => "service_users",
        40..65 => "enterprises",
        65..95 => "residents",
        _ => "deputies",
    }
}

/// The grade `rater` gives `ratee`: better-run units are rated higher.
pub fn grade(rater: &str, ratee: &str) -> &'static str {
    let standing = stream(ratee, "reputation").random_range(0..=3);
    let roll = stream(ratee, &format!("rated-by-{rater}")).random_range(0..10) + standing;
    match roll {
        10.. => "excellent",
        5..10 => "good",
        2..5 => "fair",
        _ => "poor",
    }
}

/// A finding the demo's inspectors record.
pub struct FindingSpec {
    pub category: &'static str,
    pub description: &'static str,
    /// Tenths of a point.
    pub deduction: i64,
}

const FINDINGS: [(&str, &str); 5] = [
    ("absence", "工作时间窗口无人值守"),
    ("overdue_processing", "办件超过承诺时限未办结"),
    ("incomplete_file", "受理材料不全仍予受理"),
    ("conduct", "工作人员服务态度生硬，群众投诉"),
    ("discipline", "上班时间从事与工作无关活动"),
];

/// One inspection visit: its kind (proto number), place and findings.
pub struct InspectionSpec {
    pub kind: i32,
    pub place: &'static str,
    pub days_ago: i64,
    pub findings: Vec<FindingSpec>,
}

const PLACES: [&str; 4] = [
    "政务服务中心",
    "便民服务大厅",
    "机关办公区",
    "12345热线受理点",
];

/// Two or three visits with three or four findings between them, each
/// 1.0 or 1.5 points: 3 to 6 points before spot checks and contests.
pub fn inspections(unit: &str) -> Vec<InspectionSpec> {
    let mut rng = stream(unit, "inspections");
    let mut visits: Vec<InspectionSpec> = (0..rng.random_range(2..=3))
        .map(|_| InspectionSpec {
            // open, covert, patrol, concentrated, cross-district
            kind: rng.random_range(1..=5),
            place: PLACES[rng.random_range(0..PLACES.len())],
            days_ago: rng.random_range(20..=200),
            findings: Vec::new(),
        })
        .collect();
    let n = visits.len();
    for i in 0..rng.random_range(3..=4) {
        let (category, description) = FINDINGS[rng.random_range(0..FINDINGS.len())];
        visits[i % n].findings.push(FindingSpec {
            category,
            description,
            deduction: rng.random_range(2..=3) * 5,
        });
    }
    visits
}

/// A licensing case checked in a spot check: (reference, legal limit days,
/// actual days, file complete).
pub fn spot_cases(unit: &str, n: usize) -> Vec<(String, i32, i32, bool)> {
    let mut rng = stream(unit, "spot-check");
    (0..n)
        .map(|i| {
            let limit = [5, 10, 15, 20][rng.random_range(0..4)];
            let overdue = rng.random_range(0..10) == 0;
            let actual = if overdue {
                limit + rng.random_range(1..=6)
            } else {
                rng.random_range(1..=limit)
            };
            (
                format!("厦审〔{YEAR}〕{}-{:03}", unit, i + 1),
                limit,
                actual,
                rng.random_range(0..12) != 0,
            )
        })
        .collect()
}

/// A self-inspection item: type, problem, action, staff actions, verified.
pub struct SelfItemSpec {
    pub item_type: &'static str,
    pub problem: &'static str,
    pub action: &'static str,
    pub staff_action: Option<(&'static str, i32)>,
}

/// Two to five items a unit reports about itself.
pub fn self_items(unit: &str) -> Vec<SelfItemSpec> {
    let mut rng = stream(unit, "self-inspection");
    let n = rng.random_range(2..=5);
    (0..n)
        .map(|_| {
            if rng.random_range(0..3) == 0 {
                SelfItemSpec {
                    item_type: "staff_action",
                    problem: "窗口工作人员多次迟到早退",
                    action: "给予效能告诫并全局通报",
                    staff_action: Some(("efficiency_warning", rng.random_range(1..=2))),
                }
            } else {
                SelfItemSpec {
                    item_type: "problem_found",
                    problem: "自查发现部分事项办理时限公示不准确",
                    action: "已全面核对并更新公示信息",
                    staff_action: None,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_without_floating_point() {
        assert_eq!(fixed(675, 1), "67.5");
        assert_eq!(fixed(5, 2), "0.05");
        assert_eq!(fixed(-15, 1), "-1.5");
        assert_eq!(fixed(1200, 0), "1200");
    }

    #[test]
    fn frameworks_use_every_method_and_weigh_sixty() {
        for g in groups() {
            assert_eq!(
                g.framework.iter().map(|i| i.weight).sum::<i64>(),
                60,
                "{}",
                g.id
            );
        }
        let methods: std::collections::BTreeSet<i32> = groups()
            .iter()
            .flat_map(|g| g.framework.iter().map(|i| i.method as i32))
            .collect();
        assert_eq!(methods.len(), 5);
    }

    #[test]
    fn the_same_seed_gives_the_same_year() {
        let spec = &groups()[0].framework[0];
        // Pinned: a change here changes every published demo table.
        assert_eq!(
            target_and_final(spec, "siming"),
            ("6.2".into(), "6.2".into())
        );
        assert_eq!(assessed_score(&groups()[0].framework[6], "huli"), "7.5");
        assert_ne!(
            target_and_final(spec, "siming"),
            target_and_final(spec, "huli")
        );
    }
}
