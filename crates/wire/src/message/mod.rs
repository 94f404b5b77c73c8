//! Request bodies of `POST /messages` (platform spec §2, On-Premises differences §10): every
//! outbound message type, mark-as-read and the typing indicator, parsed leniently and validated
//! with the platform's error codes.
//!
//! Parsing goes straight from bytes into lenient raw structs (every field optional, numbers and
//! numeric strings interchangeable where clients mix them, enum-like values in any case, unknown
//! fields ignored, `null` = absent), then [`parse_request`] validates them into the typed values
//! below. Error classes (spec §2.11):
//!
//! | Problem | Code |
//! |---|---|
//! | body not JSON / not an object, wrong JSON type, too long, bad enum value, too many or too few items, field not allowed here, duplicate id | 100 |
//! | required field absent, `null` or blank | 131008 |
//! | value not acceptable (`to`, media with both `id` and `link`, non-http(s) URL, emoji, date) | 131009 |
//! | unknown message `type` | 131051 |
//! | template header/body variable with new-line, tab or > 4 consecutive spaces | 132018 |
//!
//! `details` always names the field path (`text.body`, `interactive.action.buttons[2].reply.title`).
//! Everything serialises back to the platform's own JSON shape ([`SendMessage`] as a complete
//! Cloud API body, [`Content`] as `{"<type>": {...}}`).

#![warn(missing_docs)]

mod contacts;
mod interactive;
mod location;
mod media;
mod reaction;
mod template;
mod text;
mod validate;

pub use contacts::{
    Contact, ContactAddress, ContactEmail, ContactName, ContactOrg, ContactPhone, ContactUrl,
    MAX_CONTACTS,
};
pub use interactive::{
    AddressAction, CardContent, CtaUrl, FlowAction, FlowActionKind, FlowActionPayload, FlowMode,
    FlowRef, Interactive, InteractiveAction, InteractiveCard, InteractiveHeader, InteractiveKind,
    ListRow, ListSection, ProductItem, ProductSection, ReplyButton,
};
pub use location::Location;
pub use media::{MAX_CAPTION, Media, MediaSource};
pub use reaction::Reaction;
pub use template::{
    ButtonSubType, CarouselCard, MAX_BODY_TEXT_PARAM, MAX_COUPON_CODE, MAX_HEADER_TEXT_PARAM,
    Parameter, ParameterValue, Template, TemplateComponent,
};
pub use text::{MAX_TEXT_BODY, Text};

/// Interactive-message limits (spec §2.8).
pub mod limits {
    pub use super::interactive::{
        MAX_BODY, MAX_CARD_BODY, MAX_CAROUSEL_CARDS, MAX_CTA_DISPLAY_TEXT, MAX_FLOW_CTA,
        MAX_FOOTER, MAX_HEADER_TEXT, MAX_LIST_BODY, MAX_LIST_BUTTON, MAX_LIST_ROWS,
        MAX_PRODUCT_ITEMS, MAX_REPLY_BUTTONS, MAX_REPLY_ID, MAX_REPLY_TITLE, MAX_ROW_DESCRIPTION,
        MAX_ROW_ID, MAX_ROW_TITLE, MAX_SECTION_TITLE, MAX_SECTIONS, MIN_CAROUSEL_CARDS,
    };
    pub use super::template::{
        MAX_BUTTON_INDEX, MAX_CARD_BUTTONS, MAX_CAROUSEL_CARDS as MAX_TEMPLATE_CAROUSEL_CARDS,
        MAX_TEMPLATE_NAME, MIN_CAROUSEL_CARDS as MIN_TEMPLATE_CAROUSEL_CARDS,
    };
    pub use super::{MAX_BIZ_OPAQUE_CALLBACK_DATA, MAX_CAPTION, MAX_CONTACTS, MAX_TEXT_BODY};
}

use crate::error::{ApiError, ErrorCode};
use crate::phone::WaId;
use crate::user_id::UserId;
use contacts::RawContact;
use interactive::RawInteractive;
use location::RawLocation;
use media::{MediaKind, Place, RawMedia};
use reaction::RawReaction;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use template::RawTemplate;
use text::RawText;
use validate::{
    Flag, Path, StrNum, bad_enum, decode, invalid_param, missing, obj, objs, one_of, required,
};

/// Longest `biz_opaque_callback_data`.
pub const MAX_BIZ_OPAQUE_CALLBACK_DATA: usize = 512;

/// Which body flavour: Cloud API / 360dialog (messaging_product required) or the legacy
/// On-Premises API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFlavor {
    /// Meta Cloud API and 360dialog v2: `messaging_product: "whatsapp"` required.
    Cloud,
    /// Legacy On-Premises API: no `messaging_product`, template `namespace`, top-level
    /// `preview_url`.
    OnPrem,
}

/// A parsed `POST /messages` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Request {
    /// Send a message.
    Send(Box<SendMessage>),
    /// Mark an inbound message as read (optionally showing a typing indicator).
    MarkRead(MarkRead),
}

/// `{"messaging_product":"whatsapp","status":"read","message_id":…}` (spec §2.9, §2.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRead {
    /// The inbound `wamid` to mark read (with every earlier message of the thread).
    pub message_id: String,
    /// Also show a typing indicator (spec §2.10).
    pub typing_indicator: Option<TypingIndicator>,
}

impl Serialize for MarkRead {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("messaging_product", "whatsapp")?;
        m.serialize_entry("status", "read")?;
        m.serialize_entry("message_id", &self.message_id)?;
        if let Some(t) = &self.typing_indicator {
            m.serialize_entry("typing_indicator", t)?;
        }
        m.end()
    }
}

/// The typing indicator shown until the next message or for 25 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TypingIndicator {
    /// `{"type":"text"}`, the only kind.
    Text,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct SendMessage {
    /// What addressed the message, as sent (`to`, or `recipient` when there is no `to`), echoed
    /// as `contacts[0].input`.
    pub to_input: String,
    /// Who it is for: a phone number, a group, or a business-scoped user id.
    pub to: Recipient,
    /// Individual (default) or group.
    pub recipient_type: RecipientType,
    /// Quoted reply.
    pub context: Option<ReplyContext>,
    /// Echoed in every status webhook of the message; ≤ 512 characters.
    pub biz_opaque_callback_data: Option<String>,
    /// The Messaging Account the message is sent for (`messaging_account_id`, or its deprecated
    /// alias `paid_messaging_account_id`; the first wins when both are given).
    pub messaging_account_id: Option<String>,
    /// The typed payload.
    pub content: Content,
}

/// Who a message is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number (`to`), normalised to its digits.
    Phone(WaId),
    /// A group id (`to` with `recipient_type: "group"`), trimmed.
    Group(String),
    /// A business-scoped user id or a parent BSUID (`recipient`).
    User(UserId),
    /// A business-scoped user id placed in `to`, where the platform expects a phone number.
    /// What happens to it is the receiver's choice (the platform was seen to accept and drop it).
    UserInTo(UserId),
}

impl Recipient {
    /// The address as a string: the phone digits, the group id or the user id.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Phone(w) => w.as_str(),
            Recipient::Group(g) => g,
            Recipient::User(u) | Recipient::UserInTo(u) => u.as_str(),
        }
    }

    /// The phone number, when a phone number addressed the message.
    pub fn phone(&self) -> Option<&WaId> {
        match self {
            Recipient::Phone(w) => Some(w),
            _ => None,
        }
    }

    /// The business-scoped user id, when one addressed the message (in `recipient` or `to`).
    pub fn user_id(&self) -> Option<&UserId> {
        match self {
            Recipient::User(u) | Recipient::UserInTo(u) => Some(u),
            _ => None,
        }
    }

    /// True for a United States phone number (`+1` with a US area code); false for any other
    /// address.
    pub fn is_us(&self) -> bool {
        self.phone().is_some_and(WaId::is_us)
    }
}

impl SendMessage {
    /// A message to one user, without context or callback data (`to_input` is the `wa_id`).
    pub fn new(to: WaId, content: Content) -> SendMessage {
        SendMessage {
            to_input: to.as_str().to_owned(),
            to: Recipient::Phone(to),
            recipient_type: RecipientType::Individual,
            context: None,
            biz_opaque_callback_data: None,
            messaging_account_id: None,
            content,
        }
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        self.content.message_type()
    }

    /// The body in a flavour's JSON shape: the Cloud shape of [`Serialize`], or for On-Premises
    /// without `messaging_product`, with `preview_url` at top level and
    /// `language.policy: "deterministic"`.
    pub fn to_json(&self, flavor: BodyFlavor) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let obj = match (flavor, v.as_object_mut()) {
            (BodyFlavor::OnPrem, Some(obj)) => obj,
            _ => return v,
        };
        obj.remove("messaging_product");
        let preview = obj
            .get_mut("text")
            .and_then(serde_json::Value::as_object_mut)
            .and_then(|t| t.remove("preview_url"));
        if let Some(preview) = preview {
            obj.insert("preview_url".to_owned(), preview);
        }
        if let Some(lang) = obj
            .get_mut("template")
            .and_then(|t| t.get_mut("language"))
            .and_then(serde_json::Value::as_object_mut)
        {
            lang.insert("policy".to_owned(), "deterministic".into());
        }
        v
    }
}

impl Serialize for SendMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("messaging_product", "whatsapp")?;
        m.serialize_entry("recipient_type", &self.recipient_type)?;
        match &self.to {
            Recipient::User(_) => m.serialize_entry("recipient", &self.to_input)?,
            _ => m.serialize_entry("to", &self.to_input)?,
        }
        if let Some(c) = &self.context {
            m.serialize_entry("context", c)?;
        }
        if let Some(b) = &self.biz_opaque_callback_data {
            m.serialize_entry("biz_opaque_callback_data", b)?;
        }
        if let Some(a) = &self.messaging_account_id {
            m.serialize_entry("messaging_account_id", a)?;
        }
        m.serialize_entry("type", self.content.message_type().as_str())?;
        self.content.serialize_entry(&mut m)?;
        m.end()
    }
}

/// `recipient_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    /// A user (default).
    #[default]
    Individual,
    /// A group (Groups API); `to` is a group id.
    Group,
}

/// `context`: makes the message a quoted reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyContext {
    /// The quoted `wamid` (inbound or outbound).
    pub message_id: String,
}

/// The typed payload of a message; serialises as `{"<type>": <object>}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// `text`.
    Text(Text),
    /// `image`.
    Image(Media),
    /// `audio` (`voice: true` for voice notes).
    Audio(Media),
    /// `video`.
    Video(Media),
    /// `document`.
    Document(Media),
    /// `sticker`.
    Sticker(Media),
    /// `location`.
    Location(Location),
    /// `contacts`: 1 to 5 cards.
    Contacts(Vec<Contact>),
    /// `reaction`.
    Reaction(Reaction),
    /// `template`.
    Template(Template),
    /// `interactive`.
    Interactive(Interactive),
}

impl Content {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Content::Text(_) => MessageType::Text,
            Content::Image(_) => MessageType::Image,
            Content::Audio(_) => MessageType::Audio,
            Content::Video(_) => MessageType::Video,
            Content::Document(_) => MessageType::Document,
            Content::Sticker(_) => MessageType::Sticker,
            Content::Location(_) => MessageType::Location,
            Content::Contacts(_) => MessageType::Contacts,
            Content::Reaction(_) => MessageType::Reaction,
            Content::Template(_) => MessageType::Template,
            Content::Interactive(_) => MessageType::Interactive,
        }
    }

    /// Writes `"<type>": <object>` into an enclosing map.
    fn serialize_entry<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let key = self.message_type().as_str();
        match self {
            Content::Text(t) => m.serialize_entry(key, t),
            Content::Image(x)
            | Content::Audio(x)
            | Content::Video(x)
            | Content::Document(x)
            | Content::Sticker(x) => m.serialize_entry(key, x),
            Content::Location(x) => m.serialize_entry(key, x),
            Content::Contacts(x) => m.serialize_entry(key, x),
            Content::Reaction(x) => m.serialize_entry(key, x),
            Content::Template(x) => m.serialize_entry(key, x),
            Content::Interactive(x) => m.serialize_entry(key, x),
        }
    }
}

/// The message `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    /// `text`.
    Text,
    /// `image`.
    Image,
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `document`.
    Document,
    /// `sticker`.
    Sticker,
    /// `location`.
    Location,
    /// `contacts`.
    Contacts,
    /// `reaction`.
    Reaction,
    /// `template`.
    Template,
    /// `interactive`.
    Interactive,
}

const MESSAGE_TYPES: &[(&str, MessageType)] = &[
    ("text", MessageType::Text),
    ("image", MessageType::Image),
    ("audio", MessageType::Audio),
    ("video", MessageType::Video),
    ("document", MessageType::Document),
    ("sticker", MessageType::Sticker),
    ("location", MessageType::Location),
    ("contacts", MessageType::Contacts),
    ("reaction", MessageType::Reaction),
    ("template", MessageType::Template),
    ("interactive", MessageType::Interactive),
];

impl MessageType {
    /// The wire name (`"text"`, `"image"` …).
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::Image => "image",
            MessageType::Audio => "audio",
            MessageType::Video => "video",
            MessageType::Document => "document",
            MessageType::Sticker => "sticker",
            MessageType::Location => "location",
            MessageType::Contacts => "contacts",
            MessageType::Reaction => "reaction",
            MessageType::Template => "template",
            MessageType::Interactive => "interactive",
        }
    }

    /// Parses a wire name, case-insensitively.
    pub fn from_name(name: &str) -> Option<MessageType> {
        let name = name.trim();
        MESSAGE_TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| *t)
    }
}

/// The top-level fields of a message request the platform reads (Cloud and 360dialog; the
/// message objects by type, the envelope, mark-as-read and typing indicators, On-Premises'
/// `preview_url`).
pub const REQUEST_FIELDS: &[&str] = &[
    "messaging_product",
    "recipient_type",
    "to",
    "recipient",
    "messaging_account_id",
    "paid_messaging_account_id",
    "type",
    "status",
    "message_id",
    "typing_indicator",
    "context",
    "biz_opaque_callback_data",
    "preview_url",
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "template",
    "interactive",
];

// ---------------------------------------------------------------------------------------------
// The envelope as sent.

#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct RawEnvelope {
    messaging_product: Option<String>,
    recipient_type: Option<String>,
    to: Option<StrNum>,
    recipient: Option<StrNum>,
    messaging_account_id: Option<StrNum>,
    paid_messaging_account_id: Option<StrNum>,
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    message_id: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    typing_indicator: Option<RawTypingIndicator>,
    #[serde(default, deserialize_with = "obj")]
    context: Option<RawContext>,
    biz_opaque_callback_data: Option<String>,
    /// On-Premises: `preview_url` beside `text`.
    preview_url: Option<Flag>,
    #[serde(default, deserialize_with = "obj")]
    text: Option<RawText>,
    #[serde(default, deserialize_with = "obj")]
    image: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    audio: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    video: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    document: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    sticker: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    location: Option<RawLocation>,
    #[serde(default, deserialize_with = "objs")]
    contacts: Option<Vec<RawContact>>,
    #[serde(default, deserialize_with = "obj")]
    reaction: Option<RawReaction>,
    #[serde(default, deserialize_with = "obj")]
    template: Option<RawTemplate>,
    #[serde(default, deserialize_with = "obj")]
    interactive: Option<RawInteractive>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawTypingIndicator {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawContext {
    message_id: Option<String>,
}

/// Parses and validates a POST /messages body.
pub fn parse_request(body: &[u8], flavor: BodyFlavor) -> Result<Request, ApiError> {
    let raw: RawEnvelope = decode(body)?;
    let product_p = Path::root("messaging_product");
    match &raw.messaging_product {
        Some(p) if p.trim().eq_ignore_ascii_case("whatsapp") => {}
        Some(p) => return Err(bad_enum(&product_p, p, &["whatsapp"])),
        None if flavor == BodyFlavor::Cloud => return Err(missing(&product_p)),
        None => {}
    }
    if raw.status.is_some() {
        return mark_read(raw).map(Request::MarkRead);
    }
    send(raw, flavor).map(|m| Request::Send(Box::new(m)))
}

/// `product_policy` of a Marketing Messages API send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProductPolicy {
    /// Sent through the Cloud API when the number is not onboarded (the default).
    #[default]
    CloudApiFallback,
    /// Only through the Marketing Messages API.
    Strict,
}

/// A `POST /{phone_number_id}/marketing_messages` body (Marketing Messages API, 2026 note
/// §4.1): a template message with the send path's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketingMessage {
    /// The message (always a template).
    pub message: SendMessage,
    /// `product_policy`.
    pub product_policy: ProductPolicy,
    /// `message_activity_sharing`: whether read and click activity is shared with Meta.
    pub message_activity_sharing: Option<bool>,
    /// A `bid_spec` object was given (not addressable to a BSUID: 131062).
    pub bid_spec: bool,
}

#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct RawMarketingFields {
    product_policy: Option<String>,
    message_activity_sharing: Option<Flag>,
    bid_spec: Option<serde_json::Value>,
}

/// Parses and validates a Marketing Messages API body: a send (never mark-as-read) of type
/// `template`; other types are code 100.
pub fn parse_marketing(body: &[u8]) -> Result<MarketingMessage, ApiError> {
    let message = match parse_request(body, BodyFlavor::Cloud)? {
        Request::Send(m) => *m,
        Request::MarkRead(_) => {
            return Err(ApiError::invalid_param(
                "Param status is not supported by the Marketing Messages API: mark messages read through /messages.",
            ));
        }
    };
    if message.message_type() != MessageType::Template {
        return Err(ApiError::invalid_param(format!(
            "Param type must be template: the Marketing Messages API sends marketing templates only, got {:?}.",
            message.message_type().as_str()
        )));
    }
    let raw: RawMarketingFields = decode(body)?;
    let product_policy = match &raw.product_policy {
        Some(p) if !p.trim().is_empty() => one_of(
            p,
            &Path::root("product_policy"),
            &[
                ("CLOUD_API_FALLBACK", ProductPolicy::CloudApiFallback),
                ("STRICT", ProductPolicy::Strict),
            ],
        )?,
        _ => ProductPolicy::default(),
    };
    Ok(MarketingMessage {
        message,
        product_policy,
        message_activity_sharing: raw.message_activity_sharing.map(|f| f.0),
        bid_spec: raw.bid_spec.is_some_and(|v| !v.is_null()),
    })
}

fn mark_read(raw: RawEnvelope) -> Result<MarkRead, ApiError> {
    if let Some(status) = &raw.status {
        one_of(status, &Path::root("status"), &[("read", ())])?;
    }
    let message_id = required(raw.message_id, &Path::root("message_id"), usize::MAX)?;
    let typing_indicator = match raw.typing_indicator {
        Some(t) => {
            let tp = Path::root("typing_indicator");
            let type_p = tp.key("type");
            let kind = t.kind.ok_or_else(|| missing(&type_p))?;
            Some(one_of(&kind, &type_p, &[("text", TypingIndicator::Text)])?)
        }
        None => None,
    };
    Ok(MarkRead {
        message_id,
        typing_indicator,
    })
}

const RECIPIENT_TYPES: &[(&str, RecipientType)] = &[
    ("individual", RecipientType::Individual),
    ("group", RecipientType::Group),
];

fn send(raw: RawEnvelope, flavor: BodyFlavor) -> Result<SendMessage, ApiError> {
    let recipient_type = match &raw.recipient_type {
        Some(r) => one_of(r, &Path::root("recipient_type"), RECIPIENT_TYPES)?,
        None => RecipientType::Individual,
    };

    let (to_input, to) = address(raw.to, raw.recipient, recipient_type, flavor)?;

    let context = match raw.context {
        Some(c) => Some(ReplyContext {
            message_id: required(
                c.message_id,
                &Path::root("context").key("message_id"),
                usize::MAX,
            )?,
        }),
        None => None,
    };

    let biz_opaque_callback_data = validate::optional(
        raw.biz_opaque_callback_data,
        &Path::root("biz_opaque_callback_data"),
        MAX_BIZ_OPAQUE_CALLBACK_DATA,
    )?;

    let message_type = match &raw.kind {
        None => MessageType::Text,
        Some(t) => MessageType::from_name(t).ok_or_else(|| {
            ApiError::with_details(
                ErrorCode::UnsupportedMessageType,
                format!("Message type {t:?} is not supported (param type)."),
            )
        })?,
    };

    let top_level_preview = match flavor {
        BodyFlavor::OnPrem => raw.preview_url.map(|f| f.0),
        BodyFlavor::Cloud => None,
    };

    let p = Path::root(message_type.as_str());
    let absent = || missing(&p);
    let media = |m: Option<RawMedia>, kind: MediaKind| -> Result<Media, ApiError> {
        m.ok_or_else(absent)?.validate(&p, kind, Place::Message)
    };
    let content = match message_type {
        MessageType::Text => Content::Text(
            raw.text
                .ok_or_else(absent)?
                .validate(&p, top_level_preview)?,
        ),
        MessageType::Image => Content::Image(media(raw.image, MediaKind::Image)?),
        MessageType::Audio => Content::Audio(media(raw.audio, MediaKind::Audio)?),
        MessageType::Video => Content::Video(media(raw.video, MediaKind::Video)?),
        MessageType::Document => Content::Document(media(raw.document, MediaKind::Document)?),
        MessageType::Sticker => Content::Sticker(media(raw.sticker, MediaKind::Sticker)?),
        MessageType::Location => Content::Location(raw.location.ok_or_else(absent)?.validate(&p)?),
        MessageType::Contacts => {
            Content::Contacts(contacts::validate(raw.contacts.ok_or_else(absent)?, &p)?)
        }
        MessageType::Reaction => Content::Reaction(raw.reaction.ok_or_else(absent)?.validate(&p)?),
        MessageType::Template => Content::Template(raw.template.ok_or_else(absent)?.validate(&p)?),
        MessageType::Interactive => {
            Content::Interactive(raw.interactive.ok_or_else(absent)?.validate(&p)?)
        }
    };

    let account_p = Path::root("messaging_account_id");
    let messaging_account_id = match StrNum::non_blank(raw.messaging_account_id)
        .or_else(|| StrNum::non_blank(raw.paid_messaging_account_id))
    {
        Some(id) => {
            let id = id.trim().to_string();
            if !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 64 {
                return Err(invalid_param(&account_p, "must be a numeric id"));
            }
            Some(id)
        }
        None => None,
    };

    Ok(SendMessage {
        to_input,
        to,
        recipient_type,
        context,
        biz_opaque_callback_data,
        messaging_account_id,
        content,
    })
}

/// Who the message is for (2026 note §1.6): `to` (a phone number, or a group id) wins when both
/// `to` and `recipient` are given; `recipient` is a business-scoped user id; with neither, code
/// 100 "The parameter to is required." (On-Premises reads `to` only: missing, 131008).
fn address(
    to: Option<StrNum>,
    recipient: Option<StrNum>,
    recipient_type: RecipientType,
    flavor: BodyFlavor,
) -> Result<(String, Recipient), ApiError> {
    let to_p = Path::root("to");
    let recipient = match flavor {
        BodyFlavor::Cloud => StrNum::non_blank(recipient),
        BodyFlavor::OnPrem => None,
    };
    let Some(to_input) = StrNum::non_blank(to) else {
        return match (recipient, recipient_type, flavor) {
            (Some(r), RecipientType::Individual, _) => {
                let id = UserId::parse(&r)?;
                Ok((r, Recipient::User(id)))
            }
            (_, _, BodyFlavor::OnPrem) => Err(missing(&to_p)),
            _ => Err(ApiError::invalid_param("The parameter to is required.")),
        };
    };
    let to = match recipient_type {
        RecipientType::Individual
            if flavor == BodyFlavor::Cloud && UserId::well_formed(to_input.trim()) =>
        {
            Recipient::UserInTo(UserId::parse_param(&to_input, "to")?)
        }
        RecipientType::Individual => Recipient::Phone(WaId::parse(&to_input)?),
        RecipientType::Group => Recipient::Group(to_input.trim().to_string()),
    };
    Ok((to_input, to))
}
