//! default-lr: a provider's logistic regression for the probability that a card customer
//! defaults, over a table shaped like ISLP's `Default` (the BYO fixture
//! `tests/fixtures/byo/default.csv` is one).
//!
//! Inputs, in this order (the query spec's `inputs` must list the columns the same way):
//!
//! | # | column    | ABI kind | meaning                          |
//! |---|-----------|----------|----------------------------------|
//! | 0 | `balance` | f64      | card balance, dollars            |
//! | 1 | `income`  | f64      | annual income, dollars           |
//! | 2 | `student` | i64      | 1 = student ("Yes"), 0 = "No"    |
//!
//! Output: P(default) = sigmoid(b0 + b1·balance + b2·income + b3·student), in [0, 1].
//! The coefficients were fitted offline on the public ISLP data and are compiled in
//! ([`WEIGHTS`]).
use model_sdk::{export_model, Batch, Kind, Model, Row};

mod model;
pub use model::{DefaultLr, Weights, WEIGHTS};

impl Model for DefaultLr {
    const INPUTS: &'static [Kind] = &[Kind::F64, Kind::F64, Kind::I64];

    fn score(&self, row: &Row<'_>) -> f64 {
        self.probability(row.f64(0), row.f64(1), row.i64(2))
    }

    fn score_batch(&self, batch: &Batch<'_>, out: &mut Vec<f64>) {
        let (bal, inc, stu) = (batch.f64s(0), batch.f64s(1), batch.i64s(2));
        out.extend(bal.iter().zip(inc).zip(stu).map(|((&b, &i), &s)| self.probability(b, i, s)));
    }
}

export_model!(DefaultLr);

#[cfg(test)]
mod tests {
    use super::*;
    use model_sdk::{run_native, Column};

    /// Relative agreement with the Python script's doubles: its `math.exp` is the
    /// platform's, ours is pure-Rust libm, so the last bit may differ.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs()
    }

    /// Values printed by `scripts/fixtures/fit_models.py` for the same inputs.
    const PINNED: &[(f64, f64, i64, f64)] = &[
        (0.0, 40000.0, 0, 2.149417257968192e-05),
        (1500.0, 40000.0, 0, 0.10499192395408494),
        (1500.0, 17000.0, 1, 0.05419260595709991),
        (2000.0, 10000.0, 1, 0.4968810434061354),
        (2654.32, 49000.0, 0, 0.9890793006549401),
        // The first three rows of tests/fixtures/byo/default.csv.
        (491.04, 37835.61, 0, 0.0003569994579423578),
        (418.50, 29856.47, 0, 0.00022987392606450848),
        (934.49, 31043.41, 0, 0.004433291719536435),
    ];

    #[test]
    fn reproduces_the_fitted_model() {
        let m = DefaultLr::default();
        for &(b, i, s, want) in PINNED {
            let p = m.probability(b, i, s);
            assert!(close(p, want), "({b}, {i}, {s}): {p} vs python {want}");
        }
    }

    #[test]
    fn hand_computed_row() {
        // balance 1500, income 40000, not a student:
        // z = -10.869045 + 1500 × 0.0057365053 + 40000 × 0.0000030334505 ≈ -2.1429493,
        // p = 1 / (1 + e^2.1429493) ≈ 0.1049919.
        let p = DefaultLr::default().probability(1500.0, 40000.0, 0);
        assert!((p - 0.1049919).abs() < 1e-7, "{p}");
    }

    #[test]
    fn batch_path_matches_row_path_and_stays_in_range() {
        let m = DefaultLr::default();
        let bal = [0.0, 800.0, 2654.32, 1e9, -5.0];
        let inc = [0.0, 20000.0, 49000.0, 1e12, -1.0];
        let stu = [0i64, 1, 0, 7, i64::MIN];
        let out = run_native(&m, &[Column::F64(&bal), Column::F64(&inc), Column::I64(&stu)]).unwrap();
        for (k, &p) in out.iter().enumerate() {
            assert_eq!(p.to_bits(), m.probability(bal[k], inc[k], stu[k]).to_bits());
            assert!((0.0..=1.0).contains(&p));
        }
        // Students are scored lower at equal balance and income; risk rises with balance.
        assert!(m.probability(1500.0, 20000.0, 1) < m.probability(1500.0, 20000.0, 0));
        assert!(m.probability(2000.0, 20000.0, 0) > m.probability(1000.0, 20000.0, 0));
    }
}
