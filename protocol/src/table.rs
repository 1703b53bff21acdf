//! Columnar record batches: the plaintext inside a sealed chunk and the unit the
//! sandbox consumes. Columns are contiguous little-endian arrays so that nobody
//! downstream parses text.

use crate::{Bytes, DecodeError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Which rows of a column hold a value (`true`) and which are null (`false`).
///
/// A null row's slot in the column holds the canonical value of its type ([`ColumnData`]:
/// `0.0` with all bits zero, `0`, dictionary code `0`), so only the validity says
/// "null" and the slot carries nothing of what the source held there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validity(Vec<bool>);

impl Validity {
    pub fn from_bools(valid: Vec<bool>) -> Self {
        Validity(valid)
    }
    /// `rows` rows, every one with a value.
    pub fn all_valid(rows: usize) -> Self {
        Validity(vec![true; rows])
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether row `i` holds a value; `false` past the end.
    pub fn is_valid(&self, i: usize) -> bool {
        self.0.get(i).copied().unwrap_or(false)
    }
    pub fn null_count(&self) -> usize {
        self.0.iter().filter(|v| !**v).count()
    }
    pub fn as_slice(&self) -> &[bool] {
        &self.0
    }
    pub fn push(&mut self, valid: bool) {
        self.0.push(valid);
    }

    /// Bit-packed, least significant bit first: bit `i % 8` of byte `i / 8` is row `i`;
    /// the unused high bits of the last byte are zero.
    fn to_bitmap(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.0.len().div_ceil(8)];
        for (i, _) in self.0.iter().enumerate().filter(|(_, v)| **v) {
            out[i / 8] |= 1 << (i % 8);
        }
        out
    }

    /// The inverse of [`Validity::to_bitmap`] for `rows` rows: exactly `ceil(rows / 8)`
    /// bytes with zero padding bits, so every validity has one encoding.
    fn from_bitmap(bytes: &[u8], rows: usize) -> Option<Self> {
        if bytes.len() != rows.div_ceil(8) {
            return None;
        }
        let tail = rows % 8;
        if tail != 0 && bytes.last().is_some_and(|b| b >> tail != 0) {
            return None;
        }
        Some(Validity((0..rows).map(|i| bytes[i / 8] & (1 << (i % 8)) != 0).collect()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordBatch {
    pub rows: usize,
    pub columns: Vec<Column>,
    /// Validity of the columns that may hold nulls, by column name. A column not listed
    /// has a value in every row (so batches sealed before nulls existed read unchanged).
    pub validity: BTreeMap<String, Validity>,
}

fn invalid(why: String) -> DecodeError {
    DecodeError::Invalid { what: "record batch", why }
}

impl RecordBatch {
    /// Build a batch, checking every column has `rows` values and names are unique.
    pub fn new(columns: Vec<Column>) -> Result<Self, DecodeError> {
        Self::with_validity(columns, BTreeMap::new())
    }

    /// Build a batch with the validity of its nullable columns, checking as
    /// [`RecordBatch::new`] does and also that each validity names a column that is not
    /// the privacy-unit token, has one entry per row, and that every null row holds its
    /// type's canonical value.
    pub fn with_validity(columns: Vec<Column>, validity: BTreeMap<String, Validity>) -> Result<Self, DecodeError> {
        let rows = columns.first().map(|c| c.data.len()).unwrap_or(0);
        for name in validity.keys() {
            if !columns.iter().any(|c| &c.name == name) {
                return Err(invalid(format!("validity for {name}, which is not a column")));
            }
        }
        for (i, c) in columns.iter().enumerate() {
            if c.data.len() != rows {
                return Err(invalid(format!("column {} has {} rows, expected {rows}", c.name, c.data.len())));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(invalid(format!("duplicate column {}", c.name)));
            }
            let valid = validity.get(&c.name);
            if let Some(v) = valid {
                if v.len() != rows {
                    return Err(invalid(format!("column {}: validity of {} rows, expected {rows}", c.name, v.len())));
                }
                if let Some(row) = first_non_canonical_null(&c.data, v) {
                    return Err(invalid(format!("column {}: null row {row} holds a value", c.name)));
                }
            }
            match &c.data {
                ColumnData::Dict { codes, values } => {
                    // A null row's code is 0 even when the dictionary is empty.
                    let in_range = |(row, &k): (usize, &u32)| {
                        (k as usize) < values.len() || valid.is_some_and(|v| !v.is_valid(row))
                    };
                    if let Some((_, bad)) = codes.iter().enumerate().find(|r| !in_range(*r)) {
                        return Err(invalid(format!("column {}: dictionary code {bad} out of range", c.name)));
                    }
                }
                ColumnData::Token(_) if valid.is_some() => {
                    return Err(invalid(format!("column {}: a privacy-unit token is never null", c.name)));
                }
                _ => {}
            }
        }
        Ok(RecordBatch { rows, columns, validity })
    }

    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns.iter().find(|c| c.name == name).map(|c| &c.data)
    }

    /// The validity of column `name`, or `None` when the column has a value in every row
    /// (or does not exist).
    pub fn validity(&self, name: &str) -> Option<&Validity> {
        self.validity.get(name)
    }

    /// Whether row `row` of column `name` holds a value.
    pub fn is_valid(&self, name: &str, row: usize) -> bool {
        self.validity.get(name).is_none_or(|v| v.is_valid(row))
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::to_cbor(&WireBatch::from(self))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireBatch = crate::from_cbor(bytes)?;
        wire.try_into()
    }
}

/// The first null row of `data` whose slot does not hold the canonical value.
fn first_non_canonical_null(data: &ColumnData, valid: &Validity) -> Option<usize> {
    let nulls = valid.as_slice().iter().enumerate().filter(|(_, v)| !**v).map(|(i, _)| i);
    let canonical = |i: usize| match data {
        // Bits, not value: -0.0 == 0.0 but would still be a bit the bitmap does not carry.
        ColumnData::F64(v) => v.get(i).is_none_or(|x| x.to_bits() == 0),
        ColumnData::I64(v) => v.get(i).is_none_or(|x| *x == 0),
        ColumnData::Dict { codes, .. } => codes.get(i).is_none_or(|x| *x == 0),
        ColumnData::Token(_) => true,
    };
    nulls.into_iter().find(|&i| !canonical(i))
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
    /// Bit-packed validity (see [`Validity`]); absent when every row has a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    validity: Option<Bytes>,
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
                WireColumn {
                    name: c.name.clone(),
                    kind: c.data.type_name().to_string(),
                    data: Bytes(data),
                    dictionary,
                    validity: b.validity.get(&c.name).map(|v| Bytes(v.to_bitmap())),
                }
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
        let mut validity = BTreeMap::new();
        for c in w.columns {
            if let Some(bits) = &c.validity {
                let v = Validity::from_bitmap(bits.as_slice(), rows).ok_or_else(|| {
                    invalid(format!("column {}: validity of {} bytes for {rows} rows", c.name, bits.0.len()))
                })?;
                // A repeated name is refused by `with_validity` as a duplicate column.
                validity.insert(c.name.clone(), v);
            }
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
        let batch = RecordBatch::with_validity(columns, validity)?;
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

    /// `sample()` with nulls: an f64 null, an i64 null, and a dictionary column whose only
    /// rows are null (an empty dictionary, code 0).
    fn with_nulls() -> RecordBatch {
        let mut columns = sample().columns;
        columns[1].data = ColumnData::F64(vec![0.0, -0.0]);
        columns[2].data = ColumnData::I64(vec![i64::MIN, 0]);
        columns.push(Column { name: "city".into(), data: ColumnData::Dict { codes: vec![0, 0], values: vec![] } });
        let validity = BTreeMap::from([
            ("x".to_string(), Validity::from_bools(vec![false, true])),
            ("n".to_string(), Validity::from_bools(vec![true, false])),
            ("city".to_string(), Validity::from_bools(vec![false, false])),
        ]);
        RecordBatch::with_validity(columns, validity).unwrap()
    }

    #[test]
    fn nulls_round_trip_as_nulls() {
        let b = with_nulls();
        let back = RecordBatch::decode(&b.encode()).unwrap();
        assert_eq!(back, b);
        assert!(!back.is_valid("x", 0) && back.is_valid("x", 1));
        assert!(back.is_valid("n", 0) && !back.is_valid("n", 1));
        assert_eq!(back.validity("city").map(Validity::null_count), Some(2));
        // Columns without a validity have a value in every row.
        assert!(back.validity("unit").is_none() && back.is_valid("unit", 1) && back.is_valid("zip3", 0));
        // A validity with no null is kept as it is (its presence follows the schema).
        let all =
            RecordBatch::with_validity(sample().columns, BTreeMap::from([("x".to_string(), Validity::all_valid(2))]))
                .unwrap();
        assert_eq!(RecordBatch::decode(&all.encode()).unwrap(), all);
    }

    #[test]
    fn a_batch_without_nulls_encodes_as_before() {
        // No `validity` key at all: sealed data from before nulls decodes, and re-encodes
        // to the same bytes (so its dataset digest is unchanged).
        let enc = sample().encode();
        assert!(!enc.windows(8).any(|w| w == b"validity"));
        assert!(with_nulls().encode().windows(8).any(|w| w == b"validity"));
    }

    #[test]
    fn bitmaps_decode_strictly() {
        let wire = |f: &dyn Fn(&mut WireBatch)| {
            let mut w = WireBatch::from(&with_nulls());
            f(&mut w);
            RecordBatch::decode(&crate::to_cbor(&w))
        };
        assert!(wire(&|_| {}).is_ok());
        // x's bitmap for 2 rows is one byte, 0b10.
        let set = |w: &mut WireBatch, bits: Vec<u8>| w.columns[1].validity = Some(Bytes(bits));
        let e = wire(&|w| set(w, vec![])).unwrap_err().to_string();
        assert!(e.contains("validity of 0 bytes"), "{e}");
        assert!(wire(&|w| set(w, vec![0b10, 0])).is_err(), "a bitmap one byte too long");
        assert!(wire(&|w| set(w, vec![0b110])).is_err(), "a padding bit set");
        // The bitmap says row 1 of x is null, but it holds -0.0: not the canonical value.
        let e = wire(&|w| set(w, vec![0b01])).unwrap_err().to_string();
        assert!(e.contains("null row 1 holds a value") && !e.contains("-0"), "{e}");
        // The privacy-unit token is never null.
        assert!(wire(&|w| w.columns[0].validity = Some(Bytes(vec![0b11]))).unwrap_err().to_string().contains("token"));
        // A dictionary code beyond the dictionary is refused unless its row is null.
        assert!(wire(&|w| w.columns[4].validity = Some(Bytes(vec![0b01]))).is_err());
    }

    #[test]
    fn validity_is_checked_when_building() {
        let cols = || sample().columns;
        let with = |name: &str, v: Vec<bool>| {
            RecordBatch::with_validity(cols(), BTreeMap::from([(name.to_string(), Validity::from_bools(v))]))
        };
        assert!(with("nope", vec![true, true]).is_err(), "validity of a column that is not there");
        assert!(with("x", vec![true]).is_err(), "validity of the wrong length");
        assert!(with("x", vec![false, true]).is_err(), "x[0] = 1.5 is not the canonical null");
        assert!(with("x", vec![true, false]).is_err(), "x[1] = -0.0 is not the canonical null either");
        assert!(with("n", vec![false, true]).is_err());
        assert!(with("zip3", vec![false, true]).is_err(), "code 0 is the canonical null, not code 1");
        assert!(with("zip3", vec![true, false]).is_ok());
        assert!(with("unit", vec![true, true]).is_err());
        assert!(with("zip3", vec![true, true]).is_ok());
    }

    #[test]
    fn rejects_truncated_encodings_with_nulls() {
        let enc = with_nulls().encode();
        for cut in 0..enc.len() {
            assert!(RecordBatch::decode(&enc[..cut]).is_err());
        }
    }
}
