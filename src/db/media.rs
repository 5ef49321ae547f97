//! Attachment files beside the database: `<database>.media/<id>.csa`, each a chunked AEAD
//! file ([`crate::crypto::chunked`]). A file is written as `<id>.partial`, fsynced, then renamed
//! into place (and the folder fsynced), and only then does its row get committed: a crash
//! leaves at most a partial or an unreferenced file, which the next open deletes. None of this
//! holds the database lock: a large video streams in while SOS alarms are still saved at once.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use ring::digest::{Context, SHA256};
use zeroize::Zeroizing;

use crate::crypto::chunked::{FileKey, OpeningReader, SealingWriter, CHUNK_LEN};
use crate::error::{Result, StoreError};

const SEALED: &str = "csa";
/// Bytes read from the source at a time.
const READ_LEN: usize = 4 * CHUNK_LEN;
const PARTIAL: &str = "partial";
/// Read buffers in use at once: one being read into, the others being hashed or waiting.
const PIECES: usize = 6;
/// Bytes written between two early flushes of a file being captured.
const FLUSH_EVERY: u64 = 16 << 20;

/// What streaming a file in produced.
pub struct Captured {
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, lower-case hex.
    pub sha256: String,
}

/// The folder of a store's attachment files.
#[derive(Debug, Clone)]
pub struct MediaDir {
    dir: PathBuf,
}

impl MediaDir {
    /// The folder for the database at `db_path`.
    pub fn of(db_path: &Path) -> MediaDir {
        let mut dir = db_path.as_os_str().to_owned();
        dir.push(".media");
        MediaDir { dir: dir.into() }
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    /// Streams `source` into a new encrypted file for attachment `id`, hashing the plaintext
    /// on the way, and refuses it (leaving nothing behind) once it passes `max_bytes`.
    pub fn capture(
        &self,
        id: &str,
        key: &FileKey,
        source: &mut dyn Read,
        max_bytes: u64,
    ) -> Result<Captured> {
        std::fs::create_dir_all(&self.dir)?;
        let partial = self.file(id, PARTIAL);
        let result = self.write_partial(&partial, id, key, source, max_bytes);
        let captured = match result {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        if let Err(e) =
            std::fs::rename(&partial, self.file(id, SEALED)).and_then(|()| self.sync_dir())
        {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(self.file(id, SEALED));
            return Err(e.into());
        }
        Ok(captured)
    }

    fn write_partial(
        &self,
        partial: &Path,
        id: &str,
        key: &FileKey,
        source: &mut dyn Read,
        max_bytes: u64,
    ) -> Result<Captured> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(partial)?;
        // The file goes to disk while it is still being written: each FLUSH_EVERY bytes, a
        // third thread asks for what is written so far, so the fsync at the end finds little
        // left (the kernel alone would keep it all in memory until then). It never holds the
        // writing up: a nudge while it is busy is dropped.
        let (to_flusher, nudges) = sync_channel::<()>(1);
        let early = file.try_clone()?;
        let flusher = std::thread::Builder::new()
            .name("crewsafe-flush".into())
            .spawn(move || -> std::io::Result<()> {
                for () in nudges {
                    early.sync_data()?;
                }
                Ok(())
            })?;
        // Each sealed chunk is one write: no buffering needed.
        let mut writer = SealingWriter::new(file, key, id)?;
        // Hashing runs on a second thread while this one seals and writes: the two are the
        // bulk of the CPU work, and a phone has more than one core. A piece goes to the hasher
        // before it is sealed, and comes back to be read into again: a few buffers serve the
        // whole file (no allocation, zeroing or page faults per piece; memory stays flat).
        let (to_hasher, pieces) = sync_channel::<Arc<Zeroizing<Vec<u8>>>>(PIECES);
        let (give_back, returned) = sync_channel::<Arc<Zeroizing<Vec<u8>>>>(PIECES + 1);
        for _ in 0..PIECES {
            let _ = give_back.send(Arc::new(Zeroizing::new(vec![0u8; READ_LEN])));
        }
        let hasher = std::thread::Builder::new()
            .name("crewsafe-hash".into())
            .spawn(move || {
                let mut hash = Context::new(&SHA256);
                for piece in pieces {
                    hash.update(&piece);
                    // The reader may have stopped taking buffers back: nothing to do then.
                    let _ = give_back.send(piece);
                }
                hex(hash.finish().as_ref())
            })?;
        let streamed = (|| -> Result<u64> {
            let mut size = 0u64;
            // An error here means the hasher ended early (a panic): it shows when joined.
            while let Ok(mut piece) = returned.recv() {
                // The hasher hands a piece back only after its own reference is gone, and this
                // thread dropped its one after sealing: the piece is this thread's alone.
                let Some(buf) = Arc::get_mut(&mut piece) else {
                    return Err(StoreError::Encode("attachment buffer"));
                };
                buf.resize(READ_LEN, 0);
                let n = loop {
                    match source.read(buf) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    }
                };
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                size += n as u64;
                if size > max_bytes {
                    return Err(StoreError::invalid(
                        "size",
                        format!("larger than the limit of {max_bytes} bytes for this kind"),
                    ));
                }
                if to_hasher.send(piece.clone()).is_err() {
                    break;
                }
                writer.write(&piece)?;
                if size / FLUSH_EVERY != (size - n as u64) / FLUSH_EVERY {
                    let _ = to_flusher.try_send(());
                }
            }
            Ok(size)
        })();
        drop(to_hasher);
        drop(to_flusher);
        let sha256 = hasher.join();
        let flushed = flusher.join();
        let size = streamed?;
        let sha256 = sha256.map_err(|_| StoreError::Encode("attachment hash"))?;
        flushed.map_err(|_| StoreError::Encode("attachment flush"))??;
        let (file, _) = writer.finish()?;
        file.sync_all()?;
        Ok(Captured { size, sha256 })
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Opens attachment `id` for reading.
    pub fn open(&self, id: &str, key: FileKey) -> Result<OpeningReader<File>> {
        let path = self.file(id, SEALED);
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        Ok(OpeningReader::new(file, len, key, id)?)
    }

    /// Deletes attachment `id`'s file (fine if it is already gone).
    pub fn remove(&self, id: &str) {
        for ext in [SEALED, PARTIAL] {
            match std::fs::remove_file(self.file(id, ext)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => log::warn!("attachment file not deleted: {}", e.kind()),
            }
        }
    }

    /// Deletes what a crash left behind: partial files, and files no row refers to.
    pub fn clean(&self, mut referenced: impl FnMut(&str) -> bool) -> Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            let keep = match (path.file_stem().and_then(|s| s.to_str()), path.extension()) {
                (Some(id), Some(ext)) if ext == SEALED => referenced(id),
                _ => false,
            };
            if !keep {
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes the whole folder (with `destroy`).
    pub fn remove_all(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
