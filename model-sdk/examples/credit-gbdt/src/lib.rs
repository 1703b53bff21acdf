//! credit-gbdt: the provider's gradient-boosted-trees credit-risk scorer.
//!
//! Inputs, in this order (the same as credit-lr): `income` (f64), `utilization` (f64),
//! `late_payments` (i64), `tenure_months` (i64), `birth_decade` (i64). Output: the
//! probability of default in [0, 1].
//!
//! [`N_TREES`] complete binary trees of depth [`DEPTH`] (63 splits and 64 leaves each),
//! trained with logistic loss at build time by `build.rs` (deterministically, from a fixed
//! seed, with pure-Rust math) and compiled in as constants. A row goes right at a split
//! when its feature value is greater than the threshold; NaN goes left. The score is
//! `sigmoid(BASE_SCORE + Σ leaf)`, summed in tree order, so the sandbox and a native build
//! give the same bits.
use model_sdk::{export_model, math, Batch, Kind, Model, Row};

/// Number of trees.
pub const N_TREES: usize = 100;
/// Depth of every tree.
pub const DEPTH: usize = 6;
/// Split nodes per tree, in heap order (children of `i` are `2i + 1` and `2i + 2`).
pub const INTERNAL: usize = (1 << DEPTH) - 1;
/// Leaves per tree.
pub const LEAVES: usize = 1 << DEPTH;
/// Features a split can test: 0 income, 1 utilization, 2 late payments, 3 tenure in
/// months, 4 birth decade (the integer inputs as f64).
pub const FEATURES: usize = 5;

/// One tree. A split with threshold `+inf` sends every row left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tree {
    pub feature: [u8; INTERNAL],
    pub threshold: [f64; INTERNAL],
    pub leaf: [f64; LEAVES],
}

impl Tree {
    /// The leaf value for features `x`.
    #[inline(always)]
    pub fn eval(&self, x: &[f64; 8]) -> f64 {
        let mut i = 0usize;
        for _ in 0..DEPTH {
            // `& 7` keeps the index provably in range without a bounds check; features
            // are always < FEATURES (checked by a test).
            let v = x[(self.feature[i] & 7) as usize];
            i = 2 * i + 1 + (v > self.threshold[i]) as usize;
        }
        self.leaf[i - INTERNAL]
    }
}

mod generated {
    use super::Tree;
    include!(concat!(env!("OUT_DIR"), "/trees.rs"));
}
pub use generated::{BASE_SCORE, TRAINING_LOG_LOSS, TRAINING_SAMPLES, TREES};

// The build fails if training went wrong: the base-rate-only log-loss is about 0.5 on
// this data, and boosting must beat it clearly.
const _: () = assert!(TRAINING_LOG_LOSS < 0.45 && TRAINING_SAMPLES >= 10_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CreditGbdt;

impl CreditGbdt {
    /// Log-odds of default for one applicant.
    pub fn logit(
        &self,
        income: f64,
        utilization: f64,
        late_payments: i64,
        tenure_months: i64,
        birth_decade: i64,
    ) -> f64 {
        let x = [income, utilization, late_payments as f64, tenure_months as f64, birth_decade as f64, 0.0, 0.0, 0.0];
        let mut s = BASE_SCORE;
        for t in TREES.iter() {
            s += t.eval(&x);
        }
        s
    }

    /// Probability of default for one applicant.
    pub fn probability(
        &self,
        income: f64,
        utilization: f64,
        late_payments: i64,
        tenure_months: i64,
        birth_decade: i64,
    ) -> f64 {
        math::sigmoid(self.logit(income, utilization, late_payments, tenure_months, birth_decade))
    }
}

impl Model for CreditGbdt {
    const INPUTS: &'static [Kind] = &[Kind::F64, Kind::F64, Kind::I64, Kind::I64, Kind::I64];

    fn score(&self, row: &Row<'_>) -> f64 {
        self.probability(row.f64(0), row.f64(1), row.i64(2), row.i64(3), row.i64(4))
    }

    fn score_batch(&self, batch: &Batch<'_>, out: &mut Vec<f64>) {
        let (inc, util, late, ten, dec) = (batch.f64s(0), batch.f64s(1), batch.i64s(2), batch.i64s(3), batch.i64s(4));
        out.extend(
            inc.iter()
                .zip(util)
                .zip(late)
                .zip(ten)
                .zip(dec)
                .map(|((((&i, &u), &l), &t), &d)| self.probability(i, u, l, t, d)),
        );
    }
}

export_model!(CreditGbdt);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_training_quality() {
        assert_eq!(TREES.len(), N_TREES);
        assert!(TREES.iter().all(|t| t.feature.iter().all(|&f| (f as usize) < FEATURES)));
        // Trees really split (not all thresholds +inf) at every depth somewhere.
        let splits = TREES.iter().flat_map(|t| t.threshold.iter()).filter(|t| t.is_finite()).count();
        assert!(splits > N_TREES * INTERNAL / 2, "only {splits} real splits");
    }

    #[test]
    fn probabilities_are_sane() {
        let m = CreditGbdt;
        let low = m.probability(150_000.0, 0.05, 0, 240, 1960);
        let high = m.probability(20_000.0, 1.0, 6, 3, 2000);
        assert!((0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high));
        assert!(high > low + 0.3, "low {low} high {high}");
        for p in [m.probability(f64::NAN, f64::NAN, i64::MIN, i64::MAX, 0), m.probability(-1.0, f64::INFINITY, 0, 0, 0)]
        {
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
    }
}
