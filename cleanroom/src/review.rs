//! The owner's review of a proposed query: what it computes, in plain words, what it costs
//! (ε, δ), and how large each output's error will be, before any grant is issued.

use protocol::job::QuerySpec;
use protocol::policy::Policy;
use std::fmt::Write;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    #[error("the query does not fit the policy: {0}")]
    Release(#[from] release::ReleaseError),
    #[error("noise plan: {0}")]
    Dp(#[from] dp::DpError),
    #[error("{0}")]
    Policy(String),
}

/// The review as text. Fails (with the reason) on any query the enclave would refuse for
/// its parameters.
pub fn review(spec: &QuerySpec, policy: &Policy, group_size: u64) -> Result<String, ReviewError> {
    plan(spec, policy, None, None, &[group_size])
}

/// The plan of a query, as `cleanroom query check` prints it and the owner's review shows
/// it: what each output computes, its mechanism, ε/δ, every noise term with its sensitivity,
/// and its 95% error at each group size in `group_sizes`. Built by the same code the enclave
/// runs (`release::output_plans`), so a query this accepts passes the enclave's parameter
/// checks. `model_outputs` and `n_params`: the module's declared outputs and parameter
/// count, when the module is at hand.
pub fn plan(
    spec: &QuerySpec,
    policy: &Policy,
    model_outputs: Option<&[String]>,
    n_params: Option<usize>,
    group_sizes: &[u64],
) -> Result<String, ReviewError> {
    let cost = release::check_query(spec, policy, model_outputs)?;
    for (name, role) in spec.column_roles() {
        match policy.column(name) {
            Some(c) if c.roles.contains(&role) => {}
            Some(_) => {
                return Err(ReviewError::Policy(format!("the policy does not allow {name:?} as {}", role.as_str())))
            }
            None => return Err(ReviewError::Policy(format!("{name:?} is not a sealed column"))),
        }
    }
    if let Some(o) = spec.outputs.iter().find(|o| !policy.allows_class(o.class())) {
        return Err(ReviewError::Policy(format!("{}: the policy does not allow the class {}", o.name(), o.class())));
    }
    let provider = policy
        .collaborator(&spec.collaborator)
        .ok_or_else(|| ReviewError::Policy(format!("{:?} is not a collaborator in the policy", spec.collaborator)))?;
    let k = policy.max_rows_per_unit;
    let plans = release::output_plans(spec, policy, model_outputs, group_sizes)?;
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "Query {} (job {:?}) from {} (key {}…)",
        spec.digest(),
        spec.job_id,
        spec.collaborator,
        &hex::encode(provider.public_key.as_slice())[..16]
    );
    let _ = writeln!(
        w,
        "  module {} reads {}",
        spec.module_hash,
        if spec.inputs.is_empty() { "no columns".to_string() } else { spec.inputs.join(", ") }
    );
    let _ =
        writeln!(w, "  each person (privacy unit) counts with at most {k} row(s), scored in an instance of its own");
    let _ = writeln!(
        w,
        "  total cost: ε = {}, δ = {}; reply (result or job_failed) exactly {} ms after the grant is spent",
        cost.epsilon, cost.delta, spec.deadline_ms
    );
    let _ = writeln!(w, "  composition: {}", cost.composition);
    let plan = spec.training.as_ref().map(|t| release::training::TrainingPlan::new(t, policy)).transpose()?;
    // Without the module, the policy's largest parameter count: an upper bound.
    let params = n_params.unwrap_or(policy.training.as_ref().map_or(0, |l| l.max_params as usize));
    if let Some(s) = release::training::schedule(spec, policy, plan.as_ref().map(|p| (p, params))) {
        let _ = writeln!(
            w,
            "  the worst case needs a deadline of at least {} ms{}",
            s.minimum.as_millis() + 1,
            if plan.is_some() && n_params.is_none() { " (for a module of the policy's largest size)" } else { "" }
        );
    }
    if let Some(plan) = &plan {
        for line in release::training::describe(plan, None) {
            let _ = writeln!(w, "  {line}");
        }
        let _ = writeln!(
            w,
            "  only the final parameters leave{}; no per-step value, loss or norm",
            if spec.outputs.is_empty() { "" } else { ", with the outputs below computed with them" }
        );
    }
    for p in &plans {
        let _ = writeln!(w, "  {} ({}): {}; ε = {}", p.name, p.class, p.computes, p.epsilon);
        for n in &p.noise {
            let _ = writeln!(
                w,
                "    noise on {}: {} with scale {} (sensitivity {}, {})",
                n.on, n.distribution, n.scale, n.sensitivity, n.budget
            );
        }
        if let Some(c) = p.selection_threshold {
            let _ = writeln!(
                w,
                "    a group is shown only if its noisy row count reaches {c} (DP partition selection, δ = {})",
                policy.partition_delta
            );
        }
        for (n, e) in &p.ci95_at {
            match e {
                Some(e) => {
                    let _ = writeln!(w, "    95% of the time within ±{e:.4} at {n} rows per group");
                }
                None => {
                    let _ = writeln!(w, "    at {n} rows per group: each released value states its own 95% interval");
                }
            }
        }
    }
    Ok(t)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    #[error("{0:?} is not a collaborator in the policy")]
    NotACollaborator(String),
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    #[error("system randomness failed")]
    Random,
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
}

/// Record in the ledger, and return, the grant for exactly `spec` (its digest, its ε and δ,
/// the key the policy lists for its collaborator) to the enclave key `enclave_public_key`.
/// Written before anything is sent: a crash loses budget, never creates it.
pub fn grant_for_query(
    ledger: &mut ledger::Ledger,
    policy: &Policy,
    spec: &QuerySpec,
    enclave_public_key: &[u8],
    now: u64,
    ttl: u64,
) -> Result<protocol::grant::BudgetGrant, GrantError> {
    let provider = policy
        .collaborator(&spec.collaborator)
        .ok_or_else(|| GrantError::NotACollaborator(spec.collaborator.clone()))?;
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(|_| GrantError::Random)?;
    Ok(ledger.issue_grant(ledger::GrantRequest {
        grant_id: format!("grant-{}", hex::encode(nonce)),
        job_id: &spec.job_id,
        query_digest: spec.digest(),
        dataset: policy.dataset_digest,
        population: &policy.population,
        policy_digest: policy.digest(),
        collaborator: &spec.collaborator,
        provider_public_key: provider.public_key.as_slice(),
        epsilon: &release::query_epsilon(spec, policy)?.to_string(),
        delta: &release::query_delta(spec, policy)?.to_string(),
        enclave_public_key,
        nonce,
        now,
        expires_at: now.saturating_add(ttl),
    })?)
}
