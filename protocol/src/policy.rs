//! The owner's policy: which modules and query classes may run on which dataset, with
//! what limits. Written in TOML by the owner; its digest is measured into the enclave
//! (PCR16 on Nitro, the report binding on SNP) so the attested state names it.

use crate::{Bytes, DecodeError, Digest};
use serde::{Deserialize, Serialize};

/// A non-negative decimal such as "0.5", kept as text so that it is exact.
/// Parsed into an exact rational by the `dp` crate where it is used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Decimal(pub String);

impl Decimal {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The query classes the enclave implements. A policy lists the ones it allows.
pub const QUERY_CLASSES: &[&str] = &["group_mean", "histogram", "auc"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimits {
    /// Wall-clock limit for the whole job, enforced by epoch interruption.
    pub time_limit_ms: u64,
    pub memory_limit_bytes: u64,
    pub max_module_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub policy_id: String,
    /// Ed25519 key that signs budget grants.
    pub owner_public_key: Bytes,
    /// The only dataset this policy governs.
    pub dataset_digest: Digest,
    /// Sealed column holding the privacy-unit token; privacy is per unit, not per row.
    pub privacy_unit: String,
    /// SHA-256 of the Wasm modules allowed to run.
    pub allowed_modules: Vec<Digest>,
    pub allowed_query_classes: Vec<String>,
    pub collaborators: Vec<String>,
    /// Groups with fewer (noisy) members than this are never released.
    pub min_group_size: u64,
    /// Rows per privacy unit kept before aggregation.
    pub max_rows_per_unit: u32,
    /// The owner sealed the rows sorted by privacy unit. The enclave then bounds units in
    /// one streaming pass (memory independent of the table size) and refuses, with nothing
    /// released, a stream whose units are out of order.
    #[serde(default)]
    pub rows_sorted_by_unit: bool,
    pub max_epsilon_per_job: Decimal,
    /// δ used for DP partition selection of group-by outputs.
    pub partition_delta: Decimal,
    /// Results leave only at multiples of this many milliseconds after job start.
    pub release_quantum_ms: u64,
    pub sandbox: SandboxLimits,
}

impl Policy {
    pub fn from_toml(s: &str) -> Result<Self, DecodeError> {
        let p: Policy = toml::from_str(s).map_err(|e| DecodeError::Toml(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("policy serializes to TOML")
    }

    fn validate(&self) -> Result<(), DecodeError> {
        let bad = |why: String| Err(DecodeError::Invalid { what: "policy", why });
        if self.owner_public_key.0.len() != 32 {
            return bad("owner_public_key must be a 32-byte Ed25519 key".into());
        }
        if let Some(c) = self.allowed_query_classes.iter().find(|c| !QUERY_CLASSES.contains(&c.as_str())) {
            return bad(format!("unknown query class {c:?}; known: {}", QUERY_CLASSES.join(", ")));
        }
        if self.max_rows_per_unit == 0 {
            return bad("max_rows_per_unit must be at least 1".into());
        }
        if self.sandbox.time_limit_ms == 0 || self.sandbox.memory_limit_bytes == 0 {
            return bad("sandbox limits must be positive".into());
        }
        Ok(())
    }

    /// The digest measured into the enclave and named in grants and audit records.
    pub fn digest(&self) -> Digest {
        Digest::of_parts("cleanroom/policy/v1", &[&crate::to_cbor(self)])
    }
}
