//! Means and covariance matrix of several values, with discrete Gaussian noise. Values are
//! clamped to [lower, upper] and centred on its middle, so each is at most h in magnitude.
//! Per row, the vector of centred values has L2 norm at most h·√d and the upper triangle of
//! its outer product at most d·h² (Frobenius); a unit with k rows moves each noised vector
//! by at most k times that. ρ = ε²/2 is split in three: count, sums, second moments.

use super::{value, Ctx, Head};
use crate::check::Source;
use crate::noise::{bootstrap_ci, gaussian_rho, Mode, Term};
use crate::partial::{add_all, add_i128, add_u64, row_bound, within, MergeError, OutputAggregate};
use crate::{centre_and_half_range, ReleaseError, UnitView};
use dp::{FixedPoint, Rho};
use protocol::job::OutputSpec;
use protocol::result::{NoiseTerm, OutputRelease};

pub(crate) struct Covariance {
    pub head: Head,
    sources: Vec<Source>,
    labels: Vec<String>,
    lower: f64,
    upper: f64,
    fp: FixedPoint,
    centre: i64,
    rows: u64,
    sums: Vec<i128>,
    /// Upper triangle (i <= j, row by row) of Σ round(c_i·c_j / R).
    moments: Vec<i128>,
    count: Term,
    sum: Term,
    moment: Term,
}

impl Covariance {
    pub(crate) fn new(
        head: Head,
        o: &OutputSpec,
        sources: Vec<Source>,
        labels: Vec<String>,
        ctx: &Ctx,
    ) -> Result<Covariance, ReleaseError> {
        let OutputSpec::Covariance { lower, upper, .. } = o else {
            return Err(ReleaseError::BadQuery("not a covariance output".into()));
        };
        let d = sources.len();
        let (centre, half) = centre_and_half_range(&ctx.fp, *lower, *upper)?;
        if half == 0 {
            return Err(ReleaseError::BadQuery(format!(
                "bounds [{lower}, {upper}] round to 0 at the fixed-point resolution"
            )));
        }
        let k = f64::from(ctx.k);
        let h = half as f64;
        let r = ctx.fp.scale as f64;
        let tri = (d * (d + 1) / 2) as f64;
        let ceil = |x: f64| -> Result<u64, ReleaseError> {
            if x.is_finite() && x < 1e18 {
                Ok(x.ceil().max(1.0) as u64)
            } else {
                Err(dp::DpError::Overflow("covariance sensitivity").into())
            }
        };
        let rho = gaussian_rho(&head.epsilon)?;
        let third = Rho::try_from(rho.as_rational().checked_div(&dp::Rational::from_integer(3))?)?;
        let count = Term::gaussian("count", &third, ctx.k.into())?;
        let sum = Term::gaussian("centred sums", &third, ceil(k * h * (d as f64).sqrt())?)?;
        let moment =
            Term::gaussian("centred second moments", &third, ceil(k * (d as f64 * h * h / r + 0.5 * tri.sqrt()))?)?;
        Ok(Covariance {
            head,
            labels,
            lower: *lower,
            upper: *upper,
            fp: ctx.fp,
            centre,
            rows: 0,
            sums: vec![0; d],
            moments: vec![0; d * (d + 1) / 2],
            sources,
            count,
            sum,
            moment,
        })
    }

    pub(crate) fn absorb(&mut self, u: &UnitView<'_>) {
        let r = self.fp.scale as i128;
        let mut c = Vec::with_capacity(self.sources.len());
        'rows: for row in 0..u.rows() {
            c.clear();
            for s in &self.sources {
                // a row with any value null is left out of this output
                let Some(v) = u.value(s, row) else { continue 'rows };
                let Ok(x) = self.fp.encode(v, self.lower, self.upper) else { continue 'rows };
                c.push(i128::from(x - self.centre));
            }
            self.rows += 1;
            let mut t = 0;
            for i in 0..c.len() {
                self.sums[i] += c[i];
                for j in i..c.len() {
                    let p = c[i] * c[j];
                    // round half away from zero, symmetric in sign
                    self.moments[t] += if p >= 0 { (p + r / 2) / r } else { (p - r / 2) / r };
                    t += 1;
                }
            }
        }
    }

    pub(crate) fn finish(self, mode: &mut Mode<'_>) -> Result<OutputRelease, ReleaseError> {
        let d = self.sources.len();
        let mut noisy = vec![self.count.add(i128::from(self.rows), mode)?];
        let mut terms = vec![&self.count];
        for &s in &self.sums {
            noisy.push(self.sum.add(s, mode)?);
            terms.push(&self.sum);
        }
        for &m in &self.moments {
            noisy.push(self.moment.add(m, mode)?);
            terms.push(&self.moment);
        }
        let r = self.fp.scale as f64;
        let centre = self.centre as f64 / r;
        let (lower, upper) = (self.lower, self.upper);
        let max_var = ((upper - lower) / 2.0).powi(2);
        let stats = move |x: &[f64]| -> Option<Vec<Option<f64>>> {
            let n = x[0];
            if n < 1.0 {
                return None;
            }
            let m: Vec<f64> = x[1..=d].iter().map(|s| s / (r * n)).collect();
            let mut out: Vec<Option<f64>> = m.iter().map(|mi| Some((centre + mi).clamp(lower, upper))).collect();
            let mut t = 0;
            for i in 0..d {
                for j in i..d {
                    let cov = x[1 + d + t] / (r * n) - m[i] * m[j];
                    out.push(Some(if i == j { cov.clamp(0.0, max_var) } else { cov.clamp(-max_var, max_var) }));
                    t += 1;
                }
            }
            Some(out)
        };
        let ci = bootstrap_ci(&noisy, &terms, stats, mode)?;
        let x: Vec<f64> = noisy.iter().map(|&v| v as f64).collect();
        let est = stats(&x).unwrap_or_else(|| vec![None; d + d * (d + 1) / 2]);
        let mut values = Vec::new();
        for (i, label) in self.labels.iter().enumerate() {
            values.push(value(label, "mean", est[i].unwrap_or(centre), ci.get(i).copied().flatten()));
        }
        let mut t = d;
        for i in 0..d {
            for j in i..d {
                let key = format!("{} × {}", self.labels[i], self.labels[j]);
                values.push(value(&key, "covariance", est[t].unwrap_or(0.0), ci.get(t).copied().flatten()));
                t += 1;
            }
        }
        let note = format!(
            "means and covariances (population, divided by the noisy count) of values clamped to [{lower}, {upper}]; \
             discrete Gaussian noise on the count, the centred sums and the centred second moments (rounded to the \
             fixed-point grid), each ρ/3 of ρ = ε²/2; 0 where the noisy count is below 1; ci95: parametric bootstrap over the noise"
        );
        let terms = self.terms();
        Ok(self.head.release(mode, terms, None, values, note))
    }

    pub(crate) fn terms(&self) -> Vec<NoiseTerm> {
        super::describe(&[&self.count, &self.sum, &self.moment])
    }

    pub(crate) fn computes(&self) -> String {
        format!("means and covariance matrix of {} clamped to [{}, {}]", self.labels.join(", "), self.lower, self.upper)
    }

    pub(crate) fn ci95_at(&self, _n: u64) -> Option<f64> {
        None
    }
}

impl Covariance {
    pub(crate) fn exact(&self) -> OutputAggregate {
        OutputAggregate::Covariance { rows: self.rows, sums: self.sums.clone(), moments: self.moments.clone() }
    }

    /// Check a partial against this output's dimension and the rows `units` units of at
    /// most `k` rows could give, each centred value at most the half range; then add it.
    pub(crate) fn merge(&mut self, p: &OutputAggregate, units: u64, k: u32) -> Result<(), MergeError> {
        let name = self.head.name.clone();
        let OutputAggregate::Covariance { rows, sums, moments } = p else {
            return Err(MergeError::Class { output: name, expected: "covariance", found: p.class() });
        };
        if sums.len() != self.sums.len() || moments.len() != self.moments.len() {
            return Err(MergeError::Length { output: name, what: "sums or moments" });
        }
        if u128::from(*rows) > row_bound(units, k) {
            return Err(MergeError::TooManyRows { output: name, k });
        }
        let (lo, hi) = self.fp.encode_bounds(self.lower, self.upper).unwrap_or((0, 0));
        let h = (i128::from(lo) - i128::from(self.centre))
            .unsigned_abs()
            .max((i128::from(hi) - i128::from(self.centre)).unsigned_abs());
        let r = (self.fp.scale.unsigned_abs() as u128).max(1);
        if sums.iter().any(|&s| !within(s, *rows, h)) {
            return Err(MergeError::OutOfBounds { output: name, what: "centred sum" });
        }
        if moments.iter().any(|&m| !within(m, *rows, h.saturating_mul(h) / r + 1)) {
            return Err(MergeError::OutOfBounds { output: name, what: "second moment" });
        }
        add_u64(&mut self.rows, *rows, &name)?;
        add_all(&mut self.sums, sums, &name, add_i128)?;
        add_all(&mut self.moments, moments, &name, add_i128)
    }
}
