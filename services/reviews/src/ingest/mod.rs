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
//!
//! A pushed batch whose every response ended up stored (new or a duplicate,
//! none a conflict) is recorded by its fingerprint. A platform retrying a
//! push sends the same batch again: it is recognised by that one record,
//! its responses are duplicates without looking up each id (on PostgreSQL
//! that look-up costs as much as the first insert). A resend cut into
//! other batches takes the per-id look-up.

use jixiao_runtime::changes::Change;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use sha2::{Digest, Sha256};

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
pub use tallies::{CategoryDelta, Deltas};

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
    /// The pushed batches `rows` came from, in order.
    pub parts: &'a [Part],
}

/// One pushed batch's share of the rows stored together.
#[derive(Debug, Clone)]
pub struct Part {
    /// How many of the rows (the next ones).
    pub rows: usize,
    /// [`fingerprint`] of those rows.
    pub fingerprint: String,
}

/// What identifies a batch sent again: its campaign and each response's
/// id and content digest, in order (SHA-256, hex).
pub fn fingerprint(campaign: &str, rows: &[NewResponse]) -> String {
    let mut h = Sha256::new();
    h.update((campaign.len() as u64).to_be_bytes());
    h.update(campaign.as_bytes());
    for r in rows {
        h.update((r.response_id.len() as u64).to_be_bytes());
        h.update(r.response_id.as_bytes());
        h.update(r.digest.to_be_bytes());
    }
    hex::encode(h.finalize())
}

/// Sets apart the rows of parts recorded as stored whole: they are
/// duplicates, taken as stored with their own digests without a look-up.
/// Returns those digests and the first occurrences of the other rows,
/// which go on to be stored.
fn split_resent<'r>(
    batch: &Batch<'r>,
    known: &HashSet<String>,
) -> (HashMap<&'r str, i64>, Vec<&'r NewResponse>) {
    let mut existing = HashMap::default();
    let mut rest: Vec<&'r NewResponse> = Vec::with_capacity(batch.rows.len());
    let mut start = 0;
    for part in batch.parts {
        let rows = &batch.rows[start..(start + part.rows).min(batch.rows.len())];
        start += rows.len();
        if known.contains(&part.fingerprint) {
            existing.extend(rows.iter().map(|r| (r.response_id.as_str(), r.digest)));
        } else {
            rest.extend(rows);
        }
    }
    rest.extend(&batch.rows[start..]);
    let mut seen = HashSet::default();
    rest.retain(|r| seen.insert(r.response_id.as_str()));
    (existing, rest)
}

/// The parts to record as stored whole: not recorded yet, with rows, none
/// of them a conflict; with their row counts.
fn stored_whole<'b>(
    batch: &'b Batch<'_>,
    known: &HashSet<String>,
    outcomes: &[Outcome],
) -> Vec<(&'b str, i64)> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in batch.parts {
        let end = (start + part.rows).min(outcomes.len());
        let whole = outcomes[start..end].iter().all(|o| *o != Outcome::Conflict);
        if whole && end > start && !known.contains(&part.fingerprint) {
            out.push((part.fingerprint.as_str(), (end - start) as i64));
        }
        start = end;
    }
    out
}

/// What storing a batch did.
pub struct Stored {
    /// Each row's outcome, in order.
    pub outcomes: Vec<Outcome>,
    /// The group's revision the batch made; None when it changed nothing.
    pub change: Option<Change>,
    /// What it added to the survey tallies.
    pub added: Added,
}

/// What a stored batch added to the survey tallies.
pub enum Added {
    /// Nothing: no row was new.
    Nothing,
    /// The batch's own deltas: every row was new.
    All,
    /// The deltas of the rows that were new.
    Only(Deltas),
}

impl Added {
    /// The deltas added, given the batch's own.
    pub fn deltas<'d>(&'d self, all: &'d Deltas) -> Option<&'d Deltas> {
        match self {
            Added::Nothing => None,
            Added::All => Some(all),
            Added::Only(d) => Some(d),
        }
    }
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

    fn batch<'a>(rows: &'a [NewResponse], parts: &'a [Part], deltas: &'a Deltas) -> Batch<'a> {
        Batch {
            campaign: "cycles/2026/campaigns/s",
            cycle: "2026",
            group: "g",
            questions: &[],
            rows,
            copy: &[],
            deltas,
            outside: &[],
            screened: false,
            parts,
        }
    }

    fn part(rows: &[NewResponse]) -> Part {
        Part {
            rows: rows.len(),
            fingerprint: fingerprint("cycles/2026/campaigns/s", rows),
        }
    }

    #[test]
    fn a_fingerprint_covers_ids_contents_order_and_campaign() {
        let (a, b) = (row("a", 1), row("b", 2));
        let print = fingerprint("c", &[a.clone(), b.clone()]);
        assert_eq!(print, fingerprint("c", &[a.clone(), b.clone()]));
        for other in [
            fingerprint("c", &[b.clone(), a.clone()]),
            fingerprint("c", &[a.clone(), row("b", 3)]),
            fingerprint("c", &[a.clone(), row("bb", 2)]),
            fingerprint("c", std::slice::from_ref(&a)),
            fingerprint("d", &[a.clone(), b.clone()]),
            // Lengths are hashed: ids cannot run into each other.
            fingerprint("c", &[row("ab", 1), row("", 2)]),
        ] {
            assert_ne!(print, other);
        }
    }

    #[test]
    fn parts_stored_whole_before_are_duplicates_without_a_look_up() {
        let first = [row("a", 1), row("b", 2)];
        let second = [row("c", 3), row("a", 1), row("c", 3)];
        let rows: Vec<NewResponse> = first.iter().chain(&second).cloned().collect();
        let parts = [part(&first), part(&second)];
        let deltas = Deltas::default();
        let batch = batch(&rows, &parts, &deltas);
        let known: HashSet<String> = [parts[0].fingerprint.clone()].into_iter().collect();
        let (existing, unique) = split_resent(&batch, &known);
        assert_eq!(existing, [("a", 1), ("b", 2)].into_iter().collect());
        // The second part's first occurrences go on, "a" among them: only
        // the look-up can say how it is stored.
        let ids: Vec<&str> = unique.iter().map(|r| r.response_id.as_str()).collect();
        assert_eq!(ids, ["c", "a"]);
        // Nothing known: every first occurrence goes on.
        let (existing, unique) = split_resent(&batch, &HashSet::default());
        assert!(existing.is_empty());
        assert_eq!(unique.len(), 3);
    }

    #[test]
    fn only_parts_without_a_conflict_are_recorded() {
        use Outcome::*;
        let (one, two, three) = ([row("a", 1)], [row("b", 2), row("c", 3)], [row("d", 4)]);
        let rows: Vec<NewResponse> = one.iter().chain(&two).chain(&three).cloned().collect();
        let parts = [part(&one), part(&two), part(&three), part(&[])];
        let deltas = Deltas::default();
        let batch = batch(&rows, &parts, &deltas);
        let known: HashSet<String> = [parts[2].fingerprint.clone()].into_iter().collect();
        let whole = stored_whole(&batch, &known, &[Stored, Duplicate, Conflict, Duplicate]);
        // The second has a conflict, the third is recorded, the last is empty.
        assert_eq!(whole, [(parts[0].fingerprint.as_str(), 1)]);
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
