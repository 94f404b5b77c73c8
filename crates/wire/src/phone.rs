//! Phone-number identity: the `wa_id` a user is known by, and the region it belongs to.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A WhatsApp user id: the user's phone number in international form, digits only
/// (`"4915112345678"`), as it appears in `contacts[].wa_id`, `from` and `recipient_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WaId(String);

impl WaId {
    /// Normalises a `to` value as the platform does: `+`, spaces, dashes, dots and parentheses
    /// are tolerated; what remains must be 5 to 15 digits (E.164 allows at most 15).
    pub fn parse(input: &str) -> Result<WaId, ApiError> {
        let mut digits = String::with_capacity(input.len());
        for c in input.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' | ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid_to(input)),
            }
        }
        // A leading international prefix "00" is tolerated as "+".
        let digits = match digits.strip_prefix("00") {
            Some(rest) if rest.len() >= 5 => rest.to_string(),
            _ => digits,
        };
        if !(5..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(invalid_to(input));
        }
        Ok(WaId(digits))
    }

    /// Wraps digits already known to be a `wa_id` (from storage or configuration).
    pub fn from_digits(digits: impl Into<String>) -> WaId {
        WaId(digits.into())
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166 region of the number (`"US"`, `"CA"`, `"DE"` …) as the numbering plan
    /// defines it; `None` when the number is not a valid number of any region.
    /// A `+1` number is `US` only with a US area code; Canada and the Caribbean share `+1`.
    pub fn region(&self) -> Option<String> {
        let plus = format!("+{}", self.0);
        let number = phonenumber::parse(None, &plus).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        number.country().id().map(|id| id.as_ref().to_string())
    }

    /// The country calling code (leading digits: `1`, `49`, `55` …), if the plan knows it.
    pub fn calling_code(&self) -> Option<u16> {
        let plus = format!("+{}", self.0);
        phonenumber::parse(None, &plus)
            .ok()
            .map(|n| n.code().value())
    }

    /// True for a United States number (`+1` with a US area code).
    pub fn is_us(&self) -> bool {
        self.0.starts_with('1') && self.region().as_deref() == Some("US")
    }
}

impl fmt::Display for WaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for WaId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn invalid_to(input: &str) -> ApiError {
    ApiError::invalid_value(format!(
        "Param to must be a valid phone number in international format, got {input:?}."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_formatting() {
        assert_eq!(
            WaId::parse("+49 151 1234-5678").unwrap().as_str(),
            "4915112345678"
        );
        assert_eq!(
            WaId::parse("(+1) 415.555.0100").unwrap().as_str(),
            "14155550100"
        );
        assert_eq!(
            WaId::parse("0049 151 12345678").unwrap().as_str(),
            "4915112345678"
        );
        assert!(WaId::parse("hello").is_err());
        assert!(WaId::parse("123").is_err());
        assert!(WaId::parse("1234567890123456").is_err());
    }

    #[test]
    fn plus_one_is_not_always_the_us() {
        // San Francisco, Toronto, Jamaica.
        assert_eq!(
            WaId::parse("+1 415 555 2671").unwrap().region().as_deref(),
            Some("US")
        );
        assert!(WaId::parse("+1 415 555 2671").unwrap().is_us());
        assert_eq!(
            WaId::parse("+1 416 555 0123").unwrap().region().as_deref(),
            Some("CA")
        );
        assert!(!WaId::parse("+1 416 555 0123").unwrap().is_us());
        assert_eq!(
            WaId::parse("+1 876 555 0123").unwrap().region().as_deref(),
            Some("JM")
        );
        assert!(!WaId::parse("+1 876 555 0123").unwrap().is_us());
        assert_eq!(
            WaId::parse("+49 151 12345678").unwrap().region().as_deref(),
            Some("DE")
        );
        assert_eq!(
            WaId::parse("+49 151 12345678").unwrap().calling_code(),
            Some(49)
        );
    }
}
