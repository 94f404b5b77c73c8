//! Business-scoped user ids (BSUID) and usernames (platform 2026 note §1.1).
//!
//! A BSUID is the user's ISO 3166 two-letter country code, a period, then up to 128 letters or
//! digits (`US.13491208655302741918`); a parent BSUID has `ENT.` after the period
//! (`US.ENT.11815799212886844830`). The full value must be used as given: it is not normalised.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest part after the country code (and `ENT.`).
pub const MAX_USER_ID_BODY: usize = 128;

/// A business-scoped user id or a parent BSUID, as the platform writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Checks the shape: `CC.` + 1 to 128 letters or digits, or `CC.ENT.` + the same. Anything
    /// else is code 100 naming `param`.
    pub fn parse_param(input: &str, param: &str) -> Result<UserId, ApiError> {
        let s = input.trim();
        if Self::well_formed(s) {
            Ok(UserId(s.to_string()))
        } else {
            Err(ApiError::invalid_param(format!(
                "Param {param} must be a business-scoped user id: a two-letter country code, a period, then up to {MAX_USER_ID_BODY} letters or digits (US.13491208655302741918), or a parent id (US.ENT.11815799212886844830); got {input:?}."
            )))
        }
    }

    /// [`UserId::parse_param`] for the `recipient` field.
    pub fn parse(input: &str) -> Result<UserId, ApiError> {
        Self::parse_param(input, "recipient")
    }

    /// Whether `s` has a BSUID's shape.
    pub fn well_formed(s: &str) -> bool {
        let Some((cc, rest)) = s.split_once('.') else {
            return false;
        };
        let body = rest.strip_prefix("ENT.").unwrap_or(rest);
        cc.len() == 2
            && cc.bytes().all(|b| b.is_ascii_uppercase())
            && !body.is_empty()
            && body.len() <= MAX_USER_ID_BODY
            && body.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// An id from its parts (`DE`, the digits), as the sandbox mints them.
    pub fn from_parts(country: &str, parent: bool, body: &str) -> UserId {
        if parent {
            UserId(format!("{country}.ENT.{body}"))
        } else {
            UserId(format!("{country}.{body}"))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A parent BSUID (`CC.ENT.…`).
    pub fn is_parent(&self) -> bool {
        self.0.get(2..7) == Some(".ENT.")
    }

    /// The country code it starts with.
    pub fn country(&self) -> &str {
        self.0.get(..2).unwrap_or("")
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Top-level domains a username may not end in (`anna.com`): the generic ones and a few
/// common country codes. The platform's list is not published; this one is Mynah's.
const DOMAIN_ENDINGS: &[&str] = &[
    "com", "net", "org", "info", "biz", "io", "co", "app", "dev", "me", "ai", "xyz", "online",
    "shop", "site", "store", "tech", "edu", "gov", "de", "uk", "us", "fr", "es", "it", "nl", "br",
    "in", "ru", "cn", "jp", "mx", "ca", "au",
];

/// Checks a username by the platform's rules (user usernames have the business usernames'
/// format): 3 to 35 characters of `a-z`, `0-9`, `.` and `_`, at least one letter, no leading,
/// trailing or doubled period, not starting with `www`, not ending in a domain (`.com` …).
/// Usernames are case-insensitive: the answer is the lower-case form. The error names the rule.
pub fn validate_username(input: &str) -> Result<String, String> {
    let name = input.trim().trim_start_matches('@').to_ascii_lowercase();
    let len = name.chars().count();
    if !(3..=35).contains(&len) {
        return Err(format!(
            "username {input:?} must be 3 to 35 characters long (it has {len})"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '_'))
    {
        return Err(format!(
            "username {input:?} may only contain letters a-z, digits 0-9, periods and underscores (not {c:?})"
        ));
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(format!(
            "username {input:?} must contain at least one letter"
        ));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(format!(
            "username {input:?} may not start or end with a period"
        ));
    }
    if name.contains("..") {
        return Err(format!(
            "username {input:?} may not contain two periods in a row"
        ));
    }
    if name.starts_with("www") {
        return Err(format!("username {input:?} may not start with www"));
    }
    if let Some((_, tld)) = name.rsplit_once('.')
        && DOMAIN_ENDINGS.contains(&tld)
    {
        return Err(format!(
            "username {input:?} may not end in a domain (.{tld})"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = UserId::parse("DE.1502576394655843").unwrap();
        assert_eq!((id.country(), id.is_parent()), ("DE", false));
        let p = UserId::parse(" US.ENT.11815799212886844830 ").unwrap();
        assert_eq!(
            (p.as_str(), p.is_parent()),
            ("US.ENT.11815799212886844830", true)
        );
        assert!(
            UserId::parse("US.abcDEF123").is_ok(),
            "letters are accepted on input"
        );
        for bad in [
            "",
            "DE",
            "DE.",
            "de.123",
            "D.123",
            "DEU.123",
            "DE.12-3",
            "4915112345678",
        ] {
            let e = UserId::parse(bad).unwrap_err();
            assert_eq!(e.code.code(), 100, "{bad}");
            assert!(e.details.contains("recipient"), "{}", e.details);
        }
        assert!(UserId::parse(&format!("DE.{}", "1".repeat(129))).is_err());
    }

    #[test]
    fn usernames() {
        assert_eq!(validate_username("Anna.K").unwrap(), "anna.k");
        assert_eq!(
            validate_username("@pablo_morales").unwrap(),
            "pablo_morales"
        );
        for (bad, rule) in [
            ("ab", "3 to 35"),
            (&"a".repeat(36), "3 to 35"),
            ("anna-k", "may only contain"),
            ("1234", "at least one letter"),
            (".anna", "start or end with a period"),
            ("anna.", "start or end with a period"),
            ("an..na", "two periods"),
            ("wwwanna", "www"),
            ("anna.com", "domain"),
        ] {
            let e = validate_username(bad).unwrap_err();
            assert!(e.contains(rule), "{bad}: {e}");
        }
    }
}
