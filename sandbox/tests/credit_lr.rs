//! The credit-lr example run in the sandbox equals the same model run natively, bit for bit.

mod common;

use common::*;
use credit_lr::CreditLr;
use model_sdk::Column as SdkColumn;
use protocol::table::{Column, ColumnData, RecordBatch};
use std::time::Instant;

/// Native scores for `batch`, through the SDK's native path.
fn native(batch: &RecordBatch) -> Vec<f64> {
    let cols: Vec<SdkColumn<'_>> = credit_inputs()
        .iter()
        .map(|name| match batch.column(name).expect("column") {
            ColumnData::F64(v) => SdkColumn::F64(v),
            ColumnData::I64(v) => SdkColumn::I64(v),
            ColumnData::Dict { codes, .. } => SdkColumn::Code(codes),
            ColumnData::Token(v) => SdkColumn::Token(v),
        })
        .collect();
    model_sdk::run_native(&CreditLr::default(), &cols).expect("native run")
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Rows at the edges: zero, negative, NaN and huge values.
fn edge_batch() -> RecordBatch {
    let income = vec![0.0, -5.0, 1.0, 1.5, f64::NAN, 1e300, 60_000.0, f64::INFINITY, 42_000.0];
    let util = vec![0.0, 1.0, 0.3, -1.0, 0.5, 2.0, f64::NAN, 0.9, -0.0];
    let n = income.len();
    let late = vec![0, 100, 1, 0, 3, 0, 2, 1, i64::MAX];
    let tenure = vec![0, 600, 60, -5, 12, 1_000_000, 60, 1, i64::MIN];
    let decade = vec![1980, 2020, 1900, i64::MIN, i64::MAX, 1950, 1990, 0, 1970];
    assert!([late.len(), tenure.len(), decade.len(), util.len()].iter().all(|&l| l == n));
    RecordBatch::new(vec![
        Column { name: "income".into(), data: ColumnData::F64(income) },
        Column { name: "utilization".into(), data: ColumnData::F64(util) },
        Column { name: "late_payments".into(), data: ColumnData::I64(late) },
        Column { name: "tenure_months".into(), data: ColumnData::I64(tenure) },
        Column { name: "birth_decade".into(), data: ColumnData::I64(decade) },
    ])
    .unwrap()
}

#[test]
fn sandbox_equals_native_bit_for_bit() {
    let wasm = credit_lr_wasm();
    let sb = sandbox();
    let t = Instant::now();
    let module = sb.admit(&wasm).expect("credit-lr admitted");
    eprintln!("admit (compile) {:?}, module {} bytes, hash {}", t.elapsed(), wasm.len(), module.digest());
    assert_eq!(module.abi_version(), 1);
    assert_eq!(module.outputs_per_row(), 1);
    assert_eq!(module.inputs().len(), 5);

    let mut rng = Rng::new(0x5eed);
    let mut job = sb.start_job(&module, &credit_inputs()).expect("job");
    let mut total = 0;
    // Odd sizes and an empty batch as well as round ones.
    for rows in [1000, 1, 0, 17, 1500, 999, 2048] {
        let batch = credit_batch(&mut rng, rows);
        let got = job.process_batch(&batch).expect("sandbox run");
        let want = native(&batch);
        assert_eq!(got.len(), rows);
        assert!(same_bits(&got, &want), "sandbox and native differ on a batch of {rows} rows");
        assert!(got.iter().all(|p| (0.0..=1.0).contains(p)), "probability out of [0, 1]");
        total += rows;
    }
    let edge = edge_batch();
    let got = job.process_batch(&edge).expect("edge rows");
    assert!(same_bits(&got, &native(&edge)), "edge rows differ: {got:?} vs {:?}", native(&edge));
    assert_eq!(job.rows(), (total + edge.rows) as u64);
    assert!(total >= 5000);
}

#[test]
fn admission_is_cached_and_jobs_are_independent() {
    let wasm = credit_lr_wasm();
    let sb = sandbox();
    let a = sb.admit(&wasm).unwrap();
    let t = Instant::now();
    let b = sb.admit(&wasm).unwrap();
    assert!(t.elapsed().as_millis() < 50, "second admission was not cached");
    assert_eq!(a.hash(), b.hash());
    assert_eq!(sb.cached_modules(), 1);
    assert_eq!(a.digest(), protocol::Digest::of(&wasm));

    let mut rng = Rng::new(7);
    let batch = credit_batch(&mut rng, 300);
    let t = Instant::now();
    let mut j1 = sb.start_job(&a, &credit_inputs()).unwrap();
    eprintln!("instantiate {:?}", t.elapsed());
    let mut j2 = sb.start_job(&b, &credit_inputs()).unwrap();
    assert_eq!(j1.process_batch(&batch).unwrap(), j2.process_batch(&batch).unwrap());
}

#[test]
fn wrong_inputs_are_typed_errors() {
    use cleanroom_sandbox::RunError;
    let sb = sandbox();
    let m = sb.admit(&credit_lr_wasm()).unwrap();
    let mut names = credit_inputs();
    names.pop();
    assert!(matches!(sb.start_job(&m, &names), Err(RunError::InputCount { declared: 5, given: 4 })));

    let mut rng = Rng::new(9);
    let batch = credit_batch(&mut rng, 10);
    let mut names = credit_inputs();
    names[4] = "no_such_column".into();
    let mut job = sb.start_job(&m, &names).unwrap();
    assert!(matches!(job.process_batch(&batch), Err(RunError::MissingColumn { .. })));
    assert!(matches!(job.process_batch(&batch), Err(RunError::JobEnded)));

    let mut names = credit_inputs();
    names[2] = "zip3".into(); // a dictionary column where i64 is declared
    let mut job = sb.start_job(&m, &names).unwrap();
    assert!(matches!(job.process_batch(&batch), Err(RunError::ColumnType { .. })));

    // A module admitted by another sandbox is refused.
    let other = sandbox();
    assert!(matches!(other.start_job(&m, &credit_inputs()), Err(RunError::ForeignModule)));
}
