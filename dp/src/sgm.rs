//! Privacy accounting for DP-SGD: the Poisson-subsampled Gaussian mechanism (SGM) composed
//! over T steps, in Rényi DP at integer orders, converted to (ε, δ)-DP.
//!
//! One step releases `Σ_{u ∈ batch} g_u + N(0, σ²·C²·I)` where every privacy unit joins the
//! batch independently with probability q and each `g_u` is clipped to L2 norm C; σ is the
//! *noise multiplier*. Neighbouring datasets differ by adding or removing one unit.
//!
//! * Per step, at integer order α ≥ 2 (Mironov–Talwar–Zhang 2019, "Rényi Differential Privacy
//!   of the Sampled Gaussian Mechanism", Sec. 3.3):
//!   `A_α = Σ_{k=0..α} C(α,k)·(1−q)^{α−k}·q^k·exp(k(k−1)/(2σ²))`, RDP(α) = ln A_α / (α−1).
//!   Computed in log space (log-binomials by recurrence, log-sum-exp), so tiny q and large α
//!   neither underflow nor overflow; q = 1 uses the closed form α/(2σ²).
//! * T adaptive steps: RDP(α) adds up (Mironov 2017, "Rényi Differential Privacy", Prop. 1).
//! * (ε, δ): `ε = RDP(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1)` (Balle et al. 2020, "Hypothesis
//!   Testing Interpretations and Rényi Differential Privacy"; Canonne–Kamath–Steinke 2020,
//!   "The Discrete Gaussian for Differential Privacy", Prop. 12), minimised over [`rdp_orders`].
//!
//! Integer orders only: for an integer α the formula above is also an upper bound for the
//! *discrete* Gaussian noise the enclave adds (`docs/dp-sgd-accounting.md` gives the argument).
//!
//! The account is computed in `f64` and must never under-count, so (see `README.md`):
//! q is rounded up and σ down before use (A_α increases with q and decreases with σ), every
//! order carries an a-priori bound on its rounding error that is added to its ε, and the
//! minimum is rounded **up** to a multiple of 10⁻⁹.

use crate::rational::{Delta, Epsilon, Rational};
use crate::DpError;

/// The largest number of steps accepted (and the cap of [`max_steps`]).
pub const MAX_STEPS: u64 = 10_000_000;

/// The largest Rényi order used.
pub const MAX_ORDER: u32 = 4096;

/// The smallest noise multiplier accepted, as `(numerator, denominator)`: 1/10. Below it the
/// Rényi bound is useless anyway.
const MIN_NOISE_MULTIPLIER: (u128, u128) = (1, 10);

/// The grid ε is reported on: multiples of 10⁻⁹.
const EPSILON_UNITS: f64 = 1e9;

/// Twice the unit roundoff of `f64`, the charge for one rounding in the error bounds below.
const U: f64 = f64::EPSILON;

/// The orders ε is minimised over: every integer 2..=256, then steps of α/32 (8 up to 512, 16
/// up to 1024, 32 up to 2048, 64 up to [`MAX_ORDER`]), 383 orders. Integer orders near the
/// optimum matter where ln A_α grows steeply (small q and σ); above 256 the α/32 spacing cost
/// at most 1.3% of ε against every integer up to 4096 on q ∈ [10⁻⁴, 0.1], σ ∈ [0.7, 20],
/// T ≤ 100.
pub fn rdp_orders() -> Vec<u32> {
    let mut orders: Vec<u32> = (2..=256).collect();
    let mut alpha = 256u32;
    while alpha < MAX_ORDER {
        // largest power of two ≤ α, over 32
        alpha += (1u32 << (31 - alpha.leading_zeros())) / 32;
        orders.push(alpha);
    }
    orders
}

/// T steps of the Poisson-subsampled Gaussian mechanism (validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampledGaussian {
    sample_rate: Rational,
    noise_multiplier: Rational,
    steps: u64,
}

/// An (ε, δ) guarantee for [`SampledGaussian`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgmAccount {
    /// ε, rounded **up** to a multiple of 10⁻⁹ after adding the floating-point error bound.
    pub epsilon: Epsilon,
    /// The δ it was computed for.
    pub delta: Delta,
    /// The Rényi order that gave the smallest ε.
    pub order: u32,
    /// T·ln A_α/(α−1) at that order (float, for reporting).
    pub rdp_at_order: f64,
}

impl SampledGaussian {
    /// Sample rate q ∈ (0, 1], noise multiplier σ ≥ 0.1 (noise standard deviation over the
    /// clipping norm), steps T ∈ [1, [`MAX_STEPS`]].
    pub fn new(sample_rate: Rational, noise_multiplier: Rational, steps: u64) -> Result<Self, DpError> {
        check_rate_and_noise(&sample_rate, &noise_multiplier)?;
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(DpError::StepsOutOfRange);
        }
        Ok(SampledGaussian { sample_rate, noise_multiplier, steps })
    }

    /// q.
    pub fn sample_rate(&self) -> Rational {
        self.sample_rate
    }

    /// σ.
    pub fn noise_multiplier(&self) -> Rational {
        self.noise_multiplier
    }

    /// T.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// T·ln A_α/(α−1), the Rényi DP of the T steps at integer order α ≥ 2, as computed (no
    /// error margin; for reporting and tests). `None` for α < 2.
    pub fn rdp_at_order(&self, alpha: u32) -> Option<f64> {
        if alpha < 2 {
            return None;
        }
        let (q, sigma) = rounded_rate_and_noise(&self.sample_rate, &self.noise_multiplier);
        Some(self.steps as f64 * log_a(alpha, q, sigma) / f64::from(alpha - 1))
    }

    /// The smallest ε over [`rdp_orders`] for δ ∈ (0, 1), never below the exact RDP bound.
    pub fn account(&self, delta: &Delta) -> Result<SgmAccount, DpError> {
        let ln_delta = ln_delta(delta)?;
        let curve = RdpCurve::new(&self.sample_rate, &self.noise_multiplier);
        let best = curve.best(self.steps, ln_delta);
        Ok(SgmAccount { epsilon: round_up(best.epsilon)?, delta: *delta, order: best.order, rdp_at_order: best.rdp })
    }
}

/// The largest T ≤ [`MAX_STEPS`] whose account ([`SampledGaussian::account`], compared
/// exactly as rationals) is at most `epsilon`; 0 if even one step costs more. ε(T) is
/// non-decreasing in T, so this is a binary search over one precomputed curve.
pub fn max_steps(
    sample_rate: Rational,
    noise_multiplier: Rational,
    epsilon: &Epsilon,
    delta: &Delta,
) -> Result<u64, DpError> {
    check_rate_and_noise(&sample_rate, &noise_multiplier)?;
    let ln_delta = ln_delta(delta)?;
    let curve = RdpCurve::new(&sample_rate, &noise_multiplier);
    let fits = |t: u64| -> Result<bool, DpError> { Ok(round_up(curve.best(t, ln_delta).epsilon)? <= *epsilon) };
    if !fits(1)? {
        return Ok(0);
    }
    if fits(MAX_STEPS)? {
        return Ok(MAX_STEPS);
    }
    // Invariant: fits(lo), !fits(hi).
    let (mut lo, mut hi) = (1u64, MAX_STEPS);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn check_rate_and_noise(sample_rate: &Rational, noise_multiplier: &Rational) -> Result<(), DpError> {
    if sample_rate.is_zero() || *sample_rate > Rational::ONE {
        return Err(DpError::SampleRateOutOfRange);
    }
    let (n, d) = MIN_NOISE_MULTIPLIER;
    if *noise_multiplier < Rational::new(n, d)? {
        return Err(DpError::NoiseMultiplierTooSmall);
    }
    Ok(())
}

fn ln_delta(delta: &Delta) -> Result<f64, DpError> {
    if delta.as_rational().is_zero() {
        return Err(DpError::ZeroDelta);
    }
    // δ ≥ 2^-128 as a u128 fraction, so ln δ is finite; its rounding is charged in `bound`.
    Ok(delta.to_f64().ln())
}

/// ε as a rational: the smallest multiple of 10⁻⁹ at or above `eps` (at least 10⁻⁹: a
/// negative or zero bound means (0, δ)-DP, which implies (ε, δ)-DP for every ε > 0).
fn round_up(eps: f64) -> Result<Epsilon, DpError> {
    // (1 + 4U) covers the rounding of the product; ceil is exact.
    let units = (eps * EPSILON_UNITS * (1.0 + 4.0 * U)).ceil().max(1.0);
    if !units.is_finite() || units >= 1e30 {
        return Err(DpError::Overflow("DP-SGD epsilon"));
    }
    Epsilon::from_ratio(units as u128, EPSILON_UNITS as u128)
}

/// ln A_α for every order, with its error bound; independent of T and δ.
struct RdpCurve {
    orders: Vec<LogMoment>,
}

struct LogMoment {
    alpha: u32,
    log_a: f64,
    error: f64,
}

/// The best order for one T.
#[derive(Debug)]
struct Best {
    epsilon: f64,
    order: u32,
    rdp: f64,
}

impl RdpCurve {
    fn new(sample_rate: &Rational, noise_multiplier: &Rational) -> Self {
        let (q, sigma) = rounded_rate_and_noise(sample_rate, noise_multiplier);
        let orders = rdp_orders()
            .into_iter()
            .map(|alpha| LogMoment { alpha, log_a: log_a(alpha, q, sigma), error: log_a_error(alpha, q, sigma) })
            .collect();
        RdpCurve { orders }
    }

    /// The order with the smallest ε upper bound after `steps` steps (ties: the smaller order).
    fn best(&self, steps: u64, ln_delta: f64) -> Best {
        let t = steps as f64; // exact: steps ≤ 10^7 < 2^53
        let mut best = Best { epsilon: f64::INFINITY, order: 0, rdp: f64::INFINITY };
        for m in &self.orders {
            let alpha = f64::from(m.alpha);
            let rdp = t * m.log_a / (alpha - 1.0);
            let ln_alpha = alpha.ln();
            let eps = rdp + (-1.0 / alpha).ln_1p() - (ln_delta + ln_alpha) / (alpha - 1.0);
            // ln A_α's error scaled like ln A_α, plus the few roundings of this line (and of
            // δ → f64 → ln δ) charged at the size of its largest term.
            let error = t * m.error / (alpha - 1.0) + 8.0 * U * (rdp + ln_delta.abs() + ln_alpha + 1.0);
            if eps + error < best.epsilon {
                best = Best { epsilon: eps + error, order: m.alpha, rdp };
            }
        }
        best
    }
}

/// q and σ as floats, q rounded up and σ down. A_α grows with q and shrinks with σ, so by far
/// more than the ≤ 3 roundings of num/den this accounts a mechanism at least as leaky as the
/// real one.
fn rounded_rate_and_noise(sample_rate: &Rational, noise_multiplier: &Rational) -> (f64, f64) {
    let q = if *sample_rate == Rational::ONE { 1.0 } else { (sample_rate.to_f64() * (1.0 + 1e-15)).min(1.0) };
    (q, noise_multiplier.to_f64() * (1.0 - 1e-15))
}

/// ln A_α = ln Σ_k exp(t_k), t_k = ln C(α,k) + (α−k)·ln(1−q) + k·ln q + k(k−1)/(2σ²).
/// A_α ≥ 1 (Jensen), so a negative float result is clamped to 0.
fn log_a(alpha: u32, q: f64, sigma: f64) -> f64 {
    let a = f64::from(alpha);
    let half_inv_var = 0.5 / (sigma * sigma);
    if q >= 1.0 {
        // No subsampling: D_α(N(1, σ²) ‖ N(0, σ²)) = α/(2σ²).
        return a * (a - 1.0) * half_inv_var;
    }
    let (ln_q, ln_1mq) = (q.ln(), (-q).ln_1p());
    let mut ln_binom = 0.0; // ln C(α, k), by C(α,k) = C(α,k−1)·(α−k+1)/k
    let mut sum = LogSumExp::default();
    for k in 0..=alpha {
        let kf = f64::from(k);
        if k > 0 {
            ln_binom += ((a - kf + 1.0) / kf).ln();
        }
        sum.add(ln_binom + (a - kf) * ln_1mq + kf * ln_q + kf * (kf - 1.0) * half_inv_var);
    }
    sum.ln().max(0.0)
}

/// A bound on |computed − exact| of [`log_a`], to first order in U. Every term t_k, each of
/// its four parts and every partial sum is at most B = α·(ln 2 + |ln(1−q)| + |ln q|) +
/// α(α−1)/(2σ²) in magnitude. Each of the ≤ α steps of the ln C(α,k) recurrence (a division, a
/// `ln` within one ulp, an addition) errs by ≤ 1.5U·B + 0.5U; the four parts and their sum by
/// ≤ 6U·B; the streaming log-sum-exp, rescalings included, by ≤ 1.5U·B + 2U·α + 3U (it is
/// 1-Lipschitz in the terms, so their errors pass through unamplified). 4U·(α+4)·(B+1) is more
/// than twice the total.
fn log_a_error(alpha: u32, q: f64, sigma: f64) -> f64 {
    let a = f64::from(alpha);
    let logs = if q >= 1.0 { 0.0 } else { std::f64::consts::LN_2 + (-q).ln_1p().abs() + q.ln().abs() };
    let b = a * logs + a * (a - 1.0) * 0.5 / (sigma * sigma);
    4.0 * U * (a + 4.0) * (b + 1.0)
}

/// ln Σ exp(x_i) in one pass, rescaling when a larger term arrives, so nothing overflows.
struct LogSumExp {
    max: f64,
    scaled: f64, // Σ exp(x_i − max)
}

impl Default for LogSumExp {
    fn default() -> Self {
        LogSumExp { max: f64::NEG_INFINITY, scaled: 0.0 }
    }
}

impl LogSumExp {
    fn add(&mut self, x: f64) {
        if x <= self.max {
            self.scaled += (x - self.max).exp();
        } else {
            self.scaled = self.scaled * (self.max - x).exp() + 1.0;
            self.max = x;
        }
    }

    fn ln(&self) -> f64 {
        self.max + self.scaled.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rational {
        s.parse().unwrap()
    }

    fn delta(s: &str) -> Delta {
        s.parse().unwrap()
    }

    fn eps_of(q: &str, sigma: &str, steps: u64, d: &str) -> f64 {
        SampledGaussian::new(r(q), r(sigma), steps).unwrap().account(&delta(d)).unwrap().epsilon.to_f64()
    }

    /// The same minimisation written directly from the closed form α·T/(2σ²) (q = 1).
    fn closed_form(sigma: f64, steps: f64, d: f64) -> f64 {
        rdp_orders()
            .into_iter()
            .map(f64::from)
            .map(|a| a * steps / (2.0 * sigma * sigma) + ((a - 1.0) / a).ln() - (d.ln() + a.ln()) / (a - 1.0))
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn orders_are_integers_two_to_4096() {
        let o = rdp_orders();
        assert_eq!(o.len(), 383);
        assert_eq!(&o[..3], &[2, 3, 4]);
        assert_eq!(o[254], 256);
        assert_eq!(&o[255..258], &[264, 272, 280]);
        assert_eq!(*o.last().unwrap(), MAX_ORDER);
        assert!(o.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn no_subsampling_is_the_closed_form() {
        for (sigma, steps, d) in [("1", 1, "1e-5"), ("0.7", 10, "1e-6"), ("5", 1000, "1e-5"), ("2.5", 1, "0.01")] {
            let ours = eps_of("1", sigma, steps, d);
            let want = closed_form(r(sigma).to_f64(), steps as f64, r(d).to_f64());
            assert!(ours >= want && ours <= want + 2e-9 + want * 1e-12, "σ {sigma} T {steps}: {ours} vs {want}");
        }
    }

    #[test]
    fn log_a_matches_the_sum_and_the_binomial_limits() {
        // α = 2: A = (1−q)² + 2q(1−q) + q²·e^{1/σ²} = 1 + q²(e^{1/σ²} − 1).
        for (q, sigma) in [(0.01f64, 1.0f64), (0.5, 0.7), (1e-6, 3.0)] {
            let want = (q * q * (1.0 / (sigma * sigma)).exp_m1()).ln_1p();
            let got = log_a(2, q, sigma);
            assert!((got - want).abs() <= 1e-15 + want * 1e-12, "{got} vs {want}");
        }
        // Large α and tiny q: finite, non-negative, and growing with α.
        let mut last = 0.0;
        for alpha in [2, 64, 1024, 4096] {
            let v = log_a(alpha, 1e-9, 0.8);
            assert!(v.is_finite() && v >= last, "α {alpha}: {v}");
            last = v;
        }
        // As q → 1 the subsampled value meets the unsubsampled one.
        let (near, at) = (log_a(40, 1.0 - 1e-12, 2.0), log_a(40, 1.0, 2.0));
        assert!((near - at).abs() < 1e-6 * at, "{near} vs {at}");
    }

    #[test]
    fn monotone_in_steps_sample_rate_and_noise() {
        let mut last = 0.0;
        for t in [1, 2, 10, 100, 1000, 10_000, 100_000] {
            let e = eps_of("0.01", "1", t, "1e-5");
            assert!(e >= last, "T = {t}: {e} < {last}");
            last = e;
        }
        let mut last = f64::INFINITY;
        for sigma in ["0.5", "0.7", "1", "1.5", "2", "5", "10"] {
            let e = eps_of("0.01", sigma, 1000, "1e-5");
            assert!(e <= last, "σ = {sigma}: {e} > {last}");
            last = e;
        }
        let mut last = 0.0;
        for q in ["0.0001", "0.001", "0.01", "0.1", "0.5", "1"] {
            let e = eps_of(q, "1", 100, "1e-5");
            assert!(e >= last, "q = {q}: {e} < {last}");
            last = e;
        }
    }

    /// One unsubsampled step is the Gaussian mechanism, whose exact (ε, δ) curve is known
    /// (Balle–Wang 2018, "Improving the Gaussian Mechanism for Differential Privacy"):
    /// δ(ε) = Φ(1/(2σ) − εσ) − e^ε·Φ(−1/(2σ) − εσ). Ours may be looser, never smaller.
    #[test]
    fn one_gaussian_step_is_never_below_the_exact_curve() {
        use statrs::distribution::{ContinuousCDF, Normal};
        let phi = |x: f64| Normal::new(0.0, 1.0).unwrap().cdf(x);
        let exact_delta = |eps: f64, s: f64| phi(0.5 / s - eps * s) - eps.exp() * phi(-0.5 / s - eps * s);
        for (sigma, d) in [("0.7", "1e-5"), ("1", "1e-5"), ("2", "1e-6"), ("5", "1e-5")] {
            let ours = eps_of("1", sigma, 1, d);
            let (s, d) = (r(sigma).to_f64(), r(d).to_f64());
            // δ(ε) decreases in ε: ours is valid iff the exact δ at our ε is ≤ δ.
            assert!(exact_delta(ours, s) <= d, "σ {s}: ε {ours} gives δ {}", exact_delta(ours, s));
            // ... and not absurdly loose: within 25% of the exact ε.
            assert!(exact_delta(ours / 1.25, s) > d, "σ {s}: ε {ours} is loose");
        }
    }

    /// dp-accounting 0.6.0 (`RdpAccountant(orders=rdp_orders())`, the same integer orders and
    /// conversion) for the MNIST DP-SGD setting of Abadi et al. 2016 and two more.
    #[test]
    fn matches_dp_accounting_at_the_same_orders() {
        let cases = [
            ("256/60000", "1.1", 14_063, "1e-5", 2.5970795196566616, 8),
            ("0.01", "1", 1000, "1e-5", 2.1077530754515745, 8),
            ("0.001", "5", 10, "1e-6", 0.020410345445136667, 344),
        ];
        for (q, sigma, t, d, want, order) in cases {
            let a = SampledGaussian::new(r(q), r(sigma), t).unwrap().account(&delta(d)).unwrap();
            let e = a.epsilon.to_f64();
            assert!(e >= want && e <= want * (1.0 + 1e-9) + 2e-9, "{q} {sigma} {t}: {e} vs {want}");
            assert_eq!(a.order, order);
        }
    }

    #[test]
    fn float_margin_is_tiny() {
        // The added error bound and the rounding to 10⁻⁹ move ε by far less than it matters.
        for (q, sigma, t) in [(0.01, 1.0, 10_000u64), (0.001, 20.0, 1), (0.5, 0.7, 10_000_000)] {
            let curve = RdpCurve::new(&Rational::try_from_f64(q).unwrap(), &Rational::try_from_f64(sigma).unwrap());
            let best = curve.best(t, 1e-5f64.ln());
            let m = curve.orders.iter().find(|m| m.alpha == best.order).unwrap();
            let a = f64::from(m.alpha);
            let raw = t as f64 * m.log_a / (a - 1.0) + (-1.0 / a).ln_1p() - (1e-5f64.ln() + a.ln()) / (a - 1.0);
            assert!(best.epsilon >= raw && best.epsilon - raw < 1e-7 * raw.max(1.0), "{q} {sigma} {t}: {best:?}");
        }
    }

    #[test]
    fn max_steps_is_the_last_step_that_fits() {
        let (q, sigma, d) = (r("0.01"), r("1.1"), delta("1e-5"));
        let target: Epsilon = "3".parse().unwrap();
        let t = max_steps(q, sigma, &target, &d).unwrap();
        assert!(t > 1 && t < MAX_STEPS, "{t}");
        let at = |t| SampledGaussian::new(q, sigma, t).unwrap().account(&d).unwrap().epsilon;
        assert!(at(t) <= target && at(t + 1) > target, "{t}: {} {}", at(t), at(t + 1));
        // Nothing fits, everything fits.
        assert_eq!(max_steps(r("1"), r("0.5"), &"0.01".parse().unwrap(), &d).unwrap(), 0);
        assert_eq!(max_steps(r("0.0001"), r("100"), &"10".parse().unwrap(), &d).unwrap(), MAX_STEPS);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let d = delta("1e-5");
        let new = |q: &str, s: &str, t| SampledGaussian::new(r(q), r(s), t);
        assert_eq!(new("0", "1", 10), Err(DpError::SampleRateOutOfRange));
        assert_eq!(new("1.01", "1", 10), Err(DpError::SampleRateOutOfRange));
        assert_eq!(new("0.01", "0", 10), Err(DpError::NoiseMultiplierTooSmall));
        assert_eq!(new("0.01", "0.099", 10), Err(DpError::NoiseMultiplierTooSmall));
        assert_eq!(new("0.01", "1", 0), Err(DpError::StepsOutOfRange));
        assert_eq!(new("0.01", "1", MAX_STEPS + 1), Err(DpError::StepsOutOfRange));
        assert!(new("1", "0.1", MAX_STEPS).is_ok());
        assert_eq!(new("0.01", "1", 10).unwrap().account(&Delta::ZERO), Err(DpError::ZeroDelta));
        let e: Epsilon = "1".parse().unwrap();
        assert_eq!(max_steps(r("0"), r("1"), &e, &d), Err(DpError::SampleRateOutOfRange));
        assert_eq!(max_steps(r("0.1"), r("0.01"), &e, &d), Err(DpError::NoiseMultiplierTooSmall));
        assert_eq!(max_steps(r("0.1"), r("1"), &e, &Delta::ZERO), Err(DpError::ZeroDelta));
    }

    #[test]
    fn extreme_but_valid_parameters_give_a_finite_epsilon() {
        for (q, sigma, t) in [("1", "0.1", MAX_STEPS), ("1e-9", "1000", 1), ("0.999999", "0.1", 1)] {
            let a = SampledGaussian::new(r(q), r(sigma), t).unwrap().account(&delta("1e-30")).unwrap();
            assert!(a.epsilon.to_f64().is_finite() && a.epsilon.to_f64() > 0.0, "{q} {sigma} {t}: {a:?}");
        }
    }
}
