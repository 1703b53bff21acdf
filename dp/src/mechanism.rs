//! Mechanisms on integers (fixed-point values, counts). Each returns a [`Release`] that
//! carries the noisy value and everything an auditor needs (mechanism, ε/δ/ρ, sensitivity,
//! noise scale) but never the noise itself.
//!
//! All parameters are validated before any noise is drawn. Sensitivities are inputs only in
//! the sense that they come from the bounding step ([`crate::RowBounder`] `k`,
//! [`crate::FixedPoint::per_unit_sum_bound`]); nothing here trusts a user-typed number.
//!
//! Neighbouring datasets differ by adding or removing all rows of one privacy unit.

use std::collections::BTreeMap;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::rational::{Delta, Epsilon, Rational, Rho};
use crate::sampler::{bernoulli_exp, discrete_gaussian, discrete_laplace, uniform_below};
use crate::DpError;

/// Largest |true value| a mechanism accepts: 2^62. Checked before noise is drawn, so whether
/// a release errors never depends on the noise (no side channel), and `value + noise` cannot
/// overflow for any supported scale (noise beyond 2^62 has probability < exp(-4000)).
pub const MAX_ABS_VALUE: u64 = 1 << 62;

/// Largest declared domain (histogram bins, quantile candidates, groups): 2^24.
pub const MAX_DOMAIN: usize = 1 << 24;

/// Which mechanism produced a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mechanism {
    /// Exact discrete Laplace noise (pure ε-DP); `scale` is b, P(z) ∝ exp(-|z|/b).
    DiscreteLaplace,
    /// Exact discrete Gaussian noise (ρ-zCDP); `scale` is σ², P(z) ∝ exp(-z²/(2σ²)).
    DiscreteGaussian,
    /// Permute-and-flip selection (pure ε-DP; McKenna–Sheldon 2020); `scale` is 2Δ/ε.
    PermuteAndFlip,
}

impl Mechanism {
    /// The wire name, e.g. `"discrete_laplace"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mechanism::DiscreteLaplace => "discrete_laplace",
            Mechanism::DiscreteGaussian => "discrete_gaussian",
            Mechanism::PermuteAndFlip => "permute_and_flip",
        }
    }
}

/// One released noisy value and its accounting metadata. The noise is not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The noisy value (fixed-point units for sums).
    pub value: i64,
    /// Mechanism used.
    pub mechanism: Mechanism,
    /// ε of the whole release this value belongs to (pure-ε mechanisms; for a histogram or a
    /// group-by, ε of the whole vector, not per bin).
    pub epsilon: Option<Epsilon>,
    /// δ when the release is (ε, δ)-DP (partition selection).
    pub delta: Option<Delta>,
    /// ρ for zCDP (discrete Gaussian) releases.
    pub rho: Option<Rho>,
    /// L1 sensitivity used (Laplace, permute-and-flip utility).
    pub l1_sensitivity: Option<u64>,
    /// L2 sensitivity used (Gaussian).
    pub l2_sensitivity: Option<u64>,
    /// Noise scale, exact: b for Laplace, σ² for Gaussian, 2Δ/ε for permute-and-flip.
    pub scale: Rational,
}

fn check_value(v: i128) -> Result<i64, DpError> {
    if v.unsigned_abs() > u128::from(MAX_ABS_VALUE) {
        return Err(DpError::Overflow("true value exceeds 2^62"));
    }
    i64::try_from(v).map_err(|_| DpError::Overflow("true value"))
}

fn add_noise(v: i64, noise: i64) -> Result<i64, DpError> {
    v.checked_add(noise).ok_or(DpError::Overflow("value + noise"))
}

/// b = Δ1 / ε, exact.
pub fn laplace_scale(l1_sensitivity: u64, epsilon: &Epsilon) -> Result<Rational, DpError> {
    if l1_sensitivity == 0 {
        return Err(DpError::ZeroBound("l1_sensitivity"));
    }
    Rational::from_integer(u128::from(l1_sensitivity)).checked_div(epsilon.as_rational())
}

/// σ² = Δ2² / (2ρ), exact (a mechanism with this σ² is ρ-zCDP).
pub fn gaussian_sigma_sq(l2_sensitivity: u64, rho: &Rho) -> Result<Rational, DpError> {
    if l2_sensitivity == 0 {
        return Err(DpError::ZeroBound("l2_sensitivity"));
    }
    let d = u128::from(l2_sensitivity);
    Rational::from_integer(d * d).checked_div(&rho.as_rational().checked_mul_int(2)?)
}

fn laplace_release<R: RngCore + CryptoRng + ?Sized>(
    value: i64,
    scale: &Rational,
    epsilon: &Epsilon,
    l1: u64,
    rng: &mut R,
) -> Result<Release, DpError> {
    let noise = discrete_laplace(scale, rng)?;
    Ok(Release {
        value: add_noise(value, noise)?,
        mechanism: Mechanism::DiscreteLaplace,
        epsilon: Some(*epsilon),
        delta: None,
        rho: None,
        l1_sensitivity: Some(l1),
        l2_sensitivity: None,
        scale: *scale,
    })
}

/// ε-DP count of rows, where each privacy unit contributed at most `max_rows_per_unit` rows
/// (so Δ1 = `max_rows_per_unit`).
pub fn laplace_count<R: RngCore + CryptoRng + ?Sized>(
    true_count: u64,
    epsilon: &Epsilon,
    max_rows_per_unit: u32,
    rng: &mut R,
) -> Result<Release, DpError> {
    let v = check_value(i128::from(true_count))?;
    let l1 = u64::from(max_rows_per_unit);
    let scale = laplace_scale(l1, epsilon)?;
    laplace_release(v, &scale, epsilon, l1, rng)
}

/// ε-DP bounded sum of fixed-point values, Δ1 = `per_unit_bound_fixed` (from
/// [`crate::FixedPoint::per_unit_sum_bound`]).
pub fn laplace_sum<R: RngCore + CryptoRng + ?Sized>(
    true_sum_fixed: i64,
    epsilon: &Epsilon,
    per_unit_bound_fixed: u64,
    rng: &mut R,
) -> Result<Release, DpError> {
    let v = check_value(i128::from(true_sum_fixed))?;
    let scale = laplace_scale(per_unit_bound_fixed, epsilon)?;
    laplace_release(v, &scale, epsilon, per_unit_bound_fixed, rng)
}

/// ε-DP histogram over a declared domain: every bin is released (empty ones too), each with
/// independent discrete Laplace noise of scale Δ1/ε where Δ1 bounds the L1 change of the whole
/// count vector from one unit (e.g. `max_rows_per_unit`).
pub fn laplace_histogram<R: RngCore + CryptoRng + ?Sized>(
    counts: &[u64],
    epsilon: &Epsilon,
    l1_sensitivity: u64,
    rng: &mut R,
) -> Result<Vec<Release>, DpError> {
    if counts.is_empty() || counts.len() > MAX_DOMAIN {
        return Err(DpError::DomainSize(counts.len()));
    }
    let values = counts.iter().map(|&c| check_value(i128::from(c))).collect::<Result<Vec<_>, _>>()?;
    let scale = laplace_scale(l1_sensitivity, epsilon)?;
    values.into_iter().map(|v| laplace_release(v, &scale, epsilon, l1_sensitivity, rng)).collect()
}

fn gaussian_release<R: RngCore + CryptoRng + ?Sized>(
    value: i64,
    rho: &Rho,
    l2: u64,
    rng: &mut R,
) -> Result<Release, DpError> {
    let sigma_sq = gaussian_sigma_sq(l2, rho)?;
    let noise = discrete_gaussian(&sigma_sq, rng)?;
    Ok(Release {
        value: add_noise(value, noise)?,
        mechanism: Mechanism::DiscreteGaussian,
        epsilon: None,
        delta: None,
        rho: Some(*rho),
        l1_sensitivity: None,
        l2_sensitivity: Some(l2),
        scale: sigma_sq,
    })
}

/// ρ-zCDP count with discrete Gaussian noise, Δ2 = `max_rows_per_unit`.
pub fn gaussian_count<R: RngCore + CryptoRng + ?Sized>(
    true_count: u64,
    rho: &Rho,
    max_rows_per_unit: u32,
    rng: &mut R,
) -> Result<Release, DpError> {
    let v = check_value(i128::from(true_count))?;
    gaussian_release(v, rho, u64::from(max_rows_per_unit), rng)
}

/// ρ-zCDP bounded sum with discrete Gaussian noise, Δ2 = `per_unit_bound_fixed`.
pub fn gaussian_sum<R: RngCore + CryptoRng + ?Sized>(
    true_sum_fixed: i64,
    rho: &Rho,
    per_unit_bound_fixed: u64,
    rng: &mut R,
) -> Result<Release, DpError> {
    let v = check_value(i128::from(true_sum_fixed))?;
    gaussian_release(v, rho, per_unit_bound_fixed, rng)
}

/// ρ-zCDP histogram: independent discrete Gaussian noise per bin, σ² = Δ2²/(2ρ), where Δ2
/// bounds the L2 change of the count vector from one unit (`max_rows_per_unit` is always a
/// valid bound).
pub fn gaussian_histogram<R: RngCore + CryptoRng + ?Sized>(
    counts: &[u64],
    rho: &Rho,
    l2_sensitivity: u64,
    rng: &mut R,
) -> Result<Vec<Release>, DpError> {
    if counts.is_empty() || counts.len() > MAX_DOMAIN {
        return Err(DpError::DomainSize(counts.len()));
    }
    let values = counts.iter().map(|&c| check_value(i128::from(c))).collect::<Result<Vec<_>, _>>()?;
    gaussian_sigma_sq(l2_sensitivity, rho)?;
    values.into_iter().map(|v| gaussian_release(v, rho, l2_sensitivity, rng)).collect()
}

/// Threshold for DP partition selection with discrete Laplace noise, when each unit
/// contributes to at most `max_partitions_per_unit` groups and at most 1 to each group's
/// count (a count of distinct units). See [`partition_threshold_bounded`].
pub fn partition_threshold(epsilon: &Epsilon, delta: &Delta, max_partitions_per_unit: u32) -> Result<i64, DpError> {
    partition_threshold_bounded(epsilon, delta, max_partitions_per_unit, 1)
}

/// Threshold τ for DP partition selection ("Laplace thresholding").
///
/// Setting: each unit touches at most m = `max_partitions_per_unit` groups and adds at most
/// c = `max_rows_per_partition` to each group's count. All group counts get independent
/// discrete Laplace noise of scale b = m·c/ε (the count vector has L1 sensitivity m·c, so the
/// noisy counts of groups present in both neighbours are ε-DP, and thresholding them is
/// post-processing). A group is released iff `noisy count >= τ`.
///
/// Derivation of τ. The only event not covered by ε is a group that exists in D' = D + u
/// but not in D: its true count is at most c, so it passes with probability
/// P(c + Z >= τ) = P(Z >= n) with n = τ - c >= 1. For discrete Laplace with
/// q = exp(-1/b), P(Z = z) = (1-q)/(1+q)·q^|z|, hence P(Z >= n) = q^n/(1+q). The unit can
/// create at most m such groups, so by a union bound the mechanism is (ε, δ)-DP if
/// m·q^n/(1+q) <= δ, i.e. n >= b·ln(m / (δ(1+q))).
///
/// We compute n₀ = max(1, ⌈b·ln(m/(δ(1+q)))⌉) in `f64` (this is parameter setup, not
/// sampling) and return τ = c + n₀ + 1: the extra 1 absorbs any floating-point rounding
/// (the f64 error on b·ln(·) is < 10⁻³ for every accepted input, checked below) and makes
/// the guarantee conservative by a further factor q. Requires δ > 0.
pub fn partition_threshold_bounded(
    epsilon: &Epsilon,
    delta: &Delta,
    max_partitions_per_unit: u32,
    max_rows_per_partition: u32,
) -> Result<i64, DpError> {
    if max_partitions_per_unit == 0 {
        return Err(DpError::ZeroBound("max_partitions_per_unit"));
    }
    if max_rows_per_partition == 0 {
        return Err(DpError::ZeroBound("max_rows_per_partition"));
    }
    if delta.as_rational().is_zero() {
        return Err(DpError::ZeroDelta);
    }
    let m = u64::from(max_partitions_per_unit);
    let c = u64::from(max_rows_per_partition);
    let l1 = m * c; // u32 * u32 fits u64
    let b = laplace_scale(l1, epsilon)?.to_f64();
    let d = delta.to_f64();
    if d.is_nan() || d <= 0.0 || !b.is_finite() {
        return Err(DpError::Overflow("partition threshold"));
    }
    let q = (-1.0 / b).exp();
    // ln(m/(δ(1+q))) computed as ln m - ln δ - ln(1+q) to avoid underflow of δ(1+q).
    let log_term = (m as f64).ln() - d.ln() - q.ln_1p();
    let n0 = (b * log_term).ceil().max(1.0);
    // keep well inside the exactly-representable range so the +1 margin dominates rounding
    if !n0.is_finite() || n0 > (1u64 << 50) as f64 {
        return Err(DpError::Overflow("partition threshold"));
    }
    let tau = (c as i64) + (n0 as i64) + 1;
    Ok(tau)
}

/// Group-by count with DP partition selection (each unit in at most
/// `max_partitions_per_unit` groups, contributing 1 to each: counts of distinct units).
/// See [`group_counts_with_selection_bounded`].
pub fn group_counts_with_selection<G: Ord + Clone, R: RngCore + CryptoRng + ?Sized>(
    counts: BTreeMap<G, u64>,
    epsilon: &Epsilon,
    delta: &Delta,
    min_group_size: u64,
    max_partitions_per_unit: u32,
    rng: &mut R,
) -> Result<BTreeMap<G, Release>, DpError> {
    group_counts_with_selection_bounded(counts, epsilon, delta, min_group_size, max_partitions_per_unit, 1, rng)
}

/// Group-by count with DP partition selection. Every group's count gets discrete Laplace
/// noise of scale m·c/ε; a group is released only if its **noisy** count is at least
/// `max(τ, min_group_size)` with τ from [`partition_threshold_bounded`]. The minimum size is
/// applied to the noisy count (applying it to the true count would not be DP). Groups absent
/// from `counts` (true count 0) are never released. The result is (ε, δ)-DP; every
/// [`Release`] carries the whole query's ε and δ.
pub fn group_counts_with_selection_bounded<G: Ord + Clone, R: RngCore + CryptoRng + ?Sized>(
    counts: BTreeMap<G, u64>,
    epsilon: &Epsilon,
    delta: &Delta,
    min_group_size: u64,
    max_partitions_per_unit: u32,
    max_rows_per_partition: u32,
    rng: &mut R,
) -> Result<BTreeMap<G, Release>, DpError> {
    if counts.len() > MAX_DOMAIN {
        return Err(DpError::DomainSize(counts.len()));
    }
    let tau = partition_threshold_bounded(epsilon, delta, max_partitions_per_unit, max_rows_per_partition)?;
    let min_size = i64::try_from(min_group_size.min(MAX_ABS_VALUE)).unwrap_or(i64::MAX);
    let cut = tau.max(min_size);
    let l1 = u64::from(max_partitions_per_unit) * u64::from(max_rows_per_partition);
    let scale = laplace_scale(l1, epsilon)?;
    let values =
        counts.into_iter().map(|(g, c)| Ok((g, check_value(i128::from(c))?))).collect::<Result<Vec<_>, DpError>>()?;
    let mut out = BTreeMap::new();
    for (g, v) in values {
        let mut rel = laplace_release(v, &scale, epsilon, l1, rng)?;
        if rel.value >= cut {
            rel.delta = Some(*delta);
            out.insert(g, rel);
        }
    }
    Ok(out)
}

/// A DP mean: noisy sum / noisy count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeanRelease {
    /// Noisy sum (fixed-point units), spent ε/2.
    pub sum: Release,
    /// Noisy count, spent ε/2.
    pub count: Release,
    /// `sum / count` in fixed-point units as a float (post-processing), `None` when the noisy
    /// count is <= 0. Clamped into the declared per-row range.
    pub mean_fixed: Option<f64>,
}

/// ε-DP mean of per-row fixed-point values clamped to `[lo_fixed, hi_fixed]`, each unit
/// contributing at most `max_rows_per_unit` rows. Budget split (stated): ε/2 for the sum
/// (Δ1 = k·max(|lo|,|hi|)) and ε/2 for the count (Δ1 = k); basic composition gives ε.
pub fn laplace_mean<R: RngCore + CryptoRng + ?Sized>(
    true_sum_fixed: i64,
    true_count: u64,
    epsilon: &Epsilon,
    lo_fixed: i64,
    hi_fixed: i64,
    max_rows_per_unit: u32,
    rng: &mut R,
) -> Result<MeanRelease, DpError> {
    if lo_fixed > hi_fixed {
        return Err(DpError::InvalidBounds { lo: lo_fixed.to_string(), hi: hi_fixed.to_string() });
    }
    if max_rows_per_unit == 0 {
        return Err(DpError::ZeroBound("max_rows_per_unit"));
    }
    let half = epsilon.checked_div_int(2)?;
    let per_row = lo_fixed.unsigned_abs().max(hi_fixed.unsigned_abs());
    let bound = per_row.checked_mul(u64::from(max_rows_per_unit)).ok_or(DpError::Overflow("per-unit sum bound"))?;
    // validate both before drawing any noise
    check_value(i128::from(true_sum_fixed))?;
    check_value(i128::from(true_count))?;
    laplace_scale(bound.max(1), &half)?;
    let sum = laplace_sum(true_sum_fixed, &half, bound.max(1), rng)?;
    let count = laplace_count(true_count, &half, max_rows_per_unit, rng)?;
    let mean_fixed =
        (count.value > 0).then(|| (sum.value as f64 / count.value as f64).clamp(lo_fixed as f64, hi_fixed as f64));
    Ok(MeanRelease { sum, count, mean_fixed })
}

/// ε-DP quantile by permute-and-flip (McKenna & Sheldon 2020) over a declared, sorted grid
/// of `candidates` (fixed-point units).
///
/// With q = a/b (reduced) and n rows, the utility of candidate c is
/// U(c) = -|b·#{x < c} - a·n|. Adding or removing one unit (at most k rows, j of them below
/// c) changes it by b·j - a·k' with 0 <= j <= k' <= k, so Δ = k·max(a, b-a) (at least 1).
/// Permute-and-flip visits candidates in a uniformly random order and stops at c with
/// probability exp(-ε·(U* - U(c))/(2Δ)) — drawn exactly with [`bernoulli_exp`]. It is ε-DP and
/// never worse than the exponential mechanism. `values` must already be bounded per unit.
pub fn quantile<R: RngCore + CryptoRng + ?Sized>(
    values: &[i64],
    candidates: &[i64],
    q: &Rational,
    epsilon: &Epsilon,
    max_rows_per_unit: u32,
    rng: &mut R,
) -> Result<Release, DpError> {
    if candidates.is_empty() || candidates.len() > MAX_DOMAIN {
        return Err(DpError::DomainSize(candidates.len()));
    }
    if q > &Rational::ONE {
        return Err(DpError::QuantileOutOfRange);
    }
    if max_rows_per_unit == 0 {
        return Err(DpError::ZeroBound("max_rows_per_unit"));
    }
    let mut sorted_vals = values.to_vec();
    sorted_vals.sort_unstable();
    let mut cands = candidates.to_vec();
    cands.sort_unstable();
    cands.dedup();
    let a = q.numer();
    let b = q.denom();
    let n = sorted_vals.len() as u128;
    let k = u128::from(max_rows_per_unit);
    let delta_u = k.checked_mul(a.max(b - a)).ok_or(DpError::Overflow("quantile sensitivity"))?.max(1);
    // loss(c) = |b·rank(c) - a·n| >= 0 (utility = -loss)
    let an = a.checked_mul(n).ok_or(DpError::Overflow("quantile utility"))?;
    let losses = cands
        .iter()
        .map(|&c| {
            let rank = sorted_vals.partition_point(|&x| x < c) as u128;
            let br = b.checked_mul(rank).ok_or(DpError::Overflow("quantile utility"))?;
            Ok(br.abs_diff(an))
        })
        .collect::<Result<Vec<u128>, DpError>>()?;
    let best = losses.iter().copied().min().unwrap_or(0);
    // γ(c) = ε·(loss(c) - best) / (2Δ)
    let two_delta = Rational::from_integer(delta_u.checked_mul(2).ok_or(DpError::Overflow("quantile"))?);
    let eps_over = epsilon.as_rational().checked_div(&two_delta)?;
    // Validate every γ before drawing anything.
    let gammas =
        losses.iter().map(|&l| eps_over.checked_mul_int(l - best)).collect::<Result<Vec<Rational>, DpError>>()?;
    // Random order by Fisher–Yates with exact uniform indices.
    let mut order: Vec<usize> = (0..cands.len()).collect();
    for i in (1..order.len()).rev() {
        let j = uniform_below(i as u128 + 1, rng) as usize;
        order.swap(i, j);
    }
    let mut chosen = None;
    for &i in &order {
        if bernoulli_exp(&gammas[i], rng) {
            chosen = Some(i);
            break;
        }
    }
    // The best candidate has γ = 0 and is always accepted, so `chosen` is always set.
    let i = chosen.ok_or(DpError::Overflow("permute-and-flip"))?;
    let scale = two_delta.checked_div(epsilon.as_rational())?;
    Ok(Release {
        value: cands[i],
        mechanism: Mechanism::PermuteAndFlip,
        epsilon: Some(*epsilon),
        delta: None,
        rho: None,
        l1_sensitivity: u64::try_from(delta_u).ok(),
        l2_sensitivity: None,
        scale,
    })
}

/// A DP ROC AUC from score histograms by label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AucRelease {
    /// Noisy counts of positive-label rows per score bin (ascending scores).
    pub positives: Vec<Release>,
    /// Noisy counts of negative-label rows per score bin.
    pub negatives: Vec<Release>,
    /// AUC computed from the noisy histograms (negative counts clamped to 0; ties count 1/2);
    /// `None` if either class is empty after noise. Post-processing only.
    pub auc: Option<f64>,
}

/// ε-DP AUC: the positive and negative score histograms together form one histogram over
/// (label, bin) in which a unit with at most `max_rows_per_unit` rows changes the counts by
/// at most k in L1, so one ε covers both (noise DLap(k/ε) per bin). The AUC is then computed
/// from the noisy histograms.
pub fn laplace_auc<R: RngCore + CryptoRng + ?Sized>(
    positive_counts: &[u64],
    negative_counts: &[u64],
    epsilon: &Epsilon,
    max_rows_per_unit: u32,
    rng: &mut R,
) -> Result<AucRelease, DpError> {
    if positive_counts.len() != negative_counts.len() {
        return Err(DpError::DomainSize(negative_counts.len()));
    }
    let mut all = positive_counts.to_vec();
    all.extend_from_slice(negative_counts);
    let mut rel = laplace_histogram(&all, epsilon, u64::from(max_rows_per_unit), rng)?;
    let negatives = rel.split_off(positive_counts.len());
    let positives = rel;
    let pos: Vec<f64> = positives.iter().map(|r| r.value.max(0) as f64).collect();
    let neg: Vec<f64> = negatives.iter().map(|r| r.value.max(0) as f64).collect();
    Ok(AucRelease { auc: auc_from_histograms(&pos, &neg), positives, negatives })
}

/// AUC = P(score⁺ > score⁻) + ½·P(tie) from per-bin counts (bins in ascending score order).
pub fn auc_from_histograms(pos: &[f64], neg: &[f64]) -> Option<f64> {
    let np: f64 = pos.iter().sum();
    let nn: f64 = neg.iter().sum();
    if np <= 0.0 || nn <= 0.0 {
        return None;
    }
    let mut neg_below = 0.0;
    let mut acc = 0.0;
    for (p, n) in pos.iter().zip(neg) {
        acc += p * (neg_below + 0.5 * n);
        neg_below += n;
    }
    Some(acc / (np * nn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded_rng_from_u64;

    fn eps(s: &str) -> Epsilon {
        s.parse().unwrap()
    }

    #[test]
    fn count_release_metadata() {
        let mut rng = seeded_rng_from_u64(1);
        let r = laplace_count(100, &eps("0.5"), 3, &mut rng).unwrap();
        assert_eq!(r.mechanism, Mechanism::DiscreteLaplace);
        assert_eq!(r.l1_sensitivity, Some(3));
        assert_eq!(r.scale.to_string(), "6");
        assert_eq!(r.epsilon, Some(eps("0.5")));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["mechanism"], "discrete_laplace");
        assert_eq!(j["scale"], "6");
        assert_eq!(j["epsilon"], "0.5");
        assert!(j.get("noise").is_none());
        let back: Release = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
        assert!(laplace_count(1, &eps("1"), 0, &mut rng).is_err());
    }

    #[test]
    fn seeded_mechanisms_are_deterministic() {
        let run = |seed| {
            let mut rng = seeded_rng_from_u64(seed);
            (
                laplace_count(10, &eps("1"), 1, &mut rng).unwrap().value,
                laplace_sum(5000, &eps("0.3"), 1000, &mut rng).unwrap().value,
                gaussian_count(10, &"0.5".parse().unwrap(), 1, &mut rng).unwrap().value,
            )
        };
        assert_eq!(run(7), run(7));
    }

    #[test]
    fn sum_at_i64_edges_errors_never_wraps() {
        let mut rng = seeded_rng_from_u64(2);
        for v in [i64::MAX, i64::MAX - 1, i64::MIN, i64::MIN + 1, (1 << 62) + 1] {
            assert!(matches!(laplace_sum(v, &eps("1"), 1_000_000_000, &mut rng), Err(DpError::Overflow(_))));
            assert!(matches!(
                gaussian_sum(v, &"1".parse().unwrap(), 1_000_000_000, &mut rng),
                Err(DpError::Overflow(_))
            ));
        }
        assert!(laplace_count(u64::MAX, &eps("1"), 1, &mut rng).is_err());
        // exactly 2^62 is accepted, with scale 10^9
        let r = laplace_sum(1 << 62, &eps("1"), 1_000_000_000, &mut rng).unwrap();
        assert!((r.value - (1i64 << 62)).unsigned_abs() < 1_000_000_000_000);
        let r = laplace_sum(-(1 << 62), &eps("0.001"), 1_000_000, &mut rng).unwrap();
        assert_eq!(r.scale.to_string(), "1000000000");
    }

    #[test]
    fn histogram_releases_every_bin() {
        let mut rng = seeded_rng_from_u64(3);
        let rel = laplace_histogram(&[0, 5, 100, 0], &eps("1"), 2, &mut rng).unwrap();
        assert_eq!(rel.len(), 4);
        assert!(rel.iter().all(|r| r.scale.to_string() == "2"));
        assert!(laplace_histogram(&[], &eps("1"), 1, &mut rng).is_err());
        assert!(laplace_histogram(&[1], &eps("1"), 0, &mut rng).is_err());
        let g = gaussian_histogram(&[1, 2], &"0.125".parse().unwrap(), 1, &mut rng).unwrap();
        assert_eq!(g[0].scale.to_string(), "4");
    }

    #[test]
    fn threshold_satisfies_delta_bound() {
        for (e, d, m) in [("1", "0.000001", 1u32), ("0.1", "1e-9", 5), ("5", "0.01", 1), ("0.01", "1e-6", 100)] {
            let e = eps(e);
            let dl: Delta = d.parse().unwrap();
            let tau = partition_threshold(&e, &dl, m).unwrap();
            let b = f64::from(m) / e.to_f64();
            let q = (-1.0 / b).exp();
            // P(1 + Z >= tau) = q^(tau-1)/(1+q); union over m partitions
            let n = (tau - 1) as f64;
            let p = f64::from(m) * (n * q.ln()).exp() / (1.0 + q);
            assert!(p <= dl.to_f64(), "tau {tau} gives {p} > {d}");
            // and it is not absurdly conservative: τ - 3 would violate δ
            let p_lo = f64::from(m) * ((n - 3.0) * q.ln()).exp() / (1.0 + q);
            assert!(p_lo > dl.to_f64() || n - 3.0 < 1.0, "tau {tau} too large");
        }
        assert_eq!(partition_threshold(&eps("1"), &Delta::ZERO, 1), Err(DpError::ZeroDelta));
        assert!(partition_threshold(&eps("1"), &"0.1".parse().unwrap(), 0).is_err());
        // known value: ε=1, δ=1e-6, m=1 → b=1, n0 = ceil(ln(1e6/(1+e^-1))) = 14, τ = 1+14+1
        assert_eq!(partition_threshold(&eps("1"), &"1e-6".parse().unwrap(), 1).unwrap(), 16);
    }

    #[test]
    fn group_selection_drops_small_groups() {
        let mut rng = seeded_rng_from_u64(4);
        let mut counts = BTreeMap::new();
        counts.insert("big", 10_000u64);
        counts.insert("tiny", 1u64);
        counts.insert("mid", 40u64);
        let delta: Delta = "1e-6".parse().unwrap();
        let out = group_counts_with_selection(counts.clone(), &eps("1"), &delta, 50, 1, &mut rng).unwrap();
        assert!(out.contains_key("big"));
        assert!(!out.contains_key("tiny"));
        assert_eq!(out["big"].delta, Some(delta));
        // size-1 groups essentially never pass
        let mut passes = 0;
        for _ in 0..20_000 {
            let mut c = BTreeMap::new();
            c.insert(0u8, 1u64);
            passes += group_counts_with_selection(c, &eps("1"), &delta, 0, 1, &mut rng).unwrap().len();
        }
        assert_eq!(passes, 0);
    }

    #[test]
    fn mean_splits_budget() {
        let mut rng = seeded_rng_from_u64(5);
        let m = laplace_mean(500_000, 1000, &eps("1"), 0, 1000, 1, &mut rng).unwrap();
        assert_eq!(m.sum.epsilon, Some(eps("0.5")));
        assert_eq!(m.count.epsilon, Some(eps("0.5")));
        assert_eq!(m.sum.l1_sensitivity, Some(1000));
        let mean = m.mean_fixed.unwrap();
        assert!((mean - 500.0).abs() < 50.0, "{mean}");
        assert!(laplace_mean(0, 0, &eps("1"), 5, 1, 1, &mut rng).is_err());
    }

    #[test]
    fn auc_from_noisy_histograms() {
        assert_eq!(auc_from_histograms(&[0.0, 10.0], &[10.0, 0.0]), Some(1.0));
        assert_eq!(auc_from_histograms(&[5.0, 5.0], &[5.0, 5.0]), Some(0.5));
        assert_eq!(auc_from_histograms(&[0.0], &[3.0]), None);
        let mut rng = seeded_rng_from_u64(9);
        let pos = [10u64, 100, 1000, 5000];
        let neg = [5000u64, 1000, 100, 10];
        let a = laplace_auc(&pos, &neg, &eps("1"), 1, &mut rng).unwrap();
        assert_eq!(a.positives.len(), 4);
        assert!(a.auc.unwrap() > 0.9);
        assert!(laplace_auc(&pos, &neg[..3], &eps("1"), 1, &mut rng).is_err());
    }

    #[test]
    fn quantile_finds_median() {
        let mut rng = seeded_rng_from_u64(6);
        let values: Vec<i64> = (0..1001).collect();
        let cands: Vec<i64> = (0..=100).map(|i| i * 10).collect();
        let half: Rational = "0.5".parse().unwrap();
        let mut hits = 0;
        for _ in 0..200 {
            let r = quantile(&values, &cands, &half, &eps("1"), 1, &mut rng).unwrap();
            if (r.value - 500).abs() <= 50 {
                hits += 1;
            }
        }
        assert!(hits > 190, "{hits}");
        assert!(quantile(&values, &[], &half, &eps("1"), 1, &mut rng).is_err());
        assert!(quantile(&values, &cands, &"1.5".parse().unwrap(), &eps("1"), 1, &mut rng).is_err());
        // q = 0 and q = 1 work
        quantile(&values, &cands, &Rational::ZERO, &eps("1"), 1, &mut rng).unwrap();
        quantile(&values, &cands, &Rational::ONE, &eps("1"), 1, &mut rng).unwrap();
    }
}
