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

/// Stored responses' digests by response id.
pub type Digests = HashMap<String, i64>;

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
    /// PostgreSQL: `rows` as `COPY` text, made while the batch was
    /// checked (empty when not made).
    pub copy: &'a [String],
    /// The tally deltas of all `rows`, made while the batch was checked:
    /// what is added when every row is new.
    pub deltas: &'a Deltas,
}

/// Tally deltas of stored responses, per unit: by respondent category and
/// by question position.
#[derive(Default)]
pub struct Deltas {
    units: HashMap<String, UnitDeltas>,
}

#[derive(Default)]
struct UnitDeltas {
    /// (category, responses, value units); a scheme has a handful.
    categories: Vec<(String, i64, i64)>,
    /// (counted, value units) by question position.
    questions: Vec<(i64, i64)>,
}

impl UnitDeltas {
    fn add_category(&mut self, category: &str, n: i64, v: i64) {
        match self.categories.iter_mut().find(|c| c.0 == category) {
            Some(c) => {
                c.1 += n;
                c.2 += v;
            }
            None => self.categories.push((category.to_string(), n, v)),
        }
    }

    fn add_question(&mut self, q: usize, n: i64, v: i64) {
        if self.questions.len() <= q {
            self.questions.resize(q + 1, (0, 0));
        }
        self.questions[q].0 += n;
        self.questions[q].1 += v;
    }
}

impl Deltas {
    pub fn of<'r>(rows: impl IntoIterator<Item = &'r NewResponse>) -> Deltas {
        let mut d = Deltas::default();
        for r in rows {
            d.add(r);
        }
        d
    }

    fn add(&mut self, r: &NewResponse) {
        let u = match self.units.get_mut(r.unit.as_str()) {
            Some(u) => u,
            None => self.units.entry(r.unit.clone()).or_default(),
        };
        if let Some(v) = r.value_units {
            u.add_category(&r.category, 1, v);
        }
        for &(q, v) in &r.question_values {
            u.add_question(q as usize, 1, v);
        }
    }

    /// Adds another batch's deltas.
    pub fn merge(&mut self, other: Deltas) {
        for (unit, o) in other.units {
            let u = self.units.entry(unit).or_default();
            for (category, n, v) in &o.categories {
                u.add_category(category, *n, *v);
            }
            for (q, (n, v)) in o.questions.into_iter().enumerate() {
                u.add_question(q, n, v);
            }
        }
    }

    /// (unit, category, responses, value units).
    fn categories(&self) -> impl Iterator<Item = (&str, &str, i64, i64)> {
        self.units.iter().flat_map(|(unit, u)| {
            u.categories
                .iter()
                .map(move |(c, n, v)| (unit.as_str(), c.as_str(), *n, *v))
        })
    }

    /// (unit, question id, counted, value units) of questions answered.
    fn questions<'a>(
        &'a self,
        names: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a str, i64, i64)> {
        self.units.iter().flat_map(move |(unit, u)| {
            u.questions
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| *n > 0)
                .map(move |(q, (n, v))| (unit.as_str(), names[q].as_str(), *n, *v))
        })
    }
}

/// Sorts stored, duplicate and conflicting rows given the ids inserted now
/// and the digests already stored for the others.
fn classify<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    rows: &[NewResponse],
    inserted: &HashSet<&str>,
    existing: &HashMap<K, i64>,
) -> Vec<Outcome> {
    let mut seen_now: HashMap<&str, i64> = HashMap::default();
    rows.iter()
        .map(|r| {
            if inserted.contains(r.response_id.as_str())
                && !seen_now.contains_key(r.response_id.as_str())
            {
                seen_now.insert(&r.response_id, r.digest);
                Outcome::Stored
            } else {
                let stored = seen_now
                    .get(r.response_id.as_str())
                    .copied()
                    .or_else(|| existing.get(r.response_id.as_str()).copied());
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
/// Responses per look-up statement (2 parameters each).
const LOOKUP_CHUNK: usize = 16_000;

macro_rules! upsert_tallies {
    ($conn:ident, $campaign:expr, $deltas:expr, $questions:expr) => {{
        let cats: Vec<_> = $deltas.categories().collect();
        for chunk in cats.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO survey_tallies (campaign, unit_id, category, responses, value_units) VALUES ");
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (campaign, unit_id, category) DO UPDATE SET responses = survey_tallies.responses + excluded.responses,
                  value_units = survey_tallies.value_units + excluded.value_units",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (unit, category, n, v) in chunk {
                q = q.bind($campaign).bind(*unit).bind(*category).bind(*n).bind(*v);
            }
            q.execute(&mut *$conn).await?;
        }
        let qs: Vec<_> = $deltas.questions($questions).collect();
        for chunk in qs.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO question_tallies (campaign, unit_id, question, counted, value_units) VALUES ");
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (campaign, unit_id, question) DO UPDATE SET counted = question_tallies.counted + excluded.counted,
                  value_units = question_tallies.value_units + excluded.value_units",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (unit, question, n, v) in chunk {
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

/// Digests already stored for some responses of a campaign (SQLite:
/// anonymous parameters, see `placeholders`). Rows cross from SQLite's
/// thread one at a time, so only those that are not plain resends (new
/// ids, and stored ids with another digest) come back: a resent batch
/// brings back none.
async fn stored_digests(
    conn: &mut AnyConnection,
    campaign: &str,
    rows: &[&NewResponse],
) -> Result<Digests, sqlx::Error> {
    let mut out = Digests::default();
    for chunk in rows.chunks(LOOKUP_CHUNK) {
        let mut sql = String::from("SELECT v.column1 AS response_id, r.digest FROM (VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        }
        sql.push_str(
            ") AS v LEFT JOIN responses r ON r.campaign = ? AND r.response_id = v.column1 \
             WHERE r.digest IS NOT v.column2",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q.bind(r.response_id.as_str()).bind(r.digest);
        }
        let mut unsettled: HashMap<String, Option<i64>> = HashMap::default();
        for row in q.bind(campaign).fetch_all(&mut *conn).await? {
            unsettled.insert(row.try_get("response_id")?, row.try_get("digest")?);
        }
        for r in chunk {
            match unsettled.get(r.response_id.as_str()) {
                None => drop(out.insert(r.response_id.clone(), r.digest)),
                Some(Some(stored)) => drop(out.insert(r.response_id.clone(), *stored)),
                Some(None) => {}
            }
        }
    }
    Ok(out)
}

/// Runs a first write of a batch's rows under a savepoint: true when it
/// went through, false (rolled back) when it met a stored id.
macro_rules! first_try {
    ($conn:ident, $write:expr) => {{
        $conn.execute("SAVEPOINT first_try").await?;
        match $write.await {
            Ok(()) => {
                $conn.execute("RELEASE SAVEPOINT first_try").await?;
                true
            }
            Err(e) if is_unique_violation(&e) => {
                $conn.execute("ROLLBACK TO SAVEPOINT first_try").await?;
                false
            }
            Err(e) => return Err(e.into()),
        }
    }};
}

/// Stores a batch on SQLite, through the portable pool's one writer. As on
/// PostgreSQL, a batch none of whose sampled ids is stored is inserted at
/// once under a savepoint; only a resend, or an insert that meets a stored
/// id, looks every id up and inserts the rest. With one writer nothing can
/// slip in between that look-up and the insert.
pub async fn store_sqlite(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    use sqlx::Executor;
    let unique = first_occurrences(batch.rows);
    let sample: Vec<&NewResponse> = sample(&unique).collect();
    let optimistic = stored_digests(conn, batch.campaign, &sample)
        .await?
        .is_empty()
        && first_try!(conn, insert_rows(conn, batch.campaign, &unique));
    let (fresh, existing) = if optimistic {
        (unique, HashMap::default())
    } else {
        let existing = stored_digests(conn, batch.campaign, &unique).await?;
        let fresh: Vec<&NewResponse> = unique
            .into_iter()
            .filter(|r| !existing.contains_key(&r.response_id))
            .collect();
        insert_rows(conn, batch.campaign, &fresh).await?;
        (fresh, existing)
    };
    let inserted: HashSet<&str> = fresh.iter().map(|r| r.response_id.as_str()).collect();
    finish_sqlite(conn, principal, batch, &inserted, &existing).await
}

/// A few ids spread over a batch: enough to recognise a resend.
fn sample<'r>(unique: &[&'r NewResponse]) -> impl Iterator<Item = &'r NewResponse> {
    unique.iter().step_by((unique.len() / 16).max(1)).copied()
}

/// Inserts rows with multi-row statements (SQLite).
async fn insert_rows(
    conn: &mut AnyConnection,
    campaign: &str,
    rows: &[&NewResponse],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest) VALUES ",
        );
        placeholders(&mut sql, chunk.len(), 8);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(campaign)
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
    Ok(())
}

async fn finish_sqlite(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
    inserted: &HashSet<&str>,
    existing: &Digests,
) -> Result<(Vec<Outcome>, Option<Change>), Error> {
    let (outcomes, own) = outcomes(batch, inserted, existing);
    let deltas = own.as_ref().unwrap_or(batch.deltas);
    let change = if inserted.is_empty() {
        None
    } else {
        upsert_tallies!(conn, batch.campaign, deltas, batch.questions);
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
    let sample: Vec<&str> = sample(&unique).map(|r| r.response_id.as_str()).collect();
    let seen: i64 = sqlx::query(
        "SELECT count(*) AS n FROM responses WHERE campaign = $1 AND response_id = ANY($2)",
    )
    .bind(batch.campaign)
    .bind(&sample)
    .fetch_one(&mut *conn)
    .await?
    .try_get("n")?;
    let optimistic = seen == 0
        && if unique.len() == batch.rows.len() && !batch.copy.is_empty() {
            first_try!(conn, copy_text(conn, batch.copy))
        } else {
            first_try!(conn, copy_rows(conn, batch.campaign, &unique))
        };
    let mut existing: HashMap<&str, i64> = HashMap::default();
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
        let mut fresh = Vec::new();
        for r in unique {
            let id = r.response_id.as_str();
            match differing.get(id) {
                Some(true) => fresh.push(r),
                // Stored with other content: any digest but this one.
                Some(false) => drop(existing.insert(id, !r.digest)),
                None => drop(existing.insert(id, r.digest)),
            }
        }
        copy_rows(conn, batch.campaign, &fresh).await?;
        fresh
    };
    let inserted: HashSet<&str> = fresh.iter().map(|r| r.response_id.as_str()).collect();
    let (outcomes, own) = outcomes(batch, &inserted, &existing);
    let deltas = own.as_ref().unwrap_or(batch.deltas);
    let change = if inserted.is_empty() {
        None
    } else {
        upsert_tallies_pg(conn, batch.campaign, batch.questions, deltas).await?;
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

/// Appends rows to `COPY` text for the responses table.
pub fn copy_lines<'r>(
    text: &mut String,
    campaign: &str,
    rows: impl IntoIterator<Item = &'r NewResponse>,
) {
    use std::fmt::Write;
    let campaign = copy_escape(campaign);
    for r in rows {
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
    copy_lines(&mut text, campaign, rows.iter().copied());
    copy_text(conn, &[text]).await
}

/// `COPY`s text made by [`copy_lines`] into the responses table.
async fn copy_text(conn: &mut sqlx::PgConnection, parts: &[String]) -> Result<(), sqlx::Error> {
    let mut copy = conn
        .copy_in_raw("COPY responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest) FROM STDIN")
        .await?;
    for part in parts {
        if let Err(e) = copy.send(part.as_bytes()).await {
            let _ = copy.abort("send failed").await;
            return Err(e);
        }
    }
    copy.finish().await.map(|_| ())
}

/// Each row's outcome, and the tally deltas of the stored rows when not
/// every row was stored (otherwise the batch's own apply).
fn outcomes<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    batch: &Batch<'_>,
    inserted: &HashSet<&str>,
    existing: &HashMap<K, i64>,
) -> (Vec<Outcome>, Option<Deltas>) {
    let outcomes = if existing.is_empty() && inserted.len() == batch.rows.len() {
        // The usual first push: every row new, each id once.
        vec![Outcome::Stored; batch.rows.len()]
    } else {
        classify(batch.rows, inserted, existing)
    };
    let all_stored = outcomes.iter().all(|o| *o == Outcome::Stored);
    let own = (!all_stored).then(|| {
        Deltas::of(
            batch
                .rows
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| **o == Outcome::Stored)
                .map(|(r, _)| r),
        )
    });
    (outcomes, own)
}

/// Adds tally deltas with one array-valued statement per table.
async fn upsert_tallies_pg(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    questions: &[String],
    d: &Deltas,
) -> Result<(), Error> {
    let by_category: Vec<_> = d.categories().collect();
    let by_question: Vec<_> = d.questions(questions).collect();
    for (table, key, count, rows) in [
        ("survey_tallies", "category", "responses", by_category),
        ("question_tallies", "question", "counted", by_question),
    ] {
        let (mut units, mut keys, mut counts, mut sums) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (unit, k, n, v) in rows {
            units.push(unit);
            keys.push(k);
            counts.push(n);
            sums.push(v);
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
        let inserted: HashSet<&str> = ["a"].into_iter().collect();
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
    fn batch_deltas_merge_to_the_deltas_of_all_rows() {
        let rows: Vec<NewResponse> = (0..12)
            .map(|i| NewResponse {
                unit: format!("units/{}", i % 3),
                category: ["residents", "enterprises"][i % 2].into(),
                value_units: (i % 5 != 0).then_some(i as i64 * 10),
                question_values: vec![(0, i as i64), (2, 1)],
                ..row(&format!("r{i}"), i as i64)
            })
            .collect();
        let questions = ["q1".to_string(), "q2".into(), "q3".into()];
        let sorted = |d: &Deltas| {
            let mut c: Vec<_> = d
                .categories()
                .map(|(u, c, n, v)| format!("{u} {c} {n} {v}"))
                .collect();
            c.extend(
                d.questions(&questions)
                    .map(|(u, q, n, v)| format!("{u} {q} {n} {v}")),
            );
            c.sort();
            c
        };
        let mut merged = Deltas::of(&rows[..5]);
        merged.merge(Deltas::of(&rows[5..]));
        assert_eq!(sorted(&merged), sorted(&Deltas::of(&rows)));
        // units/0 holds rows 0, 3, 6, 9: rows 3 and 9 are enterprises,
        // rows 0 and 6 residents of which row 0 counted nothing.
        let all = sorted(&Deltas::of(&rows));
        assert!(all.contains(&"units/0 enterprises 2 120".to_string()));
        assert!(all.contains(&"units/0 residents 1 60".to_string()));
        assert!(all.contains(&"units/0 q1 4 18".to_string()));
        assert!(all.contains(&"units/0 q3 4 4".to_string()));
        assert!(
            !all.iter().any(|l| l.contains(" q2 ")),
            "q2 was never answered"
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
