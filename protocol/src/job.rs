//! The provider's query spec: which module, which input columns it reads, and which
//! DP aggregates of its per-row output are released.

use crate::policy::Decimal;
use crate::{DecodeError, Digest};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputSpec {
    /// Mean of the model's score per group of a dictionary column.
    GroupMean { name: String, group_by: String, lower: f64, upper: f64, epsilon: Decimal },
    /// Count of privacy units per score bin; `edges` are ascending bin boundaries.
    Histogram { name: String, edges: Vec<f64>, epsilon: Decimal },
    /// Area under the ROC curve of the score against a 0/1 label column, computed from
    /// noisy per-label score histograms with `bins` equal-width bins over [0, 1].
    Auc { name: String, label: String, bins: u32, epsilon: Decimal },
}

impl OutputSpec {
    pub fn class(&self) -> &'static str {
        match self {
            OutputSpec::GroupMean { .. } => "group_mean",
            OutputSpec::Histogram { .. } => "histogram",
            OutputSpec::Auc { .. } => "auc",
        }
    }
    pub fn name(&self) -> &str {
        match self {
            OutputSpec::GroupMean { name, .. } | OutputSpec::Histogram { name, .. } | OutputSpec::Auc { name, .. } => {
                name
            }
        }
    }
    pub fn epsilon(&self) -> &Decimal {
        match self {
            OutputSpec::GroupMean { epsilon, .. }
            | OutputSpec::Histogram { epsilon, .. }
            | OutputSpec::Auc { epsilon, .. } => epsilon,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    pub job_id: String,
    pub collaborator: String,
    pub dataset_digest: Digest,
    pub module_hash: Digest,
    /// Sealed columns handed to the module, in ABI column order.
    pub inputs: Vec<String>,
    pub outputs: Vec<OutputSpec>,
    /// Milliseconds from the spend (the end of admission, which reads no data) to the reply,
    /// success or failure; capped by the policy and at least the worst case of
    /// [`crate::deadline::Schedule`].
    pub deadline_ms: u64,
}

/// Limits that keep a query spec small whatever the provider sends.
pub const MAX_OUTPUTS: usize = 16;
pub const MAX_INPUTS: usize = 64;
pub const MAX_BINS: usize = 1024;

impl QuerySpec {
    pub fn from_toml(s: &str) -> Result<Self, DecodeError> {
        let q: QuerySpec = toml::from_str(s).map_err(|e| DecodeError::Toml(e.to_string()))?;
        q.validate()?;
        Ok(q)
    }

    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad = |why: String| Err(DecodeError::Invalid { what: "query spec", why });
        if self.outputs.is_empty() || self.outputs.len() > MAX_OUTPUTS {
            return bad(format!("between 1 and {MAX_OUTPUTS} outputs"));
        }
        if self.deadline_ms == 0 || self.deadline_ms > crate::policy::MAX_DEADLINE_MS {
            return bad(format!("deadline_ms must be between 1 and {}", crate::policy::MAX_DEADLINE_MS));
        }
        if self.inputs.len() > MAX_INPUTS {
            return bad(format!("at most {MAX_INPUTS} inputs"));
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if self.outputs[..i].iter().any(|p| p.name() == o.name()) {
                return bad(format!("duplicate output name {:?}", o.name()));
            }
            match o {
                OutputSpec::GroupMean { lower, upper, .. } => {
                    if !(lower.is_finite() && upper.is_finite() && lower < upper) {
                        return bad(format!("{}: need finite lower < upper", o.name()));
                    }
                }
                OutputSpec::Histogram { edges, .. } => {
                    if edges.len() < 2 || edges.len() > MAX_BINS + 1 {
                        return bad(format!("{}: between 2 and {} edges", o.name(), MAX_BINS + 1));
                    }
                    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                        return bad(format!("{}: edges must be finite and strictly ascending", o.name()));
                    }
                }
                OutputSpec::Auc { bins, .. } => {
                    if *bins < 2 || *bins as usize > MAX_BINS {
                        return bad(format!("{}: between 2 and {MAX_BINS} bins", o.name()));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn digest(&self) -> Digest {
        Digest::of_parts("cleanroom/query/v2", &[&crate::to_cbor(self)])
    }

    /// Every column the query names with the role it plays there.
    pub fn column_roles(&self) -> Vec<(&str, crate::policy::ColumnRole)> {
        use crate::policy::ColumnRole;
        let mut v: Vec<(&str, ColumnRole)> = self.inputs.iter().map(|c| (c.as_str(), ColumnRole::Input)).collect();
        for o in &self.outputs {
            match o {
                OutputSpec::GroupMean { group_by, .. } => v.push((group_by, ColumnRole::GroupBy)),
                OutputSpec::Auc { label, .. } => v.push((label, ColumnRole::Label)),
                OutputSpec::Histogram { .. } => {}
            }
        }
        v
    }
}
