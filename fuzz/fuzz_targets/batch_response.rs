//! The phone's decoders of server answers on arbitrary bytes: `decode_batch_response` and
//! `decode_sos_status_response` return a typed `DecodeError`, never panic; what decodes
//! re-encodes to JSON that decodes to the same value; error messages never quote the body.
#![no_main]

use crewsafe_protocol::{decode_batch_response, decode_sos_status_response, DecodeError};
use libfuzzer_sys::fuzz_target;

fn check_error(e: &DecodeError) {
    match e {
        DecodeError::Malformed(msg) => assert!(
            msg.ends_with(|c: char| c.is_ascii_digit()) && msg.contains(" error at line "),
            "a malformed message carries only category and position: {msg}"
        ),
        DecodeError::Version(v) => panic!("answers carry no protocol version, got {v}"),
    }
}

fuzz_target!(|data: &[u8]| {
    match decode_batch_response(data) {
        Ok(r) => {
            let again = serde_json::to_vec(&r).expect("encode");
            assert_eq!(decode_batch_response(&again).expect("re-decode"), r);
        }
        Err(e) => check_error(&e),
    }
    match decode_sos_status_response(data) {
        Ok(r) => {
            let again = serde_json::to_vec(&r).expect("encode");
            assert_eq!(decode_sos_status_response(&again).expect("re-decode"), r);
        }
        Err(e) => check_error(&e),
    }
});
