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
    /// Group key or bin label.
    pub key: String,
    pub value: f64,
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
    pub platform: String,
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
}
