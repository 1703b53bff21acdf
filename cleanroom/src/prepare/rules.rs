//! What the owner says should happen to each source column.

use super::PrepareError;
use protocol::manifest::{Sensitivity, Transform};
use std::collections::BTreeSet;

/// How one source column is turned into (at most) one sealed column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnTransform {
    /// Keyed HMAC-SHA-256 under the owner's tokenization key, sealed as `token` under
    /// the name `into`. Exactly one column is tokenized: it is the privacy unit.
    Tokenize { into: String },
    /// Not sealed at all.
    Drop,
    /// Keep the first `chars` characters of a string (e.g. zip → zip3); sealed as `dict`.
    Prefix { chars: usize, into: String },
    /// Floor an integer to a multiple of `width` (e.g. 1987 → 1980); sealed as `i64`.
    Bin { width: i64, into: String },
    /// Sealed unchanged as `f64` under the source name.
    KeepF64,
    /// Sealed unchanged as `i64` under the source name.
    KeepI64,
    /// Sealed unchanged as a dictionary-encoded string under the source name.
    KeepDict,
}

/// The treatment of one source column: its sensitivity label and its transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRule {
    /// Column name in the source file.
    pub source: String,
    pub label: Sensitivity,
    pub transform: ColumnTransform,
}

impl ColumnRule {
    pub fn new(source: &str, label: Sensitivity, transform: ColumnTransform) -> Self {
        ColumnRule { source: source.to_string(), label, transform }
    }

    /// The rules for the synthetic bank table of [`crate::datagen`].
    pub fn bank_defaults() -> Vec<ColumnRule> {
        use ColumnTransform::*;
        use Sensitivity::*;
        vec![
            ColumnRule::new("customer_id", DirectIdentifier, Tokenize { into: "customer_token".into() }),
            ColumnRule::new("full_name", DirectIdentifier, Drop),
            ColumnRule::new("email", DirectIdentifier, Drop),
            ColumnRule::new("ssn", DirectIdentifier, Drop),
            ColumnRule::new("phone", DirectIdentifier, Drop),
            ColumnRule::new("zip", QuasiIdentifier, Prefix { chars: 3, into: "zip3".into() }),
            ColumnRule::new("birth_year", QuasiIdentifier, Bin { width: 10, into: "birth_decade".into() }),
            ColumnRule::new("income", Sensitive, KeepF64),
            ColumnRule::new("credit_limit", Sensitive, KeepF64),
            ColumnRule::new("utilization", Sensitive, KeepF64),
            ColumnRule::new("late_payments", Sensitive, KeepI64),
            ColumnRule::new("tenure_months", Sensitive, KeepI64),
            ColumnRule::new("defaulted", Sensitive, KeepI64),
        ]
    }

    /// Name in the sealed table, or `None` when dropped.
    pub fn sealed_name(&self) -> Option<&str> {
        match &self.transform {
            ColumnTransform::Drop => None,
            ColumnTransform::Tokenize { into }
            | ColumnTransform::Prefix { into, .. }
            | ColumnTransform::Bin { into, .. } => Some(into),
            ColumnTransform::KeepF64 | ColumnTransform::KeepI64 | ColumnTransform::KeepDict => Some(&self.source),
        }
    }

    /// Sealed type name (`f64`, `i64`, `dict`, `token`), or `None` when dropped.
    pub fn sealed_type(&self) -> Option<&'static str> {
        match &self.transform {
            ColumnTransform::Drop => None,
            ColumnTransform::Tokenize { .. } => Some("token"),
            ColumnTransform::Prefix { .. } | ColumnTransform::KeepDict => Some("dict"),
            ColumnTransform::Bin { .. } | ColumnTransform::KeepI64 => Some("i64"),
            ColumnTransform::KeepF64 => Some("f64"),
        }
    }

    /// Whether raw values of this column end up (possibly coarsened) in the sealed table;
    /// PII found in such a column is an error.
    pub fn keeps_values(&self) -> bool {
        !matches!(self.transform, ColumnTransform::Drop | ColumnTransform::Tokenize { .. })
    }

    /// The manifest's description of this transform.
    pub fn manifest_transform(&self, key_id: &str) -> Transform {
        match &self.transform {
            ColumnTransform::Tokenize { .. } => Transform::Tokenized { key_id: key_id.to_string() },
            ColumnTransform::Drop => Transform::Dropped,
            ColumnTransform::Prefix { chars, .. } => Transform::Generalized { rule: format!("prefix:{chars}") },
            ColumnTransform::Bin { width, .. } => Transform::Generalized { rule: format!("bin:{width}") },
            ColumnTransform::KeepF64 | ColumnTransform::KeepI64 | ColumnTransform::KeepDict => Transform::Kept,
        }
    }
}

/// Check a rule set on its own (before any data is read). Returns the index of the
/// tokenized (privacy-unit) rule.
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
        match &r.transform {
            ColumnTransform::Tokenize { .. } => {
                if let Some(u) = unit {
                    return bad(format!(
                        "only one column can be the privacy unit, but {:?} and {:?} are both tokenized",
                        rules[u].source, r.source
                    ));
                }
                unit = Some(i);
            }
            ColumnTransform::Prefix { chars: 0, .. } => {
                return bad(format!("column {:?}: prefix of 0 characters", r.source))
            }
            ColumnTransform::Bin { width, .. } if *width <= 0 => {
                return bad(format!("column {:?}: bin width must be positive", r.source))
            }
            _ => {}
        }
        if r.label == Sensitivity::DirectIdentifier && r.keeps_values() {
            return bad(format!("column {:?} is a direct identifier: it must be tokenized or dropped", r.source));
        }
    }
    match unit {
        Some(u) => Ok(u),
        None => bad("no column is tokenized: one identifier column must be the privacy unit".into()),
    }
}
