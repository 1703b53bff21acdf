//! credit-lr: the provider's logistic-regression credit-risk scorer.
//!
//! Inputs, in this order: `income` (f64), `utilization` (f64), `late_payments` (i64),
//! `tenure_months` (i64), `birth_decade` (i64, e.g. 1980 for 1980–1989). Output: the
//! probability of default in [0, 1].
//!
//! The weights were fitted by the provider and are compiled in. Age is estimated from the
//! middle of the birth decade.
use model_sdk::{export_model, Batch, Kind, Model, Row};

mod model;
pub use model::{CreditLr, Weights, MIN_INCOME, REFERENCE_YEAR, WEIGHTS};

impl Model for CreditLr {
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

export_model!(CreditLr);

#[cfg(test)]
mod tests {
    use super::*;

    /// The synthetic table's true default model (with exact birth years).
    fn truth(income: f64, utilization: f64, late: i64, tenure: i64, birth_year: i64) -> f64 {
        let age = (2026 - birth_year) as f64;
        let logit = -2.0 + 3.0 * (utilization - 0.3) + 0.5 * late as f64
            - 0.8 * (income / 60_000.0).ln()
            - 0.005 * (tenure as f64 - 60.0)
            - 0.015 * (age - 40.0);
        1.0 / (1.0 + (-logit).exp())
    }

    #[test]
    fn approximates_the_true_model() {
        let m = CreditLr::default();
        for &(inc, u, l, t, y) in
            &[(60_000.0, 0.3, 0, 60, 1986), (25_000.0, 0.9, 4, 6, 1999), (150_000.0, 0.05, 0, 240, 1961)]
        {
            let p = m.probability(inc, u, l, t, y / 10 * 10);
            let q = truth(inc, u, l, t, y);
            assert!((0.0..=1.0).contains(&p));
            assert!((p - q).abs() < 0.1, "fitted {p} vs true {q}");
        }
    }

    #[test]
    fn risk_rises_with_late_payments_and_utilization() {
        let m = CreditLr::default();
        assert!(m.probability(50_000.0, 0.5, 3, 36, 1980) > m.probability(50_000.0, 0.5, 0, 36, 1980));
        assert!(m.probability(50_000.0, 0.9, 0, 36, 1980) > m.probability(50_000.0, 0.1, 0, 36, 1980));
        // Non-positive incomes are scored, not NaN.
        assert!(m.probability(0.0, 0.5, 0, 36, 1980).is_finite());
    }
}
