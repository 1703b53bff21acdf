//! Which shard holds which privacy units.
//!
//! A unit's token is the owner's keyed HMAC of its identifier, so its first eight bytes
//! are uniform and unpredictable to anyone without the owner's key. Shard `i` of `n` holds
//! the tokens whose first eight bytes, read big-endian as `t`, satisfy
//! `floor(t · n / 2^64) = i`. That is a function of `n` and the token alone: public,
//! decided before any data is read, the same in every enclave; the ranges are disjoint and
//! cover all of `0..2^64`, so every unit is in exactly one shard and the per-unit
//! sensitivity of the summed aggregates is that of one enclave. Balanced in expectation,
//! and nobody without the key can steer a chosen person to a chosen shard.
//!
//! Ranges of chunks of the sealed dataset would not do: a unit's rows may straddle a chunk
//! boundary, and two shards would then each bound its rows to `k`, letting it contribute
//! up to `2k` rows and breaking the sensitivity the noise is scaled to.

use protocol::table::TOKEN_LEN;
use serde::{Deserialize, Serialize};

/// Most shards a job may have: enough for a fleet, small enough that a report per shard
/// and a channel per shard stay cheap for one coordinator.
pub const MAX_SHARDS: u16 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("a job needs 1..={MAX_SHARDS} shards, not {0}")]
    ShardCount(u16),
    #[error("shard {index} is not one of the job's {shards}")]
    NoSuchShard { index: u16, shards: u16 },
}

/// The assignment of units to `shards` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    shards: u16,
}

/// The token prefixes `first..=last` (first eight bytes, big-endian) one shard holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRange {
    pub first: u64,
    pub last: u64,
}

impl UnitRange {
    pub fn contains(&self, token: &[u8; TOKEN_LEN]) -> bool {
        (self.first..=self.last).contains(&prefix(token))
    }
}

/// The token's first eight bytes, big-endian: tokens sort as their prefixes do.
pub fn prefix(token: &[u8; TOKEN_LEN]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&token[..8]);
    u64::from_be_bytes(b)
}

impl Plan {
    pub fn new(shards: u16) -> Result<Plan, PlanError> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(PlanError::ShardCount(shards));
        }
        Ok(Plan { shards })
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// The shard that holds `token`.
    pub fn shard_of(&self, token: &[u8; TOKEN_LEN]) -> u16 {
        // floor(t · n / 2^64) < n: fits.
        ((u128::from(prefix(token)) * u128::from(self.shards)) >> 64) as u16
    }

    /// Shard `index`'s range: the prefixes t with floor(t · n / 2^64) = index, i.e. from
    /// ceil(index · 2^64 / n) up to the next shard's first minus one.
    pub fn range(&self, index: u16) -> Result<UnitRange, PlanError> {
        if index >= self.shards {
            return Err(PlanError::NoSuchShard { index, shards: self.shards });
        }
        let start = |i: u16| -> u128 { (u128::from(i) << 64).div_ceil(u128::from(self.shards)) };
        let first = start(index) as u64;
        let last = (start(index + 1) - 1) as u64;
        Ok(UnitRange { first, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(p: u64) -> [u8; TOKEN_LEN] {
        let mut t = [0xa5u8; TOKEN_LEN];
        t[..8].copy_from_slice(&p.to_be_bytes());
        t
    }

    #[test]
    fn ranges_are_disjoint_contiguous_and_cover_every_token() {
        for n in [1u16, 2, 3, 7, 10, 255, 1000, MAX_SHARDS] {
            let plan = Plan::new(n).unwrap();
            let ranges: Vec<UnitRange> = (0..n).map(|i| plan.range(i).unwrap()).collect();
            assert_eq!(ranges[0].first, 0, "{n}");
            assert_eq!(ranges[n as usize - 1].last, u64::MAX, "{n}");
            for w in ranges.windows(2) {
                assert!(w[0].first <= w[0].last, "{n}: empty range");
                assert_eq!(w[0].last.checked_add(1), Some(w[1].first), "{n}: gap or overlap");
            }
            // shard_of agrees with the ranges at every boundary and just around it.
            for (i, r) in ranges.iter().enumerate() {
                for p in [r.first, r.first.saturating_add(1), r.last.saturating_sub(1), r.last] {
                    if r.contains(&token(p)) {
                        assert_eq!(plan.shard_of(&token(p)) as usize, i, "{n} shards, prefix {p}");
                    }
                }
            }
        }
    }

    #[test]
    fn pseudorandom_tokens_spread_evenly() {
        let plan = Plan::new(3).unwrap();
        let mut counts = [0u32; 3];
        for i in 0..30_000u32 {
            let d = protocol::Digest::of(&i.to_be_bytes());
            counts[plan.shard_of(&d.0) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn bad_shard_counts_and_indices_are_refused() {
        assert_eq!(Plan::new(0), Err(PlanError::ShardCount(0)));
        assert_eq!(Plan::new(MAX_SHARDS + 1), Err(PlanError::ShardCount(MAX_SHARDS + 1)));
        assert_eq!(Plan::new(3).unwrap().range(3), Err(PlanError::NoSuchShard { index: 3, shards: 3 }));
    }
}
