//! `type: "interactive"` (spec §2.8): reply buttons, lists, CTA URL, product, product list,
//! catalog, Flow, location request, address, carousel and call-permission messages.

use super::media::{Media, MediaKind, Place, RawMedia};
use super::validate::{
    Path, StrNum, bad_count, bad_enum, duplicate, invalid_param, invalid_value, missing,
    missing_either, not_allowed, obj, objs, one_of, optional, required, required_url, small_index,
};
use crate::error::{ApiError, ErrorCode};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest text header.
pub const MAX_HEADER_TEXT: usize = 60;
/// Longest `body.text` (all types but `list`).
pub const MAX_BODY: usize = 1024;
/// Longest `body.text` of a `list` message (spec §13 #10).
pub const MAX_LIST_BODY: usize = 4096;
/// Longest `footer.text`.
pub const MAX_FOOTER: usize = 60;
/// Most reply buttons.
pub const MAX_REPLY_BUTTONS: usize = 3;
/// Longest reply button id.
pub const MAX_REPLY_ID: usize = 256;
/// Longest reply button title.
pub const MAX_REPLY_TITLE: usize = 20;
/// Longest list `action.button`.
pub const MAX_LIST_BUTTON: usize = 20;
/// Most sections of a list or product list.
pub const MAX_SECTIONS: usize = 10;
/// Longest section title.
pub const MAX_SECTION_TITLE: usize = 24;
/// Most rows of a list, across all sections (spec §13 #9).
pub const MAX_LIST_ROWS: usize = 10;
/// Longest row id.
pub const MAX_ROW_ID: usize = 200;
/// Longest row title.
pub const MAX_ROW_TITLE: usize = 24;
/// Longest row description.
pub const MAX_ROW_DESCRIPTION: usize = 72;
/// Longest CTA `display_text`.
pub const MAX_CTA_DISPLAY_TEXT: usize = 20;
/// Most products of a product list, across all sections.
pub const MAX_PRODUCT_ITEMS: usize = 30;
/// Longest `flow_cta` (spec §13 #11).
pub const MAX_FLOW_CTA: usize = 30;
/// Fewest carousel cards.
pub const MIN_CAROUSEL_CARDS: usize = 2;
/// Most carousel cards.
pub const MAX_CAROUSEL_CARDS: usize = 10;
/// Longest carousel card body.
pub const MAX_CARD_BODY: usize = 160;

/// An interactive message.
///
/// `kind` always equals `action.kind()` for values produced by the parser.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactive {
    /// The sub-type (`interactive.type`).
    pub kind: InteractiveKind,
    /// Optional header (which types are allowed depends on `kind`).
    pub header: Option<InteractiveHeader>,
    /// `body.text`; required for every kind but `product`.
    pub body: Option<String>,
    /// `footer.text`.
    pub footer: Option<String>,
    /// What the user can do.
    pub action: InteractiveAction,
}

impl Serialize for Interactive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.kind.as_str())?;
        if let Some(h) = &self.header {
            m.serialize_entry("header", h)?;
        }
        if let Some(b) = &self.body {
            m.serialize_entry("body", &TextObj { text: b })?;
        }
        if let Some(f) = &self.footer {
            m.serialize_entry("footer", &TextObj { text: f })?;
        }
        m.serialize_entry("action", &self.action)?;
        m.end()
    }
}

#[derive(Serialize)]
struct TextObj<'a> {
    text: &'a str,
}

/// The sub-type of an interactive message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveKind {
    /// Up to three reply buttons.
    Button,
    /// A list of rows in sections.
    List,
    /// One URL button.
    CtaUrl,
    /// A single catalog product.
    Product,
    /// Several catalog products in sections.
    ProductList,
    /// The business's catalog.
    CatalogMessage,
    /// A WhatsApp Flow.
    Flow,
    /// Ask the user to share their location.
    LocationRequestMessage,
    /// Ask the user for a delivery address (India).
    AddressMessage,
    /// Horizontally scrolling media or product cards.
    Carousel,
    /// Ask the user for permission to call.
    CallPermissionRequest,
}

const KINDS: &[(&str, InteractiveKind)] = &[
    ("button", InteractiveKind::Button),
    ("list", InteractiveKind::List),
    ("cta_url", InteractiveKind::CtaUrl),
    ("product", InteractiveKind::Product),
    ("product_list", InteractiveKind::ProductList),
    ("catalog_message", InteractiveKind::CatalogMessage),
    ("flow", InteractiveKind::Flow),
    (
        "location_request_message",
        InteractiveKind::LocationRequestMessage,
    ),
    ("address_message", InteractiveKind::AddressMessage),
    ("carousel", InteractiveKind::Carousel),
    (
        "call_permission_request",
        InteractiveKind::CallPermissionRequest,
    ),
];

/// Interactive types of the platform that Mynah does not model (payments); 131051.
const UNSUPPORTED_KINDS: &[&str] = &["order_details", "order_status"];

impl InteractiveKind {
    /// The wire name (`"button"`, `"cta_url"` …).
    pub fn as_str(&self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| k == self)
            .map(|(n, _)| *n)
            .unwrap_or("button")
    }
}

/// An interactive header.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractiveHeader {
    /// Text, at most 60 characters.
    Text(String),
    /// Image (no caption).
    Image(Media),
    /// Video (no caption).
    Video(Media),
    /// Document (no caption; may carry a filename).
    Document(Media),
}

impl InteractiveHeader {
    /// The header `type`.
    pub fn type_str(&self) -> &'static str {
        match self {
            InteractiveHeader::Text(_) => "text",
            InteractiveHeader::Image(_) => "image",
            InteractiveHeader::Video(_) => "video",
            InteractiveHeader::Document(_) => "document",
        }
    }
}

impl Serialize for InteractiveHeader {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.type_str();
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", kind)?;
        match self {
            InteractiveHeader::Text(t) => m.serialize_entry(kind, t)?,
            InteractiveHeader::Image(media)
            | InteractiveHeader::Video(media)
            | InteractiveHeader::Document(media) => m.serialize_entry(kind, media)?,
        }
        m.end()
    }
}

/// The `action` of an interactive message, by sub-type.
#[derive(Debug, Clone, PartialEq)]
pub enum InteractiveAction {
    /// `button`: 1 to 3 reply buttons.
    Buttons(Vec<ReplyButton>),
    /// `list`.
    List {
        /// The button that opens the list (≤ 20 characters).
        button: String,
        /// 1 to 10 sections, at most 10 rows in total.
        sections: Vec<ListSection>,
    },
    /// `cta_url`.
    CtaUrl(CtaUrl),
    /// `product`.
    Product {
        /// The catalog.
        catalog_id: String,
        /// The product.
        product_retailer_id: String,
    },
    /// `product_list`.
    ProductList {
        /// The catalog.
        catalog_id: String,
        /// 1 to 10 sections, at most 30 products in total.
        sections: Vec<ProductSection>,
    },
    /// `catalog_message`.
    CatalogMessage {
        /// Product whose image is the thumbnail (default: the first item).
        thumbnail_product_retailer_id: Option<String>,
    },
    /// `flow`.
    Flow(Box<FlowAction>),
    /// `location_request_message` (`action.name: "send_location"`).
    LocationRequest,
    /// `address_message`.
    Address(AddressAction),
    /// `carousel`: 2 to 10 cards.
    Carousel(Vec<InteractiveCard>),
    /// `call_permission_request`.
    CallPermissionRequest,
}

impl InteractiveAction {
    /// The sub-type this action belongs to.
    pub fn kind(&self) -> InteractiveKind {
        match self {
            InteractiveAction::Buttons(_) => InteractiveKind::Button,
            InteractiveAction::List { .. } => InteractiveKind::List,
            InteractiveAction::CtaUrl(_) => InteractiveKind::CtaUrl,
            InteractiveAction::Product { .. } => InteractiveKind::Product,
            InteractiveAction::ProductList { .. } => InteractiveKind::ProductList,
            InteractiveAction::CatalogMessage { .. } => InteractiveKind::CatalogMessage,
            InteractiveAction::Flow(_) => InteractiveKind::Flow,
            InteractiveAction::LocationRequest => InteractiveKind::LocationRequestMessage,
            InteractiveAction::Address(_) => InteractiveKind::AddressMessage,
            InteractiveAction::Carousel(_) => InteractiveKind::Carousel,
            InteractiveAction::CallPermissionRequest => InteractiveKind::CallPermissionRequest,
        }
    }
}

#[derive(Serialize)]
struct Named<'a, P: Serialize> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a P>,
}

#[derive(Serialize)]
struct Thumbnail<'a> {
    thumbnail_product_retailer_id: &'a str,
}

impl Serialize for InteractiveAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InteractiveAction::Buttons(buttons) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("buttons", buttons)?;
                m.end()
            }
            InteractiveAction::List { button, sections } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("button", button)?;
                m.serialize_entry("sections", sections)?;
                m.end()
            }
            InteractiveAction::CtaUrl(cta) => Named {
                name: "cta_url",
                parameters: Some(cta),
            }
            .serialize(s),
            InteractiveAction::Product {
                catalog_id,
                product_retailer_id,
            } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("catalog_id", catalog_id)?;
                m.serialize_entry("product_retailer_id", product_retailer_id)?;
                m.end()
            }
            InteractiveAction::ProductList {
                catalog_id,
                sections,
            } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("catalog_id", catalog_id)?;
                m.serialize_entry("sections", sections)?;
                m.end()
            }
            InteractiveAction::CatalogMessage {
                thumbnail_product_retailer_id,
            } => {
                let thumb = thumbnail_product_retailer_id.as_deref().map(|t| Thumbnail {
                    thumbnail_product_retailer_id: t,
                });
                Named {
                    name: "catalog_message",
                    parameters: thumb.as_ref(),
                }
                .serialize(s)
            }
            InteractiveAction::Flow(flow) => Named {
                name: "flow",
                parameters: Some(flow.as_ref()),
            }
            .serialize(s),
            InteractiveAction::LocationRequest => Named::<()> {
                name: "send_location",
                parameters: None,
            }
            .serialize(s),
            InteractiveAction::Address(address) => Named {
                name: "address_message",
                parameters: Some(address),
            }
            .serialize(s),
            InteractiveAction::Carousel(cards) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("cards", cards)?;
                m.end()
            }
            InteractiveAction::CallPermissionRequest => Named::<()> {
                name: "call_permission_request",
                parameters: None,
            }
            .serialize(s),
        }
    }
}

/// A reply button; serialises as `{"type":"reply","reply":{"id","title"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyButton {
    /// Returned in the user's `button_reply`; ≤ 256 characters, unique.
    pub id: String,
    /// Shown on the button; ≤ 20 characters, unique.
    pub title: String,
}

impl Serialize for ReplyButton {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Reply<'a> {
            id: &'a str,
            title: &'a str,
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", "reply")?;
        m.serialize_entry(
            "reply",
            &Reply {
                id: &self.id,
                title: &self.title,
            },
        )?;
        m.end()
    }
}

/// A section of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListSection {
    /// ≤ 24 characters; required when there is more than one section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The rows (at least one).
    pub rows: Vec<ListRow>,
}

/// A row of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRow {
    /// Returned in the user's `list_reply`; ≤ 200 characters, unique across sections.
    pub id: String,
    /// ≤ 24 characters.
    pub title: String,
    /// ≤ 72 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A section of a product list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductSection {
    /// ≤ 24 characters; required when there is more than one section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The products (at least one).
    pub product_items: Vec<ProductItem>,
}

/// One product of a product-list section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductItem {
    /// The product's retailer id.
    pub product_retailer_id: String,
}

/// The parameters of a CTA URL button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CtaUrl {
    /// Button label, ≤ 20 characters.
    pub display_text: String,
    /// http(s) URL opened on tap.
    pub url: String,
}

/// The parameters of a Flow message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowAction {
    /// `flow_message_version` (currently `"3"`).
    pub flow_message_version: String,
    /// `flow_id` or `flow_name`.
    #[serde(flatten)]
    pub flow: FlowRef,
    /// Button label, ≤ 30 characters.
    pub flow_cta: String,
    /// Token echoed in the Flow's replies (platform default `"unused"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// `draft` or `published` (default).
    pub mode: FlowMode,
    /// `navigate` (default) or `data_exchange`.
    pub flow_action: FlowActionKind,
    /// First screen and its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_action_payload: Option<FlowActionPayload>,
}

/// Which Flow to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FlowRef {
    /// By id.
    #[serde(rename = "flow_id")]
    Id(String),
    /// By name.
    #[serde(rename = "flow_name")]
    Name(String),
}

/// Flow `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowMode {
    /// An unpublished Flow (testing).
    Draft,
    /// A published Flow.
    Published,
}

/// Flow `flow_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowActionKind {
    /// Open the screen given in the payload.
    Navigate,
    /// Ask the business's endpoint for the first screen.
    DataExchange,
}

/// `flow_action_payload`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowActionPayload {
    /// First screen (default: the Flow's first screen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// Input data for the first screen; non-empty when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

/// The parameters of an address message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressAction {
    /// ISO 3166 country (`"IN"`).
    pub country: String,
    /// Prefilled values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
    /// Addresses the user can pick.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saved_addresses: Vec<Value>,
    /// Errors shown next to fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_errors: Option<Map<String, Value>>,
}

/// One card of an interactive carousel.
#[derive(Debug, Clone, PartialEq)]
pub struct InteractiveCard {
    /// 0-based card position, 0 to 9, unique.
    pub card_index: u8,
    /// What the card shows.
    pub content: CardContent,
}

/// The content of a carousel card; all cards of a carousel have the same kind.
#[derive(Debug, Clone, PartialEq)]
pub enum CardContent {
    /// A media card with a URL button (`type: "cta_url"`).
    CtaUrl {
        /// Image or video header (same type on every card).
        header: InteractiveHeader,
        /// Card body, ≤ 160 characters.
        body: Option<String>,
        /// The URL button.
        action: CtaUrl,
    },
    /// A product card (`type: "product"`); all cards share one catalog.
    Product {
        /// The catalog.
        catalog_id: String,
        /// The product.
        product_retailer_id: String,
    },
}

impl Serialize for InteractiveCard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("card_index", &self.card_index)?;
        match &self.content {
            CardContent::CtaUrl {
                header,
                body,
                action,
            } => {
                m.serialize_entry("type", "cta_url")?;
                m.serialize_entry("header", header)?;
                if let Some(b) = body {
                    m.serialize_entry("body", &TextObj { text: b })?;
                }
                m.serialize_entry(
                    "action",
                    &Named {
                        name: "cta_url",
                        parameters: Some(action),
                    },
                )?;
            }
            CardContent::Product {
                catalog_id,
                product_retailer_id,
            } => {
                #[derive(Serialize)]
                struct ProductAction<'a> {
                    product_retailer_id: &'a str,
                    catalog_id: &'a str,
                }
                m.serialize_entry("type", "product")?;
                m.serialize_entry(
                    "action",
                    &ProductAction {
                        product_retailer_id,
                        catalog_id,
                    },
                )?;
            }
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw shapes.

/// `interactive` as sent.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawInteractive {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    header: Option<RawHeader>,
    #[serde(default, deserialize_with = "obj")]
    body: Option<RawTextObj>,
    #[serde(default, deserialize_with = "obj")]
    footer: Option<RawTextObj>,
    #[serde(default, deserialize_with = "obj")]
    action: Option<RawAction>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawHeader {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    image: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    video: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    document: Option<RawMedia>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawTextObj {
    text: Option<String>,
}

/// Every action shape in one lenient struct; each sub-type reads its own fields.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawAction {
    #[serde(default, deserialize_with = "objs")]
    buttons: Option<Vec<RawReplyButton>>,
    button: Option<String>,
    #[serde(default, deserialize_with = "objs")]
    sections: Option<Vec<RawSection>>,
    catalog_id: Option<StrNum>,
    product_retailer_id: Option<StrNum>,
    name: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    parameters: Option<RawParams>,
    #[serde(default, deserialize_with = "objs")]
    cards: Option<Vec<RawCard>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawReplyButton {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    reply: Option<RawReply>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawReply {
    id: Option<StrNum>,
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawSection {
    title: Option<String>,
    #[serde(default, deserialize_with = "objs")]
    rows: Option<Vec<RawRow>>,
    #[serde(default, deserialize_with = "objs")]
    product_items: Option<Vec<RawProductItem>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawRow {
    id: Option<StrNum>,
    title: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawProductItem {
    product_retailer_id: Option<StrNum>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawParams {
    // cta_url
    display_text: Option<String>,
    url: Option<String>,
    // catalog_message
    thumbnail_product_retailer_id: Option<StrNum>,
    // flow
    flow_message_version: Option<StrNum>,
    flow_token: Option<String>,
    flow_id: Option<StrNum>,
    flow_name: Option<String>,
    flow_cta: Option<String>,
    mode: Option<String>,
    flow_action: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    flow_action_payload: Option<RawFlowPayload>,
    // address_message
    country: Option<String>,
    values: Option<Map<String, Value>>,
    saved_addresses: Option<Vec<Value>>,
    validation_errors: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawFlowPayload {
    screen: Option<String>,
    data: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawCard {
    card_index: Option<StrNum>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    header: Option<RawHeader>,
    #[serde(default, deserialize_with = "obj")]
    body: Option<RawTextObj>,
    #[serde(default, deserialize_with = "obj")]
    action: Option<RawAction>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderKind {
    Text,
    Image,
    Video,
    Document,
}

const HEADER_KINDS: &[(&str, HeaderKind)] = &[
    ("text", HeaderKind::Text),
    ("image", HeaderKind::Image),
    ("video", HeaderKind::Video),
    ("document", HeaderKind::Document),
];

const ALL_HEADERS: &[HeaderKind] = &[
    HeaderKind::Text,
    HeaderKind::Image,
    HeaderKind::Video,
    HeaderKind::Document,
];
const TEXT_HEADER: &[HeaderKind] = &[HeaderKind::Text];
const NO_HEADER: &[HeaderKind] = &[];

/// Per-sub-type envelope rules: allowed headers, header required, body limit and whether the
/// body is required, footer allowed.
struct Rules {
    headers: &'static [HeaderKind],
    header_required: bool,
    body_max: usize,
    body_required: bool,
    footer: bool,
}

fn rules(kind: InteractiveKind) -> Rules {
    use InteractiveKind as K;
    let base = Rules {
        headers: ALL_HEADERS,
        header_required: false,
        body_max: MAX_BODY,
        body_required: true,
        footer: true,
    };
    match kind {
        K::Button | K::CtaUrl | K::Flow | K::CatalogMessage | K::AddressMessage => base,
        K::CallPermissionRequest => base,
        K::List => Rules {
            headers: TEXT_HEADER,
            body_max: MAX_LIST_BODY,
            ..base
        },
        K::Product => Rules {
            headers: NO_HEADER,
            body_required: false,
            ..base
        },
        K::ProductList => Rules {
            headers: TEXT_HEADER,
            header_required: true,
            ..base
        },
        K::LocationRequestMessage | K::Carousel => Rules {
            headers: NO_HEADER,
            footer: false,
            ..base
        },
    }
}

impl RawInteractive {
    pub(crate) fn validate(self, p: &Path<'_>) -> Result<Interactive, ApiError> {
        let type_p = p.key("type");
        let kind_str = self.kind.ok_or_else(|| missing(&type_p))?;
        if UNSUPPORTED_KINDS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind_str.trim()))
        {
            return Err(ApiError::with_details(
                ErrorCode::UnsupportedMessageType,
                format!("Interactive message type {kind_str:?} is not supported."),
            ));
        }
        let kind = one_of(&kind_str, &type_p, KINDS)?;
        let r = rules(kind);
        let context = || format!("for interactive type {}", kind.as_str());

        let header_p = p.key("header");
        let header = match self.header {
            Some(h) => {
                if r.headers.is_empty() {
                    return Err(not_allowed(&header_p, &context()));
                }
                Some(header(h, &header_p, r.headers)?)
            }
            None if r.header_required => return Err(missing(&header_p)),
            None => None,
        };

        let body_p = p.key("body");
        let body = match self.body {
            Some(b) => {
                let text_p = body_p.key("text");
                if r.body_required {
                    Some(required(b.text, &text_p, r.body_max)?)
                } else {
                    optional(b.text, &text_p, r.body_max)?
                }
            }
            None if r.body_required => return Err(missing(&body_p)),
            None => None,
        };

        let footer_p = p.key("footer");
        let footer = match self.footer {
            Some(_) if !r.footer => return Err(not_allowed(&footer_p, &context())),
            Some(f) => Some(required(f.text, &footer_p.key("text"), MAX_FOOTER)?),
            None => None,
        };

        let action_p = p.key("action");
        let raw_action = self.action.ok_or_else(|| missing(&action_p))?;
        let action = raw_action.validate(&action_p, kind)?;
        Ok(Interactive {
            kind,
            header,
            body,
            footer,
            action,
        })
    }
}

fn header(
    h: RawHeader,
    p: &Path<'_>,
    allowed: &[HeaderKind],
) -> Result<InteractiveHeader, ApiError> {
    let type_p = p.key("type");
    let kind_str = h.kind.ok_or_else(|| missing(&type_p))?;
    let kind = one_of(&kind_str, &type_p, HEADER_KINDS)?;
    if !allowed.contains(&kind) {
        let names: Vec<&str> = HEADER_KINDS
            .iter()
            .filter(|(_, k)| allowed.contains(k))
            .map(|(n, _)| *n)
            .collect();
        return Err(bad_enum(&type_p, &kind_str, &names));
    }
    let media = |raw: Option<RawMedia>, key: &'static str, mk: MediaKind| {
        let mp = p.key(key);
        raw.ok_or_else(|| missing(&mp))?
            .validate(&mp, mk, Place::Embedded)
    };
    Ok(match kind {
        HeaderKind::Text => {
            InteractiveHeader::Text(required(h.text, &p.key("text"), MAX_HEADER_TEXT)?)
        }
        HeaderKind::Image => InteractiveHeader::Image(media(h.image, "image", MediaKind::Image)?),
        HeaderKind::Video => InteractiveHeader::Video(media(h.video, "video", MediaKind::Video)?),
        HeaderKind::Document => {
            InteractiveHeader::Document(media(h.document, "document", MediaKind::Document)?)
        }
    })
}

/// Checks `action.name` (required) against the one value a sub-type takes.
fn expect_name(name: Option<String>, p: &Path<'_>, expected: &'static str) -> Result<(), ApiError> {
    let name_p = p.key("name");
    let name = name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| missing(&name_p))?;
    if name.trim().eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(bad_enum(&name_p, &name, &[expected]))
    }
}

fn required_id(v: Option<StrNum>, p: &Path<'_>) -> Result<String, ApiError> {
    required(StrNum::non_blank(v), p, usize::MAX)
}

impl RawAction {
    fn validate(self, p: &Path<'_>, kind: InteractiveKind) -> Result<InteractiveAction, ApiError> {
        use InteractiveKind as K;
        Ok(match kind {
            K::Button => {
                InteractiveAction::Buttons(reply_buttons(self.buttons, &p.key("buttons"))?)
            }
            K::List => {
                let button = required(self.button, &p.key("button"), MAX_LIST_BUTTON)?;
                let sections = list_sections(self.sections, &p.key("sections"))?;
                InteractiveAction::List { button, sections }
            }
            K::CtaUrl => {
                expect_name(self.name, p, "cta_url")?;
                InteractiveAction::CtaUrl(cta_url(self.parameters, &p.key("parameters"))?)
            }
            K::Product => InteractiveAction::Product {
                catalog_id: required_id(self.catalog_id, &p.key("catalog_id"))?,
                product_retailer_id: required_id(
                    self.product_retailer_id,
                    &p.key("product_retailer_id"),
                )?,
            },
            K::ProductList => InteractiveAction::ProductList {
                catalog_id: required_id(self.catalog_id, &p.key("catalog_id"))?,
                sections: product_sections(self.sections, &p.key("sections"))?,
            },
            K::CatalogMessage => {
                expect_name(self.name, p, "catalog_message")?;
                InteractiveAction::CatalogMessage {
                    thumbnail_product_retailer_id: self
                        .parameters
                        .and_then(|params| StrNum::non_blank(params.thumbnail_product_retailer_id)),
                }
            }
            K::Flow => {
                expect_name(self.name, p, "flow")?;
                let params_p = p.key("parameters");
                let params = self.parameters.ok_or_else(|| missing(&params_p))?;
                InteractiveAction::Flow(Box::new(params.flow(&params_p)?))
            }
            K::LocationRequestMessage => {
                expect_name(self.name, p, "send_location")?;
                InteractiveAction::LocationRequest
            }
            K::AddressMessage => {
                expect_name(self.name, p, "address_message")?;
                let params_p = p.key("parameters");
                let params = self.parameters.ok_or_else(|| missing(&params_p))?;
                InteractiveAction::Address(AddressAction {
                    country: required(params.country, &params_p.key("country"), usize::MAX)?,
                    values: params.values,
                    saved_addresses: params.saved_addresses.unwrap_or_default(),
                    validation_errors: params.validation_errors,
                })
            }
            K::Carousel => {
                let cards_p = p.key("cards");
                let raw = self.cards.ok_or_else(|| missing(&cards_p))?;
                InteractiveAction::Carousel(carousel_cards(raw, &cards_p)?)
            }
            K::CallPermissionRequest => {
                expect_name(self.name, p, "call_permission_request")?;
                InteractiveAction::CallPermissionRequest
            }
        })
    }
}

fn reply_buttons(
    raw: Option<Vec<RawReplyButton>>,
    p: &Path<'_>,
) -> Result<Vec<ReplyButton>, ApiError> {
    let raw = raw.ok_or_else(|| missing(p))?;
    if raw.is_empty() || raw.len() > MAX_REPLY_BUTTONS {
        return Err(bad_count(p, 1, MAX_REPLY_BUTTONS, raw.len()));
    }
    let mut out: Vec<ReplyButton> = Vec::with_capacity(raw.len());
    for (i, b) in raw.into_iter().enumerate() {
        let bp = p.index(i);
        if let Some(kind) = &b.kind {
            one_of(kind, &bp.key("type"), &[("reply", ())])?;
        }
        let reply_p = bp.key("reply");
        let reply = b.reply.ok_or_else(|| missing(&reply_p))?;
        let id_p = reply_p.key("id");
        let id = required(StrNum::non_blank(reply.id), &id_p, MAX_REPLY_ID)?;
        if id.trim() != id {
            return Err(invalid_value(
                &id_p,
                "must not have leading or trailing spaces",
            ));
        }
        let title_p = reply_p.key("title");
        let title = required(reply.title, &title_p, MAX_REPLY_TITLE)?;
        if out.iter().any(|o| o.id == id) {
            return Err(duplicate(&id_p, &id));
        }
        if out.iter().any(|o| o.title == title) {
            return Err(duplicate(&title_p, &title));
        }
        out.push(ReplyButton { id, title });
    }
    Ok(out)
}

fn section_title(
    title: Option<String>,
    p: &Path<'_>,
    several: bool,
) -> Result<Option<String>, ApiError> {
    if several {
        required(title, p, MAX_SECTION_TITLE).map(Some)
    } else {
        optional(title, p, MAX_SECTION_TITLE)
    }
}

fn list_sections(raw: Option<Vec<RawSection>>, p: &Path<'_>) -> Result<Vec<ListSection>, ApiError> {
    let raw = raw.ok_or_else(|| missing(p))?;
    if raw.is_empty() || raw.len() > MAX_SECTIONS {
        return Err(bad_count(p, 1, MAX_SECTIONS, raw.len()));
    }
    let several = raw.len() > 1;
    let total: usize = raw
        .iter()
        .map(|s| s.rows.as_ref().map_or(0, Vec::len))
        .sum();
    if total > MAX_LIST_ROWS {
        return Err(invalid_param(
            p,
            &format!(
                "must contain at most {MAX_LIST_ROWS} rows in total across all sections, got {total}"
            ),
        ));
    }
    let mut out: Vec<ListSection> = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let sp = p.index(i);
        let title = section_title(s.title, &sp.key("title"), several)?;
        let rows_p = sp.key("rows");
        let raw_rows = s.rows.ok_or_else(|| missing(&rows_p))?;
        if raw_rows.is_empty() {
            return Err(bad_count(&rows_p, 1, MAX_LIST_ROWS, 0));
        }
        let mut rows = Vec::with_capacity(raw_rows.len());
        for (j, r) in raw_rows.into_iter().enumerate() {
            let rp = rows_p.index(j);
            let id_p = rp.key("id");
            let id = required(StrNum::non_blank(r.id), &id_p, MAX_ROW_ID)?;
            let seen = out.iter().flat_map(|s| s.rows.iter()).chain(rows.iter());
            if seen.into_iter().any(|o: &ListRow| o.id == id) {
                return Err(duplicate(&id_p, &id));
            }
            let title = required(r.title, &rp.key("title"), MAX_ROW_TITLE)?;
            let description = optional(r.description, &rp.key("description"), MAX_ROW_DESCRIPTION)?;
            rows.push(ListRow {
                id,
                title,
                description,
            });
        }
        out.push(ListSection { title, rows });
    }
    Ok(out)
}

fn product_sections(
    raw: Option<Vec<RawSection>>,
    p: &Path<'_>,
) -> Result<Vec<ProductSection>, ApiError> {
    let raw = raw.ok_or_else(|| missing(p))?;
    if raw.is_empty() || raw.len() > MAX_SECTIONS {
        return Err(bad_count(p, 1, MAX_SECTIONS, raw.len()));
    }
    let several = raw.len() > 1;
    let total: usize = raw
        .iter()
        .map(|s| s.product_items.as_ref().map_or(0, Vec::len))
        .sum();
    if total > MAX_PRODUCT_ITEMS {
        return Err(invalid_param(
            p,
            &format!(
                "must contain at most {MAX_PRODUCT_ITEMS} product items in total across all sections, got {total}"
            ),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let sp = p.index(i);
        let title = section_title(s.title, &sp.key("title"), several)?;
        let items_p = sp.key("product_items");
        let raw_items = s.product_items.ok_or_else(|| missing(&items_p))?;
        if raw_items.is_empty() {
            return Err(bad_count(&items_p, 1, MAX_PRODUCT_ITEMS, 0));
        }
        let mut product_items = Vec::with_capacity(raw_items.len());
        for (j, item) in raw_items.into_iter().enumerate() {
            let ip = items_p.index(j);
            let product_retailer_id =
                required_id(item.product_retailer_id, &ip.key("product_retailer_id"))?;
            product_items.push(ProductItem {
                product_retailer_id,
            });
        }
        out.push(ProductSection {
            title,
            product_items,
        });
    }
    Ok(out)
}

fn cta_url(raw: Option<RawParams>, p: &Path<'_>) -> Result<CtaUrl, ApiError> {
    let params = raw.ok_or_else(|| missing(p))?;
    let display_text = required(
        params.display_text,
        &p.key("display_text"),
        MAX_CTA_DISPLAY_TEXT,
    )?;
    let url = required_url(params.url, &p.key("url"))?;
    Ok(CtaUrl { display_text, url })
}

const FLOW_MODES: &[(&str, FlowMode)] = &[
    ("draft", FlowMode::Draft),
    ("published", FlowMode::Published),
];
const FLOW_ACTIONS: &[(&str, FlowActionKind)] = &[
    ("navigate", FlowActionKind::Navigate),
    ("data_exchange", FlowActionKind::DataExchange),
];

impl RawParams {
    fn flow(self, p: &Path<'_>) -> Result<FlowAction, ApiError> {
        let flow_message_version = required(
            StrNum::non_blank(self.flow_message_version),
            &p.key("flow_message_version"),
            usize::MAX,
        )?;
        let flow_id = StrNum::non_blank(self.flow_id);
        let flow_name = self.flow_name.filter(|n| !n.trim().is_empty());
        let flow = match (flow_id, flow_name) {
            (Some(_), Some(_)) => {
                return Err(invalid_value(
                    p,
                    "must contain exactly one of flow_id and flow_name, not both",
                ));
            }
            (None, None) => return Err(missing_either(p, "flow_id", "flow_name")),
            (Some(id), None) => FlowRef::Id(id),
            (None, Some(name)) => FlowRef::Name(name),
        };
        let flow_cta = required(self.flow_cta, &p.key("flow_cta"), MAX_FLOW_CTA)?;
        let mode = match &self.mode {
            Some(m) => one_of(m, &p.key("mode"), FLOW_MODES)?,
            None => FlowMode::Published,
        };
        let flow_action = match &self.flow_action {
            Some(a) => one_of(a, &p.key("flow_action"), FLOW_ACTIONS)?,
            None => FlowActionKind::Navigate,
        };
        let flow_action_payload = match self.flow_action_payload {
            Some(payload) => {
                if payload.data.as_ref().is_some_and(Map::is_empty) {
                    return Err(invalid_param(
                        &p.key("flow_action_payload").key("data"),
                        "must be a non-empty object when present",
                    ));
                }
                Some(FlowActionPayload {
                    screen: payload.screen,
                    data: payload.data,
                })
            }
            None => None,
        };
        Ok(FlowAction {
            flow_message_version,
            flow,
            flow_cta,
            flow_token: self.flow_token,
            mode,
            flow_action,
            flow_action_payload,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardKind {
    CtaUrl,
    Product,
}

const CARD_KINDS: &[(&str, CardKind)] = &[
    ("cta_url", CardKind::CtaUrl),
    ("product", CardKind::Product),
];

fn carousel_cards(raw: Vec<RawCard>, p: &Path<'_>) -> Result<Vec<InteractiveCard>, ApiError> {
    if raw.len() < MIN_CAROUSEL_CARDS || raw.len() > MAX_CAROUSEL_CARDS {
        return Err(bad_count(
            p,
            MIN_CAROUSEL_CARDS,
            MAX_CAROUSEL_CARDS,
            raw.len(),
        ));
    }
    let mut seen = [false; MAX_CAROUSEL_CARDS];
    let mut out: Vec<InteractiveCard> = Vec::with_capacity(raw.len());
    for (i, card) in raw.into_iter().enumerate() {
        let cp = p.index(i);
        let index_p = cp.key("card_index");
        let card_index = small_index(card.card_index, &index_p, (MAX_CAROUSEL_CARDS - 1) as u8)?;
        match seen.get_mut(usize::from(card_index)) {
            Some(s) if !*s => *s = true,
            _ => return Err(duplicate(&index_p, &card_index.to_string())),
        }
        let type_p = cp.key("type");
        let kind_str = card.kind.ok_or_else(|| missing(&type_p))?;
        let kind = one_of(&kind_str, &type_p, CARD_KINDS)?;
        let action_p = cp.key("action");
        let action = card.action.ok_or_else(|| missing(&action_p))?;
        let content = match kind {
            CardKind::CtaUrl => {
                let header_p = cp.key("header");
                let raw_header = card.header.ok_or_else(|| missing(&header_p))?;
                let header = header(
                    raw_header,
                    &header_p,
                    &[HeaderKind::Image, HeaderKind::Video],
                )?;
                let body = match card.body {
                    Some(b) => optional(b.text, &cp.key("body").key("text"), MAX_CARD_BODY)?,
                    None => None,
                };
                expect_name(action.name, &action_p, "cta_url")?;
                let cta = cta_url(action.parameters, &action_p.key("parameters"))?;
                CardContent::CtaUrl {
                    header,
                    body,
                    action: cta,
                }
            }
            CardKind::Product => CardContent::Product {
                catalog_id: required_id(action.catalog_id, &action_p.key("catalog_id"))?,
                product_retailer_id: required_id(
                    action.product_retailer_id,
                    &action_p.key("product_retailer_id"),
                )?,
            },
        };
        if let Some(first) = out.first() {
            consistent(&first.content, &content, &cp)?;
        }
        out.push(InteractiveCard {
            card_index,
            content,
        });
    }
    Ok(out)
}

/// Every card of a carousel has the same kind, the same header media type and (products) the
/// same catalog.
fn consistent(first: &CardContent, this: &CardContent, p: &Path<'_>) -> Result<(), ApiError> {
    match (first, this) {
        (CardContent::CtaUrl { header: a, .. }, CardContent::CtaUrl { header: b, .. }) => {
            if a.type_str() != b.type_str() {
                return Err(invalid_param(
                    &p.key("header").key("type"),
                    &format!("must be the same on every card ({})", a.type_str()),
                ));
            }
        }
        (
            CardContent::Product { catalog_id: a, .. },
            CardContent::Product { catalog_id: b, .. },
        ) => {
            if a != b {
                return Err(invalid_param(
                    &p.key("action").key("catalog_id"),
                    &format!("must be the same on every card ({a})"),
                ));
            }
        }
        _ => {
            return Err(invalid_param(
                &p.key("type"),
                "must be the same on every card",
            ));
        }
    }
    Ok(())
}
