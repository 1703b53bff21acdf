//! The hostile-module corpus (`tests/hostile/*.wat` plus generated binaries).
//!
//! Every module must be refused at admission or end its job with the expected typed
//! error, within the time limit plus a margin, without releasing output; and the same
//! sandbox must then still run a well-behaved job. At the end, the process's memory must
//! be back near its level after a first pass over the corpus.

mod common;

use cleanroom_sandbox::{AdmissionError as A, OutputNameError, RunError as R, Sandbox, SandboxConfig};
use common::*;
use protocol::table::{Column, ColumnData, RecordBatch};
use std::time::{Duration, Instant};

/// Slack on top of the time limit: one epoch tick plus scheduling on a loaded CI box.
const MARGIN: Duration = Duration::from_millis(250);
const ROWS: usize = 1000;

enum Expect {
    /// Refused by `Sandbox::admit`.
    Refused(fn(&A) -> bool),
    /// Admitted, but `start_job` fails.
    StartFails(fn(&R) -> bool),
    /// The first batch fails.
    BatchFails(fn(&R) -> bool),
    /// The batch succeeds and its output satisfies the check.
    Output(fn(&[f64], &[f64]) -> bool),
}

struct Case {
    name: &'static str,
    wasm: Vec<u8>,
    expect: Expect,
    /// Value of column `x` in every row.
    x: f64,
}

macro_rules! corpus {
    ($($file:literal => $expect:expr),* $(,)?) => {
        vec![$(
            (
                $file,
                include_str!(concat!("hostile/", $file, ".wat")),
                $expect,
            )
        ),*]
    };
}

fn wat(name: &str, src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap_or_else(|e| panic!("{name}: bad WAT: {e}"))
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let from_files: Vec<(&str, &str, Expect)> = corpus![
        "00-echo" => Output(|out, x| out == x),
        "01-import-wasi" => Refused(|e| matches!(e, A::ForbiddenImport { module, .. } if module == "wasi_snapshot_preview1")),
        "02-import-env" => Refused(|e| matches!(e, A::ForbiddenImport { module, .. } if module == "env")),
        "03-import-unknown-namespace" => Refused(|e| matches!(e, A::ForbiddenImport { module, .. } if module == "exfil")),
        "04-import-clock" => Refused(|e| matches!(e, A::ForbiddenImport { name, .. } if name == "now_nanos")),
        "05-import-wrong-signature" => Refused(|e| matches!(e, A::ImportSignature { name } if name == "read_f64")),
        "06-import-memory" => Refused(|e| matches!(e, A::ForbiddenImport { name, .. } if name == "memory")),
        "07-shared-memory" => Refused(|e| matches!(e, A::SharedMemory)),
        "08-atomics" => Refused(|e| matches!(e, A::Invalid(_))),
        "09-multi-memory" => Refused(|e| matches!(e, A::MemoryCount { count: 2 })),
        "10-memory64" => Refused(|e| matches!(e, A::Memory64)),
        "11-missing-process-export" => Refused(|e| matches!(e, A::MissingExport { name: "cleanroom_process_batch" })),
        "12-wrong-export-signature" => Refused(|e| matches!(e, A::ExportSignature { .. })),
        "13-memory-not-exported" => Refused(|e| matches!(e, A::MissingExport { name: "memory" })),
        "14-missing-abi-section" => Refused(|e| matches!(e, A::MissingAbiSection)),
        "15-abi-version-2" => Refused(|e| matches!(e, A::AbiVersion { found: 2, supported: 1 })),
        "16-duplicate-abi-section" => Refused(|e| matches!(e, A::DuplicateAbiSection)),
        "17-huge-initial-memory" => Refused(|e| matches!(e, A::MemoryTooLarge { .. })),
        "18-table-bomb" => Refused(|e| matches!(e, A::TableTooLarge { .. })),
        "19-unknown-cleanroom-export" => Refused(|e| matches!(e, A::UnknownExport { .. })),
        "20-exceptions" => Refused(|e| matches!(e, A::Invalid(_))),
        "21-infinite-loop" => BatchFails(|e| matches!(e, R::TimeLimit { .. })),
        "22-infinite-loop-in-start" => StartFails(|e| matches!(e, R::TimeLimit { .. })),
        "23-deep-recursion" => BatchFails(|e| matches!(e, R::StackOverflow)),
        "24-memory-grow-beyond-cap" => BatchFails(|e| matches!(e, R::MemoryLimit { .. })),
        "25-memory-grow-to-limit" => BatchFails(|e| matches!(e, R::MemoryLimit { .. })),
        "26-table-grow-bomb" => BatchFails(|e| matches!(e, R::TableLimit { .. })),
        "27-read-out-of-bounds" => BatchFails(|e| matches!(e, R::OutOfBounds { call: "read_f64", .. })),
        "28-read-wrapping-pointer" => BatchFails(|e| matches!(e, R::OutOfBounds { call: "read_f64", .. })),
        "29-emit-out-of-bounds" => BatchFails(|e| matches!(e, R::OutOfBounds { call: "emit", .. })),
        "30-guest-out-of-bounds-store" => BatchFails(|e| matches!(e, R::Trap(_))),
        "31-emit-flood" => BatchFails(|e| matches!(e, R::BadEmission { rows: ROWS, expected: ROWS, emitted } if *emitted == ROWS + 1)),
        "32-emit-too-many-at-once" => BatchFails(|e| matches!(e, R::BadEmission { rows: ROWS, .. })),
        "33-emit-too-few" => BatchFails(|e| matches!(e, R::BadEmission { rows: ROWS, expected: ROWS, emitted } if *emitted == ROWS / 2)),
        "34-trap-after-half" => BatchFails(|e| matches!(e, R::Trap(_))),
        "35-failure-status" => BatchFails(|e| matches!(e, R::ModelFailed { status: 7 })),
        "36-read-wrong-kind" => BatchFails(|e| matches!(e, R::AbiMisuse(_))),
        "37-read-bad-column" => BatchFails(|e| matches!(e, R::AbiMisuse(_))),
        "38-negative-count" => BatchFails(|e| matches!(e, R::AbiMisuse(_))),
        "39-emit-in-start" => StartFails(|e| matches!(e, R::EmitOutsideBatch)),
        "40-nan-payload" => Output(|out, _| out.iter().all(|v| v.to_bits() == f64::NAN.to_bits())),
        "41-timing-channel" => BatchFails(|e| matches!(e, R::TimeLimit { .. })),
        "42-host-call-storm" => BatchFails(|e| matches!(e, R::TimeLimit { .. })),
        "43-divide-by-zero" => BatchFails(|e| matches!(e, R::Trap(t) if t.contains("divide by zero"))),
        "44-indirect-call-null" => BatchFails(|e| matches!(e, R::Trap(_))),
        "45-data-segment-out-of-range" => StartFails(|e| matches!(e, R::Trap(_) | R::Instantiate(_))),
        "46-validity-out-of-bounds" => BatchFails(|e| matches!(e, R::OutOfBounds { call: "read_validity", len: 1000, .. })),
        "47-validity-wrapping-pointer" => BatchFails(|e| matches!(e, R::OutOfBounds { call: "read_validity", .. })),
        "48-validity-negative-count" => BatchFails(|e| matches!(e, R::AbiMisuse(m) if m == "read_validity: negative max_rows")),
        "49-validity-bad-column" => BatchFails(|e| matches!(e, R::AbiMisuse(m) if m == "read_validity: no input column 1")),
        "50-validity-wrong-signature" => Refused(|e| matches!(e, A::ImportSignature { name } if name == "read_validity")),
        "51-validity-in-start" => StartFails(|e| matches!(e, R::AbiMisuse(m) if m.starts_with("read_validity called outside"))),
        "52-validity-echo" => Output(|out, x| out == x),
        "53-two-outputs" => Output(|out, x| {
            out.len() == 2 * x.len() && out.chunks(2).zip(x).all(|(row, &x)| row == [x, -x])
        }),
        "54-two-outputs-one-too-many" => BatchFails(|e| {
            matches!(e, R::BadEmission { rows: ROWS, expected, emitted } if *expected == 2 * ROWS && *emitted == 2 * ROWS + 1)
        }),
        "55-two-outputs-one-per-row" => BatchFails(|e| {
            matches!(e, R::BadEmission { rows: ROWS, expected, emitted: ROWS } if *expected == 2 * ROWS)
        }),
        "56-two-outputs-unnamed" => Refused(|e| matches!(e, A::OutputNamesMissing { outputs: 2 })),
        "57-seventeen-outputs" => Refused(|e| matches!(e, A::OutputsPerRow { found: 17 })),
        "58-output-name-bad" => Refused(|e| {
            matches!(e, A::BadOutputName { index: 1, name, problem: OutputNameError::BadChar { found: '-' } } if name == "neg-x")
        }),
        "59-output-names-trailing-byte" => Refused(|e| matches!(e, A::AbiTrailingBytes { count: 1, outputs: 2 })),
    ];
    let mut cases: Vec<Case> = from_files
        .into_iter()
        .map(|(name, src, expect)| Case {
            name,
            wasm: wat(name, src),
            expect,
            // The NaN-payload module hides these bits; the timing module spins x·10^8 times.
            x: if name == "41-timing-channel" { 100.0 } else { f64::from_bits(0x4009_21fb_5444_2d18) },
        })
        .collect();

    let echo = cases[0].wasm.clone();
    // Generated binaries.
    cases.push(Case { name: "g1-empty", wasm: vec![], expect: Refused(|e| matches!(e, A::Malformed(_))), x: 1.0 });
    cases.push(Case {
        name: "g2-garbage",
        wasm: (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(),
        expect: Refused(|e| matches!(e, A::Malformed(_))),
        x: 1.0,
    });
    cases.push(Case {
        name: "g3-truncated",
        wasm: echo[..echo.len() - 7].to_vec(),
        expect: Refused(|e| matches!(e, A::Malformed(_))),
        x: 1.0,
    });
    let mut bad_byte = echo.clone();
    // Corrupt the first section id into an unknown one.
    bad_byte[8] = 0x7f;
    cases.push(Case {
        name: "g4-bad-section-id",
        wasm: bad_byte,
        expect: Refused(|e| matches!(e, A::Malformed(_))),
        x: 1.0,
    });
    cases.push(Case {
        name: "g5-component",
        wasm: b"\0asm\x0d\x00\x01\x00".to_vec(),
        expect: Refused(|e| matches!(e, A::Component)),
        x: 1.0,
    });
    cases.push(Case {
        name: "g6-too-large",
        wasm: huge_data_module(9 << 20),
        expect: Refused(|e| matches!(e, A::TooLarge { .. })),
        x: 1.0,
    });
    cases.push(Case {
        name: "g7-large-data-segment-within-limits",
        wasm: huge_data_module(6 << 20),
        expect: Output(|out, x| out == x),
        x: 2.5,
    });
    cases
}

/// The echo module with an active data segment of `bytes` bytes after the column buffer.
fn huge_data_module(bytes: usize) -> Vec<u8> {
    let pages = (bytes + 65536).div_ceil(65536) + 1;
    let src = format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") {pages})
  (data (i32.const 65536) "{fill}")
  (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
    (drop (call $read_f64 (i32.const 0) (i32.const 0) (local.get $rows)))
    (call $emit (i32.const 0) (local.get $rows))
    (i32.const 0))
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00"))"#,
        fill = "x".repeat(bytes)
    );
    wat("huge-data", &src)
}

fn batch(x: f64) -> RecordBatch {
    RecordBatch::new(vec![
        Column { name: "noise".into(), data: ColumnData::I64(vec![9; ROWS]) },
        Column { name: "x".into(), data: ColumnData::F64(vec![x; ROWS]) },
    ])
    .unwrap()
}

/// A well-behaved job on the same sandbox: credit-lr on a small batch.
fn still_serves(sb: &Sandbox, credit: &[u8], rng: &mut Rng) {
    let m = sb.admit(credit).expect("credit-lr admitted");
    let mut job = sb.start_job(&m, &credit_inputs()).expect("credit-lr job");
    let out = job.process_batch(&credit_batch(rng, 200)).expect("credit-lr batch");
    assert_eq!(out.len(), 200);
}

fn run_case(sb: &Sandbox, case: &Case) {
    let name = case.name;
    let admitted = sb.admit(&case.wasm);
    let module = match (&case.expect, admitted) {
        (Expect::Refused(ok), Err(e)) => {
            assert!(ok(&e), "{name}: refused with the wrong error: {e:?}");
            return;
        }
        (Expect::Refused(_), Ok(_)) => panic!("{name}: admitted, should have been refused"),
        (_, Err(e)) => panic!("{name}: refused at admission: {e:?}"),
        (_, Ok(m)) => m,
    };
    let inputs = vec!["x".to_string()];
    let started = Instant::now();
    let bound = TIME_LIMIT + MARGIN;
    let job = sb.start_job(&module, &inputs);
    let mut job = match (&case.expect, job) {
        (Expect::StartFails(ok), Err(e)) => {
            assert!(ok(&e), "{name}: start failed with the wrong error: {e:?}");
            assert!(started.elapsed() < bound, "{name}: took {:?}", started.elapsed());
            return;
        }
        (Expect::StartFails(_), Ok(_)) => panic!("{name}: started, should have failed"),
        (_, Err(e)) => panic!("{name}: start failed: {e:?}"),
        (_, Ok(j)) => j,
    };
    let b = batch(case.x);
    let result = job.process_batch(&b);
    let elapsed = started.elapsed();
    assert!(elapsed < bound, "{name}: took {elapsed:?}, limit {TIME_LIMIT:?} + {MARGIN:?}");
    match (&case.expect, result) {
        (Expect::BatchFails(ok), Err(e)) => {
            assert!(ok(&e), "{name}: failed with the wrong error: {e:?}");
            if matches!(e, R::TimeLimit { .. }) {
                assert!(elapsed >= TIME_LIMIT, "{name}: stopped early, after {elapsed:?}");
            }
            assert!(job.ended(), "{name}: job still open after an error");
            assert_eq!(job.process_batch(&b), Err(R::JobEnded), "{name}: a dead job ran again");
        }
        (Expect::BatchFails(_), Ok(out)) => panic!("{name}: succeeded with {} values, should have failed", out.len()),
        (Expect::Output(ok), Ok(out)) => {
            let x = match b.column("x") {
                Some(ColumnData::F64(v)) => v.clone(),
                _ => unreachable!(),
            };
            assert!(ok(&out, &x), "{name}: unexpected output");
        }
        (_, r) => panic!("{name}: unexpected result {:?}", r.map(|v| v.len())),
    }
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn corpus_is_contained_and_the_sandbox_keeps_serving() {
    let cases = cases();
    assert!(cases.len() >= 25, "corpus has only {} modules", cases.len());
    let sb = Sandbox::new(SandboxConfig { max_module_bytes: 8 << 20, ..config() }).unwrap();
    let credit = credit_lr_wasm();
    let mut rng = Rng::new(3);
    let mut baseline = None;
    for pass in 0..3 {
        let t = Instant::now();
        for case in &cases {
            run_case(&sb, case);
            still_serves(&sb, &credit, &mut rng);
        }
        let rss = rss_bytes();
        eprintln!("pass {pass}: {} modules in {:?}, rss {:?} MiB", cases.len(), t.elapsed(), rss.map(|r| r >> 20));
        if pass == 0 {
            baseline = rss;
        }
    }
    if let (Some(base), Some(now)) = (baseline, rss_bytes()) {
        // Two more passes over the corpus (every job's memory, stores and staged
        // batches) must not leave the process bigger than after the first.
        assert!(now < base + (16 << 20), "rss grew from {} to {} MiB", base >> 20, now >> 20);
    }
}

#[test]
fn timing_module_is_fast_on_small_values() {
    // The same module finishes when its input is small: its only way to signal is the
    // time limit, and a job that hits it releases nothing.
    let sb = sandbox();
    let src = include_str!("hostile/41-timing-channel.wat");
    let m = sb.admit(&wat("timing", src)).unwrap();
    let mut job = sb.start_job(&m, &["x".to_string()]).unwrap();
    assert_eq!(job.process_batch(&batch(0.0)).unwrap(), vec![0.0; ROWS]);
}
