//! DP fine-tuning's utility on the demo's bank table (issue 15): the test AUC of the
//! pretrained parameters, of DP fine-tuning at ε = 1 and ε = 4 (δ = 10⁻⁶) and of the owner's
//! non-private fine-tuning, for credit-lr-tune and credit-mlp.
//!
//! `cargo run --release -p cleanroom-e2e --example dpsgd_utility -- [--rows N] [--seeds K] [--tune]`
//!
//! - The table is `cleanroom generate --seed 7`'s (200,000 rows unless `--rows`), in memory,
//!   as the sandbox reads its sealed copy: `birth_decade` = birth_year / 10 · 10, label
//!   `defaulted`, and the rows of (zip3, birth_decade) classes under k = 10 left out, as
//!   `prepare` with `cleanroom/rules/bank.toml` does. Each customer is one privacy unit of
//!   one row. A fixed fifth of the rows is held out to measure AUC; training sees the rest.
//! - DP: `release::training::train`, the enclave's own DP-SGD (Poisson sampling, clipping onto
//!   the integer lattice, discrete Gaussian noise, Adam), with σ the smallest (to 10⁻³) for
//!   which `TrainingPlan::within` the demo policy's bounds (`policy init --allow-training`)
//!   charges at most the target ε; the δ charged, the overrun bound's share included, is at
//!   most 10⁻⁶. The gradient oracle is the native twin, bit for
//!   bit the sandbox's gradient (sandbox/tests/training.rs; `--bench training` checks whole
//!   runs), so the enclave releases the same parameters from the same randomness: only the
//!   time differs. The randomness is seeded (the enclave draws it from the platform):
//!   `--seeds K` repeats every run with seeds 1..=K and reports the means (default 1).
//! - Non-private: `release::training::train_nonprivate_reference`, the same sampling, steps
//!   and optimizer on the raw gradients, with neither clipping nor noise: what the owner can
//!   do on its own plaintext (`cleanroom owner-check` runs it for a training query).
//! - Hyperparameters ([`LR`], [`MLP`]) were chosen with `--tune`: at ε = 4, by AUC on a
//!   validation fifth of the training rows (the test rows are never looked at); ε = 1 reuses
//!   them with its own σ. Tuning on the data spends privacy no ε here includes; the usual
//!   caveat of reported DP-SGD figures.
//!
//! Prints a table, then one JSON line per figure (`dpsgd_auc_<model>_<setting>`; the DP
//! ones have the non-private AUC as baseline, ratio DP / non-private).

use dp::{Epsilon, Rational};
use model_sdk::{params_of, run_native, unit_gradient_native, Column, Trainable};
use owner_prep::datagen::{Customer, Generator, DEFAULT_ROWS, MAX_ROWS};
use protocol::policy::Decimal;
use protocol::training::{Optimizer, TrainingLimits, TrainingSpec};
use release::training::{train, train_nonprivate_reference, TrainingPlan};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// `scripts/demo.sh` generates its table with this seed.
const DEMO_SEED: u64 = 7;
/// `bank.toml`'s k over (zip3, birth_decade).
const K: usize = 10;
/// The accountant's δ: 10⁻⁶ less 10⁻¹², so that with the overrun bound's share (< 10⁻¹⁶)
/// the δ charged stays at most 10⁻⁶.
const ACCOUNTANT_DELTA: &str = "0.000000999999";

/// A training run's public hyperparameters (σ aside: it follows from ε).
#[derive(Debug, Clone, Copy)]
struct Hyper {
    /// q
    sample_rate: &'static str,
    steps: u32,
    clip_norm: &'static str,
    learning_rate: &'static str,
}

/// credit-lr-tune's hyperparameters: the best validation AUC of `--tune` at 200,000 rows.
const LR: Hyper = Hyper { sample_rate: "0.04", steps: 250, clip_norm: "10", learning_rate: "0.02" };
/// credit-mlp's hyperparameters: the best validation AUC of `--tune` at 200,000 rows.
const MLP: Hyper = Hyper { sample_rate: "0.04", steps: 250, clip_norm: "10", learning_rate: "0.05" };

/// The table's model inputs and labels, column by column.
#[derive(Default)]
struct Table {
    income: Vec<f64>,
    util: Vec<f64>,
    late: Vec<i64>,
    tenure: Vec<i64>,
    decade: Vec<i64>,
    label: Vec<f64>,
}

impl Table {
    /// The demo's table as sealed: `rows` generated, k-anonymity suppression applied.
    fn demo(rows: u64) -> Table {
        let customers: Vec<Customer> = Generator::new(DEMO_SEED).take(rows as usize).collect();
        let class = |c: &Customer| (c.zip[..3].to_string(), c.birth_year / 10 * 10);
        let mut sizes: HashMap<(String, i64), usize> = HashMap::new();
        for c in &customers {
            *sizes.entry(class(c)).or_default() += 1;
        }
        let mut t = Table::default();
        for c in customers.iter().filter(|c| sizes[&class(c)] >= K) {
            t.income.push(c.income);
            t.util.push(c.utilization);
            t.late.push(c.late_payments);
            t.tenure.push(c.tenure_months);
            t.decade.push(c.birth_year / 10 * 10);
            t.label.push(c.defaulted as f64);
        }
        t
    }

    fn len(&self) -> usize {
        self.label.len()
    }

    /// The five inputs of rows `r`, in the models' order.
    fn columns(&self, r: std::ops::Range<usize>) -> [Column<'_>; 5] {
        [
            Column::F64(&self.income[r.clone()]),
            Column::F64(&self.util[r.clone()]),
            Column::I64(&self.late[r.clone()]),
            Column::I64(&self.tenure[r.clone()]),
            Column::I64(&self.decade[r]),
        ]
    }

    /// (rows kept, rows held out): every row is held out with probability 1/5, by a hash of
    /// its index and `salt`.
    fn split(&self, salt: u64) -> (Table, Table) {
        let (mut kept, mut held) = (Table::default(), Table::default());
        for i in 0..self.len() {
            let t = if mix(salt ^ i as u64).is_multiple_of(5) { &mut held } else { &mut kept };
            t.income.push(self.income[i]);
            t.util.push(self.util[i]);
            t.late.push(self.late[i]);
            t.tenure.push(self.tenure[i]);
            t.decade.push(self.decade[i]);
            t.label.push(self.label[i]);
        }
        (kept, held)
    }
}

/// SplitMix64's output function: a well-mixed hash of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn test_auc<M: Trainable + Default>(params: &[f64], test: &Table) -> f64 {
    let mut model = M::default();
    model.set_params(params);
    cleanroom_e2e::exact_auc(&run_native(&model, &test.columns(0..test.len())).expect("scores"), &test.label)
}

/// The public divisor of a step's gradient sum: q times the units, rounded.
fn expected_batch(h: &Hyper, units: usize) -> u64 {
    (h.sample_rate.parse::<f64>().expect("q") * units as f64).round().max(1.0) as u64
}

fn spec(h: &Hyper, sigma: &str, units: usize) -> TrainingSpec {
    let d = |v: &str| Decimal::literal(v);
    TrainingSpec {
        label: "defaulted".into(),
        sample_rate: d(h.sample_rate),
        noise_multiplier: d(sigma),
        clip_norm: d(h.clip_norm),
        steps: h.steps,
        expected_batch_size: expected_batch(h, units),
        optimizer: Optimizer::Adam {
            learning_rate: d(h.learning_rate),
            beta1: d("0.9"),
            beta2: d("0.999"),
            epsilon: d("1e-8"),
        },
        delta: d(ACCOUNTANT_DELTA),
    }
}

/// The plan with the smallest σ (a multiple of 10⁻³, at least the policy's floor) whose
/// charge is at most ε = `epsilon` and δ = 10⁻⁶: a binary search, ε falling as σ grows.
fn plan_for(h: &Hyper, epsilon: u32, units: usize) -> TrainingPlan {
    let limits = TrainingLimits::default();
    let (max_eps, max_delta) =
        (Epsilon::from_ratio(u128::from(epsilon), 1).expect("ε"), Rational::new(1, 1_000_000).expect("δ"));
    let plan = |milli: u64| {
        let sigma = format!("{}.{:03}", milli / 1000, milli % 1000);
        TrainingPlan::within(&spec(h, &sigma, units), &limits).expect("plan")
    };
    let fits = |p: &TrainingPlan| p.epsilon <= max_eps && p.delta <= max_delta;
    let (mut lo, mut hi) = (500, 1_000_000);
    if fits(&plan(lo)) {
        return plan(lo);
    }
    assert!(fits(&plan(hi)), "σ = 1000 does not reach ε = {epsilon}");
    // Invariant: !fits(lo), fits(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(&plan(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    plan(hi)
}

/// Unit `u`'s gradient at `at` and its loss, as `cleanroom_train_unit` emits them.
fn gradient<M: Trainable>(model: &mut M, data: &Table, u: usize, at: &[f64]) -> Option<Vec<f64>> {
    model.set_params(at);
    let (mut g, loss) = unit_gradient_native(model, &data.columns(u..u + 1), &data.label[u..u + 1]).ok()?;
    g.push(loss);
    Some(g)
}

/// DP fine-tuning: the enclave's algorithm with the native twin as gradient oracle.
fn dp_fine_tune<M: Trainable + Default>(plan: &TrainingPlan, data: &Table, seed: u64) -> Vec<f64> {
    let mut model = M::default();
    let initial = params_of(&model);
    let mut oracle = |u: usize, at: &Arc<[f64]>| gradient(&mut model, data, u, at);
    let mut rng = dp::seeded_rng_from_u64(seed);
    let max = plan.max_sampled_units(data.len() as u64);
    let trained = train(plan, initial, data.len(), max, &mut oracle, &mut rng).expect("DP-SGD ran");
    trained.params().to_vec()
}

/// The owner's non-private fine-tuning: the same sampling, steps and optimizer on the raw
/// gradients (`plan`'s σ and C play no part).
fn plain_fine_tune<M: Trainable + Default>(plan: &TrainingPlan, data: &Table, seed: u64) -> Vec<f64> {
    let mut model = M::default();
    let initial = params_of(&model);
    let mut oracle = |u: usize, at: &Arc<[f64]>| gradient(&mut model, data, u, at);
    let mut rng = dp::seeded_rng_from_u64(seed);
    train_nonprivate_reference(plan, initial, data.len(), &mut oracle, &mut rng).expect("reference ran")
}

/// One model's test AUCs, one per seed: pretrained, DP at ε = 1 and 4, non-private.
struct Figures {
    model: &'static str,
    hyper: Hyper,
    pretrained: f64,
    dp: Vec<(u32, TrainingPlan, Vec<f64>)>,
    non_private: Vec<f64>,
}

fn evaluate<M: Trainable + Default>(model: &'static str, h: Hyper, train: &Table, test: &Table, seeds: u64) -> Figures {
    let pretrained = test_auc::<M>(&params_of(&M::default()), test);
    let dp: Vec<_> = [1, 4]
        .into_iter()
        .map(|eps| {
            let plan = plan_for(&h, eps, train.len());
            let aucs = (1..=seeds).map(|s| test_auc::<M>(&dp_fine_tune::<M>(&plan, train, s), test)).collect();
            (eps, plan, aucs)
        })
        .collect();
    // Any plan of these hyperparameters: the reference uses neither σ nor C.
    let plan = &dp[1].1;
    let non_private = (1..=seeds).map(|s| test_auc::<M>(&plain_fine_tune::<M>(plan, train, s), test)).collect();
    Figures { model, hyper: h, pretrained, dp, non_private }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The mean, and over several seeds the range.
fn shown(v: &[f64]) -> String {
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if v.len() > 1 {
        format!("{:.4} ({lo:.4}–{hi:.4})", mean(v))
    } else {
        format!("{:.4}", mean(v))
    }
}

fn sigma(plan: &TrainingPlan) -> &str {
    plan.spec.noise_multiplier.as_str()
}

fn report(figures: &[Figures], rows: u64, train: &Table, test: &Table, seeds: u64, seconds: f64) {
    println!(
        "DP fine-tuning on the demo's bank table: {rows} rows generated (seed {DEMO_SEED}), {} after k-anonymity; \
         {} training units (one row each), {} test rows; {seeds} seed(s), means{}",
        train.len() + test.len(),
        train.len(),
        test.len(),
        if seeds > 1 { " (range)" } else { "" }
    );
    let w = if seeds > 1 { 24 } else { 8 };
    println!(
        "test AUC  {:>10}  {:>w$}  {:>w$}  {:>w$}  {:>10}",
        "pretrained", "DP ε=1", "DP ε=4", "non-private", "gap ε=4"
    );
    for f in figures {
        let at = |e: u32| f.dp.iter().find(|d| d.0 == e).map(|d| d.2.as_slice()).unwrap_or_default();
        println!(
            "{:<8}  {:>10.4}  {:>w$}  {:>w$}  {:>w$}  {:>10.4}",
            f.model,
            f.pretrained,
            shown(at(1)),
            shown(at(4)),
            shown(&f.non_private),
            mean(&f.non_private) - mean(at(4))
        );
    }
    for f in figures {
        let h = &f.hyper;
        let sigmas: Vec<String> = f
            .dp
            .iter()
            .map(|(e, p, _)| format!("ε={e}: σ={} (accounted ε={}, δ={:.3e})", sigma(p), p.epsilon, p.delta.to_f64()))
            .collect();
        println!(
            "{}: q={} (expected batch {}), T={}, C={}, Adam lr={}; {}",
            f.model,
            h.sample_rate,
            expected_batch(h, train.len()),
            h.steps,
            h.clip_norm,
            h.learning_rate,
            sigmas.join("; ")
        );
    }
    println!("({seconds:.1} s; DP gradients from the native twin, bit for bit the sandbox's)");
    let line = |bench: &str, value: f64, baseline: Option<(&str, f64)>| {
        let (b, r) = match baseline {
            Some((name, base)) => (format!("\"{name}\""), format!("{:.4}", value / base)),
            None => ("null".into(), "null".into()),
        };
        println!(
            "{{\"bench\": \"{bench}\", \"value\": {value:.4}, \"unit\": \"auc\", \"baseline\": {b}, \"ratio\": {r}}}"
        );
    };
    for f in figures {
        let base = format!("dpsgd_auc_{}_nonprivate", f.model);
        line(&format!("dpsgd_auc_{}_pretrained", f.model), f.pretrained, None);
        line(&base, mean(&f.non_private), None);
        for (e, _, aucs) in &f.dp {
            line(&format!("dpsgd_auc_{}_eps{e}", f.model), mean(aucs), Some((&base, mean(&f.non_private))));
        }
    }
}

/// `--tune`: candidates at ε = 4 on a validation fifth of the training rows; prints each
/// and then the best per model by validation AUC of DP fine-tuning.
fn tune(train: &Table, seed: u64) {
    let (fit, validation) = train.split(0x7475_6e65);
    println!("tuning at ε = 4: {} units to fit, {} validation rows", fit.len(), validation.len());
    println!("model  q      T     C    lr     σ       val AUC (DP)  val AUC (non-private)");
    let mut best: [Option<(f64, Hyper)>; 2] = [None, None];
    for (q, steps) in [("0.01", 1000), ("0.04", 250)] {
        for clip in ["1", "4", "10"] {
            for lr in ["0.005", "0.02", "0.05"] {
                let h = Hyper { sample_rate: q, steps, clip_norm: clip, learning_rate: lr };
                let plan = plan_for(&h, 4, fit.len());
                let aucs = [
                    tune_row::<credit_lr_tune::CreditLrTune>("lr", &h, &plan, &fit, &validation, seed),
                    tune_row::<credit_mlp::CreditMlp>("mlp", &h, &plan, &fit, &validation, seed),
                ];
                for (b, auc) in best.iter_mut().zip(aucs) {
                    if b.is_none_or(|(a, _)| auc > a) {
                        *b = Some((auc, h));
                    }
                }
            }
        }
    }
    for (name, b) in ["lr", "mlp"].iter().zip(best) {
        println!("best for {name}: {:?}", b.expect("candidates"));
    }
}

/// One candidate's validation AUC with DP fine-tuning (returned) and without (printed).
fn tune_row<M: Trainable + Default>(
    name: &str,
    h: &Hyper,
    plan: &TrainingPlan,
    fit: &Table,
    val: &Table,
    seed: u64,
) -> f64 {
    let dp = test_auc::<M>(&dp_fine_tune::<M>(plan, fit, seed), val);
    let plain = test_auc::<M>(&plain_fine_tune::<M>(plan, fit, seed), val);
    println!(
        "{name:<6} {:<6} {:<5} {:<4} {:<6} {:<7} {dp:>12.4} {plain:>22.4}",
        h.sample_rate,
        h.steps,
        h.clip_norm,
        h.learning_rate,
        sigma(plan)
    );
    dp
}

const USAGE: &str = "usage: dpsgd_utility [--rows N (1,000 to 100,000,000)] [--seeds K] [--tune]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fail = |why: String| -> ! {
        eprintln!("error: {why}\n{USAGE}");
        std::process::exit(2)
    };
    let (mut rows, mut seeds, mut tuning) = (DEFAULT_ROWS, 1, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = || {
            let v = it.next().unwrap_or_else(|| fail(format!("{a} takes a number")));
            v.parse::<u64>().unwrap_or_else(|_| fail(format!("{a} takes a number, not {v:?}")))
        };
        match a.as_str() {
            "--rows" => rows = number(),
            "--seeds" => seeds = number().max(1),
            "--tune" => tuning = true,
            _ => fail(format!("unknown argument {a:?}")),
        }
    }
    if !(1_000..=MAX_ROWS).contains(&rows) {
        fail(format!("--rows {rows} is out of range"));
    }
    let started = Instant::now();
    let (train, test) = Table::demo(rows).split(0x7465_7374);
    if tuning {
        return tune(&train, 1);
    }
    let figures = [
        evaluate::<credit_lr_tune::CreditLrTune>("lr", LR, &train, &test, seeds),
        evaluate::<credit_mlp::CreditMlp>("mlp", MLP, &train, &test, seeds),
    ];
    report(&figures, rows, &train, &test, seeds, started.elapsed().as_secs_f64());
}
