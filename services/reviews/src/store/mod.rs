//! The SQL of the reviews service other than the response ingest (which
//! lives in `ingest`, tuned per database): campaigns, unit results, votes,
//! mutual ratings, sample acceptances and the figures scores are made of.
//! Values are integers in units of 10^-10 (`scoring::to_units`).

use jixiao_proto::reviews::Campaign;
use jixiao_runtime::{Error, paging::Page};
use prost::Message;
use sqlx::{AnyConnection, AnyPool};

pub mod flags;

// ---------------------------------------------------------------- campaigns

/// A campaign by its ids; NOT_FOUND when there is none.
pub async fn campaign(pool: &AnyPool, cycle: &str, id: &str) -> Result<Campaign, Error> {
    let body: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM campaigns WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .ok_or_else(|| Error::not_found(format!("cycles/{cycle}/campaigns/{id}")))?;
    Campaign::decode(body.as_slice()).map_err(Error::internal)
}

/// The campaigns of a group: (id, mode).
pub async fn group_campaigns(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<Vec<(String, i64)>, Error> {
    Ok(
        sqlx::query_as("SELECT id, mode FROM campaigns WHERE cycle_id = $1 AND group_id = $2")
            .bind(cycle)
            .bind(group)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Stores a new campaign with the platforms bound to it.
pub async fn insert_campaign(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    group: &str,
    c: &Campaign,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO campaigns (cycle_id, id, group_id, body, mode) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(cycle)
    .bind(id)
    .bind(group)
    .bind(c.encode_to_vec())
    .bind(i64::from(c.mode))
    .execute(&mut *conn)
    .await?;
    for platform in &c.platforms {
        sqlx::query(
            "INSERT INTO campaign_platforms (cycle_id, campaign_id, platform) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(cycle)
        .bind(id)
        .bind(platform)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A page of a cycle's campaigns: all of them, or those bound to
/// `platform`.
pub async fn campaigns(
    pool: &AnyPool,
    cycle: &str,
    platform: Option<&str>,
    page: &Page,
) -> Result<Vec<Campaign>, Error> {
    let bodies: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT c.body FROM campaigns c WHERE c.cycle_id = $1 AND ($2 = 1 OR EXISTS (SELECT 1 FROM campaign_platforms p
         WHERE p.cycle_id = c.cycle_id AND p.campaign_id = c.id AND p.platform = $3)) ORDER BY c.id LIMIT $4 OFFSET $5",
    )
    .bind(cycle)
    .bind(i64::from(platform.is_none()))
    .bind(platform.unwrap_or_default())
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    bodies
        .iter()
        .map(|b| Campaign::decode(b.as_slice()).map_err(Error::internal))
        .collect()
}

/// Records the office's acceptance of a unit's small sample.
pub async fn accept_sample(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
    reason: &str,
    by: &str,
    at_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sample_acceptances (campaign, unit_id, reason, accepted_by, accept_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (campaign, unit_id) DO UPDATE SET reason = excluded.reason, accepted_by = excluded.accepted_by, accept_ms = excluded.accept_ms",
    )
    .bind(campaign)
    .bind(unit)
    .bind(reason)
    .bind(by)
    .bind(at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- unit results and votes

/// A unit's index and sample size from a survey firm; a later push
/// replaces it.
pub async fn put_unit_result(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
    index_units: i64,
    sample: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO unit_results (campaign, unit_id, index_units, sample_size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (campaign, unit_id) DO UPDATE SET index_units = excluded.index_units, sample_size = excluded.sample_size",
    )
    .bind(campaign)
    .bind(unit)
    .bind(index_units)
    .bind(sample)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A vote as pushed.
pub struct Vote<'a> {
    pub campaign: &'a str,
    pub id: &'a str,
    pub voter: &'a str,
    pub unit: &'a str,
    pub answer: &'a str,
    pub cast_ms: i64,
}

/// Stores a vote; false when its id was stored before.
pub async fn insert_vote(conn: &mut AnyConnection, v: &Vote<'_>) -> Result<bool, Error> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO votes (campaign, vote_id, voter, unit_id, answer, cast_ms) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (campaign, vote_id) DO NOTHING RETURNING vote_id",
    )
    .bind(v.campaign)
    .bind(v.id)
    .bind(v.voter)
    .bind(v.unit)
    .bind(v.answer)
    .bind(v.cast_ms)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(inserted.is_some())
}

/// Whether the vote stored under `v.id` says what `v` says.
pub async fn same_vote(conn: &mut AnyConnection, v: &Vote<'_>) -> Result<bool, Error> {
    let (voter, unit, answer, cast_ms): (String, String, String, i64) = sqlx::query_as(
        "SELECT voter, unit_id, answer, cast_ms FROM votes WHERE campaign = $1 AND vote_id = $2",
    )
    .bind(v.campaign)
    .bind(v.id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(voter == v.voter && unit == v.unit && answer == v.answer && cast_ms == v.cast_ms)
}

/// The vote that counts for a voter and unit: (vote id, cast ms, counted,
/// value units).
pub async fn latest_vote(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
    voter: &str,
) -> Result<Option<(String, i64, i64, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT vote_id, cast_ms, counted, value_units FROM latest_votes WHERE campaign = $1 AND unit_id = $2 AND voter = $3",
    )
    .bind(campaign)
    .bind(unit)
    .bind(voter)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Makes `v` the vote that counts for its voter and unit, and moves the
/// unit's tally by the difference to the one it replaces.
pub async fn count_vote(
    conn: &mut AnyConnection,
    v: &Vote<'_>,
    counted: i64,
    value_units: i64,
    replaced: (i64, i64),
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO latest_votes (campaign, unit_id, voter, vote_id, cast_ms, counted, value_units) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (campaign, unit_id, voter) DO UPDATE SET vote_id = excluded.vote_id, cast_ms = excluded.cast_ms,
         counted = excluded.counted, value_units = excluded.value_units",
    )
    .bind(v.campaign)
    .bind(v.unit)
    .bind(v.voter)
    .bind(v.id)
    .bind(v.cast_ms)
    .bind(counted)
    .bind(value_units)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO vote_tallies (campaign, unit_id, counted, value_units) VALUES ($1, $2, $3, $4)
         ON CONFLICT (campaign, unit_id) DO UPDATE SET counted = vote_tallies.counted + excluded.counted,
         value_units = vote_tallies.value_units + excluded.value_units",
    )
    .bind(v.campaign)
    .bind(v.unit)
    .bind(counted - replaced.0)
    .bind(value_units - replaced.1)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- mutual ratings

/// A unit's rating of another; the latest replaces earlier ones.
pub struct Rating<'a> {
    pub cycle: &'a str,
    pub rater: &'a str,
    pub ratee: &'a str,
    pub grade: &'a str,
    /// Canonical decimal text, empty on a grade scale.
    pub score: &'a str,
    pub value_units: i64,
    pub rate_ms: i64,
}

pub async fn put_rating(conn: &mut AnyConnection, r: &Rating<'_>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO mutual_ratings (cycle_id, rater, ratee, grade, score, value_units, rate_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (cycle_id, rater, ratee) DO UPDATE SET grade = excluded.grade, score = excluded.score,
         value_units = excluded.value_units, rate_ms = excluded.rate_ms",
    )
    .bind(r.cycle)
    .bind(r.rater)
    .bind(r.ratee)
    .bind(r.grade)
    .bind(r.score)
    .bind(r.value_units)
    .bind(r.rate_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A page of the ratings a unit gave: (ratee, grade, score, rate ms).
pub async fn ratings_by(
    pool: &AnyPool,
    cycle: &str,
    rater: &str,
    page: &Page,
) -> Result<Vec<(String, String, String, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT ratee, grade, score, rate_ms FROM mutual_ratings WHERE cycle_id = $1 AND rater = $2
         ORDER BY ratee LIMIT $3 OFFSET $4",
    )
    .bind(cycle)
    .bind(rater)
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(pool)
    .await?)
}

// ---------------------------------------------------------------- figures

// A group's figures are read as one joined string rather than a row per
// figure: sqlx's SQLite driver hands rows from its worker thread to the
// caller 50 at a time, and while the service ingests each hand-over waits
// for a time slice on a busy core, so reading the 12,000 tallies of a
// 3,000-unit group took up to a second (`slow statement` in the log), most
// of a refresh's time. Joined, a read is one hand-over on either database.
// Ids and category codes are validated names, free of the two separators.
const FIELD: char = '\u{1f}';
const ROW: char = '\u{1e}';

/// The rows of a joined read (see [`FIELD`]), `N` fields each.
fn split_rows<const N: usize>(joined: &Option<String>) -> Result<Vec<[&str; N]>, Error> {
    let Some(joined) = joined else {
        return Ok(Vec::new());
    };
    joined
        .split(ROW)
        .map(|row| {
            let mut fields = row.split(FIELD);
            let out = std::array::from_fn(|_| fields.next().unwrap_or_default());
            if fields.next().is_some() || out.iter().any(|f| f.is_empty()) {
                return Err(Error::internal(std::io::Error::other(format!(
                    "a joined figure row is malformed: {row:?}"
                ))));
            }
            Ok(out)
        })
        .collect()
}

fn int(field: &str) -> Result<i64, Error> {
    field.parse().map_err(Error::internal)
}

/// One unit's tally of one respondent category (survey_tallies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TallyRow {
    pub unit: String,
    pub category: String,
    /// Counted responses with a value, and the sum of their values.
    pub responses: i64,
    pub value_units: i64,
    /// Of the responses received with a value (counted or excluded), the
    /// straight-lined and the late ones.
    pub straight: i64,
    pub late: i64,
    /// Responses with a value taken out by an exclusion.
    pub excluded: i64,
}

/// The tallies of a raw-responses campaign.
pub async fn survey_tallies<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    campaign: &str,
) -> Result<Vec<TallyRow>, Error> {
    let joined: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT string_agg(unit_id || '{FIELD}' || category || '{FIELD}' || responses || '{FIELD}' || value_units
            || '{FIELD}' || straight || '{FIELD}' || late || '{FIELD}' || excluded, '{ROW}')
         FROM survey_tallies WHERE campaign = $1"
    )))
    .bind(campaign)
    .fetch_one(db)
    .await?;
    split_rows::<7>(&joined)?
        .into_iter()
        .map(|[u, c, r, v, s, l, x]| {
            Ok(TallyRow {
                unit: u.to_string(),
                category: c.to_string(),
                responses: int(r)?,
                value_units: int(v)?,
                straight: int(s)?,
                late: int(l)?,
                excluded: int(x)?,
            })
        })
        .collect()
}

/// (unit, index units, sample size) of a unit-results campaign.
pub async fn unit_results(
    pool: &AnyPool,
    campaign: &str,
) -> Result<Vec<(String, i64, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT unit_id, index_units, sample_size FROM unit_results WHERE campaign = $1",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await?)
}

/// Units whose small sample the office accepted.
pub async fn accepted_samples(pool: &AnyPool, campaign: &str) -> Result<Vec<String>, Error> {
    Ok(
        sqlx::query_scalar("SELECT unit_id FROM sample_acceptances WHERE campaign = $1")
            .bind(campaign)
            .fetch_all(pool)
            .await?,
    )
}

/// (unit, counted votes, value units) of a votes campaign.
pub async fn vote_tallies(
    pool: &AnyPool,
    campaign: &str,
) -> Result<Vec<(String, i64, i64)>, Error> {
    let joined: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT string_agg(unit_id || '{FIELD}' || counted || '{FIELD}' || value_units, '{ROW}')
         FROM vote_tallies WHERE campaign = $1"
    )))
    .bind(campaign)
    .fetch_one(pool)
    .await?;
    split_rows::<3>(&joined)?
        .into_iter()
        .map(|[u, n, v]| Ok((u.to_string(), int(n)?, int(v)?)))
        .collect()
}

/// (ratee, value units) of every rating of a cycle.
pub async fn rating_values(pool: &AnyPool, cycle: &str) -> Result<Vec<(String, i64)>, Error> {
    let joined: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT string_agg(ratee || '{FIELD}' || value_units, '{ROW}')
         FROM mutual_ratings WHERE cycle_id = $1"
    )))
    .bind(cycle)
    .fetch_one(pool)
    .await?;
    split_rows::<2>(&joined)?
        .into_iter()
        .map(|[r, v]| Ok((r.to_string(), int(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_rows_split_back_into_their_fields() {
        let joined = Some(format!(
            "units/a{FIELD}residents{FIELD}3{FIELD}-7{ROW}units/b{FIELD}deputies{FIELD}1{FIELD}0"
        ));
        let rows = split_rows::<4>(&joined).unwrap();
        assert_eq!(
            rows,
            vec![
                ["units/a", "residents", "3", "-7"],
                ["units/b", "deputies", "1", "0"]
            ]
        );
        assert!(split_rows::<4>(&None).unwrap().is_empty());
        // A row with a field missing or one too many is refused, not guessed.
        for bad in [
            format!("units/a{FIELD}3"),
            format!("units/a{FIELD}3{FIELD}4{FIELD}5"),
        ] {
            assert!(split_rows::<3>(&Some(bad)).is_err());
        }
    }
}
