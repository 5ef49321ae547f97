//! `parse_retry_after` on arbitrary UTF-8 and an arbitrary "now": never panics, never
//! returns more than a day, and agrees with a plain reading of delta-seconds.
#![no_main]

use chrono::{DateTime, Utc};
use crewsafe_protocol::parse_retry_after;
use libfuzzer_sys::fuzz_target;

const CAP: u64 = 24 * 3600;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes (if any) pick "now" anywhere in chrono's range; the rest is the value.
    let (now, rest) = match data.split_first_chunk::<8>() {
        Some((secs, rest)) if data.len() > 8 && data[8] == b'@' => {
            let secs = i64::from_le_bytes(*secs) % 8_000_000_000_000;
            let now = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_else(Utc::now);
            (now, &rest[1..])
        }
        _ => (
            DateTime::parse_from_rfc3339("2026-11-25T08:00:00Z")
                .expect("fixed now")
                .with_timezone(&Utc),
            data,
        ),
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let got = parse_retry_after(value, now);
    if let Some(secs) = got {
        assert!(secs <= CAP, "{secs} exceeds the cap");
    }
    let t = value.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let expected = t.parse::<u64>().map_or(CAP, |n| n.min(CAP));
        assert_eq!(got, Some(expected), "delta-seconds {t:?}");
    }
});
