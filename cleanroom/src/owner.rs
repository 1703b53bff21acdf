//! The owner's key release, as a library function: check the enclave's log against the
//! checkpoint the ledger holds, spend the grant in the ledger, send key and grant, check
//! the receipt, keep the new checkpoint. The CLI prints; this decides.

use crate::client::{AttestedSession, ClientError};
use ledger::{HeldCheckpoint, Ledger, LedgerError};
use owner_prep::keystore::KeyStore;
use protocol::audit::LogReceipt;
use protocol::grant::{BudgetGrant, GRANT_CONTEXT};
use protocol::job::QuerySpec;
use protocol::policy::Policy;
use protocol::sealed::DataKey;
use protocol::wire::{ClientMessage, EnclaveMessage};
use tlog::checkpoint::{self, Checkpoint, CheckpointError};
use tlog::merkle::ProofError;
use tlog::ReceiptError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("grant: {0}")]
    Grant(#[from] crate::review::GrantError),
    #[error("no data key for dataset {0} in the key store")]
    NoDataKey(protocol::Digest),
    #[error("the enclave's log checkpoint: {0}; no key was sent")]
    Checkpoint(#[from] CheckpointError),
    #[error("the enclave's log does not extend the checkpoint the ledger holds (size {held}, now {now}): {why}; the host rolled the log back or forked it, and no key was sent")]
    NotConsistent { held: u64, now: u64, why: ProofError },
    #[error("the enclave's log has {now} records, fewer than the {held} of the checkpoint the ledger holds: the host rolled the log back; no key was sent")]
    RolledBack { held: u64, now: u64 },
    #[error("the enclave says its log is smaller than the checkpoint the ledger holds ({held} records): the host rolled the log back; no key was sent ({message})")]
    EnclaveRolledBack { held: u64, message: String },
    #[error("key release receipt: {0}")]
    Receipt(#[from] ReceiptError),
    #[error("key release receipt: {0}")]
    ReceiptContent(&'static str),
    #[error("unexpected reply from the enclave")]
    Unexpected,
    #[error("the grant-signing key is not the owner key the policy names; no key was sent")]
    WrongGrantKey,
    #[error("signing the grant: {0}; no key was sent")]
    GrantSigning(String),
    #[error("the dataset is past its retention date (the policy's dataset_expires_at {expires_at}); no key was sent")]
    DatasetExpired { expires_at: u64 },
}

/// The owner's keys for one release: the dataset's data key (from the key file) and the
/// grant-signing key (the key file's, or one in a PKCS#11 token).
#[derive(Clone, Copy)]
pub struct OwnerKeys<'a> {
    pub data_key: &'a DataKey,
    pub grant_signer: &'a dyn protocol::signing::Signer,
}

impl<'a> OwnerKeys<'a> {
    /// The policy's dataset key from the key store.
    pub fn data_key_for(store: &KeyStore, policy: &Policy) -> Result<DataKey, ReleaseError> {
        store.data_key(&policy.dataset_digest).ok_or(ReleaseError::NoDataKey(policy.dataset_digest))
    }
}

/// The owner's clock is the one the owner trusts: a dataset past its retention date is
/// refused before anything is asked of the enclave (which refuses it too, by its own clock).
pub fn check_retention(policy: &Policy, now: u64) -> Result<(), ReleaseError> {
    match policy.dataset_expires_at {
        Some(expires_at) if expires_at <= now => Err(ReleaseError::DatasetExpired { expires_at }),
        _ => Ok(()),
    }
}

/// What a successful release leaves behind.
pub struct Released {
    pub grant: BudgetGrant,
    pub receipt: LogReceipt,
    /// The checkpoint the log was checked against (None: the ledger held none yet).
    pub checked_from: Option<u64>,
    pub checkpoint: Checkpoint,
}

/// Ask the enclave for its checkpoint and prove it extends the one the ledger holds.
pub fn check_log(
    session: &mut AttestedSession,
    ledger: &Ledger,
    origin: &str,
) -> Result<(Checkpoint, Option<u64>), ReleaseError> {
    let held = ledger.checkpoint(origin)?;
    let old_size = held.as_ref().map_or(0, |h| h.size);
    let reply = match session.call(&ClientMessage::ProveLog { old_size }) {
        Err(ClientError::Refused { code: protocol::refusal::RefusalCode::LogRolledBack, message }) => {
            return Err(ReleaseError::EnclaveRolledBack { held: old_size, message });
        }
        r => r?,
    };
    let EnclaveMessage::LogProof { checkpoint: text, consistency } = reply else {
        return Err(ReleaseError::Unexpected);
    };
    let new = checkpoint::open(&text, origin, &session.public_key)?;
    if let Some(h) = &held {
        // The held checkpoint was verified when it was kept.
        let old = checkpoint::parse(&h.text)?.checkpoint;
        if new.size < old.size {
            return Err(ReleaseError::RolledBack { held: old.size, now: new.size });
        }
        tlog::verify_extends(&old, &new, &consistency).map_err(|why| ReleaseError::NotConsistent {
            held: old.size,
            now: new.size,
            why,
        })?;
    }
    Ok((new, held.map(|h| h.size)))
}

/// The whole release: log check, ledger spend, key and grant, receipt, checkpoint kept.
pub fn release(
    session: &mut AttestedSession,
    keys: OwnerKeys<'_>,
    ledger: &mut Ledger,
    policy: &Policy,
    spec: &QuerySpec,
    now: u64,
    ttl: u64,
) -> Result<Released, ReleaseError> {
    check_retention(policy, now)?;
    // Checked before the ledger records a grant: a grant the enclave would refuse must
    // not spend budget.
    let OwnerKeys { data_key, grant_signer } = keys;
    if grant_signer.public_key() != policy.owner_public_key.as_slice() {
        return Err(ReleaseError::WrongGrantKey);
    }
    let origin = checkpoint::origin_for_owner(policy.owner_public_key.as_slice());
    let (checked, checked_from) = check_log(session, ledger, &origin)?;
    let grant = crate::review::grant_for_query(ledger, policy, spec, &session.public_key, now, ttl)?;
    let signed = protocol::signing::Signed::sign_with(grant_signer, GRANT_CONTEXT, &grant)
        .map_err(ReleaseError::GrantSigning)?;
    // The key travels as a `DataKey`: every copy, the message's included, is wiped on drop.
    let msg =
        ClientMessage::ReleaseKey { dataset_digest: policy.dataset_digest, data_key: data_key.clone(), grant: signed };
    let reply = session.call(&msg);
    drop(msg);
    let EnclaveMessage::KeyAccepted { grant_id, receipt } = reply? else {
        return Err(ReleaseError::Unexpected);
    };
    let v = tlog::verify_receipt(&receipt, &session.public_key)?;
    if grant_id != grant.grant_id
        || v.record.event != protocol::audit::AuditEvent::KeyRelease
        || v.record.grant_id.as_deref() != Some(grant.grant_id.as_str())
    {
        return Err(ReleaseError::ReceiptContent("the logged record is not this grant's key release"));
    }
    if v.checkpoint.origin != origin || v.checkpoint.size < checked.size {
        return Err(ReleaseError::ReceiptContent("the receipt's checkpoint is for another log or an older tree"));
    }
    ledger.keep_checkpoint(
        &HeldCheckpoint {
            origin,
            size: v.checkpoint.size,
            text: receipt.checkpoint.clone(),
            signer: hex::encode(&session.public_key),
        },
        now,
    )?;
    Ok(Released { grant, receipt, checked_from, checkpoint: v.checkpoint })
}
