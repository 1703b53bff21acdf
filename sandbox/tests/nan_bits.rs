//! What NaN bits can and cannot do now that Cranelift does not canonicalize them (see
//! "NaN bits" in docs/wasm-abi.md for the argument).
//!
//! - A NaN the module emits, whatever its sign and payload, leaves `emit` as the one
//!   canonical NaN (and the release then makes the unit absent: `release` refuses a
//!   non-finite output).
//! - A module can turn the bits of a NaN into a finite score. Those bits come from the
//!   unit's own values (which the module reads anyway) or from the processor's default
//!   NaN, a constant of the architecture; the score is then the same bits on every run
//!   and every instance on one machine, which is what the per-worker equality, the
//!   neighbouring audit and the owner's local check rely on.
//! - Across architectures it is not the same: x86-64 makes a negative default NaN,
//!   AArch64 a positive one. That is a difference in reproducibility, not a channel: it
//!   depends on no one's data.

mod common;

use cleanroom_sandbox::{Sandbox, UnitRunner};
use common::*;
use protocol::table::{Column, ColumnData, RecordBatch};
use std::time::{Duration, Instant};

/// For each row `x`, computes `y = (x - x) / (x - x)`: the processor's default NaN for a
/// finite or infinite `x` (`0/0` or `NaN/NaN` from `inf - inf`), and `x` quieted, its
/// payload kept, for a NaN `x`. Emits `y` itself (output `y`), then its high and low 32
/// bits as finite numbers (outputs `hi`, `lo`).
const NAN_BITS: &str = r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 4)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $i i32) (local $x f64) (local $d f64) (local $y f64) (local $b i64) (local $o i32)
    (if (i32.gt_u (local.get $rows) (i32.const 4096)) (then (return (i32.const 9))))
    ;; inputs at 0, outputs (three per row) at 65536
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $x (f64.load (i32.shl (local.get $i) (i32.const 3))))
        (local.set $d (f64.sub (local.get $x) (local.get $x)))
        (local.set $y (f64.div (local.get $d) (local.get $d)))
        (local.set $b (i64.reinterpret_f64 (local.get $y)))
        (local.set $o (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 24))))
        (f64.store (local.get $o) (local.get $y))
        (f64.store offset=8 (local.get $o) (f64.convert_i64_u (i64.shr_u (local.get $b) (i64.const 32))))
        (f64.store offset=16 (local.get $o)
          (f64.convert_i64_u (i64.and (local.get $b) (i64.const 0xffffffff))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $emit (i32.const 65536) (i32.mul (local.get $rows) (i32.const 3)))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\03\00\00\00\01\00\00\00\00\01y\02hi\02lo"))"#;

fn unit(xs: &[f64]) -> RecordBatch {
    RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(xs.to_vec()) }]).unwrap()
}

fn runner(sb: &Sandbox) -> UnitRunner {
    let m = sb.admit(&wat::parse_str(NAN_BITS).expect("valid WAT")).expect("admit");
    assert_eq!(m.outputs_per_row(), 3);
    sb.unit_runner(&m, &["x".to_string()], 1_000_000, Instant::now() + Duration::from_secs(60)).unwrap()
}

/// Inputs: finite values, infinities, and NaNs of both signs with payloads.
fn inputs() -> Vec<f64> {
    let mut rng = Rng::new(18);
    let mut xs = vec![0.0, -0.0, 1.5, -2.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN];
    for _ in 0..24 {
        let payload = rng.next_u64() & 0x0007_ffff_ffff_ffff;
        let sign = rng.next_u64() & (1 << 63);
        // Quiet NaNs only: a signalling NaN may be quieted on the way in and out of a
        // register, which is a separate matter.
        xs.push(f64::from_bits(sign | 0x7ff8_0000_0000_0000 | payload));
    }
    xs
}

fn split(v: &[f64]) -> Vec<(u64, u64, u64)> {
    v.chunks_exact(3).map(|c| (c[0].to_bits(), c[1] as u64, c[2] as u64)).collect()
}

#[test]
fn an_emitted_nan_is_the_canonical_nan_whatever_its_bits() {
    let sb = sandbox();
    let mut r = runner(&sb);
    for x in inputs() {
        let out = split(&r.score(&unit(&[x])).expect("scores"));
        let (y, hi, lo) = out[0];
        // The module computed a NaN with some sign and payload (`hi`, `lo` say which) ...
        let computed = f64::from_bits((hi << 32) | lo);
        assert!(computed.is_nan(), "x = {x:?}: computed {computed:?}");
        // ... and what left `emit` is the canonical one.
        assert_eq!(y, f64::NAN.to_bits(), "x = {x:?}: emitted {y:#x}, computed {:#x}", computed.to_bits());
    }
}

#[test]
fn nan_bits_are_the_same_on_every_run_on_one_machine() {
    let xs = inputs();
    let batch = unit(&xs);
    // Two engines, each compiling the module itself; every unit a fresh instance.
    let (a, b) = (sandbox(), sandbox());
    let (mut ra, mut rb) = (runner(&a), runner(&b));
    let whole = ra.score(&batch).expect("scores");
    for _ in 0..3 {
        assert_eq!(
            whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            rb.score(&batch).expect("scores").iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    // Row by row, in separate units, the same bits again: nothing of one unit's NaNs
    // reaches another.
    for (i, &x) in xs.iter().enumerate() {
        let one = ra.score(&unit(&[x])).expect("scores");
        assert_eq!(
            one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            whole[3 * i..3 * i + 3].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "x = {x:?}"
        );
    }
}

#[test]
fn what_a_module_sees_of_nan_bits() {
    let xs = inputs();
    let out = split(&runner(&sandbox()).score(&unit(&xs)).expect("scores"));
    for (&x, &(_, hi, lo)) in xs.iter().zip(&out) {
        let seen = (hi << 32) | lo;
        if x.is_nan() {
            // A NaN of the unit's own data keeps its sign and payload: nothing the module
            // could not read with `i64.reinterpret_f64` anyway.
            assert_eq!(seen, x.to_bits(), "x = {x:?}");
        } else {
            // Otherwise, the architecture's default NaN: a constant, the same for every
            // unit. Cranelift canonicalizing NaNs would make it 0x7ff8... everywhere.
            #[cfg(target_arch = "x86_64")]
            assert_eq!(seen, 0xfff8_0000_0000_0000, "x = {x:?}");
            #[cfg(target_arch = "aarch64")]
            assert_eq!(seen, 0x7ff8_0000_0000_0000, "x = {x:?}");
            assert!(f64::from_bits(seen).is_nan());
        }
    }
}
