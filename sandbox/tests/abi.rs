//! The ABI's host functions on well-behaved modules: every column kind, partial reads,
//! chunked emission, empty batches, state across batches and isolation between jobs.

mod common;

use cleanroom_sandbox::{RunError, Sandbox, SandboxConfig, SandboxError};
use common::*;
use protocol::table::{Column, ColumnData, RecordBatch};
use std::time::Duration;

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid WAT")
}

/// Inputs: a dictionary code and a token. Emits `code * 1000 + token[0] + token[31] / 256`.
const CODES_AND_TOKENS: &str = r#"(module
  (import "cleanroom" "read_codes" (func $read_codes (param i32 i32 i32) (result i32)))
  (import "cleanroom" "read_tokens" (func $read_tokens (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 4)
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $i i32)
    ;; codes at 0, tokens at 65536, output at 131072
    (if (i32.ne (call $read_codes (i32.const 0) (i32.const 0) (local.get $rows)) (local.get $rows))
      (then (return (i32.const 1))))
    (if (i32.ne (call $read_tokens (i32.const 1) (i32.const 65536) (local.get $rows)) (local.get $rows))
      (then (return (i32.const 2))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (f64.store
          (i32.add (i32.const 131072) (i32.shl (local.get $i) (i32.const 3)))
          (f64.add
            (f64.add
              (f64.mul (f64.convert_i32_u (i32.load (i32.shl (local.get $i) (i32.const 2)))) (f64.const 1000))
              (f64.convert_i32_u (i32.load8_u (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 5))))))
            (f64.div
              (f64.convert_i32_u (i32.load8_u (i32.add (i32.const 65567) (i32.shl (local.get $i) (i32.const 5)))))
              (f64.const 256))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    ;; emit in two chunks
    (call $emit (i32.const 131072) (i32.shr_u (local.get $rows) (i32.const 1)))
    (call $emit
      (i32.add (i32.const 131072) (i32.shl (i32.shr_u (local.get $rows) (i32.const 1)) (i32.const 3)))
      (i32.sub (local.get $rows) (i32.shr_u (local.get $rows) (i32.const 1))))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\02\00\00\00\02\03"))"#;

#[test]
fn codes_and_tokens_arrive_little_endian_and_in_order() {
    let sb = sandbox();
    let m = sb.admit(&wat(CODES_AND_TOKENS)).unwrap();
    assert_eq!(m.inputs(), &[cleanroom_sandbox::ColumnKind::Code, cleanroom_sandbox::ColumnKind::Token]);
    let rows = 1001;
    let codes: Vec<u32> = (0..rows as u32).map(|i| i % 3).collect();
    let tokens: Vec<[u8; 32]> = (0..rows)
        .map(|i| {
            let mut t = [0u8; 32];
            t[0] = (i % 251) as u8;
            t[31] = (i % 7) as u8;
            t
        })
        .collect();
    let batch = RecordBatch::new(vec![
        Column { name: "tok".into(), data: ColumnData::Token(tokens.clone()) },
        Column {
            name: "zip".into(),
            data: ColumnData::Dict { codes: codes.clone(), values: vec!["a".into(), "b".into(), "c".into()] },
        },
    ])
    .unwrap();
    let mut job = sb.start_job(&m, &["zip".to_string(), "tok".to_string()]).unwrap();
    for _ in 0..3 {
        let out = job.process_batch(&batch).unwrap();
        let want: Vec<f64> =
            (0..rows).map(|i| codes[i] as f64 * 1000.0 + tokens[i][0] as f64 + tokens[i][31] as f64 / 256.0).collect();
        assert_eq!(out, want);
    }
    assert_eq!(job.batches(), 3);
}

/// Reads at most 10 rows of its f64 input; emits, per row, the number of rows the host
/// reported copied, plus 1000 times the number of batches this instance has seen.
const PARTIAL_AND_COUNTER: &str = r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 2)
  (global $batches (mut i32) (i32.const 0))
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (local $i i32) (local $n i32)
    (global.set $batches (i32.add (global.get $batches) (i32.const 1)))
    (local.set $n (call $read_f64 (i32.const 0) (i32.const 0) (i32.const 10)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (f64.store (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 3)))
          (f64.convert_i32_u (i32.add (local.get $n) (i32.mul (global.get $batches) (i32.const 1000)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (call $emit (i32.const 4096) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#;

fn f64_batch(rows: usize) -> RecordBatch {
    RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(vec![1.0; rows]) }]).unwrap()
}

#[test]
fn partial_reads_state_within_a_job_and_isolation_between_jobs() {
    let sb = sandbox();
    let m = sb.admit(&wat(PARTIAL_AND_COUNTER)).unwrap();
    let x = ["x".to_string()];
    let mut job = sb.start_job(&m, &x).unwrap();
    assert_eq!(job.process_batch(&f64_batch(25)).unwrap(), vec![1010.0; 25]);
    assert_eq!(job.process_batch(&f64_batch(4)).unwrap(), vec![2004.0; 4]);
    assert_eq!(job.process_batch(&f64_batch(0)).unwrap(), Vec::<f64>::new());
    // A new job is a fresh instance: its counter starts again.
    let mut fresh = sb.start_job(&m, &x).unwrap();
    assert_eq!(fresh.process_batch(&f64_batch(3)).unwrap(), vec![1003.0; 3]);
}

#[test]
fn ragged_batches_built_by_hand_are_refused() {
    let sb = sandbox();
    let m = sb.admit(&wat(PARTIAL_AND_COUNTER)).unwrap();
    let mut job = sb.start_job(&m, &["x".to_string()]).unwrap();
    // `RecordBatch` fields are public; a caller can bypass `RecordBatch::new`.
    let bad = RecordBatch {
        rows: 10,
        columns: vec![Column { name: "x".into(), data: ColumnData::F64(vec![1.0; 4]) }],
        validity: Default::default(),
    };
    assert!(matches!(job.process_batch(&bad), Err(RunError::RaggedBatch { len: 4, rows: 10, .. })));
}

#[test]
fn the_time_limit_covers_the_whole_job() {
    let sb = Sandbox::new(SandboxConfig { time_limit: Duration::from_millis(50), ..config() }).unwrap();
    let m = sb.admit(&wat(PARTIAL_AND_COUNTER)).unwrap();
    let mut job = sb.start_job(&m, &["x".to_string()]).unwrap();
    assert!(job.process_batch(&f64_batch(5)).is_ok());
    std::thread::sleep(Duration::from_millis(60));
    assert!(matches!(job.process_batch(&f64_batch(5)), Err(RunError::TimeLimit { .. })));
}

fn policy_with_limits() -> protocol::policy::Policy {
    use protocol::policy::{ColumnPolicy, ColumnRole, Policy, SandboxLimits, Timing};
    let policy = Policy {
        population: "abi-test population".into(),
        rows_per_chunk: 1 << 20,
        allowed_query_classes: vec!["histogram".into()],
        min_group_size: 5,
        timing: Timing {
            max_deadline_ms: 1500,
            setup_ms: 10,
            ns_per_fuel: 2,
            unit_overhead_ns: 1_000,
            ingest_ns_per_row: 1_000,
            ns_per_memory_page: 1_000,
        },
        sandbox: SandboxLimits { fuel_per_unit: 10_000, memory_limit_bytes: 1 << 26, max_module_bytes: 1 << 22 },
        ..Policy::new(
            vec![7; 32],
            protocol::Digest::of(b"abi-test dataset"),
            "unit",
            vec![ColumnPolicy::new("unit", "token", vec![]), ColumnPolicy::new("x", "f64", vec![ColumnRole::Input])],
        )
    };
    policy.validate().expect("test policy is valid");
    policy
}

#[test]
fn bad_configurations_are_refused() {
    let bad = [
        SandboxConfig { memory_limit_bytes: 0, ..config() },
        SandboxConfig { memory_limit_bytes: 5 << 30, ..config() },
        SandboxConfig { time_limit: Duration::ZERO, ..config() },
        SandboxConfig { time_limit: Duration::MAX, ..config() },
        SandboxConfig { max_module_bytes: 0, ..config() },
        SandboxConfig { max_wasm_stack: 1024, ..config() },
        SandboxConfig { max_wasm_stack: 1 << 30, ..config() },
    ];
    for c in bad {
        assert!(matches!(Sandbox::new(c.clone()), Err(SandboxError::Config(_))), "{c:?} accepted");
    }
    let from_policy = SandboxConfig::from_policy(&policy_with_limits());
    // The wall-clock limit is the longest deadline the policy allows.
    assert_eq!(from_policy.time_limit, Duration::from_millis(1500));
    assert_eq!(from_policy.memory_limit_bytes, 1 << 26);
    assert_eq!(from_policy.max_module_bytes, 1 << 22);
    assert!(Sandbox::new(from_policy).is_ok());
}

#[test]
fn sandbox_and_job_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Sandbox>();
    send_sync::<cleanroom_sandbox::AdmittedModule>();
    send::<cleanroom_sandbox::Job>();

    let sb = sandbox();
    let m = sb.admit(&wat(PARTIAL_AND_COUNTER)).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (sb, m) = (sb.clone(), m.clone());
            std::thread::spawn(move || {
                let mut job = sb.start_job(&m, &["x".to_string()]).unwrap();
                job.process_batch(&f64_batch(7)).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), vec![1007.0; 7]);
    }
}

/// Two outputs per row (`x`, `neg_x`), emitted row-major in two calls that split a row's
/// values between them when `rows` is odd.
const TWO_OUTPUTS: &str = include_str!("hostile/53-two-outputs.wat");

#[test]
fn several_outputs_come_row_major_in_jobs_and_units() {
    let sb = sandbox();
    let m = sb.admit(&wat(TWO_OUTPUTS)).unwrap();
    assert_eq!(m.outputs_per_row(), 2);
    assert_eq!(m.output_names(), ["x", "neg_x"]);
    let batch =
        |xs: &[f64]| RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(xs.to_vec()) }]).unwrap();
    let row_major = |xs: &[f64]| xs.iter().flat_map(|&x| [x, -x]).collect::<Vec<f64>>();
    let x = ["x".to_string()];
    let mut job = sb.start_job(&m, &x).unwrap();
    for xs in [&[1.0, 2.0, 3.0][..], &[], &[7.5], &(0..1001).map(f64::from).collect::<Vec<_>>()] {
        assert_eq!(job.process_batch(&batch(xs)).unwrap(), row_major(xs), "{} rows", xs.len());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut units = sb.unit_runner(&m, &x, 1_000_000, deadline).unwrap();
    assert_eq!(units.outputs_per_row(), 2);
    for xs in [&[4.0][..], &[-1.0, 0.5, 9.0]] {
        assert_eq!(units.score(&batch(xs)).unwrap(), row_major(xs));
    }
    // A unit with too many rows for the module's buffer fails on its own status.
    assert_eq!(units.score(&batch(&[0.0; 4097])), Err(RunError::ModelFailed { status: 9 }));
    // A module whose section names no output has one, `score`.
    let one = sb.admit(&wat(PARTIAL_AND_COUNTER)).unwrap();
    assert_eq!((one.outputs_per_row(), one.output_names()), (1, &["score".to_string()][..]));
}

#[test]
fn several_outputs_emitted_wrong_fail_the_unit() {
    let sb = sandbox();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let x = ["x".to_string()];
    let unit = RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(vec![1.0, 2.0, 3.0]) }]).unwrap();
    let too_many = sb.admit(&wat(include_str!("hostile/54-two-outputs-one-too-many.wat"))).unwrap();
    let mut r = sb.unit_runner(&too_many, &x, 1_000_000, deadline).unwrap();
    assert_eq!(r.score(&unit), Err(RunError::BadEmission { rows: 3, expected: 6, emitted: 7 }));
    let one_each = sb.admit(&wat(include_str!("hostile/55-two-outputs-one-per-row.wat"))).unwrap();
    let mut r = sb.unit_runner(&one_each, &x, 1_000_000, deadline).unwrap();
    assert_eq!(r.score(&unit), Err(RunError::BadEmission { rows: 3, expected: 6, emitted: 3 }));
    // The runner stays usable, and an empty unit emits nothing either way.
    assert_eq!(
        r.score(&RecordBatch::new(vec![Column { name: "x".into(), data: ColumnData::F64(vec![]) }]).unwrap()),
        Ok(vec![])
    );
}
