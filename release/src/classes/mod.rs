//! One aggregator per output class. Each is built from its spec before any data is read
//! (which checks every noise scale), absorbs units through a [`UnitView`] whose columns were
//! checked, and finishes into an [`OutputRelease`] with every noise term and a 95% interval
//! per value.
//!
//! Sensitivities are derived under per-unit bounding: one unit contributes at most
//! k = `max_rows_per_unit` rows to an output, each row to at most one cell (group, bin or
//! threshold interval) of each integer vector the output noises. So a vector of counts moves
//! by at most k in L1 and in L2 (Σ c_g² ≤ (Σ c_g)²), and a vector of sums of values whose
//! magnitude is at most h by at most k·h in both.

mod bins;
mod covariance;
mod groups;
mod quantiles;

use crate::check::{Keys, Source};
use crate::noise::{Mode, Term};
use crate::{ReleaseError, UnitView};
use dp::{Delta, Epsilon, FixedPoint, Rational};
use protocol::job::OutputSpec;
use protocol::policy::Decimal;
use protocol::result::{NoiseTerm, OutputRelease, ReleasedValue};
use serde::Serialize;

/// Public parameters every aggregator needs.
pub(crate) struct Ctx {
    pub k: u32,
    pub fp: FixedPoint,
    pub partition_delta: Delta,
    pub min_group_size: u64,
}

/// What one output will do, before any data: for `query check` and reviews.
#[derive(Debug, Clone, Serialize)]
pub struct OutputPlan {
    pub name: String,
    pub class: &'static str,
    /// What is computed, in one sentence.
    pub computes: String,
    pub epsilon: String,
    pub noise: Vec<NoiseTerm>,
    /// For outputs over groups found in the data: the noisy row count a group needs.
    pub selection_threshold: Option<i64>,
    /// Expected 95% error of each released value (half-width, value units) at each group
    /// size the provider expects; `None` where it is not a function of the group size alone.
    pub ci95_at: Vec<(u64, Option<f64>)>,
}

pub(crate) enum Aggregator {
    Groups(groups::Groups),
    Bins(bins::Bins),
    Quantiles(quantiles::Quantiles),
    Covariance(covariance::Covariance),
}

impl Aggregator {
    pub(crate) fn new(
        o: &OutputSpec,
        sources: Vec<Source>,
        model_outputs: &[String],
        keys: Keys,
        ctx: &Ctx,
    ) -> Result<Self, ReleaseError> {
        let head = Head::new(o)?;
        let bad = |e: ReleaseError| match e {
            ReleaseError::BadQuery(why) => ReleaseError::BadOutput { output: o.name().into(), why },
            ReleaseError::Dp(d) => ReleaseError::BadOutput { output: o.name().into(), why: d.to_string() },
            other => other,
        };
        let labels: Vec<String> = sources.iter().map(|s| s.label(model_outputs)).collect();
        match o {
            OutputSpec::Count { .. }
            | OutputSpec::Sum { .. }
            | OutputSpec::Mean { .. }
            | OutputSpec::Variance { .. } => {
                groups::Groups::new(head, o, sources.into_iter().next(), keys, ctx).map(Aggregator::Groups)
            }
            OutputSpec::Histogram { .. }
            | OutputSpec::ConfusionMatrix { .. }
            | OutputSpec::Calibration { .. }
            | OutputSpec::Auc { .. } => bins::Bins::new(head, o, sources.into_iter().next(), ctx).map(Aggregator::Bins),
            OutputSpec::Quantiles { .. } => {
                quantiles::Quantiles::new(head, o, sources.into_iter().next(), ctx).map(Aggregator::Quantiles)
            }
            OutputSpec::Covariance { .. } => {
                covariance::Covariance::new(head, o, sources, labels, ctx).map(Aggregator::Covariance)
            }
        }
        .map_err(bad)
    }

    pub(crate) fn absorb(&mut self, u: &UnitView<'_>) {
        match self {
            Aggregator::Groups(a) => a.absorb(u),
            Aggregator::Bins(a) => a.absorb(u),
            Aggregator::Quantiles(a) => a.absorb(u),
            Aggregator::Covariance(a) => a.absorb(u),
        }
    }

    pub(crate) fn exact(&self) -> crate::partial::OutputAggregate {
        match self {
            Aggregator::Groups(a) => a.exact(),
            Aggregator::Bins(a) => a.exact(),
            Aggregator::Quantiles(a) => a.exact(),
            Aggregator::Covariance(a) => a.exact(),
        }
    }

    /// Check `p` against this output and add it (see [`crate::partial`]).
    pub(crate) fn merge(
        &mut self,
        p: &crate::partial::OutputAggregate,
        units: u64,
        k: u32,
    ) -> Result<(), crate::partial::MergeError> {
        match self {
            Aggregator::Groups(a) => a.merge(p, units, k),
            Aggregator::Bins(a) => a.merge(p, units, k),
            Aggregator::Quantiles(a) => a.merge(p, units, k),
            Aggregator::Covariance(a) => a.merge(p, units, k),
        }
    }

    pub(crate) fn finish(self, mode: &mut Mode<'_>) -> Result<OutputRelease, ReleaseError> {
        match self {
            Aggregator::Groups(a) => a.finish(mode),
            Aggregator::Bins(a) => a.finish(mode),
            Aggregator::Quantiles(a) => a.finish(mode),
            Aggregator::Covariance(a) => a.finish(mode),
        }
    }

    pub(crate) fn plan(&self, group_sizes: &[u64]) -> OutputPlan {
        let (head, terms, threshold, computes, at): (&Head, Vec<NoiseTerm>, Option<i64>, String, Vec<_>) = match self {
            Aggregator::Groups(a) => (
                &a.head,
                a.terms(),
                a.selection_threshold(),
                a.computes(),
                group_sizes.iter().map(|&n| (n, a.ci95_at(n))).collect(),
            ),
            Aggregator::Bins(a) => {
                (&a.head, a.terms(), None, a.computes(), group_sizes.iter().map(|&n| (n, a.ci95_at(n))).collect())
            }
            Aggregator::Quantiles(a) => {
                (&a.head, a.terms(), None, a.computes(), group_sizes.iter().map(|&n| (n, a.ci95_at(n))).collect())
            }
            Aggregator::Covariance(a) => {
                (&a.head, a.terms(), None, a.computes(), group_sizes.iter().map(|&n| (n, a.ci95_at(n))).collect())
            }
        };
        OutputPlan {
            name: head.name.clone(),
            class: head.class,
            computes,
            epsilon: head.epsilon.to_string(),
            noise: terms,
            selection_threshold: threshold,
            ci95_at: at,
        }
    }
}

/// What every output release repeats.
pub(crate) struct Head {
    pub name: String,
    pub class: &'static str,
    pub epsilon: Epsilon,
    pub noise: protocol::job::Noise,
    /// What the enclave's release draws from, named by `dp`'s enum.
    pub mechanism: dp::Mechanism,
}

impl Head {
    fn new(o: &OutputSpec) -> Result<Head, ReleaseError> {
        Ok(Head {
            name: o.name().into(),
            class: o.class().as_str(),
            epsilon: crate::parse_epsilon(o.epsilon())?,
            noise: o.noise(),
            mechanism: match (o, o.noise()) {
                (OutputSpec::Quantiles { .. }, _) => dp::Mechanism::PermuteAndFlip,
                (_, protocol::job::Noise::Laplace) => dp::Mechanism::DiscreteLaplace,
                (_, protocol::job::Noise::Gaussian) => dp::Mechanism::DiscreteGaussian,
            },
        })
    }

    /// ε·share, exactly.
    pub(crate) fn share(&self, share: &Rational) -> Result<Epsilon, ReleaseError> {
        Ok(Epsilon::try_from(self.epsilon.as_rational().checked_mul(share)?)?)
    }

    /// One of the output's noise terms, given `share` of its budget: ε·share of discrete
    /// Laplace, or ρ·share of discrete Gaussian (ρ = ε²/2). The shares of an output sum to
    /// one, so its terms compose to exactly what the output is charged: ε by basic
    /// composition, ρ by zCDP composition. (Splitting ε before squaring would spend only
    /// Σ shareᵢ² of ρ.)
    pub(crate) fn term(&self, on: &str, share: &Rational, sensitivity: u64) -> Result<Term, ReleaseError> {
        match self.noise {
            protocol::job::Noise::Laplace => Term::laplace(on, &self.share(share)?, sensitivity),
            protocol::job::Noise::Gaussian => {
                let rho = crate::noise::gaussian_rho(&self.epsilon)?;
                let part = dp::Rho::try_from(rho.as_rational().checked_mul(share)?)?;
                Term::gaussian(on, &part, sensitivity)
            }
        }
    }

    pub(crate) fn release(
        &self,
        mode: &Mode<'_>,
        terms: Vec<NoiseTerm>,
        delta: Option<&Delta>,
        values: Vec<ReleasedValue>,
        note: String,
    ) -> OutputRelease {
        let dp = mode.is_dp();
        let join = |f: &dyn Fn(&NoiseTerm) -> String| terms.iter().map(f).collect::<Vec<_>>().join(", ");
        OutputRelease {
            name: self.name.clone(),
            class: self.class.into(),
            mechanism: if dp { self.mechanism.as_str() } else { crate::noise::EXACT_MECHANISM }.into(),
            epsilon: Decimal::from(self.epsilon),
            delta: if dp { delta.map(|d| Decimal::from(*d)) } else { None },
            sensitivity: join(&|t| format!("{}: {}", t.on, t.sensitivity)),
            noise_scale: if dp { join(&|t| format!("{}: {}", t.on, t.scale)) } else { "0".into() },
            fixed_point_resolution: Some(crate::FIXED_POINT_RESOLUTION as u64),
            values,
            noise: if dp { terms } else { Vec::new() },
            note,
        }
    }
}

/// A released value with its interval.
pub(crate) fn value(key: &str, stat: &str, v: f64, ci95: Option<[f64; 2]>) -> ReleasedValue {
    ReleasedValue { key: key.replace(crate::check::KEY_SEP, " | "), stat: stat.into(), value: v, ci95 }
}

/// A count that noise may have made negative, shown as 0, with its interval clipped at 0.
pub(crate) fn count_value(key: &str, stat: &str, noisy: i64, term: &Term, mode: &Mode<'_>) -> ReleasedValue {
    let ci = mode.is_dp().then(|| {
        let [lo, hi] = term.interval(noisy);
        [lo.max(0.0), hi.max(0.0)]
    });
    value(key, stat, noisy.max(0) as f64, ci)
}

/// The public descriptions of noise terms.
pub(crate) fn describe(terms: &[&Term]) -> Vec<NoiseTerm> {
    terms.iter().map(|t| t.describe()).collect()
}

/// Rational from a decimal text such as "0.25".
pub(crate) fn rational(d: &str) -> Result<Rational, ReleaseError> {
    Ok(d.parse::<Rational>()?)
}

#[cfg(test)]
mod tests;
