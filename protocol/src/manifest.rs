//! The dataset manifest: what a sealed table contains, how each column was treated,
//! and where it came from. Its digest goes into the owner's log and the audit record.

use crate::policy::ColumnRole;
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
    /// Roles the owner's rules allow (input, group_by, label); the policy starts from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ColumnRole>,
    /// The values a label column may take (prepare refused any other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_domain: Option<Vec<i64>>,
    /// The owner's reason for this treatment, from the rules file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when the owner kept a column in which the scan found PII, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_pii: Option<String>,
    /// Set when the column is less protected than in the previous snapshot, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_regression: Option<String>,
    /// The column may hold nulls: every sealed chunk carries its validity (the rules said
    /// `nulls = "keep"`). Absent (false) in manifests from before nulls, so their digests
    /// are unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub source_file: String,
    pub source_format: String,
    pub source_digest: Digest,
    /// Unix seconds.
    pub ingested_at: u64,
    /// SHA-256 of the rules file that prepared the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_digest: Option<Digest>,
    /// Key id of the tokenization key and where it lives (`file` or `pkcs11:<token label>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
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
    /// Classes are counted in privacy units (people), not rows, when this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_below_target: Option<u64>,
    /// What the rules chose for classes below the target: `refuse` (none were left),
    /// `suppress` (their rows are not in the sealed table) or `override: <reason>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// Rows left out by the `suppress` remedy.
    #[serde(default)]
    pub rows_suppressed: u64,
    /// Distinct values of each declared sensitive column within the smallest-diversity
    /// class (distinct l-diversity, counted up to a cap).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub l_diversity: Vec<LDiversity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LDiversity {
    pub column: String,
    /// The fewest distinct values of this column in any equivalence class.
    pub l_min: u64,
    /// Classes with a single value of this column (everyone in them shares it).
    pub classes_with_one_value: u64,
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
    /// Rows of the source left out because a column whose rule says `nulls = "drop_row"` was null.
    #[serde(default)]
    pub rows_dropped_null: u64,
    /// The last day (YYYY-MM-DD) the sealed dataset may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_until: Option<String>,
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

    /// Sealed names of the columns that may hold nulls, in order.
    pub fn nullable_columns(&self) -> Vec<String> {
        self.columns.iter().filter(|c| c.nullable).filter_map(|c| c.sealed_name.clone()).collect()
    }
}

/// One sealed column as a provider sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicColumn {
    pub name: String,
    /// f64, i64, dict or token.
    pub sealed_type: String,
    pub label: Sensitivity,
    /// How prepare derived it (for example `generalized: bin:10`), without key material.
    pub transform: String,
    /// Roles the owner's rules allow for it (the policy has the final word).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ColumnRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_domain: Option<Vec<i64>>,
    /// The column may hold nulls, which a model reads as validity (docs/wasm-abi.md). Says
    /// that nulls may occur, never how many.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
}

/// What the owner hands a provider: the sealed schema and the digests that name the data,
/// nothing that counts people. Row counts, k-anonymity classes and PII scan counts stay in
/// the owner's [`Manifest`]. `chunks` and `rows_per_chunk` are public anyway (the host
/// stores the chunks): they bound the table's size to within one chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicManifest {
    pub version: u32,
    pub dataset_name: String,
    pub dataset_digest: Digest,
    /// Digest of the owner's full manifest, so an auditor can tie the two together.
    pub manifest_digest: Digest,
    pub privacy_unit: String,
    pub columns: Vec<PublicColumn>,
    pub chunks: u64,
    pub rows_per_chunk: u64,
}

impl PublicManifest {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("public manifest serializes")
    }

    pub fn from_json(s: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(s).map_err(|e| DecodeError::Json(e.to_string()))
    }
}

impl Manifest {
    /// The schema-only view for providers.
    pub fn public(&self) -> PublicManifest {
        let transform = |t: &Transform| match t {
            Transform::Tokenized { .. } => "tokenized".to_string(),
            Transform::Dropped => "dropped".to_string(),
            Transform::Generalized { rule } => format!("generalized: {rule}"),
            Transform::Kept => "kept".to_string(),
        };
        PublicManifest {
            version: self.version,
            dataset_name: self.dataset_name.clone(),
            dataset_digest: self.dataset_digest,
            manifest_digest: self.digest(),
            privacy_unit: self.privacy_unit.clone(),
            columns: self
                .columns
                .iter()
                .filter_map(|c| {
                    Some(PublicColumn {
                        name: c.sealed_name.clone()?,
                        sealed_type: c.sealed_type.clone()?,
                        label: c.label,
                        transform: transform(&c.transform),
                        roles: c.roles.clone(),
                        label_domain: c.label_domain.clone(),
                        nullable: c.nullable,
                    })
                })
                .collect(),
            chunks: self.chunks,
            rows_per_chunk: self.rows_per_chunk,
        }
    }

    /// The id of the key that tokenized the privacy unit: names the population.
    pub fn population(&self) -> Option<&str> {
        self.columns.iter().find_map(|c| match (&c.sealed_name, &c.transform) {
            (Some(n), Transform::Tokenized { key_id }) if n == &self.privacy_unit => Some(key_id.as_str()),
            _ => None,
        })
    }
}
