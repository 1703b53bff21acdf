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
    /// For a training query, the outputs with the non-private reference's parameters.
    pub report: ExactReport,
    pub training: Option<TrainingReference>,
}

/// A training query's non-private reference on the owner's machine: the same sampled
/// steps and optimizer without clipping or noise (`release::training::
/// train_nonprivate_reference`), through the same sandbox.
#[derive(Debug, Clone)]
pub struct TrainingReference {
    pub names: Vec<String>,
    pub pretrained: Vec<f64>,
    pub trained: Vec<f64>,
    /// The query's outputs with the pretrained parameters.
    pub pretrained_report: ExactReport,
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
    // A training query's units are kept: every step samples from all of them.
    let mut kept: Vec<RecordBatch> = Vec::new();
    let mut rows = 0u64;
    for b in batches {
        rows += b.rows as u64;
        units.push(b, |u| kept.push(u))?;
    }
    kept.extend(units.finish());
    let Some(t) = &spec.training else {
        score_all(&mut runner, &mut acc, &kept);
        return Ok(ExactRun { rows, report: acc.finish_exact()?, training: None });
    };
    let plan = release::training::TrainingPlan::new(t, policy)?;
    let fuel = policy.sandbox.fuel_per_unit;
    let sandbox_err = |e: sandbox::RunError| LocalRunError::Sandbox(e.to_string());
    let pretrained = sandbox.initial_params(&module, fuel).map_err(sandbox_err)?;
    let names = module.training().map(|m| m.parameter_names()).unwrap_or_default();
    let mut trainer = sandbox.train_runner(&module, &spec.inputs, &t.label, fuel, deadline).map_err(sandbox_err)?;
    let mut gradient = |u: usize, at: &std::sync::Arc<[f64]>| trainer.gradient(&kept[u], at).ok();
    // A fixed seed keeps the owner's reference reproducible.
    let mut rng = dp::seeded_rng([7; 32]);
    let trained =
        release::training::train_nonprivate_reference(&plan, pretrained.clone(), kept.len(), &mut gradient, &mut rng)
            .map_err(|e| LocalRunError::Sandbox(e.to_string()))?;
    score_all(&mut runner, &mut acc, &kept);
    let pretrained_report = acc.finish_exact()?;
    let mut acc = Accumulator::new(spec, policy, module.output_names())?;
    runner.set_params(Some(trained.as_slice().into())).map_err(sandbox_err)?;
    score_all(&mut runner, &mut acc, &kept);
    Ok(ExactRun {
        rows,
        report: acc.finish_exact()?,
        training: Some(TrainingReference { names, pretrained, trained, pretrained_report }),
    })
}

/// Score every unit into `acc`; a fault makes the unit absent, as in the enclave (m
/// outputs per row, row-major, in the order of the module's output names).
fn score_all(runner: &mut sandbox::UnitRunner, acc: &mut Accumulator, units: &[RecordBatch]) {
    for unit in units {
        let scores = runner.score(unit).unwrap_or_default();
        acc.add_unit(unit, &scores);
    }
}

/// What `cleanroom owner-check` writes: the exact run, labelled as the owner's own and
/// never released. `cleanroom compare` reads it back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OwnerCheck {
    pub label: String,
    pub rows: u64,
    pub units: u64,
    pub units_absent: u64,
    pub outputs: Vec<protocol::result::OutputRelease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<OwnerTrainingCheck>,
}

/// A training query's non-private reference, beside the owner's exact outputs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OwnerTrainingCheck {
    pub label: String,
    pub parameter_names: Vec<String>,
    pub pretrained_parameters: Vec<f64>,
    pub nonprivate_parameters: Vec<f64>,
    /// The query's outputs with the pretrained parameters.
    pub pretrained_outputs: Vec<protocol::result::OutputRelease>,
}

pub const OWNER_CHECK_LABEL: &str =
    "owner's own check: exact values from plaintext, computed on the owner's machine; not DP, never released";
pub const NONPRIVATE_REFERENCE_LABEL: &str = "non-private reference: the query's sampled steps and optimizer without clipping or noise; the outputs above use its parameters";

impl From<ExactRun> for OwnerCheck {
    fn from(run: ExactRun) -> Self {
        OwnerCheck {
            label: OWNER_CHECK_LABEL.into(),
            rows: run.rows,
            units: run.report.units,
            units_absent: run.report.units_absent,
            outputs: run.report.outputs,
            training: run.training.map(|t| OwnerTrainingCheck {
                label: NONPRIVATE_REFERENCE_LABEL.into(),
                parameter_names: t.names,
                pretrained_parameters: t.pretrained,
                nonprivate_parameters: t.trained,
                pretrained_outputs: t.pretrained_report.outputs,
            }),
        }
    }
}
