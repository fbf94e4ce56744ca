//! Each screening rule on the numbers alone.

use jixiao_proto::plans::DataQualityRules;

use super::*;

fn screen() -> Screen {
    Screen::of(&Scheme::default()).expect("screening is on by default")
}

fn number(r: &Raised, name: &str) -> Decimal {
    r.evidence
        .iter()
        .find_map(|f| match f {
            Figure::Number(n, v) if *n == name => Some(*v),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {name} in {r:?}"))
}

#[test]
fn defaults_are_the_contract_s() {
    let s = screen();
    assert_eq!(s.straight_min_answers, 4);
    assert_eq!(s.straight_share, Decimal::new(5, 1));
    assert_eq!(s.straight_min_responses, 10);
    assert_eq!(s.outside_window_limit, 0);
    assert_eq!(s.burst_size, 5);
    assert_eq!(s.respondent_limit, 1);
    assert_eq!(s.surge_window_ms, 72 * 3_600_000);
    assert_eq!(s.surge_factor, Decimal::ONE);
    assert_eq!(s.surge_min_responses, 10);
    assert_eq!(s.blocking, QualitySeverity::Critical);
    let off = Scheme {
        data_quality: Some(DataQualityRules {
            survey_screening_off: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(Screen::of(&off), None);
}

#[test]
fn a_response_is_straight_lined_when_every_answer_is_one_code() {
    let codes = |s: &'static str| s.split(',');
    assert!(straight_lined(codes("good,good,good,good"), 4));
    assert!(
        !straight_lined(codes("good,good,good"), 4),
        "too few answers"
    );
    assert!(!straight_lined(codes("good,good,fair,good"), 4));
    assert!(!straight_lined(std::iter::empty(), 1));
    assert!(straight_lined(codes("poor,poor"), 2));
}

#[test]
fn late_is_inside_the_closing_window() {
    let hour = 3_600_000;
    assert!(late(100 * hour, Some(100 * hour), 72 * hour));
    assert!(late(28 * hour + 1, Some(100 * hour), 72 * hour));
    assert!(
        !late(28 * hour, Some(100 * hour), 72 * hour),
        "the window is half-open"
    );
    assert!(!late(99 * hour, None, 72 * hour), "no close, no surge");
}

#[test]
fn straight_lining_needs_the_share_and_the_count() {
    let s = screen();
    // 10 of 19: share 0.526316 > 0.5.
    let r = straight_lining(10, 19, &s).expect("flagged");
    assert_eq!(number(&r, "share"), Decimal::new(526316, 6));
    assert_eq!(r.flagged, 10);
    assert_eq!(
        r.explanation(),
        "10 of 19 responses give one answer to every question (share 0.526316 > 0.5)"
    );
    // Exactly half is not more than half.
    assert_eq!(straight_lining(10, 20, &s), None);
    // 9 of 9 is every response, but fewer than the minimum count.
    assert_eq!(straight_lining(9, 9, &s), None);
}

#[test]
fn outside_window_counts_refusals_above_the_limit() {
    let mut s = screen();
    let r = outside_window(1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", &s).expect("one");
    assert_eq!(number(&r, "refused"), Decimal::ONE);
    assert_eq!(outside_window(0, "", "", &s), None);
    s.outside_window_limit = 3;
    assert_eq!(outside_window(3, "", "", &s), None);
    assert!(outside_window(4, "", "", &s).is_some());
}

#[test]
fn bursts_are_seconds_with_enough_responses() {
    let s = screen();
    let seconds = vec![
        (4, "2026-05-01T10:00:00Z".to_string()),
        (7, "2026-05-01T10:00:05Z".to_string()),
        (5, "2026-05-01T10:00:01Z".to_string()),
        (7, "2026-05-01T10:00:02Z".to_string()),
    ];
    let r = burst(&seconds, &s).expect("flagged");
    assert_eq!(number(&r, "responses"), Decimal::from(19));
    assert_eq!(number(&r, "seconds"), Decimal::from(3));
    assert_eq!(number(&r, "largest"), Decimal::from(7));
    // Of two equal largest, the earlier is named.
    assert!(
        r.evidence
            .contains(&Figure::Text("at", "2026-05-01T10:00:02Z".into()))
    );
    assert_eq!(r.flagged, 19);
    assert_eq!(burst(&seconds[..1], &s), None);
}

#[test]
fn repeated_respondents_above_the_limit() {
    let mut s = screen();
    let r = repeated_respondent(&[2, 3], &s).expect("flagged");
    assert_eq!(number(&r, "respondents"), Decimal::from(2));
    assert_eq!(number(&r, "responses"), Decimal::from(5));
    s.respondent_limit = 2;
    let r = repeated_respondent(&[2, 3], &s).expect("one over two");
    assert_eq!(number(&r, "respondents"), Decimal::ONE);
    assert_eq!(repeated_respondent(&[2, 2], &s), None);
}

#[test]
fn a_category_surges_when_its_late_sample_matches_the_earlier() {
    let s = screen();
    let r = category_surge("residents", 12, 12, &s).expect("doubled");
    assert_eq!(
        r.explanation(),
        "12 responses of residents came in the last 72 hours against 12 before (factor 1)"
    );
    assert_eq!(category_surge("residents", 11, 12, &s), None);
    assert_eq!(category_surge("residents", 9, 0, &s), None, "too few");
    let merged = merge_surges(vec![
        category_surge("residents", 12, 10, &s).unwrap(),
        category_surge("enterprises", 30, 3, &s).unwrap(),
    ])
    .expect("one flag");
    assert!(
        merged
            .evidence
            .contains(&Figure::Text("category", "residents, enterprises".into()))
    );
    assert_eq!(number(&merged, "late"), Decimal::from(42));
    assert_eq!(number(&merged, "before"), Decimal::from(13));
    assert_eq!(merged.flagged, 42);
}

#[test]
fn only_repeated_respondents_are_critical() {
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.id()), Some(k));
        let critical = k.severity() == QualitySeverity::Critical;
        assert_eq!(critical, k == Kind::RepeatedRespondent, "{k:?}");
    }
}

#[test]
fn thresholds_at_the_extremes_decide_without_overflow() {
    let mut s = screen();
    s.surge_factor = Decimal::MAX;
    assert_eq!(category_surge("residents", i64::MAX, 2, &s), None);
    assert!(
        category_surge("residents", 10, 0, &s).is_some(),
        "0 x anything is 0"
    );
    s.straight_share = Decimal::new(1, 28);
    assert!(straight_lining(i64::MAX, i64::MAX, &s).is_some());
}
