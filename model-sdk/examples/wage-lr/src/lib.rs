//! wage-lr: a provider's logistic regression for the probability that a worker earns more
//! than 250 (thousand dollars a year), over a table shaped like ISLP's `Wage` (the BYO
//! fixture `tests/fixtures/byo/wage.parquet` is one).
//!
//! Inputs, in this order (the query spec's `inputs` must list the columns the same way):
//!
//! | # | column      | ABI kind | meaning                                                   |
//! |---|-------------|----------|-----------------------------------------------------------|
//! | 0 | `age`       | i64      | age in years                                              |
//! | 1 | `year`      | i64      | survey year                                               |
//! | 2 | `education` | i64      | level 1..=5: "1. < HS Grad" = 1 … "5. Advanced Degree" = 5 |
//!
//! The table stores education as those strings; the owner's prepare rules map each to
//! its leading digit. Output, in [0, 1]:
//! `sigmoid(b0 + b1·(age−40) + b2·(age−40)² + b3·(year−2006) + b4·education)`.
//! The coefficients were fitted offline on the public ISLP data and are compiled in
//! ([`WEIGHTS`]).
use model_sdk::{export_model, Batch, Kind, Model, Row};

mod model;
pub use model::{WageLr, Weights, AGE_CENTRE, EDUCATION_MAX, EDUCATION_MIN, WEIGHTS, YEAR_CENTRE};

impl Model for WageLr {
    const INPUTS: &'static [Kind] = &[Kind::I64, Kind::I64, Kind::I64];

    fn score(&self, row: &Row<'_>) -> f64 {
        self.probability(row.i64(0), row.i64(1), row.i64(2))
    }

    fn score_batch(&self, batch: &Batch<'_>, out: &mut Vec<f64>) {
        let (age, year, edu) = (batch.i64s(0), batch.i64s(1), batch.i64s(2));
        out.extend(age.iter().zip(year).zip(edu).map(|((&a, &y), &e)| self.probability(a, y, e)));
    }
}

export_model!(WageLr);

#[cfg(test)]
mod tests {
    use super::*;
    use model_sdk::{run_native, Column};

    /// Relative agreement with the Python script's doubles (its `math.exp` is the
    /// platform's, ours is pure-Rust libm, so the last bit may differ).
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs()
    }

    /// (age, year, education) -> p, printed by `scripts/fixtures/fit_models.py`.
    const PINNED: &[(i64, i64, i64, f64)] = &[
        (18, 2003, 1, 9.852433269297238e-05),
        (40, 2006, 3, 0.012319190700787136),
        (45, 2009, 5, 0.13054515074565642),
        (52, 2004, 4, 0.04881895453605051),
        (70, 2008, 2, 0.0026701228981520966),
    ];

    #[test]
    fn reproduces_the_fitted_model() {
        let m = WageLr::default();
        for &(a, y, e, want) in PINNED {
            let p = m.probability(a, y, e);
            assert!(close(p, want), "({a}, {y}, {e}): {p} vs python {want}");
        }
    }

    #[test]
    fn hand_computed_row() {
        // age 40, year 2006, education 3: only the intercept and education terms remain,
        // z = -7.6626371 + 3 × 1.0928119 = -4.3842013, p = 1 / (1 + e^4.3842013) ≈ 0.0123192.
        let p = WageLr::default().probability(40, 2006, 3);
        assert!((p - 0.0123192).abs() < 1e-7, "{p}");
    }

    #[test]
    fn batch_path_matches_row_path_and_stays_in_range() {
        let m = WageLr::default();
        let age = [18i64, 45, 80, i64::MAX, i64::MIN];
        let year = [2003i64, 2009, 2006, i64::MIN, i64::MAX];
        let edu = [1i64, 5, 0, 99, -3];
        let out = run_native(&m, &[Column::I64(&age), Column::I64(&year), Column::I64(&edu)]).unwrap();
        for (k, &p) in out.iter().enumerate() {
            assert_eq!(p.to_bits(), m.probability(age[k], year[k], edu[k]).to_bits());
            assert!((0.0..=1.0).contains(&p), "{p}");
        }
        // Out-of-range codes are clamped; more education raises the probability.
        assert_eq!(m.probability(40, 2006, 0), m.probability(40, 2006, 1));
        assert_eq!(m.probability(40, 2006, 9), m.probability(40, 2006, 5));
        assert!(m.probability(40, 2006, 5) > m.probability(40, 2006, 2));
        // Mid-career peak.
        assert!(m.probability(50, 2006, 4) > m.probability(25, 2006, 4));
        assert!(m.probability(50, 2006, 4) > m.probability(78, 2006, 4));
    }
}
