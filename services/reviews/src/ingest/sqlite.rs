//! The SQLite side of the ingest: multi-row `INSERT`s with anonymous
//! parameters on the one writer connection.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use jixiao_runtime::{Error, Principal, audit, changes::Changes};
use sqlx::{AnyConnection, Row};

use super::{
    Added, Batch, NewResponse, Outcome, Stored, is_unique_violation, outcomes, sample, screening,
    split_resent, stored_whole, summary,
};

/// Rows per multi-row statement (at most 8 columns each, under SQLite's
/// 32,766 parameters).
const CHUNK: usize = 4000;
/// Responses per multi-row insert (9 columns each).
const RESPONSE_CHUNK: usize = 3600;
/// Responses per look-up statement (2 parameters each).
const LOOKUP_CHUNK: usize = 16_000;

macro_rules! upsert_tallies {
    ($conn:ident, $campaign:expr, $deltas:expr, $questions:expr) => {{
        let cats: Vec<_> = $deltas.categories().collect();
        for chunk in cats.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO survey_tallies (campaign, unit_id, category, responses, value_units, straight, late) VALUES ");
            placeholders(&mut sql, chunk.len(), 7);
            sql.push_str(
                " ON CONFLICT (campaign, unit_id, category) DO UPDATE SET responses = survey_tallies.responses + excluded.responses,
                  value_units = survey_tallies.value_units + excluded.value_units,
                  straight = survey_tallies.straight + excluded.straight, late = survey_tallies.late + excluded.late",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (unit, c) in chunk {
                q = q
                    .bind($campaign)
                    .bind(*unit)
                    .bind(c.category.as_str())
                    .bind(c.responses)
                    .bind(c.value_units)
                    .bind(c.straight)
                    .bind(c.late);
            }
            q.execute(&mut *$conn).await?;
        }
        let qs: Vec<_> = $deltas.questions($questions).collect();
        for chunk in qs.chunks(CHUNK) {
            let mut sql = String::from("INSERT INTO question_tallies (campaign, unit_id, question, counted, value_units) VALUES ");
            placeholders(&mut sql, chunk.len(), 5);
            sql.push_str(
                " ON CONFLICT (campaign, unit_id, question) DO UPDATE SET counted = question_tallies.counted + excluded.counted,
                  value_units = question_tallies.value_units + excluded.value_units",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (unit, question, n, v) in chunk {
                q = q.bind($campaign).bind(*unit).bind(*question).bind(*n).bind(*v);
            }
            q.execute(&mut *$conn).await?;
        }
    }};
}

/// Appends `rows` groups of `cols` anonymous parameters. SQLite gets `?`
/// rather than `$n`: sqlx resolves numbered parameters by name, which costs
/// more the more parameters a statement has (quadratic in a 4,000-row
/// insert).
pub(super) fn placeholders(sql: &mut String, rows: usize, cols: usize) {
    let group = format!("({})", vec!["?"; cols].join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
}

/// Digests already stored for some responses of a campaign (SQLite:
/// anonymous parameters, see `placeholders`). Rows cross from SQLite's
/// thread one at a time, so only those that are not plain resends (new
/// ids, and stored ids with another digest) come back: a resent batch
/// brings back none.
async fn stored_digests<'r>(
    conn: &mut AnyConnection,
    campaign: &str,
    rows: &[&'r NewResponse],
) -> Result<HashMap<&'r str, i64>, sqlx::Error> {
    let mut out = HashMap::default();
    for chunk in rows.chunks(LOOKUP_CHUNK) {
        let mut sql = String::from("SELECT v.column1 AS response_id, r.digest FROM (VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        }
        sql.push_str(
            ") AS v LEFT JOIN responses r ON r.campaign = ? AND r.response_id = v.column1 \
             WHERE r.digest IS NOT v.column2",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q.bind(r.response_id.as_str()).bind(r.digest);
        }
        let mut unsettled: HashMap<String, Option<i64>> = HashMap::default();
        for row in q.bind(campaign).fetch_all(&mut *conn).await? {
            unsettled.insert(row.try_get("response_id")?, row.try_get("digest")?);
        }
        for r in chunk {
            match unsettled.get(r.response_id.as_str()) {
                None => drop(out.insert(r.response_id.as_str(), r.digest)),
                Some(Some(stored)) => drop(out.insert(r.response_id.as_str(), *stored)),
                Some(None) => {}
            }
        }
    }
    Ok(out)
}

/// Stores a batch on SQLite, through the portable pool's one writer. As on
/// PostgreSQL, parts recorded as stored whole are duplicates (see the
/// module's header), and a batch none of whose sampled ids is stored is inserted at
/// once under a savepoint; only a resend, or an insert that meets a stored
/// id, looks every id up and inserts the rest. With one writer nothing can
/// slip in between that look-up and the insert.
pub async fn store_sqlite(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<Stored, Error> {
    use sqlx::Executor;
    let known = known_parts(conn, batch).await?;
    let (mut existing, unique) = split_resent(batch, &known);
    let sample: Vec<&NewResponse> = sample(&unique).collect();
    let optimistic = unique.is_empty()
        || (stored_digests(conn, batch.campaign, &sample)
            .await?
            .is_empty()
            && first_try!(conn, insert_rows(conn, batch.campaign, &unique)));
    let fresh = if optimistic {
        unique
    } else {
        let stored = stored_digests(conn, batch.campaign, &unique).await?;
        let fresh: Vec<&NewResponse> = unique
            .into_iter()
            .filter(|r| !stored.contains_key(r.response_id.as_str()))
            .collect();
        insert_rows(conn, batch.campaign, &fresh).await?;
        existing.extend(stored);
        fresh
    };
    let inserted: HashSet<&str> = fresh.iter().map(|r| r.response_id.as_str()).collect();
    finish_sqlite(conn, principal, batch, &inserted, &existing, &known).await
}

/// The fingerprints of the batch's parts recorded as stored whole.
async fn known_parts(
    conn: &mut AnyConnection,
    batch: &Batch<'_>,
) -> Result<HashSet<String>, sqlx::Error> {
    let mut known = HashSet::default();
    for chunk in batch.parts.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT fingerprint FROM stored_batches WHERE campaign = ? AND fingerprint IN (",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
        sql.push(')');
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(batch.campaign);
        for part in chunk {
            q = q.bind(part.fingerprint.as_str());
        }
        known.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(known)
}

/// Records the parts now stored whole.
async fn record_parts(
    conn: &mut AnyConnection,
    batch: &Batch<'_>,
    known: &HashSet<String>,
    outcomes: &[Outcome],
) -> Result<(), sqlx::Error> {
    let whole = stored_whole(batch, known, outcomes);
    for chunk in whole.chunks(CHUNK) {
        let mut sql =
            String::from("INSERT INTO stored_batches (campaign, fingerprint, responses) VALUES ");
        placeholders(&mut sql, chunk.len(), 3);
        sql.push_str(" ON CONFLICT (campaign, fingerprint) DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (print, n) in chunk {
            q = q.bind(batch.campaign).bind(*print).bind(*n);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts rows with multi-row statements (SQLite). Each statement is
/// bound while the writer thread runs the one before: binding thousands of
/// parameters takes a fifth of the writer's time, which the one writer
/// would otherwise spend waiting.
async fn insert_rows(
    conn: &mut AnyConnection,
    campaign: &str,
    rows: &[&NewResponse],
) -> Result<(), sqlx::Error> {
    let mut chunks = rows.chunks(RESPONSE_CHUNK);
    let mut next = chunks.next().map(|c| insert_statement(campaign, c));
    while let Some(statement) = next.take() {
        let (done, following) = tokio::join!(statement.execute(&mut *conn), async {
            chunks.next().map(|c| insert_statement(campaign, c))
        });
        done?;
        next = following;
    }
    Ok(())
}

/// One multi-row insert of `rows`.
fn insert_statement<'q>(
    campaign: &'q str,
    rows: &[&'q NewResponse],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut sql = String::from(
        "INSERT INTO responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest, respondent) VALUES ",
    );
    placeholders(&mut sql, rows.len(), 9);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows {
        q = q
            .bind(campaign)
            .bind(r.response_id.as_str())
            .bind(r.unit.as_str())
            .bind(r.category.as_str())
            .bind(i64::from(r.channel))
            .bind(r.answer_ms)
            .bind(r.answers.as_str())
            .bind(r.digest)
            .bind(r.respondent.as_str());
    }
    q
}

async fn finish_sqlite(
    conn: &mut AnyConnection,
    principal: &Principal,
    batch: &Batch<'_>,
    inserted: &HashSet<&str>,
    existing: &HashMap<&str, i64>,
    known: &HashSet<String>,
) -> Result<Stored, Error> {
    let (outcomes, own) = outcomes(batch, inserted, existing);
    record_parts(conn, batch, known, &outcomes).await?;
    let deltas = own.as_ref().unwrap_or(batch.deltas);
    if !inserted.is_empty() {
        upsert_tallies!(conn, batch.campaign, deltas, batch.questions);
        screening::counts_sqlite(conn, batch.campaign, deltas).await?;
    }
    let added = match own {
        _ if inserted.is_empty() => Added::Nothing,
        None => Added::All,
        Some(own) => Added::Only(own),
    };
    let refused = screening::refusals_sqlite(conn, batch.campaign, batch.outside).await?;
    let change = if inserted.is_empty() && refused == 0 {
        None
    } else {
        Some(Changes::bump(conn, batch.cycle, batch.group).await?)
    };
    let resource = format!(
        "cycles/{}/campaigns/{}",
        batch.cycle,
        batch.campaign.rsplit('/').next().unwrap_or_default()
    );
    audit::append(
        conn,
        principal,
        audit::Entry {
            action: "responses.push",
            resource: &resource,
            reason: "",
            detail: summary(&outcomes),
        },
    )
    .await?;
    Ok(Stored {
        outcomes,
        change,
        added,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_column() {
        let mut s = String::new();
        placeholders(&mut s, 2, 2);
        assert_eq!(s, "(?, ?), (?, ?)");
    }
}
