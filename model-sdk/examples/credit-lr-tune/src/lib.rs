//! credit-lr-tune: a logistic-regression credit scorer that the enclave fine-tunes with
//! DP-SGD on the owner's table.
//!
//! Inputs, in this order: `income` (f64), `utilization` (f64), `late_payments` (i64),
//! `tenure_months` (i64), `birth_decade` (i64); label: `defaulted` (i64, 0 or 1). Output:
//! the probability of default. Parameters: `w` (5 weights on the standardized features of
//! `features.rs`) and `b` (the intercept).
//!
//! The pretrained parameters are deliberately weak (only a base rate, no weights): the
//! point of the example is what fine-tuning recovers. Built natively, the same crate is
//! the owner's non-private reference (`model_sdk::unit_gradient_native`).
use model_sdk::{export_trainable, math, Kind, Model, Row, Trainable};

pub mod features;
use features::{log_loss, row_features, FEATURES};

/// The provider's pretrained parameters: a 20% base rate and no signal.
pub const PRETRAINED: [f64; FEATURES + 1] = [0.0, 0.0, 0.0, 0.0, 0.0, -1.386];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CreditLrTune {
    pub w: [f64; FEATURES],
    pub b: f64,
}

impl Default for CreditLrTune {
    fn default() -> Self {
        let mut m = CreditLrTune { w: [0.0; FEATURES], b: 0.0 };
        m.set_params(&PRETRAINED);
        m
    }
}

impl CreditLrTune {
    fn logit(&self, x: &[f64; FEATURES]) -> f64 {
        self.b + self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
    }
}

impl Model for CreditLrTune {
    const INPUTS: &'static [Kind] = features::INPUTS;

    fn score(&self, row: &Row<'_>) -> f64 {
        math::sigmoid(self.logit(&row_features(row)))
    }
}

impl Trainable for CreditLrTune {
    const LAYOUT: &'static [(&'static str, usize)] = &[("w", FEATURES), ("b", 1)];
    const LABEL: Kind = Kind::I64;

    fn params(&self, out: &mut [f64]) {
        out[..FEATURES].copy_from_slice(&self.w);
        out[FEATURES] = self.b;
    }

    fn set_params(&mut self, p: &[f64]) {
        self.w.copy_from_slice(&p[..FEATURES]);
        self.b = p[FEATURES];
    }

    fn loss_gradient(&self, row: &Row<'_>, y: f64, grad: &mut [f64]) -> f64 {
        let x = row_features(row);
        let p = math::sigmoid(self.logit(&x));
        let r = p - y;
        for (g, x) in grad.iter_mut().zip(&x) {
            *g += r * x;
        }
        grad[FEATURES] += r;
        log_loss(p, y)
    }
}

export_trainable!(CreditLrTune);

#[cfg(test)]
mod tests {
    use super::*;
    use model_sdk::{params_of, unit_gradient_native, Column};

    #[test]
    fn gradient_matches_finite_differences() {
        let (inc, util, late, ten, dec) = ([52_000.0, 18_000.0], [0.4, 0.95], [1i64, 5], [30i64, 4], [1980i64, 2000]);
        let cols = [Column::F64(&inc), Column::F64(&util), Column::I64(&late), Column::I64(&ten), Column::I64(&dec)];
        let labels = [0.0, 1.0];
        let mut m = CreditLrTune::default();
        m.set_params(&[0.1, 1.0, 0.2, -0.1, 0.05, -1.0]);
        let (grad, loss) = unit_gradient_native(&m, &cols, &labels).unwrap();
        let p0 = params_of(&m);
        for i in 0..p0.len() {
            let mut p = p0.clone();
            p[i] += 1e-6;
            let mut m2 = m;
            m2.set_params(&p);
            let (_, loss2) = unit_gradient_native(&m2, &cols, &labels).unwrap();
            let fd = (loss2 - loss) / 1e-6;
            assert!((fd - grad[i]).abs() < 1e-4, "parameter {i}: {fd} vs {}", grad[i]);
        }
    }
}
