//! Streaming a CSV or Parquet source table row by row.
//!
//! Nothing is held but the current record (CSV) or the current row group's batch
//! (Parquet), so a table larger than memory streams. CSV values stay text until a rule
//! types them; Parquet values arrive typed. Errors name the row and column but never echo
//! a value (it may be PII).

use super::rules::{Encoding, InputFormat, InputOptions};
use super::PrepareError;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use protocol::date::Date;
use protocol::Digest;
use std::fs::File;
use std::io::{BufReader, Read};
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

/// One source value as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Text(String),
    I64(i64),
    F64(f64),
    Bool(bool),
    Date(Date),
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

/// SHA-256 of a file, streamed.
pub(crate) fn file_digest(path: &Path) -> Result<Digest, PrepareError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(Digest(ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")))
}

/// Counts bytes as the CSV reader consumes them (for progress).
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

enum Reader {
    Csv {
        reader: Box<csv::Reader<Counting<BufReader<File>>>>,
        record: csv::ByteRecord,
        pending: Option<csv::ByteRecord>,
    },
    Parquet {
        reader: ParquetRecordBatchReader,
        batch: Vec<Vec<Value>>,
        pos: usize,
    },
}

/// A source table opened for one streaming pass.
pub(crate) struct Source {
    pub format: SourceFormat,
    pub names: Vec<String>,
    /// File size in bytes, for progress.
    pub total_bytes: u64,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// 1-based number of the last data row returned.
    pub row: u64,
    reader: Reader,
    opts: InputOptions,
}

impl Source {
    pub fn open(path: &Path, opts: &InputOptions) -> Result<Source, PrepareError> {
        let mut file = File::open(path).map_err(io(path))?;
        let total_bytes = file.metadata().map_err(io(path))?.len();
        let mut head = [0u8; 4];
        let n = file.read(&mut head).map_err(io(path))?;
        let detected = detect(path, &head[..n])?;
        let format = match (opts.format, detected) {
            (InputFormat::Auto, f) => f,
            (InputFormat::Csv, SourceFormat::Parquet) => {
                return Err(PrepareError::Csv { line: None, why: "the rules say csv but the file is Parquet".into() })
            }
            (InputFormat::Csv, _) => SourceFormat::Csv,
            (InputFormat::Parquet, SourceFormat::Parquet) => SourceFormat::Parquet,
            (InputFormat::Parquet, _) => {
                return Err(PrepareError::Parquet { why: "file does not start with the Parquet magic \"PAR1\"".into() })
            }
        };
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (names, reader) = match format {
            SourceFormat::Csv => open_csv(path, opts, read.clone())?,
            SourceFormat::Parquet => open_parquet(path)?,
        };
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(PrepareError::DuplicateColumn { column: n.clone() });
            }
        }
        Ok(Source { format, names, total_bytes, read, row: 0, reader, opts: opts.clone() })
    }

    /// Bytes consumed so far (exact for CSV; by row group for Parquet).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next row's values into `out` (one per column); `false` at the end.
    pub fn next_row(&mut self, out: &mut Vec<Value>) -> Result<bool, PrepareError> {
        out.clear();
        match &mut self.reader {
            Reader::Csv { reader, record, pending } => {
                let rec = match pending.take() {
                    Some(r) => r,
                    None => {
                        if !reader.read_byte_record(record).map_err(csv_err)? {
                            return Ok(false);
                        }
                        record.clone()
                    }
                };
                self.row += 1;
                let line = rec.position().map(|p| p.line());
                for (i, field) in rec.iter().enumerate() {
                    let text = decode(field, self.opts.encoding).ok_or_else(|| PrepareError::Csv {
                        line,
                        why: format!("field {} is not valid UTF-8 (set input.encoding if it is Latin-1)", i + 1),
                    })?;
                    let null = self.opts.null_values.iter().any(|n| n == text.trim());
                    out.push(if null { Value::Null } else { Value::Text(text) });
                }
                Ok(true)
            }
            Reader::Parquet { reader, batch, pos } => {
                while batch.first().is_none_or(|c| *pos >= c.len()) {
                    let Some(next) = reader.next() else { return Ok(false) };
                    let next = next.map_err(|e| PrepareError::Parquet { why: e.to_string() })?;
                    *batch = next
                        .columns()
                        .iter()
                        .zip(&self.names)
                        .map(|(a, name)| values(name, a, self.row))
                        .collect::<Result<_, _>>()?;
                    *pos = 0;
                    self.read.fetch_add(next.get_array_memory_size() as u64, std::sync::atomic::Ordering::Relaxed);
                    if batch.is_empty() {
                        return Ok(false);
                    }
                }
                self.row += 1;
                for c in batch.iter_mut() {
                    out.push(std::mem::replace(&mut c[*pos], Value::Null));
                }
                *pos += 1;
                Ok(true)
            }
        }
    }
}

fn decode(field: &[u8], enc: Encoding) -> Option<String> {
    match enc {
        Encoding::Utf8 => std::str::from_utf8(field).ok().map(str::to_string),
        Encoding::Latin1 => Some(field.iter().map(|&b| char::from(b)).collect()),
    }
}

fn csv_err(e: csv::Error) -> PrepareError {
    let line = e.position().map(|p| p.line());
    let why = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Io(err) => format!("read error: {err}"),
        _ => "malformed record".to_string(),
    };
    PrepareError::Csv { line, why }
}

fn open_csv(
    path: &Path,
    opts: &InputOptions,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<(Vec<String>, Reader), PrepareError> {
    let mut file = BufReader::new(File::open(path).map_err(io(path))?);
    // Skip a UTF-8 byte-order mark.
    let mut bom = [0u8; 3];
    let n = file.read(&mut bom).map_err(io(path))?;
    let file = if bom[..n] == *b"\xEF\xBB\xBF" {
        file
    } else {
        let mut f = BufReader::new(File::open(path).map_err(io(path))?);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).map_err(io(path))?;
        f
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .delimiter(opts.delimiter as u8)
        .quote(opts.quote as u8)
        .from_reader(Counting { inner: file, read });
    let mut first = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut first).map_err(csv_err)? {
        return Err(PrepareError::Csv { line: Some(1), why: "the file is empty".into() });
    }
    let (names, pending) = if opts.header {
        let names = first
            .iter()
            .enumerate()
            .map(|(i, f)| {
                decode(f, opts.encoding).map(|s| s.trim().to_string()).ok_or_else(|| PrepareError::Csv {
                    line: Some(1),
                    why: format!("header field {} is not valid UTF-8", i + 1),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if names.iter().all(String::is_empty) {
            return Err(PrepareError::Csv { line: Some(1), why: "no header row".into() });
        }
        (names, None)
    } else {
        ((1..=first.len()).map(|i| format!("column_{i}")).collect(), Some(first))
    };
    Ok((names, Reader::Csv { reader: Box::new(reader), record: csv::ByteRecord::new(), pending }))
}

fn open_parquet(path: &Path) -> Result<(Vec<String>, Reader), PrepareError> {
    let pq = |e: parquet::errors::ParquetError| PrepareError::Parquet { why: e.to_string() };
    let file = File::open(path).map_err(io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let schema = builder.schema().clone();
    for f in schema.fields() {
        if !supported(f.data_type()) {
            let why = if f.data_type().is_nested() {
                "nested columns are not supported: flatten it into primitive columns first"
            } else {
                "this type is not supported"
            };
            return Err(PrepareError::UnsupportedType {
                column: f.name().clone(),
                data_type: format!("{} ({why})", f.data_type()),
            });
        }
    }
    let names = schema.fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder.with_batch_size(8_192).build().map_err(pq)?;
    Ok((names, Reader::Parquet { reader, batch: Vec::new(), pos: 0 }))
}

fn supported(t: &DataType) -> bool {
    use DataType::*;
    match t {
        Utf8
        | LargeUtf8
        | Utf8View
        | Boolean
        | Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Float16
        | Float32
        | Float64
        | Date32
        | Date64
        | Timestamp(_, _)
        | Decimal128(_, _)
        | Null => true,
        Dictionary(_, v) => matches!(**v, Utf8 | LargeUtf8),
        _ => false,
    }
}

fn timestamp(secs: i64, nanos: u32) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    let date = Date::from_days_since_epoch(days)?;
    let frac = if nanos == 0 { String::new() } else { format!(".{nanos:09}") };
    Some(format!("{date}T{:02}:{:02}:{:02}{frac}", s / 3600, s % 3600 / 60, s % 60))
}

/// One Arrow array as values; `first_row` is the 1-based row number before its first value.
fn values(name: &str, a: &ArrayRef, first_row: u64) -> Result<Vec<Value>, PrepareError> {
    let n = a.len();
    let bad = |i: usize, why: &str| PrepareError::BadValue {
        row: first_row + i as u64 + 1,
        column: name.to_string(),
        why: why.to_string(),
    };
    let mut out = Vec::with_capacity(n);
    macro_rules! each {
        ($arr:expr, $f:expr) => {{
            let arr = $arr;
            for i in 0..n {
                out.push(if arr.is_null(i) { Value::Null } else { $f(i, arr.value(i))? });
            }
        }};
    }
    let ok = |v: Value| -> Result<Value, PrepareError> { Ok(v) };
    match a.data_type() {
        DataType::Null => out.resize(n, Value::Null),
        DataType::Utf8 => each!(a.as_string::<i32>(), |_, s: &str| ok(Value::Text(s.to_string()))),
        DataType::LargeUtf8 => each!(a.as_string::<i64>(), |_, s: &str| ok(Value::Text(s.to_string()))),
        DataType::Utf8View => each!(a.as_string_view(), |_, s: &str| ok(Value::Text(s.to_string()))),
        DataType::Boolean => each!(a.as_boolean(), |_, b| ok(Value::Bool(b))),
        DataType::Int8 => each!(a.as_primitive::<Int8Type>(), |_, x| ok(Value::I64(i64::from(x)))),
        DataType::Int16 => each!(a.as_primitive::<Int16Type>(), |_, x| ok(Value::I64(i64::from(x)))),
        DataType::Int32 => each!(a.as_primitive::<Int32Type>(), |_, x| ok(Value::I64(i64::from(x)))),
        DataType::Int64 => each!(a.as_primitive::<Int64Type>(), |_, x| ok(Value::I64(x))),
        DataType::UInt8 => each!(a.as_primitive::<UInt8Type>(), |_, x| ok(Value::I64(i64::from(x)))),
        DataType::UInt16 => each!(a.as_primitive::<UInt16Type>(), |_, x| ok(Value::I64(i64::from(x)))),
        DataType::UInt32 => each!(a.as_primitive::<UInt32Type>(), |_, x| ok(Value::I64(i64::from(x)))),
        DataType::UInt64 => each!(a.as_primitive::<UInt64Type>(), |i, x: u64| i64::try_from(x)
            .map(Value::I64)
            .map_err(|_| bad(i, "unsigned value does not fit in a signed 64-bit integer"))),
        DataType::Float16 => each!(
            a.as_primitive::<Float16Type>(),
            |_, x: <Float16Type as arrow_array::ArrowPrimitiveType>::Native| ok(Value::F64(x.to_f64()))
        ),
        DataType::Float32 => each!(a.as_primitive::<Float32Type>(), |_, x| ok(Value::F64(f64::from(x)))),
        DataType::Float64 => each!(a.as_primitive::<Float64Type>(), |_, x| ok(Value::F64(x))),
        DataType::Decimal128(_, scale) => {
            let div = 10f64.powi(i32::from(*scale));
            each!(a.as_primitive::<Decimal128Type>(), |_, x: i128| ok(Value::F64(x as f64 / div)))
        }
        DataType::Date32 => {
            each!(a.as_primitive::<Date32Type>(), |i, d: i32| Date::from_days_since_epoch(i64::from(d))
                .map(Value::Date)
                .ok_or_else(|| bad(i, "date out of range")))
        }
        DataType::Date64 => {
            each!(a.as_primitive::<Date64Type>(), |i, ms: i64| Date::from_days_since_epoch(ms.div_euclid(86_400_000))
                .map(Value::Date)
                .ok_or_else(|| bad(i, "date out of range")))
        }
        DataType::Timestamp(unit, _) => {
            let (per_sec, arr): (i64, Vec<Option<i64>>) = match unit {
                TimeUnit::Second => (1, a.as_primitive::<TimestampSecondType>().iter().collect()),
                TimeUnit::Millisecond => (1_000, a.as_primitive::<TimestampMillisecondType>().iter().collect()),
                TimeUnit::Microsecond => (1_000_000, a.as_primitive::<TimestampMicrosecondType>().iter().collect()),
                TimeUnit::Nanosecond => (1_000_000_000, a.as_primitive::<TimestampNanosecondType>().iter().collect()),
            };
            for (i, v) in arr.into_iter().enumerate() {
                out.push(match v {
                    None => Value::Null,
                    Some(t) => {
                        let nanos = (t.rem_euclid(per_sec) * (1_000_000_000 / per_sec)) as u32;
                        Value::Text(
                            timestamp(t.div_euclid(per_sec), nanos).ok_or_else(|| bad(i, "timestamp out of range"))?,
                        )
                    }
                });
            }
        }
        DataType::Dictionary(_, _) => {
            let dict = a.as_any_dictionary();
            let keys = dict.normalized_keys();
            let vals = dict.values();
            let texts: Vec<Option<String>> = match vals.data_type() {
                DataType::Utf8 => vals.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect(),
                DataType::LargeUtf8 => vals.as_string::<i64>().iter().map(|s| s.map(str::to_string)).collect(),
                other => {
                    return Err(PrepareError::UnsupportedType {
                        column: name.to_string(),
                        data_type: other.to_string(),
                    })
                }
            };
            for (i, k) in keys.into_iter().enumerate() {
                out.push(if a.is_null(i) {
                    Value::Null
                } else {
                    texts.get(k).cloned().flatten().map(Value::Text).unwrap_or(Value::Null)
                });
            }
        }
        other => return Err(PrepareError::UnsupportedType { column: name.to_string(), data_type: other.to_string() }),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, ListArray, RecordBatch, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn rows(path: &Path, opts: &InputOptions) -> Result<(Vec<String>, Vec<Vec<Value>>), PrepareError> {
        let mut s = Source::open(path, opts)?;
        let mut all = Vec::new();
        let mut row = Vec::new();
        while s.next_row(&mut row)? {
            all.push(row.clone());
        }
        Ok((s.names, all))
    }

    #[test]
    fn parquet_values_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let schema =
            Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), Some("b")])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(File::create(&p).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let (names, all) = rows(&p, &InputOptions::default()).unwrap();
        assert_eq!(names, ["id", "n"]);
        assert_eq!(all, vec![vec![Value::Text("a".into()), Value::I64(1)], vec![Value::Text("b".into()), Value::Null]]);
    }

    #[test]
    fn nested_parquet_columns_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)])]);
        let schema = Arc::new(Schema::new(vec![Field::new("visits", list.data_type().clone(), true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(list)]).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(File::create(&p).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let e = rows(&p, &InputOptions::default()).err().unwrap().to_string();
        assert!(e.contains("\"visits\"") && e.contains("nested"), "{e}");
    }

    #[test]
    fn csv_dialects_encodings_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, b"\xEF\xBB\xBFid;name\n1;'M\xc3\xbcller; Anna'\n2;NA\n").unwrap();
        let opts = InputOptions { delimiter: ';', quote: '\'', ..InputOptions::default() };
        let (names, all) = rows(&p, &opts).unwrap();
        assert_eq!(names, ["id", "name"]);
        assert_eq!(all[0][1], Value::Text("Müller; Anna".into()));
        assert_eq!(all[1][1], Value::Null);
        // Latin-1: the same name as one byte per character.
        std::fs::write(&p, b"1,M\xfcller\n").unwrap();
        let e = rows(&p, &InputOptions { header: false, ..InputOptions::default() }).err().unwrap().to_string();
        assert!(e.contains("line 1") && e.contains("UTF-8"), "{e}");
        let latin = InputOptions { header: false, encoding: Encoding::Latin1, ..InputOptions::default() };
        let (names, all) = rows(&p, &latin).unwrap();
        assert_eq!(names, ["column_1", "column_2"]);
        assert_eq!(all[0][1], Value::Text("Müller".into()));
        // A ragged row names its line.
        std::fs::write(&p, b"a,b\n1,2\n3\n").unwrap();
        let e = rows(&p, &InputOptions::default()).err().unwrap().to_string();
        assert!(e.contains("line 3") && e.contains("1 fields where the header has 2"), "{e}");
    }

    #[test]
    fn format_detection() {
        assert_eq!(detect(Path::new("x.csv"), b"a,b").unwrap(), SourceFormat::Csv);
        assert_eq!(detect(Path::new("x.dat"), b"PAR1....").unwrap(), SourceFormat::Parquet);
        assert!(detect(Path::new("x.PARQUET"), b"a,b").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, b"id,id\n1,2\n").unwrap();
        let e = rows(&p, &InputOptions::default()).err().unwrap().to_string();
        assert_eq!(e, "column \"id\" appears more than once in the input");
    }
}
