//! One way to build an owner's policy from a manifest, with one set of defaults, used by
//! `cleanroom policy init`, the provider's local test and the tests.

use protocol::manifest::Manifest;
use protocol::policy::{defaults, Collaborator, ColumnPolicy, ColumnRole, Decimal, Policy, SandboxLimits, Timing};
use protocol::{Bytes, DecodeError, Digest};

/// Everything about a policy that is a number, with the defaults `policy init` uses.
#[derive(Debug, Clone)]
pub struct PolicyParams {
    pub min_group_size: u64,
    pub max_rows_per_unit: u32,
    pub max_epsilon_per_job: Decimal,
    pub max_delta_per_job: Decimal,
    pub partition_delta: Decimal,
    pub fuel_per_unit: u64,
    pub max_deadline_ms: u64,
    pub memory_limit_bytes: u64,
    pub max_module_bytes: u64,
    /// Let modules read the privacy-unit token column (harmless under per-unit isolation,
    /// off by default all the same: a model rarely needs it).
    pub token_as_input: bool,
    /// The owner's X25519 public key for owner-only diagnostics of spent jobs.
    pub diagnostics_key: Option<Vec<u8>>,
    /// Bounds on DP fine-tuning; `None` admits no training query.
    pub training: Option<protocol::training::TrainingLimits>,
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams {
            min_group_size: defaults::MIN_GROUP_SIZE,
            max_rows_per_unit: defaults::MAX_ROWS_PER_UNIT,
            max_epsilon_per_job: Decimal::literal(defaults::MAX_EPSILON_PER_JOB),
            max_delta_per_job: Decimal::literal(defaults::MAX_DELTA_PER_JOB),
            partition_delta: Decimal::literal(defaults::PARTITION_DELTA),
            fuel_per_unit: defaults::FUEL_PER_UNIT,
            max_deadline_ms: defaults::MAX_DEADLINE_MS,
            memory_limit_bytes: defaults::MEMORY_LIMIT_BYTES,
            max_module_bytes: defaults::MAX_MODULE_BYTES,
            token_as_input: false,
            diagnostics_key: None,
            training: None,
        }
    }
}

/// The sealed schema with its roles: those the owner's rules declared (in the manifest),
/// else defaults by type (numbers are inputs, dictionaries inputs and group keys); the
/// named `labels` (i64, 0/1) are labels too; the token column plays no role.
pub fn columns(m: &Manifest, labels: &[String], token_as_input: bool) -> Result<Vec<ColumnPolicy>, DecodeError> {
    let schema = m.sealed_schema();
    for l in labels {
        match schema.iter().find(|(n, _)| n == l) {
            Some((_, t)) if t == "i64" => {}
            Some((_, t)) => {
                return Err(DecodeError::Invalid {
                    what: "policy",
                    why: format!("label {l:?} is {t}, a label is i64 0/1"),
                })
            }
            None => {
                return Err(DecodeError::Invalid { what: "policy", why: format!("label {l:?} is not a sealed column") })
            }
        }
    }
    // A manifest prepared by a rules file carries the roles the owner declared per column;
    // an older one gets the defaults by type.
    let declared = m.columns.iter().any(|c| !c.roles.is_empty());
    let declared_roles = |name: &str| -> Vec<ColumnRole> {
        let Some(spec) = m.columns.iter().find(|c| c.sealed_name.as_deref() == Some(name)) else { return vec![] };
        // The enclave's label role means 0/1 (AUC); a wider declared domain is not one.
        let binary = spec.label_domain.as_ref().is_some_and(|d| d.iter().all(|v| *v == 0 || *v == 1));
        spec.roles.iter().copied().filter(|r| *r != ColumnRole::Label || binary).collect()
    };
    Ok(schema
        .into_iter()
        .map(|(name, sealed_type)| {
            let mut roles = match sealed_type.as_str() {
                "token" if token_as_input => vec![ColumnRole::Input],
                "token" => vec![],
                _ if declared => declared_roles(&name),
                "dict" => vec![ColumnRole::Input, ColumnRole::GroupBy],
                _ => vec![ColumnRole::Input],
            };
            if labels.contains(&name) && !roles.contains(&ColumnRole::Label) {
                roles.push(ColumnRole::Label);
            }
            ColumnPolicy { name, sealed_type, roles, domain: None }
        })
        .collect())
}

/// Build and validate a policy for `m`.
pub fn build(
    m: &Manifest,
    owner_public_key: Vec<u8>,
    modules: Vec<Digest>,
    collaborators: Vec<Collaborator>,
    labels: &[String],
    p: &PolicyParams,
) -> Result<Policy, DecodeError> {
    let population = m.population().ok_or_else(|| DecodeError::Invalid {
        what: "manifest",
        why: "the privacy-unit column is not tokenized, so it names no population".into(),
    })?;
    let policy = Policy {
        policy_id: format!("{}-policy", m.dataset_name),
        owner_public_key: Bytes(owner_public_key),
        dataset_digest: m.dataset_digest,
        population: population.to_string(),
        privacy_unit: m.privacy_unit.clone(),
        sealed_chunks: m.chunks,
        rows_per_chunk: m.rows_per_chunk,
        columns: columns(m, labels, p.token_as_input)?,
        allowed_modules: modules,
        collaborators,
        min_group_size: p.min_group_size,
        max_rows_per_unit: p.max_rows_per_unit,
        max_epsilon_per_job: p.max_epsilon_per_job.clone(),
        max_delta_per_job: p.max_delta_per_job.clone(),
        partition_delta: p.partition_delta.clone(),
        timing: Timing::measured(p.max_deadline_ms),
        sandbox: SandboxLimits {
            fuel_per_unit: p.fuel_per_unit,
            memory_limit_bytes: p.memory_limit_bytes,
            max_module_bytes: p.max_module_bytes,
        },
        diagnostics_key: p.diagnostics_key.clone().map(Bytes),
        training: p.training.clone(),
        dataset_expires_at: match &m.retention_until {
            None => None,
            Some(day) => Some(
                owner_prep::prepare::Date::parse_iso(day)
                    .ok_or_else(|| DecodeError::Invalid {
                        what: "manifest",
                        why: format!("retention_until {day:?} is not a YYYY-MM-DD date"),
                    })?
                    .end_unix(),
            ),
        },
        ..Policy::new(vec![], m.dataset_digest, &m.privacy_unit, vec![])
    };
    // Round-trip through the parser so we never write a policy we would refuse.
    Policy::from_toml(&policy.to_toml())
}

/// Parse `NAME=HEX` (an Ed25519 public key of 32 bytes).
pub fn parse_collaborator(s: &str) -> Result<Collaborator, String> {
    let (name, key) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=PUBLIC_KEY_HEX"))?;
    let key = hex::decode(key.trim()).map_err(|_| format!("{name}: the public key is not hex"))?;
    if key.len() != 32 || name.trim().is_empty() {
        return Err(format!("{name}: expected a name and a 32-byte Ed25519 public key"));
    }
    Ok(Collaborator { name: name.trim().to_string(), public_key: Bytes(key) })
}
