//! The contracts against the server: every reason a proto lists is
//! asserted by some end-to-end test (read from the sources of this test
//! binary), and what the contracts say about providers, answer codes and
//! set-up refusals holds through gRPC, on SQLite and PostgreSQL.

use std::{collections::BTreeSet, path::Path};

use jixiao_proto::{
    indicators::{
        EnterAssessedScoreRequest, GetGroupScoresRequest, GetProviderCompletenessRequest,
        IndicatorValue, ReportValueRequest, indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        RecordSpotCheckRequest, SpotCheckCase, inspections_service_client::InspectionsServiceClient,
    },
    plans::{
        AssignedTarget, CreateGroupRequest, CreatePlanRequest, CreateUnitRequest, GetCycleRequest,
        GetFrameworkRequest, Group, Phase, Plan, ReplaceFrameworkRequest, Scheme, Unit, UnitKind,
        UpdateSchemeRequest, WeightedKey,
    },
    reviews::{
        Answer, Campaign, CampaignMode, GetGroupReviewScoresRequest, PushResponsesRequest,
        PushVotesRequest, ReviewFlag, Vote, reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, reason::listed_in};
use jixiao_testkit::{Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, PROVIDER, annual, answered_at, approve_plans, bad_fields, dec, evaluation_year, framework,
    now_ms, reason, response, set_phase, survey_campaign, targets, ts,
};
use tonic::Code;

/// Reasons no end-to-end test can produce on demand, and why.
const NOT_PRODUCIBLE: &[(&str, &str)] = &[
    // A fault of the server: a test that could cause it would be a bug
    // report. The runtime's tests map panics and database faults to it.
    ("INTERNAL", "a server fault"),
    // The plans service refusing a look-up another service makes on a
    // caller's behalf: the callers' own checks (names, phases, units) come
    // first, so only a plans service that changes between the two answers it.
    ("DEPENDENCY_PRECONDITION", "a race between two services"),
    // Two writers of the same key in the same instant: timing, not input;
    // shared/runtime's write tests provoke it.
    ("CONCURRENT_WRITE", "a race between two writers"),
];

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every reason the contracts list: each service's own (with the shared
/// ones it gives), the reasons every service gives, and the reviews
/// service's per-response refusals.
fn listed_reasons() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let protos = repo().join("proto/jixiao");
    for entry in std::fs::read_dir(&protos).unwrap() {
        let dir = entry.unwrap().path().join("v1");
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            for heading in [
                "Error reasons (",
                "Error reasons every service",
                "Refusal reasons of single",
            ] {
                for r in listed_in(&text, heading) {
                    out.insert((r, name.clone()));
                }
            }
        }
    }
    out
}

/// Each reason a contract lists appears, quoted, in the sources of this
/// test binary outside this file (where a test compares a status's reason
/// or a rejection's with it), unless it is a listed exception.
#[test]
fn every_listed_reason_is_asserted_by_an_end_to_end_test() {
    let dir = repo().join("tests/tests/e2e");
    let mut sources = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "contracts.rs")
        {
            sources.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    // This file's scenarios below count too; its exception list does not.
    let own = include_str!("contracts.rs");
    sources.push_str(own.split(concat!("// ---- ", "scenarios")).nth(1).unwrap());
    let listed = listed_reasons();
    assert!(
        listed.len() > 30,
        "the reason lists were not found: {listed:?}"
    );
    let mut missing = Vec::new();
    for (r, proto) in &listed {
        let excepted = NOT_PRODUCIBLE.iter().any(|(e, _)| e == r);
        let asserted = sources.contains(&format!("\"{r}\""));
        if !excepted && !asserted {
            missing.push(format!("{r} ({proto})"));
        }
        assert!(
            !(excepted && asserted),
            "{r} is asserted by a test: take it off NOT_PRODUCIBLE"
        );
    }
    assert!(
        missing.is_empty(),
        "listed but asserted by no end-to-end test: {missing:?}"
    );
    for (e, _) in NOT_PRODUCIBLE {
        assert!(
            listed.iter().any(|(r, _)| r == e),
            "{e} is excepted but no contract lists it"
        );
    }
}

// ---- scenarios

/// What the plans contract says of set-up: an ASSESSED indicator needs no
/// provider and takes no target; a plan needs a framework; a framework
/// cannot change once plans are approved against it; names are unique.
async fn plans_set_up_is_as_the_contract_says(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let framework_name = "cycles/2026/groups/districts/framework".to_string();
    let replace = |indicators| ReplaceFrameworkRequest {
        name: framework_name.clone(),
        indicators,
        request_id: String::new(),
    };

    // KEY_PROJECTS (ASSESSED, the sixth) without a provider is taken; a
    // RATIO indicator without one is not.
    let mut without = framework();
    without[5].provider.clear();
    office
        .replace_framework(replace(without.clone()))
        .await
        .unwrap();
    let stored = office
        .get_framework(GetFrameworkRequest {
            name: framework_name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.indicators[5].provider, "");
    let mut bad = without.clone();
    bad[0].provider.clear();
    let err = office.replace_framework(replace(bad)).await.unwrap_err();
    assert_eq!(reason(&err), "VALIDATION_FAILED");
    assert_eq!(bad_fields(&err), ["indicators[0].provider"]);
    // An assigned target on an ASSESSED indicator would make the unit's plan
    // unsubmittable: refused where it is set.
    let mut bad = without.clone();
    bad[5].assigned_targets = vec![AssignedTarget {
        unit: "units/siming".into(),
        value: dec("4"),
    }];
    let err = office.replace_framework(replace(bad)).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["indicators[5].assigned_targets[0]"]);

    // A unit twice, a cycle that does not exist.
    let unit = CreateUnitRequest {
        unit_id: "cityhall".into(),
        unit: Some(Unit {
            display_name_zh: "市政府办公厅".into(),
            kind: UnitKind::CityDepartment as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    office.create_unit(unit.clone()).await.unwrap();
    let err = office.create_unit(unit).await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS")
    );
    let err = office
        .get_cycle(GetCycleRequest {
            name: "cycles/1999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "NOT_FOUND")
    );

    // A plan in a group without a framework.
    office
        .create_group(CreateGroupRequest {
            parent: "cycles/2026".into(),
            group_id: "departments".into(),
            group: Some(Group {
                display_name: "市直部门".into(),
                units: vec!["units/cityhall".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let err = office
        .create_plan(CreatePlanRequest {
            parent: "cycles/2026".into(),
            plan: Some(Plan {
                unit: "units/cityhall".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "FRAMEWORK_INCOMPLETE")
    );

    // Approved plans hold the framework.
    approve_plans(
        &suite,
        "2026",
        &[
            ("siming", targets(["8", "0.45", "95", "300", "1000"])),
            ("huli", targets(["7", "0.5", "95", "300", "1000"])),
            ("jimei", targets(["6", "0.45", "95", "300", "1000"])),
        ],
    )
    .await;
    let err = office
        .replace_framework(replace(without))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "PLANS_APPROVED")
    );

    // The ASSESSED indicator without a provider is scored from the
    // evaluator's score, is nobody's to report, and owes no provider.
    set_phase(&suite, "2026", Phase::Execution).await;
    let mut evaluator =
        IndicatorsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    evaluator
        .enter_assessed_score(EnterAssessedScoreRequest {
            parent: "cycles/2026".into(),
            unit: "units/siming".into(),
            indicator: "KEY_PROJECTS".into(),
            score: dec("4.1234565"),
            justification: "按期推进".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let scores = evaluator
        .get_group_scores(GetGroupScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let siming = scores
        .units
        .iter()
        .find(|u| u.unit == "units/siming")
        .unwrap();
    let key = siming
        .indicators
        .iter()
        .find(|i| i.indicator == "KEY_PROJECTS")
        .unwrap();
    // The points are the score rounded to 6 places, half away from zero.
    assert_eq!(key.points.as_ref().unwrap().value, "4.123457");
    let mut provider =
        IndicatorsServiceClient::new(suite.as_roles(PROVIDER, &[Role::Provider], Some(PROVIDER)));
    let err = provider
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(IndicatorValue {
                unit: "units/siming".into(),
                indicator: "KEY_PROJECTS".into(),
                period: annual(),
                value: dec("4"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "VALIDATION_FAILED");
    assert_eq!(bad_fields(&err), ["value.indicator"]);
    let completeness = provider
        .get_provider_completeness(GetProviderCompletenessRequest {
            cycle: "cycles/2026".into(),
            provider: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let providers: Vec<&str> = completeness
        .providers
        .iter()
        .map(|p| p.provider.as_str())
        .collect();
    assert_eq!(providers, [format!("units/{PROVIDER}")]);
    suite.stop().await;
}

/// What the reviews contract says of campaigns and answer codes: one
/// campaign id and one survey campaign per group; a platform may send the
/// scheme's codes and "dont_know", nothing else; a response of only
/// "dont_know" is accepted and counts nowhere; a "dont_know" vote
/// uncounts its voter.
async fn answer_codes_are_as_the_contract_says(backend: Backend) {
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let mut office = ReviewsServiceClient::new(suite.office());
    survey_campaign(&mut office, "survey", CampaignMode::RawResponses).await;
    let again = |id: &str, mode: CampaignMode| jixiao_proto::reviews::CreateCampaignRequest {
        parent: "cycles/2026".into(),
        campaign_id: id.into(),
        campaign: Some(Campaign {
            group: "cycles/2026/groups/districts".into(),
            title: "第二次调查".into(),
            mode: mode as i32,
            platforms: vec!["platform-a".into()],
            questions: vec![jixiao_proto::reviews::Question {
                id: "q1".into(),
                text: "满意吗".into(),
            }],
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let err = office
        .create_campaign(again("survey", CampaignMode::RawResponses))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS")
    );
    let err = office
        .create_campaign(again("survey-firm", CampaignMode::UnitResults))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "CAMPAIGN_EXISTS")
    );
    office
        .create_campaign(jixiao_proto::reviews::CreateCampaignRequest {
            campaign: Some(Campaign {
                open_time: ts(now_ms() - 30 * DAY),
                close_time: ts(now_ms() + 30 * DAY),
                ..again("portal", CampaignMode::OnlineVotes).campaign.unwrap()
            }),
            ..again("portal", CampaignMode::OnlineVotes)
        })
        .await
        .unwrap();
    set_phase(&suite, "2026", Phase::Execution).await;

    let mut platform =
        ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None));
    let mut unknown_question = response("r3", "huli", "residents", ["satisfied"; 3]);
    unknown_question.answers[2] = Answer {
        question: "q9".into(),
        answer: "satisfied".into(),
    };
    let batch = PushResponsesRequest {
        campaign: "cycles/2026/campaigns/survey".into(),
        responses: vec![
            response("r1", "siming", "residents", ["dont_know"; 3]),
            response(
                "r2",
                "huli",
                "residents",
                ["satisfied", "dont_know", "dissatisfied"],
            ),
            unknown_question,
            response(
                "r4",
                "huli",
                "residents",
                ["satisfied", "no_opinion", "satisfied"],
            ),
        ],
    };
    let pushed = platform
        .push_responses(batch.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((pushed.accepted, pushed.duplicates), (2, 0));
    let rejected = jixiao_tests::refusals(&pushed.rejected);
    assert_eq!(
        rejected,
        [("r3", "UNKNOWN_QUESTION"), ("r4", "UNKNOWN_ANSWER")]
    );
    // The all-"dont_know" response is stored: sent again, a duplicate.
    let again = platform.push_responses(batch).await.unwrap().into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 2));

    let vote = |id: &str, voter: &str, unit: &str, answer: &str, at: i64| Vote {
        vote_id: id.into(),
        voter: voter.into(),
        unit: format!("units/{unit}"),
        answer: answer.into(),
        cast_time: ts(at),
    };
    let t = answered_at();
    let votes = platform
        .push_votes(PushVotesRequest {
            campaign: "cycles/2026/campaigns/portal".into(),
            votes: vec![
                vote("v1", "voter-1", "siming", "satisfied", t),
                // Later, the same voter does not know: the vote above no
                // longer counts.
                vote("v2", "voter-1", "siming", "dont_know", t + 1000),
                vote("v3", "voter-2", "huli", "basically_satisfied", t),
                vote("v4", "voter-3", "huli", "no_opinion", t),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(votes.accepted, 3);
    assert_eq!(votes.rejected[0].reason, "UNKNOWN_ANSWER");

    let scores = office
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let row = |u: &str| {
        scores
            .units
            .iter()
            .find(|r| r.unit == format!("units/{u}"))
            .unwrap()
    };
    // siming's only response has no counted answer: no sample, no survey.
    let siming = row("siming");
    assert_eq!(siming.survey_sample, 0);
    assert_eq!(siming.survey, None);
    assert!(siming.flags.contains(&(ReviewFlag::NoSurvey as i32)));
    assert_eq!((siming.votes, siming.online.clone()), (0, None));
    assert!(siming.flags.contains(&(ReviewFlag::NoVotes as i32)));
    // huli's response is worth (1 + 0) / 2 = 0.5: a survey of 30 × 0.5,
    // with one sample, its category mean and the others missing.
    let huli = row("huli");
    assert_eq!(huli.survey_sample, 1);
    assert_eq!(huli.survey.as_ref().unwrap().value, "15");
    let residents = huli
        .categories
        .iter()
        .find(|c| c.category == "residents")
        .unwrap();
    assert_eq!(residents.mean.as_ref().unwrap().value, "0.5");
    assert!(huli.flags.contains(&(ReviewFlag::MissingCategory as i32)));
    assert!(
        huli.flags
            .contains(&(ReviewFlag::InsufficientSample as i32))
    );
    assert_eq!(huli.votes, 1);
    assert_eq!(huli.online.as_ref().unwrap().value, "4");
    suite.stop().await;
}

/// A spot check whose defect the scheme gives no deduction is refused.
async fn a_scheme_without_the_deduction_refuses_the_spot_check(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut plans = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    plans
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: "cycles/2026/groups/districts/scheme".into(),
                spot_check_deductions: vec![WeightedKey {
                    key: "incomplete_file".into(),
                    value: dec("0.3"),
                }],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["spot_check_deductions".into()],
            }),
        })
        .await
        .unwrap();
    set_phase(&suite, "2026", Phase::Execution).await;
    let err =
        InspectionsServiceClient::new(suite.as_roles("inspector-li", &[Role::Inspector], None))
            .record_spot_check(RecordSpotCheckRequest {
                parent: "cycles/2026".into(),
                unit: "units/jimei".into(),
                inspect_time: ts(now_ms() - DAY),
                inspectors: vec!["李明".into()],
                cases: vec![SpotCheckCase {
                    case_reference: "XK-2026-0012".into(),
                    legal_limit_days: 20,
                    actual_days: 26,
                    file_complete: true,
                }],
                request_id: "spot-1".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "SCHEME_INCOMPLETE")
    );
    suite.stop().await;
}

on_both_databases!(
    plans_set_up_is_as_the_contract_says,
    answer_codes_are_as_the_contract_says,
    a_scheme_without_the_deduction_refuses_the_spot_check,
);
