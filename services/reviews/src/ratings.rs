//! Mutual review (DOMAIN.md §6): each unit rates the other units on the
//! scheme's grade scale or a 0–100 score; rating oneself is refused; the
//! latest rating before the close counts.

use jixiao_proto::{
    plans::{MutualScale, Scheme},
    reviews::{
        ListMutualRatingsRequest, ListMutualRatingsResponse, MutualRating,
        SubmitMutualRatingRequest,
    },
};
use jixiao_runtime::{
    Error, Principal, Role, Violations,
    decimal::{self, to_proto},
    idempotency, names,
    paging::Page,
    time::{now_ms, timestamp},
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    api::{ReviewsApi, weighted},
    scoring,
    store::{self, Rating},
};

impl ReviewsApi {
    pub(crate) async fn submit_rating(
        &self,
        p: Principal,
        req: SubmitMutualRatingRequest,
    ) -> Result<MutualRating, Error> {
        let digest = idempotency::request_digest("SubmitMutualRating", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let r = req.rating.clone().unwrap_or_default();
        let rater = names::unit_id(&r.rater, "rating.rater")?.to_string();
        if !p.acts_for(Role::Unit, &rater) {
            return Err(Error::denied(format!(
                "{} may only rate as its own unit",
                p.subject
            )));
        }
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "SubmitMutualRating",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "SubmitMutualRating", &cycle).await?;
        let mut v = Violations::new();
        v.check(
            r.ratee != r.rater,
            "rating.ratee",
            "a unit cannot rate itself",
        );
        // Point look-ups: scanning every group's members made each rating
        // cost the size of the cycle.
        let ratee_group = self.plans.group_of_unit(&cycle, &r.ratee).await?;
        v.check(
            self.plans.group_of_unit(&cycle, &r.rater).await?.is_some(),
            "rating.rater",
            format!("{} is not assessed in cycles/{cycle}", r.rater),
        );
        let Some(ratee_group) = ratee_group else {
            v.add(
                "rating.ratee",
                format!("{:?} is not assessed in cycles/{cycle}", r.ratee),
            );
            return Err(v.into_result().unwrap_err());
        };
        let scheme: Scheme = self.plans.scheme(&ratee_group).await?;
        let value = if scheme.mutual_scale == MutualScale::Numeric as i32 {
            match decimal::figure(&r.score) {
                Ok(s) if s >= Decimal::ZERO && s <= Decimal::ONE_HUNDRED => {
                    Some(s / Decimal::ONE_HUNDRED)
                }
                Ok(_) => {
                    v.add("rating.score", "must lie between 0 and 100");
                    None
                }
                Err(e) => {
                    v.add("rating.score", e);
                    None
                }
            }
        } else {
            let grades = weighted(&scheme.grade_values);
            let found = grades.iter().find(|(k, _)| *k == r.grade).map(|(_, v)| *v);
            v.check(
                found.is_some(),
                "rating.grade",
                format!(
                    "must be one of {}",
                    grades
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            found
        };
        v.into_result()?;
        let value = value.unwrap_or_default();
        let score = decimal::optional_figure(&r.score)
            .ok()
            .flatten()
            .map(decimal::canonical)
            .unwrap_or_default();
        let gid = ratee_group.rsplit('/').next().unwrap_or_default();
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let now = now_ms();
            store::put_rating(
                w.conn,
                &Rating {
                    cycle: &cycle,
                    rater: &r.rater,
                    ratee: &r.ratee,
                    grade: &r.grade,
                    score: &score,
                    value_units: scoring::to_units(value),
                    rate_ms: now,
                },
            )
            .await?;
            w.changed(&cycle, gid);
            let stored = MutualRating {
                name: format!(
                    "cycles/{cycle}/mutualRatings/{rater}~{}",
                    r.ratee.trim_start_matches("units/")
                ),
                rater: r.rater.clone(),
                ratee: r.ratee.clone(),
                grade: r.grade.clone(),
                score: decimal::optional_figure(&r.score)
                    .ok()
                    .flatten()
                    .map(to_proto),
                rate_time: Some(timestamp(now)),
            };
            w.audit(
                "mutual_ratings.submit",
                &stored.name,
                "",
                json!({"grade": r.grade, "score": score}),
            );
            Ok(stored)
        })
        .await
    }

    pub(crate) async fn list_ratings(
        &self,
        p: Principal,
        req: ListMutualRatingsRequest,
    ) -> Result<ListMutualRatingsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let rater = names::unit_id(&req.rater, "rater")?.to_string();
        if !(p.has_any(&[Role::Office, Role::Evaluator]) || p.acts_for(Role::Unit, &rater)) {
            return Err(Error::denied(format!(
                "{} may not read the ratings given by {}",
                p.subject, req.rater
            )));
        }
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let mut ratings = store::ratings_by(&self.db.read, &cycle, &req.rater, &pg)
            .await?
            .into_iter()
            .map(|(ratee, grade, score, rate_ms)| {
                Ok(MutualRating {
                    name: format!(
                        "cycles/{cycle}/mutualRatings/{rater}~{}",
                        ratee.trim_start_matches("units/")
                    ),
                    rater: req.rater.clone(),
                    ratee,
                    grade,
                    score: if score.is_empty() {
                        None
                    } else {
                        Some(to_proto(decimal::from_db(&score)?))
                    },
                    rate_time: Some(timestamp(rate_ms)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let next_page_token = pg.next_token(&mut ratings);
        Ok(ListMutualRatingsResponse {
            ratings,
            next_page_token,
        })
    }
}
