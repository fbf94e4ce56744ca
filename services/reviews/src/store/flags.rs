//! The survey screening's stored figures (docs/DATA-QUALITY.md): crowded
//! seconds, repeated respondent keys, out-of-window refusals, exclusions
//! and the latest resolution of each flag. Straight-lined and late counts
//! live in the tallies (`super::survey_tallies`).

use jixiao_runtime::{Dialect, Error};
use sqlx::{AnyConnection, Row};

/// What the rules read besides the tallies, for a campaign.
#[derive(Debug, Default)]
pub struct Extras {
    /// (unit, channel, second, responses) of seconds with at least the
    /// burst size.
    pub seconds: Vec<(String, i64, i64, i64)>,
    /// (unit, respondent key, responses) of keys with more than one.
    pub respondents: Vec<(String, String, i64)>,
    /// (unit, refused, earliest, latest answer time in ms).
    pub refusals: Vec<(String, i64, i64, i64)>,
    /// (unit, kind, responses excluded).
    pub excluded: Vec<(String, String, i64)>,
    pub resolutions: Vec<Resolution>,
}

/// The latest resolution of a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub unit: String,
    pub kind: String,
    /// A `QualityFlagState`.
    pub state: i32,
    /// The flagged responses it covered.
    pub covered: i64,
    pub reason: String,
    pub resolved_by: String,
    pub resolve_ms: i64,
}

/// Reads the campaign's extras in one round trip (the scores of a group
/// read them on every refresh, under ingest); `burst_size`: the least
/// responses of a second that are a burst.
pub async fn extras(
    conn: &mut AnyConnection,
    campaign: &str,
    burst_size: i64,
) -> Result<Extras, Error> {
    let rows = sqlx::query(
        "SELECT 's' AS tag, unit_id, '' AS name, channel AS a, second AS b, responses AS c,
                '' AS t1, '' AS t2
           FROM survey_seconds WHERE campaign = $1 AND responses >= $2
         UNION ALL
         SELECT 'r', unit_id, respondent, responses, CAST(0 AS BIGINT), CAST(0 AS BIGINT), '', ''
           FROM survey_respondents WHERE campaign = $1 AND responses > 1
         UNION ALL
         SELECT 'o', unit_id, '', count(*), min(answer_ms), max(answer_ms), '', ''
           FROM survey_refusals WHERE campaign = $1 GROUP BY unit_id
         UNION ALL
         SELECT 'x', unit_id, kind, count(*), CAST(0 AS BIGINT), CAST(0 AS BIGINT), '', ''
           FROM survey_exclusions WHERE campaign = $1 GROUP BY unit_id, kind
         UNION ALL
         SELECT 'z', unit_id, kind, state, covered, resolve_ms, reason, resolved_by
           FROM survey_flag_resolutions WHERE campaign = $1",
    )
    .bind(campaign)
    .bind(burst_size)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Extras::default();
    for r in rows {
        let tag: String = r.try_get("tag")?;
        let unit: String = r.try_get("unit_id")?;
        let name: String = r.try_get("name")?;
        let (a, b, c): (i64, i64, i64) = (r.try_get("a")?, r.try_get("b")?, r.try_get("c")?);
        match tag.as_str() {
            "s" => out.seconds.push((unit, a, b, c)),
            "r" => out.respondents.push((unit, name, a)),
            "o" => out.refusals.push((unit, a, b, c)),
            "x" => out.excluded.push((unit, name, a)),
            _ => out.resolutions.push(Resolution {
                unit,
                kind: name,
                state: a as i32,
                covered: b,
                resolve_ms: c,
                reason: r.try_get("t1")?,
                resolved_by: r.try_get("t2")?,
            }),
        }
    }
    Ok(out)
}

/// Serialises an exclusion with the campaign's pushes on PostgreSQL (the
/// ingest takes the same lock); SQLite's one writer already does.
pub async fn lock_campaign(
    conn: &mut AnyConnection,
    dialect: Dialect,
    campaign: &str,
) -> Result<(), Error> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(campaign)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A stored response of a unit that no exclusion has taken out.
#[derive(Debug, Clone)]
pub struct Stored {
    pub response_id: String,
    pub category: String,
    pub channel: i64,
    pub answer_ms: i64,
    pub answers: String,
    pub respondent: String,
}

/// The unit's responses not excluded yet. The responses table has no
/// index by unit (it would cost the ingest a third of its speed), so this
/// scans the campaign: an office action, not a hot path.
pub async fn unit_responses(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
) -> Result<Vec<Stored>, Error> {
    let rows = sqlx::query(
        "SELECT r.response_id, r.category, r.channel, r.answer_ms, r.answers, r.respondent
         FROM responses r
         WHERE r.campaign = $1 AND r.unit_id = $2
           AND NOT EXISTS (SELECT 1 FROM survey_exclusions x
                           WHERE x.campaign = r.campaign AND x.response_id = r.response_id)",
    )
    .bind(campaign)
    .bind(unit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Stored {
                response_id: r.try_get("response_id")?,
                category: r.try_get("category")?,
                channel: r.try_get("channel")?,
                answer_ms: r.try_get("answer_ms")?,
                answers: r.try_get("answers")?,
                respondent: r.try_get("respondent")?,
            })
        })
        .collect()
}

/// Records responses as excluded by a flag of `kind`.
pub async fn exclude(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
    kind: &str,
    ids: &[&str],
) -> Result<(), Error> {
    for id in ids {
        sqlx::query(
            "INSERT INTO survey_exclusions (campaign, response_id, unit_id, kind) VALUES ($1, $2, $3, $4)",
        )
        .bind(campaign)
        .bind(*id)
        .bind(unit)
        .bind(kind)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Takes excluded responses out of a category's tally: `n` responses
/// whose values sum to `value_units`.
pub async fn subtract_category(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
    category: &str,
    n: i64,
    value_units: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE survey_tallies SET responses = responses - $4, value_units = value_units - $5,
            excluded = excluded + $4
         WHERE campaign = $1 AND unit_id = $2 AND category = $3",
    )
    .bind(campaign)
    .bind(unit)
    .bind(category)
    .bind(n)
    .bind(value_units)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Takes excluded answers out of a question's tally.
pub async fn subtract_question(
    conn: &mut AnyConnection,
    campaign: &str,
    unit: &str,
    question: &str,
    n: i64,
    value_units: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE question_tallies SET counted = counted - $4, value_units = value_units - $5
         WHERE campaign = $1 AND unit_id = $2 AND question = $3",
    )
    .bind(campaign)
    .bind(unit)
    .bind(question)
    .bind(n)
    .bind(value_units)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a flag's resolution in place of the one before.
pub async fn put_resolution(
    conn: &mut AnyConnection,
    campaign: &str,
    r: &Resolution,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO survey_flag_resolutions
            (campaign, unit_id, kind, state, covered, reason, resolved_by, resolve_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (campaign, unit_id, kind) DO UPDATE SET state = excluded.state,
            covered = excluded.covered, reason = excluded.reason,
            resolved_by = excluded.resolved_by, resolve_ms = excluded.resolve_ms",
    )
    .bind(campaign)
    .bind(&r.unit)
    .bind(&r.kind)
    .bind(i64::from(r.state))
    .bind(r.covered)
    .bind(&r.reason)
    .bind(&r.resolved_by)
    .bind(r.resolve_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
