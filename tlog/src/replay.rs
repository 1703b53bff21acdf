//! Replaying a log: every line parsed, its signature checked, its index checked against
//! its position, and its leaf added to the tree; records grouped by the enclave instance
//! (signer) that wrote them. Used by a booting enclave (to continue the same tree) and by
//! `cleanroom audit verify`. Whether a signer is an attested enclave is [`crate::signer`]'s job.

use crate::merkle::{leaf_hash, MerkleTree};
use protocol::audit::{AuditRecord, AUDIT_CONTEXT};
use protocol::signing::{SignatureError, Signed};
use protocol::Digest;

/// Longest accepted log line (a record with sealed diagnostics is about 5 KB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayErrorKind {
    #[error("not a signed record: {0}")]
    Malformed(String),
    #[error("line is longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error("{0}")]
    Signature(SignatureError),
    #[error("payload does not decode: {0}")]
    Decode(String),
    #[error("record says it is leaf {got}, but it is leaf {expected} (records removed, inserted or reordered)")]
    Index { expected: u64, got: u64 },
    #[error("signer {signer} changed its {what} mid-log")]
    SignerChanged { signer: String, what: &'static str },
    #[error("time {time} is before this signer's previous record's {previous}")]
    TimeGoesBack { time: u64, previous: u64 },
}

/// A log line that failed, by its 1-based line number.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("audit log line {line}: {kind}")]
pub struct ReplayError {
    pub line: u64,
    pub kind: ReplayErrorKind,
}

/// One enclave instance that signed records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub public_key: Vec<u8>,
    pub evidence_digest: Digest,
    pub platform: protocol::platform::Platform,
    pub simulated: bool,
    pub policy_digest: Digest,
    pub first_index: u64,
    pub first_time: u64,
    pub last_time: u64,
    pub records: u64,
}

/// Replays lines one at a time; keeps the tree and the signers, not the records.
#[derive(Debug, Default)]
pub struct Replayer {
    tree: MerkleTree,
    signers: Vec<Signer>,
}

impl Replayer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Check one line (the next leaf) and add it; returns its decoded record.
    pub fn push(&mut self, line: &str) -> Result<(Signed, AuditRecord), ReplayError> {
        let index = self.tree.size();
        let fail = |kind| ReplayError { line: index + 1, kind };
        if line.len() > MAX_LINE_BYTES {
            return Err(fail(ReplayErrorKind::TooLong));
        }
        let signed: Signed = serde_json::from_str(line).map_err(|e| fail(ReplayErrorKind::Malformed(e.to_string())))?;
        signed.verify_self_signed(AUDIT_CONTEXT).map_err(|e| fail(ReplayErrorKind::Signature(e)))?;
        let rec: AuditRecord = signed.decode().map_err(|e| fail(ReplayErrorKind::Decode(e.to_string())))?;
        if rec.index != index {
            return Err(fail(ReplayErrorKind::Index { expected: index, got: rec.index }));
        }
        match self.signers.iter_mut().find(|s| s.public_key == signed.signer.as_slice()) {
            Some(s) => {
                let what = if s.evidence_digest != rec.evidence_digest {
                    Some("evidence")
                } else if s.policy_digest != rec.policy_digest {
                    Some("policy")
                } else if s.platform != rec.platform || s.simulated != rec.simulated {
                    Some("platform")
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(fail(ReplayErrorKind::SignerChanged { signer: hex::encode(&s.public_key), what }));
                }
                if rec.time < s.last_time {
                    return Err(fail(ReplayErrorKind::TimeGoesBack { time: rec.time, previous: s.last_time }));
                }
                s.last_time = rec.time;
                s.records += 1;
            }
            None => self.signers.push(Signer {
                public_key: signed.signer.0.clone(),
                evidence_digest: rec.evidence_digest,
                platform: rec.platform,
                simulated: rec.simulated,
                policy_digest: rec.policy_digest,
                first_index: index,
                first_time: rec.time,
                last_time: rec.time,
                records: 1,
            }),
        }
        self.tree.push_hash(leaf_hash(line.as_bytes()));
        Ok((signed, rec))
    }

    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    pub fn signers(&self) -> &[Signer] {
        &self.signers
    }

    pub fn into_parts(self) -> (MerkleTree, Vec<Signer>) {
        (self.tree, self.signers)
    }
}

/// Split a log file's text into its lines. Every line must end in a newline and none may
/// be empty: the leaves are the lines, so nothing is skipped or trimmed.
pub fn lines(text: &str) -> Result<Vec<&str>, ReplayError> {
    if text.is_empty() {
        return Ok(vec![]);
    }
    let body = text.strip_suffix('\n').ok_or_else(|| ReplayError {
        line: text.matches('\n').count() as u64 + 1,
        kind: ReplayErrorKind::Malformed("the last line has no newline (a torn write?)".into()),
    })?;
    let out: Vec<&str> = body.split('\n').collect();
    if let Some(i) = out.iter().position(|l| l.is_empty()) {
        return Err(ReplayError { line: i as u64 + 1, kind: ReplayErrorKind::Malformed("empty line".into()) });
    }
    Ok(out)
}
