//! Supervision documents (监察建议书, 效能建议书, 效能工作简报) issued to a
//! unit, each linked to findings of that unit in the same cycle.

use jixiao_proto::inspections::{
    Document, DocumentKind, IssueDocumentRequest, ListDocumentsRequest, ListDocumentsResponse,
};
use jixiao_runtime::{
    Error, Principal, Violations, idempotency, names,
    paging::Page,
    text,
    time::{now_ms, timestamp},
    write::{self, Key},
};
use serde_json::json;

use crate::{
    api::{InspectionsApi, RECORDERS, scope},
    store,
};

impl InspectionsApi {
    pub(crate) async fn issue_document(
        &self,
        p: Principal,
        req: IssueDocumentRequest,
    ) -> Result<Document, Error> {
        p.require(RECORDERS, "issue documents")?;
        let digest = idempotency::request_digest("IssueDocument", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "IssueDocument",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "IssueDocument", &cycle).await?;
        let doc = req.document.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = names::chosen_id(
            "doc",
            &req.document_id,
            "document_id",
            &p.subject,
            &req.request_id,
            &mut v,
        );
        v.check(
            DocumentKind::try_from(doc.kind).is_ok_and(|k| k != DocumentKind::Unspecified),
            "document.kind",
            "must be SUPERVISION_RECOMMENDATION, EFFICIENCY_RECOMMENDATION or BULLETIN",
        );
        text::required(&mut v, "document.title", &doc.title, text::LABEL);
        text::required(&mut v, "document.body", &doc.body, text::BODY);
        let unit = match names::unit_id(&doc.unit, "document.unit") {
            Ok(u) => u.to_string(),
            Err(_) => {
                v.add("document.unit", "must be a unit, units/{unit}");
                String::new()
            }
        };
        let mut conn = self.db.read.acquire().await?;
        for (i, f) in doc.findings.iter().enumerate() {
            let found = match names::parse(f, "cycles/*/inspections/*/findings/*", "name") {
                Ok(ids) => store::finding(&mut conn, [ids[0], ids[1], ids[2]], f)
                    .await
                    .ok(),
                Err(_) => None,
            };
            match found {
                Some(row) if row.unit == unit && row.cycle == cycle => {}
                Some(_) => v.add(
                    format!("document.findings[{i}]"),
                    format!("{f} is not a finding of {} in cycles/{cycle}", doc.unit),
                ),
                None => v.add(
                    format!("document.findings[{i}]"),
                    format!("{f} is not a finding"),
                ),
            }
        }
        drop(conn);
        v.into_result()?;
        write::write(&self.db, None, &p, key, async |w| {
            if store::document_exists(w.conn, &cycle, &id).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/documents/{id}"),
                });
            }
            let now = now_ms();
            let issued = Document {
                name: format!("cycles/{cycle}/documents/{id}"),
                kind: doc.kind,
                unit: format!("units/{unit}"),
                title: doc.title.trim().into(),
                body: doc.body.trim().into(),
                findings: doc.findings.clone(),
                issue_time: Some(timestamp(now)),
            };
            store::insert_document(w.conn, &cycle, &id, &issued, &unit, now).await?;
            w.audit(
                "documents.issue",
                &issued.name,
                "",
                json!({"unit": issued.unit, "title": issued.title}),
            );
            Ok(issued)
        })
        .await
    }

    pub(crate) async fn list_documents(
        &self,
        p: Principal,
        req: ListDocumentsRequest,
    ) -> Result<ListDocumentsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "documents")?;
        let pg = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        let mut documents =
            store::documents(&mut conn, &cycle, &unit.unwrap_or_default(), &pg).await?;
        let next_page_token = pg.next_token(&mut documents);
        Ok(ListDocumentsResponse {
            documents,
            next_page_token,
        })
    }
}
