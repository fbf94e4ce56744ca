//! Self-inspection (效能自查, DOMAIN.md §7): a unit reports problems it found
//! itself and what it did, including actions against staff; the office
//! verifies an item, which then earns the scheme's credit for its type.

use jixiao_proto::inspections::{
    CreateSelfInspectionItemRequest, ItemState, ListSelfInspectionItemsRequest,
    ListSelfInspectionItemsResponse, SelfInspectionItem, VerifySelfInspectionItemRequest,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, decimal, idempotency, names,
    paging::Page,
    text,
    time::now_ms,
    write::{self, Key},
};
use serde_json::json;

use crate::{
    api::{InspectionsApi, scheme_value, scope},
    rules::ITEMS,
    store::{self, NewItem},
};

const STAFF_ACTIONS: &[&str] = &["circulated_criticism", "admonishment", "efficiency_warning"];

impl InspectionsApi {
    pub(crate) async fn create_item(
        &self,
        p: Principal,
        req: CreateSelfInspectionItemRequest,
    ) -> Result<SelfInspectionItem, Error> {
        let digest = idempotency::request_digest("CreateSelfInspectionItem", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "CreateSelfInspectionItem",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "CreateSelfInspectionItem", &cycle).await?;
        let item = req.item.clone().unwrap_or_default();
        let unit = names::unit_id(&item.unit, "item.unit")?.to_string();
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!(
                "only unit {unit} reports its self-inspection"
            )));
        }
        let group = self.group_of(&cycle, &item.unit, "item.unit").await?;
        let scheme = self.scheme_of(&cycle, &group).await?;
        let mut v = Violations::new();
        let id = names::chosen_id(
            "item",
            &req.item_id,
            "item_id",
            &p.subject,
            &req.request_id,
            &mut v,
        );
        v.check(
            scheme_value(&scheme.credit_points, &item.item_type).is_some(),
            "item.item_type",
            format!(
                "{:?} is not an item type of the scheme ({})",
                item.item_type,
                scheme
                    .credit_points
                    .iter()
                    .map(|k| k.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        text::required(&mut v, "item.problem", &item.problem, text::NOTE);
        text::required(&mut v, "item.action_taken", &item.action_taken, text::NOTE);
        for (i, a) in item.staff_actions.iter().enumerate() {
            v.check(
                STAFF_ACTIONS.contains(&a.kind.as_str()),
                format!("item.staff_actions[{i}].kind"),
                format!("must be one of {}", STAFF_ACTIONS.join(", ")),
            );
            v.check(
                a.count >= 1,
                format!("item.staff_actions[{i}].count"),
                "must be at least 1",
            );
        }
        v.into_result()?;
        write::write(&self.db, None, &p, key, async |w| {
            if store::item_exists(w.conn, &cycle, &id).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/selfInspectionItems/{id}"),
                });
            }
            store::insert_item(
                w.conn,
                &NewItem {
                    cycle: &cycle,
                    id: &id,
                    unit: &unit,
                    group: &group,
                    item_type: &item.item_type,
                    problem: item.problem.trim(),
                    action_taken: item.action_taken.trim(),
                    staff_actions: &item.staff_actions,
                    create_ms: now_ms(),
                },
            )
            .await?;
            let created = store::item(w.conn, &cycle, &id).await?.proto()?;
            w.audit(
                "self_items.create",
                &created.name,
                "",
                json!({"item_type": created.item_type}),
            );
            Ok(created)
        })
        .await
    }

    pub(crate) async fn verify_item(
        &self,
        p: Principal,
        req: VerifySelfInspectionItemRequest,
    ) -> Result<SelfInspectionItem, Error> {
        p.require(&[Role::Office], "verify self-inspection items")?;
        let ids = names::parse(&req.name, "cycles/*/selfInspectionItems/*", "name")?;
        let (cycle, id) = (ids[0].to_string(), ids[1].to_string());
        self.admit(&p, "VerifySelfInspectionItem", &cycle).await?;
        if !req.verify && req.note.trim().is_empty() {
            return Err(Error::invalid("note", "say why the item is rejected"));
        }
        let mut v = Violations::new();
        text::optional(&mut v, "note", &req.note, text::NOTE);
        v.into_result()?;
        let reported = {
            let mut conn = self.db.read.acquire().await?;
            store::item(&mut conn, &cycle, &id).await?
        };
        let item_type = reported.proto()?.item_type;
        let credit = if req.verify {
            let scheme = self.scheme_of(&cycle, &reported.group_id).await?;
            Some(
                scheme_value(&scheme.credit_points, &item_type).ok_or_else(|| {
                    Error::precondition(
                        crate::Reason::SchemeIncomplete,
                        format!("the scheme no longer credits item type {item_type:?}"),
                    )
                })?,
            )
        } else {
            None
        };
        let (to, action) = if req.verify {
            (ItemState::Verified, "self_items.verify")
        } else {
            (ItemState::Rejected, "self_items.reject")
        };
        let note = req.note.trim();
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("VerifySelfInspectionItem"),
            async |w| {
                let current = store::item(w.conn, &cycle, &id).await?;
                let state =
                    ItemState::try_from(current.proto()?.state).unwrap_or(ItemState::Unspecified);
                ITEMS.require_move(&req.name, state, to)?;
                store::decide_item(w.conn, &cycle, &id, to, credit, note).await?;
                // Only a verified item earns credit, so only it changes the
                // group's figures.
                if req.verify {
                    w.changed(&cycle, &current.group_id);
                }
                w.audit(
                    action,
                    &req.name,
                    note,
                    json!({"credit": credit.map(decimal::canonical)}),
                );
                store::item(w.conn, &cycle, &id).await?.proto()
            },
        )
        .await
    }

    pub(crate) async fn list_items(
        &self,
        p: Principal,
        req: ListSelfInspectionItemsRequest,
    ) -> Result<ListSelfInspectionItemsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let unit = scope(&p, &req.unit, "self-inspection items")?;
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let mut conn = self.db.read.acquire().await?;
        let mut items = store::items(&mut conn, &cycle, &unit.unwrap_or_default(), &pg)
            .await?
            .iter()
            .map(store::ItemRecord::proto)
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut items);
        Ok(ListSelfInspectionItemsResponse {
            items,
            next_page_token,
        })
    }
}
