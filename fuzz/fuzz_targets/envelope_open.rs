//! Opening a stored envelope from arbitrary bytes (fixed key, fixed slot): always a typed
//! `CryptoError`, never a panic, and the error agrees with what `split_envelope` says about
//! the header. Only a genuine envelope (as in the seed corpus) may open.
#![no_main]

use std::sync::OnceLock;

use crewsafe::internals::{split_envelope, CryptoError, DataKey, Slot, ENVELOPE_V1};
use libfuzzer_sys::fuzz_target;

/// The key the seed envelopes in `fuzz/seeds/envelope_open` were sealed with.
const KEY: [u8; 32] = *b"crewsafe-fuzz-fixed-key-32-bytes";
const SLOT: Slot<'static> = Slot {
    table: "records",
    column: "payload",
    id: "6f1c2a0e-3c51-4c39-a4c5-0f0c2b6d9e11",
};
/// Version byte, 96-bit nonce, 128-bit tag.
const OVERHEAD: usize = 1 + 12 + 16;

fn key() -> &'static DataKey {
    static KEY_CELL: OnceLock<DataKey> = OnceLock::new();
    KEY_CELL.get_or_init(|| DataKey::from_bytes(&KEY).expect("32-byte key"))
}

fuzz_target!(|data: &[u8]| {
    let split = split_envelope(data);
    match &split {
        Ok((version, nonce, body)) => {
            assert_eq!(*version, ENVELOPE_V1);
            assert!(data.len() >= OVERHEAD);
            assert_eq!(&nonce[..], &data[1..13]);
            assert_eq!(body.len(), data.len() - 13);
        }
        Err(CryptoError::Truncated) => assert!(data.len() < OVERHEAD),
        Err(CryptoError::UnknownVersion(v)) => {
            assert!(data.len() >= OVERHEAD);
            assert_eq!(*v, data[0]);
            assert_ne!(*v, ENVELOPE_V1);
        }
        Err(other) => panic!("split_envelope gave an unexpected error: {other:?}"),
    }
    match (key().open(SLOT, data), split) {
        (Ok(plain), Ok(_)) => assert_eq!(plain.len(), data.len() - OVERHEAD),
        (Ok(_), Err(e)) => panic!("opened although the header is bad: {e:?}"),
        (Err(e), Err(header)) => assert_eq!(e, header),
        (Err(e), Ok(_)) => assert_eq!(e, CryptoError::Unauthentic),
    }
});
