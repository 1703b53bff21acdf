//! The logistic regression itself, with no ABI glue (the native twin of the module).
use model_sdk::math;

/// The fitted coefficients, on centred age and year (for a well-conditioned fit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub intercept: f64,
    /// Per year of `age - AGE_CENTRE`.
    pub age: f64,
    /// Per `(age - AGE_CENTRE)^2`: earnings peak in mid-career.
    pub age2: f64,
    /// Per year of `year - YEAR_CENTRE`.
    pub year: f64,
    /// Per education level (1..=5), taken as a score: level 1 has no earner above 250 in
    /// the data, so separate levels would have no finite maximum-likelihood fit.
    pub education: f64,
}

/// Maximum-likelihood fit on the public ISLP 0.6.0 `Wage` table (all 3,000 rows,
/// `wage > 250` as the outcome, 79 positives), by `scripts/fixtures/fit_models.py`
/// (IRLS; printed with `repr`, so these are the fitted doubles exactly).
pub const WEIGHTS: Weights = Weights {
    intercept: -7.662637071874414,
    age: 0.0611662646536719,
    age2: -0.002579620061291174,
    year: 0.02036313158053582,
    education: 1.0928119199705135,
};

pub const AGE_CENTRE: f64 = 40.0;
pub const YEAR_CENTRE: f64 = 2006.0;
/// Education levels, as in the table's strings "1. < HS Grad" … "5. Advanced Degree".
pub const EDUCATION_MIN: i64 = 1;
pub const EDUCATION_MAX: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WageLr {
    pub weights: Weights,
}

impl Default for WageLr {
    fn default() -> Self {
        WageLr { weights: WEIGHTS }
    }
}

impl WageLr {
    /// P(wage > 250), in [0, 1]. An education code outside 1..=5 is clamped into it, so
    /// a bad code gives a bounded score instead of an extrapolated one. Integers are
    /// converted to f64 before centring (no i64 overflow, hence no trap, on any input).
    pub fn probability(&self, age: i64, year: i64, education: i64) -> f64 {
        let w = &self.weights;
        let da = age as f64 - AGE_CENTRE;
        let dy = year as f64 - YEAR_CENTRE;
        let e = education.clamp(EDUCATION_MIN, EDUCATION_MAX) as f64;
        math::sigmoid(w.intercept + w.age * da + w.age2 * (da * da) + w.year * dy + w.education * e)
    }
}
