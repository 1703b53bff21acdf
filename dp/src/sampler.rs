//! Exact samplers (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential
//! Privacy", Algorithms 1–3). No floating point anywhere on these paths: every decision is a
//! comparison of a uniformly random integer (drawn by rejection, no modulo bias) against an
//! exact rational.
//!
//! All samplers take any `R: RngCore + CryptoRng + ?Sized`, so both a concrete
//! [`rand_chacha::ChaCha20Rng`] and a `&mut dyn rand_core::CryptoRngCore` work.

use num_bigint::BigUint;
use num_traits::{One, Zero};
use rand_core::{CryptoRng, RngCore};

use crate::rational::Rational;
use crate::DpError;

/// Largest accepted discrete Laplace scale `t` (and discrete Gaussian σ). Beyond this the
/// output could leave `i64` with non-negligible probability; 10^15 ≫ the 10^9 we need.
pub const MAX_SCALE: u128 = 1_000_000_000_000_000;

/// A uniformly random integer in `[0, n)` for `1 <= n <= 2^64`, using Lemire's multiply-and-
/// reject method (exact: the biased low region is rejected).
#[inline]
fn uniform_below_u64<R: RngCore + ?Sized>(n: u64, rng: &mut R) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    let mut low = m as u64;
    if low < n {
        // threshold = 2^64 mod n
        let threshold = n.wrapping_neg() % n;
        while low < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
            low = m as u64;
        }
    }
    (m >> 64) as u64
}

/// A uniformly random integer in `[0, n)`, `n >= 1`, by rejection (no modulo bias).
#[inline]
pub fn uniform_below<R: RngCore + ?Sized>(n: u128, rng: &mut R) -> u128 {
    if n <= 1 {
        return 0;
    }
    if let Ok(n64) = u64::try_from(n) {
        return u128::from(uniform_below_u64(n64, rng));
    }
    if n == 1u128 << 64 {
        return u128::from(rng.next_u64());
    }
    // n > 2^64: mask to the bit length of n-1 and reject (acceptance > 1/2).
    let bits = 128 - (n - 1).leading_zeros();
    let mask = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
    loop {
        let x = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if x < n {
            return x;
        }
    }
}

/// A uniformly random `BigUint` in `[0, n)`, `n >= 1`, by masked rejection.
fn uniform_below_big<R: RngCore + ?Sized>(n: &BigUint, rng: &mut R) -> BigUint {
    if n <= &BigUint::one() {
        return BigUint::zero();
    }
    let nm1 = n - 1u32;
    let bits = nm1.bits();
    let nbytes = bits.div_ceil(8) as usize;
    let top_bits = bits - 8 * (nbytes as u64 - 1);
    let top_mask: u8 = if top_bits == 8 { 0xff } else { (1u8 << top_bits) - 1 };
    let mut buf = vec![0u8; nbytes];
    loop {
        rng.fill_bytes(&mut buf);
        // big-endian: first byte is the most significant
        buf[0] &= top_mask;
        let x = BigUint::from_bytes_be(&buf);
        if &x < n {
            return x;
        }
    }
}

/// Bernoulli(`num/den`), `num <= den`, `den >= 1`.
#[inline]
fn bernoulli_ratio<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    uniform_below(den, rng) < num
}

/// Bernoulli(p) for an exact rational `p` in `[0, 1]`.
pub fn bernoulli<R: RngCore + CryptoRng + ?Sized>(p: &Rational, rng: &mut R) -> Result<bool, DpError> {
    if p > &Rational::ONE {
        return Err(DpError::ProbabilityOutOfRange);
    }
    Ok(bernoulli_ratio(p.numer(), p.denom(), rng))
}

/// Bernoulli(exp(-num/den)) for `0 <= num <= den` (CKS20 Algorithm 1, first case):
/// draw A_k ~ Bernoulli(γ/k) for k = 1, 2, ... until the first A_k = 0; return whether that
/// k is odd. Bernoulli(γ/k) is drawn as a single uniform below `den·k`, or, if that product
/// overflows, as Bernoulli(γ)·Bernoulli(1/k) (independent, same probability).
#[inline]
fn bernoulli_exp_le1<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    let mut k: u128 = 1;
    loop {
        let a = match den.checked_mul(k) {
            Some(dk) => bernoulli_ratio(num, dk, rng),
            None => bernoulli_ratio(num, den, rng) && bernoulli_ratio(1, k, rng),
        };
        if !a {
            return k % 2 == 1;
        }
        // k cannot realistically reach u128::MAX (probability 1/k!); saturate to stay total.
        k = k.saturating_add(1);
    }
}

/// Bernoulli(exp(-1)).
#[inline]
fn bernoulli_exp_minus_one<R: RngCore + ?Sized>(rng: &mut R) -> bool {
    bernoulli_exp_le1(1, 1, rng)
}

/// Bernoulli(exp(-num/den)) for any `num/den >= 0` (CKS20 Algorithm 1): for γ > 1, draw
/// ⌊γ⌋ independent Bernoulli(exp(-1)) (stopping at the first 0), then Bernoulli(exp(-(γ-⌊γ⌋))).
fn bernoulli_exp_ratio<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    if num <= den {
        return bernoulli_exp_le1(num, den, rng);
    }
    let whole = num / den;
    let rem = num % den;
    let mut i: u128 = 0;
    while i < whole {
        if !bernoulli_exp_minus_one(rng) {
            return false;
        }
        i += 1;
    }
    bernoulli_exp_le1(rem, den, rng)
}

/// The same as [`bernoulli_exp_ratio`] for big integers (used only when the exact
/// discrete-Gaussian acceptance exponent does not fit `u128`).
fn bernoulli_exp_big<R: RngCore + ?Sized>(num: &BigUint, den: &BigUint, rng: &mut R) -> bool {
    let whole = num / den;
    let rem = num % den;
    let mut i = BigUint::zero();
    while i < whole {
        if !bernoulli_exp_minus_one(rng) {
            return false;
        }
        i += 1u32;
    }
    // rem/den in [0,1)
    let mut k = BigUint::one();
    loop {
        let dk = den * &k;
        if uniform_below_big(&dk, rng) >= rem {
            return (&k % 2u32) == BigUint::one();
        }
        k += 1u32;
    }
}

/// Bernoulli(exp(-γ)) for an exact rational γ >= 0.
pub fn bernoulli_exp<R: RngCore + CryptoRng + ?Sized>(gamma: &Rational, rng: &mut R) -> bool {
    bernoulli_exp_ratio(gamma.numer(), gamma.denom(), rng)
}

/// Discrete Laplace with scale `t/s` (CKS20 Algorithm 2): P(x) ∝ exp(-|x|·s/t).
fn discrete_laplace_ts<R: RngCore + ?Sized>(t: u128, s: u128, rng: &mut R) -> Result<i64, DpError> {
    loop {
        let u = uniform_below(t, rng);
        if !bernoulli_exp_le1(u, t, rng) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_minus_one(rng) {
            v = v.checked_add(1).ok_or(DpError::Overflow("laplace sample"))?;
        }
        let x = t.checked_mul(v).and_then(|tv| tv.checked_add(u)).ok_or(DpError::Overflow("laplace sample"))?;
        let y = x / s;
        let negative = bernoulli_ratio(1, 2, rng);
        if negative && y == 0 {
            continue;
        }
        let y = i64::try_from(y).map_err(|_| DpError::Overflow("laplace sample"))?;
        return Ok(if negative { -y } else { y });
    }
}

pub(crate) fn check_scale(scale: &Rational) -> Result<(), DpError> {
    if scale.is_zero() {
        return Err(DpError::ZeroScale);
    }
    if scale > &Rational::from_integer(MAX_SCALE) {
        return Err(DpError::ScaleTooLarge);
    }
    Ok(())
}

/// Exact discrete Laplace sample: P(X = x) = (1-q)/(1+q) · q^|x| with q = exp(-1/scale).
/// `scale` must be in (0, [`MAX_SCALE`]].
pub fn discrete_laplace<R: RngCore + CryptoRng + ?Sized>(scale: &Rational, rng: &mut R) -> Result<i64, DpError> {
    check_scale(scale)?;
    discrete_laplace_ts(scale.numer(), scale.denom(), rng)
}

/// Exact discrete Gaussian sample (CKS20 Algorithm 3): P(X = x) ∝ exp(-x²/(2σ²)).
/// `sigma_sq` must be in (0, MAX_SCALE²].
pub fn discrete_gaussian<R: RngCore + CryptoRng + ?Sized>(sigma_sq: &Rational, rng: &mut R) -> Result<i64, DpError> {
    if sigma_sq.is_zero() {
        return Err(DpError::ZeroScale);
    }
    let max_sq = Rational::from_integer(MAX_SCALE * MAX_SCALE);
    if sigma_sq > &max_sq {
        return Err(DpError::ScaleTooLarge);
    }
    let n = sigma_sq.numer();
    let d = sigma_sq.denom();
    // t = floor(σ) + 1, and floor(sqrt(n/d)) = isqrt(floor(n/d)).
    let t = (n / d).isqrt() + 1;
    loop {
        let y = discrete_laplace_ts(t, 1, rng)?;
        let a = u128::from(y.unsigned_abs());
        // γ = (|y| - σ²/t)² / (2σ²) = (|y|·d·t - n)² / (2·n·d·t²)
        let exact = (|| {
            let adt = a.checked_mul(d)?.checked_mul(t)?;
            let diff = adt.abs_diff(n);
            let num = diff.checked_mul(diff)?;
            let den = n.checked_mul(2)?.checked_mul(d)?.checked_mul(t)?.checked_mul(t)?;
            Some((num, den))
        })();
        let accept = match exact {
            Some((num, den)) => bernoulli_exp_ratio(num, den, rng),
            None => {
                let (a, d, t, n) = (BigUint::from(a), BigUint::from(d), BigUint::from(t), BigUint::from(n));
                let adt = &a * &d * &t;
                let diff = if adt >= n { &adt - &n } else { &n - &adt };
                let num = &diff * &diff;
                let den = n * 2u32 * d * &t * &t;
                bernoulli_exp_big(&num, &den, rng)
            }
        };
        if accept {
            return Ok(y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng_from_u64;

    fn r(s: &str) -> Rational {
        s.parse().unwrap()
    }

    #[test]
    fn uniform_small_range_is_uniform() {
        let mut rng = seeded_rng_from_u64(1);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[uniform_below(3, &mut rng) as usize] += 1;
        }
        for c in counts {
            assert!((9_400..10_600).contains(&c), "{counts:?}");
        }
        // huge range path
        for _ in 0..1000 {
            let n = (1u128 << 100) + 12345;
            assert!(uniform_below(n, &mut rng) < n);
        }
        assert_eq!(uniform_below(1, &mut rng), 0);
        let big = BigUint::from(1000u32);
        for _ in 0..1000 {
            assert!(uniform_below_big(&big, &mut rng) < big);
        }
    }

    #[test]
    fn bernoulli_exp_means() {
        let mut rng = seeded_rng_from_u64(2);
        let n = 200_000;
        for (g, expect) in [("0", 1.0f64), ("0.5", (-0.5f64).exp()), ("1", (-1f64).exp()), ("2.3", (-2.3f64).exp())] {
            let gamma = r(g);
            let hits = (0..n).filter(|_| bernoulli_exp(&gamma, &mut rng)).count();
            let p = hits as f64 / n as f64;
            // 6 standard deviations
            let sd = (expect * (1.0 - expect) / n as f64).sqrt();
            assert!((p - expect).abs() <= 6.0 * sd + 1e-9, "gamma={g} p={p} expect={expect}");
        }
        // enormous gamma terminates and is false
        assert!(!bernoulli_exp(&Rational::from_integer(u128::MAX), &mut rng));
    }

    #[test]
    fn bernoulli_exp_big_matches_small() {
        let mut rng = seeded_rng_from_u64(3);
        let n = 100_000;
        let num = BigUint::from(7u32);
        let den = BigUint::from(5u32);
        let hits = (0..n).filter(|_| bernoulli_exp_big(&num, &den, &mut rng)).count();
        let p = hits as f64 / n as f64;
        let expect = (-1.4f64).exp();
        let sd = (expect * (1.0 - expect) / n as f64).sqrt();
        assert!((p - expect).abs() <= 6.0 * sd);
    }

    #[test]
    fn bernoulli_rejects_p_above_one() {
        let mut rng = seeded_rng_from_u64(4);
        assert!(bernoulli(&r("1.5"), &mut rng).is_err());
        assert!(bernoulli(&r("1"), &mut rng).unwrap());
        assert!(!bernoulli(&r("0"), &mut rng).unwrap());
    }

    #[test]
    fn seeded_determinism() {
        let scale = r("3.7");
        let a: Vec<i64> = {
            let mut rng = seeded_rng_from_u64(42);
            (0..100).map(|_| discrete_laplace(&scale, &mut rng).unwrap()).collect()
        };
        let b: Vec<i64> = {
            let mut rng = seeded_rng_from_u64(42);
            (0..100).map(|_| discrete_laplace(&scale, &mut rng).unwrap()).collect()
        };
        assert_eq!(a, b);
        let mut rng = seeded_rng_from_u64(43);
        let c: Vec<i64> = (0..100).map(|_| discrete_laplace(&scale, &mut rng).unwrap()).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn laplace_symmetric_mean_zero() {
        let mut rng = seeded_rng_from_u64(5);
        for s in ["0.5", "1", "3.7", "100"] {
            let scale = r(s);
            let b = scale.to_f64();
            let n = 100_000;
            let xs: Vec<i64> = (0..n).map(|_| discrete_laplace(&scale, &mut rng).unwrap()).collect();
            let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
            // variance of discrete Laplace = 2q/(1-q)^2 with q = exp(-1/b)
            let q = (-1.0 / b).exp();
            let var = 2.0 * q / (1.0 - q).powi(2);
            let sd_mean = (var / n as f64).sqrt();
            assert!(mean.abs() < 6.0 * sd_mean, "scale {s}: mean {mean}");
            let emp_var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            assert!((emp_var / var - 1.0).abs() < 0.05, "scale {s}: var {emp_var} vs {var}");
            let pos = xs.iter().filter(|&&x| x > 0).count() as f64;
            let neg = xs.iter().filter(|&&x| x < 0).count() as f64;
            assert!((pos - neg).abs() < 6.0 * (pos + neg).sqrt(), "scale {s}: {pos} vs {neg}");
        }
    }

    #[test]
    fn gaussian_mean_and_variance() {
        let mut rng = seeded_rng_from_u64(6);
        for s in ["0.25", "1", "13.69", "10000"] {
            let sigma_sq = r(s);
            let n = 50_000;
            let xs: Vec<i64> = (0..n).map(|_| discrete_gaussian(&sigma_sq, &mut rng).unwrap()).collect();
            let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
            let v = sigma_sq.to_f64();
            assert!(mean.abs() < 6.0 * (v / n as f64).sqrt() + 1e-9, "σ²={s} mean {mean}");
            let emp_var = xs.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / n as f64;
            // the discrete Gaussian variance is < σ² and ≈ σ² for σ ≳ 1
            if v >= 1.0 {
                assert!((emp_var / v - 1.0).abs() < 0.05, "σ²={s} var {emp_var}");
            } else {
                assert!(emp_var < v, "σ²={s} var {emp_var}");
            }
        }
    }

    #[test]
    fn huge_and_tiny_scales_do_not_overflow() {
        let mut rng = seeded_rng_from_u64(7);
        for s in ["1000000000", "1000000000000000", "0.001", "1/3", "999999999.999999999"] {
            let scale = r(s);
            for _ in 0..200 {
                discrete_laplace(&scale, &mut rng).unwrap();
            }
        }
        // σ = 10^9 and σ = 10^15 (σ² = 10^30) exercise the big-integer acceptance path
        for s in ["1000000000000000000", "1000000000000000000000000000000", "1000000000000000000.5", "0.0001"] {
            let sigma_sq = r(s);
            for _ in 0..200 {
                discrete_gaussian(&sigma_sq, &mut rng).unwrap();
            }
        }
        assert!(matches!(discrete_laplace(&Rational::ZERO, &mut rng), Err(DpError::ZeroScale)));
        assert!(matches!(
            discrete_laplace(&Rational::from_integer(MAX_SCALE + 1), &mut rng),
            Err(DpError::ScaleTooLarge)
        ));
        assert!(matches!(discrete_gaussian(&Rational::ZERO, &mut rng), Err(DpError::ZeroScale)));
    }

    #[test]
    fn works_through_dyn_rng() {
        let mut concrete = seeded_rng_from_u64(8);
        let rng: &mut dyn rand_core::CryptoRngCore = &mut concrete;
        let x = discrete_laplace(&r("2"), rng).unwrap();
        let y = discrete_gaussian(&r("2"), rng).unwrap();
        let _ = (x, y);
    }
}
