//! Noise planning for owners (`cleanroom dp plan`): the scale, expected error and a 95%
//! interval of a mechanism before any budget is spent, and raw samples of exactly the
//! sampler the enclave uses for outside auditing. Floats here are for reporting only.

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::accountant::epsilon_delta_to_rho;
use crate::mechanism::{gaussian_sigma_sq, laplace_scale, Mechanism};
use crate::rational::{Delta, Epsilon, Rational, Rho};
use crate::sampler::{discrete_gaussian, discrete_laplace};
use crate::DpError;

/// What a mechanism's noise will look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoisePlan {
    /// Mechanism.
    pub mechanism: Mechanism,
    /// ε requested.
    pub epsilon: Epsilon,
    /// δ (Gaussian only).
    pub delta: Option<Delta>,
    /// ρ used (Gaussian only): the largest ρ whose (ε, δ) conversion fits.
    pub rho: Option<Rho>,
    /// Sensitivity (L1 for Laplace, L2 for Gaussian).
    pub sensitivity: u64,
    /// Exact scale: b for Laplace, σ² for Gaussian.
    pub scale: Rational,
    /// Standard deviation of the noise.
    pub std_dev: f64,
    /// E|noise|.
    pub expected_abs_error: f64,
    /// Smallest a with P(|noise| <= a) >= 0.95.
    pub ci95_half_width: u64,
}

impl NoisePlan {
    /// One noise sample from exactly the enclave's sampler with this plan's scale.
    pub fn sample<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Result<i64, DpError> {
        match self.mechanism {
            Mechanism::DiscreteGaussian => discrete_gaussian(&self.scale, rng),
            _ => discrete_laplace(&self.scale, rng),
        }
    }
}

/// Plan for discrete Laplace with L1 sensitivity `l1` at ε.
pub fn plan_laplace(epsilon: &Epsilon, l1: u64) -> Result<NoisePlan, DpError> {
    let scale = laplace_scale(l1, epsilon)?;
    crate::sampler::check_scale(&scale)?;
    let b = scale.to_f64();
    let lq = -1.0 / b; // ln q
    let q = lq.exp();
    let one_minus_q = -lq.exp_m1();
    let var = 2.0 * q / (one_minus_q * one_minus_q);
    let e_abs = 2.0 * q / (one_minus_q * (1.0 + q));
    // P(|Z| > a) = 2 q^{a+1} / (1+q) <= 0.05  ⇔  a + 1 >= ln(0.025 (1+q)) / ln q
    let a = ((0.025 * (1.0 + q)).ln() / lq).ceil() - 1.0;
    Ok(NoisePlan {
        mechanism: Mechanism::DiscreteLaplace,
        epsilon: *epsilon,
        delta: None,
        rho: None,
        sensitivity: l1,
        scale,
        std_dev: var.sqrt(),
        expected_abs_error: e_abs,
        ci95_half_width: a.max(0.0) as u64,
    })
}

/// Plan for discrete Gaussian with L2 sensitivity `l2` calibrated to (ε, δ) through zCDP.
pub fn plan_gaussian(epsilon: &Epsilon, delta: &Delta, l2: u64) -> Result<NoisePlan, DpError> {
    let rho = epsilon_delta_to_rho(epsilon, delta)?;
    let sigma_sq = gaussian_sigma_sq(l2, &rho)?;
    let max_sq = Rational::from_integer(crate::sampler::MAX_SCALE * crate::sampler::MAX_SCALE);
    if sigma_sq > max_sq {
        return Err(DpError::ScaleTooLarge);
    }
    let s2 = sigma_sq.to_f64();
    let sigma = s2.sqrt();
    let (sd, e_abs, ci) = if sigma < 1000.0 {
        // exact by summation over |x| <= 40σ + 40
        let lim = (40.0 * sigma).ceil() as i64 + 40;
        let w = |x: i64| (-((x as f64) * (x as f64)) / (2.0 * s2)).exp();
        let z: f64 = (-lim..=lim).map(w).sum();
        let var: f64 = (-lim..=lim).map(|x| (x as f64) * (x as f64) * w(x)).sum::<f64>() / z;
        let e_abs: f64 = (-lim..=lim).map(|x| (x as f64).abs() * w(x)).sum::<f64>() / z;
        let mut mass = w(0) / z;
        let mut a = 0i64;
        while mass < 0.95 && a < lim {
            a += 1;
            mass += 2.0 * w(a) / z;
        }
        (var.sqrt(), e_abs, a as u64)
    } else {
        // the discrete Gaussian matches the continuous one to ~1/σ² at this size
        (sigma, sigma * (2.0 / std::f64::consts::PI).sqrt(), (1.959_964 * sigma).ceil() as u64)
    };
    Ok(NoisePlan {
        mechanism: Mechanism::DiscreteGaussian,
        epsilon: *epsilon,
        delta: Some(*delta),
        rho: Some(rho),
        sensitivity: l2,
        scale: sigma_sq,
        std_dev: sd,
        expected_abs_error: e_abs,
        ci95_half_width: ci,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng_from_u64;

    #[test]
    fn laplace_plan_matches_samples() {
        let p = plan_laplace(&"0.5".parse().unwrap(), 2).unwrap();
        assert_eq!(p.scale.to_string(), "4");
        let mut rng = seeded_rng_from_u64(1);
        let n = 100_000;
        let xs: Vec<i64> = (0..n).map(|_| p.sample(&mut rng).unwrap()).collect();
        let inside = xs.iter().filter(|x| x.unsigned_abs() <= p.ci95_half_width).count() as f64 / n as f64;
        assert!(inside >= 0.945, "{inside}");
        let outside_smaller =
            xs.iter().filter(|x| x.unsigned_abs() <= p.ci95_half_width.saturating_sub(1)).count() as f64 / n as f64;
        assert!(outside_smaller < 0.955, "{outside_smaller}");
        let mean_abs = xs.iter().map(|x| x.unsigned_abs() as f64).sum::<f64>() / n as f64;
        assert!((mean_abs / p.expected_abs_error - 1.0).abs() < 0.03);
        assert!(plan_laplace(&"1".parse().unwrap(), 0).is_err());
    }

    #[test]
    fn gaussian_plan_is_consistent() {
        let p = plan_gaussian(&"1".parse().unwrap(), &"1e-6".parse().unwrap(), 1).unwrap();
        let rho = p.rho.unwrap().to_f64();
        assert!((p.scale.to_f64() - 1.0 / (2.0 * rho)).abs() < 1e-9);
        // ρ = (√(L+1) − √L)² ≈ 0.0169 with L = ln 10^6, so σ = √(1/(2ρ)) ≈ 5.4
        assert!(p.std_dev > 5.0 && p.std_dev < 6.0, "{}", p.std_dev);
        let mut rng = seeded_rng_from_u64(2);
        let n = 50_000;
        let inside = (0..n).filter(|_| p.sample(&mut rng).unwrap().unsigned_abs() <= p.ci95_half_width).count() as f64
            / n as f64;
        assert!(inside >= 0.94, "{inside}");
        let big = plan_gaussian(&"0.01".parse().unwrap(), &"1e-9".parse().unwrap(), 1_000_000).unwrap();
        assert!(big.std_dev > 1e8);
        assert!(plan_gaussian(&"1".parse().unwrap(), &Delta::ZERO, 1).is_err());
    }
}
