//! Media objects: `image`, `audio`, `video`, `document`, `sticker` messages (spec §2.3), and the
//! same objects inside template parameters and interactive headers.

use super::validate::{
    Flag, Path, StrNum, check_len, invalid_value, is_http_url, missing_either, not_allowed,
};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// Longest media `caption`, in characters.
pub const MAX_CAPTION: usize = 1024;

/// Where the media comes from: an uploaded media id or a public http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaSource {
    /// A media id returned by `POST /media`.
    Id(String),
    /// A public `http://` or `https://` URL the platform fetches at send time.
    Link(String),
}

/// A media object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Media {
    /// `id` or `link` (exactly one).
    #[serde(flatten)]
    pub source: MediaSource,
    /// Caption (image, video and document messages only; ≤ 1024 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// Displayed file name (documents only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A voice note (audio messages only).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
}

impl Media {
    /// Media by uploaded id, without caption.
    pub fn id(id: impl Into<String>) -> Media {
        Media {
            source: MediaSource::Id(id.into()),
            caption: None,
            filename: None,
            voice: false,
        }
    }

    /// Media by URL, without caption.
    pub fn link(url: impl Into<String>) -> Media {
        Media {
            source: MediaSource::Link(url.into()),
            caption: None,
            filename: None,
            voice: false,
        }
    }
}

/// Which media kind an object stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaKind {
    fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }
}

/// Where a media object appears: a media message validates caption / filename / voice placement;
/// inside a template parameter or an interactive header captions are ignored (the platform does
/// not render them there) and only documents keep a filename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Message,
    Embedded,
}

/// A media object as sent.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawMedia {
    id: Option<StrNum>,
    link: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    voice: Option<Flag>,
}

impl RawMedia {
    pub(crate) fn validate(
        self,
        p: &Path<'_>,
        kind: MediaKind,
        place: Place,
    ) -> Result<Media, ApiError> {
        // Blank strings count as absent: form builders send `"id": ""` next to a link.
        let id = StrNum::non_blank(self.id);
        let link = self.link.filter(|l| !l.trim().is_empty());
        let source = match (id, link) {
            (Some(_), Some(_)) => {
                return Err(invalid_value(
                    p,
                    "must contain exactly one of id and link, not both",
                ));
            }
            (None, None) => return Err(missing_either(p, "id", "link")),
            (Some(id), None) => MediaSource::Id(id),
            (None, Some(link)) => {
                if !is_http_url(link.trim()) {
                    return Err(invalid_value(
                        &p.key("link"),
                        "must be a valid http or https URL",
                    ));
                }
                MediaSource::Link(link)
            }
        };
        let voice = self.voice.is_some_and(|f| f.0);
        let (caption, filename, voice) = match place {
            Place::Message => {
                let context = || format!("for {} messages", kind.name());
                if let Some(c) = &self.caption {
                    if !matches!(
                        kind,
                        MediaKind::Image | MediaKind::Video | MediaKind::Document
                    ) {
                        return Err(not_allowed(&p.key("caption"), &context()));
                    }
                    check_len(c, &p.key("caption"), MAX_CAPTION)?;
                }
                if self.filename.is_some() && kind != MediaKind::Document {
                    return Err(not_allowed(&p.key("filename"), &context()));
                }
                if voice && kind != MediaKind::Audio {
                    return Err(not_allowed(&p.key("voice"), &context()));
                }
                (self.caption, self.filename, voice)
            }
            Place::Embedded => {
                let filename = if kind == MediaKind::Document {
                    self.filename
                } else {
                    None
                };
                (None, filename, false)
            }
        };
        Ok(Media {
            source,
            caption,
            filename,
            voice,
        })
    }
}
