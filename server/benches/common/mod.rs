//! What the server benches share: SQLite files to clear and PostgreSQL connection strings.

use std::path::{Path, PathBuf};

/// Removes a SQLite database, its WAL files and its attachment folder.
pub fn remove_sqlite(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let mut media = db.as_os_str().to_owned();
    media.push(".media");
    let _ = std::fs::remove_dir_all(PathBuf::from(media));
}

/// `conn` (a URL or `key=value` pairs) with database `name` instead of its own.
pub fn with_dbname(conn: &str, name: &str) -> String {
    if let Some(scheme_end) = conn.find("://") {
        let (base, query) = match conn.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (conn, None),
        };
        let after = scheme_end + 3;
        let path_at = base[after..].find('/').map_or(base.len(), |i| after + i);
        let mut out = format!("{}/{name}", &base[..path_at]);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    } else {
        conn.split_whitespace()
            .filter(|p| !p.starts_with("dbname="))
            .chain([format!("dbname={name}").as_str()])
            .collect::<Vec<_>>()
            .join(" ")
    }
}
