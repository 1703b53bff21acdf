//! From one privacy unit's scored rows to what may leave the enclave.
//!
//! The enclave hands this crate, which does no I/O, a stream of decrypted batches sorted by
//! privacy unit. This crate
//! 1. assembles each unit's rows and keeps at most `max_rows_per_unit` of them, chosen at
//!    random ([`UnitAssembler`]); the sandbox then scores that one unit in a fresh instance;
//! 2. absorbs the unit's scores ([`Accumulator::add_unit`]): a unit whose scores are not one
//!    finite number per row, or whose label is outside {0, 1}, is absent, exactly as if it
//!    were not in the table; a row whose group key is null is in no group, and a unit with
//!    a null label is absent from that AUC only (docs/wasm-abi.md, "Nulls");
//! 3. clamps each score to the bounds the query declares and aggregates in fixed-point
//!    integers that cannot overflow (i128, clamped to the sampler's range, 1-Lipschitz);
//! 4. adds exact discrete Laplace noise with a scale derived from those bounds; and
//! 5. releases a group only if its noisy count passes DP partition selection and the
//!    policy's minimum group size.
//!
//! The only value that leaves is a [`DpRelease`], which nothing outside this crate can
//! build. The same aggregation runs exactly ([`Accumulator::finish_exact`]) on the owner's
//! own machine, so the owner can compare; that path is never used in the enclave.

use dp::{Delta, Epsilon, FixedPoint};
use protocol::job::{OutputSpec, QuerySpec};
use protocol::policy::{Decimal, Policy};
use protocol::result::{OutputRelease, ReleasedValue};
use protocol::table::{Column, ColumnData, RecordBatch, Validity, TOKEN_LEN};
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Fixed-point resolution of sums: 1.0 is 10,000 units.
pub const FIXED_POINT_RESOLUTION: i64 = 10_000;

/// True aggregates are clamped to ±2^61 before noise: clamping is 1-Lipschitz, so it keeps
/// the sensitivity, and it leaves room for any noise the sampler can draw.
const MAX_TRUE_VALUE: i128 = 1 << 61;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("column {0:?} is not in the dataset")]
    MissingColumn(String),
    #[error("column {column:?} must be {expected}, found {found}")]
    ColumnType { column: String, expected: &'static str, found: &'static str },
    #[error("invalid ε {value:?}: {why}")]
    BadEpsilon { value: String, why: String },
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("output {output:?}: {why}")]
    BadOutput { output: String, why: String },
    #[error("rows are not sorted by privacy unit: the stream is refused")]
    NotSortedByUnit,
    #[error("DP mechanism: {0}")]
    Dp(#[from] dp::DpError),
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

/// Total δ a query costs: the policy's partition-selection δ once per group-by output
/// (basic composition); 0 for a query of pure ε-DP outputs.
pub fn query_delta(spec: &QuerySpec, policy: &Policy) -> Result<dp::Rational, ReleaseError> {
    let per = partition_delta(policy)?;
    let n = spec.outputs.iter().filter(|o| matches!(o, OutputSpec::GroupMean { .. })).count() as u128;
    Ok(per.checked_mul_int(n)?)
}

fn partition_delta(policy: &Policy) -> Result<dp::Rational, ReleaseError> {
    policy.partition_delta.as_str().parse().map_err(|e: dp::DpError| ReleaseError::BadEpsilon {
        value: policy.partition_delta.to_string(),
        why: e.to_string(),
    })
}

// ---------------------------------------------------------------------------------------
// Unit assembly

/// One value of one kept row.
#[derive(Clone)]
enum Cell {
    F64(f64),
    I64(i64),
    Str(Arc<str>),
    Token([u8; TOKEN_LEN]),
    Null,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64,
    I64,
    Dict,
    Token,
}

fn kind_of(c: &ColumnData) -> Kind {
    match c {
        ColumnData::F64(_) => Kind::F64,
        ColumnData::I64(_) => Kind::I64,
        ColumnData::Dict { .. } => Kind::Dict,
        ColumnData::Token(_) => Kind::Token,
    }
}

/// Splits a stream of batches sorted by privacy unit into one small batch per unit, holding
/// at most `k` of the unit's rows (reservoir-sampled from the enclave's CSPRNG) and only the
/// columns the job needs. Memory is one unit's rows, whatever the table's size.
pub struct UnitAssembler {
    unit_column: String,
    needed: Vec<String>,
    /// Per needed column: its kind and whether it carries a validity (the same in every
    /// batch, as the manifest fixes both).
    kinds: Option<Vec<(Kind, bool)>>,
    k: usize,
    rng: dp::DpRng,
    current: Option<[u8; TOKEN_LEN]>,
    seen: u64,
    kept: Vec<Vec<Cell>>,
}

impl UnitAssembler {
    /// `needed`: the columns each unit batch carries (module inputs, group-by and label
    /// columns), in that order, without duplicates.
    pub fn new(unit_column: &str, needed: Vec<String>, max_rows_per_unit: u32, seed: [u8; 32]) -> Self {
        UnitAssembler {
            unit_column: unit_column.to_string(),
            needed,
            kinds: None,
            k: max_rows_per_unit.max(1) as usize,
            rng: dp::seeded_rng(seed),
            current: None,
            seen: 0,
            kept: Vec::new(),
        }
    }

    /// The columns a query needs in each unit batch.
    pub fn needed_columns(spec: &QuerySpec) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for (name, _) in spec.column_roles() {
            if !v.iter().any(|n| n == name) {
                v.push(name.to_string());
            }
        }
        v
    }

    /// Feed one batch; `unit` is called with each unit completed by it.
    pub fn push(&mut self, batch: &RecordBatch, mut unit: impl FnMut(RecordBatch)) -> Result<(), ReleaseError> {
        let tokens = match batch.column(&self.unit_column) {
            Some(ColumnData::Token(t)) => t,
            Some(other) => {
                return Err(ReleaseError::ColumnType {
                    column: self.unit_column.clone(),
                    expected: "token",
                    found: other.type_name(),
                })
            }
            None => return Err(ReleaseError::MissingColumn(self.unit_column.clone())),
        };
        // RecordBatch's fields are public: its invariants are checked again here.
        if batch.validity(&self.unit_column).is_some() {
            return Err(ReleaseError::BadQuery("the privacy unit column has nulls".into()));
        }
        let mut cols = Vec::with_capacity(self.needed.len());
        let mut valid: Vec<Option<&Validity>> = Vec::with_capacity(self.needed.len());
        for name in &self.needed {
            let c = batch.column(name).ok_or_else(|| ReleaseError::MissingColumn(name.clone()))?;
            let v = batch.validity(name);
            if c.len() != batch.rows || v.is_some_and(|v| v.len() != batch.rows) {
                return Err(ReleaseError::BadQuery(format!("column {name:?} is ragged")));
            }
            cols.push(c);
            valid.push(v);
        }
        let kinds: Vec<(Kind, bool)> = cols.iter().zip(&valid).map(|(c, v)| (kind_of(c), v.is_some())).collect();
        match &self.kinds {
            None => self.kinds = Some(kinds),
            Some(k) if *k == kinds => {}
            Some(_) => {
                return Err(ReleaseError::BadQuery("column types or nullability changed between batches".into()))
            }
        }
        // Dictionary values as shared strings, once per batch rather than once per row.
        let dicts: Vec<Option<Vec<Arc<str>>>> = cols
            .iter()
            .map(|c| match c {
                ColumnData::Dict { values, .. } => Some(values.iter().map(|v| Arc::from(v.as_str())).collect()),
                _ => None,
            })
            .collect();
        for (row, token) in tokens.iter().enumerate() {
            match self.current {
                Some(c) if *token < c => return Err(ReleaseError::NotSortedByUnit),
                Some(c) if *token == c => {}
                _ => {
                    if let Some(b) = self.take() {
                        unit(b);
                    }
                    self.current = Some(*token);
                }
            }
            self.seen += 1;
            let slot = if self.kept.len() < self.k {
                None
            } else {
                // Reservoir sampling: keep each of the unit's rows with probability k/seen.
                let j = dp::sampler::uniform_below(u128::from(self.seen), &mut self.rng) as usize;
                if j < self.k {
                    Some(j)
                } else {
                    continue;
                }
            };
            let cells: Vec<Cell> = cols
                .iter()
                .zip(&dicts)
                .zip(&valid)
                .map(|((c, d), v)| match c {
                    _ if v.is_some_and(|v| !v.is_valid(row)) => Cell::Null,
                    ColumnData::F64(v) => Cell::F64(v[row]),
                    ColumnData::I64(v) => Cell::I64(v[row]),
                    ColumnData::Dict { codes, .. } => {
                        // RecordBatch::new checked every code against its dictionary.
                        Cell::Str(d.as_ref().expect("dictionary column")[codes[row] as usize].clone())
                    }
                    ColumnData::Token(v) => Cell::Token(v[row]),
                })
                .collect();
            match slot {
                None => self.kept.push(cells),
                Some(j) => self.kept[j] = cells,
            }
        }
        Ok(())
    }

    /// The last unit, if any.
    pub fn finish(mut self) -> Option<RecordBatch> {
        self.take()
    }

    fn take(&mut self) -> Option<RecordBatch> {
        self.current?;
        self.seen = 0;
        let rows = std::mem::take(&mut self.kept);
        let kinds = self.kinds.as_ref()?;
        // A null's slot holds the canonical value (0.0, 0, code 0); the validity says null.
        let validity = self
            .needed
            .iter()
            .zip(kinds)
            .enumerate()
            .filter(|(_, (_, (_, nullable)))| *nullable)
            .map(|(i, (name, _))| {
                let v = rows.iter().map(|r| !matches!(r[i], Cell::Null)).collect();
                (name.clone(), Validity::from_bools(v))
            })
            .collect();
        let columns = self
            .needed
            .iter()
            .zip(kinds)
            .enumerate()
            .map(|(i, (name, (kind, _)))| {
                let data = match kind {
                    Kind::F64 => ColumnData::F64(
                        rows.iter()
                            .map(|r| match r[i] {
                                Cell::F64(x) => x,
                                Cell::Null => 0.0,
                                _ => f64::NAN,
                            })
                            .collect(),
                    ),
                    Kind::I64 => {
                        ColumnData::I64(rows.iter().map(|r| if let Cell::I64(x) = r[i] { x } else { 0 }).collect())
                    }
                    Kind::Token => ColumnData::Token(
                        rows.iter().map(|r| if let Cell::Token(x) = r[i] { x } else { [0; TOKEN_LEN] }).collect(),
                    ),
                    Kind::Dict => {
                        let mut values: Vec<String> = Vec::new();
                        let mut codes = Vec::with_capacity(rows.len());
                        for r in &rows {
                            let s: &str = match &r[i] {
                                Cell::Str(s) => s,
                                Cell::Null => {
                                    codes.push(0);
                                    continue;
                                }
                                _ => "",
                            };
                            let code = match values.iter().position(|v| v == s) {
                                Some(p) => p,
                                None => {
                                    values.push(s.to_string());
                                    values.len() - 1
                                }
                            };
                            codes.push(code as u32);
                        }
                        ColumnData::Dict { codes, values }
                    }
                };
                Column { name: name.clone(), data }
            })
            .collect();
        Some(RecordBatch { rows: rows.len(), columns, validity })
    }
}

// ---------------------------------------------------------------------------------------
// Aggregation

/// Running aggregate of one output over absorbed units.
enum Agg {
    GroupMean {
        lower: f64,
        upper: f64,
        /// Sums are of `value − centre` (see [`centred_sum_bound`]).
        centre: i64,
        groups: BTreeMap<String, (u64, i128)>,
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

/// What one row of a unit adds to one output, computed before anything is added, so that
/// a unit is absorbed whole or not at all.
enum Contribution<'a> {
    Group(&'a str, i64),
    Bin(usize),
}

impl Agg {
    fn new(spec: &OutputSpec, fp: &FixedPoint) -> Result<Agg, ReleaseError> {
        Ok(match spec {
            OutputSpec::GroupMean { lower, upper, .. } => Agg::GroupMean {
                lower: *lower,
                upper: *upper,
                centre: centred_sum_bound(fp, *lower, *upper, 1)?.0,
                groups: BTreeMap::new(),
            },
            OutputSpec::Histogram { edges, .. } => {
                Agg::Histogram { edges: edges.clone(), counts: vec![0; edges.len() - 1] }
            }
            OutputSpec::Auc { bins, .. } => Agg::Auc { bins: *bins as usize, counts: vec![0; 2 * *bins as usize] },
        })
    }
}

/// Streaming accumulator for one job, fed one unit at a time.
pub struct Accumulator {
    spec: QuerySpec,
    max_rows_per_unit: u32,
    aggs: Vec<Agg>,
    fixed: FixedPoint,
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

impl Accumulator {
    /// Every parameter of every output (ε, bounds, bins, the noise scales they imply) is
    /// checked here, so a bad query fails before any data is read, any noise is drawn or
    /// any budget is spent; `finish_dp` then cannot fail on a parameter.
    pub fn new(spec: &QuerySpec, policy: &Policy) -> Result<Self, ReleaseError> {
        check_query(spec, policy)?;
        let fixed = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
        Ok(Accumulator {
            spec: spec.clone(),
            max_rows_per_unit: policy.max_rows_per_unit,
            aggs: spec.outputs.iter().map(|o| Agg::new(o, &fixed)).collect::<Result<_, _>>()?,
            fixed,
            units_absorbed: 0,
            units_absent: 0,
        })
    }

    /// Add one unit: its (bounded) rows and the model's score for each. A unit that does
    /// not fit (wrong number of scores, a non-finite score, a label outside {0, 1}, a
    /// missing column, more rows than the bound) is absent: nothing of it is added. Nulls
    /// only remove: a row with a null group key adds to no group, a unit with a null label
    /// adds nothing to that AUC.
    ///
    /// Returns whether the unit was absorbed: for the owner's exact check and its sealed
    /// diagnostics only, never for anything that leaves.
    pub fn add_unit(&mut self, unit: &RecordBatch, scores: &[f64]) -> bool {
        let absorbed = self.try_add_unit(unit, scores).is_some();
        if absorbed {
            self.units_absorbed += 1;
        } else {
            self.units_absent += 1;
        }
        absorbed
    }

    fn try_add_unit(&mut self, unit: &RecordBatch, scores: &[f64]) -> Option<()> {
        let rows = unit.rows;
        if scores.len() != rows || rows > self.max_rows_per_unit as usize || scores.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut per_output: Vec<Vec<Contribution<'_>>> = Vec::with_capacity(self.aggs.len());
        for (spec, agg) in self.spec.outputs.iter().zip(&self.aggs) {
            let mut c = Vec::with_capacity(rows);
            match (spec, agg) {
                (OutputSpec::GroupMean { group_by, .. }, Agg::GroupMean { lower, upper, centre, .. }) => {
                    let ColumnData::Dict { codes, values } = unit.column(group_by)? else { return None };
                    for (row, &s) in scores.iter().enumerate() {
                        // A row whose group is null belongs to no group: it adds to no count
                        // and no sum, and no "null" group exists to be released.
                        if !unit.is_valid(group_by, row) {
                            continue;
                        }
                        let key = values.get(*codes.get(row)? as usize)?;
                        let v = self.fixed.encode(s, *lower, *upper).ok()? - *centre;
                        c.push(Contribution::Group(key.as_str(), v));
                    }
                }
                (OutputSpec::Histogram { .. }, Agg::Histogram { edges, .. }) => {
                    c.extend(scores.iter().map(|&s| Contribution::Bin(bin_of(edges, s))));
                }
                (OutputSpec::Auc { label, .. }, Agg::Auc { bins, .. }) => {
                    let ColumnData::I64(labels) = unit.column(label)? else { return None };
                    // A null label: the unit is absent from this output (its other outputs
                    // keep it). An outcome nobody recorded says nothing about the scores.
                    if unit.validity(label).is_some_and(|v| v.null_count() > 0) {
                        per_output.push(c);
                        continue;
                    }
                    for (row, &s) in scores.iter().enumerate() {
                        let y = match labels.get(row)? {
                            0 => 0,
                            1 => 1,
                            _ => return None,
                        };
                        let b = ((s.clamp(0.0, 1.0) * *bins as f64) as usize).min(*bins - 1);
                        c.push(Contribution::Bin(y * *bins + b));
                    }
                }
                _ => return None,
            }
            per_output.push(c);
        }
        for (agg, contributions) in self.aggs.iter_mut().zip(per_output) {
            for c in contributions {
                match (&mut *agg, c) {
                    (Agg::GroupMean { groups, .. }, Contribution::Group(key, v)) => {
                        let e = match groups.get_mut(key) {
                            Some(e) => e,
                            None => groups.entry(key.to_string()).or_default(),
                        };
                        // Counts < 2^64 rows and |sums| < 2^64 · 2^62: no overflow.
                        e.0 += 1;
                        e.1 += i128::from(v);
                    }
                    (Agg::Histogram { counts, .. }, Contribution::Bin(b))
                    | (Agg::Auc { counts, .. }, Contribution::Bin(b)) => counts[b] += 1,
                    _ => {}
                }
            }
        }
        Some(())
    }

    /// Noise every output. Parameters were checked by [`Accumulator::new`].
    pub fn finish_dp<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        min_group_size: u64,
        partition_delta: &Delta,
    ) -> Result<DpRelease, ReleaseError> {
        let mut mode = Mode::Dp { rng, min_group_size, partition_delta: *partition_delta };
        Ok(DpRelease { outputs: self.finish(&mut mode)? })
    }

    /// The owner's exact values on its own machine: no noise, never released.
    pub fn finish_exact(self, min_group_size: u64) -> Result<ExactReport, ReleaseError> {
        let (units, units_absent) = (self.units_absorbed, self.units_absent);
        let mut mode: Mode<'_, dp::DpRng> = Mode::Exact { min_group_size };
        Ok(ExactReport { outputs: self.finish(&mut mode)?, units, units_absent })
    }

    fn finish<R: RngCore + CryptoRng>(self, mode: &mut Mode<'_, R>) -> Result<Vec<OutputRelease>, ReleaseError> {
        let k = self.max_rows_per_unit;
        let mut out = Vec::with_capacity(self.spec.outputs.len());
        for (spec, agg) in self.spec.outputs.iter().zip(&self.aggs) {
            let eps = parse_epsilon(spec.epsilon())?;
            out.push(match (spec, agg) {
                (OutputSpec::GroupMean { name, lower, upper, .. }, Agg::GroupMean { groups, .. }) => {
                    group_mean(name, groups, *lower, *upper, &eps, k, mode)?
                }
                (OutputSpec::Histogram { name, edges, .. }, Agg::Histogram { counts, .. }) => {
                    histogram(name, counts, edges, &eps, k, mode)?
                }
                (OutputSpec::Auc { name, bins, .. }, Agg::Auc { counts, .. }) => {
                    auc(name, counts, *bins as usize, &eps, k, mode)?
                }
                _ => return Err(ReleaseError::BadQuery("aggregate does not match its output".into())),
            });
        }
        Ok(out)
    }
}

/// Whether to add noise (in the enclave) or compute true values (owner's own check).
enum Mode<'a, R: RngCore + CryptoRng> {
    Dp { rng: &'a mut R, min_group_size: u64, partition_delta: Delta },
    Exact { min_group_size: u64 },
}

/// Everything about a query that can be wrong without looking at data, checked before any
/// data is read, any noise is drawn or any budget is touched: the spec's own limits
/// ([`QuerySpec::validate`]), ε of each output (> 0, finite, a decimal or fraction), and
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
                dp::mechanism::partition_selection_plan(&half, &delta, k, policy.min_group_size)?;
            }
            OutputSpec::Histogram { name, .. } | OutputSpec::Auc { name, .. } => {
                fits(name, "count", u64::from(k), &eps)?
            }
        }
    }
    Ok(())
}

/// DP partition selection with noisy counts, for a unit that contributes up to `k` rows in
/// total (all in one group or spread over several).
fn select_groups<G: Ord + Clone, R: RngCore + CryptoRng + ?Sized>(
    counts: BTreeMap<G, u64>,
    epsilon: &Epsilon,
    delta: &Delta,
    min_group_size: u64,
    k: u32,
    rng: &mut R,
) -> Result<BTreeMap<G, dp::mechanism::Release>, ReleaseError> {
    Ok(dp::mechanism::group_counts_with_selection_total(counts, epsilon, delta, min_group_size, k, rng)?)
}

fn mechanism_name<R: RngCore + CryptoRng>(mode: &Mode<'_, R>) -> &'static str {
    match mode {
        Mode::Dp { .. } => "discrete_laplace",
        Mode::Exact { .. } => "none (owner's exact check, not DP)",
    }
}

fn clamp_true(v: i128) -> i64 {
    v.clamp(-MAX_TRUE_VALUE, MAX_TRUE_VALUE) as i64
}

/// Noisy (or exact) counts of a histogram with L1 sensitivity `l1`.
fn noisy_counts<R: RngCore + CryptoRng>(
    counts: &[u64],
    eps: &Epsilon,
    l1: u64,
    mode: &mut Mode<'_, R>,
) -> Result<(Vec<i64>, String), ReleaseError> {
    let clamped: Vec<u64> = counts.iter().map(|&c| c.min(MAX_TRUE_VALUE as u64)).collect();
    match mode {
        Mode::Dp { rng, .. } => {
            let rel = dp::mechanism::laplace_histogram(&clamped, eps, l1, &mut **rng)?;
            let scale = dp::mechanism::laplace_scale(l1, eps)?.to_string();
            Ok((rel.into_iter().map(|r| r.value).collect(), scale))
        }
        Mode::Exact { .. } => Ok((clamped.iter().map(|&c| c as i64).collect(), "0".into())),
    }
}

fn group_mean<R: RngCore + CryptoRng>(
    name: &str,
    groups: &BTreeMap<String, (u64, i128)>,
    lower: f64,
    upper: f64,
    eps: &Epsilon,
    k: u32,
    mode: &mut Mode<'_, R>,
) -> Result<OutputRelease, ReleaseError> {
    let fp = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
    // Half the budget selects groups and counts them, half noises their sums.
    let half = eps.checked_div_int(2)?;
    let (centre, sum_bound) = centred_sum_bound(&fp, lower, upper, k)?;
    let sensitivity = format!("count: {k}, centred sum: {sum_bound} fixed-point units");
    let mut values = Vec::new();
    let (scale, delta);
    match mode {
        Mode::Dp { rng, min_group_size, partition_delta } => {
            let counts: BTreeMap<&str, u64> =
                groups.iter().map(|(g, (c, _))| (g.as_str(), (*c).min(MAX_TRUE_VALUE as u64))).collect();
            let selected = select_groups(counts, &half, partition_delta, *min_group_size, k, &mut **rng)?;
            let count_scale = dp::mechanism::laplace_scale(u64::from(k), &half)?;
            let sum_scale = dp::mechanism::laplace_scale(sum_bound, &half)?;
            // Keys come out in sorted order: the order says nothing about the data.
            for (g, count) in &selected {
                let true_sum = clamp_true(groups[*g].1);
                let noisy_sum = dp::mechanism::laplace_sum(true_sum, &half, sum_bound, &mut **rng)?;
                let mean = fp.decode(centre) + fp.decode(noisy_sum.value) / (count.value.max(1) as f64);
                values.push(ReleasedValue { key: (*g).to_string(), value: mean.clamp(lower, upper) });
            }
            scale = format!("count: {count_scale}, sum: {sum_scale}");
            delta = Some(Decimal(partition_delta.to_string()));
        }
        Mode::Exact { min_group_size } => {
            for (g, &(c, s)) in groups {
                if c >= *min_group_size {
                    values.push(ReleasedValue {
                        key: g.clone(),
                        value: fp.decode(centre) + fp.decode(clamp_true(s)) / c as f64,
                    });
                }
            }
            scale = "0".into();
            delta = None;
        }
    }
    Ok(OutputRelease {
        name: name.into(),
        class: "group_mean".into(),
        mechanism: mechanism_name(mode).into(),
        epsilon: Decimal(eps.to_string()),
        delta,
        sensitivity,
        noise_scale: scale,
        fixed_point_resolution: Some(FIXED_POINT_RESOLUTION as u64),
        values,
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

/// L1 sensitivity, in fixed-point units, of a group's centred sum for scores in
/// `[lower, upper]` and `k` rows per unit (what the enclave noises; for plans).
pub fn sum_sensitivity(lower: f64, upper: f64, k: u32) -> Result<u64, ReleaseError> {
    let fp = FixedPoint::new(FIXED_POINT_RESOLUTION)?;
    Ok(centred_sum_bound(&fp, lower, upper, k)?.1)
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
        delta: None,
        sensitivity: format!("{k}"),
        noise_scale: scale,
        fixed_point_resolution: None,
        values,
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
    // The note is fixed: whether a noisy label class came out empty shows in the value only.
    let value = if n > 0.0 && p > 0.0 { wins / (n * p) } else { 0.5 };
    let note = "AUC from noisy per-label score histograms (ties within a bin count one half); \
                0.5 when a label class is empty after noise";
    Ok(OutputRelease {
        name: name.into(),
        class: "auc".into(),
        mechanism: mechanism_name(mode).into(),
        epsilon: Decimal(eps.to_string()),
        delta: None,
        sensitivity: format!("{k}"),
        noise_scale: scale,
        fixed_point_resolution: None,
        values: vec![ReleasedValue { key: "auc".into(), value }],
        note: note.into(),
    })
}

#[cfg(test)]
mod tests;
