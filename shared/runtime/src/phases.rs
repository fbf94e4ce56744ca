//! When a write may happen (DOMAIN.md §2): one row per write RPC of the
//! suite, as `authz.rs` is one row per RPC for roles. The host refuses a
//! method without a row, so a new write stays closed until someone decides
//! in which phases it belongs; each handler checks its row against the
//! cycle it writes to with [`admit`] before it reads or validates anything
//! else.
//!
//! A write is refused with FAILED_PRECONDITION and one of these reasons:
//! `WRONG_PHASE`, `CYCLE_ARCHIVED`, or the deadline reason of its scope
//! (`PLAN_DEADLINE_PASSED`, `DATA_DEADLINE_PASSED`, `REVIEW_CLOSED`,
//! `RECTIFICATION_DEADLINE_PASSED`).

use jixiao_proto::plans::{CheckWriteWindowResponse, Cycle, LockScope, Phase};

use crate::{Error, Shared, time};

/// The phases of a cycle that take writes at all: everything but ARCHIVED.
const LIVE: &[Phase] = &[
    Phase::Planning,
    Phase::Execution,
    Phase::Assessment,
    Phase::Published,
    Phase::Rectification,
];
/// From the start of execution until the cycle is archived: the evaluation
/// year and the corrections after publication.
const FROM_EXECUTION: &[Phase] = &[
    Phase::Execution,
    Phase::Assessment,
    Phase::Published,
    Phase::Rectification,
];
/// The evaluation year itself: inspections and self-inspection happen here.
const YEAR: &[Phase] = &[Phase::Execution, Phase::Assessment];

/// When a write RPC may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// A read, or a write not tied to one cycle (a new cycle, a unit).
    Always,
    /// Only while the cycle is in one of these phases.
    Phases(&'static [Phase]),
    /// In these phases; outside them only while the unit holds a lock
    /// exception in `scope`, and then late.
    PhasesOrException {
        phases: &'static [Phase],
        scope: LockScope,
    },
    /// The writing unit's window in a scope ([`write_window`]): open in the
    /// scope's phases until its deadline, otherwise only under the unit's
    /// lock exception and then late. The office writes on a unit's behalf
    /// in the phases of `office` even when the unit's window has closed,
    /// and such a write is marked late.
    Window {
        scope: LockScope,
        office: &'static [Phase],
    },
    /// The scope's phases until its deadline, with no exception: the writer
    /// is a platform, not a unit, and lock exceptions are granted to units.
    Deadline(LockScope),
}

impl Gate {
    /// The reasons a write through this gate can be refused with.
    pub fn reasons(&self) -> Vec<Shared> {
        match self {
            Gate::Always => vec![],
            Gate::Phases(_) | Gate::PhasesOrException { .. } => {
                vec![Shared::WrongPhase, Shared::CycleArchived]
            }
            Gate::Window { scope, .. } | Gate::Deadline(scope) => {
                vec![
                    Shared::WrongPhase,
                    Shared::CycleArchived,
                    deadline_reason(*scope),
                ]
            }
        }
    }
}

/// The gate of a method (`/package.Service/Method`); `None` when it has no
/// row, which the host answers with a refusal.
pub fn gate(path: &str) -> Option<Gate> {
    use Gate::*;
    let (service, method) = path.strip_prefix("/jixiao.")?.split_once('/')?;
    if is_read(method) {
        return Some(Always);
    }
    let gate = match (service, method) {
        // ---- plans
        ("plans.v1.PlansService", "CreateCycle" | "CreateUnit") => Always,
        (
            "plans.v1.PlansService",
            "UpdateCycle" | "SetCyclePhase" | "GrantLockException" | "CreateNotice",
        ) => Phases(LIVE),
        (
            "plans.v1.PlansService",
            "CreateGroup" | "UpdateGroup" | "UpdateScheme" | "ReplaceFramework",
        ) => Phases(&[Phase::Planning]),
        ("plans.v1.PlansService", "CreatePlan") => Window {
            scope: LockScope::Plan,
            office: &[],
        },
        // An approved plan is amended during execution, so its draft,
        // submission and review follow the phases (or the unit's plan
        // exception); a first plan's submission also obeys the plan
        // window, which the handler checks once it knows which of the two
        // the plan is.
        (
            "plans.v1.PlansService",
            "UpdatePlan" | "SubmitPlan" | "AmendPlan" | "ApprovePlan" | "ReturnPlan",
        ) => PhasesOrException {
            phases: &[Phase::Planning, Phase::Execution],
            scope: LockScope::Plan,
        },
        // ---- indicators
        (
            "indicators.v1.IndicatorsService",
            "ReportValue" | "BatchReportValues" | "CorrectValue",
        ) => Window {
            scope: LockScope::Data,
            office: FROM_EXECUTION,
        },
        ("indicators.v1.IndicatorsService", "EnterAssessedScore" | "ResolveValueFlag") => {
            Phases(FROM_EXECUTION)
        }
        // ---- inspections
        (
            "inspections.v1.InspectionsService",
            "CreateInspection" | "RecordSpotCheck" | "CreateSelfInspectionItem",
        ) => Phases(YEAR),
        (
            "inspections.v1.InspectionsService",
            "IssueDocument"
            | "ConfirmFinding"
            | "ContestFinding"
            | "DecideContest"
            | "ReviewRectification"
            | "VerifySelfInspectionItem",
        ) => Phases(FROM_EXECUTION),
        ("inspections.v1.InspectionsService", "ReportRectification") => Window {
            scope: LockScope::Rectification,
            office: FROM_EXECUTION,
        },
        // ---- reviews
        ("reviews.v1.ReviewsService", "CreateCampaign") => {
            Phases(&[Phase::Planning, Phase::Execution, Phase::Assessment])
        }
        ("reviews.v1.ReviewsService", "AcceptInsufficientSample" | "ResolveSurveyFlag") => {
            Phases(FROM_EXECUTION)
        }
        (
            "reviews.v1.ReviewsService",
            "PushResponses" | "StreamResponses" | "PushUnitResults" | "PushVotes",
        ) => Deadline(LockScope::Review),
        ("reviews.v1.ReviewsService", "SubmitMutualRating") => Window {
            scope: LockScope::Review,
            office: &[],
        },
        // ---- aggregator
        ("aggregator.v1.AggregatorService", "PublishResults") => {
            Phases(&[Phase::Assessment, Phase::Published, Phase::Rectification])
        }
        _ => return None,
    };
    Some(gate)
}

/// Reads never depend on the phase. `Verify…` is not a read prefix because
/// the office verifies self-inspection items by writing.
fn is_read(method: &str) -> bool {
    ["Get", "List", "Watch", "Diff"]
        .iter()
        .any(|p| method.starts_with(p))
        || matches!(
            method,
            "CheckWriteWindow" | "VerifyPublication" | "VerifyAuditChain"
        )
}

/// The phases in which a scope is normally open.
pub fn scope_phases(scope: LockScope) -> &'static [Phase] {
    match scope {
        LockScope::Plan => &[Phase::Planning],
        LockScope::Data | LockScope::Review => YEAR,
        // A finding can need rectification from the moment it is confirmed.
        LockScope::Rectification => FROM_EXECUTION,
        LockScope::Unspecified => &[],
    }
}

/// The deadline reason of a scope, e.g. PLAN_DEADLINE_PASSED.
pub fn deadline_reason(scope: LockScope) -> Shared {
    match scope {
        LockScope::Plan => Shared::PlanDeadlinePassed,
        LockScope::Data => Shared::DataDeadlinePassed,
        LockScope::Review => Shared::ReviewClosed,
        LockScope::Rectification => Shared::RectificationDeadlinePassed,
        LockScope::Unspecified => Shared::WrongPhase,
    }
}

/// A closed reason as text (a window computed by the plans service arrives
/// as a `String`) back to the reason this module produced; anything else
/// reads as WRONG_PHASE.
pub fn reason(text: &str) -> Shared {
    Shared::parse(text)
        .filter(|r| {
            matches!(r, Shared::WrongPhase | Shared::CycleArchived)
                || [
                    LockScope::Plan,
                    LockScope::Data,
                    LockScope::Review,
                    LockScope::Rectification,
                ]
                .into_iter()
                .any(|s| deadline_reason(s) == *r)
        })
        .unwrap_or(Shared::WrongPhase)
}

/// Whether a write in a scope may happen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub open: bool,
    /// Open only through a lock exception: the write is late.
    pub late: bool,
    /// Why it is closed (machine-readable), empty when open.
    pub closed_reason: &'static str,
}

/// The write window rule (DOMAIN.md §2): open in the scope's phases until
/// its deadline; after the deadline or outside the phase only while the
/// office's lock exception for the unit is in force, and then late. An
/// archived cycle takes no writes at all.
pub fn write_window(
    phase: Phase,
    scope: LockScope,
    deadline_ms: Option<i64>,
    exception_until_ms: Option<i64>,
    now_ms: i64,
) -> Window {
    let closed = |closed_reason| Window {
        open: false,
        late: false,
        closed_reason,
    };
    if phase == Phase::Archived {
        return closed(Shared::CycleArchived.as_str());
    }
    let in_phase = scope_phases(scope).contains(&phase);
    let before_deadline = deadline_ms.is_none_or(|d| now_ms <= d);
    if in_phase && before_deadline {
        return Window {
            open: true,
            late: false,
            closed_reason: "",
        };
    }
    if exception_until_ms.is_some_and(|until| now_ms <= until) {
        return Window {
            open: true,
            late: true,
            closed_reason: "",
        };
    }
    // The reason names what actually closed it: a deadline that has not
    // passed is not the reason, whatever the phase.
    if before_deadline {
        closed(Shared::WrongPhase.as_str())
    } else {
        closed(deadline_reason(scope).as_str())
    }
}

impl Window {
    /// A window the plans service computed (`CheckWriteWindow`).
    pub fn from_response(r: &CheckWriteWindowResponse) -> Window {
        Window {
            open: r.open,
            late: r.late,
            closed_reason: if r.open {
                ""
            } else {
                reason(&r.closed_reason).as_str()
            },
        }
    }

    /// A cycle's own window in a scope, with no exception: what a
    /// [`Gate::Deadline`] write needs.
    pub fn of_cycle(cycle: &Cycle, scope: LockScope, now_ms: i64) -> Window {
        write_window(cycle.phase(), scope, deadline(cycle, scope), None, now_ms)
    }
}

/// The deadline of a scope in a cycle, in unix milliseconds (none for an
/// unset deadline, which never closes its window).
pub fn deadline(cycle: &Cycle, scope: LockScope) -> Option<i64> {
    let d = cycle.deadlines.as_ref()?;
    let t = match scope {
        LockScope::Plan => &d.plan_deadline,
        LockScope::Data => &d.data_deadline,
        LockScope::Review => &d.review_close,
        LockScope::Rectification => &d.rectification_deadline,
        LockScope::Unspecified => &None,
    };
    t.as_ref().map(time::millis)
}

/// What [`admit`] needs to know about the call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The RPC's path, `/jixiao.…/Method`.
    pub path: &'a str,
    /// The cycle the write goes to (`cycles/{id}` in messages).
    pub cycle: &'a str,
    pub phase: Phase,
    /// Whether the office is writing (on a unit's behalf).
    pub office: bool,
}

/// Checks a write against its row. `window` is the writing unit's window
/// in the row's scope, asked for only when the row is a window or a
/// deadline, or a phase row that an exception can open, outside its
/// phases (the closure is not called otherwise). Returns whether the
/// write is late.
pub async fn admit<F, Fut>(call: Call<'_>, window: F) -> Result<bool, Error>
where
    F: FnOnce(LockScope) -> Fut,
    Fut: Future<Output = Result<Window, Error>>,
{
    let refuse = |reason: Shared, why: String| {
        Err(Error::precondition(
            reason,
            format!("cycles/{} is {why}", call.cycle),
        ))
    };
    let phase_name = call.phase.as_str_name();
    if call.phase == Phase::Archived {
        return refuse(Shared::CycleArchived, "archived and takes no writes".into());
    }
    match gate(call.path) {
        None => refuse(
            Shared::WrongPhase,
            format!("in {phase_name} and {} has no phase rule", call.path),
        ),
        Some(Gate::Always) => Ok(false),
        Some(Gate::Phases(phases)) => {
            if phases.contains(&call.phase) {
                Ok(false)
            } else {
                refuse(
                    Shared::WrongPhase,
                    format!(
                        "in {phase_name}; {} is accepted in {}",
                        method(call.path),
                        names(phases)
                    ),
                )
            }
        }
        Some(Gate::PhasesOrException { phases, scope }) => {
            if phases.contains(&call.phase) {
                return Ok(false);
            }
            let w = window(scope).await?;
            if w.open && w.late {
                Ok(true)
            } else {
                refuse(
                    Shared::WrongPhase,
                    format!(
                        "in {phase_name}; {} is accepted in {} or under a lock exception",
                        method(call.path),
                        names(phases)
                    ),
                )
            }
        }
        Some(Gate::Window { scope, office }) => {
            let w = window(scope).await?;
            if w.open {
                Ok(w.late)
            } else if call.office && office.contains(&call.phase) {
                Ok(true)
            } else {
                refuse(
                    reason(w.closed_reason),
                    format!(
                        "in {phase_name} and closed to {} ({}); the office can grant a lock exception",
                        method(call.path),
                        w.closed_reason
                    ),
                )
            }
        }
        Some(Gate::Deadline(scope)) => {
            let w = window(scope).await?;
            if w.open && !w.late {
                Ok(false)
            } else {
                let why = if w.open {
                    deadline_reason(scope)
                } else {
                    reason(w.closed_reason)
                };
                refuse(
                    why,
                    format!(
                        "in {phase_name} and closed to {} ({}); a platform's pushes take no lock exception",
                        method(call.path),
                        why.as_str()
                    ),
                )
            }
        }
    }
}

fn method(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn names(phases: &[Phase]) -> String {
    phases
        .iter()
        .map(|p| p.as_str_name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_always_open_and_unknown_writes_have_no_row() {
        assert_eq!(
            gate("/jixiao.plans.v1.PlansService/GetCycle"),
            Some(Gate::Always)
        );
        assert_eq!(
            gate("/jixiao.reviews.v1.ReviewsService/VerifyAuditChain"),
            Some(Gate::Always)
        );
        assert_eq!(gate("/jixiao.plans.v1.PlansService/DropEverything"), None);
        assert_eq!(
            gate("/jixiao.inspections.v1.InspectionsService/VerifySelfInspectionItem"),
            Some(Gate::Phases(FROM_EXECUTION))
        );
    }

    #[test]
    fn window_is_open_before_the_deadline_and_late_only_under_an_exception() {
        let plan = LockScope::Plan;
        assert_eq!(
            write_window(Phase::Planning, plan, Some(100), None, 50),
            Window {
                open: true,
                late: false,
                closed_reason: ""
            }
        );
        assert_eq!(
            write_window(Phase::Planning, plan, Some(100), None, 150).closed_reason,
            "PLAN_DEADLINE_PASSED"
        );
        assert_eq!(
            write_window(Phase::Planning, plan, Some(100), Some(200), 150),
            Window {
                open: true,
                late: true,
                closed_reason: ""
            }
        );
        assert_eq!(
            write_window(Phase::Planning, plan, Some(100), Some(120), 150).closed_reason,
            "PLAN_DEADLINE_PASSED"
        );
        assert!(write_window(Phase::Execution, plan, Some(100), Some(200), 150).late);
        assert_eq!(
            write_window(Phase::Planning, LockScope::Data, Some(100), None, 50).closed_reason,
            "WRONG_PHASE"
        );
        assert_eq!(
            write_window(Phase::Archived, plan, None, Some(200), 150).closed_reason,
            "CYCLE_ARCHIVED"
        );
        assert!(write_window(Phase::Execution, LockScope::Data, None, None, 150).open);
    }

    fn call(path: &'static str, phase: Phase, office: bool) -> Call<'static> {
        Call {
            path,
            cycle: "2026",
            phase,
            office,
        }
    }

    fn run(c: Call<'_>, w: Window) -> Result<bool, &'static str> {
        let fut = admit(c, |_| async { Ok(w) });
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(fut)
            .map_err(|e| match e {
                Error::FailedPrecondition { reason, .. } => reason.as_str(),
                _ => "other",
            })
    }

    const OPEN: Window = Window {
        open: true,
        late: false,
        closed_reason: "",
    };
    const LATE: Window = Window {
        open: true,
        late: true,
        closed_reason: "",
    };
    const PASSED: Window = Window {
        open: false,
        late: false,
        closed_reason: "DATA_DEADLINE_PASSED",
    };

    #[test]
    fn the_office_writes_data_late_but_never_into_an_archive() {
        let report = "/jixiao.indicators.v1.IndicatorsService/ReportValue";
        assert_eq!(run(call(report, Phase::Execution, false), OPEN), Ok(false));
        assert_eq!(
            run(call(report, Phase::Execution, false), PASSED),
            Err("DATA_DEADLINE_PASSED")
        );
        assert_eq!(run(call(report, Phase::Assessment, true), PASSED), Ok(true));
        assert_eq!(
            run(call(report, Phase::Planning, true), PASSED),
            Err("DATA_DEADLINE_PASSED")
        );
        assert_eq!(
            run(call(report, Phase::Archived, true), OPEN),
            Err("CYCLE_ARCHIVED")
        );
    }

    #[test]
    fn platform_pushes_take_no_exception() {
        let push = "/jixiao.reviews.v1.ReviewsService/PushResponses";
        assert_eq!(run(call(push, Phase::Execution, false), OPEN), Ok(false));
        assert_eq!(
            run(call(push, Phase::Assessment, false), LATE),
            Err("REVIEW_CLOSED")
        );
    }

    #[test]
    fn phase_rows_name_the_phase() {
        let create = "/jixiao.inspections.v1.InspectionsService/CreateInspection";
        assert_eq!(run(call(create, Phase::Execution, true), OPEN), Ok(false));
        assert_eq!(
            run(call(create, Phase::Planning, true), OPEN),
            Err("WRONG_PHASE")
        );
        assert_eq!(
            run(
                call("/jixiao.x.v1.X/Frobnicate", Phase::Execution, true),
                OPEN
            ),
            Err("WRONG_PHASE")
        );
    }
}
