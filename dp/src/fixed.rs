//! Fixed-point encoding and checked integer aggregation.
//!
//! Model outputs are `f64`; aggregation and noise happen on integers. A value is clamped to
//! the declared range `[lo, hi]`, multiplied by `scale` and rounded to the nearest integer
//! (ties away from zero). Floats are used here only to *encode* data, never to draw noise.

use crate::DpError;

/// Largest absolute encoded value: 2^53, so every encoded integer is exactly representable
/// as an `f64` too and `decode(encode(x))` is the nearest grid point to `x`.
pub const MAX_ENCODED: i64 = 1 << 53;

/// Fixed-point format: `scale` integer units per 1.0 (e.g. 10_000 → 4 decimal places).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    /// Units per 1.0; must be >= 1.
    pub scale: i64,
}

impl FixedPoint {
    /// A format with `scale` units per 1.0 (`scale >= 1`).
    pub fn new(scale: i64) -> Result<Self, DpError> {
        if scale < 1 {
            return Err(DpError::InvalidFixedScale);
        }
        Ok(FixedPoint { scale })
    }

    fn units_of(&self, x: f64) -> Result<i64, DpError> {
        let v = (x * self.scale as f64).round();
        if !v.is_finite() || v.abs() > MAX_ENCODED as f64 {
            return Err(DpError::Overflow("fixed-point encode"));
        }
        // |v| <= 2^53 so the cast is exact.
        Ok(v as i64)
    }

    /// Validates `lo <= hi` (both finite) and returns them encoded.
    pub fn encode_bounds(&self, lo: f64, hi: f64) -> Result<(i64, i64), DpError> {
        if self.scale < 1 {
            return Err(DpError::InvalidFixedScale);
        }
        if !lo.is_finite() || !hi.is_finite() || lo > hi {
            return Err(DpError::InvalidBounds { lo: lo.to_string(), hi: hi.to_string() });
        }
        Ok((self.units_of(lo)?, self.units_of(hi)?))
    }

    /// Clamp `x` into `[lo, hi]`, then encode. `+inf`/`-inf` clamp to `hi`/`lo`.
    /// **NaN is an error** ([`DpError::NaN`]), never silently mapped into the range: the
    /// caller decides whether to drop the row or fail the job. Bounds must be finite with
    /// `lo <= hi` and `|hi·scale|, |lo·scale| <= 2^53`.
    pub fn encode(&self, x: f64, lo: f64, hi: f64) -> Result<i64, DpError> {
        let (lo_u, hi_u) = self.encode_bounds(lo, hi)?;
        if x.is_nan() {
            return Err(DpError::NaN);
        }
        let clamped = x.clamp(lo, hi);
        let v = self.units_of(clamped)?;
        // rounding can never leave the encoded bounds, but make it structural
        Ok(v.clamp(lo_u, hi_u))
    }

    /// Back to a float (post-processing of an already private value).
    pub fn decode(&self, v: i64) -> f64 {
        v as f64 / self.scale as f64
    }

    /// The most one privacy unit can move a sum: `max_rows_per_unit · max(|lo|, |hi|)` in
    /// fixed-point units. This is the L1 (and L2) sensitivity of a bounded sum under
    /// add/remove-one-unit neighbours; derive it here, never take it from a user.
    pub fn per_unit_sum_bound(&self, lo: f64, hi: f64, max_rows_per_unit: u32) -> Result<u64, DpError> {
        if max_rows_per_unit == 0 {
            return Err(DpError::ZeroBound("max_rows_per_unit"));
        }
        let (lo_u, hi_u) = self.encode_bounds(lo, hi)?;
        let m = lo_u.unsigned_abs().max(hi_u.unsigned_abs());
        m.checked_mul(u64::from(max_rows_per_unit)).ok_or(DpError::Overflow("per-unit sum bound"))
    }
}

/// Sum of fixed-point values with checked arithmetic: an error, never a wrap or a panic.
pub fn checked_sum<I: IntoIterator<Item = i64>>(values: I) -> Result<i64, DpError> {
    values.into_iter().try_fold(0i64, |acc, v| acc.checked_add(v)).ok_or(DpError::Overflow("sum"))
}

/// Number of items as `u64`, checked.
pub fn checked_count<I: IntoIterator>(items: I) -> Result<u64, DpError> {
    items.into_iter().try_fold(0u64, |acc, _| acc.checked_add(1)).ok_or(DpError::Overflow("count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_clamps_and_rounds() {
        let fp = FixedPoint::new(10_000).unwrap();
        assert_eq!(fp.encode(0.5, 0.0, 1.0).unwrap(), 5_000);
        assert_eq!(fp.encode(0.123_456, 0.0, 1.0).unwrap(), 1_235);
        assert_eq!(fp.encode(-0.000_05, -1.0, 1.0).unwrap(), -1); // ties away from zero
        assert_eq!(fp.encode(7.0, 0.0, 1.0).unwrap(), 10_000);
        assert_eq!(fp.encode(-7.0, 0.0, 1.0).unwrap(), 0);
        assert_eq!(fp.encode(f64::INFINITY, 0.0, 1.0).unwrap(), 10_000);
        assert_eq!(fp.encode(f64::NEG_INFINITY, -2.0, 1.0).unwrap(), -20_000);
        assert!((fp.decode(fp.encode(0.3333, 0.0, 1.0).unwrap()) - 0.3333).abs() < 1e-12);
    }

    #[test]
    fn encode_rejects_bad_input() {
        let fp = FixedPoint::new(10_000).unwrap();
        assert_eq!(fp.encode(f64::NAN, 0.0, 1.0), Err(DpError::NaN));
        assert!(matches!(fp.encode(0.5, 1.0, 0.0), Err(DpError::InvalidBounds { .. })));
        assert!(matches!(fp.encode(0.5, f64::NAN, 1.0), Err(DpError::InvalidBounds { .. })));
        assert!(matches!(fp.encode(0.5, 0.0, f64::INFINITY), Err(DpError::InvalidBounds { .. })));
        assert!(matches!(fp.encode(0.5, 0.0, 1e300), Err(DpError::Overflow(_))));
        assert!(FixedPoint::new(0).is_err());
        let broken = FixedPoint { scale: -3 };
        assert!(broken.encode(0.5, 0.0, 1.0).is_err());
    }

    #[test]
    fn sensitivity_is_derived() {
        let fp = FixedPoint::new(100).unwrap();
        assert_eq!(fp.per_unit_sum_bound(-3.0, 2.0, 4).unwrap(), 1_200);
        assert!(fp.per_unit_sum_bound(0.0, 1.0, 0).is_err());
        let big = FixedPoint::new(1).unwrap();
        let b = big.per_unit_sum_bound(0.0, MAX_ENCODED as f64, 1 << 10).unwrap();
        assert_eq!(b, (MAX_ENCODED as u64) << 10);
        assert!(matches!(big.per_unit_sum_bound(0.0, MAX_ENCODED as f64, u32::MAX), Err(DpError::Overflow(_))));
    }

    #[test]
    fn sums_at_i64_edges_error_not_wrap() {
        assert_eq!(checked_sum([i64::MAX - 1, 1]).unwrap(), i64::MAX);
        assert_eq!(checked_sum([i64::MAX, 1]), Err(DpError::Overflow("sum")));
        assert_eq!(checked_sum([i64::MIN, -1]), Err(DpError::Overflow("sum")));
        assert_eq!(checked_sum([i64::MAX, -1, 1]).unwrap(), i64::MAX);
        assert_eq!(checked_count([1, 2, 3]).unwrap(), 3);
    }
}
