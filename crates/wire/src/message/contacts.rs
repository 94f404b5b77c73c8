//! `type: "contacts"` (spec §2.5): contact cards.
//!
//! Lenient like the platform: `null` and empty arrays for every optional part, `type` labels kept
//! as sent (`HOME`, `WORK`, `CELL` …).

use super::validate::{Path, bad_count, invalid_value, missing, obj, objs, required};
use crate::error::ApiError;
use serde::{Deserialize, Serialize};

/// Most contact cards in one message (Meta's OpenAPI schema; a soft limit, spec §13 #12).
pub const MAX_CONTACTS: usize = 5;

/// One contact card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    /// The name; `formatted_name` is required.
    pub name: ContactName,
    /// Phone numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<ContactPhone>,
    /// E-mail addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ContactEmail>,
    /// Postal addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<ContactAddress>,
    /// Organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<ContactOrg>,
    /// Web addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<ContactUrl>,
    /// Birthday, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
}

/// A contact's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactName {
    /// Full name as displayed (required).
    pub formatted_name: String,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Middle name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Name suffix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Name prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A phone number of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(expecting = "an object")]
pub struct ContactPhone {
    /// The number as displayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Label: `HOME`, `WORK`, `CELL`, `MAIN`, `IPHONE` …
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The WhatsApp id, which adds a "Message" button to the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
}

/// An e-mail address of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(expecting = "an object")]
pub struct ContactEmail {
    /// The address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Label: `HOME` or `WORK`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A postal address of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(expecting = "an object")]
pub struct ContactAddress {
    /// Street and number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// City.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// Country name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// ISO 3166 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Label: `HOME` or `WORK`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A contact's organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(expecting = "an object")]
pub struct ContactOrg {
    /// Company name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Department.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Job title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A web address of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(expecting = "an object")]
pub struct ContactUrl {
    /// The URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Label: `HOME` or `WORK`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The name as sent (`formatted_name` may be missing or null).
#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct RawName {
    formatted_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    middle_name: Option<String>,
    suffix: Option<String>,
    prefix: Option<String>,
}

/// One contact card as sent.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(crate) struct RawContact {
    #[serde(default, deserialize_with = "obj")]
    name: Option<RawName>,
    #[serde(default, deserialize_with = "objs")]
    phones: Option<Vec<ContactPhone>>,
    #[serde(default, deserialize_with = "objs")]
    emails: Option<Vec<ContactEmail>>,
    #[serde(default, deserialize_with = "objs")]
    addresses: Option<Vec<ContactAddress>>,
    #[serde(default, deserialize_with = "obj")]
    org: Option<ContactOrg>,
    #[serde(default, deserialize_with = "objs")]
    urls: Option<Vec<ContactUrl>>,
    birthday: Option<String>,
}

/// Validates the `contacts` array: 1 to [`MAX_CONTACTS`] cards.
pub(crate) fn validate(raw: Vec<RawContact>, p: &Path<'_>) -> Result<Vec<Contact>, ApiError> {
    if raw.is_empty() || raw.len() > MAX_CONTACTS {
        return Err(bad_count(p, 1, MAX_CONTACTS, raw.len()));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let cp = p.index(i);
        out.push(c.validate(&cp)?);
    }
    Ok(out)
}

impl RawContact {
    fn validate(self, p: &Path<'_>) -> Result<Contact, ApiError> {
        let name_p = p.key("name");
        let raw_name = self.name.ok_or_else(|| missing(&name_p))?;
        let formatted_name = required(
            raw_name.formatted_name,
            &name_p.key("formatted_name"),
            usize::MAX,
        )?;
        let name = ContactName {
            formatted_name,
            first_name: raw_name.first_name,
            last_name: raw_name.last_name,
            middle_name: raw_name.middle_name,
            suffix: raw_name.suffix,
            prefix: raw_name.prefix,
        };
        let birthday = match self.birthday {
            Some(b) if b.trim().is_empty() => None,
            Some(b) => {
                if !is_iso_date(b.trim()) {
                    return Err(invalid_value(
                        &p.key("birthday"),
                        "must be a date in YYYY-MM-DD format",
                    ));
                }
                Some(b)
            }
            None => None,
        };
        Ok(Contact {
            name,
            phones: self.phones.unwrap_or_default(),
            emails: self.emails.unwrap_or_default(),
            addresses: self.addresses.unwrap_or_default(),
            org: self.org,
            urls: self.urls.unwrap_or_default(),
            birthday,
        })
    }
}

/// A calendar date `YYYY-MM-DD` (leap years honoured).
pub(crate) fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

#[cfg(test)]
mod tests {
    use super::is_iso_date;

    #[test]
    fn dates() {
        assert!(is_iso_date("1985-04-23"));
        assert!(is_iso_date("2000-02-29"));
        assert!(!is_iso_date("1900-02-29"));
        assert!(!is_iso_date("1985-13-01"));
        assert!(!is_iso_date("1985-04-31"));
        assert!(!is_iso_date("85-04-23"));
        assert!(!is_iso_date("1985/04/23"));
        assert!(!is_iso_date("1985-4-230"));
        assert!(!is_iso_date("+985-04-23"));
    }
}
