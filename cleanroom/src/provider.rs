//! The model provider's local tools: `cleanroom provider check` and `cleanroom provider test`.
//!
//! Both run the module through the same [`sandbox::Sandbox`] the enclave uses, with the
//! same admission rules and limits, so a module that passes here is refused by the enclave
//! only for reasons of the owner's policy (its hash not allowed, tighter limits). Nothing
//! here is attested, nothing is differentially private and no budget is spent: `test`
//! prints exact aggregates over the provider's own sample.

use owner_prep::keystore::KeyStore;
use owner_prep::prepare::{self, PrepareOptions};
use protocol::job::QuerySpec;
use protocol::policy::{Decimal, Policy, SandboxLimits};
use protocol::result::OutputRelease;
use protocol::Digest;
use sandbox::{Sandbox, SandboxConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Printed by `provider test`, and stored in its JSON output.
pub const LOCAL_TEST_NOTICE: &str = "LOCAL TEST: exact values from your own sample, computed on this machine; \
     no differential privacy is applied, no privacy budget is spent and no attestation is involved";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a query spec: {why}", path.display())]
    Query { path: PathBuf, why: String },
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("module refused at admission (the enclave would refuse it too): {}", one_line(.0))]
    Refused(#[from] sandbox::AdmissionError),
    #[error("preparing the sample as the owner would: {0}")]
    Prepare(#[from] prepare::PrepareError),
    #[error("reading the prepared sample back: {0}")]
    Open(#[from] prepare::OpenError),
    #[error("query: {0}")]
    BadQuery(String),
    #[error("run failed (in the enclave this job would end with an error and release nothing): {0}")]
    Run(#[from] crate::local_run::LocalRunError),
}

/// An error's text on one line (wasmtime/wasmparser messages can span several).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What admission found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub hash: Digest,
    pub size: usize,
    pub abi_version: u32,
    pub outputs_per_row: u32,
    /// The outputs' names, in emission order (`score` for a single unnamed output).
    pub output_names: Vec<String>,
    pub inputs: Vec<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub compile_time: Duration,
    pub config: SandboxConfig,
}

/// Admit `wasm` in a sandbox with `limits`, as `Sandbox::admit` does in the enclave.
pub fn check(wasm: &[u8], limits: &SandboxLimits) -> Result<CheckReport, ProviderError> {
    let config = SandboxConfig {
        memory_limit_bytes: limits.memory_limit_bytes,
        max_module_bytes: usize::try_from(limits.max_module_bytes).unwrap_or(usize::MAX),
        ..SandboxConfig::default()
    };
    let sb = Sandbox::new(config.clone()).map_err(|e| ProviderError::Sandbox(e.to_string()))?;
    let m = sb.admit(wasm)?;
    Ok(CheckReport {
        hash: m.digest(),
        size: m.size_bytes(),
        abi_version: m.abi_version(),
        outputs_per_row: m.outputs_per_row(),
        output_names: m.output_names().to_vec(),
        inputs: m.inputs().iter().map(|k| k.to_string()).collect(),
        imports: m.imports(),
        exports: m.exports(),
        compile_time: m.compile_time(),
        config,
    })
}

/// A policy for a local test: the sample's manifest, this module and query, the limits
/// given, every role allowed for every column, and nothing else (no owner key is involved;
/// the owner key field is a placeholder the exact run never uses).
pub fn local_policy(
    manifest: &protocol::manifest::Manifest,
    module: Digest,
    spec: &QuerySpec,
    limits: SandboxLimits,
    min_group_size: u64,
    max_rows_per_unit: u32,
) -> Result<Policy, ProviderError> {
    let labels: Vec<String> = spec
        .column_roles()
        .into_iter()
        .filter(|(_, r)| *r == protocol::policy::ColumnRole::Label)
        .map(|(n, _)| n.to_string())
        .collect();
    let params = crate::owner_policy::PolicyParams {
        min_group_size,
        max_rows_per_unit,
        max_epsilon_per_job: Decimal::literal("1000"),
        max_delta_per_job: Decimal::literal("0.5"),
        fuel_per_unit: limits.fuel_per_unit,
        memory_limit_bytes: limits.memory_limit_bytes,
        max_module_bytes: limits.max_module_bytes,
        token_as_input: true,
        ..Default::default()
    };
    crate::owner_policy::build(manifest, vec![0u8; 32], vec![module], vec![], &labels, &params)
        .map_err(|e| ProviderError::BadQuery(e.to_string()))
}

/// What a local test produced.
#[derive(Debug, Clone)]
pub struct TestReport {
    pub check: CheckReport,
    pub rows: u64,
    pub units: u64,
    /// Units whose scoring faulted (trap, fuel, bad status, non-finite score): absent.
    pub units_absent: u64,
    pub outputs: Vec<OutputRelease>,
    /// Differences from what the enclave would see (module hash not the one the query names).
    pub warnings: Vec<String>,
}

/// A scratch directory removed on drop; it holds the throwaway key store and the sealed
/// copy of the sample.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, ProviderError> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!("cleanroom-provider-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|source| ProviderError::Io { path: p.clone(), source })?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prepare `csv` as the owner does (same column rules, tokenization with a throwaway key,
/// sealing and authenticated opening), then run `wasm` and `spec` over it through the
/// sandbox with exact aggregation.
pub fn test(
    wasm: &[u8],
    csv: &Path,
    spec: &QuerySpec,
    limits: SandboxLimits,
    min_group_size: u64,
    max_rows_per_unit: u32,
) -> Result<TestReport, ProviderError> {
    let check = check(wasm, &limits)?;
    spec.validate().map_err(|e| ProviderError::BadQuery(e.to_string()))?;
    let mut warnings = vec![];
    if spec.module_hash != check.hash {
        warnings.push(format!(
            "the query names module {} but this module is {}; the enclave would refuse the submission",
            spec.module_hash, check.hash
        ));
    }
    if spec.inputs.len() != check.inputs.len() {
        return Err(ProviderError::BadQuery(format!(
            "the query hands {} input columns to the module, which declares {}",
            spec.inputs.len(),
            check.inputs.len()
        )));
    }
    let scratch = Scratch::new()?;
    let mut ks = KeyStore::create_or_open(&scratch.0.join("throwaway.keys")).map_err(prepare::PrepareError::from)?;
    let sealed = scratch.0.join("sealed");
    // The provider's own sample is not the owner's data: every row is kept, so the local
    // run is comparable row for row.
    let mut rules = prepare::Rules::bank();
    rules.k_anonymity.remedy = prepare::KRemedy::Override { reason: "provider's local sample".into() };
    let opts = PrepareOptions { dataset_name: Some("provider-sample".into()), rules, ..PrepareOptions::default() };
    let prepared = prepare::prepare(csv, &mut ks, &sealed, &opts)?;
    let key = ks
        .data_key(&prepared.dataset_digest)
        .ok_or_else(|| ProviderError::Sandbox("the throwaway key store lost the sample's data key".into()))?;
    let batches = prepare::open_sealed(&sealed, &key)?;
    let policy = local_policy(&prepared.manifest, check.hash, spec, limits, min_group_size, max_rows_per_unit)?;
    let run = crate::local_run::run_exact(&batches, wasm, spec, &policy)?;
    Ok(TestReport {
        check,
        rows: run.rows,
        units: run.report.units,
        units_absent: run.report.units_absent,
        outputs: run.report.outputs,
        warnings,
    })
}
