//! Lone-worker check-ins, timed on the server's clock (`check_ins`, one row per
//! `check_in_start`, keyed by its `records.seq`):
//!
//! - a start is due at its receive time plus `due_in_minutes` check-in minutes;
//! - an extension received while the check-in runs moves the due time by its minutes;
//! - a closing record (`check_in_done`) received in time closes it: no alarm, ever;
//! - at the due time the timer raises the missed check-in alarm: an
//!   `sos_status` row keyed by the start's seq, `delivered`;
//! - a closing record received after the due time closes it late: the alarm (raised then, if
//!   the timer had not yet) is resolved by [`CHECK_IN_RESOLVER`] unless a dispatcher already
//!   resolved it, and the view says `closed_late`.
//!
//! Only the first closing record counts; later ones, and extensions after the close or the
//! alarm, change nothing.
//!
//! This file holds the timing both backends compute; `sqlite/check_ins.rs` and
//! `postgres/timer.rs` run the statements.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::column::after;

/// The `resolved_by` of a missed check-in alarm that the crew's late check-in resolved.
pub const CHECK_IN_RESOLVER: &str = "check-in";

/// `n` check-in minutes of `minute` each.
pub(crate) fn minutes(n: u32, minute: Duration) -> Duration {
    minute.saturating_mul(n)
}

/// When a check-in received at `received_at` and due in `due_in` minutes falls due.
pub(crate) fn due_at(received_at: DateTime<Utc>, due_in: u32, minute: Duration) -> DateTime<Utc> {
    after(received_at, minutes(due_in, minute))
}

/// A running check-in's due time moved by `by` minutes.
pub(crate) fn extended(due: DateTime<Utc>, by: u32, minute: Duration) -> DateTime<Utc> {
    after(due, minutes(by, minute))
}

/// Whether a closing record received at `received_at` is late: the alarm was raised already,
/// or the check-in is due.
pub(crate) fn is_late(missed: bool, received_at: DateTime<Utc>, due: DateTime<Utc>) -> bool {
    missed || received_at >= due
}
