//! A worker process: the supervisor's own binary started with [`super::WORKER_ARG`]. It
//! reads one [`Init`] and then tasks from stdin, and writes one reply per frame to stdout,
//! until stdin ends. It has no platform, no network and no host: only the units it is
//! given, a sandbox with the job's limits, and the pipe back to the supervisor.

use super::codec::{read_frame, write_frame, CodecError, Init, Reply, TaskFrame, UnitOutcome};
use sandbox::{AdmittedModule, RunError, Sandbox};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

/// Serve one job on these pipes. Returns when the supervisor closes stdin.
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> Result<(), CodecError> {
    let io = |e: std::io::Error| CodecError::Io(e.to_string());
    let Some(frame) = read_frame(input)? else { return Ok(()) };
    let init = Init::decode(&frame)?;
    let job = match Job::start(&init) {
        Ok(job) => job,
        Err(why) => return write_frame(output, &Reply::InitFailed(why).encode()).map_err(io),
    };
    write_frame(output, &Reply::Ready.encode()).map_err(io)?;
    while let Some(frame) = read_frame(input)? {
        let outcomes = job.run(&TaskFrame::parse(&frame)?)?;
        write_frame(output, &Reply::Outcomes(outcomes).encode()).map_err(io)?;
    }
    Ok(())
}

struct Job {
    sandbox: Sandbox,
    module: AdmittedModule,
    inputs: Vec<String>,
    label: Option<String>,
    fuel: u64,
}

impl Job {
    fn start(init: &Init) -> Result<Job, String> {
        let sandbox = Sandbox::new(init.config.clone()).map_err(|e| format!("sandbox: {e}"))?;
        let module = sandbox.admit(&init.wasm).map_err(|e| format!("module: {e}"))?;
        Ok(Job { sandbox, module, inputs: init.inputs.clone(), label: init.label.clone(), fuel: init.fuel_per_unit })
    }

    /// Each unit's outcome, in order. Units are decoded one at a time into the same
    /// buffers as they are run (the frame's layout was checked whole when it was parsed).
    fn run(&self, task: &TaskFrame<'_>) -> Result<Vec<UnitOutcome>, CodecError> {
        let deadline = Instant::now() + task.remaining;
        let params: Option<Arc<[f64]>> = task.params.as_deref().map(Arc::from);
        let runner = if task.gradient {
            match &self.label {
                Some(label) => self.sandbox.train_runner(&self.module, &self.inputs, label, self.fuel, deadline),
                None => Err(RunError::NotTrainable),
            }
        } else {
            self.sandbox.unit_runner(&self.module, &self.inputs, self.fuel, deadline).and_then(|mut r| {
                r.set_params(params.clone())?;
                Ok(r)
            })
        };
        let mut runner = match runner {
            Ok(r) => r,
            // Without a runner every unit is absent for the same reason.
            Err(e) => return Ok(vec![Err(super::fault_kind(&e)); task.len()]),
        };
        let mut out = Vec::with_capacity(task.len());
        task.for_each_unit(|u| {
            let outcome = match &params {
                Some(at) if task.gradient => runner.gradient(u, at),
                _ => runner.score(u),
            };
            out.push(outcome.map_err(|e| super::fault_kind(&e)));
        })?;
        Ok(out)
    }
}
