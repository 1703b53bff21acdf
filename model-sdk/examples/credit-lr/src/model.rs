//! The logistic-regression model itself, with no ABI glue, so that other examples (the
//! per-row loss in `credit-loss`) can compile exactly the same arithmetic into their own
//! module with `#[path]` (depending on this crate would link its `export_model!` exports).
use model_sdk::math;

/// The fitted weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub intercept: f64,
    pub utilization: f64,
    pub late_payments: f64,
    pub log_income: f64,
    pub tenure: f64,
    pub age: f64,
}

pub const WEIGHTS: Weights =
    Weights { intercept: -1.9, utilization: 2.8, late_payments: 0.46, log_income: -0.75, tenure: -0.0045, age: -0.014 };

/// Year against which ages are computed.
pub const REFERENCE_YEAR: i64 = 2026;
/// Incomes at or below this are scored as this (the logarithm needs a positive value).
pub const MIN_INCOME: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CreditLr {
    pub weights: Weights,
}

impl Default for CreditLr {
    fn default() -> Self {
        CreditLr { weights: WEIGHTS }
    }
}

impl CreditLr {
    /// Probability of default for one applicant: the logistic function of [`CreditLr::logit`].
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

    /// Log-odds of default for one applicant (the regression's linear predictor).
    pub fn logit(
        &self,
        income: f64,
        utilization: f64,
        late_payments: i64,
        tenure_months: i64,
        birth_decade: i64,
    ) -> f64 {
        let w = &self.weights;
        let income = if income > MIN_INCOME { income } else { MIN_INCOME };
        let age = REFERENCE_YEAR.saturating_sub(birth_decade.saturating_add(5)) as f64;
        w.intercept
            + w.utilization * (utilization - 0.3)
            + w.late_payments * late_payments as f64
            + w.log_income * math::ln(income / 60_000.0)
            + w.tenure * (tenure_months as f64 - 60.0)
            + w.age * (age - 40.0)
    }
}
