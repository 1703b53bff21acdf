//! Per-unit isolation: what a fresh instance per privacy unit costs, how much fuel the
//! example models spend per unit, and how much wall time a unit of fuel can take.
//!
//! - `sandbox_per_unit_ms_per_1000_rows`: credit-lr over one-row units, each scored by
//!   [`UnitRunner::score`] in a fresh instance, against the same rows in 16,384-row batches
//!   with one instance per batch (`Sandbox::start_job` + `Job::process_batch`); the scores
//!   are checked bit for bit. The difference divided by the units is the isolation cost.
//! - `sandbox_fresh_instance_echo_us_per_unit`: the echo module (one f64 in, the same out)
//!   per one-row unit: the floor of a fresh instance through the public API.
//! - `fuel_*`: the least `fuel_per_unit` for which a unit scores, found by bisection through
//!   the public API (fuel is deterministic, so this is exact), over random and edge rows.
//! - `sandbox_ns_per_fuel_*`: wall time per unit of fuel of small modules that spend their
//!   fuel in one way each (a busy loop, host calls, fresh pages, subnormal floats, ...),
//!   and the wall time of one unit at the policy's default fuel against the policy's
//!   per-unit budget.
//! - `sandbox_ns_per_memory_page_*`: a unit writing every page of a memory the size of the
//!   limit against one writing none, in a warm slot and in a fresh pool.
//! - `sandbox_unit_split_*` / `sandbox_unit_knob_*` (`CLEANROOM_BENCH_PROFILE=1`, or
//!   `CLEANROOM_BENCH_ONLY=probe` for these alone): the same fresh-instance cycle driven
//!   through wasmtime directly, timed phase by phase, and under variations of the engine
//!   configuration (`probe.rs`).
//!
//! Per-unit runs use the default policy's memory limit, 2 MiB (`CLEANROOM_BENCH_MEMORY_LIMIT`
//! overrides). Figures are medians of `CLEANROOM_BENCH_UNIT_REPS` runs (default 5).
//! `CLEANROOM_BENCH_UNIT_ROWS` sets the rows of the per-unit comparison (default 100,000);
//! `CLEANROOM_BENCH_LOAD=n` keeps `n` spinning threads running meanwhile (names get a
//! `_loaded` suffix), to see a loaded two-core machine.

mod probe;

use crate::common::*;
use cleanroom_sandbox::{AdmittedModule, RunError, Sandbox, SandboxConfig, UnitRunner};
use protocol::table::{Column, ColumnData, RecordBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows per batch of the baseline: `cleanroom prepare`'s chunk size.
const BATCH_ROWS: usize = 16_384;
/// The defaults `cleanroom policy init` writes (`protocol::policy::defaults` and
/// `Timing::measured`), read from there so the bench follows them.
const POLICY_FUEL_PER_UNIT: u64 = protocol::policy::defaults::FUEL_PER_UNIT;
fn policy_timing() -> protocol::policy::Timing {
    protocol::policy::Timing::measured(protocol::policy::defaults::MAX_DEADLINE_MS)
}
/// The default memory limit per unit: the per-unit runs use it
/// (`CLEANROOM_BENCH_MEMORY_LIMIT` overrides); the per-batch baseline keeps the
/// `SandboxConfig` default, since a 16,384-row batch needs more.
const POLICY_MEMORY_LIMIT: u64 = protocol::policy::defaults::MEMORY_LIMIT_BYTES;
/// Ample fuel for the timing runs (the amount given does not change the speed).
const AMPLE_FUEL: u64 = 1 << 40;

pub struct Opts {
    pub memory_limit: u64,
    pub rows: usize,
    pub reps: usize,
    pub profile: bool,
    pub suffix: &'static str,
}

impl Opts {
    pub fn from_env() -> Opts {
        let num = |k: &str, d: usize| std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(d).max(1);
        let loaded = load_threads() > 0;
        Opts {
            memory_limit: num("CLEANROOM_BENCH_MEMORY_LIMIT", POLICY_MEMORY_LIMIT as usize) as u64,
            rows: num("CLEANROOM_BENCH_UNIT_ROWS", 100_000),
            reps: num("CLEANROOM_BENCH_UNIT_REPS", 5),
            profile: std::env::var("CLEANROOM_BENCH_PROFILE").is_ok_and(|v| v == "1"),
            suffix: if loaded { "_loaded" } else { "" },
        }
    }
}

/// `CLEANROOM_BENCH_LOAD`: spinning threads to run beside the measurements.
fn load_threads() -> usize {
    std::env::var("CLEANROOM_BENCH_LOAD").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// One JSON line; `baseline` is `(name, ratio)` with the ratio already "> 1 is better".
pub(crate) fn out(o: &Opts, bench: &str, value: f64, unit: &str, baseline: Option<(&str, f64)>) {
    let (b, r) = match baseline {
        Some((name, ratio)) => (format!("\"{name}{}\"", o.suffix), format!("{ratio:.4}")),
        None => ("null".into(), "null".into()),
    };
    println!(
        "{{\"bench\": \"{bench}{}\", \"value\": {value:.4}, \"unit\": \"{unit}\", \"baseline\": {b}, \"ratio\": {r}}}",
        o.suffix
    );
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The sandbox of the per-batch baseline: the default limits.
fn batch_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig { time_limit: Duration::from_secs(3600), ..SandboxConfig::default() }).expect("sandbox")
}

/// The sandbox of per-unit runs: the policy's memory limit.
fn sandbox(o: &Opts) -> Sandbox {
    Sandbox::new(SandboxConfig {
        time_limit: Duration::from_secs(3600),
        memory_limit_bytes: o.memory_limit,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

fn runner(sb: &Sandbox, m: &AdmittedModule, inputs: &[String], fuel: u64) -> UnitRunner {
    sb.unit_runner(m, inputs, fuel, Instant::now() + Duration::from_secs(3600)).expect("runner")
}

/// Spinning threads that load the machine until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---- data ---------------------------------------------------------------------------

fn slice(c: &ColumnData, r: std::ops::Range<usize>) -> ColumnData {
    match c {
        ColumnData::F64(v) => ColumnData::F64(v[r].to_vec()),
        ColumnData::I64(v) => ColumnData::I64(v[r].to_vec()),
        ColumnData::Dict { codes, values } => ColumnData::Dict { codes: codes[r].to_vec(), values: values.clone() },
        ColumnData::Token(v) => ColumnData::Token(v[r].to_vec()),
    }
}

/// `batch` cut into consecutive batches of `size` rows carrying only `names`.
fn cut(batch: &RecordBatch, names: &[String], size: usize) -> Vec<RecordBatch> {
    let cols: Vec<(&String, &ColumnData)> = names.iter().map(|n| (n, batch.column(n).expect("column"))).collect();
    (0..batch.rows)
        .step_by(size)
        .map(|start| {
            let r = start..(start + size).min(batch.rows);
            RecordBatch::new(
                cols.iter().map(|(n, c)| Column { name: n.to_string(), data: slice(c, r.clone()) }).collect(),
            )
            .expect("batch")
        })
        .collect()
}

/// The synthetic credit table plus a 0/1 `defaulted` label (credit-loss's sixth input).
fn credit_table(rng: &mut Rng, rows: usize) -> RecordBatch {
    let mut b = credit_batch(rng, rows);
    let y: Vec<i64> = (0..rows).map(|_| (rng.unit() < 0.2) as i64).collect();
    b.columns.push(Column { name: "defaulted".into(), data: ColumnData::I64(y) });
    RecordBatch::new(b.columns).expect("batch")
}

/// Rows whose values are drawn from the edges of each type (zero, negative, huge, NaN,
/// infinities, subnormal, i64 extremes), mixed with ordinary values.
fn edge_table(rng: &mut Rng, rows: usize) -> RecordBatch {
    let f = [0.0, -0.0, -1.0, 1e-310, 5e-324, 1e308, f64::MAX, f64::MIN, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
    let i = [0i64, -1, 1 << 40, i64::MAX, i64::MIN, -(1 << 40)];
    let mut b = credit_table(rng, rows);
    for c in &mut b.columns {
        match &mut c.data {
            ColumnData::F64(v) => v.iter_mut().for_each(|x| {
                if rng.below(3) > 0 {
                    *x = f[rng.below(f.len() as u64) as usize];
                }
            }),
            ColumnData::I64(v) if c.name != "defaulted" => v.iter_mut().for_each(|x| {
                if rng.below(3) > 0 {
                    *x = i[rng.below(i.len() as u64) as usize];
                }
            }),
            _ => {}
        }
    }
    b
}

// ---- 1 and 2: per unit against per batch, and the bare cost of a fresh instance -----

fn per_unit_vs_batch(o: &Opts) {
    let (sbb, sb) = (batch_sandbox(), sandbox(o));
    let batch_module = sbb.admit(&credit_lr_wasm()).expect("admit credit-lr");
    let module = sb.admit(&credit_lr_wasm()).expect("admit credit-lr");
    let inputs = credit_inputs();
    let table = credit_table(&mut Rng::new(7), o.rows);
    let batches = cut(&table, &inputs, BATCH_ROWS);
    let units1 = cut(&table, &inputs, 1);
    let units4 = cut(&table, &inputs, 4);
    let rows = o.rows as f64;

    let (mut tb, mut t1, mut t4) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=o.reps {
        // One instance per batch: the old path.
        let t = Instant::now();
        let mut got = Vec::with_capacity(o.rows);
        for b in &batches {
            let mut job = sbb.start_job(&batch_module, &inputs).expect("job");
            got.extend(job.process_batch(b).expect("batch"));
        }
        let batch_s = t.elapsed().as_secs_f64();
        // A fresh instance per unit.
        for (units, times) in [(&units1, &mut t1), (&units4, &mut t4)] {
            let mut r = runner(&sb, &module, &inputs, AMPLE_FUEL);
            let mut scores = Vec::with_capacity(o.rows);
            let t = Instant::now();
            for u in units {
                scores.extend(r.score(u).expect("unit"));
            }
            let s = t.elapsed().as_secs_f64();
            assert!(
                scores.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()) && scores.len() == got.len(),
                "per-unit and per-batch scores differ"
            );
            if rep > 0 {
                times.push(s);
            }
        }
        // The first round warms the pool's slots and the page cache; it is not counted.
        if rep > 0 {
            tb.push(batch_s);
        }
    }
    let per_k = |s: f64| s * 1e3 / (rows / 1000.0);
    let (b, u1, u4) = (per_k(median(tb.clone())), per_k(median(t1.clone())), per_k(median(t4.clone())));
    let base = "sandbox_one_instance_per_batch_ms_per_1000_rows";
    out(o, base, b, "ms", None);
    out(o, "sandbox_per_unit_ms_per_1000_rows", u1, "ms", Some((base, b / u1)));
    out(o, "sandbox_per_unit_4_rows_ms_per_1000_rows", u4, "ms", Some((base, b / u4)));
    // Paired per repetition, then the median: (per-unit time - per-batch time) / units.
    let cost1: Vec<f64> = t1.iter().zip(&tb).map(|(u, b)| (u - b) * 1e6 / units1.len() as f64).collect();
    let cost4: Vec<f64> = t4.iter().zip(&tb).map(|(u, b)| (u - b) * 1e6 / units4.len() as f64).collect();
    out(o, "sandbox_isolation_cost_per_unit_us", median(cost1), "us", None);
    out(o, "sandbox_isolation_cost_per_4_row_unit_us", median(cost4), "us", None);

    // The floor: the echo module, one f64 in and out, one row per unit.
    let echo =
        sb.admit(&wat::parse_str(include_str!("../../tests/hostile/00-echo.wat")).expect("echo")).expect("admit");
    let income = vec!["income".to_string()];
    let units = cut(&table, &income, 1);
    let mut times = Vec::new();
    for rep in 0..=o.reps {
        let mut r = runner(&sb, &echo, &income, AMPLE_FUEL);
        let t = Instant::now();
        for u in &units {
            std::hint::black_box(r.score(u).expect("echo unit"));
        }
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64() * 1e6 / units.len() as f64);
        }
    }
    out(o, "sandbox_fresh_instance_echo_us_per_unit", median(times), "us", None);
}

// ---- 3: fuel per unit and time per fuel ---------------------------------------------

/// Whether `unit` scores with `fuel`; any error but running out of fuel is a bug here.
fn scores_with(sb: &Sandbox, m: &AdmittedModule, inputs: &[String], unit: &RecordBatch, fuel: u64) -> bool {
    match runner(sb, m, inputs, fuel).score(unit) {
        Ok(_) => true,
        Err(RunError::OutOfFuel) => false,
        Err(e) => panic!("unit failed with {e} at fuel {fuel}"),
    }
}

/// The least fuel for which `unit` scores (fuel is deterministic, so this is exact).
fn least_fuel(sb: &Sandbox, m: &AdmittedModule, inputs: &[String], unit: &RecordBatch) -> u64 {
    let mut hi = 256u64;
    while !scores_with(sb, m, inputs, unit, hi) {
        hi = hi.checked_mul(2).expect("fuel overflow");
    }
    let mut lo = 0u64; // fails (a call costs fuel)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if scores_with(sb, m, inputs, unit, mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

fn fuel_per_unit(o: &Opts) {
    let sb = sandbox(o);
    let mut inputs_loss = credit_inputs();
    inputs_loss.push("defaulted".into());
    let models: [(&str, Vec<u8>, Vec<String>); 3] = [
        ("credit_lr", credit_lr_wasm(), credit_inputs()),
        ("credit_gbdt", credit_gbdt_wasm(), credit_inputs()),
        ("credit_loss", credit_loss_wasm(), inputs_loss),
    ];
    let random = credit_table(&mut Rng::new(11), 2000);
    let edge = edge_table(&mut Rng::new(13), 800);
    for (name, wasm, inputs) in &models {
        let m = sb.admit(wasm).expect("admit");
        for rows in [1usize, 4] {
            for (kind, table) in [("", &random), ("_edge", &edge)] {
                let units = cut(table, inputs, rows);
                let f: Vec<f64> = units.iter().map(|u| least_fuel(&sb, &m, inputs, u) as f64).collect();
                let max = f.iter().cloned().fold(0.0, f64::max);
                let n = format!("fuel_{name}_{rows}_row_unit{kind}");
                out(o, &format!("{n}_median"), median(f), "fuel", None);
                // ratio: how many times the policy's fuel covers the worst unit seen.
                out(
                    o,
                    &format!("{n}_max"),
                    max,
                    "fuel",
                    Some(("policy_fuel_per_unit", POLICY_FUEL_PER_UNIT as f64 / max)),
                );
            }
        }
    }
    out(o, "policy_fuel_per_unit", POLICY_FUEL_PER_UNIT as f64, "fuel", None);
}

/// A module with one f64 input `k` that runs `BODY` `k` times (`$k`, `$p`, `$x`, `$y`, `$d`
/// are its locals), then emits its input and returns 0.
fn spin_module(body: &str, pages: u32, extra: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") {pages})
  {extra}
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $k i64) (local $p i32) (local $x f64) (local $y i64) (local $d i64)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (i32.const 1)))
    (local.set $k (i64.trunc_sat_f64_s (f64.load (i32.const 0))))
    (local.set $p (i32.const 65536))
    (local.set $x (f64.const 1e-310))
    (local.set $y (i64.const 0x7fffffffffffffff))
    ;; 1, but not a constant the compiler could fold (k < 2^62)
    (local.set $d (i64.add (i64.shr_u (local.get $k) (i64.const 62)) (i64.const 1)))
    (block $done
      (loop $l
        (br_if $done (i64.le_s (local.get $k) (i64.const 0)))
        (local.set $k (i64.sub (local.get $k) (i64.const 1)))
        {body}
        (br $l)))
    (f64.store (i32.const 8) (local.get $x))
    (i64.store (i32.const 16) (local.get $y))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#
    );
    wat::parse_str(&src).expect("spin module")
}

/// The ways of spending fuel that are measured: name, loop body, initial pages, extra
/// definitions, iterations of the long run. `pages` is the memory limit in 64 KiB pages.
fn patterns(pages: u32) -> Vec<(&'static str, String, u32, &'static str, u64)> {
    let sqrt8 = format!("(local.set $x {}(local.get $x){})", "(f64.sqrt ".repeat(8), ")".repeat(8));
    let div8 = format!("(local.set $y {}(local.get $y){})", "(i64.div_u ".repeat(8), " (local.get $d))".repeat(8));
    // Subnormal in and out: x stays at 1e-310 (halved, then doubled), every product is
    // subnormal.
    let subnormal = "(local.set $x (f64.mul (f64.mul (f64.mul (f64.mul (local.get $x) (f64.const 0.5)) \
                     (f64.const 2)) (f64.const 0.5)) (f64.const 2)))"
        .to_string();
    // One store per 4 KiB page of a memory as large as the limit allows, from 64 KiB up,
    // wrapping around (so it runs until its fuel is spent); the long run is one pass.
    let bytes = pages as u64 * 65_536;
    let touch = format!(
        "(i32.store8 (local.get $p) (i32.const 1)) \
         (local.set $p (i32.or (i32.const 65536) (i32.and (i32.add (local.get $p) (i32.const 4096)) (i32.const {}))))",
        bytes - 1
    );
    vec![
        ("busy_loop", String::new(), 2, "", 50_000_000),
        ("f64_sqrt", sqrt8, 2, "", 5_000_000),
        ("i64_div", div8, 2, "", 5_000_000),
        ("subnormal_f64_mul", subnormal, 2, "", 5_000_000),
        ("call", "(call $nop)".into(), 2, "(func $nop)", 20_000_000),
        ("host_call", "(drop (call $read_f64 (i32.const 0) (i32.const 64) (i32.const 1)))".into(), 2, "", 5_000_000),
        ("page_touch", touch, pages, "", (bytes - 65_536) / 4096),
    ]
}

fn one_unit(k: f64) -> RecordBatch {
    RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(vec![k]) }]).expect("unit")
}

/// Median wall time of one unit (fresh instance included) with `fuel`, in a slot the
/// previous repetition used (`warm`) or, when not `warm`, in a fresh sandbox every time.
fn unit_time(o: &Opts, wasm: &[u8], unit: &RecordBatch, fuel: u64, ok: bool, warm: bool) -> f64 {
    let x = vec!["x".to_string()];
    let mut times = Vec::new();
    let mut kept = None;
    for rep in 0..=o.reps {
        if !warm || kept.is_none() {
            let sb = sandbox(o);
            let m = sb.admit(wasm).expect("admit");
            kept = Some((runner(&sb, &m, &x, fuel), sb));
        }
        let Some((r, _)) = kept.as_mut() else { unreachable!() };
        let t = Instant::now();
        let res = r.score(unit);
        let s = t.elapsed().as_secs_f64();
        assert_eq!(res.is_ok(), ok, "{res:?}");
        if rep > 0 || !warm {
            times.push(s);
        }
    }
    median(times)
}

fn time_per_fuel(o: &Opts) {
    let sb = sandbox(o);
    let x = vec!["x".to_string()];
    let pages = (o.memory_limit / 65_536) as u32;
    let t = policy_timing();
    let budget_us = (POLICY_FUEL_PER_UNIT * t.ns_per_fuel + t.unit_overhead_ns) as f64 / 1e3;
    out(o, "policy_unit_budget_us", budget_us, "us", None);
    for (name, body, pages, extra, long) in patterns(pages) {
        let wasm = spin_module(&body, pages, extra);
        let m = sb.admit(&wasm).expect("admit spin module");
        // fuel(k) = a + b k, exactly: measured at two small k, checked at the long run.
        let (k1, k2) = (100u64, 300u64);
        let f1 = least_fuel(&sb, &m, &x, &one_unit(k1 as f64));
        let f2 = least_fuel(&sb, &m, &x, &one_unit(k2 as f64));
        let b = (f2 - f1) / (k2 - k1);
        let a = f1 - b * k1;
        assert_eq!(f2, a + b * k2, "{name}: fuel is not linear in the iterations");
        let fuel = a + b * long;
        let unit = one_unit(long as f64);
        assert!(scores_with(&sb, &m, &x, &unit, fuel) && !scores_with(&sb, &m, &x, &unit, fuel - 1), "{name}");
        let t = unit_time(o, &wasm, &unit, fuel, true, true);
        out(o, &format!("sandbox_ns_per_fuel_{name}"), t * 1e9 / fuel as f64, "ns", None);
        // One unit that spends the policy's whole fuel this way, then runs out: in a warm
        // slot, and for the memory pattern also in a slot never used before.
        let warmth: &[(bool, &str)] =
            if name == "page_touch" { &[(true, ""), (false, "_cold")] } else { &[(true, "")] };
        for &(warm, tag) in warmth {
            let t = unit_time(o, &wasm, &one_unit(1e12), POLICY_FUEL_PER_UNIT, false, warm);
            out(
                o,
                &format!("sandbox_unit_us_at_policy_fuel_{name}{tag}"),
                t * 1e6,
                "us",
                Some(("policy_unit_budget_us", budget_us / (t * 1e6))),
            );
        }
    }
}

/// What a unit's memory costs beyond fuel, with a memory as large as the limit: a unit
/// that stores once into every 4 KiB page, and one that touches none; warm (the slot was
/// used by the previous unit) and cold (the first unit of a fresh pool, whose pages were
/// never resident). Per 64 KiB page: warm, the difference; cold, the whole unit (all of a
/// cold unit's extra cost is its memory).
fn memory_page_cost(o: &Opts) {
    let pages = (o.memory_limit / 65_536) as u32;
    let (_, body, _, _, long) = patterns(pages).pop().expect("page_touch");
    let wasm = spin_module(&body, pages, "");
    for (warm, tag) in [(true, "warm"), (false, "cold")] {
        let full = unit_time(o, &wasm, &one_unit(long as f64), AMPLE_FUEL, true, warm);
        let idle = unit_time(o, &wasm, &one_unit(0.0), AMPLE_FUEL, true, warm);
        out(o, &format!("sandbox_unit_us_whole_memory_{tag}"), full * 1e6, "us", None);
        out(o, &format!("sandbox_unit_us_idle_memory_{tag}"), idle * 1e6, "us", None);
        let per_page = if warm { (full - idle).max(0.0) } else { full } * 1e9 / pages as f64;
        out(o, &format!("sandbox_ns_per_memory_page_{tag}"), per_page, "ns", None);
    }
    out(o, "sandbox_unit_memory_limit_pages", pages as f64, "pages", None);
}

/// A module whose instantiation is the work: a table of the largest admitted size, filled
/// by an element segment (no fuel is spent on it).
fn heavy_instantiation(o: &Opts) {
    let t = policy_timing();
    let budget_us = (POLICY_FUEL_PER_UNIT * t.ns_per_fuel + t.unit_overhead_ns) as f64 / 1e3;
    let n = cleanroom_sandbox::MAX_TABLE_ELEMENTS;
    let src = format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (table {n} funcref)
  (elem (i32.const 0) func {})
  (func $f)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#,
        " $f".repeat(n as usize)
    );
    let wasm = wat::parse_str(&src).expect("module");
    let t = unit_time(o, &wasm, &one_unit(1.0), POLICY_FUEL_PER_UNIT, true, true);
    out(
        o,
        "sandbox_unit_us_instantiate_full_table",
        t * 1e6,
        "us",
        Some(("policy_unit_budget_us", budget_us / (t * 1e6))),
    );
}

/// The engine's memory reset keeps units apart: each unit first checks that every byte of
/// its memory above 64 KiB is zero (as in a fresh instance), then writes all of them. A
/// unit that saw anything of the one before it emits 1. Panics if any does.
fn isolation_check(o: &Opts) {
    let pages = (o.memory_limit / 65_536) as u32;
    let src = format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") {pages})
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $p i32) (local $seen i64)
    (local.set $p (i32.const 65536))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $p) (i32.const {end})))
        (local.set $seen (i64.or (local.get $seen) (i64.load (local.get $p))))
        (i64.store (local.get $p) (i64.const -1))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br $l)))
    (f64.store (i32.const 0) (f64.convert_i32_u (i64.ne (local.get $seen) (i64.const 0))))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#,
        end = o.memory_limit
    );
    let sb = sandbox(o);
    let m = sb.admit(&wat::parse_str(&src).expect("module")).expect("admit");
    let mut r = runner(&sb, &m, &["x".to_string()], AMPLE_FUEL);
    for i in 0..20 {
        let seen = r.score(&one_unit(0.0)).expect("unit");
        assert_eq!(seen, vec![0.0], "unit {i} saw memory written by the unit before it");
    }
    eprintln!("isolation check: 20 units, each saw a pristine {} KiB memory", o.memory_limit >> 10);
}

pub fn run() {
    let o = Opts::from_env();
    let load = load_threads();
    let _load = (load > 0).then(|| Load::start(load));
    if std::env::var("CLEANROOM_BENCH_ONLY").is_ok_and(|v| v == "probe") {
        return probe::run(&o);
    }
    isolation_check(&o);
    per_unit_vs_batch(&o);
    fuel_per_unit(&o);
    time_per_fuel(&o);
    memory_page_cost(&o);
    heavy_instantiation(&o);
    if o.profile {
        probe::run(&o);
    }
}
