//! Per-privacy-unit contribution bounding.
//!
//! [`RowBounder`] keeps at most `k` rows per privacy unit. Rows are offered one at a time
//! (streaming); each unit keeps an independent reservoir (Vitter's Algorithm R): the n-th row
//! of a unit (n > k) replaces a uniformly chosen kept row with probability k/n. After the
//! stream, every k-subset of a unit's rows is equally likely to be the kept set. Random
//! indices are drawn exactly (rejection sampling) from a seeded CSPRNG.

use std::collections::HashMap;
use std::hash::Hash;

use rand_core::{CryptoRng, RngCore};

use crate::rng::{seeded_rng, DpRng};
use crate::sampler::uniform_below;
use crate::DpError;

/// Counters describing a bounding pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoundStats {
    /// Distinct privacy units seen.
    pub units: u64,
    /// Rows offered.
    pub rows_seen: u64,
    /// Rows dropped because their unit already had `k` rows kept.
    pub rows_dropped: u64,
}

struct Reservoir<R> {
    seen: u64,
    rows: Vec<R>,
}

/// Streaming per-unit row bounder (see the module docs).
pub struct RowBounder<K: Hash + Eq + Ord, R, G: RngCore + CryptoRng = DpRng> {
    k: u32,
    rng: G,
    units: HashMap<K, Reservoir<R>>,
    rows_seen: u64,
}

impl<K: Hash + Eq + Ord, R> RowBounder<K, R, DpRng> {
    /// At most `max_rows_per_unit` (>= 1) rows per unit, randomness from ChaCha20 seeded with
    /// `seed` (inside the enclave: platform randomness).
    pub fn new(max_rows_per_unit: u32, seed: [u8; 32]) -> Result<Self, DpError> {
        Self::with_rng(max_rows_per_unit, seeded_rng(seed))
    }
}

impl<K: Hash + Eq + Ord, R, G: RngCore + CryptoRng> RowBounder<K, R, G> {
    /// Like [`RowBounder::new`] with a caller-supplied CSPRNG.
    pub fn with_rng(max_rows_per_unit: u32, rng: G) -> Result<Self, DpError> {
        if max_rows_per_unit == 0 {
            return Err(DpError::ZeroBound("max_rows_per_unit"));
        }
        Ok(RowBounder { k: max_rows_per_unit, rng, units: HashMap::new(), rows_seen: 0 })
    }

    /// The per-unit row bound `k`.
    pub fn max_rows_per_unit(&self) -> u32 {
        self.k
    }

    /// Offer one row of `unit`.
    pub fn offer(&mut self, unit: K, row: R) {
        self.rows_seen = self.rows_seen.saturating_add(1);
        let k = self.k as usize;
        let res = self.units.entry(unit).or_insert_with(|| Reservoir { seen: 0, rows: Vec::new() });
        res.seen = res.seen.saturating_add(1);
        if res.rows.len() < k {
            res.rows.push(row);
            return;
        }
        // Algorithm R: keep the n-th row with probability k/n, replacing a uniform slot.
        let j = uniform_below(u128::from(res.seen), &mut self.rng);
        if j < k as u128 {
            res.rows[j as usize] = row;
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> BoundStats {
        let kept: u64 = self.units.values().map(|r| r.rows.len() as u64).sum();
        BoundStats {
            units: self.units.len() as u64,
            rows_seen: self.rows_seen,
            rows_dropped: self.rows_seen.saturating_sub(kept),
        }
    }

    /// The kept rows per unit, sorted by unit.
    pub fn finish(self) -> Vec<(K, Vec<R>)> {
        self.finish_with_stats().0
    }

    /// The kept rows per unit (sorted by unit) and the counters.
    pub fn finish_with_stats(self) -> (Vec<(K, Vec<R>)>, BoundStats) {
        let stats = self.stats();
        let mut out: Vec<(K, Vec<R>)> = self.units.into_iter().map(|(k, r)| (k, r.rows)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        (out, stats)
    }
}

/// Group-by contribution bounding for partition selection: each unit keeps at most
/// `max_partitions_per_unit` of its distinct groups (chosen uniformly at random when it has
/// more, by a partial Fisher–Yates shuffle with exact uniform indices) and contributes 1 to
/// each kept group. Returns the number of distinct units per group, sorted by group, ready for
/// [`crate::mechanism::group_counts_with_selection`] with the same `m`.
pub fn distinct_units_per_group<K, G, I, Rg>(
    rows: I,
    max_partitions_per_unit: u32,
    rng: &mut Rg,
) -> Result<std::collections::BTreeMap<G, u64>, DpError>
where
    K: Ord,
    G: Ord + Clone,
    I: IntoIterator<Item = (K, G)>,
    Rg: RngCore + CryptoRng + ?Sized,
{
    use std::collections::{BTreeMap, BTreeSet};
    if max_partitions_per_unit == 0 {
        return Err(DpError::ZeroBound("max_partitions_per_unit"));
    }
    let m = max_partitions_per_unit as usize;
    let mut per_unit: BTreeMap<K, BTreeSet<G>> = BTreeMap::new();
    for (k, g) in rows {
        per_unit.entry(k).or_default().insert(g);
    }
    let mut counts: BTreeMap<G, u64> = BTreeMap::new();
    for (_, groups) in per_unit {
        let mut gs: Vec<G> = groups.into_iter().collect();
        if gs.len() > m {
            for i in 0..m {
                let j = i + uniform_below((gs.len() - i) as u128, rng) as usize;
                gs.swap(i, j);
            }
            gs.truncate(m);
        }
        for g in gs {
            let c = counts.entry(g).or_insert(0);
            *c = c.checked_add(1).ok_or(DpError::Overflow("group count"))?;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_k_sorted_with_stats() {
        let mut b = RowBounder::new(2, [1; 32]).unwrap();
        for (u, r) in [("b", 1), ("a", 2), ("b", 3), ("b", 4), ("c", 5), ("b", 6)] {
            b.offer(u, r);
        }
        let st = b.stats();
        assert_eq!(st, BoundStats { units: 3, rows_seen: 6, rows_dropped: 2 });
        let out = b.finish();
        let keys: Vec<_> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(out[0].1, vec![2]);
        assert_eq!(out[1].1.len(), 2);
        assert!(out[1].1.iter().all(|r| [1, 3, 4, 6].contains(r)));
        assert!(RowBounder::<u32, u32>::new(0, [0; 32]).is_err());
    }

    #[test]
    fn partitions_per_unit_are_bounded() {
        let mut rng = crate::rng::seeded_rng_from_u64(5);
        let rows = vec![("u1", "a"), ("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u3", "c")];
        let c = distinct_units_per_group(rows.clone(), 3, &mut rng).unwrap();
        assert_eq!(c.into_iter().collect::<Vec<_>>(), [("a", 2), ("b", 1), ("c", 2)]);
        let c = distinct_units_per_group(rows, 1, &mut rng).unwrap();
        assert_eq!(c.values().sum::<u64>(), 3); // one group per unit
        assert!(distinct_units_per_group(Vec::<(u8, u8)>::new(), 0, &mut rng).is_err());
        // uniform choice: u1 keeps each of its 3 groups with probability 1/3
        let mut hits = std::collections::BTreeMap::new();
        for _ in 0..30_000 {
            let c = distinct_units_per_group([(1, 'a'), (1, 'b'), (1, 'c')], 1, &mut rng).unwrap();
            *hits.entry(*c.keys().next().unwrap()).or_insert(0u32) += 1;
        }
        for (_, h) in hits {
            assert!((9_300..10_700).contains(&h), "{h}");
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed| {
            let mut b = RowBounder::new(3, seed).unwrap();
            for i in 0..1000u32 {
                b.offer(i % 7, i);
            }
            b.finish()
        };
        assert_eq!(run([9; 32]), run([9; 32]));
        assert_ne!(run([9; 32]), run([10; 32]));
    }

    #[test]
    fn reservoir_is_uniform() {
        // unit with 5 rows, k = 2: each row kept with probability 2/5, each pair with 1/10.
        let trials = 50_000;
        let mut per_row = [0u32; 5];
        let mut pairs = std::collections::HashMap::new();
        let mut rng = crate::rng::seeded_rng_from_u64(11);
        for _ in 0..trials {
            let mut b = RowBounder::with_rng(2, &mut rng).unwrap();
            for r in 0..5usize {
                b.offer(0u8, r);
            }
            let mut kept = b.finish().pop().unwrap().1;
            kept.sort();
            for &r in &kept {
                per_row[r] += 1;
            }
            *pairs.entry((kept[0], kept[1])).or_insert(0u32) += 1;
        }
        let expect = trials as f64 * 0.4;
        let sd = (trials as f64 * 0.4 * 0.6).sqrt();
        for c in per_row {
            assert!((c as f64 - expect).abs() < 6.0 * sd, "{per_row:?}");
        }
        assert_eq!(pairs.len(), 10);
        let pe = trials as f64 / 10.0;
        let psd = (trials as f64 * 0.1 * 0.9).sqrt();
        for (&p, &c) in &pairs {
            assert!((c as f64 - pe).abs() < 6.0 * psd, "{p:?}: {c}");
        }
    }
}
