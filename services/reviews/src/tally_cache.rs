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
//!   to the table (the same integer sums);
//! - any other write (another replica's, an exclusion, a vote) leaves the
//!   copy behind its group's revision, and the next reader reads afresh.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{ingest::Deltas, store::TallyRow};

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
    fn add(&mut self, deltas: &Deltas) {
        for (unit, c) in deltas.categories() {
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

/// Copies by campaign name, each with the group revision it is good for.
#[derive(Default)]
pub struct TallyCache(Mutex<HashMap<String, (i64, Arc<Tallies>)>>);

impl TallyCache {
    /// The campaign's tallies at `revision`, if held.
    pub fn get(&self, campaign: &str, revision: i64) -> Option<Arc<Tallies>> {
        let held = self.0.lock().expect("tally cache");
        held.get(campaign)
            .filter(|(r, _)| *r == revision)
            .map(|(_, t)| t.clone())
    }

    /// Keeps tallies read at `revision` unless a newer copy is held.
    pub fn put(&self, campaign: &str, revision: i64, tallies: Arc<Tallies>) {
        let mut held = self.0.lock().expect("tally cache");
        match held.get(campaign) {
            Some((r, _)) if *r >= revision => {}
            _ => drop(held.insert(campaign.to_string(), (revision, tallies))),
        }
    }

    /// A committed batch moved the group to `revision`, adding `added`
    /// (None: no tally changed, e.g. only refusals were recorded). A copy
    /// one revision behind moves on; any other stays as it is, and is
    /// read afresh if behind.
    pub fn advance(&self, campaign: &str, revision: i64, added: Option<&Deltas>) {
        let mut held = self.0.lock().expect("tally cache");
        if let Some((r, tallies)) = held.get_mut(campaign)
            && *r == revision - 1
        {
            if let Some(d) = added {
                // A reader still holding the old copy keeps it; this one
                // is copied first then.
                Arc::make_mut(tallies).add(d);
            }
            *r = revision;
        }
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
        cache.advance(c, 5, Some(&deltas));
        let t = cache.get(c, 5).expect("moved on");
        assert_eq!(row(&t, "a", "residents"), (2, 15));
        assert_eq!(row(&t, "b", "residents"), (1, 7));
        assert!(cache.get(c, 4).is_none(), "a copy is good for one revision");
        // Revision 6 was someone else's write: a batch making 7 cannot
        // tell what 6 changed, so the copy stays behind.
        cache.advance(c, 7, Some(&deltas));
        assert!(cache.get(c, 7).is_none());
        assert_eq!(row(&cache.get(c, 5).unwrap(), "a", "residents"), (2, 15));
        // A write that changed no tally still moves the copy on.
        cache.advance(c, 6, None);
        assert_eq!(row(&cache.get(c, 6).unwrap(), "a", "residents"), (2, 15));
    }

    #[test]
    fn an_older_read_never_replaces_a_newer_copy() {
        let cache = TallyCache::default();
        let c = "cycles/2026/campaigns/s";
        cache.put(c, 9, Arc::new(Tallies::default()));
        cache.put(c, 8, Arc::new(Tallies::new(vec![TallyRow::default()])));
        assert!(cache.get(c, 9).unwrap().rows.is_empty());
        cache.put(c, 10, Arc::new(Tallies::new(vec![TallyRow::default()])));
        assert_eq!(cache.get(c, 10).unwrap().rows.len(), 1);
    }

    #[test]
    fn a_reader_keeps_the_copy_it_took() {
        let cache = TallyCache::default();
        let c = "c";
        cache.put(c, 1, Arc::new(Tallies::default()));
        let taken = cache.get(c, 1).unwrap();
        cache.advance(
            c,
            2,
            Some(&Deltas::of(&[response("1", "a", "x", 3)], false)),
        );
        assert!(taken.rows.is_empty());
        assert_eq!(row(&cache.get(c, 2).unwrap(), "a", "x"), (1, 3));
    }
}
