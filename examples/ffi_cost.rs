//! The Rust side of the FFI cost benchmark (`bindings/kotlin/bench/run.sh` runs it between
//! two runs of the same calls from Kotlin): `raise_sos` (one fsync'd commit), `get_sos` and
//! `pending_counts`, and `set_online` (the floor: one primitive argument, no buffer) on a store in a temp folder, called straight from Rust, after a warm-up.
//! Prints the disk's fsync latency of the moment and the median and mean of each call, in the
//! format the Kotlin twin (`bindings/kotlin/bench/FfiBench.kt`) prints.
//!
//!   cargo run --release --example ffi_cost [raise_sos calls] [quick calls]

use std::time::{Duration, Instant};

use crewsafe::internals::{crew, fix};
use crewsafe::*;

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "rust    {name:<14} median {:>8.2} us   mean {:>8.2} us   ({} calls)",
        v[v.len() / 2].as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
        v.len()
    );
}

fn timed(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a count"));
    let slow = args.next().unwrap_or(2_000);
    let quick = args.next().unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("crewsafe-ffi-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
        let mut v = timed(15, || {
            f.write_all(&[7u8; 4096]).unwrap();
            f.sync_all().unwrap();
        });
        v.sort();
        println!(
            "rust    fsync after writing 4 KiB {:.3} ms (median of 15)",
            v[7].as_secs_f64() * 1e3
        );
    }
    let store = CrewStore::open(
        dir.join("bench.db").to_string_lossy().into(),
        generate_data_key(),
    )
    .unwrap();
    let (c, l) = (crew(), fix());
    let id = store
        .raise_sos(c.clone(), Some(l.clone()), None)
        .unwrap()
        .id;
    timed(slow / 10, || {
        drop(store.raise_sos(c.clone(), Some(l.clone()), None).unwrap())
    });
    report(
        "raiseSos",
        timed(slow, || {
            drop(store.raise_sos(c.clone(), Some(l.clone()), None).unwrap())
        }),
    );
    // The Kotlin side also times the flat fast path (raise_sos_quick); from Rust it is the
    // same commit as raise_sos, so raiseSos here is the baseline for both.
    timed(quick / 10, || drop(store.get_sos(id.clone()).unwrap()));
    report(
        "getSos",
        timed(quick / 4, || drop(store.get_sos(id.clone()).unwrap())),
    );
    timed(quick / 10, || {
        store.pending_counts().unwrap();
    });
    report(
        "pendingCounts",
        timed(quick, || {
            store.pending_counts().unwrap();
        }),
    );
    // The floor: a call with one primitive argument, no buffer either way.
    timed(quick / 10, || store.set_online(false).unwrap());
    report(
        "setOnline",
        timed(quick, || store.set_online(false).unwrap()),
    );
    store.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
