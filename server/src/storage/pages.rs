//! The dispatcher list a page at a time, the part both backends share: what a page asks for
//! ([`AlarmQuery`]), where it continues ([`Position`]) and what it answers ([`AlarmPage`]);
//! and the alarm counts of the `/metrics` gauges ([`AlarmCounts`]).
//!
//! Alarms are listed in receive order: by the server time each was received (`delivered_at`
//! of its `sos_status` row: an SOS's `received_at`, a missed check-in's raise time), ties by
//! `seq`. A page is a keyset: the alarms after the position of the previous page's last one,
//! never an offset. So an alarm received between two pages comes on a later page and none is
//! listed twice; the status filter applies to the status at the time each page is read.
//! Each backend reads a page in one range scan of an index on `(delivered time, seq)`, or
//! with a status filter one per status on `(status, delivered time, seq)`, merged
//! (`sqlite/dispatch.rs`, `postgres/dispatch.rs`).

use chrono::{DateTime, Utc};
use crewsafe_protocol::{AlarmKind, DispatchSos, DispatchStatus};

/// Where a page continues: after the alarm received at `received_us` with `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The alarm's receive time, Unix microseconds.
    pub(crate) received_us: i64,
    /// The alarm's `seq` (ties of receive time).
    pub(crate) seq: i64,
}

/// One page of the dispatcher list: which alarms, after which position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlarmQuery {
    /// Only alarms with one of these statuses (each once); empty: every status.
    pub(crate) statuses: Vec<DispatchStatus>,
    /// Only alarms of this kind.
    pub(crate) alarm: Option<AlarmKind>,
    /// Only alarms received at or after this time (Unix microseconds).
    pub(crate) since_us: Option<i64>,
    /// Only alarms received before this time (Unix microseconds).
    pub(crate) until_us: Option<i64>,
    /// Only alarms after this position (the previous page's [`AlarmPage::next`]).
    pub(crate) after: Option<Position>,
    /// Most alarms in the page (at least 1).
    pub(crate) limit: u32,
}

impl AlarmQuery {
    /// Every alarm, a page of `limit` at a time from the first.
    pub(crate) fn all(limit: u32) -> Self {
        Self {
            statuses: Vec::new(),
            alarm: None,
            since_us: None,
            until_us: None,
            after: None,
            limit,
        }
    }

    /// How many keys a backend reads: one more than the page, to know whether more follow.
    pub(crate) fn keys_to_read(&self) -> i64 {
        i64::from(self.limit.max(1)) + 1
    }
}

/// The position of a listed alarm's key: `(delivered time in Unix microseconds, seq)`.
pub(crate) type Key = (i64, i64);

/// The views of one page and where the next one starts (`None` after the last alarm).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlarmPage {
    /// The alarms, in receive order.
    pub(crate) sos: Vec<DispatchSos>,
    /// The position of the page's last alarm, when more alarms match after it.
    pub(crate) next: Option<Position>,
}

/// Splits the keys a backend read (at most [`AlarmQuery::keys_to_read`], in order) into the
/// page's keys and the position the next page starts after, if any follow.
pub(crate) fn split_keys(query: &AlarmQuery, mut keys: Vec<Key>) -> (Vec<Key>, Option<Position>) {
    let limit = query.limit.max(1) as usize;
    if keys.len() <= limit {
        return (keys, None);
    }
    keys.truncate(limit);
    let next = keys
        .last()
        .map(|&(received_us, seq)| Position { received_us, seq });
    (keys, next)
}

/// The time of Unix microseconds `us` (saturating at the ends of what chrono knows).
pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The alarm counts of the `/metrics` gauges, counted in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlarmCounts {
    /// Alarms not resolved (delivered or acknowledged).
    pub(crate) open: u64,
    /// Alarms still delivered: no dispatcher acknowledged them.
    pub(crate) unacknowledged: u64,
    /// When the server received the oldest unacknowledged alarm.
    pub(crate) oldest_unacknowledged: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_its_limit_and_points_after_its_last_key() {
        let q = AlarmQuery::all(2);
        assert_eq!(q.keys_to_read(), 3);
        let (keys, next) = split_keys(&q, vec![(5, 1), (5, 2), (6, 3)]);
        assert_eq!(keys, vec![(5, 1), (5, 2)]);
        assert_eq!(
            next,
            Some(Position {
                received_us: 5,
                seq: 2
            })
        );
        let (keys, next) = split_keys(&q, vec![(5, 1), (5, 2)]);
        assert_eq!(keys.len(), 2);
        assert_eq!(next, None);
    }

    #[test]
    fn microseconds_round_trip() {
        let t = crate::storage::now();
        assert_eq!(from_micros(t.timestamp_micros()), t);
        assert_eq!(from_micros(i64::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
