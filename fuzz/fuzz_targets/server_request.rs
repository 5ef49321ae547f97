//! The server's request decoder and per-record validation on arbitrary bytes:
//! `decode_batch_request_raw` (what the server decodes a batch with) returns a typed
//! `DecodeError`, never panics, and for every decoded record the server's
//! `validate(&record, "device-0001")` returns `Ok` or a reason, never panics. Reasons start
//! with the field they name; malformed-body messages carry only category and position.
//!
//! `validate` is private to the server crate (`mod validate;` in `server/src/lib.rs`), so
//! this target compiles that very file into itself with `#[path]`: the code fuzzed is the
//! server's, byte for byte, without changing the server's public API.
#![no_main]

use crewsafe_protocol::{decode_batch_request_raw, DecodeError, PROTOCOL_VERSION};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../server/src/validate.rs"]
mod validate;

const DEVICE: &str = "device-0001";
const FIELDS: &[&str] = &["id", "lane", "parent_id", "device_time", "content"];

fuzz_target!(|data: &[u8]| {
    let req = match decode_batch_request_raw(data) {
        Ok(req) => req,
        Err(DecodeError::Malformed(msg)) => {
            assert!(msg.contains(" error at line "), "{msg}");
            return;
        }
        Err(DecodeError::Version(v)) => {
            assert_ne!(v, PROTOCOL_VERSION);
            return;
        }
    };
    assert_eq!(req.protocol, PROTOCOL_VERSION);
    for record in &req.records {
        match validate::validate(record, DEVICE) {
            Ok(()) => {
                assert!(validate::is_uuid(&record.id));
                assert_eq!(record.lane, record.kind.lane());
                assert_eq!(record.parent_id.is_some(), record.kind.needs_parent());
            }
            Err(reason) => {
                let field = reason.split([':', '.', '[']).next().unwrap_or_default();
                assert!(FIELDS.contains(&field), "reason names no field: {reason}");
            }
        }
    }
});
