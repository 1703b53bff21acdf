//! credit-multi: the credit-lr scorer with two named outputs per row.
//!
//! Inputs, in this order, as credit-lr's: `income` (f64), `utilization` (f64),
//! `late_payments` (i64), `tenure_months` (i64), `birth_decade` (i64). Outputs, per row
//! and in this order ([`OUTPUTS`]):
//!
//! - `p_default`: credit-lr's probability of default in [0, 1], bit for bit;
//! - `risk_band`: credit-lr's log-odds of default (the logit `ln(p / (1 - p))` before the
//!   logistic function) clamped to `[-RISK_BAND_BOUND, RISK_BAND_BOUND]` = [-6, 6], that is
//!   probabilities from about 0.25% to 99.75%. A bounded scale on which risk is linear in
//!   the inputs: a histogram of it with unit-wide bins puts applicants in risk bands, and
//!   its mean has sensitivity 12 per row.
//!
//! The sandbox returns `rows × 2` values for a batch, row-major: row 0's `p_default`,
//! row 0's `risk_band`, row 1's `p_default`, and so on. A NaN input (credit-lr scores it
//! as NaN) gives NaN for both outputs, as credit-lr does; the release refuses non-finite
//! scores.
//!
//! The model is exactly the same source as credit-lr (compiled in with `#[path]`, as
//! credit-loss and credit-impute do; linking the credit-lr crate would also link its ABI
//! exports), and the arithmetic is deterministic ([`model_sdk::math`]).
use model_sdk::{export_model, math, Kind, Model, Row};

#[path = "../../credit-lr/src/model.rs"]
mod lr;
pub use lr::{CreditLr, WEIGHTS};

/// The names of the two outputs, in emission order.
pub const OUTPUTS: &[&str] = &["p_default", "risk_band"];
/// `risk_band` is the logit clamped to `[-RISK_BAND_BOUND, RISK_BAND_BOUND]`.
pub const RISK_BAND_BOUND: f64 = 6.0;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CreditMulti {
    pub model: CreditLr,
}

impl CreditMulti {
    /// `[p_default, risk_band]` for one applicant.
    pub fn outputs(
        &self,
        income: f64,
        utilization: f64,
        late_payments: i64,
        tenure_months: i64,
        birth_decade: i64,
    ) -> [f64; 2] {
        let logit = self.model.logit(income, utilization, late_payments, tenure_months, birth_decade);
        [math::sigmoid(logit), logit.clamp(-RISK_BAND_BOUND, RISK_BAND_BOUND)]
    }

    fn row_outputs(&self, row: &Row<'_>) -> [f64; 2] {
        self.outputs(row.f64(0), row.f64(1), row.i64(2), row.i64(3), row.i64(4))
    }
}

impl Model for CreditMulti {
    const INPUTS: &'static [Kind] = &[Kind::F64, Kind::F64, Kind::I64, Kind::I64, Kind::I64];
    const OUTPUTS: &'static [&'static str] = OUTPUTS;

    /// The first output, `p_default`.
    fn score(&self, row: &Row<'_>) -> f64 {
        self.row_outputs(row)[0]
    }

    fn score_into(&self, row: &Row<'_>, out: &mut [f64]) {
        out.copy_from_slice(&self.row_outputs(row));
    }
}

export_model!(CreditMulti);

#[cfg(test)]
mod tests {
    use super::*;
    use model_sdk::{run_native, Column};

    #[test]
    fn p_default_is_credit_lr_and_risk_band_its_clamped_logit() {
        let lr = credit_lr::CreditLr::default();
        let (inc, util) = ([60_000.0, 25_000.0, 150_000.0, 1.0, 10_000.0], [0.3, 0.9, 0.05, 1.0, 1.0]);
        let (late, ten, dec) = ([0i64, 4, 0, 30, 12], [60i64, 6, 240, 0, 0], [1980i64, 1990, 1960, 2000, 2000]);
        let cols = [Column::F64(&inc), Column::F64(&util), Column::I64(&late), Column::I64(&ten), Column::I64(&dec)];
        let out = run_native(&CreditMulti::default(), &cols).unwrap();
        assert_eq!(out.len(), 2 * inc.len());
        let lr_out = run_native(&lr, &cols).unwrap();
        for i in 0..inc.len() {
            let (p, band) = (out[2 * i], out[2 * i + 1]);
            assert_eq!(p.to_bits(), lr_out[i].to_bits(), "row {i}");
            assert!((-RISK_BAND_BOUND..=RISK_BAND_BOUND).contains(&band), "row {i}: {band}");
            // Inside the bounds the band is the logit: the probability's log-odds.
            if band.abs() < RISK_BAND_BOUND {
                assert!((band - math::ln(p / (1.0 - p))).abs() < 1e-9, "row {i}: {band} vs p {p}");
            }
        }
        // The last two applicants are off the scale: clamped at the top.
        assert_eq!(out[7], RISK_BAND_BOUND);
        assert_eq!(out[9], RISK_BAND_BOUND);
    }

    #[test]
    fn the_section_names_both_outputs() {
        let s: [u8; model_sdk::abi_section_len(CreditMulti::INPUTS, CreditMulti::OUTPUTS)] =
            model_sdk::abi_section(CreditMulti::INPUTS, CreditMulti::OUTPUTS);
        assert_eq!(&s[4..8], &2u32.to_le_bytes());
        assert_eq!(&s[17..], b"\x09p_default\x09risk_band");
    }
}
