//! Audit records: one signed record per line of the log, each a leaf of the log's
//! RFC 6962 Merkle tree (the `tlog` crate holds the tree, the checkpoints and the replay).
//!
//! The leaf bytes are exactly the stored line: the JSON of the [`Signed`] envelope as the
//! enclave wrote it, without its newline. Records name the signer's attestation document
//! by digest; the documents are stored once, beside the log, by content hash.

use crate::policy::Decimal;
use crate::signing::Signed;
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

pub const AUDIT_CONTEXT: &str = "cleanroom/audit/v2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// This record's leaf index in the log's tree (0-based, across enclave restarts).
    pub index: u64,
    /// Unix seconds.
    pub time: u64,
    pub event: AuditEvent,
    pub principal: String,
    pub job_id: Option<String>,
    pub grant_id: Option<String>,
    pub dataset_digest: Option<Digest>,
    pub policy_digest: Digest,
    pub module_hash: Option<Digest>,
    pub query_digest: Option<Digest>,
    pub result_digest: Option<Digest>,
    /// SHA-256 of the signing enclave's boot attestation document (stored beside the log).
    pub evidence_digest: Digest,
    pub platform: crate::platform::Platform,
    pub simulated: bool,
    pub mechanism: Option<String>,
    pub epsilon: Option<Decimal>,
    pub delta: Option<Decimal>,
    pub sensitivity: Option<String>,
    pub budget_before: Option<Decimal>,
    pub budget_after: Option<Decimal>,
    pub outcome: String,
    /// Owner-only diagnostics of a spent job, sealed to the policy's diagnostics key
    /// ([`crate::diagnostics::SealedDiagnostics`] as CBOR): the same length for every job.
    #[serde(default)]
    pub diagnostics: Option<Bytes>,
}

/// What a record logs. A log line with any other event does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// The owner's data key and a grant were accepted.
    KeyRelease,
    /// A spent job produced a result, released at its deadline.
    JobReleased,
    /// A spent job failed, at its deadline; the same fields for every failure, no reason.
    JobFailed,
    /// An identical query was answered again from the cache; nothing spent.
    JobCached,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::KeyRelease => "key_release",
            AuditEvent::JobReleased => "job_released",
            AuditEvent::JobFailed => "job_failed",
            AuditEvent::JobCached => "job_cached",
        }
    }

    /// A job whose grant was spent (its ε and δ are gone whatever the outcome).
    pub fn spent(self) -> bool {
        matches!(self, AuditEvent::JobReleased | AuditEvent::JobFailed)
    }

    /// A record that answers with a result.
    pub fn answers_with_result(self) -> bool {
        matches!(self, AuditEvent::JobReleased | AuditEvent::JobCached)
    }
}

impl std::fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a party receives with a reply that changed the log: its own record, the signed
/// checkpoint right after it, and the inclusion proof linking the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogReceipt {
    pub index: u64,
    /// The record exactly as stored in the log (one line, without its newline).
    pub record: String,
    /// The C2SP signed checkpoint covering the record (tree size index + 1 or more).
    pub checkpoint: String,
    /// RFC 6962 inclusion proof of the record in that checkpoint's tree.
    pub inclusion: Vec<Digest>,
}

/// The log line for a signed record: compact JSON, no newline.
pub fn log_line(signed: &Signed) -> String {
    serde_json::to_string(signed).expect("a signed record serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_their_names_on_the_wire_and_nothing_else_decodes() {
        for e in [AuditEvent::KeyRelease, AuditEvent::JobReleased, AuditEvent::JobFailed, AuditEvent::JobCached] {
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{e}\""));
            assert_eq!(crate::from_cbor::<AuditEvent>(&crate::to_cbor(&e)).unwrap(), e);
        }
        assert!(serde_json::from_str::<AuditEvent>("\"job_refused\"").is_err());
        assert!(AuditEvent::JobFailed.spent() && !AuditEvent::JobCached.spent());
        assert!(AuditEvent::JobCached.answers_with_result() && !AuditEvent::KeyRelease.answers_with_result());
    }
}
