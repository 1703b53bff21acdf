//! `cargo bench -p cleanroom-sandbox`: credit-lr and credit-gbdt rows per second in the
//! sandbox and natively (side by side, with the ratio), per-job instantiation time and
//! compile time per module, one JSON object per line.
//! `CLEANROOM_BENCH_ROWS` overrides the row count (default 1M rows × 20 columns),
//! `CLEANROOM_BENCH_CLOCK=cpu` times the calling thread's CPU time instead of wall time,
//! `CLEANROOM_BENCH_RUNS` the repetitions (best of 3), `CLEANROOM_BENCH_ONLY` picks one
//! model (`credit_lr` or `credit_gbdt`). `CLEANROOM_WASM_RUSTFLAGS` builds the modules
//! with extra rustc flags (e.g. `-C target-feature=+simd128`).
//!
//! Then per-unit isolation (`isolation/mod.rs`, `CLEANROOM_BENCH_ONLY=units` for that
//! alone): credit-lr with a fresh instance per unit against one instance per batch, the
//! isolation cost per unit, fuel per unit of the three examples, wall time per fuel.

#[path = "../tests/common/mod.rs"]
mod common;
mod isolation;

use cleanroom_sandbox::{Sandbox, SandboxConfig};
use common::*;
use credit_gbdt::CreditGbdt;
use credit_lr::CreditLr;
use model_sdk::Column as SdkColumn;
use protocol::table::{Column, ColumnData, RecordBatch};
use std::time::{Duration, Instant};

/// Rows per batch: `cleanroom prepare`'s default chunk size, i.e. what the enclave streams
/// (`CLEANROOM_BENCH_BATCH_ROWS` overrides).
const BATCH_ROWS: usize = 16_384;

/// What the throughput figures time: wall-clock time, or with `CLEANROOM_BENCH_CLOCK=cpu`
/// this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`; native and sandbox runs both run
/// entirely on the calling thread), which time-sharing with other work on a loaded
/// machine does not inflate (cache contention still does).
enum Clock {
    Wall(Instant),
    Cpu(Duration),
}

impl Clock {
    fn start() -> Self {
        if std::env::var("CLEANROOM_BENCH_CLOCK").is_ok_and(|c| c == "cpu") {
            Clock::Cpu(thread_cpu_time())
        } else {
            Clock::Wall(Instant::now())
        }
    }

    fn seconds(&self) -> f64 {
        match self {
            Clock::Wall(t) => t.elapsed().as_secs_f64(),
            Clock::Cpu(t) => (thread_cpu_time() - *t).as_secs_f64(),
        }
    }
}

#[allow(unsafe_code)] // one libc call with a valid out-pointer
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn line(bench: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>) {
    let (b, r) = match baseline {
        Some((name, base)) => (format!("\"{name}\""), format!("{}", value / base)),
        None => ("null".into(), "null".into()),
    };
    println!("{{\"bench\": \"{bench}\", \"value\": {value}, \"unit\": \"{unit}\", \"baseline\": {b}, \"ratio\": {r}}}");
}

/// `rows` rows in batches: the five credit inputs, a token, a dictionary and 13 more f64
/// columns the model does not read (20 columns in all).
fn batches(rows: usize) -> Vec<RecordBatch> {
    let mut rng = Rng::new(42);
    let mut out = Vec::new();
    let mut left = rows;
    let batch_rows: usize =
        std::env::var("CLEANROOM_BENCH_BATCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(BATCH_ROWS).max(1);
    while left > 0 {
        let n = left.min(batch_rows);
        let mut b = credit_batch(&mut rng, n);
        for i in 0..13 {
            b.columns.push(Column { name: format!("extra{i}"), data: ColumnData::F64(vec![i as f64; n]) });
        }
        out.push(RecordBatch::new(b.columns).expect("batch"));
        left -= n;
    }
    out
}

fn native<M: model_sdk::Model>(batch: &RecordBatch, model: &M) -> Vec<f64> {
    let cols: Vec<SdkColumn<'_>> = credit_inputs()
        .iter()
        .map(|name| match batch.column(name).expect("column") {
            ColumnData::F64(v) => SdkColumn::F64(v),
            ColumnData::I64(v) => SdkColumn::I64(v),
            _ => unreachable!(),
        })
        .collect();
    model_sdk::run_native(model, &cols).expect("native")
}

/// Rows per second natively and in the sandbox (best of `runs`), checked bit for bit on
/// the sum of the scores, plus compile and per-job instantiate time.
fn bench_model<M: model_sdk::Model>(name: &str, wasm: &[u8], model: &M, data: &[RecordBatch], runs: usize) {
    let rows: usize = data.iter().map(|b| b.rows).sum();
    let sb = Sandbox::new(SandboxConfig { time_limit: Duration::from_secs(600), ..SandboxConfig::default() })
        .expect("sandbox");
    let t = Instant::now();
    let module = sb.admit(wasm).expect("admit");
    line(&format!("{name}_compile"), t.elapsed().as_secs_f64() * 1e3, "ms", None);
    line(&format!("{name}_module_size"), wasm.len() as f64, "bytes", None);

    let inputs = credit_inputs();
    let n = 200;
    // One warm-up job so the first page faults of the instance allocator are not counted.
    drop(sb.start_job(&module, &inputs).expect("job"));
    let t = Instant::now();
    for _ in 0..n {
        drop(sb.start_job(&module, &inputs).expect("job"));
    }
    line(&format!("{name}_instantiate"), t.elapsed().as_secs_f64() * 1e6 / n as f64, "us", None);

    let mut best_native = f64::MAX;
    let mut best_sandbox = f64::MAX;
    let mut checksum = (0.0, 0.0);
    for _ in 0..runs {
        let t = Clock::start();
        checksum.0 = data.iter().map(|b| native(b, model).iter().sum::<f64>()).sum();
        best_native = best_native.min(t.seconds());

        let t = Clock::start();
        let mut job = sb.start_job(&module, &inputs).expect("job");
        checksum.1 = data.iter().map(|b| job.process_batch(b).expect("batch").iter().sum::<f64>()).sum();
        best_sandbox = best_sandbox.min(t.seconds());
    }
    assert_eq!(checksum.0.to_bits(), checksum.1.to_bits(), "{name}: sandbox and native disagree");
    let native_rps = rows as f64 / best_native;
    let sandbox_rps = rows as f64 / best_sandbox;
    let base = format!("{name}_native_rows_per_s");
    line(&base, native_rps, "rows/s", None);
    line(&format!("{name}_sandbox_rows_per_s"), sandbox_rps, "rows/s", Some((&base, native_rps)));
}

/// The ABI's own cost: a module that reads one f64 column and emits it unchanged, against
/// a native copy of the same column.
fn echo_overhead(data: &[RecordBatch], runs: usize) {
    let wasm = wat::parse_str(include_str!("../tests/hostile/00-echo.wat")).expect("echo module");
    let sb = Sandbox::new(SandboxConfig { time_limit: Duration::from_secs(600), ..SandboxConfig::default() })
        .expect("sandbox");
    let module = sb.admit(&wasm).expect("admit echo");
    let inputs = vec!["income".to_string()];
    let rows: usize = data.iter().map(|b| b.rows).sum();
    let (mut best_native, mut best_sandbox) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
        let t = Clock::start();
        let sum: f64 = data
            .iter()
            .map(|b| match b.column("income") {
                Some(ColumnData::F64(v)) => v.to_vec().iter().sum::<f64>(),
                _ => unreachable!(),
            })
            .sum();
        best_native = best_native.min(t.seconds());
        let t = Clock::start();
        let mut job = sb.start_job(&module, &inputs).expect("job");
        let got: f64 = data.iter().map(|b| job.process_batch(b).expect("batch").iter().sum::<f64>()).sum();
        best_sandbox = best_sandbox.min(t.seconds());
        assert_eq!(sum.to_bits(), got.to_bits());
    }
    let base = "echo_native_copy_rows_per_s";
    line(base, rows as f64 / best_native, "rows/s", None);
    line("echo_sandbox_rows_per_s", rows as f64 / best_sandbox, "rows/s", Some((base, rows as f64 / best_native)));
}

fn main() {
    let rows: usize = std::env::var("CLEANROOM_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let runs: usize = std::env::var("CLEANROOM_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let only = std::env::var("CLEANROOM_BENCH_ONLY").unwrap_or_default();
    let data = if only == "units" || only == "probe" { Vec::new() } else { batches(rows) };
    if only.is_empty() || only == "credit_lr" {
        bench_model("credit_lr", &credit_lr_wasm(), &CreditLr::default(), &data, runs);
    }
    if only.is_empty() || only == "credit_gbdt" {
        bench_model("credit_gbdt", &credit_gbdt_wasm(), &CreditGbdt, &data, runs);
    }
    if only.is_empty() || only == "echo" {
        echo_overhead(&data, runs);
    }
    if only.is_empty() {
        // Compile time of the third example (it reads a sixth column, not in this table).
        let wasm = credit_loss_wasm();
        let sb = Sandbox::new(SandboxConfig::default()).expect("sandbox");
        let t = Instant::now();
        sb.admit(&wasm).expect("admit credit-loss");
        line("credit_loss_compile", t.elapsed().as_secs_f64() * 1e3, "ms", None);
    }
    drop(data);
    if only.is_empty() || only == "units" || only == "probe" {
        isolation::run();
    }
}
