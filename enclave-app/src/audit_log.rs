//! The enclave's side of the transparency log: resume the tree the host stores, append
//! records to it, and answer with checkpoints and proofs.
//!
//! At boot the enclave reads the whole log from the (untrusted) host and replays it: every
//! record's signature and index, and every earlier signer's attestation, which must show
//! this enclave's own image. A host can hand over a shorter log (a rollback) or refuse to
//! store records; the first is caught by the owner's consistency check before the next
//! key release, the second fails the operation that needed the record.

use crate::host::{HostClient, HostError};
use protocol::audit::{log_line, AuditRecord, LogReceipt, AUDIT_CONTEXT};
use protocol::signing::SigningKey;
use protocol::Digest;
use tlog::merkle::ProofError;
use tlog::replay::{ReplayError, Replayer};
use tlog::signer::{verify_signer, ExpectedImage, ImageReference, SignerError};
use tlog::LogState;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    #[error("reading the audit log from the host: {0}")]
    Host(#[from] HostError),
    #[error("the host's audit log does not verify: {0}")]
    Replay(#[from] ReplayError),
    #[error("the host's audit log was signed at line {line} by {signer}, which is not an attested enclave of this image: {why}")]
    Signer { line: u64, signer: String, why: SignerError },
}

/// Read and verify the log the host holds, and continue its tree.
pub fn resume(
    host: &HostClient,
    origin: String,
    own_image: &ImageReference,
    allow_simulated: bool,
    allow_emulated_nsm: bool,
) -> Result<LogState, ResumeError> {
    let mut replay = Replayer::new();
    let mut from = 0u64;
    loop {
        let (lines, more) = host.read_audit(from)?;
        for line in &lines {
            replay.push(line)?;
        }
        from += lines.len() as u64;
        if !more || lines.is_empty() {
            break;
        }
    }
    for s in replay.signers() {
        let fail = |why| ResumeError::Signer { line: s.first_index + 1, signer: hex::encode(&s.public_key), why };
        let doc = match host.get_blob(&s.evidence_digest) {
            Ok(d) => Some(d),
            Err(HostError::Refused { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        // The same image as this enclave; the policy the signer's own records name.
        let expected = ExpectedImage {
            image: own_image.clone(),
            policies: vec![s.policy_digest],
            allow_simulated,
            allow_emulated_nsm,
        };
        verify_signer(s, doc.as_deref(), &expected).map_err(fail)?;
    }
    let (tree, _) = replay.into_parts();
    Ok(LogState::new(origin, tree))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
}

/// Sign `rec` as the next leaf, have the host store it durably, then add it to the tree.
/// Nothing changes if the host refuses.
pub fn append(
    log: &mut LogState,
    host: &HostClient,
    key: &SigningKey,
    mut rec: AuditRecord,
) -> Result<LogReceipt, AppendError> {
    let index = log.tree.size();
    rec.index = index;
    let line = log_line(&key.sign(AUDIT_CONTEXT, &rec));
    host.append_audit(index, &line)?;
    log.tree.push(line.as_bytes());
    Ok(log.receipt(index, line, key)?)
}

/// The current checkpoint and a consistency proof from `old_size`.
pub fn prove(log: &LogState, key: &SigningKey, old_size: u64) -> Result<(String, Vec<Digest>), ProofError> {
    let consistency = if old_size == 0 || old_size == log.tree.size() { vec![] } else { log.consistency(old_size)? };
    Ok((log.checkpoint(key), consistency))
}
