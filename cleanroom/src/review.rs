//! The owner's review of a proposed query: what it computes, in plain words, what it costs
//! (ε, δ), and how large each output's error will be, before any grant is issued.

use dp::plan::plan_laplace;
use protocol::job::{OutputSpec, QuerySpec};
use protocol::policy::Policy;
use std::fmt::Write;

#[derive(Debug, thiserror::Error)]
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
    release::check_query(spec, policy)?;
    for (name, role) in spec.column_roles() {
        match policy.column(name) {
            Some(c) if c.roles.contains(&role) => {}
            Some(_) => {
                return Err(ReviewError::Policy(format!("the policy does not allow {name:?} as {}", role.as_str())))
            }
            None => return Err(ReviewError::Policy(format!("{name:?} is not a sealed column"))),
        }
    }
    let provider = policy
        .collaborator(&spec.collaborator)
        .ok_or_else(|| ReviewError::Policy(format!("{:?} is not a collaborator in the policy", spec.collaborator)))?;
    let k = policy.max_rows_per_unit;
    let eps = release::query_epsilon(spec)?;
    let delta = release::query_delta(spec, policy)?;
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
        "  total cost: ε = {eps}, δ = {delta}; reply (result or job_failed) exactly {} ms after the grant is spent",
        spec.deadline_ms
    );
    for o in &spec.outputs {
        match o {
            OutputSpec::GroupMean { name, group_by, lower, upper, epsilon } => {
                let e = release::parse_epsilon(epsilon)?;
                let half = e.checked_div_int(2)?;
                let d = release::parse_delta(&policy.partition_delta)?;
                let sel = dp::mechanism::partition_selection_plan(&half, &d, k, policy.min_group_size)?;
                let count = plan_laplace(&half, u64::from(k))?;
                let sum = plan_laplace(&half, release::sum_sensitivity(*lower, *upper, k)?)?;
                let sum_ci = sum.ci95_half_width as f64 / release::FIXED_POINT_RESOLUTION as f64;
                let _ = writeln!(w, "  {name}: the mean model score per {group_by}, scores clamped to [{lower}, {upper}]; ε = {epsilon}, δ = {}", policy.partition_delta);
                let _ = writeln!(
                    w,
                    "    a group is shown only if its noisy row count reaches {} (DP partition selection, min size {})",
                    sel.cut(),
                    policy.min_group_size
                );
                let _ = writeln!(
                    w,
                    "    95% of the time: count within ±{}, sum within ±{sum_ci:.2}; a mean over {group_size} rows within about ±{:.4}",
                    count.ci95_half_width,
                    sum_ci / group_size.max(1) as f64
                );
            }
            OutputSpec::Histogram { name, edges, epsilon } => {
                let p = plan_laplace(&release::parse_epsilon(epsilon)?, u64::from(k))?;
                let _ = writeln!(
                    w,
                    "  {name}: the number of rows per score bin ({} bins from {} to {}); ε = {epsilon}",
                    edges.len() - 1,
                    edges[0],
                    edges[edges.len() - 1]
                );
                let _ = writeln!(
                    w,
                    "    95% of the time each count is within ±{} (discrete Laplace, scale {})",
                    p.ci95_half_width, p.scale
                );
            }
            OutputSpec::Auc { name, label, bins, epsilon } => {
                let p = plan_laplace(&release::parse_epsilon(epsilon)?, u64::from(k))?;
                let _ = writeln!(w, "  {name}: the AUC of the score against {label}, from noisy score histograms ({bins} bins per label); ε = {epsilon}");
                let _ = writeln!(
                    w,
                    "    95% of the time each of the {} bin counts is within ±{}",
                    2 * bins,
                    p.ci95_half_width
                );
            }
        }
    }
    Ok(t)
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0:?} is not a collaborator in the policy")]
    NotACollaborator(String),
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    #[error("system randomness failed")]
    Random,
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// Record in the ledger, and return, the grant for exactly `spec` (its digest, its ε and δ,
/// the key the policy lists for its collaborator) to the enclave key `enclave_public_key`.
/// Written before anything is sent: a crash loses budget, never creates it.
pub fn grant_for_query(
    ledger: &mut crate::ledger::Ledger,
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
    Ok(ledger.issue_grant(crate::ledger::GrantRequest {
        grant_id: format!("grant-{}", hex::encode(nonce)),
        job_id: &spec.job_id,
        query_digest: spec.digest(),
        dataset: policy.dataset_digest,
        population: &policy.population,
        policy_digest: policy.digest(),
        collaborator: &spec.collaborator,
        provider_public_key: provider.public_key.as_slice(),
        epsilon: &release::query_epsilon(spec)?.to_string(),
        delta: &release::query_delta(spec, policy)?.to_string(),
        enclave_public_key,
        nonce,
        now,
        expires_at: now.saturating_add(ttl),
    })?)
}
