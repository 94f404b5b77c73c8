//! `type: "text"` (spec §2.2).

use super::validate::{Flag, Path, required};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// Longest `text.body`, in characters.
pub const MAX_TEXT_BODY: usize = 4096;

/// A text message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Text {
    /// The message text; 1 to 4096 characters, WhatsApp markup passed through.
    pub body: String,
    /// Render a preview of the first http(s) URL of the body.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview_url: bool,
}

/// `text` as sent.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawText {
    body: Option<String>,
    preview_url: Option<Flag>,
}

impl RawText {
    /// Validates; `top_level_preview` is the On-Premises top-level `preview_url`, used when the
    /// text object carries none.
    pub(crate) fn validate(
        self,
        p: &Path<'_>,
        top_level_preview: Option<bool>,
    ) -> Result<Text, ApiError> {
        let body = required(self.body, &p.key("body"), MAX_TEXT_BODY)?;
        let preview_url = self
            .preview_url
            .map(|f| f.0)
            .or(top_level_preview)
            .unwrap_or(false);
        Ok(Text { body, preview_url })
    }
}
