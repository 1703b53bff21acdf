//! Offline verification of the audit log, for owners, providers and auditors.
//!
//! The log is an RFC 6962 tree over its lines. [`verify`] replays it (signatures, leaf
//! indexes), checks every signer's attestation once against the image and policies the
//! auditor expects, checks every checkpoint it is given against the tree (a checkpoint
//! beyond the log means records were cut off; one that does not match means an edit or a
//! fork), checks every result's receipt and that its record is the log's, and cross-checks
//! the owner's ledger. The first failure is returned, naming the line or checkpoint.

pub mod files;
pub mod report;

use ledger::{GrantRow, HeldCheckpoint};
use protocol::audit::{AuditEvent, AuditRecord, LogReceipt};
use protocol::result::{JobResult, RESULT_CONTEXT};
use protocol::signing::{SignatureError, Signed};
use protocol::Digest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use tlog::checkpoint::CheckpointError;
use tlog::replay::{ReplayError, Replayer};
use tlog::signer::{verify_signer, ExpectedImage, SignerError};
use tlog::ReceiptError;

/// A result as the provider keeps it: the signed result and the receipt of its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultFile {
    pub result: Signed,
    pub receipt: LogReceipt,
}

/// Where a checkpoint came from, for the report and for error messages.
#[derive(Debug, Clone)]
pub struct HeldNote {
    /// Who holds it: "owner (ledger)", "provider (result.json)", a file name.
    pub holder: String,
    pub text: String,
}

/// What the owner's ledger contributes.
#[derive(Debug, Clone, Default)]
pub struct LedgerView {
    pub grants: Vec<GrantRow>,
    pub checkpoints: Vec<HeldCheckpoint>,
}

pub struct AuditInputs<'a> {
    pub log_text: &'a str,
    /// Evidence documents stored beside the log, by content digest.
    pub evidence: &'a BTreeMap<Digest, Vec<u8>>,
    pub expected: &'a ExpectedImage,
    pub checkpoints: Vec<HeldNote>,
    pub results: Vec<(String, ResultFile)>,
    pub ledger: Option<LedgerView>,
    pub now: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(
        "audit log line {line}: signer {signer} is not an attested enclave of the expected image and policy: {why}"
    )]
    Signer { line: u64, signer: String, why: SignerError },
    #[error("checkpoint held by {holder}: {why}")]
    Checkpoint { holder: String, why: CheckpointError },
    #[error("checkpoint held by {holder} is not signed by any attested signer of this log (another log, or a forged checkpoint)")]
    CheckpointSigner { holder: String },
    #[error("checkpoint held by {holder} is for log {got:?}, the other checkpoints for {expected:?}")]
    CheckpointOrigin { holder: String, expected: String, got: String },
    #[error("checkpoint held by {holder} covers {size} records but the log has {log_size}: records were removed from the end of the log")]
    Truncated { holder: String, size: u64, log_size: u64 },
    #[error("checkpoint held by {holder} (size {size}) does not match the log's first {size} records: a record was edited, or the holder was shown another log (a fork)")]
    Forked { holder: String, size: u64 },
    #[error("result {source_name}: {why}")]
    ResultSignature { source_name: String, why: SignatureError },
    #[error("result {source_name}: {why}")]
    ResultReceipt { source_name: String, why: ReceiptError },
    #[error("result {source_name} is signed by {signer}, which signed nothing in this log: the result is not from this log's enclaves")]
    ResultSigner { source_name: String, signer: String },
    #[error("result {source_name}: its record (leaf {index}) is not in this log: {why}")]
    ResultNotInLog { source_name: String, index: u64, why: &'static str },
    #[error("audit log line {line}: job {job:?} names grant {grant:?}, which the owner's ledger never issued")]
    UnknownGrant { line: u64, job: String, grant: String },
    #[error("audit log line {line}: job {job:?} was answered from cache with a result this enclave never released, or claims to have spent ε")]
    CachedWithoutRelease { line: u64, job: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct SignerReport {
    pub public_key: String,
    pub platform: protocol::platform::Platform,
    pub simulated: bool,
    pub policy_digest: String,
    pub evidence_digest: String,
    pub first_line: u64,
    pub records: u64,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointReport {
    pub holder: String,
    pub size: u64,
    pub root: String,
    pub signer: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub line: u64,
    pub time: u64,
    pub event: String,
    pub dataset: String,
    pub collaborator: String,
    pub job_id: String,
    pub grant_id: String,
    pub epsilon: String,
    pub delta: String,
    pub budget_after: String,
}

/// Everything `audit verify` established, for printing, the HTML report and export.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub origin: Option<String>,
    pub records: u64,
    pub root: String,
    pub simulated: bool,
    pub signers: Vec<SignerReport>,
    pub checkpoints: Vec<CheckpointReport>,
    pub results_included: Vec<String>,
    /// Every record but the key releases, in log order.
    pub jobs: Vec<JobReport>,
    pub key_releases: u64,
    pub jobs_released: u64,
    pub jobs_failed: u64,
    pub jobs_cached: u64,
    /// Things an auditor should look at that do not make the log invalid.
    pub findings: Vec<String>,
}

fn opt(s: &Option<impl ToString>) -> String {
    s.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

pub fn verify(inputs: AuditInputs<'_>) -> Result<AuditReport, AuditError> {
    let lines = tlog::replay::lines(inputs.log_text)?;
    let mut replay = Replayer::new();
    let mut jobs = Vec::new();
    let mut lines_by_index: Vec<&str> = Vec::with_capacity(lines.len());
    let (mut key_releases, mut released, mut failed, mut cached) = (0u64, 0u64, 0u64, 0u64);
    // Per signer: results it released (a cached answer must be one of them).
    let mut released_by: HashMap<Vec<u8>, HashSet<Digest>> = HashMap::new();
    let mut grant_events: HashMap<String, Vec<AuditEvent>> = HashMap::new();
    let mut named_grants: Vec<(u64, String, String)> = Vec::new();
    for line in &lines {
        let (signed, rec) = replay.push(line)?;
        lines_by_index.push(line);
        let n = rec.index + 1;
        let kind = rec.event;
        match kind {
            AuditEvent::KeyRelease => key_releases += 1,
            AuditEvent::JobReleased => {
                released += 1;
                if let Some(d) = rec.result_digest {
                    released_by.entry(signed.signer.0.clone()).or_default().insert(d);
                }
            }
            AuditEvent::JobFailed => failed += 1,
            AuditEvent::JobCached => {
                let spent_nothing = rec.epsilon.as_ref().is_some_and(|e| e.as_str().parse::<f64>() == Ok(0.0));
                let known = rec
                    .result_digest
                    .is_some_and(|d| released_by.get(signed.signer.as_slice()).is_some_and(|s| s.contains(&d)));
                if !spent_nothing || !known {
                    return Err(AuditError::CachedWithoutRelease { line: n, job: opt(&rec.job_id) });
                }
                cached += 1;
            }
        }
        if let Some(g) = &rec.grant_id {
            grant_events.entry(g.clone()).or_default().push(kind);
            named_grants.push((n, g.clone(), opt(&rec.job_id)));
        }
        if kind != AuditEvent::KeyRelease {
            jobs.push(job_report(n, &rec));
        }
    }
    let (tree, signers) = replay.into_parts();

    // Each signer's evidence, once.
    let mut signer_reports = Vec::new();
    let mut simulated = false;
    for s in &signers {
        let v = verify_signer(s, inputs.evidence.get(&s.evidence_digest).map(Vec::as_slice), inputs.expected)
            .map_err(|why| AuditError::Signer { line: s.first_index + 1, signer: hex::encode(&s.public_key), why })?;
        simulated |= v.simulated;
        signer_reports.push(SignerReport {
            public_key: hex::encode(&s.public_key),
            platform: s.platform,
            simulated: v.simulated,
            policy_digest: s.policy_digest.to_hex(),
            evidence_digest: s.evidence_digest.to_hex(),
            first_line: s.first_index + 1,
            records: s.records,
            verdict: if v.simulated {
                format!("SIMULATED (development only): {}", v.checks_passed.join(", "))
            } else {
                v.checks_passed.join(", ")
            },
        });
    }

    // Checkpoints: the owner's, the provider's (from its results), any others given.
    let mut notes: Vec<HeldNote> = Vec::new();
    if let Some(l) = &inputs.ledger {
        notes.extend(l.checkpoints.iter().map(|c| HeldNote { holder: "owner (ledger)".into(), text: c.text.clone() }));
    }
    notes.extend(
        inputs
            .results
            .iter()
            .map(|(src, r)| HeldNote { holder: format!("provider ({src})"), text: r.receipt.checkpoint.clone() }),
    );
    notes.extend(inputs.checkpoints.iter().cloned());
    let mut origin: Option<String> = None;
    let mut checkpoint_reports = Vec::new();
    for note in &notes {
        let holder = note.holder.clone();
        let parsed = tlog::checkpoint::parse(&note.text)
            .map_err(|why| AuditError::Checkpoint { holder: holder.clone(), why })?;
        let cp = &parsed.checkpoint;
        match &origin {
            Some(o) if *o != cp.origin => {
                return Err(AuditError::CheckpointOrigin { holder, expected: o.clone(), got: cp.origin.clone() })
            }
            _ => origin = Some(cp.origin.clone()),
        }
        let signer = signers
            .iter()
            .find(|s| parsed.verify(&s.public_key).is_ok())
            .ok_or_else(|| AuditError::CheckpointSigner { holder: holder.clone() })?;
        if cp.size > tree.size() {
            return Err(AuditError::Truncated { holder, size: cp.size, log_size: tree.size() });
        }
        if tree.root_at(cp.size).ok() != Some(cp.root) {
            return Err(AuditError::Forked { holder, size: cp.size });
        }
        checkpoint_reports.push(CheckpointReport {
            holder,
            size: cp.size,
            root: hex::encode(cp.root),
            signer: hex::encode(&signer.public_key),
        });
    }

    // Results: signed by a log signer, receipt valid, and its record is the log's line.
    let mut results_included = Vec::new();
    for (src, r) in &inputs.results {
        r.result
            .verify_self_signed(RESULT_CONTEXT)
            .map_err(|why| AuditError::ResultSignature { source_name: src.clone(), why })?;
        if !signers.iter().any(|s| s.public_key == r.result.signer.as_slice()) {
            return Err(AuditError::ResultSigner { source_name: src.clone(), signer: r.result.signer.to_hex() });
        }
        let v = tlog::verify_receipt(&r.receipt, r.result.signer.as_slice())
            .map_err(|why| AuditError::ResultReceipt { source_name: src.clone(), why })?;
        let not_in = |why| AuditError::ResultNotInLog { source_name: src.clone(), index: r.receipt.index, why };
        match lines_by_index.get(r.receipt.index as usize) {
            Some(line) if *line == r.receipt.record => {}
            Some(_) => return Err(not_in("the log holds another record at that leaf")),
            None => return Err(not_in("the log is shorter")),
        }
        if v.record.result_digest != Some(Digest::of(r.result.payload.as_slice())) {
            return Err(not_in("the record names another result"));
        }
        let job: JobResult = r.result.decode().map_err(|_| not_in("the result does not decode"))?;
        results_included.push(format!("{src}: job {} at line {}", job.job_id, r.receipt.index + 1));
    }

    // The ledger: every grant named in the log was issued; every issued grant ended.
    let mut findings = Vec::new();
    if let Some(l) = &inputs.ledger {
        let issued: HashSet<&str> = l.grants.iter().map(|g| g.grant_id.as_str()).collect();
        if let Some((line, grant, job)) = named_grants.iter().find(|(_, g, _)| !issued.contains(g.as_str())) {
            return Err(AuditError::UnknownGrant { line: *line, job: job.clone(), grant: grant.clone() });
        }
        for g in &l.grants {
            let events = grant_events.get(&g.grant_id).map(Vec::as_slice).unwrap_or(&[]);
            let ended = events.iter().any(|e| e.spent());
            let delivered = events.contains(&AuditEvent::KeyRelease);
            let expired = g.expires_at <= inputs.now;
            match (ended, delivered, expired) {
                (true, _, _) => {}
                (false, true, true) => findings.push(format!(
                    "grant {} (job {}, ε {}): key released but no job record, and the grant has expired: the job was never run, or its record was removed",
                    g.grant_id, g.job_id, g.epsilon
                )),
                (false, true, false) => findings.push(format!(
                    "grant {} (job {}, ε {}): key released, job not run yet (grant valid until {})",
                    g.grant_id, g.job_id, g.epsilon, g.expires_at
                )),
                (false, false, true) => findings.push(format!(
                    "grant {} (job {}, ε {}): expired without being delivered (the ledger counts its ε as spent)",
                    g.grant_id, g.job_id, g.epsilon
                )),
                (false, false, false) => findings.push(format!(
                    "grant {} (job {}, ε {}): not in this log (not delivered yet, or its records were removed)",
                    g.grant_id, g.job_id, g.epsilon
                )),
            }
        }
    }
    if simulated {
        findings.push("attestation is SIMULATED: development evidence, not hardware-backed".into());
    }
    Ok(AuditReport {
        origin,
        records: tree.size(),
        root: hex::encode(tree.root()),
        simulated,
        signers: signer_reports,
        checkpoints: checkpoint_reports,
        results_included,
        jobs,
        key_releases,
        jobs_released: released,
        jobs_failed: failed,
        jobs_cached: cached,
        findings,
    })
}

/// A result checked on its own: signature, the signer's evidence (carried in the result)
/// against the expected image and policy, and the receipt of its record.
pub struct VerifiedResult {
    pub result: JobResult,
    pub verdict: attestation_verifier::Verdict,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    #[error("result signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("result does not decode: {0}")]
    Decode(String),
    #[error("result signer: {0}")]
    Signer(#[from] SignerError),
    #[error("result receipt: {0}")]
    Receipt(#[from] ReceiptError),
    #[error("result receipt logs another result (or another event)")]
    WrongRecord,
    #[error("the result says its noise came from a fixed seed, which only a simulated enclave may do")]
    FixedNoiseOnHardware,
}

pub fn verify_result(file: &ResultFile, expected: &ExpectedImage) -> Result<VerifiedResult, ResultError> {
    file.result.verify_self_signed(RESULT_CONTEXT)?;
    let result: JobResult = file.result.decode().map_err(|e| ResultError::Decode(e.to_string()))?;
    let verdict = tlog::signer::verify_boot_evidence(
        result.platform,
        file.result.signer.as_slice(),
        &result.policy_digest,
        result.evidence.as_slice(),
        result.released_at,
        expected,
    )?;
    // Only the simulated platform accepts a fixed noise seed; a hardware verdict with one
    // is a result no genuine enclave signs.
    if result.insecure_fixed_noise && !verdict.simulated {
        return Err(ResultError::FixedNoiseOnHardware);
    }
    let v = tlog::verify_receipt(&file.receipt, file.result.signer.as_slice())?;
    let logs_it = v.record.event.answers_with_result()
        && v.record.result_digest == Some(Digest::of(file.result.payload.as_slice()));
    if !logs_it {
        return Err(ResultError::WrongRecord);
    }
    Ok(VerifiedResult { result, verdict })
}

fn job_report(line: u64, r: &AuditRecord) -> JobReport {
    JobReport {
        line,
        time: r.time,
        event: r.event.to_string(),
        dataset: opt(&r.dataset_digest),
        collaborator: r.principal.clone(),
        job_id: opt(&r.job_id),
        grant_id: opt(&r.grant_id),
        epsilon: opt(&r.epsilon),
        delta: opt(&r.delta),
        budget_after: opt(&r.budget_after),
    }
}

/// One flat JSON object per record, for SIEM ingestion (`audit export --format jsonl`)
/// and the evidence bundle. Call it on a log [`verify`] accepted: it decodes the lines
/// again but does not repeat the signature checks.
pub fn flat_records(log_text: &str) -> Result<Vec<serde_json::Value>, ReplayError> {
    let mut out = Vec::new();
    for (i, line) in tlog::replay::lines(log_text)?.into_iter().enumerate() {
        let fail = |why: String| ReplayError { line: i as u64 + 1, kind: tlog::replay::ReplayErrorKind::Decode(why) };
        let signed: Signed = serde_json::from_str(line).map_err(|e| fail(e.to_string()))?;
        let r: AuditRecord = signed.decode().map_err(|e| fail(e.to_string()))?;
        out.push(serde_json::json!({
            "line": r.index + 1,
            "leaf_hash": hex::encode(tlog::merkle::leaf_hash(line.as_bytes())),
            "signer": signed.signer.to_hex(),
            "time": r.time,
            "event": r.event,
            "principal": r.principal,
            "job_id": r.job_id,
            "grant_id": r.grant_id,
            "dataset_digest": r.dataset_digest,
            "policy_digest": r.policy_digest,
            "module_hash": r.module_hash,
            "query_digest": r.query_digest,
            "result_digest": r.result_digest,
            "evidence_digest": r.evidence_digest,
            "platform": r.platform,
            "simulated": r.simulated,
            "mechanism": r.mechanism,
            "epsilon": r.epsilon,
            "delta": r.delta,
            "sensitivity": r.sensitivity,
            "budget_before": r.budget_before,
            "budget_after": r.budget_after,
            "outcome": r.outcome,
            "has_sealed_diagnostics": r.diagnostics.is_some(),
        }));
    }
    Ok(out)
}
