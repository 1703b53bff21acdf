//! Column conversions: raw source values → sealed column data, plus the k-anonymity
//! report over the generalized quasi-identifiers.

use super::rules::{ColumnRule, ColumnTransform};
use super::source::RawColumn;
use super::PrepareError;
use crate::keystore::Tokenizer;
use protocol::manifest::KAnonymityReport;
use protocol::table::ColumnData;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

/// Describes a value's shape without revealing it (errors must not echo PII).
fn shape(s: &str) -> String {
    if s.is_empty() {
        "an empty value".into()
    } else {
        format!("text of {} characters", s.chars().count())
    }
}

fn bad(row: usize, column: &str, why: String) -> PrepareError {
    PrepareError::BadValue { row: row as u64 + 1, column: column.to_string(), why }
}

/// The column as text (numbers formatted the way a CSV writer would).
pub(crate) fn as_text(col: &RawColumn) -> Cow<'_, [String]> {
    match col {
        RawColumn::Text(v) => Cow::Borrowed(v),
        RawColumn::I64(v) => Cow::Owned(v.iter().map(i64::to_string).collect()),
        RawColumn::F64(v) => Cow::Owned(v.iter().map(f64::to_string).collect()),
    }
}

pub(crate) fn as_i64(col: &RawColumn, name: &str) -> Result<Vec<i64>, PrepareError> {
    match col {
        RawColumn::I64(v) => Ok(v.clone()),
        RawColumn::Text(v) => v
            .iter()
            .enumerate()
            .map(|(row, s)| {
                s.trim().parse::<i64>().map_err(|_| bad(row, name, format!("expected an integer, got {}", shape(s))))
            })
            .collect(),
        RawColumn::F64(v) => v
            .iter()
            .enumerate()
            .map(|(row, &x)| {
                if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    Ok(x as i64)
                } else {
                    Err(bad(row, name, "expected an integer, got a non-integral number".into()))
                }
            })
            .collect(),
    }
}

pub(crate) fn as_f64(col: &RawColumn, name: &str) -> Result<Vec<f64>, PrepareError> {
    let finite = |row: usize, x: f64| {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(bad(row, name, "expected a finite number, got NaN or infinity".into()))
        }
    };
    match col {
        RawColumn::F64(v) => v.iter().enumerate().map(|(row, &x)| finite(row, x)).collect(),
        RawColumn::I64(v) => Ok(v.iter().map(|&x| x as f64).collect()),
        RawColumn::Text(v) => v
            .iter()
            .enumerate()
            .map(|(row, s)| {
                let x = s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| bad(row, name, format!("expected a number, got {}", shape(s))))?;
                finite(row, x)
            })
            .collect(),
    }
}

/// Dictionary-encode strings with a sorted dictionary (so codes do not depend on row order).
pub(crate) fn dict(values: impl Iterator<Item = String> + Clone) -> ColumnData {
    let dictionary: Vec<String> = values.clone().collect::<BTreeSet<_>>().into_iter().collect();
    let index: HashMap<&str, u32> = dictionary.iter().enumerate().map(|(i, v)| (v.as_str(), i as u32)).collect();
    let codes = values.map(|v| index[v.as_str()]).collect();
    ColumnData::Dict { codes, values: dictionary }
}

/// Apply one (non-drop) rule to a raw column.
pub(crate) fn apply(rule: &ColumnRule, col: &RawColumn, tokenizer: &Tokenizer) -> Result<ColumnData, PrepareError> {
    let name = rule.source.as_str();
    Ok(match &rule.transform {
        ColumnTransform::Drop => unreachable!("dropped columns are not applied"),
        ColumnTransform::Tokenize { .. } => {
            let text = as_text(col);
            let mut tokens = Vec::with_capacity(text.len());
            for (row, v) in text.iter().enumerate() {
                if v.trim().is_empty() {
                    return Err(bad(row, name, "empty identifier".into()));
                }
                tokens.push(tokenizer.token(v.as_bytes()));
            }
            ColumnData::Token(tokens)
        }
        ColumnTransform::Prefix { chars, .. } => {
            let text = as_text(col);
            for (row, v) in text.iter().enumerate() {
                if v.chars().count() < *chars {
                    return Err(bad(row, name, format!("needs at least {chars} characters, got {}", shape(v))));
                }
            }
            dict(text.iter().map(|v| v.chars().take(*chars).collect::<String>()))
        }
        ColumnTransform::Bin { width, .. } => {
            let v = as_i64(col, name)?;
            let mut out = Vec::with_capacity(v.len());
            for (row, x) in v.into_iter().enumerate() {
                let binned = x
                    .div_euclid(*width)
                    .checked_mul(*width)
                    .ok_or_else(|| bad(row, name, "value out of range for binning".into()))?;
                out.push(binned);
            }
            ColumnData::I64(out)
        }
        ColumnTransform::KeepF64 => ColumnData::F64(as_f64(col, name)?),
        ColumnTransform::KeepI64 => ColumnData::I64(as_i64(col, name)?),
        ColumnTransform::KeepDict => dict(as_text(col).iter().cloned()),
    })
}

/// Equivalence classes over the given sealed quasi-identifier columns.
pub(crate) fn k_anonymity(names: &[String], cols: &[&ColumnData], rows: usize, k_target: u64) -> KAnonymityReport {
    let mut classes: HashMap<Vec<u64>, u64> = HashMap::new();
    let mut key = Vec::with_capacity(cols.len() * 4);
    for row in 0..rows {
        key.clear();
        for c in cols {
            match c {
                ColumnData::F64(v) => key.push(v[row].to_bits()),
                ColumnData::I64(v) => key.push(v[row] as u64),
                ColumnData::Dict { codes, .. } => key.push(u64::from(codes[row])),
                ColumnData::Token(v) => {
                    key.extend(v[row].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))))
                }
            }
        }
        *classes.entry(key.clone()).or_default() += 1;
    }
    let below: Vec<u64> = classes.values().copied().filter(|&n| n < k_target).collect();
    KAnonymityReport {
        quasi_identifiers: names.to_vec(),
        k_min: classes.values().copied().min().unwrap_or(0),
        classes: classes.len() as u64,
        k_target,
        classes_below_target: below.len() as u64,
        rows_below_target: below.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::TokenKey;
    use protocol::manifest::Sensitivity;

    fn tk() -> Tokenizer {
        TokenKey::from_bytes([1; 32]).tokenizer()
    }

    fn text(v: &[&str]) -> RawColumn {
        RawColumn::Text(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn zip_prefix_and_decade_bins() {
        let zip = ColumnRule::new(
            "zip",
            Sensitivity::QuasiIdentifier,
            ColumnTransform::Prefix { chars: 3, into: "zip3".into() },
        );
        let got = apply(&zip, &text(&["02139", "10001", "02116"]), &tk()).unwrap();
        assert_eq!(got, ColumnData::Dict { codes: vec![0, 1, 0], values: vec!["021".into(), "100".into()] });
        let by = ColumnRule::new(
            "birth_year",
            Sensitivity::QuasiIdentifier,
            ColumnTransform::Bin { width: 10, into: "birth_decade".into() },
        );
        let got = apply(&by, &text(&["1987", "1990", "1999", "2005", "1940"]), &tk()).unwrap();
        assert_eq!(got, ColumnData::I64(vec![1980, 1990, 1990, 2000, 1940]));
        assert_eq!(apply(&by, &RawColumn::I64(vec![-1, 9]), &tk()).unwrap(), ColumnData::I64(vec![-10, 0]));
        let e = apply(&zip, &text(&["02139", "12"]), &tk()).unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("zip"), "{e}");
    }

    #[test]
    fn tokens_are_keyed() {
        let rule = ColumnRule::new(
            "customer_id",
            Sensitivity::DirectIdentifier,
            ColumnTransform::Tokenize { into: "t".into() },
        );
        let col = text(&["C1", "C2", "C1"]);
        let ColumnData::Token(a) = apply(&rule, &col, &tk()).unwrap() else { panic!() };
        let ColumnData::Token(b) = apply(&rule, &col, &TokenKey::from_bytes([2; 32]).tokenizer()).unwrap() else {
            panic!()
        };
        assert_eq!(a[0], a[2]);
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], b[0]);
        // Numeric identifiers tokenize like their text form (CSV and Parquet agree).
        let ColumnData::Token(n) = apply(&rule, &RawColumn::I64(vec![42]), &tk()).unwrap() else { panic!() };
        let ColumnData::Token(s) = apply(&rule, &text(&["42"]), &tk()).unwrap() else { panic!() };
        assert_eq!(n, s);
    }

    #[test]
    fn type_errors_name_row_and_column_without_the_value() {
        let e = as_f64(&text(&["1.5", "jane@example.com"]), "income").unwrap_err().to_string();
        assert!(e.contains("row 2") && e.contains("income"), "{e}");
        assert!(!e.contains("jane"), "{e}");
        assert!(as_f64(&text(&["NaN"]), "x").is_err());
        assert!(as_i64(&text(&["1.5"]), "x").is_err());
        assert!(as_i64(&RawColumn::F64(vec![2.5]), "x").is_err());
        assert_eq!(as_i64(&RawColumn::F64(vec![2.0]), "x").unwrap(), vec![2]);
    }

    #[test]
    fn k_anonymity_counts_classes() {
        let a = ColumnData::I64(vec![1, 1, 1, 2, 2, 3]);
        let b = ColumnData::Dict { codes: vec![0, 0, 1, 0, 0, 0], values: vec!["x".into(), "y".into()] };
        let r = k_anonymity(&["a".into(), "b".into()], &[&a, &b], 6, 2);
        assert_eq!((r.k_min, r.classes, r.classes_below_target, r.rows_below_target), (1, 4, 2, 2));
    }
}
