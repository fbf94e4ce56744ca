//! Survey screening (docs/DATA-QUALITY.md, issue 23) through the public
//! RPCs, on SQLite and PostgreSQL: each rule flags a planted pattern with
//! its figures and leaves clean responses alone; the office resolves;
//! EXCLUDED restores exactly the score the clean responses give; flags of
//! the blocking severity hold publication back.

use jixiao_proto::{
    aggregator::{
        GetFeedbackRequest, PublishResultsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    plans::{
        DataQualityRules, Phase, Scheme, UpdateSchemeRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        CampaignMode, GetGroupReviewScoresRequest, ListSurveyFlagsRequest, PushResponsesRequest,
        PushResponsesResponse, ResolveSurveyFlagRequest, ReviewFlag, SurveyFlag, SurveyFlagKind,
        SurveyResponse, UnitReviewScore, reviews_service_client::ReviewsServiceClient,
    },
    types::{QualityFlagState, QualitySeverity},
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, answered_at, bad_fields, evaluation_year, now_ms, reason, response_at, set_phase,
};
use tonic::Code;

const CAMPAIGN: &str = "cycles/2026/campaigns/survey";
const GROUP: &str = "cycles/2026/groups/districts";
type Reviews = ReviewsServiceClient<Authed>;

/// `n` honest responses of `unit`: mixed answers, a minute apart.
fn honest(prefix: &str, unit: &str, n: usize) -> Vec<SurveyResponse> {
    let mixes = [
        ["satisfied", "basically_satisfied", "satisfied"],
        ["basically_satisfied", "dissatisfied", "satisfied"],
        ["satisfied", "satisfied", "basically_satisfied"],
    ];
    (0..n)
        .map(|i| {
            response_at(
                &format!("{prefix}-{i}"),
                unit,
                ["residents", "enterprises", "service_users"][i % 3],
                mixes[i % 3],
                answered_at() - (i as i64 + 1) * 60_000,
            )
        })
        .collect()
}

/// `n` residents of `unit` answering "satisfied" to everything, a second
/// apart (ids `s-0`, `s-1`, …).
fn straight_lined(unit: &str, n: i64) -> Vec<SurveyResponse> {
    (0..n)
        .map(|i| {
            response_at(
                &format!("s-{i}"),
                unit,
                "residents",
                ["satisfied"; 3],
                answered_at() + i * 1000,
            )
        })
        .collect()
}

/// A cycle in EXECUTION with the survey campaign; `rules` are the scheme's
/// data-quality rules.
async fn survey_year(suite: &Suite, rules: DataQualityRules) {
    let mut office = evaluation_year(suite, "2026", now_ms() + DAY).await;
    set_rules(&mut office, rules).await.expect("rules");
    set_phase(suite, "2026", Phase::Execution).await;
    jixiao_tests::survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
}

async fn set_rules(
    office: &mut PlansServiceClient<Authed>,
    rules: DataQualityRules,
) -> Result<Scheme, tonic::Status> {
    office
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: format!("{GROUP}/scheme"),
                data_quality: Some(rules),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["data_quality".into()],
            }),
        })
        .await
        .map(|r| r.into_inner())
}

/// Straight-lining of three answers flags from five responses on, and
/// every flag blocks (WARNING).
fn strict() -> DataQualityRules {
    DataQualityRules {
        straight_lining_min_answers: 3,
        straight_lining_min_responses: 5,
        blocking_severity: QualitySeverity::Warning as i32,
        ..Default::default()
    }
}

fn platform(suite: &Suite) -> Reviews {
    ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None))
}

async fn push(client: &mut Reviews, responses: Vec<SurveyResponse>) -> PushResponsesResponse {
    client
        .push_responses(PushResponsesRequest {
            campaign: CAMPAIGN.into(),
            responses,
        })
        .await
        .expect("push")
        .into_inner()
}

async fn flags(client: &mut Reviews, unit: &str) -> Result<Vec<SurveyFlag>, tonic::Status> {
    client
        .list_survey_flags(ListSurveyFlagsRequest {
            campaign: CAMPAIGN.into(),
            unit: if unit.is_empty() {
                String::new()
            } else {
                format!("units/{unit}")
            },
            open_only: false,
        })
        .await
        .map(|r| r.into_inner().flags)
}

async fn resolve(
    client: &mut Reviews,
    name: &str,
    resolution: QualityFlagState,
    reason: &str,
    request_id: &str,
) -> Result<SurveyFlag, tonic::Status> {
    client
        .resolve_survey_flag(ResolveSurveyFlagRequest {
            name: name.into(),
            resolution: resolution as i32,
            reason: reason.into(),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn row(suite: &Suite, unit: &str) -> UnitReviewScore {
    ReviewsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None))
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: GROUP.into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .expect("scores")
        .into_inner()
        .units
        .into_iter()
        .find(|u| u.unit == format!("units/{unit}"))
        .expect("the unit's row")
}

fn blocked(row: &UnitReviewScore) -> bool {
    row.flags.contains(&(ReviewFlag::SurveyQuality as i32))
}

fn figure(f: &SurveyFlag, name: &str) -> String {
    f.evidence
        .iter()
        .find(|e| e.name == name)
        .map(|e| match &e.number {
            Some(d) => d.value.clone(),
            None => e.text.clone(),
        })
        .unwrap_or_else(|| panic!("no {name} in {f:?}"))
}

fn kinds(flags: &[SurveyFlag]) -> Vec<(String, SurveyFlagKind)> {
    flags
        .iter()
        .map(|f| {
            (
                f.unit.clone(),
                SurveyFlagKind::try_from(f.kind).expect("a kind"),
            )
        })
        .collect()
}

async fn straight_lining_is_flagged_and_excluding_it_restores_the_score(backend: Backend) {
    let suite = Suite::start(backend).await;
    survey_year(&suite, strict()).await;
    let mut a = platform(&suite);
    push(&mut a, honest("h", "siming", 12)).await;
    push(&mut a, honest("j", "huli", 12)).await;
    let clean = row(&suite, "siming").await;
    assert!(!blocked(&clean), "{clean:?}");
    let mut office = ReviewsServiceClient::new(suite.office());
    assert!(flags(&mut office, "").await.unwrap().is_empty());

    // Fifteen respondents answer "satisfied" to everything, a second apart.
    let straight = straight_lined("siming", 15);
    let out = push(&mut a, straight.clone()).await;
    assert_eq!(out.accepted, 15);
    let flagged = row(&suite, "siming").await;
    assert!(blocked(&flagged), "{flagged:?}");
    assert_ne!(flagged.survey, clean.survey);
    assert!(!blocked(&row(&suite, "huli").await));
    let listed = flags(&mut office, "").await.unwrap();
    assert_eq!(
        kinds(&listed),
        [("units/siming".to_string(), SurveyFlagKind::StraightLining)]
    );
    let f = &listed[0];
    assert_eq!(
        f.name,
        format!("{CAMPAIGN}/units/siming/flags/straight_lining")
    );
    // No honest response gives one answer to all three questions.
    assert_eq!(figure(f, "straight_lined"), "15");
    assert_eq!(figure(f, "responses"), "27");
    assert_eq!(figure(f, "share"), "0.555556");
    assert_eq!(f.state, QualityFlagState::Open as i32);
    assert_eq!(f.severity, QualitySeverity::Warning as i32);
    assert!(f.explanation.contains("15 of 27"), "{}", f.explanation);

    // Who may see and resolve it.
    let mut siming = ReviewsServiceClient::new(suite.unit("siming"));
    assert_eq!(flags(&mut siming, "siming").await.unwrap().len(), 1);
    assert_eq!(flags(&mut siming, "").await.unwrap(), listed, "its own");
    let mut huli = ReviewsServiceClient::new(suite.unit("huli"));
    assert!(flags(&mut huli, "").await.unwrap().is_empty());
    let err = flags(&mut siming, "huli").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    for mut caller in [siming.clone(), platform(&suite)] {
        let err = resolve(&mut caller, &f.name, QualityFlagState::Excluded, "x", "")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    let err = resolve(&mut office, &f.name, QualityFlagState::Excluded, " ", "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), ["reason"]);
    let err = resolve(&mut office, &f.name, QualityFlagState::Corrected, "x", "")
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["resolution"]);
    let err = resolve(
        &mut office,
        &format!("{CAMPAIGN}/units/huli/flags/straight_lining"),
        QualityFlagState::Excluded,
        "x",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "huli has no such flag");

    // Excluded: the straight-lined responses leave the tallies, and the
    // score is exactly what the others give.
    let mut evaluator =
        ReviewsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    let done = resolve(
        &mut evaluator,
        &f.name,
        QualityFlagState::Excluded,
        "同一时段整批雷同答卷，予以剔除",
        "exclude-1",
    )
    .await
    .expect("excluded");
    assert_eq!(done.state, QualityFlagState::Excluded as i32);
    assert_eq!(done.excluded_responses, 15);
    assert_eq!(done.resolved_by, "eval-1");
    let again = resolve(
        &mut evaluator,
        &f.name,
        QualityFlagState::Excluded,
        "同一时段整批雷同答卷，予以剔除",
        "exclude-1",
    )
    .await
    .expect("a retry answers as before");
    assert_eq!(again, done);
    let excluded = row(&suite, "siming").await;
    assert!(!blocked(&excluded), "{excluded:?}");
    assert_eq!(excluded.survey_sample, 12);
    let err = resolve(&mut office, &f.name, QualityFlagState::Explained, "x", "")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "FLAG_RESOLVED".into())
    );

    // What remains scores as the honest responses alone do: the same
    // responses pushed for jimei.
    let twins: Vec<SurveyResponse> = honest("h", "siming", 12)
        .into_iter()
        .map(|mut r| {
            r.response_id = format!("twin-{}", r.response_id);
            r.unit = "units/jimei".into();
            r
        })
        .collect();
    push(&mut a, twins).await;
    let twin = row(&suite, "jimei").await;
    assert_eq!(excluded.survey, twin.survey);
    assert_eq!(excluded.satisfaction_index, twin.satisfaction_index);
    assert_eq!(excluded.categories, twin.categories);

    // A resend changes nothing; new straight-lined responses open the
    // flag again.
    let resent = push(&mut a, straight).await;
    assert_eq!((resent.accepted, resent.duplicates), (0, 15));
    assert_eq!(row(&suite, "siming").await.survey, excluded.survey);
    let more: Vec<SurveyResponse> = (0..3)
        .map(|i| {
            response_at(
                &format!("s2-{i}"),
                "siming",
                "residents",
                ["dissatisfied"; 3],
                answered_at() + 100_000 + i * 1000,
            )
        })
        .collect();
    push(&mut a, more).await;
    let reopened = flags(&mut office, "siming").await.unwrap();
    assert_eq!(reopened[0].state, QualityFlagState::Open as i32);
    assert_eq!(reopened[0].excluded_responses, 15);
    assert_eq!(figure(&reopened[0], "straight_lined"), "18");
    assert!(blocked(&row(&suite, "siming").await));
    suite.stop().await;
}

async fn bursts_repeated_respondents_and_refusals_are_flagged(backend: Backend) {
    let suite = Suite::start(backend).await;
    survey_year(&suite, DataQualityRules::default()).await;
    let mut a = platform(&suite);
    let base = answered_at();
    // huli: six phone responses in one second, two per batch; jimei: six
    // a second apart.
    for b in 0..3 {
        let batch = (0..2)
            .map(|i| {
                let n = b * 2 + i;
                response_at(
                    &format!("b-{n}"),
                    "huli",
                    "residents",
                    ["satisfied", "dissatisfied", "satisfied"],
                    base + 5000 + n as i64 * 100,
                )
            })
            .collect();
        push(&mut a, batch).await;
    }
    let spread = (0..6)
        .map(|n| {
            response_at(
                &format!("c-{n}"),
                "jimei",
                "residents",
                ["satisfied", "dissatisfied", "satisfied"],
                base + n * 1000,
            )
        })
        .collect();
    push(&mut a, spread).await;

    // siming: one respondent answers twice under two ids; a resend of one
    // of them under another key is a conflict, not a third response.
    let mut first = response_at("k-1", "siming", "residents", ["satisfied"; 3], base);
    first.respondent = "phone:5f2a".into();
    let mut second = response_at(
        "k-2",
        "siming",
        "residents",
        ["dissatisfied"; 3],
        base + 60_000,
    );
    second.respondent = "phone:5f2a".into();
    let mut other = response_at(
        "k-3",
        "siming",
        "residents",
        ["dissatisfied"; 3],
        base + 120_000,
    );
    other.respondent = "phone:77c1".into();
    push(&mut a, vec![first.clone(), second, other]).await;
    let mut rekeyed = first.clone();
    rekeyed.respondent = "phone:0000".into();
    let out = push(&mut a, vec![rekeyed]).await;
    assert_eq!(out.rejected[0].reason, "CONFLICT");

    // An answer from before the campaign opened is refused and counted
    // once, however often it is resent.
    let early = response_at(
        "e-1",
        "jimei",
        "residents",
        ["satisfied"; 3],
        now_ms() - 40 * DAY,
    );
    for _ in 0..2 {
        let out = push(&mut a, vec![early.clone()]).await;
        assert_eq!(out.rejected[0].reason, "OUT_OF_WINDOW");
    }

    let mut office = ReviewsServiceClient::new(suite.office());
    let listed = flags(&mut office, "").await.unwrap();
    assert_eq!(
        kinds(&listed),
        [
            ("units/huli".to_string(), SurveyFlagKind::Burst),
            ("units/jimei".to_string(), SurveyFlagKind::OutsideWindow),
            (
                "units/siming".to_string(),
                SurveyFlagKind::RepeatedRespondent
            ),
        ]
    );
    let burst = &listed[0];
    assert_eq!(figure(burst, "responses"), "6");
    assert_eq!(figure(burst, "largest"), "6");
    assert!(figure(burst, "at").ends_with(" PHONE"), "{burst:?}");
    let outside = &listed[1];
    assert_eq!(figure(outside, "refused"), "1");
    let repeated = &listed[2];
    assert_eq!(figure(repeated, "respondents"), "1");
    assert_eq!(figure(repeated, "responses"), "2");
    assert_eq!(repeated.severity, QualitySeverity::Critical as i32);

    // Only the critical flag blocks under the default (CRITICAL).
    assert!(blocked(&row(&suite, "siming").await));
    assert!(!blocked(&row(&suite, "huli").await));
    assert!(!blocked(&row(&suite, "jimei").await));

    // Refused responses were never counted: they can only be explained.
    let err = resolve(
        &mut office,
        &outside.name,
        QualityFlagState::Excluded,
        "x",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(bad_fields(&err), ["resolution"]);
    let explained = resolve(
        &mut office,
        &outside.name,
        QualityFlagState::Explained,
        "平台时钟设置错误，已更正",
        "",
    )
    .await
    .expect("explained");
    assert_eq!(explained.state, QualityFlagState::Explained as i32);

    // Excluding the repeat keeps the respondent's first answer only.
    let before = row(&suite, "siming").await;
    assert_eq!(before.survey_sample, 3);
    let done = resolve(
        &mut office,
        &repeated.name,
        QualityFlagState::Excluded,
        "同一受访者重复作答，保留首次",
        "",
    )
    .await
    .expect("excluded");
    assert_eq!(done.excluded_responses, 1);
    let after = row(&suite, "siming").await;
    assert!(!blocked(&after));
    assert_eq!(after.survey_sample, 2);
    // "satisfied" (1.0) and "dissatisfied" (0) are left: mean 0.5 of the
    // residents' category, the only one answered.
    let residents = after
        .categories
        .iter()
        .find(|c| c.category == "residents")
        .expect("residents");
    assert_eq!(residents.responses, 2);
    assert_eq!(
        residents.mean.as_ref().map(|d| d.value.as_str()),
        Some("0.5")
    );

    // Excluding the burst takes out the six responses of that second.
    let done = resolve(
        &mut office,
        &burst.name,
        QualityFlagState::Excluded,
        "机器批量提交",
        "",
    )
    .await
    .expect("excluded");
    assert_eq!(done.excluded_responses, 6);
    assert_eq!(row(&suite, "huli").await.survey_sample, 0);
    suite.stop().await;
}

async fn a_category_that_doubles_near_the_close_is_flagged(backend: Backend) {
    let suite = Suite::start(backend).await;
    survey_year(&suite, DataQualityRules::default()).await;
    let mut a = platform(&suite);
    // The campaign closes 30 days from now; its last 72 hours are late.
    let close = now_ms() + 30 * DAY;
    let mut batch = Vec::new();
    for (category, early, late) in [("residents", 10, 12), ("enterprises", 10, 9)] {
        for i in 0..early {
            batch.push(response_at(
                &format!("{category}-e{i}"),
                "siming",
                category,
                ["satisfied", "dissatisfied", "satisfied"],
                answered_at() - i * 60_000,
            ));
        }
        for i in 0..late {
            batch.push(response_at(
                &format!("{category}-l{i}"),
                "siming",
                category,
                ["satisfied", "dissatisfied", "satisfied"],
                close - DAY - i * 60_000,
            ));
        }
    }
    push(&mut a, batch).await;
    let mut office = ReviewsServiceClient::new(suite.office());
    let listed = flags(&mut office, "siming").await.unwrap();
    assert_eq!(
        kinds(&listed),
        [("units/siming".to_string(), SurveyFlagKind::CategorySurge)]
    );
    let f = &listed[0];
    assert_eq!(figure(f, "category"), "residents");
    assert_eq!(figure(f, "late"), "12");
    assert_eq!(figure(f, "before"), "10");
    assert_eq!(figure(f, "window_hours"), "72");
    let done = resolve(
        &mut office,
        &f.name,
        QualityFlagState::Excluded,
        "临近截止集中补录",
        "",
    )
    .await
    .expect("excluded");
    assert_eq!(done.excluded_responses, 12);
    let after = row(&suite, "siming").await;
    assert_eq!(after.survey_sample, 29, "10 + 10 + 9 stay");
    suite.stop().await;
}

async fn thresholds_are_checked_and_screening_can_be_switched_off(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut plans = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let err = set_rules(
        &mut plans,
        DataQualityRules {
            burst_size: 1,
            straight_lining_share: jixiao_tests::dec("1.5"),
            surge_factor: jixiao_tests::dec("0"),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = bad_fields(&err);
    fields.sort();
    assert_eq!(
        fields,
        [
            "scheme.data_quality.burst_size",
            "scheme.data_quality.straight_lining_share",
            "scheme.data_quality.surge_factor",
        ]
    );
    // Resolving is a write of the year: not during planning.
    let err = resolve(
        &mut ReviewsServiceClient::new(suite.office()),
        &format!("{CAMPAIGN}/units/siming/flags/burst"),
        QualityFlagState::Explained,
        "x",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "WRONG_PHASE".into()),
        "{err:?}"
    );
    set_rules(
        &mut plans,
        DataQualityRules {
            survey_screening_off: true,
            ..strict()
        },
    )
    .await
    .expect("off");
    set_phase(&suite, "2026", Phase::Execution).await;
    jixiao_tests::survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
    let mut a = platform(&suite);
    let same: Vec<SurveyResponse> = (0..20)
        .map(|i| {
            response_at(
                &format!("s-{i}"),
                "siming",
                "residents",
                ["satisfied"; 3],
                answered_at(),
            )
        })
        .collect();
    push(&mut a, same).await;
    let answer = ReviewsServiceClient::new(suite.office())
        .list_survey_flags(ListSurveyFlagsRequest {
            campaign: CAMPAIGN.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.screened);
    assert!(answer.flags.is_empty());
    assert!(!blocked(&row(&suite, "siming").await));
    suite.stop().await;
}

async fn survey_flags_hold_publication_and_show_in_feedback(backend: Backend) {
    let suite = Suite::start(backend).await;
    survey_year(&suite, strict()).await;
    let mut a = platform(&suite);
    let straight = straight_lined("huli", 6);
    push(&mut a, straight).await;
    set_phase(&suite, "2026", Phase::Assessment).await;
    let mut aggregator = AggregatorServiceClient::new(suite.office());
    // The standings follow the reviews service: wait for the flag.
    wait_for_items(&mut aggregator, &["units/huli"]).await;

    let feedback = AggregatorServiceClient::new(suite.unit("huli"))
        .get_feedback(GetFeedbackRequest {
            group: GROUP.into(),
            unit: "units/huli".into(),
        })
        .await
        .expect("feedback")
        .into_inner();
    assert!(
        feedback
            .data_quality
            .iter()
            .any(|l| l.starts_with(CAMPAIGN) && l.contains("STRAIGHT_LINING (OPEN)")),
        "{feedback:?}"
    );
    let mut office = ReviewsServiceClient::new(suite.office());
    let f = flags(&mut office, "huli").await.unwrap().remove(0);
    resolve(
        &mut office,
        &f.name,
        QualityFlagState::Explained,
        "经回访核实，确为真实答卷",
        "",
    )
    .await
    .expect("explained");
    // Once explained the survey holds nothing back.
    wait_for_items(&mut aggregator, &[]).await;
    suite.stop().await;
}

/// Waits until a refused publication lists exactly `units` with a
/// SURVEY_QUALITY item.
async fn wait_for_items(aggregator: &mut AggregatorServiceClient<Authed>, units: &[&str]) {
    use tonic_types::StatusExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let err = aggregator
            .publish_results(PublishResultsRequest {
                group: GROUP.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let items: Vec<String> = err
            .get_error_details()
            .precondition_failure()
            .map(|f| {
                f.violations
                    .iter()
                    .filter(|v| v.description.contains("SURVEY_QUALITY"))
                    .map(|v| v.subject.clone())
                    .collect()
            })
            .unwrap_or_default();
        if items == units {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SURVEY_QUALITY items {items:?}, not {units:?}: {err:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What an outside tester sent: control characters in a reason, keys by
/// their length in characters, a stored response resent out of window.
async fn odd_text_and_out_of_window_resends_are_refused_cleanly(backend: Backend) {
    let suite = Suite::start(backend).await;
    survey_year(&suite, strict()).await;
    let mut a = platform(&suite);
    let mut keyed = Vec::new();
    for (id, key) in [
        ("k-128", "绩".repeat(128)),
        ("k-129", "绩".repeat(129)),
        ("k-blank", " ".to_string()),
        ("k-ctl", "a\u{1b}b".to_string()),
    ] {
        let mut r = response_at(
            id,
            "jimei",
            "residents",
            ["satisfied", "dissatisfied", "satisfied"],
            answered_at(),
        );
        r.respondent = key;
        keyed.push(r);
    }
    let out = push(&mut a, keyed).await;
    assert_eq!(out.accepted, 1, "{out:?}");
    let mut refused = jixiao_tests::refusals(&out.rejected);
    refused.sort();
    assert_eq!(
        refused,
        [
            ("k-129", "INVALID"),
            ("k-blank", "INVALID"),
            ("k-ctl", "INVALID")
        ]
    );

    // A stored response resent with a time outside the window is refused,
    // but the unit answered nothing out of window.
    let mut resent = response_at(
        "k-128",
        "jimei",
        "residents",
        ["satisfied", "dissatisfied", "satisfied"],
        now_ms() + 40 * DAY,
    );
    resent.respondent = "绩".repeat(128);
    let out = push(&mut a, vec![resent]).await;
    assert_eq!(out.rejected[0].reason, "OUT_OF_WINDOW");
    let mut office = ReviewsServiceClient::new(suite.office());
    assert!(flags(&mut office, "jimei").await.unwrap().is_empty());

    // A reason with NUL or an escape sequence is refused on both databases.
    let straight = straight_lined("huli", 6);
    push(&mut a, straight).await;
    let f = flags(&mut office, "huli").await.unwrap().remove(0);
    for reason in ["ab\u{0}cd", "ab\u{1b}[31mred"] {
        let err = resolve(
            &mut office,
            &f.name,
            QualityFlagState::Explained,
            reason,
            "",
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{reason:?}: {err:?}");
        assert_eq!(bad_fields(&err), ["reason"]);
    }
    let ok = resolve(
        &mut office,
        &f.name,
        QualityFlagState::Explained,
        "第一行\n第二行",
        "",
    )
    .await
    .expect("line breaks are text");
    assert_eq!(ok.resolution_reason, "第一行\n第二行");
    suite.stop().await;
}

on_both_databases!(
    odd_text_and_out_of_window_resends_are_refused_cleanly,
    straight_lining_is_flagged_and_excluding_it_restores_the_score,
    bursts_repeated_respondents_and_refusals_are_flagged,
    a_category_that_doubles_near_the_close_is_flagged,
    thresholds_are_checked_and_screening_can_be_switched_off,
    survey_flags_hold_publication_and_show_in_feedback,
);
