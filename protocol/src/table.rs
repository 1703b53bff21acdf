//! Columnar record batches: the plaintext inside a sealed chunk and the unit the
//! sandbox consumes. Columns are contiguous little-endian arrays so that nobody
//! downstream parses text.

use crate::{Bytes, DecodeError};
use serde::{Deserialize, Serialize};

/// Length in bytes of a privacy-unit token (HMAC-SHA-256 output).
pub const TOKEN_LEN: usize = 32;

/// One column's values. Typed vectors in memory; see [`WireBatch`] for the encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    F64(Vec<f64>),
    I64(Vec<i64>),
    /// Dictionary-encoded strings: `codes[i]` indexes `values`.
    Dict {
        codes: Vec<u32>,
        values: Vec<String>,
    },
    /// Privacy-unit tokens, `TOKEN_LEN` bytes each.
    Token(Vec<[u8; TOKEN_LEN]>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F64(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::Dict { codes, .. } => codes.len(),
            ColumnData::Token(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnData::F64(_) => "f64",
            ColumnData::I64(_) => "i64",
            ColumnData::Dict { .. } => "dict",
            ColumnData::Token(_) => "token",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordBatch {
    pub rows: usize,
    pub columns: Vec<Column>,
}

impl RecordBatch {
    /// Build a batch, checking every column has `rows` values and names are unique.
    pub fn new(columns: Vec<Column>) -> Result<Self, DecodeError> {
        let rows = columns.first().map(|c| c.data.len()).unwrap_or(0);
        for (i, c) in columns.iter().enumerate() {
            if c.data.len() != rows {
                return Err(DecodeError::Invalid {
                    what: "record batch",
                    why: format!("column {} has {} rows, expected {rows}", c.name, c.data.len()),
                });
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(DecodeError::Invalid { what: "record batch", why: format!("duplicate column {}", c.name) });
            }
            if let ColumnData::Dict { codes, values } = &c.data {
                if let Some(bad) = codes.iter().find(|&&k| k as usize >= values.len()) {
                    return Err(DecodeError::Invalid {
                        what: "record batch",
                        why: format!("column {}: dictionary code {bad} out of range", c.name),
                    });
                }
            }
        }
        Ok(RecordBatch { rows, columns })
    }

    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns.iter().find(|c| c.name == name).map(|c| &c.data)
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::to_cbor(&WireBatch::from(self))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireBatch = crate::from_cbor(bytes)?;
        wire.try_into()
    }
}

/// Wire form: each column's values as one little-endian byte string.
#[derive(Serialize, Deserialize)]
struct WireBatch {
    rows: u64,
    columns: Vec<WireColumn>,
}

#[derive(Serialize, Deserialize)]
struct WireColumn {
    name: String,
    kind: String,
    data: Bytes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dictionary: Vec<String>,
}

impl From<&RecordBatch> for WireBatch {
    fn from(b: &RecordBatch) -> Self {
        let columns = b
            .columns
            .iter()
            .map(|c| {
                let (data, dictionary) = match &c.data {
                    ColumnData::F64(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), vec![]),
                    ColumnData::I64(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), vec![]),
                    ColumnData::Dict { codes, values } => {
                        (codes.iter().flat_map(|x| x.to_le_bytes()).collect(), values.clone())
                    }
                    ColumnData::Token(v) => (v.iter().flatten().copied().collect(), vec![]),
                };
                WireColumn { name: c.name.clone(), kind: c.data.type_name().to_string(), data: Bytes(data), dictionary }
            })
            .collect();
        WireBatch { rows: b.rows as u64, columns }
    }
}

fn chunks<const N: usize>(name: &str, data: &[u8], rows: usize) -> Result<Vec<[u8; N]>, DecodeError> {
    if Some(data.len()) != rows.checked_mul(N) {
        return Err(DecodeError::Invalid {
            what: "record batch",
            why: format!("column {name}: {} bytes for {rows} rows of width {N}", data.len()),
        });
    }
    Ok(data
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

impl TryFrom<WireBatch> for RecordBatch {
    type Error = DecodeError;
    fn try_from(w: WireBatch) -> Result<Self, DecodeError> {
        let rows = usize::try_from(w.rows)
            .map_err(|_| DecodeError::Invalid { what: "record batch", why: "row count too large".into() })?;
        let mut columns = Vec::with_capacity(w.columns.len());
        for c in w.columns {
            let d = c.data.as_slice();
            let data = match c.kind.as_str() {
                "f64" => ColumnData::F64(chunks::<8>(&c.name, d, rows)?.into_iter().map(f64::from_le_bytes).collect()),
                "i64" => ColumnData::I64(chunks::<8>(&c.name, d, rows)?.into_iter().map(i64::from_le_bytes).collect()),
                "dict" => ColumnData::Dict {
                    codes: chunks::<4>(&c.name, d, rows)?.into_iter().map(u32::from_le_bytes).collect(),
                    values: c.dictionary,
                },
                "token" => ColumnData::Token(chunks::<TOKEN_LEN>(&c.name, d, rows)?),
                other => {
                    return Err(DecodeError::Invalid {
                        what: "record batch",
                        why: format!("column {}: unknown kind {other:?}", c.name),
                    })
                }
            };
            columns.push(Column { name: c.name, data });
        }
        let batch = RecordBatch::new(columns)?;
        if batch.rows != rows && !batch.columns.is_empty() {
            return Err(DecodeError::Invalid {
                what: "record batch",
                why: "declared row count disagrees with columns".into(),
            });
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordBatch {
        RecordBatch::new(vec![
            Column { name: "unit".into(), data: ColumnData::Token(vec![[7u8; 32], [9u8; 32]]) },
            Column { name: "x".into(), data: ColumnData::F64(vec![1.5, -0.0]) },
            Column { name: "n".into(), data: ColumnData::I64(vec![i64::MIN, i64::MAX]) },
            Column {
                name: "zip3".into(),
                data: ColumnData::Dict { codes: vec![1, 0], values: vec!["021".into(), "100".into()] },
            },
        ])
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let b = sample();
        assert_eq!(RecordBatch::decode(&b.encode()).unwrap(), b);
    }

    #[test]
    fn large_columns_round_trip() {
        // Byte strings above ciborium's small-buffer size must decode too.
        let b = RecordBatch::new(vec![Column {
            name: "x".into(),
            data: ColumnData::F64((0..5000).map(f64::from).collect()),
        }])
        .unwrap();
        assert_eq!(RecordBatch::decode(&b.encode()).unwrap(), b);
    }

    #[test]
    fn rejects_ragged_and_bad_codes() {
        let bad = RecordBatch::new(vec![
            Column { name: "a".into(), data: ColumnData::F64(vec![1.0]) },
            Column { name: "b".into(), data: ColumnData::F64(vec![1.0, 2.0]) },
        ]);
        assert!(bad.is_err());
        let bad = RecordBatch::new(vec![Column {
            name: "z".into(),
            data: ColumnData::Dict { codes: vec![3], values: vec!["a".into()] },
        }]);
        assert!(bad.is_err());
    }

    #[test]
    fn rejects_truncated_column_bytes() {
        let mut enc = sample().encode();
        // Any single-byte truncation of the encoding must be a clean error.
        for cut in 0..enc.len() {
            assert!(RecordBatch::decode(&enc[..cut]).is_err());
        }
        enc.push(0);
        assert!(RecordBatch::decode(&enc).is_err(), "trailing byte accepted");
    }
}
