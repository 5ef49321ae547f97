//! What the dispatcher lists share in their query strings: the page size, the opaque cursor
//! (a versioned text in URL-safe base64, so that its format may change) and the receive-time
//! window (`since` inclusive, `until` exclusive). A value that cannot be read is refused with
//! a 400 whose message names the parameter.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::error::ApiError;

/// `limit`: `default` when absent, else a whole number from 1 to `max`.
pub(super) fn limit(value: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::malformed(format!("limit: a whole number from 1 to {max}"))),
    }
}

/// A cursor holding `body` under the version `prefix` (e.g. `a1:`).
pub(super) fn encode_cursor(prefix: &str, body: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{body}"))
}

/// `cursor`, if given, read back by `read` from the body [`encode_cursor`] put under
/// `prefix`; anything else is refused.
pub(super) fn cursor<T>(
    value: Option<&str>,
    prefix: &str,
    read: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = URL_SAFE_NO_PAD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    text.as_deref()
        .and_then(|t| t.strip_prefix(prefix))
        .and_then(read)
        .map(Some)
        .ok_or_else(|| {
            ApiError::malformed("cursor: not one this server gave (pass next_cursor as is)")
        })
}

/// The receive-time window: `since` and `until` as RFC 3339 times, `until` not before `since`.
pub(super) type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Reads `since` and `until`.
pub(super) fn window(since: Option<&str>, until: Option<&str>) -> Result<Window, ApiError> {
    let (since, until) = (time("since", since)?, time("until", until)?);
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            return Err(ApiError::malformed("until: not before since"));
        }
    }
    Ok((since, until))
}

fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::malformed(format!(
                        "{name}: an RFC 3339 time, e.g. 2026-11-25T08:00:00Z (percent-encode '+')"
                    ))
                })
        })
        .transpose()
}
