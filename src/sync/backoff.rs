//! Retry timing: exponential backoff with full jitter and a cap, and the server's
//! Retry-After as a floor.

use ring::rand::{SecureRandom, SystemRandom};

/// Delay before the next attempt after `failures` consecutive failures (0 = first failure):
/// a uniform draw in `[base/2, min(cap, base * 2^failures)]`, using `rand` as the draw.
pub fn delay_ms(failures: u32, base_ms: u64, cap_ms: u64, rand: u64) -> u64 {
    let ceiling = base_ms
        .saturating_mul(1u64.checked_shl(failures.min(32)).unwrap_or(u64::MAX))
        .min(cap_ms)
        .max(1);
    let floor = (base_ms / 2).min(ceiling);
    floor + rand % (ceiling - floor + 1)
}

/// A random draw for the jitter.
pub fn draw() -> u64 {
    let mut b = [0u8; 8];
    // A failing system RNG only makes the jitter less random.
    let _ = SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_in_range() {
        for f in 0..40 {
            for r in [0, 1, 12345, u64::MAX] {
                let d = delay_ms(f, 1000, 60_000, r);
                let ceiling = (1000u64 << f.min(20)).min(60_000);
                assert!(d >= 500 && d <= ceiling, "f={f} r={r} d={d}");
            }
        }
        assert_eq!(delay_ms(0, 1000, 60_000, 0), 500);
        assert_eq!(delay_ms(10, 1000, 60_000, 59_500), 60_000);
    }
}
