//! DP-SGD run by the enclave: the provider's module computes one privacy unit's gradient at
//! a time; everything that makes the result private happens here.
//!
//! Per step t = 1..T:
//! 1. every unit joins the step independently with probability q (exact Bernoulli from
//!    the enclave's CSPRNG: Poisson sampling);
//! 2. each sampled unit's gradient (from a fresh instance of the module) is scaled to L2
//!    norm at most C and put on the integer lattice of step C/2^[`LATTICE_BITS`] by
//!    rounding every coordinate toward zero, which cannot lengthen it; the integer vector's
//!    squared norm is then checked exactly against (2^LATTICE_BITS)², so the L2
//!    sensitivity of the step's sum is 2^LATTICE_BITS lattice units whatever floating point
//!    did. A non-finite gradient or loss, or a module fault, makes the unit absent from the
//!    step (it adds the zero vector);
//! 3. the integer sum gets independent discrete Gaussian noise of variance (σ·2^LATTICE_BITS)²
//!    on every coordinate (`dp::discrete_gaussian`, exact);
//! 4. the public optimizer takes the noisy sum, scaled back and divided by the public
//!    expected batch size, as its gradient: post-processing.
//!
//! The privacy of the T steps is accounted by `dp::sgm` (RDP of the Poisson-subsampled
//! Gaussian; `docs/dp-sgd-accounting.md` says why it covers the discrete Gaussian on the
//! lattice). One more event is charged: the enclave stops a job whose sampled units exceed
//! a public bound (so the job's time is bounded), which happens with probability at most
//! [`OVERRUN_PROBABILITY`]; a failure on an event of probability β adds β(1 + e^ε) to δ.
//! Only the final parameters leave; no per-step value, loss or norm does.

use crate::{parse_delta, DpRelease, ReleaseError};
use dp::sgm::{SampledGaussian, SgmAccount};
use dp::{Epsilon, Rational};
use protocol::job::QuerySpec;
use protocol::policy::{Decimal, Policy};
use protocol::result::{NoiseTerm, OutputRelease, ReleasedValue};
use protocol::training::{Optimizer, TrainingLimits, TrainingSpec};
use std::sync::Arc;

/// A gradient clipped to norm C is at most 2^LATTICE_BITS lattice units long.
pub const LATTICE_BITS: u32 = 20;
/// β: the probability that Poisson sampling exceeds the public bound on sampled units.
pub const OVERRUN_PROBABILITY: f64 = 1.0 / (1u64 << 60) as f64;
const LATTICE: f64 = (1u64 << LATTICE_BITS) as f64;

/// What a training query costs and how it will run, from public inputs only.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingPlan {
    pub spec: TrainingSpec,
    q: Rational,
    sigma: Rational,
    clip: f64,
    /// σ² of the noise in lattice units: (σ · 2^LATTICE_BITS)².
    noise_sigma_sq: Rational,
    optimizer: OptimizerParams,
    /// The accountant's (ε, δ) for T steps of the subsampled Gaussian at the query's δ.
    pub account: SgmAccount,
    /// ε and δ charged: the accountant's, plus the overrun event's share of δ.
    pub epsilon: Epsilon,
    pub delta: Rational,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OptimizerParams {
    Sgd { lr: f64, momentum: f64 },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64 },
}

fn field(name: &str, why: impl Into<String>) -> ReleaseError {
    ReleaseError::Training(format!("training.{name}: {}", why.into()))
}

fn rational(name: &str, d: &Decimal) -> Result<Rational, ReleaseError> {
    d.as_str().parse::<Rational>().map_err(|e| field(name, format!("{:?} {e}", d.as_str())))
}

fn real(name: &str, d: &Decimal) -> Result<f64, ReleaseError> {
    let v = rational(name, d)?.to_f64();
    if v.is_finite() {
        Ok(v)
    } else {
        Err(field(name, "out of range"))
    }
}

impl OptimizerParams {
    fn parse(o: &Optimizer) -> Result<Self, ReleaseError> {
        let unit = |name: &str, d: &Decimal| -> Result<f64, ReleaseError> {
            let v = real(name, d)?;
            if (0.0..1.0).contains(&v) {
                Ok(v)
            } else {
                Err(field(name, "must be in [0, 1)"))
            }
        };
        let p = match o {
            Optimizer::Sgd { learning_rate, momentum } => OptimizerParams::Sgd {
                lr: real("optimizer.learning_rate", learning_rate)?,
                momentum: unit("optimizer.momentum", momentum)?,
            },
            Optimizer::Adam { learning_rate, beta1, beta2, epsilon } => OptimizerParams::Adam {
                lr: real("optimizer.learning_rate", learning_rate)?,
                beta1: unit("optimizer.beta1", beta1)?,
                beta2: unit("optimizer.beta2", beta2)?,
                eps: real("optimizer.epsilon", epsilon)?,
            },
        };
        if p.lr() <= 0.0 {
            return Err(field("optimizer.learning_rate", "must be > 0"));
        }
        if let OptimizerParams::Adam { eps, .. } = p {
            if eps <= 0.0 {
                return Err(field("optimizer.epsilon", "must be > 0"));
            }
        }
        Ok(p)
    }

    fn lr(self) -> f64 {
        match self {
            OptimizerParams::Sgd { lr, .. } | OptimizerParams::Adam { lr, .. } => lr,
        }
    }
}

impl TrainingPlan {
    /// Check a training query against its own shape and the policy's bounds, and account
    /// for it. Nothing here reads data; the module's parameter count is checked by
    /// [`TrainingPlan::check_module`].
    pub fn new(spec: &TrainingSpec, policy: &Policy) -> Result<Self, ReleaseError> {
        let limits = policy
            .training
            .as_ref()
            .ok_or_else(|| ReleaseError::Training("the policy admits no training query".into()))?;
        TrainingPlan::within(spec, limits)
    }

    /// [`TrainingPlan::new`] against the training bounds alone (an owner's own experiments,
    /// the benchmarks).
    pub fn within(spec: &TrainingSpec, limits: &TrainingLimits) -> Result<Self, ReleaseError> {
        let q = rational("sample_rate", &spec.sample_rate)?;
        let sigma = rational("noise_multiplier", &spec.noise_multiplier)?;
        let clip_r = rational("clip_norm", &spec.clip_norm)?;
        let clip = clip_r.to_f64();
        let optimizer = OptimizerParams::parse(&spec.optimizer)?;
        check_limits(spec, limits, &q, &sigma, &clip_r, optimizer.lr())?;
        let delta = parse_delta(&spec.delta)?;
        let sgm = SampledGaussian::new(q, sigma, u64::from(spec.steps))?;
        let account = sgm.account(&delta)?;
        let lattice = Rational::from_integer(1u128 << LATTICE_BITS);
        let sigma_int = sigma.checked_mul(&lattice)?;
        // Checked here, before any spend: a scale the exact sampler refuses would otherwise
        // fail every step after the grant is gone.
        if sigma_int > Rational::from_integer(dp::sampler::MAX_SCALE) {
            return Err(field("noise_multiplier", "too large for the exact noise sampler"));
        }
        let noise_sigma_sq = sigma_int.checked_mul(&sigma_int)?;
        // β(1 + e^ε), rounded up generously: the overrun event's share of δ.
        let extra = OVERRUN_PROBABILITY * (1.0 + account.epsilon.to_f64().exp()) * 1.01;
        let extra = Rational::try_from_f64(extra)?;
        let delta_total = account.delta.as_rational().checked_add(&extra)?;
        Ok(TrainingPlan {
            spec: spec.clone(),
            q,
            sigma,
            clip,
            noise_sigma_sq,
            optimizer,
            epsilon: account.epsilon,
            delta: delta_total,
            account,
        })
    }

    /// The module's parameter count against the policy's bound.
    pub fn check_module(&self, policy: &Policy, n_params: usize) -> Result<(), ReleaseError> {
        let max = policy.training.as_ref().map_or(0, |l| l.max_params as usize);
        if n_params > max {
            return Err(ReleaseError::Training(format!(
                "the module has {n_params} parameters, the policy allows at most {max}"
            )));
        }
        Ok(())
    }

    /// The most units all T steps may sample together before the job stops: with up to
    /// `max_units` units, Poisson sampling exceeds it with probability at most
    /// [`OVERRUN_PROBABILITY`] (Bernstein's inequality; the count only grows with the
    /// number of units, so the policy's public bound on units suffices).
    pub fn max_sampled_units(&self, max_units: u64) -> u64 {
        let mean = self.q.to_f64() * max_units as f64 * f64::from(self.spec.steps);
        let l = (1.0 / OVERRUN_PROBABILITY).ln();
        // P(S >= mean + t) <= exp(-t²/(2(mean + t/3))) = β at t = l/3 + √(l²/9 + 2·l·mean)
        let t = l / 3.0 + (l * l / 9.0 + 2.0 * l * mean).sqrt();
        (mean + t).ceil() as u64 + 1
    }

    /// The noise's standard deviation on each coordinate of the mean gradient a step
    /// applies: σ·C / expected batch size.
    pub fn step_noise_std(&self) -> f64 {
        self.sigma.to_f64() * self.clip / self.spec.expected_batch_size as f64
    }
}

fn check_limits(
    spec: &TrainingSpec,
    l: &TrainingLimits,
    q: &Rational,
    sigma: &Rational,
    clip: &Rational,
    lr: f64,
) -> Result<(), ReleaseError> {
    let bound = |name: &str, d: &Decimal| rational(name, d);
    if spec.steps > l.max_steps {
        return Err(field("steps", format!("{} exceeds the policy's {}", spec.steps, l.max_steps)));
    }
    if q.is_zero() || *q > Rational::from_integer(1) || *q > bound("max_sample_rate", &l.max_sample_rate)? {
        return Err(field("sample_rate", format!("must be in (0, {}]", l.max_sample_rate)));
    }
    if *sigma < bound("min_noise_multiplier", &l.min_noise_multiplier)? || sigma.is_zero() {
        return Err(field("noise_multiplier", format!("below the policy's minimum {}", l.min_noise_multiplier)));
    }
    if clip.is_zero() || *clip > bound("max_clip_norm", &l.max_clip_norm)? {
        return Err(field("clip_norm", format!("must be in (0, {}]", l.max_clip_norm)));
    }
    if lr > real("max_learning_rate", &l.max_learning_rate)? {
        return Err(field("optimizer.learning_rate", format!("exceeds the policy's {}", l.max_learning_rate)));
    }
    Ok(())
}

/// The public schedule of `spec` under `policy`: fetches, scoring, group releases and, for a
/// training query over a module of `n_params` parameters, the training's worst case
/// ([`TrainingPlan::max_sampled_units`] gradients, a coin per unit per step, the noise, and
/// scoring again for evaluation outputs). `None` when the figures overflow. The enclave
/// checks the query's deadline against this; `query check` prints it.
pub fn schedule(
    spec: &QuerySpec,
    policy: &Policy,
    plan: Option<(&TrainingPlan, usize)>,
) -> Option<protocol::deadline::Schedule> {
    let p = policy;
    let groups = crate::selected_group_outputs(spec, p);
    let s = protocol::deadline::Schedule::new(&p.timing, &p.sandbox, p.sealed_chunks, p.rows_per_chunk, groups)?;
    let Some((plan, n_params)) = plan else { return Some(s) };
    let units = p.sealed_chunks.checked_mul(p.rows_per_chunk)?;
    let work = protocol::deadline::TrainingWork {
        sampled_units: plan.max_sampled_units(units),
        units,
        steps: u64::from(plan.spec.steps),
        params: n_params as u64,
        evaluates: !spec.outputs.is_empty(),
    };
    s.with_training(&p.timing, &p.sandbox, &work)
}

/// The training part of a query's cost, if it trains.
pub fn training_cost(spec: &QuerySpec, policy: &Policy) -> Result<Option<(Epsilon, Rational)>, ReleaseError> {
    spec.training.as_ref().map(|t| TrainingPlan::new(t, policy).map(|p| (p.epsilon, p.delta))).transpose()
}

/// Scale `grad` to L2 norm at most `clip` and round it onto the lattice (C/2^LATTICE_BITS
/// per unit) toward zero. `None` for a non-finite gradient. The result's squared norm is
/// at most 2^(2·LATTICE_BITS), checked in exact integers.
pub fn clip_to_lattice(grad: &[f64], clip: f64) -> Option<Vec<i64>> {
    if grad.iter().any(|g| !g.is_finite()) || clip.is_nan() || clip <= 0.0 {
        return None;
    }
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    // Units per 1.0 of gradient, times the clipping factor.
    let mut scale = LATTICE / clip;
    if norm.is_finite() && norm > clip {
        scale *= clip / norm;
    } else if !norm.is_finite() {
        // Overflowed squares: scale by the largest coordinate first.
        let max = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let rescaled: Vec<f64> = grad.iter().map(|g| g / max).collect();
        let n = rescaled.iter().map(|g| g * g).sum::<f64>().sqrt();
        return clip_to_lattice(&rescaled.iter().map(|g| g / n * clip).collect::<Vec<_>>(), clip);
    }
    let bound = 1u128 << (2 * LATTICE_BITS);
    loop {
        let v: Vec<i64> = grad.iter().map(|g| (g * scale).trunc() as i64).collect();
        let sq: u128 = v.iter().map(|x| (x.unsigned_abs() as u128).pow(2)).sum();
        if sq <= bound {
            return Some(v);
        }
        // Floating point left it a hair long: shrink by the excess (and a little more)
        // and round again; rare, and the vector shrinks geometrically, so this ends.
        scale *= (bound as f64 / sq as f64).sqrt() * (1.0 - 1.0 / LATTICE);
    }
}

/// `gradient(u, θ)`: unit `u`'s gradient at θ followed by its loss, or `None` when the
/// unit is absent (a module fault).
pub type GradientOracle<'a> = dyn FnMut(usize, &Arc<[f64]>) -> Option<Vec<f64>> + 'a;

/// `gradients(units, θ)`: [`GradientOracle`] for a whole step's sampled units, in order.
pub type BatchOracle<'a> = dyn FnMut(&[usize], &Arc<[f64]>) -> Vec<Option<Vec<f64>>> + 'a;

/// One optimizer's state.
struct OptimizerState {
    p: OptimizerParams,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl OptimizerState {
    fn new(p: OptimizerParams, n: usize) -> Self {
        OptimizerState { p, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    fn step(&mut self, params: &mut [f64], g: &[f64]) {
        self.t += 1;
        match self.p {
            OptimizerParams::Sgd { lr, momentum } => {
                for ((p, m), g) in params.iter_mut().zip(&mut self.m).zip(g) {
                    *m = momentum * *m + g;
                    *p -= lr * *m;
                }
            }
            OptimizerParams::Adam { lr, beta1, beta2, eps } => {
                let c1 = 1.0 - beta1.powi(self.t);
                let c2 = 1.0 - beta2.powi(self.t);
                for (((p, m), v), g) in params.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(g) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            }
        }
    }
}

/// Why training stopped. Neither variant carries a number: the enclave turns both into a
/// failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainingStopped {
    #[error("Poisson sampling exceeded the public bound on sampled units")]
    Overrun,
    #[error("the noise sampler refused its scale")]
    Noise,
    #[error("the gradient sum overflowed")]
    Overflow,
    #[error("the gradient oracle returned another number of results than units")]
    Oracle,
}

/// The parameters after T noisy steps: a DP release (only this crate builds one).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedParams {
    params: Vec<f64>,
}

impl TrainedParams {
    pub fn params(&self) -> &[f64] {
        &self.params
    }
}

/// Run DP-SGD. `gradient(u, θ)` is unit `u`'s gradient at θ followed by its loss
/// (`n + 1` values for `n` parameters), or `None` when the unit is absent (a module fault);
/// `units` is the number of units in the table; `max_sampled` the bound of
/// [`TrainingPlan::max_sampled_units`].
pub fn train(
    plan: &TrainingPlan,
    initial: Vec<f64>,
    units: usize,
    max_sampled: u64,
    gradient: &mut GradientOracle<'_>,
    rng: &mut dyn crate::Rng,
) -> Result<TrainedParams, TrainingStopped> {
    let mut each = |us: &[usize], at: &Arc<[f64]>| us.iter().map(|&u| gradient(u, at)).collect();
    train_batched(plan, initial, units, max_sampled, &mut each, rng)
}

/// [`train`] with a batch oracle: `gradients(units, θ)` returns, in the order of `units`
/// (one step's sampled units), each one's gradient and loss or `None`. The enclave computes
/// a batch on all its cores; the step's sum is of integers, so the release does not depend
/// on how the batch was split.
pub fn train_batched(
    plan: &TrainingPlan,
    initial: Vec<f64>,
    units: usize,
    max_sampled: u64,
    gradients: &mut BatchOracle<'_>,
    rng: &mut dyn crate::Rng,
) -> Result<TrainedParams, TrainingStopped> {
    run_steps(plan, initial, units, max_sampled, gradients, rng, true).map(|params| TrainedParams { params })
}

/// The owner's non-private reference: the same Poisson-sampled steps and optimizer, with
/// neither clipping nor noise (each step applies the exact gradient sum over the expected
/// batch size). For the owner's own machine only: it returns plain parameters, which no
/// release can be built from.
pub fn train_nonprivate_reference(
    plan: &TrainingPlan,
    initial: Vec<f64>,
    units: usize,
    gradient: &mut GradientOracle<'_>,
    rng: &mut dyn crate::Rng,
) -> Result<Vec<f64>, TrainingStopped> {
    let mut each = |us: &[usize], at: &Arc<[f64]>| us.iter().map(|&u| gradient(u, at)).collect();
    run_steps(plan, initial, units, u64::MAX, &mut each, rng, false)
}

fn run_steps(
    plan: &TrainingPlan,
    initial: Vec<f64>,
    units: usize,
    max_sampled: u64,
    gradients: &mut BatchOracle<'_>,
    rng: &mut dyn crate::Rng,
    private: bool,
) -> Result<Vec<f64>, TrainingStopped> {
    let n = initial.len();
    let mut params = initial;
    let mut opt = OptimizerState::new(plan.optimizer, n);
    let mut sampled = 0u64;
    let batch = plan.spec.expected_batch_size as f64;
    let back = plan.clip / LATTICE / batch;
    let mut sum = vec![0i64; n];
    let mut exact = vec![0.0f64; n];
    for _ in 0..plan.spec.steps {
        let at: Arc<[f64]> = Arc::from(params.as_slice());
        sum.iter_mut().for_each(|s| *s = 0);
        exact.iter_mut().for_each(|s| *s = 0.0);
        // The step's sample: every coin first, in unit order, from the one CSPRNG.
        let mut picked = Vec::new();
        for u in 0..units {
            if dp::bernoulli(&plan.q, rng).map_err(|_| TrainingStopped::Noise)? {
                sampled += 1;
                if sampled > max_sampled {
                    return Err(TrainingStopped::Overrun);
                }
                picked.push(u);
            }
        }
        let results = gradients(&picked, &at);
        if results.len() != picked.len() {
            return Err(TrainingStopped::Oracle);
        }
        for g in results {
            let Some(g) = g else { continue };
            // The loss must be finite too; it is used for nothing else.
            if g.len() != n + 1 || g.iter().any(|x| !x.is_finite()) {
                continue;
            }
            if !private {
                exact.iter_mut().zip(&g).for_each(|(s, x)| *s += x);
                continue;
            }
            let Some(v) = clip_to_lattice(&g[..n], plan.clip) else { continue };
            for (s, x) in sum.iter_mut().zip(&v) {
                *s = s.checked_add(*x).ok_or(TrainingStopped::Overflow)?;
            }
        }
        let step: Vec<f64> = if private {
            let mut noisy = vec![0.0; n];
            for (out, s) in noisy.iter_mut().zip(&sum) {
                let z = dp::discrete_gaussian(&plan.noise_sigma_sq, rng).map_err(|_| TrainingStopped::Noise)?;
                *out = s.checked_add(z).ok_or(TrainingStopped::Overflow)? as f64 * back;
            }
            noisy
        } else {
            exact.iter().map(|s| s / batch).collect()
        };
        opt.step(&mut params, &step);
    }
    Ok(params)
}

impl DpRelease {
    /// The release of a training query: the trained parameters (named by the module's
    /// layout), then the evaluation outputs computed with them, if the query asked for any.
    pub fn with_training(
        plan: &TrainingPlan,
        trained: TrainedParams,
        names: &[String],
        evaluation: Option<DpRelease>,
    ) -> DpRelease {
        let t = &plan.spec;
        let values = names
            .iter()
            .zip(trained.params)
            .map(|(name, value)| ReleasedValue { key: name.clone(), stat: "parameter".into(), value, ci95: None })
            .collect();
        let sigma_sq = plan.noise_sigma_sq.to_string();
        let lattice = 1u64 << LATTICE_BITS;
        let release = OutputRelease {
            name: "parameters".into(),
            class: "dp_sgd".into(),
            mechanism: "poisson_subsampled_discrete_gaussian".into(),
            epsilon: Decimal::from(plan.epsilon),
            delta: Some(Decimal::from(plan.delta)),
            sensitivity: format!("L2 {lattice} lattice units (one unit's clipped gradient, C = {})", t.clip_norm),
            noise_scale: sigma_sq.clone(),
            fixed_point_resolution: None,
            values,
            noise: vec![NoiseTerm {
                on: format!("each step's sum of clipped gradients, per coordinate, in units of C/{lattice}"),
                distribution: "discrete_gaussian".into(),
                scale: sigma_sq,
                sensitivity: lattice,
                budget: format!(
                    "q = {}, σ = {}, T = {}: ε = {} at δ = {} (RDP order {})",
                    t.sample_rate, t.noise_multiplier, t.steps, plan.account.epsilon, t.delta, plan.account.order
                ),
            }],
            note: format!(
                "DP-SGD: Poisson sampling q = {}, clip C = {}, noise multiplier σ = {}, {} steps, {} \
                 (learning rate {}), gradient sums divided by {}; (ε, δ) by the RDP accountant for the \
                 subsampled Gaussian, δ including {:e} for the public bound on sampled units. \
                 Only the final parameters are released.",
                t.sample_rate,
                t.clip_norm,
                t.noise_multiplier,
                t.steps,
                t.optimizer.name(),
                plan.optimizer.lr(),
                t.expected_batch_size,
                OVERRUN_PROBABILITY
            ),
        };
        let mut outputs = vec![release];
        outputs.extend(evaluation.map(DpRelease::into_outputs).unwrap_or_default());
        DpRelease { outputs }
    }
}

/// The training plan as the owner's review and `query check` print it.
pub fn describe(plan: &TrainingPlan, n_params: Option<usize>) -> Vec<String> {
    let t = &plan.spec;
    let mut lines = vec![
        format!(
            "training: DP-SGD on label {:?}: q = {}, σ = {}, C = {}, T = {} steps, optimizer {} (lr {})",
            t.label,
            t.sample_rate,
            t.noise_multiplier,
            t.clip_norm,
            t.steps,
            t.optimizer.name(),
            plan.optimizer.lr()
        ),
        format!(
            "  accounted: ε = {} at δ = {} (RDP, order {}); charged ε = {}, δ = {} (with the overrun bound)",
            plan.account.epsilon, t.delta, plan.account.order, plan.epsilon, plan.delta
        ),
        format!(
            "  noise per step: discrete Gaussian σ = {} lattice units per coordinate; on the mean gradient \
             about {:.3e} per coordinate (expected batch {})",
            plan.sigma.to_f64() * LATTICE,
            plan.step_noise_std(),
            t.expected_batch_size
        ),
    ];
    if let Some(n) = n_params {
        lines.push(format!("  releases {n} parameters and nothing per step"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_never_exceeds_the_lattice_bound() {
        let bound = 1u128 << (2 * LATTICE_BITS);
        let cases: Vec<Vec<f64>> = vec![
            vec![3.0, 4.0],
            vec![1e300, -1e300, 5.0],
            vec![0.1; 57],
            vec![0.0; 3],
            vec![f64::MIN_POSITIVE; 4],
            (0..1000).map(|i| ((i * 7919) % 113) as f64 - 56.0).collect(),
        ];
        for g in cases {
            for clip in [1e-3, 0.5, 1.0, 7.0, 1e6] {
                let v = clip_to_lattice(&g, clip).expect("finite");
                let sq: u128 = v.iter().map(|x| (x.unsigned_abs() as u128).pow(2)).sum();
                assert!(sq <= bound, "{sq} > {bound}");
                // Direction kept: no coordinate changes sign.
                assert!(v.iter().zip(&g).all(|(x, g)| *x == 0 || (*x > 0) == (*g > 0.0)));
            }
        }
        // A gradient inside the ball is only rounded, not scaled.
        assert_eq!(clip_to_lattice(&[0.25, -0.5], 1.0).unwrap(), vec![262_144, -524_288]);
        assert_eq!(clip_to_lattice(&[f64::NAN, 1.0], 1.0), None);
        assert_eq!(clip_to_lattice(&[f64::INFINITY], 1.0), None);
    }

    #[test]
    fn sgd_and_adam_steps() {
        let mut p = vec![1.0, -1.0];
        let mut sgd = OptimizerState::new(OptimizerParams::Sgd { lr: 0.5, momentum: 0.5 }, 2);
        sgd.step(&mut p, &[1.0, -2.0]);
        assert_eq!(p, [0.5, 0.0]);
        sgd.step(&mut p, &[1.0, -2.0]);
        assert_eq!(p, [-0.25, 1.5]);
        // Adam's first step moves each parameter by about lr against its gradient's sign.
        let mut q = vec![0.0, 0.0];
        let mut adam = OptimizerState::new(OptimizerParams::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 2);
        adam.step(&mut q, &[3.0, -1e-3]);
        assert!((q[0] + 0.1).abs() < 1e-6 && (q[1] - 0.1).abs() < 1e-4, "{q:?}");
    }

    fn spec(sigma: &str, steps: u32) -> TrainingSpec {
        TrainingSpec {
            label: "y".into(),
            sample_rate: Decimal::literal("0.1"),
            noise_multiplier: Decimal::literal(sigma),
            clip_norm: Decimal::literal("1"),
            steps,
            expected_batch_size: 20,
            optimizer: Optimizer::Sgd { learning_rate: Decimal::literal("0.5"), momentum: Decimal::literal("0") },
            delta: Decimal::literal("0.000001"),
        }
    }

    fn training_policy() -> Policy {
        Policy { training: Some(TrainingLimits::default()), ..crate::tests::policy(1) }
    }

    /// 200 units each pulling θ toward its own target near 3: the loss ½(θ − y_u)².
    fn pull(u: usize, at: &Arc<[f64]>) -> Option<Vec<f64>> {
        let y = 3.0 + (u % 7) as f64 * 0.01;
        Some(vec![at[0] - y, 0.5 * (at[0] - y).powi(2)])
    }

    #[test]
    fn dp_sgd_converges_and_releases_only_parameters() {
        let plan = TrainingPlan::new(&spec("1", 200), &training_policy()).unwrap();
        let (e, d) = (plan.epsilon.to_f64(), plan.delta.to_f64());
        assert!(e > 0.0 && d > 1e-6 && d < 1.1e-6, "ε {e} δ {d}");
        let mut rng = dp::seeded_rng_from_u64(5);
        let max = plan.max_sampled_units(200);
        let trained = train(&plan, vec![0.0], 200, max, &mut pull, &mut rng).unwrap();
        // Clipped at C = 1, the gradient still points at the targets; noise σC/B = 0.05.
        assert!((trained.params()[0] - 3.0).abs() < 0.5, "{:?}", trained.params());
        let names = vec!["theta".to_string()];
        let release = DpRelease::with_training(&plan, trained, &names, None);
        let out = release.outputs();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].values.len(), 1);
        assert_eq!(out[0].values[0].key, "theta");
        assert_eq!(out[0].class, "dp_sgd");
    }

    #[test]
    fn absent_units_and_hostile_gradients_change_nothing_but_their_share() {
        let plan = TrainingPlan::new(&spec("1", 50), &training_policy()).unwrap();
        let max = plan.max_sampled_units(200);
        // A NaN gradient, an infinite loss, a wrong length and a fault are all absent; a
        // huge gradient is clipped to norm C like any other.
        let mut hostile = |u: usize, at: &Arc<[f64]>| match u {
            0 => Some(vec![f64::NAN, 0.0]),
            1 => Some(vec![1.0, f64::INFINITY]),
            2 => Some(vec![1.0, 2.0, 3.0]),
            3 => None,
            4 => Some(vec![-1e300, 0.0]),
            _ => pull(u, at),
        };
        let mut rng = dp::seeded_rng_from_u64(9);
        let trained = train(&plan, vec![0.0], 200, max, &mut hostile, &mut rng).unwrap();
        assert!(trained.params()[0].is_finite());
    }

    #[test]
    fn sampling_beyond_the_public_bound_stops_training() {
        let plan = TrainingPlan::new(&spec("1", 10), &training_policy()).unwrap();
        let mut rng = dp::seeded_rng_from_u64(1);
        assert_eq!(train(&plan, vec![0.0], 200, 5, &mut pull, &mut rng), Err(TrainingStopped::Overrun));
        // The bound is far above the mean: 200 units, q = 0.1, 10 steps → mean 200.
        let bound = plan.max_sampled_units(200);
        assert!(bound > 300 && bound < 600, "{bound}");
    }

    #[test]
    fn hyperparameters_outside_the_policy_are_refused() {
        let p = training_policy();
        let refused = |s: TrainingSpec, what: &str| {
            let e = TrainingPlan::new(&s, &p).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        };
        refused(TrainingSpec { steps: 10_001, ..spec("1", 1) }, "training.steps");
        refused(TrainingSpec { sample_rate: Decimal::literal("0.5"), ..spec("1", 1) }, "training.sample_rate");
        refused(TrainingSpec { sample_rate: Decimal::literal("0"), ..spec("1", 1) }, "training.sample_rate");
        refused(spec("0.4", 1), "training.noise_multiplier");
        refused(spec("10000000000", 1), "too large for the exact noise sampler");
        refused(TrainingSpec { clip_norm: Decimal::literal("101"), ..spec("1", 1) }, "training.clip_norm");
        refused(
            TrainingSpec {
                optimizer: Optimizer::Sgd { learning_rate: Decimal::literal("11"), momentum: Decimal::literal("0") },
                ..spec("1", 1)
            },
            "learning_rate",
        );
        refused(
            TrainingSpec {
                optimizer: Optimizer::Sgd { learning_rate: Decimal::literal("0.1"), momentum: Decimal::literal("1") },
                ..spec("1", 1)
            },
            "momentum",
        );
        let e = TrainingPlan::new(&spec("1", 1), &crate::tests::policy(1)).unwrap_err().to_string();
        assert!(e.contains("admits no training"), "{e}");
        let plan = TrainingPlan::new(&spec("1", 1), &p).unwrap();
        assert!(plan.check_module(&p, 65_536).is_ok());
        assert!(plan.check_module(&p, 65_537).is_err());
    }
}
