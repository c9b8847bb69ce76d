//! Per-IP token buckets: `max` requests in a burst, refilled at `max` per
//! window, like GoTrue's tollbooth limiters. Time is an argument (Unix
//! seconds), so the limiter is tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::RateLimit;

/// Full buckets are forgotten once the map holds this many IPs, so memory
/// stays bounded by recently active clients rather than every client ever.
const PRUNE_AT_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_at: u64,
}

/// One limit applied separately to each client IP. `Debug` prints the number
/// of tracked IPs, never the IPs.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<IpAddr, Bucket>,
    prune_at: usize,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limit", &self.limit)
            .field("tracked_ips", &self.buckets.len())
            .finish()
    }
}

impl RateLimiter {
    /// A limiter allowing `limit.max` requests per `limit.per` for each IP.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
            prune_at: PRUNE_AT_ENTRIES,
        }
    }

    /// Takes one request's worth from `ip`'s bucket at `now`; `false` means
    /// over the limit (and nothing was taken).
    pub fn try_acquire(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.buckets.len() >= self.prune_at {
            self.prune(now);
        }
        let capacity = f64::from(self.limit.max);
        let refill_per_second = self.refill_per_second();
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            updated_at: now,
        });
        let elapsed = now.saturating_sub(bucket.updated_at) as f64;
        bucket.tokens = (bucket.tokens + elapsed * refill_per_second).min(capacity);
        bucket.updated_at = bucket.updated_at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill_per_second(&self) -> f64 {
        f64::from(self.limit.max) / self.limit.per.as_secs_f64()
    }

    /// Drops buckets that have refilled completely: forgetting them changes
    /// nothing, since a new bucket starts full.
    fn prune(&mut self, now: u64) {
        let window = self.limit.per.as_secs();
        self.buckets
            .retain(|_, bucket| now.saturating_sub(bucket.updated_at) < window);
        // Pruning is O(n); doubling the threshold keeps it amortised O(1) when
        // many IPs are genuinely active.
        self.prune_at = PRUNE_AT_ENTRIES.max(self.buckets.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    const T0: u64 = 1_800_000_000;
    const HOUR: u64 = 3600;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn thirty_per_hour() -> RateLimiter {
        RateLimiter::new(RateLimit {
            max: 30,
            per: Duration::from_secs(HOUR),
        })
    }

    #[test]
    fn allows_a_burst_of_max_then_refuses() {
        let mut limiter = thirty_per_hour();
        for n in 0..30 {
            assert!(limiter.try_acquire(ip(1), T0), "request {n}");
        }
        assert!(!limiter.try_acquire(ip(1), T0));
        assert!(!limiter.try_acquire(ip(1), T0 + 1));
    }

    #[test]
    fn ips_are_limited_separately() {
        let mut limiter = thirty_per_hour();
        for _ in 0..30 {
            assert!(limiter.try_acquire(ip(1), T0));
        }
        assert!(!limiter.try_acquire(ip(1), T0));
        assert!(limiter.try_acquire(ip(2), T0));
    }

    #[test]
    fn refills_one_request_per_window_over_max() {
        let mut limiter = thirty_per_hour();
        for _ in 0..30 {
            assert!(limiter.try_acquire(ip(1), T0));
        }
        // 30/hour refills one token every 120 s.
        assert!(!limiter.try_acquire(ip(1), T0 + 119));
        assert!(limiter.try_acquire(ip(1), T0 + 120));
        assert!(!limiter.try_acquire(ip(1), T0 + 121));
        // A full hour later the whole burst is back, and no more.
        let later = T0 + 120 + HOUR;
        for _ in 0..30 {
            assert!(limiter.try_acquire(ip(1), later));
        }
        assert!(!limiter.try_acquire(ip(1), later));
    }

    #[test]
    fn a_clock_stepping_back_does_not_refill() {
        let mut limiter = thirty_per_hour();
        for _ in 0..30 {
            assert!(limiter.try_acquire(ip(1), T0));
        }
        assert!(!limiter.try_acquire(ip(1), T0 - HOUR));
        assert!(!limiter.try_acquire(ip(1), T0));
    }

    #[test]
    fn idle_buckets_are_pruned_and_busy_ones_kept() {
        let mut limiter = thirty_per_hour();
        assert!(limiter.try_acquire(ip(1), T0 + HOUR));
        for n in 0..(PRUNE_AT_ENTRIES - 1) {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n as u32));
            assert!(limiter.try_acquire(addr, T0));
        }
        assert_eq!(limiter.buckets.len(), PRUNE_AT_ENTRIES);
        assert!(limiter.try_acquire(ip(2), T0 + HOUR));
        assert_eq!(limiter.buckets.len(), 2, "only the two recent IPs remain");
    }
}
