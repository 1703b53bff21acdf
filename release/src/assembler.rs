//! Splitting a stream of batches sorted by privacy unit into one small batch per unit.

use crate::ReleaseError;
use protocol::job::QuerySpec;
use protocol::table::{Column, ColumnData, RecordBatch, Validity, TOKEN_LEN};
use std::sync::Arc;

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
