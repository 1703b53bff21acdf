//! The fresh-instance cycle of `UnitRunner::score`, driven through wasmtime directly so
//! that each phase can be timed and the engine configuration varied. `config` mirrors
//! `engine_config` in sandbox/src/lib.rs (`keep_resident_limit_table_64k_pagemap` is what
//! it sets now, `head` what it set before units were kept resident) and `cycle` mirrors
//! `UnitRunner::score`; the host functions are a minimal stand-in for the ABI (enough for
//! echo and credit-lr).
//! Enabled by `CLEANROOM_BENCH_PROFILE=1`; a diagnostic, not a figure the policy uses.

use super::{median, out, Opts};
use crate::common::*;
use protocol::table::{ColumnData, RecordBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{
    Caller, Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Memory, PoolingAllocationConfig,
    Store, StoreLimits, StoreLimitsBuilder,
};

#[derive(Clone, Copy)]
struct Knobs {
    name: &'static str,
    keep_resident: usize,
    table_keep_resident: usize,
    pagemap: bool,
    cow: bool,
    fuel: bool,
    epoch: bool,
    table_elements: usize,
    decommit_batch: usize,
    max_memory: usize,
    /// false: no guard pages and no static reservation, so linear memory is bounds-checked
    /// in code rather than by virtual memory.
    guards: bool,
}

/// As sandbox/src/lib.rs configured the engine at the last commit (no memory kept
/// resident: a unit's pages are discarded with `madvise` and fault in again).
const HEAD: Knobs = Knobs {
    name: "head",
    keep_resident: 0,
    table_keep_resident: 0,
    pagemap: false,
    cow: true,
    fuel: true,
    epoch: true,
    table_elements: 1 << 16,
    decommit_batch: 1,
    max_memory: 2 << 20,
    guards: true,
};

/// The variations measured, for a memory limit of `limit` bytes. `keep_resident_limit`
/// keeps the whole memory resident and resets it by `memset`; `_pagemap` resets only the
/// pages written (found with Linux's `PAGEMAP_SCAN`).
fn knobs(limit: usize) -> Vec<Knobs> {
    let head = Knobs { max_memory: limit, ..HEAD };
    let kept = Knobs { name: "keep_resident_limit", keep_resident: limit, ..head };
    vec![
        head,
        kept,
        Knobs { name: "keep_resident_limit_pagemap", pagemap: true, ..kept },
        Knobs { name: "keep_resident_limit_table_64k_pagemap", pagemap: true, table_keep_resident: 64 << 10, ..kept },
        Knobs { name: "keep_resident_64k", keep_resident: 64 << 10, ..head },
        Knobs { name: "keep_resident_256k_pagemap", keep_resident: 256 << 10, pagemap: true, ..head },
        Knobs { name: "table_keep_resident_512k", table_keep_resident: 512 << 10, ..head },
        Knobs { name: "table_elements_4096", table_elements: 4096, ..head },
        Knobs { name: "decommit_batch_8", decommit_batch: 8, ..head },
        Knobs { name: "no_memory_init_cow", cow: false, ..head },
        Knobs { name: "keep_resident_limit_pagemap_no_cow", pagemap: true, cow: false, ..kept },
        Knobs {
            name: "keep_resident_limit_table_64k_pagemap_no_guards",
            pagemap: true,
            table_keep_resident: 64 << 10,
            guards: false,
            ..kept
        },
        // Not options for the enclave (fuel and the epoch are its limits); for scale only.
        Knobs { name: "no_fuel", fuel: false, ..kept },
        Knobs { name: "no_epoch", epoch: false, ..kept },
    ]
}

fn config(k: &Knobs) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(16)
        .total_memories(16)
        .total_tables(16)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(k.table_elements)
        .max_memory_size(k.max_memory)
        .linear_memory_keep_resident(k.keep_resident)
        .table_keep_resident(k.table_keep_resident)
        .pagemap_scan(if k.pagemap { Enabled::Auto } else { Enabled::No })
        .decommit_batch_size(k.decommit_batch);
    let mut c = Config::new();
    if !k.guards {
        c.memory_reservation(k.max_memory as u64)
            .memory_guard_size(0)
            .guard_before_linear_memory(false)
            .signals_based_traps(false);
    }
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(k.cow)
        .epoch_interruption(k.epoch)
        .consume_fuel(k.fuel)
        .max_wasm_stack(512 << 10)
        .cranelift_nan_canonicalization(false)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        .wasm_multi_memory(false)
        .wasm_memory64(false);
    c
}

struct Host {
    limits: StoreLimits,
    /// (bytes per row, staged little-endian bytes) per input.
    cols: Vec<(usize, Vec<u8>)>,
    rows: usize,
    out: Vec<f64>,
    memory: Option<Memory>,
    deadline: Instant,
}

fn read(mut c: Caller<'_, Host>, width: usize, col: i32, dst: i32, max: i32) -> wasmtime::Result<i32> {
    let memory = c.data().memory.ok_or_else(|| wasmtime::Error::msg("no memory"))?;
    let (mem, h) = memory.data_and_store_mut(&mut c);
    let (w, bytes) = h.cols.get(col as usize).ok_or_else(|| wasmtime::Error::msg("no column"))?;
    if *w != width {
        return Err(wasmtime::Error::msg("wrong kind"));
    }
    let n = (max.max(0) as usize).min(h.rows);
    let start = dst as u32 as usize;
    let to = mem.get_mut(start..start + n * width).ok_or_else(|| wasmtime::Error::msg("out of bounds"))?;
    to.copy_from_slice(&bytes[..n * width]);
    Ok(n as i32)
}

fn emit(mut c: Caller<'_, Host>, ptr: i32, n: i32) -> wasmtime::Result<()> {
    let memory = c.data().memory.ok_or_else(|| wasmtime::Error::msg("no memory"))?;
    let (mem, h) = memory.data_and_store_mut(&mut c);
    let start = ptr as u32 as usize;
    let from = mem.get(start..start + n.max(0) as usize * 8).ok_or_else(|| wasmtime::Error::msg("out of bounds"))?;
    h.out.extend(from.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))));
    Ok(())
}

fn linker(engine: &Engine) -> Linker<Host> {
    let mut l = Linker::new(engine);
    for (name, width) in [("read_f64", 8usize), ("read_i64", 8), ("read_codes", 4), ("read_tokens", 32)] {
        l.func_wrap("cleanroom", name, move |c: Caller<'_, Host>, col: i32, dst: i32, max: i32| {
            read(c, width, col, dst, max)
        })
        .expect("import");
    }
    l.func_wrap("cleanroom", "emit", emit).expect("import");
    l
}

fn stage(into: &mut Vec<(usize, Vec<u8>)>, unit: &RecordBatch, names: &[String]) {
    into.resize_with(names.len(), || (0, Vec::new()));
    for (name, (w, bytes)) in names.iter().zip(into.iter_mut()) {
        bytes.clear();
        match unit.column(name).expect("column") {
            ColumnData::F64(v) => {
                *w = 8;
                v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
            }
            ColumnData::I64(v) => {
                *w = 8;
                v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
            }
            ColumnData::Dict { codes, .. } => {
                *w = 4;
                codes.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
            }
            ColumnData::Token(v) => {
                *w = 32;
                v.iter().for_each(|x| bytes.extend_from_slice(x));
            }
        }
    }
}

/// Staging buffers and output vector, reused from one unit to the next.
type Spare = (Vec<(usize, Vec<u8>)>, Vec<f64>);

/// Phases of one fresh-instance unit, in order.
const PHASES: [&str; 7] = ["stage", "store_new", "store_setup", "instantiate", "exports", "call", "drop_reset"];

struct Probe {
    engine: Engine,
    pre: InstancePre<Host>,
    fuel: bool,
    epoch: bool,
    limit: usize,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn new(k: &Knobs, wasm: &[u8]) -> Probe {
        let engine = Engine::new(&config(k)).expect("engine");
        let module = wasmtime::Module::from_binary(&engine, wasm).expect("compile");
        let pre = linker(&engine).instantiate_pre(&module).expect("pre");
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    engine.increment_epoch();
                }
            })
        };
        Probe { engine, pre, fuel: k.fuel, epoch: k.epoch, limit: k.max_memory, stop, ticker: Some(ticker) }
    }

    /// Score every unit in a fresh instance; seconds per phase, summed over the units.
    fn cycle(&self, units: &[RecordBatch], names: &[String], scores: &mut Vec<f64>) -> [f64; 7] {
        let mut acc = [0f64; 7];
        let mut spare: Option<Spare> = None;
        let deadline = Instant::now() + Duration::from_secs(3600);
        for unit in units {
            let t0 = Instant::now();
            let (mut cols, out) = spare.take().unwrap_or_default();
            stage(&mut cols, unit, names);
            let t1 = Instant::now();
            let host = Host {
                limits: StoreLimitsBuilder::new()
                    .memory_size(self.limit)
                    .table_elements(1 << 16)
                    .instances(1)
                    .tables(1)
                    .memories(1)
                    .build(),
                cols,
                rows: unit.rows,
                out,
                memory: None,
                deadline,
            };
            let mut store = Store::new(&self.engine, host);
            let t2 = Instant::now();
            store.limiter(|h| &mut h.limits);
            if self.fuel {
                store.set_fuel(u64::MAX).expect("fuel");
            }
            if self.epoch {
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(|ctx| {
                    if Instant::now() >= ctx.data().deadline {
                        Err(wasmtime::Error::msg("deadline"))
                    } else {
                        Ok(wasmtime::UpdateDeadline::Continue(1))
                    }
                });
            }
            let t3 = Instant::now();
            let instance = self.pre.instantiate(&mut store).expect("instantiate");
            let t4 = Instant::now();
            let memory = instance.get_memory(&mut store, "memory").expect("memory");
            let f = instance.get_typed_func::<i32, i32>(&mut store, "cleanroom_process_batch").expect("export");
            store.data_mut().memory = Some(memory);
            let t5 = Instant::now();
            let status = f.call(&mut store, unit.rows as i32).expect("call");
            assert_eq!(status, 0);
            let t6 = Instant::now();
            let mut host = store.into_data();
            let t7 = Instant::now();
            scores.append(&mut host.out);
            spare = Some((host.cols, host.out));
            for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6), (t6, t7)].iter().enumerate()
            {
                acc[i] += (*b - *a).as_secs_f64();
            }
        }
        acc
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Cost of reading the clock, charged once per phase above.
fn clock_ns() -> f64 {
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Instant::now());
    }
    t.elapsed().as_secs_f64() * 1e9 / n as f64
}

/// Pages of linear memory one unit leaves different from a fresh instance, and the
/// memory size after it (stderr; what the reset has to undo).
fn footprint(name: &str, wasm: &[u8], unit: &RecordBatch, names: &[String]) {
    let probe = Probe::new(&HEAD, wasm);
    let snapshot = |run: bool| {
        let mut cols = Vec::new();
        stage(&mut cols, unit, names);
        let host = Host {
            limits: StoreLimitsBuilder::new().build(),
            cols,
            rows: unit.rows,
            out: Vec::new(),
            memory: None,
            deadline: Instant::now() + Duration::from_secs(60),
        };
        let mut store = Store::new(&probe.engine, host);
        store.set_fuel(u64::MAX).expect("fuel");
        store.set_epoch_deadline(u64::MAX);
        let instance = probe.pre.instantiate(&mut store).expect("instantiate");
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        store.data_mut().memory = Some(memory);
        if run {
            let f = instance.get_typed_func::<i32, i32>(&mut store, "cleanroom_process_batch").expect("export");
            f.call(&mut store, unit.rows as i32).expect("call");
        }
        memory.data(&store).to_vec()
    };
    let (before, after) = (snapshot(false), snapshot(true));
    let changed = after
        .chunks(4096)
        .enumerate()
        .filter(|(i, p)| before.get(i * 4096..(i + 1) * 4096).is_none_or(|q| q != *p))
        .count();
    eprintln!(
        "  {name}: memory {} KiB before, {} KiB after one unit; {changed} 4-KiB pages changed",
        before.len() >> 10,
        after.len() >> 10
    );
}

/// What a unit that dirtied its whole memory leaves to the units after it: per-unit time
/// of idle units (no page touched) after one unit that touched every page (stderr).
fn residue(o: &Opts) {
    let pages = (o.memory_limit / 65_536) as u32;
    let (_, body, _, _, all) = super::patterns(pages).pop().expect("page_touch");
    let wasm = super::spin_module(&body, pages, "");
    let x = vec!["x".to_string()];
    for k in knobs(o.memory_limit as usize).into_iter().take(3) {
        let probe = Probe::new(&k, &wasm);
        for touched in [0, all] {
            let (mut times, mut heavy) = (Vec::new(), Vec::new());
            for _ in 0..o.reps {
                let mut scores = Vec::new();
                let h = probe.cycle(&[super::one_unit(touched as f64)], &x, &mut scores);
                heavy.push(h.iter().sum::<f64>() * 1e6);
                let idle: Vec<RecordBatch> = (0..200).map(|_| super::one_unit(0.0)).collect();
                let acc = probe.cycle(&idle, &x, &mut scores);
                times.push(acc.iter().sum::<f64>() * 1e6 / 200.0);
            }
            eprintln!(
                "  residue {}: a unit touching {touched} pages {:.1} us, then idle units {:.2} us each",
                k.name,
                median(heavy),
                median(times)
            );
        }
    }
}

pub fn run(o: &Opts) {
    if std::env::var("CLEANROOM_PROBE_RESIDUE").is_ok() {
        return residue(o);
    }
    out(o, "probe_clock_read_ns", clock_ns(), "ns", None);
    let table = super::credit_table(&mut Rng::new(7), 20_000);
    let echo = wat::parse_str(include_str!("../../tests/hostile/00-echo.wat")).expect("echo");
    let income = vec!["income".to_string()];
    let lr = credit_lr_wasm();
    let inputs = credit_inputs();
    let modules: [(&str, &[u8], &[String]); 2] = [("echo", &echo, &income), ("credit_lr", &lr, &inputs)];
    for (name, wasm, names) in modules {
        let units = super::cut(&table, names, 1);
        footprint(name, wasm, &units[0], names);
        let mut base_total = 0.0;
        let only = std::env::var("CLEANROOM_PROBE_KNOB").ok();
        for k in knobs(o.memory_limit as usize) {
            if only.as_deref().is_some_and(|n| n != k.name && k.name != "head") {
                continue;
            }
            let probe = Probe::new(&k, wasm);
            let mut per_phase: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
            let mut totals = Vec::new();
            let mut want: Option<Vec<f64>> = None;
            for rep in 0..=o.reps {
                let mut scores = Vec::with_capacity(units.len());
                let acc = probe.cycle(&units, names, &mut scores);
                if let Some(w) = &want {
                    assert!(w.iter().zip(&scores).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
                want = Some(scores);
                if rep > 0 {
                    for (i, s) in acc.iter().enumerate() {
                        per_phase[i].push(s * 1e6 / units.len() as f64);
                    }
                    totals.push(acc.iter().sum::<f64>() * 1e6 / units.len() as f64);
                }
            }
            let total = median(totals);
            if name == "credit_lr" && matches!(k.name, "head" | "keep_resident_limit_table_64k_pagemap_no_guards") {
                // Compute speed under this configuration: one instance, 16,384-row batches.
                let batch = super::cut(&table, names, 16_384).swap_remove(0);
                let mut v = Vec::new();
                for _ in 0..o.reps {
                    let mut scores = Vec::new();
                    let acc = probe.cycle(std::slice::from_ref(&batch), names, &mut scores);
                    v.push(acc[5] * 1e9 / batch.rows as f64);
                }
                eprintln!("  credit_lr {}: {:.1} ns per row in a 16,384-row call", k.name, median(v));
            }
            if k.name == "head" {
                base_total = total;
                for (phase, v) in PHASES.iter().zip(per_phase) {
                    out(o, &format!("sandbox_unit_split_{name}_{phase}_us"), median(v), "us", None);
                }
                out(o, &format!("sandbox_unit_knob_{name}_head_us"), total, "us", None);
            } else {
                let base = format!("sandbox_unit_knob_{name}_head_us");
                out(
                    o,
                    &format!("sandbox_unit_knob_{name}_{}_us", k.name),
                    total,
                    "us",
                    Some((&base, base_total / total)),
                );
                // Where the change went: the reset at drop and the call (page faults).
                let drop_us = median(per_phase[6].clone());
                let call_us = median(per_phase[5].clone());
                let inst_us = median(per_phase[3].clone());
                eprintln!(
                    "  {name} {}: instantiate {inst_us:.3} us, call {call_us:.3} us, drop {drop_us:.3} us",
                    k.name
                );
            }
        }
    }
}
