//! Run a module over plaintext batches on the caller's own machine, through the same
//! sandbox and limits as the enclave, with exact (non-DP) aggregation. Used for the
//! owner's own check of true values. Nothing here is attested and no budget is spent.

use protocol::job::QuerySpec;
use protocol::policy::Policy;
use protocol::result::OutputRelease;
use protocol::table::RecordBatch;
use release::{Accumulator, Mode, Stats};
use sandbox::{Sandbox, SandboxConfig};

#[derive(Debug, thiserror::Error)]
pub enum LocalRunError {
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("module rejected: {0}")]
    Admission(String),
    #[error("aggregation: {0}")]
    Release(#[from] release::ReleaseError),
}

pub fn run_exact(
    batches: &[RecordBatch],
    wasm: &[u8],
    spec: &QuerySpec,
    policy: &Policy,
) -> Result<(Vec<OutputRelease>, Stats), LocalRunError> {
    let sandbox =
        Sandbox::new(SandboxConfig::from_policy(&policy.sandbox)).map_err(|e| LocalRunError::Sandbox(e.to_string()))?;
    let module = sandbox.admit(wasm).map_err(|e| LocalRunError::Admission(e.to_string()))?;
    let mut job = sandbox.start_job(&module, &spec.inputs).map_err(|e| LocalRunError::Sandbox(e.to_string()))?;
    // Bounding picks rows at random only for units over the limit; a fixed seed keeps
    // the owner's check reproducible.
    let mut acc = Accumulator::new(spec, policy, [0u8; 32])?;
    for b in batches {
        let scores = job.process_batch(b).map_err(|e| LocalRunError::Sandbox(e.to_string()))?;
        acc.add_batch(b, &scores)?;
    }
    Ok(acc.finish::<dp::DpRng>(Mode::Exact { min_group_size: policy.min_group_size })?)
}
