//! Bulk storage of survey responses, the hot path of the suite.
//!
//! A batch is stored in one transaction: the responses not seen before are
//! inserted, responses seen before are told apart as duplicates (same
//! content digest) or conflicts (same id, other content), the running
//! tallies of the new responses are added, the group's change counter is
//! bumped and an audit record is written. An acknowledged batch is durable;
//! a batch sent again changes nothing.
//!
//! PostgreSQL: the batch is `COPY`'d into a temporary staging table, then
//! moved with `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`.
//! SQLite: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` on the one
//! writer connection.

use std::collections::{HashMap, HashSet};

use jixiao_runtime::{
    Error, Principal, audit,
    changes::{Change, Changes},
};
use sqlx::{AnyConnection, Row};

/// One validated response, ready to store.
#[derive(Debug, Clone)]
pub struct NewResponse {
    pub response_id: String,
    pub unit: String,
    pub category: String,
    pub channel: i32,
    pub answer_ms: i64,
    /// Answers packed as `q1=satisfied;q2=dont_know`.
    pub answers: String,
    /// First 8 bytes of the SHA-256 of the content.
    pub digest: i64,
    /// The response's value in 1e-10 units; None when nothing was counted.
    pub value_units: Option<i64>,
    /// Per question: the counted value in 1e-10 units.
    pub question_values: Vec<(String, i64)>,
}

/// What happened to each response of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    Duplicate,
    Conflict,
}

/// Where a batch goes.
pub struct Batch<'a> {
    pub campaign: &'a str,
    pub cycle: &'a str,
    pub group: &'a str,
    pub rows: &'a [NewResponse],
}

/// Tally deltas of the newly stored responses.
#[derive(Default)]
struct Deltas {
    categories: HashMap<(String, String), (i64, i64)>,
    questions: HashMap<(String, String), (i64, i64)>,
}

impl Deltas {
    fn of<'a>(rows: impl Iterator<Item = &'a NewResponse>) -> Deltas {
        let mut d = Deltas::default();
        for r in rows {
            if let Some(v) = r.value_units {
                let e = d
                    .categories
                    .entry((r.unit.clone(), r.category.clone()))
                    .or_default();
                e.0 += 1;
                e.1 += v;
            }
            for (q, v) in &r.question_values {
                let e = d.questions.entry((r.unit.clone(), q.clone())).or_default();
                e.0 += 1;
                e.1 += v;
            }
        }
        d
    }
}

/// Sorts stored, duplicate and conflicting rows given the ids inserted now
/// and the digests already stored for the others.
fn classify(
    rows: &[NewResponse],
    inserted: &HashSet<String>,
    existing: &HashMap<String, i64>,
) -> Vec<Outcome> {
    let mut seen_now: HashMap<&str, i64> = HashMap::new();
    rows.iter()
        .map(|r| {
            if inserted.contains(&r.response_id) && !seen_now.contains_key(r.response_id.as_str()) {
                seen_now.insert(&r.response_id, r.digest);
                Outcome::Stored
            } else {
                let stored = seen_now
                    .get(r.response_id.as_str())
                    .copied()
                    .or_else(|| existing.get(&r.response_id).copied());
                if stored == Some(r.digest) {
                    Outcome::Duplicate
                } else {
                    Outcome::Conflict
                }
            }
        })
        .collect()
}

fn summary(outcomes: &[Outcome]) -> serde_json::Value {
    let count = |o| outcomes.iter().filter(|x| **x == o).count();
    serde_json::json!({
        "stored": count(Outcome::Stored),
        "duplicates": count(Outcome::Duplicate),
        "conflicts": count(Outcome::Conflict),
    })
}

/// The first occurrence of each response id in a batch: only these reach
/// the database; repeats are classified against them.
fn first_occurrences(rows: &[NewResponse]) -> Vec<&NewResponse> {
    let mut seen = HashSet::new();
    rows.iter()
        .filter(|r| seen.insert(r.response_id.as_str()))
        .collect()
}

/// Rows per multi-row statement (8 columns each, under SQLite's 32,766
/// parameters).
const CHUNK: usize = 1000;

macro_rules! upsert_tallies {
    ($conn:ident, $campaign:expr, $deltas:expr) => {{
        let cats: Vec<_> = $deltas.categories.iter().collect();
        for chunk in cats.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO survey_tallies (campaign, unit_id, category, responses, value_units) VALUES ");
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (campaign, unit_id, category) DO UPDATE SET responses = survey_tallies.responses + excluded.responses,
                  value_units = survey_tallies.value_units + excluded.value_units",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((unit, category), (n, v)) in chunk {
                q = q.bind($campaign).bind(unit.as_str()).bind(category.as_str()).bind(*n).bind(*v);
            }
            q.execute(&mut *$conn).await?;
        }
        let qs: Vec<_> = $deltas.questions.iter().collect();
        for chunk in qs.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO question_tallies (campaign, unit_id, question, counted, value_units) VALUES ");
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (campaign, unit_id, question) DO UPDATE SET counted = question_tallies.counted + excluded.counted,
                  value_units = question_tallies.value_units + excluded.value_units",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((unit, question), (n, v)) in chunk {
                q = q.bind($campaign).bind(unit.as_str()).bind(question.as_str()).bind(*n).bind(*v);
            }
            q.execute(&mut *$conn).await?;
        }
    }};
}

fn placeholders(sql: &mut String, rows: usize, cols: usize) {
    use std::fmt::Write;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let _ = write!(
                sql,
                "{}${}",
                if c == 0 { "" } else { ", " },
                r * cols + c + 1
            );
        }
        sql.push(')');
    }
}

/// Digests already stored for some response ids of a campaign.
macro_rules! existing_digests {
    ($conn:ident, $campaign:expr, $ids:expr) => {{
        let mut out: HashMap<String, i64> = HashMap::new();
        let ids: Vec<&String> = $ids;
        for chunk in ids.chunks(CHUNK) {
            let mut sql = String::from("SELECT response_id, digest FROM responses WHERE campaign = $1 AND response_id IN (");
            for i in 0..chunk.len() {
                sql.push_str(&format!("{}${}", if i == 0 { "" } else { ", " }, i + 2));
            }
            sql.push(')');
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind($campaign);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(&mut *$conn).await? {
                out.insert(row.try_get("response_id")?, row.try_get("digest")?);
            }
        }
        out
    }};
}

/// Stores a batch on SQLite (or any database, through the portable pool).
pub async fn store_portable(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    let unique = first_occurrences(batch.rows);
    let mut inserted = HashSet::new();
    for chunk in unique.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest) VALUES ",
        );
        placeholders(&mut sql, chunk.len(), 8);
        sql.push_str(" ON CONFLICT (campaign, response_id) DO NOTHING RETURNING response_id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(batch.campaign)
                .bind(r.response_id.as_str())
                .bind(r.unit.as_str())
                .bind(r.category.as_str())
                .bind(i64::from(r.channel))
                .bind(r.answer_ms)
                .bind(r.answers.as_str())
                .bind(r.digest);
        }
        for row in q.fetch_all(&mut *conn).await? {
            inserted.insert(row.try_get::<String, _>("response_id")?);
        }
    }
    let others: Vec<&String> = unique
        .iter()
        .map(|r| &r.response_id)
        .filter(|id| !inserted.contains(*id))
        .collect();
    let existing = existing_digests!(conn, batch.campaign, others);
    finish_portable(conn, principal, batch, &inserted, &existing).await
}

async fn finish_portable(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
    inserted: &HashSet<String>,
    existing: &HashMap<String, i64>,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    let outcomes = classify(batch.rows, inserted, existing);
    let deltas = Deltas::of(
        batch
            .rows
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Stored)
            .map(|(r, _)| r),
    );
    let change = if inserted.is_empty() {
        None
    } else {
        upsert_tallies!(conn, batch.campaign, deltas);
        Some(Changes::bump(conn, batch.cycle, batch.group).await?)
    };
    let resource = format!(
        "cycles/{}/campaigns/{}",
        batch.cycle,
        batch.campaign.rsplit('/').next().unwrap_or_default()
    );
    audit::append(
        conn,
        principal,
        audit::Entry {
            action: "responses.push",
            resource: &resource,
            reason: "",
            detail: summary(&outcomes),
        },
    )
    .await?;
    Ok((outcomes, change))
}

/// Stores a batch on PostgreSQL through COPY.
pub async fn store_pg(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    use sqlx::Executor;
    // A staging table per connection, emptied at every commit.
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging_responses (
            response_id TEXT, unit_id TEXT, category TEXT, channel BIGINT, answer_ms BIGINT, answers TEXT, digest BIGINT
         ) ON COMMIT DELETE ROWS",
    )
    .await?;
    let unique = first_occurrences(batch.rows);
    let mut text = String::with_capacity(unique.len() * 160);
    for r in &unique {
        use std::fmt::Write;
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            copy_escape(&r.response_id),
            copy_escape(&r.unit),
            copy_escape(&r.category),
            r.channel,
            r.answer_ms,
            copy_escape(&r.answers),
            r.digest
        );
    }
    let mut copy = conn
        .copy_in_raw("COPY staging_responses FROM STDIN")
        .await?;
    if let Err(e) = copy.send(text.as_bytes()).await {
        let _ = copy.abort("send failed").await;
        return Err(e.into());
    }
    copy.finish().await?;
    let rows = sqlx::query(
        "INSERT INTO responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest)
         SELECT $1, response_id, unit_id, category, channel, answer_ms, answers, digest FROM staging_responses
         ON CONFLICT (campaign, response_id) DO NOTHING RETURNING response_id",
    )
    .bind(batch.campaign)
    .fetch_all(&mut *conn)
    .await?;
    let mut inserted = HashSet::with_capacity(rows.len());
    for row in &rows {
        inserted.insert(row.try_get::<String, _>("response_id")?);
    }
    let existing = if inserted.len() == unique.len() {
        HashMap::new()
    } else {
        let rows = sqlx::query(
            "SELECT r.response_id, r.digest FROM responses r JOIN staging_responses s ON s.response_id = r.response_id
             WHERE r.campaign = $1",
        )
        .bind(batch.campaign)
        .fetch_all(&mut *conn)
        .await?;
        let mut m = HashMap::new();
        for row in &rows {
            let id: String = row.try_get("response_id")?;
            if !inserted.contains(&id) {
                m.insert(id, row.try_get::<i64, _>("digest")?);
            }
        }
        m
    };
    let outcomes = classify(batch.rows, &inserted, &existing);
    let deltas = Deltas::of(
        batch
            .rows
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Stored)
            .map(|(r, _)| r),
    );
    let change = if inserted.is_empty() {
        None
    } else {
        upsert_tallies!(conn, batch.campaign, deltas);
        Some(Changes::bump_pg(conn, batch.cycle, batch.group).await?)
    };
    let resource = format!(
        "cycles/{}/campaigns/{}",
        batch.cycle,
        batch.campaign.rsplit('/').next().unwrap_or_default()
    );
    audit::append_pg(
        conn,
        principal,
        audit::Entry {
            action: "responses.push",
            resource: &resource,
            reason: "",
            detail: summary(&outcomes),
        },
    )
    .await?;
    Ok((outcomes, change))
}

/// Escapes a value for COPY's text format.
pub fn copy_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\\', '\t', '\n', '\r']) {
        s.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, digest: i64) -> NewResponse {
        NewResponse {
            response_id: id.into(),
            unit: "units/a".into(),
            category: "residents".into(),
            channel: 1,
            answer_ms: 0,
            answers: String::new(),
            digest,
            value_units: Some(1),
            question_values: vec![],
        }
    }

    #[test]
    fn classifies_new_duplicate_and_conflicting_rows() {
        let rows = [
            row("a", 1),
            row("b", 2),
            row("c", 3),
            row("a", 1),
            row("a", 9),
        ];
        let inserted: HashSet<String> = ["a".to_string()].into();
        let existing: HashMap<String, i64> = [("b".to_string(), 2), ("c".to_string(), 4)].into();
        assert_eq!(
            classify(&rows, &inserted, &existing),
            [
                Outcome::Stored,
                Outcome::Duplicate,
                Outcome::Conflict,
                Outcome::Duplicate,
                Outcome::Conflict
            ]
        );
    }

    #[test]
    fn placeholders_number_every_column() {
        let mut s = String::new();
        placeholders(&mut s, 2, 3);
        assert_eq!(s, "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn copy_values_are_escaped() {
        assert_eq!(copy_escape("a\tb\\c\n"), "a\\tb\\\\c\\n");
        assert_eq!(copy_escape("plain"), "plain");
    }
}
