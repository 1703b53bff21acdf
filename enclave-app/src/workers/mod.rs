//! Every core: a job's units scored, or their gradients computed, by worker processes.
//!
//! Each task's units are dealt out in order, one contiguous slice per worker, and the
//! outcomes come back in that order. Everything after (the accumulator, the gradient sum,
//! the diagnostics) runs in the supervisor in unit order, and the sums are of integers, so
//! a release is bit for bit the same for any number of workers with the same noise.
//!
//! Workers are processes, not threads: every unit runs in a fresh instance, and resetting
//! an instance's memory write-protects or unmaps pages, which needs a TLB shootdown on
//! every core the address space runs on. Threads of one process interrupt each other with
//! every unit (measured on 2 vCPUs: two threads scored at 0.6× of one); processes have an
//! address space each. A worker is this same measured binary started with [`WORKER_ARG`]:
//! it holds no key, no platform and no network, only the units it is sent over a pipe and
//! a sandbox with the job's limits ([`child`]). Nothing here is visible outside: the reply
//! leaves at the deadline whatever the speed, and a lost worker fails the job (no partial
//! release) like any other fault after the spend.

pub mod child;
pub mod codec;
mod pool;

pub use codec::UnitOutcome;
pub use pool::{ProcessPool, WorkerError};

use protocol::table::RecordBatch;
use sandbox::{AdmittedModule, RunError, Sandbox, UnitRunner};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The argument that makes the supervisor's binary a worker (read before any other).
pub const WORKER_ARG: &str = "--job-worker";
/// Most workers a job uses.
pub const MAX_WORKERS: usize = 64;

/// Workers for this machine: its available parallelism, at most [`MAX_WORKERS`].
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_WORKERS)
}

/// How jobs run their units, chosen at launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workers {
    /// On the supervisor's own thread.
    InProcess,
    /// On `count` worker processes started from `exe` (the supervisor's binary).
    Processes { exe: PathBuf, count: usize },
}

impl Workers {
    /// `count` workers from `exe`; one worker runs in process (a pipe would gain nothing).
    pub fn processes(exe: PathBuf, count: usize) -> Workers {
        match count.clamp(1, MAX_WORKERS) {
            1 => Workers::InProcess,
            count => Workers::Processes { exe, count },
        }
    }

    /// How many workers a job gets.
    pub fn count(&self) -> usize {
        match self {
            Workers::InProcess => 1,
            Workers::Processes { count, .. } => *count,
        }
    }
}

/// What every worker needs to run one job's units.
pub struct JobSpec<'a> {
    pub sandbox: &'a Sandbox,
    pub module: &'a AdmittedModule,
    /// The module's bytes: a worker compiles them itself (the digest was checked here).
    pub wasm: &'a [u8],
    pub inputs: &'a [String],
    /// The label column of a training job.
    pub label: Option<&'a str>,
    pub fuel_per_unit: u64,
}

/// One job's workers: tasks submitted in order, outcomes collected in the same order.
pub struct JobWorkers {
    engine: Engine,
    /// Why the job's worker processes were given up for the supervisor's own thread.
    unavailable: Option<WorkerError>,
}

/// The supervisor's own thread as the one worker.
struct Local {
    sandbox: Sandbox,
    // Boxed: the module's pre-instantiated form is large beside the rest.
    module: Box<AdmittedModule>,
    inputs: Vec<String>,
    label: Option<String>,
    fuel: u64,
    done: VecDeque<Vec<UnitOutcome>>,
}

enum Engine {
    Local(Local),
    /// Worker processes; `ready` once they have all compiled the module. Until then the
    /// supervisor's own thread is kept to fall back on.
    Pool {
        pool: ProcessPool,
        ready: bool,
        fallback: Option<Local>,
    },
}

impl JobWorkers {
    /// Workers as `plan` says, started without waiting for them to compile the module (so
    /// admission does not wait either); they are waited for at first use, and if they fail
    /// by then the job runs on the supervisor's own thread ([`JobWorkers::unavailable`]
    /// says why). The release is the same either way; the choice depends on the machine,
    /// never on the data.
    pub fn start(plan: &Workers, job: &JobSpec<'_>) -> JobWorkers {
        let fallback = Local::new(job);
        let spawned = match plan {
            Workers::InProcess => return JobWorkers { engine: Engine::Local(fallback), unavailable: None },
            Workers::Processes { exe, count } => ProcessPool::spawn(exe, *count, &init(job)),
        };
        match spawned {
            Ok(pool) => {
                JobWorkers { engine: Engine::Pool { pool, ready: false, fallback: Some(fallback) }, unavailable: None }
            }
            Err(e) => {
                // At admission, before the spend: a fact about the machine, safe to log.
                eprintln!("enclave-app: {e}; this job runs on one worker");
                JobWorkers { engine: Engine::Local(fallback), unavailable: Some(e) }
            }
        }
    }

    /// Workers as `plan` says, ready, or why they could not be started.
    pub fn try_start(plan: &Workers, job: &JobSpec<'_>) -> Result<JobWorkers, WorkerError> {
        let engine = match plan {
            Workers::InProcess => Engine::Local(Local::new(job)),
            Workers::Processes { exe, count } => Engine::Pool {
                pool: ProcessPool::start(exe, *count, &init(job))?,
                ready: true,
                fallback: Some(Local::new(job)),
            },
        };
        Ok(JobWorkers { engine, unavailable: None })
    }

    /// Wait for the workers to be ready (or fall back); why they were given up, if they
    /// were. A job calls it at the spend: nothing may be logged from then on, so the reason
    /// goes to the owner's sealed diagnostics.
    pub fn ready(&mut self) -> Option<&WorkerError> {
        self.engine();
        self.unavailable.as_ref()
    }

    /// The engine to use now: the pool once it is ready, or the fallback if it failed to
    /// become ready (checked before the first task, so no task is in flight).
    fn engine(&mut self) -> &mut Engine {
        let failed = match &mut self.engine {
            Engine::Pool { pool, ready, fallback } if !*ready => match pool.wait_ready() {
                Ok(()) => {
                    *ready = true;
                    None
                }
                Err(e) => Some((e, fallback.take())),
            },
            _ => None,
        };
        if let Some((e, Some(local))) = failed {
            self.unavailable = Some(e);
            // Dropping the pool kills and reaps its processes.
            self.engine = Engine::Local(local);
        }
        &mut self.engine
    }

    /// How many workers run the units.
    pub fn count(&self) -> usize {
        match &self.engine {
            Engine::Local(_) => 1,
            Engine::Pool { pool, .. } => pool.workers(),
        }
    }

    /// Score `units` with `params` given to `read_params` (none: the module's own), no
    /// unit started after `deadline`. Collect with [`JobWorkers::collect`]; meanwhile the
    /// caller may decrypt the next chunk.
    pub fn submit_scores(
        &mut self,
        units: &[&RecordBatch],
        params: Option<&[f64]>,
        deadline: Instant,
    ) -> Result<(), WorkerError> {
        match self.engine() {
            Engine::Local(l) => {
                let runner = l.sandbox.unit_runner(&l.module, &l.inputs, l.fuel, deadline).and_then(|mut r| {
                    r.set_params(params.map(Arc::from))?;
                    Ok(r)
                });
                l.done.push_back(each(runner, units, |r, u| r.score(u)));
                Ok(())
            }
            Engine::Pool { pool, .. } => {
                pool.submit(false, deadline.saturating_duration_since(Instant::now()), params, units)
            }
        }
    }

    /// The outcomes of the oldest submitted task, in its units' order.
    pub fn collect(&mut self) -> Result<Vec<UnitOutcome>, WorkerError> {
        match self.engine() {
            Engine::Local(l) => Ok(l.done.pop_front().unwrap_or_default()),
            Engine::Pool { pool, .. } => pool.collect(),
        }
    }

    /// Each unit's gradient and loss at `at` (a training job), in the units' order.
    pub fn gradients(
        &mut self,
        units: &[&RecordBatch],
        at: &[f64],
        deadline: Instant,
    ) -> Result<Vec<UnitOutcome>, WorkerError> {
        match self.engine() {
            Engine::Local(l) => {
                let runner = match &l.label {
                    Some(label) => l.sandbox.train_runner(&l.module, &l.inputs, label, l.fuel, deadline),
                    None => Err(RunError::NotTrainable),
                };
                let at: Arc<[f64]> = at.into();
                Ok(each(runner, units, |r, u| r.gradient(u, &at)))
            }
            Engine::Pool { pool, .. } => {
                pool.submit(true, deadline.saturating_duration_since(Instant::now()), Some(at), units)?;
                pool.collect()
            }
        }
    }
}

fn init(job: &JobSpec<'_>) -> codec::Init {
    codec::Init {
        config: job.sandbox.config().clone(),
        wasm: job.wasm.to_vec(),
        inputs: job.inputs.to_vec(),
        label: job.label.map(str::to_string),
        fuel_per_unit: job.fuel_per_unit,
    }
}

impl Local {
    fn new(job: &JobSpec<'_>) -> Local {
        Local {
            sandbox: job.sandbox.clone(),
            module: Box::new(job.module.clone()),
            inputs: job.inputs.to_vec(),
            label: job.label.map(str::to_string),
            fuel: job.fuel_per_unit,
            done: VecDeque::new(),
        }
    }
}

/// Run `f` on every unit with one runner; without a runner every unit is absent for the
/// same reason.
fn each(
    runner: Result<UnitRunner, RunError>,
    units: &[&RecordBatch],
    mut f: impl FnMut(&mut UnitRunner, &RecordBatch) -> Result<Vec<f64>, RunError>,
) -> Vec<UnitOutcome> {
    match runner {
        Ok(mut r) => units.iter().map(|u| f(&mut r, u).map_err(|e| fault_kind(&e))).collect(),
        Err(e) => vec![Err(fault_kind(&e)); units.len()],
    }
}

/// A stable name for the kind of fault that made a unit absent (owner diagnostics).
pub fn fault_kind(e: &RunError) -> String {
    let debug = format!("{e:?}");
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("unknown").to_string()
}
