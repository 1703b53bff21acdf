//! The standardized features both trainable credit examples learn from, computed from the
//! five scoring inputs (`income`, `utilization`, `late_payments`, `tenure_months`,
//! `birth_decade`). Centred and scaled so that plain SGD steps suit every weight.
//! Shared with `credit-mlp` through `#[path]` (linking this crate would link its exports).
use model_sdk::{math, Kind, Row};

/// Number of features.
pub const FEATURES: usize = 5;
/// The scoring inputs, in query order.
pub const INPUTS: &[Kind] = &[Kind::F64, Kind::F64, Kind::I64, Kind::I64, Kind::I64];
/// Year against which ages are computed.
pub const REFERENCE_YEAR: i64 = 2026;

/// Standardized features of one applicant.
pub fn features(income: f64, utilization: f64, late_payments: i64, tenure_months: i64, birth_decade: i64) -> [f64; 5] {
    let income = if income > 1.0 { income } else { 1.0 };
    let age = REFERENCE_YEAR.saturating_sub(birth_decade.saturating_add(5)) as f64;
    [
        math::ln(income / 60_000.0),
        utilization - 0.3,
        late_payments as f64,
        (tenure_months as f64 - 60.0) / 60.0,
        (age - 40.0) / 10.0,
    ]
}

/// [`features`] of a row of the five inputs.
pub fn row_features(row: &Row<'_>) -> [f64; 5] {
    features(row.f64(0), row.f64(1), row.i64(2), row.i64(3), row.i64(4))
}

/// Log-loss of probability `p` for a 0/1 label `y`, clamped away from 0 and 1 so a
/// confident mistake costs a finite amount.
pub fn log_loss(p: f64, y: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    -(y * math::ln(p) + (1.0 - y) * math::ln(1.0 - p))
}
