//! Exact partial aggregates: the integers an [`Accumulator`](crate::Accumulator) holds
//! before noise, taken out of one accumulator and added into another.
//!
//! This is what a shard enclave sends its coordinator (see `docs/scale-out.md`). Every
//! aggregate is a sum over units, so the sum of the partials of disjoint sets of units is
//! exactly the aggregate of their union, and noising that sum once releases bit for bit
//! what one enclave would have released over all the units with the same noise.
//!
//! These values are exact and un-noised: they must only ever travel inside the trust
//! boundary (an attested, encrypted channel between enclaves). Nothing here prints them:
//! `Debug` shows the shape, never a number.
//!
//! A merge checks the partial against the receiving accumulator, which was built from the
//! same public query: same outputs, same classes, same vector lengths, groups only from
//! the declared domain, and every integer within what `units_absorbed` units of at most
//! `k` rows each could have produced. The last check is what catches a shard whose unit
//! count does not match its aggregates; a lie that stays within those bounds cannot be
//! seen from the numbers (attestation is the defence against that).

use serde::{Deserialize, Serialize};

/// The exact (un-noised) integer aggregates of one accumulator. Built only by
/// [`Accumulator::exact_aggregates`](crate::Accumulator::exact_aggregates).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactAggregates {
    pub(crate) units_absorbed: u64,
    pub(crate) units_absent: u64,
    pub(crate) outputs: Vec<OutputAggregate>,
}

impl ExactAggregates {
    /// Units whose outputs were absorbed plus units that were absent (the units read).
    pub fn units(&self) -> Option<u64> {
        self.units_absorbed.checked_add(self.units_absent)
    }
}

impl std::fmt::Debug for ExactAggregates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shape only: these are exact aggregates, and Debug output ends up in logs.
        let shape: Vec<&str> = self.outputs.iter().map(OutputAggregate::class).collect();
        f.debug_struct("ExactAggregates").field("outputs", &shape).finish_non_exhaustive()
    }
}

/// One output's integers, by aggregator class.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OutputAggregate {
    Groups { cells: Vec<GroupCell> },
    Bins { counts: Vec<u64>, sums: Vec<i128> },
    Quantiles { cells: Vec<u64> },
    Covariance { rows: u64, sums: Vec<i128>, moments: Vec<i128> },
}

impl OutputAggregate {
    pub(crate) fn class(&self) -> &'static str {
        match self {
            OutputAggregate::Groups { .. } => "groups",
            OutputAggregate::Bins { .. } => "bins",
            OutputAggregate::Quantiles { .. } => "quantiles",
            OutputAggregate::Covariance { .. } => "covariance",
        }
    }
}

/// One group's cell: rows, sum and sum of squares (see `classes::groups`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupCell {
    pub key: String,
    pub rows: u64,
    pub sum: i128,
    pub sq: i128,
}

/// Why a partial cannot be merged. Each names the output (by its public name) and the
/// rule, never a value: the partial's numbers are exact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    #[error("the partial has {found} outputs, the query {expected}")]
    OutputCount { expected: usize, found: usize },
    #[error("output {output:?}: the partial is of class {found}, the query's of {expected}")]
    Class { output: String, expected: &'static str, found: &'static str },
    #[error("output {output:?}: the partial's {what} has the wrong length")]
    Length { output: String, what: &'static str },
    #[error("output {output:?}: the partial has a group outside the declared key domain")]
    UnknownGroup { output: String },
    #[error("output {output:?}: the partial has a group with no rows, which no unit makes")]
    EmptyGroup { output: String },
    #[error("output {output:?}: the partial has a group twice")]
    DuplicateGroup { output: String },
    #[error("output {output:?}: more rows than its unit count allows at {k} rows per unit")]
    TooManyRows { output: String, k: u32 },
    #[error("output {output:?}: a {what} beyond what its rows could sum to")]
    OutOfBounds { output: String, what: &'static str },
    #[error("output {output:?}: adding the partial overflows")]
    Overflow { output: String },
    #[error("the partial's unit counts overflow")]
    UnitCount,
}

/// Largest row total `units` units of at most `k` rows each can give.
pub(crate) fn row_bound(units: u64, k: u32) -> u128 {
    u128::from(units) * u128::from(k)
}

/// Whether `|v| <= rows * per_row`, without overflow.
pub(crate) fn within(v: i128, rows: u64, per_row: u128) -> bool {
    v.unsigned_abs() <= u128::from(rows).saturating_mul(per_row)
}

pub(crate) fn add_u64(a: &mut u64, b: u64, output: &str) -> Result<(), MergeError> {
    *a = a.checked_add(b).ok_or_else(|| MergeError::Overflow { output: output.into() })?;
    Ok(())
}

pub(crate) fn add_i128(a: &mut i128, b: i128, output: &str) -> Result<(), MergeError> {
    *a = a.checked_add(b).ok_or_else(|| MergeError::Overflow { output: output.into() })?;
    Ok(())
}

/// Element-wise `a += b` for vectors the caller checked to be of equal length.
pub(crate) fn add_all<T: Copy>(
    a: &mut [T],
    b: &[T],
    output: &str,
    add: fn(&mut T, T, &str) -> Result<(), MergeError>,
) -> Result<(), MergeError> {
    for (x, y) in a.iter_mut().zip(b) {
        add(x, *y, output)?;
    }
    Ok(())
}
