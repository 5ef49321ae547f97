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
    /// The last chunk is written (by [`SealingWriter::write_run`]).
    ended: bool,
}

/// A buffer laid out as a run of sealed chunks, `plaintext slot | room for the tag` each:
/// plaintext is read straight into the slots, hashed from there, then sealed where it lies
/// and written in one piece ([`SealingWriter::write_run`]), with no copy in between.
pub struct ChunkRun {
    buf: Zeroizing<Vec<u8>>,
    /// Plaintext bytes held, from the first slot on.
    len: usize,
}

impl ChunkRun {
    /// An empty run of `chunks` chunks.
    pub fn new(chunks: usize) -> Self {
        ChunkRun {
            buf: Zeroizing::new(vec![0u8; chunks.max(1) * (CHUNK_LEN + TAG_LEN)]),
            len: 0,
        }
    }

    /// Plaintext bytes the run holds when full.
    pub fn capacity(&self) -> usize {
        self.buf.len() / (CHUNK_LEN + TAG_LEN) * CHUNK_LEN
    }

    /// Plaintext bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the run holds no plaintext.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the run and reads from `source` until it is full or the input ends; returns
    /// the bytes read (fewer than [`ChunkRun::capacity`] only at the end of the input).
    pub fn fill(&mut self, source: &mut dyn Read) -> std::io::Result<usize> {
        self.len = 0;
        let capacity = self.capacity();
        while self.len < capacity {
            let (slot, offset) = (self.len / CHUNK_LEN, self.len % CHUNK_LEN);
            let start = slot * (CHUNK_LEN + TAG_LEN);
            match source.read(&mut self.buf[start + offset..start + CHUNK_LEN]) {
                Ok(0) => break,
                Ok(n) => self.len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.len)
    }

    /// The plaintext held, slot by slot.
    pub fn plaintext(&self) -> impl Iterator<Item = &[u8]> {
        let len = self.len;
        self.buf
            .chunks(CHUNK_LEN + TAG_LEN)
            .enumerate()
            .map(move |(i, slot)| &slot[..len.saturating_sub(i * CHUNK_LEN).min(CHUNK_LEN)])
            .take_while(|p| !p.is_empty())
    }
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
            ended: false,
        })
    }

    /// Adds plaintext (captures write whole runs instead: [`SealingWriter::write_run`]).
    #[cfg(test)]
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), FileCryptoError> {
        debug_assert!(!self.ended, "plaintext after the last chunk");
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

    /// Seals a run of whole chunks where it lies and writes it with one call, after what was
    /// written so far; `last` marks the run's final chunk as the file's last (only that run
    /// may end with a short chunk, and nothing follows it). What [`SealingWriter::write`]
    /// takes must have filled whole chunks before a run.
    pub fn write_run(&mut self, run: &mut ChunkRun, last: bool) -> Result<(), FileCryptoError> {
        debug_assert!(
            !self.ended && self.buf.is_empty(),
            "a run after a partial chunk"
        );
        let len = run.len;
        if len == 0 || (!last && len % CHUNK_LEN != 0) {
            // A run that is empty or ends short is only ever the file's last one.
            return Err(FileCryptoError::Io(std::io::ErrorKind::InvalidInput.into()));
        }
        let chunks = len.div_ceil(CHUNK_LEN);
        let mut end = 0;
        for i in 0..chunks {
            let start = i * (CHUNK_LEN + TAG_LEN);
            let plain = (len - i * CHUNK_LEN).min(CHUNK_LEN);
            let tag = self
                .key
                .aead()
                .seal_in_place_separate_tag(
                    nonce(self.index, last && i + 1 == chunks),
                    Aad::from(&self.aad[..]),
                    &mut run.buf[start..start + plain],
                )
                .map_err(|_| FileCryptoError::Unauthentic)?;
            // A short chunk is the last: its tag goes right after it.
            end = start + plain + TAG_LEN;
            run.buf[start + plain..end].copy_from_slice(tag.as_ref());
            self.index += 1;
        }
        self.out.write_all(&run.buf[..end])?;
        self.plain_len += len as u64;
        self.ended = last;
        Ok(())
    }

    /// Seals the last chunk (unless a run marked last already did) and returns the output
    /// and the plaintext length.
    pub fn finish(mut self) -> Result<(W, u64), FileCryptoError> {
        if !self.ended {
            self.seal_chunk(true)?;
        }
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

    /// Seals `data` the way a capture does: runs of `chunks` chunks read from a reader that
    /// hands out at most `piece` bytes a call, the final run marked last.
    fn seal_runs(key: &FileKey, id: &str, data: &[u8], chunks: usize, piece: usize) -> Vec<u8> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(self.1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut source = Trickle(data, piece);
        let mut w = SealingWriter::new(Vec::new(), key, id).unwrap();
        let (mut run, mut next) = (ChunkRun::new(chunks), ChunkRun::new(chunks));
        run.fill(&mut source).unwrap();
        let mut plain = Vec::new();
        while !run.is_empty() {
            next.fill(&mut source).unwrap();
            run.plaintext().for_each(|p| plain.extend_from_slice(p));
            w.write_run(&mut run, next.is_empty()).unwrap();
            std::mem::swap(&mut run, &mut next);
        }
        assert_eq!(plain, data);
        let (out, len) = w.finish().unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(out.len() as u64, sealed_len(data.len() as u64));
        out
    }

    #[test]
    fn runs_seal_the_same_file_as_writes() {
        let key = FileKey::generate().unwrap();
        for n in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            4 * CHUNK_LEN,
            4 * CHUNK_LEN + 17,
            9 * CHUNK_LEN - 3,
        ] {
            let d = data(n);
            let written = seal(&key, "a", &d, 1000);
            for (chunks, piece) in [(1, 1000), (4, CHUNK_LEN), (4, 3 * CHUNK_LEN + 5), (3, 1)] {
                if piece == 1 && n > CHUNK_LEN {
                    continue;
                }
                assert_eq!(
                    seal_runs(&key, "a", &d, chunks, piece),
                    written,
                    "n={n} chunks={chunks} piece={piece}"
                );
            }
        }
    }

    #[test]
    fn a_short_run_that_is_not_last_is_refused() {
        let key = FileKey::generate().unwrap();
        let mut w = SealingWriter::new(Vec::new(), &key, "a").unwrap();
        let mut run = ChunkRun::new(2);
        run.fill(&mut &data(CHUNK_LEN + 5)[..]).unwrap();
        assert!(w.write_run(&mut run, false).is_err());
        let mut empty = ChunkRun::new(2);
        assert!(w.write_run(&mut empty, true).is_err());
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
