//! One noise term as a checked value: its distribution, exact scale and sensitivity are
//! fixed when the query is checked, before any data is read; adding it to a true integer
//! (or not, on the owner's exact path) is the only thing left to do after the spend.
//! Intervals for derived values come from the same terms (see [`bootstrap_ci`]).

use crate::ReleaseError;
use dp::{Epsilon, Rational, Rho};
use protocol::job::Noise;
use protocol::result::NoiseTerm;
use rand_core::{CryptoRng, RngCore};

/// The enclave's randomness, as one object-safe trait.
pub trait Rng: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> Rng for T {}

/// True aggregates are clamped to ±2^61 before noise: clamping is 1-Lipschitz, so it keeps
/// the sensitivity, and it leaves room for any noise the sampler can draw.
pub(crate) const MAX_TRUE_VALUE: i128 = 1 << 61;

pub(crate) fn clamp_true(v: i128) -> i64 {
    v.clamp(-MAX_TRUE_VALUE, MAX_TRUE_VALUE) as i64
}

/// The mechanism an owner's exact check names: none, and it says so.
pub(crate) const EXACT_MECHANISM: &str = "none (owner's exact check, not DP)";

/// Whether to add noise (in the enclave) or compute true values (owner's own check).
pub(crate) enum Mode<'a> {
    Dp { rng: &'a mut dyn Rng, min_group_size: u64 },
    Exact { min_group_size: u64 },
}

impl Mode<'_> {
    pub(crate) fn is_dp(&self) -> bool {
        matches!(self, Mode::Dp { .. })
    }
    pub(crate) fn min_group_size(&self) -> u64 {
        match self {
            Mode::Dp { min_group_size, .. } | Mode::Exact { min_group_size } => *min_group_size,
        }
    }
}

/// The zCDP cost of a Gaussian output declared with ε: ρ = ε²/2, what a pure ε-DP output
/// costs in zCDP (Bun and Steinke 2016, Proposition 1.4).
pub fn gaussian_rho(eps: &Epsilon) -> Result<Rho, ReleaseError> {
    Ok(Rho::from_pure(eps)?)
}

/// One noised integer vector: distribution, exact scale, sensitivity.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    on: String,
    noise: Noise,
    /// ε (Laplace) or ρ (Gaussian) of this term, as text for the result.
    budget: String,
    sensitivity: u64,
    /// b (Laplace) or σ² (Gaussian).
    scale: Rational,
    /// Smallest a with P(|noise| <= a) >= 0.95.
    half_width: u64,
}

impl Term {
    pub(crate) fn laplace(on: &str, eps: &Epsilon, l1: u64) -> Result<Term, ReleaseError> {
        let plan = dp::plan::plan_laplace(eps, l1).map_err(|e| scale_error(on, e))?;
        Ok(Term {
            on: on.into(),
            noise: Noise::Laplace,
            budget: format!("ε = {eps}"),
            sensitivity: l1,
            scale: plan.scale,
            half_width: plan.ci95_half_width,
        })
    }

    pub(crate) fn gaussian(on: &str, rho: &Rho, l2: u64) -> Result<Term, ReleaseError> {
        let sigma_sq = dp::mechanism::gaussian_sigma_sq(l2, rho).map_err(|e| scale_error(on, e))?;
        let max = dp::sampler::MAX_SCALE as f64;
        let s2 = sigma_sq.to_f64();
        if s2.is_nan() || s2 > max * max {
            return Err(scale_error(on, dp::DpError::ScaleTooLarge));
        }
        let sigma = s2.sqrt();
        // The discrete Gaussian's 97.5% point is within one unit of the continuous one's.
        let half_width = (1.959_964 * sigma).ceil() as u64 + 1;
        Ok(Term {
            on: on.into(),
            noise: Noise::Gaussian,
            budget: format!("ρ = {rho}"),
            sensitivity: l2,
            scale: sigma_sq,
            half_width,
        })
    }

    pub(crate) fn describe(&self) -> NoiseTerm {
        NoiseTerm {
            on: self.on.clone(),
            distribution: match self.noise {
                Noise::Laplace => dp::Mechanism::DiscreteLaplace,
                Noise::Gaussian => dp::Mechanism::DiscreteGaussian,
            }
            .as_str()
            .into(),
            scale: self.scale.to_string(),
            sensitivity: self.sensitivity,
            budget: self.budget.clone(),
        }
    }

    /// The true integer plus one noise draw (DP), or the true integer (exact).
    pub(crate) fn add(&self, value: i128, mode: &mut Mode<'_>) -> Result<i64, ReleaseError> {
        let v = clamp_true(value);
        match mode {
            Mode::Exact { .. } => Ok(v),
            Mode::Dp { rng, .. } => {
                let z = self.draw(&mut **rng)?;
                v.checked_add(z).ok_or(ReleaseError::Dp(dp::DpError::Overflow("value + noise")))
            }
        }
    }

    fn draw(&self, rng: &mut dyn Rng) -> Result<i64, ReleaseError> {
        Ok(match self.noise {
            Noise::Laplace => dp::discrete_laplace(&self.scale, rng)?,
            Noise::Gaussian => dp::discrete_gaussian(&self.scale, rng)?,
        })
    }

    /// 95% interval of the true integer given the noisy one, in the term's integer units.
    pub(crate) fn interval(&self, noisy: i64) -> [f64; 2] {
        let a = self.half_width as f64;
        [noisy as f64 - a, noisy as f64 + a]
    }

    pub(crate) fn half_width(&self) -> u64 {
        self.half_width
    }

    /// Variance of the noise (integer units²).
    pub(crate) fn variance(&self) -> f64 {
        match self.noise {
            Noise::Laplace => {
                // discrete Laplace with q = e^{-1/b}: Var = 2q / (1 − q)²
                let lq = -1.0 / self.scale.to_f64();
                let one_minus_q = -lq.exp_m1();
                2.0 * lq.exp() / (one_minus_q * one_minus_q)
            }
            Noise::Gaussian => self.scale.to_f64(),
        }
    }

    /// Fourth cumulant of the noise: 3·Var² for Laplace (excess kurtosis 3), 0 for Gaussian.
    fn fourth_cumulant(&self) -> f64 {
        match self.noise {
            Noise::Laplace => 3.0 * self.variance().powi(2),
            Noise::Gaussian => 0.0,
        }
    }
}

fn scale_error(on: &str, e: dp::DpError) -> ReleaseError {
    match e {
        dp::DpError::ScaleTooLarge => ReleaseError::BadQuery(format!(
            "the {on} noise scale exceeds the supported maximum of 10^15: raise ε or narrow the bounds"
        )),
        other => ReleaseError::Dp(other),
    }
}

/// 95% half-width of `Σ aᵢ·Zᵢ` for independent noises `Zᵢ` of the given terms: the
/// Cornish–Fisher expansion to the fourth cumulant (the noise is symmetric, so the third
/// vanishes). For one Laplace term it gives 3.06 b against the exact 3.00 b (coverage
/// 95.3%), for Gaussian terms exactly 1.96 σ. Used by the delta method for ratios of
/// noisy integers, where a bootstrap per group would cost time the schedule cannot bound.
pub(crate) fn linear_half_width(parts: &[(&Term, f64)]) -> f64 {
    let var: f64 = parts.iter().map(|(t, a)| a * a * t.variance()).sum();
    let k4: f64 = parts.iter().map(|(t, a)| a.powi(4) * t.fourth_cumulant()).sum();
    if var <= 0.0 {
        return 0.0;
    }
    let z = 1.959_964;
    let excess = k4 / (var * var);
    var.sqrt() * (z + (z * z * z - 3.0 * z) * excess / 24.0)
}

/// Replicates of the noise drawn to state an interval for a derived value.
pub(crate) const BOOTSTRAP_DRAWS: usize = 1000;
/// Most noise samples one output's bootstrap may draw: its time is then bounded by public
/// parameters (about 0.1 s at the sampler's speed), whatever the data.
pub(crate) const BOOTSTRAP_MAX_SAMPLES: usize = 1_000_000;

/// 95% intervals for `f(true integers)` given `noisy` integers with the noise of `terms`
/// (one term per integer), for each value `f` returns: the basic parametric bootstrap over
/// the noise. Each replicate adds fresh noise of exactly the released distribution to the
/// noisy integers; the spread of `f(replicate) − f(noisy)` stands in for that of
/// `f(noisy) − f(true)`, so the interval is `[f(noisy) − q97.5, f(noisy) − q2.5]`. It is
/// post-processing of released values and public parameters with fresh randomness, so it
/// costs no privacy. Exact mode has none. A value gets `None` when `f` leaves it undefined
/// at the noisy integers or on more than 5% of replicates.
pub(crate) fn bootstrap_ci(
    noisy: &[i64],
    terms: &[&Term],
    f: impl Fn(&[f64]) -> Option<Vec<Option<f64>>>,
    mode: &mut Mode<'_>,
) -> Result<Vec<Option<[f64; 2]>>, ReleaseError> {
    let Mode::Dp { rng, .. } = mode else { return Ok(Vec::new()) };
    let x: Vec<f64> = noisy.iter().map(|&v| v as f64).collect();
    let Some(est) = f(&x) else { return Ok(Vec::new()) };
    let draws = BOOTSTRAP_DRAWS.min(BOOTSTRAP_MAX_SAMPLES / x.len().max(1));
    let mut diffs: Vec<Vec<f64>> = vec![Vec::with_capacity(draws); est.len()];
    let mut y = x.clone();
    for _ in 0..draws {
        for ((yi, xi), t) in y.iter_mut().zip(&x).zip(terms) {
            *yi = xi + t.draw(&mut **rng)? as f64;
        }
        let Some(rep) = f(&y) else { continue };
        for ((d, e), r) in diffs.iter_mut().zip(&est).zip(rep) {
            if let (Some(e), Some(r)) = (e, r) {
                d.push(r - e);
            }
        }
    }
    Ok(est
        .iter()
        .zip(diffs)
        .map(|(e, mut d)| {
            let e = (*e)?;
            if d.len() < draws * 95 / 100 {
                return None;
            }
            d.sort_by(f64::total_cmp);
            let at = |p: f64| d[((p * d.len() as f64) as usize).min(d.len() - 1)];
            Some([e - at(0.975), e - at(0.025)])
        })
        .collect())
}
