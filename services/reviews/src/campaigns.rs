//! Campaigns (DOMAIN.md §6): the office opens one survey campaign (raw
//! responses or unit results) and one votes campaign per group, each bound
//! to the platforms that may push to it; the office accepts a unit's small
//! sample with a reason.

use std::collections::HashSet;

use jixiao_proto::reviews::{
    AcceptInsufficientSampleRequest, Campaign, CampaignMode, CreateCampaignRequest,
    GetCampaignRequest, ListCampaignsRequest, ListCampaignsResponse, UnitReviewScore,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, idempotency, names,
    paging::Page,
    text, time,
    time::now_ms,
    write::{self, Key},
};
use serde_json::json;

use crate::{
    api::{READERS, ReviewsApi, valid_external_id},
    store,
};

impl ReviewsApi {
    pub(crate) async fn create_campaign(
        &self,
        p: Principal,
        req: CreateCampaignRequest,
    ) -> Result<Campaign, Error> {
        p.require(&[Role::Office], "create campaigns")?;
        let digest = idempotency::request_digest("CreateCampaign", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "CreateCampaign",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "CreateCampaign", &cycle).await?;
        let mut c = req.campaign.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(
            names::valid_id(&req.campaign_id),
            "campaign_id",
            names::ID_RULE,
        );
        let mode = CampaignMode::try_from(c.mode).unwrap_or(CampaignMode::Unspecified);
        v.check(
            mode != CampaignMode::Unspecified,
            "campaign.mode",
            "must be RAW_RESPONSES, UNIT_RESULTS or ONLINE_VOTES",
        );
        text::required(&mut v, "campaign.title", &c.title, text::LABEL);
        v.check(
            !c.platforms.is_empty() && c.platforms.iter().all(|p| !p.trim().is_empty()),
            "campaign.platforms",
            "bind at least one platform",
        );
        if mode == CampaignMode::RawResponses {
            v.check(
                !c.questions.is_empty(),
                "campaign.questions",
                "a survey needs questions",
            );
        }
        let mut seen = HashSet::new();
        for (i, q) in c.questions.iter().enumerate() {
            v.check(
                valid_external_id(&q.id) && seen.insert(q.id.clone()),
                format!("campaign.questions[{i}].id"),
                "must be a unique id of letters, digits or -_.:",
            );
            text::required(
                &mut v,
                format!("campaign.questions[{i}].text"),
                &q.text,
                text::NOTE,
            );
        }
        let open = time::optional(&c.open_time, "campaign.open_time", &mut v);
        let close = time::optional(&c.close_time, "campaign.close_time", &mut v);
        if let (Some(o), Some(cl)) = (open, close) {
            v.check(o < cl, "campaign.close_time", "must come after open_time");
        }
        let group_ok = match names::group_name(&c.group, "campaign.group") {
            Ok((gc, _)) if gc == cycle => true,
            _ => {
                v.add(
                    "campaign.group",
                    format!("must be a group of cycles/{cycle}"),
                );
                false
            }
        };
        v.into_result()?;
        if group_ok {
            self.plans.group(&c.group).await.map_err(|e| match e {
                Error::NotFound { resource } => {
                    Error::invalid("campaign.group", format!("{resource} does not exist"))
                }
                e => e,
            })?;
        }
        let gid = c.group.rsplit('/').next().unwrap_or_default().to_string();
        c.name = format!("cycles/{cycle}/campaigns/{}", req.campaign_id);
        write::write(&self.db, None, &p, key, async |w| {
            // One survey campaign (raw or unit results) and one vote
            // campaign per group.
            let survey_modes = [
                CampaignMode::RawResponses as i64,
                CampaignMode::UnitResults as i64,
            ];
            for (id, m) in store::group_campaigns(w.conn, &cycle, &gid).await? {
                if id == req.campaign_id {
                    return Err(Error::AlreadyExists {
                        resource: format!("cycles/{cycle}/campaigns/{id}"),
                    });
                }
                if m == mode as i64
                    || (survey_modes.contains(&m) && survey_modes.contains(&(mode as i64)))
                {
                    return Err(Error::precondition(
                        crate::Reason::CampaignExists,
                        format!("{} already has campaign {id} of this kind", c.group),
                    ));
                }
            }
            store::insert_campaign(w.conn, &cycle, &req.campaign_id, &gid, &c).await?;
            w.audit(
                "campaigns.create",
                &c.name,
                "",
                json!({"mode": mode.as_str_name(), "platforms": c.platforms}),
            );
            Ok(c.clone())
        })
        .await
    }

    pub(crate) async fn get_campaign(
        &self,
        p: Principal,
        req: GetCampaignRequest,
    ) -> Result<Campaign, Error> {
        let ids = names::parse(&req.name, "cycles/*/campaigns/*", "name")?;
        let c = self.load_campaign(ids[0], ids[1]).await?;
        if !(p.has_any(READERS) || c.platforms.contains(&p.subject)) {
            return Err(Error::denied(format!(
                "{} may not read {}",
                p.subject, req.name
            )));
        }
        Ok(c)
    }

    pub(crate) async fn list_campaigns(
        &self,
        p: Principal,
        req: ListCampaignsRequest,
    ) -> Result<ListCampaignsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let pg = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        let all = p.has_any(READERS);
        if !all && !p.has(Role::SurveyPlatform) {
            return Err(Error::denied(format!(
                "{} may not list campaigns",
                p.subject
            )));
        }
        let platform = (!all).then_some(p.subject.as_str());
        let mut campaigns = store::campaigns(&self.db.read, &cycle, platform, &pg).await?;
        let next_page_token = pg.next_token(&mut campaigns);
        Ok(ListCampaignsResponse {
            campaigns,
            next_page_token,
        })
    }

    pub(crate) async fn accept_sample(
        &self,
        p: Principal,
        req: AcceptInsufficientSampleRequest,
    ) -> Result<UnitReviewScore, Error> {
        p.require(&[Role::Office], "accept small samples")?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "say why the sample is accepted",
        )?;
        let ctx = self.context(&req.campaign, "campaign").await?;
        self.admit(&p, "AcceptInsufficientSample", &ctx.cycle)
            .await?;
        if !ctx.units.contains(&req.unit) {
            return Err(Error::invalid(
                "unit",
                format!("{:?} is not a unit of the campaign's group", req.unit),
            ));
        }
        let reason = req.reason.trim();
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("AcceptInsufficientSample"),
            async |w| {
                store::accept_sample(w.conn, &ctx.name, &req.unit, reason, &p.subject, now_ms())
                    .await?;
                w.changed(&ctx.cycle, &ctx.group);
                w.audit(
                    "samples.accept",
                    &ctx.name,
                    reason,
                    json!({"unit": req.unit}),
                );
                Ok(())
            },
        )
        .await?;
        let scores = self
            .scores(
                &format!("cycles/{}/groups/{}", ctx.cycle, ctx.group),
                0,
                false,
            )
            .await?;
        scores
            .units
            .into_iter()
            .find(|u| u.unit == req.unit)
            .ok_or_else(|| Error::not_found(req.unit.clone()))
    }
}
