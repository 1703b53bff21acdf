//! The logistic regression itself, with no ABI glue (the native twin of the module), so
//! another example could compile the same arithmetic in with `#[path]`, as credit-loss
//! does with credit-lr.
use model_sdk::math;

/// The fitted coefficients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub intercept: f64,
    /// Per dollar of card balance.
    pub balance: f64,
    /// Per dollar of annual income.
    pub income: f64,
    /// Added when the customer is a student.
    pub student: f64,
}

/// Maximum-likelihood fit on the public ISLP 0.6.0 `Default` table (all 10,000 rows,
/// `default == "Yes"` as the outcome), by `scripts/fixtures/fit_models.py` (IRLS; the
/// script prints these values with `repr`, so they are the fitted doubles exactly).
/// ISLR reports −10.87, 0.00574, 0.000003, −0.647 for the same fit.
pub const WEIGHTS: Weights = Weights {
    intercept: -10.869045212744643,
    balance: 0.005736505265799071,
    income: 3.033450119333442e-06,
    student: -0.6467758082440291,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefaultLr {
    pub weights: Weights,
}

impl Default for DefaultLr {
    fn default() -> Self {
        DefaultLr { weights: WEIGHTS }
    }
}

impl DefaultLr {
    /// Probability of default, in [0, 1]. `student` is 1 for a student, 0 otherwise
    /// (any non-zero value counts as a student). The terms are added in this order, the
    /// same as the Python script, so both give the same linear predictor.
    pub fn probability(&self, balance: f64, income: f64, student: i64) -> f64 {
        let w = &self.weights;
        let s = if student != 0 { 1.0 } else { 0.0 };
        math::sigmoid(w.intercept + w.balance * balance + w.income * income + w.student * s)
    }
}
