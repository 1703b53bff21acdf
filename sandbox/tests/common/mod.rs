//! Helpers shared by the sandbox's integration tests.
#![allow(dead_code)]

use cleanroom_sandbox::{Sandbox, SandboxConfig};
use protocol::table::{Column, ColumnData, RecordBatch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const TIME_LIMIT: Duration = Duration::from_millis(300);
pub const MEMORY_LIMIT: u64 = 32 << 20;

pub fn config() -> SandboxConfig {
    SandboxConfig {
        memory_limit_bytes: MEMORY_LIMIT,
        time_limit: TIME_LIMIT,
        max_module_bytes: 8 << 20,
        max_wasm_stack: 256 << 10,
    }
}

pub fn sandbox() -> Sandbox {
    Sandbox::new(config()).expect("sandbox")
}

/// Deterministic xorshift64* generator, so test data needs no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A synthetic credit table: the five credit-lr inputs plus a token and a dictionary
/// column the model does not read, in a deliberately different order.
pub fn credit_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let mut income = Vec::with_capacity(rows);
    let mut util = Vec::with_capacity(rows);
    let mut late = Vec::with_capacity(rows);
    let mut tenure = Vec::with_capacity(rows);
    let mut decade = Vec::with_capacity(rows);
    let mut unit = Vec::with_capacity(rows);
    let mut zip = Vec::with_capacity(rows);
    for _ in 0..rows {
        income.push(15_000.0 + 200_000.0 * rng.unit() * rng.unit());
        util.push(rng.unit());
        late.push(rng.below(8) as i64);
        tenure.push(rng.below(360) as i64);
        decade.push(1940 + 10 * rng.below(7) as i64);
        let mut t = [0u8; 32];
        t[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        unit.push(t);
        zip.push(rng.below(3) as u32);
    }
    RecordBatch::new(vec![
        Column { name: "unit".into(), data: ColumnData::Token(unit) },
        Column { name: "tenure_months".into(), data: ColumnData::I64(tenure) },
        Column { name: "income".into(), data: ColumnData::F64(income) },
        Column {
            name: "zip3".into(),
            data: ColumnData::Dict { codes: zip, values: vec!["021".into(), "100".into(), "940".into()] },
        },
        Column { name: "birth_decade".into(), data: ColumnData::I64(decade) },
        Column { name: "late_payments".into(), data: ColumnData::I64(late) },
        Column { name: "utilization".into(), data: ColumnData::F64(util) },
    ])
    .expect("batch")
}

pub fn credit_inputs() -> Vec<String> {
    ["income", "utilization", "late_payments", "tenure_months", "birth_decade"].iter().map(|s| s.to_string()).collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The credit-lr module: `$CLEANROOM_CREDIT_LR_WASM` if set, else built now (cargo is
/// incremental, so this is quick when nothing changed) into a target directory of its own.
pub fn credit_lr_wasm() -> Vec<u8> {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| example_wasm("credit-lr")).clone()
}

/// The credit-gbdt module (`$CLEANROOM_CREDIT_GBDT_WASM` or built now).
pub fn credit_gbdt_wasm() -> Vec<u8> {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| example_wasm("credit-gbdt")).clone()
}

/// The credit-loss module (`$CLEANROOM_CREDIT_LOSS_WASM` or built now).
pub fn credit_loss_wasm() -> Vec<u8> {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(|| example_wasm("credit-loss")).clone()
}

/// Build the example `package` under model-sdk/examples for wasm32 (or read
/// `$CLEANROOM_<PACKAGE>_WASM`, e.g. `CLEANROOM_CREDIT_LR_WASM`). `CLEANROOM_WASM_RUSTFLAGS`
/// adds rustc flags (e.g. `-C target-feature=+simd128`) in a target directory of their own.
pub fn example_wasm(package: &str) -> Vec<u8> {
    let file = format!("{}.wasm", package.replace('-', "_"));
    let var = format!("CLEANROOM_{}_WASM", package.replace('-', "_").to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return std::fs::read(&p).unwrap_or_else(|e| panic!("{var}={p:?}: {e}"));
    }
    let root = workspace_root();
    let flags = std::env::var("CLEANROOM_WASM_RUSTFLAGS").unwrap_or_default();
    let dir =
        if flags.is_empty() { "sandbox-tests".to_string() } else { format!("sandbox-tests-{:016x}", fnv(&flags)) };
    let target_dir = root.join("target").join(dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "-p", package, "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--target-dir")
        .arg(&target_dir);
    if !flags.is_empty() {
        cmd.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", &flags);
    }
    let status = cmd.status();
    let built = target_dir.join("wasm32-unknown-unknown/release").join(&file);
    match status {
        Ok(s) if s.success() => std::fs::read(&built).unwrap_or_else(|e| panic!("read built {file}: {e}")),
        other => {
            // Fall back to the artifact the Makefile builds.
            let fallback = root.join("target/wasm32-unknown-unknown/release").join(&file);
            std::fs::read(&fallback).unwrap_or_else(|e| {
                panic!("building {package} for wasm32 failed ({other:?}) and {} is unreadable: {e}", fallback.display())
            })
        }
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
