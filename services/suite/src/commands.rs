//! The `jixiao` client commands for the daily work: standings and feedback
//! tables, indicator values from a CSV file, a plan from a JSON file, and
//! the audit trail of a resource. Each goes through the public RPCs with
//! the caller's token, so the server decides what the caller may do.

use std::{collections::BTreeMap, path::Path};

use indicatif::{ProgressBar, ProgressStyle};
use jixiao_proto::{
    Decimal,
    aggregator::{
        GetFeedbackRequest, GetPublicationRequest, GetStandingsRequest, ListPublicationsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{
        BatchReportValuesRequest, IndicatorValue,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::inspections_service_client::InspectionsServiceClient,
    plans::{
        CreatePlanRequest, GetPlanRequest, Goal, Milestone, Plan, PlanState, SubmitPlanRequest,
        Target, UpdatePlanRequest, plans_service_client::PlansServiceClient,
    },
    reviews::reviews_service_client::ReviewsServiceClient,
    types::{
        AuditRecord, EvidenceItem, ListAuditRecordsRequest, Period, PeriodKind,
        VerifyAuditChainRequest,
    },
};
use sha2::Digest;
use tonic::Code;

use crate::{
    client::{Authed, Tls, connect_with, describe, failed, unit_name},
    table::{self, Format, Table, decimal},
};

/// Where to call and as whom.
pub struct Caller {
    pub addr: String,
    pub token: String,
    /// PEM file of the authority trusted for an `https://` address.
    pub tls_ca: Option<std::path::PathBuf>,
}

impl Caller {
    async fn channel(&self) -> Result<Authed, String> {
        let tls = Tls::from_files(None, None, self.tls_ca.as_deref())?;
        connect_with(&self.addr, &self.token, &tls).await
    }
}

/// A status line: above an aligned table, or on stderr when the output
/// is for a program.
fn note(out: &mut String, format: Format, line: &str) {
    if format == Format::Table {
        out.push_str(line);
        out.push('\n');
    } else {
        eprintln!("{line}");
    }
}

fn group_name(cycle: &str, group: &str) -> String {
    format!("cycles/{cycle}/groups/{group}")
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map_or("-".into(), |t| t.to_string())
}

/// `jixiao standings`: the provisional standings, or a published version
/// (`published` is `Some(0)` for the latest).
pub async fn standings(
    caller: &Caller,
    cycle: &str,
    group: &str,
    published: Option<i32>,
    format: Format,
) -> Result<String, String> {
    let mut out = String::new();
    let mut client = AggregatorServiceClient::new(caller.channel().await?);
    let group = group_name(cycle, group);
    let rows = match published {
        None => {
            let s = client
                .get_standings(GetStandingsRequest {
                    group: group.clone(),
                })
                .await
                .map_err(failed(format!("standings of {group}")))?
                .into_inner();
            note(
                &mut out,
                format,
                &format!(
                    "{group}: provisional standings, revision {}, updated {}{}",
                    s.revision,
                    time(&s.update_time),
                    if s.stale {
                        format!(" — STALE: {}", s.stale_reason)
                    } else {
                        String::new()
                    }
                ),
            );
            s.rows
        }
        Some(version) => {
            let publication = if version > 0 {
                client
                    .get_publication(GetPublicationRequest {
                        name: format!("{group}/publications/{version}"),
                    })
                    .await
                    .map_err(failed(format!("version {version} of {group}")))?
                    .into_inner()
            } else {
                client
                    .list_publications(ListPublicationsRequest {
                        group: group.clone(),
                        page_size: 1,
                        page_token: String::new(),
                    })
                    .await
                    .map_err(failed(format!("publications of {group}")))?
                    .into_inner()
                    .publications
                    .into_iter()
                    .next()
                    .ok_or(format!("{group} has not been published"))?
            };
            note(
                &mut out,
                format,
                &format!(
                    "{}: published {} by {}, digest sha256:{}{}",
                    publication.name,
                    time(&publication.publish_time),
                    publication.published_by,
                    publication.digest,
                    if publication.correction_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" — correction: {}", publication.correction_reason)
                    }
                ),
            );
            publication.rows
        }
    };
    out.push_str(&table::standings(&rows).render(format));
    Ok(out)
}

/// `jixiao feedback`: one unit's feedback. In a terminal, sections; as CSV
/// or JSON, one table of (section, item, value) rows.
pub async fn feedback(
    caller: &Caller,
    cycle: &str,
    group: &str,
    unit: &str,
    format: Format,
) -> Result<String, String> {
    let unit = unit_name(unit);
    let f = AggregatorServiceClient::new(caller.channel().await?)
        .get_feedback(GetFeedbackRequest {
            group: group_name(cycle, group),
            unit: unit.clone(),
        })
        .await
        .map_err(failed(format!("feedback of {unit}")))?
        .into_inner();
    let mut long = Table::new(&["section", "item", "value"]);
    let mut add = |section: &str, item: &str, value: String| {
        long.push(vec![section.into(), item.into(), value]);
    };
    if let Some(r) = &f.row {
        add(
            "rank",
            "",
            if r.rank > 0 {
                r.rank.to_string()
            } else {
                "-".into()
            },
        );
        for (item, value) in [
            ("indicator", &r.indicator),
            ("survey", &r.survey),
            ("online", &r.online),
            ("mutual", &r.mutual),
            ("review", &r.review_total),
            ("deductions", &r.deductions),
            ("credits", &r.credits),
            ("adjustment", &r.adjustment),
            ("composite", &r.composite),
        ] {
            add("component", item, decimal(value));
        }
    }
    if f.change_from_last_year.is_some() {
        add(
            "change from last year",
            "composite",
            decimal(&f.change_from_last_year),
        );
    }
    for l in &f.losses {
        add(
            "points lost",
            &l.indicator,
            format!(
                "{} of {} (scored {})",
                decimal(&l.points_lost),
                decimal(&l.weight),
                decimal(&l.points)
            ),
        );
    }
    for (section, lines) in [
        ("review", &f.review_details),
        ("finding", &f.findings),
        ("credit", &f.credits),
        ("timeliness", &f.timeliness_problems),
        ("to rectify", &f.to_rectify),
    ] {
        for line in lines {
            add(section, "", line.clone());
        }
    }
    if format != Format::Table {
        return Ok(long.render(format));
    }
    let mut out = format!(
        "feedback of {unit} in {} ({})\n",
        group_name(cycle, group),
        if f.published {
            "published"
        } else {
            "provisional"
        }
    );
    if let Some(r) = &f.row {
        out.push_str(&table::standings(std::slice::from_ref(r)).render(format));
    }
    let mut section = String::new();
    for row in long
        .rows
        .iter()
        .filter(|r| r[0] != "rank" && r[0] != "component")
    {
        if row[0] != section {
            section = row[0].clone();
            out.push_str(&format!("\n{section}:\n"));
        }
        if row[1].is_empty() {
            out.push_str(&format!("  {}\n", row[2]));
        } else {
            out.push_str(&format!("  {:<24} {}\n", row[1], row[2]));
        }
    }
    Ok(out)
}

/// A CSV period cell, as in value names: `2026` (annual), `2026-Q3`,
/// `2026-07`.
fn period(cell: &str) -> Result<Period, String> {
    let bad = || format!("period {cell:?} is not YYYY, YYYY-Qn or YYYY-MM");
    let (year, rest) = cell.split_once('-').unwrap_or((cell, ""));
    let year: i32 = year.parse().map_err(|_| bad())?;
    let (kind, index) = match rest.strip_prefix('Q') {
        _ if rest.is_empty() => (PeriodKind::Annual, 0),
        Some(q) => (PeriodKind::Quarter, q.parse().map_err(|_| bad())?),
        None if rest.len() == 2 => (PeriodKind::Month, rest.parse().map_err(|_| bad())?),
        None => return Err(bad()),
    };
    Ok(Period {
        kind: kind as i32,
        year,
        index,
    })
}

/// Rows of a values CSV, each with its line number.
fn read_values(text: &str) -> Result<Vec<(usize, IndicatorValue)>, String> {
    const REQUIRED: [&str; 4] = ["unit", "indicator", "period", "value"];
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("header: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    for name in REQUIRED {
        column(name).ok_or(format!("the header has no column {name:?}"))?;
    }
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let cell = |name: &str| {
            column(name)
                .and_then(|i| record.get(i))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let unit = cell("unit");
        let evidence = if cell("evidence_name").is_empty() {
            Vec::new()
        } else {
            vec![EvidenceItem {
                name: cell("evidence_name"),
                media_type: cell("evidence_media_type"),
                size_bytes: cell("evidence_size").parse().unwrap_or(0),
                sha256: cell("evidence_sha256"),
                uri: cell("evidence_uri"),
            }]
        };
        out.push((
            line,
            IndicatorValue {
                unit: unit_name(&unit),
                indicator: cell("indicator"),
                period: Some(period(&cell("period")).map_err(|e| format!("line {line}: {e}"))?),
                value: Some(Decimal {
                    value: cell("value"),
                }),
                evidence,
                comment: cell("comment"),
                ..Default::default()
            },
        ));
    }
    Ok(out)
}

/// Rows per all-or-nothing batch.
const VALUE_BATCH: usize = 500;

/// `jixiao values report`: a provider's values from a CSV file, in
/// all-or-nothing batches whose request ids derive from the file's content,
/// so running the command again stores nothing twice. A refused batch is
/// reported by CSV line and field.
pub async fn report_values(caller: &Caller, cycle: &str, file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let rows = read_values(&text)?;
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    let mut client = IndicatorsServiceClient::new(caller.channel().await?);
    let bar = progress(rows.len(), "values");
    let mut stored = 0;
    for (n, chunk) in rows.chunks(VALUE_BATCH).enumerate() {
        let result = client
            .batch_report_values(BatchReportValuesRequest {
                parent: format!("cycles/{cycle}"),
                values: chunk.iter().map(|(_, v)| v.clone()).collect(),
                request_id: format!("values-csv-{}-{n}", &digest[..16]),
            })
            .await;
        match result {
            Ok(r) => stored += r.into_inner().values.len(),
            Err(s) => {
                bar.finish_and_clear();
                return Err(by_line(&s, chunk, stored));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(format!("stored {stored} values from {}\n", file.display()))
}

/// A refused batch, its `values[i].…` fields named by CSV line.
fn by_line(status: &tonic::Status, chunk: &[(usize, IndicatorValue)], stored: usize) -> String {
    use tonic_types::StatusExt;
    let head = format!(
        "{stored} values stored before this batch; the batch of lines {}–{} was refused as a whole",
        chunk.first().map_or(0, |c| c.0),
        chunk.last().map_or(0, |c| c.0),
    );
    let details = status.get_error_details();
    let Some(bad) = details.bad_request() else {
        return format!("{head}: {}", describe(status));
    };
    let mut out = format!("{head}: {:?}", status.code());
    for v in &bad.field_violations {
        let line = v
            .field
            .strip_prefix("values[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
            .and_then(|i| chunk.get(i))
            .map_or(String::new(), |(line, _)| format!("line {line}: "));
        out.push_str(&format!("\n  {line}{}: {}", v.field, v.description));
    }
    out
}

/// `jixiao reviews import`: survey responses from a CSV file through the
/// streaming RPC (see [`crate::import`]).
pub async fn import_responses(
    caller: &Caller,
    file: &Path,
    campaign: &str,
) -> Result<String, String> {
    let input = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let batches = crate::import::read_batches(std::io::BufReader::new(input), campaign)?;
    let total = batches.iter().map(|b| b.responses.len()).sum();
    let bar = progress(total, "responses");
    let shown = bar.clone();
    let channel = caller.channel().await?;
    let summary = crate::import::push(channel, batches, move |sent, _| {
        shown.set_position(sent as u64);
    })
    .await;
    bar.finish_and_clear();
    let summary = summary?;
    let mut out = format!(
        "accepted   {}\nduplicates {}\nrejected   {}\n",
        summary.accepted,
        summary.duplicates,
        summary.rejected.len()
    );
    for r in summary.rejected.iter().take(50) {
        out.push_str(&format!("  {:<24} {:<18} {}\n", r.id, r.reason, r.message));
    }
    if summary.rejected.len() > 50 {
        out.push_str(&format!("  … and {} more\n", summary.rejected.len() - 50));
    }
    Ok(out)
}

fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}}"))
            .expect("a valid template"),
    );
    bar
}

/// A plan file: the unit, a target per indicator code, key work goals.
///
/// ```json
/// {"unit": "siming",
///  "targets": {"GDP_GROWTH": "7.0", "ENERGY_PER_GDP": "0.42"},
///  "goals": [{"title": "优化营商环境", "description": "…",
///             "milestones": [{"description": "方案", "due": "2026-06-30"}]}]}
/// ```
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    unit: String,
    targets: BTreeMap<String, String>,
    #[serde(default)]
    goals: Vec<GoalFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GoalFile {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    milestones: Vec<MilestoneFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MilestoneFile {
    description: String,
    /// A date, `2026-06-30`, due at the end of that day (UTC).
    due: String,
}

fn plan_from_file(text: &str) -> Result<(String, Vec<Target>, Vec<Goal>), String> {
    let file: PlanFile = serde_json::from_str(text).map_err(|e| format!("plan file: {e}"))?;
    let unit = file.unit.trim_start_matches("units/").to_string();
    let targets = file
        .targets
        .into_iter()
        .map(|(indicator, value)| Target {
            indicator,
            value: Some(Decimal { value }),
            assigned: false,
        })
        .collect();
    let mut goals = Vec::new();
    for g in file.goals {
        let mut milestones = Vec::new();
        for m in g.milestones {
            let due: prost_types::Timestamp =
                format!("{}T23:59:59Z", m.due).parse().map_err(|_| {
                    format!(
                        "milestone {:?}: due {:?} is not YYYY-MM-DD",
                        m.description, m.due
                    )
                })?;
            milestones.push(Milestone {
                description: m.description,
                due_time: Some(due),
            });
        }
        goals.push(Goal {
            title: g.title,
            description: g.description,
            milestones,
        });
    }
    Ok((unit, targets, goals))
}

/// `jixiao plans submit`: creates the unit's plan from a file, or updates
/// its draft or returned plan, and submits it.
pub async fn submit_plan(caller: &Caller, cycle: &str, file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let (unit, targets, goals) = plan_from_file(&text)?;
    let mut client = PlansServiceClient::new(caller.channel().await?);
    let name = format!("cycles/{cycle}/plans/{unit}");
    let existing = match client.get_plan(GetPlanRequest { name: name.clone() }).await {
        Ok(p) => Some(p.into_inner()),
        Err(s) if s.code() == Code::NotFound => None,
        Err(s) => return Err(failed(&name)(s)),
    };
    let draft = match existing {
        None => client
            .create_plan(CreatePlanRequest {
                parent: format!("cycles/{cycle}"),
                plan: Some(Plan {
                    unit: format!("units/{unit}"),
                    targets,
                    goals,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map_err(failed(format!("creating {name}")))?
            .into_inner(),
        Some(p) if matches!(p.state(), PlanState::Draft | PlanState::Returned) => client
            .update_plan(UpdatePlanRequest {
                plan: Some(Plan {
                    name: p.name,
                    targets,
                    goals,
                    etag: p.etag,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["targets".into(), "goals".into()],
                }),
            })
            .await
            .map_err(failed(format!("updating {name}")))?
            .into_inner(),
        Some(p) => {
            return Err(format!(
                "{name} is {}; only a draft or returned plan can be submitted (an approved plan changes by amendment)",
                p.state().as_str_name().trim_start_matches("PLAN_STATE_")
            ));
        }
    };
    let submitted = client
        .submit_plan(SubmitPlanRequest {
            name: draft.name,
            etag: draft.etag,
            request_id: String::new(),
        })
        .await
        .map_err(failed(format!("submitting {name}")))?
        .into_inner();
    Ok(format!(
        "{} version {} is {}{}\n",
        submitted.name,
        submitted.version,
        submitted
            .state()
            .as_str_name()
            .trim_start_matches("PLAN_STATE_"),
        if submitted.late { " (late)" } else { "" }
    ))
}

/// The services that keep an audit trail.
const AUDITED: [&str; 5] = [
    "plans",
    "indicators",
    "inspections",
    "reviews",
    "aggregator",
];

async fn audit_page(
    channel: &Authed,
    service: &str,
    req: ListAuditRecordsRequest,
) -> Result<jixiao_proto::types::ListAuditRecordsResponse, tonic::Status> {
    let c = channel.clone();
    let r = match service {
        "plans" => PlansServiceClient::new(c).list_audit_records(req).await,
        "indicators" => {
            IndicatorsServiceClient::new(c)
                .list_audit_records(req)
                .await
        }
        "inspections" => {
            InspectionsServiceClient::new(c)
                .list_audit_records(req)
                .await
        }
        "reviews" => ReviewsServiceClient::new(c).list_audit_records(req).await,
        _ => {
            AggregatorServiceClient::new(c)
                .list_audit_records(req)
                .await
        }
    };
    r.map(|r| r.into_inner())
}

async fn verify_chain(
    channel: &Authed,
    service: &str,
) -> Result<jixiao_proto::types::VerifyAuditChainResponse, tonic::Status> {
    let (c, req) = (channel.clone(), VerifyAuditChainRequest {});
    let r = match service {
        "plans" => PlansServiceClient::new(c).verify_audit_chain(req).await,
        "indicators" => {
            IndicatorsServiceClient::new(c)
                .verify_audit_chain(req)
                .await
        }
        "inspections" => {
            InspectionsServiceClient::new(c)
                .verify_audit_chain(req)
                .await
        }
        "reviews" => ReviewsServiceClient::new(c).verify_audit_chain(req).await,
        _ => {
            AggregatorServiceClient::new(c)
                .verify_audit_chain(req)
                .await
        }
    };
    r.map(|r| r.into_inner())
}

fn audited(service: Option<&str>) -> Result<Vec<&'static str>, String> {
    match service {
        None => Ok(AUDITED.to_vec()),
        Some(s) => AUDITED
            .iter()
            .find(|a| **a == s)
            .map(|a| vec![*a])
            .ok_or(format!(
                "{s:?} keeps no audit trail; choose {}",
                AUDITED.join(", ")
            )),
    }
}

/// `jixiao audit --verify`: walks each service's audit hash chain; fails
/// when any chain is broken.
pub async fn verify_audit(
    caller: &Caller,
    service: Option<&str>,
    format: Format,
) -> Result<String, String> {
    let channel = caller.channel().await?;
    let mut t = Table::new(&[
        "service",
        "valid",
        "records",
        "first_broken",
        "problem",
        "head_digest",
    ]);
    let mut broken = 0;
    for service in audited(service)? {
        let v = verify_chain(&channel, service)
            .await
            .map_err(failed(format!("the {service} service's audit chain")))?;
        broken += usize::from(!v.valid);
        t.push(vec![
            service.to_string(),
            v.valid.to_string(),
            v.records.to_string(),
            v.first_broken_sequence.to_string(),
            v.problem,
            v.head_digest,
        ]);
    }
    let out = t.render(format);
    if broken > 0 {
        return Err(format!("{broken} audit chain(s) do not verify:\n{out}"));
    }
    Ok(out)
}

/// `jixiao audit`: who changed a resource (a name or a prefix), when and
/// why, from every service's trail (or one), oldest first.
pub async fn audit(
    caller: &Caller,
    resource: &str,
    service: Option<&str>,
    format: Format,
) -> Result<String, String> {
    let channel = caller.channel().await?;
    let services = audited(service)?;
    let mut records: Vec<(&str, AuditRecord)> = Vec::new();
    for service in services {
        let mut page_token = String::new();
        loop {
            let page = audit_page(
                &channel,
                service,
                ListAuditRecordsRequest {
                    resource_prefix: resource.to_string(),
                    page_size: 1000,
                    page_token,
                },
            )
            .await
            .map_err(failed(format!("audit records of the {service} service")))?;
            records.extend(page.records.into_iter().map(|r| (service, r)));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    records.sort_by_key(|(s, r)| (r.time.map(|t| (t.seconds, t.nanos)), *s, r.sequence));
    let mut t = Table::new(&[
        "time",
        "service",
        "seq",
        "principal",
        "action",
        "resource",
        "reason",
    ]);
    for (service, r) in &records {
        t.push(vec![
            time(&r.time),
            service.to_string(),
            r.sequence.to_string(),
            r.principal.clone(),
            r.action.clone(),
            r.resource.clone(),
            r.reason.clone(),
        ]);
    }
    let mut out = String::new();
    note(
        &mut out,
        format,
        &format!("{} audit records under {resource:?}", records.len()),
    );
    out.push_str(&t.render(format));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_written_as_year_quarter_or_month() {
        let p = period("2026-Q3").unwrap();
        assert_eq!(
            (p.kind, p.year, p.index),
            (PeriodKind::Quarter as i32, 2026, 3)
        );
        assert_eq!(period("2026").unwrap().kind, PeriodKind::Annual as i32);
        assert_eq!(period("2026-07").unwrap().index, 7);
        assert_eq!(period("2026-07").unwrap().kind, PeriodKind::Month as i32);
        assert!(period("2026-W1").unwrap_err().contains("YYYY-Qn"));
        assert!(period("2026-7").is_err());
    }

    #[test]
    fn value_rows_keep_their_line_numbers_and_evidence() {
        let csv = "unit,indicator,period,value,evidence_name,evidence_sha256\n\
                   siming,GDP_GROWTH,2026,7.1,公报.pdf,abc\n\
                   units/huli,GDP_GROWTH,2026-Q2,3.4,,\n";
        let rows = read_values(csv).unwrap();
        assert_eq!((rows[0].0, rows[1].0), (2, 3));
        assert_eq!(rows[1].1.unit, "units/huli");
        assert_eq!(rows[0].1.evidence[0].name, "公报.pdf");
        assert!(rows[1].1.evidence.is_empty());
        assert!(
            read_values("unit,indicator\n")
                .unwrap_err()
                .contains("period")
        );
    }

    #[test]
    fn plan_files_name_their_mistakes() {
        let (unit, targets, goals) = plan_from_file(
            r#"{"unit":"units/siming","targets":{"GDP_GROWTH":"7.0"},
                "goals":[{"title":"t","milestones":[{"description":"m","due":"2026-06-30"}]}]}"#,
        )
        .unwrap();
        assert_eq!((unit.as_str(), targets.len()), ("siming", 1));
        assert_eq!(
            goals[0].milestones[0].due_time.unwrap().to_string(),
            "2026-06-30T23:59:59Z"
        );
        assert!(
            plan_from_file(r#"{"unit":"x","targets":{},"goal":[]}"#)
                .unwrap_err()
                .contains("unknown field `goal`")
        );
        assert!(
            plan_from_file(
                r#"{"unit":"x","targets":{},"goals":[{"title":"t","milestones":[{"description":"m","due":"30.6.2026"}]}]}"#
            )
            .unwrap_err()
            .contains("YYYY-MM-DD")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_period_or_values_file_parses_or_fails_cleanly(
            cell in "[0-9QM-]{0,8}|\\PC{0,8}",
            csv in "(unit,indicator,period,value(,comment)?\n)?([a-z0-9,.\"QM -]{0,30}\n){0,8}",
        ) {
            let _ = period(&cell);
            let _ = read_values(&csv);
            let _ = plan_from_file(&csv);
        }
    }
}
