//! Count, sum, mean and variance, per group of up to three keys or over every row.
//!
//! Groups come from public key domains (every combination is released, no δ) or from the
//! data through DP partition selection on noisy row counts (Laplace only, δ = the policy's
//! partition δ). A grouped release also drops groups whose noisy count is below the
//! policy's minimum group size (post-processing).

use super::{count_value, value, Ctx, Head};
use crate::check::{Keys, Source};
use crate::noise::{linear_half_width, Mode, Term};
use crate::partial::{add_i128, add_u64, row_bound, within, GroupCell, MergeError, OutputAggregate};
use crate::{centre_and_half_range, ReleaseError, UnitView};
use dp::mechanism::PartitionSelectionPlan;
use dp::{FixedPoint, Rational};
use protocol::job::OutputSpec;
use protocol::result::{NoiseTerm, OutputRelease, ReleasedValue};
use std::collections::BTreeMap;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stat {
    Count,
    Sum,
    Mean,
    Variance,
}

#[derive(Default, Clone)]
struct Cell {
    rows: u64,
    /// Σ value (sum) or Σ (value − centre) (mean, variance), fixed-point units.
    sum: i128,
    /// Σ (round((value − centre)² / R) − square centre) (variance only).
    sq: i128,
}

pub(crate) struct Groups {
    pub head: Head,
    stat: Stat,
    source: Option<Source>,
    group_by: Vec<String>,
    keys: Keys,
    lower: f64,
    upper: f64,
    fp: FixedPoint,
    /// Fixed-point centre of the values (0 for plain sums).
    centre: i64,
    /// Fixed-point half range of centred values (mean, variance).
    half: u64,
    /// Centre of the per-row squared terms (variance).
    sq_centre: i64,
    count: Option<Term>,
    sum: Option<Term>,
    sq: Option<Term>,
    selection: Option<PartitionSelectionPlan>,
    cells: BTreeMap<String, Cell>,
}

impl Groups {
    pub(crate) fn new(
        head: Head,
        o: &OutputSpec,
        source: Option<Source>,
        keys: Keys,
        ctx: &Ctx,
    ) -> Result<Groups, ReleaseError> {
        let (stat, lower, upper, count_share) = match o {
            OutputSpec::Count { .. } => (Stat::Count, 0.0, 1.0, None),
            OutputSpec::Sum { lower, upper, .. } => (Stat::Sum, *lower, *upper, None),
            OutputSpec::Mean { lower, upper, count_share, .. } => (Stat::Mean, *lower, *upper, count_share.clone()),
            OutputSpec::Variance { lower, upper, .. } => (Stat::Variance, *lower, *upper, None),
            _ => return Err(ReleaseError::BadQuery("not a grouped output".into())),
        };
        let k = u64::from(ctx.k);
        let (centre, half) = centre_and_half_range(&ctx.fp, lower, upper)?;
        let r = ctx.fp.scale as u128;
        let sq_max = u64::try_from((u128::from(half) * u128::from(half)).div_ceil(r))
            .map_err(|_| dp::DpError::Overflow("squared bound"))?;
        let sq_centre = (sq_max / 2) as i64;
        // How ε is split among the integers this output noises.
        let (count_share, sum_share, sq_share): (Rational, Rational, Rational) = match stat {
            Stat::Count => (Rational::ONE, Rational::ZERO, Rational::ZERO),
            // A sum over no keys or public keys needs no count: it has nothing to select.
            Stat::Sum if !matches!(keys, Keys::Selected) => (Rational::ZERO, Rational::ONE, Rational::ZERO),
            Stat::Sum => (Rational::new(1, 2)?, Rational::new(1, 2)?, Rational::ZERO),
            Stat::Mean => {
                let c = match &count_share {
                    Some(d) => super::rational(d.as_str())?,
                    None => Rational::new(1, 2)?,
                };
                if c.is_zero() || c >= Rational::ONE {
                    return Err(ReleaseError::BadQuery("count_share must be strictly between 0 and 1".into()));
                }
                let rest = Rational::ONE.checked_sub(&c)?.expect("c < 1");
                (c, rest, Rational::ZERO)
            }
            Stat::Variance => (Rational::new(1, 3)?, Rational::new(1, 3)?, Rational::new(1, 3)?),
        };
        let per_unit = |h: u64, what: &'static str| h.checked_mul(k).ok_or(dp::DpError::Overflow(what));
        let term = |on: &str, share: &Rational, l: u64| -> Result<Option<Term>, ReleaseError> {
            if share.is_zero() {
                return Ok(None);
            }
            if l == 0 {
                return Err(ReleaseError::BadQuery(format!(
                    "bounds [{lower}, {upper}] round to 0 at the fixed-point resolution 1/{}",
                    ctx.fp.scale
                )));
            }
            head.term(on, share, l).map(Some)
        };
        let count = term("count", &count_share, k)?;
        let (sum_on, sum_bound) = match stat {
            Stat::Sum => {
                let (lo, hi) = ctx.fp.encode_bounds(lower, upper)?;
                ("sum", lo.unsigned_abs().max(hi.unsigned_abs()))
            }
            _ => ("centred sum", half),
        };
        let sum = term(sum_on, &sum_share, per_unit(sum_bound, "per-unit sum bound")?)?;
        let sq =
            term("centred sum of squares", &sq_share, per_unit(sq_max - sq_centre as u64, "per-unit square bound")?)?;
        let selection = match &keys {
            Keys::Selected => Some(dp::mechanism::partition_selection_plan(
                &head.share(&count_share)?,
                &ctx.partition_delta,
                ctx.k,
                ctx.min_group_size,
            )?),
            _ => None,
        };
        let cells = match &keys {
            Keys::Public(all) => all.iter().map(|k| (k.clone(), Cell::default())).collect(),
            Keys::Total => BTreeMap::from([(String::new(), Cell::default())]),
            Keys::Selected => BTreeMap::new(),
        };
        Ok(Groups {
            head,
            stat,
            source,
            group_by: o.group_by().to_vec(),
            keys,
            lower,
            upper,
            fp: ctx.fp,
            centre: if stat == Stat::Sum { 0 } else { centre },
            half,
            sq_centre,
            count,
            sum,
            sq,
            selection,
            cells,
        })
    }

    pub(crate) fn absorb(&mut self, u: &UnitView<'_>) {
        for row in 0..u.rows() {
            let key = if self.group_by.is_empty() {
                String::new()
            } else {
                match u.key(&self.group_by, row) {
                    Some(k) => k,
                    None => continue,
                }
            };
            let (sum, sq) = match (&self.source, self.stat) {
                (_, Stat::Count) | (None, _) => (0, 0),
                (Some(s), _) => {
                    // A null value adds nothing; NaN cannot come from a module (the unit would
                    // be absent) and a column's NaN is treated as null.
                    let Some(x) = u.value(s, row) else { continue };
                    let Ok(x) = self.fp.encode(x, self.lower, self.upper) else { continue };
                    let c = x - self.centre;
                    let r = self.fp.scale as i128;
                    let sq = (i128::from(c) * i128::from(c) + r / 2) / r - i128::from(self.sq_centre);
                    (i128::from(c), sq)
                }
            };
            let cell = match self.keys {
                Keys::Public(_) => match self.cells.get_mut(&key) {
                    Some(c) => c,
                    None => continue, // outside the declared domain: in no group
                },
                _ => self.cells.entry(key).or_default(),
            };
            // Counts < 2^64 rows and |sums| < 2^64 · 2^62: no overflow.
            cell.rows += 1;
            cell.sum += sum;
            cell.sq += sq;
        }
    }

    /// The groups released and their noisy (or exact) row counts, in key order.
    fn released(&self, mode: &mut Mode<'_>) -> Result<Vec<(String, Option<i64>)>, ReleaseError> {
        let keyed = !self.group_by.is_empty();
        let min = mode.min_group_size();
        if let Mode::Exact { .. } = mode {
            return Ok(self
                .cells
                .iter()
                .filter(|(_, c)| !keyed || c.rows >= min)
                .map(|(k, c)| (k.clone(), Some(c.rows as i64)))
                .collect());
        }
        if let (Some(plan), Mode::Dp { rng, .. }) = (&self.selection, &mut *mode) {
            let counts: BTreeMap<&str, u64> = self.cells.iter().map(|(k, c)| (k.as_str(), c.rows)).collect();
            let selected = dp::mechanism::group_counts_with_plan(counts, plan, &mut **rng)?;
            return Ok(selected.into_iter().map(|(k, r)| (k.to_string(), Some(r.value))).collect());
        }
        let mut out = Vec::with_capacity(self.cells.len());
        for (k, c) in &self.cells {
            let noisy = match &self.count {
                Some(t) => Some(t.add(i128::from(c.rows), mode)?),
                None => None,
            };
            if keyed && noisy.is_some_and(|n| n < min as i64) {
                continue;
            }
            out.push((k.clone(), noisy));
        }
        Ok(out)
    }

    pub(crate) fn finish(self, mode: &mut Mode<'_>) -> Result<OutputRelease, ReleaseError> {
        let released = self.released(mode)?;
        let r = self.fp.scale as f64;
        let centre = self.centre as f64 / r;
        let sq_centre = self.sq_centre as f64 / r;
        let (lower, upper, max_var) = (self.lower, self.upper, (self.half as f64 / r).powi(2));
        let mean_of = move |c: f64, s: f64| (c >= 1.0).then(|| (centre + s / (r * c)).clamp(lower, upper));
        let var_of = move |c: f64, s: f64, q: f64| {
            (c >= 1.0).then(|| {
                let m = s / (r * c);
                (sq_centre + q / (r * c) - m * m).clamp(0.0, max_var)
            })
        };
        let mut values: Vec<ReleasedValue> = Vec::new();
        for (key, noisy_count) in released {
            let cell = self.cells.get(&key).cloned().unwrap_or_default();
            let c = noisy_count.unwrap_or(0);
            let count_term = self.count.as_ref();
            match self.stat {
                Stat::Count => {
                    values.push(count_value(&key, "", c, count_term.expect("a count has a count term"), mode))
                }
                Stat::Sum => {
                    let t = self.sum.as_ref().expect("a sum has a sum term");
                    let s = t.add(cell.sum, mode)?;
                    let ci = mode.is_dp().then(|| t.interval(s).map(|v| v / r));
                    values.push(value(&key, "", s as f64 / r, ci));
                }
                Stat::Mean => {
                    let t = self.sum.as_ref().expect("a mean has a sum term");
                    let s = t.add(cell.sum, mode)?;
                    let ct = count_term.expect("a mean has a count term");
                    let cc = c.max(1) as f64;
                    let m = mean_of(cc, s as f64).unwrap_or(centre);
                    // delta method: ∂/∂S = 1/(R·C), ∂/∂C = −(m − centre)/C
                    let hw = linear_half_width(&[(t, 1.0 / (r * cc)), (ct, (m - centre) / cc)]);
                    let ci = mode.is_dp().then(|| [(m - hw).max(lower), (m + hw).min(upper)]);
                    values.push(value(&key, "", m, ci));
                }
                Stat::Variance => {
                    let (st, qt) = (self.sum.as_ref().expect("sum term"), self.sq.as_ref().expect("square term"));
                    let s = st.add(cell.sum, mode)?;
                    let q = qt.add(cell.sq, mode)?;
                    let ct = count_term.expect("a variance has a count term");
                    let cc = c.max(1) as f64;
                    let m = mean_of(cc, s as f64).unwrap_or(centre);
                    let v = var_of(cc, s as f64, q as f64).unwrap_or(0.0);
                    // delta method on v = sq_centre + Q/(R·C) − (S/(R·C))²
                    let d = s as f64 / (r * cc);
                    let second = q as f64 / (r * cc);
                    let hw_m = linear_half_width(&[(st, 1.0 / (r * cc)), (ct, (m - centre) / cc)]);
                    let hw_v = linear_half_width(&[
                        (qt, 1.0 / (r * cc)),
                        (st, -2.0 * d / (r * cc)),
                        (ct, (2.0 * d * d - second) / cc),
                    ]);
                    let dp = mode.is_dp();
                    values.push(value(&key, "mean", m, dp.then(|| [(m - hw_m).max(lower), (m + hw_m).min(upper)])));
                    values.push(value(&key, "variance", v, dp.then(|| [(v - hw_v).max(0.0), (v + hw_v).min(max_var)])));
                }
            }
        }
        let terms: Vec<&Term> = [&self.count, &self.sum, &self.sq].into_iter().flatten().collect();
        let delta = self.selection.as_ref().map(|p| *p.delta());
        Ok(self.head.release(mode, super::describe(&terms), delta.as_ref(), values, self.note()))
    }

    fn note(&self) -> String {
        let groups = match (&self.keys, &self.selection) {
            (Keys::Total, _) => "over every row".to_string(),
            (Keys::Public(all), _) => format!(
                "for each of the {} combinations of the public domains of {} (no partition selection, no δ); {}",
                all.len(),
                self.group_by.join(", "),
                if self.count.is_some() {
                    "groups whose noisy row count is below the policy's minimum are not shown"
                } else {
                    "every combination is shown (a sum over public keys spends nothing on a count)"
                }
            ),
            (Keys::Selected, Some(p)) => format!(
                "per group of {} found in the data: a group is shown only if its noisy row count reaches {} \
                 (DP partition selection with the policy's δ and minimum group size)",
                self.group_by.join(", "),
                p.cut()
            ),
            (Keys::Selected, None) => String::new(),
        };
        let what = match self.stat {
            Stat::Count => "rows".to_string(),
            Stat::Sum => format!("sum of values clamped to [{}, {}]", self.lower, self.upper),
            Stat::Mean => format!(
                "mean of values clamped to [{}, {}]: noisy centred sum / noisy count, clamped to the bounds",
                self.lower, self.upper
            ),
            Stat::Variance => format!(
                "mean and variance of values clamped to [{}, {}], from noisy count, centred sum and centred sum of squares \
                 (squares rounded to the fixed-point grid), each given a third of ε",
                self.lower, self.upper
            ),
        };
        format!(
            "{what}, {groups}; ci95: {}",
            match self.stat {
                Stat::Count | Stat::Sum => "exact quantiles of the noise",
                _ => "delta method on the noisy integers, 95% point of their noise by a fourth-cumulant (Cornish–Fisher) expansion",
            }
        )
    }

    pub(crate) fn terms(&self) -> Vec<NoiseTerm> {
        super::describe(&[&self.count, &self.sum, &self.sq].into_iter().flatten().collect::<Vec<_>>())
    }

    pub(crate) fn selection_threshold(&self) -> Option<i64> {
        self.selection.as_ref().map(|p| p.cut())
    }

    pub(crate) fn computes(&self) -> String {
        self.note()
    }

    /// Approximate 95% half-width of a value at group size `n` (value units).
    pub(crate) fn ci95_at(&self, n: u64) -> Option<f64> {
        let r = self.fp.scale as f64;
        let hw = |t: &Option<Term>| t.as_ref().map(|t| t.half_width() as f64);
        match self.stat {
            Stat::Count => hw(&self.count),
            Stat::Sum => hw(&self.sum).map(|h| h / r),
            Stat::Mean => {
                let (hs, hc) = (hw(&self.sum)? / r, hw(&self.count)?);
                let dev = self.half as f64 / r;
                Some((hs * hs + (dev * hc).powi(2)).sqrt() / n.max(1) as f64)
            }
            Stat::Variance => None,
        }
    }
}

impl Groups {
    /// The exact cells, in key order.
    pub(crate) fn exact(&self) -> OutputAggregate {
        let cells = self
            .cells
            .iter()
            .map(|(key, c)| GroupCell { key: key.clone(), rows: c.rows, sum: c.sum, sq: c.sq })
            .collect();
        OutputAggregate::Groups { cells }
    }

    /// Largest |per-row term| of the sum and of the squares (fixed-point units).
    fn per_row_bounds(&self) -> (u128, u128) {
        let (lo, hi) = self.fp.encode_bounds(self.lower, self.upper).unwrap_or((0, 0));
        let c = (i128::from(lo) - i128::from(self.centre))
            .unsigned_abs()
            .max((i128::from(hi) - i128::from(self.centre)).unsigned_abs());
        let r = self.fp.scale.unsigned_abs() as u128;
        // round(c² / R) − sq_centre, in either direction (rounding adds at most one).
        let sq =
            (c.saturating_mul(c) / r.max(1)).saturating_add(1).saturating_add(self.sq_centre.unsigned_abs().into());
        (c, sq)
    }

    /// Check a partial against this output's public shape and the rows `units` units of at
    /// most `k` rows could give; then add it.
    pub(crate) fn merge(&mut self, p: &OutputAggregate, units: u64, k: u32) -> Result<(), MergeError> {
        let name = self.head.name.clone();
        let OutputAggregate::Groups { cells } = p else {
            return Err(MergeError::Class { output: name, expected: "groups", found: p.class() });
        };
        let (sum_row, sq_row) = self.per_row_bounds();
        let mut total: u128 = 0;
        let mut prev: Option<&str> = None;
        for c in cells {
            // Strictly increasing keys: no group twice (and one canonical encoding).
            if prev.is_some_and(|p| p >= c.key.as_str()) {
                return Err(MergeError::DuplicateGroup { output: name });
            }
            prev = Some(c.key.as_str());
            let known = self.cells.contains_key(&c.key);
            match self.keys {
                Keys::Public(_) | Keys::Total if !known => return Err(MergeError::UnknownGroup { output: name }),
                Keys::Selected if c.rows == 0 => return Err(MergeError::EmptyGroup { output: name }),
                _ => {}
            }
            if !within(c.sum, c.rows, sum_row) {
                return Err(MergeError::OutOfBounds { output: name, what: "group sum" });
            }
            if !within(c.sq, c.rows, sq_row) {
                return Err(MergeError::OutOfBounds { output: name, what: "group sum of squares" });
            }
            total += u128::from(c.rows);
        }
        if total > row_bound(units, k) {
            return Err(MergeError::TooManyRows { output: name, k });
        }
        for c in cells {
            let cell = self.cells.entry(c.key.clone()).or_default();
            add_u64(&mut cell.rows, c.rows, &name)?;
            add_i128(&mut cell.sum, c.sum, &name)?;
            add_i128(&mut cell.sq, c.sq, &name)?;
        }
        Ok(())
    }
}
