//! The PostgreSQL side of the ingest: `COPY` under a per-campaign advisory
//! lock, array-valued tally upserts.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use jixiao_runtime::{Error, Principal, audit, changes::Changes};
use sqlx::Row;

use super::{
    Added, Batch, NewResponse, Outcome, Stored, is_unique_violation, outcomes, sample, screening,
    split_resent, stored_whole, summary, tallies::Deltas,
};

/// Stores a batch on PostgreSQL. Pushes to one campaign are serialised
/// by a transaction-scoped advisory lock. Parts recorded as stored whole
/// are duplicates (see the module's header). Unless a sample of its ids is
/// already stored, the batch is `COPY`'d straight into the table under a
/// savepoint: when every response is new (the usual first push) that is
/// all. Otherwise (a resend, or a copy that hit a stored id) the stored
/// ids are looked up in one query and only the new rows are copied: no
/// staging table, no second write of a row.
pub async fn store_pg(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    batch: &Batch<'_>,
) -> Result<Stored, Error> {
    use sqlx::Executor;
    // Id look-ups must probe the primary key: with the default page costs
    // the planner scans the whole table for a few thousand ids instead.
    conn.execute("SET LOCAL random_page_cost = 1.1").await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(batch.campaign)
        .execute(&mut *conn)
        .await?;
    let known = known_parts(conn, batch).await?;
    let (mut existing, unique) = split_resent(batch, &known);
    // A resent batch is recognised by a few of its ids and skips the copy.
    let sample: Vec<&str> = sample(&unique).map(|r| r.response_id.as_str()).collect();
    let seen: i64 = if unique.is_empty() {
        0
    } else {
        sqlx::query(
            "SELECT count(*) AS n FROM responses WHERE campaign = $1 AND response_id = ANY($2)",
        )
        .bind(batch.campaign)
        .bind(&sample)
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?
    };
    let optimistic = seen == 0
        && (unique.is_empty()
            || if unique.len() == batch.rows.len() && !batch.copy.is_empty() {
                first_try!(conn, copy_text(conn, batch.copy))
            } else {
                first_try!(conn, copy_rows(conn, batch.campaign, &unique))
            });
    let fresh: Vec<&NewResponse> = if optimistic {
        unique
    } else {
        // Only ids that are missing or stored with other content come back;
        // the rest are stored alike (duplicates). The plan must probe the
        // primary key once per id: a hash join would scan the whole table.
        let ids: Vec<&str> = unique.iter().map(|r| r.response_id.as_str()).collect();
        let digests: Vec<i64> = unique.iter().map(|r| r.digest).collect();
        conn.execute("SET LOCAL enable_hashjoin = off").await?;
        conn.execute("SET LOCAL enable_mergejoin = off").await?;
        // id → the stored digest (None: not stored).
        let mut differing: HashMap<String, Option<i64>> = HashMap::default();
        for row in sqlx::query(
            "SELECT b.id, r.digest FROM UNNEST($2::text[], $3::bigint[]) AS b(id, digest)
             LEFT JOIN responses r ON r.campaign = $1 AND r.response_id = b.id
             WHERE r.digest IS NULL OR r.digest <> b.digest",
        )
        .bind(batch.campaign)
        .bind(&ids)
        .bind(&digests)
        .fetch_all(&mut *conn)
        .await?
        {
            differing.insert(row.try_get("id")?, row.try_get("digest")?);
        }
        let mut fresh = Vec::new();
        for r in unique {
            let id = r.response_id.as_str();
            match differing.get(id) {
                Some(None) => fresh.push(r),
                // Stored with other content: that content's digest, the
                // one every other row with this id is compared with.
                Some(Some(stored)) => drop(existing.insert(id, *stored)),
                None => drop(existing.insert(id, r.digest)),
            }
        }
        copy_rows(conn, batch.campaign, &fresh).await?;
        fresh
    };
    let inserted: HashSet<&str> = fresh.iter().map(|r| r.response_id.as_str()).collect();
    let (outcomes, own) = outcomes(batch, &inserted, &existing);
    record_parts(conn, batch, &known, &outcomes).await?;
    let deltas = own.as_ref().unwrap_or(batch.deltas);
    if !inserted.is_empty() {
        upsert_tallies_pg(conn, batch.campaign, batch.questions, deltas).await?;
        screening::counts_pg(conn, batch.campaign, deltas).await?;
    }
    let added = match own {
        _ if inserted.is_empty() => Added::Nothing,
        None => Added::All,
        Some(own) => Added::Only(own),
    };
    let refused = screening::refusals_pg(conn, batch.campaign, batch.outside).await?;
    let change = if inserted.is_empty() && refused == 0 {
        None
    } else {
        Some(Changes::bump_pg(conn, batch.cycle, batch.group).await?)
    };
    let resource = format!(
        "cycles/{}/campaigns/{}",
        batch.cycle,
        batch.campaign.rsplit('/').next().unwrap_or_default()
    );
    audit::append_pg(
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

/// The fingerprints of the batch's parts recorded as stored whole.
async fn known_parts(
    conn: &mut sqlx::PgConnection,
    batch: &Batch<'_>,
) -> Result<HashSet<String>, sqlx::Error> {
    let prints: Vec<&str> = batch.parts.iter().map(|p| p.fingerprint.as_str()).collect();
    if prints.is_empty() {
        return Ok(HashSet::default());
    }
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT fingerprint FROM stored_batches WHERE campaign = $1 AND fingerprint = ANY($2)",
    )
    .bind(batch.campaign)
    .bind(&prints)
    .fetch_all(&mut *conn)
    .await?;
    Ok(known.into_iter().collect())
}

/// Records the parts now stored whole.
async fn record_parts(
    conn: &mut sqlx::PgConnection,
    batch: &Batch<'_>,
    known: &HashSet<String>,
    outcomes: &[Outcome],
) -> Result<(), sqlx::Error> {
    let (prints, counts): (Vec<&str>, Vec<i64>) =
        stored_whole(batch, known, outcomes).into_iter().unzip();
    if prints.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO stored_batches (campaign, fingerprint, responses)
         SELECT $1, * FROM UNNEST($2::text[], $3::bigint[])
         ON CONFLICT (campaign, fingerprint) DO NOTHING",
    )
    .bind(batch.campaign)
    .bind(&prints)
    .bind(&counts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends rows to `COPY` text for the responses table.
pub fn copy_lines<'r>(
    text: &mut String,
    campaign: &str,
    rows: impl IntoIterator<Item = &'r NewResponse>,
) {
    use std::fmt::Write;
    let campaign = copy_escape(campaign);
    for r in rows {
        let _ = writeln!(
            text,
            "{campaign}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            copy_escape(&r.response_id),
            copy_escape(&r.unit),
            copy_escape(&r.category),
            r.channel,
            r.answer_ms,
            copy_escape(&r.answers),
            r.digest,
            copy_escape(&r.respondent)
        );
    }
}

/// `COPY`s rows into the responses table.
async fn copy_rows(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    rows: &[&NewResponse],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut text = String::with_capacity(rows.len() * 200);
    copy_lines(&mut text, campaign, rows.iter().copied());
    copy_text(conn, &[text]).await
}

/// `COPY`s text made by [`copy_lines`] into the responses table.
async fn copy_text(conn: &mut sqlx::PgConnection, parts: &[String]) -> Result<(), sqlx::Error> {
    let mut copy = conn
        .copy_in_raw("COPY responses (campaign, response_id, unit_id, category, channel, answer_ms, answers, digest, respondent) FROM STDIN")
        .await?;
    for part in parts {
        if let Err(e) = copy.send(part.as_bytes()).await {
            let _ = copy.abort("send failed").await;
            return Err(e);
        }
    }
    copy.finish().await.map(|_| ())
}

/// Adds tally deltas with one array-valued statement per table.
async fn upsert_tallies_pg(
    conn: &mut sqlx::PgConnection,
    campaign: &str,
    questions: &[String],
    d: &Deltas,
) -> Result<(), Error> {
    let (mut units, mut keys, mut counts, mut sums, mut straight, mut late) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for (unit, c) in d.categories() {
        units.push(unit);
        keys.push(c.category.as_str());
        counts.push(c.responses);
        sums.push(c.value_units);
        straight.push(c.straight);
        late.push(c.late);
    }
    sqlx::query(
        "INSERT INTO survey_tallies (campaign, unit_id, category, responses, value_units, straight, late)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
         ON CONFLICT (campaign, unit_id, category) DO UPDATE SET responses = survey_tallies.responses + excluded.responses,
         value_units = survey_tallies.value_units + excluded.value_units,
         straight = survey_tallies.straight + excluded.straight, late = survey_tallies.late + excluded.late",
    )
    .bind(campaign)
    .bind(&units)
    .bind(&keys)
    .bind(&counts)
    .bind(&sums)
    .bind(&straight)
    .bind(&late)
    .execute(&mut *conn)
    .await?;
    let (mut units, mut keys, mut counts, mut sums) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (unit, q, n, v) in d.questions(questions) {
        units.push(unit);
        keys.push(q);
        counts.push(n);
        sums.push(v);
    }
    sqlx::query(
        "INSERT INTO question_tallies (campaign, unit_id, question, counted, value_units)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[])
         ON CONFLICT (campaign, unit_id, question) DO UPDATE SET counted = question_tallies.counted + excluded.counted,
         value_units = question_tallies.value_units + excluded.value_units",
    )
    .bind(campaign)
    .bind(&units)
    .bind(&keys)
    .bind(&counts)
    .bind(&sums)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Escapes a value for COPY's text format.
pub fn copy_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\\', '\t', '\n', '\r']) {
        s.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_values_are_escaped() {
        assert_eq!(copy_escape("a\tb\\c\n"), "a\\tb\\\\c\\n");
        assert_eq!(copy_escape("plain"), "plain");
    }
}
