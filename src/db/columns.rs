//! How the exported enums sit in SQL columns: one `ToSql`/`FromSql` per type. Words that cross
//! the wire (record kind, lane, dispatch status) are the protocol's own spellings; a sync state
//! is local to the phone and spelled here, once. A word this build does not know reads as a
//! conversion error (a file damaged or written by something else).

use crewsafe_protocol as proto;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::{DispatchStatus, Lane, RecordKind, SyncState};

/// Implements the column conversions of a model enum through its protocol twin.
macro_rules! via_protocol {
    ($model:ty, $proto:ty) => {
        impl ToSql for $model {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(
                    <$proto>::from(*self).as_str().as_bytes(),
                )))
            }
        }

        impl FromSql for $model {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                <$proto>::column_result(v).map(Into::into)
            }
        }
    };
}

via_protocol!(RecordKind, proto::Kind);
via_protocol!(Lane, proto::Lane);
via_protocol!(DispatchStatus, proto::DispatchStatus);

impl SyncState {
    /// The word of a stored delivery state (`None` for `Draft`: drafts have their own table).
    pub(crate) fn stored(self) -> Option<&'static str> {
        match self {
            SyncState::Draft => None,
            SyncState::Queued => Some("queued"),
            SyncState::Sending => Some("sending"),
            SyncState::Delivered => Some("delivered"),
            SyncState::Wedged => Some("wedged"),
        }
    }
}

impl ToSql for SyncState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let word = self.stored().ok_or_else(|| {
            rusqlite::Error::ToSqlConversionFailure("a draft is not a stored record state".into())
        })?;
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(word.as_bytes())))
    }
}

impl FromSql for SyncState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let word = v.as_str()?;
        [
            SyncState::Queued,
            SyncState::Sending,
            SyncState::Delivered,
            SyncState::Wedged,
        ]
        .into_iter()
        .find(|s| s.stored() == Some(word))
        .ok_or_else(|| FromSqlError::Other("unknown record state".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::Vocabulary;
    use rusqlite::Connection;

    /// The schema's CHECK constraints (shipped migrations spell the words in SQL, and cannot
    /// change) accept exactly the words of the one definition: every word is stored, and a
    /// word outside it is refused.
    #[test]
    fn the_schema_takes_every_word_and_only_those() {
        let c = Connection::open_in_memory().unwrap();
        crate::db::schema::upgrade_from(&c, 0).unwrap();
        let insert =
            |id: &str, kind: &dyn ToSql, lane: &dyn ToSql, state: &dyn ToSql, d: &dyn ToSql| {
                c.execute(
                    "INSERT INTO records (id, kind, lane, state, dispatch_status) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![id, kind, lane, state, d],
                )
            };
        let mut n = 0;
        for &k in proto::Kind::ALL {
            for &d in proto::DispatchStatus::ALL {
                for s in [
                    SyncState::Queued,
                    SyncState::Sending,
                    SyncState::Delivered,
                    SyncState::Wedged,
                ] {
                    n += 1;
                    let kind = RecordKind::from(k);
                    let lane = Lane::from(k.lane());
                    insert(&n.to_string(), &kind, &lane, &s, &DispatchStatus::from(d)).unwrap();
                    let back: (RecordKind, Lane, SyncState, DispatchStatus) = c
                        .query_row(
                            "SELECT kind, lane, state, dispatch_status FROM records WHERE id = ?1",
                            [n.to_string()],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                        )
                        .unwrap();
                    assert_eq!(back, (kind, lane, s, DispatchStatus::from(d)));
                }
            }
        }
        for bad in [
            ("x1", "sosx", "sos", "queued", "delivered"),
            ("x2", "sos", "lane", "queued", "delivered"),
            ("x3", "sos", "sos", "lost", "delivered"),
            ("x4", "sos", "sos", "queued", "seen"),
        ] {
            assert!(
                insert(bad.0, &bad.1, &bad.2, &bad.3, &bad.4).is_err(),
                "{bad:?}"
            );
        }
    }

    fn round_trip<T: ToSql + FromSql + PartialEq + std::fmt::Debug>(v: T) {
        let c = Connection::open_in_memory().unwrap();
        let back: T = c.query_row("SELECT ?1", [&v], |r| r.get(0)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn every_word_round_trips_through_a_column() {
        for &k in proto::Kind::ALL {
            round_trip(RecordKind::from(k));
        }
        for &l in proto::Lane::ALL {
            round_trip(Lane::from(l));
        }
        for &d in proto::DispatchStatus::ALL {
            round_trip(DispatchStatus::from(d));
        }
        for s in [
            SyncState::Queued,
            SyncState::Sending,
            SyncState::Delivered,
            SyncState::Wedged,
        ] {
            round_trip(s);
        }
        let c = Connection::open_in_memory().unwrap();
        assert!(c
            .query_row("SELECT 'sosx'", [], |r| r.get::<_, RecordKind>(0))
            .is_err());
        assert!(c
            .query_row("SELECT ?1", [&SyncState::Draft], |r| r.get::<_, String>(0))
            .is_err());
    }
}
