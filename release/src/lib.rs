//! From one privacy unit's scored rows to what may leave the enclave.
//!
//! The enclave hands this crate, which does no I/O, a stream of decrypted batches sorted by
//! privacy unit. This crate
//! 1. assembles each unit's rows and keeps at most `max_rows_per_unit` of them, chosen at
//!    random ([`UnitAssembler`]); the sandbox then scores that one unit in a fresh instance;
//! 2. absorbs the unit's model outputs ([`Accumulator::add_unit`]): a unit whose outputs are
//!    not `m` finite numbers per row, or whose label is outside {0, 1}, is absent, exactly
//!    as if it were not in the table; a null only removes a row from an output (a null
//!    group key or value) or a unit from a labelled output (a null label);
//! 3. clamps each value to the bounds the query declares and aggregates in fixed-point
//!    integers that cannot overflow (i128, clamped to the sampler's range, 1-Lipschitz);
//! 4. adds exact discrete Laplace or Gaussian noise with a scale derived from those bounds
//!    ([`noise`]), one aggregator per output class ([`classes`]); and
//! 5. releases a group only if its key is in a public domain or its noisy count passes DP
//!    partition selection, and its noisy count reaches the policy's minimum group size.
//!
//! The only value that leaves is a [`DpRelease`], which nothing outside this crate can
//! build. The same aggregation runs exactly ([`Accumulator::finish_exact`]) on the owner's
//! own machine, so the owner can compare; that path is never used in the enclave.

use dp::{Delta, Epsilon, FixedPoint};
use protocol::job::QuerySpec;
use protocol::policy::{ColumnRole, Decimal, Policy};
use protocol::result::OutputRelease;
use protocol::table::{ColumnData, RecordBatch};

mod assembler;
mod check;
pub mod classes;
mod cost;
pub mod noise;
pub mod partial;
pub mod training;

pub use assembler::UnitAssembler;
pub use check::{keys_are_public, selected_group_outputs};
pub use cost::{query_cost, Cost};
pub use noise::Rng;
pub use partial::{ExactAggregates, MergeError};

use check::Source;
use noise::Mode;

/// Fixed-point resolution of sums: 1.0 is 10,000 units.
pub const FIXED_POINT_RESOLUTION: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error("column {0:?} is not in the dataset")]
    MissingColumn(String),
    #[error("column {column:?} must be {expected}, found {found}")]
    ColumnType { column: String, expected: &'static str, found: &'static str },
    #[error("invalid ε {value:?}: {why}")]
    BadEpsilon { value: String, why: String },
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("invalid query: {0}")]
    Spec(#[from] protocol::job::FieldError),
    #[error("output {output:?}: {why}")]
    BadOutput { output: String, why: String },
    #[error("output {output:?}: of: the module has no output {name:?} (it declares: {available})")]
    UnknownModelOutput { output: String, name: String, available: String },
    #[error("rows are not sorted by privacy unit: the stream is refused")]
    NotSortedByUnit,
    #[error("DP mechanism: {0}")]
    Dp(#[from] dp::DpError),
    #[error("training: {0}")]
    Training(String),
}

pub fn parse_epsilon(d: &Decimal) -> Result<Epsilon, ReleaseError> {
    d.as_str().parse().map_err(|e: dp::DpError| ReleaseError::BadEpsilon { value: d.to_string(), why: e.to_string() })
}

pub fn parse_delta(d: &Decimal) -> Result<Delta, ReleaseError> {
    d.as_str().parse().map_err(|e: dp::DpError| ReleaseError::BadEpsilon { value: d.to_string(), why: e.to_string() })
}

/// Total ε a query is charged (see [`query_cost`]).
pub fn query_epsilon(spec: &QuerySpec, policy: &Policy) -> Result<Epsilon, ReleaseError> {
    Ok(query_cost(spec, policy)?.epsilon)
}

/// Total δ a query is charged (see [`query_cost`]).
pub fn query_delta(spec: &QuerySpec, policy: &Policy) -> Result<dp::Rational, ReleaseError> {
    Ok(query_cost(spec, policy)?.delta)
}

/// One unit's rows and model outputs as the aggregators read them. Built only by
/// [`Accumulator::add_unit`] after every column an output reads was checked, so reads
/// cannot fail.
pub struct UnitView<'a> {
    batch: &'a RecordBatch,
    outputs: &'a [f64],
    m: usize,
}

impl UnitView<'_> {
    pub fn rows(&self) -> usize {
        self.batch.rows
    }

    /// The row's value from a model output or a numeric column; `None` when null.
    pub(crate) fn value(&self, s: &Source, row: usize) -> Option<f64> {
        match s {
            Source::Model(i) => self.outputs.get(row * self.m + i).copied(),
            Source::Column(c) if !self.batch.is_valid(c, row) => None,
            Source::Column(c) => match self.batch.column(c)? {
                ColumnData::F64(v) => v.get(row).copied(),
                ColumnData::I64(v) => v.get(row).map(|&x| x as f64),
                _ => None,
            },
        }
    }

    /// The row's group key (several keys joined by [`check::KEY_SEP`]); `None` when any
    /// key is null.
    pub(crate) fn key(&self, columns: &[String], row: usize) -> Option<String> {
        let mut key = String::new();
        for (i, c) in columns.iter().enumerate() {
            if !self.batch.is_valid(c, row) {
                return None;
            }
            let ColumnData::Dict { codes, values } = self.batch.column(c)? else { return None };
            if i > 0 {
                key.push(check::KEY_SEP);
            }
            key.push_str(values.get(*codes.get(row)? as usize)?);
        }
        Some(key)
    }

    /// The unit's 0/1 labels in `column`, or `None` if any is null: a unit whose outcome was
    /// not recorded is absent from that output (it says nothing about the scores).
    pub(crate) fn labels(&self, column: &str) -> Option<&[i64]> {
        if self.batch.validity(column).is_some_and(|v| v.null_count() > 0) {
            return None;
        }
        match self.batch.column(column)? {
            ColumnData::I64(v) => Some(v),
            _ => None,
        }
    }
}

/// Streaming accumulator for one job, fed one unit at a time.
pub struct Accumulator {
    aggs: Vec<classes::Aggregator>,
    /// Outputs per row the module declares.
    m: usize,
    max_rows_per_unit: u32,
    min_group_size: u64,
    /// Every column an output reads, with the type it must have.
    reads: Vec<(String, ColumnRole)>,
    /// Only for the owner's exact check; never part of a DP release.
    units_absorbed: u64,
    units_absent: u64,
}

/// The only thing the enclave may send after a grant is spent, besides `job_failed`: the
/// noised outputs of one job. Built only by [`Accumulator::finish_dp`].
#[derive(Debug, Clone)]
pub struct DpRelease {
    outputs: Vec<OutputRelease>,
}

impl DpRelease {
    pub fn outputs(&self) -> &[OutputRelease] {
        &self.outputs
    }
    pub fn into_outputs(self) -> Vec<OutputRelease> {
        self.outputs
    }
}

/// The owner's exact figures (its own machine only).
#[derive(Debug, Clone, PartialEq)]
pub struct ExactReport {
    pub outputs: Vec<OutputRelease>,
    pub units: u64,
    pub units_absent: u64,
}

/// Everything about a query that can be wrong without looking at data, checked before any
/// data is read, any noise is drawn or any budget is touched: the spec's own limits
/// ([`QuerySpec::validate`]), each ε, the cost, each value source against the module's
/// outputs (when `model_outputs` is given), and every noise scale each output will use.
/// Returns the query's cost (computed once, here), so callers need not compute it again.
pub fn check_query(spec: &QuerySpec, policy: &Policy, model_outputs: Option<&[String]>) -> Result<Cost, ReleaseError> {
    match model_outputs {
        Some(names) => build(spec, policy, names, false),
        None => build(spec, policy, &offline_names(spec), true),
    }
    .map(|(_, cost)| cost)
}

/// Without the module, value sources are checked by name only: every output name a query
/// mentions stands for one the module declares, and an output without `of` is its only one.
fn offline_names(spec: &QuerySpec) -> Vec<String> {
    let mut names = vec!["score".to_string()];
    for v in spec.outputs.iter().flat_map(|o| o.values()).flatten() {
        if let protocol::job::ValueSource::Output(n) = v {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    names
}

fn build(
    spec: &QuerySpec,
    policy: &Policy,
    model_outputs: &[String],
    lenient_default: bool,
) -> Result<(Vec<classes::Aggregator>, Cost), ReleaseError> {
    spec.validate()?;
    if policy.max_rows_per_unit == 0 {
        return Err(dp::DpError::ZeroBound("max_rows_per_unit").into());
    }
    let cost = query_cost(spec, policy)?;
    let ctx = classes::Ctx {
        k: policy.max_rows_per_unit,
        fp: FixedPoint::new(FIXED_POINT_RESOLUTION)?,
        partition_delta: parse_delta(&policy.partition_delta)?,
        min_group_size: policy.min_group_size,
    };
    let aggs = spec
        .outputs
        .iter()
        .map(|o| {
            let sources = match check::sources(o, model_outputs) {
                // Offline checks do not know the module: an output without `of` is fine.
                Err(ReleaseError::BadOutput { .. }) if lenient_default => vec![Source::Model(0)],
                r => r?,
            };
            let keys = check::keys_of(o, policy)?;
            classes::Aggregator::new(o, sources, model_outputs, keys, &ctx)
        })
        .collect::<Result<_, _>>()?;
    Ok((aggs, cost))
}

impl Accumulator {
    /// Every parameter of every output (ε, bounds, bins, value sources against the module's
    /// `model_outputs`, the noise scales they imply) is checked here, so a bad query fails
    /// before any data is read, any noise is drawn or any budget is spent; `finish_dp` then
    /// cannot fail on a parameter.
    pub fn new(spec: &QuerySpec, policy: &Policy, model_outputs: &[String]) -> Result<Self, ReleaseError> {
        let (aggs, _) = build(spec, policy, model_outputs, false)?;
        let reads = spec.column_roles().into_iter().filter(|(_, r)| *r != ColumnRole::Input);
        Ok(Accumulator {
            aggs,
            m: model_outputs.len().max(1),
            max_rows_per_unit: policy.max_rows_per_unit,
            min_group_size: policy.min_group_size,
            reads: reads.map(|(c, r)| (c.to_string(), r)).collect(),
            units_absorbed: 0,
            units_absent: 0,
        })
    }

    /// Add one unit: its (bounded) rows and the module's `m` outputs for each (row-major).
    /// A unit that does not fit (wrong number of outputs, a non-finite output, a label
    /// outside {0, 1}, a missing column or one of the wrong type, more rows than the bound)
    /// is absent: nothing of it is added. Nulls only remove (see the crate docs).
    ///
    /// Returns whether the unit was absorbed: for the owner's exact check and its sealed
    /// diagnostics only, never for anything that leaves.
    pub fn add_unit(&mut self, unit: &RecordBatch, outputs: &[f64]) -> bool {
        let absorbed = self.fits(unit, outputs);
        if absorbed {
            let view = UnitView { batch: unit, outputs, m: self.m };
            for a in &mut self.aggs {
                a.absorb(&view);
            }
            self.units_absorbed += 1;
        } else {
            self.units_absent += 1;
        }
        absorbed
    }

    /// A unit whose scoring faulted (a trap, fuel exhaustion): absent, nothing added.
    pub fn add_absent(&mut self) {
        self.units_absent += 1;
    }

    fn fits(&self, unit: &RecordBatch, outputs: &[f64]) -> bool {
        let rows = unit.rows;
        if Some(outputs.len()) != rows.checked_mul(self.m)
            || rows > self.max_rows_per_unit as usize
            || outputs.iter().any(|s| !s.is_finite())
        {
            return false;
        }
        self.reads.iter().all(|(c, role)| {
            let ok_len = |n: usize| n == rows;
            match (role, unit.column(c)) {
                (ColumnRole::GroupBy, Some(d @ ColumnData::Dict { .. })) => ok_len(d.len()),
                (ColumnRole::Value, Some(d @ (ColumnData::F64(_) | ColumnData::I64(_)))) => ok_len(d.len()),
                (ColumnRole::Label, Some(ColumnData::I64(v))) => {
                    // A label outside {0, 1} breaks the manifest's domain: the unit is absent
                    // from every output (a null is not a value: its slot is ignored).
                    ok_len(v.len()) && v.iter().enumerate().all(|(i, &y)| !unit.is_valid(c, i) || y == 0 || y == 1)
                }
                _ => false,
            }
        })
    }

    /// The exact integer aggregates absorbed so far: what a shard sends its coordinator,
    /// over an attested channel only (see [`partial`]). Never part of a release.
    pub fn exact_aggregates(&self) -> ExactAggregates {
        ExactAggregates {
            units_absorbed: self.units_absorbed,
            units_absent: self.units_absent,
            outputs: self.aggs.iter().map(classes::Aggregator::exact).collect(),
        }
    }

    /// Add the exact aggregates of a disjoint set of units, after checking them against
    /// this accumulator's query (shape) and against what their unit count allows (each
    /// absorbed unit gives at most `max_rows_per_unit` rows per output, each value within
    /// the declared bounds). Consumes `self`: on an error nothing is left to finish, so a
    /// half-merged accumulator can never be noised and released.
    pub fn merge(mut self, p: &ExactAggregates) -> Result<Accumulator, MergeError> {
        if p.outputs.len() != self.aggs.len() {
            return Err(MergeError::OutputCount { expected: self.aggs.len(), found: p.outputs.len() });
        }
        p.units().ok_or(MergeError::UnitCount)?;
        for (a, o) in self.aggs.iter_mut().zip(&p.outputs) {
            a.merge(o, p.units_absorbed, self.max_rows_per_unit)?;
        }
        self.units_absorbed = self.units_absorbed.checked_add(p.units_absorbed).ok_or(MergeError::UnitCount)?;
        self.units_absent = self.units_absent.checked_add(p.units_absent).ok_or(MergeError::UnitCount)?;
        Ok(self)
    }

    /// Noise every output. Parameters (and the policy's partition δ and minimum group
    /// size) were fixed by [`Accumulator::new`].
    pub fn finish_dp(self, rng: &mut dyn Rng) -> Result<DpRelease, ReleaseError> {
        let mut mode = Mode::Dp { rng, min_group_size: self.min_group_size };
        let outputs = self.aggs.into_iter().map(|a| a.finish(&mut mode)).collect::<Result<_, _>>()?;
        Ok(DpRelease { outputs })
    }

    /// The owner's exact values on its own machine: no noise, never released.
    pub fn finish_exact(self) -> Result<ExactReport, ReleaseError> {
        let (units, units_absent) = (self.units_absorbed, self.units_absent);
        let mut mode = Mode::Exact { min_group_size: self.min_group_size };
        let outputs = self.aggs.into_iter().map(|a| a.finish(&mut mode)).collect::<Result<_, _>>()?;
        Ok(ExactReport { outputs, units, units_absent })
    }
}

/// Sums are aggregated centred on the middle of the declared bounds: a unit then moves a
/// group's sum by at most `k · (upper − lower) / 2` instead of `k · max(|lower|, |upper|)`,
/// which halves the noise for bounds like [0, 1]. Returns (centre, per-row half range),
/// both in fixed-point units; derived here, never taken from a user.
pub(crate) fn centre_and_half_range(fp: &FixedPoint, lower: f64, upper: f64) -> Result<(i64, u64), ReleaseError> {
    let (lo, hi) = fp.encode_bounds(lower, upper)?;
    let centre = lo + (hi - lo) / 2;
    Ok((centre, (hi - centre).unsigned_abs().max((centre - lo).unsigned_abs())))
}

/// L1 sensitivity, in fixed-point units, of a group's centred sum for values in
/// `[lower, upper]` and `k` rows per unit (what the enclave noises; for plans).
pub fn sum_sensitivity(lower: f64, upper: f64, k: u32) -> Result<u64, ReleaseError> {
    let fp = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
    let (_, h) = centre_and_half_range(&fp, lower, upper)?;
    h.checked_mul(u64::from(k)).ok_or(ReleaseError::Dp(dp::DpError::Overflow("per-unit sum bound")))
}

/// The plan of every output: its mechanism, every noise term and the 95% error at the
/// stated group sizes, as the enclave will use them (built by the same code), for
/// `query check` and the owner's review. `model_outputs`: the module's, when known.
pub fn output_plans(
    spec: &QuerySpec,
    policy: &Policy,
    model_outputs: Option<&[String]>,
    group_sizes: &[u64],
) -> Result<Vec<classes::OutputPlan>, ReleaseError> {
    let (aggs, _) = match model_outputs {
        Some(names) => build(spec, policy, names, false)?,
        None => build(spec, policy, &offline_names(spec), true)?,
    };
    Ok(aggs.iter().map(|a| a.plan(group_sizes)).collect())
}

#[cfg(test)]
mod tests;
