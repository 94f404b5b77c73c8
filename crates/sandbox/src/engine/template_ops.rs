//! Template management on the [`World`]: seeding, creation, review, edits, deletion, forced
//! status changes, and the `message_template_status_update` webhooks they cause.

use super::{Effects, World};
use crate::clock::{DAY, Millis};
use crate::config::{TemplateConfig, default_templates};
use crate::scheduler::Timer;
use crate::store::{Kind, Snapshot, Write};
use crate::templates::{Template, TemplateStatus};
use crate::webhooks::{EventSummary, NewEvent};
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::template::{TemplateDefinition, parse_create};
use mynah_wire::webhook::{Change, ChangeValue, TemplateStatusUpdate};

/// What an edit may change (spec §7.7).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TemplateEdit {
    /// New components.
    #[serde(default)]
    pub components: Option<serde_json::Value>,
    /// New category (not for an approved template).
    #[serde(default)]
    pub category: Option<String>,
    /// New time-to-live.
    #[serde(default)]
    pub message_send_ttl_seconds: Option<i64>,
}

impl World {
    /// Reads templates back from the journal; on the very first start, creates the configured
    /// ones instead.
    pub(super) fn load_templates(
        &mut self,
        snapshot: &mut Snapshot,
        seeded: bool,
        now: Millis,
        fx: &mut Effects,
    ) {
        let rows = snapshot.take(Kind::Template);
        if !seeded && rows.is_empty() {
            self.seed_templates(now, fx);
            fx.put(Kind::Meta, "templates_seeded", &true);
            return;
        }
        for (_, json) in rows {
            if let Ok(t) = serde_json::from_str::<Template>(&json) {
                if let Some(at) = t.review_at {
                    fx.timers
                        .push((at.max(now), Timer::TemplateReview(t.id.clone())));
                }
                if let Some(at) = t.paused_until {
                    fx.timers
                        .push((at.max(now), Timer::TemplateUnpause(t.id.clone())));
                }
                if let Some(at) = t.pacing.as_ref().and_then(|r| r.release_at) {
                    fx.timers
                        .push((at.max(now), Timer::PacingRelease(t.id.clone())));
                }
                self.templates.insert(t);
            }
        }
    }

    fn seed_templates(&mut self, now: Millis, fx: &mut Effects) {
        let mut configured: Vec<TemplateConfig> = if self.cfg.template_review.seed_defaults {
            default_templates()
        } else {
            Vec::new()
        };
        configured.extend(self.cfg.templates.iter().cloned());
        let accounts: Vec<String> = self.accounts.keys().cloned().collect();
        for waba_id in accounts {
            for tc in &configured {
                let body = serde_json::Value::Object(tc.definition.clone());
                let Ok(bytes) = serde_json::to_vec(&body) else {
                    continue;
                };
                let def = match parse_create(&bytes) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(template = ?tc.definition.get("name"), error = %e, "configured template is not valid; skipped");
                        continue;
                    }
                };
                let status = tc
                    .status
                    .as_deref()
                    .and_then(TemplateStatus::parse)
                    .unwrap_or(TemplateStatus::Approved);
                let t = Template {
                    id: self.template_id(),
                    waba_id: waba_id.clone(),
                    def,
                    status,
                    quality: if status == TemplateStatus::Approved {
                        "GREEN"
                    } else {
                        "UNKNOWN"
                    }
                    .to_string(),
                    rejected_reason: "NONE".to_string(),
                    created_at: now,
                    review_at: None,
                    verdict: None,
                    edits: Vec::new(),
                    pauses: 0,
                    paused_until: None,
                    last_paused_at: None,
                    signals: Default::default(),
                    pacing: None,
                };
                fx.put(Kind::Template, &t.id, &t);
                self.templates.insert(t);
            }
        }
    }

    fn template_id(&mut self) -> String {
        loop {
            let id = self.template_ids.numeric();
            if self.templates.get(&id).is_none() {
                return id;
            }
        }
    }

    /// Creates a template: validated, PENDING, reviewed after the configured delay.
    pub fn create_template(
        &mut self,
        waba_id: &str,
        body: &[u8],
        now: Millis,
    ) -> Result<(Template, Effects), ApiError> {
        let def = parse_create(body)?;
        if self
            .templates
            .find(waba_id, &def.name, &def.language)
            .is_some()
        {
            return Err(ApiError::invalid_param(format!(
                "Content in this language already exists: a template named {} in {} exists already.",
                def.name, def.language
            )));
        }
        let limit = self.cfg.template_review.max_per_account;
        if self.templates.of(waba_id).count() >= limit {
            return Err(ApiError::with_details(
                ErrorCode::TemplateCountLimit,
                format!("The account already has {limit} message templates, the most it may have."),
            ));
        }
        let mut fx = self.fx();
        let review_at = now + self.cfg.template_review.review_delay_ms.max(0);
        let verdict = self.rejection_rule(&def);
        let t = Template {
            id: self.template_id(),
            waba_id: waba_id.to_string(),
            def,
            status: TemplateStatus::Pending,
            quality: "UNKNOWN".to_string(),
            rejected_reason: "NONE".to_string(),
            created_at: now,
            review_at: Some(review_at),
            verdict,
            edits: Vec::new(),
            pauses: 0,
            paused_until: None,
            last_paused_at: None,
            signals: Default::default(),
            pacing: None,
        };
        fx.put(Kind::Template, &t.id, &t);
        fx.timers
            .push((review_at, Timer::TemplateReview(t.id.clone())));
        self.templates.insert(t.clone());
        self.note_rng(&mut fx);
        Ok((t, fx))
    }

    fn rejection_rule(&self, def: &TemplateDefinition) -> Option<(TemplateStatus, String)> {
        self.cfg
            .template_review
            .reject_names_containing
            .iter()
            .find(|needle| !needle.is_empty() && def.name.contains(needle.as_str()))
            .map(|_| (TemplateStatus::Rejected, "INVALID_FORMAT".to_string()))
    }

    /// A template's review timer fired: APPROVED, or the verdict a rule or the control API set.
    pub fn on_template_review(&mut self, id: &str, now: Millis) -> Effects {
        let fx = self.fx();
        let Some(t) = self.templates.get_mut(id) else {
            return fx;
        };
        match t.review_at {
            Some(at) if at <= now && t.status == TemplateStatus::Pending => {}
            _ => return fx,
        }
        let (status, reason) = t
            .verdict
            .take()
            .unwrap_or((TemplateStatus::Approved, "NONE".to_string()));
        self.settle_template(id, status, reason, now)
            .map(|(_, fx)| fx)
            .unwrap_or(fx)
    }

    /// Puts a template into `status` now: no review pending any more, the rejection reason set,
    /// journalled, and its `message_template_status_update` webhook.
    fn settle_template(
        &mut self,
        id: &str,
        status: TemplateStatus,
        reason: String,
        now: Millis,
    ) -> Option<(Template, Effects)> {
        let mut fx = self.fx();
        let t = self.templates.get_mut(id)?;
        t.review_at = None;
        t.verdict = None;
        t.status = status;
        t.rejected_reason = if status == TemplateStatus::Rejected {
            reason.clone()
        } else {
            "NONE".to_string()
        };
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        fx.events
            .extend(self.template_events(&t, status.as_str(), Some(reason), None, now));
        Some((t, fx))
    }

    /// Forces a template into a status now (control API), with the webhook that goes with it.
    pub fn force_template_status(
        &mut self,
        id: &str,
        status: TemplateStatus,
        reason: Option<String>,
        now: Millis,
    ) -> Result<(Template, Effects), ApiError> {
        let reason = reason.unwrap_or_else(|| {
            if status == TemplateStatus::Rejected {
                "INVALID_FORMAT"
            } else {
                "NONE"
            }
            .to_string()
        });
        self.settle_template(id, status, reason, now)
            .ok_or_else(|| {
                ApiError::with_details(ErrorCode::MynahNotFound, format!("no template {id}"))
            })
    }

    /// Sets the decision a pending template's review will take.
    pub fn set_template_verdict(
        &mut self,
        id: &str,
        status: TemplateStatus,
        reason: Option<String>,
    ) -> Result<Effects, ApiError> {
        let mut fx = self.fx();
        let t = self.templates.get_mut(id).ok_or_else(|| {
            ApiError::with_details(ErrorCode::MynahNotFound, format!("no template {id}"))
        })?;
        if t.status != TemplateStatus::Pending {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                format!("template {id} is {}, not in review", t.status.as_str()),
            ));
        }
        t.verdict = Some((
            status,
            reason.unwrap_or_else(|| "INVALID_FORMAT".to_string()),
        ));
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        Ok(fx)
    }

    /// Edits a template (spec §7.7): APPROVED, REJECTED or PAUSED ones only; an approved one at
    /// most once a day and ten times in 30 days, and not its category. Back to review.
    pub fn edit_template(
        &mut self,
        id: &str,
        edit: TemplateEdit,
        now: Millis,
    ) -> Result<(Template, Effects), ApiError> {
        let mut fx = self.fx();
        let review_at = now + self.cfg.template_review.review_delay_ms.max(0);
        let Some(current) = self.templates.get(id).cloned() else {
            return Err(ApiError::invalid_param(format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            )));
        };
        if !matches!(
            current.status,
            TemplateStatus::Approved | TemplateStatus::Rejected | TemplateStatus::Paused
        ) {
            return Err(ApiError::invalid_param(format!(
                "Template {} is {}: only APPROVED, REJECTED or PAUSED templates can be edited.",
                current.def.name,
                current.status.as_str()
            )));
        }
        let mut edits: Vec<Millis> = current
            .edits
            .iter()
            .copied()
            .filter(|t| now - t < 30 * DAY)
            .collect();
        if current.status == TemplateStatus::Approved {
            if edits.iter().any(|t| now - t < DAY) {
                return Err(ApiError::invalid_param(
                    "An approved template can be edited once in 24 hours.",
                ));
            }
            if edits.len() >= 10 {
                return Err(ApiError::invalid_param(
                    "An approved template can be edited 10 times in 30 days.",
                ));
            }
            if edit
                .category
                .as_deref()
                .is_some_and(|c| !c.eq_ignore_ascii_case(current.def.category.as_str()))
            {
                return Err(ApiError::invalid_param(
                    "The category of an approved template cannot be changed.",
                ));
            }
        }
        // Re-validate the whole definition with the changes applied.
        let mut body = serde_json::json!({
            "name": current.def.name,
            "language": current.def.language,
            "category": edit.category.clone().unwrap_or_else(|| current.def.category.as_str().to_string()),
            "parameter_format": current.def.parameter_format,
            "components": edit.components.clone().unwrap_or_else(|| current.def.components_json()),
        });
        if let Some(ttl) = edit
            .message_send_ttl_seconds
            .or(current.def.message_send_ttl_seconds)
        {
            body["message_send_ttl_seconds"] = serde_json::json!(ttl);
        }
        let bytes =
            serde_json::to_vec(&body).map_err(|e| ApiError::invalid_param(e.to_string()))?;
        let def = parse_create(&bytes)?;
        edits.push(now);
        let verdict = self.rejection_rule(&def);
        let t = self.templates.get_mut(id).ok_or_else(|| {
            ApiError::with_details(ErrorCode::MynahNotFound, format!("no template {id}"))
        })?;
        t.def = def;
        t.edits = edits;
        t.status = TemplateStatus::Pending;
        t.review_at = Some(review_at);
        t.verdict = verdict;
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        fx.timers
            .push((review_at, Timer::TemplateReview(t.id.clone())));
        Ok((t, fx))
    }

    /// Deletes an account's templates by name (every language), or one by id (spec §7.7).
    pub fn delete_templates(
        &mut self,
        waba_id: &str,
        name: &str,
        id: Option<&str>,
        now: Millis,
    ) -> Result<Effects, ApiError> {
        let mut fx = self.fx();
        let targets: Vec<Template> = self
            .templates
            .of(waba_id)
            .filter(|t| t.def.name == name && id.is_none_or(|i| t.id == i))
            .cloned()
            .collect();
        if targets.is_empty() {
            return Err(ApiError::with_details(
                ErrorCode::TemplateDoesNotExist,
                format!("template name ({name}) does not exist"),
            )
            .with_http(400));
        }
        if let Some(d) = targets
            .iter()
            .find(|t| t.status == TemplateStatus::Disabled)
        {
            return Err(ApiError::invalid_param(format!(
                "Template {} ({}) is disabled; disabled templates cannot be deleted.",
                d.def.name, d.def.language
            )));
        }
        for t in targets {
            self.templates.remove(&t.id);
            fx.write(Write::Delete {
                kind: Kind::Template,
                id: t.id.clone(),
            });
            fx.events
                .extend(self.template_events(&t, "DELETED", None, None, now));
        }
        Ok(fx)
    }

    /// The `message_template_status_update` webhook, once per distinct webhook URL of the
    /// account's numbers.
    pub(super) fn template_events(
        &self,
        t: &Template,
        event: &str,
        reason: Option<String>,
        other_info: Option<serde_json::Value>,
        now: Millis,
    ) -> Vec<NewEvent> {
        let value = TemplateStatusUpdate {
            event: event.to_string(),
            message_template_id: t.id.parse().unwrap_or(0),
            message_template_name: t.def.name.clone(),
            message_template_language: t.def.language.clone(),
            reason: reason.clone(),
            message_template_category: Some(t.def.category.as_str().to_string()),
            other_info,
            disable_info: (event == "DISABLED").then(|| serde_json::json!({ "disable_date": now / 1_000 })),
            rejection_info: (event == "REJECTED" && reason.as_deref() == Some("INVALID_FORMAT")).then(|| {
                serde_json::json!({
                    "reason": "The template's format does not follow the guidelines.",
                    "recommendation": "Review the formatting rules and submit the template again."
                })
            }),
        };
        self.account_events(
            &t.waba_id,
            "message_template_status_update",
            ChangeValue::TemplateStatus(value),
            &t.id,
            now,
        )
    }

    /// A template's quality score changes (spec §4.8, §7.5): a `message_template_quality_update`
    /// webhook; turning RED pauses an active template for 3 hours, the second time for 6 hours,
    /// and disables it the third time, each with its `message_template_status_update`.
    pub fn set_template_quality(
        &mut self,
        id: &str,
        score: &str,
        now: Millis,
    ) -> Result<(Template, Effects), ApiError> {
        self.apply_quality(id, score, true, now)
    }

    /// [`World::set_template_quality`]; a pause ends by itself only when `timed` (pacing pauses
    /// wait for a manual unpause). A pause drops the messages pacing held.
    pub(super) fn apply_quality(
        &mut self,
        id: &str,
        score: &str,
        timed: bool,
        now: Millis,
    ) -> Result<(Template, Effects), ApiError> {
        let score = score.to_ascii_uppercase();
        if !matches!(score.as_str(), "GREEN" | "YELLOW" | "RED" | "UNKNOWN") {
            return Err(ApiError::with_details(
                ErrorCode::MynahBadRequest,
                format!("{score:?} is not a quality score (GREEN, YELLOW, RED, UNKNOWN)"),
            ));
        }
        let mut fx = self.fx();
        let t = self.templates.get_mut(id).ok_or_else(|| {
            ApiError::with_details(ErrorCode::MynahNotFound, format!("no template {id}"))
        })?;
        let previous = std::mem::replace(&mut t.quality, score.clone());
        let mut event = None;
        if score == "RED" && previous != "RED" && t.status == TemplateStatus::Approved {
            t.pauses += 1;
            t.last_paused_at = Some(now);
            t.signals = Default::default();
            if t.pauses >= 3 {
                t.status = TemplateStatus::Disabled;
                t.paused_until = None;
                event = Some("DISABLED");
            } else {
                let hours = if t.pauses == 1 { 3 } else { 6 };
                let until = now + hours * 3_600_000;
                t.status = TemplateStatus::Paused;
                if timed {
                    t.paused_until = Some(until);
                    fx.timers
                        .push((until, Timer::TemplateUnpause(t.id.clone())));
                }
                event = Some("PAUSED");
            }
        }
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        if previous != score {
            let value = mynah_wire::webhook::TemplateQualityUpdate {
                previous_quality_score: previous,
                new_quality_score: score,
                message_template_id: t.id.parse().unwrap_or(0),
                message_template_name: t.def.name.clone(),
                message_template_language: t.def.language.clone(),
            };
            fx.events.extend(self.account_events(
                &t.waba_id,
                "message_template_quality_update",
                ChangeValue::TemplateQuality(value),
                &t.id,
                now,
            ));
        }
        if let Some(e) = event {
            fx.events.extend(self.template_events(
                &t,
                e,
                Some("NONE".to_string()),
                other_info(e, t.pauses, timed),
                now,
            ));
            self.drop_held(id, "the template was paused", now, &mut fx);
        }
        Ok((t, fx))
    }

    /// A pause ended: the template is active again, its quality pending (`UNKNOWN`).
    pub fn on_template_unpause(&mut self, id: &str, now: Millis) -> Effects {
        let mut fx = self.fx();
        let Some(t) = self.templates.get_mut(id) else {
            return fx;
        };
        match t.paused_until {
            Some(at) if at <= now && t.status == TemplateStatus::Paused => {}
            _ => return fx,
        }
        self.unpause(id, now, &mut fx);
        fx
    }

    /// Unpauses a paused template by hand (Cloud `POST /{template_id}/unpause`); the only way
    /// out of a pause that pacing caused.
    pub fn unpause_template(&mut self, id: &str, now: Millis) -> Result<Effects, ApiError> {
        let mut fx = self.fx();
        let t = self.templates.get(id).ok_or_else(|| {
            ApiError::with_details(ErrorCode::MynahNotFound, format!("no template {id}"))
        })?;
        if t.status != TemplateStatus::Paused {
            return Err(ApiError::invalid_value(format!(
                "Template {} is {}, not PAUSED.",
                t.def.name,
                t.status.as_str()
            )));
        }
        self.unpause(id, now, &mut fx);
        Ok(fx)
    }

    fn unpause(&mut self, id: &str, now: Millis, fx: &mut Effects) {
        let Some(t) = self.templates.get_mut(id) else {
            return;
        };
        t.paused_until = None;
        t.status = TemplateStatus::Approved;
        t.quality = "UNKNOWN".to_string();
        let t = t.clone();
        fx.put(Kind::Template, &t.id, &t);
        fx.events.extend(self.template_events(
            &t,
            "APPROVED",
            Some("NONE".to_string()),
            Some(info(
                "UNPAUSE",
                "The pause ended; the template can be sent again.",
            )),
            now,
        ));
    }

    /// One event per distinct webhook URL among the account's numbers (the subscribers of
    /// `webhooks.subscribers` get it once).
    pub(super) fn account_events(
        &self,
        waba_id: &str,
        field: &str,
        value: ChangeValue,
        key: &str,
        now: Millis,
    ) -> Vec<NewEvent> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for n in self.numbers.values().filter(|n| n.waba_id == waba_id) {
            if seen.contains(&n.webhook.url.as_str()) {
                continue;
            }
            seen.push(n.webhook.url.as_str());
            // Subscribers get the event once, with the first copy.
            let own_only = !out.is_empty();
            out.push(NewEvent {
                own_only,
                phone_number_id: n.phone_number_id.clone(),
                waba_id: waba_id.to_string(),
                key: format!("template:{key}"),
                time: Some(now / 1_000),
                change: Change {
                    value: value.clone(),
                    field: field.to_string(),
                },
                summary: EventSummary {
                    field: field.to_string(),
                    ..EventSummary::default()
                },
            });
        }
        out
    }
}

/// `other_info` of a pause or a disabling (spec §4.8).
fn other_info(event: &str, pauses: u32, timed: bool) -> Option<serde_json::Value> {
    match (event, pauses) {
        ("PAUSED", _) if !timed => Some(info(
            "FIRST_PAUSE",
            "The template was paused after pacing found low quality; unpause it by hand.",
        )),
        ("PAUSED", 1) => Some(info(
            "FIRST_PAUSE",
            "The template was paused for 3 hours because of low quality.",
        )),
        ("PAUSED", _) => Some(info(
            "SECOND_PAUSE",
            "The template was paused for 6 hours because of low quality.",
        )),
        ("DISABLED", _) => Some(info(
            "DISABLED",
            "The template was paused too often and is now disabled.",
        )),
        _ => None,
    }
}

fn info(title: &str, description: &str) -> serde_json::Value {
    serde_json::json!({ "title": title, "description": description })
}
