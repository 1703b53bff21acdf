//! The dataset manifest: what a sealed table contains, how each column was treated,
//! and where it came from. Its digest goes into the owner's log and the audit record.

use crate::{DecodeError, Digest};
use serde::{Deserialize, Serialize};

/// Sensitivity label of a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Identifies a person on its own (name, email, SSN, account id).
    DirectIdentifier,
    /// Identifies in combination (zip, birth year).
    QuasiIdentifier,
    /// The attribute the collaboration is about (income, default).
    Sensitive,
    Public,
}

/// What `prepare` did to a column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// Replaced with HMAC-SHA-256 under the owner's tokenization key; the privacy unit.
    Tokenized {
        key_id: String,
    },
    /// Not present in the sealed table.
    Dropped,
    /// Coarsened: `rule` says how (e.g. "prefix:3", "bin:10").
    Generalized {
        rule: String,
    },
    Kept,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Name in the source file.
    pub source_name: String,
    /// Name in the sealed table (absent when dropped).
    pub sealed_name: Option<String>,
    /// Sealed type: f64, i64, dict or token.
    pub sealed_type: Option<String>,
    pub label: Sensitivity,
    pub transform: Transform,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub source_file: String,
    pub source_format: String,
    pub source_digest: Digest,
    /// Unix seconds.
    pub ingested_at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KAnonymityReport {
    pub quasi_identifiers: Vec<String>,
    /// Size of the smallest equivalence class over the quasi-identifiers.
    pub k_min: u64,
    pub classes: u64,
    /// Equivalence classes smaller than `k_target`, and the rows in them.
    pub k_target: u64,
    pub classes_below_target: u64,
    pub rows_below_target: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiFinding {
    pub column: String,
    pub detector: String,
    pub matches: u64,
    pub sampled: u64,
    pub declared_label: Sensitivity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub dataset_name: String,
    pub columns: Vec<ColumnSpec>,
    /// Sealed column holding the privacy-unit token.
    pub privacy_unit: String,
    pub lineage: Lineage,
    pub rows: u64,
    pub chunks: u64,
    pub rows_per_chunk: u64,
    /// SHA-256 of the concatenated plaintext chunks; bound into every chunk's AAD.
    pub dataset_digest: Digest,
    pub k_anonymity: Option<KAnonymityReport>,
    pub pii_findings: Vec<PiiFinding>,
    /// Rows are sorted by the privacy-unit token, so the enclave can bound contributions
    /// one unit at a time with memory that does not grow with the table.
    #[serde(default)]
    pub sorted_by_unit: bool,
}

impl Manifest {
    pub fn digest(&self) -> Digest {
        Digest::of_parts("cleanroom/manifest/v1", &[&crate::to_cbor(self)])
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serializes")
    }

    pub fn from_json(s: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(s).map_err(|e| DecodeError::Json(e.to_string()))
    }

    /// Names and types of the sealed columns, in order.
    pub fn sealed_schema(&self) -> Vec<(String, String)> {
        self.columns.iter().filter_map(|c| Some((c.sealed_name.clone()?, c.sealed_type.clone()?))).collect()
    }
}
