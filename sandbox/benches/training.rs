//! `cargo bench -p cleanroom-sandbox --bench training`: DP fine-tuning's speed (issue 15),
//! side by side in one run, for credit-lr-tune (6 parameters) and credit-mlp (57), one JSON
//! object per line. `ratio` is ours over the baseline's throughput (> 1 is better), so a
//! ratio of 0.05 means the sandbox does 5% of what the native twin does in the same time.
//!
//! - `train_<model>_<k>row_sandbox_gradients_per_s` against `..._native_gradients_per_s`:
//!   one unit's gradient in a fresh instance (`UnitRunner::gradient`, what the enclave runs)
//!   against the same crate built natively (`model_sdk::unit_gradient_native`), for units of
//!   one row (the demo policy's `max_rows_per_unit`) and of four. The sums of the two's
//!   gradients are compared bit for bit.
//! - `train_<model>_<k>row_sandbox_minus_native_us_per_unit`: the fresh-instance gradient's
//!   time minus the native one's. The sandbox has no long-lived training instance to compare
//!   with, so this is the isolation cost *plus* Wasm's slower execution of the gradient, an
//!   upper bound on isolation alone (for scoring, `--bench sandbox` separates the two).
//! - `train_<model>_dpsgd_sandbox_steps_per_s` against `..._native_steps_per_s`: DP-SGD steps
//!   through `release::training::train` (Poisson sampling, clipping, discrete Gaussian
//!   noise, Adam) over 20,000 one-row units at q = 0.01, about 200 gradients a step, with the
//!   native twin and then the sandbox as gradient oracle. Same seed, so the same units are
//!   sampled and the trained parameters must agree bit for bit.
//!
//! `CLEANROOM_BENCH_UNITS` sets the units (default 20,000), `CLEANROOM_BENCH_STEPS` the
//! DP-SGD steps (default 40), `CLEANROOM_BENCH_REPS` the repetitions (median, default 3).

#[path = "../tests/common/mod.rs"]
mod common;

use cleanroom_sandbox::{AdmittedModule, Sandbox, SandboxConfig};
use common::{credit_batch, credit_inputs, example_wasm, Rng};
use credit_lr_tune::CreditLrTune;
use credit_mlp::CreditMlp;
use model_sdk::{params_of, unit_gradient_native, Column, Trainable};
use protocol::policy::Decimal;
use protocol::table::{Column as TableColumn, ColumnData, RecordBatch};
use protocol::training::{Optimizer, TrainingLimits, TrainingSpec};
use release::training::{train, TrainedParams, TrainingPlan};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The default policy's memory limit per unit (`protocol::policy::defaults`).
const MEMORY_LIMIT: u64 = protocol::policy::defaults::MEMORY_LIMIT_BYTES;
/// Ample fuel: the amount given does not change the speed.
const FUEL: u64 = 1 << 40;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default).max(1)
}

/// One JSON line; `baseline` is `(name, ratio)` with the ratio already "> 1 is better".
fn line(bench: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>) {
    let (b, r) = match baseline {
        Some((name, ratio)) => (format!("\"{name}\""), format!("{ratio:.4}")),
        None => ("null".into(), "null".into()),
    };
    println!(
        "{{\"bench\": \"{bench}\", \"value\": {value:.4}, \"unit\": \"{unit}\", \"baseline\": {b}, \"ratio\": {r}}}"
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds per call of `f`, the median of `reps` timed passes.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// `units` units of `rows` rows each: the credit inputs plus a 0/1 `defaulted` label.
fn units(units: usize, rows: usize) -> Vec<RecordBatch> {
    let mut rng = Rng::new(15);
    (0..units)
        .map(|_| {
            let mut columns = credit_batch(&mut rng, rows).columns;
            let labels = (0..rows).map(|_| rng.below(2) as i64).collect();
            columns.push(TableColumn { name: "defaulted".into(), data: ColumnData::I64(labels) });
            RecordBatch::new(columns).expect("batch")
        })
        .collect()
}

/// A unit's five inputs and labels as the native twin takes them.
struct NativeUnit<'a> {
    columns: [Column<'a>; 5],
    labels: Vec<f64>,
}

fn f64s<'a>(b: &'a RecordBatch, name: &str) -> &'a [f64] {
    match b.column(name) {
        Some(ColumnData::F64(v)) => v,
        _ => panic!("{name}"),
    }
}

fn i64s<'a>(b: &'a RecordBatch, name: &str) -> &'a [i64] {
    match b.column(name) {
        Some(ColumnData::I64(v)) => v,
        _ => panic!("{name}"),
    }
}

fn native_units(units: &[RecordBatch]) -> Vec<NativeUnit<'_>> {
    units
        .iter()
        .map(|b| NativeUnit {
            columns: [
                Column::F64(f64s(b, "income")),
                Column::F64(f64s(b, "utilization")),
                Column::I64(i64s(b, "late_payments")),
                Column::I64(i64s(b, "tenure_months")),
                Column::I64(i64s(b, "birth_decade")),
            ],
            labels: i64s(b, "defaulted").iter().map(|&y| y as f64).collect(),
        })
        .collect()
}

/// The native twin's gradient and loss at `model`'s parameters, as the sandbox emits them.
fn native_gradient<M: Trainable>(model: &M, u: &NativeUnit<'_>) -> Vec<f64> {
    let (mut g, loss) = unit_gradient_native(model, &u.columns, &u.labels).expect("native gradient");
    g.push(loss);
    g
}

/// q = 0.01, σ = 1, C = 1, Adam: the shape of a realistic step.
fn plan(units: usize, steps: u32) -> TrainingPlan {
    let d = |v: &str| Decimal::literal(v);
    let spec = TrainingSpec {
        label: "defaulted".into(),
        sample_rate: d("0.01"),
        noise_multiplier: d("1"),
        clip_norm: d("1"),
        steps,
        expected_batch_size: (units / 100).max(1) as u64,
        optimizer: Optimizer::Adam { learning_rate: d("0.05"), beta1: d("0.9"), beta2: d("0.999"), epsilon: d("1e-8") },
        delta: d("0.000001"),
    };
    TrainingPlan::within(&spec, &TrainingLimits::default()).expect("plan")
}

fn bench_model<M: Trainable + Clone>(name: &str, package: &str, model: M, data: &[Vec<RecordBatch>], steps: u32) {
    let reps = env("CLEANROOM_BENCH_REPS", 3);
    let sb = Sandbox::new(SandboxConfig {
        time_limit: Duration::from_secs(3600),
        memory_limit_bytes: MEMORY_LIMIT,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let module: AdmittedModule = sb.admit(&example_wasm(package)).expect("admitted");
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut runner = sb.train_runner(&module, &credit_inputs(), "defaulted", FUEL, deadline).expect("runner");
    // Away from the pretrained start, where gradients are typical of training.
    let at: Vec<f64> = params_of(&model).iter().enumerate().map(|(i, p)| p + 0.05 * ((i % 5) as f64 - 2.0)).collect();
    let mut twin = model.clone();
    twin.set_params(&at);
    let at: Arc<[f64]> = at.into();

    for units in data {
        let rows = units[0].rows;
        let native = native_units(units);
        // The native twin is fast: time enough passes that the clock's resolution is noise.
        let passes = 20;
        let (mut sum_native, mut sum_sandbox) = (0.0, 0.0);
        let native_s = time(reps, || {
            for _ in 0..passes {
                sum_native = native.iter().map(|u| native_gradient(&twin, u).iter().sum::<f64>()).sum();
            }
        }) / passes as f64;
        let sandbox_s = time(reps, || {
            sum_sandbox = units.iter().map(|u| runner.gradient(u, &at).expect("gradient").iter().sum::<f64>()).sum();
        });
        assert_eq!(sum_native.to_bits(), sum_sandbox.to_bits(), "{name}: sandbox and native gradients differ");
        let n = units.len() as f64;
        let base = format!("train_{name}_{rows}row_native_gradients_per_s");
        line(&base, n / native_s, "gradients/s", None);
        line(
            &format!("train_{name}_{rows}row_sandbox_gradients_per_s"),
            n / sandbox_s,
            "gradients/s",
            Some((&base, native_s / sandbox_s)),
        );
        line(
            &format!("train_{name}_{rows}row_sandbox_minus_native_us_per_unit"),
            (sandbox_s - native_s) / n * 1e6,
            "us",
            None,
        );
    }

    // DP-SGD over the one-row units, each oracle with the same seed.
    let units = &data[0];
    let native = native_units(units);
    let plan = plan(units.len(), steps);
    let initial = params_of(&model);
    let (native_steps, by_native) = dpsgd(&plan, &initial, units.len(), reps, &mut |u, at| {
        twin.set_params(at);
        Some(native_gradient(&twin, &native[u]))
    });
    let (sandbox_steps, by_sandbox) =
        dpsgd(&plan, &initial, units.len(), reps, &mut |u, at| runner.gradient(&units[u], at).ok());
    assert_eq!(by_native, by_sandbox, "{name}: DP-SGD with the sandbox and with the native twin differ");
    let base = format!("train_{name}_dpsgd_native_steps_per_s");
    line(&base, native_steps, "steps/s", None);
    line(
        &format!("train_{name}_dpsgd_sandbox_steps_per_s"),
        sandbox_steps,
        "steps/s",
        Some((&base, sandbox_steps / native_steps)),
    );
}

/// What `train` asks for: unit `u`'s gradient and loss at the parameters given.
type Oracle<'a> = dyn FnMut(usize, &Arc<[f64]>) -> Option<Vec<f64>> + 'a;

/// Steps per second of `train` with `oracle` (median of `reps` runs, each from seed 15) and
/// the parameters it trained.
fn dpsgd(
    plan: &TrainingPlan,
    initial: &[f64],
    units: usize,
    reps: usize,
    oracle: &mut Oracle<'_>,
) -> (f64, TrainedParams) {
    let max = plan.max_sampled_units(units as u64);
    let mut trained = None;
    let s = time(reps, || {
        let mut rng = dp::seeded_rng_from_u64(15);
        trained = Some(train(plan, initial.to_vec(), units, max, oracle, &mut rng).expect("trained"));
    });
    (f64::from(plan.spec.steps) / s, trained.expect("ran"))
}

fn main() {
    let n = env("CLEANROOM_BENCH_UNITS", 20_000);
    let steps = env("CLEANROOM_BENCH_STEPS", 40) as u32;
    // 20,000 one-row units and 5,000 four-row units.
    let data = [units(n, 1), units(n / 4, 4)];
    bench_model("lr", "credit-lr-tune", CreditLrTune::default(), &data, steps);
    bench_model("mlp", "credit-mlp", CreditMlp::default(), &data, steps);
}
