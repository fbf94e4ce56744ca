//! The aggregator's own database: the stored standings of each group and
//! the immutable published versions with their inputs documents.

use jixiao_proto::aggregator::{Publication, StandingRow, Standings};
use jixiao_runtime::{Db, Error, Principal, audit, idempotency, names, time::now_ms};
use prost::Message;
use serde_json::json;

/// A stored publication with what verification needs.
pub struct StoredPublication {
    pub publication: Publication,
    pub inputs: String,
    pub digest: String,
}

/// A new version to store.
pub struct NewVersion<'a> {
    pub group: &'a str,
    pub year: i32,
    pub inputs: &'a str,
    pub publication: &'a mut Publication,
}

fn split(group: &str) -> Result<(&str, &str), Error> {
    names::group_name(group, "group")
}

/// Every stored standings, for the start of the process.
pub async fn load_standings(db: &Db) -> Result<Vec<Standings>, Error> {
    let bodies: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM standings ORDER BY cycle_id, group_id")
            .fetch_all(&db.read)
            .await?;
    bodies
        .iter()
        .map(|body| Standings::decode(body.as_slice()).map_err(Error::internal))
        .collect()
}

/// Replaces a group's stored standings (`body` is the encoded Standings).
pub async fn save_standings(db: &Db, group: &str, revision: i64, body: &[u8]) -> Result<(), Error> {
    let (cycle, gid) = split(group)?;
    sqlx::query(
        "INSERT INTO standings (cycle_id, group_id, revision, body) VALUES ($1, $2, $3, $4)
         ON CONFLICT (cycle_id, group_id) DO UPDATE SET revision = excluded.revision, body = excluded.body",
    )
    .bind(cycle)
    .bind(gid)
    .bind(revision)
    .bind(body)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// A row of `publications`, as far as readers need it.
#[derive(sqlx::FromRow)]
struct PublicationRecord {
    body: Vec<u8>,
    inputs: String,
    digest: String,
}

impl PublicationRecord {
    fn into_stored(self) -> Result<StoredPublication, Error> {
        Ok(StoredPublication {
            publication: Publication::decode(self.body.as_slice()).map_err(Error::internal)?,
            inputs: self.inputs,
            digest: self.digest,
        })
    }
}

/// A version of a group; `None` for the newest.
pub async fn publication(
    db: &Db,
    group: &str,
    version: Option<i64>,
) -> Result<Option<StoredPublication>, Error> {
    let (cycle, gid) = split(group)?;
    let record = sqlx::query_as::<_, PublicationRecord>(
        "SELECT body, inputs, digest FROM publications
         WHERE cycle_id = $1 AND group_id = $2 AND ($3 = 0 OR version = $3)
         ORDER BY version DESC LIMIT 1",
    )
    .bind(cycle)
    .bind(gid)
    .bind(version.unwrap_or(0))
    .fetch_optional(&db.read)
    .await?;
    record.map(PublicationRecord::into_stored).transpose()
}

/// A page of a group's versions, newest first, starting below `before`.
pub async fn publications(
    db: &Db,
    group: &str,
    before: i64,
    limit: i64,
) -> Result<Vec<Publication>, Error> {
    let (cycle, gid) = split(group)?;
    let records = sqlx::query_as::<_, PublicationRecord>(
        "SELECT body, inputs, digest FROM publications
         WHERE cycle_id = $1 AND group_id = $2 AND version < $3
         ORDER BY version DESC LIMIT $4",
    )
    .bind(cycle)
    .bind(gid)
    .bind(before)
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    records
        .into_iter()
        .map(|r| r.into_stored().map(|p| p.publication))
        .collect()
}

/// Stores a new version with its rows for the archive, its audit record and
/// its idempotency record, in one transaction. Sets the version number and
/// name; refuses a first version that claims a correction and a later one
/// that does not.
pub async fn insert_publication(
    db: &Db,
    p: &Principal,
    new: NewVersion<'_>,
    request_id: &str,
    request_digest: &str,
) -> Result<(), Error> {
    let (cycle, gid) = split(new.group)?;
    let mut tx = db.write.begin().await?;
    let latest: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) AS v FROM publications WHERE cycle_id = $1 AND group_id = $2",
    )
    .bind(cycle)
    .bind(gid)
    .fetch_one(&mut *tx)
    .await?;
    let pb = &mut *new.publication;
    if latest > 0 && pb.correction_reason.trim().is_empty() {
        return Err(Error::invalid(
            "correction_reason",
            format!(
                "{} is already published (version {latest}); a new version is a correction and needs its reason",
                new.group
            ),
        ));
    }
    if latest == 0 && !pb.correction_reason.is_empty() {
        return Err(Error::invalid(
            "correction_reason",
            "nothing is published yet, so there is nothing to correct",
        ));
    }
    let version = latest + 1;
    pb.version = version as i32;
    pb.name = format!("{}/publications/{version}", new.group);
    let ms = now_ms();
    sqlx::query(
        "INSERT INTO publications (cycle_id, group_id, version, year, digest, inputs, body, publish_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(cycle)
    .bind(gid)
    .bind(version)
    .bind(i64::from(new.year))
    .bind(&pb.digest)
    .bind(new.inputs)
    .bind(pb.encode_to_vec())
    .bind(ms)
    .execute(&mut *tx)
    .await?;
    for row in &pb.rows {
        let unit = names::unit_id(&row.unit, "unit")?;
        sqlx::query(
            "INSERT INTO published_rows (unit_id, cycle_id, group_id, version, year, row_body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(unit)
        .bind(cycle)
        .bind(gid)
        .bind(version)
        .bind(i64::from(new.year))
        .bind(row.encode_to_vec())
        .execute(&mut *tx)
        .await?;
    }
    audit::append(
        &mut tx,
        p,
        audit::Entry {
            action: "results.publish",
            resource: &pb.name,
            reason: &pb.correction_reason,
            detail: json!({"digest": pb.digest, "decisions": pb.decisions.len(), "units": pb.rows.len()}),
        },
    )
    .await?;
    idempotency::remember(
        &mut tx,
        p,
        request_id,
        "PublishResults",
        request_digest,
        &*pb,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Replays an earlier PublishResults with the same request id.
pub async fn replay(
    db: &Db,
    p: &Principal,
    request_id: &str,
    request_digest: &str,
) -> Result<Option<Publication>, Error> {
    let mut conn = db.read.acquire().await?;
    idempotency::replay(&mut conn, p, request_id, request_digest).await
}

/// One published row of a unit: the latest version of each cycle's group.
pub struct ArchiveRow {
    pub cycle: String,
    pub group: String,
    pub version: i64,
    pub year: i64,
    pub row: StandingRow,
}

/// A row of `published_rows`.
#[derive(sqlx::FromRow)]
struct PublishedRowRecord {
    cycle_id: String,
    group_id: String,
    version: i64,
    year: i64,
    row_body: Vec<u8>,
}

impl PublishedRowRecord {
    fn into_row(self) -> Result<ArchiveRow, Error> {
        Ok(ArchiveRow {
            cycle: format!("cycles/{}", self.cycle_id),
            group: format!("cycles/{}/groups/{}", self.cycle_id, self.group_id),
            version: self.version,
            year: self.year,
            row: StandingRow::decode(self.row_body.as_slice()).map_err(Error::internal)?,
        })
    }
}

/// A unit's published rows, the latest version per cycle, oldest year first.
pub async fn archive(db: &Db, unit_id: &str) -> Result<Vec<ArchiveRow>, Error> {
    let records = sqlx::query_as::<_, PublishedRowRecord>(
        "SELECT r.cycle_id, r.group_id, r.version, r.year, r.row_body FROM published_rows r
         WHERE r.unit_id = $1 AND r.version = (
             SELECT MAX(p.version) FROM publications p
             WHERE p.cycle_id = r.cycle_id AND p.group_id = r.group_id)
         ORDER BY r.year, r.cycle_id",
    )
    .bind(unit_id)
    .fetch_all(&db.read)
    .await?;
    records
        .into_iter()
        .map(PublishedRowRecord::into_row)
        .collect()
}
