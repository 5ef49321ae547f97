//! Shared test material for the integration tests, benchmarks and fuzz targets (reached
//! through [`crate::internals`]): one seedable generator and one set of sample content. Not
//! part of the API apps use.

use std::time::{Duration, SystemTime};

use crate::model::{
    CrewIdentity, HarmedStaff, IncidentFields, IncidentKind, LocationFix, LocationProvider,
    Severity, StaffRole, Witness,
};

/// splitmix64: a small, seedable generator (no dependency), so that a failing randomized run
/// can be replayed from its printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A seed from the clock (print it, so that the run can be replayed).
    pub fn clock_seed() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with the given percentage.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The sample crew, on device `device-0001`.
pub fn crew() -> CrewIdentity {
    CrewIdentity {
        device_id: "device-0001".into(),
        crew_id: "astana-brigade-12".into(),
        staff_id: Some("staff-77".into()),
    }
}

/// A GPS fix in Astana, taken now.
pub fn fix() -> LocationFix {
    LocationFix {
        latitude: 51.1694,
        longitude: 71.4491,
        accuracy_m: 6.5,
        altitude_m: Some(347.0),
        provider: LocationProvider::Gps,
        fixed_at: SystemTime::now(),
    }
}

/// A report that passes every finalize rule.
pub fn complete_fields() -> IncidentFields {
    IncidentFields {
        occurred_at: Some(SystemTime::now() - Duration::from_secs(1800)),
        location: Some(fix()),
        address: Some("Kenesary st 40, apt 12".into()),
        kind: Some(IncidentKind::PhysicalAssault),
        severity: Some(Severity::Serious),
        staff_harmed: vec![HarmedStaff {
            role: StaffRole::Paramedic,
            name: Some("A. Seitkali".into()),
            injury_description: Some("struck on the head".into()),
        }],
        perpetrator_description: Some("male, about 40, intoxicated".into()),
        witnesses: vec![Witness {
            name: "Neighbour".into(),
            contact: Some("+7 700 000 0000".into()),
        }],
        police_called: Some(true),
        police_report_number: Some("KUI-2026-1234".into()),
        dispatch_call_number: Some("103-556677".into()),
        narrative: Some("The patient's son attacked the paramedic during treatment.".into()),
    }
}
