//! credit-mlp: a small multilayer perceptron (5 standardized features, one hidden layer of
//! 8 tanh units, a logistic output) that the enclave fine-tunes with DP-SGD.
//!
//! Inputs and label as `credit-lr-tune`. Parameters: `w1` (8×5, row-major), `b1` (8),
//! `w2` (8) and `b2`. The pretrained parameters are a fixed, seeded initialisation with a
//! base-rate output bias: a network that has not seen the task. Built natively, the crate
//! is the owner's non-private reference.
use model_sdk::{export_trainable, math, Kind, Model, Row, Trainable};

#[path = "../../credit-lr-tune/src/features.rs"]
pub mod features;
use features::{log_loss, row_features, FEATURES};

/// Hidden units.
pub const HIDDEN: usize = 8;
/// Parameter count: w1, b1, w2, b2.
pub const PARAMS: usize = HIDDEN * FEATURES + HIDDEN + HIDDEN + 1;

#[derive(Debug, Clone, PartialEq)]
pub struct CreditMlp {
    pub w1: [[f64; FEATURES]; HIDDEN],
    pub b1: [f64; HIDDEN],
    pub w2: [f64; HIDDEN],
    pub b2: f64,
}

impl Default for CreditMlp {
    /// Weights from a fixed xorshift stream, uniform in ±1/√fan-in; output bias at a 20%
    /// base rate. Deterministic, so the module's bytes are too.
    fn default() -> Self {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move |scale: f64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        };
        let s1 = 1.0 / math::sqrt(FEATURES as f64);
        let s2 = 1.0 / math::sqrt(HIDDEN as f64);
        let mut m = CreditMlp { w1: [[0.0; FEATURES]; HIDDEN], b1: [0.0; HIDDEN], w2: [0.0; HIDDEN], b2: -1.386 };
        for row in m.w1.iter_mut() {
            for w in row.iter_mut() {
                *w = uniform(s1);
            }
        }
        for w in m.w2.iter_mut() {
            *w = uniform(s2) * 0.1;
        }
        m
    }
}

impl CreditMlp {
    /// Hidden activations and the output logit.
    fn forward(&self, x: &[f64; FEATURES]) -> ([f64; HIDDEN], f64) {
        let mut h = [0.0; HIDDEN];
        let mut logit = self.b2;
        for (((h, w1), b1), w2) in h.iter_mut().zip(&self.w1).zip(&self.b1).zip(&self.w2) {
            *h = math::tanh(b1 + w1.iter().zip(x).map(|(w, x)| w * x).sum::<f64>());
            logit += w2 * *h;
        }
        (h, logit)
    }
}

impl Model for CreditMlp {
    const INPUTS: &'static [Kind] = features::INPUTS;

    fn score(&self, row: &Row<'_>) -> f64 {
        math::sigmoid(self.forward(&row_features(row)).1)
    }
}

impl Trainable for CreditMlp {
    const LAYOUT: &'static [(&'static str, usize)] =
        &[("w1", HIDDEN * FEATURES), ("b1", HIDDEN), ("w2", HIDDEN), ("b2", 1)];
    const LABEL: Kind = Kind::I64;

    fn params(&self, out: &mut [f64]) {
        let (w1, rest) = out.split_at_mut(HIDDEN * FEATURES);
        for (dst, row) in w1.chunks_exact_mut(FEATURES).zip(&self.w1) {
            dst.copy_from_slice(row);
        }
        rest[..HIDDEN].copy_from_slice(&self.b1);
        rest[HIDDEN..2 * HIDDEN].copy_from_slice(&self.w2);
        rest[2 * HIDDEN] = self.b2;
    }

    fn set_params(&mut self, p: &[f64]) {
        let (w1, rest) = p.split_at(HIDDEN * FEATURES);
        for (row, src) in self.w1.iter_mut().zip(w1.chunks_exact(FEATURES)) {
            row.copy_from_slice(src);
        }
        self.b1.copy_from_slice(&rest[..HIDDEN]);
        self.w2.copy_from_slice(&rest[HIDDEN..2 * HIDDEN]);
        self.b2 = rest[2 * HIDDEN];
    }

    fn loss_gradient(&self, row: &Row<'_>, y: f64, grad: &mut [f64]) -> f64 {
        let x = row_features(row);
        let (h, logit) = self.forward(&x);
        let p = math::sigmoid(logit);
        let r = p - y;
        let (g_w1, rest) = grad.split_at_mut(HIDDEN * FEATURES);
        let (g_b1, rest) = rest.split_at_mut(HIDDEN);
        let (g_w2, g_b2) = rest.split_at_mut(HIDDEN);
        g_b2[0] += r;
        let units = g_w1.chunks_exact_mut(FEATURES).zip(g_b1.iter_mut()).zip(g_w2.iter_mut());
        for (((g_w1, g_b1), g_w2), (h, w2)) in units.zip(h.iter().zip(&self.w2)) {
            *g_w2 += r * h;
            // d tanh(z)/dz = 1 - tanh(z)^2
            let dz = r * w2 * (1.0 - h * h);
            *g_b1 += dz;
            for (g, x) in g_w1.iter_mut().zip(&x) {
                *g += dz * x;
            }
        }
        log_loss(p, y)
    }
}

export_trainable!(CreditMlp);

#[cfg(test)]
mod tests {
    use super::*;
    use model_sdk::{param_count, params_of, unit_gradient_native, Column};

    #[test]
    fn layout_and_gradient_match_finite_differences() {
        assert_eq!(param_count(CreditMlp::LAYOUT), PARAMS);
        let (inc, util, late, ten, dec) = ([52_000.0, 18_000.0], [0.4, 0.95], [1i64, 5], [30i64, 4], [1980i64, 2000]);
        let cols = [Column::F64(&inc), Column::F64(&util), Column::I64(&late), Column::I64(&ten), Column::I64(&dec)];
        let labels = [0.0, 1.0];
        let m = CreditMlp::default();
        let (grad, loss) = unit_gradient_native(&m, &cols, &labels).unwrap();
        let p0 = params_of(&m);
        let mut m2 = m.clone();
        m2.set_params(&p0);
        assert_eq!(m2, m, "params and set_params round-trip");
        for i in 0..p0.len() {
            let mut p = p0.clone();
            p[i] += 1e-6;
            m2.set_params(&p);
            let (_, loss2) = unit_gradient_native(&m2, &cols, &labels).unwrap();
            let fd = (loss2 - loss) / 1e-6;
            assert!((fd - grad[i]).abs() < 1e-4, "parameter {i}: {fd} vs {}", grad[i]);
        }
    }
}
