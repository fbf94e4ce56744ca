//! The survey tallies of each raw-responses campaign, kept in memory as of
//! a revision of its group, so that a group's review scores under ingest
//! need not join its whole tally table again (12,000 rows at 3,000 units:
//! most of the read behind every refresh of the standings).
//!
//! A copy is good for exactly one revision of the group. Every write that
//! changes a tally bumps the group's revision in the same transaction, so:
//! - a copy read while the revision stayed the same before and after is
//!   the tallies of that revision;
//! - a batch this process stored, whose commit moved the revision from
//!   the copy's by one, moves the copy on by adding what the batch added
//!   to the table (the same integer sums). Batches commit in revision
//!   order but may report in another (two pushes at once), so a batch
//!   ahead of the copy waits beside it for the ones before it;
//! - any other write (another replica's, an exclusion, a vote) leaves the
//!   copy behind its group's revision, and the next reader reads afresh.
//!
//! A copy also says which units the batches it moved on by touched, and at
//! which revision: since the revision it was read at, those are the only
//! units whose review scores can differ, so a follower holding the scores
//! of such a revision is answered with theirs alone
//! (`GetGroupReviewScoresRequest.changes_only`).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use crate::{
    ingest::{CategoryDelta, Deltas},
    store::TallyRow,
};

/// A campaign's tallies, with each (unit, category)'s place.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    pub rows: Vec<TallyRow>,
    at: HashMap<(String, String), usize>,
}

impl Tallies {
    pub fn new(rows: Vec<TallyRow>) -> Self {
        let at = rows
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.unit.clone(), r.category.clone()), i))
            .collect();
        Tallies { rows, at }
    }

    /// Adds a stored batch's deltas, as the ingest's upsert does.
    fn add<'d>(&mut self, deltas: impl IntoIterator<Item = (&'d str, &'d CategoryDelta)>) {
        for (unit, c) in deltas {
            let key = (unit.to_string(), c.category.clone());
            let i = *self.at.entry(key).or_insert_with(|| {
                self.rows.push(TallyRow {
                    unit: unit.to_string(),
                    category: c.category.clone(),
                    ..Default::default()
                });
                self.rows.len() - 1
            });
            let row = &mut self.rows[i];
            row.responses += c.responses;
            row.value_units += c.value_units;
            row.straight += c.straight;
            row.late += c.late;
        }
    }
}

/// A campaign's copy as of `revision`.
struct Held {
    revision: i64,
    tallies: Arc<Tallies>,
    /// The revision the copy was read at: from there on it moved only by
    /// this process's batches.
    since: i64,
    /// unit → the last revision a batch named it.
    touched: HashMap<String, i64>,
    /// Batches that reported before the one just ahead of the copy did,
    /// by revision (at most [`MOST_AHEAD`]).
    ahead: std::collections::BTreeMap<i64, Step>,
}

/// What a batch moves a copy on by.
struct Step {
    added: Vec<(String, CategoryDelta)>,
    units: Vec<String>,
}

/// How many batches may wait for an earlier one: a gap that stays open
/// was another kind of write (a vote, another replica's batch), which a
/// fresh read covers.
const MOST_AHEAD: usize = 16;

impl Held {
    /// Moves the copy on to `revision` by one batch's figures.
    fn step<'a>(
        &mut self,
        revision: i64,
        added: impl IntoIterator<Item = (&'a str, &'a CategoryDelta)>,
        units: impl IntoIterator<Item = &'a str>,
    ) {
        // A reader still holding the old copy keeps it; this one is
        // copied first then.
        Arc::make_mut(&mut self.tallies).add(added);
        for u in units {
            match self.touched.get_mut(u) {
                Some(r) => *r = revision,
                None => drop(self.touched.insert(u.to_string(), revision)),
            }
        }
        self.revision = revision;
    }
}

/// A copy at the revision asked for, and when the caller's `known`
/// revision lies within what the copy followed, the units whose scores may
/// have changed since it.
pub struct Taken {
    pub tallies: Arc<Tallies>,
    pub changed: Option<HashSet<String>>,
}

/// Copies by campaign name, each with the group revision it is good for.
#[derive(Default)]
pub struct TallyCache(Mutex<HashMap<String, Held>>);

impl TallyCache {
    /// The campaign's tallies at `revision`, if held, with the units
    /// changed since `known` when the copy can tell (`known` 0: not asked).
    pub fn get(&self, campaign: &str, revision: i64, known: i64) -> Option<Taken> {
        let held = self.0.lock().expect("tally cache");
        let h = held.get(campaign).filter(|h| h.revision == revision)?;
        let changed = (known > 0 && h.since <= known && known <= revision).then(|| {
            h.touched
                .iter()
                .filter(|(_, r)| **r > known)
                .map(|(u, _)| u.clone())
                .collect()
        });
        Some(Taken {
            tallies: h.tallies.clone(),
            changed,
        })
    }

    /// Keeps tallies read at `revision` unless a newer copy is held.
    pub fn put(&self, campaign: &str, revision: i64, tallies: Arc<Tallies>) {
        let mut held = self.0.lock().expect("tally cache");
        match held.get(campaign) {
            Some(h) if h.revision >= revision => {}
            _ => drop(held.insert(
                campaign.to_string(),
                Held {
                    revision,
                    tallies,
                    since: revision,
                    touched: HashMap::new(),
                    ahead: Default::default(),
                },
            )),
        }
    }

    /// A committed batch moved the group to `revision`, adding `added`
    /// (None: no tally changed, e.g. only refusals were recorded) and
    /// naming `units` (every unit its responses named, refused ones too:
    /// refusals and repeated keys raise flags). A copy one revision behind
    /// moves on, and on through the batches that waited for this one; a
    /// copy further behind keeps the batch beside it until the ones before
    /// it come; any other stays as it is, and is read afresh if behind.
    pub fn advance<'u>(
        &self,
        campaign: &str,
        revision: i64,
        added: Option<&'u Deltas>,
        units: impl IntoIterator<Item = &'u str>,
    ) {
        let mut held = self.0.lock().expect("tally cache");
        let Some(h) = held.get_mut(campaign) else {
            return;
        };
        let added = added.into_iter().flat_map(Deltas::categories);
        if revision > h.revision + 1 {
            if h.ahead.len() < MOST_AHEAD {
                let step = Step {
                    added: added.map(|(u, c)| (u.to_string(), c.clone())).collect(),
                    units: units.into_iter().map(str::to_string).collect(),
                };
                h.ahead.insert(revision, step);
            }
            return;
        }
        if revision != h.revision + 1 {
            return;
        }
        h.step(revision, added, units);
        while let Some(next) = h.ahead.remove(&(h.revision + 1)) {
            let added = next.added.iter().map(|(u, c)| (u.as_str(), c));
            h.step(h.revision + 1, added, next.units.iter().map(String::as_str));
        }
        // Those behind the copy now never will be needed.
        let now = h.revision;
        h.ahead.retain(|r, _| *r > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::NewResponse;

    fn response(id: &str, unit: &str, category: &str, value_units: i64) -> NewResponse {
        NewResponse {
            response_id: id.into(),
            unit: unit.into(),
            category: category.into(),
            channel: 1,
            answer_ms: 0,
            answers: String::new(),
            digest: 0,
            value_units: Some(value_units),
            question_values: vec![],
            respondent: String::new(),
            marks: 0,
        }
    }

    fn copy(cache: &TallyCache, campaign: &str, revision: i64) -> Arc<Tallies> {
        cache.get(campaign, revision, 0).expect("held").tallies
    }

    fn row(t: &Tallies, unit: &str, category: &str) -> (i64, i64) {
        t.rows
            .iter()
            .find(|r| r.unit == unit && r.category == category)
            .map(|r| (r.responses, r.value_units))
            .unwrap_or_default()
    }

    #[test]
    fn a_copy_moves_on_only_from_the_revision_just_before() {
        let cache = TallyCache::default();
        let c = "cycles/2026/campaigns/s";
        cache.put(
            c,
            4,
            Arc::new(Tallies::new(vec![TallyRow {
                unit: "a".into(),
                category: "residents".into(),
                responses: 1,
                value_units: 10,
                ..Default::default()
            }])),
        );
        let batch = [
            response("1", "a", "residents", 5),
            response("2", "b", "residents", 7),
        ];
        let deltas = Deltas::of(&batch, false);
        // Revision 5 is this batch: the copy adds it, new rows included.
        cache.advance(c, 5, Some(&deltas), deltas.units());
        let t = cache.get(c, 5, 0).map(|t| t.tallies).expect("moved on");
        assert_eq!(row(&t, "a", "residents"), (2, 15));
        assert_eq!(row(&t, "b", "residents"), (1, 7));
        assert!(
            cache.get(c, 4, 0).is_none(),
            "a copy is good for one revision"
        );
        // Until revision 6 is known, a batch making 7 cannot tell what 6
        // changed, so the copy stays behind.
        cache.advance(c, 7, Some(&deltas), deltas.units());
        assert!(cache.get(c, 7, 0).is_none());
        assert_eq!(row(&copy(&cache, c, 5), "a", "residents"), (2, 15));
        // A write that changed no tally still moves the copy on (and on
        // through 7, which waited for it).
        cache.advance(c, 6, None, ["c"]);
        assert_eq!(row(&copy(&cache, c, 7), "a", "residents"), (3, 20));
    }

    #[test]
    fn an_older_read_never_replaces_a_newer_copy() {
        let cache = TallyCache::default();
        let c = "cycles/2026/campaigns/s";
        cache.put(c, 9, Arc::new(Tallies::default()));
        cache.put(c, 8, Arc::new(Tallies::new(vec![TallyRow::default()])));
        assert!(copy(&cache, c, 9).rows.is_empty());
        cache.put(c, 10, Arc::new(Tallies::new(vec![TallyRow::default()])));
        assert_eq!(copy(&cache, c, 10).rows.len(), 1);
    }

    #[test]
    fn a_reader_keeps_the_copy_it_took() {
        let cache = TallyCache::default();
        let c = "c";
        cache.put(c, 1, Arc::new(Tallies::default()));
        let taken = copy(&cache, c, 1);
        let deltas = Deltas::of(&[response("1", "a", "x", 3)], false);
        cache.advance(c, 2, Some(&deltas), deltas.units());
        assert!(taken.rows.is_empty());
        assert_eq!(row(&copy(&cache, c, 2), "a", "x"), (1, 3));
    }

    #[test]
    fn the_units_changed_since_a_revision_are_those_its_batches_named() {
        let cache = TallyCache::default();
        let c = "c";
        cache.put(c, 10, Arc::new(Tallies::default()));
        let changed = |known| {
            cache.get(c, 13, known).expect("held").changed.map(|u| {
                let mut u: Vec<String> = u.into_iter().collect();
                u.sort();
                u
            })
        };
        let a = Deltas::of(&[response("1", "a", "x", 3)], false);
        cache.advance(c, 11, Some(&a), a.units());
        let ab = Deltas::of(
            &[response("2", "a", "x", 3), response("3", "b", "x", 1)],
            false,
        );
        cache.advance(c, 12, Some(&ab), ab.units());
        // Only refusals: no tally moved, but the unit's flags may have.
        cache.advance(c, 13, None, ["d"]);
        assert_eq!(changed(10), Some(vec!["a".into(), "b".into(), "d".into()]));
        assert_eq!(changed(11), Some(vec!["a".into(), "b".into(), "d".into()]));
        assert_eq!(changed(12), Some(vec!["d".into()]));
        assert_eq!(changed(13), Some(vec![]));
        // Before the copy was read, or not asked: nobody can tell.
        assert_eq!(changed(9), None);
        assert_eq!(changed(0), None);
        assert_eq!(changed(14), None);
        // A fresh read forgets what the old copy followed.
        cache.put(c, 15, Arc::new(Tallies::default()));
        assert!(cache.get(c, 15, 13).unwrap().changed.is_none());
        assert_eq!(cache.get(c, 15, 15).unwrap().changed, Some(HashSet::new()));
    }

    #[test]
    fn batches_that_report_out_of_turn_move_the_copy_on_in_order() {
        let cache = TallyCache::default();
        let c = "c";
        cache.put(c, 1, Arc::new(Tallies::default()));
        let (a, b) = (
            Deltas::of(&[response("1", "a", "x", 3)], false),
            Deltas::of(&[response("2", "b", "x", 5)], false),
        );
        // Revision 3 reports first: it waits for 2.
        cache.advance(c, 3, Some(&b), b.units());
        assert!(cache.get(c, 3, 0).is_none());
        assert!(cache.get(c, 1, 0).is_some());
        cache.advance(c, 2, Some(&a), a.units());
        let t = copy(&cache, c, 3);
        assert_eq!((row(&t, "a", "x"), row(&t, "b", "x")), ((1, 3), (1, 5)));
        let changed = cache.get(c, 3, 2).unwrap().changed.unwrap();
        assert_eq!(changed, HashSet::from(["b".to_string()]));
        // A gap that never fills (a vote made 4) leaves the copy at 3.
        cache.advance(c, 5, Some(&a), a.units());
        assert!(cache.get(c, 5, 0).is_none());
        assert_eq!(row(&copy(&cache, c, 3), "a", "x"), (1, 3));
    }
}
