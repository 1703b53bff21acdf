//! Every example model under model-sdk/examples gives the same bits in the sandbox as
//! natively, on demo-shaped batches (the columns `cleanroom prepare` seals for the demo
//! table, in its order, plus edge values).

mod common;

use common::*;
use model_sdk::{Column as SdkColumn, Model};
use protocol::table::{Column, ColumnData, RecordBatch};

const LR_INPUTS: [&str; 5] = ["income", "utilization", "late_payments", "tenure_months", "birth_decade"];
const LOSS_INPUTS: [&str; 6] = ["income", "utilization", "late_payments", "tenure_months", "birth_decade", "defaulted"];

/// A demo-shaped batch: credit_batch's columns plus `defaulted`.
fn demo_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let mut b = credit_batch(rng, rows);
    let defaulted = (0..rows).map(|_| (rng.below(5) == 0) as i64).collect();
    b.columns.push(Column { name: "defaulted".into(), data: ColumnData::I64(defaulted) });
    RecordBatch::new(b.columns).expect("batch")
}

fn edge_batch() -> RecordBatch {
    let income = vec![0.0, -5.0, 1.0, 1.5, f64::NAN, 1e300, 60_000.0, f64::INFINITY, 42_000.0, f64::NEG_INFINITY];
    let util = vec![0.0, 1.0, 0.3, -1.0, 0.5, 2.0, f64::NAN, 0.9, -0.0, 1e-300];
    let late = vec![0, 100, 1, 0, 3, 0, 2, 1, i64::MAX, -1];
    let tenure = vec![0, 600, 60, -5, 12, 1_000_000, 60, 1, i64::MIN, 0];
    let decade = vec![1980, 2020, 1900, i64::MIN, i64::MAX, 1950, 1990, 0, 1970, -10];
    let defaulted = vec![0, 1, 0, 1, 1, 0, 1, 0, 1, 7];
    let c = |n: &str, d| Column { name: n.into(), data: d };
    RecordBatch::new(vec![
        c("income", ColumnData::F64(income)),
        c("utilization", ColumnData::F64(util)),
        c("late_payments", ColumnData::I64(late)),
        c("tenure_months", ColumnData::I64(tenure)),
        c("birth_decade", ColumnData::I64(decade)),
        c("defaulted", ColumnData::I64(defaulted)),
    ])
    .expect("edge batch")
}

fn native<M: Model>(model: &M, batch: &RecordBatch, inputs: &[&str]) -> Vec<f64> {
    let cols: Vec<SdkColumn<'_>> = inputs
        .iter()
        .map(|name| match batch.column(name).expect("column") {
            ColumnData::F64(v) => SdkColumn::F64(v),
            ColumnData::I64(v) => SdkColumn::I64(v),
            ColumnData::Dict { codes, .. } => SdkColumn::Code(codes),
            ColumnData::Token(v) => SdkColumn::Token(v),
        })
        .collect();
    model_sdk::run_native(model, &cols).expect("native run")
}

/// Run `wasm` and `model` over the same batches; outputs must match bit for bit and lie in
/// `[0, max]` (on the edge rows, NaN passes if `nan_on_edges`: credit-lr maps a NaN input
/// to a NaN probability, which the release engine then refuses to aggregate).
fn check<M: Model>(name: &str, wasm: &[u8], model: &M, inputs: &[&str], max: f64, nan_on_edges: bool) {
    let sb = sandbox();
    let module = sb.admit(wasm).unwrap_or_else(|e| panic!("{name} refused: {e}"));
    assert_eq!(module.inputs().len(), inputs.len());
    let names: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    let mut job = sb.start_job(&module, &names).expect("job");
    let mut rng = Rng::new(0xdec0de);
    let mut batches: Vec<RecordBatch> = [2000, 1, 0, 333, 4096].iter().map(|&n| demo_batch(&mut rng, n)).collect();
    batches.push(edge_batch());
    let mut rows = 0;
    let last = batches.len() - 1;
    for (k, b) in batches.iter().enumerate() {
        let got = job.process_batch(b).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = native(model, b, inputs);
        assert_eq!(got.len(), b.rows);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{name}: row {i} of a {}-row batch: sandbox {g} native {w}", b.rows);
            let nan_ok = nan_on_edges && k == last && g.is_nan();
            assert!(nan_ok || (0.0..=max).contains(g), "{name}: row {i}: {g} outside [0, {max}]");
        }
        rows += b.rows;
    }
    assert_eq!(job.rows(), rows as u64);
    eprintln!("{name}: {rows} rows equal bit for bit; module {} bytes, hash {}", wasm.len(), module.digest());
}

#[test]
fn credit_lr_sandbox_equals_native() {
    check("credit-lr", &credit_lr_wasm(), &credit_lr::CreditLr::default(), &LR_INPUTS, 1.0, true);
}

#[test]
fn credit_gbdt_sandbox_equals_native() {
    check("credit-gbdt", &credit_gbdt_wasm(), &credit_gbdt::CreditGbdt, &LR_INPUTS, 1.0, false);
}

#[test]
fn credit_loss_sandbox_equals_native() {
    check(
        "credit-loss",
        &credit_loss_wasm(),
        &credit_loss::CreditLoss::default(),
        &LOSS_INPUTS,
        credit_loss::MAX_LOSS,
        false,
    );
}

#[test]
fn credit_multi_sandbox_equals_native_row_major() {
    let sb = sandbox();
    let wasm = example_wasm("credit-multi");
    let module = sb.admit(&wasm).expect("credit-multi admitted");
    assert_eq!(module.outputs_per_row(), 2);
    assert_eq!(module.output_names(), ["p_default", "risk_band"]);
    assert_eq!(credit_multi::OUTPUTS, module.output_names());
    let lr = sb.admit(&credit_lr_wasm()).expect("credit-lr admitted");
    let names: Vec<String> = LR_INPUTS.iter().map(|s| s.to_string()).collect();
    let model = credit_multi::CreditMulti::default();
    let mut job = sb.start_job(&module, &names).expect("job");
    let mut lr_job = sb.start_job(&lr, &names).expect("job");
    let mut rng = Rng::new(0x6d_756c_7469);
    let mut batches: Vec<RecordBatch> = [2000, 1, 0, 333, 4096].iter().map(|&n| demo_batch(&mut rng, n)).collect();
    batches.push(edge_batch());
    let bound = credit_multi::RISK_BAND_BOUND;
    let mut rows = 0;
    for b in &batches {
        let got = job.process_batch(b).expect("credit-multi batch");
        let want = native(&model, b, &LR_INPUTS);
        assert_eq!(got.len(), 2 * b.rows);
        assert_eq!(want.len(), 2 * b.rows);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "value {i} of a {}-row batch: sandbox {g} native {w}", b.rows);
        }
        // Row-major: row r's p_default at 2r is credit-lr's score of row r, bit for bit,
        // and its risk_band at 2r + 1 lies in [-6, 6] (NaN where credit-lr's is NaN).
        let p = lr_job.process_batch(b).expect("credit-lr batch");
        for (r, pair) in got.chunks(2).enumerate() {
            assert_eq!(pair[0].to_bits(), p[r].to_bits(), "row {r}: p_default {} credit-lr {}", pair[0], p[r]);
            assert!(
                (-bound..=bound).contains(&pair[1]) || (pair[0].is_nan() && pair[1].is_nan()),
                "row {r}: risk_band {}",
                pair[1]
            );
        }
        rows += b.rows;
    }
    // The enclave's path, one unit per fresh instance, gives the same values.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut units = sb.unit_runner(&module, &names, 10_000_000, deadline).expect("runner");
    let unit = demo_batch(&mut rng, 3);
    let got = units.score(&unit).expect("credit-multi unit");
    let want = native(&model, &unit, &LR_INPUTS);
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    eprintln!(
        "credit-multi: {rows} rows × 2 outputs equal bit for bit; module {} bytes, hash {}",
        wasm.len(),
        module.digest()
    );
}

#[test]
fn gbdt_and_lr_agree_roughly() {
    // Two models of the same risk: their mean probabilities on the same rows are close.
    let mut rng = Rng::new(7);
    let b = demo_batch(&mut rng, 5000);
    let lr = native(&credit_lr::CreditLr::default(), &b, &LR_INPUTS);
    let gb = native(&credit_gbdt::CreditGbdt, &b, &LR_INPUTS);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!((mean(&lr) - mean(&gb)).abs() < 0.15, "lr {} gbdt {}", mean(&lr), mean(&gb));
}

/// `credit_batch` with nulls in the five credit-lr inputs (about one value in `every`),
/// each null's slot holding the canonical value.
fn batch_with_nulls(rng: &mut Rng, rows: usize, every: u64) -> RecordBatch {
    let b = credit_batch(rng, rows);
    let mut validity = std::collections::BTreeMap::new();
    let columns = b
        .columns
        .into_iter()
        .map(|mut c| {
            if LR_INPUTS.contains(&c.name.as_str()) {
                let valid: Vec<bool> = (0..rows).map(|_| rng.below(every) != 0).collect();
                for (i, _) in valid.iter().enumerate().filter(|(_, v)| !**v) {
                    match &mut c.data {
                        ColumnData::F64(v) => v[i] = 0.0,
                        ColumnData::I64(v) => v[i] = 0,
                        _ => unreachable!("the inputs are numbers"),
                    }
                }
                validity.insert(c.name.clone(), protocol::table::Validity::from_bools(valid));
            }
            c
        })
        .collect();
    RecordBatch::with_validity(columns, validity).expect("batch with nulls")
}

#[test]
fn credit_impute_reads_validity_and_equals_native() {
    let sb = sandbox();
    let wasm = example_wasm("credit-impute");
    let module = sb.admit(&wasm).expect("credit-impute admitted");
    // It imports read_validity; a model that does not read validity does not.
    assert!(module.imports().contains(&"cleanroom.read_validity".to_string()), "{:?}", module.imports());
    let lr = sb.admit(&credit_lr_wasm()).expect("credit-lr admitted");
    assert!(!lr.imports().iter().any(|i| i.ends_with("read_validity")), "{:?}", lr.imports());
    let names: Vec<String> = LR_INPUTS.iter().map(|s| s.to_string()).collect();
    let model = credit_impute::CreditImpute::default();
    let mut rng = Rng::new(0xbad_da7a);
    let mut job = sb.start_job(&module, &names).expect("job");
    let mut lr_job = sb.start_job(&lr, &names).expect("job");
    let mut nulls = 0;
    for (rows, every) in [(2000, 4), (1, 2), (0, 2), (333, 1_000_000), (777, 2)] {
        let b = batch_with_nulls(&mut rng, rows, every);
        let valid: Vec<Vec<u8>> = LR_INPUTS
            .iter()
            .map(|n| b.validity(n).expect("validity").as_slice().iter().map(|&v| u8::from(v)).collect())
            .collect();
        nulls += valid.iter().flatten().filter(|&&v| v == 0).count();
        let valid: Vec<&[u8]> = valid.iter().map(Vec::as_slice).collect();
        let cols: Vec<SdkColumn<'_>> = LR_INPUTS
            .iter()
            .map(|n| match b.column(n).expect("column") {
                ColumnData::F64(v) => SdkColumn::F64(v),
                ColumnData::I64(v) => SdkColumn::I64(v),
                _ => unreachable!(),
            })
            .collect();
        let want = model_sdk::run_native_with_validity(&model, &cols, &valid).expect("native run");
        let got = job.process_batch(&b).expect("credit-impute batch");
        assert_eq!(got.len(), rows);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "row {i} of a {rows}-row batch: sandbox {g} native {w}");
        }
        // credit-lr ignores validity and reads the canonical values: deterministic, and
        // riskier than the imputing model's wherever the income is null (0.0, not 60,000;
        // unless the birth decade is null too: year 0 is a very old, very safe applicant).
        let plain = lr_job.process_batch(&b).expect("credit-lr batch");
        assert_eq!(plain, native(&credit_lr::CreditLr::default(), &b, &LR_INPUTS));
        let differ = (0..rows).filter(|&i| valid[0][i] == 0 && valid[4][i] == 1).all(|i| plain[i] > got[i]);
        assert!(differ, "a null income scored as an income in a {rows}-row batch");
    }
    assert!(nulls > 500, "{nulls} nulls");
}
