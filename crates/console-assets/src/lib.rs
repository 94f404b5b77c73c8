//! The assets both consoles share — the sandbox's under `/_mynah/ui/` and the gateway's — embedded
//! in the binary with `include_bytes!`: one stylesheet and the browser modules every page imports
//! (`console.js`: requests, live updates, forms, tables; `chat.js`: WhatsApp bubbles). A plane
//! serves them from its own router; neither plane depends on the other for them.
//!
//! Each page of a plane is its own HTML and module (the sandbox keeps its in `crates/sandbox/ui`)
//! and serves those beside these with [`Asset`]'s content type, entity tag and
//! [`CONTENT_SECURITY_POLICY`]: no inline script or style, nothing from another origin.

/// An embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// File name, as requested under the console's `assets/` path.
    pub name: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// `Content-Type`.
    pub content_type: &'static str,
    /// A hash of the bytes, for `ETag` (quoted hex) and cache revalidation.
    pub hash: u64,
}

impl Asset {
    /// An asset; the hash is computed at compile time.
    pub const fn new(
        name: &'static str,
        bytes: &'static [u8],
        content_type: &'static str,
    ) -> Asset {
        Asset {
            name,
            bytes,
            content_type,
            hash: fnv1a(bytes),
        }
    }

    /// The `ETag` value: the hash in quotes.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// Whether a request's `If-None-Match` names this version (the answer is then `304`).
    pub fn fresh(&self, if_none_match: Option<&str>) -> bool {
        let etag = self.etag();
        if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    }
}

/// The headers every console response carries besides its type and entity tag: the
/// [`CONTENT_SECURITY_POLICY`], no type sniffing, no referrer, no framing, and revalidation on
/// every load (so a new binary's assets are picked up at once).
pub const HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
];

/// `Content-Type` of JavaScript modules.
pub const JS: &str = "text/javascript; charset=utf-8";
/// `Content-Type` of stylesheets.
pub const CSS: &str = "text/css; charset=utf-8";
/// `Content-Type` of pages.
pub const HTML: &str = "text/html; charset=utf-8";
/// `Content-Type` of SVG images.
pub const SVG: &str = "image/svg+xml";

/// The policy every console page is served with: scripts, styles, images and requests from the
/// page's own origin only (images also as `data:` URLs); no frames, no plugins, forms only to
/// the origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The shared assets.
pub const SHARED: &[Asset] = &[
    Asset::new("console.css", include_bytes!("../assets/console.css"), CSS),
    Asset::new("console.js", include_bytes!("../assets/console.js"), JS),
    Asset::new("chat.js", include_bytes!("../assets/chat.js"), JS),
    Asset::new("icon.svg", include_bytes!("../assets/icon.svg"), SVG),
];

/// A shared asset by file name.
pub fn shared(name: &str) -> Option<&'static Asset> {
    SHARED.iter().find(|a| a.name == name)
}

/// FNV-1a, 64 bits: a cheap stable hash for entity tags (not a security property).
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shared_asset_is_there_with_its_type() {
        for a in SHARED {
            assert!(!a.bytes.is_empty(), "{} is empty", a.name);
            assert_eq!(shared(a.name).map(|x| x.name), Some(a.name));
        }
        assert!(shared("../Cargo.toml").is_none());
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let a = &SHARED[0];
        assert!(a.fresh(Some(&format!("\"x\", {}", a.etag()))));
        assert!(!a.fresh(Some("\"x\"")) && !a.fresh(None));
    }

    #[test]
    fn the_modules_load_nothing_from_elsewhere() {
        for a in SHARED {
            let text = std::str::from_utf8(a.bytes).expect("text");
            for bad in ["http://", "https://", "//cdn", "@import url("] {
                assert!(
                    !text.contains(bad) || a.name == "icon.svg",
                    "{} refers to {bad}",
                    a.name
                );
            }
        }
    }
}
