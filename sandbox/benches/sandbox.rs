//! `cargo bench -p cleanroom-sandbox`: credit-lr rows per second in the sandbox and
//! natively, per-job instantiation time and compile time, one JSON object per line.
//! `CLEANROOM_BENCH_ROWS` overrides the row count (default 1M rows × 20 columns).

#[path = "../tests/common/mod.rs"]
mod common;

use cleanroom_sandbox::{Sandbox, SandboxConfig};
use common::*;
use credit_lr::CreditLr;
use model_sdk::Column as SdkColumn;
use protocol::table::{Column, ColumnData, RecordBatch};
use std::time::{Duration, Instant};

const BATCH_ROWS: usize = 65_536;

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
    while left > 0 {
        let n = left.min(BATCH_ROWS);
        let mut b = credit_batch(&mut rng, n);
        for i in 0..13 {
            b.columns.push(Column { name: format!("extra{i}"), data: ColumnData::F64(vec![i as f64; n]) });
        }
        out.push(RecordBatch::new(b.columns).expect("batch"));
        left -= n;
    }
    out
}

fn native(batch: &RecordBatch, model: &CreditLr) -> Vec<f64> {
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

fn main() {
    let rows: usize = std::env::var("CLEANROOM_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let data = batches(rows);
    let wasm = credit_lr_wasm();
    let sb = Sandbox::new(SandboxConfig { time_limit: Duration::from_secs(600), ..SandboxConfig::default() })
        .expect("sandbox");

    let t = Instant::now();
    let module = sb.admit(&wasm).expect("admit");
    line("credit_lr_compile", t.elapsed().as_secs_f64() * 1e3, "ms", None);

    let inputs = credit_inputs();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        drop(sb.start_job(&module, &inputs).expect("job"));
    }
    line("credit_lr_instantiate", t.elapsed().as_secs_f64() * 1e6 / n as f64, "us", None);

    let model = CreditLr::default();
    let mut best_native = f64::MAX;
    let mut best_sandbox = f64::MAX;
    let mut checksum = (0.0, 0.0);
    for _ in 0..3 {
        let t = Instant::now();
        checksum.0 = data.iter().map(|b| native(b, &model).iter().sum::<f64>()).sum();
        best_native = best_native.min(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut job = sb.start_job(&module, &inputs).expect("job");
        checksum.1 = data.iter().map(|b| job.process_batch(b).expect("batch").iter().sum::<f64>()).sum();
        best_sandbox = best_sandbox.min(t.elapsed().as_secs_f64());
    }
    assert_eq!(checksum.0.to_bits(), checksum.1.to_bits(), "sandbox and native disagree");
    let native_rps = rows as f64 / best_native;
    let sandbox_rps = rows as f64 / best_sandbox;
    line("credit_lr_native_rows_per_s", native_rps, "rows/s", None);
    line("credit_lr_sandbox_rows_per_s", sandbox_rps, "rows/s", Some(("credit_lr_native_rows_per_s", native_rps)));
}
