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

mod pg;
mod screening;
mod sqlite;
mod tallies;

pub use pg::{copy_escape, copy_lines, store_pg};
pub use sqlite::store_sqlite;
pub use tallies::Deltas;

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
    /// The platform's respondent key ("" when none).
    pub respondent: String,
    /// What the screening marked (`STRAIGHT`, `LATE`); 0 when screening is
    /// off or the response has no value.
    pub marks: u8,
}

/// A straight-lined response (docs/DATA-QUALITY.md, STRAIGHT_LINING).
pub const STRAIGHT: u8 = 1;
/// A response answered in the closing window (CATEGORY_SURGE).
pub const LATE: u8 = 2;

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
    /// Responses refused as out of window (screening on).
    pub outside: &'a [Outside],
    /// The scheme screens surveys.
    pub screened: bool,
}

/// A response refused as answered outside the campaign window, kept for
/// OUTSIDE_WINDOW (docs/DATA-QUALITY.md).
#[derive(Debug, Clone)]
pub struct Outside {
    pub response_id: String,
    pub unit: String,
    pub answer_ms: i64,
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

/// A few ids spread over a batch: enough to recognise a resend.
fn sample<'r>(unique: &[&'r NewResponse]) -> impl Iterator<Item = &'r NewResponse> {
    unique.iter().step_by((unique.len() / 16).max(1)).copied()
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
            batch.screened,
        )
    });
    (outcomes, own)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn row(id: &str, digest: i64) -> NewResponse {
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
            respondent: String::new(),
            marks: 0,
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
}
