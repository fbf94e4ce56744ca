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
    pub(super) fn categories(&self) -> impl Iterator<Item = (&str, &str, i64, i64)> {
        self.units.iter().flat_map(|(unit, u)| {
            u.categories
                .iter()
                .map(move |(c, n, v)| (unit.as_str(), c.as_str(), *n, *v))
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
}
