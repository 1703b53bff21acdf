//! A membership-inference check of DP fine-tuning: a loss-threshold attack on the released
//! parameters, over units in and out of training. The target is deliberately easy to
//! attack: a model that can memorise (one weight per bucket of a hashed row key, so each
//! training unit mostly owns its weight), trained on noisy labels. Without privacy it
//! memorises its training units and the attack separates members from non-members almost
//! perfectly (the negative control); through the enclave's DP-SGD (`release::training::
//! train`, the same code the enclave runs, with the gradients computed natively) the
//! attack's advantage must stay within what (ε, δ)-DP allows: TPR − FPR ≤
//! (e^ε − 1 + 2δ)/(e^ε + 1).

use protocol::policy::Decimal;
use protocol::training::{Optimizer, TrainingLimits, TrainingSpec};
use release::training::{train, TrainingPlan};
use std::sync::Arc;

const BUCKETS: usize = 4096;
const MEMBERS: usize = 400;

/// One person: a key (which bucket the model looks at) and a coin-flip label.
#[derive(Clone, Copy)]
struct Person {
    bucket: usize,
    label: f64,
}

fn people(seed: u64, n: usize) -> Vec<Person> {
    let mut s = seed;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n).map(|_| Person { bucket: (next() % BUCKETS as u64) as usize, label: (next() % 2) as f64 }).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Log-loss of `p` on one person under parameters `w` (bucket weights).
fn loss(w: &[f64], p: &Person) -> f64 {
    let q = sigmoid(w[p.bucket]).clamp(1e-12, 1.0 - 1e-12);
    -(p.label * q.ln() + (1.0 - p.label) * (1.0 - q).ln())
}

/// The unit gradient the module would emit: nonzero only at the person's bucket; then loss.
fn gradient(w: &[f64], p: &Person) -> Vec<f64> {
    let mut g = vec![0.0; BUCKETS + 1];
    g[p.bucket] = sigmoid(w[p.bucket]) - p.label;
    g[BUCKETS] = loss(w, p);
    g
}

/// Best TPR − FPR of "member if loss < τ" over every τ.
fn attack_advantage(w: &[f64], members: &[Person], others: &[Person]) -> f64 {
    let mut scored: Vec<(f64, bool)> =
        members.iter().map(|p| (loss(w, p), true)).chain(others.iter().map(|p| (loss(w, p), false))).collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut tp, mut fp, mut best) = (0.0, 0.0, 0.0f64);
    for (i, (l, member)) in scored.iter().enumerate() {
        if *member {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        // Only between distinct losses is there a threshold.
        if scored.get(i + 1).is_none_or(|n| n.0 > *l) {
            best = best.max(tp / members.len() as f64 - fp / others.len() as f64);
        }
    }
    best
}

fn spec(sigma: &str, steps: u32) -> TrainingSpec {
    let d = |v: &str| Decimal::literal(v);
    TrainingSpec {
        label: "label".into(),
        sample_rate: d("0.1"),
        noise_multiplier: d(sigma),
        clip_norm: d("1"),
        steps,
        expected_batch_size: (MEMBERS / 10) as u64,
        optimizer: Optimizer::Sgd { learning_rate: d("10"), momentum: d("0") },
        delta: d("0.00001"),
    }
}

#[test]
fn loss_threshold_attack_is_bounded_by_the_claimed_epsilon() {
    let members = people(7, MEMBERS);
    let others = people(8, MEMBERS);
    let limits = TrainingLimits { max_params: BUCKETS as u32, ..TrainingLimits::default() };

    // Negative control: the same steps without clipping or noise memorise the members.
    let mut w = vec![0.0; BUCKETS];
    for _ in 0..200 {
        for p in &members {
            w[p.bucket] -= 0.5 * (sigmoid(w[p.bucket]) - p.label);
        }
    }
    let control = attack_advantage(&w, &members, &others);

    // DP-SGD as the enclave runs it, with the smallest σ (in tenths) the accountant says
    // gives ε ≤ 1 at δ = 1e-5.
    let plan = (20..200)
        .map(|tenths| TrainingPlan::within(&spec(&format!("{}.{}", tenths / 10, tenths % 10), 200), &limits))
        .map(|p| p.expect("plan"))
        .find(|p| p.epsilon.to_f64() <= 1.0)
        .expect("some σ below 20 reaches ε = 1");
    let eps = plan.epsilon.to_f64();
    let delta = plan.delta.to_f64();
    let bound = (eps.exp() - 1.0 + 2.0 * delta) / (eps.exp() + 1.0);
    let mut advantages = vec![];
    for seed in 0..3u64 {
        let mut rng = dp::seeded_rng_from_u64(100 + seed);
        let mut oracle = |u: usize, at: &Arc<[f64]>| Some(gradient(at, &members[u]));
        let max = plan.max_sampled_units(MEMBERS as u64);
        let trained = train(&plan, vec![0.0; BUCKETS], MEMBERS, max, &mut oracle, &mut rng).expect("trained");
        advantages.push(attack_advantage(trained.params(), &members, &others));
    }
    let dp_adv = advantages.iter().sum::<f64>() / advantages.len() as f64;
    eprintln!(
        "loss-threshold attack advantage: non-private {control:.3}; DP-SGD (σ = {}) at ε = {eps:.3}, δ = {delta:.1e}: \
         {advantages:.3?} (mean {dp_adv:.3}); the (ε, δ) bound is {bound:.3}",
        plan.spec.noise_multiplier
    );
    assert!(eps <= 1.0 && eps > 0.9, "σ was chosen for ε ≈ 1, the accountant says {eps}");
    // The attack works: without DP it tells members apart.
    assert!(control > 0.6, "the non-private control should be attackable: {control}");
    // With DP, every run stays inside what the claimed ε allows (with a margin for the
    // sampling error of 400 + 400 people, about 0.05), and far below the control.
    for a in &advantages {
        assert!(*a <= bound + 0.1, "DP run's advantage {a} exceeds the bound {bound} for ε = {eps}");
    }
    assert!(dp_adv < control / 2.0, "DP did not reduce the attack: {dp_adv} vs {control}");
}
