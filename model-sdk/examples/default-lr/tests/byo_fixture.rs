//! default-lr over the BYO fixture table (`tests/fixtures/byo/default.csv`): the native
//! twin's row-level AUC equals the one `scripts/fixtures/fit_models.py` prints.
use default_lr::DefaultLr;
use model_sdk::{run_native, Column};

/// Printed by `scripts/fixtures/fit_models.py` ("AUC on the fixture rows").
const PYTHON_AUC: f64 = 0.9496937356877907;
const ROWS: usize = 11_349;
const POSITIVES: usize = 376;

struct Table {
    balance: Vec<f64>,
    income: Vec<f64>,
    student: Vec<i64>,
    label: Vec<u8>,
}

fn yes_no(v: &str) -> u8 {
    match v {
        "Yes" => 1,
        "No" => 0,
        other => panic!("expected Yes or No, got {other:?}"),
    }
}

/// The fixture is written by our own script with no quoted fields, so a split on commas
/// reads it exactly (checked: every line has as many fields as the header).
fn load() -> Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/byo/default.csv");
    let text = std::fs::read_to_string(path).expect("read the BYO fixture");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no column {name}"));
    let (b, i, s, d) = (col("balance"), col("income"), col("student"), col("default"));
    let mut t = Table { balance: vec![], income: vec![], student: vec![], label: vec![] };
    for line in lines {
        assert!(!line.contains('"'), "quoted field: {line}");
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len(), "{line}");
        t.balance.push(f[b].parse().expect("balance"));
        t.income.push(f[i].parse().expect("income"));
        t.student.push(i64::from(yes_no(f[s])));
        t.label.push(yes_no(f[d]));
    }
    t
}

/// Mann–Whitney AUC; tied scores get their average rank (count half).
fn auc(scores: &[f64], labels: &[u8]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j + 2) as f64 / 2.0;
        let pos_here = order[i..=j].iter().filter(|&&k| labels[k] == 1).count();
        rank_sum_pos += avg * pos_here as f64;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l == 1).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[test]
fn auc_over_the_fixture_rows_matches_python() {
    let t = load();
    assert_eq!(t.label.len(), ROWS);
    assert_eq!(t.label.iter().filter(|&&l| l == 1).count(), POSITIVES);
    let scores =
        run_native(&DefaultLr::default(), &[Column::F64(&t.balance), Column::F64(&t.income), Column::I64(&t.student)])
            .expect("scores");
    assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)));
    let a = auc(&scores, &t.label);
    assert!((a - PYTHON_AUC).abs() < 1e-9, "native AUC {a} vs python {PYTHON_AUC}");
}

#[test]
fn auc_handles_ties_and_order() {
    assert_eq!(auc(&[0.1, 0.2, 0.3, 0.4], &[0, 0, 1, 1]), 1.0);
    assert_eq!(auc(&[0.4, 0.3, 0.2, 0.1], &[0, 0, 1, 1]), 0.0);
    assert_eq!(auc(&[0.5, 0.5], &[0, 1]), 0.5);
}
