//! The running tallies a batch adds: per unit, by respondent category and
//! by question position.

use rustc_hash::FxHashMap as HashMap;

use super::NewResponse;

/// Tally deltas of stored responses, per unit: by respondent category and
/// by question position.
#[derive(Default)]
pub struct Deltas {
    units: HashMap<String, UnitDeltas>,
}

#[derive(Default)]
struct UnitDeltas {
    /// By category; a scheme has a handful.
    categories: Vec<CategoryDelta>,
    /// (counted, value units) by question position.
    questions: Vec<(i64, i64)>,
    /// (channel, answer second) of every response, for BURST.
    seconds: Vec<(i32, i64)>,
    /// Respondent keys of keyed responses, for REPEATED_RESPONDENT.
    respondents: Vec<String>,
}

/// What one category of a unit adds: responses with a value, their value
/// units, and how many of them the screening marked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategoryDelta {
    pub category: String,
    pub responses: i64,
    pub value_units: i64,
    pub straight: i64,
    pub late: i64,
}

impl CategoryDelta {
    fn add(&mut self, o: &CategoryDelta) {
        self.responses += o.responses;
        self.value_units += o.value_units;
        self.straight += o.straight;
        self.late += o.late;
    }
}

impl UnitDeltas {
    /// The category's delta, made on first sight: the name is copied once
    /// per unit and category, not once per response.
    fn category(&mut self, category: &str) -> &mut CategoryDelta {
        match self.categories.iter().position(|c| c.category == category) {
            Some(i) => &mut self.categories[i],
            None => {
                self.categories.push(CategoryDelta {
                    category: category.to_string(),
                    ..Default::default()
                });
                self.categories.last_mut().expect("just pushed")
            }
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

/// Runs of equal items of a sorted list, with their lengths.
fn runs<T: PartialEq>(sorted: &[T]) -> impl Iterator<Item = (&T, i64)> {
    sorted
        .chunk_by(|a, b| a == b)
        .map(|run| (&run[0], run.len() as i64))
}

impl Deltas {
    /// The deltas of `rows`; `screened`: also what BURST and
    /// REPEATED_RESPONDENT count (the scheme screens surveys).
    pub fn of<'r>(rows: impl IntoIterator<Item = &'r NewResponse>, screened: bool) -> Deltas {
        let mut d = Deltas::default();
        for r in rows {
            d.add(r, screened);
        }
        for u in d.units.values_mut() {
            u.seconds.sort_unstable();
            u.respondents.sort_unstable();
        }
        d
    }

    fn add(&mut self, r: &NewResponse, screened: bool) {
        let u = match self.units.get_mut(r.unit.as_str()) {
            Some(u) => u,
            None => self.units.entry(r.unit.clone()).or_default(),
        };
        if let Some(v) = r.value_units {
            let c = u.category(&r.category);
            c.responses += 1;
            c.value_units += v;
            c.straight += i64::from(r.marks & super::STRAIGHT != 0);
            c.late += i64::from(r.marks & super::LATE != 0);
        }
        for &(q, v) in &r.question_values {
            u.add_question(q as usize, 1, v);
        }
        if screened {
            u.seconds.push((r.channel, r.answer_ms.div_euclid(1000)));
            if !r.respondent.is_empty() {
                u.respondents.push(r.respondent.clone());
            }
        }
    }

    /// Adds another batch's deltas.
    pub fn merge(&mut self, other: Deltas) {
        for (unit, o) in other.units {
            let u = self.units.entry(unit).or_default();
            for c in &o.categories {
                u.category(&c.category).add(c);
            }
            for (q, (n, v)) in o.questions.into_iter().enumerate() {
                u.add_question(q, n, v);
            }
            if !o.seconds.is_empty() {
                u.seconds.extend(o.seconds);
                u.seconds.sort_unstable();
            }
            if !o.respondents.is_empty() {
                u.respondents.extend(o.respondents);
                u.respondents.sort_unstable();
            }
        }
    }

    /// (unit, its category's delta).
    /// Every unit the rows named.
    pub(crate) fn units(&self) -> impl Iterator<Item = &str> {
        self.units.keys().map(String::as_str)
    }

    pub(crate) fn categories(&self) -> impl Iterator<Item = (&str, &CategoryDelta)> {
        self.units
            .iter()
            .flat_map(|(unit, u)| u.categories.iter().map(move |c| (unit.as_str(), c)))
    }

    /// (unit, channel, second, responses) of the seconds in which a unit
    /// got two or more of these responses from one channel: BURST counts
    /// what shares its second within a batch, so that a response alone in
    /// its second costs no row.
    pub(super) fn crowded_seconds(&self) -> impl Iterator<Item = (&str, i32, i64, i64)> {
        self.units.iter().flat_map(|(unit, u)| {
            runs(&u.seconds)
                .filter(|(_, n)| *n > 1)
                .map(move |((channel, second), n)| (unit.as_str(), *channel, *second, n))
        })
    }

    /// (unit, respondent key, responses) of the keyed responses.
    pub(super) fn respondents(&self) -> impl Iterator<Item = (&str, &str, i64)> {
        self.units.iter().flat_map(|(unit, u)| {
            runs(&u.respondents).map(move |(key, n)| (unit.as_str(), key.as_str(), n))
        })
    }

    /// (unit, question id, counted, value units) of questions answered.
    pub(super) fn questions<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::tests::row;

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
                .map(|(u, c)| format!("{u} {} {} {}", c.category, c.responses, c.value_units))
                .collect();
            c.extend(
                d.questions(&questions)
                    .map(|(u, q, n, v)| format!("{u} {q} {n} {v}")),
            );
            c.sort();
            c
        };
        let mut merged = Deltas::of(&rows[..5], true);
        merged.merge(Deltas::of(&rows[5..], true));
        assert_eq!(sorted(&merged), sorted(&Deltas::of(&rows, true)));
        // units/0 holds rows 0, 3, 6, 9: rows 3 and 9 are enterprises,
        // rows 0 and 6 residents of which row 0 counted nothing.
        let all = sorted(&Deltas::of(&rows, true));
        assert!(all.contains(&"units/0 enterprises 2 120".to_string()));
        assert!(all.contains(&"units/0 residents 1 60".to_string()));
        assert!(all.contains(&"units/0 q1 4 18".to_string()));
        assert!(all.contains(&"units/0 q3 4 4".to_string()));
        assert!(
            !all.iter().any(|l| l.contains(" q2 ")),
            "q2 was never answered"
        );
    }
}

#[cfg(test)]
mod screening_tests {
    use super::*;
    use crate::ingest::{LATE, STRAIGHT, tests::row};

    #[test]
    fn marks_seconds_and_keys_are_counted_across_merged_batches() {
        let rows: Vec<NewResponse> = (0..8)
            .map(|i| NewResponse {
                unit: "units/a".into(),
                channel: 1 + (i % 2) as i32,
                // 0.0, 0.5, 1.0, ... seconds.
                answer_ms: i as i64 * 500,
                respondent: if i < 3 { "k1".into() } else { String::new() },
                marks: [STRAIGHT, LATE, STRAIGHT | LATE, 0][i % 4],
                ..row(&format!("r{i}"), i as i64)
            })
            .collect();
        let mut d = Deltas::of(&rows[..3], true);
        d.merge(Deltas::of(&rows[3..], true));
        let c = d.categories().next().expect("one category").1.clone();
        assert_eq!((c.responses, c.straight, c.late), (8, 4, 4));
        // Channel 1 answered at 0, 1, 2, 3 s and channel 2 at 0.5, 1.5, 2.5,
        // 3.5 s: one per second each, so nothing is crowded.
        assert_eq!(d.crowded_seconds().count(), 0);
        let same_second: Vec<NewResponse> = rows
            .iter()
            .map(|r| NewResponse {
                answer_ms: 10_000,
                ..r.clone()
            })
            .collect();
        let mut crowded: Vec<_> = Deltas::of(&same_second, true)
            .crowded_seconds()
            .map(|(u, c, s, n)| (u.to_string(), c, s, n))
            .collect();
        crowded.sort();
        assert_eq!(
            crowded,
            [
                ("units/a".to_string(), 1, 10, 4),
                ("units/a".to_string(), 2, 10, 4)
            ]
        );
        assert_eq!(d.respondents().collect::<Vec<_>>(), [("units/a", "k1", 3)]);
        // Screening off: neither seconds nor keys are kept.
        let off = Deltas::of(&same_second, false);
        assert_eq!(off.crowded_seconds().count() + off.respondents().count(), 0);
    }
}
