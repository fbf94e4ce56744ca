//! A unit's archive: its published rows across cycles, the latest version
//! of each.

use jixiao_proto::aggregator::{Archive, ArchiveEntry, GetArchiveRequest};
use jixiao_runtime::{Error, Principal, names};

use crate::{
    api::{AggregatorApi, PUBLISHED_READERS},
    store,
};

impl AggregatorApi {
    pub(crate) async fn get_archive(
        &self,
        p: Principal,
        req: GetArchiveRequest,
    ) -> Result<Archive, Error> {
        p.require(PUBLISHED_READERS, "read the archive")?;
        let unit_id = names::unit_id(&req.unit, "unit")?;
        let entries = store::archive(&self.db, unit_id)
            .await?
            .into_iter()
            .map(|a| ArchiveEntry {
                publication: format!("{}/publications/{}", a.group, a.version),
                cycle: a.cycle,
                group: a.group,
                row: Some(a.row),
            })
            .collect();
        Ok(Archive {
            unit: req.unit,
            entries,
        })
    }
}
