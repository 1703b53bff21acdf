//! Reading a CSV or Parquet source table into memory, column by column.
//!
//! CSV values stay text until a rule says what type a column must have; Parquet columns
//! arrive typed. Either way the next stage sees a [`RawColumn`] and converts it, so the
//! same table in either format yields the same sealed values. Errors name the row and
//! column but never echo a value (it may be PII).

use super::PrepareError;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::Array;
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use protocol::Digest;
use std::fs::File;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Csv,
    Parquet,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
        }
    }
}

/// One source column's values as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawColumn {
    Text(Vec<String>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl RawColumn {
    pub fn len(&self) -> usize {
        match self {
            RawColumn::Text(v) => v.len(),
            RawColumn::I64(v) => v.len(),
            RawColumn::F64(v) => v.len(),
        }
    }
}

pub(crate) struct SourceTable {
    pub format: SourceFormat,
    pub names: Vec<String>,
    pub columns: Vec<RawColumn>,
    pub rows: usize,
    /// SHA-256 of the file's bytes.
    pub digest: Digest,
}

const PARQUET_MAGIC: &[u8] = b"PAR1";

/// Parquet if the file starts with the Parquet magic; otherwise by extension
/// (`.parquet`/`.pq` without the magic is an error); otherwise CSV.
pub(crate) fn detect(path: &Path, head: &[u8]) -> Result<SourceFormat, PrepareError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let magic = head.starts_with(PARQUET_MAGIC);
    match (ext.as_deref(), magic) {
        (_, true) => Ok(SourceFormat::Parquet),
        (Some("parquet") | Some("pq"), false) => {
            Err(PrepareError::Parquet { why: "file does not start with the Parquet magic \"PAR1\"".into() })
        }
        _ => Ok(SourceFormat::Csv),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn read(path: &Path) -> Result<SourceTable, PrepareError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io(path))?;
    let digest = Digest::of(&bytes);
    let format = detect(path, &bytes)?;
    let (names, columns) = match format {
        SourceFormat::Csv => read_csv(&bytes)?,
        SourceFormat::Parquet => read_parquet(path)?,
    };
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(PrepareError::DuplicateColumn { column: n.clone() });
        }
    }
    let rows = columns.first().map(RawColumn::len).unwrap_or(0);
    Ok(SourceTable { format, names, columns, rows, digest })
}

fn read_csv(bytes: &[u8]) -> Result<(Vec<String>, Vec<RawColumn>), PrepareError> {
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line());
        let why = match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("{len} fields where the header has {expected_len}")
            }
            csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not valid UTF-8", err.field() + 1),
            _ => e.to_string(),
        };
        PrepareError::Csv { line, why }
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes); // UTF-8 byte-order mark
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(bytes);
    let names: Vec<String> = reader.headers().map_err(csv_err)?.iter().map(str::to_string).collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return Err(PrepareError::Csv { line: Some(1), why: "no header row".into() });
    }
    let mut cols: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_err)? {
        for (c, field) in cols.iter_mut().zip(record.iter()) {
            c.push(field.to_string());
        }
    }
    Ok((names, cols.into_iter().map(RawColumn::Text).collect()))
}

fn read_parquet(path: &Path) -> Result<(Vec<String>, Vec<RawColumn>), PrepareError> {
    let pq = |e: parquet::errors::ParquetError| PrepareError::Parquet { why: e.to_string() };
    let file = File::open(path).map_err(io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut cols: Vec<RawColumn> = Vec::with_capacity(names.len());
    for f in schema.fields() {
        cols.push(match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => RawColumn::Text(Vec::new()),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => RawColumn::F64(Vec::new()),
            DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => RawColumn::I64(Vec::new()),
            other => {
                return Err(PrepareError::UnsupportedType { column: f.name().clone(), data_type: other.to_string() })
            }
        });
    }
    let reader = builder.with_batch_size(65_536).build().map_err(pq)?;
    let mut offset = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| PrepareError::Parquet { why: e.to_string() })?;
        for ((name, col), array) in names.iter().zip(cols.iter_mut()).zip(batch.columns()) {
            append(name, offset, array.as_ref(), col)?;
        }
        offset += batch.num_rows();
    }
    Ok((names, cols))
}

/// Append one Arrow array to a raw column; `offset` is the row number of its first value.
fn append(name: &str, offset: usize, a: &dyn Array, col: &mut RawColumn) -> Result<(), PrepareError> {
    if let Some(i) = (0..a.len()).find(|&i| a.is_null(i)) {
        return Err(PrepareError::Null { row: (offset + i + 1) as u64, column: name.to_string() });
    }
    let mismatch = || PrepareError::Parquet { why: format!("column {name:?} changes type between row groups") };
    match (col, a.data_type()) {
        (RawColumn::Text(v), DataType::Utf8) => v.extend(a.as_string::<i32>().iter().flatten().map(str::to_string)),
        (RawColumn::Text(v), DataType::LargeUtf8) => {
            v.extend(a.as_string::<i64>().iter().flatten().map(str::to_string))
        }
        (RawColumn::Text(v), DataType::Utf8View) => v.extend(a.as_string_view().iter().flatten().map(str::to_string)),
        (RawColumn::F64(v), DataType::Float64) => v.extend(a.as_primitive::<Float64Type>().values().iter().copied()),
        (RawColumn::F64(v), DataType::Float32) => {
            v.extend(a.as_primitive::<Float32Type>().values().iter().map(|&x| f64::from(x)))
        }
        (RawColumn::F64(v), DataType::Float16) => {
            v.extend(a.as_primitive::<arrow_array::types::Float16Type>().values().iter().map(|x| x.to_f64()))
        }
        (RawColumn::I64(v), DataType::Boolean) => v.extend(a.as_boolean().iter().flatten().map(i64::from)),
        (RawColumn::I64(v), DataType::Int8) => {
            v.extend(a.as_primitive::<Int8Type>().values().iter().map(|&x| i64::from(x)))
        }
        (RawColumn::I64(v), DataType::Int16) => {
            v.extend(a.as_primitive::<Int16Type>().values().iter().map(|&x| i64::from(x)))
        }
        (RawColumn::I64(v), DataType::Int32) => {
            v.extend(a.as_primitive::<Int32Type>().values().iter().map(|&x| i64::from(x)))
        }
        (RawColumn::I64(v), DataType::Int64) => v.extend(a.as_primitive::<Int64Type>().values().iter().copied()),
        (RawColumn::I64(v), DataType::UInt8) => {
            v.extend(a.as_primitive::<UInt8Type>().values().iter().map(|&x| i64::from(x)))
        }
        (RawColumn::I64(v), DataType::UInt16) => {
            v.extend(a.as_primitive::<UInt16Type>().values().iter().map(|&x| i64::from(x)))
        }
        (RawColumn::I64(v), DataType::UInt32) => {
            v.extend(a.as_primitive::<UInt32Type>().values().iter().map(|&x| i64::from(x)))
        }
        (RawColumn::I64(v), DataType::UInt64) => {
            for (i, &x) in a.as_primitive::<UInt64Type>().values().iter().enumerate() {
                v.push(i64::try_from(x).map_err(|_| PrepareError::BadValue {
                    row: (offset + i + 1) as u64,
                    column: name.to_string(),
                    why: "unsigned value does not fit in a signed 64-bit integer".into(),
                })?);
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn write_parquet(path: &Path, ids: Vec<Option<&str>>, n: Vec<Option<i64>>) {
        let schema =
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(ids)), Arc::new(Int64Array::from(n))])
                .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn parquet_nulls_are_reported_by_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        write_parquet(&p, vec![Some("a"), Some("b")], vec![Some(1), Some(2)]);
        let t = read(&p).unwrap();
        assert_eq!(t.format, SourceFormat::Parquet);
        assert_eq!(t.names, ["id", "n"]);
        assert_eq!(t.columns[1], RawColumn::I64(vec![1, 2]));
        write_parquet(&p, vec![Some("a"), Some("b"), Some("c")], vec![Some(1), Some(2), None]);
        let e = read(&p).err().unwrap().to_string();
        assert_eq!(e, "row 3, column \"n\": missing value (null)");
    }

    #[test]
    fn format_detection_and_csv_details() {
        assert_eq!(detect(Path::new("x.csv"), b"a,b").unwrap(), SourceFormat::Csv);
        assert_eq!(detect(Path::new("x.dat"), b"PAR1....").unwrap(), SourceFormat::Parquet);
        assert!(detect(Path::new("x.PARQUET"), b"a,b").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, b"\xEF\xBB\xBFid,id\n1,2\n").unwrap();
        let e = read(&p).err().unwrap().to_string();
        assert_eq!(e, "column \"id\" appears more than once in the input");
        std::fs::write(&p, b"id,x\n1,\xff\n").unwrap();
        let e = read(&p).err().unwrap().to_string();
        assert!(e.starts_with("CSV line 2: field 2 is not valid UTF-8"), "{e}");
    }
}
