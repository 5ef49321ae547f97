//! The dispatcher console (`GET /console`): one HTML page with its stylesheet and script
//! (`server/console/`) compiled into the binary and inlined into the page, so the console
//! needs no CDN, no internet and no second request.
//!
//! The page itself needs no token: it asks the dispatcher for one, keeps it in
//! `sessionStorage` and sends it as `Authorization: Bearer` on every API call (the event
//! stream `GET /v1/dispatch/events`, acknowledge/resolve, the report list and attachment
//! downloads, which it turns into `blob:` URLs for images and players, so the token never goes
//! into a URL). Its Content-Security-Policy allows the inlined script and stylesheet by their
//! SHA-256 only, network access to this server only, and images and media from this server or
//! the page's own `blob:` URLs: no other script, style, frame or form target can run or load.

use std::sync::OnceLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

const HTML: &str = include_str!("../../console/console.html");
const CSS: &str = include_str!("../../console/console.css");
const JS: &str = include_str!("../../console/console.js");

/// Where `console.html` takes the stylesheet and the script.
const CSS_SLOT: &str = "/*CONSOLE_CSS*/";
const JS_SLOT: &str = "/*CONSOLE_JS*/";

/// The assembled page and its Content-Security-Policy, built once.
struct Page {
    html: String,
    csp: HeaderValue,
}

fn csp_hash(source: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, source.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let html = HTML.replacen(CSS_SLOT, CSS, 1).replacen(JS_SLOT, JS, 1);
        let csp = format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src 'self' data: blob:; media-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            csp_hash(JS),
            csp_hash(CSS)
        );
        Page {
            html,
            // Built from base64 and fixed ASCII only: always a valid header value.
            csp: HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("default-src 'none'")),
        }
    })
}

/// `GET /console`: the page.
pub(super) async fn page_handler() -> Response {
    let page = page();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_SECURITY_POLICY, page.csp.clone()),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        page.html.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_inlined_and_nothing_is_fetched_from_elsewhere() {
        let page = page();
        assert!(HTML.contains(CSS_SLOT) && HTML.contains(JS_SLOT));
        assert!(page.html.contains(JS) && page.html.contains(CSS));
        assert!(!page.html.contains(CSS_SLOT) && !page.html.contains(JS_SLOT));
        for outside in ["http://", "https://", "//cdn", "@import", "src=\""] {
            let hits: Vec<_> = page.html.match_indices(outside).collect();
            // The only absolute URL is the map link the script builds (a plain link).
            assert!(
                hits.iter()
                    .all(|(i, _)| page.html[*i..].starts_with("https://www.openstreetmap.org/")),
                "{outside} in the console page"
            );
        }
        let csp = page.csp.to_str().unwrap();
        assert!(
            csp.contains(&csp_hash(JS)) && csp.contains(&csp_hash(CSS)),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}
