//! Run a module over plaintext batches on the caller's own machine, the way the enclave
//! does (units assembled and bounded, each scored in a fresh instance with its fuel), with
//! exact (non-DP) aggregation. Used for the owner's own check of true values and the
//! provider's local test. Nothing here is attested and no budget is spent.

use protocol::job::QuerySpec;
use protocol::policy::Policy;
use protocol::table::RecordBatch;
use release::{Accumulator, ExactReport, UnitAssembler};
use sandbox::{Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalRunError {
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("module rejected: {0}")]
    Admission(String),
    #[error("aggregation: {0}")]
    Release(#[from] release::ReleaseError),
}

/// The exact outputs and the owner's counts (which never leave the owner's machine).
#[derive(Debug, Clone)]
pub struct ExactRun {
    pub rows: u64,
    pub report: ExactReport,
}

pub fn run_exact(
    batches: &[RecordBatch],
    wasm: &[u8],
    spec: &QuerySpec,
    policy: &Policy,
) -> Result<ExactRun, LocalRunError> {
    let sandbox =
        Sandbox::new(SandboxConfig::from_policy(policy)).map_err(|e| LocalRunError::Sandbox(e.to_string()))?;
    let module = sandbox.admit(wasm).map_err(|e| LocalRunError::Admission(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_millis(policy.timing.max_deadline_ms);
    let mut runner = sandbox
        .unit_runner(&module, &spec.inputs, policy.sandbox.fuel_per_unit, deadline)
        .map_err(|e| LocalRunError::Sandbox(e.to_string()))?;
    let mut acc = Accumulator::new(spec, policy, module.output_names())?;
    // Bounding picks rows at random only for units over the limit; a fixed seed keeps
    // the owner's check reproducible.
    let mut units = UnitAssembler::new(
        &policy.privacy_unit,
        UnitAssembler::needed_columns(spec),
        policy.max_rows_per_unit,
        [0; 32],
    );
    let mut score = |unit: RecordBatch| {
        // A fault while scoring one unit makes it absent, as in the enclave.
        // m outputs per row, row-major, in the order of the module's output names.
        let scores = runner.score(&unit).unwrap_or_default();
        acc.add_unit(&unit, &scores);
    };
    let mut rows = 0u64;
    for b in batches {
        rows += b.rows as u64;
        units.push(b, &mut score)?;
    }
    if let Some(last) = units.finish() {
        score(last);
    }
    Ok(ExactRun { rows, report: acc.finish_exact()? })
}
