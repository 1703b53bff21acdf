//! The owner's rules file: what happens to each source column, written and reviewed by
//! the owner (docs/prepare-rules.md). Parsed into checked types before any data is read:
//! a rule set that names no privacy unit, two units, a transform that cannot apply to
//! its declared type, or a label without a domain is refused here, naming the column.

use super::PrepareError;
use protocol::date::Date;
use protocol::manifest::{Sensitivity, Transform};
use protocol::policy::ColumnRole;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The version of the rules format this build reads.
pub const RULES_VERSION: u32 = 1;

/// A checked rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub dataset: Option<String>,
    pub input: InputOptions,
    pub k_anonymity: KAnonymityRule,
    /// The last day the sealed dataset may be used (owner's `release` and the enclave refuse it after).
    pub retention_until: Option<Date>,
    pub columns: Vec<ColumnRule>,
    /// SHA-256 of the rules file's bytes, recorded in the manifest beside the lineage.
    pub digest: protocol::Digest,
}

/// How to read the source table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputOptions {
    /// `auto` (Parquet magic, else CSV), `csv` or `parquet`.
    pub format: InputFormat,
    /// CSV field delimiter (one ASCII character; `\t` for tab-separated).
    pub delimiter: char,
    /// CSV quote character (one ASCII character).
    pub quote: char,
    /// Whether the first CSV record names the columns. Without a header, columns are
    /// named `column_1`, `column_2`, … in the rules.
    pub header: bool,
    /// `utf-8` or `latin-1` (ISO-8859-1, every byte one character).
    pub encoding: Encoding,
    /// CSV field values (after trimming) that mean "no value".
    pub null_values: Vec<String>,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            format: InputFormat::Auto,
            delimiter: ',',
            quote: '"',
            header: true,
            encoding: Encoding::Utf8,
            null_values: vec![String::new(), "NA".into(), "NULL".into(), "null".into(), "N/A".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    Auto,
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "latin-1")]
    Latin1,
}

/// What to do when an equivalence class over the quasi-identifiers is smaller than `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KRemedy {
    /// Refuse to seal; the owner generalizes further in the rules.
    Refuse,
    /// Leave out the rows of classes below `k` (counted in the owner's report, never released).
    Suppress,
    /// Seal anyway; the reason is recorded in the manifest.
    Override { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KAnonymityRule {
    pub k: u64,
    pub remedy: KRemedy,
}

impl Default for KAnonymityRule {
    fn default() -> Self {
        KAnonymityRule { k: 10, remedy: KRemedy::Refuse }
    }
}

/// How a kept value is typed in the sealed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    F64,
    I64,
    /// A string, dictionary-encoded.
    Text,
    /// true/false, yes/no, 1/0 (any case), sealed as i64 1/0.
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    Year,
    Month,
}

/// How one source column becomes (at most) one sealed column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnTransform {
    /// Keyed HMAC-SHA-256 under the owner's tokenization key: the privacy unit.
    Tokenize,
    /// Not sealed.
    Drop,
    /// Sealed as read, converted to `ty`.
    Keep { ty: ValueType },
    /// The first `chars` characters of a string (zip → zip3).
    Prefix { chars: usize },
    /// Integers floored to the lower edge of their bin: explicit `edges` (ascending; a
    /// value outside `[first, last)` is an error) or a fixed `width`.
    IntBins { bins: IntBinning },
    /// Numbers floored to the lower edge of their bin, `[edges[i], edges[i+1])`.
    NumericBins { edges: Vec<f64> },
    /// Top- and bottom-coding: values below `min` become `min`, above `max` become `max`.
    Clamp { min: f64, max: f64, ty: ValueType },
    /// A date truncated to its year (i64) or month (text `YYYY-MM`).
    DateTrunc { to: DatePart },
    /// Whole years between a birth date and `at`, optionally floored to a multiple of `width`.
    AgeAt { at: Date, width: Option<i64> },
    /// Categories mapped to integers (e.g. Yes → 1, No → 0); an unlisted value is an error.
    Recode { map: BTreeMap<String, i64> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum IntBinning {
    Edges(Vec<i64>),
    Width(i64),
}

/// What the sealed column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedType {
    F64,
    I64,
    Dict,
    Token,
}

impl SealedType {
    pub fn name(self) -> &'static str {
        match self {
            SealedType::F64 => "f64",
            SealedType::I64 => "i64",
            SealedType::Dict => "dict",
            SealedType::Token => "token",
        }
    }
}

/// What to do with a row whose value in this column is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullPolicy {
    /// Refuse to seal, naming the row and column.
    Refuse,
    /// Leave the row out (counted in the owner's report).
    DropRow,
    /// Seal the null as a null: the chunk's validity bitmap marks the row, its slot holds
    /// the type's canonical value (0, 0.0 or code 0). Not for the privacy unit.
    Keep,
}

/// One source column's checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRule {
    /// Column name in the source table.
    pub source: String,
    pub label: Sensitivity,
    pub transform: ColumnTransform,
    /// Name in the sealed table (defaults to the source name).
    pub into: String,
    pub roles: Vec<ColumnRole>,
    /// The allowed values of a label column.
    pub label_domain: Option<Vec<i64>>,
    /// Categories held by fewer than this many privacy units become `other`.
    pub merge_rare_below: Option<u64>,
    /// Why the owner treats the column this way (recorded in the manifest).
    pub reason: String,
    /// The owner's reason for keeping a column in which the scan finds PII.
    pub allow_pii: Option<String>,
    /// A kept column whose protection is weaker than in the previous snapshot, and why.
    pub allow_regression: Option<String>,
    pub nulls: NullPolicy,
}

/// The category that rare categories are merged into.
pub const OTHER_CATEGORY: &str = "other";

impl ColumnRule {
    /// Sealed name, or `None` when dropped.
    pub fn sealed_name(&self) -> Option<&str> {
        (self.transform != ColumnTransform::Drop).then_some(self.into.as_str())
    }

    pub fn sealed_type(&self) -> Option<SealedType> {
        Some(match &self.transform {
            ColumnTransform::Drop => return None,
            ColumnTransform::Tokenize => SealedType::Token,
            ColumnTransform::Keep { ty: ValueType::F64 } | ColumnTransform::NumericBins { .. } => SealedType::F64,
            ColumnTransform::Clamp { ty, .. } if *ty == ValueType::F64 => SealedType::F64,
            ColumnTransform::Keep { ty: ValueType::Text }
            | ColumnTransform::Prefix { .. }
            | ColumnTransform::DateTrunc { to: DatePart::Month } => SealedType::Dict,
            ColumnTransform::Keep { .. }
            | ColumnTransform::Clamp { .. }
            | ColumnTransform::IntBins { .. }
            | ColumnTransform::DateTrunc { to: DatePart::Year }
            | ColumnTransform::AgeAt { .. }
            | ColumnTransform::Recode { .. } => SealedType::I64,
        })
    }

    /// Whether the sealed column may hold nulls (`nulls = "keep"` on a sealed column).
    pub fn nullable(&self) -> bool {
        self.nulls == NullPolicy::Keep && self.keeps_values()
    }

    /// Whether source values (possibly coarsened) reach the sealed table; a PII hit in
    /// such a column is refused unless `allow_pii` says why.
    pub fn keeps_values(&self) -> bool {
        !matches!(self.transform, ColumnTransform::Drop | ColumnTransform::Tokenize)
    }

    /// The manifest's description of the transform.
    pub fn manifest_transform(&self, key_id: &str) -> Transform {
        let g = |rule: String| Transform::Generalized { rule };
        let rare = self.merge_rare_below.map(|k| format!(", merge_rare_below:{k}")).unwrap_or_default();
        match &self.transform {
            ColumnTransform::Tokenize => Transform::Tokenized { key_id: key_id.to_string() },
            ColumnTransform::Drop => Transform::Dropped,
            ColumnTransform::Keep { .. } if rare.is_empty() => Transform::Kept,
            ColumnTransform::Keep { .. } => g(format!("keep{rare}")),
            ColumnTransform::Prefix { chars } => g(format!("prefix:{chars}{rare}")),
            ColumnTransform::IntBins { bins: IntBinning::Width(w) } => g(format!("bin:{w}")),
            ColumnTransform::IntBins { bins: IntBinning::Edges(e) } => g(format!("bins:{e:?}")),
            ColumnTransform::NumericBins { edges } => g(format!("bins:{edges:?}")),
            ColumnTransform::Clamp { min, max, .. } => g(format!("clamp:[{min}, {max}]")),
            ColumnTransform::DateTrunc { to: DatePart::Year } => g("date_trunc:year".into()),
            ColumnTransform::DateTrunc { to: DatePart::Month } => g(format!("date_trunc:month{rare}")),
            ColumnTransform::AgeAt { at, width } => {
                g(format!("age_at:{at}{}", width.map(|w| format!(", width:{w}")).unwrap_or_default()))
            }
            ColumnTransform::Recode { map } => g(format!("recode:{map:?}")),
        }
    }

    /// A rough order of protection, for snapshot comparisons: higher protects more.
    pub fn protection_rank(&self) -> u8 {
        match &self.transform {
            ColumnTransform::Drop => 4,
            ColumnTransform::Tokenize => 3,
            ColumnTransform::Keep { .. } if self.merge_rare_below.is_none() => 1,
            _ => 2,
        }
    }
}

// ---- TOML form -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesToml {
    version: u32,
    dataset: Option<String>,
    #[serde(default)]
    input: InputOptions,
    k_anonymity: Option<KAnonymityToml>,
    retention_until: Option<String>,
    #[serde(rename = "column", default)]
    columns: Vec<ColumnToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KAnonymityToml {
    k: u64,
    #[serde(default = "refuse")]
    remedy: String,
    reason: Option<String>,
}

fn refuse() -> String {
    "refuse".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnToml {
    name: String,
    label: Sensitivity,
    transform: TransformToml,
    into: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    domain: Option<Vec<i64>>,
    merge_rare_below: Option<u64>,
    reason: String,
    allow_pii: Option<String>,
    allow_regression: Option<String>,
    nulls: Option<NullPolicy>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum TransformToml {
    Tokenize,
    Drop,
    Keep {
        #[serde(rename = "type")]
        ty: ValueType,
    },
    Prefix {
        chars: usize,
    },
    IntBins {
        edges: Option<Vec<i64>>,
        width: Option<i64>,
    },
    NumericBins {
        edges: Vec<f64>,
    },
    Clamp {
        min: f64,
        max: f64,
        #[serde(rename = "type")]
        ty: ValueType,
    },
    DateTrunc {
        to: DatePart,
    },
    AgeAt {
        at: String,
        width: Option<i64>,
    },
    Recode {
        map: BTreeMap<String, i64>,
    },
}

impl Rules {
    /// Parse and check a rules file.
    pub fn from_toml(text: &str) -> Result<Rules, PrepareError> {
        let raw: RulesToml = toml::from_str(text).map_err(|e| PrepareError::InvalidRules(one_line(&e.to_string())))?;
        let bad = |why: String| Err(PrepareError::InvalidRules(why));
        if raw.version != RULES_VERSION {
            return bad(format!("version {} is not supported (this build reads version {RULES_VERSION})", raw.version));
        }
        check_input(&raw.input)?;
        let k_anonymity = match raw.k_anonymity {
            None => KAnonymityRule::default(),
            Some(k) => {
                if k.k < 1 {
                    return bad("k_anonymity.k must be at least 1".into());
                }
                let remedy = match (k.remedy.as_str(), k.reason) {
                    ("refuse", None) => KRemedy::Refuse,
                    ("suppress", None) => KRemedy::Suppress,
                    ("override", Some(r)) if !r.trim().is_empty() => KRemedy::Override { reason: r },
                    ("override", _) => return bad("k_anonymity.remedy = \"override\" needs a reason".into()),
                    ("refuse" | "suppress", Some(_)) => {
                        return bad("k_anonymity.reason is only for remedy = \"override\"".into())
                    }
                    (other, _) => {
                        return bad(format!(
                            "k_anonymity.remedy {other:?}: expected \"refuse\", \"suppress\" or \"override\""
                        ))
                    }
                };
                KAnonymityRule { k: k.k, remedy }
            }
        };
        let retention_until = match raw.retention_until {
            None => None,
            Some(s) => Some(Date::parse_iso(&s).ok_or_else(|| {
                PrepareError::InvalidRules(format!("retention_until {s:?} is not a YYYY-MM-DD date"))
            })?),
        };
        let columns = raw.columns.into_iter().map(column).collect::<Result<Vec<_>, _>>()?;
        validate(&columns)?;
        Ok(Rules {
            dataset: raw.dataset,
            input: raw.input,
            k_anonymity,
            retention_until,
            columns,
            digest: protocol::Digest::of(text.as_bytes()),
        })
    }

    /// The rules for the demo's synthetic bank table (`cleanroom/rules/bank.toml` in the repo, beside the CLI that users run it with): the
    /// demo and the tests take the same path as any owner's table.
    pub fn bank() -> Rules {
        Rules::from_toml(BANK_RULES).expect("the bank rules in the repo are valid")
    }

    /// Index of the privacy-unit rule.
    pub fn unit_index(&self) -> usize {
        self.columns.iter().position(|r| r.transform == ColumnTransform::Tokenize).expect("validated: one unit")
    }
}

/// The bank table's rules, as shipped in the repository.
pub const BANK_RULES: &str = include_str!("../../../cleanroom/rules/bank.toml");

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_input(i: &InputOptions) -> Result<(), PrepareError> {
    let bad = |why: String| Err(PrepareError::InvalidRules(why));
    for (what, c) in [("delimiter", i.delimiter), ("quote", i.quote)] {
        if !c.is_ascii() || c == '\n' || c == '\r' {
            return bad(format!("input.{what} must be one ASCII character other than a line break"));
        }
    }
    if i.delimiter == i.quote {
        return bad("input.delimiter and input.quote must differ".into());
    }
    Ok(())
}

fn column(c: ColumnToml) -> Result<ColumnRule, PrepareError> {
    let name = c.name.clone();
    let bad = |why: String| PrepareError::InvalidRules(format!("column {name:?}: {why}"));
    let transform = match c.transform {
        TransformToml::Tokenize => ColumnTransform::Tokenize,
        TransformToml::Drop => ColumnTransform::Drop,
        TransformToml::Keep { ty } => ColumnTransform::Keep { ty },
        TransformToml::Prefix { chars: 0 } => return Err(bad("prefix of 0 characters".into())),
        TransformToml::Prefix { chars } => ColumnTransform::Prefix { chars },
        TransformToml::IntBins { edges: Some(e), width: None } => {
            if e.len() < 2 || e.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad("int_bins edges must be at least two strictly increasing values".into()));
            }
            ColumnTransform::IntBins { bins: IntBinning::Edges(e) }
        }
        TransformToml::IntBins { edges: None, width: Some(w) } if w > 0 => {
            ColumnTransform::IntBins { bins: IntBinning::Width(w) }
        }
        TransformToml::IntBins { .. } => return Err(bad("int_bins needs either edges or a positive width".into())),
        TransformToml::NumericBins { edges } => {
            if edges.len() < 2 || edges.iter().any(|x| !x.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad("numeric_bins edges must be at least two finite, strictly increasing values".into()));
            }
            ColumnTransform::NumericBins { edges }
        }
        TransformToml::Clamp { min, max, ty } => {
            if !(min.is_finite() && max.is_finite() && min < max) {
                return Err(bad("clamp needs finite min < max".into()));
            }
            if !matches!(ty, ValueType::F64 | ValueType::I64) {
                return Err(bad("clamp applies to type f64 or i64".into()));
            }
            if ty == ValueType::I64 && (min.fract() != 0.0 || max.fract() != 0.0) {
                return Err(bad("clamp of an i64 needs integer min and max".into()));
            }
            ColumnTransform::Clamp { min, max, ty }
        }
        TransformToml::DateTrunc { to } => ColumnTransform::DateTrunc { to },
        TransformToml::AgeAt { at, width } => {
            let at = Date::parse_iso(&at).ok_or_else(|| bad(format!("age_at: {at:?} is not a YYYY-MM-DD date")))?;
            if width.is_some_and(|w| w <= 0) {
                return Err(bad("age_at width must be positive".into()));
            }
            ColumnTransform::AgeAt { at, width }
        }
        TransformToml::Recode { map } if map.is_empty() => return Err(bad("recode needs a non-empty map".into())),
        TransformToml::Recode { map } => ColumnTransform::Recode { map },
    };
    let mut roles = Vec::new();
    let mut unit_role = false;
    for r in &c.roles {
        let role = match r.as_str() {
            "privacy_unit" => {
                unit_role = true;
                continue;
            }
            "input" => ColumnRole::Input,
            "group_key" => ColumnRole::GroupBy,
            "label" => ColumnRole::Label,
            "value" => ColumnRole::Value,
            other => {
                return Err(bad(format!("unknown role {other:?} (privacy_unit, input, group_key, label or value)")))
            }
        };
        if roles.contains(&role) {
            return Err(bad(format!("role {r:?} listed twice")));
        }
        roles.push(role);
    }
    let rule = ColumnRule {
        source: c.name.clone(),
        label: c.label,
        transform,
        into: c.into.unwrap_or_else(|| c.name.clone()),
        roles,
        label_domain: c.domain,
        merge_rare_below: c.merge_rare_below,
        reason: c.reason,
        allow_pii: c.allow_pii,
        allow_regression: c.allow_regression,
        nulls: c.nulls.unwrap_or(NullPolicy::Refuse),
    };
    let is_unit = rule.transform == ColumnTransform::Tokenize;
    if unit_role != is_unit {
        return Err(bad("the privacy_unit role and the tokenize transform go together, on exactly one column".into()));
    }
    if rule.reason.trim().is_empty() {
        return Err(bad("reason is empty: say why the column is treated this way".into()));
    }
    if rule.nulls == NullPolicy::Keep {
        match rule.transform {
            // The unit is what privacy is counted in: a row must belong to someone.
            ColumnTransform::Tokenize => {
                return Err(bad("the privacy unit is never null: nulls = \"keep\" is not allowed here".into()))
            }
            ColumnTransform::Drop => return Err(bad("nulls = \"keep\" on a dropped column has no effect".into())),
            _ => {}
        }
    }
    let ty = rule.sealed_type();
    if ty.is_none() && !rule.roles.is_empty() {
        return Err(bad("a dropped column has no role".into()));
    }
    for role in &rule.roles {
        let ok = match role {
            ColumnRole::Input => ty != Some(SealedType::Token),
            ColumnRole::GroupBy => ty == Some(SealedType::Dict),
            ColumnRole::Label => ty == Some(SealedType::I64),
            ColumnRole::Value => matches!(ty, Some(SealedType::I64 | SealedType::F64)),
        };
        if !ok {
            return Err(bad(format!(
                "a {} column cannot have the role {}",
                ty.map(SealedType::name).unwrap_or("dropped"),
                role.as_str()
            )));
        }
    }
    match (&rule.label_domain, rule.roles.contains(&ColumnRole::Label)) {
        (None, true) => return Err(bad("a label needs its domain, e.g. domain = [0, 1]".into())),
        (Some(_), false) => return Err(bad("domain is only for a column with the label role".into())),
        (Some(d), true) if d.is_empty() || d.iter().collect::<BTreeSet<_>>().len() != d.len() => {
            return Err(bad("domain must list distinct values".into()))
        }
        _ => {}
    }
    if let Some(k) = rule.merge_rare_below {
        if ty != Some(SealedType::Dict) {
            return Err(bad("merge_rare_below applies to text columns (keep text, prefix, date_trunc month)".into()));
        }
        if k < 2 {
            return Err(bad("merge_rare_below must be at least 2".into()));
        }
    }
    if rule.allow_pii.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(bad("allow_pii needs a reason".into()));
    }
    if rule.label == Sensitivity::DirectIdentifier && rule.keeps_values() {
        return Err(bad("a direct identifier must be tokenized or dropped".into()));
    }
    Ok(rule)
}

/// Checks across rules: one unit, unique source and sealed names.
pub(crate) fn validate(rules: &[ColumnRule]) -> Result<usize, PrepareError> {
    let bad = |why: String| Err(PrepareError::InvalidRules(why));
    let mut sources = BTreeSet::new();
    let mut sealed = BTreeSet::new();
    let mut unit: Option<usize> = None;
    for (i, r) in rules.iter().enumerate() {
        if !sources.insert(r.source.as_str()) {
            return bad(format!("column {:?} has more than one rule", r.source));
        }
        if let Some(name) = r.sealed_name() {
            if name.is_empty() {
                return bad(format!("column {:?}: empty sealed name", r.source));
            }
            if !sealed.insert(name) {
                return bad(format!("sealed column name {name:?} is produced by more than one rule"));
            }
        }
        if r.transform == ColumnTransform::Tokenize {
            if let Some(u) = unit {
                return bad(format!(
                    "only one column can be the privacy unit, but {:?} and {:?} are both tokenized",
                    rules[u].source, r.source
                ));
            }
            unit = Some(i);
        }
    }
    match unit {
        Some(u) => Ok(u),
        None => bad("no column is the privacy unit: tokenize exactly one identifier column".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
version = 1
[[column]]
name = "id"
label = "direct_identifier"
transform = { kind = "tokenize" }
roles = ["privacy_unit"]
reason = "customer number"
"#;

    fn with(extra: &str) -> Result<Rules, PrepareError> {
        Rules::from_toml(&format!("{MINIMAL}\n{extra}"))
    }

    fn err(extra: &str) -> String {
        with(extra).unwrap_err().to_string()
    }

    #[test]
    fn the_bank_rules_parse() {
        let r = Rules::bank();
        assert_eq!(r.columns[r.unit_index()].source, "customer_id");
        assert_eq!(r.k_anonymity.k, 10);
    }

    #[test]
    fn every_transform_parses_with_its_sealed_type() {
        let r = with(
            r#"
[[column]]
name = "a"
label = "sensitive"
transform = { kind = "keep", type = "bool" }
reason = "r"
[[column]]
name = "b"
label = "quasi_identifier"
transform = { kind = "int_bins", edges = [0, 18, 65, 130] }
reason = "r"
[[column]]
name = "c"
label = "sensitive"
transform = { kind = "numeric_bins", edges = [0.0, 0.5, 1.0] }
reason = "r"
[[column]]
name = "d"
label = "sensitive"
transform = { kind = "clamp", min = 0, max = 100, type = "i64" }
reason = "r"
[[column]]
name = "e"
label = "quasi_identifier"
transform = { kind = "date_trunc", to = "month" }
merge_rare_below = 5
roles = ["group_key"]
reason = "r"
[[column]]
name = "f"
label = "quasi_identifier"
transform = { kind = "age_at", at = "2026-01-01", width = 5 }
reason = "r"
[[column]]
name = "g"
label = "sensitive"
transform = { kind = "recode", map = { Yes = 1, No = 0 } }
roles = ["label"]
domain = [0, 1]
reason = "r"
"#,
        )
        .unwrap();
        let types: Vec<&str> = r.columns.iter().map(|c| c.sealed_type().unwrap().name()).collect();
        assert_eq!(types, ["token", "i64", "i64", "f64", "i64", "dict", "i64", "i64"]);
    }

    #[test]
    fn bad_rules_name_the_column() {
        assert!(err("[[column]]\nname = \"x\"\nlabel = \"sensitive\"\ntransform = { kind = \"prefix\", chars = 0 }\nreason = \"r\"").contains("\"x\""));
        let e = err("[[column]]\nname = \"x\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"keep\", type = \"text\" }\nreason = \"r\"");
        assert!(e.contains("\"x\"") && e.contains("direct identifier"), "{e}");
        let e = err("[[column]]\nname = \"y\"\nlabel = \"sensitive\"\ntransform = { kind = \"keep\", type = \"i64\" }\nroles = [\"label\"]\nreason = \"r\"");
        assert!(e.contains("\"y\"") && e.contains("domain"), "{e}");
        let e = err("[[column]]\nname = \"z\"\nlabel = \"sensitive\"\ntransform = { kind = \"keep\", type = \"f64\" }\nroles = [\"group_key\"]\nreason = \"r\"");
        assert!(e.contains("\"z\"") && e.contains("group_by"), "{e}");
        let e = err("[[column]]\nname = \"w\"\nlabel = \"public\"\ntransform = { kind = \"keep\", type = \"f64\" }\nreason = \" \"");
        assert!(e.contains("\"w\"") && e.contains("reason"), "{e}");
        let e = err("[[column]]\nname = \"id2\"\nlabel = \"direct_identifier\"\ntransform = { kind = \"tokenize\" }\nroles = [\"privacy_unit\"]\nreason = \"r\"");
        assert!(e.contains("only one column"), "{e}");
        let e = err("[k_anonymity]\nk = 5\nremedy = \"override\"");
        assert!(e.contains("needs a reason"), "{e}");
        let e = err("[[column]]\nname = \"q\"\nlabel = \"public\"\ntransform = { kind = \"smudge\" }\nreason = \"r\"");
        assert!(e.contains("smudge"), "{e}");
        let e = Rules::from_toml("version = 1").unwrap_err().to_string();
        assert!(e.contains("privacy unit"), "{e}");
        let e = Rules::from_toml(&MINIMAL.replace("version = 1", "version = 2")).unwrap_err().to_string();
        assert!(e.contains("version 2"), "{e}");
    }

    #[test]
    fn nulls_keep_is_for_sealed_values_only() {
        let col = |transform: &str, nulls: &str| {
            format!("[[column]]\nname = \"x\"\nlabel = \"sensitive\"\ntransform = {transform}\nreason = \"r\"\nnulls = \"{nulls}\"")
        };
        let r = with(&col("{ kind = \"keep\", type = \"f64\" }", "keep")).unwrap();
        assert_eq!(r.columns[1].nulls, NullPolicy::Keep);
        assert!(r.columns[1].nullable() && !r.columns[0].nullable());
        assert!(!with(&col("{ kind = \"keep\", type = \"f64\" }", "drop_row")).unwrap().columns[1].nullable());
        let e = err(&col("{ kind = \"drop\" }", "keep"));
        assert!(e.contains("\"x\"") && e.contains("dropped"), "{e}");
        let e = Rules::from_toml(&format!("{MINIMAL}nulls = \"keep\"")).unwrap_err().to_string();
        assert!(e.contains("\"id\"") && e.contains("never null"), "{e}");
        // A label may keep its nulls: the release treats a null label like one outside its domain.
        let label =
            "[[column]]\nname = \"y\"\nlabel = \"sensitive\"\ntransform = { kind = \"keep\", type = \"i64\" }\n\
                     roles = [\"label\"]\ndomain = [0, 1]\nreason = \"r\"\nnulls = \"keep\"";
        assert!(with(label).unwrap().columns[1].nullable());
        assert!(err(&col("{ kind = \"keep\", type = \"f64\" }", "maybe")).contains("maybe"));
    }

    #[test]
    fn the_digest_is_of_the_bytes() {
        let a = with("").unwrap();
        let b = with("# a comment changes the file").unwrap();
        assert_ne!(a.digest, b.digest);
        assert_eq!(a.columns, b.columns);
    }
}
