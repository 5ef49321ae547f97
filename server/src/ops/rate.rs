//! The per-device request rate limit: one token bucket per device id, refilled at a steady
//! rate up to a burst. A request that finds its device's bucket empty is answered 429 with
//! `Retry-After` (whole seconds until a token is back), which the phone honours.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets by device id.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Tokens added per second; 0 turns the limit off.
    per_sec: f64,
    /// Bucket size: requests a device may send at once after a quiet spell.
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_device: HashMap<String, Bucket>,
    /// Size of the map after the last sweep: the next sweep comes when it has doubled.
    swept_at_len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_sec` requests per second sustained, `burst` at once; `per_sec == 0` is no limit.
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes a token for `device`: `Ok` if it had one, else `Err(seconds to wait)` (at least
    /// 1).
    pub(crate) fn check(&self, device: &str) -> Result<(), u64> {
        self.check_at(device, Instant::now())
    }

    fn check_at(&self, device: &str, now: Instant) -> Result<(), u64> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.sweep(now, self.per_sec, self.burst);
        let burst = self.burst;
        let bucket = buckets
            .by_device
            .entry(device.to_string())
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_sec;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

impl Buckets {
    /// Forgets the buckets that have refilled completely (they are the same as no bucket), once
    /// the map has doubled since the last sweep: memory stays bounded by the active devices.
    fn sweep(&mut self, now: Instant, per_sec: f64, burst: f64) {
        if self.by_device.len() < 1024.max(self.swept_at_len * 2) {
            return;
        }
        self.by_device.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens + elapsed * per_sec < burst
        });
        self.swept_at_len = self.by_device.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", t0), Ok(()));
        }
        assert_eq!(limiter.check_at("a", t0), Err(1));
        // Another device has its own bucket.
        assert_eq!(limiter.check_at("b", t0), Ok(()));
        // Half a second at 2/s is one token.
        assert_eq!(
            limiter.check_at("a", t0 + Duration::from_millis(500)),
            Ok(())
        );
        assert_eq!(
            limiter.check_at("a", t0 + Duration::from_millis(500)),
            Err(1)
        );
        let slow = RateLimiter::new(1, 1);
        assert_eq!(slow.check_at("a", t0), Ok(()));
        assert_eq!(slow.check_at("a", t0), Err(1));
        assert_eq!(RateLimiter::new(0, 0).check_at("a", t0), Ok(()));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let limiter = RateLimiter::new(1000, 1);
        let t0 = Instant::now();
        for i in 0..5000 {
            let _ = limiter.check_at(&i.to_string(), t0 + Duration::from_secs(i));
        }
        let len = limiter.buckets.lock().unwrap().by_device.len();
        assert!(len < 1100, "{len}");
    }
}
