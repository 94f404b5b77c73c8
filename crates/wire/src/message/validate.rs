//! Shared validation machinery: field paths, the error wording, string checks and the lenient
//! scalar types the raw request structs are made of.
//!
//! Wording is stable (spec §13 #19): every `details` string starts with `Param <path>` (or, for a
//! missing field, `The parameter <path> is required.`), where `<path>` is the dotted field path as
//! the client sent it, e.g. `interactive.action.sections[1].rows[0].title`.

use crate::error::ApiError;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A field path, built on the stack while validating; rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg,
}

#[derive(Clone, Copy)]
enum Seg {
    Key(&'static str),
    Index(usize),
}

impl Path<'static> {
    /// A top-level field.
    pub(crate) const fn root(key: &'static str) -> Path<'static> {
        Path {
            parent: None,
            seg: Seg::Key(key),
        }
    }
}

impl Path<'_> {
    /// A field of this object.
    pub(crate) fn key(&self, key: &'static str) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    /// An element of this array.
    pub(crate) fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
            match self.seg {
                Seg::Key(k) => write!(f, ".{k}"),
                Seg::Index(i) => write!(f, "[{i}]"),
            }
        } else {
            match self.seg {
                Seg::Key(k) => f.write_str(k),
                Seg::Index(i) => write!(f, "[{i}]"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error constructors. 131008: missing; 100: type, length, enum, count, placement; 131009: value.

/// 131008: the field is absent, `null` or blank.
pub(crate) fn missing(p: &Path<'_>) -> ApiError {
    ApiError::missing(&p.to_string())
}

/// 131008 for "one of two fields" (`image.id` / `image.link`).
pub(crate) fn missing_either(p: &Path<'_>, a: &str, b: &str) -> ApiError {
    ApiError::missing(&format!("{p}.{a} or {p}.{b}"))
}

/// 100: a string over its length limit.
pub(crate) fn too_long(p: &Path<'_>, max: usize) -> ApiError {
    ApiError::invalid_param(format!("Param {p} must be at most {max} characters long."))
}

/// 100: a value outside its enumeration.
pub(crate) fn bad_enum(p: &Path<'_>, got: &str, allowed: &[&str]) -> ApiError {
    ApiError::invalid_param(format!(
        "Param {p} must be one of {{{}}}, got {got:?}.",
        allowed.join(", ")
    ))
}

/// 100: an array with too few or too many items.
pub(crate) fn bad_count(p: &Path<'_>, min: usize, max: usize, got: usize) -> ApiError {
    if got < min {
        ApiError::invalid_param(format!(
            "Param {p} must contain at least {min} item{}, got {got}.",
            if min == 1 { "" } else { "s" }
        ))
    } else {
        ApiError::invalid_param(format!(
            "Param {p} must contain at most {max} items, got {got}."
        ))
    }
}

/// 100: a numeric value outside its range.
pub(crate) fn out_of_range(p: &Path<'_>, range: &str) -> ApiError {
    ApiError::invalid_param(format!("Param {p} must be {range}."))
}

/// 100: a field that this message (sub-)type does not take.
pub(crate) fn not_allowed(p: &Path<'_>, context: &str) -> ApiError {
    ApiError::invalid_param(format!("Param {p} is not allowed {context}."))
}

/// 100: a value that must be unique appears twice.
pub(crate) fn duplicate(p: &Path<'_>, value: &str) -> ApiError {
    ApiError::invalid_param(format!(
        "Param {p} must be unique, {value:?} appears more than once."
    ))
}

/// 100 with free wording after the path.
pub(crate) fn invalid_param(p: &Path<'_>, why: &str) -> ApiError {
    ApiError::invalid_param(format!("Param {p} {why}."))
}

/// 131009: the value is well-formed JSON of the right type but not acceptable.
pub(crate) fn invalid_value(p: &Path<'_>, why: &str) -> ApiError {
    ApiError::invalid_value(format!("Param {p} {why}."))
}

// ---------------------------------------------------------------------------------------------
// String checks.

/// True when `s` has more than `max` characters (Unicode scalar values).
pub(crate) fn exceeds(s: &str, max: usize) -> bool {
    // Byte length bounds the character count from above: skip counting short strings.
    s.len() > max && s.chars().count() > max
}

/// True for an empty or whitespace-only string.
pub(crate) fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// A required string: absent, `null` or blank is 131008; more than `max` characters is 100.
pub(crate) fn required(v: Option<String>, p: &Path<'_>, max: usize) -> Result<String, ApiError> {
    match v {
        Some(s) if !is_blank(&s) => {
            check_len(&s, p, max)?;
            Ok(s)
        }
        _ => Err(missing(p)),
    }
}

/// An optional string: more than `max` characters is 100.
pub(crate) fn optional(
    v: Option<String>,
    p: &Path<'_>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    if let Some(s) = &v {
        check_len(s, p, max)?;
    }
    Ok(v)
}

/// 100 when `s` is longer than `max` characters.
pub(crate) fn check_len(s: &str, p: &Path<'_>, max: usize) -> Result<(), ApiError> {
    if exceeds(s, max) {
        Err(too_long(p, max))
    } else {
        Ok(())
    }
}

/// Matches `got` case-insensitively against a table of `(wire name, value)`; 100 otherwise.
pub(crate) fn one_of<T: Copy>(
    got: &str,
    p: &Path<'_>,
    table: &[(&'static str, T)],
) -> Result<T, ApiError> {
    let trimmed = got.trim();
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            bad_enum(p, got, &names)
        })
}

/// True for an absolute `http://` or `https://` URL with something after the scheme and no
/// whitespace.
pub(crate) fn is_http_url(s: &str) -> bool {
    let rest = strip_prefix_ci(s, "https://").or_else(|| strip_prefix_ci(s, "http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Requires an http(s) URL: absent or blank is 131008, anything else that is not one is 131009.
pub(crate) fn required_url(v: Option<String>, p: &Path<'_>) -> Result<String, ApiError> {
    let url = required(v, p, usize::MAX)?;
    if is_http_url(url.trim()) {
        Ok(url)
    } else {
        Err(invalid_value(p, "must be a valid http or https URL"))
    }
}

/// A small index (`index`, `card_index`) in `0..=max`, given as a number or a numeric string.
pub(crate) fn small_index(v: Option<StrNum>, p: &Path<'_>, max: u8) -> Result<u8, ApiError> {
    let raw = v.ok_or_else(|| missing(p))?;
    match raw.0.trim().parse::<u8>() {
        Ok(i) if i <= max => Ok(i),
        _ => Err(out_of_range(p, &format!("an integer between 0 and {max}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient scalars. Each accepts the shapes real client libraries send.

/// A string that may also arrive as a JSON number (`"index": 0`, `"text": 482913`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StrNum(pub String);

impl StrNum {
    /// The string, or `None` when it is blank (an empty id counts as absent).
    pub(crate) fn non_blank(v: Option<StrNum>) -> Option<String> {
        v.map(|s| s.0).filter(|s| !is_blank(s))
    }
}

impl<'de> Deserialize<'de> for StrNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrNum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrNum, E> {
                Ok(StrNum(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<StrNum, E> {
                Ok(StrNum(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrNum, E> {
                Ok(StrNum(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrNum, E> {
                Ok(StrNum(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrNum, E> {
                Ok(StrNum(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number that may also arrive as a numeric string (`"latitude": "52.52"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Number(n)),
                    _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer that may also arrive as an integer string (`"amount_1000": "100990"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Integer(pub i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
                Ok(Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
                i64::try_from(v)
                    .map(Integer)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer, E> {
                // 1e3 and 100990.0 are integers written as floats; 2^53 bounds exactness.
                if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
                    Ok(Integer(v as i64))
                } else {
                    Err(E::invalid_value(Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Integer, E> {
                v.trim()
                    .parse::<i64>()
                    .map(Integer)
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean that may also arrive as `"true"` / `"false"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                if v.trim().eq_ignore_ascii_case("true") {
                    Ok(Flag(true))
                } else if v.trim().eq_ignore_ascii_case("false") {
                    Ok(Flag(false))
                } else {
                    Err(E::invalid_value(Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A struct that must arrive as a JSON object. serde's derived struct deserialisers also accept
/// arrays (fields by position); the platform does not, so raw structs go through this.
pub(crate) struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// `deserialize_with` for an optional object field (`#[serde(default, deserialize_with = "obj")]`).
pub(crate) fn obj<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Obj<T>>::deserialize(d)?.map(|o| o.0))
}

/// `deserialize_with` for an optional array of objects.
pub(crate) fn objs<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(Option::<Vec<Obj<T>>>::deserialize(d)?.map(|v| v.into_iter().map(|o| o.0).collect()))
}

// ---------------------------------------------------------------------------------------------
// Decoding.

/// Deserialises a body straight from bytes, mapping serde's errors to the platform's codes:
/// malformed JSON or a non-object body is 100 "not valid JSON"; a wrong type anywhere is 100
/// naming the field path.
pub(crate) fn decode<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    // The fast path parses once; only a body that fails is parsed again with path tracking, to
    // name the offending field (the same input fails at the same place).
    let mut de = serde_json::Deserializer::from_slice(body);
    match Obj::<T>::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| not_json(&e))?;
            Ok(value.0)
        }
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let value: Obj<T> = serde_path_to_error::deserialize(&mut de).map_err(decode_error)?;
            de.end().map_err(|e| not_json(&e))?;
            Ok(value.0)
        }
    }
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::invalid_param(format!(
        "The request body is not valid JSON: {}.",
        strip_position(&e.to_string())
    ))
}

fn decode_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let inner = err.inner();
    match inner.classify() {
        Category::Io | Category::Syntax | Category::Eof => not_json(inner),
        Category::Data => {
            let msg = plain_words(strip_position(&inner.to_string()));
            let msg = msg.as_str();
            if err.path().iter().next().is_none() {
                if msg.starts_with("invalid type") {
                    ApiError::invalid_param(
                        "The request body is not valid JSON: expected a JSON object.",
                    )
                } else {
                    ApiError::invalid_param(format!("The request body is not valid: {msg}."))
                }
            } else {
                let path = err.path();
                if let Some(rest) = msg.strip_prefix("invalid type: ") {
                    ApiError::invalid_param(format!("Param {path} has an invalid type: {rest}."))
                } else if let Some(rest) = msg.strip_prefix("invalid value: ") {
                    ApiError::invalid_param(format!("Param {path} has an invalid value: {rest}."))
                } else {
                    ApiError::invalid_param(format!("Param {path} is not valid: {msg}."))
                }
            }
        }
    }
}

/// serde's vocabulary (`map`, `sequence`) in JSON's words (`object`, `array`), only where serde
/// places it: right after `invalid type: ` and at the end after `expected `.
fn plain_words(msg: &str) -> String {
    let mut out = msg.to_owned();
    for (from, to) in [
        ("invalid type: map,", "invalid type: object,"),
        ("invalid type: sequence,", "invalid type: array,"),
    ] {
        if out.starts_with(from) {
            out.replace_range(..from.len(), to);
        }
    }
    for (from, to) in [
        ("expected a map", "expected an object"),
        ("expected a sequence", "expected an array"),
    ] {
        if out.ends_with(from) {
            let at = out.len() - from.len();
            out.replace_range(at.., to);
        }
    }
    out
}

/// Drops serde_json's ` at line L column C` suffix.
fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_dotted_with_indices() {
        let root = Path::root("interactive");
        let action = root.key("action");
        let sections = action.key("sections");
        let s1 = sections.index(1);
        let rows = s1.key("rows");
        let r0 = rows.index(0);
        let title = r0.key("title");
        assert_eq!(
            title.to_string(),
            "interactive.action.sections[1].rows[0].title"
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(!exceeds("ääää", 4));
        assert!(exceeds("ääääa", 4));
        assert!(!exceeds("", 0));
    }

    #[test]
    fn urls() {
        assert!(is_http_url("https://example.com/x"));
        assert!(is_http_url("HTTP://example.com"));
        assert!(!is_http_url("ftp://example.com"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("https:// example.com"));
        assert!(!is_http_url("example.com"));
        assert!(!is_http_url("ht"));
    }

    #[test]
    fn lenient_scalars() {
        let n: Number = serde_json::from_str("\"52.5\"").unwrap();
        assert_eq!(n.0, 52.5);
        assert!(serde_json::from_str::<Number>("\"NaN\"").is_err());
        assert!(serde_json::from_str::<Number>("\"north\"").is_err());
        let i: Integer = serde_json::from_str("\"100990\"").unwrap();
        assert_eq!(i.0, 100990);
        let i: Integer = serde_json::from_str("1000.0").unwrap();
        assert_eq!(i.0, 1000);
        assert!(serde_json::from_str::<Integer>("1.5").is_err());
        let s: StrNum = serde_json::from_str("7").unwrap();
        assert_eq!(s.0, "7");
        let f: Flag = serde_json::from_str("\"TRUE\"").unwrap();
        assert!(f.0);
        assert!(serde_json::from_str::<Flag>("1").is_err());
    }

    #[test]
    fn small_indices() {
        let p = Path::root("index");
        assert_eq!(small_index(Some(StrNum("3".into())), &p, 9).unwrap(), 3);
        assert_eq!(small_index(Some(StrNum(" 0 ".into())), &p, 9).unwrap(), 0);
        assert!(small_index(Some(StrNum("10".into())), &p, 9).is_err());
        assert!(small_index(Some(StrNum("-1".into())), &p, 9).is_err());
        assert!(small_index(Some(StrNum("1.5".into())), &p, 9).is_err());
        assert!(small_index(None, &p, 9).is_err());
    }
}
