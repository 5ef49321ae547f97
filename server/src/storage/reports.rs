//! The dispatcher report list: one page of incident reports at a time, newest first. Pages are
//! read by keyset on `records.seq` (receive order), so a page costs the same however deep it
//! is and reports stored while a dispatcher pages through never shift or repeat a page: the
//! next page starts below the last `seq` of the previous one. The time filters bound
//! `received_at` (the server's clock). Each backend reads the rows (`sqlite/records.rs`,
//! `postgres/records.rs`); what a page holds is decided here.

use chrono::{DateTime, Utc};

use super::stored::StoredRecord;

/// Which reports one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReportQuery {
    /// Most reports in the page (at least 1).
    pub(crate) limit: u32,
    /// Only reports received before the report with this `seq` (the previous page's last).
    pub(crate) before_seq: Option<i64>,
    /// Only reports received at or after this time.
    pub(crate) since: Option<DateTime<Utc>>,
    /// Only reports received before this time.
    pub(crate) until: Option<DateTime<Utc>>,
}

impl ReportQuery {
    /// How many rows a backend reads: one more than the page, to know whether another follows.
    pub(crate) fn rows(&self) -> i64 {
        i64::from(self.limit.max(1)) + 1
    }

    /// The `seq` bound a backend applies (`seq < this`).
    pub(crate) fn below(&self) -> i64 {
        self.before_seq.unwrap_or(i64::MAX)
    }
}

/// One page of reports, newest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReportPage {
    /// The reports.
    pub(crate) reports: Vec<StoredRecord>,
    /// The `seq` of the last report, when older ones follow (the next page's `before_seq`).
    pub(crate) next: Option<i64>,
}

impl ReportPage {
    /// The page from the rows a backend read for `q` (newest first, `(seq, record)`, at most
    /// [`ReportQuery::rows`] of them).
    pub(crate) fn from_rows(q: &ReportQuery, mut rows: Vec<(i64, StoredRecord)>) -> Self {
        let limit = q.limit.max(1) as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        Self {
            reports: rows.into_iter().map(|(_, r)| r).collect(),
            next,
        }
    }
}

/// A time in the form SQLite's comparisons of `received_at` use (see `sqlite/records.rs`):
/// whole seconds and nine fraction digits, so that text order is time order.
pub(crate) fn sortable_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::column::fmt_time;

    #[test]
    fn sortable_times_sort_like_times_whatever_the_stored_precision() {
        let whole = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap();
        let frac = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.5Z").unwrap();
        let (whole, frac) = (whole.with_timezone(&Utc), frac.with_timezone(&Utc));
        // The stored text does not sort ("…00Z" > "…00.5Z"); the sortable form does.
        assert!(fmt_time(whole) > fmt_time(frac));
        assert!(sortable_time(whole) < sortable_time(frac));
        assert_eq!(sortable_time(frac), "2026-11-25T10:00:00.500000000");
    }
}
