//! The audit log as a transparency log.
//!
//! - [`merkle`]: the RFC 6962 tree, inclusion and consistency proofs and their verifiers.
//! - [`checkpoint`]: C2SP signed-note checkpoints, signed by the attested enclave key.
//! - [`replay`]: a log's lines checked and turned back into the tree and its signers.
//! - [`signer`]: a signer's attestation checked against measurements the caller expects.
//! - [`LogState`] and [`verify_receipt`]: what the enclave hands out with a reply and how
//!   the owner or provider checks it.
//!
//! No I/O: the enclave and the CLI read and write the files and frames.

pub mod checkpoint;
pub mod merkle;
pub mod replay;
pub mod signer;

use checkpoint::{Checkpoint, CheckpointError};
use merkle::{Hash, MerkleTree, ProofError};
use protocol::audit::{AuditRecord, LogReceipt, AUDIT_CONTEXT};
use protocol::signing::{SignatureError, Signed, SigningKey};
use protocol::Digest;

/// The enclave's view of the log: its origin and its tree.
#[derive(Debug, Clone)]
pub struct LogState {
    pub origin: String,
    pub tree: MerkleTree,
}

impl LogState {
    pub fn new(origin: String, tree: MerkleTree) -> Self {
        LogState { origin, tree }
    }

    /// The signed checkpoint of the current tree.
    pub fn checkpoint(&self, key: &SigningKey) -> String {
        Checkpoint { origin: self.origin.clone(), size: self.tree.size(), root: self.tree.root() }.sign(key)
    }

    /// The receipt for leaf `index`, whose line is `record`, against the current tree.
    pub fn receipt(&self, index: u64, record: String, key: &SigningKey) -> Result<LogReceipt, ProofError> {
        let inclusion = self.tree.inclusion_proof(index, self.tree.size())?;
        Ok(LogReceipt { index, record, checkpoint: self.checkpoint(key), inclusion: to_digests(&inclusion) })
    }

    /// Consistency proof from an earlier size to the current one.
    pub fn consistency(&self, old: u64) -> Result<Vec<Digest>, ProofError> {
        Ok(to_digests(&self.tree.consistency_proof(old, self.tree.size())?))
    }
}

pub fn to_digests(hashes: &[Hash]) -> Vec<Digest> {
    hashes.iter().map(|h| Digest(*h)).collect()
}

pub fn to_hashes(digests: &[Digest]) -> Vec<Hash> {
    digests.iter().map(|d| d.0).collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("receipt checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("receipt record is not a signed record: {0}")]
    Malformed(String),
    #[error("receipt record: {0}")]
    Signature(SignatureError),
    #[error("receipt record says leaf {got}, the receipt says leaf {expected}")]
    Index { expected: u64, got: u64 },
    #[error("receipt inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// A receipt checked: the checkpoint (signed by `signer` under its origin), the record
/// (signed by the same key) and the proof that the record is in the checkpoint's tree.
#[derive(Debug, Clone)]
pub struct VerifiedReceipt {
    pub checkpoint: Checkpoint,
    pub signed: Signed,
    pub record: AuditRecord,
}

pub fn verify_receipt(receipt: &LogReceipt, signer: &[u8]) -> Result<VerifiedReceipt, ReceiptError> {
    let parsed = checkpoint::parse(&receipt.checkpoint)?;
    parsed.verify(signer)?;
    let signed: Signed = serde_json::from_str(&receipt.record).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    signed.verify(AUDIT_CONTEXT, signer).map_err(ReceiptError::Signature)?;
    let record: AuditRecord = signed.decode().map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    if record.index != receipt.index {
        return Err(ReceiptError::Index { expected: receipt.index, got: record.index });
    }
    let cp = parsed.checkpoint;
    merkle::verify_inclusion(
        &merkle::leaf_hash(receipt.record.as_bytes()),
        receipt.index,
        cp.size,
        &to_hashes(&receipt.inclusion),
        &cp.root,
    )?;
    Ok(VerifiedReceipt { checkpoint: cp, signed, record })
}

/// Check a consistency proof from a checkpoint already held to a newer one.
pub fn verify_extends(old: &Checkpoint, new: &Checkpoint, proof: &[Digest]) -> Result<(), ProofError> {
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &to_hashes(proof))
}
