//! Attachment files beside the database: `<database>.media/<id>.csa`, each a chunked AEAD
//! file ([`crate::crypto::chunked`]). A file is written as `<id>.partial`, fsynced, then renamed
//! into place (and the folder fsynced), and only then does its row get committed: a crash
//! leaves at most a partial or an unreferenced file, which the next open deletes. None of this
//! holds the database lock: a large video streams in while SOS alarms are still saved at once.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use ring::digest::{Context, SHA256};

use crate::crypto::chunked::{ChunkRun, FileKey, OpeningReader, SealingWriter};
use crate::error::{Result, StoreError};

const SEALED: &str = "csa";
/// Chunks in a run: a capture reads, hashes, seals and writes 1 MiB at a time.
const RUN_CHUNKS: usize = 16;
const PARTIAL: &str = "partial";
/// Runs in use at once: being read into, hashed, or waiting to be sealed and written.
const RUNS: usize = 6;
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
        let mut writer = SealingWriter::new(file, key, id)?;
        // Hashing runs on a second thread while this one reads, seals and writes: the two are
        // the bulk of the CPU work, and a phone has more than one core. A run is read, handed
        // to the hasher, handed back, sealed in place and written, then read into again: a
        // few runs serve the whole file (memory stays flat) and no byte is copied in between.
        let (to_hasher, unhashed) = sync_channel::<ChunkRun>(RUNS);
        let (give_back, hashed) = sync_channel::<ChunkRun>(RUNS);
        let hasher = std::thread::Builder::new()
            .name("crewsafe-hash".into())
            .spawn(move || {
                let mut hash = Context::new(&SHA256);
                for run in unhashed {
                    run.plaintext().for_each(|p| hash.update(p));
                    // The reader may have stopped taking runs back: nothing to do then.
                    let _ = give_back.send(run);
                }
                hex(hash.finish().as_ref())
            })?;
        let streamed = stream(source, max_bytes, &mut writer, &to_hasher, &hashed, || {
            let _ = to_flusher.try_send(());
        });
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

/// The capture's reading side: reads `source` into runs while any is free, sends each to the
/// hasher, and seals and writes the runs the hasher hands back, in order. A run is sealed
/// only once it is known whether more data follows it (a later run read something, or the
/// input ended), so the file's last chunk is marked last. Calls `flush` each time another
/// FLUSH_EVERY bytes were written. Returns the plaintext size.
fn stream<W: std::io::Write>(
    source: &mut dyn Read,
    max_bytes: u64,
    writer: &mut SealingWriter<'_, W>,
    to_hasher: &SyncSender<ChunkRun>,
    hashed: &Receiver<ChunkRun>,
    flush: impl Fn(),
) -> Result<u64> {
    let mut free: Vec<ChunkRun> = (0..RUNS).map(|_| ChunkRun::new(RUN_CHUNKS)).collect();
    let (mut size, mut written, mut at_hasher) = (0u64, 0u64, 0usize);
    let mut ended = false;
    // Hashed, but not sealed: whether it holds the file's last chunk is not known yet.
    let mut held: Option<ChunkRun> = None;
    loop {
        if !ended {
            if let Some(mut run) = free.pop() {
                let n = run.fill(source)?;
                ended = n < run.capacity();
                size += n as u64;
                if size > max_bytes {
                    return Err(StoreError::invalid(
                        "size",
                        format!("larger than the limit of {max_bytes} bytes for this kind"),
                    ));
                }
                if run.is_empty() {
                    free.push(run);
                } else {
                    // Fails only if the hasher ended early (a panic): that shows when joined.
                    to_hasher
                        .send(run)
                        .map_err(|_| StoreError::Encode("attachment hash"))?;
                    at_hasher += 1;
                }
                continue;
            }
        }
        if at_hasher == 0 {
            break;
        }
        let run = hashed
            .recv()
            .map_err(|_| StoreError::Encode("attachment hash"))?;
        at_hasher -= 1;
        // A later run holds data: the one held back is not the last.
        if let Some(mut previous) = held.replace(run) {
            writer.write_run(&mut previous, false)?;
            written = seal_progress(written, previous.len(), &flush);
            free.push(previous);
        }
    }
    if let Some(mut last) = held {
        writer.write_run(&mut last, true)?;
    }
    Ok(size)
}

/// Adds `n` to the bytes written and nudges the flusher when another FLUSH_EVERY is reached.
fn seal_progress(written: u64, n: usize, flush: &impl Fn()) -> u64 {
    let now = written + n as u64;
    if now / FLUSH_EVERY != written / FLUSH_EVERY {
        flush();
    }
    now
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
