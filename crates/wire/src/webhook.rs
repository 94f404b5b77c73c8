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

/// `changes[]`: one subscribed field and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The value; its shape depends on `field`.
    pub value: ChangeValue,
    /// The subscription field (`messages`, `message_template_status_update`, …).
    pub field: String,
}

/// The value of a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChangeValue {
    /// `field: user_preferences` (tried first: it also carries `metadata`).
    UserPreferences(UserPreferencesValue),
    /// `field: messages` (inbound messages, statuses, or errors).
    Messages(Box<MessagesValue>),
    /// `field: message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// `field: message_template_quality_update`.
    TemplateQuality(TemplateQualityUpdate),
    /// `field: phone_number_quality_update`.
    PhoneNumberQuality(PhoneNumberQualityUpdate),
    /// Any other field, kept as it came.
    Other(serde_json::Value),
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

/// `contacts[]`: a user's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The profile.
    pub profile: Profile,
    /// The user's `wa_id`.
    pub wa_id: String,
}

/// `profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user's WhatsApp name.
    pub name: String,
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
    /// The user's `wa_id`.
    pub recipient_id: String,
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
    /// The user's `wa_id`.
    pub from: String,
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
    /// The user.
    pub wa_id: String,
    /// Human-readable detail.
    pub detail: String,
    /// `marketing_messages`.
    pub category: String,
    /// `stop` or `resume`.
    pub value: String,
    /// Unix seconds (an integer here).
    pub timestamp: i64,
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

#[cfg(test)]
mod tests {
    use super::*;

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
            recipient_id: "491".into(),
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
