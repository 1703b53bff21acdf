//! The worker processes against the supervisor's own thread: the same outcomes, in the same
//! order, for scores and for gradients; a lost worker is an error, never a hang or a
//! partial answer.

use enclave_app::workers::{JobSpec, JobWorkers, Workers};
use protocol::table::{Column, ColumnData, RecordBatch};
use sandbox::{Sandbox, SandboxConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const INPUTS: [&str; 5] = ["income", "utilization", "late_payments", "tenure_months", "birth_decade"];
const FUEL: u64 = 40_000;

fn wasm(var: &str, file: &str) -> Vec<u8> {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-unknown-unknown/release").join(file)
    });
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make wasm`)", path.display()))
}

/// Units of one to three rows of the demo's inputs and label, from a fixed xorshift stream.
fn units(n: usize) -> Vec<RecordBatch> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|_| {
            let rows = 1 + (next() % 3) as usize;
            let mut f = |m: u64, scale: f64, add: f64| (0..rows).map(|_| add + (next() % m) as f64 / scale).collect();
            let income = ColumnData::F64(f(200_000, 1.0, 15_000.0));
            let utilization = ColumnData::F64(f(1000, 1000.0, 0.0));
            let mut g = |m: u64, add: i64| ColumnData::I64((0..rows).map(|_| add + (next() % m) as i64).collect());
            let (late, tenure, decade, label) = (g(8, 0), g(360, 0), g(7, 194), g(2, 0));
            let col = |name: &str, data| Column { name: name.into(), data };
            RecordBatch::new(vec![
                col("income", income),
                col("utilization", utilization),
                col("late_payments", late),
                col("tenure_months", tenure),
                col("birth_decade", decade),
                col("defaulted", label),
            ])
            .expect("unit")
        })
        .collect()
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_enclave-app"))
}

struct Fixture {
    sandbox: Sandbox,
    wasm: Vec<u8>,
    inputs: Vec<String>,
}

impl Fixture {
    fn new(wasm: Vec<u8>) -> Fixture {
        let sandbox =
            Sandbox::new(SandboxConfig { memory_limit_bytes: 2 << 20, ..SandboxConfig::default() }).expect("sandbox");
        Fixture { sandbox, wasm, inputs: INPUTS.map(String::from).to_vec() }
    }

    fn workers(&self, plan: &Workers, label: Option<&str>) -> JobWorkers {
        let module = self.sandbox.admit(&self.wasm).expect("module");
        let job = JobSpec {
            sandbox: &self.sandbox,
            module: &module,
            wasm: &self.wasm,
            inputs: &self.inputs,
            label,
            fuel_per_unit: FUEL,
        };
        JobWorkers::try_start(plan, &job).expect("workers start")
    }
}

fn job_spec<'a>(f: &'a Fixture, module: &'a sandbox::AdmittedModule, wasm: &'a [u8]) -> JobSpec<'a> {
    JobSpec { sandbox: &f.sandbox, module, wasm, inputs: &f.inputs, label: None, fuel_per_unit: FUEL }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[test]
fn scores_are_the_same_in_order_for_any_number_of_workers() {
    let f = Fixture::new(wasm("CLEANROOM_CREDIT_LR_WASM", "credit_lr.wasm"));
    let units = units(301);
    let batches: Vec<Vec<&RecordBatch>> = units.chunks(64).map(|c| c.iter().collect()).collect();
    let run = |plan: Workers| {
        let mut w = f.workers(&plan, None);
        assert_eq!(w.count(), plan.count());
        // One batch ahead, as a job does.
        let mut out = vec![];
        for (i, b) in batches.iter().enumerate() {
            w.submit_scores(b, None, deadline()).expect("submit");
            if i > 0 {
                out.extend(w.collect().expect("collect"));
            }
        }
        out.extend(w.collect().expect("collect"));
        out
    };
    let one = run(Workers::InProcess);
    assert_eq!(one.len(), units.len());
    assert!(one.iter().all(|o| o.is_ok()), "every unit scored");
    for count in [2, 3, 4, 7] {
        assert_eq!(run(Workers::processes(exe(), count)), one, "{count} workers");
    }
}

#[test]
fn gradients_are_the_same_in_order_for_any_number_of_workers() {
    let f = Fixture::new(wasm("CLEANROOM_CREDIT_LR_TUNE_WASM", "credit_lr_tune.wasm"));
    let units = units(97);
    let refs: Vec<&RecordBatch> = units.iter().collect();
    let at = [0.25, -0.5, 0.125, 1.0, -2.0, 0.0];
    let run = |plan: Workers| f.workers(&plan, Some("defaulted")).gradients(&refs, &at, deadline()).expect("gradients");
    let one = run(Workers::InProcess);
    assert!(one.iter().all(|o| o.as_ref().is_ok_and(|g| g.len() == at.len() + 1)), "{one:?}");
    for count in [2, 4] {
        assert_eq!(run(Workers::processes(exe(), count)), one, "{count} workers");
    }
}

/// An executable that runs the real worker under a CPU-time limit of one second, so it is
/// killed (SIGXCPU/SIGKILL) in the middle of a long task.
fn short_lived_worker(dir: &std::path::Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("enclave-app-cpu-limited");
    std::fs::write(&script, format!("#!/bin/sh\nulimit -t 1\nexec '{}' \"$@\"\n", exe().display())).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

#[test]
fn a_worker_killed_mid_task_is_an_error_not_a_partial_answer() {
    let f = Fixture::new(wasm("CLEANROOM_CREDIT_LR_WASM", "credit_lr.wasm"));
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = Workers::processes(short_lived_worker(dir.path()), 2);
    let mut w = f.workers(&plan, None);
    // Far more than a CPU-second of units for each worker.
    let units = units(400_000);
    let refs: Vec<&RecordBatch> = units.iter().collect();
    let started = Instant::now();
    let outcome = w.submit_scores(&refs, None, deadline()).and_then(|()| w.collect());
    let err = outcome.expect_err("the workers were killed");
    assert!(matches!(err, enclave_app::workers::WorkerError::Lost { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(50), "no hang");
}

#[test]
fn workers_that_cannot_start_or_refuse_the_module_are_named() {
    // Not a worker at all: it exits at once.
    let f = Fixture::new(wasm("CLEANROOM_CREDIT_LR_WASM", "credit_lr.wasm"));
    let module = f.sandbox.admit(&f.wasm).expect("module");
    let job = |wasm| job_spec(&f, &module, wasm);
    let not_a_worker = Workers::processes(PathBuf::from("/bin/true"), 2);
    let err = JobWorkers::try_start(&not_a_worker, &job(b"")).err().expect("refused");
    assert!(matches!(err, enclave_app::workers::WorkerError::Lost { .. }), "{err}");
    // The real worker, given bytes that are not a module: it says so.
    let err = JobWorkers::try_start(&Workers::processes(exe(), 2), &job(b"not wasm")).err().expect("refused");
    assert!(matches!(err, enclave_app::workers::WorkerError::InitFailed { .. }), "{err}");
    // A binary that does not exist.
    let err = JobWorkers::try_start(&Workers::processes(PathBuf::from("/nonexistent/enclave-app"), 2), &job(b""))
        .err()
        .expect("refused");
    assert!(matches!(err, enclave_app::workers::WorkerError::Spawn { .. }), "{err}");
    // `start` does not wait for them; at first use it gives them up for the supervisor's
    // own thread, which scores the same.
    let units = units(20);
    let refs: Vec<&RecordBatch> = units.iter().collect();
    let score = |w: &mut JobWorkers| {
        w.submit_scores(&refs, None, deadline()).expect("submit");
        w.collect().expect("collect")
    };
    let mut fell_back = JobWorkers::start(&not_a_worker, &job(&f.wasm));
    assert!(matches!(fell_back.ready(), Some(enclave_app::workers::WorkerError::Lost { .. })));
    assert_eq!(fell_back.count(), 1);
    let mut real = JobWorkers::start(&Workers::processes(exe(), 2), &job(&f.wasm));
    assert!(real.ready().is_none(), "the real workers come up");
    assert_eq!(real.count(), 2);
    assert_eq!(score(&mut fell_back), score(&mut real));
}
