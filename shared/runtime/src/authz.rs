//! Who may call what, at the level of roles (DOMAIN.md §1): one row per
//! RPC of the suite, checked by the host for every call before the
//! service sees it. A method without a row is refused to everyone, so a
//! new RPC stays closed until someone decides who may call it. Which unit
//! a `unit` or `provider` principal may act for is decided by each
//! handler, on the resource it touches.

use crate::Role::{self, *};

/// The setup of a cycle: everyone with business in it reads it.
const SETUP_READERS: &[Role] = &[
    Office, Evaluator, Inspector, Unit, Provider, Viewer, Service,
];
/// The administration: the office alone.
const OFFICE: &[Role] = &[Office];
/// Computed group figures the aggregator follows.
const FOLLOWED: &[Role] = &[Office, Evaluator, Service];
/// Audit trails: the office and the evaluation group.
const AUDIT: &[Role] = &[Office, Evaluator];

/// The roles that may call a method (`/package.Service/Method`); `None`
/// when it has no row.
pub fn allowed(path: &str) -> Option<&'static [Role]> {
    let (service, method) = path.strip_prefix("/jixiao.")?.split_once('/')?;
    let roles: &'static [Role] = match (service, method) {
        // ---- plans
        (
            "plans.v1.PlansService",
            "CreateCycle" | "UpdateCycle" | "SetCyclePhase" | "CreateUnit" | "CreateGroup"
            | "UpdateGroup" | "UpdateScheme" | "ReplaceFramework" | "ApprovePlan" | "ReturnPlan"
            | "GrantLockException" | "CreateNotice",
        ) => OFFICE,
        (
            "plans.v1.PlansService",
            "GetCycle" | "ListCycles" | "GetUnit" | "ListUnits" | "GetGroup" | "ListGroups"
            | "GetScheme" | "GetFramework" | "ListNotices",
        ) => SETUP_READERS,
        ("plans.v1.PlansService", "CreatePlan" | "UpdatePlan" | "SubmitPlan" | "AmendPlan") => {
            &[Office, Unit]
        }
        (
            "plans.v1.PlansService",
            "GetPlan" | "ListPlans" | "ListPlanVersions" | "DiffPlanVersions",
        ) => &[Office, Evaluator, Unit, Provider, Service],
        (
            "plans.v1.PlansService",
            "GetGroupTargets" | "GetTimelinessReport" | "WatchPlanChanges",
        ) => FOLLOWED,
        ("plans.v1.PlansService", "CheckWriteWindow" | "ListLockExceptions") => {
            &[Office, Evaluator, Unit, Provider, Service]
        }
        ("plans.v1.PlansService", "ListAuditRecords") => &[Office, Evaluator, Unit],
        // ---- indicators
        (
            "indicators.v1.IndicatorsService",
            "ReportValue" | "BatchReportValues" | "CorrectValue",
        ) => &[Office, Provider],
        ("indicators.v1.IndicatorsService", "EnterAssessedScore" | "ResolveValueFlag") => {
            &[Office, Evaluator]
        }
        (
            "indicators.v1.IndicatorsService",
            "GetValue" | "ListValues" | "ListValueHistory" | "GetProgress" | "ListValueFlags",
        ) => &[Office, Evaluator, Unit, Provider, Service],
        ("indicators.v1.IndicatorsService", "GetProviderCompleteness") => {
            &[Office, Evaluator, Provider, Service]
        }
        ("indicators.v1.IndicatorsService", "GetGroupScores" | "WatchScoreChanges") => FOLLOWED,
        // ---- inspections
        (
            "inspections.v1.InspectionsService",
            "CreateInspection" | "RecordSpotCheck" | "IssueDocument",
        ) => &[Office, Inspector],
        (
            "inspections.v1.InspectionsService",
            "ConfirmFinding" | "DecideContest" | "ReviewRectification" | "VerifySelfInspectionItem",
        ) => OFFICE,
        (
            "inspections.v1.InspectionsService",
            "ContestFinding" | "ReportRectification" | "CreateSelfInspectionItem",
        ) => &[Office, Unit],
        (
            "inspections.v1.InspectionsService",
            "GetInspection"
            | "ListInspections"
            | "ListDocuments"
            | "ListOverdueRectifications"
            | "ListSelfInspectionItems",
        ) => &[Office, Evaluator, Inspector, Unit, Service],
        ("inspections.v1.InspectionsService", "GetGroupAdjustments" | "WatchAdjustmentChanges") => {
            FOLLOWED
        }
        // ---- reviews
        ("reviews.v1.ReviewsService", "CreateCampaign" | "AcceptInsufficientSample") => OFFICE,
        ("reviews.v1.ReviewsService", "GetCampaign" | "ListCampaigns") => {
            &[Office, Evaluator, Unit, SurveyPlatform, Service]
        }
        (
            "reviews.v1.ReviewsService",
            "StreamResponses" | "PushResponses" | "PushUnitResults" | "PushVotes",
        ) => &[SurveyPlatform],
        ("reviews.v1.ReviewsService", "SubmitMutualRating") => &[Unit],
        ("reviews.v1.ReviewsService", "ListMutualRatings") => &[Office, Evaluator, Unit],
        ("reviews.v1.ReviewsService", "GetGroupReviewScores" | "WatchReviewChanges") => FOLLOWED,
        ("reviews.v1.ReviewsService", "ResolveSurveyFlag") => &[Office, Evaluator],
        ("reviews.v1.ReviewsService", "ListSurveyFlags") => &[Office, Evaluator, Unit, Service],
        // ---- aggregator
        (
            "aggregator.v1.AggregatorService",
            "GetStandings" | "WatchStandings" | "GetDistribution",
        ) => &[Office, Evaluator, Viewer, Service],
        (
            "aggregator.v1.AggregatorService",
            "GetPublication"
            | "GetPublicationInputs"
            | "ListPublications"
            | "VerifyPublication"
            | "GetArchive"
            | "GetFeedback",
        ) => &[Office, Evaluator, Unit, Viewer, Service],
        ("aggregator.v1.AggregatorService", "PublishResults") => OFFICE,
        // ---- every service
        (_, "ListAuditRecords" | "VerifyAuditChain") => AUDIT,
        _ => return None,
    };
    Some(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_by_path_and_unknown_methods_have_none() {
        assert_eq!(
            allowed("/jixiao.plans.v1.PlansService/CreateCycle"),
            Some(OFFICE)
        );
        assert_eq!(
            allowed("/jixiao.reviews.v1.ReviewsService/VerifyAuditChain"),
            Some(AUDIT)
        );
        assert_eq!(
            allowed("/jixiao.plans.v1.PlansService/DropEverything"),
            None
        );
        assert_eq!(allowed("/other.Service/CreateCycle"), None);
    }
}
