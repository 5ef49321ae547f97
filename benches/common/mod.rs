//! What the phone benches share: the disk's fsync latency, medians and peak memory.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// Median time of writing `kib` KiB to a file in `dir` and fsyncing it, over 15 tries.
pub fn fsync_ms(dir: &Path, kib: usize) -> f64 {
    let mut file = tempfile::tempfile_in(dir).unwrap();
    let chunk = vec![0x5a_u8; kib * 1024];
    let times: Vec<f64> = (0..15)
        .map(|_| {
            file.write_all(&chunk).unwrap();
            let t = Instant::now();
            file.sync_all().unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(times)
}

/// The middle value (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Peak resident memory of this process (`VmHWM`), KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
