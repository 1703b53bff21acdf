//! credit-impute: the credit-lr scorer for a table whose inputs may be null (sealed with
//! `nulls = "keep"`), reading validity through the SDK.
//!
//! Inputs, in this order, as credit-lr's: `income` (f64), `utilization` (f64),
//! `late_payments` (i64), `tenure_months` (i64), `birth_decade` (i64). Output: the
//! probability of default in [0, 1].
//!
//! A null input is replaced by the value at which credit-lr's logit is centred
//! ([`IMPUTED`]): a missing value then moves the score by (almost) nothing. Read without
//! validity, a null income would be its canonical 0.0, the riskiest income there is.
//!
//! The probability is computed by exactly the same source as credit-lr (compiled in with
//! `#[path]`, as credit-loss does).
use model_sdk::{export_model, Kind, Model, Row};

#[path = "../../credit-lr/src/model.rs"]
mod lr;
pub use lr::CreditLr;

/// The values a null input is scored as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Imputed {
    pub income: f64,
    pub utilization: f64,
    pub late_payments: i64,
    pub tenure_months: i64,
    pub birth_decade: i64,
}

/// credit-lr's centring: income 60,000, utilization 0.3, no late payment, 60 months, and
/// the 1980s (about 41 years old in the reference year).
pub const IMPUTED: Imputed =
    Imputed { income: 60_000.0, utilization: 0.3, late_payments: 0, tenure_months: 60, birth_decade: 1980 };

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CreditImpute {
    pub model: CreditLr,
}

impl Model for CreditImpute {
    const INPUTS: &'static [Kind] = &[Kind::F64, Kind::F64, Kind::I64, Kind::I64, Kind::I64];
    const READS_VALIDITY: bool = true;

    fn score(&self, row: &Row<'_>) -> f64 {
        let m = IMPUTED;
        self.model.probability(
            row.f64_opt(0).unwrap_or(m.income),
            row.f64_opt(1).unwrap_or(m.utilization),
            row.i64_opt(2).unwrap_or(m.late_payments),
            row.i64_opt(3).unwrap_or(m.tenure_months),
            row.i64_opt(4).unwrap_or(m.birth_decade),
        )
    }
}

export_model!(CreditImpute);

#[cfg(test)]
mod tests {
    use super::*;
    use model_sdk::{run_native, run_native_with_validity, Column};

    #[test]
    fn without_nulls_it_is_credit_lr() {
        let (inc, u, l, t, d) = ([25_000.0, 150_000.0], [0.9, 0.05], [4i64, 0], [6i64, 240], [1990i64, 1960]);
        let cols = [Column::F64(&inc), Column::F64(&u), Column::I64(&l), Column::I64(&t), Column::I64(&d)];
        let lr = credit_lr::CreditLr::default();
        let want: Vec<f64> = (0..2).map(|i| lr.probability(inc[i], u[i], l[i], t[i], d[i])).collect();
        assert_eq!(run_native(&CreditImpute::default(), &cols).unwrap(), want);
    }

    #[test]
    fn a_null_is_scored_as_its_imputed_value_not_as_zero() {
        // Row 0: income null (its slot holds the canonical 0.0); row 1: every input null.
        let (inc, u, l, t, d) = ([0.0, 0.0], [0.5, 0.0], [1i64, 0], [24i64, 0], [1990i64, 0]);
        let cols = [Column::F64(&inc), Column::F64(&u), Column::I64(&l), Column::I64(&t), Column::I64(&d)];
        let valid: [&[u8]; 5] = [&[0, 0], &[1, 0], &[1, 0], &[1, 0], &[1, 0]];
        let got = run_native_with_validity(&CreditImpute::default(), &cols, &valid).unwrap();
        let lr = credit_lr::CreditLr::default();
        let m = IMPUTED;
        assert_eq!(got[0], lr.probability(m.income, 0.5, 1, 24, 1990));
        assert_eq!(got[1], lr.probability(m.income, m.utilization, m.late_payments, m.tenure_months, m.birth_decade));
        assert!((got[1] - 0.13).abs() < 0.01, "the centre of the logit: {}", got[1]);
        // Read as a value, the canonical 0.0 income would be the riskiest there is.
        assert!(lr.probability(0.0, 0.5, 1, 24, 1990) > got[0] + 0.3);
    }
}
