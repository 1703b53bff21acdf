//! The audit log on the auditor's disk: `audit.log` (one record per line, exactly as the
//! host stores it) with `evidence/<sha256 hex>` beside it, one file per signer's
//! attestation document.

use crate::AuditReport;
use protocol::audit::AuditRecord;
use protocol::signing::Signed;
use protocol::Digest;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tlog::signer::ExpectedImage;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    #[error("fetching from the host: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    #[error("{path}: {why}")]
    Io { path: PathBuf, why: std::io::Error },
    #[error("{path}: evidence file name is not a SHA-256 hex digest")]
    BadName { path: PathBuf },
    #[error("{path}: the file does not hash to its name")]
    BadContent { path: PathBuf },
    #[error("{path}: not a result file: {why}")]
    BadResult { path: PathBuf, why: String },
    #[error(transparent)]
    Audit(#[from] crate::AuditError),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error(transparent)]
    Replay(#[from] tlog::replay::ReplayError),
    #[error("{path}: {why}")]
    Write { path: PathBuf, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |why| FilesError::Io { path: path.to_path_buf(), why }
}

pub struct Fetched {
    pub records: usize,
    pub evidence: usize,
}

/// Where the log and its evidence come from: the host's blob API (`cleanroom::client::
/// BlobClient`), kept behind a trait so that auditing links no network client.
pub trait AuditSource {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Every stored log line, in order.
    fn audit_log(&mut self) -> Result<Vec<String>, Self::Error>;
    /// The blob stored under `digest`.
    fn get(&mut self, digest: &Digest) -> Result<Vec<u8>, Self::Error>;
}

fn source<E: std::error::Error + Send + Sync + 'static>(e: E) -> FilesError {
    FilesError::Source(Box::new(e))
}

/// Download the log and every evidence document its records name into `dir`.
pub fn fetch<S: AuditSource>(client: &mut S, dir: &Path) -> Result<Fetched, FilesError> {
    let lines = client.audit_log().map_err(source)?;
    let mut digests = BTreeSet::new();
    for line in &lines {
        // Not verified here (`audit verify` does that); only to know what to download.
        if let Some(rec) = serde_json::from_str::<Signed>(line).ok().and_then(|s| s.decode::<AuditRecord>().ok()) {
            digests.insert(rec.evidence_digest);
        }
    }
    let ev_dir = dir.join("evidence");
    std::fs::create_dir_all(&ev_dir).map_err(io(&ev_dir))?;
    for d in &digests {
        let doc = client.get(d).map_err(source)?;
        let path = ev_dir.join(d.to_hex());
        std::fs::write(&path, doc).map_err(io(&path))?;
    }
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    let log = dir.join("audit.log");
    let tmp = dir.join("audit.log.tmp");
    std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &log)).map_err(io(&log))?;
    Ok(Fetched { records: lines.len(), evidence: digests.len() })
}

/// The evidence documents in `evidence/` beside `log`, each checked against its name.
pub fn read_evidence_dir(log: &Path) -> Result<BTreeMap<Digest, Vec<u8>>, FilesError> {
    let dir = log.parent().unwrap_or(Path::new(".")).join("evidence");
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(FilesError::Io { path: dir, why: e }),
    };
    for entry in entries {
        let path = entry.map_err(io(&dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let digest: Digest = name.parse().map_err(|_| FilesError::BadName { path: path.clone() })?;
        let doc = std::fs::read(&path).map_err(io(&path))?;
        if Digest::of(&doc) != digest {
            return Err(FilesError::BadContent { path });
        }
        out.insert(digest, doc);
    }
    Ok(out)
}

/// The first 16 characters of a hex string (shorter ones whole).
fn prefix(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// What `audit verify` prints.
pub fn summary_text(r: &AuditReport) -> String {
    let mut s = format!(
        "audit log OK: {} records, root {}, {} signer(s); {} key releases, {} jobs released, {} failed after the spend, {} answered from cache{}\n",
        r.records,
        prefix(&r.root),
        r.signers.len(),
        r.key_releases,
        r.jobs_released,
        r.jobs_failed,
        r.jobs_cached,
        if r.simulated { "; SIMULATED attestation (development only)" } else { "" }
    );
    for sg in &r.signers {
        s.push_str(&format!(
            "  signer {}… ({}) from line {}: {} records, policy {}…, evidence verified: {}\n",
            prefix(&sg.public_key),
            sg.platform,
            sg.first_line,
            sg.records,
            prefix(&sg.policy_digest),
            sg.verdict
        ));
    }
    for c in &r.checkpoints {
        s.push_str(&format!("  checkpoint of {} records held by {}: matches the log\n", c.size, c.holder));
    }
    for i in &r.results_included {
        s.push_str(&format!("  result included: {i}\n"));
    }
    for j in &r.jobs {
        let what = match j.event.as_str() {
            "job_released" => format!("released to {} (ε {} δ {})", j.collaborator, j.epsilon, j.delta),
            "job_failed" => format!("failed after the spend (ε {} spent)", j.epsilon),
            "job_cached" => "answered again from cache (nothing spent)".to_string(),
            other => other.to_string(),
        };
        s.push_str(&format!("  job {}: {what}\n", j.job_id));
    }
    for f in &r.findings {
        s.push_str(&format!("  finding: {f}\n"));
    }
    s
}

/// What an auditor hands `audit verify`: the log (with `evidence/` beside it), the image
/// and policies to expect, and whatever else it holds to check the log against.
pub struct AuditFiles<'a> {
    pub log: &'a Path,
    pub expected: &'a ExpectedImage,
    /// The owner's ledger: every grant must be in the log, and its checkpoints consistent.
    pub ledger: Option<&'a Path>,
    /// Checkpoints held elsewhere (a provider's, a witness's).
    pub checkpoints: &'a [PathBuf],
    /// Providers' result files: each receipt must be in the log.
    pub results: &'a [PathBuf],
}

/// A verified log: the report, the log as read, and the ledger when one was given.
pub struct Checked {
    pub report: AuditReport,
    pub log_text: String,
    pub ledger: Option<ledger::Ledger>,
}

/// Verify the log with everything `files` names.
pub fn check(files: &AuditFiles<'_>, now: u64) -> Result<Checked, FilesError> {
    let read_text = |p: &Path| std::fs::read_to_string(p).map_err(io(p));
    let log_text = read_text(files.log)?;
    let evidence = read_evidence_dir(files.log)?;
    let ledger = files.ledger.map(ledger::Ledger::open).transpose()?;
    let ledger_view = match &ledger {
        Some(l) => Some(crate::LedgerView { grants: l.grants()?, checkpoints: l.checkpoints()? }),
        None => None,
    };
    let mut checkpoints = vec![];
    for p in files.checkpoints {
        checkpoints.push(crate::HeldNote { holder: p.display().to_string(), text: read_text(p)? });
    }
    let mut results = vec![];
    for p in files.results {
        let bytes = std::fs::read(p).map_err(io(p))?;
        let f: crate::ResultFile = serde_json::from_slice(&bytes)
            .map_err(|e| FilesError::BadResult { path: p.clone(), why: e.to_string() })?;
        results.push((p.display().to_string(), f));
    }
    let report = crate::verify(crate::AuditInputs {
        log_text: &log_text,
        evidence: &evidence,
        expected: files.expected,
        checkpoints,
        results,
        ledger: ledger_view,
        now,
    })?;
    Ok(Checked { report, log_text, ledger })
}

/// The log's records as JSON lines, one flat object each (for a SIEM or a spreadsheet).
pub fn jsonl(checked: &Checked) -> Result<String, FilesError> {
    Ok(crate::flat_records(&checked.log_text)?.iter().map(|r| format!("{r}\n")).collect())
}

/// Everything an auditor hands on: the verification, the records, the log as stored and
/// the owner's grants.
#[derive(Serialize)]
pub struct EvidenceBundle<'a> {
    pub format: &'static str,
    pub exported_at: u64,
    pub verification: &'a AuditReport,
    pub records: Vec<serde_json::Value>,
    pub log: &'a str,
    pub ledger: BundleLedger,
}

#[derive(Serialize)]
pub struct BundleLedger {
    pub grants: Vec<ledger::GrantRow>,
}

pub const BUNDLE_FORMAT: &str = "cleanroom-evidence-bundle/v2";

pub fn evidence_bundle(checked: &Checked, now: u64) -> Result<EvidenceBundle<'_>, FilesError> {
    let grants = match &checked.ledger {
        Some(l) => l.grants()?,
        None => vec![],
    };
    Ok(EvidenceBundle {
        format: BUNDLE_FORMAT,
        exported_at: now,
        verification: &checked.report,
        records: crate::flat_records(&checked.log_text)?,
        log: &checked.log_text,
        ledger: BundleLedger { grants },
    })
}
