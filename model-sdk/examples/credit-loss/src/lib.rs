//! credit-loss: per-row evaluation of the credit-lr scorer on the owner's labels.
//!
//! Inputs, in this order: `income` (f64), `utilization` (f64), `late_payments` (i64),
//! `tenure_months` (i64), `birth_decade` (i64), `defaulted` (i64, 0 or 1). Output: the
//! log-loss `-(y ln p + (1 - y) ln(1 - p))` of credit-lr's probability `p` for label `y`,
//! in `[0, MAX_LOSS]`. A query typically asks for its mean (the cross-entropy of the model
//! on the owner's table) or a histogram of it.
//!
//! The probability is computed by exactly the same source as credit-lr (the file is
//! compiled into this crate with `#[path]`; linking the credit-lr crate would also link
//! its ABI exports).
use model_sdk::{export_model, math, Batch, Kind, Model, Row};

#[path = "../../credit-lr/src/model.rs"]
mod lr;
pub use lr::{CreditLr, WEIGHTS};

/// Probabilities are clamped to `[P_MIN, 1 - P_MIN]` before the logarithm, so a loss is
/// finite and at most [`MAX_LOSS`].
pub const P_MIN: f64 = 1e-15;
/// Largest loss a row can have: `-ln(P_MIN)`, about 34.54. Declare this as the upper
/// bound of a mean or sum over the output.
pub const MAX_LOSS: f64 = 34.538776394910684;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CreditLoss {
    pub model: CreditLr,
}

impl CreditLoss {
    /// Log-loss of probability `p` for label `defaulted` (any non-zero label counts as 1).
    /// A NaN probability scores [`MAX_LOSS`], the worst case, so the output is never NaN.
    pub fn log_loss(p: f64, defaulted: i64) -> f64 {
        if p.is_nan() {
            return MAX_LOSS;
        }
        let p = p.clamp(P_MIN, 1.0 - P_MIN);
        let q = if defaulted != 0 { p } else { 1.0 - p };
        let loss = -math::ln(q);
        loss.clamp(0.0, MAX_LOSS)
    }

    pub fn loss(
        &self,
        income: f64,
        utilization: f64,
        late_payments: i64,
        tenure_months: i64,
        birth_decade: i64,
        defaulted: i64,
    ) -> f64 {
        Self::log_loss(
            self.model.probability(income, utilization, late_payments, tenure_months, birth_decade),
            defaulted,
        )
    }
}

impl Model for CreditLoss {
    const INPUTS: &'static [Kind] = &[Kind::F64, Kind::F64, Kind::I64, Kind::I64, Kind::I64, Kind::I64];

    fn score(&self, row: &Row<'_>) -> f64 {
        self.loss(row.f64(0), row.f64(1), row.i64(2), row.i64(3), row.i64(4), row.i64(5))
    }

    fn score_batch(&self, batch: &Batch<'_>, out: &mut Vec<f64>) {
        let (inc, util, late, ten, dec, y) =
            (batch.f64s(0), batch.f64s(1), batch.i64s(2), batch.i64s(3), batch.i64s(4), batch.i64s(5));
        out.extend(
            inc.iter()
                .zip(util)
                .zip(late)
                .zip(ten)
                .zip(dec)
                .zip(y)
                .map(|(((((&i, &u), &l), &t), &d), &y)| self.loss(i, u, l, t, d, y)),
        );
    }
}

export_model!(CreditLoss);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_loss_is_minus_ln_p_min() {
        assert_eq!(MAX_LOSS, -math::ln(P_MIN));
        assert_eq!(CreditLoss::log_loss(0.0, 1), MAX_LOSS);
        assert_eq!(CreditLoss::log_loss(1.0, 0), MAX_LOSS);
        assert_eq!(CreditLoss::log_loss(f64::NAN, 0), MAX_LOSS);
    }

    #[test]
    fn loss_matches_credit_lr() {
        let m = CreditLoss::default();
        let lr = credit_lr::CreditLr::default();
        for &(inc, u, l, t, d) in
            &[(60_000.0, 0.3, 0, 60, 1980), (25_000.0, 0.9, 4, 6, 1990), (150_000.0, 0.05, 0, 240, 1960)]
        {
            let p = lr.probability(inc, u, l, t, d);
            assert_eq!(m.loss(inc, u, l, t, d, 1).to_bits(), (-math::ln(p)).to_bits());
            assert_eq!(m.loss(inc, u, l, t, d, 0).to_bits(), (-math::ln(1.0 - p)).to_bits());
            assert!((0.0..=MAX_LOSS).contains(&m.loss(inc, u, l, t, d, 1)));
        }
    }

    #[test]
    fn a_confident_right_answer_costs_little() {
        let m = CreditLoss::default();
        // Low risk applicant who did not default vs. one who did.
        let good = m.loss(150_000.0, 0.05, 0, 240, 1960, 0);
        let bad = m.loss(150_000.0, 0.05, 0, 240, 1960, 1);
        assert!(good < 0.1 && bad > 2.0, "{good} {bad}");
    }
}
