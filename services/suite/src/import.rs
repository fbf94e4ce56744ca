//! `jixiao reviews import`: survey responses from a CSV file, pushed through
//! the same streaming RPC a platform uses, in batches of 5,000.
//!
//! The header names the columns: `response_id`, `unit` (`siming` or
//! `units/siming`), `category`, `channel` (phone, in_person, online),
//! `answer_time` (RFC 3339, e.g. `2026-06-01T10:00:00Z`), optionally
//! `respondent` (the platform's respondent key), then one column per
//! question id holding the answer code (`satisfied`, `dont_know`, …; an
//! empty cell means the question was not asked).

use std::io::Read;

use jixiao_proto::reviews::{
    Answer, Channel, PushResponsesRequest, PushResponsesResponse, SurveyResponse,
    reviews_service_client::ReviewsServiceClient,
};

/// Responses per batch.
pub const BATCH: usize = 5000;
const FIXED: [&str; 5] = ["response_id", "unit", "category", "channel", "answer_time"];
/// A column that may be left out.
const RESPONDENT: &str = "respondent";

/// Reads every row of the CSV into batches, or names the first bad line.
pub fn read_batches(input: impl Read, campaign: &str) -> Result<Vec<PushResponsesRequest>, String> {
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| format!("header: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let fixed: Vec<usize> = FIXED
        .iter()
        .map(|name| column(name).ok_or(format!("the header has no column {name:?}")))
        .collect::<Result<_, _>>()?;
    let questions: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| !FIXED.contains(&h.trim()) && h.trim() != RESPONDENT)
        .map(|(i, h)| (i, h.trim().to_string()))
        .collect();
    let respondent = column(RESPONDENT);
    if questions.is_empty() {
        return Err("the header names no question columns".into());
    }
    let mut batches = Vec::new();
    let mut current = Vec::with_capacity(BATCH);
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let unit = cell(fixed[1]);
        // Exports spell channels as their authors like ("Phone",
        // "ONLINE"); the names are few and cannot be confused.
        let channel = match cell(fixed[3]).to_ascii_lowercase().as_str() {
            "phone" => Channel::Phone,
            "in_person" => Channel::InPerson,
            "online" => Channel::Online,
            "" => Channel::Unspecified,
            _ => {
                let other = cell(fixed[3]);
                return Err(format!(
                    "line {line}: channel {other:?} is not phone, in_person or online"
                ));
            }
        };
        let answer_time = cell(fixed[4])
            .parse::<prost_types::Timestamp>()
            .map_err(|e| format!("line {line}: answer_time {:?}: {e}", cell(fixed[4])))?;
        current.push(SurveyResponse {
            response_id: cell(fixed[0]).to_string(),
            unit: crate::client::unit_name(unit),
            category: cell(fixed[2]).to_string(),
            channel: channel as i32,
            answer_time: Some(answer_time),
            answers: questions
                .iter()
                .filter(|(i, _)| !cell(*i).is_empty())
                .map(|(i, q)| Answer {
                    question: q.clone(),
                    answer: cell(*i).to_string(),
                })
                .collect(),
            respondent: respondent.map(|i| cell(i).to_string()).unwrap_or_default(),
        });
        if current.len() == BATCH {
            batches.push(PushResponsesRequest {
                campaign: campaign.to_string(),
                responses: std::mem::take(&mut current),
            });
        }
    }
    if !current.is_empty() {
        batches.push(PushResponsesRequest {
            campaign: campaign.to_string(),
            responses: current,
        });
    }
    Ok(batches)
}

/// Pushes the batches over one stream, reporting progress after each.
pub async fn push(
    channel: crate::client::Authed,
    batches: Vec<PushResponsesRequest>,
    mut progress: impl FnMut(usize, usize) + Send + 'static,
) -> Result<PushResponsesResponse, String> {
    let mut client = ReviewsServiceClient::new(channel).max_encoding_message_size(16 * 1024 * 1024);
    let total: usize = batches.iter().map(|b| b.responses.len()).sum();
    let mut sent = 0;
    let stream = tokio_stream::iter(batches.into_iter().inspect(move |b| {
        sent += b.responses.len();
        progress(sent, total);
    }));
    client
        .stream_responses(stream)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| crate::client::describe(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_into_responses_and_names_bad_lines() {
        let csv = "response_id,unit,category,channel,answer_time,q1,q2\n\
                   r1,siming,residents,phone,2026-06-01T10:00:00Z,satisfied,dont_know\n\
                   r2,units/huli,enterprises,Online,2026-06-02T10:00:00Z,dissatisfied,\n";
        let batches = read_batches(csv.as_bytes(), "cycles/2026/campaigns/s").unwrap();
        let r = &batches[0].responses;
        assert_eq!(
            (r.len(), r[0].unit.as_str(), r[1].unit.as_str()),
            (2, "units/siming", "units/huli")
        );
        assert_eq!(r[0].answers.len(), 2);
        // Channel names are read whatever their case.
        assert_eq!(r[1].channel, Channel::Online as i32);
        assert_eq!(
            r[1].answers.len(),
            1,
            "an empty cell is a question not asked"
        );
        let bad = "response_id,unit,category,channel,answer_time,q1\nr1,siming,residents,fax,2026-06-01T10:00:00Z,satisfied\n";
        assert_eq!(
            read_batches(bad.as_bytes(), "c").unwrap_err(),
            "line 2: channel \"fax\" is not phone, in_person or online"
        );
        assert!(
            read_batches("response_id,unit\n".as_bytes(), "c")
                .unwrap_err()
                .contains("category")
        );
    }
}
