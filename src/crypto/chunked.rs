//! Chunked AEAD files for attachments (format `CSA1`): a photo, a recording or a video is
//! encrypted as it streams in, never held whole in memory, under its own random 256-bit key
//! (the key is sealed under the store's data key in the database, so a rekey rewraps keys
//! without rewriting files and deleting the key erases the file).
//!
//! Layout: `"CSA1" | chunk length (u32 BE)` then the chunks, each `ciphertext | tag (16)`.
//! Every chunk but the last holds exactly `chunk length` plaintext bytes; the last holds 0 to
//! `chunk length` (an empty file is one empty last chunk). Chunk `i` is sealed with the nonce
//! `i (u64 BE) | last (u32 BE: 1 for the last chunk, else 0)` and the associated data
//! `"crewsafe-attachment" | file id | header`. So a chunk moved to another place, a file cut
//! short (no chunk marked last at its end), chunks from another file or another file's id all
//! fail to open. Chunk boundaries are a pure function of the offset, so any byte range can be
//! read by opening only the chunks that hold it.

use std::io::{Read, Seek, SeekFrom, Write};

use ring::aead::{Aad, Nonce, NONCE_LEN};
use zeroize::Zeroizing;

use super::{CryptoError, DataKey};

/// Plaintext bytes per chunk.
pub const CHUNK_LEN: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"CSA1";
const HEADER_LEN: u64 = 8;
const TAG_LEN: usize = 16;

/// Why an attachment file cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileCryptoError {
    /// A chunk failed authentication, or the layout is not a `CSA1` file of this id: the
    /// file was damaged, cut short, reordered or replaced.
    #[error("attachment file failed authentication")]
    Unauthentic,
    /// Reading or writing the file failed.
    #[error("attachment file i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Key generation failed.
    #[error(transparent)]
    Key(#[from] CryptoError),
}

/// One attachment's own key: a [`DataKey`] drawn for this file alone (its raw bytes are
/// wiped when dropped), sealed under the store's data key in the database.
pub type FileKey = DataKey;

fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(MAGIC);
    h[4..].copy_from_slice(&(CHUNK_LEN as u32).to_be_bytes());
    h
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[8..].copy_from_slice(&u32::from(last).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(file_id: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(40 + file_id.len());
    a.extend_from_slice(b"crewsafe-attachment");
    a.extend_from_slice(&(file_id.len() as u32).to_be_bytes());
    a.extend_from_slice(file_id.as_bytes());
    a.extend_from_slice(&header());
    a
}

/// Encrypts a stream into a `CSA1` file, chunk by chunk.
pub struct SealingWriter<'k, W: Write> {
    out: W,
    key: &'k FileKey,
    aad: Vec<u8>,
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    plain_len: u64,
}

impl<'k, W: Write> SealingWriter<'k, W> {
    /// Starts a file for `file_id` (writes the header).
    pub fn new(mut out: W, key: &'k FileKey, file_id: &str) -> Result<Self, FileCryptoError> {
        out.write_all(&header())?;
        Ok(SealingWriter {
            out,
            key,
            aad: aad(file_id),
            buf: Zeroizing::new(Vec::with_capacity(CHUNK_LEN + TAG_LEN)),
            index: 0,
            plain_len: 0,
        })
    }

    /// Adds plaintext.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), FileCryptoError> {
        while !data.is_empty() {
            if self.buf.len() == CHUNK_LEN {
                // More follows: the full buffer is not the last chunk.
                self.seal_chunk(false)?;
            }
            let take = (CHUNK_LEN - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            self.plain_len += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    fn seal_chunk(&mut self, last: bool) -> Result<(), FileCryptoError> {
        let tag = self
            .key
            .aead()
            .seal_in_place_separate_tag(
                nonce(self.index, last),
                Aad::from(&self.aad[..]),
                &mut self.buf[..],
            )
            .map_err(|_| FileCryptoError::Unauthentic)?;
        // One write per chunk: the tag goes after the ciphertext in the same buffer.
        self.buf.extend_from_slice(tag.as_ref());
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk and returns the output and the plaintext length.
    pub fn finish(mut self) -> Result<(W, u64), FileCryptoError> {
        self.seal_chunk(true)?;
        Ok((self.out, self.plain_len))
    }
}

/// The size of the `CSA1` file holding `plain_len` bytes.
#[cfg(test)]
fn sealed_len(plain_len: u64) -> u64 {
    let chunks = if plain_len == 0 {
        1
    } else {
        plain_len.div_ceil(CHUNK_LEN as u64)
    };
    HEADER_LEN + plain_len + chunks * TAG_LEN as u64
}

/// Reads a `CSA1` file back, chunk by chunk or from any offset.
pub struct OpeningReader<R: Read + Seek> {
    input: R,
    key: FileKey,
    aad: Vec<u8>,
    chunks: u64,
    plain_len: u64,
}

impl<R: Read + Seek> OpeningReader<R> {
    /// Opens a file of `file_id` whose total size on disk is `file_len`. The layout is checked
    /// here; every chunk is authenticated when read.
    pub fn new(
        mut input: R,
        file_len: u64,
        key: FileKey,
        file_id: &str,
    ) -> Result<Self, FileCryptoError> {
        let mut h = [0u8; HEADER_LEN as usize];
        input.seek(SeekFrom::Start(0))?;
        input
            .read_exact(&mut h)
            .map_err(|_| FileCryptoError::Unauthentic)?;
        if h != header() || file_len < HEADER_LEN + TAG_LEN as u64 {
            return Err(FileCryptoError::Unauthentic);
        }
        let body = file_len - HEADER_LEN;
        let stride = (CHUNK_LEN + TAG_LEN) as u64;
        let (full, rest) = (body / stride, body % stride);
        if rest != 0 && rest < TAG_LEN as u64 {
            return Err(FileCryptoError::Unauthentic);
        }
        let chunks = full + u64::from(rest != 0);
        let last_plain = if rest == 0 {
            CHUNK_LEN as u64
        } else {
            rest - TAG_LEN as u64
        };
        Ok(OpeningReader {
            input,
            key,
            aad: aad(file_id),
            chunks,
            plain_len: (chunks - 1) * CHUNK_LEN as u64 + last_plain,
        })
    }

    /// The plaintext length.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    /// The plaintext of chunk `index`, authenticated.
    pub fn chunk(&mut self, index: u64) -> Result<Zeroizing<Vec<u8>>, FileCryptoError> {
        if index >= self.chunks {
            return Err(FileCryptoError::Unauthentic);
        }
        let last = index + 1 == self.chunks;
        let plain = if last {
            (self.plain_len - index * CHUNK_LEN as u64) as usize
        } else {
            CHUNK_LEN
        };
        let offset = HEADER_LEN + index * (CHUNK_LEN + TAG_LEN) as u64;
        self.input.seek(SeekFrom::Start(offset))?;
        let mut buf = Zeroizing::new(vec![0u8; plain + TAG_LEN]);
        self.input
            .read_exact(&mut buf)
            .map_err(|_| FileCryptoError::Unauthentic)?;
        let len = self
            .key
            .aead()
            .open_in_place(nonce(index, last), Aad::from(&self.aad[..]), &mut buf[..])
            .map_err(|_| FileCryptoError::Unauthentic)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Up to `max` plaintext bytes from `offset` (fewer at the end; none past it).
    pub fn read_at(
        &mut self,
        offset: u64,
        max: usize,
    ) -> Result<Zeroizing<Vec<u8>>, FileCryptoError> {
        let mut out = Zeroizing::new(Vec::with_capacity(max.min(4 * CHUNK_LEN)));
        let mut at = offset;
        while out.len() < max && at < self.plain_len {
            let index = at / CHUNK_LEN as u64;
            let chunk = self.chunk(index)?;
            let from = (at - index * CHUNK_LEN as u64) as usize;
            let take = (chunk.len() - from).min(max - out.len());
            out.extend_from_slice(&chunk[from..from + take]);
            at += take as u64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn seal(key: &FileKey, id: &str, data: &[u8], piece: usize) -> Vec<u8> {
        let mut w = SealingWriter::new(Vec::new(), key, id).unwrap();
        for part in data.chunks(piece.max(1)) {
            w.write(part).unwrap();
        }
        let (out, len) = w.finish().unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(
            out.len() as u64,
            sealed_len(data.len() as u64),
            "{}",
            data.len()
        );
        out
    }

    fn open_all(key: &FileKey, id: &str, file: &[u8]) -> Result<Vec<u8>, FileCryptoError> {
        let key = FileKey::from_bytes(key.expose()).unwrap();
        let mut r = OpeningReader::new(Cursor::new(file), file.len() as u64, key, id)?;
        let len = r.plain_len() as usize;
        Ok(r.read_at(0, len + 10)?.to_vec())
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let key = FileKey::generate().unwrap();
        for n in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            3 * CHUNK_LEN,
            3 * CHUNK_LEN + 17,
        ] {
            let d = data(n);
            for piece in [1000, CHUNK_LEN, 7 * CHUNK_LEN] {
                let file = seal(&key, "a", &d, piece);
                assert_eq!(
                    open_all(&key, "a", &file).unwrap(),
                    d,
                    "n={n} piece={piece}"
                );
            }
        }
    }

    #[test]
    fn any_range_reads_the_same_bytes() {
        let key = FileKey::generate().unwrap();
        let d = data(2 * CHUNK_LEN + 500);
        let file = seal(&key, "a", &d, 4096);
        let mut r = OpeningReader::new(Cursor::new(&file), file.len() as u64, key, "a").unwrap();
        for (at, max) in [
            (0, 10),
            (CHUNK_LEN as u64 - 3, 10),
            (2 * CHUNK_LEN as u64 + 499, 10),
        ] {
            let got = r.read_at(at, max).unwrap();
            let end = (at as usize + max).min(d.len());
            assert_eq!(&got[..], &d[at as usize..end]);
        }
        assert!(r.read_at(d.len() as u64, 10).unwrap().is_empty());
    }

    #[test]
    fn tampering_truncation_reordering_and_splicing_fail() {
        let key = FileKey::generate().unwrap();
        let d = data(3 * CHUNK_LEN + 100);
        let file = seal(&key, "a", &d, CHUNK_LEN);
        let stride = CHUNK_LEN + TAG_LEN;
        let body = HEADER_LEN as usize;
        // A flipped bit anywhere.
        for at in [0, 5, body + 1, body + stride + 3, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(open_all(&key, "a", &bad).is_err(), "flip at {at}");
        }
        // Cut at a chunk boundary (looks like a whole file of fewer chunks) and mid-chunk.
        for len in [body + stride, body + 2 * stride, file.len() - 1, body + 10] {
            assert!(open_all(&key, "a", &file[..len]).is_err(), "cut at {len}");
        }
        // Two chunks swapped.
        let mut swapped = file.clone();
        let (a, b) = (body, body + stride);
        let first = file[a..a + stride].to_vec();
        swapped.copy_within(b..b + stride, a);
        swapped[b..b + stride].copy_from_slice(&first);
        assert!(open_all(&key, "a", &swapped).is_err());
        // Another file's chunk spliced in, another id, another key.
        let other = seal(&key, "b", &d, CHUNK_LEN);
        let mut spliced = file.clone();
        spliced[body..body + stride].copy_from_slice(&other[body..body + stride]);
        assert!(open_all(&key, "a", &spliced).is_err());
        assert!(open_all(&key, "b", &file).is_err());
        assert!(open_all(&FileKey::generate().unwrap(), "a", &file).is_err());
        // And the intact file still opens.
        assert_eq!(open_all(&key, "a", &file).unwrap(), d);
    }
}
