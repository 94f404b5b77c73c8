//! Message-template definitions (platform spec §7): what a business creates through the
//! template-management API (Meta `POST /{waba_id}/message_templates`, 360dialog
//! `POST /v1/configs/templates`, same body), their validation at creation with the platform's
//! codes, and the check of a template send (spec §2.7) against its definition.
//!
//! Parsing is lenient like the platform's: `type`, `format`, `category`, `parameter_format` and
//! `otp_type` in any case, numbers as numeric strings, unknown fields ignored, explicit `null`
//! as absent. Every error's `details` names the field path (`components[1].buttons[0].text`).
//!
//! Creation ([`parse_create`], [`TemplateDefinition::validate`]):
//!
//! | Problem | Code |
//! |---|---|
//! | required field absent or blank (`name`, `language`, `category`, `components`, a BODY, a component's `type`, texts, button `url`/`phone_number`, OTP button of an AUTHENTICATION template) | 131008 |
//! | bad `name`/`language`/`category`/`parameter_format`, TTL out of range, wrong counts, button combinations, fields not allowed for the category, examples missing or not matching the variables, malformed URL button | 100 |
//! | a text over its character limit (header 60, body 1024, card body 160, footer 60, button text 25, URL 2000, phone number 20, coupon example 15, offer text 16) | 2388040 |
//! | header: unknown format, more than one variable, malformed variable, no header allowed here | 2388047 |
//! | body: malformed variable, positional variables not numbered 1..n, bad named variable, positional/named mixed up | 2388072 |
//! | footer with a variable | 2388073 |
//! | more than one variable per [`WORDS_PER_VARIABLE`] words | 2388293 |
//! | body text starting or ending with a variable | 2388299 |
//!
//! Sends ([`TemplateDefinition::check_send`]): wrong number of parameters (or carousel cards) is
//! 132000 with Meta's wording `"body: number of localizable_params (1) does not match the expected
//! number of params (3)"`; a parameter of the wrong kind, a wrong or unknown `parameter_name`, a
//! button `index`/`sub_type` that does not match the definition is 132012; a parameter or the
//! rendered body over its length limit is 132005.
//!
//! Where the sources are silent (emulator decisions): 2388019 (count limit) needs the account's
//! templates and is left to the registry; AUTHENTICATION templates take no header at all; a
//! carousel template has only a BODY beside the CAROUSEL; every card needs a HEADER (IMAGE, VIDEO
//! or PRODUCT) and 1–2 buttons; examples are 100 whether missing or mismatched; the rendered
//! body is held to the same 1024/32768 limit as a single body variable.

#![warn(missing_docs)]

use crate::error::{ApiError, ErrorCode};
use crate::message::{
    ButtonSubType, CarouselCard, MAX_HEADER_TEXT_PARAM, Parameter, ParameterValue, Template,
    TemplateComponent,
};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;

// ---------------------------------------------------------------------------------------------
// Limits (spec §7.1, §7.2, §2.7).

/// Longest template name.
pub const MAX_NAME: usize = 512;
/// Longest TEXT header.
pub const MAX_HEADER_TEXT: usize = 60;
/// Longest body text.
pub const MAX_BODY_TEXT: usize = 1024;
/// Longest body text of a carousel card.
pub const MAX_CARD_BODY_TEXT: usize = 160;
/// Longest footer text.
pub const MAX_FOOTER_TEXT: usize = 60;
/// Most buttons in a BUTTONS component.
pub const MAX_BUTTONS: usize = 10;
/// Most quick-reply buttons.
pub const MAX_QUICK_REPLY_BUTTONS: usize = 10;
/// Most URL buttons.
pub const MAX_URL_BUTTONS: usize = 2;
/// Longest button label.
pub const MAX_BUTTON_TEXT: usize = 25;
/// Longest URL of a URL button.
pub const MAX_BUTTON_URL: usize = 2000;
/// Longest phone number of a PHONE_NUMBER button.
pub const MAX_PHONE_NUMBER: usize = 20;
/// Longest example code of a COPY_CODE button (and longest one-time password at send).
pub const MAX_COPY_CODE: usize = 15;
/// Longest `limited_time_offer.text` (Meta's limited-time-offer guide).
pub const MAX_OFFER_TEXT: usize = 16;
/// Fewest cards in a carousel.
pub const MIN_CARDS: usize = 2;
/// Most cards in a carousel.
pub const MAX_CARDS: usize = 10;
/// Most buttons on one carousel card.
pub const MAX_CARD_BUTTONS: usize = 2;
/// Shortest and longest `code_expiration_minutes` of an AUTHENTICATION footer.
pub const CODE_EXPIRATION_MINUTES: (i64, i64) = (1, 90);
/// Longest body variable value when the template has other components than the body (spec §2.7).
pub const MAX_BODY_PARAM: usize = 1024;
/// Longest body variable value when the body is the template's only component (spec §2.7).
pub const MAX_BODY_ONLY_PARAM: usize = 32768;
/// The rule behind 2388293 (the platform's word-to-variable ratio is not documented): a text may
/// hold at most one variable per this many words, where a word is a whitespace-separated token
/// containing a letter, a digit or a variable (so variables count as words). "Your code is
/// {{1}}." passes (4 words, 1 variable); "Hi {{1}} {{2}}" does not (3 words, 2 variables).
pub const WORDS_PER_VARIABLE: usize = 3;
/// Seconds of the 30-day TTL that `message_send_ttl_seconds: -1` stands for (spec §7.6).
pub const THIRTY_DAYS_SECONDS: i64 = 2_592_000;

// ---------------------------------------------------------------------------------------------
// Wire enums.

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $variant:ident = $wire:literal, )* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vm])* $variant, )* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )* ];

            /// The wire name.
            pub fn as_str(&self) -> &'static str {
                match self { $( $name::$variant => $wire, )* }
            }

            /// Parses a wire name in any case (surrounding whitespace ignored).
            pub fn from_name(name: &str) -> Option<$name> {
                let name = name.trim();
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(name))
            }

            fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::from_name(&s).ok_or_else(|| D::Error::unknown_variant(&s, &[ $( $wire, )* ]))
            }
        }
    };
}

wire_enum! {
    /// A template category (spec §7.1); serialises upper case, parses in any case.
    Category {
        /// `MARKETING`.
        Marketing = "MARKETING",
        /// `UTILITY`.
        Utility = "UTILITY",
        /// `AUTHENTICATION`.
        Authentication = "AUTHENTICATION",
    }
}

impl Category {
    /// Lower case, as pricing and conversation objects write it (`"marketing"`).
    pub fn lower(&self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Utility => "utility",
            Category::Authentication => "authentication",
        }
    }

    /// The allowed range of `message_send_ttl_seconds` (spec §7.6), inclusive. Authentication
    /// and utility templates also take `-1` (30 days).
    pub fn ttl_range(&self) -> (i64, i64) {
        match self {
            Category::Authentication => (30, 900),
            Category::Utility => (30, 43_200),
            Category::Marketing => (43_200, THIRTY_DAYS_SECONDS),
        }
    }

    /// The TTL when none is set: 10 minutes for authentication, 30 days otherwise (spec §7.6).
    pub fn default_ttl_seconds(&self) -> i64 {
        match self {
            Category::Authentication => 600,
            Category::Utility | Category::Marketing => THIRTY_DAYS_SECONDS,
        }
    }
}

wire_enum! {
    /// How variables are written (spec §2.7.1): `{{1}}` or `{{first_name}}`.
    #[derive(Default)]
    ParameterFormat {
        /// `positional` (default): `{{1}}`, `{{2}}` …, filled by array order.
        #[default]
        Positional = "positional",
        /// `named`: `{{first_name}}`, filled by `parameter_name`.
        Named = "named",
    }
}

wire_enum! {
    /// A HEADER's `format`.
    HeaderFormat {
        /// Text, at most 60 characters and one variable.
        Text = "TEXT",
        /// An image, chosen at send time.
        Image = "IMAGE",
        /// A video, chosen at send time.
        Video = "VIDEO",
        /// A PDF document, chosen at send time.
        Document = "DOCUMENT",
        /// A location, chosen at send time.
        Location = "LOCATION",
        /// A product (product-card carousels only).
        Product = "PRODUCT",
    }
}

wire_enum! {
    /// A button's `type` at creation.
    ButtonKind {
        /// `QUICK_REPLY`.
        QuickReply = "QUICK_REPLY",
        /// `URL`, static or with one `{{1}}` at the end.
        Url = "URL",
        /// `PHONE_NUMBER`.
        PhoneNumber = "PHONE_NUMBER",
        /// `COPY_CODE` (coupon code).
        CopyCode = "COPY_CODE",
        /// `OTP` (authentication templates).
        Otp = "OTP",
        /// `FLOW`.
        Flow = "FLOW",
        /// `MPM` (multi-product).
        Mpm = "MPM",
        /// `CATALOG`.
        Catalog = "CATALOG",
        /// `SPM` (single product).
        Spm = "SPM",
        /// `VOICE_CALL`.
        VoiceCall = "VOICE_CALL",
    }
}

impl ButtonKind {
    /// The `sub_type` a send uses for a button of this kind; `None` when it takes no parameter.
    pub fn send_sub_type(&self) -> Option<ButtonSubType> {
        match self {
            ButtonKind::QuickReply => Some(ButtonSubType::QuickReply),
            ButtonKind::Url | ButtonKind::Otp => Some(ButtonSubType::Url),
            ButtonKind::PhoneNumber => None,
            ButtonKind::CopyCode => Some(ButtonSubType::CopyCode),
            ButtonKind::Flow => Some(ButtonSubType::Flow),
            ButtonKind::Mpm => Some(ButtonSubType::Mpm),
            ButtonKind::Catalog => Some(ButtonSubType::Catalog),
            ButtonKind::Spm => Some(ButtonSubType::Spm),
            ButtonKind::VoiceCall => Some(ButtonSubType::VoiceCall),
        }
    }
}

wire_enum! {
    /// An OTP button's `otp_type`.
    OtpType {
        /// The user copies the code.
        CopyCode = "COPY_CODE",
        /// The app autofills the code on a tap.
        OneTap = "ONE_TAP",
        /// The code reaches the app without a tap.
        ZeroTap = "ZERO_TAP",
    }
}

// ---------------------------------------------------------------------------------------------
// The definition.

/// A message template as created: the creation body, typed. Serialises back to a creation body
/// that [`parse_create`] accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateDefinition {
    /// Lowercase letters, digits and underscores, at most 512 characters.
    pub name: String,
    /// Locale (`en_US`, `de`, `pt_BR` …).
    pub language: String,
    /// Category.
    pub category: Category,
    /// Positional (default) or named variables.
    #[serde(default)]
    pub parameter_format: ParameterFormat,
    /// Delivery time-to-live in seconds; `-1` (authentication and utility) means 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_send_ttl_seconds: Option<i64>,
    /// The components, in the order given.
    pub components: Vec<ComponentDef>,
}

/// One component of a definition; serialises as the platform lists it (`{"type": "HEADER", …}`).
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentDef {
    /// `HEADER`.
    Header(HeaderDef),
    /// `BODY`.
    Body(BodyDef),
    /// `FOOTER`.
    Footer(FooterDef),
    /// `BUTTONS` with its `buttons`.
    Buttons(Vec<ButtonDef>),
    /// `LIMITED_TIME_OFFER` (marketing).
    LimitedTimeOffer(LtoDef),
    /// `CAROUSEL` with its `cards`.
    Carousel(Vec<CardDef>),
}

impl ComponentDef {
    /// The component `type` as listings show it (`"HEADER"` …).
    pub fn type_str(&self) -> &'static str {
        match self {
            ComponentDef::Header(_) => "HEADER",
            ComponentDef::Body(_) => "BODY",
            ComponentDef::Footer(_) => "FOOTER",
            ComponentDef::Buttons(_) => "BUTTONS",
            ComponentDef::LimitedTimeOffer(_) => "LIMITED_TIME_OFFER",
            ComponentDef::Carousel(_) => "CAROUSEL",
        }
    }
}

/// `HEADER`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderDef {
    /// The format.
    pub format: HeaderFormat,
    /// The text of a TEXT header (at most 60 characters, at most one variable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `example` as given (`header_text`, `header_text_named_params`, `header_handle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
}

/// `BODY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BodyDef {
    /// The text; absent for AUTHENTICATION templates, whose text the platform supplies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// AUTHENTICATION: append "For your security, do not share this code."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_security_recommendation: Option<bool>,
    /// `example` as given (`body_text`, `body_text_named_params`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
}

/// `FOOTER`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FooterDef {
    /// The text (no variables, at most 60 characters); absent for AUTHENTICATION templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// AUTHENTICATION: "This code expires in N minutes.", 1 to 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_expiration_minutes: Option<i64>,
}

/// One button of a BUTTONS component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ButtonDef {
    /// The button `type`.
    #[serde(rename = "type")]
    pub kind: ButtonKind,
    /// The label (at most 25 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// URL buttons: the URL, optionally ending in `{{1}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PHONE_NUMBER buttons: the number (at most 20 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// OTP buttons: how the code reaches the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_type: Option<OtpType>,
    /// `example` as given (URL buttons: the full example URL; COPY_CODE: the example code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
    /// OTP one-tap: the autofill button label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autofill_text: Option<String>,
    /// OTP one-tap / zero-tap: the Android package name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_name: Option<String>,
    /// OTP one-tap / zero-tap: the app signing-key hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_hash: Option<String>,
    /// OTP one-tap / zero-tap: `[{package_name, signature_hash}]`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_apps: Option<Value>,
    /// OTP zero-tap: the business accepted the zero-tap terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_tap_terms_accepted: Option<bool>,
    /// FLOW buttons: the Flow's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// FLOW buttons: the Flow's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    /// FLOW buttons: an inline Flow JSON, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_json: Option<Value>,
    /// FLOW buttons: `navigate` or `data_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action: Option<String>,
    /// FLOW buttons: the first screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navigate_screen: Option<String>,
}

impl ButtonDef {
    /// A button of this kind with a label and nothing else.
    pub fn new(kind: ButtonKind, text: Option<&str>) -> ButtonDef {
        ButtonDef {
            kind,
            text: text.map(str::to_owned),
            url: None,
            phone_number: None,
            otp_type: None,
            example: None,
            autofill_text: None,
            package_name: None,
            signature_hash: None,
            supported_apps: None,
            zero_tap_terms_accepted: None,
            flow_id: None,
            flow_name: None,
            flow_json: None,
            flow_action: None,
            navigate_screen: None,
        }
    }

    /// True for a URL button whose URL ends in a variable (the send supplies the suffix).
    pub fn is_dynamic_url(&self) -> bool {
        self.kind == ButtonKind::Url
            && self
                .url
                .as_deref()
                .is_some_and(|u| scan(u).0.iter().any(|p| matches!(p, Piece::Var(_))))
    }

    /// How many parameters a send must give this button: 1 for a dynamic URL, OTP, COPY_CODE
    /// and MPM button, 0 otherwise (quick replies, Flows, catalogs may still send one).
    pub fn required_params(&self) -> usize {
        match self.kind {
            ButtonKind::Otp | ButtonKind::CopyCode | ButtonKind::Mpm => 1,
            ButtonKind::Url => usize::from(self.is_dynamic_url()),
            _ => 0,
        }
    }
}

/// `LIMITED_TIME_OFFER` (marketing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LtoDef {
    /// The offer text (at most 16 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Whether the offer expires (a send then gives `expiration_time_ms`).
    #[serde(default)]
    pub has_expiration: bool,
}

/// One card of a CAROUSEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardDef {
    /// HEADER (IMAGE, VIDEO or PRODUCT), optional BODY (≤ 160 characters), 1–2 BUTTONS.
    pub components: Vec<ComponentDef>,
}

// ---------------------------------------------------------------------------------------------
// Serialisation of components.

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

#[derive(Serialize)]
struct ButtonsRepr<'a> {
    buttons: &'a [ButtonDef],
}

#[derive(Serialize)]
struct LtoRepr<'a> {
    limited_time_offer: &'a LtoDef,
}

#[derive(Serialize)]
struct CardsRepr<'a> {
    cards: &'a [CardDef],
}

impl Serialize for ComponentDef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = self.type_str();
        match self {
            ComponentDef::Header(h) => Tagged { kind, inner: h }.serialize(s),
            ComponentDef::Body(b) => Tagged { kind, inner: b }.serialize(s),
            ComponentDef::Footer(f) => Tagged { kind, inner: f }.serialize(s),
            ComponentDef::Buttons(buttons) => Tagged {
                kind,
                inner: &ButtonsRepr { buttons },
            }
            .serialize(s),
            ComponentDef::LimitedTimeOffer(l) => Tagged {
                kind,
                inner: &LtoRepr {
                    limited_time_offer: l,
                },
            }
            .serialize(s),
            ComponentDef::Carousel(cards) => Tagged {
                kind,
                inner: &CardsRepr { cards },
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ComponentDef {
    /// Leniently, like a creation body's component (no rule validation).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawComponent::deserialize(d)?;
        raw.into_def("component")
            .map_err(|e| D::Error::custom(e.details))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw creation body: every field optional; scalars as JSON values converted with our wording.

#[derive(Deserialize)]
struct RawCreate {
    name: Option<String>,
    language: Option<String>,
    category: Option<String>,
    parameter_format: Option<String>,
    message_send_ttl_seconds: Option<Value>,
    components: Option<Vec<RawComponent>>,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(rename = "type")]
    kind: Option<String>,
    format: Option<String>,
    text: Option<String>,
    example: Option<Value>,
    add_security_recommendation: Option<Value>,
    code_expiration_minutes: Option<Value>,
    buttons: Option<Vec<RawButton>>,
    limited_time_offer: Option<RawLto>,
    cards: Option<Vec<RawCard>>,
}

#[derive(Deserialize)]
struct RawButton {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    url: Option<String>,
    phone_number: Option<Value>,
    otp_type: Option<String>,
    example: Option<Value>,
    autofill_text: Option<String>,
    package_name: Option<String>,
    signature_hash: Option<String>,
    supported_apps: Option<Value>,
    zero_tap_terms_accepted: Option<Value>,
    flow_id: Option<Value>,
    flow_name: Option<String>,
    flow_json: Option<Value>,
    flow_action: Option<String>,
    navigate_screen: Option<String>,
}

#[derive(Deserialize)]
struct RawLto {
    text: Option<String>,
    has_expiration: Option<Value>,
}

#[derive(Deserialize)]
struct RawCard {
    components: Option<Vec<RawComponent>>,
}

const COMPONENT_TYPES: &[&str] = &[
    "HEADER",
    "BODY",
    "FOOTER",
    "BUTTONS",
    "LIMITED_TIME_OFFER",
    "CAROUSEL",
];

impl RawComponent {
    /// The structural conversion: known `type` and `format`, typed scalars. Rules come later.
    fn into_def(self, p: &str) -> Result<ComponentDef, ApiError> {
        let type_p = format!("{p}.type");
        let kind = self
            .kind
            .filter(|k| !is_blank(k))
            .ok_or_else(|| missing(&type_p))?;
        let kind_up = kind.trim().to_ascii_uppercase();
        Ok(match kind_up.as_str() {
            "HEADER" => {
                let format_p = format!("{p}.format");
                let format = self
                    .format
                    .filter(|f| !is_blank(f))
                    .ok_or_else(|| missing(&format_p))?;
                let format = HeaderFormat::from_name(&format).ok_or_else(|| {
                    ApiError::with_details(
                        ErrorCode::TemplateHeaderFormat,
                        enum_details(&format_p, &format, &HeaderFormat::names()),
                    )
                })?;
                ComponentDef::Header(HeaderDef {
                    format,
                    text: self.text,
                    example: self.example,
                })
            }
            "BODY" => ComponentDef::Body(BodyDef {
                text: self.text,
                add_security_recommendation: flag(
                    self.add_security_recommendation,
                    &format!("{p}.add_security_recommendation"),
                )?,
                example: self.example,
            }),
            "FOOTER" => ComponentDef::Footer(FooterDef {
                text: self.text,
                code_expiration_minutes: integer(
                    self.code_expiration_minutes,
                    &format!("{p}.code_expiration_minutes"),
                )?,
            }),
            "BUTTONS" => {
                let bp = format!("{p}.buttons");
                let raw = self.buttons.ok_or_else(|| missing(&bp))?;
                let mut buttons = Vec::with_capacity(raw.len());
                for (i, b) in raw.into_iter().enumerate() {
                    buttons.push(b.into_def(&format!("{bp}[{i}]"))?);
                }
                ComponentDef::Buttons(buttons)
            }
            "LIMITED_TIME_OFFER" => {
                let lp = format!("{p}.limited_time_offer");
                let raw = self.limited_time_offer.ok_or_else(|| missing(&lp))?;
                ComponentDef::LimitedTimeOffer(LtoDef {
                    text: raw.text,
                    has_expiration: flag(raw.has_expiration, &format!("{lp}.has_expiration"))?
                        .unwrap_or(false),
                })
            }
            "CAROUSEL" => {
                let cp = format!("{p}.cards");
                let raw = self.cards.ok_or_else(|| missing(&cp))?;
                let mut cards = Vec::with_capacity(raw.len());
                for (i, card) in raw.into_iter().enumerate() {
                    let comps_p = format!("{cp}[{i}].components");
                    let comps = card.components.ok_or_else(|| missing(&comps_p))?;
                    cards.push(CardDef {
                        components: convert_components(comps, &comps_p)?,
                    });
                }
                ComponentDef::Carousel(cards)
            }
            _ => {
                return Err(ApiError::invalid_param(enum_details(
                    &type_p,
                    &kind,
                    COMPONENT_TYPES,
                )));
            }
        })
    }
}

impl RawButton {
    fn into_def(self, p: &str) -> Result<ButtonDef, ApiError> {
        let type_p = format!("{p}.type");
        let kind = self
            .kind
            .filter(|k| !is_blank(k))
            .ok_or_else(|| missing(&type_p))?;
        let kind = ButtonKind::from_name(&kind).ok_or_else(|| {
            ApiError::invalid_param(enum_details(&type_p, &kind, &ButtonKind::names()))
        })?;
        let otp_type = match self.otp_type {
            Some(o) if !is_blank(&o) => Some(OtpType::from_name(&o).ok_or_else(|| {
                ApiError::invalid_param(enum_details(
                    &format!("{p}.otp_type"),
                    &o,
                    &OtpType::names(),
                ))
            })?),
            _ => None,
        };
        Ok(ButtonDef {
            kind,
            text: self.text,
            url: self.url,
            phone_number: str_num(self.phone_number, &format!("{p}.phone_number"))?,
            otp_type,
            example: self.example,
            autofill_text: self.autofill_text,
            package_name: self.package_name,
            signature_hash: self.signature_hash,
            supported_apps: self.supported_apps,
            zero_tap_terms_accepted: flag(
                self.zero_tap_terms_accepted,
                &format!("{p}.zero_tap_terms_accepted"),
            )?,
            flow_id: str_num(self.flow_id, &format!("{p}.flow_id"))?,
            flow_name: self.flow_name,
            flow_json: self.flow_json,
            flow_action: self.flow_action,
            navigate_screen: self.navigate_screen,
        })
    }
}

fn convert_components(raw: Vec<RawComponent>, p: &str) -> Result<Vec<ComponentDef>, ApiError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        out.push(c.into_def(&format!("{p}[{i}]"))?);
    }
    Ok(out)
}

/// Parses and validates a creation body (Meta `POST /{waba_id}/message_templates` and 360dialog
/// `POST /v1/configs/templates` share it), spec §7.1–§7.2, §7.6.
///
/// AUTHENTICATION templates take no body or footer text (the platform supplies both); a `text`
/// given there, as listings show it, is dropped.
pub fn parse_create(body: &[u8]) -> Result<TemplateDefinition, ApiError> {
    let def = parse_definition(body)?;
    def.validate()?;
    Ok(def)
}

/// Parses a template as a listing shows it (`name`, `language`, `category`, `parameter_format`,
/// `components`) into a definition whose sends [`TemplateDefinition::check_send`] can check,
/// without the creation rules (a listed template was approved under the rules of its day, and
/// listings leave out the creation `example`s).
pub fn parse_listed(body: &[u8]) -> Result<TemplateDefinition, ApiError> {
    parse_definition(body)
}

fn parse_definition(body: &[u8]) -> Result<TemplateDefinition, ApiError> {
    let raw: RawCreate = decode(body)?;
    let name = raw
        .name
        .filter(|n| !is_blank(n))
        .ok_or_else(|| missing("name"))?;
    let language = raw
        .language
        .filter(|l| !is_blank(l))
        .ok_or_else(|| missing("language"))?;
    let category = raw
        .category
        .filter(|c| !is_blank(c))
        .ok_or_else(|| missing("category"))?;
    let category = Category::from_name(&category).ok_or_else(|| {
        ApiError::invalid_param(enum_details("category", &category, &Category::names()))
    })?;
    let parameter_format = match raw.parameter_format.filter(|f| !is_blank(f)) {
        Some(f) => ParameterFormat::from_name(&f).ok_or_else(|| {
            ApiError::invalid_param(enum_details(
                "parameter_format",
                &f,
                &ParameterFormat::names(),
            ))
        })?,
        None => ParameterFormat::Positional,
    };
    let message_send_ttl_seconds =
        integer(raw.message_send_ttl_seconds, "message_send_ttl_seconds")?;
    let raw_components = raw.components.ok_or_else(|| missing("components"))?;
    let mut components = convert_components(raw_components, "components")?;
    if category == Category::Authentication {
        for c in &mut components {
            match c {
                ComponentDef::Body(b) => b.text = None,
                ComponentDef::Footer(f) => f.text = None,
                _ => {}
            }
        }
    }
    let def = TemplateDefinition {
        name,
        language,
        category,
        parameter_format,
        message_send_ttl_seconds,
        components,
    };
    Ok(def)
}

// ---------------------------------------------------------------------------------------------
// Accessors, variables, rendering.

/// The body text the platform supplies for AUTHENTICATION templates (English).
pub fn authentication_body_text(add_security_recommendation: bool) -> &'static str {
    if add_security_recommendation {
        "*{{1}}* is your verification code. For your security, do not share this code."
    } else {
        "*{{1}}* is your verification code."
    }
}

/// The footer text the platform supplies for AUTHENTICATION templates with an expiry.
pub fn authentication_footer_text(code_expiration_minutes: i64) -> String {
    format!("This code expires in {code_expiration_minutes} minutes.")
}

impl TemplateDefinition {
    /// The HEADER, if any.
    pub fn header(&self) -> Option<&HeaderDef> {
        self.components.iter().find_map(|c| match c {
            ComponentDef::Header(h) => Some(h),
            _ => None,
        })
    }

    /// The BODY, if any (a valid definition has one).
    pub fn body(&self) -> Option<&BodyDef> {
        find_body(&self.components)
    }

    /// The FOOTER, if any.
    pub fn footer(&self) -> Option<&FooterDef> {
        self.components.iter().find_map(|c| match c {
            ComponentDef::Footer(f) => Some(f),
            _ => None,
        })
    }

    /// The buttons, in index order (empty without a BUTTONS component).
    pub fn buttons(&self) -> &[ButtonDef] {
        find_buttons(&self.components)
    }

    /// The limited-time offer, if any.
    pub fn limited_time_offer(&self) -> Option<&LtoDef> {
        self.components.iter().find_map(|c| match c {
            ComponentDef::LimitedTimeOffer(l) => Some(l),
            _ => None,
        })
    }

    /// The carousel's cards, if any.
    pub fn cards(&self) -> Option<&[CardDef]> {
        self.components.iter().find_map(|c| match c {
            ComponentDef::Carousel(cards) => Some(cards.as_slice()),
            _ => None,
        })
    }

    /// The delivery TTL in seconds: the set value (`-1` is 30 days) or the category's default.
    pub fn ttl_seconds(&self) -> i64 {
        match self.message_send_ttl_seconds {
            Some(-1) => THIRTY_DAYS_SECONDS,
            Some(t) => t,
            None => self.category.default_ttl_seconds(),
        }
    }

    /// The body text as the user sees it before substitution: the given text, or the
    /// platform's for AUTHENTICATION templates.
    pub fn body_text(&self) -> Option<&str> {
        if self.category == Category::Authentication {
            let security = self
                .body()
                .and_then(|b| b.add_security_recommendation)
                .unwrap_or(false);
            return Some(authentication_body_text(security));
        }
        self.body().and_then(|b| b.text.as_deref())
    }

    /// Serialises the components as listings show them (upper-case types, as the platform
    /// returns them); AUTHENTICATION templates show the platform's body and footer text.
    /// [`parse_create`] accepts the result back.
    pub fn components_json(&self) -> Value {
        let mut v = serde_json::to_value(&self.components).unwrap_or(Value::Array(Vec::new()));
        if self.category == Category::Authentication
            && let Value::Array(items) = &mut v
        {
            for (item, def) in items.iter_mut().zip(&self.components) {
                let Value::Object(obj) = item else { continue };
                match def {
                    ComponentDef::Body(b) => {
                        let text = authentication_body_text(
                            b.add_security_recommendation.unwrap_or(false),
                        );
                        obj.insert("text".to_owned(), Value::from(text));
                    }
                    ComponentDef::Footer(FooterDef {
                        code_expiration_minutes: Some(m),
                        ..
                    }) => {
                        obj.insert(
                            "text".to_owned(),
                            Value::from(authentication_footer_text(*m)),
                        );
                    }
                    _ => {}
                }
            }
        }
        v
    }

    /// The body's variables: `"1"`, `"2"` … for positional templates (in number order), the
    /// names for named ones (in order of first appearance). A send gives one parameter each.
    pub fn body_variables(&self) -> Vec<String> {
        self.body_text()
            .map(|t| owned(distinct_vars(t, self.body_format())))
            .unwrap_or_default()
    }

    /// The TEXT header's variable (none or one), like [`Self::body_variables`].
    pub fn header_variables(&self) -> Vec<String> {
        header_text(&self.components)
            .map(|t| owned(distinct_vars(t, self.parameter_format)))
            .unwrap_or_default()
    }

    /// Parameters each button takes at send time, by button index: 1 for a dynamic URL, OTP,
    /// COPY_CODE or MPM button, else 0.
    pub fn button_variables(&self) -> Vec<usize> {
        self.buttons()
            .iter()
            .map(ButtonDef::required_params)
            .collect()
    }

    /// The variable syntax of the body: AUTHENTICATION bodies are always positional.
    fn body_format(&self) -> ParameterFormat {
        if self.category == Category::Authentication {
            ParameterFormat::Positional
        } else {
            self.parameter_format
        }
    }

    /// The rendered body text with the send's parameters substituted (missing ones stay as
    /// `{{…}}`); `None` without a body text.
    pub fn render_body(&self, send: &Template) -> Option<String> {
        let text = self.body_text()?;
        let params = send_params(&send.components, Slot::Body).unwrap_or(&[]);
        Some(render(text, params, self.body_format()))
    }

    /// The rendered TEXT header, like [`Self::render_body`]; `None` for other headers.
    pub fn render_header(&self, send: &Template) -> Option<String> {
        let text = header_text(&self.components)?;
        let params = send_params(&send.components, Slot::Header).unwrap_or(&[]);
        Some(render(text, params, self.parameter_format))
    }

    /// Checks a send of this template (spec §2.7): parameter counts per component (132000,
    /// `"body: number of localizable_params (1) does not match the expected number of params
    /// (3)"`), named parameters matching the definition's names and parameter kinds matching
    /// the header format and button kinds (132012, `"header: Format mismatch, expected IMAGE,
    /// received TEXT"`), text lengths (132005: a header variable ≤ 60 characters; a body
    /// variable and the rendered body ≤ 1024 characters when the template has other components
    /// than the body, ≤ 32768 when the body is alone; a one-time password ≤ 15), dynamic
    /// buttons given their parameter, button `index` and `sub_type` matching the definition,
    /// and carousel card count and layout.
    ///
    /// On a positional template a parameter carrying a `parameter_name` is 132012 too (an
    /// emulator decision: the platform's behaviour is not documented).
    pub fn check_send(&self, send: &Template) -> Result<(), ApiError> {
        let ctx = SendCtx {
            format: self.parameter_format,
            body_format: self.body_format(),
            auth: self.category == Category::Authentication,
            body_text: self.body_text(),
        };
        check_components(&self.components, &send.components, &ctx, "")
    }

    /// Validates the definition's rules (spec §7.1–§7.2, §7.6); [`parse_create`] runs it.
    pub fn validate(&self) -> Result<(), ApiError> {
        validate_name(&self.name)?;
        validate_language(&self.language)?;
        self.validate_ttl()?;
        let ctx = CreateCtx {
            category: self.category,
            format: self.parameter_format,
        };
        validate_components(&self.components, &ctx)
    }

    fn validate_ttl(&self) -> Result<(), ApiError> {
        let Some(ttl) = self.message_send_ttl_seconds else {
            return Ok(());
        };
        let (lo, hi) = self.category.ttl_range();
        let minus_one = self.category != Category::Marketing;
        if (lo..=hi).contains(&ttl) || (minus_one && ttl == -1) {
            return Ok(());
        }
        let also = if minus_one {
            " (or -1 for 30 days)"
        } else {
            ""
        };
        Err(ApiError::invalid_param(format!(
            "Param message_send_ttl_seconds must be between {lo} and {hi}{also} for {} templates, got {ttl}.",
            self.category
        )))
    }
}

fn owned(v: Vec<&str>) -> Vec<String> {
    v.into_iter().map(str::to_owned).collect()
}

fn find_body(components: &[ComponentDef]) -> Option<&BodyDef> {
    components.iter().find_map(|c| match c {
        ComponentDef::Body(b) => Some(b),
        _ => None,
    })
}

fn find_buttons(components: &[ComponentDef]) -> &[ButtonDef] {
    components
        .iter()
        .find_map(|c| match c {
            ComponentDef::Buttons(b) => Some(b.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

fn header_text(components: &[ComponentDef]) -> Option<&str> {
    components.iter().find_map(|c| match c {
        ComponentDef::Header(HeaderDef {
            format: HeaderFormat::Text,
            text,
            ..
        }) => text.as_deref(),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Variables.

/// A piece of template text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Lit(&'a str),
    /// What stands between `{{` and `}}`.
    Var(&'a str),
}

/// Splits a text into literals and `{{…}}` variables; the flag is true when a `{{` is never
/// closed (the rest is then a literal).
fn scan(text: &str) -> (Vec<Piece<'_>>, bool) {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let Some((before, after)) = rest.split_once("{{") else {
            if !rest.is_empty() {
                out.push(Piece::Lit(rest));
            }
            return (out, false);
        };
        let Some((name, tail)) = after.split_once("}}") else {
            out.push(Piece::Lit(rest));
            return (out, true);
        };
        if !before.is_empty() {
            out.push(Piece::Lit(before));
        }
        out.push(Piece::Var(name));
        rest = tail;
    }
}

fn positional_number(name: &str) -> Option<usize> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) || name.starts_with('0') {
        return None;
    }
    name.parse().ok()
}

fn is_named_var(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Distinct well-formed variables: positional by number, named by first appearance.
fn distinct_vars(text: &str, format: ParameterFormat) -> Vec<&str> {
    let (pieces, _) = scan(text);
    let mut out: Vec<&str> = Vec::new();
    // A listed definition has no length limit: linear in the number of variables.
    let mut seen: HashSet<&str> = HashSet::new();
    for p in pieces {
        if let Piece::Var(name) = p {
            let ok = match format {
                ParameterFormat::Positional => positional_number(name).is_some(),
                ParameterFormat::Named => is_named_var(name),
            };
            if ok && seen.insert(name) {
                out.push(name);
            }
        }
    }
    if format == ParameterFormat::Positional {
        out.sort_by_key(|n| positional_number(n).unwrap_or(usize::MAX));
    }
    out
}

/// The text a parameter puts into the message (text, or the fallback of currency/date-time).
fn param_text(v: &ParameterValue) -> Option<&str> {
    match v {
        ParameterValue::Text(t) => Some(t),
        ParameterValue::Currency { fallback_value, .. }
        | ParameterValue::DateTime { fallback_value } => Some(fallback_value),
        _ => None,
    }
}

/// Which parameter fills a variable: positional by number, named by `parameter_name` (the first
/// parameter giving the name). Named ones are indexed once, so a lookup does not scan the
/// parameters (a listed text has no length limit).
struct Lookup<'p> {
    format: ParameterFormat,
    named: HashMap<&'p str, usize>,
}

impl<'p> Lookup<'p> {
    fn new(params: &'p [Parameter], format: ParameterFormat) -> Lookup<'p> {
        let mut named = HashMap::new();
        if format == ParameterFormat::Named {
            for (i, p) in params.iter().enumerate() {
                if let Some(name) = p.name.as_deref() {
                    named.entry(name).or_insert(i);
                }
            }
        }
        Lookup { format, named }
    }

    /// The index of the parameter for a variable.
    fn index(&self, name: &str) -> Option<usize> {
        match self.format {
            ParameterFormat::Positional => positional_number(name)?.checked_sub(1),
            ParameterFormat::Named => self.named.get(name).copied(),
        }
    }
}

fn render(text: &str, params: &[Parameter], format: ParameterFormat) -> String {
    let (pieces, _) = scan(text);
    let lookup = Lookup::new(params, format);
    let mut out = String::with_capacity(text.len());
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Var(name) => match lookup
                .index(name)
                .and_then(|i| params.get(i))
                .and_then(|p| param_text(&p.value))
            {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("{{");
                    out.push_str(name);
                    out.push_str("}}");
                }
            },
        }
    }
    out
}

/// The length in characters of what [`render`] returns, counted without building it: a long
/// listed text repeating a variable with a long value would allocate their product.
fn rendered_chars(text: &str, params: &[Parameter], format: ParameterFormat) -> usize {
    let lens: Vec<Option<usize>> = params
        .iter()
        .map(|p| param_text(&p.value).map(chars))
        .collect();
    let lookup = Lookup::new(params, format);
    let (pieces, _) = scan(text);
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Lit(s) => chars(s),
            Piece::Var(name) => lookup
                .index(name)
                .and_then(|i| lens.get(i).copied().flatten())
                .unwrap_or_else(|| chars(name) + 4),
        })
        .fold(0usize, usize::saturating_add)
}

// ---------------------------------------------------------------------------------------------
// Creation rules.

struct CreateCtx {
    category: Category,
    format: ParameterFormat,
}

impl CreateCtx {
    fn auth(&self) -> bool {
        self.category == Category::Authentication
    }
}

/// Where a set of components sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Template,
    Card,
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if is_blank(name) {
        return Err(missing("name"));
    }
    if chars(name) > MAX_NAME {
        return Err(ApiError::invalid_param(format!(
            "Param name must be at most {MAX_NAME} characters long."
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::invalid_param(format!(
            "Param name can only contain lowercase letters, digits and underscores, got {name:?}."
        )));
    }
    Ok(())
}

/// `ll`, `lll`, `ll_CC` or `ll_NNN` (`en`, `fil`, `en_US`, `es_419`).
fn validate_language(lang: &str) -> Result<(), ApiError> {
    if is_blank(lang) {
        return Err(missing("language"));
    }
    let (base, region) = match lang.split_once('_') {
        Some((b, r)) => (b, Some(r)),
        None => (lang, None),
    };
    let base_ok = (2..=3).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = match region {
        None => true,
        Some(r) => {
            (r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
                || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
        }
    };
    if base_ok && region_ok {
        Ok(())
    } else {
        Err(ApiError::invalid_param(format!(
            "Param language must be a locale such as en_US, de or pt_BR, got {lang:?}."
        )))
    }
}

fn kind_slot(c: &ComponentDef) -> usize {
    match c {
        ComponentDef::Header(_) => 0,
        ComponentDef::Body(_) => 1,
        ComponentDef::Footer(_) => 2,
        ComponentDef::Buttons(_) => 3,
        ComponentDef::LimitedTimeOffer(_) => 4,
        ComponentDef::Carousel(_) => 5,
    }
}

/// At most one component of each type; returns the index of each present type.
fn no_repeats(components: &[ComponentDef], p: &str) -> Result<[Option<usize>; 6], ApiError> {
    let mut seen: [Option<usize>; 6] = [None; 6];
    for (i, c) in components.iter().enumerate() {
        let Some(slot) = seen.get_mut(kind_slot(c)) else {
            continue;
        };
        if let Some(first) = slot {
            return Err(ApiError::invalid_param(format!(
                "Param {p}[{i}] repeats the {} component of {p}[{first}]; a template has at most one.",
                c.type_str()
            )));
        }
        *slot = Some(i);
    }
    Ok(seen)
}

fn validate_components(components: &[ComponentDef], ctx: &CreateCtx) -> Result<(), ApiError> {
    let p = "components";
    let seen = no_repeats(components, p)?;
    let [header, body, footer, buttons, lto, carousel] = seen;
    if body.is_none() {
        return Err(ApiError::with_details(
            ErrorCode::RequiredParameterMissing,
            "The parameter components must contain a BODY component.",
        ));
    }
    if ctx.auth()
        && let Some(i) = header
    {
        return Err(ApiError::with_details(
            ErrorCode::TemplateHeaderFormat,
            format!("Param {p}[{i}]: AUTHENTICATION templates cannot have a header."),
        ));
    }
    if let Some(i) = lto
        && ctx.category != Category::Marketing
    {
        return Err(ApiError::invalid_param(format!(
            "Param {p}[{i}]: LIMITED_TIME_OFFER is only allowed in MARKETING templates."
        )));
    }
    if let Some(i) = carousel {
        if ctx.auth() {
            return Err(ApiError::invalid_param(format!(
                "Param {p}[{i}]: CAROUSEL is not allowed in AUTHENTICATION templates."
            )));
        }
        if let Some(j) = header.or(footer).or(buttons) {
            return Err(ApiError::invalid_param(format!(
                "Param {p}[{j}] is not allowed beside a CAROUSEL; a carousel template has a BODY and the cards."
            )));
        }
    }
    for (i, c) in components.iter().enumerate() {
        let cp = format!("{p}[{i}]");
        match c {
            ComponentDef::Header(h) => validate_header(h, &cp, ctx, Level::Template)?,
            ComponentDef::Body(b) => validate_body(b, &cp, ctx, MAX_BODY_TEXT)?,
            ComponentDef::Footer(f) => validate_footer(f, &cp, ctx)?,
            ComponentDef::Buttons(bs) => validate_buttons(bs, &cp, ctx, Level::Template)?,
            ComponentDef::LimitedTimeOffer(l) => validate_lto(l, &cp)?,
            ComponentDef::Carousel(cards) => validate_carousel(cards, &cp, ctx)?,
        }
    }
    if ctx.auth()
        && !find_buttons(components)
            .iter()
            .any(|b| b.kind == ButtonKind::Otp)
    {
        return Err(ApiError::with_details(
            ErrorCode::RequiredParameterMissing,
            "The parameter components must contain a BUTTONS component with an OTP button for AUTHENTICATION templates.",
        ));
    }
    Ok(())
}

fn validate_header(h: &HeaderDef, p: &str, ctx: &CreateCtx, level: Level) -> Result<(), ApiError> {
    let header_err = |why: String| ApiError::with_details(ErrorCode::TemplateHeaderFormat, why);
    let allowed = match level {
        Level::Template => !matches!(h.format, HeaderFormat::Product),
        Level::Card => matches!(
            h.format,
            HeaderFormat::Image | HeaderFormat::Video | HeaderFormat::Product
        ),
    };
    if !allowed {
        let allowed_here = match level {
            Level::Template => "TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION",
            Level::Card => "IMAGE, VIDEO, PRODUCT",
        };
        return Err(header_err(format!(
            "Param {p}.format must be one of {{{allowed_here}}} here, got \"{}\".",
            h.format
        )));
    }
    if h.format != HeaderFormat::Text {
        return Ok(());
    }
    let tp = format!("{p}.text");
    let text = h
        .text
        .as_deref()
        .filter(|t| !is_blank(t))
        .ok_or_else(|| missing(&tp))?;
    check_len(text, &tp, MAX_HEADER_TEXT)?;
    let (pieces, unclosed) = scan(text);
    if unclosed {
        return Err(header_err(format!(
            "Param {tp} has a variable that is not closed with }}}}."
        )));
    }
    let vars: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Var(v) => Some(*v),
            Piece::Lit(_) => None,
        })
        .collect();
    if vars.len() > 1 {
        return Err(header_err(format!(
            "Param {tp} can contain at most one variable, got {}.",
            vars.len()
        )));
    }
    let Some(var) = vars.first().copied() else {
        return Ok(());
    };
    let ok = match ctx.format {
        ParameterFormat::Positional => var == "1",
        ParameterFormat::Named => is_named_var(var),
    };
    if !ok {
        let expected = match ctx.format {
            ParameterFormat::Positional => "{{1}}",
            ParameterFormat::Named => "a name of lowercase letters and underscores",
        };
        return Err(header_err(format!(
            "Param {tp} has the variable {{{{{var}}}}}; a {} header variable must be {expected}.",
            ctx.format
        )));
    }
    check_examples(
        h.example.as_ref(),
        &format!("{p}.example"),
        ctx.format,
        &[var],
        "header_text",
        Shape::Flat,
    )
}

fn validate_body(b: &BodyDef, p: &str, ctx: &CreateCtx, max: usize) -> Result<(), ApiError> {
    if ctx.auth() {
        // The platform supplies the text; `add_security_recommendation` is all there is to set.
        return Ok(());
    }
    let tp = format!("{p}.text");
    let text = b
        .text
        .as_deref()
        .filter(|t| !is_blank(t))
        .ok_or_else(|| missing(&tp))?;
    check_len(text, &tp, max)?;
    let body_err = |why: String| ApiError::with_details(ErrorCode::TemplateBodyFormat, why);
    let (pieces, unclosed) = scan(text);
    if unclosed {
        return Err(body_err(format!(
            "Param {tp} has a variable that is not closed with }}}}."
        )));
    }
    let mut occurrences = 0usize;
    let mut distinct: Vec<&str> = Vec::new();
    for piece in &pieces {
        let Piece::Var(var) = piece else { continue };
        occurrences += 1;
        let ok = match ctx.format {
            ParameterFormat::Positional => positional_number(var).is_some(),
            ParameterFormat::Named => is_named_var(var),
        };
        if !ok {
            let expected = match ctx.format {
                ParameterFormat::Positional => "numbered {{1}}, {{2}} …",
                ParameterFormat::Named => "named with lowercase letters and underscores",
            };
            return Err(body_err(format!(
                "Param {tp} has the variable {{{{{var}}}}}; {} variables must be {expected}.",
                ctx.format
            )));
        }
        if !distinct.contains(var) {
            distinct.push(var);
        }
    }
    if occurrences == 0 {
        return Ok(());
    }
    if ctx.format == ParameterFormat::Positional {
        let mut numbers: Vec<usize> = distinct
            .iter()
            .filter_map(|v| positional_number(v))
            .collect();
        numbers.sort_unstable();
        if numbers.iter().enumerate().any(|(i, n)| *n != i + 1) {
            return Err(body_err(format!(
                "Param {tp} must number its variables {{{{1}}}} to {{{{{}}}}} without gaps.",
                numbers.len()
            )));
        }
        distinct.sort_by_key(|v| positional_number(v).unwrap_or(usize::MAX));
    }
    let trimmed = text.trim();
    if trimmed.starts_with("{{") || trimmed.ends_with("}}") {
        return Err(ApiError::with_details(
            ErrorCode::TemplateVariableAtEdge,
            format!("Param {tp} cannot start or end with a variable."),
        ));
    }
    let words = text
        .split_whitespace()
        .filter(|w| w.contains("{{") || w.chars().any(char::is_alphanumeric))
        .count();
    if occurrences.saturating_mul(WORDS_PER_VARIABLE) > words {
        return Err(ApiError::with_details(
            ErrorCode::TemplateTooManyVariables,
            format!(
                "Param {tp} has {occurrences} variables in {words} words; at most one variable per {WORDS_PER_VARIABLE} words is allowed."
            ),
        ));
    }
    check_examples(
        b.example.as_ref(),
        &format!("{p}.example"),
        ctx.format,
        &distinct,
        "body_text",
        Shape::Nested,
    )
}

/// How positional examples are laid out: `header_text: ["v"]`, `body_text: [["v1", "v2"]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Flat,
    Nested,
}

/// The example values for `vars`: `<key>` (positional) or `<key>_named_params` (named).
fn check_examples(
    example: Option<&Value>,
    p: &str,
    format: ParameterFormat,
    vars: &[&str],
    key: &str,
    shape: Shape,
) -> Result<(), ApiError> {
    if vars.is_empty() {
        return Ok(());
    }
    let n = vars.len();
    let plural = if n == 1 { "" } else { "s" };
    match format {
        ParameterFormat::Positional => {
            let kp = format!("{p}.{key}");
            let need = || {
                ApiError::invalid_param(match shape {
                    Shape::Flat => format!(
                        "Param {kp} must give an example value for the {n} variable{plural} (e.g. [\"value\"])."
                    ),
                    Shape::Nested => format!(
                        "Param {kp} must give an example value for each of the {n} variable{plural} (e.g. [[\"value\", …]])."
                    ),
                })
            };
            let arr = example
                .and_then(|e| e.get(key))
                .and_then(Value::as_array)
                .ok_or_else(need)?;
            let sets: Vec<&Vec<Value>> = match shape {
                Shape::Flat => vec![arr],
                Shape::Nested => arr.iter().filter_map(Value::as_array).collect(),
            };
            if sets.is_empty() || (shape == Shape::Nested && sets.len() != arr.len()) {
                return Err(need());
            }
            for set in sets {
                if set.len() != n || !set.iter().all(is_example_value) {
                    return Err(ApiError::invalid_param(format!(
                        "Param {kp} has {} example value{}, but the text has {n} variable{plural}.",
                        set.len(),
                        if set.len() == 1 { "" } else { "s" }
                    )));
                }
            }
            Ok(())
        }
        ParameterFormat::Named => {
            let kp = format!("{p}.{key}_named_params");
            let list = example
                .and_then(|e| e.get(format!("{key}_named_params")))
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ApiError::invalid_param(format!(
                        "Param {kp} must give an example for each of the variables {} (e.g. [{{\"param_name\": \"{}\", \"example\": \"…\"}}]).",
                        braces(vars),
                        vars.first().copied().unwrap_or_default()
                    ))
                })?;
            let mut named: Vec<&str> = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let name = item.get("param_name").and_then(Value::as_str);
                let ex = item.get("example");
                let (Some(name), Some(ex)) = (name, ex) else {
                    return Err(ApiError::invalid_param(format!(
                        "Param {kp}[{i}] must be an object with param_name and example."
                    )));
                };
                if !is_example_value(ex) {
                    return Err(ApiError::invalid_param(format!(
                        "Param {kp}[{i}].example must be a non-empty string."
                    )));
                }
                if !vars.contains(&name) {
                    return Err(ApiError::invalid_param(format!(
                        "Param {kp}[{i}].param_name {name:?} is not a variable of the text (variables: {}).",
                        braces(vars)
                    )));
                }
                if named.contains(&name) {
                    return Err(ApiError::invalid_param(format!(
                        "Param {kp}[{i}].param_name {name:?} appears more than once."
                    )));
                }
                named.push(name);
            }
            if let Some(absent) = vars.iter().find(|v| !named.contains(v)) {
                return Err(ApiError::invalid_param(format!(
                    "Param {kp} has no example for the variable {{{{{absent}}}}}."
                )));
            }
            Ok(())
        }
    }
}

fn is_example_value(v: &Value) -> bool {
    match v {
        Value::String(s) => !is_blank(s),
        Value::Number(_) => true,
        _ => false,
    }
}

fn braces(vars: &[&str]) -> String {
    vars.iter()
        .map(|v| format!("{{{{{v}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate_footer(f: &FooterDef, p: &str, ctx: &CreateCtx) -> Result<(), ApiError> {
    let mp = format!("{p}.code_expiration_minutes");
    if ctx.auth() {
        if let Some(m) = f.code_expiration_minutes {
            let (lo, hi) = CODE_EXPIRATION_MINUTES;
            if !(lo..=hi).contains(&m) {
                return Err(ApiError::invalid_param(format!(
                    "Param {mp} must be between {lo} and {hi}, got {m}."
                )));
            }
        }
        return Ok(());
    }
    if f.code_expiration_minutes.is_some() {
        return Err(ApiError::invalid_param(format!(
            "Param {mp} is only allowed in AUTHENTICATION templates."
        )));
    }
    let tp = format!("{p}.text");
    let text = f
        .text
        .as_deref()
        .filter(|t| !is_blank(t))
        .ok_or_else(|| missing(&tp))?;
    check_len(text, &tp, MAX_FOOTER_TEXT)?;
    let (pieces, unclosed) = scan(text);
    if unclosed || pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
        return Err(ApiError::with_details(
            ErrorCode::TemplateFooterFormat,
            format!("Param {tp} cannot contain variables."),
        ));
    }
    Ok(())
}

fn validate_buttons(
    bs: &[ButtonDef],
    p: &str,
    ctx: &CreateCtx,
    level: Level,
) -> Result<(), ApiError> {
    let bp = format!("{p}.buttons");
    let max = match level {
        Level::Template => MAX_BUTTONS,
        Level::Card => MAX_CARD_BUTTONS,
    };
    if bs.is_empty() {
        return Err(ApiError::invalid_param(format!(
            "Param {bp} must contain at least 1 item, got 0."
        )));
    }
    if bs.len() > max {
        return Err(ApiError::invalid_param(format!(
            "Param {bp} must contain at most {max} items, got {}.",
            bs.len()
        )));
    }
    // Kinds allowed here.
    for (i, b) in bs.iter().enumerate() {
        let allowed = match (level, ctx.auth()) {
            (Level::Card, _) => matches!(
                b.kind,
                ButtonKind::QuickReply
                    | ButtonKind::Url
                    | ButtonKind::PhoneNumber
                    | ButtonKind::Spm
            ),
            (Level::Template, true) => b.kind == ButtonKind::Otp,
            (Level::Template, false) => b.kind != ButtonKind::Otp,
        };
        if !allowed {
            let why = match (level, ctx.auth()) {
                (Level::Card, _) => {
                    "carousel cards take QUICK_REPLY, URL, PHONE_NUMBER or SPM buttons"
                }
                (Level::Template, true) => "AUTHENTICATION templates take only an OTP button",
                (Level::Template, false) => {
                    "OTP buttons are only allowed in AUTHENTICATION templates"
                }
            };
            return Err(ApiError::invalid_param(format!(
                "Param {bp}[{i}].type {} is not allowed here: {why}.",
                b.kind
            )));
        }
    }
    // Counts per kind.
    for kind in ButtonKind::ALL {
        let count = bs.iter().filter(|b| b.kind == *kind).count();
        let limit = match kind {
            ButtonKind::QuickReply => MAX_QUICK_REPLY_BUTTONS,
            ButtonKind::Url => MAX_URL_BUTTONS,
            _ => 1,
        };
        if count > limit {
            return Err(ApiError::invalid_param(format!(
                "Param {bp} has {count} {kind} buttons; at most {limit} {} allowed.",
                if limit == 1 { "is" } else { "are" }
            )));
        }
    }
    // Quick replies grouped together.
    let qr: Vec<usize> = bs
        .iter()
        .enumerate()
        .filter(|(_, b)| b.kind == ButtonKind::QuickReply)
        .map(|(i, _)| i)
        .collect();
    if let (Some(first), Some(last)) = (qr.first(), qr.last())
        && last - first + 1 != qr.len()
    {
        return Err(ApiError::invalid_param(format!(
            "Param {bp} is an invalid combination of buttons: QUICK_REPLY buttons must be grouped together, not mixed with other buttons."
        )));
    }
    for (i, b) in bs.iter().enumerate() {
        validate_button(b, &format!("{bp}[{i}]"))?;
    }
    Ok(())
}

fn validate_button(b: &ButtonDef, p: &str) -> Result<(), ApiError> {
    let tp = format!("{p}.text");
    let text_required = matches!(
        b.kind,
        ButtonKind::QuickReply | ButtonKind::Url | ButtonKind::PhoneNumber | ButtonKind::Flow
    );
    match b.text.as_deref().filter(|t| !is_blank(t)) {
        Some(t) => check_len(t, &tp, MAX_BUTTON_TEXT)?,
        None if text_required => return Err(missing(&tp)),
        None => {}
    }
    match b.kind {
        ButtonKind::Url => validate_url_button(b, p),
        ButtonKind::PhoneNumber => {
            let pp = format!("{p}.phone_number");
            let number = b
                .phone_number
                .as_deref()
                .filter(|n| !is_blank(n))
                .ok_or_else(|| missing(&pp))?;
            check_len(number, &pp, MAX_PHONE_NUMBER)?;
            let digits_only = number
                .trim()
                .trim_start_matches('+')
                .bytes()
                .all(|c| c.is_ascii_digit() || c == b' ' || c == b'-');
            if !digits_only || !number.bytes().any(|c| c.is_ascii_digit()) {
                return Err(ApiError::invalid_param(format!(
                    "Param {pp} must be a phone number, got {number:?}."
                )));
            }
            Ok(())
        }
        ButtonKind::CopyCode => {
            let ep = format!("{p}.example");
            let example = single_example(b.example.as_ref()).ok_or_else(|| {
                ApiError::invalid_param(format!(
                    "Param {ep} must give the example code (e.g. \"SPRING25\")."
                ))
            })?;
            check_len(&example, &ep, MAX_COPY_CODE)
        }
        ButtonKind::Otp => {
            let op = format!("{p}.otp_type");
            let otp = b.otp_type.ok_or_else(|| missing(&op))?;
            if otp != OtpType::CopyCode {
                let apps = b
                    .supported_apps
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                let legacy = b.package_name.as_deref().is_some_and(|s| !is_blank(s))
                    && b.signature_hash.as_deref().is_some_and(|s| !is_blank(s));
                if !apps && !legacy {
                    return Err(missing(&format!("{p}.supported_apps")));
                }
            }
            if otp == OtpType::ZeroTap && b.zero_tap_terms_accepted != Some(true) {
                return Err(ApiError::invalid_param(format!(
                    "Param {p}.zero_tap_terms_accepted must be true for ZERO_TAP buttons."
                )));
            }
            if let Some(t) = b.autofill_text.as_deref() {
                check_len(t, &format!("{p}.autofill_text"), MAX_BUTTON_TEXT)?;
            }
            Ok(())
        }
        ButtonKind::Flow => {
            let given = b.flow_id.as_deref().is_some_and(|s| !is_blank(s))
                || b.flow_name.as_deref().is_some_and(|s| !is_blank(s))
                || b.flow_json.is_some();
            if given {
                Ok(())
            } else {
                Err(ApiError::missing(&format!(
                    "{p}.flow_id (or flow_name or flow_json)"
                )))
            }
        }
        ButtonKind::QuickReply
        | ButtonKind::Mpm
        | ButtonKind::Catalog
        | ButtonKind::Spm
        | ButtonKind::VoiceCall => Ok(()),
    }
}

fn validate_url_button(b: &ButtonDef, p: &str) -> Result<(), ApiError> {
    let up = format!("{p}.url");
    let url = b
        .url
        .as_deref()
        .filter(|u| !is_blank(u))
        .ok_or_else(|| missing(&up))?;
    check_len(url, &up, MAX_BUTTON_URL)?;
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) || url.contains(char::is_whitespace)
    {
        return Err(ApiError::invalid_param(format!(
            "Param {up} must be an http or https URL, got {url:?}."
        )));
    }
    let (pieces, unclosed) = scan(url);
    let vars = pieces.iter().filter(|p| matches!(p, Piece::Var(_))).count();
    let ends_with_one = matches!(pieces.last(), Some(Piece::Var("1")));
    if unclosed || vars > 1 || (vars == 1 && !ends_with_one) {
        return Err(ApiError::invalid_param(format!(
            "Param {up} can contain one variable, {{{{1}}}}, and only at its end."
        )));
    }
    if vars == 1 && single_example(b.example.as_ref()).is_none() {
        return Err(ApiError::invalid_param(format!(
            "Param {p}.example must give an example URL for the variable (e.g. [\"https://example.com/path/123\"])."
        )));
    }
    Ok(())
}

/// `"x"` or `["x", …]`: the first example value, as text.
fn single_example(v: Option<&Value>) -> Option<String> {
    let v = match v? {
        Value::Array(a) => a.first()?,
        other => other,
    };
    match v {
        Value::String(s) if !is_blank(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn validate_lto(l: &LtoDef, p: &str) -> Result<(), ApiError> {
    let tp = format!("{p}.limited_time_offer.text");
    let text = l
        .text
        .as_deref()
        .filter(|t| !is_blank(t))
        .ok_or_else(|| missing(&tp))?;
    check_len(text, &tp, MAX_OFFER_TEXT)
}

fn validate_carousel(cards: &[CardDef], p: &str, ctx: &CreateCtx) -> Result<(), ApiError> {
    let cp = format!("{p}.cards");
    if cards.len() < MIN_CARDS || cards.len() > MAX_CARDS {
        return Err(ApiError::invalid_param(format!(
            "Param {cp} must contain between {MIN_CARDS} and {MAX_CARDS} cards, got {}.",
            cards.len()
        )));
    }
    let mut first_layout: Option<Vec<String>> = None;
    for (k, card) in cards.iter().enumerate() {
        let kp = format!("{cp}[{k}].components");
        let seen = no_repeats(&card.components, &kp)?;
        let [header, _body, _footer, buttons, _lto, _carousel] = seen;
        for (i, c) in card.components.iter().enumerate() {
            let ip = format!("{kp}[{i}]");
            match c {
                ComponentDef::Header(h) => validate_header(h, &ip, ctx, Level::Card)?,
                ComponentDef::Body(b) => validate_body(b, &ip, ctx, MAX_CARD_BODY_TEXT)?,
                ComponentDef::Buttons(bs) => validate_buttons(bs, &ip, ctx, Level::Card)?,
                other => {
                    return Err(ApiError::invalid_param(format!(
                        "Param {ip}: {} is not allowed in a carousel card (HEADER, BODY and BUTTONS are).",
                        other.type_str()
                    )));
                }
            }
        }
        if header.is_none() {
            return Err(ApiError::with_details(
                ErrorCode::RequiredParameterMissing,
                format!("The parameter {kp} must contain a HEADER component."),
            ));
        }
        if buttons.is_none() {
            return Err(ApiError::with_details(
                ErrorCode::RequiredParameterMissing,
                format!("The parameter {kp} must contain a BUTTONS component."),
            ));
        }
        let layout = card_layout(card);
        match &first_layout {
            None => first_layout = Some(layout),
            Some(first) if *first != layout => {
                return Err(ApiError::invalid_param(format!(
                    "Param {cp}[{k}] must have the same components as {cp}[0] ({}), got ({}).",
                    first.join(", "),
                    layout.join(", ")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A card's layout, order-independent: header format, body, button kinds in order.
fn card_layout(card: &CardDef) -> Vec<String> {
    let mut out: Vec<String> = card
        .components
        .iter()
        .map(|c| match c {
            ComponentDef::Header(h) => format!("HEADER {}", h.format),
            ComponentDef::Buttons(bs) => format!(
                "BUTTONS {}",
                bs.iter()
                    .map(|b| b.kind.as_str())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            other => other.type_str().to_owned(),
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Send checks.

struct SendCtx<'a> {
    format: ParameterFormat,
    body_format: ParameterFormat,
    auth: bool,
    body_text: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Header,
    Body,
}

fn send_params(components: &[TemplateComponent], slot: Slot) -> Option<&[Parameter]> {
    components.iter().find_map(|c| match (slot, c) {
        (Slot::Header, TemplateComponent::Header { parameters })
        | (Slot::Body, TemplateComponent::Body { parameters }) => Some(parameters.as_slice()),
        _ => None,
    })
}

fn count_mismatch(label: &str, got: usize, expected: usize) -> ApiError {
    ApiError::with_details(
        ErrorCode::TemplateParamCountMismatch,
        format!(
            "{label}: number of localizable_params ({got}) does not match the expected number of params ({expected})"
        ),
    )
}

fn format_mismatch(details: String) -> ApiError {
    ApiError::with_details(ErrorCode::TemplateParamFormatMismatch, details)
}

fn too_long_param(details: String) -> ApiError {
    ApiError::with_details(ErrorCode::TemplateTextTooLong, details)
}

fn check_components(
    defs: &[ComponentDef],
    sends: &[TemplateComponent],
    ctx: &SendCtx<'_>,
    prefix: &str,
) -> Result<(), ApiError> {
    let other_components = defs.len() > 1;
    check_header(defs, sends, ctx, prefix)?;
    // Body (card bodies use the card's own text).
    let body_text = if prefix.is_empty() {
        ctx.body_text
    } else {
        find_body(defs).and_then(|b| b.text.as_deref())
    };
    let body_format = if prefix.is_empty() {
        ctx.body_format
    } else {
        ctx.format
    };
    check_body(body_text, body_format, sends, ctx, prefix, other_components)?;
    check_buttons(find_buttons(defs), sends, prefix)?;
    if prefix.is_empty() {
        check_lto(defs, sends)?;
        check_carousel(defs, sends, ctx)?;
    }
    Ok(())
}

fn check_header(
    defs: &[ComponentDef],
    sends: &[TemplateComponent],
    ctx: &SendCtx<'_>,
    prefix: &str,
) -> Result<(), ApiError> {
    let label = format!("{prefix}header");
    let def = defs.iter().find_map(|c| match c {
        ComponentDef::Header(h) => Some(h),
        _ => None,
    });
    let params = send_params(sends, Slot::Header);
    let Some(def) = def else {
        return match params {
            Some(ps) if !ps.is_empty() => Err(count_mismatch(&label, ps.len(), 0)),
            _ => Ok(()),
        };
    };
    let params = params.unwrap_or(&[]);
    if def.format == HeaderFormat::Text {
        let text = def.text.as_deref().unwrap_or_default();
        let vars = distinct_vars(text, ctx.format);
        if params.len() != vars.len() {
            return Err(count_mismatch(&label, params.len(), vars.len()));
        }
        for (i, p) in params.iter().enumerate() {
            let ParameterValue::Text(t) = &p.value else {
                return Err(format_mismatch(format!(
                    "{label}: Format mismatch, expected TEXT, received {}",
                    p.value.type_str().to_ascii_uppercase()
                )));
            };
            let len = chars(t);
            if len > MAX_HEADER_TEXT_PARAM {
                return Err(too_long_param(format!(
                    "{label}: parameter {} is {len} characters long; a header variable can be at most {MAX_HEADER_TEXT_PARAM}",
                    i + 1
                )));
            }
        }
        return check_names(params, &vars, ctx.format, &label);
    }
    // Media, location or product header: exactly one parameter of the matching kind.
    if params.len() > 1 {
        return Err(count_mismatch(&label, params.len(), 1));
    }
    let received = params
        .first()
        .map(|p| p.value.type_str().to_ascii_uppercase())
        .unwrap_or_else(|| "UNKNOWN".to_owned());
    let matches = params.first().is_some_and(|p| {
        matches!(
            (def.format, &p.value),
            (HeaderFormat::Image, ParameterValue::Image(_))
                | (HeaderFormat::Video, ParameterValue::Video(_))
                | (HeaderFormat::Document, ParameterValue::Document(_))
                | (HeaderFormat::Location, ParameterValue::Location(_))
                | (HeaderFormat::Product, ParameterValue::Product { .. })
        )
    });
    if matches {
        Ok(())
    } else {
        Err(format_mismatch(format!(
            "{label}: Format mismatch, expected {}, received {received}",
            def.format
        )))
    }
}

/// Named templates: every parameter names a distinct variable; positional: no names.
fn check_names(
    params: &[Parameter],
    vars: &[&str],
    format: ParameterFormat,
    label: &str,
) -> Result<(), ApiError> {
    match format {
        ParameterFormat::Positional => {
            if let Some((i, _)) = params.iter().enumerate().find(|(_, p)| p.name.is_some()) {
                return Err(format_mismatch(format!(
                    "{label}: parameter {} has a parameter_name, but the template uses positional parameters",
                    i + 1
                )));
            }
        }
        ParameterFormat::Named => {
            let known: HashSet<&str> = vars.iter().copied().collect();
            let mut given: HashSet<&str> = HashSet::new();
            for (i, p) in params.iter().enumerate() {
                let Some(name) = p.name.as_deref() else {
                    return Err(format_mismatch(format!(
                        "{label}: parameter {} has no parameter_name, but the template uses named parameters ({})",
                        i + 1,
                        braces(vars)
                    )));
                };
                if !known.contains(name) {
                    return Err(format_mismatch(format!(
                        "{label}: parameter_name {name:?} is not a parameter of the template (expected {})",
                        braces(vars)
                    )));
                }
                if !given.insert(name) {
                    return Err(format_mismatch(format!(
                        "{label}: parameter_name {name:?} is given more than once"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn check_body(
    text: Option<&str>,
    format: ParameterFormat,
    sends: &[TemplateComponent],
    ctx: &SendCtx<'_>,
    prefix: &str,
    other_components: bool,
) -> Result<(), ApiError> {
    let label = format!("{prefix}body");
    let params = send_params(sends, Slot::Body).unwrap_or(&[]);
    let vars = text.map(|t| distinct_vars(t, format)).unwrap_or_default();
    if params.len() != vars.len() {
        return Err(count_mismatch(&label, params.len(), vars.len()));
    }
    if params.is_empty() {
        return Ok(());
    }
    check_names(params, &vars, format, &label)?;
    let max = if other_components {
        MAX_BODY_PARAM
    } else {
        MAX_BODY_ONLY_PARAM
    };
    let alone = if other_components {
        "when the template has other components"
    } else {
        "when the body is the only component"
    };
    for (i, p) in params.iter().enumerate() {
        let Some(t) = param_text(&p.value) else {
            return Err(format_mismatch(format!(
                "{label}: parameter {} has type {}; body parameters are text, currency or date_time",
                i + 1,
                p.value.type_str()
            )));
        };
        let len = chars(t);
        if len > max {
            return Err(too_long_param(format!(
                "{label}: parameter {} is {len} characters long; a body variable can be at most {max} {alone}",
                i + 1
            )));
        }
        if ctx.auth && prefix.is_empty() && len > MAX_COPY_CODE {
            return Err(too_long_param(format!(
                "{label}: the one-time password is {len} characters long; at most {MAX_COPY_CODE} are allowed"
            )));
        }
    }
    if let Some(text) = text {
        let rendered = rendered_chars(text, params, format);
        if rendered > max {
            return Err(too_long_param(format!(
                "{label}: the text with its parameters is {rendered} characters long; at most {max} are allowed {alone}"
            )));
        }
    }
    Ok(())
}

fn check_buttons(
    defs: &[ButtonDef],
    sends: &[TemplateComponent],
    prefix: &str,
) -> Result<(), ApiError> {
    let mut given = [false; MAX_BUTTONS];
    for c in sends {
        let TemplateComponent::Button {
            sub_type,
            index,
            parameters,
        } = c
        else {
            continue;
        };
        let i = usize::from(*index);
        let label = format!("{prefix}button[{i}]");
        let Some(def) = defs.get(i) else {
            return Err(format_mismatch(format!(
                "{label}: the template has no button at index {i} (it has {} button{})",
                defs.len(),
                if defs.len() == 1 { "" } else { "s" }
            )));
        };
        if let Some(g) = given.get_mut(i) {
            *g = true;
        }
        match def.kind.send_sub_type() {
            Some(expected) if expected == *sub_type => {}
            Some(expected) => {
                return Err(format_mismatch(format!(
                    "{label}: sub_type {} does not match the template's {} button (expected sub_type {})",
                    sub_type.as_str(),
                    def.kind,
                    expected.as_str()
                )));
            }
            None => {
                return Err(format_mismatch(format!(
                    "{label}: the template's {} button takes no parameters",
                    def.kind
                )));
            }
        }
        // Dynamic URL, OTP and COPY_CODE buttons take exactly what they need; the others
        // (quick-reply payloads, Flow/catalog/MPM actions) at most one parameter.
        let n = parameters.len();
        let expected = match def.kind {
            ButtonKind::Url | ButtonKind::Otp | ButtonKind::CopyCode => def.required_params(),
            _ => n.min(1),
        };
        if n != expected {
            return Err(count_mismatch(&label, n, expected));
        }
        if def.kind == ButtonKind::Otp
            && let Some(ParameterValue::Text(code)) = parameters.first().map(|p| &p.value)
        {
            let len = chars(code);
            if len > MAX_COPY_CODE {
                return Err(too_long_param(format!(
                    "{label}: the one-time password is {len} characters long; at most {MAX_COPY_CODE} are allowed"
                )));
            }
        }
        if def.kind == ButtonKind::Url
            && let (Some(url), Some(ParameterValue::Text(suffix))) =
                (def.url.as_deref(), parameters.first().map(|p| &p.value))
        {
            // The URL ends in `{{1}}` (5 characters), which the suffix replaces.
            let len = chars(url).saturating_sub(5) + chars(suffix);
            if len > MAX_BUTTON_URL {
                return Err(too_long_param(format!(
                    "{label}: the URL with its parameter is {len} characters long; at most {MAX_BUTTON_URL} are allowed"
                )));
            }
        }
    }
    for (i, def) in defs.iter().enumerate() {
        let required = def.required_params();
        if required > 0 && !given.get(i).copied().unwrap_or(false) {
            return Err(count_mismatch(&format!("{prefix}button[{i}]"), 0, required));
        }
    }
    Ok(())
}

fn check_lto(defs: &[ComponentDef], sends: &[TemplateComponent]) -> Result<(), ApiError> {
    let label = "limited_time_offer";
    let def = defs.iter().find_map(|c| match c {
        ComponentDef::LimitedTimeOffer(l) => Some(l),
        _ => None,
    });
    let send = sends.iter().find_map(|c| match c {
        TemplateComponent::LimitedTimeOffer { parameters } => Some(parameters.as_slice()),
        _ => None,
    });
    match (def, send) {
        (None, Some(_)) => Err(format_mismatch(format!(
            "{label}: the template has no limited-time offer"
        ))),
        (Some(d), None) if d.has_expiration => Err(count_mismatch(label, 0, 1)),
        (Some(d), Some(ps)) => {
            if ps.len() > 1 || (d.has_expiration && ps.is_empty()) {
                return Err(count_mismatch(label, ps.len(), 1));
            }
            let missing_expiry = ps.first().is_some_and(|p| {
                matches!(
                    p.value,
                    ParameterValue::LimitedTimeOffer {
                        expiration_time_ms: None
                    }
                )
            });
            if d.has_expiration && missing_expiry {
                return Err(format_mismatch(format!(
                    "{label}: expiration_time_ms is required because the offer has an expiration"
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_carousel(
    defs: &[ComponentDef],
    sends: &[TemplateComponent],
    ctx: &SendCtx<'_>,
) -> Result<(), ApiError> {
    let def = defs.iter().find_map(|c| match c {
        ComponentDef::Carousel(cards) => Some(cards.as_slice()),
        _ => None,
    });
    let send = sends.iter().find_map(|c| match c {
        TemplateComponent::Carousel { cards } => Some(cards.as_slice()),
        _ => None,
    });
    let cards_mismatch = |got: usize, expected: usize| {
        ApiError::with_details(
            ErrorCode::TemplateParamCountMismatch,
            format!(
                "carousel: number of cards ({got}) does not match the expected number of cards ({expected})"
            ),
        )
    };
    match (def, send) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(format_mismatch(
            "carousel: the template has no carousel".to_owned(),
        )),
        (Some(d), None) => Err(cards_mismatch(0, d.len())),
        (Some(d), Some(s)) => {
            if s.len() != d.len() {
                return Err(cards_mismatch(s.len(), d.len()));
            }
            for card in s {
                check_card(d, card, ctx)?;
            }
            Ok(())
        }
    }
}

fn check_card(defs: &[CardDef], card: &CarouselCard, ctx: &SendCtx<'_>) -> Result<(), ApiError> {
    let k = usize::from(card.card_index);
    let Some(def) = defs.get(k) else {
        return Err(format_mismatch(format!(
            "carousel: card_index {k} is out of range; the template has {} cards",
            defs.len()
        )));
    };
    check_components(
        &def.components,
        &card.components,
        ctx,
        &format!("card[{k}]."),
    )
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn missing(p: &str) -> ApiError {
    ApiError::missing(p)
}

/// 2388040 when `s` is longer than `max` characters.
fn check_len(s: &str, p: &str, max: usize) -> Result<(), ApiError> {
    let len = chars(s);
    if len > max {
        Err(ApiError::with_details(
            ErrorCode::TemplateFieldTooLong,
            format!("Param {p} must be at most {max} characters long, got {len}."),
        ))
    } else {
        Ok(())
    }
}

fn enum_details(p: &str, got: &str, allowed: &[&str]) -> String {
    format!(
        "Param {p} must be one of {{{}}}, got {got:?}.",
        allowed.join(", ")
    )
}

/// An integer given as a JSON integer, an integral float or an integer string.
fn integer(v: Option<Value>, p: &str) -> Result<Option<i64>, ApiError> {
    let bad = || ApiError::invalid_param(format!("Param {p} must be an integer."));
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Ok(Some(f as i64))
            }
            _ => Err(bad()),
        },
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A boolean given as `true`/`false` or `"true"`/`"false"`.
fn flag(v: Option<Value>, p: &str) -> Result<Option<bool>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid_param(format!(
            "Param {p} must be a boolean."
        ))),
    }
}

/// A string that may arrive as a number (`"flow_id": 123`, `"phone_number": 4915…`).
fn str_num(v: Option<Value>, p: &str) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::invalid_param(format!(
            "Param {p} must be a string."
        ))),
    }
}

/// Bytes → raw struct: malformed JSON or a non-object body is 100; a wrong type anywhere is 100
/// naming the field path.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        ApiError::invalid_param(format!("The request body is not valid JSON: {msg}."))
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid_param(
            "The request body is not valid JSON: expected a JSON object.",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner
            .replace("invalid type: map,", "invalid type: object,")
            .replace("invalid type: sequence,", "invalid type: array,")
            .replace("expected a sequence", "expected an array");
        ApiError::invalid_param(format!("Param {path} is not valid: {inner}."))
    })
}

impl fmt::Display for TemplateDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.language, self.category)
    }
}

impl std::str::FromStr for Category {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::from_name(s)
            .ok_or_else(|| ApiError::invalid_param(enum_details("category", s, &Category::names())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning() {
        assert_eq!(
            scan("Hi {{1}}, {{name}}!").0,
            vec![
                Piece::Lit("Hi "),
                Piece::Var("1"),
                Piece::Lit(", "),
                Piece::Var("name"),
                Piece::Lit("!")
            ]
        );
        assert!(scan("Hi {{1").1);
        assert_eq!(scan("{{}}").0, vec![Piece::Var("")]);
        assert_eq!(
            distinct_vars("{{2}} {{1}} {{2}}", ParameterFormat::Positional),
            vec!["1", "2"]
        );
        assert_eq!(
            distinct_vars("{{b}} {{a}} {{b}}", ParameterFormat::Named),
            vec!["b", "a"]
        );
        assert_eq!(positional_number("01"), None);
        assert_eq!(positional_number("10"), Some(10));
    }

    #[test]
    fn languages() {
        for ok in ["en", "en_US", "pt_BR", "fil", "es_419"] {
            assert!(validate_language(ok).is_ok(), "{ok}");
        }
        for bad in ["EN", "en-US", "en_us", "english", "e", "en_USA"] {
            assert!(validate_language(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_scalars() {
        assert_eq!(integer(Some(Value::from("600")), "x").ok(), Some(Some(600)));
        assert_eq!(
            integer(Some(serde_json::json!(600.0)), "x").ok(),
            Some(Some(600))
        );
        assert!(integer(Some(serde_json::json!(1.5)), "x").is_err());
        assert_eq!(flag(Some(Value::from("TRUE")), "x").ok(), Some(Some(true)));
        assert_eq!(
            str_num(Some(serde_json::json!(12)), "x").ok(),
            Some(Some("12".to_owned()))
        );
    }
}
