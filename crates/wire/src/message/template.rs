//! `type: "template"` (spec §2.7): components, parameters, buttons, limited-time offers and
//! carousels.
//!
//! Only definition-independent rules live here (types, lengths, indices, placement). Whether the
//! parameters match the approved template (count 132000, format 132012, the 1024-character body
//! rule 132005) needs the template definition and is checked by the sandbox.

use super::location::{Location, RawLocation};
use super::media::{Media, MediaKind, Place, RawMedia};
use super::validate::{
    Integer, Path, StrNum, bad_count, bad_enum, duplicate, invalid_param, invalid_value, missing,
    obj, objs, one_of, required, small_index,
};
use crate::error::{ApiError, ErrorCode};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Longest template name.
pub const MAX_TEMPLATE_NAME: usize = 512;
/// Longest text parameter of a header component.
pub const MAX_HEADER_TEXT_PARAM: usize = 60;
/// Longest text parameter of a body component (OpenAPI `maxLength`; the 1024 rule for templates
/// with other components needs the definition).
pub const MAX_BODY_TEXT_PARAM: usize = 32768;
/// Longest `coupon_code` of a copy-code button.
pub const MAX_COUPON_CODE: usize = 15;
/// Highest button `index` (up to 10 buttons).
pub const MAX_BUTTON_INDEX: u8 = 9;
/// Fewest cards in a carousel template.
pub const MIN_CAROUSEL_CARDS: usize = 2;
/// Most cards in a carousel template.
pub const MAX_CAROUSEL_CARDS: usize = 10;
/// Most button components in one carousel card.
pub const MAX_CARD_BUTTONS: usize = 2;

/// A template send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    /// The approved template's name.
    pub name: String,
    /// The language code (`language.code`: `en_US`, `de`, `pt_BR` …).
    #[serde(serialize_with = "ser_language")]
    pub language: String,
    /// On-Premises template namespace; unused by the Cloud API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Variable values and dynamic buttons, in the order sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateComponent>,
}

fn ser_language<S: Serializer>(code: &str, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry("code", code)?;
    m.end()
}

/// One component of a template send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateComponent {
    /// Header variable or media.
    Header {
        /// Text, media, location or product parameter.
        parameters: Vec<Parameter>,
    },
    /// Body variables.
    Body {
        /// Text, currency or date-time parameters.
        parameters: Vec<Parameter>,
    },
    /// One dynamic button.
    Button {
        /// The button kind.
        sub_type: ButtonSubType,
        /// 0-based position of the button, 0 to 9 (sent as `"0"` or `0`).
        #[serde(serialize_with = "ser_index")]
        index: u8,
        /// The button's parameters.
        parameters: Vec<Parameter>,
    },
    /// Limited-time-offer expiration.
    LimitedTimeOffer {
        /// `limited_time_offer` parameters.
        parameters: Vec<Parameter>,
    },
    /// Carousel cards.
    Carousel {
        /// 2 to 10 cards with unique `card_index`.
        cards: Vec<CarouselCard>,
    },
}

fn ser_index<S: Serializer>(index: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(index)
}

/// The `sub_type` of a button component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonSubType {
    /// Quick reply: `payload` parameter.
    QuickReply,
    /// Dynamic URL suffix (also one-tap / copy-code OTP buttons): `text` parameter.
    Url,
    /// Copy a coupon code: `coupon_code` parameter.
    CopyCode,
    /// Open a Flow: `action` parameter.
    Flow,
    /// Open the catalog: `action` parameter.
    Catalog,
    /// Multi-product message: `action` parameter.
    Mpm,
    /// Single-product message: `action` parameter.
    Spm,
    /// Call the business on WhatsApp.
    VoiceCall,
    /// Payments order details: `action` parameter.
    OrderDetails,
}

const SUB_TYPES: &[(&str, ButtonSubType)] = &[
    ("quick_reply", ButtonSubType::QuickReply),
    ("url", ButtonSubType::Url),
    ("copy_code", ButtonSubType::CopyCode),
    ("flow", ButtonSubType::Flow),
    ("catalog", ButtonSubType::Catalog),
    ("mpm", ButtonSubType::Mpm),
    ("spm", ButtonSubType::Spm),
    ("voice_call", ButtonSubType::VoiceCall),
    ("order_details", ButtonSubType::OrderDetails),
];

impl ButtonSubType {
    /// The wire name (`"quick_reply"`, `"url"` …).
    pub fn as_str(&self) -> &'static str {
        SUB_TYPES
            .iter()
            .find(|(_, v)| v == self)
            .map(|(n, _)| *n)
            .unwrap_or("quick_reply")
    }
}

/// One card of a carousel template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarouselCard {
    /// 0-based card position, 0 to 9.
    pub card_index: u8,
    /// The card's header, body and button components.
    pub components: Vec<TemplateComponent>,
}

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// `parameter_name`, for templates created with named parameters.
    pub name: Option<String>,
    /// The value; its kind is the parameter's `type`.
    pub value: ParameterValue,
}

impl Parameter {
    /// A positional text parameter.
    pub fn text(text: impl Into<String>) -> Parameter {
        Parameter {
            name: None,
            value: ParameterValue::Text(text.into()),
        }
    }
}

impl Serialize for Parameter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.value.type_str();
        let mut m = s.serialize_map(Some(if self.name.is_some() { 3 } else { 2 }))?;
        m.serialize_entry("type", kind)?;
        if let Some(name) = &self.name {
            m.serialize_entry("parameter_name", name)?;
        }
        m.serialize_entry(kind, &self.value)?;
        m.end()
    }
}

/// A parameter's value; serialises as the object under the parameter's `type` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParameterValue {
    /// `text`.
    Text(String),
    /// `currency`.
    Currency {
        /// Shown text, e.g. `"$100.99"`.
        fallback_value: String,
        /// ISO 4217 code.
        code: String,
        /// Amount × 1000.
        amount_1000: i64,
    },
    /// `date_time`; the Cloud API renders the fallback value.
    DateTime {
        /// Shown text.
        fallback_value: String,
    },
    /// `image` header.
    Image(Media),
    /// `video` header.
    Video(Media),
    /// `document` header.
    Document(Media),
    /// `location` header.
    Location(Location),
    /// Quick-reply `payload`.
    Payload(String),
    /// Copy-code `coupon_code`, at most 15 characters.
    CouponCode(String),
    /// Button `action` object (Flow token and data, catalog thumbnail, MPM sections …).
    Action(serde_json::Value),
    /// `limited_time_offer`.
    LimitedTimeOffer {
        /// Offer expiry, Unix epoch milliseconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        expiration_time_ms: Option<i64>,
    },
    /// `product` header of a product-card carousel.
    Product {
        /// The product's retailer id.
        product_retailer_id: String,
        /// The catalog id.
        catalog_id: String,
    },
}

impl ParameterValue {
    /// The parameter `type` (`"text"`, `"currency"` …).
    pub fn type_str(&self) -> &'static str {
        self.kind().as_str()
    }

    fn kind(&self) -> ParamKind {
        match self {
            ParameterValue::Text(_) => ParamKind::Text,
            ParameterValue::Currency { .. } => ParamKind::Currency,
            ParameterValue::DateTime { .. } => ParamKind::DateTime,
            ParameterValue::Image(_) => ParamKind::Image,
            ParameterValue::Video(_) => ParamKind::Video,
            ParameterValue::Document(_) => ParamKind::Document,
            ParameterValue::Location(_) => ParamKind::Location,
            ParameterValue::Payload(_) => ParamKind::Payload,
            ParameterValue::CouponCode(_) => ParamKind::CouponCode,
            ParameterValue::Action(_) => ParamKind::Action,
            ParameterValue::LimitedTimeOffer { .. } => ParamKind::LimitedTimeOffer,
            ParameterValue::Product { .. } => ParamKind::Product,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamKind {
    Text,
    Currency,
    DateTime,
    Image,
    Video,
    Document,
    Location,
    Payload,
    CouponCode,
    Action,
    LimitedTimeOffer,
    Product,
}

const PARAM_KINDS: &[(&str, ParamKind)] = &[
    ("text", ParamKind::Text),
    ("currency", ParamKind::Currency),
    ("date_time", ParamKind::DateTime),
    ("image", ParamKind::Image),
    ("video", ParamKind::Video),
    ("document", ParamKind::Document),
    ("location", ParamKind::Location),
    ("payload", ParamKind::Payload),
    ("coupon_code", ParamKind::CouponCode),
    ("action", ParamKind::Action),
    ("limited_time_offer", ParamKind::LimitedTimeOffer),
    ("product", ParamKind::Product),
];

impl ParamKind {
    fn as_str(self) -> &'static str {
        PARAM_KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("text")
    }
}

/// Which component a parameter list belongs to; decides the allowed kinds and text limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Header,
    Body,
    Button(ButtonSubType),
    LimitedTimeOffer,
}

impl Slot {
    fn allowed(self) -> &'static [ParamKind] {
        use ParamKind as K;
        match self {
            Slot::Header => &[
                K::Text,
                K::Image,
                K::Video,
                K::Document,
                K::Location,
                K::Product,
            ],
            Slot::Body => &[K::Text, K::Currency, K::DateTime],
            Slot::Button(sub) => match sub {
                ButtonSubType::QuickReply => &[K::Payload, K::Text],
                ButtonSubType::Url => &[K::Text],
                ButtonSubType::CopyCode => &[K::CouponCode],
                ButtonSubType::Flow
                | ButtonSubType::Catalog
                | ButtonSubType::Mpm
                | ButtonSubType::Spm
                | ButtonSubType::OrderDetails => &[K::Action],
                ButtonSubType::VoiceCall => &[K::Payload, K::Text, K::Action],
            },
            Slot::LimitedTimeOffer => &[K::LimitedTimeOffer],
        }
    }

    fn max_text(self) -> usize {
        match self {
            Slot::Header => MAX_HEADER_TEXT_PARAM,
            Slot::Body => MAX_BODY_TEXT_PARAM,
            Slot::Button(_) | Slot::LimitedTimeOffer => usize::MAX,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw shapes.

/// `template` as sent.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawTemplate {
    name: Option<String>,
    #[serde(default, deserialize_with = "obj")]
    language: Option<RawLanguage>,
    namespace: Option<String>,
    #[serde(default, deserialize_with = "objs")]
    components: Option<Vec<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawLanguage {
    code: Option<String>,
    policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawComponent {
    #[serde(rename = "type")]
    kind: Option<String>,
    sub_type: Option<String>,
    index: Option<StrNum>,
    #[serde(default, deserialize_with = "objs")]
    parameters: Option<Vec<RawParameter>>,
    #[serde(default, deserialize_with = "objs")]
    cards: Option<Vec<RawCard>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawCard {
    card_index: Option<StrNum>,
    #[serde(default, deserialize_with = "objs")]
    components: Option<Vec<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawParameter {
    #[serde(rename = "type")]
    kind: Option<String>,
    parameter_name: Option<String>,
    text: Option<StrNum>,
    #[serde(default, deserialize_with = "obj")]
    currency: Option<RawCurrency>,
    #[serde(default, deserialize_with = "obj")]
    date_time: Option<RawDateTime>,
    #[serde(default, deserialize_with = "obj")]
    image: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    video: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    document: Option<RawMedia>,
    #[serde(default, deserialize_with = "obj")]
    location: Option<RawLocation>,
    payload: Option<StrNum>,
    coupon_code: Option<StrNum>,
    action: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "obj")]
    limited_time_offer: Option<RawLimitedTimeOffer>,
    #[serde(default, deserialize_with = "obj")]
    product: Option<RawProduct>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawCurrency {
    fallback_value: Option<String>,
    code: Option<String>,
    amount_1000: Option<Integer>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawDateTime {
    fallback_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawLimitedTimeOffer {
    expiration_time_ms: Option<Integer>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawProduct {
    product_retailer_id: Option<StrNum>,
    catalog_id: Option<StrNum>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

impl RawTemplate {
    pub(crate) fn validate(self, p: &Path<'_>) -> Result<Template, ApiError> {
        let name = required(self.name, &p.key("name"), MAX_TEMPLATE_NAME)?;
        let lang_p = p.key("language");
        let lang = self.language.ok_or_else(|| missing(&lang_p))?;
        let language = required(lang.code, &lang_p.key("code"), usize::MAX)?;
        match &lang.policy {
            Some(policy) if !policy.trim().eq_ignore_ascii_case("deterministic") => {
                return Err(bad_enum(&lang_p.key("policy"), policy, &["deterministic"]));
            }
            _ => {}
        }
        let namespace = self.namespace.filter(|n| !n.trim().is_empty());
        let components = components(
            self.components.unwrap_or_default(),
            &p.key("components"),
            Level::Template,
        )?;
        Ok(Template {
            name,
            language,
            namespace,
            components,
        })
    }
}

/// Top-level components or the components of a carousel card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Template,
    Card,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompKind {
    Header,
    Body,
    Button,
    LimitedTimeOffer,
    Carousel,
}

const COMPONENT_KINDS: &[(&str, CompKind)] = &[
    ("header", CompKind::Header),
    ("body", CompKind::Body),
    ("button", CompKind::Button),
    ("limited_time_offer", CompKind::LimitedTimeOffer),
    ("carousel", CompKind::Carousel),
];

const CARD_COMPONENT_KINDS: &[(&str, CompKind)] = &[
    ("header", CompKind::Header),
    ("body", CompKind::Body),
    ("button", CompKind::Button),
];

fn components(
    raw: Vec<RawComponent>,
    p: &Path<'_>,
    level: Level,
) -> Result<Vec<TemplateComponent>, ApiError> {
    let table = match level {
        Level::Template => COMPONENT_KINDS,
        Level::Card => CARD_COMPONENT_KINDS,
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut seen: Vec<CompKind> = Vec::new();
    let mut seen_indices = [false; (MAX_BUTTON_INDEX as usize) + 1];
    let mut buttons = 0usize;
    for (i, c) in raw.into_iter().enumerate() {
        let cp = p.index(i);
        let type_p = cp.key("type");
        let kind_str = c.kind.ok_or_else(|| missing(&type_p))?;
        let kind = one_of(&kind_str, &type_p, table)?;
        if kind != CompKind::Button {
            if seen.contains(&kind) {
                return Err(invalid_param(
                    &cp,
                    &format!(
                        "repeats the {} component; send it at most once",
                        kind_str.trim()
                    ),
                ));
            }
            seen.push(kind);
        }
        let params_p = cp.key("parameters");
        let component = match kind {
            CompKind::Header => TemplateComponent::Header {
                parameters: params(c.parameters, &params_p, Slot::Header)?,
            },
            CompKind::Body => TemplateComponent::Body {
                parameters: params(c.parameters, &params_p, Slot::Body)?,
            },
            CompKind::LimitedTimeOffer => TemplateComponent::LimitedTimeOffer {
                parameters: params(c.parameters, &params_p, Slot::LimitedTimeOffer)?,
            },
            CompKind::Button => {
                let sub_p = cp.key("sub_type");
                let sub_str = c.sub_type.ok_or_else(|| missing(&sub_p))?;
                let sub_type = one_of(&sub_str, &sub_p, SUB_TYPES)?;
                let index_p = cp.key("index");
                let index = small_index(c.index, &index_p, MAX_BUTTON_INDEX)?;
                match seen_indices.get_mut(usize::from(index)) {
                    Some(seen) if !*seen => *seen = true,
                    _ => return Err(duplicate(&index_p, &index.to_string())),
                }
                buttons += 1;
                if level == Level::Card && buttons > MAX_CARD_BUTTONS {
                    return Err(invalid_param(
                        &cp,
                        &format!(
                            "exceeds the limit of {MAX_CARD_BUTTONS} buttons per carousel card"
                        ),
                    ));
                }
                let parameters = params(c.parameters, &params_p, Slot::Button(sub_type))?;
                TemplateComponent::Button {
                    sub_type,
                    index,
                    parameters,
                }
            }
            CompKind::Carousel => {
                let cards_p = cp.key("cards");
                let raw_cards = c.cards.ok_or_else(|| missing(&cards_p))?;
                TemplateComponent::Carousel {
                    cards: cards(raw_cards, &cards_p)?,
                }
            }
        };
        out.push(component);
    }
    Ok(out)
}

fn cards(raw: Vec<RawCard>, p: &Path<'_>) -> Result<Vec<CarouselCard>, ApiError> {
    if raw.len() < MIN_CAROUSEL_CARDS || raw.len() > MAX_CAROUSEL_CARDS {
        return Err(bad_count(
            p,
            MIN_CAROUSEL_CARDS,
            MAX_CAROUSEL_CARDS,
            raw.len(),
        ));
    }
    let mut seen = [false; MAX_CAROUSEL_CARDS];
    let mut out = Vec::with_capacity(raw.len());
    for (i, card) in raw.into_iter().enumerate() {
        let cp = p.index(i);
        let index_p = cp.key("card_index");
        let card_index = small_index(card.card_index, &index_p, (MAX_CAROUSEL_CARDS - 1) as u8)?;
        match seen.get_mut(usize::from(card_index)) {
            Some(s) if !*s => *s = true,
            _ => return Err(duplicate(&index_p, &card_index.to_string())),
        }
        let comps_p = cp.key("components");
        let raw_comps = card.components.ok_or_else(|| missing(&comps_p))?;
        let components = components(raw_comps, &comps_p, Level::Card)?;
        out.push(CarouselCard {
            card_index,
            components,
        });
    }
    Ok(out)
}

fn params(
    raw: Option<Vec<RawParameter>>,
    p: &Path<'_>,
    slot: Slot,
) -> Result<Vec<Parameter>, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, rp) in raw.into_iter().enumerate() {
        let pp = p.index(i);
        out.push(rp.validate(&pp, slot)?);
    }
    Ok(out)
}

impl RawParameter {
    fn validate(self, p: &Path<'_>, slot: Slot) -> Result<Parameter, ApiError> {
        let type_p = p.key("type");
        let kind_str = self.kind.ok_or_else(|| missing(&type_p))?;
        let kind = one_of(&kind_str, &type_p, PARAM_KINDS)?;
        let allowed = slot.allowed();
        if !allowed.contains(&kind) {
            let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
            return Err(bad_enum(&type_p, &kind_str, &names));
        }
        let name = match self.parameter_name {
            Some(n) if n.trim().is_empty() => return Err(missing(&p.key("parameter_name"))),
            other => other,
        };
        let key = kind.as_str();
        let value = match kind {
            ParamKind::Text => {
                let text_p = p.key("text");
                let text = required(StrNum::non_blank(self.text), &text_p, slot.max_text())?;
                if matches!(slot, Slot::Header | Slot::Body) {
                    check_template_text(&text, &text_p)?;
                }
                ParameterValue::Text(text)
            }
            ParamKind::Currency => {
                let cp = p.key(key);
                let c = self.currency.ok_or_else(|| missing(&cp))?;
                let fallback_value =
                    required(c.fallback_value, &cp.key("fallback_value"), usize::MAX)?;
                let code_p = cp.key("code");
                let code = required(c.code, &code_p, usize::MAX)?;
                let trimmed = code.trim();
                if trimmed.len() != 3 || !trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(invalid_value(&code_p, "must be an ISO 4217 currency code"));
                }
                let amount_1000 = c
                    .amount_1000
                    .ok_or_else(|| missing(&cp.key("amount_1000")))?
                    .0;
                ParameterValue::Currency {
                    fallback_value,
                    code,
                    amount_1000,
                }
            }
            ParamKind::DateTime => {
                let dp = p.key(key);
                let d = self.date_time.ok_or_else(|| missing(&dp))?;
                let fallback_value =
                    required(d.fallback_value, &dp.key("fallback_value"), usize::MAX)?;
                ParameterValue::DateTime { fallback_value }
            }
            ParamKind::Image => {
                ParameterValue::Image(media(self.image, &p.key(key), MediaKind::Image)?)
            }
            ParamKind::Video => {
                ParameterValue::Video(media(self.video, &p.key(key), MediaKind::Video)?)
            }
            ParamKind::Document => {
                ParameterValue::Document(media(self.document, &p.key(key), MediaKind::Document)?)
            }
            ParamKind::Location => {
                let lp = p.key(key);
                ParameterValue::Location(self.location.ok_or_else(|| missing(&lp))?.validate(&lp)?)
            }
            ParamKind::Payload => ParameterValue::Payload(required(
                StrNum::non_blank(self.payload),
                &p.key(key),
                usize::MAX,
            )?),
            ParamKind::CouponCode => ParameterValue::CouponCode(required(
                StrNum::non_blank(self.coupon_code),
                &p.key(key),
                MAX_COUPON_CODE,
            )?),
            ParamKind::Action => {
                let action = self.action.ok_or_else(|| missing(&p.key(key)))?;
                ParameterValue::Action(serde_json::Value::Object(action))
            }
            ParamKind::LimitedTimeOffer => {
                let lp = p.key(key);
                let lto = self.limited_time_offer.ok_or_else(|| missing(&lp))?;
                ParameterValue::LimitedTimeOffer {
                    expiration_time_ms: lto.expiration_time_ms.map(|i| i.0),
                }
            }
            ParamKind::Product => {
                let pp = p.key(key);
                let prod = self.product.ok_or_else(|| missing(&pp))?;
                let product_retailer_id = required(
                    StrNum::non_blank(prod.product_retailer_id),
                    &pp.key("product_retailer_id"),
                    usize::MAX,
                )?;
                let catalog_id = required(
                    StrNum::non_blank(prod.catalog_id),
                    &pp.key("catalog_id"),
                    usize::MAX,
                )?;
                ParameterValue::Product {
                    product_retailer_id,
                    catalog_id,
                }
            }
        };
        Ok(Parameter { name, value })
    }
}

fn media(raw: Option<RawMedia>, p: &Path<'_>, kind: MediaKind) -> Result<Media, ApiError> {
    raw.ok_or_else(|| missing(p))?
        .validate(p, kind, Place::Embedded)
}

/// The platform's rule for header and body variables: no new-line or tab characters and no more
/// than four consecutive spaces (132018).
fn check_template_text(text: &str, p: &Path<'_>) -> Result<(), ApiError> {
    let mut spaces = 0usize;
    for c in text.chars() {
        if c == '\n' || c == '\r' || c == '\t' {
            return Err(template_text_error(p));
        }
        if c == ' ' {
            spaces += 1;
            if spaces > 4 {
                return Err(template_text_error(p));
            }
        } else {
            spaces = 0;
        }
    }
    Ok(())
}

fn template_text_error(p: &Path<'_>) -> ApiError {
    ApiError::with_details(
        ErrorCode::TemplateValidation,
        format!("Param {p} cannot have new-line/tab characters or more than 4 consecutive spaces."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_text_rule() {
        let p = Path::root("t");
        assert!(check_template_text("Ana    B", &p).is_ok());
        assert!(check_template_text("Ana     B", &p).is_err());
        assert!(check_template_text("a\nb", &p).is_err());
        assert!(check_template_text("a\tb", &p).is_err());
    }

    #[test]
    fn names_round_trip() {
        for (name, sub) in SUB_TYPES {
            assert_eq!(sub.as_str(), *name);
            assert_eq!(serde_json::to_value(sub).unwrap(), serde_json::json!(name));
        }
        for (name, kind) in PARAM_KINDS {
            assert_eq!(kind.as_str(), *name);
        }
    }
}
