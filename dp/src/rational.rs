//! Exact non-negative rationals and the privacy parameters built on them.
//!
//! Everything a sampler or an accountant sees is a [`Rational`]: a reduced fraction of two
//! `u128`s. Privacy parameters are parsed from decimal strings (`"0.5"`, `"1e-6"`,
//! `"0.000001"`) or from `num/den` fractions, never from a float, so what the owner wrote is
//! exactly what is spent.
//!
//! Text form: [`Rational`]'s `Display` prints a finite decimal when one exists (denominator
//! of the form 2^a·5^b) and `num/den` otherwise (e.g. `10/3`). `FromStr` accepts both forms,
//! so `Display` then `FromStr` is the identity. Serde uses the same string form.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DpError;

/// Greatest common divisor (binary algorithm; `gcd(0, x) = x`).
pub(crate) fn gcd(mut a: u128, mut b: u128) -> u128 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// An exact non-negative rational number `num / den`, always stored reduced with `den > 0`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: u128,
    den: u128,
}

impl Rational {
    /// Zero.
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    /// One.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// `num / den`, reduced. Errors if `den == 0`.
    pub fn new(num: u128, den: u128) -> Result<Self, DpError> {
        if den == 0 {
            return Err(DpError::ZeroDenominator);
        }
        let g = gcd(num, den);
        Ok(Rational { num: num / g, den: den / g })
    }

    /// The integer `n`.
    pub const fn from_integer(n: u128) -> Self {
        Rational { num: n, den: 1 }
    }

    /// Numerator (reduced).
    pub const fn numer(&self) -> u128 {
        self.num
    }

    /// Denominator (reduced, never zero).
    pub const fn denom(&self) -> u128 {
        self.den
    }

    /// True when the value is zero.
    pub const fn is_zero(&self) -> bool {
        self.num == 0
    }

    /// `floor(self)`.
    pub const fn floor(&self) -> u128 {
        self.num / self.den
    }

    /// `ceil(self)`.
    pub const fn ceil(&self) -> u128 {
        self.num.div_ceil(self.den)
    }

    /// Exact sum, or [`DpError::Overflow`].
    pub fn checked_add(&self, other: &Rational) -> Result<Rational, DpError> {
        let g = gcd(self.den, other.den);
        let l = self.den / g;
        let r = other.den / g;
        let a = self.num.checked_mul(r).ok_or(DpError::Overflow("rational add"))?;
        let b = other.num.checked_mul(l).ok_or(DpError::Overflow("rational add"))?;
        let n = a.checked_add(b).ok_or(DpError::Overflow("rational add"))?;
        let d = self.den.checked_mul(r).ok_or(DpError::Overflow("rational add"))?;
        Rational::new(n, d)
    }

    /// Exact difference `self - other`; `None` if it would be negative.
    pub fn checked_sub(&self, other: &Rational) -> Result<Option<Rational>, DpError> {
        if self < other {
            return Ok(None);
        }
        let g = gcd(self.den, other.den);
        let l = self.den / g;
        let r = other.den / g;
        let a = self.num.checked_mul(r).ok_or(DpError::Overflow("rational sub"))?;
        let b = other.num.checked_mul(l).ok_or(DpError::Overflow("rational sub"))?;
        let d = self.den.checked_mul(r).ok_or(DpError::Overflow("rational sub"))?;
        // a >= b because self >= other.
        Rational::new(a - b, d).map(Some)
    }

    /// Exact product, or [`DpError::Overflow`].
    pub fn checked_mul(&self, other: &Rational) -> Result<Rational, DpError> {
        // Cross-reduce first so that products of reduced fractions overflow as late as possible.
        let g1 = gcd(self.num, other.den);
        let g2 = gcd(other.num, self.den);
        let (g1, g2) = (g1.max(1), g2.max(1));
        let n = (self.num / g1).checked_mul(other.num / g2).ok_or(DpError::Overflow("rational mul"))?;
        let d = (self.den / g2).checked_mul(other.den / g1).ok_or(DpError::Overflow("rational mul"))?;
        Rational::new(n, d)
    }

    /// Exact quotient `self / other`, or an error on division by zero / overflow.
    pub fn checked_div(&self, other: &Rational) -> Result<Rational, DpError> {
        if other.num == 0 {
            return Err(DpError::ZeroDenominator);
        }
        self.checked_mul(&Rational { num: other.den, den: other.num })
    }

    /// Multiply by an integer.
    pub fn checked_mul_int(&self, k: u128) -> Result<Rational, DpError> {
        self.checked_mul(&Rational::from_integer(k))
    }

    /// A float approximation, for reporting only (never used for sampling).
    pub fn to_f64(&self) -> f64 {
        // u128 -> f64 rounds to nearest; good to ~1 ulp per operand.
        self.num as f64 / self.den as f64
    }

    /// Parse a finite non-negative `f64` through its shortest decimal representation, so
    /// `0.1` becomes exactly `1/10`. NaN, infinities and negatives are errors.
    pub fn try_from_f64(x: f64) -> Result<Rational, DpError> {
        if !x.is_finite() {
            return Err(DpError::NonFinite);
        }
        if x < 0.0 {
            return Err(DpError::Negative);
        }
        // `{:e}` prints the shortest round-trip representation, e.g. "1e-6", "2.5e0".
        format!("{x:e}").parse()
    }

    fn as_big(&self) -> (BigUint, BigUint) {
        (BigUint::from(self.num), BigUint::from(self.den))
    }
}

impl Default for Rational {
    fn default() -> Self {
        Rational::ZERO
    }
}

impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.num.checked_mul(other.den), other.num.checked_mul(self.den)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => {
                let (an, ad) = self.as_big();
                let (bn, bd) = other.as_big();
                (an * bd).cmp(&(bn * ad))
            }
        }
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            return write!(f, "{}", self.num);
        }
        // den = 2^a 5^b ?
        let mut d = self.den;
        let a = d.trailing_zeros();
        d >>= a;
        let mut b = 0u32;
        while d.is_multiple_of(5) {
            d /= 5;
            b += 1;
        }
        if d == 1 {
            let k = a.max(b);
            // multiply num by 10^k / den = 2^(k-a) * 5^(k-b)
            let factor = 2u128.checked_pow(k - a).and_then(|x| 5u128.checked_pow(k - b).and_then(|y| x.checked_mul(y)));
            if let Some(scaled) = factor.and_then(|f| self.num.checked_mul(f)) {
                if let Some(p) = 10u128.checked_pow(k) {
                    let int = scaled / p;
                    let frac = scaled % p;
                    let frac_s = format!("{frac:0width$}", width = k as usize);
                    let frac_s = frac_s.trim_end_matches('0');
                    return write!(f, "{int}.{frac_s}");
                }
            }
        }
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Debug for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rational({self})")
    }
}

impl FromStr for Rational {
    type Err = DpError;

    /// Accepts `123`, `0.5`, `.5`, `1e-6`, `2.5E3`, `1/3`. No sign, no whitespace, no
    /// `NaN`/`inf`.
    fn from_str(s: &str) -> Result<Self, DpError> {
        let bad = || DpError::InvalidNumber(s.chars().take(64).collect());
        if s.is_empty() || s.len() > 100 {
            return Err(bad());
        }
        if let Some((n, d)) = s.split_once('/') {
            let all_digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
            if !all_digits(n) || !all_digits(d) {
                return Err(bad());
            }
            let n: u128 = n.parse().map_err(|_| bad())?;
            let d: u128 = d.parse().map_err(|_| bad())?;
            return Rational::new(n, d).map_err(|_| bad());
        }
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        if !int_part.bytes().all(|c| c.is_ascii_digit()) || !frac_part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let mut exp10: i64 = match exp {
            None => 0,
            Some(e) => {
                let (neg, digits) = match e.as_bytes().first() {
                    Some(b'-') => (true, &e[1..]),
                    Some(b'+') => (false, &e[1..]),
                    _ => (false, e),
                };
                if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                let v: i64 = digits.parse().map_err(|_| bad())?;
                if neg {
                    -v
                } else {
                    v
                }
            }
        };
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        exp10 -= frac_part.len() as i64;
        let mut num: u128 =
            if digits.is_empty() { 0 } else { digits.parse().map_err(|_| DpError::Overflow("decimal parse"))? };
        if num == 0 {
            return Ok(Rational::ZERO);
        }
        let mut den: u128 = 1;
        if exp10 >= 0 {
            let p = u32::try_from(exp10)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
                .ok_or(DpError::Overflow("decimal parse"))?;
            num = num.checked_mul(p).ok_or(DpError::Overflow("decimal parse"))?;
        } else {
            // strip trailing zeros of num against the negative exponent first
            while exp10 < 0 && num.is_multiple_of(10) {
                num /= 10;
                exp10 += 1;
            }
            let p = u32::try_from(-exp10)
                .ok()
                .and_then(|e| 10u128.checked_pow(e))
                .ok_or(DpError::Overflow("decimal parse"))?;
            den = p;
        }
        Rational::new(num, den)
    }
}

impl Serialize for Rational {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rational {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! param_common {
    ($t:ident, $what:literal) => {
        impl $t {
            /// The exact value.
            pub const fn as_rational(&self) -> &Rational {
                &self.0
            }

            /// From `num / den` (validated).
            pub fn from_ratio(num: u128, den: u128) -> Result<Self, DpError> {
                Self::try_from(Rational::new(num, den)?)
            }

            /// From a finite `f64` via its shortest decimal form (validated). For CLIs and
            /// configs that only have floats; prefer strings.
            pub fn try_from_f64(x: f64) -> Result<Self, DpError> {
                Self::try_from(Rational::try_from_f64(x)?)
            }

            /// Float approximation for display only.
            pub fn to_f64(&self) -> f64 {
                self.0.to_f64()
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", $what, self.0)
            }
        }

        impl FromStr for $t {
            type Err = DpError;
            fn from_str(s: &str) -> Result<Self, DpError> {
                Self::try_from(s.parse::<Rational>()?)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let r = Rational::deserialize(d)?;
                Self::try_from(r).map_err(serde::de::Error::custom)
            }
        }

        impl From<$t> for Rational {
            fn from(x: $t) -> Rational {
                x.0
            }
        }
    };
}

/// A pure-DP privacy loss ε: an exact rational, strictly positive.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epsilon(Rational);

impl TryFrom<Rational> for Epsilon {
    type Error = DpError;
    fn try_from(r: Rational) -> Result<Self, DpError> {
        if r.is_zero() {
            return Err(DpError::NonPositiveEpsilon);
        }
        Ok(Epsilon(r))
    }
}

impl Epsilon {
    /// `self + other`.
    pub fn checked_add(&self, other: &Epsilon) -> Result<Epsilon, DpError> {
        Ok(Epsilon(self.0.checked_add(&other.0)?))
    }

    /// `self - other` if strictly positive, else `None`.
    pub fn checked_sub(&self, other: &Epsilon) -> Result<Option<Epsilon>, DpError> {
        Ok(self.0.checked_sub(&other.0)?.and_then(|r| Epsilon::try_from(r).ok()))
    }

    /// `self / k` for an integer `k >= 1` (budget splits).
    pub fn checked_div_int(&self, k: u128) -> Result<Epsilon, DpError> {
        if k == 0 {
            return Err(DpError::ZeroDenominator);
        }
        Ok(Epsilon(self.0.checked_div(&Rational::from_integer(k))?))
    }
}
param_common!(Epsilon, "Epsilon");

/// An approximate-DP failure probability δ, exact rational with `0 <= δ < 1`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delta(Rational);

impl TryFrom<Rational> for Delta {
    type Error = DpError;
    fn try_from(r: Rational) -> Result<Self, DpError> {
        if r >= Rational::ONE {
            return Err(DpError::DeltaOutOfRange);
        }
        Ok(Delta(r))
    }
}

impl Delta {
    /// δ = 0.
    pub const ZERO: Delta = Delta(Rational::ZERO);

    /// `self + other` (must stay below 1).
    pub fn checked_add(&self, other: &Delta) -> Result<Delta, DpError> {
        Delta::try_from(self.0.checked_add(&other.0)?)
    }

    /// `self - other`, `None` if negative.
    pub fn checked_sub(&self, other: &Delta) -> Result<Option<Delta>, DpError> {
        Ok(self.0.checked_sub(&other.0)?.map(Delta))
    }
}
param_common!(Delta, "Delta");

/// A zero-concentrated DP parameter ρ (Bun–Steinke 2016), strictly positive.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rho(Rational);

impl TryFrom<Rational> for Rho {
    type Error = DpError;
    fn try_from(r: Rational) -> Result<Self, DpError> {
        if r.is_zero() {
            return Err(DpError::NonPositiveRho);
        }
        Ok(Rho(r))
    }
}

impl Rho {
    /// `self + other`.
    pub fn checked_add(&self, other: &Rho) -> Result<Rho, DpError> {
        Ok(Rho(self.0.checked_add(&other.0)?))
    }

    /// ε-DP implies (ε²/2)-zCDP.
    pub fn from_pure(eps: &Epsilon) -> Result<Rho, DpError> {
        let e2 = eps.0.checked_mul(&eps.0)?;
        Rho::try_from(e2.checked_div(&Rational::from_integer(2))?)
    }
}
param_common!(Rho, "Rho");

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rational {
        s.parse().unwrap()
    }

    #[test]
    fn parse_decimal_forms() {
        assert_eq!(r("0.5"), Rational::new(1, 2).unwrap());
        assert_eq!(r("1"), Rational::ONE);
        assert_eq!(r("1e-6"), Rational::new(1, 1_000_000).unwrap());
        assert_eq!(r("0.000001"), Rational::new(1, 1_000_000).unwrap());
        assert_eq!(r("2.50"), Rational::new(5, 2).unwrap());
        assert_eq!(r(".25"), Rational::new(1, 4).unwrap());
        assert_eq!(r("3."), Rational::from_integer(3));
        assert_eq!(r("1.5E+3"), Rational::from_integer(1500));
        assert_eq!(r("1000000000"), Rational::from_integer(1_000_000_000));
        assert_eq!(r("10/4"), Rational::new(5, 2).unwrap());
        assert_eq!(r("0"), Rational::ZERO);
        assert_eq!(r("0.0e5"), Rational::ZERO);
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "", "-1", "+1", "NaN", "inf", "1e", "e5", ".", "1..2", "1/0", " 1", "1 ", "0x10", "1e99999", "1/", "/2",
            "1e-99", "1e40",
        ] {
            assert!(s.parse::<Rational>().is_err(), "{s:?} should fail");
        }
        assert!(matches!("0".parse::<Epsilon>(), Err(DpError::NonPositiveEpsilon)));
        assert!(matches!("1".parse::<Delta>(), Err(DpError::DeltaOutOfRange)));
        assert!("0".parse::<Delta>().is_ok());
    }

    #[test]
    fn display_roundtrip() {
        for s in ["0.5", "1", "0.000001", "1000000000", "10/3", "0.125", "123.456", "1/7"] {
            let x = r(s);
            assert_eq!(x.to_string(), s);
            assert_eq!(r(&x.to_string()), x);
        }
        assert_eq!(r("1e-6").to_string(), "0.000001");
    }

    #[test]
    fn arithmetic_and_order() {
        let a = r("0.1");
        let b = r("0.2");
        assert_eq!(a.checked_add(&b).unwrap(), r("0.3"));
        assert_eq!(b.checked_sub(&a).unwrap(), Some(r("0.1")));
        assert_eq!(a.checked_sub(&b).unwrap(), None);
        assert!(a < b);
        assert_eq!(r("1/3").checked_mul(&r("3")).unwrap(), Rational::ONE);
        // comparison that overflows u128 cross-multiplication still works
        let big1 = Rational::new(u128::MAX - 1, u128::MAX).unwrap();
        let big2 = Rational::new(u128::MAX - 2, u128::MAX - 1).unwrap();
        assert!(big1 > big2);
        assert!(Rational::from_integer(u128::MAX).checked_add(&Rational::ONE).is_err());
    }

    #[test]
    fn random_roundtrip_and_garbage_never_panic() {
        use rand_core::RngCore;
        let mut rng = crate::rng::seeded_rng_from_u64(77);
        for _ in 0..20_000 {
            let n = u128::from(rng.next_u64()) * u128::from(rng.next_u32());
            let d = u128::from(rng.next_u64() >> (rng.next_u32() % 64)).max(1);
            let x = Rational::new(n, d).unwrap();
            assert_eq!(x.to_string().parse::<Rational>().unwrap(), x);
            // decimal with random exponent
            let e = rng.next_u32() % 30;
            let s = format!("{}e-{e}", rng.next_u64());
            let y: Rational = s.parse().unwrap();
            assert_eq!(y.to_string().parse::<Rational>().unwrap(), y);
        }
        let alphabet = b"0123456789.eE+-/ xN\xc3";
        for _ in 0..20_000 {
            let len = (rng.next_u32() % 12) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| alphabet[(rng.next_u32() as usize) % alphabet.len()]).collect();
            let s = String::from_utf8_lossy(&bytes);
            let _ = s.parse::<Rational>();
            let _ = s.parse::<Epsilon>();
        }
    }

    #[test]
    fn from_f64() {
        assert_eq!(Rational::try_from_f64(0.1).unwrap(), r("0.1"));
        assert_eq!(Rational::try_from_f64(1e-6).unwrap(), r("0.000001"));
        assert!(Rational::try_from_f64(f64::NAN).is_err());
        assert!(Rational::try_from_f64(f64::INFINITY).is_err());
        assert!(Rational::try_from_f64(-1.0).is_err());
        assert!(Epsilon::try_from_f64(0.0).is_err());
    }

    #[test]
    fn serde_as_string() {
        let e: Epsilon = "0.5".parse().unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"0.5\"");
        let back: Epsilon = serde_json::from_str("\"0.5\"").unwrap();
        assert_eq!(back, e);
        assert!(serde_json::from_str::<Epsilon>("\"0\"").is_err());
        assert!(serde_json::from_str::<Epsilon>("0.5").is_err());
        let third = Rational::new(1, 3).unwrap();
        assert_eq!(serde_json::to_string(&third).unwrap(), "\"1/3\"");
    }

    #[test]
    fn epsilon_ops() {
        let e: Epsilon = "1".parse().unwrap();
        let h = e.checked_div_int(2).unwrap();
        assert_eq!(h.to_string(), "0.5");
        assert_eq!(h.checked_add(&h).unwrap(), e);
        assert_eq!(e.checked_sub(&e).unwrap(), None);
        assert_eq!(Rho::from_pure(&e).unwrap().to_string(), "0.5");
    }
}
