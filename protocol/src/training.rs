//! DP fine-tuning: what a training query asks (hyperparameters, all public) and the bounds
//! an owner's policy puts on them. The enclave runs DP-SGD (see `release::training` and
//! `docs/dp-sgd.md`); these types only carry and shape-check the numbers.

use crate::policy::Decimal;
use serde::{Deserialize, Serialize};

/// Most steps a training query may ask for, whatever the policy says.
pub const MAX_STEPS: u32 = 1_000_000;

/// The public optimizer applied to each step's noisy mean gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// θ ← θ − lr · v, with v ← momentum · v + g.
    Sgd {
        learning_rate: Decimal,
        #[serde(default = "zero")]
        momentum: Decimal,
    },
    /// Adam (Kingma and Ba 2015) with bias correction.
    Adam {
        learning_rate: Decimal,
        #[serde(default = "beta1")]
        beta1: Decimal,
        #[serde(default = "beta2")]
        beta2: Decimal,
        #[serde(default = "adam_eps")]
        epsilon: Decimal,
    },
}

fn zero() -> Decimal {
    Decimal::literal("0")
}
fn beta1() -> Decimal {
    Decimal::literal("0.9")
}
fn beta2() -> Decimal {
    Decimal::literal("0.999")
}
fn adam_eps() -> Decimal {
    Decimal::literal("1e-8")
}

impl Optimizer {
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
        }
    }
}

/// A training query's hyperparameters. Every one is public: it is in the query, the grant
/// names the query's digest, and the result and audit record repeat them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// The sealed column the module learns from (it must allow the `label` role); the
    /// module reads it as one more column after its inputs.
    pub label: String,
    /// q: each privacy unit joins each step independently with this probability.
    pub sample_rate: Decimal,
    /// σ: the noise's standard deviation as a multiple of `clip_norm`.
    pub noise_multiplier: Decimal,
    /// C: each unit's gradient is scaled to L2 norm at most C.
    pub clip_norm: Decimal,
    /// T: the number of steps.
    pub steps: u32,
    /// The public divisor of each step's noisy gradient sum (about q times the number of
    /// units); it only scales the step, so it cannot depend on the data.
    pub expected_batch_size: u64,
    pub optimizer: Optimizer,
    /// δ of the training's (ε, δ) guarantee.
    pub delta: Decimal,
}

/// The owner's bounds on training queries. Without them in the policy, no training query
/// is admitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingLimits {
    pub max_steps: u32,
    pub max_sample_rate: Decimal,
    /// Smallest σ admitted (a floor on the noise, whatever ε the grant allows).
    pub min_noise_multiplier: Decimal,
    pub max_clip_norm: Decimal,
    /// Largest learning rate admitted.
    pub max_learning_rate: Decimal,
    /// Most parameters a trained module may release.
    pub max_params: u32,
}

impl Default for TrainingLimits {
    /// Conservative bounds an owner can start from.
    fn default() -> Self {
        TrainingLimits {
            max_steps: 10_000,
            max_sample_rate: Decimal::literal("0.1"),
            min_noise_multiplier: Decimal::literal("0.5"),
            max_clip_norm: Decimal::literal("100"),
            max_learning_rate: Decimal::literal("10"),
            max_params: 1 << 16,
        }
    }
}
