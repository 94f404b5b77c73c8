//! `type: "reaction"` (spec §2.6).

use super::validate::{Path, invalid_value, missing, required};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// Most Unicode scalar values one reaction emoji may span (ZWJ sequences with skin tones).
const MAX_EMOJI_SCALARS: usize = 10;

/// A reaction to a message in the thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaction {
    /// The `wamid` reacted to.
    pub message_id: String,
    /// A single emoji; `""` removes a previous reaction.
    pub emoji: String,
}

/// `reaction` as sent.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawReaction {
    message_id: Option<String>,
    emoji: Option<String>,
}

impl RawReaction {
    pub(crate) fn validate(self, p: &Path<'_>) -> Result<Reaction, ApiError> {
        let message_id = required(self.message_id, &p.key("message_id"), usize::MAX)?;
        let emoji_p = p.key("emoji");
        let emoji = self.emoji.ok_or_else(|| missing(&emoji_p))?;
        if !is_emoji_like(&emoji) {
            return Err(invalid_value(
                &emoji_p,
                "must be a single emoji or an empty string",
            ));
        }
        Ok(Reaction { message_id, emoji })
    }
}

/// A light plausibility check for "one emoji" without Unicode tables: empty (removal), or a short
/// sequence of scalars from the emoji blocks (symbols, dingbats, pictographs, flags, modifiers,
/// joiners, variation selectors, keycaps) with at least one non-ASCII scalar. Keycaps (`1️⃣`,
/// `#️⃣`) pass: their ASCII base is a digit, `#` or `*`.
fn is_emoji_like(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let mut count = 0usize;
    let mut non_ascii = false;
    for c in s.chars() {
        count += 1;
        if count > MAX_EMOJI_SCALARS {
            return false;
        }
        if c.is_ascii() {
            if !(c.is_ascii_digit() || c == '#' || c == '*') {
                return false;
            }
        } else if is_emoji_scalar(c) {
            non_ascii = true;
        } else {
            return false;
        }
    }
    non_ascii
}

fn is_emoji_scalar(c: char) -> bool {
    matches!(u32::from(c),
        0x00A9 | 0x00AE // © ®
        | 0x200D // zero-width joiner
        | 0x203C..=0x2BFF // punctuation, letterlike, arrows, technical, enclosed, shapes, symbols, dingbats
        | 0x3030 | 0x303D | 0x3297 | 0x3299 // 〰 〽 ㊗ ㊙
        | 0xFE0E | 0xFE0F // variation selectors
        | 0x1F000..=0x1FAFF // pictographs, emoticons, flags, modifiers
        | 0xE0020..=0xE007F // tag sequences (subdivision flags)
    ) && !c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::is_emoji_like;

    #[test]
    fn emoji_plausibility() {
        for ok in [
            "",
            "😀",
            "\u{1F600}",
            "👍🏽",
            "🇩🇪",
            "1️⃣",
            "👨‍👩‍👧‍👦",
            "❤️",
            "🅰️",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        ] {
            assert!(is_emoji_like(ok), "{ok:?}");
        }
        for bad in [
            "a",
            ":)",
            "ok",
            "😀 ",
            "ä",
            "日",
            "😀😀😀😀😀😀😀😀😀😀😀",
            "1",
            "\n",
            "\u{2003}",
        ] {
            assert!(!is_emoji_like(bad), "{bad:?}");
        }
    }
}
