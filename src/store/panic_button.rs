//! The panic button: an SOS raised with as little work at the FFI boundary as possible.
//! `CrewStore::raise_sos_quick` takes the fix as plain numbers; `raise_sos_now`, a free
//! function, also spares the call on the store object and the returned id (from Kotlin each
//! is one more crossing with its own allocations), and raises on the store that `set_crew`
//! armed last.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use super::{queue_on, R};
use crate::error::{CrewSafeError, StoreError};
use crate::model::{LocationFix, LocationProvider, RecordKind, Sos};
use crate::sync::Shared;

/// The store `set_crew` was called on last.
static ARMED: Mutex<Option<Weak<Shared>>> = Mutex::new(None);

/// A fix as the panic button takes it.
pub(super) struct Fix {
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_m: f64,
    pub fixed_at_ms: i64,
}

/// Makes `shared` the store `raise_sos_now` raises on.
pub(super) fn arm(shared: &Arc<Shared>) {
    *ARMED.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::downgrade(shared));
}

/// Raises an SOS for the crew set on this store, with the fix (NaN latitude: none).
pub(super) fn raise(shared: &Shared, fix: Fix) -> R<Sos> {
    let location = (!fix.latitude.is_nan()).then(|| LocationFix {
        latitude: fix.latitude,
        longitude: fix.longitude,
        accuracy_m: fix.accuracy_m,
        altitude_m: None,
        provider: LocationProvider::Fused,
        fixed_at: SystemTime::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(fix.fixed_at_ms).unwrap_or(0)),
    });
    queue_on(
        shared,
        RecordKind::Sos,
        |s: &Sos| &s.id,
        |db| {
            let crew = db
                .quick_crew
                .clone()
                .ok_or_else(|| StoreError::State("call set_crew before raising quickly".into()))?;
            db.raise_sos(crew, location, None)
        },
    )
}

/// The panic button: raises an SOS on the store that `set_crew` was called on last, for that
/// crew, with a fix as plain numbers (a NaN `latitude` means no fix; `fixed_at_ms` is
/// milliseconds since the Unix epoch; the provider is `Fused`). Stored and queued, first in
/// line, before this returns, like `raise_sos`. It returns nothing, so that from Kotlin or
/// Swift it is a single call with no buffers: the new SOS reaches record listeners and
/// `list_records_page` like any other. `InvalidState` when no open store has a crew set;
/// `Closed` when that store was closed.
#[uniffi::export]
pub fn raise_sos_now(
    latitude: f64,
    longitude: f64,
    accuracy_m: f64,
    fixed_at_ms: i64,
) -> Result<(), CrewSafeError> {
    let armed = ARMED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let shared = armed.and_then(|w| w.upgrade()).ok_or_else(|| {
        CrewSafeError::from(StoreError::State(
            "no open store has a crew: call set_crew first".into(),
        ))
    })?;
    let fix = Fix {
        latitude,
        longitude,
        accuracy_m,
        fixed_at_ms,
    };
    raise(&shared, fix).map(drop)
}

/// `raise_sos_now` timed inside the library, in nanoseconds (test-only, with the
/// `test-hooks` feature): the same-run baseline of the Kotlin FFI benchmark.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
pub fn debug_timed_raise_sos_now(
    latitude: f64,
    longitude: f64,
    accuracy_m: f64,
    fixed_at_ms: i64,
) -> Result<u64, CrewSafeError> {
    super::nanos_of(|| raise_sos_now(latitude, longitude, accuracy_m, fixed_at_ms))
}
