//! The audit log on the auditor's disk: `audit.log` (one record per line, exactly as the
//! host stores it) with `evidence/<sha256 hex>` beside it, one file per signer's
//! attestation document.

use crate::audit::AuditReport;
use crate::client::{BlobClient, ClientError};
use protocol::audit::AuditRecord;
use protocol::signing::Signed;
use protocol::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{path}: {why}")]
    Io { path: PathBuf, why: std::io::Error },
    #[error("{path}: evidence file name is not a SHA-256 hex digest")]
    BadName { path: PathBuf },
    #[error("{path}: the file does not hash to its name")]
    BadContent { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |why| FilesError::Io { path: path.to_path_buf(), why }
}

pub struct Fetched {
    pub records: usize,
    pub evidence: usize,
}

/// Download the log and every evidence document its records name into `dir`.
pub fn fetch(client: &mut BlobClient, dir: &Path) -> Result<Fetched, FilesError> {
    let lines = client.audit_log()?;
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
        let doc = client.get(d)?;
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
