//! cleanroom-dp: exact discrete differential privacy for the clean room. No I/O.
//!
//! * [`rational`]: exact rationals; [`Epsilon`], [`Delta`], [`Rho`] parsed from decimal text.
//! * [`sampler`]: Bernoulli(exp(-γ)), discrete Laplace and discrete Gaussian exactly as in
//!   Canonne–Kamath–Steinke 2020, no floating point on any sampling path.
//! * [`fixed`]: fixed-point encoding with clamping, and checked integer aggregation.
//! * [`bounding`]: per-privacy-unit contribution bounding (reservoir sampling).
//! * [`mechanism`]: count, sum, mean, histogram, quantile, group-by with partition selection
//!   (distinct-unit counts, and row counts with up to k rows per unit in any split).
//! * [`cache`]: identical queries are answered from cache without spending again.
//! * [`plan`]: noise scale, expected error and 95% interval before spending.
//! * [`accountant`]: pure-ε and zCDP budget accounting.
//! * [`sgm`]: the DP-SGD accountant (Poisson-subsampled Gaussian, Rényi DP at integer orders).
//!
//! See `README.md` beside this crate for the derivations.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accountant;
pub mod bounding;
pub mod cache;
pub mod fixed;
pub mod mechanism;
pub mod plan;
pub mod rational;
pub mod rng;
pub mod sampler;
pub mod sgm;
mod tail;

pub use accountant::{BudgetExceeded, PureDpAccountant};
pub use bounding::{distinct_units_per_group, BoundStats, RowBounder};
pub use fixed::FixedPoint;
pub use mechanism::{Mechanism, Release};
pub use rational::{Delta, Epsilon, Rational, Rho};
pub use rng::{seeded_rng, seeded_rng_from_u64, DpRng};
pub use sampler::{bernoulli, bernoulli_exp, discrete_gaussian, discrete_laplace};
pub use sgm::{max_steps, SampledGaussian, SgmAccount};

/// Every error this crate returns. Parameters are validated before any noise is drawn or any
/// budget is touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpError {
    /// A number could not be parsed (only non-negative decimals and `num/den` are accepted).
    #[error("invalid number {0:?}: expected a non-negative decimal like 0.5, 1e-6 or a fraction like 1/3")]
    InvalidNumber(String),
    /// A denominator or divisor was zero.
    #[error("zero denominator")]
    ZeroDenominator,
    /// A float parameter was NaN or infinite.
    #[error("parameter is NaN or infinite")]
    NonFinite,
    /// A parameter that must be non-negative was negative.
    #[error("parameter is negative")]
    Negative,
    /// ε must be strictly positive.
    #[error("epsilon must be > 0")]
    NonPositiveEpsilon,
    /// δ must be in [0, 1).
    #[error("delta must be in [0, 1)")]
    DeltaOutOfRange,
    /// δ must be strictly positive for this mechanism.
    #[error("delta must be > 0 for partition selection and (epsilon, delta) conversion")]
    ZeroDelta,
    /// ρ must be strictly positive.
    #[error("rho must be > 0")]
    NonPositiveRho,
    /// A probability above 1.
    #[error("probability must be in [0, 1]")]
    ProbabilityOutOfRange,
    /// A noise scale of zero (no noise) was requested.
    #[error("noise scale must be > 0")]
    ZeroScale,
    /// A noise scale above [`sampler::MAX_SCALE`].
    #[error("noise scale exceeds the supported maximum of 10^15")]
    ScaleTooLarge,
    /// Exact arithmetic or an aggregate would overflow; nothing was released.
    #[error("arithmetic overflow in {0}")]
    Overflow(&'static str),
    /// Clamping bounds with lower > upper (or non-finite bounds).
    #[error("invalid bounds: lower {lo} > upper {hi} or not finite")]
    InvalidBounds {
        /// lower bound as given
        lo: String,
        /// upper bound as given
        hi: String,
    },
    /// A value to encode was NaN.
    #[error("value is NaN")]
    NaN,
    /// Fixed-point scale must be >= 1.
    #[error("fixed-point scale must be >= 1")]
    InvalidFixedScale,
    /// A contribution bound (rows per unit, partitions per unit, sensitivity) of zero.
    #[error("{0} must be >= 1")]
    ZeroBound(&'static str),
    /// A declared domain is empty or larger than supported.
    #[error("domain size {0} is empty or exceeds the limit")]
    DomainSize(usize),
    /// A quantile outside [0, 1].
    #[error("quantile must be in [0, 1]")]
    QuantileOutOfRange,
    /// A Poisson sampling rate outside (0, 1].
    #[error("sample rate must be in (0, 1]")]
    SampleRateOutOfRange,
    /// A DP-SGD noise multiplier below 0.1.
    #[error("noise multiplier must be >= 0.1 (noise standard deviation / clipping norm)")]
    NoiseMultiplierTooSmall,
    /// A number of DP-SGD steps of 0 or above [`sgm::MAX_STEPS`].
    #[error("steps must be in [1, 10^7]")]
    StepsOutOfRange,
    /// The privacy budget does not cover the request.
    #[error(transparent)]
    BudgetExceeded(#[from] BudgetExceeded),
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn errors_have_clear_messages() {
        let cases: Vec<(DpError, &str)> = vec![
            (DpError::InvalidNumber("x".into()), "invalid number \"x\""),
            (DpError::NonPositiveEpsilon, "epsilon must be > 0"),
            (DpError::DeltaOutOfRange, "delta must be in [0, 1)"),
            (DpError::ZeroScale, "noise scale must be > 0"),
            (DpError::Overflow("sum"), "arithmetic overflow in sum"),
            (DpError::InvalidBounds { lo: "2".into(), hi: "1".into() }, "invalid bounds: lower 2 > upper 1"),
            (DpError::ZeroBound("max_rows_per_unit"), "max_rows_per_unit must be >= 1"),
            (DpError::SampleRateOutOfRange, "sample rate must be in (0, 1]"),
            (DpError::NoiseMultiplierTooSmall, "noise multiplier must be >= 0.1"),
            (DpError::StepsOutOfRange, "steps must be in [1, 10^7]"),
            (
                DpError::BudgetExceeded(BudgetExceeded {
                    requested: Rational::ONE,
                    remaining: Rational::new(1, 2).unwrap(),
                }),
                "privacy budget exceeded: requested 1, remaining 0.5",
            ),
        ];
        for (e, want) in cases {
            assert!(e.to_string().starts_with(want), "{e} !~ {want}");
        }
    }
}
