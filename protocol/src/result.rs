//! The signed result a provider receives. Everything in it is a DP release or a public
//! input (policy, query, grant, attestation): no exact count of rows, units, dropped rows
//! or suppressed groups.

use crate::policy::Decimal;
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

pub const RESULT_CONTEXT: &str = "cleanroom/result/v2";

/// One released number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasedValue {
    /// Group key (several keys joined by " | "), bin label or threshold.
    pub key: String,
    /// Which statistic of the key this is, for outputs that release several per key
    /// (`mean`, `variance`, `rows`, `precision`, ...); empty when the output has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stat: String,
    pub value: f64,
    /// A 95% interval for the value the enclave would have released without noise (after
    /// clamping and per-person bounding), computed from the public noise distribution and
    /// the released values only; `None` where none is stated (see the output's note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
}

/// One noise term of an output: what was noised, with which exact distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseTerm {
    /// What the noise is added to (for example "count", "centred sum", "bin counts").
    pub on: String,
    /// `discrete_laplace`, `discrete_gaussian` or `permute_and_flip`.
    pub distribution: String,
    /// Exact parameter: b for discrete Laplace, σ² for discrete Gaussian, 2Δ/ε for
    /// permute-and-flip; in the integer units of `on` (fixed-point units for sums).
    pub scale: String,
    /// Sensitivity of the noised integer vector (L1 for Laplace and permute-and-flip, L2
    /// for Gaussian), in the same units.
    pub sensitivity: u64,
    /// ε of this term (pure ε-DP terms), or ρ (zCDP terms).
    pub budget: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRelease {
    pub name: String,
    pub class: String,
    pub mechanism: String,
    pub epsilon: Decimal,
    /// δ of this output (DP partition selection); `None` for pure ε-DP outputs.
    pub delta: Option<Decimal>,
    /// L1 sensitivity of each noised integer, derived from the contribution bounds.
    pub sensitivity: String,
    /// Scale of the discrete Laplace noise on each noised integer.
    pub noise_scale: String,
    /// Fixed-point resolution the sum was aggregated at (1 unit = 1/resolution).
    pub fixed_point_resolution: Option<u64>,
    pub values: Vec<ReleasedValue>,
    /// Every noise term behind the values, exactly.
    #[serde(default)]
    pub noise: Vec<NoiseTerm>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub collaborator: String,
    pub dataset_digest: Digest,
    pub policy_digest: Digest,
    pub module_hash: Digest,
    pub query_digest: Digest,
    pub grant_id: String,
    pub platform: crate::platform::Platform,
    /// True when produced under simulated attestation: not hardware-backed.
    pub simulated: bool,
    /// The attestation document naming the key that signed this result.
    pub evidence: Bytes,
    pub epsilon_spent: Decimal,
    pub delta_spent: Decimal,
    /// Unix seconds: the instant the grant was spent plus the query's deadline, fixed before
    /// any data was read (not the clock when the job finished).
    pub released_at: u64,
    pub outputs: Vec<OutputRelease>,
    /// A sharded job (docs/scale-out.md): the attested key of each shard enclave that held
    /// a range of the units, in shard order, as the owner named them. Empty (and absent
    /// from the encoding) for a job one enclave ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shard_keys: Vec<crate::Bytes>,
    /// The noise came from a seed fixed on the command line (simulated platform only, for
    /// tests that compare releases): this result protects no one. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_fixed_noise: bool,
}
