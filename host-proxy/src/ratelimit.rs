//! Token-bucket rate limiting for the front door, per peer address, in bounded memory.
//!
//! One bucket per peer: `burst` tokens, refilled at `per_second`. The map of buckets has
//! a hard size (`max_peers`): a flood from many addresses must not grow it without
//! bound. When it is full, buckets that have refilled completely are dropped first (a
//! full bucket is exactly what a new peer gets, so forgetting it changes nothing); if
//! that frees too little, the least recently seen quarter goes. An evicted peer that
//! comes back starts with a full burst again, which only matters to an attacker that
//! already holds more addresses than `max_peers`, and per-peer limits cannot stop that
//! one anyway: the global connection cap does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Default bound on remembered peers (a few MiB at most).
pub const DEFAULT_MAX_PEERS: usize = 65_536;

/// Which bucket a peer draws from. IPv6 peers are grouped by /64: one site usually holds
/// a whole /64, so per-address buckets would give it 2^64 of them.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    max_peers: usize,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64, max_peers: usize) -> Self {
        RateLimiter { per_second, burst, max_peers: max_peers.max(1), buckets: HashMap::new() }
    }

    /// Peers remembered now (never more than `max_peers`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Take one token for `peer` at time `now`; false means over the limit.
    pub fn allow(&mut self, peer: IpAddr, now: Instant) -> bool {
        let key = bucket_key(peer);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_peers {
            self.evict(now);
        }
        let (tokens, last) = self.buckets.entry(key).or_insert((self.burst, now));
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

    /// Make room: drop full buckets, then (if under a quarter was freed) the least
    /// recently seen quarter. Each call frees at least a quarter of the map, so the
    /// O(n) sweep costs O(1) per new peer amortized.
    fn evict(&mut self, now: Instant) {
        let (per_second, burst) = (self.per_second, self.burst);
        self.buckets.retain(|_, (tokens, last)| {
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * per_second < burst
        });
        let target = self.max_peers - self.max_peers / 4;
        if self.buckets.len() > target {
            let excess = self.buckets.len() - target;
            let mut seen: Vec<Instant> = self.buckets.values().map(|(_, last)| *last).collect();
            let (_, cutoff, _) = seen.select_nth_unstable(excess - 1);
            let cutoff = *cutoff;
            let mut dropped = 0;
            self.buckets.retain(|_, (_, last)| {
                if dropped < excess && *last <= cutoff {
                    dropped += 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn burst_then_refill() {
        let mut r = RateLimiter::new(1.0, 2.0, 16);
        let t = Instant::now();
        let (a, b) = (v4(1), v4(2));
        assert!(r.allow(a, t));
        assert!(r.allow(a, t));
        assert!(!r.allow(a, t));
        assert!(r.allow(b, t), "peers are independent");
        assert!(r.allow(a, t + Duration::from_millis(1100)));
    }

    #[test]
    fn a_hundred_thousand_peers_stay_within_the_bound() {
        let max = 4096;
        let mut r = RateLimiter::new(20.0, 80.0, max);
        let t = Instant::now();
        let mut peak = 0;
        for i in 0..100_000u32 {
            // Every peer drains a little, so no bucket is full and the LRU path runs too.
            let now = t + Duration::from_micros(u64::from(i));
            assert!(r.allow(v4(0x0a00_0000 + i), now));
            peak = peak.max(r.len());
        }
        assert!(peak <= max, "the map grew to {peak} peers, over its bound of {max}");
        assert!(r.len() >= max / 2, "eviction must not throw away more than it needs to: {}", r.len());
    }

    #[test]
    fn a_limited_peer_stays_limited_while_others_churn() {
        // The peer being limited is also the most recently seen one, so eviction under
        // churn from others drops older buckets first.
        let mut r = RateLimiter::new(0.001, 2.0, 64);
        let t = Instant::now();
        let bad = v4(7);
        assert!(r.allow(bad, t) && r.allow(bad, t));
        for i in 0..1000u32 {
            let now = t + Duration::from_millis(u64::from(i));
            r.allow(v4(0x0b00_0000 + i), now);
            assert!(!r.allow(bad, now), "the drained peer was given a fresh burst after {i} others");
        }
    }

    #[test]
    fn full_buckets_are_forgotten_first() {
        let mut r = RateLimiter::new(1000.0, 2.0, 4);
        let t = Instant::now();
        for i in 0..4 {
            r.allow(v4(i), t);
        }
        // A second later every bucket has refilled: all may go, nothing is lost.
        r.allow(v4(99), t + Duration::from_secs(1));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn ipv6_peers_share_a_bucket_per_slash_64() {
        let mut r = RateLimiter::new(0.001, 1.0, 16);
        let t = Instant::now();
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0xffff, 3, 4, 5));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(r.allow(a, t));
        assert!(!r.allow(b, t), "the same /64");
        assert!(r.allow(other, t));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(r.allow(mapped, t));
        assert!(!r.allow(v4(0x0a00_0001), t), "a v4-mapped address is its IPv4 peer");
    }
}
