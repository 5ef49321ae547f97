//! Sealing of everything a person wrote: AES-256-GCM (ring) under the host's 32-byte data key.
//!
//! Envelope layout (version 1): `version (1 byte) | nonce (12 bytes) | ciphertext | tag (16)`.
//! Nonces follow TLS 1.3's construction: each [`DataKey`] value draws a random 96-bit base
//! when it is built, and a seal's nonce is that base XOR a 64-bit count of the seals it made.
//! Within one value nonces never repeat; between two values of the same key (a reopened
//! store, another process) they collide only as rarely as fully random nonces would (at most
//! `n1 * n2 / 2^96` for values that sealed `n1` and `n2` times). It saves asking the system
//! for randomness at every seal, one of the few costs an SOS save adds to the disk write.
//! Opening reads the nonce from the envelope, so envelopes sealed either way open alike.
//!
//! The associated data binds the envelope version, the table, the column and the row id, so
//! a sealed value copied into another row or column fails to open.
//!
//! The key is never written anywhere by this library. [`DataKey`] keeps the raw bytes in a
//! zeroizing buffer; ring's expanded key schedule lives inside `LessSafeKey`, which ring does
//! not expose for wiping: it is dropped together with the store.

pub mod chunked;

use std::sync::atomic::{AtomicU64, Ordering};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Length of a data key in bytes.
pub const KEY_LEN: usize = 32;
/// Current envelope version.
pub const ENVELOPE_V1: u8 = 1;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;

/// Sealing failures. None of them carries plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The key handed in is not 32 bytes.
    #[error("data key must be 32 bytes, got {0}")]
    BadKeyLength(usize),
    /// The envelope is shorter than its header and tag.
    #[error("sealed value is truncated")]
    Truncated,
    /// The envelope version byte is unknown.
    #[error("unknown envelope version {0}")]
    UnknownVersion(u8),
    /// Authentication failed: wrong key, tampered bytes or value moved from another row.
    #[error("sealed value failed authentication")]
    Unauthentic,
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
}

/// Where a sealed value lives; bound into the associated data.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// Table name.
    pub table: &'a str,
    /// Column name.
    pub column: &'a str,
    /// Row id.
    pub id: &'a str,
}

impl<'a> Slot<'a> {
    /// A slot in `table.column` for row `id`.
    pub fn new(table: &'a str, column: &'a str, id: &'a str) -> Self {
        Slot { table, column, id }
    }

    fn aad(&self, version: u8) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + self.table.len() + self.column.len() + self.id.len());
        aad.extend_from_slice(b"crewsafe");
        aad.push(version);
        for part in [self.table, self.column, self.id] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A 32-byte AES-256-GCM data key. The raw bytes are wiped when dropped.
pub struct DataKey {
    raw: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
    /// Random base of this value's nonces.
    nonce_base: [u8; NONCE_LEN],
    /// Seals made so far with this value.
    sealed: AtomicU64,
}

impl DataKey {
    /// Builds a key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::BadKeyLength(bytes.len()));
        }
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        raw.copy_from_slice(bytes);
        let unbound =
            UnboundKey::new(&AES_256_GCM, &raw[..]).map_err(|_| CryptoError::BadKeyLength(0))?;
        let mut nonce_base = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce_base)
            .map_err(|_| CryptoError::Random)?;
        Ok(DataKey {
            raw,
            key: LessSafeKey::new(unbound),
            nonce_base,
            sealed: AtomicU64::new(0),
        })
    }

    /// Draws a fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let bytes = random_key_bytes()?;
        Self::from_bytes(&bytes[..])
    }

    /// The AEAD key itself (for the chunked file format).
    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.key
    }

    /// The raw key bytes (for handing to the host's key wrapper).
    pub fn expose(&self) -> &[u8] {
        &self.raw[..]
    }

    /// The next nonce: the base XOR the count of seals so far (never the same twice).
    fn next_nonce(&self) -> [u8; NONCE_LEN] {
        let count = self.sealed.fetch_add(1, Ordering::Relaxed);
        let mut nonce = self.nonce_base;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(count.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    /// Seals `plaintext` for `slot` with a nonce this value never used before.
    pub fn seal(&self, slot: Slot<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = self.next_nonce();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(ENVELOPE_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let aad = slot.aad(ENVELOPE_V1);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut out[HEADER_LEN..],
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens an envelope sealed for `slot`. Plaintext is returned in a zeroizing buffer.
    pub fn open(&self, slot: Slot<'_>, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (version, nonce, body) = split_envelope(envelope)?;
        let aad = slot.aad(version);
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut buf,
            )
            .map_err(|_| CryptoError::Unauthentic)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Checks the envelope header and splits it into version, nonce and sealed body.
pub fn split_envelope(envelope: &[u8]) -> Result<(u8, [u8; NONCE_LEN], &[u8]), CryptoError> {
    if envelope.len() < HEADER_LEN + TAG_LEN {
        return Err(CryptoError::Truncated);
    }
    let version = envelope[0];
    if version != ENVELOPE_V1 {
        return Err(CryptoError::UnknownVersion(version));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&envelope[1..HEADER_LEN]);
    Ok((version, nonce, &envelope[HEADER_LEN..]))
}

/// 32 bytes from the system's secure random generator.
pub fn random_key_bytes() -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut bytes[..])
        .map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::generate().expect("key")
    }

    #[test]
    fn round_trip() {
        let k = key();
        let slot = Slot::new("records", "payload", "a");
        let sealed = k.seal(slot, b"hello crew").unwrap();
        assert_eq!(&k.open(slot, &sealed).unwrap()[..], b"hello crew");
        assert_eq!(sealed[0], ENVELOPE_V1);
        assert_eq!(sealed.len(), 1 + 12 + 10 + 16);
    }

    #[test]
    fn same_plaintext_sealed_twice_differs() {
        let k = key();
        let slot = Slot::new("records", "payload", "a");
        assert_ne!(k.seal(slot, b"x").unwrap(), k.seal(slot, b"x").unwrap());
    }

    #[test]
    fn nonces_never_repeat_within_a_value_and_differ_between_values() {
        let bytes = random_key_bytes().unwrap();
        let (a, b) = (
            DataKey::from_bytes(&bytes[..]).unwrap(),
            DataKey::from_bytes(&bytes[..]).unwrap(),
        );
        let slot = Slot::new("records", "payload", "a");
        let mut seen = std::collections::HashSet::new();
        for k in [&a, &b] {
            for _ in 0..5_000 {
                let sealed = k.seal(slot, b"same words").unwrap();
                assert!(
                    seen.insert(sealed[1..HEADER_LEN].to_vec()),
                    "a nonce repeated"
                );
                // Both values open what either sealed: the nonce travels in the envelope.
                assert_eq!(&a.open(slot, &sealed).unwrap()[..], b"same words");
                assert_eq!(&b.open(slot, &sealed).unwrap()[..], b"same words");
            }
        }
    }

    #[test]
    fn every_flipped_bit_fails() {
        let k = key();
        let slot = Slot::new("records", "payload", "a");
        let sealed = k.seal(slot, b"abc").unwrap();
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(k.open(slot, &bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn moved_to_other_row_or_column_fails() {
        let k = key();
        let sealed = k
            .seal(Slot::new("records", "payload", "a"), b"abc")
            .unwrap();
        let err = Err(CryptoError::Unauthentic);
        assert_eq!(
            k.open(Slot::new("records", "payload", "b"), &sealed)
                .map(|_| ()),
            err
        );
        assert_eq!(
            k.open(Slot::new("drafts", "payload", "a"), &sealed)
                .map(|_| ()),
            err
        );
        assert_eq!(
            k.open(Slot::new("records", "reason", "a"), &sealed)
                .map(|_| ()),
            err
        );
    }

    #[test]
    fn wrong_key_fails_and_bad_lengths_are_typed() {
        let slot = Slot::new("t", "c", "i");
        let sealed = key().seal(slot, b"abc").unwrap();
        assert_eq!(
            key().open(slot, &sealed).map(|_| ()),
            Err(CryptoError::Unauthentic)
        );
        assert_eq!(
            DataKey::from_bytes(&[0; 31]).map(|_| ()),
            Err(CryptoError::BadKeyLength(31))
        );
        assert_eq!(
            key().open(slot, &sealed[..20]).map(|_| ()),
            Err(CryptoError::Truncated)
        );
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert_eq!(
            key().open(slot, &v2).map(|_| ()),
            Err(CryptoError::UnknownVersion(2))
        );
    }

    #[test]
    fn aad_is_unambiguous() {
        // ("ab", "c") and ("a", "bc") must not produce the same associated data.
        assert_ne!(
            Slot::new("ab", "c", "x").aad(1),
            Slot::new("a", "bc", "x").aad(1)
        );
    }
}
