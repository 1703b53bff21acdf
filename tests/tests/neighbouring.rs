//! The neighbouring-dataset audit of everything the enclave emits (ARCHITECTURE.md, "The
//! release boundary"): the whole job on D and on D′ = D plus one privacy unit (K rows, a
//! zip3 of its own, one row without a zip, extreme values, a positive label), for the demo
//! models, a model that reads validity, and hostile modules written to leak that unit.
//! Both tables hold nulls sealed as nulls (a model input, the group key, the label).
//! Outside the DP-noised values, the provider and the host must see identical transcripts
//! (frames, audit records, host requests, instants); the noised values are then audited
//! statistically against their sensitivity.

use cleanroom_e2e::neighbours::{
    audit_query, hostile_train_wat, hostile_wat, null_reader_wat, token_reader_wat, training_query,
    training_shift_bound, Side, Transcript, K, NULL_UTILIZATION_ROWS, ROWS, ROWS_PER_CHUNK,
};
use std::collections::BTreeMap;

/// Jobs per side and module.
const RUNS: usize = 8;
/// Two instants observed on D and D′ may differ by scheduling noise, never by more.
const TIMING_TOLERANCE_MS: f64 = 40.0;

const DEMO_INPUTS: &[&str] = &["income", "utilization", "late_payments", "tenure_months", "birth_decade"];

fn modules() -> Vec<(&'static str, Vec<u8>)> {
    let mut m = vec![
        ("credit-lr", std::fs::read(cleanroom_e2e::credit_lr_wasm()).expect("credit-lr wasm")),
        ("credit-gbdt", std::fs::read(cleanroom_e2e::credit_gbdt_wasm()).expect("credit-gbdt wasm")),
        ("credit-impute", std::fs::read(cleanroom_e2e::credit_impute_wasm()).expect("credit-impute wasm")),
    ];
    for b in ["honest", "cross_row", "trap", "busy_loop", "fail_status", "emit_count", "nan_row", "worst_case"] {
        m.push((b, wat::parse_str(hostile_wat(b)).expect("wat")));
    }
    m.push(("token_reader", wat::parse_str(token_reader_wat()).expect("wat")));
    m.push(("null_reader", wat::parse_str(null_reader_wat()).expect("wat")));
    m.extend(training_modules());
    m
}

/// The trainable modules: the credit-lr-tune example and hostile ones (see
/// `hostile_train_wat`), each audited with a short DP fine-tuning job.
const TRAINING_BEHAVIOURS: [&str; 6] =
    ["train_honest", "train_huge", "train_nan", "train_trap", "train_busy", "train_cross_unit"];

fn training_modules() -> Vec<(&'static str, Vec<u8>)> {
    let mut m = vec![("credit-lr-tune", std::fs::read(cleanroom_e2e::credit_lr_tune_wasm()).expect("credit-lr-tune"))];
    for b in TRAINING_BEHAVIOURS {
        m.push((b, wat::parse_str(hostile_train_wat(b)).expect("wat")));
    }
    m
}

fn is_training(module: &str) -> bool {
    module == "credit-lr-tune" || module.starts_with("train_")
}

/// Training jobs per side and module.
const TRAINING_RUNS: usize = 6;

/// Run a training job of `module` TRAINING_RUNS times on both sides.
fn audit_training(d: &Side, d1: &Side, module: &str, wasm: &[u8]) -> Vec<(Transcript, Transcript)> {
    let n_params = sandbox::read_train(wasm).expect("section").expect("trainable").n_params as usize;
    (0..TRAINING_RUNS)
        .map(|run| {
            let job = format!("{module}-{run}");
            let (q, q1) = (
                training_query(d, module, inputs(module), &job, n_params),
                training_query(d1, module, inputs(module), &job, n_params),
            );
            let (o, o1) = run_pair(d, d1, module, &q, &q1);
            let (diag, diag1) = (o.owner_diagnostics().expect("D diagnostics"), o1.owner_diagnostics().expect("D′"));
            assert_eq!(
                (diag.rows, diag1.rows, diag.failure.clone(), diag1.failure.clone()),
                (ROWS, ROWS + u64::from(K), None, None),
                "{module} run {run}: the owner's diagnostics"
            );
            (o.transcript(), o1.transcript())
        })
        .collect()
}

/// Training transcripts: identical outside the noised values, at the same instants, the
/// reply at the deadline; a release of the parameters and the evaluation histogram only.
fn check_training_transcripts(module: &str, runs: &[(Transcript, Transcript)], deadline_ms: f64) {
    for (i, (t, t1)) in runs.iter().enumerate() {
        let outputs: Vec<&String> = t.skeleton.iter().filter(|l| l.starts_with("output ")).collect();
        assert_eq!(outputs.len(), 2, "{module} run {i}: {:#?}", t.skeleton);
        assert!(outputs[0].starts_with("output parameters class=dp_sgd "), "{module}: {}", outputs[0]);
        assert!(outputs[1].starts_with("output score_histogram "), "{module}: {}", outputs[1]);
        if t.skeleton != t1.skeleton {
            let diff: Vec<_> = t.skeleton.iter().zip(&t1.skeleton).filter(|(a, b)| a != b).collect();
            panic!("{module} run {i}: D and D′ transcripts differ outside the noised values: {diff:#?}");
        }
        assert_eq!(t.timings.len(), t1.timings.len(), "{module} run {i}: event counts");
        for ((what, a), (_, b)) in t.timings.iter().zip(&t1.timings) {
            assert!((a - b).abs() <= TIMING_TOLERANCE_MS, "{module} run {i}: {what} at {a:.1} ms on D, {b:.1} on D′");
        }
        let reply = t.timings[0].1;
        assert!(
            reply >= deadline_ms && reply <= deadline_ms + TIMING_TOLERANCE_MS * 2.0,
            "{module} run {i}: reply at {reply:.1} ms, the deadline is {deadline_ms} ms"
        );
    }
}

/// The trained parameters of a hostile module (gradients independent of the parameters,
/// so the parameters are linear in the noisy sums): their mean over runs may differ
/// between D and D′ by at most what one clipped unit can move them plus five standard
/// errors of the noise. Unclipped, the target's 10^300 (or state kept across units) would
/// move them by orders of magnitude more.
fn check_trained_parameters(module: &str, runs: &[(Transcript, Transcript)]) {
    // Per step, noise σ·C = 2 on the sum, over B = 50, times lr 0.5: s.d. 0.02 per step.
    let per_run_sd = 0.02 * (cleanroom_e2e::neighbours::TRAINING_STEPS as f64).sqrt();
    let se = (2.0 * per_run_sd * per_run_sd / runs.len() as f64).sqrt();
    for key in ["w[0]", "w[1]"] {
        let mean = |side: usize| {
            let v: Vec<f64> = runs
                .iter()
                .flat_map(|r| if side == 0 { &r.0.noised } else { &r.1.noised })
                .filter(|(o, k, _)| o == "parameters" && k.starts_with(key))
                .map(|(_, _, v)| *v)
                .collect();
            assert_eq!(v.len(), runs.len(), "{module}: {key} in every run");
            v.iter().sum::<f64>() / v.len() as f64
        };
        let shift = (mean(1) - mean(0)).abs();
        let bound = training_shift_bound() + 5.0 * se;
        assert!(shift <= bound, "{module}: {key} moved by {shift:.4} between D and D′ (bound {bound:.4})");
    }
}

fn inputs(module: &str) -> &'static [&'static str] {
    match module {
        "credit-lr" | "credit-gbdt" | "credit-impute" | "credit-lr-tune" => DEMO_INPUTS,
        "token_reader" => &["customer_token"],
        "null_reader" => &["utilization"],
        _ => &["income"],
    }
}

/// Grant `q` on D and `q1` on D′ and run them side by side.
fn run_pair(
    d: &Side,
    d1: &Side,
    module: &str,
    q: &protocol::job::QuerySpec,
    q1: &protocol::job::QuerySpec,
) -> (cleanroom_e2e::neighbours::Observation, cleanroom_e2e::neighbours::Observation) {
    assert_eq!(q.deadline_ms, q1.deadline_ms, "D and D′ have the same public size, so the same deadline");
    d.grant(q);
    d1.grant(q1);
    std::thread::scope(|s| {
        let a = s.spawn(|| d.run(q, module));
        let b = s.spawn(|| d1.run(q1, module));
        (a.join().expect("D"), b.join().expect("D′"))
    })
}

/// Run `module` RUNS times on both sides (in parallel, one job per side at a time).
fn audit(d: &Side, d1: &Side, module: &str) -> Vec<(Transcript, Transcript)> {
    (0..RUNS)
        .map(|run| {
            let job = format!("{module}-{run}");
            let (q, q1) = (audit_query(d, module, inputs(module), &job), audit_query(d1, module, inputs(module), &job));
            let (o, o1) = run_pair(d, d1, module, &q, &q1);
            // The owner, and only the owner, can read what differs: its sealed diagnostics.
            let (diag, diag1) = (o.owner_diagnostics().expect("D diagnostics"), o1.owner_diagnostics().expect("D′"));
            assert_eq!(
                (diag.rows, diag1.rows),
                (ROWS, ROWS + u64::from(K)),
                "{module} run {run}: the owner's diagnostics (failures: {:?} / {:?})",
                diag.failure,
                diag1.failure
            );
            (o.transcript(), o1.transcript())
        })
        .collect()
}

/// Everything outside the noised values is identical, and every instant matches.
fn check_transcripts(module: &str, runs: &[(Transcript, Transcript)], deadline_ms: f64) {
    for (i, (t, t1)) in runs.iter().enumerate() {
        assert!(
            t.skeleton.iter().any(|l| l.starts_with("result ")),
            "{module} run {i}: a validated job must produce a release, got {:#?}",
            t.skeleton
        );
        // Every output class is in the result (its values may be empty when every unit
        // is absent, as with the worst_case module).
        for o in [
            "score_histogram",
            "mean_by_zip3",
            "auc",
            "rows_by_zip3",
            "score_sum",
            "score_spread_by_zip3",
            "score_quantiles",
            "confusion",
            "calibration",
            "score_income_covariance",
        ] {
            assert!(t.skeleton.iter().any(|l| l.starts_with(&format!("output {o} "))), "{module} run {i}: no {o}");
        }
        if t.skeleton != t1.skeleton {
            let diff: Vec<_> = t.skeleton.iter().zip(&t1.skeleton).filter(|(a, b)| a != b).collect();
            panic!(
                "{module} run {i}: D and D′ transcripts differ outside the noised values \
                 ({} vs {} lines); first differences: {diff:#?}",
                t.skeleton.len(),
                t1.skeleton.len()
            );
        }
        assert_eq!(t.timings.len(), t1.timings.len(), "{module} run {i}: event counts");
        for ((what, a), (_, b)) in t.timings.iter().zip(&t1.timings) {
            assert!(
                (a - b).abs() <= TIMING_TOLERANCE_MS,
                "{module} run {i}: {what} at {a:.1} ms on D but {b:.1} ms on D′"
            );
        }
        let reply = t.timings[0].1;
        assert!(
            reply >= deadline_ms && reply <= deadline_ms + TIMING_TOLERANCE_MS * 2.0,
            "{module} run {i}: reply at {reply:.1} ms, the deadline is {deadline_ms} ms"
        );
    }
}

/// The enclave hands the module each unit's validity: null_reader scores exactly the rows
/// with a null utilization 1.0, so the top histogram bin counts them, up to the noise.
fn check_nulls_reach_the_module(runs: &[(Transcript, Transcript)]) {
    let top: Vec<f64> = runs
        .iter()
        .flat_map(|(t, _)| &t.noised)
        .filter(|(o, k, _)| o == "score_histogram" && k == "[0.9, 1)")
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(top.len(), runs.len());
    let mean = top.iter().sum::<f64>() / top.len() as f64;
    let b = f64::from(K);
    let se = (2.0 * 2.0 * b * b / runs.len() as f64).sqrt();
    let want = NULL_UTILIZATION_ROWS as f64;
    assert!((mean - want).abs() <= 5.0 * se, "null_reader's top bin holds {mean:.1} on average, {want} rows are null");
}

/// The noised values: per released (output, key), the mean over runs on D and on D′ may
/// differ by at most the most one unit can move it plus five standard errors of the noise.
/// A leak of the kind the hostile modules attempt moves a count by hundreds.
fn check_noised(module: &str, runs: &[(Transcript, Transcript)]) {
    let collect = |side: usize| {
        let mut m: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for r in runs {
            let t = if side == 0 { &r.0 } else { &r.1 };
            for (o, k, v) in &t.noised {
                m.entry((o.clone(), k.clone())).or_default().push(*v);
            }
        }
        m
    };
    let (d, d1) = (collect(0), collect(1));
    // Histogram counts: sensitivity K per unit; discrete Laplace at scale K/ε (ε = 1) has
    // variance below 2·(K/ε)²; clamping at 0 is 1-Lipschitz and only shrinks the shift.
    let b = f64::from(K);
    let se = (2.0 * 2.0 * b * b / runs.len() as f64).sqrt();
    for ((o, key), v) in &d {
        if o != "score_histogram" {
            continue;
        }
        let v1 = &d1[&(o.clone(), key.clone())];
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        let shift = (mean(v1) - mean(v)).abs();
        assert!(
            shift <= f64::from(K) + 5.0 * se,
            "{module}: histogram bin {key} moved by {shift:.1} on average between D and D′ \
             (one unit may move it by at most {K}; noise s.e. {se:.2})"
        );
    }
    // The extra unit's own zip3 holds K rows: far below the partition-selection cut, in
    // every output grouped by zip3.
    let released_own_group: Vec<_> = d1.keys().filter(|(_, k)| k == "999" || k.starts_with("999/")).collect();
    assert!(released_own_group.is_empty(), "{module}: the extra unit's own group was released: {released_own_group:?}");
}

#[test]
fn neighbouring_dataset_audit_of_everything_the_enclave_emits() {
    let keys = tempfile::tempdir().expect("tempdir");
    let store = keys.path().join("owner.keys");
    let modules = modules();
    let d = Side::new(false, &modules, &store);
    let d1 = Side::new(true, &modules, &store);
    assert_eq!(d.manifest.chunks, d1.manifest.chunks, "the audit needs D and D′ in the same number of chunks");
    assert_eq!(d.manifest.rows_per_chunk, ROWS_PER_CHUNK);
    // What the host stores: chunks padded to one length, so D and D′ look the same at rest.
    assert_eq!(d.chunk_sizes, d1.chunk_sizes, "sealed chunk sizes differ between D and D′");
    let deadline = d.deadline_ms() as f64;
    // NEIGHBOURING_ONLY=a,b runs a subset (for negative controls while developing).
    let only = std::env::var("NEIGHBOURING_ONLY").ok();
    for (module, wasm) in &modules {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|m| m == *module)) {
            continue;
        }
        if is_training(module) {
            let runs = audit_training(&d, &d1, module, wasm);
            let deadline = training_query(&d, module, inputs(module), "deadline", {
                sandbox::read_train(wasm).unwrap().unwrap().n_params as usize
            })
            .deadline_ms as f64;
            check_training_transcripts(module, &runs, deadline);
            // The hostile modules score without the parameters, so their evaluation
            // histogram and their parameters are audited like any noised value;
            // credit-lr-tune's scores move with its (noisy) trained parameters.
            if module.starts_with("train_") {
                check_noised(module, &runs);
                check_trained_parameters(module, &runs);
            }
            eprintln!("{module}: {TRAINING_RUNS} training jobs on D and D′: identical outside the noise");
            continue;
        }
        let runs = audit(&d, &d1, module);
        check_transcripts(module, &runs, deadline);
        check_noised(module, &runs);
        if *module == "null_reader" {
            check_nulls_reach_the_module(&runs);
        }
        eprintln!("{module}: {RUNS} jobs on D and D′: transcripts identical outside the noise; noise within bounds");
    }
}
