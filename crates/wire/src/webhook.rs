//! Webhook payloads (platform spec §4.3–§4.5, §4.8): the `whatsapp_business_account` envelope,
//! inbound messages, message statuses, and the template, quality and user-preference events.
//!
//! Types serialise to the platform's exact shape and deserialise leniently, so the gateway can
//! read what the sandbox (or the real platform) sends.

use crate::error::WebhookError;
use serde::{Deserialize, Serialize};

/// `object` of every envelope.
pub const OBJECT: &str = "whatsapp_business_account";

/// The envelope of one webhook POST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `whatsapp_business_account`.
    pub object: String,
    /// One entry per business account.
    pub entry: Vec<Entry>,
}

impl Envelope {
    /// An envelope around one change of one business account.
    pub fn single(waba_id: &str, time: Option<i64>, change: Change) -> Envelope {
        Envelope {
            object: OBJECT.to_string(),
            entry: vec![Entry {
                id: waba_id.to_string(),
                time,
                changes: vec![change],
            }],
        }
    }
}

/// `entry[]`: the changes of one business account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The WABA id.
    pub id: String,
    /// Unix seconds; present on account and template fields, absent on `messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// The changes.
    pub changes: Vec<Change>,
}

/// `changes[]`: one subscribed field and its value. Deserialising reads `field` first and parses
/// `value` by it; a value that does not fit its field's shape is kept as [`ChangeValue::Other`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The value; its shape depends on `field`.
    pub value: ChangeValue,
    /// The subscription field (`messages`, `message_template_status_update`, …).
    pub field: String,
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Change, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            value: serde_json::Value,
            field: String,
        }
        let raw = Raw::deserialize(d)?;
        let value = ChangeValue::from_field(&raw.field, raw.value);
        Ok(Change {
            value,
            field: raw.field,
        })
    }
}

/// The value of a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChangeValue {
    /// `field: user_preferences` (tried first: it also carries `metadata`).
    UserPreferences(UserPreferencesValue),
    /// `field: user_id_update` (a user's business-scoped user id changed).
    UserIdUpdate(UserIdUpdateValue),
    /// `field: messages` (inbound messages, statuses, or errors).
    Messages(Box<MessagesValue>),
    /// `field: message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// `field: message_template_quality_update`.
    TemplateQuality(TemplateQualityUpdate),
    /// `field: phone_number_quality_update`.
    PhoneNumberQuality(PhoneNumberQualityUpdate),
    /// `field: template_category_update`.
    TemplateCategory(TemplateCategoryUpdate),
    /// `field: business_capability_update`.
    BusinessCapability(BusinessCapabilityUpdate),
    /// `field: account_alerts`.
    AccountAlert(AccountAlert),
    /// `field: account_update`.
    AccountUpdate(AccountUpdate),
    /// Any other field, kept as it came.
    Other(serde_json::Value),
}

impl ChangeValue {
    /// Parses a change's value by its subscription field.
    pub fn from_field(field: &str, value: serde_json::Value) -> ChangeValue {
        fn parse<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Option<T> {
            T::deserialize(v).ok()
        }
        let typed = match field {
            "messages" => parse(&value).map(|v| ChangeValue::Messages(Box::new(v))),
            "user_preferences" => parse(&value).map(ChangeValue::UserPreferences),
            "user_id_update" => parse(&value).map(ChangeValue::UserIdUpdate),
            "message_template_status_update" => parse(&value).map(ChangeValue::TemplateStatus),
            "message_template_quality_update" => parse(&value).map(ChangeValue::TemplateQuality),
            "phone_number_quality_update" => parse(&value).map(ChangeValue::PhoneNumberQuality),
            "template_category_update" => parse(&value).map(ChangeValue::TemplateCategory),
            "business_capability_update" => parse(&value).map(ChangeValue::BusinessCapability),
            "account_alerts" => parse(&value).map(ChangeValue::AccountAlert),
            "account_update" => parse(&value).map(ChangeValue::AccountUpdate),
            _ => None,
        };
        typed.unwrap_or(ChangeValue::Other(value))
    }
}

/// `value` of a `messages` change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesValue {
    /// Always `whatsapp`.
    pub messaging_product: String,
    /// The business phone number.
    pub metadata: Metadata,
    /// The users involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<Contact>>,
    /// Inbound messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<InboundMessage>>,
    /// Status updates of outbound messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
    /// System, app or account errors (spec §4.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<WebhookError>>,
}

/// `metadata`: which business number the change concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Display number, digits.
    pub display_phone_number: String,
    /// Phone number id.
    pub phone_number_id: String,
}

/// `contacts[]`: a user's profile and ids (2026 note §1.4, §1.5). Each id is left out, not
/// empty, when the platform does not send it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Contact {
    /// The profile (absent on failed statuses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// The user's `wa_id`: only when the phone number may be shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// The business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The parent BSUID (portfolios enrolled in parent ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
}

/// `profile`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    /// The user's WhatsApp name.
    #[serde(default)]
    pub name: String,
    /// The user's username (without `@`), when they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The status of an outbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// Sent to WhatsApp's servers.
    Sent,
    /// Delivered to the user's device.
    Delivered,
    /// Read by the user.
    Read,
    /// A voice message was played.
    Played,
    /// Failed; `errors[]` says why.
    Failed,
    /// On-Premises only: the user deleted the message.
    Deleted,
    /// On-Premises only: a catalog item warning.
    Warning,
}

impl StatusKind {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Sent => "sent",
            StatusKind::Delivered => "delivered",
            StatusKind::Read => "read",
            StatusKind::Played => "played",
            StatusKind::Failed => "failed",
            StatusKind::Deleted => "deleted",
            StatusKind::Warning => "warning",
        }
    }
}

/// `statuses[]` (spec §4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The message's wamid.
    pub id: String,
    /// The new status.
    pub status: StatusKind,
    /// Unix seconds, as a string.
    pub timestamp: String,
    /// The user's `wa_id`: only when the phone number may be shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// The user's business-scoped user id (left out of failed statuses of phone-addressed
    /// messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// The user's parent BSUID (portfolios enrolled in parent ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_parent_user_id: Option<String>,
    /// Echo of the send's `biz_opaque_callback_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_opaque_callback_data: Option<String>,
    /// The conversation (before v24, or inside a free entry point window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// Pricing (on `sent` and on one of `delivered`/`read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<WebhookError>>,
}

/// The On-Premises API's status webhook body (spec §10): no `entry`/`changes` envelope, just
/// `{"statuses": [...]}`, with the On-Premises error codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnPremStatuses {
    /// The statuses.
    pub statuses: Vec<OnPremStatus>,
}

/// One On-Premises status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnPremStatus {
    /// The message id.
    pub id: String,
    /// The user's `wa_id`.
    pub recipient_id: String,
    /// `sent`, `delivered`, `read`, `failed`.
    pub status: StatusKind,
    /// Unix seconds, as a string.
    pub timestamp: String,
    /// The conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// Pricing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Why it failed: On-Premises codes (470, 1013, 2061, 410 …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<OnPremWebhookError>>,
}

/// An error inside an On-Premises status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnPremWebhookError {
    /// On-Premises code.
    pub code: u32,
    /// Title.
    pub title: String,
    /// Details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl OnPremStatus {
    /// The On-Premises form of a status whose errors already carry On-Premises codes.
    pub fn from_status(s: &Status) -> OnPremStatus {
        OnPremStatus {
            id: s.id.clone(),
            recipient_id: s.recipient_id.clone().unwrap_or_default(),
            status: s.status,
            timestamp: s.timestamp.clone(),
            conversation: s.conversation.clone(),
            pricing: s.pricing.clone(),
            errors: s.errors.as_ref().map(|errs| {
                errs.iter()
                    .map(|e| OnPremWebhookError {
                        code: e.code,
                        title: e.title.clone(),
                        details: Some(e.error_data.details.clone()),
                    })
                    .collect()
            }),
        }
    }
}

/// `conversation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Conversation id.
    pub id: String,
    /// Unix seconds as a string; only on `sent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_timestamp: Option<String>,
    /// What opened it.
    pub origin: Origin,
}

/// `conversation.origin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `marketing`, `utility`, `authentication`, `service`, `referral_conversion` …
    #[serde(rename = "type")]
    pub kind: String,
}

/// `pricing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// Whether the message is charged.
    pub billable: bool,
    /// `PMP` (or `CBP` before 2025-07-01).
    pub pricing_model: String,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `marketing`, `utility`, `authentication`, `service` …
    pub category: String,
}

/// An inbound message (`messages[]`, spec §4.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Reply, forward or product-enquiry context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<InboundContext>,
    /// The user's `wa_id`: only when the phone number may be shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The user's business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// The user's parent BSUID (portfolios enrolled in parent ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_parent_user_id: Option<String>,
    /// The message's wamid.
    pub id: String,
    /// Unix seconds, as a string.
    pub timestamp: String,
    /// The type and its object (`"type": "text", "text": {...}`).
    #[serde(flatten)]
    pub body: InboundBody,
    /// Click-to-WhatsApp ad or post referral.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<serde_json::Value>,
    /// Errors (on `unsupported` messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<WebhookError>>,
}

/// `context` of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InboundContext {
    /// The business number the quoted message came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The quoted message's wamid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Forwarded (≤ 5 times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// Forwarded more than 5 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequently_forwarded: Option<bool>,
    /// Product enquiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_product: Option<serde_json::Value>,
}

/// The typed part of an inbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundBody {
    /// `text{body}`.
    Text {
        /// The text.
        text: InboundText,
    },
    /// `image{…}`.
    Image {
        /// The media.
        image: InboundMedia,
    },
    /// `audio{…}`.
    Audio {
        /// The media.
        audio: InboundMedia,
    },
    /// `video{…}`.
    Video {
        /// The media.
        video: InboundMedia,
    },
    /// `document{…}`.
    Document {
        /// The media.
        document: InboundMedia,
    },
    /// `sticker{…}`.
    Sticker {
        /// The media.
        sticker: InboundMedia,
    },
    /// `location{…}`.
    Location {
        /// The location.
        location: InboundLocation,
    },
    /// `contacts[…]` (same structure as outbound contacts).
    Contacts {
        /// The contact cards.
        contacts: Vec<serde_json::Value>,
    },
    /// Quick-reply tap on a template button.
    Button {
        /// The button.
        button: InboundButton,
    },
    /// Interactive reply (`button_reply`, `list_reply`, `nfm_reply`).
    Interactive {
        /// The reply.
        interactive: serde_json::Value,
    },
    /// `reaction{message_id, emoji?}`.
    Reaction {
        /// The reaction.
        reaction: InboundReaction,
    },
    /// `order{catalog_id, text?, product_items[]}`.
    Order {
        /// The order.
        order: serde_json::Value,
    },
    /// `system{body, wa_id, type}`.
    System {
        /// The system event.
        system: serde_json::Value,
    },
    /// An unsupported user message type (`unsupported{type}`, with `errors` 131051).
    Unsupported {
        /// What it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unsupported: Option<serde_json::Value>,
    },
    /// First-open trigger.
    RequestWelcome {},
    /// A type this crate does not know yet: the message still parses (its fields are dropped;
    /// [`raw_inbound`] keeps them).
    #[serde(other)]
    Other,
}

impl InboundBody {
    /// The wire `type`.
    pub fn type_str(&self) -> &'static str {
        match self {
            InboundBody::Text { .. } => "text",
            InboundBody::Image { .. } => "image",
            InboundBody::Audio { .. } => "audio",
            InboundBody::Video { .. } => "video",
            InboundBody::Document { .. } => "document",
            InboundBody::Sticker { .. } => "sticker",
            InboundBody::Location { .. } => "location",
            InboundBody::Contacts { .. } => "contacts",
            InboundBody::Button { .. } => "button",
            InboundBody::Interactive { .. } => "interactive",
            InboundBody::Reaction { .. } => "reaction",
            InboundBody::Order { .. } => "order",
            InboundBody::System { .. } => "system",
            InboundBody::Unsupported { .. } => "unsupported",
            InboundBody::RequestWelcome {} => "request_welcome",
            InboundBody::Other => "other",
        }
    }

    /// The media object, for media types.
    pub fn media_mut(&mut self) -> Option<&mut InboundMedia> {
        match self {
            InboundBody::Image { image: m }
            | InboundBody::Audio { audio: m }
            | InboundBody::Video { video: m }
            | InboundBody::Document { document: m }
            | InboundBody::Sticker { sticker: m } => Some(m),
            _ => None,
        }
    }
}

/// `text` of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundText {
    /// The text.
    pub body: String,
}

/// Inbound media (`image`, `audio`, `video`, `document`, `sticker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InboundMedia {
    /// Caption (image, video, document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// File name (document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// MIME type.
    #[serde(default)]
    pub mime_type: String,
    /// SHA-256 of the bytes, hex.
    #[serde(default)]
    pub sha256: String,
    /// Media id, downloadable through the media endpoints.
    #[serde(default)]
    pub id: String,
    /// Download URL (from late 2025).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Voice note (audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Animated (sticker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub animated: Option<bool>,
}

/// Inbound `location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundLocation {
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Place name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Map URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Inbound `button` (template quick reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundButton {
    /// The button's payload.
    pub payload: String,
    /// The button's text.
    pub text: String,
}

/// Inbound `reaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundReaction {
    /// The business message reacted to.
    pub message_id: String,
    /// The emoji; absent when the user removed the reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

/// `value` of a `user_preferences` change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPreferencesValue {
    /// Always `whatsapp`.
    pub messaging_product: String,
    /// The business number.
    pub metadata: Metadata,
    /// The user.
    pub contacts: Vec<Contact>,
    /// The preferences.
    pub user_preferences: Vec<UserPreference>,
}

/// One `user_preferences[]` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPreference {
    /// The user's phone number: only when it may be shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// The user's business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The user's parent BSUID (portfolios enrolled in parent ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// Human-readable detail.
    pub detail: String,
    /// `marketing_messages`.
    pub category: String,
    /// `stop` or `resume`.
    pub value: String,
    /// Unix seconds (an integer here).
    pub timestamp: i64,
}

/// `value` of a `user_id_update` change (2026 note §1.8): a user changed phone number, and with
/// it their business-scoped user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdUpdateValue {
    /// Always `whatsapp`.
    pub messaging_product: String,
    /// The business number.
    pub metadata: Metadata,
    /// The user (profile, and `wa_id` when the phone may be shared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<Contact>,
    /// The changes.
    pub user_id_update: Vec<UserIdUpdate>,
}

/// One `user_id_update[]` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdUpdate {
    /// The user's (new) phone number: only when it may be shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// `User id for <NAME> has been updated.`
    pub detail: String,
    /// The business-scoped user id before and after.
    pub user_id: IdChange,
    /// The parent BSUID before and after (portfolios enrolled in parent ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<IdChange>,
    /// Unix seconds, as a string.
    pub timestamp: String,
}

/// `{"previous", "current"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdChange {
    /// The id before.
    pub previous: String,
    /// The id now.
    pub current: String,
}

/// The `system` object of a `system` inbound message that reports a user's new phone number or
/// business-scoped user id (2026 note §1.8): `user_changed_number` carries the new `wa_id`,
/// `user_changed_user_id` no phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemChange {
    /// `User <NAME> changed from <OLD> to <NEW>`.
    pub body: String,
    /// The new phone number (`user_changed_number` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// The new business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The new parent BSUID (portfolios enrolled in parent ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// `user_changed_number` or `user_changed_user_id`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `value` of a `message_template_status_update` change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateStatusUpdate {
    /// `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`, `PENDING` …
    pub event: String,
    /// Template id (an integer in this payload).
    pub message_template_id: u64,
    /// Template name.
    pub message_template_name: String,
    /// Template language.
    pub message_template_language: String,
    /// Why (`NONE`, `INVALID_FORMAT`, …); `null` when scheduled for deletion.
    pub reason: Option<String>,
    /// Category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template_category: Option<String>,
    /// Pause/unpause details (`FIRST_PAUSE`, `SECOND_PAUSE`, `UNPAUSE` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_info: Option<serde_json::Value>,
    /// When it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_info: Option<serde_json::Value>,
    /// Rejection reason and recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_info: Option<serde_json::Value>,
}

/// `value` of a `message_template_quality_update` change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateQualityUpdate {
    /// Previous score.
    pub previous_quality_score: String,
    /// New score.
    pub new_quality_score: String,
    /// Template id.
    pub message_template_id: u64,
    /// Template name.
    pub message_template_name: String,
    /// Template language.
    pub message_template_language: String,
}

/// `value` of a `phone_number_quality_update` change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumberQualityUpdate {
    /// Display number.
    pub display_phone_number: String,
    /// `ONBOARDING`, `THROUGHPUT_UPGRADE`, `UPGRADE`, `DOWNGRADE`, `FLAGGED`, `UNFLAGGED`.
    pub event: String,
    /// `TIER_250`, `TIER_2K`, … `TIER_UNLIMITED`.
    pub max_daily_conversations_per_business: String,
}

/// `value` of a `template_category_update` change: a completed change (`previous_category`) or
/// an impending one (`correct_category`, `category_update_timestamp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateCategoryUpdate {
    /// Template id.
    pub message_template_id: u64,
    /// Template name.
    pub message_template_name: String,
    /// Template language.
    pub message_template_language: String,
    /// Category before a completed change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_category: Option<String>,
    /// The category it will have (impending change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_category: Option<String>,
    /// The new category.
    pub new_category: String,
    /// When an impending change takes effect (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_update_timestamp: Option<i64>,
}

/// `value` of a `business_capability_update` change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessCapabilityUpdate {
    /// Messaging limit per phone number (Graph v23 and older, until Feb 2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversation_per_phone: Option<i64>,
    /// Messaging limit of the business portfolio (v24+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_daily_conversations_per_business: Option<serde_json::Value>,
    /// Phone numbers allowed per business.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_business: Option<i64>,
    /// Phone numbers allowed per WABA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_phone_numbers_per_waba: Option<i64>,
}

/// `value` of an `account_alerts` change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAlert {
    /// `BUSINESS`, `WABA`, `PHONE_NUMBER` …
    pub entity_type: String,
    /// Its id.
    pub entity_id: String,
    /// `{alert_severity, alert_status, alert_type, alert_description}`.
    pub alert_info: serde_json::Value,
}

/// `value` of an `account_update` change: an `event` and the details that event carries
/// (`violation_info`, `ban_info`, `restriction_info`, `volume_tier_info`, `waba_info`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountUpdate {
    /// `ACCOUNT_VIOLATION`, `DISABLED_UPDATE`, `ACCOUNT_RESTRICTION`, `VERIFIED_ACCOUNT` …
    pub event: String,
    /// The event's details, as they come.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// An inbound message exactly as a webhook carried it, with what its change said of the user.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInbound {
    /// The business number it was sent to (`metadata.phone_number_id`).
    pub phone_number_id: String,
    /// The sender's profile name from `contacts[]`.
    pub profile_name: Option<String>,
    /// The sender's entry of `contacts[]`, untouched.
    pub contact: Option<serde_json::Value>,
    /// The message object, untouched (every field, every type, known or not).
    pub message: serde_json::Value,
}

impl RawInbound {
    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.message
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
    }

    /// `id`: the message's wamid.
    pub fn id(&self) -> Option<&str> {
        self.str_at("/id")
    }

    /// `from`: the user's `wa_id` (absent when the platform withholds the phone).
    pub fn from(&self) -> Option<&str> {
        self.str_at("/from")
    }

    /// The sender's business-scoped user id (`from_user_id`, or the contact's `user_id`).
    pub fn from_user_id(&self) -> Option<&str> {
        self.str_at("/from_user_id").or_else(|| {
            self.contact
                .as_ref()?
                .get("user_id")
                .and_then(serde_json::Value::as_str)
        })
    }

    /// The sender's parent BSUID, when the portfolio is enrolled.
    pub fn from_parent_user_id(&self) -> Option<&str> {
        self.str_at("/from_parent_user_id").or_else(|| {
            self.contact
                .as_ref()?
                .get("parent_user_id")
                .and_then(serde_json::Value::as_str)
        })
    }

    /// The sender's username, when they have one.
    pub fn username(&self) -> Option<&str> {
        self.contact
            .as_ref()?
            .pointer("/profile/username")
            .and_then(serde_json::Value::as_str)
    }

    /// Who sent it: the phone when given, else the BSUID.
    pub fn sender(&self) -> Option<&str> {
        self.from().or_else(|| self.from_user_id())
    }

    /// `type`.
    pub fn kind(&self) -> &str {
        self.str_at("/type").unwrap_or("unknown")
    }

    /// `timestamp` in unix seconds (a string on the wire; a number is accepted).
    pub fn timestamp_secs(&self) -> Option<i64> {
        let t = self.message.get("timestamp")?;
        t.as_i64().or_else(|| t.as_str()?.trim().parse().ok())
    }

    /// `context.id`: the message it replies to.
    pub fn context_id(&self) -> Option<&str> {
        self.str_at("/context/id")
    }

    /// The words the user sent that could be a keyword: a text's body, a quick-reply button's
    /// text, an interactive reply's title.
    pub fn words(&self) -> Option<&str> {
        match self.kind() {
            "text" => self.str_at("/text/body"),
            "button" => self.str_at("/button/text"),
            "interactive" => self
                .str_at("/interactive/button_reply/title")
                .or_else(|| self.str_at("/interactive/list_reply/title")),
            _ => None,
        }
    }
}

/// Every inbound message of a webhook body (`messages` changes), untyped. A body that is not a
/// platform envelope yields none.
pub fn raw_inbound(body: &[u8]) -> Vec<RawInbound> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map_or_else(|_| Vec::new(), |v| raw_inbound_in(&v))
}

/// [`raw_inbound`] of a body already parsed (one parse serves every reader of a body).
pub fn raw_inbound_in(v: &serde_json::Value) -> Vec<RawInbound> {
    let mut out = Vec::new();
    let entries = v.get("entry").and_then(serde_json::Value::as_array);
    for entry in entries.into_iter().flatten() {
        let changes = entry.get("changes").and_then(serde_json::Value::as_array);
        for change in changes.into_iter().flatten() {
            if change.get("field").and_then(serde_json::Value::as_str) != Some("messages") {
                continue;
            }
            let Some(value) = change.get("value") else {
                continue;
            };
            let pnid = value
                .pointer("/metadata/phone_number_id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let contacts = value.get("contacts").and_then(serde_json::Value::as_array);
            let messages = value.get("messages").and_then(serde_json::Value::as_array);
            for m in messages.into_iter().flatten() {
                let str_of = |v: &serde_json::Value, k: &str| {
                    v.get(k)
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                };
                let from = str_of(m, "from");
                let from_user = str_of(m, "from_user_id");
                let contact = contacts.and_then(|cs| {
                    cs.iter()
                        .find(|c| {
                            (from.is_some() && str_of(c, "wa_id") == from)
                                || (from_user.is_some() && str_of(c, "user_id") == from_user)
                        })
                        .or_else(|| (cs.len() == 1).then(|| &cs[0]))
                });
                let profile_name = contact
                    .and_then(|c| c.pointer("/profile/name"))
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string);
                out.push(RawInbound {
                    phone_number_id: pnid.to_string(),
                    profile_name,
                    contact: contact.cloned(),
                    message: m.clone(),
                });
            }
        }
    }
    out
}

/// What a webhook said about one user's identifiers at once (a `contacts[]` entry, a status's
/// recipient fields, a `user_preferences` item): the ones given belong to one person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawIdentity {
    /// Phone digits.
    pub wa_id: Option<String>,
    /// Business-scoped user id.
    pub user_id: Option<String>,
    /// Parent BSUID.
    pub parent_user_id: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// Profile name.
    pub profile_name: Option<String>,
}

/// A user's identifiers changed (`user_id_update`, or a `system` message
/// `user_changed_number` / `user_changed_user_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawIdentityUpdate {
    /// The BSUID before.
    pub previous_user_id: Option<String>,
    /// The phone before (a system message's `from`).
    pub previous_wa_id: Option<String>,
    /// The BSUID now.
    pub user_id: Option<String>,
    /// The parent BSUID now.
    pub parent_user_id: Option<String>,
    /// The phone now (`user_changed_number`, or the update's `wa_id`).
    pub wa_id: Option<String>,
    /// Where: `user_id_update` or `system:<type>`.
    pub source: String,
    /// Unix seconds, when given.
    pub timestamp: Option<i64>,
}

fn s_at(v: &serde_json::Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Every change value of a webhook body with its field.
fn change_values(v: &serde_json::Value) -> Vec<(&str, &serde_json::Value)> {
    let mut out = Vec::new();
    let entries = v.get("entry").and_then(serde_json::Value::as_array);
    for entry in entries.into_iter().flatten() {
        let changes = entry.get("changes").and_then(serde_json::Value::as_array);
        for change in changes.into_iter().flatten() {
            if let (Some(field), Some(value)) = (
                change.get("field").and_then(serde_json::Value::as_str),
                change.get("value"),
            ) {
                out.push((field, value));
            }
        }
    }
    out
}

/// Every set of identifiers a webhook body names together: the `contacts[]` of messages and
/// statuses, the recipient fields of statuses, `user_preferences` items. A body that is not a
/// platform envelope yields none.
pub fn raw_identities(body: &[u8]) -> Vec<RawIdentity> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map_or_else(|_| Vec::new(), |v| raw_identities_in(&v))
}

/// [`raw_identities`] of a body already parsed.
pub fn raw_identities_in(v: &serde_json::Value) -> Vec<RawIdentity> {
    let mut out = Vec::new();
    for (field, value) in change_values(v) {
        if field != "messages" && field != "user_preferences" {
            continue;
        }
        let contacts = value.get("contacts").and_then(serde_json::Value::as_array);
        for c in contacts.into_iter().flatten() {
            out.push(RawIdentity {
                wa_id: s_at(c, "/wa_id"),
                user_id: s_at(c, "/user_id"),
                parent_user_id: s_at(c, "/parent_user_id"),
                username: s_at(c, "/profile/username"),
                profile_name: s_at(c, "/profile/name"),
            });
        }
        let statuses = value.get("statuses").and_then(serde_json::Value::as_array);
        for st in statuses.into_iter().flatten() {
            out.push(RawIdentity {
                wa_id: s_at(st, "/recipient_id"),
                user_id: s_at(st, "/recipient_user_id"),
                parent_user_id: s_at(st, "/recipient_parent_user_id"),
                ..RawIdentity::default()
            });
        }
        let prefs = value
            .get("user_preferences")
            .and_then(serde_json::Value::as_array);
        for p in prefs.into_iter().flatten() {
            out.push(RawIdentity {
                wa_id: s_at(p, "/wa_id"),
                user_id: s_at(p, "/user_id"),
                parent_user_id: s_at(p, "/parent_user_id"),
                ..RawIdentity::default()
            });
        }
    }
    out.retain(|i| i.wa_id.is_some() || i.user_id.is_some() || i.parent_user_id.is_some());
    out
}

/// Every change of a user's identifiers a webhook body reports.
pub fn raw_identity_updates(body: &[u8]) -> Vec<RawIdentityUpdate> {
    serde_json::from_slice::<serde_json::Value>(body)
        .map_or_else(|_| Vec::new(), |v| raw_identity_updates_in(&v))
}

/// [`raw_identity_updates`] of a body already parsed.
pub fn raw_identity_updates_in(v: &serde_json::Value) -> Vec<RawIdentityUpdate> {
    let mut out = Vec::new();
    for (field, value) in change_values(v) {
        match field {
            "user_id_update" => {
                let items = value
                    .get("user_id_update")
                    .and_then(serde_json::Value::as_array);
                for u in items.into_iter().flatten() {
                    out.push(RawIdentityUpdate {
                        previous_user_id: s_at(u, "/user_id/previous"),
                        user_id: s_at(u, "/user_id/current"),
                        parent_user_id: s_at(u, "/parent_user_id/current"),
                        wa_id: s_at(u, "/wa_id"),
                        previous_wa_id: None,
                        source: "user_id_update".to_string(),
                        timestamp: u
                            .get("timestamp")
                            .and_then(|t| t.as_i64().or_else(|| t.as_str()?.parse().ok())),
                    });
                }
            }
            "messages" => {
                let messages = value.get("messages").and_then(serde_json::Value::as_array);
                for m in messages.into_iter().flatten() {
                    if m.get("type").and_then(serde_json::Value::as_str) != Some("system") {
                        continue;
                    }
                    let kind = s_at(m, "/system/type").unwrap_or_default();
                    let changed_number =
                        kind == "user_changed_number" || kind == "customer_changed_number";
                    if !changed_number && kind != "user_changed_user_id" {
                        continue;
                    }
                    let previous_user_id = s_at(m, "/from_user_id");
                    out.push(RawIdentityUpdate {
                        previous_user_id,
                        previous_wa_id: s_at(m, "/from"),
                        user_id: s_at(m, "/system/user_id"),
                        parent_user_id: s_at(m, "/system/parent_user_id"),
                        wa_id: if changed_number {
                            s_at(m, "/system/wa_id").or_else(|| s_at(m, "/system/new_wa_id"))
                        } else {
                            None
                        },
                        source: format!("system:{kind}"),
                        timestamp: m
                            .get("timestamp")
                            .and_then(|t| t.as_i64().or_else(|| t.as_str()?.parse().ok())),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// A body of statuses and their contacts and nothing else (by far the most frequent webhook),
/// read typed straight from its bytes: its statuses and the ids they name, with no
/// `serde_json::Value` tree built and dropped on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusesOnly {
    /// The statuses, in the body's order: what [`Envelope`]'s `messages` changes hold.
    pub statuses: Vec<Status>,
    /// The ids each contact and each status names, as [`raw_identities_in`] gives them.
    pub identities: Vec<RawIdentity>,
}

/// Reads `body` when it holds statuses only: every change a `messages` one whose value has
/// `messaging_product`, `metadata`, `statuses` and perhaps `contacts`, and no other key. `None`
/// for every other body (inbound messages, errors, another field, an unknown key, a shape that
/// does not fit): read that one the general way ([`Envelope`], [`raw_inbound_in`],
/// [`raw_identities_in`], [`raw_identity_updates_in`]), which give the same as this for every
/// body this accepts, and nothing from inbound messages or id changes. The values it does not
/// read it skips unparsed, so a body the general readers reject as a whole for what those hold
/// (a lone surrogate escape, a number out of range, nesting past 128 levels) it still reads.
pub fn statuses_only(body: &[u8]) -> Option<StatusesOnly> {
    // The general readers' shapes, with the same required fields, so that a body this accepts
    // is also an `Envelope`.
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "object")]
        _object: String,
        entry: Vec<BodyEntry>,
    }
    #[derive(Deserialize)]
    struct BodyEntry {
        #[serde(rename = "id")]
        _id: String,
        #[serde(rename = "time", default)]
        _time: Option<i64>,
        changes: Vec<BodyChange>,
    }
    #[derive(Deserialize)]
    struct BodyChange {
        field: String,
        value: BodyValue,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BodyValue {
        #[serde(rename = "messaging_product")]
        _messaging_product: String,
        #[serde(rename = "metadata")]
        _metadata: Metadata,
        #[serde(default)]
        contacts: Option<Vec<Contact>>,
        statuses: Vec<Status>,
    }
    // JSON is UTF-8 throughout, in the values skipped too.
    let body: Body = serde_json::from_str(std::str::from_utf8(body).ok()?).ok()?;
    // As `s_at` reads them: an empty string is no id.
    fn given(s: Option<String>) -> Option<String> {
        s.filter(|s| !s.is_empty())
    }
    let mut statuses = Vec::new();
    let mut identities = Vec::new();
    for change in body.entry.into_iter().flat_map(|e| e.changes) {
        if change.field != "messages" {
            return None;
        }
        // In `raw_identities_in`'s order: a change's contacts, then its statuses.
        for c in change.value.contacts.into_iter().flatten() {
            let (username, profile_name) = c
                .profile
                .map_or((None, None), |p| (p.username, Some(p.name)));
            identities.push(RawIdentity {
                wa_id: given(c.wa_id),
                user_id: given(c.user_id),
                parent_user_id: given(c.parent_user_id),
                username: given(username),
                profile_name: given(profile_name),
            });
        }
        for s in &change.value.statuses {
            identities.push(RawIdentity {
                wa_id: given(s.recipient_id.clone()),
                user_id: given(s.recipient_user_id.clone()),
                parent_user_id: given(s.recipient_parent_user_id.clone()),
                ..RawIdentity::default()
            });
        }
        statuses.extend(change.value.statuses);
    }
    identities.retain(|i| i.wa_id.is_some() || i.user_id.is_some() || i.parent_user_id.is_some());
    Some(StatusesOnly {
        statuses,
        identities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statuses of every kind the platform sends, in two entries and three changes.
    const STATUSES_ONLY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[
        {"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1555","phone_number_id":"pn"},"statuses":[
            {"id":"wamid.1","status":"sent","timestamp":"1750091045","recipient_id":"4915100000001","recipient_user_id":"DE.1","biz_opaque_callback_data":"m1",
             "conversation":{"id":"c1","origin":{"type":"utility"}},
             "pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}},
            {"id":"wamid.2","status":"delivered","timestamp":"1750091046","recipient_id":"4915100000002","recipient_user_id":"","recipient_parent_user_id":"DE.P.2"}],
          "contacts":[{"profile":{"name":"Ana","username":"ana"},"wa_id":"4915100000001","user_id":"DE.1"},{"profile":{"name":""},"user_id":"DE.2","parent_user_id":"DE.P.2"},{"wa_id":""}]}},
          {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1555","phone_number_id":"pn"},"statuses":[]}}]},
        {"id":"2","time":1750091047,"changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1556","phone_number_id":"pn2"},"statuses":[
            {"id":"wamid.3","status":"failed","timestamp":"1750091047","recipient_user_id":"US.3","recipient_id":null,
             "errors":[{"code":131026,"title":"Message undeliverable","message":"Message undeliverable","error_data":{"details":"d"},"href":"h"}]},
            {"id":"wamid.4","status":"read","timestamp":"1750091048"}]}}]}]}"#;

    #[test]
    fn a_body_of_statuses_reads_typed_as_the_general_readers_read_it() {
        let only = statuses_only(STATUSES_ONLY).expect("a body of statuses only");
        let v: serde_json::Value = serde_json::from_slice(STATUSES_ONLY).unwrap();
        let env = Envelope::deserialize(&v).unwrap();
        let statuses: Vec<Status> = env
            .entry
            .into_iter()
            .flat_map(|e| e.changes)
            .flat_map(|c| match c.value {
                ChangeValue::Messages(m) => m.statuses.unwrap_or_default(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(statuses.len(), 4);
        assert_eq!(only.statuses, statuses);
        assert_eq!(only.identities, raw_identities_in(&v));
        assert_eq!(only.identities.len(), 5, "{:?}", only.identities);
        assert_eq!(only.identities[0].username.as_deref(), Some("ana"));
        assert_eq!(
            only.identities[1].profile_name, None,
            "an empty name is none"
        );
        assert_eq!(only.identities[3].user_id, None, "an empty id is no id");
        assert!(raw_inbound_in(&v).is_empty());
        assert!(raw_identity_updates_in(&v).is_empty());
    }

    #[test]
    fn any_other_body_is_left_to_the_general_readers() {
        let text = std::str::from_utf8(STATUSES_ONLY).unwrap();
        let first = r#""statuses":[
            {"id":"wamid.1""#;
        assert!(text.contains(first));
        let with = |extra: &str| {
            let changed = text.replacen(first, &format!("{extra}{first}"), 1);
            assert_ne!(changed, text);
            statuses_only(changed.as_bytes())
        };
        // Keys the general readers look at, and any key unknown here.
        assert!(
            with(r#""messages":[{"from":"4915100000001","id":"wamid.in","type":"text"}],"#)
                .is_none()
        );
        assert!(with(r#""errors":[{"code":131000}],"#).is_none());
        assert!(with(r#""user_preferences":[],"#).is_none());
        assert!(with(r#""anything":1,"#).is_none());
        // Another field, a value of another shape, an entry without its id, no JSON at all.
        let other_field = text.replacen(r#""field":"messages""#, r#""field":"account_update""#, 1);
        assert!(statuses_only(other_field.as_bytes()).is_none());
        let no_metadata = text.replacen(
            r#""metadata":{"display_phone_number":"1555","phone_number_id":"pn"},"#,
            "",
            1,
        );
        assert!(statuses_only(no_metadata.as_bytes()).is_none());
        assert!(statuses_only(text.replacen(r#""id":"1","#, "", 1).as_bytes()).is_none());
        assert!(
            statuses_only(
                br#"{"statuses":[{"id":"w","status":"sent","timestamp":"1","recipient_id":"1"}]}"#
            )
            .is_none()
        );
        // Contacts of a shape the general readers read but the typed one does not.
        let null_name = text.replacen(
            r#"{"wa_id":""}"#,
            r#"{"profile":{"name":null},"wa_id":""}"#,
            1,
        );
        assert_ne!(null_name, text);
        assert!(statuses_only(null_name.as_bytes()).is_none());
        let v: serde_json::Value = serde_json::from_slice(null_name.as_bytes()).unwrap();
        assert!(Envelope::deserialize(&v).is_ok() && !raw_identities_in(&v).is_empty());
        let mut bad_utf8 = text.replacen("wamid.4", "wamid.4\u{1}", 1).into_bytes();
        let at = bad_utf8.iter().position(|b| *b == 1).unwrap();
        bad_utf8[at] = 0xff;
        assert!(serde_json::from_slice::<serde_json::Value>(&bad_utf8).is_err());
        assert!(statuses_only(&bad_utf8).is_none());
        assert!(statuses_only(b"not json").is_none());
        assert!(statuses_only(b"null").is_none());
    }

    #[test]
    fn inbound_messages_of_unknown_types_parse_and_stay_whole() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1555","phone_number_id":"pn"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"4915"}],"messages":[{"from":"4915","id":"wamid.A","timestamp":"1750091045","type":"poll_vote","poll_vote":{"option":2}},{"from":"4915","id":"wamid.B","timestamp":"1750091046","type":"button","button":{"payload":"p","text":"STOP"},"context":{"from":"1555","id":"wamid.X"}}]}}]}]}"#;
        let env: Envelope = serde_json::from_slice(body).unwrap();
        let ChangeValue::Messages(v) = &env.entry[0].changes[0].value else {
            panic!("a messages change");
        };
        let msgs = v.messages.as_ref().unwrap();
        assert_eq!(msgs[0].body, InboundBody::Other);
        assert_eq!(msgs[0].body.type_str(), "other");
        let raw = raw_inbound(body);
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[0].kind(), "poll_vote");
        assert_eq!(raw[0].message["poll_vote"]["option"], 2);
        assert_eq!(raw[0].profile_name.as_deref(), Some("Ana"));
        assert_eq!(raw[0].phone_number_id, "pn");
        assert_eq!(raw[0].timestamp_secs(), Some(1_750_091_045));
        assert_eq!(
            (raw[1].words(), raw[1].context_id()),
            (Some("STOP"), Some("wamid.X"))
        );
        assert!(raw_inbound(b"not json").is_empty());
    }

    #[test]
    fn account_and_template_fields_parse_by_shape() {
        let cases = [
            (
                "template_category_update",
                r#"{"message_template_id":1,"message_template_name":"t","message_template_language":"en_US","previous_category":"UTILITY","new_category":"MARKETING"}"#,
                "category",
            ),
            (
                "business_capability_update",
                r#"{"max_daily_conversations_per_business":"TIER_2K","max_phone_numbers_per_business":20}"#,
                "capability",
            ),
            (
                "account_alerts",
                r#"{"entity_type":"WABA","entity_id":"9","alert_info":{"alert_severity":"WARNING","alert_status":"ACTIVE","alert_type":"INCREASED_CAPABILITIES_ELIGIBILITY_DEFERRED","alert_description":"d"}}"#,
                "alert",
            ),
            (
                "account_update",
                r#"{"event":"ACCOUNT_VIOLATION","violation_info":{"violation_type":"SCAM"}}"#,
                "account",
            ),
            (
                "message_template_status_update",
                r#"{"event":"APPROVED","message_template_id":1,"message_template_name":"t","message_template_language":"en_US","reason":"NONE"}"#,
                "status",
            ),
            (
                "message_template_quality_update",
                r#"{"previous_quality_score":"GREEN","new_quality_score":"RED","message_template_id":1,"message_template_name":"t","message_template_language":"en_US"}"#,
                "quality",
            ),
            ("security", r#"{"event":"PIN_CHANGED"}"#, "other"),
            ("messages", r#"{"not":"a messages value"}"#, "other"),
        ];
        for (field, raw, want) in cases {
            let change: Change =
                serde_json::from_str(&format!(r#"{{"value":{raw},"field":"{field}"}}"#)).unwrap();
            let v = change.value;
            let got = match &v {
                ChangeValue::TemplateCategory(_) => "category",
                ChangeValue::BusinessCapability(_) => "capability",
                ChangeValue::AccountAlert(_) => "alert",
                ChangeValue::AccountUpdate(_) => "account",
                ChangeValue::TemplateStatus(_) => "status",
                ChangeValue::TemplateQuality(_) => "quality",
                _ => "other",
            };
            assert_eq!(got, want, "{raw}");
            assert_eq!(
                serde_json::to_value(&v).unwrap(),
                serde_json::from_str::<serde_json::Value>(raw).unwrap()
            );
        }
    }

    #[test]
    fn numbers_survive_a_round_trip() {
        // Found by the `webhook` fuzz target: without serde_json's float_roundtrip, the number
        // parsed to a double one unit in the last place off, and its serialised form parsed to
        // another one, so a kept value changed on its way through.
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"statuses":[{"errors":[{"code":133333333333333333333333333331026}]}]}}]}]}"#;
        let env: Envelope = serde_json::from_slice(body).unwrap();
        let again: Envelope = serde_json::from_slice(&serde_json::to_vec(&env).unwrap()).unwrap();
        assert_eq!(again, env);

        let raw = raw_inbound(
            br#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"type":"location","location":{"latitude":10.938711676632721,"longitude":-57.179661383605676}}]}}]}]}"#,
        );
        assert_eq!(raw[0].message["location"]["latitude"], 10.938711676632721);
        assert_eq!(raw[0].message["location"]["longitude"], -57.179661383605676);
    }

    #[test]
    fn inbound_text_round_trips() {
        let raw = r#"{"from":"16505551234","id":"wamid.X","timestamp":"1750091045","type":"text","text":{"body":"Hi"}}"#;
        let m: InboundMessage = serde_json::from_str(raw).unwrap();
        assert_eq!(m.body.type_str(), "text");
        assert_eq!(serde_json::to_string(&m).unwrap(), raw);
    }

    #[test]
    fn status_envelope_shape() {
        let st = Status {
            id: "wamid.A".into(),
            status: StatusKind::Sent,
            timestamp: "1".into(),
            recipient_id: Some("491".into()),
            recipient_user_id: Some("DE.1502576394655843".into()),
            recipient_parent_user_id: None,
            biz_opaque_callback_data: None,
            conversation: None,
            pricing: Some(Pricing {
                billable: false,
                pricing_model: "PMP".into(),
                kind: "free_customer_service".into(),
                category: "service".into(),
            }),
            errors: None,
        };
        let value = MessagesValue {
            messaging_product: "whatsapp".into(),
            metadata: Metadata {
                display_phone_number: "1555".into(),
                phone_number_id: "1".into(),
            },
            contacts: None,
            messages: None,
            statuses: Some(vec![st]),
            errors: None,
        };
        let env = Envelope::single(
            "9",
            None,
            Change {
                value: ChangeValue::Messages(Box::new(value)),
                field: "messages".into(),
            },
        );
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(
            v["entry"][0]["changes"][0]["value"]["statuses"][0]["pricing"]["type"],
            "free_customer_service"
        );
        let back: Envelope = serde_json::from_value(v).unwrap();
        assert_eq!(back, env);
    }
}
