//! A worker process: the supervisor's own binary started with [`super::WORKER_ARG`]. It
//! reads one [`Init`] and then tasks from stdin, and writes one reply per frame to stdout,
//! until stdin ends. It has no platform, no network and no host: only the units it is
//! given, a sandbox with the job's limits, and the pipe back to the supervisor.

use super::codec::{read_frame, write_frame, CodecError, Init, Reply, Task, UnitOutcome};
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
        let outcomes = job.run(Task::decode(&frame)?);
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

    fn run(&self, task: Task) -> Vec<UnitOutcome> {
        match task {
            Task::Score { remaining, params, units } => {
                let deadline = Instant::now() + remaining;
                let runner =
                    self.sandbox.unit_runner(&self.module, &self.inputs, self.fuel, deadline).and_then(|mut r| {
                        r.set_params(params.map(Arc::from))?;
                        Ok(r)
                    });
                super::each(runner, &units.iter().collect::<Vec<_>>(), |r, u| r.score(u))
            }
            Task::Gradient { remaining, at, units } => {
                let deadline = Instant::now() + remaining;
                let runner = match &self.label {
                    Some(label) => self.sandbox.train_runner(&self.module, &self.inputs, label, self.fuel, deadline),
                    None => Err(RunError::NotTrainable),
                };
                let at: Arc<[f64]> = at.into();
                super::each(runner, &units.iter().collect::<Vec<_>>(), |r, u| r.gradient(u, &at))
            }
        }
    }
}
