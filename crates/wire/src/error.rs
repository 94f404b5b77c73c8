//! The one error table: every error that leaves Mynah over HTTP or inside a webhook is a row here.
//!
//! Rows carry the platform's code, the HTTP status it answers with, its title, a default `details`
//! string, where it surfaces (synchronously, inside a webhook, or both) and the retry class a
//! sender should apply (platform spec §3.4, §10, §12). Titles and details are paraphrased where the
//! platform's wording is not documented (spec §13 #19).

use serde::Serialize;
use std::borrow::Cow;
use std::fmt;

/// Where an error surfaces on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// In the HTTP response.
    Sync,
    /// In a webhook (`statuses[].errors`, `messages[].errors` or `value.errors`).
    Async,
    /// Either.
    Both,
}

/// What a sender should do with an error (platform spec §3.4 legend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryClass {
    /// Transient: retry the same request with exponential backoff and jitter.
    Backoff,
    /// Throttling: lower the rate, then retry.
    Pace,
    /// Retry only after a delay (per recipient, per template …).
    Wait,
    /// Do not resend as is; send something else (a template).
    Alt,
    /// Permanent until configuration, data or credentials change.
    Fix,
    /// Never retry for this recipient or content.
    Never,
}

/// Which API family a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Meta Graph / Cloud API codes (also what 360dialog proxies).
    Graph,
    /// The legacy On-Premises API's codes.
    OnPrem,
    /// Mynah's own control API.
    Mynah,
}

/// One row of the error table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ErrorSpec {
    /// The variant name, for logs and docs.
    pub name: &'static str,
    /// The numeric code clients key on.
    pub code: u32,
    /// HTTP status when returned synchronously.
    pub http: u16,
    /// Error title; `message` is rendered as `"(#code) title"`.
    pub title: &'static str,
    /// Default `error_data.details`.
    pub details: &'static str,
    /// Where it surfaces.
    pub surface: Surface,
    /// How a sender should retry.
    pub retry: RetryClass,
    /// Which API family.
    pub family: Family,
}

macro_rules! error_table {
    ($( $name:ident = $code:literal, $http:literal, $family:ident, $surface:ident, $retry:ident, $title:literal, $details:literal; )*) => {
        /// Every error code Mynah can emit. See [`ErrorCode::spec`] for the row.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum ErrorCode { $( #[doc = $title] $name, )* }

        /// The table itself, in declaration order.
        pub const ERROR_TABLE: &[ErrorSpec] = &[
            $( ErrorSpec { name: stringify!($name), code: $code, http: $http, title: $title, details: $details,
                surface: Surface::$surface, retry: RetryClass::$retry, family: Family::$family }, )*
        ];

        impl ErrorCode {
            /// Every variant, in table order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$name, )* ];
        }
    };
}

error_table! {
    // --- Authorization & permission (Graph)
    AuthException = 0, 401, Graph, Sync, Fix, "AuthException", "The access token could not be decrypted or is not valid.";
    ApiMethod = 3, 500, Graph, Sync, Fix, "Capability or permissions issue", "The app does not have the capability to call this endpoint.";
    PermissionDenied = 10, 403, Graph, Sync, Fix, "Application does not have permission for this action", "Permission is either not granted or has been removed.";
    AccessTokenExpired = 190, 401, Graph, Sync, Fix, "Access token has expired", "The access token is missing, malformed, expired or does not grant access to this phone number.";
    ApiPermission = 200, 403, Graph, Sync, Fix, "Permissions error", "Permission is either not granted or has been removed.";
    AccessDenied = 131005, 403, Graph, Sync, Fix, "Access denied", "Permission is either not granted or has been removed.";
    // --- Integrity / policy
    TemporarilyBlocked = 368, 403, Graph, Sync, Fix, "Temporarily blocked for policies violations", "The WhatsApp Business Account is restricted or disabled for violating a platform policy.";
    CountryRestricted = 130497, 403, Graph, Both, Never, "Business account is restricted from messaging users in this country", "The business cannot message users in this country.";
    AccountLocked = 131031, 403, Graph, Sync, Fix, "Business Account locked", "The WhatsApp Business Account is restricted or disabled.";
    // --- Throttling
    TooManyCalls = 4, 429, Graph, Sync, Pace, "Application request limit reached", "The app has reached its API call rate limit.";
    WabaRateLimit = 80007, 429, Graph, Sync, Pace, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit.";
    RateLimitHit = 130429, 429, Graph, Both, Pace, "Rate limit hit", "Cloud API message throughput has been reached.";
    SpamRateLimit = 131048, 429, Graph, Both, Pace, "Spam rate limit hit", "Message failed to send because there are restrictions on how many messages can be sent from this phone number. This may be because too many previous messages were blocked or flagged as spam.";
    PairRateLimit = 131056, 429, Graph, Both, Wait, "(Business Account, Consumer Account) pair rate limit hit", "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.";
    TemplateClassificationLimit = 131064, 400, Graph, Sync, Wait, "Message limit reached", "The account reached a message limit because of template classification violations.";
    RegistrationRateLimit = 133016, 429, Graph, Sync, Wait, "Account register deregister rate limit exceeded", "Registration or deregistration failed because there were too many attempts for this phone number in a short period of time.";
    // --- Messaging / other (Graph)
    ApiUnknown = 1, 400, Graph, Sync, Backoff, "API Unknown", "Invalid request or possible server error.";
    ApiService = 2, 503, Graph, Sync, Backoff, "API Service", "Temporary due to downtime or due to being overloaded.";
    UnknownPath = 2500, 400, Graph, Sync, Fix, "Unknown path components", "The path does not name a supported endpoint.";
    ParameterValueNotValid33 = 33, 400, Graph, Sync, Fix, "Parameter value is not valid", "The object does not exist, cannot be loaded due to missing permissions, or does not support this operation.";
    InvalidParameter = 100, 400, Graph, Sync, Fix, "Invalid parameter", "The request included one or more unsupported or misspelled parameters.";
    ExperimentHoldout = 130472, 400, Graph, Async, Never, "User's number is part of an experiment", "Failed to send message because this user's phone number is part of an experiment.";
    GenericError = 131000, 500, Graph, Both, Backoff, "Something went wrong", "Message failed to send due to an unknown error.";
    RequiredParameterMissing = 131008, 400, Graph, Sync, Fix, "Required parameter is missing", "The request is missing a required parameter.";
    ParameterValueInvalid = 131009, 400, Graph, Both, Fix, "Parameter value is not valid", "One or more parameter values are invalid.";
    ServiceUnavailable = 131016, 500, Graph, Sync, Backoff, "Service unavailable", "A service is temporarily unavailable.";
    RecipientIsSender = 131021, 400, Graph, Sync, Fix, "Recipient cannot be sender", "Sender and recipient phone number are the same.";
    Undeliverable = 131026, 400, Graph, Async, Never, "Message undeliverable", "Unable to deliver message. The recipient is not a WhatsApp user, has not accepted the latest terms, or uses an outdated client.";
    DisplayNameApproval = 131037, 400, Graph, Sync, Fix, "WhatsApp provided number needs display name approval before message can be sent", "The 555 business phone number needs an approved display name.";
    PaymentIssue = 131042, 400, Graph, Both, Fix, "Business eligibility payment issue", "Message failed to send because there were one or more errors related to your payment method.";
    IncorrectCertificate = 131045, 500, Graph, Both, Fix, "Incorrect certificate", "Message failed to send due to a phone number registration error.";
    ReEngagement = 131047, 400, Graph, Async, Alt, "Re-engagement message", "Message failed to send because more than 24 hours have passed since the customer last replied to this number.";
    EcosystemEngagement = 131049, 400, Graph, Async, Wait, "This message was not delivered to maintain healthy ecosystem engagement.", "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.";
    UserStoppedMarketing = 131050, 400, Graph, Async, Never, "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.", "The recipient has chosen to stop receiving marketing messages from your business.";
    UnsupportedMessageType = 131051, 400, Graph, Both, Fix, "Unsupported message type", "Message type is not currently supported.";
    MediaDownloadError = 131052, 400, Graph, Async, Fix, "Media download error", "Unable to download the media sent by the user.";
    MediaUploadError = 131053, 400, Graph, Both, Fix, "Media upload error", "Unable to upload the media used in the message.";
    MethodNotAllowed = 131055, 400, Graph, Sync, Fix, "Method not allowed", "The method is not allowed for this endpoint.";
    BsuidNotSupported = 131062, 400, Graph, Sync, Alt, "Business-scoped User ID (BSUID) recipients are not supported for this message.", "You can only send this message to a phone number: authentication templates with one-tap, zero-tap or copy-code buttons (and marketing messages with a bid_spec) cannot be addressed by a business-scoped user id.";
    MarketingDisabledOnCloudApi = 131063, 400, Graph, Sync, Fix, "Marketing templates disabled for Cloud API", "Marketing templates cannot be sent this way for this phone number: send them through the Marketing Messages API (or enable marketing messages on the Cloud API).";
    MaintenanceMode = 131057, 500, Graph, Sync, Backoff, "Account in maintenance mode", "The business account is in maintenance mode, for example during a throughput upgrade.";
    TemplateParamCountMismatch = 132000, 400, Graph, Sync, Fix, "Number of parameters does not match the expected number of params", "The number of variable parameter values does not match the number of variables defined in the template.";
    TemplateDoesNotExist = 132001, 404, Graph, Sync, Fix, "Template name does not exist in the translation", "The template does not exist in the specified language or has not been approved.";
    TemplateTextTooLong = 132005, 400, Graph, Sync, Fix, "Translated text too long", "The translated text is too long.";
    TemplateFormatPolicy = 132007, 400, Graph, Sync, Fix, "Template Format Character Policy Violated", "The template content violates a WhatsApp policy.";
    TemplateParamFormatMismatch = 132012, 400, Graph, Sync, Fix, "Parameter format does not match format in the created template", "Variable parameter values are formatted incorrectly.";
    TemplatePaused = 132015, 400, Graph, Both, Wait, "Template is paused", "The template is paused due to low quality, so it cannot be sent.";
    TemplateDisabled = 132016, 400, Graph, Sync, Never, "Template is disabled", "The template has been paused too many times due to low quality and is now permanently disabled.";
    TemplateValidation = 132018, 400, Graph, Sync, Fix, "There was an issue with the parameters in your template.", "One or more template parameters are invalid.";
    FlowBlocked = 132068, 400, Graph, Sync, Fix, "Flow is in blocked state", "The flow is in a blocked state.";
    FlowThrottled = 132069, 400, Graph, Sync, Wait, "Flow is in throttled state", "The flow is throttled and 10 messages using it were already sent in the last hour.";
    ServerUnavailable = 133004, 503, Graph, Sync, Backoff, "Server temporarily unavailable", "The server is temporarily unavailable.";
    GenericUserError = 135000, 400, Graph, Sync, Fix, "Generic user error", "Message failed to send because of an unknown error with the request parameters.";
    // --- Template management (Graph, Business Management API): creation and edits, spec §3.4, §7
    TemplateCountLimit = 2388019, 400, Graph, Sync, Fix, "Message template count limit exceeded", "The WhatsApp Business Account already has as many message templates as it may have.";
    TemplateFieldTooLong = 2388040, 400, Graph, Sync, Fix, "Message template field too long", "A field of the message template exceeds its character limit.";
    TemplateHeaderFormat = 2388047, 400, Graph, Sync, Fix, "Message template header format invalid", "The header of the message template is not valid.";
    TemplateBodyFormat = 2388072, 400, Graph, Sync, Fix, "Message template body format invalid", "The body text of the message template is not valid.";
    TemplateFooterFormat = 2388073, 400, Graph, Sync, Fix, "Message template footer format invalid", "The footer of the message template is not valid; footers cannot contain variables.";
    TemplateTooManyVariables = 2388293, 400, Graph, Sync, Fix, "Too many variables for the message length", "The message template has too many variables for the length of its text; shorten the variables or lengthen the text.";
    TemplateVariableAtEdge = 2388299, 400, Graph, Sync, Fix, "Variables at the start or end of the message", "The message template body cannot start or end with a variable.";
    // --- On-Premises API (legacy), spec §10
    OnPremMediaDownload = 400, 400, OnPrem, Async, Fix, "Media download error", "Failed to download the media.";
    OnPremNotDelivered = 408, 400, OnPrem, Async, Never, "Message is not valid", "The message was pending for more than a day or is not valid.";
    OnPremExpired = 410, 400, OnPrem, Async, Never, "Message expired", "The message expired before it could be delivered (time-to-live).";
    OnPremRateLimit = 429, 429, OnPrem, Sync, Pace, "Too many requests", "The rate limit was hit.";
    OnPremReEngagement = 470, 400, OnPrem, Async, Alt, "Message failed to send because more than 24 hours have passed since the customer last replied to this number", "More than 24 hours have passed since the customer last replied.";
    OnPremSpamRateLimit = 471, 400, OnPrem, Async, Pace, "Spam rate limit hit", "Too many previous messages were blocked or flagged as spam.";
    OnPremExperiment = 472, 400, OnPrem, Async, Never, "User's number is part of an experiment", "The user's phone number is part of an experiment.";
    OnPremGeneric = 500, 500, OnPrem, Both, Backoff, "Generic error", "Something went wrong.";
    OnPremResourceNotFound = 1006, 404, OnPrem, Sync, Fix, "Resource not found", "The requested resource was not found.";
    OnPremParameterMissing = 1008, 400, OnPrem, Sync, Fix, "Required parameter is missing", "A required parameter is missing.";
    OnPremParameterInvalid = 1009, 400, OnPrem, Sync, Fix, "Parameter value is not valid", "A parameter value is not valid.";
    OnPremUserNotValid = 1013, 400, OnPrem, Async, Never, "User is not valid", "The recipient is not a WhatsApp user.";
    OnPremSendToSelf = 1021, 400, OnPrem, Sync, Fix, "Bad user", "Cannot send a message to yourself.";
    OnPremParamCount = 2000, 400, OnPrem, Sync, Fix, "Template Param Count Mismatch", "The number of parameters does not match the template.";
    OnPremTemplateMissing = 2001, 404, OnPrem, Sync, Fix, "Template Missing", "The template does not exist in this language.";
    OnPremTemplatePaused = 2061, 400, OnPrem, Both, Wait, "Template paused", "The template is paused due to low quality.";
    OnPremTemplateDisabled = 2062, 400, OnPrem, Sync, Never, "Template disabled", "The template is permanently disabled.";
    // --- Mynah's control API
    MynahNotFound = 4040, 404, Mynah, Sync, Fix, "Not found", "The requested object does not exist.";
    MynahBadRequest = 4000, 400, Mynah, Sync, Fix, "Bad request", "The request is not valid.";
    MynahTimeout = 4080, 408, Mynah, Sync, Wait, "Timed out", "Nothing matched before the timeout.";
    MynahInternal = 5000, 500, Mynah, Sync, Backoff, "Internal error", "Mynah failed to complete the request.";
}

impl ErrorCode {
    /// This code's row of the table.
    pub fn spec(self) -> &'static ErrorSpec {
        // ALL and ERROR_TABLE are generated from the same list in the same order.
        &ERROR_TABLE[self as usize]
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        self.spec().code
    }

    /// The HTTP status it answers with.
    pub fn http_status(self) -> u16 {
        self.spec().http
    }

    /// Finds a Graph or On-Premises code by number (Graph first: 400/429/500 exist in both).
    pub fn from_code(code: u32) -> Option<ErrorCode> {
        Self::from_code_in(code, Family::Graph).or_else(|| Self::from_code_in(code, Family::OnPrem))
    }

    /// Finds a code by number within one family.
    pub fn from_code_in(code: u32, family: Family) -> Option<ErrorCode> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.spec().code == code && c.spec().family == family)
    }

    /// The On-Premises code the same rule maps to (spec §10), if there is one.
    pub fn onprem_equivalent(self) -> ErrorCode {
        use ErrorCode::*;
        match self {
            RateLimitHit | TooManyCalls | WabaRateLimit | PairRateLimit => OnPremRateLimit,
            ReEngagement => OnPremReEngagement,
            SpamRateLimit => OnPremSpamRateLimit,
            ExperimentHoldout => OnPremExperiment,
            Undeliverable => OnPremUserNotValid,
            RecipientIsSender => OnPremSendToSelf,
            RequiredParameterMissing => OnPremParameterMissing,
            InvalidParameter | ParameterValueInvalid | UnsupportedMessageType => {
                OnPremParameterInvalid
            }
            TemplateParamCountMismatch | TemplateParamFormatMismatch | TemplateTextTooLong => {
                OnPremParamCount
            }
            TemplateDoesNotExist => OnPremTemplateMissing,
            TemplatePaused => OnPremTemplatePaused,
            TemplateDisabled => OnPremTemplateDisabled,
            MediaDownloadError | MediaUploadError => OnPremMediaDownload,
            GenericError | ServiceUnavailable | ServerUnavailable | ApiService => OnPremGeneric,
            ParameterValueNotValid33 | MynahNotFound => OnPremResourceNotFound,
            other => other,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.spec();
        write!(f, "(#{}) {}", s.code, s.title)
    }
}

/// An error on its way out: a code from the table plus the details of this occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The row.
    pub code: ErrorCode,
    /// `error_data.details`; names the offending field where there is one.
    pub details: Cow<'static, str>,
    /// Overrides the table's HTTP status (profiles that answer throttling with 400, …).
    pub http_override: Option<u16>,
}

impl ApiError {
    /// An error with the table's default details.
    pub fn new(code: ErrorCode) -> Self {
        ApiError {
            code,
            details: Cow::Borrowed(code.spec().details),
            http_override: None,
        }
    }

    /// An error with details of its own.
    pub fn with_details(code: ErrorCode, details: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            details: details.into(),
            http_override: None,
        }
    }

    /// Code 100 naming a parameter.
    pub fn invalid_param(details: impl Into<Cow<'static, str>>) -> Self {
        Self::with_details(ErrorCode::InvalidParameter, details)
    }

    /// Code 131008 naming the missing parameter.
    pub fn missing(param: &str) -> Self {
        Self::with_details(
            ErrorCode::RequiredParameterMissing,
            format!("The parameter {param} is required."),
        )
    }

    /// Code 131009 naming the parameter.
    pub fn invalid_value(details: impl Into<Cow<'static, str>>) -> Self {
        Self::with_details(ErrorCode::ParameterValueInvalid, details)
    }

    /// Answers with another HTTP status than the table's.
    pub fn with_http(mut self, status: u16) -> Self {
        self.http_override = Some(status);
        self
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.http_override.unwrap_or(self.code.http_status())
    }

    /// The Graph envelope (platform spec §3.2), `{"error": {...}}`.
    pub fn to_graph<'a>(&'a self, fbtrace_id: &'a str) -> GraphErrorEnvelope<'a> {
        let spec = self.code.spec();
        GraphErrorEnvelope {
            error: GraphError {
                message: format!("(#{}) {}", spec.code, spec.title),
                kind: "OAuthException",
                code: spec.code,
                error_data: ErrorData {
                    messaging_product: "whatsapp",
                    details: &self.details,
                },
                fbtrace_id,
            },
        }
    }

    /// The error object carried inside webhooks (`statuses[].errors[]`, spec §4.5, §4.7).
    pub fn to_webhook(&self) -> WebhookError {
        let spec = self.code.spec();
        WebhookError {
            code: spec.code,
            title: spec.title.to_string(),
            message: spec.title.to_string(),
            error_data: WebhookErrorData {
                details: self.details.to_string(),
            },
            href: "/documentation/business-messaging/whatsapp/support/error-codes".to_string(),
        }
    }

    /// The On-Premises error body `{"meta": …, "errors": [...]}` (spec §10).
    pub fn to_onprem(&self) -> OnPremErrorEnvelope<'_> {
        let spec = self.code.spec();
        OnPremErrorEnvelope {
            meta: OnPremMeta::CURRENT,
            errors: [OnPremError {
                code: spec.code,
                title: spec.title,
                details: &self.details,
            }],
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.details)
    }
}

impl std::error::Error for ApiError {}

/// `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct GraphErrorEnvelope<'a> {
    /// The error.
    pub error: GraphError<'a>,
}

/// The Graph error object.
#[derive(Debug, Serialize)]
pub struct GraphError<'a> {
    /// `"(#code) title"`.
    pub message: String,
    /// Always `OAuthException` for WhatsApp errors.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The code.
    pub code: u32,
    /// Details.
    pub error_data: ErrorData<'a>,
    /// Trace id.
    pub fbtrace_id: &'a str,
}

/// `error_data`.
#[derive(Debug, Serialize)]
pub struct ErrorData<'a> {
    /// Always `whatsapp`.
    pub messaging_product: &'static str,
    /// Human-readable cause.
    pub details: &'a str,
}

/// An error object inside a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WebhookError {
    /// The code.
    pub code: u32,
    /// Title.
    pub title: String,
    /// Equals the title (v16+).
    pub message: String,
    /// Details.
    pub error_data: WebhookErrorData,
    /// Link to the error-code page.
    pub href: String,
}

/// `error_data` inside a webhook error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WebhookErrorData {
    /// Details.
    pub details: String,
}

/// The On-Premises error body.
#[derive(Debug, Serialize)]
pub struct OnPremErrorEnvelope<'a> {
    /// API metadata.
    pub meta: OnPremMeta,
    /// The errors (always one here).
    pub errors: [OnPremError<'a>; 1],
}

/// On-Premises `meta`.
#[derive(Debug, Serialize)]
pub struct OnPremMeta {
    /// `stable`.
    pub api_status: &'static str,
    /// Client version.
    pub version: &'static str,
}

impl OnPremMeta {
    /// The client version Mynah answers as.
    pub const CURRENT: OnPremMeta = OnPremMeta {
        api_status: "stable",
        version: "2.53.0",
    };
}

/// One On-Premises error.
#[derive(Debug, Serialize)]
pub struct OnPremError<'a> {
    /// The code.
    pub code: u32,
    /// Title.
    pub title: &'static str,
    /// Details.
    pub details: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_enum_agree() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
            assert_eq!(code.spec().name, format!("{code:?}"));
        }
    }

    #[test]
    fn codes_are_unique_per_family() {
        for a in ERROR_TABLE {
            let same = ERROR_TABLE
                .iter()
                .filter(|b| b.code == a.code && b.family == a.family);
            assert_eq!(same.count(), 1, "duplicate code {}", a.code);
        }
    }

    #[test]
    fn graph_envelope_shape() {
        let e = ApiError::with_details(ErrorCode::RateLimitHit, "slow down");
        let v = serde_json::to_value(e.to_graph("AbC")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException",
                "code": 130429, "error_data": {"messaging_product": "whatsapp", "details": "slow down"},
                "fbtrace_id": "AbC"}})
        );
        assert_eq!(e.http_status(), 429);
        assert_eq!(e.clone().with_http(400).http_status(), 400);
    }

    #[test]
    fn lookup_prefers_graph() {
        assert_eq!(
            ErrorCode::from_code(131049),
            Some(ErrorCode::EcosystemEngagement)
        );
        assert_eq!(
            ErrorCode::from_code(2061),
            Some(ErrorCode::OnPremTemplatePaused)
        );
        assert_eq!(ErrorCode::TemplatePaused.onprem_equivalent().code(), 2061);
    }
}
