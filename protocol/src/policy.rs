//! The owner's policy: which modules and query classes may run on which dataset, which
//! columns may play which role, which providers may submit (by key), and the limits that
//! fix a job's cost and reply instant. Written in TOML by the owner; its digest is measured
//! into the enclave (PCR16 on Nitro, the report binding on SNP) so the attested state names it.

use crate::{Bytes, DecodeError, Digest};
use serde::{Deserialize, Serialize};

/// A non-negative exact number such as "0.5", "1e-6" or "1/3": parsed when it is made or
/// read (a policy, query or grant with anything else does not decode), and kept as the
/// text it was written in, so digests and signatures cover exactly what was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Decimal(String);

impl Decimal {
    /// `text` if it is an exact non-negative number (`dp::Rational`'s grammar: `123`,
    /// `0.5`, `.5`, `1e-6`, `2.5E3`, `1/3`; no sign, no NaN).
    pub fn new(text: impl Into<String>) -> Result<Decimal, dp::DpError> {
        let text = text.into();
        text.parse::<dp::Rational>()?;
        Ok(Decimal(text))
    }

    /// A number written in code. Panics if it is not one: for literals only, never for
    /// input (use [`Decimal::new`]).
    #[track_caller]
    pub fn literal(text: &str) -> Decimal {
        Decimal::new(text).unwrap_or_else(|e| panic!("not a decimal literal: {e}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The exact value (cannot fail: a `Decimal` is checked when made).
    pub fn rational(&self) -> dp::Rational {
        self.0.parse().expect("a Decimal is checked when made")
    }
}

impl From<dp::Rational> for Decimal {
    fn from(r: dp::Rational) -> Decimal {
        Decimal(r.to_string())
    }
}

impl From<dp::Epsilon> for Decimal {
    fn from(e: dp::Epsilon) -> Decimal {
        Decimal(e.to_string())
    }
}

impl From<dp::Delta> for Decimal {
    fn from(d: dp::Delta) -> Decimal {
        Decimal(d.to_string())
    }
}

impl std::str::FromStr for Decimal {
    type Err = dp::DpError;
    fn from_str(s: &str) -> Result<Decimal, dp::DpError> {
        Decimal::new(s)
    }
}

impl TryFrom<String> for Decimal {
    type Error = dp::DpError;
    fn try_from(s: String) -> Result<Decimal, dp::DpError> {
        Decimal::new(s)
    }
}

impl From<Decimal> for String {
    fn from(d: Decimal) -> String {
        d.0
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub use crate::job::QueryClass;

/// The defaults `cleanroom policy init` writes. One set: its flags, the owner's library
/// ([`Policy::new`]) and the test fixtures all start from these.
pub mod defaults {
    pub const MAX_EPSILON_PER_JOB: &str = "1";
    pub const MAX_DELTA_PER_JOB: &str = "0.00001";
    pub const PARTITION_DELTA: &str = "0.000001";
    pub const MIN_GROUP_SIZE: u64 = 50;
    pub const MAX_ROWS_PER_UNIT: u32 = 1;
    pub const FUEL_PER_UNIT: u64 = 40_000;
    pub const MEMORY_LIMIT_BYTES: u64 = 2 << 20;
    pub const MAX_MODULE_BYTES: u64 = 8 << 20;
    pub const MAX_DEADLINE_MS: u64 = 600_000;
}

/// What a query may do with a sealed column. Checked before any data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnRole {
    /// Handed to the module as an input column.
    Input,
    /// A dictionary column whose values may name released groups.
    GroupBy,
    /// A 0/1 label (prepare enforced the domain) that AUC, confusion matrices and
    /// calibration may compare scores against.
    Label,
    /// A numeric (f64 or i64) column whose clamped values may be aggregated directly (sum,
    /// mean, variance, histogram, quantiles, covariance), not only through a model.
    Value,
}

impl ColumnRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnRole::Input => "input",
            ColumnRole::GroupBy => "group_by",
            ColumnRole::Label => "label",
            ColumnRole::Value => "value",
        }
    }
}

/// One sealed column as the policy sees it: its public name and type (from the manifest)
/// and the roles the owner allows for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnPolicy {
    pub name: String,
    /// Sealed type: f64, i64, dict or token.
    pub sealed_type: String,
    #[serde(default)]
    pub roles: Vec<ColumnRole>,
    /// The public domain of a dictionary column, when the owner declares one (for example
    /// the 26 letters of a bin label). An output grouped only by columns with a declared
    /// domain releases every combination, with no partition selection and no δ; a row whose
    /// value is outside the domain is in no group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Vec<String>>,
}

/// A model provider allowed to submit jobs, identified by its Ed25519 key: a submission
/// proves possession of it on the attested channel, and grants name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collaborator {
    pub name: String,
    pub public_key: Bytes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimits {
    /// Deterministic fuel (roughly, Wasm instructions) the module may spend on one privacy
    /// unit. A unit that runs out is absent from the job; the job goes on.
    pub fuel_per_unit: u64,
    pub memory_limit_bytes: u64,
    pub max_module_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            fuel_per_unit: defaults::FUEL_PER_UNIT,
            memory_limit_bytes: defaults::MEMORY_LIMIT_BYTES,
            max_module_bytes: defaults::MAX_MODULE_BYTES,
        }
    }
}

impl ColumnPolicy {
    /// A column of the sealed schema with the roles it may play and no declared domain.
    pub fn new(name: &str, sealed_type: &str, roles: Vec<ColumnRole>) -> ColumnPolicy {
        ColumnPolicy { name: name.into(), sealed_type: sealed_type.into(), roles, domain: None }
    }
}

/// Public constants that size a job's deadline (see [`crate::deadline`]). They are
/// worst-case estimates for the machine the owner runs on: an enclave slower than them
/// misses deadlines (the job fails at its deadline) but never replies at another instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Longest deadline a query may declare.
    pub max_deadline_ms: u64,
    /// Fixed time for admission, key checks, noise and signing.
    pub setup_ms: u64,
    /// Worst-case nanoseconds per unit of fuel.
    pub ns_per_fuel: u64,
    /// Worst-case nanoseconds per unit outside the module: a fresh instance, staging,
    /// bounding and aggregation.
    pub unit_overhead_ns: u64,
    /// Worst-case nanoseconds per sealed row to fetch, decrypt and decode it.
    pub ingest_ns_per_row: u64,
    /// Worst-case nanoseconds a unit may spend on one 64 KiB page of linear memory it is
    /// allowed (touching it, and resetting it afterwards). Fuel does not count memory
    /// traffic, so a unit's worst case includes its whole memory limit at this rate.
    pub ns_per_memory_page: u64,
}

impl Timing {
    /// Worst-case figures for one dedicated enclave vCPU, measured on the development
    /// machine (BENCHMARKS.md, "Per-unit isolation"): a fresh instance of credit-lr costs
    /// about 11 µs (a trivial module 2.4 µs); a unit of fuel costs 0.07 ns in a busy loop
    /// but up to 9 ns in a loop of subnormal float multiplies, the slowest pattern
    /// measured; a unit that writes its whole 2 MiB memory costs about 0.7 µs per 64 KiB
    /// page in a warm pool slot. What `cleanroom policy init` writes.
    pub fn measured(max_deadline_ms: u64) -> Timing {
        Timing {
            max_deadline_ms,
            setup_ms: 250,
            ns_per_fuel: 10,
            unit_overhead_ns: 60_000,
            ingest_ns_per_row: 3_000,
            ns_per_memory_page: 3_000,
        }
    }

    /// One unit of time for everything (a millisecond of setup, a nanosecond per fuel,
    /// unit, row and page): for tests whose deadlines must not depend on the machine.
    pub fn nominal(max_deadline_ms: u64) -> Timing {
        Timing {
            max_deadline_ms,
            setup_ms: 1,
            ns_per_fuel: 1,
            unit_overhead_ns: 1,
            ingest_ns_per_row: 1,
            ns_per_memory_page: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub policy_id: String,
    /// Ed25519 key that signs budget grants.
    pub owner_public_key: Bytes,
    /// The only dataset this policy governs.
    pub dataset_digest: Digest,
    /// The people behind the privacy-unit tokens: the id of the token key. Budget is
    /// capped per population across collaborators and re-seals.
    pub population: String,
    /// Sealed column holding the privacy-unit token; privacy is per unit, not per row.
    pub privacy_unit: String,
    /// The sealed table's public shape (from the manifest): the number of chunks and the
    /// most rows in one. The job's schedule is sized from these, never from the sealed index
    /// the host or provider hands over (which must agree).
    pub sealed_chunks: u64,
    pub rows_per_chunk: u64,
    /// The sealed schema and the roles each column may play.
    pub columns: Vec<ColumnPolicy>,
    /// SHA-256 of the Wasm modules allowed to run.
    pub allowed_modules: Vec<Digest>,
    pub allowed_query_classes: Vec<String>,
    pub collaborators: Vec<Collaborator>,
    /// Groups with fewer (noisy) members than this are never released.
    pub min_group_size: u64,
    /// Rows per privacy unit kept before scoring and aggregation.
    pub max_rows_per_unit: u32,
    pub max_epsilon_per_job: Decimal,
    pub max_delta_per_job: Decimal,
    /// δ of each group-by output's DP partition selection.
    pub partition_delta: Decimal,
    pub timing: Timing,
    pub sandbox: SandboxLimits,
    /// The owner's X25519 key for owner-only diagnostics of spent jobs (see
    /// [`crate::diagnostics`]); without one, nothing data-dependent is kept at all.
    #[serde(default)]
    pub diagnostics_key: Option<Bytes>,
    /// Unix seconds from which the dataset may no longer be used: the first instant after
    /// the retention date in the owner's rules. The enclave refuses key releases from then
    /// on (by its own clock; the owner's `release` refuses by the owner's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_expires_at: Option<u64>,
    /// Bounds on DP fine-tuning queries; without them, none is admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<crate::training::TrainingLimits>,
}

/// Longest accepted deadline: one day.
pub const MAX_DEADLINE_MS: u64 = 24 * 3600 * 1000;

impl Policy {
    /// A policy for one sealed table with the [`defaults`]: every query class, no module
    /// and no collaborator yet, measured timing, one chunk of one row (set the table's
    /// shape from its manifest), no population name. Change fields with struct update
    /// syntax; [`Policy::validate`] checks the result.
    pub fn new(
        owner_public_key: Vec<u8>,
        dataset_digest: Digest,
        privacy_unit: &str,
        columns: Vec<ColumnPolicy>,
    ) -> Policy {
        Policy {
            policy_id: "policy".into(),
            owner_public_key: Bytes(owner_public_key),
            dataset_digest,
            population: String::new(),
            privacy_unit: privacy_unit.into(),
            sealed_chunks: 1,
            rows_per_chunk: 1,
            columns,
            allowed_modules: vec![],
            allowed_query_classes: QueryClass::ALL.iter().map(|c| c.as_str().to_string()).collect(),
            collaborators: vec![],
            min_group_size: defaults::MIN_GROUP_SIZE,
            max_rows_per_unit: defaults::MAX_ROWS_PER_UNIT,
            max_epsilon_per_job: Decimal::literal(defaults::MAX_EPSILON_PER_JOB),
            max_delta_per_job: Decimal::literal(defaults::MAX_DELTA_PER_JOB),
            partition_delta: Decimal::literal(defaults::PARTITION_DELTA),
            timing: Timing::measured(defaults::MAX_DEADLINE_MS),
            sandbox: SandboxLimits::default(),
            diagnostics_key: None,
            dataset_expires_at: None,
            training: None,
        }
    }

    pub fn from_toml(s: &str) -> Result<Self, DecodeError> {
        let p: Policy = toml::from_str(s).map_err(|e| DecodeError::Toml(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("policy serializes to TOML")
    }

    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad = |why: String| Err(DecodeError::Invalid { what: "policy", why });
        if self.owner_public_key.0.len() != 32 {
            return bad("owner_public_key must be a 32-byte Ed25519 key".into());
        }
        if let Some(c) = self.allowed_query_classes.iter().find(|c| QueryClass::parse(c).is_none()) {
            let known: Vec<&str> = QueryClass::ALL.iter().map(|c| c.as_str()).collect();
            return bad(format!("unknown query class {c:?}; known: {}", known.join(", ")));
        }
        if self.max_rows_per_unit == 0 {
            return bad("max_rows_per_unit must be at least 1".into());
        }
        if self.sandbox.fuel_per_unit == 0 || self.sandbox.memory_limit_bytes == 0 {
            return bad("sandbox limits must be positive".into());
        }
        if self.timing.max_deadline_ms == 0 || self.timing.max_deadline_ms > MAX_DEADLINE_MS {
            return bad(format!("timing.max_deadline_ms must be between 1 and {MAX_DEADLINE_MS}"));
        }
        for (i, c) in self.collaborators.iter().enumerate() {
            if c.public_key.0.len() != 32 {
                return bad(format!("collaborator {:?}: public_key must be a 32-byte Ed25519 key", c.name));
            }
            if self.collaborators[..i].iter().any(|o| o.name == c.name || o.public_key == c.public_key) {
                return bad(format!("collaborator {:?} is listed twice (by name or key)", c.name));
            }
        }
        for (i, c) in self.columns.iter().enumerate() {
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("column {:?} is listed twice", c.name));
            }
            if let Some(d) = &c.domain {
                if c.sealed_type != "dict" {
                    return bad(format!("column {:?}: only a dict column has a domain", c.name));
                }
                if d.is_empty() || d.len() > crate::job::MAX_PUBLIC_GROUPS {
                    return bad(format!(
                        "column {:?}: a domain has 1 to {} values",
                        c.name,
                        crate::job::MAX_PUBLIC_GROUPS
                    ));
                }
                if d.iter().enumerate().any(|(i, v)| d[..i].contains(v)) {
                    return bad(format!("column {:?}: a domain value is listed twice", c.name));
                }
            }
            let type_ok = |t: &str| c.sealed_type == t;
            for role in &c.roles {
                let ok = match role {
                    ColumnRole::Input => true,
                    ColumnRole::GroupBy => type_ok("dict"),
                    ColumnRole::Label => type_ok("i64"),
                    ColumnRole::Value => type_ok("f64") || type_ok("i64"),
                };
                if !ok {
                    return bad(format!("column {:?} ({}) cannot have role {}", c.name, c.sealed_type, role.as_str()));
                }
            }
        }
        if self.diagnostics_key.as_ref().is_some_and(|k| k.0.len() != 32) {
            return bad("diagnostics_key must be a 32-byte X25519 public key".into());
        }
        match self.column(&self.privacy_unit) {
            Some(c) if c.sealed_type == "token" => {}
            _ => return bad(format!("privacy unit {:?} must be a token column of the schema", self.privacy_unit)),
        }
        // The numbers parsed when read; their ranges are checked here, not at job time.
        if self.max_epsilon_per_job.rational() == dp::Rational::ZERO {
            return bad("max_epsilon_per_job must be positive".into());
        }
        for (name, d) in [("max_delta_per_job", &self.max_delta_per_job), ("partition_delta", &self.partition_delta)] {
            if d.rational() >= dp::Rational::ONE {
                return bad(format!("{name} must be below 1"));
            }
        }
        if self.partition_delta.rational() == dp::Rational::ZERO {
            return bad("partition_delta must be positive".into());
        }
        Ok(())
    }

    pub fn column(&self, name: &str) -> Option<&ColumnPolicy> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether the policy allows an output class (`group_mean` names `mean`).
    pub fn allows_class(&self, class: QueryClass) -> bool {
        self.allowed_query_classes.iter().any(|c| QueryClass::parse(c) == Some(class))
    }

    pub fn collaborator(&self, name: &str) -> Option<&Collaborator> {
        self.collaborators.iter().find(|c| c.name == name)
    }

    /// The digest measured into the enclave and named in grants and audit records.
    pub fn digest(&self) -> Digest {
        Digest::of_parts("cleanroom/policy/v2", &[&crate::to_cbor(self)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_parsed_when_made_and_keep_their_text() {
        for good in ["0", "1", "0.5", ".5", "1e-6", "2.5E3", "1/3", "0.00001"] {
            assert_eq!(Decimal::new(good).unwrap().as_str(), good);
            let back: Decimal = serde_json::from_str(&format!("{good:?}")).unwrap();
            assert_eq!(back.as_str(), good, "the text (and so every digest) is kept");
        }
        for bad in ["", "-1", "NaN", "inf", "1/0", "0x10", " 1", "1 ", "1,5", "one"] {
            assert!(Decimal::new(bad).is_err(), "{bad:?} accepted");
            assert!(serde_json::from_str::<Decimal>(&format!("{bad:?}")).is_err(), "{bad:?} decoded");
        }
        assert_eq!(Decimal::literal("1/4").rational(), dp::Rational::new(1, 4).unwrap());
    }

    /// A policy whose ε or δ is not a number, or out of range, fails when it is read.
    #[test]
    fn a_bad_epsilon_or_delta_fails_in_from_toml() {
        let good = Policy::new(vec![1; 32], Digest::of(b"d"), "unit", vec![ColumnPolicy::new("unit", "token", vec![])]);
        let text = good.to_toml();
        assert!(Policy::from_toml(&text).is_ok(), "the control must decode");
        for (field, value, why) in [
            ("max_epsilon_per_job", "\"-1\"", "invalid number"),
            ("max_epsilon_per_job", "\"NaN\"", "invalid number"),
            ("max_epsilon_per_job", "\"0\"", "must be positive"),
            ("max_delta_per_job", "\"1\"", "below 1"),
            ("partition_delta", "\"2/1\"", "below 1"),
            ("partition_delta", "\"0\"", "must be positive"),
        ] {
            let line = text.lines().find(|l| l.starts_with(&format!("{field} = "))).expect("field line");
            let bad = text.replace(line, &format!("{field} = {value}"));
            let e = Policy::from_toml(&bad).expect_err(&format!("{field} = {value} accepted")).to_string();
            assert!(e.to_lowercase().contains(why), "{field} = {value}: {e}");
        }
    }
}
