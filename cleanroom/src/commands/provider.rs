//! The model provider's commands: write a first query, check it, upload blobs, submit a
//! job over an attested channel and keep its signed result.

use super::Attested;
use crate::client::{connect_attested, BlobClient, Expected, ImageReference};
use crate::files::{load_policy, load_public_manifest, load_query, read, write_atomic, write_json};
use crate::Error;
use owner_prep::prepare::{chunk_file_name, Phase, Progress};
use protocol::result::{JobResult, RESULT_CONTEXT};
use protocol::sealed::SealedIndex;
use protocol::training::TrainingLimits;
use protocol::wire::{ClientMessage, EnclaveMessage};
use protocol::Digest;
use std::path::{Path, PathBuf};
use transport::Endpoint;

/// `query-init`: a commented, runnable first query from the public manifest and the
/// module's ABI section (and the policy, for its ε and deadline bounds, when given).
pub struct QueryInit<'a> {
    pub manifest: &'a Path,
    pub module: &'a Path,
    pub policy: Option<&'a Path>,
    pub job_id: String,
    pub collaborator: String,
    pub inputs: Option<Vec<String>>,
    pub deadline_ms: Option<u64>,
    /// A training query against this label instead of the starting outputs.
    pub train_label: Option<&'a str>,
    pub out: &'a Path,
}

pub fn query_init(r: QueryInit<'_>) -> Result<(), Error> {
    let m = load_public_manifest(r.manifest)?;
    let policy = r.policy.map(load_policy).transpose()?;
    // The ABI section only: a module the sandbox would refuse still gets a query (the
    // enclave refuses it, before any spend, as it would any provider's).
    let wasm = read(r.module)?;
    let section =
        sandbox::read_abi(&wasm).map_err(|e| Error::Parse { path: r.module.to_path_buf(), why: e.to_string() })?;
    let abi = crate::query_init::ModuleAbi {
        hash: Digest::of(&wasm),
        input_types: section.inputs.iter().map(|k| k.sealed_type().to_string()).collect(),
        output_names: section.output_names.clone(),
    };
    let total_epsilon = match &policy {
        Some(p) => release::parse_epsilon(&p.max_epsilon_per_job)?,
        None => "1".parse()?,
    };
    let training = match r.train_label {
        None => None,
        Some(label) => {
            let not_trainable =
                || Error::Usage(format!("{} is not trainable (no cleanroom_train section)", r.module.display()));
            let section = sandbox::read_train(&wasm)
                .map_err(|e| Error::Parse { path: r.module.to_path_buf(), why: e.to_string() })?
                .ok_or_else(not_trainable)?;
            let limits = match policy.as_ref().map(|p| p.training.clone()) {
                Some(None) => return Err(Error::Usage("the policy admits no training query".into())),
                Some(Some(l)) => l,
                None => TrainingLimits::default(),
            };
            let units = m.chunks.saturating_mul(m.rows_per_chunk);
            let choice = crate::query_init::default_training(label, &total_epsilon, &limits, units)?;
            Some((choice, section.n_params as usize))
        }
    };
    let deadline_ms = match (r.deadline_ms, &policy) {
        (Some(d), _) => d,
        (None, Some(p)) => crate::query_init::shortest_deadline_ms(&m, abi.hash, p, training.as_ref())?,
        (None, None) => 60_000,
    };
    let choices = crate::query_init::Choices {
        job_id: r.job_id,
        collaborator: r.collaborator,
        inputs: r.inputs,
        total_epsilon,
        deadline_ms,
        training: training.map(|(c, _)| c),
    };
    let text = crate::query_init::skeleton(&m, &abi, &choices)?;
    write_atomic(r.out, text.as_bytes())
}

/// `query check`: the plan of a query against the policy, as the owner's review shows it.
pub fn query_check(
    query: &Path,
    manifest: &Path,
    policy: &Path,
    module: Option<&Path>,
    group_sizes: &[u64],
) -> Result<String, Error> {
    let m = load_public_manifest(manifest)?;
    let policy = load_policy(policy)?;
    let spec = load_query(query)?;
    if spec.dataset_digest != m.dataset_digest || policy.dataset_digest != m.dataset_digest {
        return Err(Error::Usage("the query, the policy and the manifest name different datasets".into()));
    }
    let (outputs, n_params) = match module {
        Some(w) => {
            let wasm = read(w)?;
            let r = crate::provider::check(&wasm, &policy.sandbox)?;
            if r.hash != spec.module_hash {
                return Err(Error::Usage(format!("the module is {}, the query names {}", r.hash, spec.module_hash)));
            }
            let train =
                sandbox::read_train(&wasm).map_err(|e| Error::Parse { path: w.to_path_buf(), why: e.to_string() })?;
            (Some(r.output_names), train.map(|t| t.n_params as usize))
        }
        None => (None, None),
    };
    Ok(crate::review::plan(&spec, &policy, outputs.as_deref(), n_params, group_sizes)?)
}

/// What `upload --sealed DIR` stored.
pub struct UploadedTable {
    pub chunks: u64,
    /// The sealed index's blob: what a job names as its table.
    pub index: Digest,
}

/// `upload --sealed DIR`: every sealed chunk, then the index naming them.
pub fn upload_sealed(blob_api: &Endpoint, dir: &Path, progress: &dyn Progress) -> Result<UploadedTable, Error> {
    let mut c = BlobClient::connect(blob_api)?;
    let m = crate::files::load_manifest(&dir.join("manifest.json"))?;
    let paths: Vec<PathBuf> = (0..m.chunks).map(|i| dir.join("chunks").join(chunk_file_name(i))).collect();
    let total = paths.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
    let mut chunks = vec![];
    let mut sent = 0u64;
    for p in &paths {
        let blob = read(p)?;
        sent += blob.len() as u64;
        chunks.push(c.put(blob)?);
        progress.update(Phase::Upload, sent, total);
    }
    let index = SealedIndex { dataset_digest: m.dataset_digest, chunks, rows_per_chunk: m.rows_per_chunk };
    Ok(UploadedTable { chunks: m.chunks, index: c.put(protocol::to_cbor(&index))? })
}

/// `upload --file FILE`.
pub fn upload_file(blob_api: &Endpoint, file: &Path) -> Result<Digest, Error> {
    Ok(BlobClient::connect(blob_api)?.put(read(file)?)?)
}

/// `submit`: attest, upload the module, submit the job, check and keep the result.
pub struct SubmitRequest<'a> {
    pub front_door: &'a Endpoint,
    pub image: ImageReference,
    pub allow_simulated: bool,
    pub allow_emulated_nsm: bool,
    pub policy_digest: Digest,
    pub blob_api: &'a Endpoint,
    pub module: &'a Path,
    pub query: &'a Path,
    pub sealed_index: Digest,
    pub provider_key: &'a Path,
    pub out: &'a Path,
}

/// Steps worth telling the provider while the reply waits for the job's deadline.
pub enum SubmitStep<'a> {
    Attested(&'a Attested),
    Submitting {
        module_blob: Digest,
        job_id: &'a str,
        deadline_ms: u64,
    },
    /// The job failed after the spend; its logged record's receipt was kept at `path`.
    FailureLogged {
        path: &'a Path,
        log_index: u64,
        checkpoint_size: u64,
    },
}

pub struct Submitted {
    pub result: JobResult,
    pub log_index: u64,
    pub checkpoint_size: u64,
}

/// Why a submitted job gave no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("{} is not the module named in the query", .0.display())]
    WrongModule(PathBuf),
    /// The job failed after its grant was spent: nothing more is said, by design. The
    /// failure's receipt, when the enclave gave one, is kept beside the output.
    #[error("job_failed: the job failed after its grant was spent (by design, nothing more is said)")]
    JobFailed,
    #[error("the enclave's receipt does not log this result")]
    ReceiptMismatch,
    #[error("unexpected reply to job submission")]
    Unexpected,
}

pub fn submit(r: &SubmitRequest<'_>, on_step: &mut dyn FnMut(SubmitStep<'_>)) -> Result<Submitted, Error> {
    let spec = load_query(r.query)?;
    let provider = crate::client::read_provider_key(r.provider_key).map_err(Error::Usage)?;
    let wasm = read(r.module)?;
    if Digest::of(&wasm) != spec.module_hash {
        return Err(SubmitError::WrongModule(r.module.to_path_buf()).into());
    }
    let expect =
        Expected::new(r.image.clone(), r.policy_digest, r.allow_simulated).with_emulated_nsm(r.allow_emulated_nsm);
    let mut session = connect_attested(r.front_door, &expect)?;
    on_step(SubmitStep::Attested(&Attested::of(&session)));
    let module_blob = BlobClient::connect(r.blob_api)?.put(wasm)?;
    on_step(SubmitStep::Submitting { module_blob, job_id: &spec.job_id, deadline_ms: spec.deadline_ms });
    let proof = session.submission_proof(&provider, &spec.digest());
    let reply = session.call(&ClientMessage::SubmitJob {
        spec: Box::new(spec),
        module_blob,
        sealed_index_blob: r.sealed_index,
        proof,
    })?;
    let (result, receipt) = match reply {
        EnclaveMessage::JobResult { result, receipt } => (result, receipt),
        EnclaveMessage::JobFailed { receipt } => {
            if let Some(receipt) = receipt {
                let v = tlog::verify_receipt(&receipt, &session.public_key)?;
                let path = r.out.with_extension("failed-receipt.json");
                write_json(&path, &receipt)?;
                on_step(SubmitStep::FailureLogged {
                    path: &path,
                    log_index: receipt.index,
                    checkpoint_size: v.checkpoint.size,
                });
            }
            return Err(SubmitError::JobFailed.into());
        }
        _ => return Err(SubmitError::Unexpected.into()),
    };
    // The result must be signed by the key just attested, and logged by it.
    result.verify(RESULT_CONTEXT, &session.public_key)?;
    let v = tlog::verify_receipt(&receipt, &session.public_key)?;
    if !v.record.event.answers_with_result() || v.record.result_digest != Some(Digest::of(result.payload.as_slice())) {
        return Err(SubmitError::ReceiptMismatch.into());
    }
    let decoded: JobResult = result.decode()?;
    let file = audit::ResultFile { result, receipt };
    write_json(r.out, &file)?;
    Ok(Submitted { result: decoded, log_index: file.receipt.index, checkpoint_size: v.checkpoint.size })
}

/// `provider test`'s JSON output: exact values, labelled as a local test.
pub fn write_local_test(path: &Path, r: &crate::provider::TestReport) -> Result<(), Error> {
    let doc = serde_json::json!({
        "label": crate::provider::LOCAL_TEST_NOTICE,
        "dp": false,
        "budget_spent": "0",
        "attested": false,
        "module_hash": r.check.hash.to_hex(),
        "rows": r.rows,
        "units": r.units,
        "units_absent": r.units_absent,
        "outputs": r.outputs,
    });
    write_json(path, &doc)
}
