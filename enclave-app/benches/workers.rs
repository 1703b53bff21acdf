//! Every core: the enclave's scoring throughput with one worker (the supervisor's own
//! thread) and with one worker process per vCPU (`enclave_app::workers`, a fresh instance
//! per unit as in a job, units sent in 1,000-unit batches one batch ahead), side by side
//! in one run, and the check that both give the same scores in the same order.
//!
//! `{"bench": NAME, "value": X, "unit": U, "baseline": NAME_OR_NULL, "ratio": R_OR_NULL}`;
//! `ratio` = units/s with every worker over units/s with one (> 1: the cores help); for
//! CPU time per unit, one worker's over every worker's (< 1: the processes cost CPU).

use enclave_app::workers::{available, JobSpec, JobWorkers, Workers};
use protocol::table::{Column, ColumnData, RecordBatch};
use sandbox::{Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

const UNITS: usize = 50_000;
const FUEL: u64 = 40_000;
/// Units per task, about a sealed chunk's worth.
const BATCH: usize = 1_000;

fn wasm() -> Vec<u8> {
    let path = std::env::var_os("CLEANROOM_CREDIT_LR_WASM").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-unknown-unknown/release/credit_lr.wasm")
    });
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make wasm`)", path.display()))
}

/// One-row units of the five credit inputs, from a fixed xorshift stream.
fn units() -> Vec<RecordBatch> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..UNITS)
        .map(|_| {
            let col = |name: &str, data| Column { name: name.into(), data };
            RecordBatch::new(vec![
                col("income", ColumnData::F64(vec![15_000.0 + (next() % 200_000) as f64])),
                col("utilization", ColumnData::F64(vec![(next() % 1000) as f64 / 1000.0])),
                col("late_payments", ColumnData::I64(vec![(next() % 8) as i64])),
                col("tenure_months", ColumnData::I64(vec![(next() % 360) as i64])),
                col("birth_decade", ColumnData::I64(vec![1940 + 10 * (next() % 7) as i64])),
            ])
            .expect("unit")
        })
        .collect()
}

fn main() {
    let sb = Sandbox::new(SandboxConfig {
        memory_limit_bytes: 2 << 20,
        time_limit: Duration::from_secs(600),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let module = sb.admit(&wasm()).expect("credit-lr");
    let inputs: Vec<String> =
        ["income", "utilization", "late_payments", "tenure_months", "birth_decade"].map(String::from).to_vec();
    let units = units();
    let deadline = Instant::now() + Duration::from_secs(600);
    let wasm = wasm();
    let job = JobSpec { sandbox: &sb, module: &module, wasm: &wasm, inputs: &inputs, label: None, fuel_per_unit: FUEL };
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_enclave-app"));
    let run = |plan: &Workers| {
        let (own_before, children_before) = cpu_seconds();
        let mut w = JobWorkers::try_start(plan, &job).expect("workers");
        let started = Instant::now();
        let mut scores = Vec::with_capacity(UNITS);
        let batches: Vec<Vec<&RecordBatch>> = units.chunks(BATCH).map(|b| b.iter().collect()).collect();
        for (i, batch) in batches.iter().enumerate() {
            w.submit_scores(batch, None, deadline).expect("submitted");
            if i > 0 {
                scores.extend(w.collect().expect("collected"));
            }
        }
        scores.extend(w.collect().expect("collected"));
        let rate = UNITS as f64 / started.elapsed().as_secs_f64();
        // The workers are reaped when `w` drops; only then is their time counted.
        drop(w);
        let (own, children) = cpu_seconds();
        let per_unit = |s: f64| s * 1e6 / UNITS as f64;
        let (own, children) = (per_unit(own - own_before), per_unit(children - children_before));
        (rate, own + children, own, scores)
    };
    let all = available();
    let (one_plan, all_plan) = (Workers::InProcess, Workers::processes(exe, all));
    // Warm up, then alternate, best of three each. Units/s counts from the workers being
    // ready (a job starts them at admission, before the spend); CPU time includes starting
    // them (each compiles the module).
    let _ = run(&all_plan);
    let (mut one, mut many) = (0.0f64, 0.0f64);
    let (mut one_cpu, mut many_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let (a, a_cpu, _, s1) = run(&one_plan);
        let (b, b_cpu, b_own, sn) = run(&all_plan);
        one_cpu = one_cpu.min(a_cpu);
        many_cpu = many_cpu.min(b_cpu);
        assert_eq!(s1, sn, "scores differ between 1 and {all} workers");
        assert!(s1.iter().all(|s| s.is_ok()), "every unit scored");
        eprintln!(
            "run: 1 worker {a:.0} units/s ({a_cpu:.1} µs CPU/unit), {all} workers {b:.0} units/s ({b_cpu:.1} µs CPU/unit, {b_own:.1} of it the supervisor's)"
        );
        one = one.max(a);
        many = many.max(b);
    }
    let line = |name: String, value: f64, unit: &str, baseline: Option<&str>, ratio: Option<f64>| {
        let b = baseline.map_or("null".to_string(), |b| format!("\"{b}\""));
        let r = ratio.map_or("null".to_string(), |r| format!("{r:.3}"));
        println!(
            "{{\"bench\": \"{name}\", \"value\": {value:.1}, \"unit\": \"{unit}\", \"baseline\": {b}, \"ratio\": {r}}}"
        );
    };
    line("enclave_scoring_1_worker_units_per_s".into(), one, "units/s", None, None);
    line(
        format!("enclave_scoring_{all}_workers_units_per_s"),
        many,
        "units/s",
        Some("enclave_scoring_1_worker_units_per_s"),
        Some(many / one),
    );
    // CPU time per unit, the supervisor's and its workers' together: what the processes
    // cost beyond one worker (the pipe, the codec, a second compile), whatever the load.
    line("enclave_scoring_1_worker_cpu_us_per_unit".into(), one_cpu, "us", None, None);
    line(
        format!("enclave_scoring_{all}_workers_cpu_us_per_unit"),
        many_cpu,
        "us",
        Some("enclave_scoring_1_worker_cpu_us_per_unit"),
        Some(one_cpu / many_cpu),
    );
}

/// User and system CPU seconds of this process, and of its children that have been reaped
/// (fields 14 and 15, 16 and 17 of /proc/self/stat, in clock ticks of 1/100 s).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; the fields after it are numbers.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3, so field N is fields[N - 3].
    let ticks = |n: usize| fields[n - 3].parse::<u64>().expect("ticks") as f64 / 100.0;
    (ticks(14) + ticks(15), ticks(16) + ticks(17))
}
