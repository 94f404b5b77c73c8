//! Response bodies (platform spec §3.1, §8, §4.2).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The answer to an accepted send (`200`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    /// Always `whatsapp`.
    pub messaging_product: String,
    /// The recipient: raw input and normalised `wa_id`.
    pub contacts: Vec<ResponseContact>,
    /// The message id and its status.
    pub messages: Vec<ResponseMessage>,
}

impl SendResponse {
    /// A response for one recipient addressed by phone number and one message.
    pub fn new(input: &str, wa_id: &str, wamid: &str, status: MessageStatus) -> SendResponse {
        Self::with_contact(
            ResponseContact {
                input: input.to_string(),
                wa_id: Some(wa_id.to_string()),
                user_id: None,
            },
            wamid,
            status,
        )
    }

    /// A response for one recipient addressed by business-scoped user id (or parent BSUID):
    /// `contacts[].user_id`, no `wa_id` (2026 note §1.6).
    pub fn to_user(input: &str, user_id: &str, wamid: &str, status: MessageStatus) -> SendResponse {
        Self::with_contact(
            ResponseContact {
                input: input.to_string(),
                wa_id: None,
                user_id: Some(user_id.to_string()),
            },
            wamid,
            status,
        )
    }

    fn with_contact(contact: ResponseContact, wamid: &str, status: MessageStatus) -> SendResponse {
        SendResponse {
            messaging_product: "whatsapp".to_string(),
            contacts: vec![contact],
            messages: vec![ResponseMessage {
                id: wamid.to_string(),
                message_status: Some(status),
            }],
        }
    }
}

/// The On-Premises answer to an accepted send: `{"messages": [{"id"}], "meta": {...}}` (spec
/// §10; no `messaging_product`, no `contacts`).
#[derive(Debug, Serialize)]
pub struct OnPremSendResponse<'a> {
    /// The message id.
    pub messages: [OnPremMessageId<'a>; 1],
    /// API metadata.
    pub meta: crate::error::OnPremMeta,
}

/// `messages[]` of an On-Premises send response.
#[derive(Debug, Serialize)]
pub struct OnPremMessageId<'a> {
    /// The message id.
    pub id: &'a str,
}

impl SendResponse {
    /// The same answer in the On-Premises shape.
    pub fn to_onprem(&self) -> OnPremSendResponse<'_> {
        OnPremSendResponse {
            messages: [OnPremMessageId {
                id: self.messages.first().map_or("", |m| m.id.as_str()),
            }],
            meta: crate::error::OnPremMeta::CURRENT,
        }
    }
}

/// `contacts[]` of a send response: `wa_id` for a message addressed by phone number, `user_id`
/// (never `wa_id`) for one addressed by business-scoped user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseContact {
    /// The `to` (or `recipient`) value as sent.
    pub input: String,
    /// The user's WhatsApp id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// The business-scoped user id (or parent BSUID) the message was addressed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// `messages[]` of a send response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// The wamid.
    pub id: String,
    /// `accepted` or `held_for_quality_assessment` (optional on the wire; absent means accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<MessageStatus>,
}

/// `message_status` of a send response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Queued for delivery.
    Accepted,
    /// Held by template pacing; released or dropped (132015) later.
    HeldForQualityAssessment,
    /// In Meta's enum, not described in prose.
    Paused,
}

/// `{"success": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// Always true.
    pub success: bool,
}

impl Success {
    /// `{"success": true}`.
    pub const TRUE: Success = Success { success: true };
}

/// The answer to a media upload: `{"id": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaUploaded {
    /// The media id.
    pub id: String,
}

/// The answer to `GET /{media_id}` (spec §8.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Always `whatsapp`.
    pub messaging_product: String,
    /// Download URL, valid for 5 minutes.
    pub url: String,
    /// MIME type.
    pub mime_type: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes, as a string.
    pub file_size: String,
    /// The media id.
    pub id: String,
}

/// 360dialog's webhook configuration (`/v1/configs/webhook`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WebhookConfig {
    /// Where events go.
    pub url: String,
    /// Extra headers added to every POST.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
