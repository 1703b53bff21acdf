//! Every check that can refuse a request before the spend, as pure functions of
//! (policy, state, request, now). Nothing here does I/O or reads the clock: the service
//! reads the clock once per request, fetches what the host must supply (module, sealed
//! index), and calls these in order. Each refusal has a test below.

use protocol::deadline::Schedule;
use protocol::grant::{submit_binding, BudgetGrant, GRANT_CONTEXT, SUBMIT_CONTEXT};
use protocol::job::QuerySpec;
use protocol::policy::Policy;
use protocol::refusal::RefusalCode as Code;
use protocol::sealed::SealedIndex;
use protocol::signing::Signed;
use protocol::{Bytes, Digest};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A refusal before the spend: a stable code (the wire value) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

pub fn refuse(code: Code, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

impl From<release::ReleaseError> for Refusal {
    fn from(e: release::ReleaseError) -> Self {
        use release::ReleaseError as E;
        let code = match &e {
            E::UnknownModelOutput { .. } => Code::UnknownModelOutput,
            E::Training(_) => Code::TrainingNotAllowed,
            E::Spec(_) | E::BadOutput { .. } | E::BadQuery(_) => Code::BadQuery,
            _ => Code::ReleaseFailed,
        };
        refuse(code, e.to_string())
    }
}

/// What the enclave remembers about grants.
#[derive(Debug, Default)]
pub struct GrantBook {
    /// Every grant id this instance has ever accepted.
    pub seen: HashSet<String>,
    /// Grants accepted and not yet spent, by the query digest they approve.
    pub pending: HashMap<Digest, BudgetGrant>,
}

/// The enclave's identity, for checks that name it.
pub struct Me<'a> {
    pub policy: &'a Policy,
    pub policy_digest: &'a Digest,
    pub public_key: &'a [u8],
}

/// A grant the owner sends with a data key for `dataset`.
pub fn check_grant(
    me: &Me<'_>,
    book: &GrantBook,
    grant: &Signed,
    dataset: &Digest,
    now: u64,
) -> Result<BudgetGrant, Refusal> {
    let p = me.policy;
    grant
        .verify(GRANT_CONTEXT, p.owner_public_key.as_slice())
        .map_err(|e| refuse(Code::GrantSignature, format!("grant is not signed by the policy's owner key: {e}")))?;
    let g: BudgetGrant = grant.decode().map_err(|e| refuse(Code::GrantMalformed, e.to_string()))?;
    if g.enclave_public_key.as_slice() != me.public_key {
        return Err(refuse(
            Code::GrantWrongEnclave,
            "grant names another enclave's key (issued to a different or restarted enclave)",
        ));
    }
    if g.policy_digest != *me.policy_digest {
        return Err(refuse(Code::GrantWrongPolicy, "grant names another policy"));
    }
    if g.dataset_digest != p.dataset_digest {
        return Err(refuse(Code::GrantWrongDataset, "grant names a dataset this policy does not govern"));
    }
    if *dataset != g.dataset_digest {
        return Err(refuse(Code::GrantWrongDataset, "key and grant name different datasets"));
    }
    if g.population != p.population {
        return Err(refuse(Code::GrantWrongPopulation, "grant names another population"));
    }
    match p.collaborator(&g.collaborator) {
        Some(c) if c.public_key == g.provider_public_key => {}
        Some(_) => {
            return Err(refuse(
                Code::GrantWrongProviderKey,
                "grant names a key the policy does not list for its collaborator",
            ))
        }
        None => {
            return Err(refuse(
                Code::CollaboratorNotAllowed,
                format!("{:?} is not a collaborator in the policy", g.collaborator),
            ))
        }
    }
    if g.expires_at <= now {
        return Err(refuse(Code::GrantExpired, format!("grant expired at {}", g.expires_at)));
    }
    if p.dataset_expires_at.is_some_and(|t| t <= now) {
        return Err(refuse(Code::DatasetExpired, "the dataset is past its retention date"));
    }
    if book.seen.contains(&g.grant_id) {
        return Err(refuse(Code::GrantReplayed, format!("grant {} was already used", g.grant_id)));
    }
    if book.pending.contains_key(&g.query_digest) {
        return Err(refuse(Code::QueryAlreadyGranted, "this query already holds a grant"));
    }
    if release::parse_epsilon(&g.epsilon)? > release::parse_epsilon(&p.max_epsilon_per_job)? {
        return Err(refuse(
            Code::GrantExceedsPolicy,
            format!("grant ε {} exceeds the policy's per-job maximum {}", g.epsilon, p.max_epsilon_per_job),
        ));
    }
    if release::parse_delta(&g.delta)? > release::parse_delta(&p.max_delta_per_job)? {
        return Err(refuse(
            Code::GrantExceedsPolicy,
            format!("grant δ {} exceeds the policy's per-job maximum {}", g.delta, p.max_delta_per_job),
        ));
    }
    Ok(g)
}

/// The submission is by the key the policy lists for its collaborator, on this channel.
pub fn check_proof(
    policy: &Policy,
    exporter: &[u8],
    spec: &QuerySpec,
    query_digest: &Digest,
    proof: &Bytes,
) -> Result<(), Refusal> {
    let c = policy.collaborator(&spec.collaborator).ok_or_else(|| {
        refuse(Code::CollaboratorNotAllowed, format!("{:?} is not a collaborator", spec.collaborator))
    })?;
    let signed = Signed {
        context: SUBMIT_CONTEXT.into(),
        payload: Bytes(submit_binding(exporter, query_digest).as_bytes().to_vec()),
        signer: c.public_key.clone(),
        signature: proof.clone(),
    };
    signed.verify(SUBMIT_CONTEXT, c.public_key.as_slice()).map_err(|_| {
        refuse(Code::BadProviderProof, "the submission is not signed on this channel by the collaborator's key")
    })
}

/// What a query costs, exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub epsilon: dp::Epsilon,
    pub delta: dp::Rational,
}

/// The query against the policy alone: its form, dataset, module, classes, column roles
/// and cost.
pub fn check_query(policy: &Policy, spec: &QuerySpec) -> Result<Cost, Refusal> {
    spec.validate().map_err(|e| refuse(Code::BadQuery, e.to_string()))?;
    let p = policy;
    if spec.dataset_digest != p.dataset_digest {
        return Err(refuse(Code::DatasetNotGoverned, "the policy does not govern this dataset"));
    }
    if !p.allowed_modules.contains(&spec.module_hash) {
        return Err(refuse(
            Code::ModuleNotAllowed,
            format!("module {} is not allowed by the policy", spec.module_hash),
        ));
    }
    if let Some(o) = spec.outputs.iter().find(|o| !p.allows_class(o.class())) {
        return Err(refuse(
            Code::QueryClassNotAllowed,
            format!("query class {} is not allowed by the policy", o.class()),
        ));
    }
    for (name, role) in spec.column_roles() {
        match p.column(name) {
            None => return Err(refuse(Code::UnknownColumn, format!("column {name:?} is not in the sealed schema"))),
            Some(c) if !c.roles.contains(&role) => {
                return Err(refuse(
                    Code::ColumnRoleNotAllowed,
                    format!("the policy does not allow column {name:?} as {}", role.as_str()),
                ))
            }
            Some(_) => {}
        }
    }
    // Every parameter the policy alone decides (bounds, bins, noise scales, key domains),
    // and the query's cost.
    let cost = release::check_query(spec, p, None)?;
    let epsilon = cost.epsilon;
    if epsilon > release::parse_epsilon(&p.max_epsilon_per_job)? {
        return Err(refuse(
            Code::EpsilonExceedsPolicy,
            format!("query asks for ε = {epsilon}, above the policy's per-job maximum"),
        ));
    }
    let delta = cost.delta;
    if delta > *release::parse_delta(&p.max_delta_per_job)?.as_rational() {
        return Err(refuse(
            Code::DeltaExceedsPolicy,
            format!("query costs δ = {delta}, above the policy's per-job maximum"),
        ));
    }
    Ok(Cost { epsilon, delta })
}

/// The query's grant: pending, for its collaborator, unexpired, covering its cost; and the
/// data key released.
pub fn check_grant_covers(
    spec: &QuerySpec,
    query_digest: &Digest,
    book: &GrantBook,
    have_data_key: bool,
    cost: &Cost,
    now: u64,
) -> Result<BudgetGrant, Refusal> {
    let grant = book.pending.get(query_digest).cloned().ok_or_else(|| {
        refuse(Code::NoGrant, "no budget grant for this query (the owner approves a query digest, not a job id)")
    })?;
    if !have_data_key {
        return Err(refuse(Code::NoDataKey, "the owner has not released the data key"));
    }
    if grant.collaborator != spec.collaborator {
        return Err(refuse(Code::GrantWrongCollaborator, "the grant is for another collaborator"));
    }
    if grant.expires_at <= now {
        return Err(refuse(Code::GrantExpired, "the grant for this query has expired"));
    }
    if cost.epsilon > release::parse_epsilon(&grant.epsilon)? {
        return Err(refuse(
            Code::EpsilonExceedsGrant,
            format!("query asks for ε = {}, the grant covers {}", cost.epsilon, grant.epsilon),
        ));
    }
    if cost.delta > *release::parse_delta(&grant.delta)?.as_rational() {
        return Err(refuse(
            Code::DeltaExceedsGrant,
            format!("query costs δ = {}, the grant covers {}", cost.delta, grant.delta),
        ));
    }
    Ok(grant)
}

/// The module blob the submission names is the module the query names (checked before
/// the host is asked for it).
pub fn check_module_blob(spec: &QuerySpec, module_blob: &Digest) -> Result<(), Refusal> {
    if *module_blob != spec.module_hash {
        return Err(refuse(Code::ModuleHashMismatch, "the module blob is not the module named in the query"));
    }
    Ok(())
}

/// The admitted module is the one named, and reads the query's inputs with their sealed types.
pub fn check_module(
    policy: &Policy,
    spec: &QuerySpec,
    module_blob: &Digest,
    admitted_digest: &Digest,
    inputs: &[sandbox::ColumnKind],
) -> Result<(), Refusal> {
    if *module_blob != spec.module_hash || *admitted_digest != spec.module_hash {
        return Err(refuse(Code::ModuleHashMismatch, "the module blob is not the module named in the query"));
    }
    if inputs.len() != spec.inputs.len() {
        return Err(refuse(
            Code::InputCount,
            format!("module reads {} input columns, the query names {}", inputs.len(), spec.inputs.len()),
        ));
    }
    for (name, kind) in spec.inputs.iter().zip(inputs) {
        let t = policy.column(name).map(|c| c.sealed_type.as_str()).unwrap_or("");
        if t != kind.sealed_type() {
            return Err(refuse(Code::InputType, format!("module reads {kind} from {name:?}, which is {t}")));
        }
    }
    Ok(())
}

/// A training query's module: trainable, its label kind the sealed label's type, and no
/// more parameters than the policy allows. Returns the plan (public: the query and policy).
pub fn check_training(
    policy: &Policy,
    spec: &QuerySpec,
    training: Option<&sandbox::TrainManifest>,
) -> Result<Option<release::training::TrainingPlan>, Refusal> {
    let Some(t) = &spec.training else { return Ok(None) };
    let plan = release::training::TrainingPlan::new(t, policy)?;
    let Some(m) = training else {
        return Err(refuse(Code::ModuleNotTrainable, "the module has no cleanroom_train section"));
    };
    plan.check_module(policy, m.n_params as usize).map_err(|e| refuse(Code::ModuleNotTrainable, e.to_string()))?;
    let sealed = policy.column(&t.label).map(|c| c.sealed_type.as_str()).unwrap_or("");
    if sealed != m.label.sealed_type() {
        return Err(refuse(
            Code::ModuleNotTrainable,
            format!("module reads its label as {}, {:?} is {sealed}", m.label, t.label),
        ));
    }
    Ok(Some(plan))
}

/// The sealed index the host or provider hands over: it decodes and matches the policy's table.
pub fn check_index(policy: &Policy, spec: &QuerySpec, bytes: &[u8]) -> Result<SealedIndex, Refusal> {
    let index: SealedIndex = protocol::from_cbor(bytes).map_err(|e| refuse(Code::BadSealedIndex, e.to_string()))?;
    if index.dataset_digest != spec.dataset_digest {
        return Err(refuse(Code::BadSealedIndex, "sealed index names another dataset"));
    }
    if index.chunks.len() as u64 != policy.sealed_chunks || index.rows_per_chunk != policy.rows_per_chunk {
        return Err(refuse(
            Code::BadSealedIndex,
            format!(
                "the sealed index lists {} chunks of {} rows; the policy's table has {} of {}",
                index.chunks.len(),
                index.rows_per_chunk,
                policy.sealed_chunks,
                policy.rows_per_chunk
            ),
        ));
    }
    Ok(index)
}

/// Outputs over groups found in the data (each reserves release time per sealed row).
/// The query's deadline against the worst case the policy's figures allow (for a training
/// query, with its plan and the module's parameter count).
pub fn check_deadline(
    policy: &Policy,
    spec: &QuerySpec,
    training: Option<(&release::training::TrainingPlan, usize)>,
) -> Result<Schedule, Refusal> {
    let p = policy;
    // Sized from the policy's figures only (the index agrees with them).
    let schedule = release::training::schedule(spec, p, training)
        .ok_or_else(|| refuse(Code::DeadlineOverflow, "the table's worst case does not fit any deadline"))?;
    if spec.deadline_ms > p.timing.max_deadline_ms {
        return Err(refuse(
            Code::DeadlineExceedsPolicy,
            format!("deadline {} ms exceeds the policy's {} ms", spec.deadline_ms, p.timing.max_deadline_ms),
        ));
    }
    if Duration::from_millis(spec.deadline_ms) < schedule.minimum {
        return Err(refuse(
            Code::DeadlineTooShort,
            format!(
                "deadline {} ms is below the worst case of {} ms for {} chunks of {} rows at {} fuel per unit",
                spec.deadline_ms,
                schedule.minimum.as_millis() + 1,
                p.sealed_chunks,
                p.rows_per_chunk,
                p.sandbox.fuel_per_unit
            ),
        ));
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests;
