//! The `Origin` allow-list: the defence against cross-site WebSocket hijacking.
//!
//! Browsers send cookies and other ambient credentials with a WebSocket upgrade to any
//! site, from any page, and the same-origin policy does not apply to WebSockets: the only
//! thing that tells a server which page opened the socket is the `Origin` header, which a
//! page cannot forge. The reference has no origin check (spec §18 C4), and its "CORS"
//! option does not apply to WebSockets.
//!
//! The rule, with an allow-list configured:
//!
//! - An `Origin` header must equal one of the entries, ignoring ASCII case (scheme and host
//!   are case-insensitive; a serialized origin has nothing else that has case) and the
//!   spaces or tabs around the header value. Nothing else is normalized: browsers send the
//!   origin as `scheme://host[:port]`, without a path and without a default port, so the
//!   entries are written the same way (`https://game.example.com`,
//!   `http://localhost:8080`). No wildcards: list each origin.
//! - A missing `Origin` passes. Browsers always send it on a WebSocket upgrade, so a
//!   request without one did not come from a browser page and carries no browser's
//!   ambient credentials, which is all this check protects; non-browser clients (game
//!   clients, the Dart and Rust clients, servers) usually send none. Clients that are not
//!   browsers must be kept out by authentication, not by this header, which they can set
//!   to anything.
//! - `Origin: null` (sandboxed iframes, `file:` pages, some redirects) passes only if the
//!   list holds the literal entry `null`. Any page can produce it, so allowing it is
//!   nearly the same as having no list.
//! - An empty list therefore refuses every browser and admits every other client.
//!
//! Configured entries are lowercased, trimmed, and lose one trailing `/` (a common typo);
//! an entry that still does not look like an origin is kept (it can only fail to match) and
//! logged as a warning.

/// A normalized origin allow-list (see the module docs for the rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowedOrigins {
    /// Lowercase, trimmed, without a trailing `/`.
    entries: Box<[Box<str>]>,
}

impl AllowedOrigins {
    /// The list, normalized.
    pub(crate) fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let entries = entries
            .iter()
            .map(|entry| {
                let raw = entry.as_ref();
                let trimmed = raw.trim();
                let entry = trimmed.strip_suffix('/').unwrap_or(trimmed);
                let entry = entry.to_ascii_lowercase();
                if !looks_like_origin(&entry) {
                    tracing::warn!(
                        entry = raw,
                        "allowed origin is not of the form scheme://host[:port] (or null): \
                         it will match no browser"
                    );
                }
                entry.into_boxed_str()
            })
            .collect();
        Self { entries }
    }

    /// Whether a request with this `Origin` header value (or none) may upgrade.
    pub(crate) fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = origin.trim_matches([' ', '\t']);
        self.entries
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(origin))
    }
}

/// `null`, or `scheme://authority` with no path, query or fragment.
fn looks_like_origin(entry: &str) -> bool {
    if entry == "null" {
        return true;
    }
    match entry.split_once("://") {
        Some((scheme, authority)) => {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !authority.is_empty()
                && !authority.contains(['/', '?', '#', '*', ' '])
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_matching() {
        let list = AllowedOrigins::new(&[
            "https://game.example.com",
            "http://localhost:8080/",
            " HTTPS://Admin.Example.com ",
        ]);
        let cases: &[(Option<&str>, bool, &str)] = &[
            (None, true, "no Origin: not a browser"),
            (Some("https://game.example.com"), true, "exact"),
            (Some("https://Game.Example.COM"), true, "host case"),
            (Some("HTTPS://game.example.com"), true, "scheme case"),
            (
                Some(" https://game.example.com\t"),
                true,
                "header whitespace",
            ),
            (Some("https://admin.example.com"), true, "entry normalized"),
            (
                Some("http://localhost:8080"),
                true,
                "entry's trailing slash",
            ),
            (Some("http://game.example.com"), false, "other scheme"),
            (Some("https://game.example.com:8443"), false, "other port"),
            (Some("http://localhost"), false, "port missing"),
            (Some("https://evil.com"), false, "other site"),
            (Some("https://game.example.com.evil.com"), false, "suffix"),
            (Some("https://evilgame.example.com"), false, "prefix"),
            (Some("https://sub.game.example.com"), false, "subdomain"),
            (Some("https://game.example.com/"), false, "path"),
            (Some("null"), false, "null without the entry"),
            (Some(""), false, "empty"),
            (Some("https://game.example.co"), false, "truncated"),
        ];
        for &(origin, allowed, what) in cases {
            assert_eq!(list.allows(origin), allowed, "{what}: {origin:?}");
        }
    }

    #[test]
    fn null_needs_its_own_entry() {
        let list = AllowedOrigins::new(&["null".to_owned()]);
        assert!(list.allows(Some("null")));
        assert!(list.allows(None));
        assert!(!list.allows(Some("https://example.com")));
    }

    #[test]
    fn empty_list_refuses_every_browser() {
        let list = AllowedOrigins::new::<&str>(&[]);
        assert!(list.allows(None));
        assert!(!list.allows(Some("https://example.com")));
        assert!(!list.allows(Some("null")));
    }

    #[test]
    fn what_looks_like_an_origin() {
        for good in [
            "null",
            "https://a.example",
            "http://localhost:8080",
            "http://[::1]:9",
        ] {
            assert!(looks_like_origin(good), "{good}");
        }
        for bad in [
            "*",
            "example.com",
            "https://",
            "://x",
            "https://x/y",
            "https://*.x.com",
        ] {
            assert!(!looks_like_origin(bad), "{bad}");
        }
    }
}
