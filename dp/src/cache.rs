//! Averaging defence: an identical query on the same dataset version returns the cached noisy
//! answer without drawing new noise and without spending budget again.
//!
//! The key must identify the query completely: dataset digest/version, the canonical query
//! (columns, filters, grouping, bounds, mechanism) and its privacy parameters. Two keys that
//! differ in anything that changes the answer must differ; the enclave builds it from the
//! canonical encoding of the job spec.

use std::collections::BTreeMap;

use crate::accountant::PureDpAccountant;
use crate::rational::Epsilon;
use crate::DpError;

/// Was the answer computed now or taken from the cache?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Computed now; budget was spent.
    Fresh,
    /// Returned from the cache; nothing was spent.
    Cached,
}

/// A cache of released answers keyed by the full query identity.
#[derive(Debug, Clone)]
pub struct ReleaseCache<K: Ord, V: Clone> {
    entries: BTreeMap<K, V>,
}

impl<K: Ord, V: Clone> Default for ReleaseCache<K, V> {
    fn default() -> Self {
        ReleaseCache { entries: BTreeMap::new() }
    }
}

impl<K: Ord, V: Clone> ReleaseCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached answers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached answer for `key`, if any.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// Return the cached answer for `key`, or: check that `cost` fits `accountant`, run
    /// `release` (which draws the noise), spend `cost`, cache and return the answer. If
    /// `release` fails, nothing is spent and nothing is cached. The budget check happens before
    /// any noise is drawn.
    pub fn get_or_release(
        &mut self,
        key: K,
        cost: &Epsilon,
        accountant: &mut PureDpAccountant,
        release: impl FnOnce() -> Result<V, DpError>,
    ) -> Result<(V, CacheOutcome), DpError> {
        if let Some(v) = self.entries.get(&key) {
            return Ok((v.clone(), CacheOutcome::Cached));
        }
        if !accountant.can_spend(cost) {
            // produce the typed error without changing anything
            accountant.clone().spend(cost)?;
        }
        let v = release()?;
        accountant.spend(cost)?;
        self.entries.insert(key, v.clone());
        Ok((v, CacheOutcome::Fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::laplace_count;
    use crate::rng::seeded_rng_from_u64;

    #[test]
    fn identical_query_is_answered_from_cache_without_spending() {
        let e: Epsilon = "0.5".parse().unwrap();
        let mut acct = PureDpAccountant::new("1".parse().unwrap());
        let mut cache = ReleaseCache::new();
        let mut rng = seeded_rng_from_u64(1);
        let key = ("dataset-v1", "count(*)", "0.5");
        let (first, o1) = cache.get_or_release(key, &e, &mut acct, || laplace_count(42, &e, 1, &mut rng)).unwrap();
        assert_eq!(o1, CacheOutcome::Fresh);
        for _ in 0..100 {
            let (again, o) = cache.get_or_release(key, &e, &mut acct, || panic!("must not recompute")).unwrap();
            assert_eq!(o, CacheOutcome::Cached);
            assert_eq!(again, first);
        }
        assert_eq!(acct.spent().to_string(), "0.5");
        // a different dataset version is a different query
        let key2 = ("dataset-v2", "count(*)", "0.5");
        cache.get_or_release(key2, &e, &mut acct, || laplace_count(42, &e, 1, &mut rng)).unwrap();
        assert_eq!(acct.spent().to_string(), "1");
        // budget exhausted: error, nothing drawn, nothing cached
        let key3 = ("dataset-v3", "count(*)", "0.5");
        let err = cache.get_or_release(key3, &e, &mut acct, || panic!("no noise may be drawn")).unwrap_err();
        assert!(matches!(err, DpError::BudgetExceeded(_)));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn failed_release_spends_nothing() {
        let e: Epsilon = "0.5".parse().unwrap();
        let mut acct = PureDpAccountant::new("1".parse().unwrap());
        let mut cache: ReleaseCache<u8, i64> = ReleaseCache::new();
        let r = cache.get_or_release(1, &e, &mut acct, || Err(DpError::Overflow("test")));
        assert!(r.is_err());
        assert_eq!(acct.spent().to_string(), "0");
        assert!(cache.is_empty());
    }
}
