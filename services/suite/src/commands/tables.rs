//! The aggregator's tables: `jixiao standings` and `jixiao feedback`.

use jixiao_proto::aggregator::{
    GetFeedbackRequest, GetPublicationRequest, GetStandingsRequest, ListPublicationsRequest,
    aggregator_service_client::AggregatorServiceClient,
};

use super::{Caller, group_name, note, time};
use crate::{
    client::{failed, unit_name},
    table::{self, Format, Table, decimal},
};

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
                    ..Default::default()
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
