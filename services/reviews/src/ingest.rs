//! Bulk storage of survey responses, the hot path of the suite.
//!
//! A batch is stored in one transaction: the responses not seen before are
//! inserted, responses seen before are told apart as duplicates (same
//! content digest) or conflicts (same id, other content), the running
//! tallies of the new responses are added, the group's change counter is
//! bumped and an audit record is written. An acknowledged batch is durable;
//! a batch sent again changes nothing.
//!
//! PostgreSQL: the rows are `COPY`'d straight into the table under a
//! per-campaign advisory lock; only when that meets stored ids are they
//! looked up and the new rows copied again.
//! SQLite: multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` on the one
//! writer connection, with anonymous parameters.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

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
    /// Per counted answer: the question's position in the campaign and the
    /// value in 1e-10 units.
    pub question_values: Vec<(u16, i64)>,
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
    /// The campaign's question ids, by position.
    pub questions: &'a [String],
    pub rows: &'a [NewResponse],
}

/// Tally deltas of the newly stored responses.
#[derive(Default)]
struct Deltas<'a> {
    categories: HashMap<(&'a str, &'a str), (i64, i64)>,
    questions: HashMap<(&'a str, &'a str), (i64, i64)>,
}

impl<'a> Deltas<'a> {
    fn of(rows: impl Iterator<Item = &'a NewResponse>, questions: &'a [String]) -> Deltas<'a> {
        let mut d = Deltas::default();
        for r in rows {
            if let Some(v) = r.value_units {
                let e = d
                    .categories
                    .entry((r.unit.as_str(), r.category.as_str()))
                    .or_default();
                e.0 += 1;
                e.1 += v;
            }
            for (q, v) in &r.question_values {
                let e = d
                    .questions
                    .entry((r.unit.as_str(), questions[*q as usize].as_str()))
                    .or_default();
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
    let mut seen_now: HashMap<&str, i64> = HashMap::default();
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
    let mut seen = HashSet::default();
    rows.iter()
        .filter(|r| seen.insert(r.response_id.as_str()))
        .collect()
}

/// Rows per multi-row statement (8 columns each, under SQLite's 32,766
/// parameters).
const CHUNK: usize = 4000;
/// Ids per look-up statement.
const LOOKUP_CHUNK: usize = 30_000;

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
                q = q.bind($campaign).bind(*unit).bind(*category).bind(*n).bind(*v);
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
                q = q.bind($campaign).bind(*unit).bind(*question).bind(*n).bind(*v);
            }
            q.execute(&mut *$conn).await?;
        }
    }};
}

/// Appends `rows` groups of `cols` anonymous parameters. SQLite gets `?`
/// rather than `$n`: sqlx resolves numbered parameters by name, which costs
/// more the more parameters a statement has (quadratic in a 4,000-row
/// insert).
fn placeholders(sql: &mut String, rows: usize, cols: usize) {
    let group = format!("({})", vec!["?"; cols].join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
}

/// Digests already stored for some response ids of a campaign.
macro_rules! existing_digests {
    ($conn:ident, $campaign:expr, $ids:expr) => {{
        // SQLite only: anonymous parameters (see `placeholders`).
        let mut out: HashMap<String, i64> = HashMap::default();
        let ids: Vec<&String> = $ids;
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = String::from(
                "SELECT response_id, digest FROM responses WHERE campaign = ? AND response_id IN (",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
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

/// Stores a batch on SQLite, through the portable pool's one writer. With
/// one writer nothing can slip in between the look-up of stored ids and the
/// insert, so the insert needs neither a conflict clause nor RETURNING.
pub async fn store_sqlite(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    let unique = first_occurrences(batch.rows);
    let ids: Vec<&String> = unique.iter().map(|r| &r.response_id).collect();
    let existing = existing_digests!(conn, batch.campaign, ids);
    let fresh: Vec<&&NewResponse> = unique
        .iter()
        .filter(|r| !existing.contains_key(&r.response_id))
        .collect();
    for chunk in fresh.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest) VALUES ",
        );
        placeholders(&mut sql, chunk.len(), 8);
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
        q.execute(&mut *conn).await?;
    }
    let inserted: HashSet<String> = fresh.iter().map(|r| r.response_id.clone()).collect();
    finish_sqlite(conn, principal, batch, &inserted, &existing).await
}

async fn finish_sqlite(
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
        batch.questions,
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

/// Stores a batch on PostgreSQL. Pushes to one campaign are serialised
/// by a transaction-scoped advisory lock. Unless a sample of its ids is
/// already stored, the batch is `COPY`'d straight into the table under a
/// savepoint: when every response is new (the usual first push) that is
/// all. Otherwise (a resend, or a copy that hit a stored id) the stored
/// ids are looked up in one query and only the new rows are copied: no
/// staging table, no second write of a row.
pub async fn store_pg(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    use sqlx::Executor;
    // Id look-ups must probe the primary key: with the default page costs
    // the planner scans the whole table for a few thousand ids instead.
    conn.execute("SET LOCAL random_page_cost = 1.1").await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(batch.campaign)
        .execute(&mut *conn)
        .await?;
    let unique = first_occurrences(batch.rows);
    // A resent batch is recognised by a few of its ids and skips the copy.
    let sample: Vec<&str> = unique
        .iter()
        .step_by((unique.len() / 16).max(1))
        .map(|r| r.response_id.as_str())
        .collect();
    let seen: i64 = sqlx::query(
        "SELECT count(*) AS n FROM responses WHERE campaign = $1 AND response_id = ANY($2)",
    )
    .bind(batch.campaign)
    .bind(&sample)
    .fetch_one(&mut *conn)
    .await?
    .try_get("n")?;
    let optimistic = seen == 0 && {
        conn.execute("SAVEPOINT fresh_copy").await?;
        match copy_rows(conn, batch.campaign, &unique).await {
            Ok(()) => {
                conn.execute("RELEASE SAVEPOINT fresh_copy").await?;
                true
            }
            Err(e) if is_unique_violation(&e) => {
                conn.execute("ROLLBACK TO SAVEPOINT fresh_copy").await?;
                false
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut existing: HashMap<String, i64> = HashMap::default();
    let fresh: Vec<&NewResponse> = if optimistic {
        unique
    } else {
        // Only ids that are missing or stored with other content come back;
        // the rest are stored alike (duplicates). The plan must probe the
        // primary key once per id: a hash join would scan the whole table.
        let ids: Vec<&str> = unique.iter().map(|r| r.response_id.as_str()).collect();
        let digests: Vec<i64> = unique.iter().map(|r| r.digest).collect();
        conn.execute("SET LOCAL enable_hashjoin = off").await?;
        conn.execute("SET LOCAL enable_mergejoin = off").await?;
        let mut differing: HashMap<String, bool> = HashMap::default();
        for row in sqlx::query(
            "SELECT b.id, r.digest IS NULL AS missing FROM UNNEST($2::text[], $3::bigint[]) AS b(id, digest)
             LEFT JOIN responses r ON r.campaign = $1 AND r.response_id = b.id
             WHERE r.digest IS NULL OR r.digest <> b.digest",
        )
        .bind(batch.campaign)
        .bind(&ids)
        .bind(&digests)
        .fetch_all(&mut *conn)
        .await?
        {
            differing.insert(row.try_get("id")?, row.try_get("missing")?);
        }
        for r in &unique {
            match differing.get(&r.response_id) {
                Some(true) => {}
                // Stored with other content: any digest but this one.
                Some(false) => drop(existing.insert(r.response_id.clone(), !r.digest)),
                None => drop(existing.insert(r.response_id.clone(), r.digest)),
            }
        }
        let fresh: Vec<&NewResponse> = unique
            .into_iter()
            .filter(|r| !existing.contains_key(&r.response_id))
            .collect();
        copy_rows(conn, batch.campaign, &fresh).await?;
        fresh
    };
    let inserted: HashSet<String> = fresh.iter().map(|r| r.response_id.clone()).collect();
    let outcomes = classify(batch.rows, &inserted, &existing);
    let deltas = Deltas::of(
        batch
            .rows
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Outcome::Stored)
            .map(|(r, _)| r),
        batch.questions,
    );
    let change = if inserted.is_empty() {
        None
    } else {
        upsert_tallies_pg(conn, batch.campaign, &deltas).await?;
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// `COPY`s rows into the responses table.
async fn copy_rows(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    rows: &[&NewResponse],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut text = String::with_capacity(rows.len() * 200);
    let campaign = copy_escape(campaign);
    for r in rows {
        use std::fmt::Write;
        let _ = writeln!(
            text,
            "{campaign}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
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
        .copy_in_raw("COPY responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest) FROM STDIN")
        .await?;
    if let Err(e) = copy.send(text.as_bytes()).await {
        let _ = copy.abort("send failed").await;
        return Err(e);
    }
    copy.finish().await.map(|_| ())
}

/// Adds tally deltas with one array-valued statement per table.
async fn upsert_tallies_pg(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    d: &Deltas<'_>,
) -> Result<(), Error> {
    for (table, key, count, rows) in [
        ("survey_tallies", "category", "responses", &d.categories),
        ("question_tallies", "question", "counted", &d.questions),
    ] {
        let (mut units, mut keys, mut counts, mut sums) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((unit, k), (n, v)) in rows.iter() {
            units.push(*unit);
            keys.push(*k);
            counts.push(*n);
            sums.push(*v);
        }
        let sql = format!(
            "INSERT INTO {table} (campaign, unit_id, {key}, {count}, value_units)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[])
             ON CONFLICT (campaign, unit_id, {key}) DO UPDATE SET {count} = {table}.{count} + excluded.{count},
             value_units = {table}.value_units + excluded.value_units"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(campaign)
            .bind(&units)
            .bind(&keys)
            .bind(&counts)
            .bind(&sums)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
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
        let inserted: HashSet<String> = ["a".to_string()].into_iter().collect();
        let existing: HashMap<String, i64> = [("b".to_string(), 2), ("c".to_string(), 4)]
            .into_iter()
            .collect();
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
        placeholders(&mut s, 2, 2);
        assert_eq!(s, "(?, ?), (?, ?)");
    }

    #[test]
    fn copy_values_are_escaped() {
        assert_eq!(copy_escape("a\tb\\c\n"), "a\\tb\\\\c\\n");
        assert_eq!(copy_escape("plain"), "plain");
    }
}
