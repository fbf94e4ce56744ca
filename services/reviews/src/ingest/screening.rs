//! What a batch adds to the survey screening's counts (docs/DATA-QUALITY.md):
//! crowded seconds (BURST), respondent keys (REPEATED_RESPONDENT) and
//! out-of-window refusals (OUTSIDE_WINDOW). Straight-lined and late
//! responses are counted with the tallies. Honest batches add few rows
//! here: a second that only one response of its batch answered in, and an
//! unkeyed response, cost none.

use jixiao_runtime::Error;
use sqlx::AnyConnection;

use super::{Outside, sqlite::placeholders, tallies::Deltas};

/// Rows per multi-row statement (at most 5 columns).
const CHUNK: usize = 6000;

/// Adds the batch's crowded seconds and respondent keys (PostgreSQL).
pub async fn counts_pg(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    d: &Deltas,
) -> Result<(), Error> {
    let (mut units, mut channels, mut seconds, mut counts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (unit, channel, second, n) in d.crowded_seconds() {
        units.push(unit);
        channels.push(i64::from(channel));
        seconds.push(second);
        counts.push(n);
    }
    if !units.is_empty() {
        sqlx::query(
            "INSERT INTO survey_seconds (campaign, unit_id, channel, second, responses)
             SELECT $1, * FROM UNNEST($2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
             ON CONFLICT (campaign, unit_id, channel, second)
             DO UPDATE SET responses = survey_seconds.responses + excluded.responses",
        )
        .bind(campaign)
        .bind(&units)
        .bind(&channels)
        .bind(&seconds)
        .bind(&counts)
        .execute(&mut *conn)
        .await?;
    }
    let (mut units, mut keys, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for (unit, key, n) in d.respondents() {
        units.push(unit);
        keys.push(key);
        counts.push(n);
    }
    if !units.is_empty() {
        sqlx::query(
            "INSERT INTO survey_respondents (campaign, unit_id, respondent, responses)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (campaign, unit_id, respondent)
             DO UPDATE SET responses = survey_respondents.responses + excluded.responses",
        )
        .bind(campaign)
        .bind(&units)
        .bind(&keys)
        .bind(&counts)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records out-of-window refusals not recorded before (PostgreSQL); how
/// many were new. A stored response resent with an out-of-window time is
/// refused as well, but is not a response answered out of window: it is
/// not recorded.
pub async fn refusals_pg(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    outside: &[Outside],
) -> Result<u64, Error> {
    if outside.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = outside.iter().map(|o| o.response_id.as_str()).collect();
    let units: Vec<&str> = outside.iter().map(|o| o.unit.as_str()).collect();
    let times: Vec<i64> = outside.iter().map(|o| o.answer_ms).collect();
    let done = sqlx::query(
        "INSERT INTO survey_refusals (campaign, response_id, unit_id, answer_ms)
         SELECT $1, b.* FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS b(id, unit, ms)
         WHERE NOT EXISTS (SELECT 1 FROM responses r WHERE r.campaign = $1 AND r.response_id = b.id)
         ON CONFLICT (campaign, response_id) DO NOTHING",
    )
    .bind(campaign)
    .bind(&ids)
    .bind(&units)
    .bind(&times)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Adds the batch's crowded seconds and respondent keys (SQLite).
pub async fn counts_sqlite(
    conn: &mut AnyConnection,
    campaign: &str,
    d: &Deltas,
) -> Result<(), Error> {
    let seconds: Vec<_> = d.crowded_seconds().collect();
    for chunk in seconds.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO survey_seconds (campaign, unit_id, channel, second, responses) VALUES ",
        );
        placeholders(&mut sql, chunk.len(), 5);
        sql.push_str(
            " ON CONFLICT (campaign, unit_id, channel, second)
              DO UPDATE SET responses = survey_seconds.responses + excluded.responses",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (unit, channel, second, n) in chunk {
            q = q
                .bind(campaign)
                .bind(*unit)
                .bind(i64::from(*channel))
                .bind(*second)
                .bind(*n);
        }
        q.execute(&mut *conn).await?;
    }
    let keys: Vec<_> = d.respondents().collect();
    for chunk in keys.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO survey_respondents (campaign, unit_id, respondent, responses) VALUES ",
        );
        placeholders(&mut sql, chunk.len(), 4);
        sql.push_str(
            " ON CONFLICT (campaign, unit_id, respondent)
              DO UPDATE SET responses = survey_respondents.responses + excluded.responses",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (unit, key, n) in chunk {
            q = q.bind(campaign).bind(*unit).bind(*key).bind(*n);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Records out-of-window refusals not recorded before (SQLite); how many
/// were new.
pub async fn refusals_sqlite(
    conn: &mut AnyConnection,
    campaign: &str,
    outside: &[Outside],
) -> Result<u64, Error> {
    let mut new = 0;
    for chunk in outside.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO survey_refusals (campaign, response_id, unit_id, answer_ms)
             SELECT ?, v.column1, v.column2, v.column3 FROM (VALUES ",
        );
        placeholders(&mut sql, chunk.len(), 3);
        sql.push_str(
            ") AS v WHERE NOT EXISTS (SELECT 1 FROM responses r
                 WHERE r.campaign = ? AND r.response_id = v.column1)
             ON CONFLICT (campaign, response_id) DO NOTHING",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(campaign);
        for o in chunk {
            q = q
                .bind(o.response_id.as_str())
                .bind(o.unit.as_str())
                .bind(o.answer_ms);
        }
        new += q.bind(campaign).execute(&mut *conn).await?.rows_affected();
    }
    Ok(new)
}
