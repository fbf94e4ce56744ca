//! The setup of a cycle (DOMAIN.md §2–§4): units, peer groups with their
//! members, each group's scoring scheme and indicator framework; fixed
//! once execution starts.

use std::collections::HashSet;

use jixiao_proto::plans::{
    CreateGroupRequest, CreateUnitRequest, Framework, GetFrameworkRequest, GetGroupRequest,
    GetSchemeRequest, GetUnitRequest, Group, ListGroupsRequest, ListGroupsResponse,
    ListUnitsRequest, ListUnitsResponse, ReplaceFrameworkRequest, Scheme, Unit, UnitKind,
    UpdateGroupRequest, UpdateSchemeRequest,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations,
    changes::Changes,
    decimal, idempotency, names, text,
    time::{now_ms, timestamp},
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::AnyConnection;

use crate::{api::*, rules, store::*};

impl PlansApi {
    pub(crate) async fn create_unit(
        &self,
        p: Principal,
        req: CreateUnitRequest,
    ) -> Result<Unit, Error> {
        p.require(&[Role::Office], "register units")?;
        let digest = idempotency::request_digest("CreateUnit", &req);
        let unit = req.unit.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(names::valid_id(&req.unit_id), "unit_id", names::ID_RULE);
        text::required(
            &mut v,
            "unit.display_name_zh",
            &unit.display_name_zh,
            text::LABEL,
        );
        text::optional(
            &mut v,
            "unit.display_name_en",
            &unit.display_name_en,
            text::LABEL,
        );
        v.check(
            UnitKind::try_from(unit.kind).is_ok_and(|k| k != UnitKind::Unspecified),
            "unit.kind",
            "must be DISTRICT_GOVERNMENT, CITY_DEPARTMENT or OTHER",
        );
        v.into_result()?;
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key {
                method: "CreateUnit",
                request_id: &req.request_id,
                digest: &digest,
            },
            async |w| {
                if unit_exists(w.conn, &req.unit_id).await? {
                    return Err(Error::AlreadyExists {
                        resource: format!("units/{}", req.unit_id),
                    });
                }
                let now = now_ms();
                insert_unit(
                    w.conn,
                    &req.unit_id,
                    unit.display_name_zh.trim(),
                    unit.display_name_en.trim(),
                    unit.kind,
                    now,
                )
                .await?;
                let created = Unit {
                    name: format!("units/{}", req.unit_id),
                    display_name_zh: unit.display_name_zh.trim().into(),
                    display_name_en: unit.display_name_en.trim().into(),
                    kind: unit.kind,
                    create_time: Some(timestamp(now)),
                };
                w.audit(
                    "units.create",
                    &created.name,
                    "",
                    json!({"name_zh": created.display_name_zh}),
                );
                Ok(created)
            },
        )
        .await
    }

    /// Checks a member list: registered units, no repeats, no unit already
    /// in another group of the cycle.
    pub(crate) async fn check_members(
        conn: &mut AnyConnection,
        cycle: &str,
        group: &str,
        units: &[String],
        field: &str,
        v: &mut Violations,
    ) -> Result<Vec<String>, Error> {
        let known = known_units(conn).await?;
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        for (i, u) in units.iter().enumerate() {
            let f = format!("{field}[{i}]");
            if !known.contains(u) {
                v.add(f, format!("{u:?} is not a registered unit"));
                continue;
            }
            let id = u.trim_start_matches("units/").to_string();
            if !seen.insert(id.clone()) {
                v.add(f, format!("{u} appears twice"));
                continue;
            }
            if let Some(other) = group_of(conn, cycle, &id).await?
                && other != group
            {
                v.add(
                    f,
                    format!("{u} already belongs to group {other} of this cycle"),
                );
            }
            ids.push(id);
        }
        Ok(ids)
    }

    pub(crate) async fn create_group(
        &self,
        p: Principal,
        req: CreateGroupRequest,
    ) -> Result<Group, Error> {
        p.require(&[Role::Office], "create groups")?;
        let digest = idempotency::request_digest("CreateGroup", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "CreateGroup",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        admit(&self.db, &p, "CreateGroup", &cycle, None).await?;
        let group = req.group.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(names::valid_id(&req.group_id), "group_id", names::ID_RULE);
        text::required(
            &mut v,
            "group.display_name",
            &group.display_name,
            text::LABEL,
        );
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            let ids = Self::check_members(
                w.conn,
                &cycle,
                &req.group_id,
                &group.units,
                "group.units",
                &mut v,
            )
            .await?;
            v.into_result()?;
            if group_exists(w.conn, &cycle, &req.group_id).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/groups/{}", req.group_id),
                });
            }
            let scheme = rules::default_scheme(String::new());
            insert_group(
                w.conn,
                &cycle,
                &req.group_id,
                group.display_name.trim(),
                &scheme,
            )
            .await?;
            replace_members(w.conn, &cycle, &req.group_id, &ids).await?;
            let created = load_group(w.conn, &cycle, &req.group_id).await?.group;
            w.audit(
                "groups.create",
                &created.name,
                "",
                json!({"units": created.units}),
            );
            changed_name(w, &created.name);
            Ok(created)
        })
        .await
    }

    pub(crate) async fn update_group(
        &self,
        p: Principal,
        req: UpdateGroupRequest,
    ) -> Result<Group, Error> {
        p.require(&[Role::Office], "update groups")?;
        let group = req.group.unwrap_or_default();
        let (cycle, gid) = names::group_name(&group.name, "group.name")?;
        admit(&self.db, &p, "UpdateGroup", cycle, None).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("update_mask", "name the fields to change"));
        }
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("UpdateGroup"),
            async |w| {
                let current = load_group(w.conn, cycle, gid).await?;
                let mut v = Violations::new();
                let mut display = current.group.display_name.clone();
                let mut members = None;
                for path in &paths {
                    match path.as_str() {
                        "display_name" => {
                            text::required(
                                &mut v,
                                "group.display_name",
                                &group.display_name,
                                text::LABEL,
                            );
                            display = group.display_name.trim().to_string();
                        }
                        "units" => {
                            members = Some(
                                Self::check_members(
                                    w.conn,
                                    cycle,
                                    gid,
                                    &group.units,
                                    "group.units",
                                    &mut v,
                                )
                                .await?,
                            )
                        }
                        other => v.add(
                            "update_mask",
                            format!("{other:?} cannot be updated; use display_name or units"),
                        ),
                    }
                }
                v.into_result()?;
                rename_group(w.conn, cycle, gid, &display).await?;
                if let Some(ids) = &members {
                    replace_members(w.conn, cycle, gid, ids).await?;
                }
                let updated = load_group(w.conn, cycle, gid).await?.group;
                w.audit(
                    "groups.update",
                    &updated.name,
                    "",
                    json!({"fields": paths, "units": updated.units}),
                );
                changed_name(w, &updated.name);
                Ok(updated)
            },
        )
        .await
    }

    pub(crate) async fn update_scheme(
        &self,
        p: Principal,
        req: UpdateSchemeRequest,
    ) -> Result<Scheme, Error> {
        p.require(&[Role::Office], "change scoring schemes")?;
        let incoming = req.scheme.unwrap_or_default();
        let ids = names::parse(&incoming.name, "cycles/*/groups/*/scheme", "scheme.name")?;
        let (cycle, gid) = (ids[0], ids[1]);
        admit(&self.db, &p, "UpdateScheme", cycle, None).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("update_mask", "name the fields to change"));
        }
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("UpdateScheme"),
            async |w| {
                let current = load_group(w.conn, cycle, gid).await?;
                if !incoming.etag.is_empty() && incoming.etag != current.scheme.etag {
                    return Err(Error::aborted(
                        crate::Reason::EtagMismatch,
                        format!("{} changed since it was read; read it again", incoming.name),
                    ));
                }
                let mut s = current.scheme.clone();
                let mut v = Violations::new();
                for path in &paths {
                    match path.as_str() {
                        "indicator_max" => s.indicator_max = incoming.indicator_max.clone(),
                        "survey_max" => s.survey_max = incoming.survey_max.clone(),
                        "online_max" => s.online_max = incoming.online_max.clone(),
                        "mutual_max" => s.mutual_max = incoming.mutual_max.clone(),
                        "inspection_cap" => s.inspection_cap = incoming.inspection_cap.clone(),
                        "answer_values" => s.answer_values = incoming.answer_values.clone(),
                        "category_weights" => {
                            s.category_weights = incoming.category_weights.clone()
                        }
                        "min_sample" => s.min_sample = incoming.min_sample,
                        "mutual_scale" => s.mutual_scale = incoming.mutual_scale,
                        "grade_values" => s.grade_values = incoming.grade_values.clone(),
                        "mutual_trim_min_raters" => {
                            s.mutual_trim_min_raters = incoming.mutual_trim_min_raters
                        }
                        "peer_rank_floor" => s.peer_rank_floor = incoming.peer_rank_floor.clone(),
                        "at_risk_threshold" => {
                            s.at_risk_threshold = incoming.at_risk_threshold.clone()
                        }
                        "credit_points" => s.credit_points = incoming.credit_points.clone(),
                        "spot_check_deductions" => {
                            s.spot_check_deductions = incoming.spot_check_deductions.clone()
                        }
                        "data_quality" => s.data_quality = incoming.data_quality.clone(),
                        other => v.add("update_mask", format!("{other:?} is not a scheme field")),
                    }
                }
                rules::check_scheme(&mut s, &mut v, "scheme");
                rules::check_override_codes(&s, current.framework.as_ref(), &mut v, "scheme");
                v.into_result()?;
                let mut stored = s.clone();
                stored.name.clear();
                stored.etag.clear();
                save_scheme(w.conn, cycle, gid, &stored).await?;
                let updated = load_group(w.conn, cycle, gid).await?.scheme;
                w.audit(
                    "schemes.update",
                    &updated.name,
                    "",
                    json!({"fields": paths}),
                );
                changed_name(w, &updated.name);
                Ok(updated)
            },
        )
        .await
    }

    pub(crate) async fn replace_framework(
        &self,
        p: Principal,
        req: ReplaceFrameworkRequest,
    ) -> Result<Framework, Error> {
        p.require(&[Role::Office], "define indicator frameworks")?;
        let digest = idempotency::request_digest("ReplaceFramework", &req);
        let ids = names::parse(&req.name, "cycles/*/groups/*/framework", "name")?;
        let (cycle, gid) = (ids[0], ids[1]);
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "ReplaceFramework",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        admit(&self.db, &p, "ReplaceFramework", cycle, None).await?;
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
        let g = load_group(w.conn, cycle, gid).await?;
        let known = known_units(w.conn).await?;
        let members: HashSet<String> = g.group.units.iter().cloned().collect();
        let indicator_max = decimal::figure(&g.scheme.indicator_max)
            .map_err(|e| Error::internal(std::io::Error::other(e)))?;
        let mut indicators = req.indicators.clone();
        let mut v = Violations::new();
        let total = rules::check_framework(
            &mut indicators,
            &rules::FrameworkContext {
                known_units: &known,
                members: &members,
                indicator_max,
            },
            &mut v,
        );
        rules::check_framework_keeps_overrides(&g.scheme, &indicators, &mut v);
        v.into_result()?;
        if any_plan_approved(w.conn, cycle, gid).await? {
            return Err(Error::precondition(
                crate::Reason::PlansApproved,
                format!(
                    "plans of {} were approved against the current framework; it can no longer be replaced",
                    g.group.name
                ),
            ));
        }
        let now = now_ms();
        let framework = Framework {
            name: format!("cycles/{cycle}/groups/{gid}/framework"),
            indicators,
            total_weight: Some(decimal::to_proto(total)),
            update_time: Some(timestamp(now)),
        };
        save_framework(w.conn, cycle, gid, &framework, now).await?;
        w.audit("frameworks.replace", &framework.name, "", json!({"indicators": framework.indicators.iter().map(|i| &i.code).collect::<Vec<_>>(), "total_weight": decimal::canonical(total)}));
                changed_name(w, &framework.name);
        Ok(framework)
        })
        .await
    }

    /// The framework a plan is checked against; FRAMEWORK_INCOMPLETE when
    /// the group has none yet.
    pub(crate) fn framework_of(g: &GroupSettings) -> Result<Framework, Error> {
        g.framework.clone().ok_or_else(|| {
            Error::precondition(
                crate::Reason::FrameworkIncomplete,
                format!("{} has no indicator framework yet", g.name),
            )
        })
    }

    pub(crate) async fn get_unit(&self, req: GetUnitRequest) -> Result<Unit, Error> {
        let id = names::unit_id(&req.name, "name")?;
        let mut conn = self.db.read.acquire().await?;
        unit(&mut conn, id)
            .await?
            .ok_or_else(|| Error::not_found(req.name.clone()))
    }

    pub(crate) async fn list_units(
        &self,
        req: ListUnitsRequest,
    ) -> Result<ListUnitsResponse, Error> {
        let pg = page(req.page_size, &req.page_token, 100, 1000)?;
        let mut conn = self.db.read.acquire().await?;
        let mut units = units(&mut conn, &pg).await?;
        let next_page_token = pg.next_token(&mut units);
        Ok(ListUnitsResponse {
            units,
            next_page_token,
        })
    }

    pub(crate) async fn get_group(&self, req: GetGroupRequest) -> Result<Group, Error> {
        let (cycle, gid) = names::group_name(&req.name, "name")?;
        let revision = Changes::revision(&self.db, cycle, gid).await?;
        let mut conn = self.db.read.acquire().await?;
        let mut group = load_group(&mut conn, cycle, gid).await?.group;
        group.revision = revision;
        Ok(group)
    }

    pub(crate) async fn list_groups(
        &self,
        req: ListGroupsRequest,
    ) -> Result<ListGroupsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?;
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        load_cycle(&mut conn, cycle).await?;
        let mut groups = Vec::new();
        for id in group_page(&mut conn, cycle, &pg).await? {
            groups.push(load_group(&mut conn, cycle, &id).await?.group);
        }
        let next_page_token = pg.next_token(&mut groups);
        Ok(ListGroupsResponse {
            groups,
            next_page_token,
        })
    }

    pub(crate) async fn get_scheme(&self, req: GetSchemeRequest) -> Result<Scheme, Error> {
        let ids = names::parse(&req.name, "cycles/*/groups/*/scheme", "name")?;
        let mut conn = self.db.read.acquire().await?;
        Ok(load_settings(&mut conn, ids[0], ids[1]).await?.scheme)
    }

    pub(crate) async fn get_framework(&self, req: GetFrameworkRequest) -> Result<Framework, Error> {
        let ids = names::parse(&req.name, "cycles/*/groups/*/framework", "name")?;
        let mut conn = self.db.read.acquire().await?;
        let g = load_settings(&mut conn, ids[0], ids[1]).await?;
        Ok(g.framework.unwrap_or_else(|| Framework {
            name: req.name.clone(),
            total_weight: Some(decimal::to_proto(Decimal::ZERO)),
            ..Default::default()
        }))
    }
}
