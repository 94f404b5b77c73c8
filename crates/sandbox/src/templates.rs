//! Message templates on the platform side: the registry, review, and the status webhooks.
//!
//! A template is created PENDING, reviewed after `templates.review_delay_ms` of sandbox time and
//! becomes APPROVED, or REJECTED when a rejection rule matches its name (or the control API forces
//! a decision). Every status change emits a `message_template_status_update` webhook to each
//! number of the account.

use crate::clock::Millis;
use mynah_wire::error::{ApiError, ErrorCode};
use mynah_wire::template::{Category, TemplateDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a template stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    /// In review.
    Pending,
    /// Active: can be sent.
    Approved,
    /// Refused by review.
    Rejected,
    /// Paused for low quality (sends fail with 132015).
    Paused,
    /// Disabled for good (sends fail with 132016).
    Disabled,
}

impl TemplateStatus {
    /// Upper-case wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Pending => "PENDING",
            TemplateStatus::Approved => "APPROVED",
            TemplateStatus::Rejected => "REJECTED",
            TemplateStatus::Paused => "PAUSED",
            TemplateStatus::Disabled => "DISABLED",
        }
    }

    /// Parses a status in any case (`approved`, `APPROVED`, `Approved`).
    pub fn parse(s: &str) -> Option<TemplateStatus> {
        Some(match s.to_ascii_uppercase().as_str() {
            "PENDING" | "SUBMITTED" | "CREATED" | "IN_APPEAL" => TemplateStatus::Pending,
            "APPROVED" | "ACTIVE" => TemplateStatus::Approved,
            "REJECTED" => TemplateStatus::Rejected,
            "PAUSED" => TemplateStatus::Paused,
            "DISABLED" => TemplateStatus::Disabled,
            _ => return None,
        })
    }
}

/// A template of a business account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    /// Numeric id.
    pub id: String,
    /// Owning account.
    pub waba_id: String,
    /// Definition as created (or last edited).
    pub def: TemplateDefinition,
    /// Status.
    pub status: TemplateStatus,
    /// Quality score: `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    pub quality: String,
    /// Why it was rejected (`NONE` otherwise).
    pub rejected_reason: String,
    /// Created.
    pub created_at: Millis,
    /// When the pending review concludes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_at: Option<Millis>,
    /// Decision the review will take (forced by a rule or the control API): status and reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<(TemplateStatus, String)>,
    /// Edits while approved (≤ 10 per 30 days, ≤ 1 per 24 h).
    #[serde(default)]
    pub edits: Vec<Millis>,
    /// Times it was paused for low quality (the third time disables it).
    #[serde(default)]
    pub pauses: u32,
    /// When a pause ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<Millis>,
    /// When it was last paused (utility pacing looks back 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_paused_at: Option<Millis>,
    /// Users' reactions to it (quality).
    #[serde(default)]
    pub signals: crate::model::Signals,
    /// The pacing round in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<PacingRound>,
}

/// A template's pacing round (spec §7.4): the first messages go out, later ones are held until
/// a verdict or the time limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PacingRound {
    /// When the round began (its signals count from here).
    pub started_at: Millis,
    /// Messages let through normally.
    pub sent: u32,
    /// Held messages, in order.
    pub held: Vec<String>,
    /// When the held messages go out without a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_at: Option<Millis>,
}

impl Template {
    /// The category, upper case.
    pub fn category(&self) -> Category {
        self.def.category
    }
}

/// All templates, by id, with a (waba, name, language) index.
#[derive(Debug, Default)]
pub struct Registry {
    by_id: BTreeMap<String, Template>,
    by_key: BTreeMap<(String, String, String), String>,
}

impl Registry {
    /// Adds or replaces a template.
    pub fn insert(&mut self, t: Template) {
        let key = (
            t.waba_id.clone(),
            t.def.name.clone(),
            t.def.language.clone(),
        );
        self.by_key.insert(key, t.id.clone());
        self.by_id.insert(t.id.clone(), t);
    }

    /// A template by id.
    pub fn get(&self, id: &str) -> Option<&Template> {
        self.by_id.get(id)
    }

    /// A template by id, mutable.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Template> {
        self.by_id.get_mut(id)
    }

    /// A template by account, name and language.
    pub fn find(&self, waba_id: &str, name: &str, language: &str) -> Option<&Template> {
        let key = (waba_id.to_string(), name.to_string(), language.to_string());
        self.by_key.get(&key).and_then(|id| self.by_id.get(id))
    }

    /// The account's templates, in id order.
    pub fn of(&self, waba_id: &str) -> impl Iterator<Item = &Template> {
        self.by_id.values().filter(move |t| t.waba_id == waba_id)
    }

    /// Removes a template.
    pub fn remove(&mut self, id: &str) -> Option<Template> {
        let t = self.by_id.remove(id)?;
        self.by_key.remove(&(
            t.waba_id.clone(),
            t.def.name.clone(),
            t.def.language.clone(),
        ));
        Some(t)
    }

    /// Every template, in id order.
    pub fn all(&self) -> impl Iterator<Item = &Template> {
        self.by_id.values()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.by_id.clear();
        self.by_key.clear();
    }
}

/// Checks that a template may be sent: it exists in that language and is active (spec §2.7,
/// §7.5). Returns the error the platform answers with otherwise.
pub fn sendable<'a>(
    found: Option<&'a Template>,
    name: &str,
    language: &str,
) -> Result<&'a Template, ApiError> {
    let missing = || {
        ApiError::with_details(
            ErrorCode::TemplateDoesNotExist,
            format!("template name ({name}) does not exist in {language}"),
        )
    };
    let t = found.ok_or_else(missing)?;
    match t.status {
        TemplateStatus::Approved => Ok(t),
        TemplateStatus::Paused => Err(ApiError::with_details(
            ErrorCode::TemplatePaused,
            format!("Template {name} ({language}) is paused due to low quality."),
        )),
        TemplateStatus::Disabled => Err(ApiError::with_details(
            ErrorCode::TemplateDisabled,
            format!("Template {name} ({language}) is permanently disabled."),
        )),
        TemplateStatus::Pending | TemplateStatus::Rejected => Err(ApiError::with_details(
            ErrorCode::TemplateDoesNotExist,
            format!(
                "template name ({name}) in {language} is {} and cannot be sent",
                t.status.as_str()
            ),
        )),
    }
}
