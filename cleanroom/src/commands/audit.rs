//! The auditor's commands (also the owner's and provider's): fetch the log, verify it,
//! export it, render its report page, and verify one result file.

use crate::client::BlobClient;
use crate::files::{load_result_file, write_atomic, write_json};
use crate::Error;
use audit::files::{AuditFiles, Checked, Fetched};
use std::path::{Path, PathBuf};
use transport::Endpoint;

/// `audit fetch`: the log and the evidence documents its records name, into `out`.
pub fn fetch(blob_api: &Endpoint, out: &Path) -> Result<Fetched, Error> {
    Ok(audit::files::fetch(&mut BlobClient::connect(blob_api)?, out)?)
}

/// `audit verify`: the verified log and, with a ledger, its budgets.
pub fn verify(files: &AuditFiles<'_>, now: u64) -> Result<(Checked, Vec<ledger::BudgetRow>), Error> {
    let checked = audit::files::check(files, now)?;
    let budgets = match &checked.ledger {
        Some(l) => l.budgets()?,
        None => vec![],
    };
    Ok((checked, budgets))
}

/// How `audit export` writes the verified log.
#[derive(Debug, Clone, Copy)]
pub enum ExportFormat {
    /// One flat JSON object per record.
    Jsonl,
    /// One JSON evidence bundle: verification, records, the stored log, the ledger's grants.
    Bundle,
}

/// `audit export`: verified first, so nothing is written for a log that does not verify.
/// Returns the number of records written.
pub fn export(files: &AuditFiles<'_>, format: ExportFormat, out: &Path, now: u64) -> Result<u64, Error> {
    let checked = audit::files::check(files, now)?;
    match format {
        ExportFormat::Jsonl => write_atomic(out, audit::files::jsonl(&checked)?.as_bytes())?,
        ExportFormat::Bundle => write_json(out, &audit::files::evidence_bundle(&checked, now)?)?,
    }
    Ok(checked.report.records)
}

/// `audit report`: the self-contained HTML page, `out/index.html`.
pub fn report_page(files: &AuditFiles<'_>, out: &Path, now: u64) -> Result<PathBuf, Error> {
    let checked = audit::files::check(files, now)?;
    let page = audit::report::render(&checked.report, now);
    std::fs::create_dir_all(out).map_err(|source| Error::Io { path: out.to_path_buf(), source })?;
    let path = out.join("index.html");
    write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

/// A result file that verified: signed by an attested key running the expected image and
/// policy, and logged under a checkpoint signed by the same key.
pub struct CheckedResult {
    pub file: audit::ResultFile,
    pub verified: audit::VerifiedResult,
    pub checkpoint_size: u64,
}

/// `verify-result`.
pub fn verify_result(path: &Path, expected: &tlog::signer::ExpectedImage) -> Result<CheckedResult, Error> {
    let file = load_result_file(path)?;
    let verified = audit::verify_result(&file, expected)?;
    let checkpoint_size = tlog::checkpoint::parse(&file.receipt.checkpoint)?.checkpoint.size;
    Ok(CheckedResult { file, verified, checkpoint_size })
}
