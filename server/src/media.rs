//! Attachment files on the server's disk, content-addressed: a file whose whole SHA-256
//! matched its report's commitment lives at `objects/<sha256>` (identical bytes from any
//! device are stored once); an upload in progress at `uploads/<device hash>/<attachment>.part`,
//! whose length is how much the server holds. Every chunk is fsynced before it is answered, and
//! a whole file is hashed again before it moves into `objects/` (a rename, then the folder is
//! fsynced): nothing is ever called stored that was not checked. Several server instances share
//! the folder (a shared file system) like they share the database.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::digest::{digest, Context, SHA256};

/// Where an upload stands, from the files alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// Bytes held from the start of the file.
    pub(crate) received: u64,
    /// The whole file is stored (and checked).
    pub(crate) stored: bool,
}

/// Why a chunk was not taken.
#[derive(Debug)]
pub(crate) enum ChunkError {
    /// It does not start where the held copy ends (the held length is given).
    Offset(u64),
    /// Its bytes do not match the checksum sent with it.
    Checksum,
    /// The whole file does not match the commitment; the copy was dropped.
    Hash,
    /// The chunk's range is not one the protocol allows.
    Range(&'static str),
    /// The disk failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for ChunkError {
    fn from(e: std::io::Error) -> Self {
        ChunkError::Io(e)
    }
}

/// The server's attachment folder.
#[derive(Debug)]
pub(crate) struct Media {
    root: PathBuf,
    /// One chunk at a time per upload (retries may overlap on several connections).
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Media {
    /// The folder at `root` (created when first written).
    pub(crate) fn new(root: PathBuf) -> Media {
        Media {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn object(&self, sha256: &str) -> PathBuf {
        self.root.join("objects").join(sha256)
    }

    fn partial(&self, device: &str, id: &str) -> PathBuf {
        // Device ids are free text: the folder is named by their hash.
        let device = hex(&digest(&SHA256, device.as_bytes()).as_ref()[..16]);
        self.root
            .join("uploads")
            .join(device)
            .join(format!("{id}.part"))
    }

    fn lock(&self, device: &str, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(format!("{device}\n{id}")).or_default().clone()
    }

    /// What is held of attachment `id` of `device`, committed to `sha256`.
    pub(crate) fn held(&self, device: &str, id: &str, sha256: &str) -> std::io::Result<Held> {
        if self.object(sha256).exists() {
            return Ok(Held {
                received: 0,
                stored: true,
            });
        }
        let received = match std::fs::metadata(self.partial(device, id)) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(Held {
            received,
            stored: false,
        })
    }

    /// Appends a chunk at `offset` of a file of `size` bytes committed to `sha256`, checking
    /// it against `chunk_sha256`; when it completes the file, checks the whole and stores it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_chunk(
        &self,
        device: &str,
        id: &str,
        size: u64,
        sha256: &str,
        offset: u64,
        chunk: &[u8],
        chunk_sha256: &str,
    ) -> Result<Held, ChunkError> {
        let lock = self.lock(device, id);
        let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
        let held = self.held(device, id, sha256)?;
        if held.stored {
            return Ok(Held {
                received: size,
                stored: true,
            });
        }
        if offset != held.received {
            return Err(ChunkError::Offset(held.received));
        }
        let len = chunk.len() as u64;
        let unit = crewsafe_protocol::UPLOAD_UNIT;
        if offset % unit != 0 {
            return Err(ChunkError::Range(
                "upload-offset: must be a multiple of the upload unit",
            ));
        }
        if offset + len > size {
            return Err(ChunkError::Range(
                "the chunk goes past the attachment's size",
            ));
        }
        if len == 0 && size > 0 || len % unit != 0 && offset + len != size {
            return Err(ChunkError::Range(
                "a chunk is a whole number of upload units, except the file's last",
            ));
        }
        if len > crewsafe_protocol::MAX_UPLOAD_CHUNK {
            return Err(ChunkError::Range(
                "the chunk is larger than the largest upload",
            ));
        }
        if !hex(digest(&SHA256, chunk).as_ref()).eq_ignore_ascii_case(chunk_sha256) {
            return Err(ChunkError::Checksum);
        }
        let partial = self.partial(device, id);
        if let Some(dir) = partial.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)?;
        file.write_all(chunk)?;
        file.sync_all()?;
        let received = offset + len;
        if received < size {
            return Ok(Held {
                received,
                stored: false,
            });
        }
        // Whole: check it before it is called stored.
        if whole_sha256(&partial)? != sha256 {
            let _ = std::fs::remove_file(&partial);
            return Err(ChunkError::Hash);
        }
        let object = self.object(sha256);
        if let Some(dir) = object.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&partial, &object)?;
        if let Some(dir) = object.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Held {
            received: size,
            stored: true,
        })
    }

    /// The stored file of `sha256`, for download.
    pub(crate) fn open_object(&self, sha256: &str) -> std::io::Result<File> {
        File::open(self.object(sha256))
    }
}

fn whole_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hash = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex(hash.finish().as_ref()))
}
