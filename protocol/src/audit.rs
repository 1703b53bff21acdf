//! Signed, hash-chained audit records and the offline chain check.
//!
//! Each enclave instance signs its records with its attested ephemeral key and chains
//! them: record n carries the digest of record n-1's signed payload. A new instance (a
//! restart) starts a new segment at sequence 0. Editing, removing or reordering a
//! record inside a segment breaks a signature or a link; dropping a whole segment is
//! caught by cross-checking the owner's ledger, which knows every grant it issued.

use crate::policy::Decimal;
use crate::signing::{SignatureError, Signed};
use crate::{Bytes, Digest};
use serde::{Deserialize, Serialize};

pub const AUDIT_CONTEXT: &str = "cleanroom/audit/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// Digest of the previous record's payload in this segment; zeros for seq 0.
    pub prev: Digest,
    /// Unix seconds.
    pub time: u64,
    /// "key_release", "job_released", "job_failed" (after the spend, with no reason) or
    /// "job_cached".
    pub event: String,
    pub principal: String,
    pub job_id: Option<String>,
    pub grant_id: Option<String>,
    pub dataset_digest: Option<Digest>,
    pub policy_digest: Digest,
    pub module_hash: Option<Digest>,
    pub query_digest: Option<Digest>,
    pub result_digest: Option<Digest>,
    /// The attestation document of the signing enclave.
    pub evidence: Bytes,
    pub platform: String,
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

/// Parse an audit log stored as JSON lines (one signed record per line; blank lines are
/// ignored). A bad line is named by its 1-based number.
pub fn parse_log(text: &str) -> Result<Vec<Signed>, (usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| (i + 1, e.to_string())))
        .collect()
}

/// Digest that the next record's `prev` must carry.
pub fn link_digest(signed: &Signed) -> Digest {
    Digest::of_parts("cleanroom/audit-link/v1", &[signed.payload.as_slice()])
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("record {index}: {source}")]
    Signature { index: usize, source: SignatureError },
    #[error("record {index}: payload does not decode: {why}")]
    Decode { index: usize, why: String },
    #[error("record {index}: sequence {got}, expected {expected} (record removed, inserted or reordered)")]
    Sequence { index: usize, expected: u64, got: u64 },
    #[error("record {index}: link to the previous record does not match (record removed, edited or reordered)")]
    Link { index: usize },
    #[error("record {index}: time {time} is before the previous record's {previous}")]
    TimeGoesBack { index: usize, time: u64, previous: u64 },
}

/// Verified summary of one segment (one enclave instance).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub signer: Bytes,
    pub records: Vec<AuditRecord>,
}

/// Check signatures, sequence numbers, links and time order of a whole log, in order.
/// Whether each segment's signer is an attested enclave key is checked by the caller
/// against the evidence carried in the records.
pub fn verify_chain(log: &[Signed]) -> Result<Vec<Segment>, ChainError> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut prev_link: Option<(Digest, u64)> = None;
    for (index, signed) in log.iter().enumerate() {
        signed.verify_self_signed(AUDIT_CONTEXT).map_err(|source| ChainError::Signature { index, source })?;
        let rec: AuditRecord = signed.decode().map_err(|e| ChainError::Decode { index, why: e.to_string() })?;
        let same_segment = segments.last().is_some_and(|s| s.signer == signed.signer);
        if same_segment {
            let last = segments.last().and_then(|s| s.records.last()).expect("segment is non-empty");
            let expected = last.seq + 1;
            if rec.seq != expected {
                return Err(ChainError::Sequence { index, expected, got: rec.seq });
            }
            if Some(rec.prev) != prev_link.map(|p| p.0) {
                return Err(ChainError::Link { index });
            }
            if let Some((_, previous)) = prev_link {
                if rec.time < previous {
                    return Err(ChainError::TimeGoesBack { index, time: rec.time, previous });
                }
            }
            segments.last_mut().expect("segment exists").records.push(rec.clone());
        } else {
            if rec.seq != 0 {
                return Err(ChainError::Sequence { index, expected: 0, got: rec.seq });
            }
            if rec.prev != Digest::default() {
                return Err(ChainError::Link { index });
            }
            segments.push(Segment { signer: signed.signer.clone(), records: vec![rec.clone()] });
        }
        prev_link = Some((link_digest(signed), rec.time));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    fn record(seq: u64, prev: Digest, time: u64) -> AuditRecord {
        AuditRecord {
            seq,
            prev,
            time,
            event: "job_released".into(),
            principal: "p".into(),
            job_id: Some(format!("job-{seq}")),
            grant_id: None,
            dataset_digest: None,
            policy_digest: Digest::default(),
            module_hash: None,
            query_digest: None,
            result_digest: None,
            evidence: Bytes::default(),
            platform: "simulated".into(),
            simulated: true,
            mechanism: None,
            epsilon: None,
            delta: None,
            sensitivity: None,
            budget_before: None,
            budget_after: None,
            outcome: "ok".into(),
            diagnostics: None,
        }
    }

    fn log(key: &SigningKey, n: u64) -> Vec<Signed> {
        let mut out: Vec<Signed> = vec![];
        for seq in 0..n {
            let prev = out.last().map(link_digest).unwrap_or_default();
            out.push(key.sign(AUDIT_CONTEXT, &record(seq, prev, 100 + seq)));
        }
        out
    }

    #[test]
    fn valid_log_with_two_segments() {
        let mut l = log(&SigningKey::from_seed([1; 32]), 3);
        l.extend(log(&SigningKey::from_seed([2; 32]), 2));
        let segs = verify_chain(&l).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].records.len(), 3);
    }

    #[test]
    fn edited_removed_reordered_records_are_named() {
        let k = SigningKey::from_seed([1; 32]);
        let mut edited = log(&k, 4);
        edited[2].payload.0[5] ^= 1;
        assert!(matches!(verify_chain(&edited), Err(ChainError::Signature { index: 2, .. })));

        let mut removed = log(&k, 4);
        removed.remove(1);
        assert_eq!(verify_chain(&removed), Err(ChainError::Sequence { index: 1, expected: 1, got: 2 }));

        let mut reordered = log(&k, 4);
        reordered.swap(1, 2);
        assert_eq!(verify_chain(&reordered), Err(ChainError::Sequence { index: 1, expected: 1, got: 2 }));

        // A re-signed edit (by the same key) with a correct seq still breaks the link.
        let mut resigned = log(&k, 3);
        let mut r: AuditRecord = resigned[1].decode().unwrap();
        r.outcome = "forged".into();
        resigned[1] = k.sign(AUDIT_CONTEXT, &r);
        assert_eq!(verify_chain(&resigned), Err(ChainError::Link { index: 2 }));
    }
}
