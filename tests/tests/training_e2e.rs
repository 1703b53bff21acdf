//! DP fine-tuning through the real enclave (host-proxy launching enclave-app, real TLS,
//! simulated attestation): a training query over credit-lr-tune (a weak start) on the demo's
//! bank table is checked, reviewed, granted, run and verified; only the trained parameters
//! and a DP evaluation output leave; the parameters, scored natively on the owner's
//! plaintext, beat the pretrained ones. Training queries the policy or the module cannot
//! admit are refused before the spend.

use cleanroom_e2e::*;
use model_sdk::{run_native, Column, Trainable};
use protocol::job::{Noise, OutputSpec, QuerySpec, ValueSource};
use protocol::policy::Decimal;
use protocol::training::{Optimizer, TrainingSpec};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn d(v: &str) -> Decimal {
    Decimal::literal(v)
}

fn world() -> World {
    World::start(WorldOptions {
        rows: 3000,
        budget: "20",
        extra_modules: vec![
            ("credit_lr_tune.wasm".into(), std::fs::read(credit_lr_tune_wasm()).unwrap()),
            ("credit_mlp.wasm".into(), std::fs::read(credit_mlp_wasm()).unwrap()),
        ],
        fuel_per_unit: 60_000,
        policy_args: ["--allow-training", "--max-epsilon", "10"].map(String::from).to_vec(),
        ..WorldOptions::default()
    })
}

fn training(sigma: &str, steps: u32) -> TrainingSpec {
    TrainingSpec {
        label: "defaulted".into(),
        sample_rate: d("0.05"),
        noise_multiplier: d(sigma),
        clip_norm: d("1"),
        steps,
        expected_batch_size: 150,
        optimizer: Optimizer::Adam { learning_rate: d("0.05"), beta1: d("0.9"), beta2: d("0.999"), epsilon: d("1e-8") },
        delta: d("0.000001"),
    }
}

/// The query-init skeleton for `module`, made a training query with one DP evaluation
/// output (AUC of the trained model against the label), its deadline from `query check`.
fn training_query(w: &World, job: &str, module: &Path, t: TrainingSpec) -> std::path::PathBuf {
    let q = w.query(job, module);
    let mut spec: QuerySpec = w.read_query(&q);
    spec.training = Some(t);
    spec.outputs = vec![OutputSpec::Auc {
        name: "auc_after_training".into(),
        of: Some(ValueSource::Output("score".into())),
        label: "defaulted".into(),
        bins: 100,
        noise: Noise::Laplace,
        epsilon: d("0.5"),
    }];
    spec.delta = None;
    spec.deadline_ms = 600_000;
    let q = w.write_query(&format!("{job}.toml"), &spec);
    let public = w.sealed.join("public-manifest.json");
    let o = w.cr(&["query", "check", s(&q), "--manifest", s(&public), "--policy", s(&w.policy), "--module", s(module)]);
    assert!(o.status.success(), "query check: {}", text(&o));
    let plan = text(&o);
    let least: u64 = plan
        .lines()
        .find_map(|l| l.trim().strip_prefix("the worst case needs a deadline of at least "))
        .and_then(|r| r.trim_end_matches(" ms").parse().ok())
        .unwrap_or_else(|| panic!("no deadline in the plan:\n{plan}"));
    assert!(plan.contains("DP-SGD") && plan.contains("accounted: ε ="), "{plan}");
    spec.deadline_ms = least.div_ceil(1000) * 1000 + 1000;
    w.write_query(&format!("{job}.toml"), &spec)
}

/// The bank table's five inputs and label, from the owner's plaintext CSV.
struct Plain {
    income: Vec<f64>,
    util: Vec<f64>,
    late: Vec<i64>,
    tenure: Vec<i64>,
    decade: Vec<i64>,
    label: Vec<f64>,
}

fn plaintext(w: &World) -> Plain {
    let csv = std::fs::read_to_string(w.path("data/bank.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (i, u, l, t, b, y) = (
        col("income"),
        col("utilization"),
        col("late_payments"),
        col("tenure_months"),
        col("birth_year"),
        col("defaulted"),
    );
    let mut p = Plain { income: vec![], util: vec![], late: vec![], tenure: vec![], decade: vec![], label: vec![] };
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        p.income.push(f[i].parse().unwrap());
        p.util.push(f[u].parse().unwrap());
        p.late.push(f[l].parse().unwrap());
        p.tenure.push(f[t].parse().unwrap());
        p.decade.push(f[b].parse::<i64>().unwrap() / 10 * 10);
        p.label.push(f[y].parse().unwrap());
    }
    p
}

fn native_auc<M: Trainable>(model: &M, p: &Plain) -> f64 {
    let cols = [
        Column::F64(&p.income),
        Column::F64(&p.util),
        Column::I64(&p.late),
        Column::I64(&p.tenure),
        Column::I64(&p.decade),
    ];
    cleanroom_e2e::exact_auc(&run_native(model, &cols).unwrap(), &p.label)
}

#[test]
fn dp_fine_tuning_releases_only_parameters_and_beats_the_weak_start() {
    let w = world();
    let module = w.path("credit_lr_tune.wasm");
    let q = training_query(&w, "tune-lr", &module, training("1", 60));
    let review = w.cr(&["review", s(&q), "--policy", s(&w.policy)]);
    assert!(review.status.success(), "review: {}", text(&review));
    let r = text(&review);
    for shown in ["q = 0.05", "σ = 1", "C = 1", "T = 60 steps", "accounted: ε =", "only the final parameters leave"] {
        assert!(r.contains(shown), "review does not show {shown:?}:\n{r}");
    }
    let o = w.release_query(&q);
    assert!(o.status.success(), "release: {}\n{}", text(&o), w.host_log());
    let (o, result) = w.submit_query(&q, &module, &w.index);
    assert!(o.status.success(), "submit: {}\n{}", text(&o), w.host_log());
    assert!(w.verify_result(&result).status.success());
    let res = read_result(&result);
    let names: Vec<&str> = res.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["parameters", "auc_after_training"], "nothing else leaves");
    let params = &res.outputs[0];
    assert_eq!(params.class, "dp_sgd");
    let keys: Vec<&str> = params.values.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["w[0]", "w[1]", "w[2]", "w[3]", "w[4]", "b"]);
    assert!(params.noise[0].budget.contains("T = 60"), "{:?}", params.noise);
    // The result's ε is the accountant's plus the evaluation output's.
    let charged: f64 = res.epsilon_spent.as_str().parse().unwrap();
    let trained_eps: f64 = params.epsilon.as_str().parse().unwrap();
    assert!((charged - trained_eps - 0.5).abs() < 1e-6, "{charged} vs {trained_eps} + 0.5");

    // The owner's view: the released parameters against the weak start, on its plaintext.
    let plain = plaintext(&w);
    let weak = credit_lr_tune::CreditLrTune::default();
    let mut tuned = weak;
    tuned.set_params(&params.values.iter().map(|v| v.value).collect::<Vec<_>>());
    let (before, after) = (native_auc(&weak, &plain), native_auc(&tuned, &plain));
    eprintln!("AUC: pretrained {before:.4}, DP fine-tuned {after:.4}; released DP AUC {:?}", res.outputs[1].values);
    assert!((before - 0.5).abs() < 1e-9, "the weak start has no signal: {before}");
    assert!(after > 0.65, "DP fine-tuning did not learn: AUC {after}");

    // The audit record names the mechanism with its hyperparameters and accounting.
    let log = std::fs::read_to_string(w.fetch_audit()).unwrap();
    let records: Vec<String> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            String::from_utf8_lossy(&hex::decode(v["payload"].as_str().unwrap()).unwrap()).into_owned()
        })
        .collect();
    assert!(
        records.iter().any(|r| r.contains("poisson_subsampled_discrete_gaussian (q = 0.05, σ = 1, T = 60")),
        "no audit record names the training: {records:?}"
    );
}

#[test]
fn training_queries_the_policy_or_module_cannot_admit_are_refused_before_the_spend() {
    let w = world();
    // A scoring module has no training section.
    let lr = credit_lr_wasm();
    let q = training_query(&w, "not-trainable", &w.path("credit_lr_tune.wasm"), training("1", 10));
    let mut spec = w.read_query(&q);
    spec.module_hash = protocol::Digest::of(&std::fs::read(&lr).unwrap());
    spec.job_id = "not-trainable-2".into();
    let q2 = w.write_query("not-trainable-2.toml", &spec);
    assert!(w.release_query(&q2).status.success());
    let (o, _) = w.submit_query(&q2, &lr, &w.index);
    assert_fails_with(&o, "module_not_trainable");
    // σ below the policy's floor: refused by the owner's own check, before any grant.
    let before = w.budget();
    let mut low = spec.clone();
    low.module_hash = protocol::Digest::of(&std::fs::read(credit_lr_tune_wasm()).unwrap());
    low.job_id = "low-noise".into();
    low.training = Some(training("0.3", 10));
    let q3 = w.write_query("low-noise.toml", &low);
    assert_fails_with(&w.release_query(&q3), "noise_multiplier");
    assert_eq!(w.budget(), before, "a refused release spends nothing");
}
