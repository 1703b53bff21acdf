//! The training extension of the ABI: the `cleanroom_train` section, the pretrained
//! parameters, one unit's gradient in a fresh instance (bit for bit the native twin's),
//! scoring with parameters the enclave gives, and modules that misuse it.

mod common;

use cleanroom_sandbox::{AdmissionError, RunError, UnitRunner};
use common::*;
use credit_lr_tune::CreditLrTune;
use credit_mlp::CreditMlp;
use model_sdk::{params_of, run_native, unit_gradient_native, Column, Trainable};
use protocol::table::{Column as TableColumn, ColumnData, RecordBatch};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FUEL: u64 = 50_000_000;

/// A credit batch plus a 0/1 `defaulted` label.
fn labelled(rng: &mut Rng, rows: usize) -> RecordBatch {
    let batch = credit_batch(rng, rows);
    let mut columns = batch.columns.clone();
    let labels = (0..rows).map(|_| rng.below(2) as i64).collect();
    columns.push(TableColumn { name: "defaulted".into(), data: ColumnData::I64(labels) });
    RecordBatch::new(columns).expect("batch")
}

/// The five credit inputs (income, utilization, late payments, tenure, birth decade) and
/// the label as f64.
type Columns = (Vec<f64>, Vec<f64>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<f64>);

fn native_columns(b: &RecordBatch) -> Columns {
    let f = |n: &str| match b.column(n) {
        Some(ColumnData::F64(v)) => v.clone(),
        _ => panic!("{n}"),
    };
    let i = |n: &str| match b.column(n) {
        Some(ColumnData::I64(v)) => v.clone(),
        _ => panic!("{n}"),
    };
    let y = i("defaulted").iter().map(|&v| v as f64).collect();
    (f("income"), f("utilization"), i("late_payments"), i("tenure_months"), i("birth_decade"), y)
}

fn runner(wasm: &[u8], train: bool) -> UnitRunner {
    let sb = sandbox();
    let module = sb.admit(wasm).expect("admitted");
    let deadline = Instant::now() + Duration::from_secs(60);
    if train {
        sb.train_runner(&module, &credit_inputs(), "defaulted", FUEL, deadline).expect("runner")
    } else {
        sb.unit_runner(&module, &credit_inputs(), FUEL, deadline).expect("runner")
    }
}

fn check_model<M: Trainable + Clone>(wasm: &[u8], model: M, trained: &[f64]) {
    let sb = sandbox();
    let module = sb.admit(wasm).expect("admitted");
    let t = module.training().expect("trainable");
    assert_eq!(t.n_params as usize, model_sdk::param_count(M::LAYOUT));
    assert_eq!(t.parameter_names().len(), t.n_params as usize);
    // The warm start is the native model's parameters, bit for bit.
    let initial = sb.initial_params(&module, FUEL).expect("initial params");
    assert_eq!(initial, params_of(&model));

    let mut rng = Rng::new(7);
    let mut train = runner(wasm, true);
    let params: Arc<[f64]> = trained.into();
    let mut at_params = model.clone();
    at_params.set_params(trained);
    for rows in [1, 3, 17] {
        let unit = labelled(&mut rng, rows);
        let got = train.gradient(&unit, &params).expect("gradient");
        let (inc, util, late, ten, dec, y) = native_columns(&unit);
        let cols = [Column::F64(&inc), Column::F64(&util), Column::I64(&late), Column::I64(&ten), Column::I64(&dec)];
        let (mut want, loss) = unit_gradient_native(&at_params, &cols, &y).unwrap();
        want.push(loss);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.to_bits(), w.to_bits(), "sandbox gradient differs from the native twin");
        }
    }

    // Scoring: the module's own parameters without any given, the given ones after.
    let unit = labelled(&mut rng, 5);
    let (inc, util, late, ten, dec, _) = native_columns(&unit);
    let cols = [Column::F64(&inc), Column::F64(&util), Column::I64(&late), Column::I64(&ten), Column::I64(&dec)];
    let mut score = runner(wasm, false);
    assert_eq!(score.score(&unit).unwrap(), run_native(&model, &cols).unwrap());
    score.set_params(Some(params.clone())).unwrap();
    let tuned = score.score(&unit).unwrap();
    assert_eq!(tuned, run_native(&at_params, &cols).unwrap());
    assert_ne!(tuned, run_native(&model, &cols).unwrap(), "the given parameters were ignored");
    assert_eq!(
        score.set_params(Some(Arc::from(vec![0.0; trained.len() + 1]))),
        Err(RunError::ParamCount { declared: trained.len(), given: trained.len() + 1 })
    );
}

#[test]
fn credit_lr_tune_gradients_match_native() {
    check_model(&example_wasm("credit-lr-tune"), CreditLrTune::default(), &[0.3, 2.0, 0.4, -0.2, -0.1, -1.5]);
}

#[test]
fn credit_mlp_gradients_match_native() {
    let m = CreditMlp::default();
    let trained: Vec<f64> = params_of(&m).iter().enumerate().map(|(i, p)| p + 0.01 * (i as f64 - 20.0)).collect();
    check_model(&example_wasm("credit-mlp"), m, &trained);
}

#[test]
fn a_scoring_module_is_not_trainable() {
    let sb = sandbox();
    let module = sb.admit(&credit_lr_wasm()).unwrap();
    assert!(module.training().is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    assert_eq!(
        sb.train_runner(&module, &credit_inputs(), "defaulted", FUEL, deadline).err(),
        Some(RunError::NotTrainable)
    );
    assert_eq!(sb.initial_params(&module, FUEL), Err(RunError::NotTrainable));
    let mut r = sb.unit_runner(&module, &credit_inputs(), FUEL, deadline).unwrap();
    assert_eq!(r.set_params(Some(Arc::from(vec![1.0]))), Err(RunError::NotTrainable));
}

/// A hand-written trainable module: 2 parameters, label f64; `cleanroom_train_unit`
/// emits by the first input's value: `v == 1` one value too few, `v == 2` reads params
/// into memory it does not have, `v == 3` keeps a counter in a global (fresh instances
/// must make it 1 every time), else the params read back plus the counter as the loss.
fn train_wat(section: &str, exports: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
  (import "cleanroom" "read_f64" (func $read_f64 (param i32 i32 i32) (result i32)))
  (import "cleanroom" "read_params" (func $read_params (param i32 i32) (result i32)))
  (import "cleanroom" "emit" (func $emit (param i32 i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "cleanroom_process_batch") (param i32) (result i32) (i32.const 0))
  (func $init (result i32)
    (f64.store (i32.const 0) (f64.const 0.25))
    (f64.store (i32.const 8) (f64.const -4))
    (call $emit (i32.const 0) (i32.const 2))
    (i32.const 0))
  (func $train (param $rows i32) (result i32) (local $v f64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (drop (call $read_f64 (i32.const 0) (i32.const 100) (i32.const 1)))
    (local.set $v (f64.load (i32.const 100)))
    (if (f64.eq (local.get $v) (f64.const 2))
      (then (drop (call $read_params (i32.const 65530) (i32.const 2)))))
    (drop (call $read_params (i32.const 200) (i32.const 2)))
    (f64.store (i32.const 216) (f64.convert_i32_u (global.get $calls)))
    (if (f64.eq (local.get $v) (f64.const 1))
      (then (call $emit (i32.const 200) (i32.const 2)) (return (i32.const 0))))
    (call $emit (i32.const 200) (i32.const 3))
    (i32.const 0))
  {exports}
  (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\00")
  {section}
)"#
    );
    wat::parse_str(src).expect("wat")
}

const SECTION: &str = r#"(@custom "cleanroom_train" "\01\00\00\00\02\00\00\00\00\01\01w\02\00\00\00")"#;
const EXPORTS: &str =
    r#"(export "cleanroom_initial_params" (func $init)) (export "cleanroom_train_unit" (func $train))"#;

fn x_batch(v: f64) -> RecordBatch {
    RecordBatch::new(vec![
        TableColumn { name: "x".into(), data: ColumnData::F64(vec![v]) },
        TableColumn { name: "y".into(), data: ColumnData::F64(vec![1.0]) },
    ])
    .unwrap()
}

#[test]
fn hand_written_module_and_its_faults() {
    let sb = sandbox();
    let module = sb.admit(&train_wat(SECTION, EXPORTS)).expect("admitted");
    assert_eq!(sb.initial_params(&module, FUEL).unwrap(), [0.25, -4.0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut r = sb.train_runner(&module, &["x".to_string()], "y", FUEL, deadline).unwrap();
    let p: Arc<[f64]> = Arc::from(vec![1.5, 2.5]);
    // No state crosses units: the call counter is 1 in every fresh instance.
    for _ in 0..3 {
        assert_eq!(r.gradient(&x_batch(0.0), &p).unwrap(), [1.5, 2.5, 1.0]);
    }
    assert_eq!(r.gradient(&x_batch(1.0), &p), Err(RunError::BadEmission { rows: 1, expected: 3, emitted: 2 }));
    assert!(matches!(r.gradient(&x_batch(2.0), &p), Err(RunError::OutOfBounds { call: "read_params", .. })));
    assert_eq!(r.gradient(&x_batch(0.0), &Arc::from(vec![1.0])), Err(RunError::ParamCount { declared: 2, given: 1 }));
    // The runner is still usable after the faults.
    assert_eq!(r.gradient(&x_batch(0.0), &p).unwrap(), [1.5, 2.5, 1.0]);
    // The label must be there.
    let no_label = RecordBatch::new(vec![TableColumn { name: "x".into(), data: ColumnData::F64(vec![0.0]) }]).unwrap();
    assert_eq!(r.gradient(&no_label, &p), Err(RunError::MissingColumn { name: "y".into() }));
}

#[test]
fn malformed_training_declarations_are_refused() {
    let sb = sandbox();
    let only_train = r#"(export "cleanroom_train_unit" (func $train))"#;
    assert_eq!(
        sb.admit(&train_wat(SECTION, only_train)).err(),
        Some(AdmissionError::MissingExport { name: "cleanroom_initial_params" })
    );
    assert_eq!(
        sb.admit(&train_wat("", EXPORTS)).err(),
        Some(AdmissionError::TrainExportWithoutSection { name: "cleanroom_initial_params".into() })
    );
    let twice = format!("{SECTION} {SECTION}");
    assert_eq!(sb.admit(&train_wat(&twice, EXPORTS)).err(), Some(AdmissionError::DuplicateTrainSection));
    let wrong_sum = r#"(@custom "cleanroom_train" "\01\00\00\00\03\00\00\00\00\01\01w\02\00\00\00")"#;
    assert!(matches!(sb.admit(&train_wat(wrong_sum, EXPORTS)).err(), Some(AdmissionError::BadTrainSection(_))));
    let swapped = r#"(export "cleanroom_initial_params" (func $train)) (export "cleanroom_train_unit" (func $init))"#;
    assert!(matches!(sb.admit(&train_wat(SECTION, swapped)).err(), Some(AdmissionError::ExportSignature { .. })));
}
