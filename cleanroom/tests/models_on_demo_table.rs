//! The example models give the same bits in the sandbox as natively on the demo table
//! itself: generated with the demo's seed, prepared and sealed by the owner's pipeline,
//! decrypted, then scored both ways.

use model_sdk::{Column as SdkColumn, Model};
use owner_prep::keystore::KeyStore;
use owner_prep::prepare::{open_sealed, prepare, PrepareOptions};
use protocol::table::{ColumnData, RecordBatch};
use sandbox::{Sandbox, SandboxConfig};
use std::path::PathBuf;

const LR_INPUTS: [&str; 5] = ["income", "utilization", "late_payments", "tenure_months", "birth_decade"];
const LOSS_INPUTS: [&str; 6] = ["income", "utilization", "late_payments", "tenure_months", "birth_decade", "defaulted"];

/// The module `make wasm` built (or `$CLEANROOM_<NAME>_WASM`).
fn wasm(package: &str) -> Vec<u8> {
    let file = package.replace('-', "_");
    let var = format!("CLEANROOM_{}_WASM", file.to_uppercase());
    let path = std::env::var_os(&var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/wasm32-unknown-unknown/release/{file}.wasm"))
    });
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make wasm`)", path.display()))
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

fn check<M: Model>(sb: &Sandbox, batches: &[RecordBatch], package: &str, model: &M, inputs: &[&str]) {
    let module = sb.admit(&wasm(package)).unwrap_or_else(|e| panic!("{package}: {e}"));
    let names: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    let mut job = sb.start_job(&module, &names).expect("job");
    let mut rows = 0;
    for b in batches {
        let got = job.process_batch(b).expect("sandbox run");
        let want = native(model, b, inputs);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{package}: row {i}: sandbox {g}, native {w}");
        }
        rows += b.rows;
    }
    eprintln!("{package}: {rows} demo-table rows equal bit for bit");
}

#[test]
fn example_models_match_native_bit_for_bit_on_the_demo_table() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, pq) = (dir.path().join("bank.csv"), dir.path().join("bank.parquet"));
    // The demo's table: 200,000 customers, seed 7 (`cleanroom generate` defaults).
    owner_prep::datagen::generate(200_000, 7, &csv, &pq).unwrap();
    let mut ks = KeyStore::create_or_open(&dir.path().join("owner.keys")).unwrap();
    let report = prepare(&pq, &mut ks, &dir.path().join("sealed"), &PrepareOptions::default()).unwrap();
    let batches = open_sealed(&dir.path().join("sealed"), &ks.data_key(&report.dataset_digest).unwrap()).unwrap();
    // The shipped rules suppress the rows of zip3 × decade classes under 10 people.
    let suppressed = report.k_anonymity.as_ref().map_or(0, |k| k.rows_suppressed);
    assert!(suppressed > 0 && suppressed < 20_000, "{suppressed}");
    assert_eq!(batches.iter().map(|b| b.rows as u64).sum::<u64>() + suppressed, 200_000);

    let sb = Sandbox::new(SandboxConfig::default()).unwrap();
    check(&sb, &batches, "credit-lr", &credit_lr::CreditLr::default(), &LR_INPUTS);
    check(&sb, &batches, "credit-gbdt", &credit_gbdt::CreditGbdt, &LR_INPUTS);
    check(&sb, &batches, "credit-loss", &credit_loss::CreditLoss::default(), &LOSS_INPUTS);
}
