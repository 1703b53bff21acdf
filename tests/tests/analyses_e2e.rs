//! Every output class through the real enclave (host-proxy launching enclave-app, real TLS,
//! simulated attestation), on the demo's bank table with a two-output model (credit-multi)
//! and on ISLP's `Default` table (tests/fixtures/byo) with default-lr. Each query is written
//! with `query-init` from the public manifest and the module, checked with `query check`,
//! reviewed, granted, run and verified; then the owner's exact values (`owner-check`, never
//! released) are set beside the DP ones, and most stated 95% intervals must hold them.

use cleanroom_e2e::*;
use protocol::job::{GroupBy, Noise, OutputSpec, QuerySpec, ValueSource};
use protocol::policy::Decimal;
use protocol::result::{JobResult, OutputRelease};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn d(v: &str) -> Decimal {
    Decimal::literal(v)
}

/// Review, grant, submit and verify `query`; the decoded result and the result file.
fn run(w: &World, query: &Path, module: &Path) -> (JobResult, PathBuf) {
    let public = w.sealed.join("public-manifest.json");
    let o = w.cr(&[
        "query",
        "check",
        s(query),
        "--manifest",
        s(&public),
        "--policy",
        s(&w.policy),
        "--module",
        s(module),
        "--group-size",
        "500",
    ]);
    assert!(o.status.success(), "query check: {}", text(&o));
    let plan = text(&o);
    let o = w.cr(&["review", s(query), "--policy", s(&w.policy)]);
    assert!(o.status.success(), "review: {}", text(&o));
    // The provider's check and the owner's review print the same plan of each output.
    for line in text(&o).lines().filter(|l| l.starts_with("  ") && l.contains("noise on")) {
        assert!(plan.contains(line), "query check does not show the review's {line:?}:\n{plan}");
    }
    let o = w.release_query(query);
    assert!(o.status.success(), "release: {}\n{}", text(&o), w.host_log());
    let (o, result) = w.submit_query(query, module, &w.index);
    assert!(o.status.success(), "submit: {}\n{}", text(&o), w.host_log());
    let o = w.verify_result(&result);
    assert!(o.status.success(), "verify-result: {}", text(&o));
    (read_result(&result), result)
}

/// The owner's exact values for `query` on its own machine.
fn exact(w: &World, query: &Path, module: &Path) -> Vec<OutputRelease> {
    let t: Value = serde_json::from_slice(&std::fs::read(w.owner_check(query, module)).unwrap()).unwrap();
    serde_json::from_value(t["outputs"].clone()).unwrap()
}

/// DP next to exact for every class; the share of intervals that hold the exact value.
fn compare(dp: &JobResult, exact: &[OutputRelease], classes: &[&str]) -> f64 {
    let (mut hit, mut total) = (0usize, 0usize);
    for class in classes {
        let o = dp.outputs.iter().find(|o| o.class == *class).unwrap_or_else(|| panic!("no {class} released"));
        let e = exact.iter().find(|e| e.name == o.name).unwrap();
        assert!(!o.noise.is_empty(), "{}: no noise stated", o.name);
        eprintln!("{} ({}, {}):", o.name, o.class, o.mechanism);
        for v in o.values.iter().take(6) {
            let t = e.values.iter().find(|t| t.key == v.key && t.stat == v.stat).map(|t| t.value);
            eprintln!("  {:<24} {:<14} DP {:>12.4}  ci95 {:?}  exact {:?}", v.key, v.stat, v.value, v.ci95, t);
        }
        for v in &o.values {
            let (Some([lo, hi]), Some(t)) =
                (v.ci95, e.values.iter().find(|t| t.key == v.key && t.stat == v.stat).map(|t| t.value))
            else {
                continue;
            };
            total += 1;
            hit += usize::from(lo <= t && t <= hi);
        }
    }
    assert!(total >= 20, "{total} intervals");
    hit as f64 / total as f64
}

fn every_class(of: &dyn Fn(usize) -> Option<ValueSource>, group: &str, label: &str) -> Vec<OutputSpec> {
    let g = || GroupBy(vec![group.to_string()]);
    vec![
        OutputSpec::Count { name: "rows_by_group".into(), group_by: g(), noise: Noise::Laplace, epsilon: d("0.2") },
        OutputSpec::Sum {
            name: "score_sum".into(),
            of: of(0),
            group_by: GroupBy::default(),
            lower: 0.0,
            upper: 1.0,
            noise: Noise::Laplace,
            epsilon: d("0.1"),
        },
        OutputSpec::Mean {
            name: "mean_by_group".into(),
            of: of(0),
            group_by: g(),
            lower: 0.0,
            upper: 1.0,
            noise: Noise::Laplace,
            epsilon: d("0.3"),
            count_share: None,
        },
        OutputSpec::Variance {
            name: "spread_by_group".into(),
            of: of(0),
            group_by: g(),
            lower: 0.0,
            upper: 1.0,
            noise: Noise::Laplace,
            epsilon: d("0.3"),
        },
        OutputSpec::Histogram {
            name: "score_histogram".into(),
            of: of(0),
            edges: (0..=10).map(|i| i as f64 / 10.0).collect(),
            noise: Noise::Laplace,
            epsilon: d("0.2"),
        },
        OutputSpec::Quantiles {
            name: "score_quantiles".into(),
            of: of(0),
            lower: 0.0,
            upper: 1.0,
            quantiles: vec![0.5, 0.9],
            grid: 1024,
            epsilon: d("0.2"),
        },
        OutputSpec::ConfusionMatrix {
            name: "confusion".into(),
            of: of(0),
            label: label.into(),
            thresholds: vec![0.1, 0.3, 0.5],
            noise: Noise::Laplace,
            epsilon: d("0.2"),
        },
        OutputSpec::Calibration {
            name: "calibration".into(),
            of: of(0),
            label: label.into(),
            bins: 5,
            noise: Noise::Laplace,
            epsilon: d("0.2"),
        },
        OutputSpec::Auc {
            name: "auc".into(),
            of: of(0),
            label: label.into(),
            bins: 100,
            noise: Noise::Laplace,
            epsilon: d("0.2"),
        },
    ]
}

const CLASSES: &[&str] =
    &["count", "sum", "mean", "variance", "histogram", "quantiles", "confusion_matrix", "calibration", "auc"];

#[test]
fn every_class_on_the_demo_table_with_a_two_output_model() {
    let multi = std::fs::read(credit_multi_wasm()).expect("credit-multi wasm");
    let w = World::start(WorldOptions {
        rows: 6000,
        rows_per_chunk: 1000,
        budget: "10",
        extra_modules: vec![("credit_multi.wasm".to_string(), multi)],
        policy_args: ["--max-epsilon", "5"].map(String::from).to_vec(),
        ..WorldOptions::default()
    });
    let module = w.path("credit_multi.wasm");
    // query-init names the two outputs and matches the inputs; the starting outputs run.
    let q = w.query("multi-1", &module);
    let spec: QuerySpec = w.read_query(&q);
    assert!(spec.outputs.iter().all(|o| o.values() == vec![Some(&ValueSource::Output("p_default".into()))]));
    let q = w.query_with("multi-2", &module, "multi-every-class.toml", |q| {
        let of = |i: usize| Some(ValueSource::Output(["p_default", "risk_band"][i].into()));
        q.outputs = every_class(&of, "zip3", "defaulted");
        // the two outputs' covariance (risk_band is a logit in [-6, 6]), discrete Gaussian
        q.outputs.push(OutputSpec::Covariance {
            name: "output_covariance".into(),
            of: vec![ValueSource::Output("p_default".into()), ValueSource::Output("risk_band".into())],
            lower: -6.0,
            upper: 6.0,
            epsilon: d("0.2"),
        });
        q.delta = Some(d("0.000001"));
    });
    let (r, _) = run(&w, &q, &module);
    let cost = r.epsilon_spent.as_str().parse::<f64>().unwrap();
    assert!(cost > 1.9 && cost < 5.0, "ε spent {cost}");
    let e = exact(&w, &q, &module);
    let mut classes = CLASSES.to_vec();
    classes.push("covariance");
    let coverage = compare(&r, &e, &classes);
    eprintln!("demo table: {coverage:.3} of the stated 95% intervals hold the owner's exact value");
    assert!(coverage >= 0.8, "{coverage}");
    // A model output the module does not declare is refused by the provider's own check.
    let bad = w.query_with("multi-3", &module, "multi-bad.toml", |q| {
        q.outputs = vec![OutputSpec::Histogram {
            name: "h".into(),
            of: Some(ValueSource::Output("p_defualt".into())),
            edges: vec![0.0, 1.0],
            noise: Noise::Laplace,
            epsilon: d("0.1"),
        }];
    });
    let o = w.cr(&[
        "query",
        "check",
        s(&bad),
        "--manifest",
        s(&w.sealed.join("public-manifest.json")),
        "--policy",
        s(&w.policy),
        "--module",
        s(&module),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .contains("output \"h\": of: the module has no output \"p_defualt\" (it declares: p_default, risk_band)"),
        "{}",
        text(&o)
    );
}

#[test]
fn every_class_on_a_table_this_project_did_not_generate() {
    let module = default_lr_wasm();
    // The owner's rules, with `student` (0/1) also allowed as a value to aggregate.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("default.rules.toml");
    let text = std::fs::read_to_string(byo_fixture("default.rules.toml")).unwrap();
    let student = "transform = { kind = \"recode\", map = { \"Yes\" = 1, \"No\" = 0 } }\nroles = [\"input\"]";
    assert!(text.contains(student));
    std::fs::write(&rules, text.replace(student, &student.replace("[\"input\"]", "[\"input\", \"value\"]"))).unwrap();
    let w = World::start_table(&TableOptions {
        table: byo_fixture("default.csv"),
        rules,
        modules: vec![module.clone()],
        labels: vec![],
        rows_per_chunk: 3800,
        budget: "10".into(),
        policy_args: ["--max-rows-per-unit", "3", "--min-group-size", "20", "--max-epsilon", "5"]
            .map(String::from)
            .to_vec(),
    });
    let q = w.query_with("byo-every-class", &module, "byo-every-class.toml", |q| {
        q.inputs = ["balance", "income", "student"].map(String::from).to_vec();
        q.outputs = every_class(&|_| None, "month", "default");
        // the score's covariance with being a student, discrete Gaussian
        q.outputs.push(OutputSpec::Covariance {
            name: "score_student_covariance".into(),
            of: vec![ValueSource::Output("score".into()), ValueSource::Column("student".into())],
            lower: 0.0,
            upper: 1.0,
            epsilon: d("0.2"),
        });
        q.delta = Some(d("0.000001"));
    });
    let (r, _) = run(&w, &q, &module);
    let e = exact(&w, &q, &module);
    let mut classes = CLASSES.to_vec();
    classes.push("covariance");
    let coverage = compare(&r, &e, &classes);
    eprintln!("ISLP Default: {coverage:.3} of the stated 95% intervals hold the owner's exact value");
    assert!(coverage >= 0.8, "{coverage}");
}
