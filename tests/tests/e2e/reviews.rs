//! The reviews service end to end, through its gRPC interface, on SQLite and
//! PostgreSQL.

use std::time::Duration;

use jixiao_proto::{
    plans::{
        CreateGroupRequest, CreateUnitRequest, Group, Phase, Unit, UnitKind,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        AcceptInsufficientSampleRequest, Campaign, CampaignMode, CreateCampaignRequest,
        GetGroupReviewScoresRequest, GroupReviewScores, MutualRating, PushResponsesRequest,
        PushUnitResultsRequest, PushVotesRequest, ReviewFlag, SubmitMutualRatingRequest,
        SurveyResponse, UnitResult, UnitReviewScore, Vote, WatchReviewChangesRequest,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, answered_at, bad_fields, dec, evaluation_year, now_ms, reason, response, set_phase, ts,
};
use tonic::Code;

const CAMPAIGN: &str = "cycles/2026/campaigns/survey";
type Reviews = ReviewsServiceClient<Authed>;

fn platform(suite: &Suite, name: &str) -> Reviews {
    ReviewsServiceClient::new(suite.as_roles(name, &[Role::SurveyPlatform], None))
}

fn reader(suite: &Suite) -> Reviews {
    ReviewsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None))
}

async fn campaign(suite: &Suite, id: &str, mode: CampaignMode) -> Campaign {
    jixiao_tests::survey_campaign(&mut ReviewsServiceClient::new(suite.office()), id, mode).await
}

/// A suite whose 2026 cycle is in EXECUTION with these campaigns.
async fn executing(backend: Backend, campaigns: &[(&str, CampaignMode)]) -> Suite {
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    set_phase(&suite, "2026", Phase::Execution).await;
    for (id, mode) in campaigns {
        campaign(&suite, id, *mode).await;
    }
    suite
}

/// `n` responses for `unit`, ids `{prefix}-{i}`, all satisfied.
fn batch(prefix: &str, unit: &str, n: usize) -> Vec<SurveyResponse> {
    (0..n)
        .map(|i| {
            response(
                &format!("{prefix}-{i}"),
                unit,
                "residents",
                ["satisfied"; 3],
            )
        })
        .collect()
}

async fn push(
    client: &mut Reviews,
    responses: Vec<SurveyResponse>,
) -> Result<jixiao_proto::reviews::PushResponsesResponse, tonic::Status> {
    client
        .push_responses(PushResponsesRequest {
            campaign: CAMPAIGN.into(),
            responses,
        })
        .await
        .map(|r| r.into_inner())
}

async fn scores(suite: &Suite) -> GroupReviewScores {
    reader(suite)
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .expect("review scores")
        .into_inner()
}

fn row<'a>(s: &'a GroupReviewScores, unit: &str) -> &'a UnitReviewScore {
    s.units
        .iter()
        .find(|u| u.unit == format!("units/{unit}"))
        .unwrap()
}

fn value(d: &Option<jixiao_proto::Decimal>) -> &str {
    d.as_ref().map(|d| d.value.as_str()).unwrap_or("")
}

type StreamCall = tokio::task::JoinHandle<
    Result<tonic::Response<jixiao_proto::reviews::PushResponsesResponse>, tonic::Status>,
>;

/// A platform's stream of the four batches `{prefix}{0..4}` of 25
/// responses for jimei, with the first sent and stored: the sender for
/// the rest, and the call.
async fn stream_started(
    suite: &Suite,
    prefix: &str,
) -> (
    Vec<PushResponsesRequest>,
    tokio::sync::mpsc::Sender<PushResponsesRequest>,
    StreamCall,
) {
    let batches: Vec<PushResponsesRequest> = (0..4)
        .map(|b| PushResponsesRequest {
            campaign: CAMPAIGN.into(),
            responses: batch(&format!("{prefix}{b}"), "jimei", 25),
        })
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut a = platform(suite, "platform-a");
    let call = tokio::spawn(async move {
        a.stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(batches[0].clone()).await.unwrap();
    jimei_holds(suite, 25).await;
    (batches, tx, call)
}

/// Waits (10 s at most) until jimei's survey sample reaches `n`.
async fn jimei_holds(suite: &Suite, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while row(&scores(suite).await, "jimei").survey_sample < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "jimei's sample never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_same_batch_twice_counts_once_and_conflicts_are_refused(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let mut a = platform(&suite, "platform-a");
    // The scores are read after every push: the service keeps the tallies
    // it read and adds each stored batch to them, so each read checks that
    // what a push added (all of it, part of it, nothing) is counted once.
    let samples = async || {
        let s = scores(&suite).await;
        (
            row(&s, "siming").survey_sample,
            row(&s, "huli").survey_sample,
        )
    };
    assert_eq!(samples().await, (0, 0));
    let first = push(&mut a, batch("r", "siming", 40)).await.unwrap();
    assert_eq!(
        (first.accepted, first.duplicates, first.rejected.len()),
        (40, 0, 0)
    );
    assert_eq!(samples().await, (40, 0));
    let again = push(&mut a, batch("r", "siming", 40)).await.unwrap();
    assert_eq!(
        (again.accepted, again.duplicates, again.rejected.len()),
        (0, 40, 0)
    );
    assert_eq!(samples().await, (40, 0));

    // The same id with other content is refused, never overwritten; bad rows
    // are refused one by one with their reasons, the rest is stored.
    let mut mixed = vec![response("r-0", "siming", "residents", ["dissatisfied"; 3])];
    mixed.push(response("x-1", "nowhere", "residents", ["satisfied"; 3]));
    mixed.push(response("x-2", "huli", "martians", ["satisfied"; 3]));
    mixed.push(response(
        "x-3",
        "huli",
        "residents",
        ["satisfied", "meh", "satisfied"],
    ));
    mixed.push(response("bad id!", "huli", "residents", ["satisfied"; 3]));
    mixed.push(response("x-5", "huli", "residents", ["satisfied"; 3]));
    let mut late = response("x-6", "huli", "residents", ["satisfied"; 3]);
    late.answer_time = ts(now_ms() + 60 * DAY);
    mixed.push(late);
    mixed.push(response("x-5", "huli", "residents", ["satisfied"; 3]));
    // Left out, not unknown.
    mixed.push(SurveyResponse {
        response_id: "x-7".into(),
        unit: "units/huli".into(),
        ..Default::default()
    });
    let refusals = [
        ("bad id!", "INVALID"),
        ("r-0", "CONFLICT"),
        ("x-1", "UNKNOWN_UNIT"),
        ("x-2", "UNKNOWN_CATEGORY"),
        ("x-3", "UNKNOWN_ANSWER"),
        ("x-6", "OUT_OF_WINDOW"),
        ("x-7", "INVALID"),
    ];
    let sorted = |out: &jixiao_proto::reviews::PushResponsesResponse| {
        let mut reasons: Vec<_> = out
            .rejected
            .iter()
            .map(|r| (r.id.clone(), r.reason.clone()))
            .collect();
        reasons.sort();
        reasons
    };
    let out = push(&mut a, mixed.clone()).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (1, 1));
    assert_eq!(sorted(&out), refusals.map(|(i, r)| (i.into(), r.into())));
    assert_eq!(samples().await, (40, 1));
    // A batch with a conflict is not taken as stored whole: sent again,
    // its conflict is refused again, not counted as a duplicate.
    let out = push(&mut a, mixed).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (0, 2));
    assert_eq!(sorted(&out), refusals.map(|(i, r)| (i.into(), r.into())));
    assert_eq!(samples().await, (40, 1));
    // Stored responses cut into other batches, or in another order, are
    // duplicates all the same.
    let mut reordered = batch("r", "siming", 40);
    reordered.reverse();
    for resend in [batch("r", "siming", 20), reordered] {
        let n = resend.len() as i32;
        let out = push(&mut a, resend).await.unwrap();
        assert_eq!(
            (out.accepted, out.duplicates, out.rejected.len()),
            (0, n, 0)
        );
    }
    // A new batch hiding stored ids where the resend check does not look
    // (it samples every sixth id here) is still sorted row by row.
    let mut hidden = batch("h", "siming", 100);
    hidden.insert(1, response("r-1", "siming", "residents", ["satisfied"; 3]));
    hidden.insert(
        2,
        response("r-2", "siming", "residents", ["dissatisfied"; 3]),
    );
    let out = push(&mut a, hidden.clone()).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (100, 1));
    assert_eq!(sorted(&out), [("r-2".into(), "CONFLICT".into())]);
    assert_eq!(samples().await, (140, 1));
    let out = push(&mut a, hidden).await.unwrap();
    assert_eq!((out.accepted, out.duplicates), (0, 101));
    assert_eq!(sorted(&out), [("r-2".into(), "CONFLICT".into())]);
    let s = scores(&suite).await;
    assert_eq!(row(&s, "siming").survey_sample, 140);
    assert_eq!(
        value(&row(&s, "siming").survey),
        "30",
        "140 satisfied respondents, the conflicts ignored"
    );
    assert_eq!(row(&s, "huli").survey_sample, 1);
    suite.stop().await;
}

/// The scores of the group as a follower asks: changes since `known`.
async fn changes_since(suite: &Suite, known: i64) -> GroupReviewScores {
    reader(suite)
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: known,
            changes_only: true,
        })
        .await
        .expect("review scores")
        .into_inner()
}

/// `held` with the rows of `changes` in place of its own.
fn merged(held: &GroupReviewScores, changes: &GroupReviewScores) -> Vec<UnitReviewScore> {
    held.units
        .iter()
        .map(|u| {
            let changed = changes.units.iter().find(|c| c.unit == u.unit);
            changed.unwrap_or(u).clone()
        })
        .collect()
}

async fn a_follower_is_sent_only_the_units_its_pushes_changed(backend: Backend) {
    let suite = executing(
        backend,
        &[
            ("survey", CampaignMode::RawResponses),
            ("portal", CampaignMode::OnlineVotes),
        ],
    )
    .await;
    let mut a = platform(&suite, "platform-a");
    push(&mut a, batch("s", "siming", 12)).await.unwrap();
    push(&mut a, batch("h", "huli", 5)).await.unwrap();
    let held = scores(&suite).await;
    assert_eq!(held.units.len(), 3);
    assert!(!held.changes_only);
    let current = changes_since(&suite, held.revision).await;
    assert!(current.unchanged && current.units.is_empty(), "{current:?}");

    // One push, to one unit, with an out-of-window refusal for another
    // (refusals can raise a flag): those two units come, each as a
    // whole answer has it now.
    let mut pushed = batch("s2", "siming", 3);
    let mut late = response("late-1", "jimei", "residents", ["satisfied"; 3]);
    late.answer_time = ts(now_ms() + 60 * DAY);
    pushed.push(late);
    let out = push(&mut a, pushed).await.unwrap();
    assert_eq!((out.accepted, out.rejected.len()), (3, 1));
    let changes = changes_since(&suite, held.revision).await;
    assert!(changes.changes_only && !changes.unchanged, "{changes:?}");
    let mut named: Vec<&str> = changes.units.iter().map(|u| u.unit.as_str()).collect();
    named.sort();
    assert_eq!(named, ["units/jimei", "units/siming"]);
    let whole = scores(&suite).await;
    assert_eq!(changes.revision, whole.revision);
    assert_eq!(row(&whole, "siming").survey_sample, 15);
    assert_eq!(merged(&held, &changes), whole.units);
    // Two pushes later, the changes of both since the older revision.
    push(&mut a, batch("h2", "huli", 2)).await.unwrap();
    let both = changes_since(&suite, held.revision).await;
    assert_eq!(both.units.len(), 3);
    assert_eq!(merged(&held, &both), scores(&suite).await.units);
    let last = changes_since(&suite, whole.revision).await;
    assert_eq!(last.units.len(), 1);
    assert_eq!(row(&last, "huli").survey_sample, 7);

    // A vote moves the counter without a batch: nobody can tell which
    // units it changed from the batches, so the answer is whole.
    let whole = scores(&suite).await;
    a.push_votes(PushVotesRequest {
        campaign: "cycles/2026/campaigns/portal".into(),
        votes: vec![Vote {
            vote_id: "v1".into(),
            voter: "voter-1".into(),
            unit: "units/huli".into(),
            answer: "satisfied".into(),
            cast_time: ts(now_ms() - DAY),
        }],
    })
    .await
    .unwrap();
    let after_vote = changes_since(&suite, whole.revision).await;
    assert!(!after_vote.changes_only && !after_vote.unchanged);
    assert_eq!(after_vote.units.len(), 3);
    assert_eq!(row(&after_vote, "huli").votes, 1);
    // Nor can a revision before any the service followed, nor one it
    // has not reached; asked without `changes_only`, whole as before.
    for known in [1, after_vote.revision + 5] {
        let s = changes_since(&suite, known).await;
        assert!(!s.changes_only && s.units.len() == 3, "{known}: {s:?}");
    }
    push(&mut a, batch("s3", "siming", 1)).await.unwrap();
    let s = reader(&suite)
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: after_vote.revision,
            changes_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!s.changes_only && s.units.len() == 3);
    // The whole read just made is followed from its revision on.
    let again = changes_since(&suite, after_vote.revision).await;
    assert!(again.changes_only, "{again:?}");
}

/// Pushes at once commit in one order and may report in another; a
/// follower merging what changed since its copy ends with the whole table.
async fn a_follower_merging_changes_under_concurrent_pushes_ends_whole(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let mut held = scores(&suite).await;
    let pushers: Vec<_> = ["siming", "huli", "jimei", "siming"]
        .into_iter()
        .enumerate()
        .map(|(p, unit)| {
            let mut client = platform(&suite, "platform-a");
            tokio::spawn(async move {
                for round in 0..8 {
                    let prefix = format!("p{p}-{round}");
                    push(&mut client, batch(&prefix, unit, 3 + p))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut partial = 0;
    while pushers.iter().any(|p| !p.is_finished()) {
        let changes = changes_since(&suite, held.revision).await;
        if changes.changes_only {
            partial += 1;
            held.units = merged(&held, &changes);
        } else if !changes.unchanged {
            held.units = changes.units;
        }
        held.revision = changes.revision;
    }
    for p in pushers {
        p.await.unwrap();
    }
    let changes = changes_since(&suite, held.revision).await;
    if changes.changes_only {
        held.units = merged(&held, &changes);
    } else if !changes.unchanged {
        held.units = changes.units;
    }
    let whole = scores(&suite).await;
    assert_eq!(changes.revision, whole.revision);
    assert_eq!(held.units, whole.units, "after {partial} partial answers");
    assert_eq!(row(&whole, "siming").survey_sample, 8 * (3 + 6));
    assert_eq!(row(&whole, "jimei").survey_sample, 8 * 5);
    assert!(partial > 0, "no partial answer was given");
}

async fn a_broken_stream_resent_in_full_counts_exactly(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;

    // Two batches go through, then the platform's connection breaks.
    let (batches, tx, call) = stream_started(&suite, "s").await;
    tx.send(batches[1].clone()).await.unwrap();
    jimei_holds(&suite, 50).await;
    call.abort();
    drop(tx);

    // The platform resends everything; what was stored counts once.
    let mut a = platform(&suite, "platform-a");
    let summary = a
        .stream_responses(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.accepted, summary.duplicates), (50, 50));
    assert_eq!(row(&scores(&suite).await, "jimei").survey_sample, 100);
    suite.stop().await;
}

/// A stream in flight when shutdown begins finishes within the drain,
/// past the point where it would check its campaign's phase again. In one
/// process the plans service is reached through the port the drain has
/// closed, so that check failed and cut the stream with UNAVAILABLE
/// (found by an outside tester).
async fn a_stream_in_flight_at_shutdown_finishes_in_the_drain(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let (batches, tx, call) = stream_started(&suite, "d").await;
    let mut suite = suite;
    let halted = tokio::spawn(async move {
        suite.halt().await;
        suite
    });
    // The last batch comes after the stream's admission has aged past
    // ADMISSION_TTL (10 s), within the drain's 15 s.
    for b in &batches[1..] {
        tokio::time::sleep(Duration::from_secs(4)).await;
        tx.send(b.clone()).await.unwrap();
    }
    drop(tx);
    let summary = call
        .await
        .unwrap()
        .expect("the stream finishes within the drain")
        .into_inner();
    assert_eq!((summary.accepted, summary.duplicates), (100, 0));
    halted.await.unwrap().stop().await;
}

async fn only_bound_platforms_push(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    for mut client in [
        platform(&suite, "platform-b"),
        ReviewsServiceClient::new(suite.unit("siming")),
        ReviewsServiceClient::new(suite.office()),
    ] {
        let err = push(&mut client, batch("p", "siming", 1))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::PermissionDenied, "PERMISSION_DENIED")
        );
        let err = client
            .stream_responses(tokio_stream::iter(vec![PushResponsesRequest {
                campaign: CAMPAIGN.into(),
                responses: batch("p", "siming", 1),
            }]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = ReviewsServiceClient::new(suite.unit("siming"))
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Raw responses to a unit-results campaign are refused.
    let mut office = ReviewsServiceClient::new(suite.office());
    let err = office
        .create_campaign(CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: "Bad".into(),
            campaign: Some(Campaign::default()),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&err),
        [
            "campaign_id",
            "campaign.mode",
            "campaign.title",
            "campaign.platforms",
            "campaign.group"
        ]
    );
    assert_eq!(row(&scores(&suite).await, "siming").survey_sample, 0);
    suite.stop().await;
}

async fn categories_are_reweighted_and_small_samples_flagged(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let mut a = platform(&suite, "platform-a");
    let mut watcher = reader(&suite);
    let mut changes = watcher
        .watch_review_changes(WatchReviewChangesRequest {
            cycle: "cycles/2026".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // service users: 1.0 and (1 + 0.8 + don't know) / 2 = 0.9 → mean 0.95;
    // enterprises: 0.8, 0.6, 0.6, 0.8 → mean 0.7; residents and deputies absent.
    let rows = vec![
        response("c1", "siming", "service_users", ["satisfied"; 3]),
        response(
            "c2",
            "siming",
            "service_users",
            ["satisfied", "basically_satisfied", "dont_know"],
        ),
        response("c3", "siming", "enterprises", ["basically_satisfied"; 3]),
        response(
            "c4",
            "siming",
            "enterprises",
            ["satisfied", "basically_satisfied", "dissatisfied"],
        ),
        response(
            "c5",
            "siming",
            "enterprises",
            ["satisfied", "basically_satisfied", "dissatisfied"],
        ),
        response("c6", "siming", "enterprises", ["basically_satisfied"; 3]),
        response("c7", "siming", "residents", ["dont_know"; 3]),
    ];
    push(&mut a, rows).await.unwrap();
    let change = tokio::time::timeout(Duration::from_secs(5), changes.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(change.group, "cycles/2026/groups/districts");
    let s = scores(&suite).await;
    let siming = row(&s, "siming");
    // (0.4 × 0.95 + 0.3 × 0.7) / 0.7 = 0.842857142857…; × 30 = 25.285714
    assert_eq!(value(&siming.satisfaction_index), "0.842857");
    assert_eq!(value(&siming.survey), "25.285714");
    assert_eq!(
        siming.survey_sample, 6,
        "a response with no counted answer does not count"
    );
    let cats: Vec<_> = siming
        .categories
        .iter()
        .map(|c| (c.category.as_str(), c.responses, value(&c.mean)))
        .collect();
    assert_eq!(
        cats,
        [
            ("service_users", 2, "0.95"),
            ("enterprises", 4, "0.7"),
            ("residents", 0, ""),
            ("deputies", 0, "")
        ]
    );
    // In the order the contract gives (reviews.proto, UnitReviewScore.flags):
    // the standings and the publication inputs keep it.
    assert_eq!(
        siming.flags,
        [
            ReviewFlag::MissingCategory as i32,
            ReviewFlag::InsufficientSample as i32,
            ReviewFlag::NoVotes as i32,
            ReviewFlag::NoRatings as i32,
        ]
    );
    let accepted = ReviewsServiceClient::new(suite.office())
        .accept_insufficient_sample(AcceptInsufficientSampleRequest {
            campaign: CAMPAIGN.into(),
            unit: "units/siming".into(),
            reason: "新设机构，样本有限".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !accepted
            .flags
            .contains(&(ReviewFlag::InsufficientSample as i32))
    );
    suite.stop().await;
}

async fn votes_and_unit_results(backend: Backend) {
    let suite = executing(
        backend,
        &[
            ("survey", CampaignMode::UnitResults),
            ("portal", CampaignMode::OnlineVotes),
        ],
    )
    .await;
    let mut a = platform(&suite, "platform-a");
    let err = push(&mut a, batch("r", "siming", 1)).await.unwrap_err();
    assert_eq!(reason(&err), "WRONG_MODE");
    a.push_unit_results(PushUnitResultsRequest {
        campaign: CAMPAIGN.into(),
        results: vec![UnitResult {
            unit: "units/huli".into(),
            index: dec("0.8765"),
            sample_size: 412,
        }],
        request_id: "firm-1".into(),
    })
    .await
    .unwrap();
    let vote = |id: &str, voter: &str, answer: &str, at: i64| Vote {
        vote_id: id.into(),
        voter: voter.into(),
        unit: "units/huli".into(),
        answer: answer.into(),
        cast_time: ts(at),
    };
    let t = now_ms() - 5 * DAY;
    let out = a
        .push_votes(PushVotesRequest {
            campaign: "cycles/2026/campaigns/portal".into(),
            votes: vec![
                vote("v1", "voter-1", "dissatisfied", t),
                vote("v2", "voter-1", "satisfied", t + 1000), // the latest counts
                vote("v3", "voter-2", "basically_satisfied", t),
                vote("v4", "voter-3", "dont_know", t),
                vote("v0", "voter-2", "dissatisfied", t - 1000), // older: ignored
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((out.accepted, out.duplicates), (5, 0));
    let again = a
        .push_votes(PushVotesRequest {
            campaign: "cycles/2026/campaigns/portal".into(),
            votes: vec![vote("v2", "voter-1", "satisfied", t + 1000)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    let s = scores(&suite).await;
    let huli = row(&s, "huli");
    assert_eq!((value(&huli.survey), huli.survey_sample), ("26.295", 412));
    // voters 1 and 2 count (1.0 and 0.8): 5 × 0.9
    assert_eq!((value(&huli.online), huli.votes), ("4.5", 2));
    suite.stop().await;
}

/// A NUL (which PostgreSQL cannot store) in a voter or a request id is
/// refused as bad input on both databases: before, on PostgreSQL it failed
/// the whole push as INTERNAL, valid votes beside it included, while
/// SQLite stored it (found by an outside tester).
async fn control_characters_are_refused_on_both_databases(backend: Backend) {
    let suite = executing(
        backend,
        &[
            ("survey", CampaignMode::UnitResults),
            ("portal", CampaignMode::OnlineVotes),
        ],
    )
    .await;
    let mut a = platform(&suite, "platform-a");
    let vote = |id: &str, voter: &str| Vote {
        vote_id: id.into(),
        voter: voter.into(),
        unit: "units/huli".into(),
        answer: "satisfied".into(),
        cast_time: ts(now_ms() - DAY),
    };
    let out = a
        .push_votes(PushVotesRequest {
            campaign: "cycles/2026/campaigns/portal".into(),
            votes: vec![
                vote("v1", "voter-1"),
                vote("v2", "vo\0ter"),
                vote("v3", "voter-3"),
            ],
        })
        .await
        .expect("the push goes through")
        .into_inner();
    assert_eq!(out.accepted, 2);
    let refused = jixiao_tests::refusals(&out.rejected);
    assert_eq!(refused, [("v2", "INVALID")]);
    let err = a
        .push_unit_results(PushUnitResultsRequest {
            campaign: CAMPAIGN.into(),
            results: vec![UnitResult {
                unit: "units/huli".into(),
                index: dec("0.5"),
                sample_size: 10,
            }],
            request_id: "firm\0-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(bad_fields(&err), ["request_id"]);
    suite.stop().await;
}

async fn mutual_ratings_are_trimmed_and_self_ratings_refused(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut plans = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let departments = ["finance", "transport", "housing", "education"];
    for d in departments {
        plans
            .create_unit(CreateUnitRequest {
                unit_id: d.into(),
                unit: Some(Unit {
                    display_name_zh: d.into(),
                    kind: UnitKind::CityDepartment as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    PlansServiceClient::new(suite.office())
        .create_group(CreateGroupRequest {
            parent: "cycles/2026".into(),
            group_id: "departments".into(),
            group: Some(Group {
                display_name: "市直部门".into(),
                units: departments.iter().map(|d| format!("units/{d}")).collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    set_phase(&suite, "2026", Phase::Execution).await;
    let rate = |rater: &'static str, ratee: &'static str, grade: &'static str| {
        let client = ReviewsServiceClient::new(suite.unit(rater));
        async move {
            let mut client = client;
            client
                .submit_mutual_rating(SubmitMutualRatingRequest {
                    parent: "cycles/2026".into(),
                    rating: Some(MutualRating {
                        rater: format!("units/{rater}"),
                        ratee: format!("units/{ratee}"),
                        grade: grade.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
        }
    };
    let err = rate("siming", "siming", "excellent").await.unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, vec!["rating.ratee".to_string()])
    );
    let err = rate("siming", "huli", "superb").await.unwrap_err();
    assert_eq!(bad_fields(&err), ["rating.grade"]);
    // siming: six raters, the highest (1.0) and lowest (0) dropped.
    rate("huli", "siming", "poor").await.unwrap();
    for (rater, grade) in [
        ("jimei", "excellent"),
        ("finance", "good"),
        ("transport", "good"),
        ("housing", "fair"),
        ("education", "excellent"),
    ] {
        rate(rater, "siming", grade).await.unwrap();
    }
    // A later rating replaces an earlier one: huli changes poor to fair.
    rate("huli", "siming", "fair").await.unwrap();
    // huli: three raters, a plain mean.
    for (rater, grade) in [
        ("siming", "good"),
        ("jimei", "fair"),
        ("finance", "excellent"),
    ] {
        rate(rater, "huli", grade).await.unwrap();
    }
    // Another unit cannot rate on siming's behalf.
    let err = ReviewsServiceClient::new(suite.unit("huli"))
        .submit_mutual_rating(SubmitMutualRatingRequest {
            parent: "cycles/2026".into(),
            rating: Some(MutualRating {
                rater: "units/siming".into(),
                ratee: "units/jimei".into(),
                grade: "poor".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let s = scores(&suite).await;
    // siming: 0.6, 1.0, 0.8, 0.8, 0.6, 1.0 → drop one 1.0 and one 0.6 → 0.8 → 4
    assert_eq!(
        (value(&row(&s, "siming").mutual), row(&s, "siming").raters),
        ("4", 6)
    );
    // huli: (0.8 + 0.6 + 1.0) / 3 = 0.8 → 4
    assert_eq!(value(&row(&s, "huli").mutual), "4");
    assert!(
        row(&s, "jimei")
            .flags
            .contains(&(ReviewFlag::NoRatings as i32))
    );
    suite.stop().await;
}

async fn a_csv_file_is_imported_through_the_stream(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let day = jixiao_runtime::time::timestamp(answered_at()).to_string();
    let mut csv = String::from("response_id,unit,category,channel,answer_time,q1,q2,q3\n");
    for i in 0..12 {
        csv.push_str(&format!(
            "csv-{i},huli,residents,phone,{day},satisfied,basically_satisfied,\n"
        ));
    }
    csv.push_str(&format!(
        "csv-bad,huli,aliens,online,{day},satisfied,satisfied,satisfied\n"
    ));
    let token = suite.token("platform-a", &[Role::SurveyPlatform], None);
    let addr = format!("http://{}", suite.addr);
    let import = || async {
        let batches = jixiao::import::read_batches(csv.as_bytes(), CAMPAIGN).unwrap();
        let channel = jixiao::client::connect(&addr, &token).await.unwrap();
        jixiao::import::push(channel, batches, |_, _| {})
            .await
            .unwrap()
    };
    let first = import().await;
    assert_eq!(
        (first.accepted, first.duplicates, first.rejected.len()),
        (12, 0, 1)
    );
    assert_eq!(first.rejected[0].reason, "UNKNOWN_CATEGORY");
    let again = import().await;
    assert_eq!((again.accepted, again.duplicates), (0, 12));
    let s = scores(&suite).await;
    // (1 + 0.8) / 2 = 0.9 for every respondent: 27 of 30.
    assert_eq!(
        (
            row(&s, "huli").survey_sample,
            value(&row(&s, "huli").survey)
        ),
        (12, "27")
    );
    suite.stop().await;
}

/// A stream of many refusals answers within a client's default 4 MB
/// limit: the first 1,000 refusals are listed, all are counted by reason,
/// and a refused value comes back cut short, not whole (found by an
/// outside tester: 100,000 refusals made an 18.7 MB answer).
async fn a_stream_of_refusals_lists_the_first_and_counts_them_all(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let huge = "x".repeat(100_000);
    let mut first = vec![
        response(&huge, "huli", "residents", ["satisfied"; 3]),
        response("long-unit", &huge, "residents", ["satisfied"; 3]),
        response("fine", "huli", "residents", ["satisfied"; 3]),
    ];
    first.extend(
        (0..1_997).map(|i| response(&format!("b0-{i}"), "huli", "aliens", ["satisfied"; 3])),
    );
    let mut batches = vec![first];
    for b in 1..6 {
        batches.push(
            (0..2_000)
                .map(|i| response(&format!("b{b}-{i}"), "huli", "aliens", ["satisfied"; 3]))
                .collect(),
        );
    }
    let requests: Vec<_> = batches
        .into_iter()
        .map(|responses| PushResponsesRequest {
            campaign: CAMPAIGN.into(),
            responses,
        })
        .collect();
    let summary = platform(&suite, "platform-a")
        .stream_responses(tokio_stream::iter(requests.clone()))
        .await
        .expect("the answer fits the client's default limit")
        .into_inner();
    assert_eq!(summary.accepted, 1);
    assert_eq!(summary.rejected.len(), 1_000);
    let mut counts: Vec<_> = summary.rejected_by_reason.into_iter().collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("INVALID".to_string(), 1),
            ("UNKNOWN_CATEGORY".to_string(), 11_997),
            ("UNKNOWN_UNIT".to_string(), 1)
        ]
    );
    let (id, unit) = (&summary.rejected[0], &summary.rejected[1]);
    assert_eq!(
        (id.reason.as_str(), unit.id.as_str()),
        ("INVALID", "long-unit")
    );
    for (quoted, length) in [(&id.id, 100_000), (&unit.message, 100_006)] {
        assert!(quoted.len() < 300, "{} bytes quoted", quoted.len());
        assert!(
            quoted.contains(&format!("… ({length} characters)")),
            "{quoted}"
        );
    }
    // A batch lists all its refusals, a changed resend's CONFLICT first,
    // and counts them the same way.
    let mut changed = requests[0].responses.clone();
    changed[2] = response("fine", "huli", "residents", ["dissatisfied"; 3]);
    let again = push(&mut platform(&suite, "platform-a"), changed)
        .await
        .unwrap();
    assert_eq!((again.duplicates, again.rejected.len()), (0, 2_000));
    let first = &again.rejected[0];
    assert_eq!(
        (first.id.as_str(), first.reason.as_str()),
        ("fine", "CONFLICT")
    );
    assert_eq!(again.rejected_by_reason["UNKNOWN_CATEGORY"], 1_997);
    assert_eq!(again.rejected_by_reason["CONFLICT"], 1);
    suite.stop().await;
}

/// A batch stored before, streamed next to a copy of it with one response
/// changed: the two are often committed together, and only the changed
/// response is a conflict.
async fn a_stored_batch_beside_a_changed_copy_counts_one_conflict(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let mut a = platform(&suite, "platform-a");
    let stored = batch("c", "huli", 20);
    let first = push(&mut a, stored.clone()).await.unwrap();
    assert_eq!(first.accepted, 20);
    let mut changed = stored.clone();
    changed[0] = response("c-0", "huli", "residents", ["dissatisfied"; 3]);
    // Batches queue behind a write and are committed together, more often
    // than not; five streams make it all but certain that some are.
    for _ in 0..5 {
        let out = a
            .stream_responses(tokio_stream::iter([stored.clone(), changed.clone()].map(
                |responses| PushResponsesRequest {
                    campaign: CAMPAIGN.into(),
                    responses,
                },
            )))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((out.accepted, out.duplicates), (0, 39));
        assert_eq!(jixiao_tests::refusals(&out.rejected), [("c-0", "CONFLICT")]);
    }
    assert_eq!(row(&scores(&suite).await, "huli").survey_sample, 20);
    suite.stop().await;
}

/// Platforms that drop their streams half-way, while batches are being
/// written, leave the service able to take every later push. (A write
/// cut off in the middle of a `COPY` once left PostgreSQL connections out
/// of step with the pool; an outside tester's client hit that moment
/// against a release build, these cut-offs in-process did not.)
async fn cancelled_streams_leave_later_pushes_working(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let batches: Vec<PushResponsesRequest> = (0..8)
        .map(|b| PushResponsesRequest {
            campaign: CAMPAIGN.into(),
            responses: batch(&format!("k{b}"), "jimei", 5000),
        })
        .collect();
    // Rounds of four platforms' streams, each sending three batches and
    // then holding the stream open until it is cut off, at a different
    // point of the writes queued behind each other each round.
    for round in 0..8u64 {
        let mut calls = Vec::new();
        for k in 0..4 {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            for j in 0..3 {
                tx.send(batches[(round as usize * 3 + k + j * 3) % 8].clone())
                    .await
                    .unwrap();
            }
            let mut a = platform(&suite, "platform-a");
            calls.push(tokio::spawn(async move {
                let _open = tx;
                a.stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(30 + 40 * round)).await;
        for call in calls {
            call.abort();
            let _ = call.await;
        }
    }
    // Everything again, as the contract asks of a platform whose stream
    // broke: each response counts once, whatever was stored before.
    let mut a = platform(&suite, "platform-a");
    for b in &batches {
        let out = push(&mut a, b.responses.clone())
            .await
            .expect("a push after cut-off streams");
        assert_eq!(out.accepted + out.duplicates, 5000);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    }
    let again = push(&mut a, batches[0].responses.clone()).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 5000));
    let fresh = push(&mut a, batch("after", "jimei", 10)).await.unwrap();
    assert_eq!(fresh.accepted, 10);
    assert_eq!(row(&scores(&suite).await, "jimei").survey_sample, 40_010);
    suite.stop().await;
}

/// Platforms pushing responses and a portal pushing votes into one group
/// at once: every push succeeds. On PostgreSQL the survey ingest locked
/// the group's counter before the audit head and other writes the other
/// way round, so about one push in a hundred deadlocked and was answered
/// INTERNAL (found by an outside tester).
async fn pushes_of_responses_and_votes_to_one_group_never_deadlock(backend: Backend) {
    let suite = executing(
        backend,
        &[
            ("survey", CampaignMode::RawResponses),
            ("portal", CampaignMode::OnlineVotes),
        ],
    )
    .await;
    let units = ["siming", "huli", "jimei"];
    let mut calls = Vec::new();
    for k in 0..3 {
        let mut a = platform(&suite, "platform-a");
        calls.push(tokio::spawn(async move {
            for i in 0..60 {
                push(&mut a, batch(&format!("c{k}-{i}"), units[(k + i) % 3], 5))
                    .await
                    .map(|out| assert_eq!(out.accepted, 5))?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for k in 0..2 {
        let mut a = platform(&suite, "platform-a");
        calls.push(tokio::spawn(async move {
            for i in 0..90 {
                a.push_votes(PushVotesRequest {
                    campaign: "cycles/2026/campaigns/portal".into(),
                    votes: vec![Vote {
                        vote_id: format!("v{k}-{i}"),
                        voter: format!("voter-{k}-{i}"),
                        unit: format!("units/{}", units[i % 3]),
                        answer: "satisfied".into(),
                        cast_time: ts(now_ms() - DAY),
                    }],
                })
                .await?;
            }
            Ok(())
        }));
    }
    for call in calls {
        call.await.unwrap().expect("every push succeeds");
    }
    let s = scores(&suite).await;
    let (samples, votes): (i64, i64) = units.iter().fold((0, 0), |(n, v), u| {
        let r = row(&s, u);
        (n + r.survey_sample, v + r.votes)
    });
    assert_eq!((samples, votes), (3 * 60 * 5, 2 * 90));
    suite.stop().await;
}

/// Platforms resending overlapping votes at once (the same voters and
/// units, in different orders) all get through, and each voter counts
/// once per unit, with the latest vote. On PostgreSQL such pushes aborted
/// each other with CONCURRENT_WRITE and retries starved (found by an
/// outside tester); unserialised, two could also both replace the same
/// latest vote and count a voter twice.
async fn overlapping_vote_pushes_all_land_and_count_each_voter_once(backend: Backend) {
    let suite = executing(backend, &[("portal", CampaignMode::OnlineVotes)]).await;
    let units = ["siming", "huli", "jimei"];
    let voters = 40;
    let t = now_ms() - 2 * DAY;
    let mut calls = Vec::new();
    for k in 0..4usize {
        let mut a = platform(&suite, "platform-a");
        calls.push(tokio::spawn(async move {
            let mut pairs: Vec<(usize, &str)> = (0..voters)
                .flat_map(|v| units.iter().map(move |u| (v, *u)))
                .collect();
            pairs.rotate_left(k * 31);
            if k % 2 == 1 {
                pairs.reverse();
            }
            for chunk in pairs.chunks(30) {
                // The last platform's votes are the latest, and only
                // they are "satisfied".
                let answer = if k == 3 { "satisfied" } else { "dissatisfied" };
                let votes = chunk
                    .iter()
                    .map(|(v, u)| Vote {
                        vote_id: format!("v{k}-{v}-{u}"),
                        voter: format!("voter-{v}"),
                        unit: format!("units/{u}"),
                        answer: answer.into(),
                        cast_time: ts(t + k as i64 * 1000),
                    })
                    .collect();
                let out = a
                    .push_votes(PushVotesRequest {
                        campaign: "cycles/2026/campaigns/portal".into(),
                        votes,
                    })
                    .await?
                    .into_inner();
                assert_eq!(out.accepted as usize, chunk.len());
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for call in calls {
        call.await.unwrap().expect("every push succeeds");
    }
    let s = scores(&suite).await;
    for u in units {
        let r = row(&s, u);
        assert_eq!((r.votes, value(&r.online)), (voters as i64, "5"), "{u}");
    }
    suite.stop().await;
}

/// A unit's members are final once PLANNING ends, not before: a read of
/// the group's scores in PLANNING (the aggregator makes one whenever the
/// standings are read) must not keep the members it saw for the survey's
/// first pushes, after the group was edited.
async fn members_edited_in_planning_hold_for_the_pushes_after_it(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    campaign(&suite, "survey", CampaignMode::RawResponses).await;
    assert_eq!(scores(&suite).await.units.len(), 3);
    jixiao_tests::drop_jimei(&mut office).await;
    set_phase(&suite, "2026", Phase::Execution).await;
    let out = push(
        &mut platform(&suite, "platform-a"),
        vec![
            response("m-1", "jimei", "residents", ["satisfied"; 3]),
            response("m-2", "huli", "residents", ["satisfied"; 3]),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.accepted, 1);
    let refused = jixiao_tests::refusals(&out.rejected);
    assert_eq!(refused, [("m-1", "UNKNOWN_UNIT")]);
    let units: Vec<_> = scores(&suite)
        .await
        .units
        .into_iter()
        .map(|u| u.unit)
        .collect();
    assert_eq!(units, ["units/siming", "units/huli"]);
    suite.stop().await;
}

/// A platform's token that lapses while its stream is open ends the
/// stream: the batch sent before is stored, the one after is not read,
/// and the call answers UNAUTHENTICATED.
async fn a_client_stream_ends_when_its_token_lapses(backend: Backend) {
    let suite = executing(backend, &[("survey", CampaignMode::RawResponses)]).await;
    let (token, last_second) = jixiao_tests::lapsing_token(&suite, "platform-a", "survey_platform");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut a = ReviewsServiceClient::new(suite.authed(&token));
    let call = tokio::spawn(async move {
        a.stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let batch_of = |prefix: &str| PushResponsesRequest {
        campaign: CAMPAIGN.into(),
        responses: batch(prefix, "jimei", 25),
    };
    tx.send(batch_of("before")).await.unwrap();
    jimei_holds(&suite, 25).await;
    jixiao_tests::wait_past(last_second).await;
    // Past the lapse: the stream is over whether or not more is sent.
    let _ = tx.send(batch_of("after")).await;
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the stream ends")
        .unwrap()
        .unwrap_err();
    jixiao_tests::assert_lapsed(&err);
    assert_eq!(row(&scores(&suite).await, "jimei").survey_sample, 25);
    // A fresh token resends the batch: it counts once.
    let again = push(
        &mut platform(&suite, "platform-a"),
        batch("after", "jimei", 25),
    )
    .await
    .unwrap();
    assert_eq!(again.accepted, 25);
    assert_eq!(row(&scores(&suite).await, "jimei").survey_sample, 50);
    suite.stop().await;
}

on_both_databases!(
    a_client_stream_ends_when_its_token_lapses,
    control_characters_are_refused_on_both_databases,
    a_follower_is_sent_only_the_units_its_pushes_changed,
    a_follower_merging_changes_under_concurrent_pushes_ends_whole,
    a_stream_in_flight_at_shutdown_finishes_in_the_drain,
    a_stream_of_refusals_lists_the_first_and_counts_them_all,
    overlapping_vote_pushes_all_land_and_count_each_voter_once,
    members_edited_in_planning_hold_for_the_pushes_after_it,
    pushes_of_responses_and_votes_to_one_group_never_deadlock,
    a_stored_batch_beside_a_changed_copy_counts_one_conflict,
    cancelled_streams_leave_later_pushes_working,
    a_csv_file_is_imported_through_the_stream,
    the_same_batch_twice_counts_once_and_conflicts_are_refused,
    a_broken_stream_resent_in_full_counts_exactly,
    only_bound_platforms_push,
    categories_are_reweighted_and_small_samples_flagged,
    votes_and_unit_results,
    mutual_ratings_are_trimmed_and_self_ratings_refused,
);
