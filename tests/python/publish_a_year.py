"""A whole evaluation year from the contracts alone, with grpcio.

The caller guide's second part: set up a year and publish it, using only
what the proto comments say (types read by reflection, as in
caller_guide.py). Every party calls with its own token, as in production:

- the office: cycle, units, group, scheme, framework, plan approval,
  campaigns, assessed scores, findings, phases, publication;
- each district (role unit): its plan and its mutual ratings;
- the statistics bureau (role provider): the indicator values;
- a survey firm and the government portal (role survey_platform, bound to
  their campaigns by token subject): survey responses and votes.

The office issues those tokens (`jixiao token issue`); --issue is that
command without its role flags. Run against a running suite:

    python3 tests/python/publish_a_year.py --addr 127.0.0.1:50051 \\
        --token "$OFFICE_TOKEN" --issue "jixiao token issue --data-dir ./data"

At the end it predicts the published table from what it sent, with the
rounding rules the contracts state (indicator points and review scores to
6 places, then every published figure to 3, half away from zero), and
checks the server's table against it digit for digit.
"""

import argparse
import shlex
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from caller_guide import Client, error_details

PLANS = "jixiao.plans.v1.PlansService"
INDICATORS = "jixiao.indicators.v1.IndicatorsService"
REVIEWS = "jixiao.reviews.v1.ReviewsService"
INSPECTIONS = "jixiao.inspections.v1.InspectionsService"
AGGREGATOR = "jixiao.aggregator.v1.AggregatorService"

DISTRICTS = [
    ("siming", "思明区人民政府"),
    ("huli", "湖里区人民政府"),
    ("jimei", "集美区人民政府"),
    ("haicang", "海沧区人民政府"),
]
UNITS = [u for u, _ in DISTRICTS]

# code, weight, method, direction, plausible range.
FRAMEWORK = [
    ("GDP_GROWTH", "20", "RATIO", "HIGHER", ("-20", "30")),
    ("ENERGY_INTENSITY", "15", "RATIO", "LOWER", ("0", "2")),
    ("APPROVAL_ONLINE_RATE", "10", "THRESHOLD", "HIGHER", ("0", "100")),
    ("INVESTMENT", "5", "PEER_RANK", "HIGHER", ("0", "5000")),
    ("FOREIGN_TRADE", "5", "PEER_BEST", "HIGHER", ("0", "10000")),
    # ASSESSED: an evaluator scores it; no target, and no provider needed.
    ("KEY_PROJECTS", "5", "ASSESSED", "HIGHER", ("0", "5")),
]
REPORTED = [code for code, _, method, _, _ in FRAMEWORK if method != "ASSESSED"]
TARGETS = {
    "siming": ["7.0", "0.45", "95", "1200", "300"],
    "huli": ["6.5", "0.50", "95", "1000", "300"],
    "jimei": ["6.0", "0.45", "95", "900", "300"],
    "haicang": ["6.0", "0.40", "95", "800", "300"],
}
FINALS = {
    "siming": ["6.3", "0.47", "96", "1300", "320"],
    "huli": ["7.1", "0.52", "94", "1100", "250"],
    "jimei": ["5.2", "0.44", "95", "1100", "180"],
    "haicang": ["6.6", "0.43", "97", "700", "410"],
}
ASSESSED = {"siming": "4.5", "huli": "4.2", "jimei": "3.85", "haicang": "4.75"}

# The scheme's defaults (plans.proto, `Scheme`), which this year keeps
# except for the mutual scale and the minimum sample.
ANSWER_VALUES = {"satisfied": "1.0", "basically_satisfied": "0.8", "dissatisfied": "0"}
CATEGORY_WEIGHTS = {"service_users": "0.4", "enterprises": "0.3", "residents": "0.2", "deputies": "0.1"}
MIN_SAMPLE = 8
MAXIMA = {"indicator": "60", "survey": "30", "online": "5", "mutual": "5", "cap": "5"}
PEER_RANK_FLOOR = "0.6"
PATTERNS = [
    ("satisfied", "satisfied", "basically_satisfied"),
    ("satisfied", "dont_know", "satisfied"),
    ("basically_satisfied", "dissatisfied", "satisfied"),
    ("satisfied", "satisfied", "satisfied"),
    ("basically_satisfied", "basically_satisfied", "dont_know"),
    ("dont_know", "dont_know", "dont_know"),  # stored, counted nowhere
]
# The flags that block publication and the component a decision on each
# names: the list at the top of aggregator.proto.
BLOCKING = {
    "MISSING_TARGET": "COMPONENT_INDICATOR",
    "DATA_QUALITY": "COMPONENT_INDICATOR",
    "INSUFFICIENT_SAMPLE": "COMPONENT_SURVEY",
    "MISSING_CATEGORY": "COMPONENT_SURVEY",
    "CONTEST_PENDING": "COMPONENT_INSPECTION",
}
DAY = 24 * 3600


def survey_plan():
    """(response id, unit, category, answers) of every response: haicang
    has few, and no deputies, so its survey is flagged."""
    out = []
    for i, unit in enumerate(UNITS):
        for c, category in enumerate(CATEGORY_WEIGHTS):
            n = 3 + (i + c) % 3
            if unit == "haicang":
                n = 0 if category == "deputies" else 1
            for k in range(n):
                answers = PATTERNS[(i * 7 + c * 3 + k) % len(PATTERNS)]
                out.append((f"{unit}-{category}-{k}", unit, category, answers))
    return out


def votes_plan(now):
    """(vote id, voter, unit, answer, cast time): voter 0 of each unit
    changes its mind later, and only its latest vote counts."""
    answers = ["satisfied", "basically_satisfied", "satisfied", "dissatisfied", "satisfied", "dont_know"]
    out = []
    for i, unit in enumerate(UNITS):
        for v in range(4 + i):
            out.append((f"{unit}-v{v}", f"voter-{v}", unit, answers[(i + v) % len(answers)], now - 2 * DAY))
        out.append((f"{unit}-v0-again", "voter-0", unit, "basically_satisfied", now - DAY))
    return out


def ratings_plan():
    """(rater, ratee, score 0..100) on the numeric scale."""
    return [
        (r, e, f"{80 + (ri * 11 + ei * 5) % 17}.{(ri + ei) % 10}")
        for ri, r in enumerate(UNITS)
        for ei, e in enumerate(UNITS)
        if r != e
    ]


# ---------------------------------------------------------------- the prediction

def r(d, places):
    """Rounds half away from zero, as every rounding in the contracts."""
    return d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def clamp(x, lo, hi):
    return max(lo, min(hi, x))


def predict():
    """The published table, from what this script sends and the rules the
    contracts state (plans.proto `ScoringMethod`, `Scheme`; reviews.proto
    `UnitReviewScore`; aggregator.proto `StandingRow`)."""
    D = Decimal
    rows = {}
    finals = {u: dict(zip(REPORTED, map(D, FINALS[u]))) for u in UNITS}
    targets = {u: dict(zip(REPORTED, map(D, TARGETS[u]))) for u in UNITS}
    for u in UNITS:
        points = []
        for code, w, method, direction, _ in FRAMEWORK:
            w = D(w)
            if method == "ASSESSED":
                points.append(clamp(r(D(ASSESSED[u]), 6), D(0), w))
                continue
            a, t = finals[u][code], targets[u][code]
            values = [finals[x][code] for x in UNITS]
            if method == "RATIO":
                share = clamp(a / t, D(0), D(1)) if direction == "HIGHER" else (D(1) if a <= 0 else clamp(t / a, D(0), D(1)))
            elif method == "THRESHOLD":
                share = D(1) if (a >= t if direction == "HIGHER" else a <= t) else D(0)
            elif method == "PEER_BEST":
                share = a / max(values)
            else:  # PEER_RANK
                rank = 1 + sum(1 for v in values if v > a)
                share = 1 - (rank - 1) * (1 - D(PEER_RANK_FLOOR)) / (len(values) - 1)
            points.append(clamp(r(w * share, 6), D(0), w))
        rows[u] = {"indicator": sum(points)}

    # Survey: a response's value to 10 places; category means; the index
    # re-normalised over the categories present; 30 × index to 6 places.
    values = {}
    for _, unit, category, answers in survey_plan():
        counted = [D(ANSWER_VALUES[a]) for a in answers if a in ANSWER_VALUES]
        if counted:
            values.setdefault(unit, {}).setdefault(category, []).append(r(sum(counted) / len(counted), 10))
    for u in UNITS:
        present = values.get(u, {})
        weight = sum(D(CATEGORY_WEIGHTS[c]) for c in present)
        index = sum(D(CATEGORY_WEIGHTS[c]) * sum(v) / len(v) for c, v in present.items()) / weight
        rows[u]["survey"] = clamp(r(D(MAXIMA["survey"]) * index, 6), D(0), D(MAXIMA["survey"]))

    # Online: the latest vote per voter and unit; "dont_know" counts nowhere.
    latest = {}
    for vid, voter, unit, answer, at in votes_plan(0):
        key = (unit, voter)
        if key not in latest or (at, vid) > latest[key][0]:
            latest[key] = ((at, vid), answer)
    for u in UNITS:
        counted = [D(ANSWER_VALUES[a]) for (unit, _), (_, a) in latest.items() if unit == u and a in ANSWER_VALUES]
        rows[u]["online"] = r(D(MAXIMA["online"]) * sum(counted) / len(counted), 6)

    # Mutual: score / 100 to 10 places; trimmed from 5 raters (here 3: not).
    for u in UNITS:
        got = sorted(r(D(s) / 100, 10) for _, e, s in ratings_plan() if e == u)
        if len(got) >= 5:
            got = got[1:-1]
        rows[u]["mutual"] = r(D(MAXIMA["mutual"]) * sum(got) / len(got), 6)

    # One confirmed finding of 0.5 for huli; nobody has credits.
    for u in UNITS:
        deductions = D("0.5") if u == "huli" else D(0)
        rows[u]["deductions"], rows[u]["credits"] = deductions, D(0)
        rows[u]["adjustment"] = clamp(D(0) - deductions, -D(MAXIMA["cap"]), D(0))

    table = []
    for u in UNITS:
        row = {k: r(v, 3) for k, v in rows[u].items()}
        row["review"] = row["survey"] + row["online"] + row["mutual"]
        row["composite"] = row["indicator"] + row["review"] + row["adjustment"]
        table.append((u, row))
    key = lambda x: (x[1]["composite"], x[1]["indicator"], x[1]["review"])
    ordered = sorted(table, key=key, reverse=True)
    ranks = {}
    for pos, (u, row) in enumerate(ordered):
        prev = ordered[pos - 1] if pos else None
        ranks[u] = ranks[prev[0]] if prev and key(prev) == key((u, row)) else pos + 1
    return {u: (ranks[u], row) for u, row in table}


# ---------------------------------------------------------------- the year

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--token", required=True, help="an office token")
    parser.add_argument("--issue", required=True,
                        help="the token command without role flags, e.g. 'jixiao token issue --data-dir ./data'")
    parser.add_argument("--cycle", default="2041")
    args = parser.parse_args()
    cycle, year = f"cycles/{args.cycle}", int(args.cycle)
    group = f"{cycle}/groups/districts"

    channel = grpc.insecure_channel(args.addr)
    grpc.channel_ready_future(channel).result(timeout=10)

    def token(*flags):
        return subprocess.check_output(shlex.split(args.issue) + list(flags), text=True).strip()

    office = Client(channel, args.token)

    def party(*flags):
        # Messages are built from one descriptor pool, whoever sends them.
        client = Client(channel, token(*flags))
        client.pool = office.pool
        return client

    provider = party("--role", "provider", "--unit", "stats")
    survey_firm = party("--role", "survey_platform", "--subject", "survey-firm")
    portal = party("--role", "survey_platform", "--subject", "portal")
    units = {u: party("--role", "unit", "--unit", u) for u in UNITS}
    m = office.message
    dec = lambda s: m("google.type.Decimal", value=s)
    now = int(time.time())
    ts = lambda secs: m("google.protobuf.Timestamp", seconds=secs)

    # 1. Units outlive cycles: the same request_id on a rerun returns the
    #    first answer.
    for unit, name in DISTRICTS + [("stats", "市统计局")]:
        kind = "UNIT_KIND_OTHER" if unit == "stats" else "UNIT_KIND_DISTRICT_GOVERNMENT"
        office.call(PLANS, "CreateUnit", unit_id=unit, request_id=f"unit-{unit}",
                    unit=m("jixiao.plans.v1.Unit", display_name_zh=name, kind=kind))

    # 2. The cycle: no deadlines, so every window closes with its phase
    #    (plans.proto, `Deadlines`). The group starts with the default scheme.
    office.call(PLANS, "CreateCycle", cycle_id=args.cycle, request_id=f"cycle-{args.cycle}",
                cycle=m("jixiao.plans.v1.Cycle", year=year, title=f"{year}年度绩效评估"))
    office.call(PLANS, "CreateGroup", parent=cycle, group_id="districts", request_id=f"group-{args.cycle}",
                group=m("jixiao.plans.v1.Group", display_name="区人民政府", units=[f"units/{u}" for u in UNITS]))

    # 3. Scheme: numeric mutual ratings (the grade scale gives only
    #    multiples of 1/n point), a small minimum sample for this example.
    scheme = office.call(PLANS, "GetScheme", name=f"{group}/scheme")
    office.call(PLANS, "UpdateScheme",
                scheme=m("jixiao.plans.v1.Scheme", name=scheme.name, etag=scheme.etag,
                         mutual_scale="MUTUAL_SCALE_NUMERIC", min_sample=MIN_SAMPLE),
                update_mask=m("google.protobuf.FieldMask", paths=["mutual_scale", "min_sample"]))

    # 4. Framework: weights add up to the indicator maximum, 60.
    indicators = [
        m("jixiao.plans.v1.Indicator", code=code, display_name=code, measurement_unit="",
          direction=f"DIRECTION_{d}_IS_BETTER", weight=dec(w), method=f"SCORING_METHOD_{method}",
          plausible_min=dec(lo), plausible_max=dec(hi),
          provider="" if method == "ASSESSED" else "units/stats")
        for code, w, method, d, (lo, hi) in FRAMEWORK
    ]
    framework = office.call(PLANS, "ReplaceFramework", name=f"{group}/framework",
                            indicators=indicators, request_id=f"framework-{args.cycle}")
    print("framework:", framework.name, "total weight", framework.total_weight.value)

    # 5. Plans: each district drafts and submits (a target per indicator
    #    but the ASSESSED one); the office approves, passing back the etag.
    for unit in UNITS:
        client = units[unit]
        targets = [m("jixiao.plans.v1.Target", indicator=code, value=dec(v))
                   for code, v in zip(REPORTED, TARGETS[unit])]
        plan = client.call(PLANS, "CreatePlan", parent=cycle, request_id=f"plan-{args.cycle}-{unit}",
                           plan=m("jixiao.plans.v1.Plan", unit=f"units/{unit}", targets=targets))
        plan = client.call(PLANS, "SubmitPlan", name=plan.name, etag=plan.etag,
                           request_id=f"submit-{args.cycle}-{unit}")
        plan = office.call(PLANS, "ApprovePlan", name=plan.name, etag=plan.etag)
    print("plans approved:", len(UNITS))

    # 6. Campaigns (PLANNING to ASSESSMENT), each bound to its platform's
    #    token subject.
    window = dict(open_time=ts(now - 30 * DAY), close_time=ts(now + 30 * DAY))
    questions = [m("jixiao.reviews.v1.Question", id=q, text=t)
                 for q, t in [("q1", "办事效率"), ("q2", "服务态度"), ("q3", "政务公开")]]
    office.call(REVIEWS, "CreateCampaign", parent=cycle, campaign_id="survey", request_id=f"survey-{args.cycle}",
                campaign=m("jixiao.reviews.v1.Campaign", group=group, title="群众满意度调查",
                           mode="CAMPAIGN_MODE_RAW_RESPONSES", platforms=["survey-firm"],
                           questions=questions, **window))
    office.call(REVIEWS, "CreateCampaign", parent=cycle, campaign_id="portal", request_id=f"portal-{args.cycle}",
                campaign=m("jixiao.reviews.v1.Campaign", group=group, title="网上评议",
                           mode="CAMPAIGN_MODE_ONLINE_VOTES", platforms=["portal"], **window))

    # 7. The year runs.
    office.call(PLANS, "SetCyclePhase", name=cycle, phase="PHASE_EXECUTION")

    # 8. The provider reports every final value in one all-or-nothing batch.
    period = m("jixiao.type.v1.Period", kind="PERIOD_KIND_ANNUAL", year=year)
    values = [m("jixiao.indicators.v1.IndicatorValue", unit=f"units/{u}", indicator=code, period=period, value=dec(v))
              for u in UNITS for code, v in zip(REPORTED, FINALS[u])]
    stored = provider.call(INDICATORS, "BatchReportValues", parent=cycle, values=values,
                           request_id=f"finals-{args.cycle}")
    print("values reported:", len(stored.values))
    for u in UNITS:
        office.call(INDICATORS, "EnterAssessedScore", parent=cycle, unit=f"units/{u}", indicator="KEY_PROJECTS",
                    score=dec(ASSESSED[u]), justification="重点项目按期推进", request_id=f"assess-{args.cycle}-{u}")

    # 9. Survey responses, votes and mutual ratings.
    responses = [
        m("jixiao.reviews.v1.SurveyResponse", response_id=rid, unit=f"units/{u}", category=c,
          channel="CHANNEL_PHONE", answer_time=ts(now - DAY),
          answers=[m("jixiao.reviews.v1.Answer", question=q, answer=a) for q, a in zip(["q1", "q2", "q3"], answers)])
        for rid, u, c, answers in survey_plan()
    ]
    pushed = survey_firm.call(REVIEWS, "PushResponses", campaign=f"{cycle}/campaigns/survey", responses=responses)
    print("responses: accepted", pushed.accepted, "duplicates", pushed.duplicates, "rejected", len(pushed.rejected))
    votes = [m("jixiao.reviews.v1.Vote", vote_id=vid, voter=voter, unit=f"units/{u}", answer=a, cast_time=ts(now + at))
             for vid, voter, u, a, at in votes_plan(0)]
    pushed = portal.call(REVIEWS, "PushVotes", campaign=f"{cycle}/campaigns/portal", votes=votes)
    print("votes: accepted", pushed.accepted, "rejected", len(pushed.rejected))
    for rater, ratee, score in ratings_plan():
        units[rater].call(REVIEWS, "SubmitMutualRating", parent=cycle, request_id=f"rate-{args.cycle}-{rater}-{ratee}",
                          rating=m("jixiao.reviews.v1.MutualRating", rater=f"units/{rater}",
                                   ratee=f"units/{ratee}", score=dec(score)))

    # 10. An inspection with one finding, confirmed by the office.
    inspection = office.call(INSPECTIONS, "CreateInspection", parent=cycle, request_id=f"visit-{args.cycle}",
                             inspection=m("jixiao.inspections.v1.Inspection", unit="units/huli",
                                          kind="INSPECTION_KIND_COVERT", inspect_time=ts(now - 3 * DAY),
                                          inspectors=["李明"], place="行政服务中心",
                                          findings=[m("jixiao.inspections.v1.Finding", category="absence",
                                                      description="窗口工作人员离岗", deduction=dec("0.5"))]))
    office.call(INSPECTIONS, "ConfirmFinding", name=inspection.findings[0].name)

    # 11. Assessment; publication lists what stands in its way
    #     (FAILED_PRECONDITION INCOMPLETE with a PreconditionFailure).
    office.call(PLANS, "SetCyclePhase", name=cycle, phase="PHASE_ASSESSMENT")
    try:
        office.call(AGGREGATOR, "PublishResults", group=group, request_id=f"publish-try-{args.cycle}")
        print("error: publication was expected to wait for decisions")
        return 1
    except grpc.RpcError as err:
        reason, _ = error_details(err)
        print("publish:", err.code().name, reason)
        for detail in rpc_status.from_call(err).details:
            if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
                failure = error_details_pb2.PreconditionFailure()
                detail.Unpack(failure)
                for v in failure.violations:
                    print("  open:", v.type, v.subject, v.description)
    # The office decides each blocking flag the standings show, naming the
    # component the contract gives for it.
    standings = office.call(AGGREGATOR, "GetStandings", group=group)
    decisions = [
        m("jixiao.aggregator.v1.PublicationDecision", unit=row.unit, component=BLOCKING[flag], flag=flag,
          reason="样本由第三方机构核实，按现有结果计分")
        for row in standings.rows for flag in row.flags if flag in BLOCKING
    ]
    print("decisions:", ", ".join(f"{d.unit} {d.flag}" for d in decisions))
    publication = office.call(AGGREGATOR, "PublishResults", group=group, decisions=decisions,
                              request_id=f"publish-{args.cycle}")

    # 12. The published table, and the same table predicted from the contracts.
    print(f"published: {publication.name} digest {publication.digest}")
    print("rank  unit     indicator  survey  online  mutual  review  deductions  adjustment  composite  flags")
    predicted = predict()
    matches = True
    for row in publication.rows:
        unit = row.unit.removeprefix("units/")
        print(f"{row.rank:>4}  {unit:<8} {row.indicator.value:>9} {row.survey.value:>7} {row.online.value:>7}"
              f" {row.mutual.value:>7} {row.review_total.value:>7} {row.deductions.value:>11}"
              f" {row.adjustment.value:>11} {row.composite.value:>10}  {','.join(row.flags)}")
        rank, want = predicted[unit]
        got = dict(indicator=row.indicator, survey=row.survey, online=row.online, mutual=row.mutual,
                   review=row.review_total, deductions=row.deductions, credits=row.credits,
                   adjustment=row.adjustment, composite=row.composite)
        for column, value in got.items():
            if value.value != str(want[column]):
                print(f"  differs: {unit} {column} published {value.value}, predicted {want[column]}")
                matches = False
        if row.rank != rank:
            print(f"  differs: {unit} rank published {row.rank}, predicted {rank}")
            matches = False
    print("predicted table matches:", matches)
    verified = office.call(AGGREGATOR, "VerifyPublication", name=publication.name)
    print("verified:", verified.valid)
    return 0 if matches and verified.valid else 1


if __name__ == "__main__":
    sys.exit(main())
