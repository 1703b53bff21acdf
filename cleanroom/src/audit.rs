//! Offline verification of an audit log, for owners and auditors.

use crate::ledger::Ledger;
use attestation_verifier::{verify_evidence, Options, Platform, UnixTime};
use protocol::audit::{verify_chain, ChainError};
use protocol::signing::Signed;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log invalid at record {} (line {}): {source}", index + 1, index + 1)]
    Chain { index: usize, source: ChainError },
    #[error("audit log invalid: segment {segment} (signer {signer}): evidence does not attest the signing key: {why}")]
    Evidence { segment: usize, signer: String, why: String },
    #[error("audit log invalid at record {record}: job {job:?} released without a grant in the owner's ledger")]
    UnknownGrant { record: usize, job: String },
    #[error("audit log invalid at record {record}: job {job:?} was answered from cache with a result this enclave never released, or claims to have spent ε")]
    CachedWithoutRelease { record: usize, job: String },
    #[error("ledger: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
}

impl From<ChainError> for AuditError {
    fn from(e: ChainError) -> Self {
        let index = match &e {
            ChainError::Signature { index, .. }
            | ChainError::Decode { index, .. }
            | ChainError::Sequence { index, .. }
            | ChainError::Link { index }
            | ChainError::TimeGoesBack { index, .. } => *index,
        };
        AuditError::Chain { index, source: e }
    }
}

#[derive(Debug, Default)]
pub struct AuditSummary {
    pub records: usize,
    pub segments: usize,
    pub simulated: bool,
    pub jobs_released: Vec<(String, String)>,
    /// Spent jobs that ended in `job_failed`: (job id, ε spent).
    pub jobs_failed: Vec<(String, String)>,
    /// Identical queries answered again from the enclave's cache (nothing spent).
    pub jobs_cached: usize,
    pub keys_released: usize,
    pub warnings: Vec<String>,
}

/// Verify chain, signatures and the attestation of every segment's signing key; with a
/// ledger, also that every released job spent a grant the owner issued.
pub fn verify_log(
    log: &[Signed],
    allow_simulated: bool,
    expect_pcr0: Option<&[u8]>,
    ledger: Option<&Ledger>,
) -> Result<AuditSummary, AuditError> {
    let segments = verify_chain(log)?;
    let mut summary = AuditSummary { records: log.len(), segments: segments.len(), ..Default::default() };
    let mut index = 0usize;
    for (si, seg) in segments.iter().enumerate() {
        let first = &seg.records[0];
        let kind: Platform = first.platform.parse().map_err(|_| AuditError::Evidence {
            segment: si,
            signer: seg.signer.to_hex(),
            why: format!("unknown platform {:?}", first.platform),
        })?;
        let expect = crate::client::boot_expectations(kind, &first.policy_digest, seg.signer.as_slice(), expect_pcr0);
        let opts = Options { allow_simulated, allow_debug: false };
        verify_evidence(kind, first.evidence.as_slice(), &expect, &opts, UnixTime::from_secs(first.time))
            .map_err(|e| AuditError::Evidence { segment: si, signer: seg.signer.to_hex(), why: e.to_string() })?;
        summary.simulated |= first.simulated;
        // Results this enclave instance released; a cached answer must be one of them.
        let mut released = HashSet::new();
        for r in &seg.records {
            if r.evidence != first.evidence || r.policy_digest != first.policy_digest {
                return Err(AuditError::Evidence {
                    segment: si,
                    signer: seg.signer.to_hex(),
                    why: format!("record {} carries different evidence or policy than its segment", index + 1),
                });
            }
            if r.event == "job_released" {
                if let Some(d) = r.result_digest {
                    released.insert(d);
                }
            }
            match r.event.as_str() {
                "job_released" => summary.jobs_released.push((
                    r.job_id.clone().unwrap_or_default(),
                    r.epsilon.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                )),
                // Refusals before the spend are not logged (they spend nothing); a spent job
                // that failed is, with no reason (ARCHITECTURE.md, "The release boundary").
                "job_failed" => summary.jobs_failed.push((
                    r.job_id.clone().unwrap_or_default(),
                    r.epsilon.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                )),
                "job_cached" => {
                    let spent_nothing = r.epsilon.as_ref().is_some_and(|e| e.as_str().parse::<f64>() == Ok(0.0));
                    if !spent_nothing || !r.result_digest.is_some_and(|d| released.contains(&d)) {
                        return Err(AuditError::CachedWithoutRelease {
                            record: index + 1,
                            job: r.job_id.clone().unwrap_or_default(),
                        });
                    }
                    summary.jobs_cached += 1;
                }
                "key_release" => summary.keys_released += 1,
                _ => {}
            }
            index += 1;
        }
    }
    if let Some(l) = ledger {
        let grants = l.grants()?;
        let issued: HashSet<&str> = grants.iter().map(|g| g.grant_id.as_str()).collect();
        let mut logged = HashSet::new();
        let mut i = 0usize;
        for seg in &segments {
            for r in &seg.records {
                i += 1;
                if let Some(g) = &r.grant_id {
                    logged.insert(g.clone());
                    // Every record that names a grant must name one the owner issued.
                    if !issued.contains(g.as_str()) {
                        return Err(AuditError::UnknownGrant { record: i, job: r.job_id.clone().unwrap_or_default() });
                    }
                }
            }
        }
        for g in grants.iter().filter(|g| !logged.contains(&g.grant_id)) {
            summary.warnings.push(format!(
                "grant {} (job {}, ε {}) is spent in the ledger but not in this log: the key was never delivered, or records were removed",
                g.grant_id, g.job_id, g.epsilon
            ));
        }
    }
    Ok(summary)
}
