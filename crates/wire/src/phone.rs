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
        self.region_code()
            .map(|c| String::from_utf8_lossy(&c).into_owned())
    }

    /// [`WaId::region`] as its two letters, from a process-wide cache of recent numbers: the
    /// numbering plan's parse and validation cost microseconds, and one message asks for its
    /// recipient's region several times (policy, pricing, quiet hours, identity).
    pub fn region_code(&self) -> Option<[u8; 2]> {
        let key = region_cache::key(&self.0);
        if let Some(hit) = key.and_then(region_cache::get) {
            return hit;
        }
        let plus = format!("+{}", self.0);
        let found = phonenumber::parse(None, &plus)
            .ok()
            .filter(phonenumber::is_valid)
            .and_then(|n| n.country().id())
            .and_then(|id| <[u8; 2]>::try_from(id.as_ref().as_bytes()).ok());
        if let Some(k) = key {
            region_cache::put(k, found);
        }
        found
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
        self.0.starts_with('1') && self.region_code() == Some(*b"US")
    }
}

/// The regions of recently seen numbers, bounded: at [`region_cache::CAPACITY`] entries it starts
/// over (a number's region never changes, so a miss only costs the look-up again).
mod region_cache {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    /// Most numbers remembered (about 24 bytes each).
    pub const CAPACITY: usize = 65_536;

    static CACHE: Mutex<Option<HashMap<u64, Option<[u8; 2]>>>> = Mutex::new(None);

    /// The number as an integer: digits without a leading zero (as every `wa_id`) name one value.
    pub fn key(digits: &str) -> Option<u64> {
        if digits.len() > 19 || digits.starts_with('0') {
            return None;
        }
        digits.parse().ok()
    }

    pub fn get(key: u64) -> Option<Option<[u8; 2]>> {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.as_ref()?.get(&key).copied()
    }

    pub fn put(key: u64, region: Option<[u8; 2]>) {
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        let map = cache.get_or_insert_with(HashMap::new);
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, region);
    }

    #[cfg(test)]
    pub fn len() -> usize {
        let cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        cache.as_ref().map_or(0, HashMap::len)
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
    fn the_region_cache_answers_as_the_plan_and_stays_bounded() {
        // A second look is a cache hit with the same answer, valid or not.
        for n in ["4915112345678", "14155552671", "99900000000001"] {
            let w = WaId::from_digits(n);
            assert_eq!(w.region_code(), w.region_code());
        }
        assert_eq!(
            WaId::from_digits("4915112345678").region_code(),
            Some(*b"DE")
        );
        assert_eq!(WaId::from_digits("99900000000001").region_code(), None);
        for i in 0..(region_cache::CAPACITY as u64 + 10) {
            region_cache::put(10_000_000 + i, None);
        }
        assert!(region_cache::len() <= region_cache::CAPACITY);
        assert_eq!(
            WaId::from_digits("14165550123").region().as_deref(),
            Some("CA")
        );
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
