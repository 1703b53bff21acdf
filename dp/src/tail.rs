//! Certified upper bounds on discrete Laplace tails, for choosing partition-selection
//! thresholds without trusting floating point.
//!
//! For Z ~ DLap(b), P(Z = z) = (1-q)/(1+q)·q^|z| with q = e^{-x}, x = 1/b, and for n >= 1
//!
//! ```text
//! P(Z >= n) = q^n / (1+q) = 1 / ( e^{(n-1)x} · (1 + e^x) ).
//! ```
//!
//! The second form needs only **lower** bounds on e^y (y >= 0) to give an **upper** bound on
//! the tail, and a lower bound on e^y is easy to certify: every partial sum of the Taylor
//! series Σ y^i/i! is one (all terms are positive). We evaluate in binary fixed point with
//! [`FRAC_BITS`] fractional bits, rounding every operation down (floor), so each computed
//! number is a lower bound of the true one:
//!
//! * e ≥ E := Σ_{i} ⌊…⌊⌊2^F/1⌋/2⌋…/i⌋ (stepwise floored Taylor terms at y = 1);
//! * e^z for z = p/r ∈ [0, 1): the same stepwise floored Taylor sum with factor p/(r·i);
//! * e^{⌊y⌋} ≥ E^{⌊y⌋} by square-and-multiply with floored products (products of lower
//!   bounds of positive numbers are lower bounds);
//! * e^y ≥ e^{⌊y⌋}·e^{y-⌊y⌋}, floored; y above [`EXP_CAP`] is replaced by `EXP_CAP`
//!   (e^y is increasing, so this is still a lower bound, and e^{-512} is far below any
//!   representable δ times any multiplicity we accept).
//!
//! Every comparison at the end is between exact big integers. The bounds lose at most a
//! relative 2^-180 or so against the truth, so "not certified" happens only when the true
//! tail is within that factor of the target; callers then take the next threshold, which is
//! conservative.

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};

use crate::rational::{Epsilon, Rational};
use crate::DpError;

/// Fractional bits of the fixed-point representation.
const FRAC_BITS: u64 = 192;

/// Exponents above this are capped (a lower bound stays a lower bound): e^512 ≈ 2^738.
const EXP_CAP: u64 = 512;

fn fx_mul(a: &BigUint, b: &BigUint) -> BigUint {
    (a * b) >> FRAC_BITS
}

/// Lower bound on e^{p/r}·2^F for 0 <= p <= r, r > 0: the Taylor sum Σ_i (p/r)^i/i! with
/// every term floored as it is formed from the previous one (so each is below the true term).
fn exp_unit_lower(p: &BigUint, r: &BigUint) -> BigUint {
    let one = BigUint::one() << FRAC_BITS;
    let mut sum = one.clone();
    let mut term = one;
    let mut i = 1u32;
    loop {
        term = (&term * p) / (r * i);
        if term.is_zero() {
            return sum;
        }
        sum += &term;
        i += 1;
    }
}

/// Lower bound on base^e in fixed point, for base >= 2^F (a value >= 1).
fn fx_pow_lower(base: &BigUint, mut e: u64) -> BigUint {
    let mut acc = BigUint::one() << FRAC_BITS;
    let mut b = base.clone();
    while e > 0 {
        if e & 1 == 1 {
            acc = fx_mul(&acc, &b);
        }
        e >>= 1;
        if e > 0 {
            b = fx_mul(&b, &b);
        }
    }
    acc
}

/// Lower bound on e^{num/den}·2^F (den > 0), given `e_lower` <= e·2^F.
fn exp_lower(num: &BigUint, den: &BigUint, e_lower: &BigUint) -> BigUint {
    let whole = num / den;
    let (whole, frac) = match whole.to_u64() {
        Some(w) if w < EXP_CAP => (w, num % den),
        _ => (EXP_CAP, BigUint::zero()),
    };
    let int_part = fx_pow_lower(e_lower, whole);
    if frac.is_zero() {
        return int_part;
    }
    fx_mul(&int_part, &exp_unit_lower(&frac, den))
}

/// Tails of DLap(b) with b = k/ε, i.e. x = 1/b = ε/k exactly.
pub(crate) struct DLapTail {
    /// x = x_num / x_den.
    x_num: BigUint,
    x_den: BigUint,
    /// Lower bound on e·2^F.
    e_lower: BigUint,
    /// Lower bound on (1 + e^x)·2^F.
    one_plus_ex_lower: BigUint,
}

impl DLapTail {
    /// Tails of the discrete Laplace with scale `l1 / epsilon`.
    pub(crate) fn new(epsilon: &Epsilon, l1: u64) -> Result<Self, DpError> {
        if l1 == 0 {
            return Err(DpError::ZeroBound("l1_sensitivity"));
        }
        let x_num = BigUint::from(epsilon.as_rational().numer());
        let x_den = BigUint::from(epsilon.as_rational().denom()) * BigUint::from(l1);
        let e_lower = exp_unit_lower(&BigUint::one(), &BigUint::one());
        let one_plus_ex_lower = (BigUint::one() << FRAC_BITS) + exp_lower(&x_num, &x_den, &e_lower);
        Ok(DLapTail { x_num, x_den, e_lower, one_plus_ex_lower })
    }

    /// Lower bound on the fixed-point denominator of P(Z >= n): e^{(n-1)x}·(1+e^x)·2^{2F}.
    fn inverse_tail_lower(&self, n: u64) -> BigUint {
        debug_assert!(n >= 1);
        let y_num = &self.x_num * BigUint::from(n - 1);
        exp_lower(&y_num, &self.x_den, &self.e_lower) * &self.one_plus_ex_lower
    }

    /// Certified: returns true only if `m · P(Z >= n) <= bound` (n >= 1).
    pub(crate) fn mass_at_most(&self, m: u64, n: u64, bound: &Rational) -> bool {
        // m·2^{2F} / L <= a/b  ⇐  m·b·2^{2F} <= a·L, L a lower bound of the true denominator.
        let lhs = (BigUint::from(m) * BigUint::from(bound.denom())) << (2 * FRAC_BITS);
        let rhs = BigUint::from(bound.numer()) * self.inverse_tail_lower(n);
        lhs <= rhs
    }

    /// An upper bound `(num, den)` on `m · P(Z >= n)` (n >= 1), as an exact fraction.
    pub(crate) fn mass_upper(&self, m: u64, n: u64) -> (BigUint, BigUint) {
        (BigUint::from(m) << (2 * FRAC_BITS), self.inverse_tail_lower(n))
    }
}

/// `a/b < c/d` for big fractions with positive denominators.
pub(crate) fn frac_lt(a: &(BigUint, BigUint), c: &(BigUint, BigUint)) -> bool {
    &a.0 * &c.1 < &c.0 * &a.1
}

/// The smallest decimal `c / 10^D` >= `num/den` with six significant digits (D <= 38; a
/// value below 10^-33 becomes a multiple of 10^-38). `den` must be positive. Errors only if
/// `num/den` >= 10^38 (never the case for the probabilities and small union bounds here).
pub(crate) fn round_up_decimal(num: &BigUint, den: &BigUint) -> Result<Rational, DpError> {
    let mut d = 0u32;
    loop {
        // 10^d <= 10^38 < 2^128
        let p = 10u128.pow(d);
        let c = (num * BigUint::from(p)).div_ceil(den);
        if c >= BigUint::from(100_000u32) || d == 38 {
            let c = c.to_u128().ok_or(DpError::Overflow("delta bound"))?;
            return Rational::new(c, p);
        }
        d += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_f64(x: &BigUint) -> f64 {
        // x / 2^F as f64
        let shift = x.bits().saturating_sub(60);
        let top = (x >> shift).to_u64().unwrap() as f64;
        top * 2f64.powi(shift as i32 - FRAC_BITS as i32)
    }

    #[test]
    fn exp_lower_bounds_are_tight_and_below() {
        let t = DLapTail::new(&"1".parse().unwrap(), 1).unwrap();
        // e itself
        let e = to_f64(&t.e_lower);
        assert!((e / std::f64::consts::E - 1.0).abs() < 1e-15, "{e}");
        for (n, d) in [(0u64, 1u64), (1, 3), (7, 2), (1000, 7), (123_456, 1000), (400, 1), (51_199, 100)] {
            let y = n as f64 / d as f64;
            let lb = to_f64(&exp_lower(&BigUint::from(n), &BigUint::from(d), &t.e_lower));
            let want = y.exp();
            assert!((lb / want - 1.0).abs() < 1e-13, "e^{y}: {lb} vs {want}");
        }
        // exactly: e^0 = 1, and a lower bound never exceeds the next-higher exact rational
        assert_eq!(exp_lower(&BigUint::zero(), &BigUint::one(), &t.e_lower), BigUint::one() << FRAC_BITS);
        // e < 2.7182818284590452354 (exact decimal above e)
        let above = BigUint::from(27_182_818_284_590_452_354u128) << FRAC_BITS;
        assert!(&t.e_lower * BigUint::from(10u128.pow(19)) < above);
        // capped exponents still give a huge lower bound
        let huge = exp_lower(&BigUint::from(u128::MAX), &BigUint::one(), &t.e_lower);
        assert!(huge.bits() > 700 + FRAC_BITS);
    }

    #[test]
    fn tail_bounds_match_closed_form() {
        for (e, l1) in [("1", 1u64), ("0.1", 3), ("10", 20), ("5", 20), ("1/3", 7)] {
            let epsilon: Epsilon = e.parse().unwrap();
            let t = DLapTail::new(&epsilon, l1).unwrap();
            let b = l1 as f64 / epsilon.to_f64();
            let q = (-1.0 / b).exp();
            for n in [1u64, 2, 5, 40, 200] {
                let want = 3.0 * q.powi(n as i32) / (1.0 + q);
                let (num, den) = t.mass_upper(3, n);
                let ub = round_up_decimal(&num, &den).unwrap().to_f64();
                assert!(ub >= want * (1.0 - 1e-12) && ub <= want * (1.0 + 2e-5) + 1e-38, "{e} {l1} {n}: {ub} {want}");
                if want > 1e-30 {
                    let r = Rational::try_from_f64(want * 1.000_001).unwrap();
                    assert!(t.mass_at_most(3, n, &r), "{e} {l1} {n}");
                    assert!(!t.mass_at_most(3, n, &Rational::try_from_f64(want * 0.999_999).unwrap()));
                }
            }
        }
    }

    #[test]
    fn decimal_rounding_is_upward() {
        let r = round_up_decimal(&BigUint::from(1u32), &BigUint::from(3u32)).unwrap();
        assert_eq!(r.to_string(), "0.333334");
        assert_eq!(round_up_decimal(&BigUint::from(1u32), &BigUint::from(4u32)).unwrap().to_string(), "0.25");
        let tiny = round_up_decimal(&BigUint::one(), &(BigUint::one() << 200u32)).unwrap();
        assert_eq!(tiny, Rational::new(1, 10u128.pow(38)).unwrap());
        assert_eq!(round_up_decimal(&BigUint::from(7u32), &BigUint::one()).unwrap(), Rational::from_integer(7));
        assert!(round_up_decimal(&(BigUint::one() << 200u32), &BigUint::one()).is_err());
    }
}
