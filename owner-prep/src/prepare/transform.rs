//! One source value → one sealed value, by the column's rule. Pure functions; errors
//! name the row and column and describe a value's shape, never the value.

use super::rules::{ColumnRule, ColumnTransform, DatePart, IntBinning, ValueType};
use super::source::Value;
use super::PrepareError;
use protocol::date::Date;

/// A sealed value before dictionary encoding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sealed {
    F64(f64),
    I64(i64),
    Text(String),
    Token([u8; 32]),
    /// A null kept as a null (`nulls = "keep"`): a validity bit, no value.
    Null,
}

/// Computes privacy-unit tokens: keyed HMAC-SHA-256 in the owner's key file or in a
/// PKCS#11 token. The key id names the population in the manifest and the ledger.
pub trait TokenKey {
    fn key_id(&self) -> String;
    fn token(&self, identifier: &[u8]) -> Result<[u8; 32], String>;
}

/// Describes a value's shape without revealing it (errors must not echo PII).
fn shape(v: &Value) -> String {
    match v {
        Value::Null => "no value".into(),
        Value::Text(s) if s.trim().is_empty() => "an empty value".into(),
        Value::Text(s) => format!("text of {} characters", s.chars().count()),
        Value::I64(_) => "an integer".into(),
        Value::F64(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Date(_) => "a date".into(),
    }
}

pub(crate) fn bad(row: u64, column: &str, why: String) -> PrepareError {
    PrepareError::BadValue { row, column: column.to_string(), why }
}

/// The value as text, the way a CSV writer would print it.
pub(crate) fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) => s.clone(),
        Value::I64(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => d.to_string(),
    }
}

fn as_i64(v: &Value, row: u64, col: &str) -> Result<i64, PrepareError> {
    match v {
        Value::I64(x) => Ok(*x),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::F64(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(*x as i64),
        Value::Text(s) => {
            s.trim().parse::<i64>().map_err(|_| bad(row, col, format!("expected an integer, got {}", shape(v))))
        }
        _ => Err(bad(row, col, format!("expected an integer, got {}", shape(v)))),
    }
}

fn as_f64(v: &Value, row: u64, col: &str) -> Result<f64, PrepareError> {
    let x = match v {
        Value::F64(x) => *x,
        Value::I64(x) => *x as f64,
        Value::Text(s) => {
            s.trim().parse::<f64>().map_err(|_| bad(row, col, format!("expected a number, got {}", shape(v))))?
        }
        _ => return Err(bad(row, col, format!("expected a number, got {}", shape(v)))),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(bad(row, col, "expected a finite number, got NaN or infinity".into()))
    }
}

fn as_bool(v: &Value, row: u64, col: &str) -> Result<i64, PrepareError> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::I64(0) => Ok(0),
        Value::I64(1) => Ok(1),
        Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "t" | "1" => Ok(1),
            "false" | "no" | "n" | "f" | "0" => Ok(0),
            _ => Err(bad(row, col, format!("expected true/false, yes/no or 1/0, got {}", shape(v)))),
        },
        _ => Err(bad(row, col, format!("expected true/false, yes/no or 1/0, got {}", shape(v)))),
    }
}

fn as_date(v: &Value, row: u64, col: &str) -> Result<Date, PrepareError> {
    match v {
        Value::Date(d) => Ok(*d),
        Value::Text(s) => {
            Date::parse_iso(s).ok_or_else(|| bad(row, col, format!("expected a YYYY-MM-DD date, got {}", shape(v))))
        }
        _ => Err(bad(row, col, format!("expected a date, got {}", shape(v)))),
    }
}

fn floor_to(x: i64, width: i64, row: u64, col: &str) -> Result<i64, PrepareError> {
    x.div_euclid(width).checked_mul(width).ok_or_else(|| bad(row, col, "value out of range for binning".into()))
}

/// [`apply`], except that a null in a column whose rule keeps nulls stays a null.
pub(crate) fn apply_or_null(
    rule: &ColumnRule,
    v: &Value,
    row: u64,
    tokens: &dyn TokenKey,
) -> Result<Sealed, PrepareError> {
    if *v == Value::Null && rule.nullable() {
        return Ok(Sealed::Null);
    }
    apply(rule, v, row, tokens)
}

/// Apply `rule` to a non-null source value of row `row` (1-based). Dropped columns are
/// never applied.
pub(crate) fn apply(rule: &ColumnRule, v: &Value, row: u64, tokens: &dyn TokenKey) -> Result<Sealed, PrepareError> {
    let col = rule.source.as_str();
    Ok(match &rule.transform {
        ColumnTransform::Drop => unreachable!("dropped columns are not applied"),
        ColumnTransform::Tokenize => {
            let text = as_text(v);
            if text.trim().is_empty() {
                return Err(bad(row, col, "empty identifier".into()));
            }
            Sealed::Token(
                tokens.token(text.as_bytes()).map_err(|e| PrepareError::Hsm(format!("tokenizing {col:?}: {e}")))?,
            )
        }
        ColumnTransform::Keep { ty: ValueType::F64 } => Sealed::F64(as_f64(v, row, col)?),
        ColumnTransform::Keep { ty: ValueType::I64 } => Sealed::I64(as_i64(v, row, col)?),
        ColumnTransform::Keep { ty: ValueType::Bool } => Sealed::I64(as_bool(v, row, col)?),
        ColumnTransform::Keep { ty: ValueType::Text } => Sealed::Text(as_text(v)),
        ColumnTransform::Prefix { chars } => {
            let text = as_text(v);
            if text.chars().count() < *chars {
                return Err(bad(row, col, format!("needs at least {chars} characters, got {}", shape(v))));
            }
            Sealed::Text(text.chars().take(*chars).collect())
        }
        ColumnTransform::IntBins { bins: IntBinning::Width(w) } => {
            Sealed::I64(floor_to(as_i64(v, row, col)?, *w, row, col)?)
        }
        ColumnTransform::IntBins { bins: IntBinning::Edges(edges) } => {
            let x = as_i64(v, row, col)?;
            let i = edges.partition_point(|&e| e <= x);
            if i == 0 || i == edges.len() {
                return Err(bad(row, col, "value outside the first and last bin edges".into()));
            }
            Sealed::I64(edges[i - 1])
        }
        ColumnTransform::NumericBins { edges } => {
            let x = as_f64(v, row, col)?;
            let i = edges.partition_point(|&e| e <= x);
            if i == 0 || i == edges.len() {
                return Err(bad(row, col, "value outside the first and last bin edges".into()));
            }
            Sealed::F64(edges[i - 1])
        }
        ColumnTransform::Clamp { min, max, ty: ValueType::I64 } => {
            Sealed::I64(as_i64(v, row, col)?.clamp(*min as i64, *max as i64))
        }
        ColumnTransform::Clamp { min, max, .. } => Sealed::F64(as_f64(v, row, col)?.clamp(*min, *max)),
        ColumnTransform::DateTrunc { to: DatePart::Year } => Sealed::I64(i64::from(as_date(v, row, col)?.year)),
        ColumnTransform::DateTrunc { to: DatePart::Month } => {
            let d = as_date(v, row, col)?;
            Sealed::Text(format!("{:04}-{:02}", d.year, d.month))
        }
        ColumnTransform::AgeAt { at, width } => {
            let age = as_date(v, row, col)?.years_until(at);
            if age < 0 {
                return Err(bad(row, col, "birth date after the reference date".into()));
            }
            Sealed::I64(match width {
                Some(w) => floor_to(age, *w, row, col)?,
                None => age,
            })
        }
        ColumnTransform::Recode { map } => {
            let text = as_text(v);
            Sealed::I64(
                *map.get(text.trim()).ok_or_else(|| bad(row, col, format!("{} is not in the recode map", shape(v))))?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::rules::Rules;

    struct Fixed;
    impl TokenKey for Fixed {
        fn key_id(&self) -> String {
            "k".into()
        }
        fn token(&self, id: &[u8]) -> Result<[u8; 32], String> {
            Ok(protocol::Digest::of(id).0)
        }
    }

    fn rule(transform: &str) -> ColumnRule {
        let text = format!(
            "version = 1\n[[column]]\nname = \"id\"\nlabel = \"direct_identifier\"\ntransform = {{ kind = \"tokenize\" }}\n\
             roles = [\"privacy_unit\"]\nreason = \"r\"\n[[column]]\nname = \"x\"\nlabel = \"sensitive\"\ntransform = {transform}\nreason = \"r\"\n"
        );
        Rules::from_toml(&text).unwrap().columns.remove(1)
    }

    fn run(transform: &str, v: Value) -> Result<Sealed, String> {
        apply(&rule(transform), &v, 7, &Fixed).map_err(|e| e.to_string())
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn each_transform() {
        assert_eq!(run("{ kind = \"prefix\", chars = 3 }", t("02139")), Ok(Sealed::Text("021".into())));
        assert_eq!(run("{ kind = \"int_bins\", width = 10 }", t("1987")), Ok(Sealed::I64(1980)));
        assert_eq!(run("{ kind = \"int_bins\", width = 10 }", Value::I64(-1)), Ok(Sealed::I64(-10)));
        let edges = "{ kind = \"int_bins\", edges = [0, 18, 65, 130] }";
        assert_eq!(run(edges, t("17")), Ok(Sealed::I64(0)));
        assert_eq!(run(edges, t("18")), Ok(Sealed::I64(18)));
        assert!(run(edges, t("130")).unwrap_err().contains("outside"));
        let nb = "{ kind = \"numeric_bins\", edges = [0.0, 0.25, 1.0] }";
        assert_eq!(run(nb, t("0.3")), Ok(Sealed::F64(0.25)));
        let clamp = "{ kind = \"clamp\", min = 0, max = 100000, type = \"f64\" }";
        assert_eq!(run(clamp, t("250000.5")), Ok(Sealed::F64(100000.0)));
        assert_eq!(run(clamp, t("-3")), Ok(Sealed::F64(0.0)));
        assert_eq!(run("{ kind = \"date_trunc\", to = \"year\" }", t("1987-06-30")), Ok(Sealed::I64(1987)));
        assert_eq!(
            run("{ kind = \"date_trunc\", to = \"month\" }", t("1987-06-30")),
            Ok(Sealed::Text("1987-06".into()))
        );
        let age = "{ kind = \"age_at\", at = \"2026-01-01\" }";
        assert_eq!(run(age, t("1990-01-01")), Ok(Sealed::I64(36)));
        assert_eq!(run(age, t("1990-01-02")), Ok(Sealed::I64(35)));
        assert!(run(age, t("2027-01-01")).unwrap_err().contains("after"));
        let aw = "{ kind = \"age_at\", at = \"2026-01-01\", width = 5 }";
        assert_eq!(run(aw, Value::Date(Date::new(1990, 1, 2).unwrap())), Ok(Sealed::I64(35)));
        let rec = "{ kind = \"recode\", map = { Yes = 1, No = 0 } }";
        assert_eq!(run(rec, t("Yes")), Ok(Sealed::I64(1)));
        assert!(run(rec, t("Maybe")).unwrap_err().contains("recode map"));
        assert_eq!(run("{ kind = \"keep\", type = \"bool\" }", t("No")), Ok(Sealed::I64(0)));
        assert_eq!(run("{ kind = \"keep\", type = \"i64\" }", Value::F64(2.0)), Ok(Sealed::I64(2)));
    }

    #[test]
    fn errors_name_row_and_column_not_the_value() {
        let e = run("{ kind = \"keep\", type = \"f64\" }", t("jane@example.com")).unwrap_err();
        assert!(e.contains("row 7") && e.contains("\"x\"") && !e.contains("jane"), "{e}");
        assert!(run("{ kind = \"keep\", type = \"f64\" }", t("NaN")).is_err());
        assert!(run("{ kind = \"keep\", type = \"i64\" }", t("1.5")).is_err());
        let e = run("{ kind = \"date_trunc\", to = \"year\" }", t("1987-02-30")).unwrap_err();
        assert!(e.contains("date") && !e.contains("1987"), "{e}");
    }
}
