//! Upload sizes that follow the link, per lane.
//!
//! A lane's first upload holds at most [`INITIAL_RECORDS`] records. An upload of at least
//! half the current size that is answered quickly (under [`FAST`], or an eighth of the request
//! timeout if that is shorter) doubles the size for the next ones, up to the configured cap.
//! An upload that is answered only after half the request timeout, or that times out, halves
//! it (never below one record); so does a `413`. So a fast link soon sends full batches (few
//! round trips and few commits on both sides), while on a slow link a batch stays small
//! enough to get through within the timeout, and an SOS raised during a report upload waits
//! behind a single upload of a few seconds at most. Sizes live with the sync configuration
//! (in memory, for every sync until the next `configure_sync`); a restarted app starts small
//! again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::model::Lane;

/// Most records in a lane's first upload (or the configured cap, if lower).
pub const INITIAL_RECORDS: u32 = 50;

/// An upload answered within this time (or an eighth of the request timeout, if shorter)
/// lets the next ones double.
pub const FAST: Duration = Duration::from_secs(2);

/// How an upload of one batch ended, as far as its size is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Answered after this long.
    Answered(Duration),
    /// No answer within the request timeout.
    TimedOut,
    /// The server said the request was too large (`413`).
    TooLarge,
}

/// The current upload size of each lane.
#[derive(Debug)]
pub struct BatchSizer {
    max: u32,
    request_timeout: Duration,
    limits: [AtomicU32; 2],
}

fn slot(lane: Lane) -> usize {
    match lane {
        Lane::Sos => 0,
        Lane::Report => 1,
    }
}

impl BatchSizer {
    /// Sizes capped at `max` records, for requests that time out after `request_timeout`.
    pub fn new(max: u32, request_timeout: Duration) -> Self {
        let max = max.max(1);
        let start = INITIAL_RECORDS.min(max);
        BatchSizer {
            max,
            request_timeout,
            limits: [AtomicU32::new(start), AtomicU32::new(start)],
        }
    }

    /// Most records for the next upload of `lane`.
    pub fn limit(&self, lane: Lane) -> u32 {
        self.limits[slot(lane)].load(Ordering::Relaxed)
    }

    /// Records how an upload of `sent` records in `lane` ended; returns the lane's new limit.
    pub fn record(&self, lane: Lane, sent: usize, upload: Upload) -> u32 {
        let current = self.limit(lane);
        let next = next_limit(current, sent, upload, self.max, self.request_timeout);
        self.limits[slot(lane)].store(next, Ordering::Relaxed);
        if next != current {
            log::debug!("upload size of lane {lane:?}: {current} -> {next} records");
        }
        next
    }
}

/// The size after an upload of `sent` records (the size was `current`) ended as `upload`.
fn next_limit(current: u32, sent: usize, upload: Upload, max: u32, timeout: Duration) -> u32 {
    let sent = u32::try_from(sent).unwrap_or(u32::MAX);
    let halved = (sent / 2).clamp(1, max);
    match upload {
        Upload::TimedOut | Upload::TooLarge => halved,
        Upload::Answered(took) if took > timeout / 2 => halved.min(current),
        Upload::Answered(took)
            if took < FAST.min(timeout / 8) && sent.saturating_mul(2) >= current =>
        {
            current.saturating_mul(2).min(max)
        }
        Upload::Answered(_) => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(30);
    const QUICK: Upload = Upload::Answered(Duration::from_millis(5));

    #[test]
    fn starts_small_and_doubles_while_uploads_are_quick_up_to_the_cap() {
        let s = BatchSizer::new(1000, T);
        assert_eq!(s.limit(Lane::Report), INITIAL_RECORDS);
        let mut seen = vec![];
        for _ in 0..8 {
            let n = s.limit(Lane::Report) as usize;
            seen.push(s.record(Lane::Report, n, QUICK));
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        // The other lane has its own size.
        assert_eq!(s.limit(Lane::Sos), INITIAL_RECORDS);
    }

    #[test]
    fn a_cap_below_the_initial_size_is_the_size() {
        let s = BatchSizer::new(3, T);
        assert_eq!(s.limit(Lane::Sos), 3);
        assert_eq!(s.record(Lane::Sos, 3, QUICK), 3);
    }

    #[test]
    fn a_small_quick_upload_is_no_reason_to_grow() {
        let s = BatchSizer::new(1000, T);
        assert_eq!(s.record(Lane::Sos, 24, QUICK), 50);
        assert_eq!(s.record(Lane::Sos, 25, QUICK), 100);
    }

    #[test]
    fn slow_uploads_and_timeouts_halve_down_to_one_record() {
        let s = BatchSizer::new(1000, T);
        for _ in 0..4 {
            let n = s.limit(Lane::Report) as usize;
            s.record(Lane::Report, n, QUICK);
        }
        assert_eq!(s.limit(Lane::Report), 800);
        let slow = Upload::Answered(Duration::from_secs(16));
        assert_eq!(s.record(Lane::Report, 800, slow), 400);
        assert_eq!(s.record(Lane::Report, 400, Upload::TimedOut), 200);
        assert_eq!(s.record(Lane::Report, 200, Upload::TooLarge), 100);
        let mut last = 0;
        for _ in 0..10 {
            last = s.record(
                Lane::Report,
                s.limit(Lane::Report) as usize,
                Upload::TimedOut,
            );
        }
        assert_eq!(last, 1);
        // A timed-out single record stays a single record.
        assert_eq!(s.record(Lane::Report, 1, Upload::TimedOut), 1);
    }

    #[test]
    fn in_between_keeps_the_size() {
        let s = BatchSizer::new(1000, T);
        assert_eq!(
            s.record(Lane::Sos, 50, Upload::Answered(Duration::from_secs(5))),
            50
        );
        // A slow small upload never raises the size.
        let slow = Upload::Answered(Duration::from_secs(20));
        assert_eq!(s.record(Lane::Sos, 50, slow), 25);
        assert_eq!(s.record(Lane::Sos, 200, slow), 25);
    }

    #[test]
    fn a_short_request_timeout_lowers_what_counts_as_quick() {
        // With a 4 s timeout, quick means under 0.5 s.
        let s = BatchSizer::new(1000, Duration::from_secs(4));
        let took = Upload::Answered(Duration::from_millis(800));
        assert_eq!(s.record(Lane::Sos, 50, took), 50);
        let took = Upload::Answered(Duration::from_millis(400));
        assert_eq!(s.record(Lane::Sos, 50, took), 100);
    }
}
