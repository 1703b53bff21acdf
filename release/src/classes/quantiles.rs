//! Quantiles by permute-and-flip over a public grid of candidates, from a count per grid
//! cell (so nothing per row is kept). ε is split evenly over the quantiles asked for.

use super::{value, Ctx, Head};
use crate::check::Source;
use crate::noise::Mode;
use crate::partial::{add_all, add_u64, row_bound, MergeError, OutputAggregate};
use crate::{ReleaseError, UnitView};
use dp::{Epsilon, FixedPoint, Rational};
use protocol::job::OutputSpec;
use protocol::result::{NoiseTerm, OutputRelease};

pub(crate) struct Quantiles {
    pub head: Head,
    source: Source,
    lower: f64,
    upper: f64,
    fp: FixedPoint,
    k: u32,
    /// Sorted, distinct candidates in fixed-point units.
    candidates: Vec<i64>,
    /// `cells[i]`: values with exactly i candidates at or below them.
    cells: Vec<u64>,
    /// Each quantile as declared and as an exact fraction (to 6 decimals).
    qs: Vec<(f64, Rational)>,
    each: Epsilon,
}

impl Quantiles {
    pub(crate) fn new(
        head: Head,
        o: &OutputSpec,
        source: Option<Source>,
        ctx: &Ctx,
    ) -> Result<Quantiles, ReleaseError> {
        let OutputSpec::Quantiles { lower, upper, quantiles, grid, .. } = o else {
            return Err(ReleaseError::BadQuery("not a quantiles output".into()));
        };
        let source = source.ok_or_else(|| ReleaseError::BadQuery("no value source".into()))?;
        let (lo, hi) = ctx.fp.encode_bounds(*lower, *upper)?;
        let g = i128::from(*grid - 1);
        let mut candidates: Vec<i64> =
            (0..=g).map(|j| (i128::from(lo) + (j * i128::from(hi - lo) + g / 2) / g) as i64).collect();
        candidates.dedup();
        let qs = quantiles
            .iter()
            .map(|&q| Ok((q, Rational::new((q * 1e6).round() as u128, 1_000_000)?)))
            .collect::<Result<Vec<_>, ReleaseError>>()?;
        let each = head.epsilon.checked_div_int(qs.len() as u128)?;
        Ok(Quantiles {
            head,
            source,
            lower: *lower,
            upper: *upper,
            fp: ctx.fp,
            k: ctx.k,
            cells: vec![0; candidates.len() + 1],
            candidates,
            qs,
            each,
        })
    }

    pub(crate) fn absorb(&mut self, u: &UnitView<'_>) {
        for row in 0..u.rows() {
            let Some(v) = u.value(&self.source, row) else { continue };
            let Ok(x) = self.fp.encode(v, self.lower, self.upper) else { continue };
            self.cells[self.candidates.partition_point(|&c| c <= x)] += 1;
        }
    }

    /// Permute-and-flip's sensitivity for quantile a/b: Δ = k·max(a, b − a).
    fn sensitivity(&self, q: &Rational) -> u128 {
        u128::from(self.k) * q.numer().max(q.denom() - q.numer()).max(1)
    }

    /// With probability at least 95%, the released candidate's rank is within this many
    /// rows of the best candidate's: permute-and-flip outputs a candidate whose loss exceeds
    /// the best by g with probability at most |C|·exp(−ε·g/(2Δ)) (each such candidate is
    /// accepted with at most that probability when visited), so g = (2Δ/ε)·ln(|C|/0.05),
    /// and a loss of g is g/b rows of rank.
    fn rank_error_95(&self, q: &Rational) -> f64 {
        let d = self.sensitivity(q) as f64;
        2.0 * d / self.each.to_f64() * (self.candidates.len() as f64 / 0.05).ln() / q.denom() as f64
    }

    pub(crate) fn finish(self, mode: &mut Mode<'_>) -> Result<OutputRelease, ReleaseError> {
        let mut ranks = Vec::with_capacity(self.candidates.len());
        let mut below = 0u64;
        for &c in &self.cells[..self.candidates.len()] {
            below += c;
            ranks.push(below);
        }
        let n = below + self.cells[self.candidates.len()];
        let mut values = Vec::new();
        let mut bounds = Vec::new();
        for (q, qr) in &self.qs {
            let chosen = match mode {
                Mode::Dp { rng, .. } => {
                    dp::mechanism::quantile_by_ranks(&self.candidates, &ranks, n, qr, &self.each, self.k, &mut **rng)?
                        .value
                }
                Mode::Exact { .. } => {
                    // the candidate whose rank is closest to q·n
                    let target = qr.numer() * u128::from(n);
                    let loss = |r: u64| (qr.denom() * u128::from(r)).abs_diff(target);
                    let best = ranks.iter().enumerate().min_by_key(|(_, &r)| loss(r)).map(|(i, _)| i).unwrap_or(0);
                    self.candidates[best]
                }
            };
            values.push(value(&format!("q = {q}"), "", self.fp.decode(chosen), None));
            bounds.push(format!("q = {q}: ±{:.1} rows", self.rank_error_95(qr)));
        }
        let note = format!(
            "values clamped to [{}, {}]; each quantile chosen by permute-and-flip among {} evenly spaced candidates \
             with ε/{} each; no value interval is stated: with probability ≥ 95% the released candidate's rank is within \
             the stated number of rows of the best candidate's rank ({})",
            self.lower,
            self.upper,
            self.candidates.len(),
            self.qs.len(),
            bounds.join(", ")
        );
        let terms = self.terms();
        Ok(self.head.release(mode, terms, None, values, note))
    }

    pub(crate) fn terms(&self) -> Vec<NoiseTerm> {
        self.qs
            .iter()
            .map(|(q, qr)| {
                let d = self.sensitivity(qr);
                let scale = Rational::from_integer(2 * d)
                    .checked_div(self.each.as_rational())
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                NoiseTerm {
                    on: format!("rank utility of q = {q}"),
                    distribution: dp::Mechanism::PermuteAndFlip.as_str().into(),
                    scale,
                    sensitivity: u64::try_from(d).unwrap_or(u64::MAX),
                    budget: format!("ε = {}", self.each),
                }
            })
            .collect()
    }

    pub(crate) fn computes(&self) -> String {
        let qs: Vec<String> = self.qs.iter().map(|(q, _)| q.to_string()).collect();
        format!(
            "quantiles {} of values clamped to [{}, {}] on a grid of {} candidates",
            qs.join(", "),
            self.lower,
            self.upper,
            self.candidates.len()
        )
    }

    /// The rank error bound (rows) of the first quantile; it does not depend on group size.
    pub(crate) fn ci95_at(&self, _n: u64) -> Option<f64> {
        self.qs.first().map(|(_, q)| self.rank_error_95(q))
    }
}

impl Quantiles {
    pub(crate) fn exact(&self) -> OutputAggregate {
        OutputAggregate::Quantiles { cells: self.cells.clone() }
    }

    /// Check a partial against this output's grid and the rows `units` units of at most
    /// `k` rows could give; then add it.
    pub(crate) fn merge(&mut self, p: &OutputAggregate, units: u64, k: u32) -> Result<(), MergeError> {
        let name = self.head.name.clone();
        let OutputAggregate::Quantiles { cells } = p else {
            return Err(MergeError::Class { output: name, expected: "quantiles", found: p.class() });
        };
        if cells.len() != self.cells.len() {
            return Err(MergeError::Length { output: name, what: "grid cells" });
        }
        if cells.iter().map(|&c| u128::from(c)).sum::<u128>() > row_bound(units, k) {
            return Err(MergeError::TooManyRows { output: name, k });
        }
        add_all(&mut self.cells, cells, &name, add_u64)
    }
}
