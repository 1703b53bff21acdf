//! A job's reply instant, fixed from public inputs before any data is read.
//!
//! The enclave replies (result or `job_failed`) exactly at `start + deadline`, where the
//! query declares the deadline and the policy caps it. The deadline must cover the worst
//! case that public quantities allow: every sealed row its own unit and every unit spending
//! all its fuel. Chunk fetches follow the same public schedule (chunk `i` at
//! `start + setup + i · chunk_slot`), so the host sees no data-dependent timing either.
//! A unit's worst case is its fuel, a fixed overhead, and its whole memory limit touched.

use crate::policy::{SandboxLimits, Timing};

/// Bytes in a WebAssembly page.
pub const WASM_PAGE: u64 = 65_536;

/// Worst-case nanoseconds to noise and release one group of a group-by output (two exact
/// samples and a map update; the sampler draws about 10 million samples a second). A
/// group-by releases at most one group per sealed row, so the schedule reserves this for
/// every row of every group-by output: how many groups the data holds cannot move the
/// reply.
pub const RELEASE_NS_PER_GROUP: u64 = 2_000;
use std::time::Duration;

/// Worst-case nanoseconds per exact noise sample of a training step (one coordinate), and
/// per Poisson-sampling coin (one unit, one step).
pub const TRAINING_NS_PER_NOISE: u64 = 2_000;
pub const TRAINING_NS_PER_COIN: u64 = 200;

/// The public bounds of a training job's work, for [`Schedule::with_training`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingWork {
    /// Most gradients computed over all steps (the enclave stops beyond it).
    pub sampled_units: u64,
    /// Units a step draws a coin for: at most the table's rows.
    pub units: u64,
    pub steps: u64,
    pub params: u64,
    /// Whether the trained module then scores every unit for evaluation outputs.
    pub evaluates: bool,
}

/// One unit's worst case: all its fuel, the fixed overhead, and its whole memory limit
/// touched.
pub fn unit_worst_case_ns(t: &Timing, limits: &SandboxLimits) -> Option<u64> {
    let pages = limits.memory_limit_bytes.div_ceil(WASM_PAGE);
    limits
        .fuel_per_unit
        .checked_mul(t.ns_per_fuel)?
        .checked_add(t.unit_overhead_ns)?
        .checked_add(pages.checked_mul(t.ns_per_memory_page)?)
}

/// The public schedule of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Offset of the first chunk fetch from the job's start.
    pub setup: Duration,
    /// Time allowed per sealed chunk: `rows_per_chunk` units at worst case each.
    pub chunk_slot: Duration,
    pub chunks: u64,
    /// The shortest deadline that covers the worst case.
    pub minimum: Duration,
}

impl Schedule {
    /// `None` when the figures overflow (a policy or index no real job could meet).
    pub fn new(
        t: &Timing,
        limits: &SandboxLimits,
        chunks: u64,
        rows_per_chunk: u64,
        group_outputs: u64,
    ) -> Option<Schedule> {
        let unit_ns = unit_worst_case_ns(t, limits)?;
        let row_ns = unit_ns.checked_add(t.ingest_ns_per_row)?;
        let slot_ns = row_ns.checked_mul(rows_per_chunk)?;
        let setup = Duration::from_millis(t.setup_ms);
        let work = Duration::from_nanos(slot_ns.checked_mul(chunks)?);
        let rows = chunks.checked_mul(rows_per_chunk)?;
        let release = Duration::from_nanos(rows.checked_mul(group_outputs)?.checked_mul(RELEASE_NS_PER_GROUP)?);
        // setup before the first fetch, and again for signing and the audit append
        let minimum = setup.checked_mul(2)?.checked_add(work)?.checked_add(release)?;
        Some(Schedule { setup, chunk_slot: Duration::from_nanos(slot_ns), chunks, minimum })
    }

    /// The schedule of a training job: the same fetches, then up to `w.sampled_units`
    /// gradients at a unit's worst case each, a coin per unit per step, the noise of every
    /// step, and (with evaluation outputs) scoring every row again.
    pub fn with_training(self, t: &Timing, limits: &SandboxLimits, w: &TrainingWork) -> Option<Schedule> {
        let unit_ns = unit_worst_case_ns(t, limits)?;
        let gradients = w.sampled_units.checked_mul(unit_ns)?;
        let coins = w.units.checked_mul(w.steps)?.checked_mul(TRAINING_NS_PER_COIN)?;
        let noise = w.params.checked_mul(w.steps)?.checked_mul(TRAINING_NS_PER_NOISE)?;
        let eval = if w.evaluates { w.units.checked_mul(unit_ns)? } else { 0 };
        let extra = gradients.checked_add(coins)?.checked_add(noise)?.checked_add(eval)?;
        let minimum = self.minimum.checked_add(Duration::from_nanos(extra))?;
        Some(Schedule { minimum, ..self })
    }

    /// When chunk `i` is fetched, as an offset from the start.
    pub fn fetch_at(&self, i: u64) -> Duration {
        let n = u32::try_from(i).unwrap_or(u32::MAX);
        self.setup.saturating_add(self.chunk_slot.saturating_mul(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            max_deadline_ms: 60_000,
            setup_ms: 100,
            ns_per_fuel: 2,
            unit_overhead_ns: 20_000,
            ingest_ns_per_row: 1_000,
            ns_per_memory_page: 100,
        }
    }

    fn limits(fuel_per_unit: u64) -> SandboxLimits {
        SandboxLimits { fuel_per_unit, memory_limit_bytes: 10 * WASM_PAGE, max_module_bytes: 1 }
    }

    #[test]
    fn minimum_covers_every_row_a_unit_at_full_fuel() {
        let s = Schedule::new(&timing(), &limits(10_000), 4, 1_000, 0).unwrap();
        // per row: 10,000 × 2 + 20,000 + 10 pages × 100 + 1,000 = 42,000 ns; 4,000 rows =
        // 168 ms; + 2 × 100 ms
        assert_eq!(s.chunk_slot, Duration::from_nanos(42_000_000));
        assert_eq!(s.minimum, Duration::from_millis(368));
        assert_eq!(s.fetch_at(0), Duration::from_millis(100));
        assert_eq!(s.fetch_at(3), Duration::from_millis(226));
        // one group-by output: 4,000 rows × 2 µs more
        let g = Schedule::new(&timing(), &limits(10_000), 4, 1_000, 1).unwrap();
        assert_eq!(g.minimum, Duration::from_millis(376));
    }

    #[test]
    fn overflow_is_none_not_a_panic() {
        assert!(Schedule::new(&timing(), &limits(u64::MAX), 4, 1_000, 0).is_none());
        assert!(Schedule::new(&timing(), &limits(10), u64::MAX, u64::MAX, 0).is_none());
        assert!(Schedule::new(&timing(), &limits(10), 4, 1_000, u64::MAX).is_none());
    }
}
