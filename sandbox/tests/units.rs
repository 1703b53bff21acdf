//! Per-unit isolation with [`UnitRunner`]: every unit runs in a fresh instance, with its
//! own fuel, and a fault on one unit (a trap, fuel exhaustion, a bad emission, a missing
//! column) makes that unit fail without touching the runner or the units after it.

mod common;

use cleanroom_sandbox::{RunError, Sandbox, SandboxConfig, UnitRunner};
use common::*;
use protocol::table::{Column, ColumnData, RecordBatch, Validity};
use std::time::{Duration, Instant};

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid WAT")
}

/// Reads its f64 input `x` (at most 1024 rows). Per call it increments a global and a
/// counter in linear memory, so any state kept between calls shows in the output. Then,
/// by the first row's value `v`:
/// - `v < 0`: traps (`unreachable`);
/// - `v == 0.5`: emits one value too few;
/// - otherwise spins `trunc(v)` iterations (so a large `v` runs out of fuel) and emits,
///   for every row, `1000 * global + memory counter`.
const STATEFUL: &str = r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $i i32) (local $v f64) (local $spin i64) (local $out f64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (if (i32.gt_u (local.get $rows) (i32.const 1024)) (then (return (i32.const 9))))
    ;; inputs at 8, outputs at 32768
    (drop (call $read_f64 (i32.const 0) (i32.const 8) (local.get $rows)))
    (if (i32.gt_u (local.get $rows) (i32.const 0))
      (then
        (local.set $v (f64.load (i32.const 8)))
        (if (f64.lt (local.get $v) (f64.const 0)) (then (unreachable)))
        (if (f64.eq (local.get $v) (f64.const 0.5))
          (then
            (call $emit (i32.const 32768) (i32.sub (local.get $rows) (i32.const 1)))
            (return (i32.const 0))))
        (local.set $spin (i64.trunc_sat_f64_s (local.get $v)))
        (block $spun
          (loop $l
            (br_if $spun (i64.le_s (local.get $spin) (i64.const 0)))
            (local.set $spin (i64.sub (local.get $spin) (i64.const 1)))
            (br $l)))))
    (local.set $out
      (f64.add
        (f64.mul (f64.convert_i32_u (global.get $calls)) (f64.const 1000))
        (f64.convert_i32_u (i32.load (i32.const 0)))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (f64.store (i32.add (i32.const 32768) (i32.shl (local.get $i) (i32.const 3))) (local.get $out))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $emit (i32.const 32768) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#;

/// Fuel for one unit: ample for a few rows and a short spin, far too little for 10⁹
/// iterations.
const FUEL: u64 = 200_000;

fn unit(xs: &[f64]) -> RecordBatch {
    RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(xs.to_vec()) }]).unwrap()
}

fn runner(sb: &Sandbox, fuel: u64) -> UnitRunner {
    let m = sb.admit(&wat(STATEFUL)).unwrap();
    sb.unit_runner(&m, &["x".to_string()], fuel, Instant::now() + Duration::from_secs(60)).unwrap()
}

/// What a fresh instance emits on its first call: one call, counter one.
const FRESH: f64 = 1001.0;

#[test]
fn state_does_not_cross_units() {
    let sb = sandbox();
    // The module is stateful: in one batch job its counters climb call after call.
    let m = sb.admit(&wat(STATEFUL)).unwrap();
    let mut job = sb.start_job(&m, &["x".to_string()]).unwrap();
    assert_eq!(job.process_batch(&unit(&[1.0])).unwrap(), vec![1001.0]);
    assert_eq!(job.process_batch(&unit(&[1.0])).unwrap(), vec![2002.0]);
    // Per unit, every call sees a fresh instance: the global and the memory start over.
    let mut r = runner(&sb, FUEL);
    for rows in [1usize, 3, 1, 7, 2] {
        assert_eq!(r.score(&unit(&vec![2.0; rows])).unwrap(), vec![FRESH; rows], "unit of {rows} rows");
    }
    // Two runners over the same module do not share anything either.
    let mut other = runner(&sb, FUEL);
    assert_eq!(other.score(&unit(&[1.0, 1.0])).unwrap(), vec![FRESH; 2]);
    assert_eq!(r.score(&unit(&[1.0])).unwrap(), vec![FRESH]);
}

#[test]
fn fuel_exhaustion_fails_one_unit_and_the_next_still_scores() {
    let sb = sandbox();
    let mut r = runner(&sb, FUEL);
    assert_eq!(r.score(&unit(&[10.0])).unwrap(), vec![FRESH]);
    assert_eq!(r.score(&unit(&[1e9, 1.0])), Err(RunError::OutOfFuel));
    // The next unit gets its own full allowance, not what the previous one left.
    assert_eq!(r.score(&unit(&[10.0, 3.0])).unwrap(), vec![FRESH; 2]);
    assert_eq!(r.score(&unit(&[1e9])), Err(RunError::OutOfFuel));
    assert_eq!(r.score(&unit(&[10.0])).unwrap(), vec![FRESH]);
}

#[test]
fn fuel_is_per_unit_not_per_runner() {
    let sb = sandbox();
    // Each unit spins 10,000 iterations: a good part of its fuel, so fuel shared across
    // units would run out within a few of them.
    let mut r = runner(&sb, FUEL);
    for _ in 0..50 {
        assert_eq!(r.score(&unit(&[10_000.0])).unwrap(), vec![FRESH]);
    }
    // The same spin with a tenth of the fuel fails deterministically, every time.
    let mut poor = runner(&sb, FUEL / 10);
    for _ in 0..3 {
        assert_eq!(poor.score(&unit(&[10_000.0])), Err(RunError::OutOfFuel));
    }
}

#[test]
fn a_trap_on_one_unit_leaves_the_runner_usable() {
    let sb = sandbox();
    let mut r = runner(&sb, FUEL);
    assert_eq!(r.score(&unit(&[1.0])).unwrap(), vec![FRESH]);
    assert!(matches!(r.score(&unit(&[-1.0, 2.0])), Err(RunError::Trap(_))));
    assert_eq!(r.score(&unit(&[1.0, 1.0, 1.0])).unwrap(), vec![FRESH; 3]);
    assert!(matches!(r.score(&unit(&[-5.0])), Err(RunError::Trap(_))));
    assert_eq!(r.score(&unit(&[4.0])).unwrap(), vec![FRESH]);
}

#[test]
fn other_faults_fail_one_unit_only() {
    let sb = sandbox();
    let mut r = runner(&sb, FUEL);
    // A wrong number of scores.
    assert_eq!(r.score(&unit(&[0.5, 1.0, 1.0])), Err(RunError::BadEmission { rows: 3, expected: 3, emitted: 2 }));
    assert_eq!(r.score(&unit(&[1.0])).unwrap(), vec![FRESH]);
    // A bad status.
    assert_eq!(r.score(&unit(&vec![1.0; 1025])), Err(RunError::ModelFailed { status: 9 }));
    assert_eq!(r.score(&unit(&[1.0])).unwrap(), vec![FRESH]);
    // A unit batch without the input column, or with the wrong type.
    let missing = RecordBatch::new(vec![Column { name: "y".into(), data: ColumnData::F64(vec![1.0]) }]).unwrap();
    assert!(matches!(r.score(&missing), Err(RunError::MissingColumn { name }) if name == "x"));
    let wrong = RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::I64(vec![1]) }]).unwrap();
    assert!(matches!(r.score(&wrong), Err(RunError::ColumnType { .. })));
    assert_eq!(r.score(&unit(&[1.0, 2.0])).unwrap(), vec![FRESH; 2]);
    // An empty unit scores to nothing.
    assert_eq!(r.score(&unit(&[])).unwrap(), Vec::<f64>::new());
}

#[test]
fn no_unit_starts_after_the_deadline() {
    let sb = sandbox();
    let m = sb.admit(&wat(STATEFUL)).unwrap();
    let mut r = sb.unit_runner(&m, &["x".to_string()], FUEL, Instant::now() + Duration::from_millis(30)).unwrap();
    assert_eq!(r.score(&unit(&[1.0])).unwrap(), vec![FRESH]);
    std::thread::sleep(Duration::from_millis(40));
    assert!(matches!(r.score(&unit(&[1.0])), Err(RunError::TimeLimit { .. })));
}

#[test]
fn runners_are_checked_against_the_module() {
    let sb = sandbox();
    let m = sb.admit(&wat(STATEFUL)).unwrap();
    let later = Instant::now() + Duration::from_secs(60);
    assert!(matches!(sb.unit_runner(&m, &[], FUEL, later), Err(RunError::InputCount { declared: 1, given: 0 })));
    let other = Sandbox::new(SandboxConfig { ..config() }).unwrap();
    assert!(matches!(other.unit_runner(&m, &["x".to_string()], FUEL, later), Err(RunError::ForeignModule)));
}

#[test]
fn many_units_reuse_the_instance_pool() {
    // More units than the pooling allocator has slots: each unit's instance is returned
    // to the pool when it is done.
    let sb = sandbox();
    let mut r = runner(&sb, FUEL);
    let n = cleanroom_sandbox::POOL_INSTANCES as usize * 8;
    for i in 0..n {
        let scores = if i % 5 == 0 { r.score(&unit(&[-1.0])) } else { r.score(&unit(&[1.0])) };
        if i % 5 == 0 {
            assert!(scores.is_err());
        } else {
            assert_eq!(scores.unwrap(), vec![FRESH]);
        }
    }
}

/// Reads its f64 input `x` and its validity (at most 1024 rows) and scores a row
/// `100 · validity byte + x` where it holds a value, `-1` where it is null, so a byte other
/// than 0 or 1 would show. A unit whose first row is null also asks for the validity of an
/// input it does not have: a typed trap, and that unit alone fails.
const NULL_AWARE: &str = r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "read_validity" (func $read_validity (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32) (local $i i32) (local $valid i32)
    (if (i32.gt_u (local.get $rows) (i32.const 1024)) (then (return (i32.const 9))))
    ;; values at 0, validity at 16384, scores at 32768
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (drop (call $read_validity (i32.const 0) (i32.const 16384) (local.get $rows)))
    (if (i32.and (i32.gt_u (local.get $rows) (i32.const 0)) (i32.eqz (i32.load8_u (i32.const 16384))))
      (then (drop (call $read_validity (i32.const 3) (i32.const 16384) (local.get $rows)))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (local.set $valid (i32.load8_u (i32.add (i32.const 16384) (local.get $i))))
      (f64.store (i32.add (i32.const 32768) (i32.shl (local.get $i) (i32.const 3)))
        (select
          (f64.add (f64.mul (f64.convert_i32_u (local.get $valid)) (f64.const 100))
                   (f64.load (i32.shl (local.get $i) (i32.const 3))))
          (f64.const -1)
          (local.get $valid)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $emit (i32.const 32768) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#;

/// Emits its f64 input as read: a module built before validity existed.
const ECHO: &str = r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#;

/// A unit of `x` with nulls where `valid` says so (their slots hold the canonical 0.0).
fn unit_with_nulls(xs: &[f64], valid: &[bool]) -> RecordBatch {
    let xs = xs.iter().zip(valid).map(|(&x, &v)| if v { x } else { 0.0 }).collect();
    RecordBatch::with_validity(
        vec![Column { name: "x".into(), data: ColumnData::F64(xs) }],
        [("x".to_string(), Validity::from_bools(valid.to_vec()))].into(),
    )
    .unwrap()
}

#[test]
fn validity_reaches_each_unit_and_its_misuse_fails_that_unit_only() {
    let sb = sandbox();
    let m = sb.admit(&wat(NULL_AWARE)).unwrap();
    assert!(m.imports().contains(&"cleanroom.read_validity".to_string()));
    let mut r = sb.unit_runner(&m, &["x".to_string()], FUEL, Instant::now() + Duration::from_secs(60)).unwrap();
    // A column without a validity has a value in every row.
    assert_eq!(r.score(&unit(&[2.0, 3.0])).unwrap(), vec![102.0, 103.0]);
    assert_eq!(r.score(&unit_with_nulls(&[2.0, 9.0, 4.0], &[true, false, true])).unwrap(), vec![102.0, -1.0, 104.0]);
    // The staging buffers are reused, never their contents: the next unit sees its own.
    assert_eq!(r.score(&unit(&[5.0, 6.0, 7.0])).unwrap(), vec![105.0, 106.0, 107.0]);
    assert_eq!(
        r.score(&unit_with_nulls(&[1.0; 4], &[true, true, true, false])).unwrap(),
        vec![101.0, 101.0, 101.0, -1.0]
    );
    // A misuse of read_validity is a typed trap: that unit fails, the next one scores.
    let e = r.score(&unit_with_nulls(&[0.0, 1.0], &[false, true])).unwrap_err();
    assert_eq!(e, RunError::AbiMisuse("read_validity: no input column 3".into()));
    assert_eq!(r.score(&unit_with_nulls(&[1.0, 8.0], &[true, false])).unwrap(), vec![101.0, -1.0]);
    // A validity that does not cover the unit's rows is refused before the module runs.
    let mut ragged = unit(&[1.0, 2.0]);
    ragged.validity.insert("x".into(), Validity::from_bools(vec![true]));
    assert_eq!(r.score(&ragged), Err(RunError::RaggedBatch { name: "x".into(), len: 1, rows: 2 }));
    assert_eq!(r.score(&unit(&[1.0])).unwrap(), vec![101.0]);

    // A module that does not import read_validity reads a null's canonical value.
    let echo = sb.admit(&wat(ECHO)).unwrap();
    assert!(!echo.imports().iter().any(|i| i.ends_with("read_validity")));
    let mut r = sb.unit_runner(&echo, &["x".to_string()], FUEL, Instant::now() + Duration::from_secs(60)).unwrap();
    assert_eq!(r.score(&unit_with_nulls(&[2.0, 9.0], &[true, false])).unwrap(), vec![2.0, 0.0]);
}
