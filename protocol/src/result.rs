//! The signed result a provider receives.

use crate::policy::Decimal;
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

pub const RESULT_CONTEXT: &str = "cleanroom/result/v1";

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
    /// L1 sensitivity of each noised integer, derived from the contribution bounds.
    pub sensitivity: String,
    /// Scale of the discrete Laplace noise on each noised integer.
    pub noise_scale: String,
    /// Fixed-point resolution the sum was aggregated at (1 unit = 1/resolution).
    pub fixed_point_resolution: Option<u64>,
    pub values: Vec<ReleasedValue>,
    /// Groups withheld by partition selection or the minimum group size.
    pub suppressed_groups: u64,
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
    pub rows_read: u64,
    pub units: u64,
    pub rows_dropped_by_bounding: u64,
    pub released_at: u64,
    pub outputs: Vec<OutputRelease>,
}
