//! Token-bucket rate limiting for the front door, per peer address.

use std::collections::HashMap;
use std::time::Instant;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter { per_second, burst, buckets: HashMap::new() }
    }

    /// Take one token for `peer` at time `now`; false means over the limit.
    pub fn allow(&mut self, peer: &str, now: Instant) -> bool {
        let (tokens, last) = self.buckets.entry(peer.to_string()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let mut r = RateLimiter::new(1.0, 2.0);
        let t = Instant::now();
        assert!(r.allow("a", t));
        assert!(r.allow("a", t));
        assert!(!r.allow("a", t));
        assert!(r.allow("b", t), "peers are independent");
        assert!(r.allow("a", t + Duration::from_millis(1100)));
    }
}
