//! The release boundary: the only code that speaks after a grant is spent.
//!
//! From the spend on, everything that leaves the enclave (the reply frame, the audit record
//! the host stores, and the instant both leave) is built here, from two kinds of input
//! only: public facts fixed before any data was read ([`SpentJob`]: the query, the grant,
//! the deadline) and the job's outcome, which is either a [`DpRelease`] (a type only the
//! release crate can build, holding noised values) or [`JobFailed`], which has no fields:
//! why a job failed never leaves in clear (it may reach the owner only as [`OwnerSealed`],
//! a fixed-length ciphertext to the owner's key). The reply and the record leave at the
//! deadline, never earlier, whatever the job did.

use crate::service::Enclave;
use protocol::audit::{AuditEvent, AuditRecord};
use protocol::grant::BudgetGrant;
use protocol::policy::Decimal;
use protocol::result::{JobResult, RESULT_CONTEXT};
use protocol::signing::Signed;
use protocol::wire::EnclaveMessage;
use protocol::Digest;
use release::DpRelease;
use std::time::Instant;

/// A job failed after its grant was spent. Deliberately empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFailed;

/// Owner-only diagnostics, already sealed to the policy's key: a fixed-length ciphertext
/// (see `protocol::diagnostics`), the one data-dependent thing allowed into the record.
pub struct OwnerSealed(pub protocol::diagnostics::SealedDiagnostics);

/// What is known about a job at the moment its grant is spent: all of it public inputs.
pub struct SpentJob {
    pub job_id: String,
    pub collaborator: String,
    pub dataset_digest: Digest,
    pub module_hash: Digest,
    pub query_digest: Digest,
    pub grant: BudgetGrant,
    pub epsilon: Decimal,
    pub delta: Decimal,
    /// The instant the reply leaves.
    pub deadline: Instant,
    /// The same instant as Unix seconds, signed into the result and the record.
    pub released_at: u64,
    /// A sharded job: the attested key of each shard the owner named, in order.
    pub shard_keys: Vec<protocol::Bytes>,
}

/// The reply to a spent job and, when it is a result, the signed result to cache. Sleeps
/// until the deadline, then appends the audit record, then returns the reply to send.
pub fn conclude(
    enclave: &Enclave,
    job: SpentJob,
    outcome: Result<DpRelease, JobFailed>,
    diagnostics: Option<OwnerSealed>,
) -> (EnclaveMessage, Option<Signed>) {
    let (mut rec, signed) = match outcome {
        Ok(release) => {
            let result = JobResult {
                job_id: job.job_id.clone(),
                collaborator: job.collaborator.clone(),
                dataset_digest: job.dataset_digest,
                policy_digest: enclave.policy_digest(),
                module_hash: job.module_hash,
                query_digest: job.query_digest,
                grant_id: job.grant.grant_id.clone(),
                platform: enclave.platform(),
                simulated: enclave.simulated(),
                evidence: protocol::Bytes(enclave.boot_evidence().to_vec()),
                epsilon_spent: job.epsilon.clone(),
                delta_spent: job.delta.clone(),
                released_at: job.released_at,
                outputs: release.into_outputs(),
                shard_keys: job.shard_keys.clone(),
                insecure_fixed_noise: enclave.insecure_fixed_noise(),
            };
            let signed = enclave.sign(RESULT_CONTEXT, &result);
            let mut rec = enclave.record(AuditEvent::JobReleased, &job.collaborator, "released", job.released_at);
            rec.result_digest = Some(Digest::of(signed.payload.as_slice()));
            // Each output's mechanism; a training output with its hyperparameters and the
            // accountant's (ε, δ) (all public: the query and the accounting of it).
            rec.mechanism = Some(
                result
                    .outputs
                    .iter()
                    .map(|o| match o.noise.first() {
                        Some(n) if o.class == "dp_sgd" => format!("{}: {} ({})", o.name, o.mechanism, n.budget),
                        _ => format!("{}: {}", o.name, o.mechanism),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            rec.sensitivity = Some(
                result.outputs.iter().map(|o| format!("{}: {}", o.name, o.sensitivity)).collect::<Vec<_>>().join("; "),
            );
            (rec, Some(signed))
        }
        // The same record for every failure: no reason, no number.
        Err(JobFailed) => {
            (enclave.record(AuditEvent::JobFailed, &job.collaborator, "job_failed", job.released_at), None)
        }
    };
    fill(&mut rec, &job);
    rec.diagnostics = diagnostics.map(|d| protocol::Bytes(protocol::to_cbor(&d.0)));
    sleep_until(job.deadline);
    // Audited before it is sent; a result that cannot be audited is not released.
    match (enclave.append_audit(rec), signed) {
        (Ok(receipt), Some(signed)) => (EnclaveMessage::JobResult { result: signed.clone(), receipt }, Some(signed)),
        (Ok(receipt), None) => (EnclaveMessage::JobFailed { receipt: Some(receipt) }, None),
        // The host refused the record: a result that cannot be audited is not released.
        (Err(_), _) => (EnclaveMessage::JobFailed { receipt: None }, None),
    }
}

fn fill(rec: &mut AuditRecord, job: &SpentJob) {
    rec.job_id = Some(job.job_id.clone());
    rec.grant_id = Some(job.grant.grant_id.clone());
    rec.dataset_digest = Some(job.dataset_digest);
    rec.module_hash = Some(job.module_hash);
    rec.query_digest = Some(job.query_digest);
    // Spent whatever the outcome: the module saw data.
    rec.epsilon = Some(job.epsilon.clone());
    rec.delta = Some(job.delta.clone());
    rec.budget_before = Some(job.grant.ledger.collaborator_epsilon_before.clone());
    rec.budget_after = Some(job.grant.ledger.collaborator_epsilon_after.clone());
}

/// Sleep until `t` (the deadline); never returns early.
pub fn sleep_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        std::thread::sleep(t - now);
    }
}
