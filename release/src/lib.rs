//! From per-row model outputs to what may leave the enclave.
//!
//! The sandbox turns every row into one score. This crate, which does no I/O, then
//! 1. keeps at most `max_rows_per_unit` rows per privacy unit (chosen at random),
//! 2. clamps each score to the bounds the query declares,
//! 3. aggregates in fixed-point integers,
//! 4. adds exact discrete Laplace noise with a scale derived from those bounds, and
//! 5. releases a group only if its noisy count passes DP partition selection and the
//!    policy's minimum group size.
//!
//! The same aggregation runs in [`Mode::Exact`] on the owner's own machine, so the owner
//! can compare the DP release with the true values; that mode is never used in the enclave.

use dp::{Delta, Epsilon, FixedPoint, RowBounder};
use protocol::job::{OutputSpec, QuerySpec};
use protocol::policy::{Decimal, Policy};
use protocol::result::{OutputRelease, ReleasedValue};
use protocol::table::{ColumnData, RecordBatch, TOKEN_LEN};
use rand_core::{CryptoRng, RngCore};
use std::collections::{BTreeMap, HashMap};

/// Fixed-point resolution of sums: 1.0 is 10,000 units.
pub const FIXED_POINT_RESOLUTION: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("column {0:?} is not in the dataset")]
    MissingColumn(String),
    #[error("column {column:?} must be {expected}, found {found}")]
    ColumnType { column: String, expected: &'static str, found: &'static str },
    #[error("label column {column:?} holds {value} at row {row}; labels must be 0 or 1")]
    BadLabel { column: String, row: usize, value: i64 },
    #[error("the model returned {got} scores for a batch of {rows} rows")]
    ScoreCount { rows: usize, got: usize },
    #[error("the model returned a non-finite score at row {row}")]
    NonFiniteScore { row: usize },
    #[error("invalid ε {value:?}: {why}")]
    BadEpsilon { value: String, why: String },
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("output {output:?}: {why}")]
    BadOutput { output: String, why: String },
    #[error("rows are not sorted by privacy unit (the policy says they are): the stream is refused")]
    NotSortedByUnit,
    #[error("DP mechanism: {0}")]
    Dp(#[from] dp::DpError),
}

/// Per-row values the outputs need besides the score: a group id or a label.
#[derive(Clone)]
struct Row {
    score: f64,
    extras: Box<[u32]>,
}

/// Interns group keys across batches (dictionary codes are per batch).
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    keys: Vec<String>,
}

impl Interner {
    fn id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(key.to_string());
        self.ids.insert(key.to_string(), id);
        id
    }
}

pub fn parse_epsilon(d: &Decimal) -> Result<Epsilon, ReleaseError> {
    d.as_str().parse().map_err(|e: dp::DpError| ReleaseError::BadEpsilon { value: d.to_string(), why: e.to_string() })
}

pub fn parse_delta(d: &Decimal) -> Result<Delta, ReleaseError> {
    d.as_str().parse().map_err(|e: dp::DpError| ReleaseError::BadEpsilon { value: d.to_string(), why: e.to_string() })
}

/// Total ε a query asks for (basic composition over its outputs).
pub fn query_epsilon(spec: &QuerySpec) -> Result<Epsilon, ReleaseError> {
    let mut total: Option<Epsilon> = None;
    for o in &spec.outputs {
        let e = parse_epsilon(o.epsilon())?;
        total = Some(match total {
            None => e,
            Some(t) => t.checked_add(&e)?,
        });
    }
    total.ok_or_else(|| ReleaseError::BadEpsilon { value: String::new(), why: "query has no outputs".into() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub rows_read: u64,
    pub units: u64,
    pub rows_dropped_by_bounding: u64,
}

/// Streaming accumulator for one job.
pub struct Accumulator {
    spec: QuerySpec,
    unit_column: String,
    max_rows_per_unit: u32,
    bounding: Bounding,
    groups: Vec<Interner>,
    aggs: Vec<Agg>,
    fixed: FixedPoint,
    rows_read: u64,
    units: u64,
    rows_dropped: u64,
}

/// How rows are bounded per privacy unit.
enum Bounding {
    /// Rows arrive in any order: keep a reservoir per unit until the end (memory grows
    /// with the number of units).
    InMemory(RowBounder<[u8; TOKEN_LEN], Row>),
    /// Rows arrive sorted by unit (the owner sealed them so): one reservoir at a time,
    /// flushed into the aggregates when the unit changes (memory independent of the table).
    Sorted(SortedBounder),
}

/// Per-unit reservoir sampling over a stream sorted by unit.
struct SortedBounder {
    k: usize,
    rng: dp::DpRng,
    current: Option<[u8; TOKEN_LEN]>,
    seen: u64,
    kept: Vec<Row>,
}

impl SortedBounder {
    /// Offer one row; returns the finished previous unit's kept rows when the unit changes.
    fn offer(&mut self, unit: [u8; TOKEN_LEN], row: Row) -> Result<Option<(Vec<Row>, u64)>, ReleaseError> {
        let mut done = None;
        match self.current {
            Some(c) if unit < c => return Err(ReleaseError::NotSortedByUnit),
            Some(c) if unit == c => {}
            _ => {
                done = self.take();
                self.current = Some(unit);
            }
        }
        self.seen += 1;
        if self.kept.len() < self.k {
            self.kept.push(row);
        } else {
            // Reservoir sampling: keep each of the unit's rows with probability k/seen.
            let j = dp::sampler::uniform_below(u128::from(self.seen), &mut self.rng) as usize;
            if j < self.k {
                self.kept[j] = row;
            }
        }
        Ok(done)
    }

    /// The current unit's kept rows and how many of its rows were seen.
    fn take(&mut self) -> Option<(Vec<Row>, u64)> {
        self.current?;
        let seen = std::mem::take(&mut self.seen);
        Some((std::mem::take(&mut self.kept), seen))
    }
}

/// Running aggregate of one output over bounded rows.
enum Agg {
    GroupMean {
        lower: f64,
        upper: f64,
        /// Sums are of `value − centre` (see [`centred_sum_bound`]).
        centre: i64,
        counts: BTreeMap<u32, u64>,
        sums: BTreeMap<u32, i64>,
    },
    Histogram {
        edges: Vec<f64>,
        counts: Vec<u64>,
    },
    /// Negatives' bins then positives' bins.
    Auc {
        bins: usize,
        counts: Vec<u64>,
    },
}

impl Agg {
    fn new(spec: &OutputSpec, fp: &FixedPoint) -> Result<Agg, ReleaseError> {
        Ok(match spec {
            OutputSpec::GroupMean { lower, upper, .. } => Agg::GroupMean {
                lower: *lower,
                upper: *upper,
                centre: centred_sum_bound(fp, *lower, *upper, 1)?.0,
                counts: BTreeMap::new(),
                sums: BTreeMap::new(),
            },
            OutputSpec::Histogram { edges, .. } => {
                Agg::Histogram { edges: edges.clone(), counts: vec![0; edges.len() - 1] }
            }
            OutputSpec::Auc { bins, .. } => Agg::Auc { bins: *bins as usize, counts: vec![0; 2 * *bins as usize] },
        })
    }

    fn absorb(&mut self, fp: &FixedPoint, row: &Row, slot: usize) -> Result<(), ReleaseError> {
        match self {
            Agg::GroupMean { lower, upper, centre, counts, sums } => {
                let g = row.extras[slot];
                *counts.entry(g).or_default() += 1;
                let v = fp.encode(row.score, *lower, *upper)? - *centre;
                let s = sums.entry(g).or_default();
                *s = s.checked_add(v).ok_or(dp::DpError::Overflow("group sum"))?;
            }
            Agg::Histogram { edges, counts } => counts[bin_of(edges, row.score)] += 1,
            Agg::Auc { bins, counts } => {
                let b = ((row.score.clamp(0.0, 1.0) * *bins as f64) as usize).min(*bins - 1);
                counts[row.extras[slot] as usize * *bins + b] += 1;
            }
        }
        Ok(())
    }
}

/// Whether to add noise (in the enclave) or compute true values (owner's own check).
pub enum Mode<'a, R: RngCore + CryptoRng> {
    Dp { rng: &'a mut R, min_group_size: u64, partition_delta: Delta },
    Exact { min_group_size: u64 },
}

impl Accumulator {
    /// `bounding_seed` drives which rows are kept for units over the limit.
    ///
    /// Every parameter of every output (ε, bounds, bins, the noise scales they imply) is
    /// checked here, so a bad query fails before any data is read, any noise is drawn or
    /// any budget is spent; `finish` then cannot fail on a parameter after an earlier
    /// output has already drawn its noise.
    pub fn new(spec: &QuerySpec, policy: &Policy, bounding_seed: [u8; 32]) -> Result<Self, ReleaseError> {
        check_query(spec, policy)?;
        let fixed = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
        let bounding = if policy.rows_sorted_by_unit {
            Bounding::Sorted(SortedBounder {
                k: policy.max_rows_per_unit as usize,
                rng: dp::seeded_rng(bounding_seed),
                current: None,
                seen: 0,
                kept: Vec::new(),
            })
        } else {
            Bounding::InMemory(RowBounder::new(policy.max_rows_per_unit, bounding_seed)?)
        };
        Ok(Accumulator {
            spec: spec.clone(),
            unit_column: policy.privacy_unit.clone(),
            max_rows_per_unit: policy.max_rows_per_unit,
            bounding,
            groups: spec.outputs.iter().map(|_| Interner::default()).collect(),
            aggs: spec.outputs.iter().map(|o| Agg::new(o, &fixed)).collect::<Result<_, _>>()?,
            fixed,
            rows_read: 0,
            units: 0,
            rows_dropped: 0,
        })
    }

    /// Check that every column the query names exists in `batch` with the type its output
    /// needs: the privacy unit (token), group-by columns (dictionary), labels (i64) and the
    /// module's inputs. Schemas are public (the manifest), so the enclave runs this on the
    /// first decrypted batch before the module sees any data and before the grant is spent:
    /// a query on an undeclared column costs nothing.
    pub fn check_schema(&self, batch: &RecordBatch) -> Result<(), ReleaseError> {
        let want = |name: &str, expected: &'static str| -> Result<(), ReleaseError> {
            let c = column(batch, name)?;
            let found = c.type_name();
            let ok = match expected {
                "token" => matches!(c, ColumnData::Token(_)),
                "dict" => matches!(c, ColumnData::Dict { .. }),
                "i64" => matches!(c, ColumnData::I64(_)),
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err(ReleaseError::ColumnType { column: name.to_string(), expected, found })
            }
        };
        want(&self.unit_column, "token")?;
        for o in &self.spec.outputs {
            match o {
                OutputSpec::GroupMean { group_by, .. } => want(group_by, "dict")?,
                OutputSpec::Auc { label, .. } => want(label, "i64")?,
                OutputSpec::Histogram { .. } => {}
            }
        }
        for input in &self.spec.inputs {
            want(input, "any")?;
        }
        Ok(())
    }

    /// Add one decrypted batch and the model's score for each of its rows.
    pub fn add_batch(&mut self, batch: &RecordBatch, scores: &[f64]) -> Result<(), ReleaseError> {
        if scores.len() != batch.rows {
            return Err(ReleaseError::ScoreCount { rows: batch.rows, got: scores.len() });
        }
        let units = match column(batch, &self.unit_column)? {
            ColumnData::Token(t) => t,
            other => {
                return Err(ReleaseError::ColumnType {
                    column: self.unit_column.clone(),
                    expected: "token",
                    found: other.type_name(),
                })
            }
        };
        // Per output, the extra value of each row.
        let mut extras: Vec<Vec<u32>> = Vec::with_capacity(self.spec.outputs.len());
        for (i, out) in self.spec.outputs.iter().enumerate() {
            extras.push(match out {
                OutputSpec::GroupMean { group_by, .. } => match column(batch, group_by)? {
                    ColumnData::Dict { codes, values } => {
                        let map: Vec<u32> = values.iter().map(|v| self.groups[i].id(v)).collect();
                        codes.iter().map(|&c| map[c as usize]).collect()
                    }
                    other => {
                        return Err(ReleaseError::ColumnType {
                            column: group_by.clone(),
                            expected: "dict",
                            found: other.type_name(),
                        })
                    }
                },
                OutputSpec::Auc { label, .. } => match column(batch, label)? {
                    ColumnData::I64(v) => v
                        .iter()
                        .enumerate()
                        .map(|(row, &x)| match x {
                            0 | 1 => Ok(x as u32),
                            value => Err(ReleaseError::BadLabel { column: label.clone(), row, value }),
                        })
                        .collect::<Result<_, _>>()?,
                    other => {
                        return Err(ReleaseError::ColumnType {
                            column: label.clone(),
                            expected: "i64",
                            found: other.type_name(),
                        })
                    }
                },
                OutputSpec::Histogram { .. } => vec![0; batch.rows],
            });
        }
        for (row, (&unit, &score)) in units.iter().zip(scores).enumerate() {
            if !score.is_finite() {
                return Err(ReleaseError::NonFiniteScore { row });
            }
            let e: Box<[u32]> = extras.iter().map(|col| col[row]).collect();
            let row = Row { score, extras: e };
            match &mut self.bounding {
                Bounding::InMemory(b) => b.offer(unit, row),
                Bounding::Sorted(b) => {
                    if let Some((kept, seen)) = b.offer(unit, row)? {
                        self.absorb_unit(kept, seen)?;
                    }
                }
            }
        }
        self.rows_read += batch.rows as u64;
        Ok(())
    }

    /// Add one unit's bounded rows to every output's aggregate. `seen` is how many rows
    /// the unit had (0 from the in-memory bounder, which reports drops in its own stats).
    fn absorb_unit(&mut self, rows: Vec<Row>, seen: u64) -> Result<(), ReleaseError> {
        self.units += 1;
        self.rows_dropped += seen.saturating_sub(rows.len() as u64);
        for row in &rows {
            for (slot, agg) in self.aggs.iter_mut().enumerate() {
                agg.absorb(&self.fixed, row, slot)?;
            }
        }
        Ok(())
    }

    /// Finish: bound contributions, aggregate, and release (or compute exactly).
    pub fn finish<R: RngCore + CryptoRng>(
        mut self,
        mut mode: Mode<'_, R>,
    ) -> Result<(Vec<OutputRelease>, Stats), ReleaseError> {
        // Flush what the bounder still holds into the aggregates.
        match std::mem::replace(&mut self.bounding, Bounding::InMemory(RowBounder::new(1, [0; 32])?)) {
            Bounding::InMemory(b) => {
                let (units, stats) = b.finish_with_stats();
                for (_, rows) in units {
                    self.absorb_unit(rows, 0)?;
                }
                self.rows_dropped = stats.rows_dropped;
            }
            Bounding::Sorted(mut b) => {
                if let Some((kept, seen)) = b.take() {
                    self.absorb_unit(kept, seen)?;
                }
            }
        }
        let stats = Stats { rows_read: self.rows_read, units: self.units, rows_dropped_by_bounding: self.rows_dropped };
        let k = self.max_rows_per_unit;
        let mut out = Vec::with_capacity(self.spec.outputs.len());
        for (i, spec) in self.spec.outputs.iter().enumerate() {
            let eps = parse_epsilon(spec.epsilon())?;
            out.push(match (spec, &self.aggs[i]) {
                (OutputSpec::GroupMean { name, lower, upper, .. }, Agg::GroupMean { counts, sums, .. }) => {
                    group_mean(name, counts, sums, &self.groups[i].keys, *lower, *upper, &eps, k, &mut mode)?
                }
                (OutputSpec::Histogram { name, edges, .. }, Agg::Histogram { counts, .. }) => {
                    histogram(name, counts, edges, &eps, k, &mut mode)?
                }
                (OutputSpec::Auc { name, bins, .. }, Agg::Auc { counts, .. }) => {
                    auc(name, counts, *bins as usize, &eps, k, &mut mode)?
                }
                _ => unreachable!("aggregates are built from the same output specs"),
            });
        }
        Ok((out, stats))
    }
}

/// Everything about a query that can be wrong without looking at data, checked before any
/// data is read, any noise is drawn or any budget is touched: the spec's own limits
/// ([`QuerySpec::validate`]: bounds finite with lower < upper, bins and edges within
/// [`protocol::job::MAX_BINS`]), ε of each output (> 0, finite, a decimal or fraction), and
/// the noise scale each output will use (sensitivity ≥ 1 and scale within the sampler's
/// supported range).
pub fn check_query(spec: &QuerySpec, policy: &Policy) -> Result<(), ReleaseError> {
    spec.validate().map_err(|e| ReleaseError::BadQuery(e.to_string()))?;
    let k = policy.max_rows_per_unit;
    if k == 0 {
        return Err(dp::DpError::ZeroBound("max_rows_per_unit").into());
    }
    let max_scale = dp::Rational::from_integer(dp::sampler::MAX_SCALE);
    let fits = |name: &str, what: &str, l1: u64, eps: &Epsilon| -> Result<(), ReleaseError> {
        let scale = dp::mechanism::laplace_scale(l1, eps)?;
        if scale > max_scale {
            return Err(ReleaseError::BadOutput {
                output: name.to_string(),
                why: format!(
                    "{what} noise scale {scale} exceeds the supported maximum of 10^15: raise ε or narrow the bounds"
                ),
            });
        }
        Ok(())
    };
    for o in &spec.outputs {
        let eps = parse_epsilon(o.epsilon())?;
        match o {
            OutputSpec::GroupMean { name, lower, upper, .. } => {
                let half = eps.checked_div_int(2)?;
                let fp = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
                let (_, sum_bound) = centred_sum_bound(&fp, *lower, *upper, k).map_err(|e| {
                    ReleaseError::BadOutput { output: name.clone(), why: format!("bounds [{lower}, {upper}]: {e}") }
                })?;
                if sum_bound == 0 {
                    return Err(ReleaseError::BadOutput {
                        output: name.clone(),
                        why: format!("bounds [{lower}, {upper}] round to 0 at the fixed-point resolution 1/{FIXED_POINT_RESOLUTION}"),
                    });
                }
                fits(name, "count", u64::from(k), &half)?;
                fits(name, "sum", sum_bound, &half)?;
                // the partition-selection threshold must be computable too
                let delta = parse_delta(&policy.partition_delta)?;
                dp::mechanism::group_counts_with_selection(
                    BTreeMap::<u32, u64>::new(),
                    &half,
                    &delta,
                    policy.min_group_size,
                    k,
                    &mut NoRng,
                )?;
            }
            OutputSpec::Histogram { name, .. } | OutputSpec::Auc { name, .. } => {
                fits(name, "count", u64::from(k), &eps)?
            }
        }
    }
    Ok(())
}

/// A generator that must never be used: proof that a check draws no noise.
struct NoRng;

impl RngCore for NoRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!("parameter checks draw no noise")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("parameter checks draw no noise")
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        unreachable!("parameter checks draw no noise")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), rand_core::Error> {
        unreachable!("parameter checks draw no noise")
    }
}
impl CryptoRng for NoRng {}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ColumnData, ReleaseError> {
    batch.column(name).ok_or_else(|| ReleaseError::MissingColumn(name.to_string()))
}

fn mechanism_name<R: RngCore + CryptoRng>(mode: &Mode<'_, R>) -> &'static str {
    match mode {
        Mode::Dp { .. } => "discrete_laplace",
        Mode::Exact { .. } => "none (owner's exact check, not DP)",
    }
}

/// Noisy (or exact) counts of a histogram with L1 sensitivity `l1`.
fn noisy_counts<R: RngCore + CryptoRng>(
    counts: &[u64],
    eps: &Epsilon,
    l1: u64,
    mode: &mut Mode<'_, R>,
) -> Result<(Vec<i64>, String), ReleaseError> {
    match mode {
        Mode::Dp { rng, .. } => {
            let rel = dp::mechanism::laplace_histogram(counts, eps, l1, &mut **rng)?;
            let scale = rel.first().map(|r| r.scale.to_string()).unwrap_or_default();
            Ok((rel.into_iter().map(|r| r.value).collect(), scale))
        }
        Mode::Exact { .. } => Ok((counts.iter().map(|&c| c as i64).collect(), "0".into())),
    }
}

#[allow(clippy::too_many_arguments)]
fn group_mean<R: RngCore + CryptoRng>(
    name: &str,
    counts: &BTreeMap<u32, u64>,
    sums: &BTreeMap<u32, i64>,
    keys: &[String],
    lower: f64,
    upper: f64,
    eps: &Epsilon,
    k: u32,
    mode: &mut Mode<'_, R>,
) -> Result<OutputRelease, ReleaseError> {
    let fp = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
    let total_groups = counts.len() as u64;
    // Half the budget selects groups and counts them, half noises their sums.
    let half = eps.checked_div_int(2)?;
    let (centre, sum_bound) = centred_sum_bound(&fp, lower, upper, k)?;
    let mut values = Vec::new();
    let (sensitivity, scale);
    match mode {
        Mode::Dp { rng, min_group_size, partition_delta } => {
            let selected = dp::mechanism::group_counts_with_selection(
                counts.clone(),
                &half,
                partition_delta,
                *min_group_size,
                k,
                &mut **rng,
            )?;
            let count_scale = dp::mechanism::laplace_scale(u64::from(k), &half)?;
            let sum_scale = dp::mechanism::laplace_scale(sum_bound, &half)?;
            for (g, count) in &selected {
                let noisy_sum = dp::mechanism::laplace_sum(sums[g], &half, sum_bound, &mut **rng)?;
                let mean = fp.decode(centre) + fp.decode(noisy_sum.value) / (count.value.max(1) as f64);
                values.push(ReleasedValue { key: keys[*g as usize].clone(), value: mean.clamp(lower, upper) });
            }
            sensitivity = format!("count: {k}, centred sum: {sum_bound} fixed-point units");
            scale = format!("count: {count_scale}, sum: {sum_scale}");
        }
        Mode::Exact { min_group_size } => {
            for (g, &c) in counts {
                if c >= *min_group_size {
                    values.push(ReleasedValue {
                        key: keys[*g as usize].clone(),
                        value: fp.decode(centre) + fp.decode(sums[g]) / c as f64,
                    });
                }
            }
            sensitivity = format!("count: {k}, centred sum: {sum_bound} fixed-point units");
            scale = "0".into();
        }
    }
    let suppressed = total_groups - values.len() as u64;
    Ok(OutputRelease {
        name: name.into(),
        class: "group_mean".into(),
        mechanism: mechanism_name(mode).into(),
        epsilon: Decimal(eps.to_string()),
        sensitivity,
        noise_scale: scale,
        fixed_point_resolution: Some(FIXED_POINT_RESOLUTION as u64),
        values,
        suppressed_groups: suppressed,
        note: "ε split evenly between DP partition selection with noisy counts and the noisy sums \
               (centred on the middle of the bounds); \
               mean = noisy sum / noisy count, clamped to the declared bounds"
            .into(),
    })
}

/// Sums are aggregated centred on the middle of the declared bounds: a unit then moves a
/// group's sum by at most `k · (upper − lower) / 2` instead of `k · max(|lower|, |upper|)`,
/// which halves the noise for bounds like [0, 1]. Returns (centre, per-unit bound), both in
/// fixed-point units; the bound is derived here, never taken from a user.
fn centred_sum_bound(fp: &FixedPoint, lower: f64, upper: f64, k: u32) -> Result<(i64, u64), ReleaseError> {
    let (lo, hi) = fp.encode_bounds(lower, upper)?;
    let centre = lo + (hi - lo) / 2;
    let half_range = (hi - centre).unsigned_abs().max((centre - lo).unsigned_abs());
    let bound = half_range.checked_mul(u64::from(k)).ok_or(dp::DpError::Overflow("per-unit sum bound"))?;
    Ok((centre, bound))
}

fn bin_of(edges: &[f64], score: f64) -> usize {
    let bins = edges.len() - 1;
    // Scores outside the declared range go to the nearest end bin (clamping).
    edges[1..bins].iter().take_while(|&&e| score >= e).count()
}

fn histogram<R: RngCore + CryptoRng>(
    name: &str,
    counts: &[u64],
    edges: &[f64],
    eps: &Epsilon,
    k: u32,
    mode: &mut Mode<'_, R>,
) -> Result<OutputRelease, ReleaseError> {
    let (noisy, scale) = noisy_counts(counts, eps, u64::from(k), mode)?;
    let values = noisy
        .iter()
        .enumerate()
        .map(|(i, &v)| ReleasedValue { key: format!("[{}, {})", edges[i], edges[i + 1]), value: v.max(0) as f64 })
        .collect();
    Ok(OutputRelease {
        name: name.into(),
        class: "histogram".into(),
        mechanism: mechanism_name(mode).into(),
        epsilon: Decimal(eps.to_string()),
        sensitivity: format!("{k}"),
        noise_scale: scale,
        fixed_point_resolution: None,
        values,
        suppressed_groups: 0,
        note: "counts of bounded rows per declared bin; negative noisy counts shown as 0".into(),
    })
}

fn auc<R: RngCore + CryptoRng>(
    name: &str,
    counts: &[u64],
    bins: usize,
    eps: &Epsilon,
    k: u32,
    mode: &mut Mode<'_, R>,
) -> Result<OutputRelease, ReleaseError> {
    // One histogram of 2·bins cells: negatives then positives. A row lands in exactly one
    // cell, so a unit moves the whole vector by at most k in L1.
    let (noisy, scale) = noisy_counts(counts, eps, u64::from(k), mode)?;
    let clamp: Vec<f64> = noisy.iter().map(|&v| v.max(0) as f64).collect();
    let (neg, pos) = clamp.split_at(bins);
    let (n, p): (f64, f64) = (neg.iter().sum(), pos.iter().sum());
    let mut below = 0.0;
    let mut wins = 0.0;
    for b in 0..bins {
        wins += pos[b] * (below + 0.5 * neg[b]);
        below += neg[b];
    }
    let (value, note) = if n > 0.0 && p > 0.0 {
        (wins / (n * p), "AUC from noisy per-label score histograms (ties within a bin count one half)")
    } else {
        (0.5, "AUC undefined: a label class is empty after noise; reported as 0.5")
    };
    Ok(OutputRelease {
        name: name.into(),
        class: "auc".into(),
        mechanism: mechanism_name(mode).into(),
        epsilon: Decimal(eps.to_string()),
        sensitivity: format!("{k}"),
        noise_scale: scale,
        fixed_point_resolution: None,
        values: vec![ReleasedValue { key: "auc".into(), value }],
        suppressed_groups: 0,
        note: note.into(),
    })
}

#[cfg(test)]
mod tests;
