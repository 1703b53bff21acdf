//! The provider's query spec: which module, which input columns it reads, and which DP
//! aggregates of its per-row outputs (or of allowed numeric columns) are released.
//!
//! Every output names its class (`kind`), the per-row value it aggregates (`of`: a model
//! output by name, or a sealed numeric column), the public parameters that bound one
//! person's influence (bounds, bins, thresholds, group keys) and its budget `epsilon`.
//! `noise` picks discrete Laplace (pure ε-DP, the default) or discrete Gaussian: a Gaussian
//! output with `epsilon = ε` is ρ-zCDP with ρ = ε²/2, the zCDP cost of a pure ε-DP output,
//! and a query with any Gaussian output is accounted in zCDP and converted to (ε, δ) at the
//! query's `delta` (docs/analyses.md).

use crate::policy::{ColumnRole, Decimal};
use crate::{DecodeError, Digest};
use serde::{Deserialize, Serialize};

/// Where the per-row value an output aggregates comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueSource {
    /// One of the module's declared outputs, by name (`of = { output = "p_default" }`).
    Output(String),
    /// A sealed f64 or i64 column the policy allows as `value` (`of = { column = "income" }`).
    Column(String),
}

impl ValueSource {
    pub fn describe(&self) -> String {
        match self {
            ValueSource::Output(n) => format!("model output {n:?}"),
            ValueSource::Column(c) => format!("column {c:?}"),
        }
    }
}

/// Which noise an output adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    /// Exact discrete Laplace, pure ε-DP, scale Δ1/ε.
    #[default]
    Laplace,
    /// Exact discrete Gaussian, ρ-zCDP with ρ = ε²/2, σ² = Δ2²/ε².
    Gaussian,
}

impl Noise {
    pub fn is_laplace(&self) -> bool {
        matches!(self, Noise::Laplace)
    }
}

/// Group keys of an output: up to [`MAX_GROUP_KEYS`] dictionary columns. Accepts a single
/// name (`group_by = "zip3"`) or a list (`group_by = ["zip3", "segment"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OneOrMany", into = "Vec<String>")]
pub struct GroupBy(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for GroupBy {
    fn from(v: OneOrMany) -> Self {
        match v {
            OneOrMany::One(s) => GroupBy(vec![s]),
            OneOrMany::Many(v) => GroupBy(v),
        }
    }
}

impl From<GroupBy> for Vec<String> {
    fn from(g: GroupBy) -> Self {
        g.0
    }
}

impl GroupBy {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

/// The output classes the enclave implements. A policy lists the ones it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryClass {
    Count,
    Sum,
    Mean,
    Variance,
    Histogram,
    Quantiles,
    ConfusionMatrix,
    Calibration,
    Auc,
    Covariance,
}

impl QueryClass {
    pub const ALL: [QueryClass; 10] = [
        QueryClass::Count,
        QueryClass::Sum,
        QueryClass::Mean,
        QueryClass::Variance,
        QueryClass::Histogram,
        QueryClass::Quantiles,
        QueryClass::ConfusionMatrix,
        QueryClass::Calibration,
        QueryClass::Auc,
        QueryClass::Covariance,
    ];

    /// The name a policy and a result use.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryClass::Count => "count",
            QueryClass::Sum => "sum",
            QueryClass::Mean => "mean",
            QueryClass::Variance => "variance",
            QueryClass::Histogram => "histogram",
            QueryClass::Quantiles => "quantiles",
            QueryClass::ConfusionMatrix => "confusion_matrix",
            QueryClass::Calibration => "calibration",
            QueryClass::Auc => "auc",
            QueryClass::Covariance => "covariance",
        }
    }

    /// Parses a class name; `group_mean` (the first release's name) is `mean`.
    pub fn parse(s: &str) -> Option<QueryClass> {
        if s == "group_mean" {
            return Some(QueryClass::Mean);
        }
        QueryClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for QueryClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One released output. Every variant's parameters are public and checked before any data
/// is read ([`QuerySpec::validate`] for shape, `release::check_query` for noise scales).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputSpec {
    /// Rows per group (or in total, without `group_by`).
    Count {
        name: String,
        #[serde(default, skip_serializing_if = "GroupBy::is_empty")]
        group_by: GroupBy,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Sum of a value clamped to [lower, upper], per group (or in total).
    Sum {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        #[serde(default, skip_serializing_if = "GroupBy::is_empty")]
        group_by: GroupBy,
        lower: f64,
        upper: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Mean of a value clamped to [lower, upper], per group (or in total). `group_mean` is
    /// this class's first name and is still accepted.
    #[serde(alias = "group_mean")]
    Mean {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        #[serde(default, skip_serializing_if = "GroupBy::is_empty")]
        group_by: GroupBy,
        lower: f64,
        upper: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
        /// Share of the budget spent on the count (the rest noises the centred sum); default
        /// one half, the best split when the mean may lie anywhere within the bounds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count_share: Option<Decimal>,
    },
    /// Mean and variance of a value clamped to [lower, upper], per group (or in total).
    Variance {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        #[serde(default, skip_serializing_if = "GroupBy::is_empty")]
        group_by: GroupBy,
        lower: f64,
        upper: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Rows per value bin; `edges` are ascending bin boundaries (values outside go to the
    /// nearest end bin).
    Histogram {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        edges: Vec<f64>,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Quantiles of a value clamped to [lower, upper], each chosen by permute-and-flip from
    /// `grid` evenly spaced candidates; ε is split evenly over the quantiles.
    Quantiles {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        lower: f64,
        upper: f64,
        quantiles: Vec<f64>,
        #[serde(default = "default_grid")]
        grid: u32,
        epsilon: Decimal,
    },
    /// Confusion matrix of `score >= threshold` against a 0/1 label at each declared
    /// threshold, with precision, recall and F1 derived from it.
    ConfusionMatrix {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        label: String,
        thresholds: Vec<f64>,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Reliability diagram: per score bin over [0, 1], the rows, the mean score and the
    /// positive rate of a 0/1 label.
    Calibration {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        label: String,
        bins: u32,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Area under the ROC curve of the score against a 0/1 label column, computed from
    /// noisy per-label score histograms with `bins` equal-width bins over [0, 1].
    Auc {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        of: Option<ValueSource>,
        label: String,
        bins: u32,
        #[serde(default, skip_serializing_if = "is_default")]
        noise: Noise,
        epsilon: Decimal,
    },
    /// Means and covariance matrix of several values, each clamped to [lower, upper]
    /// (discrete Gaussian only: the L2 sensitivity is what keeps it small).
    Covariance { name: String, of: Vec<ValueSource>, lower: f64, upper: f64, epsilon: Decimal },
}

fn default_grid() -> u32 {
    1024
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
    /// δ at which the zCDP cost of the query's Gaussian outputs is converted to (ε, δ);
    /// required when an output uses Gaussian noise, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Decimal>,
    /// Milliseconds from the spend (the end of admission, which reads no data) to the reply,
    /// success or failure; capped by the policy and at least the worst case of
    /// [`crate::deadline::Schedule`].
    pub deadline_ms: u64,
    /// Fine-tune the module's parameters with DP-SGD before the outputs (which are then
    /// computed with the trained parameters); the trained parameters are released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<crate::training::TrainingSpec>,
}

/// Limits that keep a query spec small whatever the provider sends.
pub const MAX_OUTPUTS: usize = 16;
pub const MAX_INPUTS: usize = 64;
pub const MAX_BINS: usize = 1024;
pub const MAX_GROUP_KEYS: usize = 3;
pub const MAX_QUANTILES: usize = 16;
pub const MAX_GRID: u32 = 65_536;
pub const MAX_THRESHOLDS: usize = 64;
pub const MAX_COVARIANCE_DIM: usize = 8;
/// Most groups an output over public key domains may release (the product of the domains).
pub const MAX_PUBLIC_GROUPS: usize = 4096;

/// A query refused for one named field: `output` is the output's name (or "query").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{output}.{field}: {why}")]
pub struct FieldError {
    pub output: String,
    pub field: &'static str,
    pub why: String,
}

impl From<FieldError> for DecodeError {
    fn from(e: FieldError) -> Self {
        DecodeError::Invalid { what: "query spec", why: e.to_string() }
    }
}

/// A field every output class has, from whichever variant `$o` is.
macro_rules! each_output {
    ($o:expr, $field:ident) => {
        match $o {
            OutputSpec::Count { $field, .. }
            | OutputSpec::Sum { $field, .. }
            | OutputSpec::Mean { $field, .. }
            | OutputSpec::Variance { $field, .. }
            | OutputSpec::Histogram { $field, .. }
            | OutputSpec::Quantiles { $field, .. }
            | OutputSpec::ConfusionMatrix { $field, .. }
            | OutputSpec::Calibration { $field, .. }
            | OutputSpec::Auc { $field, .. }
            | OutputSpec::Covariance { $field, .. } => $field,
        }
    };
}

/// The constructors below take ε as a number written in code (tests, `query-init`'s
/// skeletons) and panic on anything else; a query's text is decoded, and checked, by
/// [`QuerySpec::from_toml`].
impl OutputSpec {
    /// Mean of the module's only output per group of one column, with Laplace noise.
    #[track_caller]
    pub fn mean(name: &str, group_by: &str, lower: f64, upper: f64, epsilon: &str) -> Self {
        OutputSpec::Mean {
            name: name.into(),
            of: None,
            group_by: GroupBy(vec![group_by.into()]),
            lower,
            upper,
            noise: Noise::Laplace,
            epsilon: Decimal::literal(epsilon),
            count_share: None,
        }
    }

    /// Rows per bin of the module's only output, with Laplace noise.
    #[track_caller]
    pub fn histogram(name: &str, edges: Vec<f64>, epsilon: &str) -> Self {
        OutputSpec::Histogram {
            name: name.into(),
            of: None,
            edges,
            noise: Noise::Laplace,
            epsilon: Decimal::literal(epsilon),
        }
    }

    /// AUC of the module's only output against a 0/1 label, with Laplace noise.
    #[track_caller]
    pub fn auc(name: &str, label: &str, bins: u32, epsilon: &str) -> Self {
        OutputSpec::Auc {
            name: name.into(),
            of: None,
            label: label.into(),
            bins,
            noise: Noise::Laplace,
            epsilon: Decimal::literal(epsilon),
        }
    }

    pub fn class(&self) -> QueryClass {
        match self {
            OutputSpec::Count { .. } => QueryClass::Count,
            OutputSpec::Sum { .. } => QueryClass::Sum,
            OutputSpec::Mean { .. } => QueryClass::Mean,
            OutputSpec::Variance { .. } => QueryClass::Variance,
            OutputSpec::Histogram { .. } => QueryClass::Histogram,
            OutputSpec::Quantiles { .. } => QueryClass::Quantiles,
            OutputSpec::ConfusionMatrix { .. } => QueryClass::ConfusionMatrix,
            OutputSpec::Calibration { .. } => QueryClass::Calibration,
            OutputSpec::Auc { .. } => QueryClass::Auc,
            OutputSpec::Covariance { .. } => QueryClass::Covariance,
        }
    }

    pub fn name(&self) -> &str {
        each_output!(self, name)
    }

    pub fn epsilon(&self) -> &Decimal {
        each_output!(self, epsilon)
    }

    pub fn epsilon_mut(&mut self) -> &mut Decimal {
        each_output!(self, epsilon)
    }

    /// The noise the output adds (quantiles use permute-and-flip, which is pure ε-DP and
    /// is accounted like Laplace; covariance is always Gaussian).
    pub fn noise(&self) -> Noise {
        match self {
            OutputSpec::Count { noise, .. }
            | OutputSpec::Sum { noise, .. }
            | OutputSpec::Mean { noise, .. }
            | OutputSpec::Variance { noise, .. }
            | OutputSpec::Histogram { noise, .. }
            | OutputSpec::ConfusionMatrix { noise, .. }
            | OutputSpec::Calibration { noise, .. }
            | OutputSpec::Auc { noise, .. } => *noise,
            OutputSpec::Quantiles { .. } => Noise::Laplace,
            OutputSpec::Covariance { .. } => Noise::Gaussian,
        }
    }

    /// The group keys (empty for classes without groups).
    pub fn group_by(&self) -> &[String] {
        match self {
            OutputSpec::Count { group_by, .. }
            | OutputSpec::Sum { group_by, .. }
            | OutputSpec::Mean { group_by, .. }
            | OutputSpec::Variance { group_by, .. } => group_by.keys(),
            _ => &[],
        }
    }

    /// The per-row values the output aggregates (`None`: the module's only output).
    pub fn values(&self) -> Vec<Option<&ValueSource>> {
        match self {
            OutputSpec::Count { .. } => vec![],
            OutputSpec::Sum { of, .. }
            | OutputSpec::Mean { of, .. }
            | OutputSpec::Variance { of, .. }
            | OutputSpec::Histogram { of, .. }
            | OutputSpec::Quantiles { of, .. }
            | OutputSpec::ConfusionMatrix { of, .. }
            | OutputSpec::Calibration { of, .. }
            | OutputSpec::Auc { of, .. } => vec![of.as_ref()],
            OutputSpec::Covariance { of, .. } => of.iter().map(Some).collect(),
        }
    }

    /// The 0/1 label column, for the classification classes.
    pub fn label(&self) -> Option<&str> {
        match self {
            OutputSpec::ConfusionMatrix { label, .. }
            | OutputSpec::Calibration { label, .. }
            | OutputSpec::Auc { label, .. } => Some(label),
            _ => None,
        }
    }

    /// Checks of the output's own parameters, each naming its field.
    fn validate(&self) -> Result<(), FieldError> {
        let name = self.name();
        let bad = |field: &'static str, why: String| Err(FieldError { output: name.to_string(), field, why });
        if name.is_empty() || name.len() > 64 {
            return bad("name", "must be 1 to 64 characters".into());
        }
        if self.group_by().len() > MAX_GROUP_KEYS {
            return bad("group_by", format!("at most {MAX_GROUP_KEYS} keys, found {}", self.group_by().len()));
        }
        if let Some((i, k)) = self.group_by().iter().enumerate().find(|(i, k)| self.group_by()[..*i].contains(k)) {
            return bad("group_by", format!("key {k:?} is listed twice (at {i})"));
        }
        let bounds = |lower: f64, upper: f64| {
            if !(lower.is_finite() && upper.is_finite() && lower < upper) {
                return bad("upper", format!("need finite lower < upper, found [{lower}, {upper}]"));
            }
            Ok(())
        };
        let bins = |field: &'static str, n: usize, min: usize| {
            if n < min || n > MAX_BINS {
                return bad(field, format!("between {min} and {MAX_BINS}, found {n}"));
            }
            Ok(())
        };
        let ascending = |field: &'static str, v: &[f64]| {
            if v.iter().any(|e| !e.is_finite()) || v.windows(2).any(|w| w[0] >= w[1]) {
                return bad(field, "must be finite and strictly ascending".into());
            }
            Ok(())
        };
        match self {
            OutputSpec::Count { .. } => Ok(()),
            OutputSpec::Sum { lower, upper, .. }
            | OutputSpec::Mean { lower, upper, .. }
            | OutputSpec::Variance { lower, upper, .. } => bounds(*lower, *upper),
            OutputSpec::Histogram { edges, .. } => {
                bins("edges", edges.len().saturating_sub(1), 1)?;
                ascending("edges", edges)
            }
            OutputSpec::Quantiles { lower, upper, quantiles, grid, .. } => {
                bounds(*lower, *upper)?;
                if quantiles.is_empty() || quantiles.len() > MAX_QUANTILES {
                    return bad("quantiles", format!("between 1 and {MAX_QUANTILES}, found {}", quantiles.len()));
                }
                if quantiles.iter().any(|q| !(0.0..=1.0).contains(q)) {
                    return bad("quantiles", "each must be in [0, 1]".into());
                }
                ascending("quantiles", quantiles)?;
                if *grid < 2 || *grid > MAX_GRID {
                    return bad("grid", format!("between 2 and {MAX_GRID}, found {grid}"));
                }
                Ok(())
            }
            OutputSpec::ConfusionMatrix { thresholds, .. } => {
                if thresholds.is_empty() || thresholds.len() > MAX_THRESHOLDS {
                    return bad("thresholds", format!("between 1 and {MAX_THRESHOLDS}, found {}", thresholds.len()));
                }
                ascending("thresholds", thresholds)
            }
            OutputSpec::Calibration { bins: b, .. } | OutputSpec::Auc { bins: b, .. } => bins("bins", *b as usize, 2),
            OutputSpec::Covariance { of, lower, upper, .. } => {
                bounds(*lower, *upper)?;
                if of.len() < 2 || of.len() > MAX_COVARIANCE_DIM {
                    return bad("of", format!("between 2 and {MAX_COVARIANCE_DIM} values, found {}", of.len()));
                }
                if let Some(v) = of.iter().enumerate().find(|(i, v)| of[..*i].contains(v)).map(|(_, v)| v) {
                    return bad("of", format!("{} is listed twice", v.describe()));
                }
                Ok(())
            }
        }
    }
}

impl QuerySpec {
    pub fn from_toml(s: &str) -> Result<Self, DecodeError> {
        let q: QuerySpec = toml::from_str(s).map_err(|e| DecodeError::Toml(e.to_string()))?;
        q.validate()?;
        Ok(q)
    }

    /// Shape checks that need neither the policy nor the module. Each error names the
    /// output and field it is about.
    pub fn validate(&self) -> Result<(), FieldError> {
        let bad = |field: &'static str, why: String| Err(FieldError { output: "query".into(), field, why });
        // A training query releases its parameters and may ask for no other output.
        let least = if self.training.is_some() { 0 } else { 1 };
        if self.outputs.len() < least || self.outputs.len() > MAX_OUTPUTS {
            return bad("outputs", format!("between {least} and {MAX_OUTPUTS} outputs"));
        }
        if let Some(t) = &self.training {
            if t.steps == 0 || t.steps > crate::training::MAX_STEPS {
                return bad("training.steps", format!("must be between 1 and {}", crate::training::MAX_STEPS));
            }
            if t.expected_batch_size == 0 {
                return bad("training.expected_batch_size", "must be at least 1".into());
            }
        }
        if self.deadline_ms == 0 || self.deadline_ms > crate::policy::MAX_DEADLINE_MS {
            return bad("deadline_ms", format!("must be between 1 and {}", crate::policy::MAX_DEADLINE_MS));
        }
        if self.inputs.len() > MAX_INPUTS {
            return bad("inputs", format!("at most {MAX_INPUTS} inputs"));
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if self.outputs[..i].iter().any(|p| p.name() == o.name()) {
                return Err(FieldError {
                    output: o.name().to_string(),
                    field: "name",
                    why: "another output has this name".into(),
                });
            }
            o.validate()?;
        }
        let gaussian = self.outputs.iter().any(|o| !o.noise().is_laplace());
        match (&self.delta, gaussian) {
            (None, true) => return bad("delta", "required when an output uses Gaussian noise".into()),
            (Some(_), false) => {
                return bad("delta", "only for queries with Gaussian outputs (pure ε-DP queries have none)".into())
            }
            _ => {}
        }
        Ok(())
    }

    pub fn digest(&self) -> Digest {
        Digest::of_parts("cleanroom/query/v2", &[&crate::to_cbor(self)])
    }

    /// Every column the query names with the role it plays there.
    pub fn column_roles(&self) -> Vec<(&str, ColumnRole)> {
        let mut v: Vec<(&str, ColumnRole)> = self.inputs.iter().map(|c| (c.as_str(), ColumnRole::Input)).collect();
        for o in &self.outputs {
            v.extend(o.group_by().iter().map(|g| (g.as_str(), ColumnRole::GroupBy)));
            v.extend(o.label().map(|l| (l, ColumnRole::Label)));
            for s in o.values().into_iter().flatten() {
                if let ValueSource::Column(c) = s {
                    v.push((c.as_str(), ColumnRole::Value));
                }
            }
        }
        v.extend(self.training.as_ref().map(|t| (t.label.as_str(), ColumnRole::Label)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(outputs: &str) -> Result<QuerySpec, DecodeError> {
        let head = format!(
            "job_id = \"j\"\ncollaborator = \"p\"\ndataset_digest = \"{}\"\nmodule_hash = \"{}\"\ninputs = []\ndeadline_ms = 1000\n",
            Digest::of(b"d"),
            Digest::of(b"m")
        );
        QuerySpec::from_toml(&format!("{head}{outputs}"))
    }

    #[test]
    fn first_release_queries_still_parse() {
        let q = spec(
            "[[outputs]]\nkind = \"group_mean\"\nname = \"m\"\ngroup_by = \"zip3\"\nlower = 0.0\nupper = 1.0\nepsilon = \"0.4\"\n\
             [[outputs]]\nkind = \"auc\"\nname = \"a\"\nlabel = \"y\"\nbins = 10\nepsilon = \"0.3\"\n",
        )
        .unwrap();
        assert_eq!(q.outputs[0].class(), QueryClass::Mean);
        assert_eq!(q.outputs[0].group_by(), ["zip3".to_string()]);
        assert_eq!(q.outputs[0].values(), vec![None]);
        assert_eq!(QueryClass::parse("group_mean"), Some(QueryClass::Mean));
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            ("kind = \"count\"\nname = \"c\"\ngroup_by = [\"a\", \"b\", \"c\", \"d\"]\nepsilon = \"1\"", "c.group_by"),
            ("kind = \"count\"\nname = \"c\"\ngroup_by = [\"a\", \"a\"]\nepsilon = \"1\"", "c.group_by"),
            ("kind = \"sum\"\nname = \"s\"\nlower = 1.0\nupper = inf\nepsilon = \"1\"", "s.upper"),
            ("kind = \"mean\"\nname = \"s\"\nlower = nan\nupper = 1.0\nepsilon = \"1\"", "s.upper"),
            ("kind = \"histogram\"\nname = \"h\"\nedges = [0.0, 0.0]\nepsilon = \"1\"", "h.edges"),
            ("kind = \"quantiles\"\nname = \"q\"\nlower = 0.0\nupper = 1.0\nquantiles = [1.5]\nepsilon = \"1\"", "q.quantiles"),
            ("kind = \"quantiles\"\nname = \"q\"\nlower = 0.0\nupper = 1.0\nquantiles = [0.5]\ngrid = 1\nepsilon = \"1\"", "q.grid"),
            ("kind = \"confusion_matrix\"\nname = \"m\"\nlabel = \"y\"\nthresholds = []\nepsilon = \"1\"", "m.thresholds"),
            ("kind = \"calibration\"\nname = \"k\"\nlabel = \"y\"\nbins = 100000\nepsilon = \"1\"", "k.bins"),
            ("kind = \"covariance\"\nname = \"v\"\nof = [{ output = \"a\" }]\nlower = 0.0\nupper = 1.0\nepsilon = \"1\"", "v.of"),
            ("kind = \"covariance\"\nname = \"v\"\nof = [{ output = \"a\" }, { output = \"b\" }]\nlower = 0.0\nupper = 1.0\nepsilon = \"1\"", "query.delta"),
            ("kind = \"count\"\nname = \"c\"\nnoise = \"gaussian\"\nepsilon = \"1\"", "query.delta"),
        ];
        for (output, field) in cases {
            let e = spec(&format!("[[outputs]]\n{output}\n")).unwrap_err().to_string();
            assert!(e.contains(field), "{output:?}: {e}");
        }
        let e = spec("delta = \"1e-6\"\n[[outputs]]\nkind = \"count\"\nname = \"c\"\nepsilon = \"1\"\n").unwrap_err();
        assert!(e.to_string().contains("query.delta"), "{e}");
        // unknown fields and unknown classes are refused by name
        let e = spec("[[outputs]]\nkind = \"count\"\nname = \"c\"\nepsilon = \"1\"\nbogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = spec("[[outputs]]\nkind = \"median\"\nname = \"c\"\nepsilon = \"1\"\n").unwrap_err();
        assert!(e.to_string().contains("median"), "{e}");
    }

    #[test]
    fn value_columns_take_the_value_role() {
        let q = spec(
            "delta = \"1e-6\"\n[[outputs]]\nkind = \"sum\"\nname = \"s\"\nof = { column = \"income\" }\ngroup_by = [\"zip3\", \"segment\"]\n\
             lower = 0.0\nupper = 1.0\nnoise = \"gaussian\"\nepsilon = \"1\"\n",
        )
        .unwrap();
        let roles = q.column_roles();
        assert!(roles.contains(&("income", ColumnRole::Value)));
        assert!(roles.contains(&("segment", ColumnRole::GroupBy)));
        // TOML round trip keeps the spec (and so its digest)
        let back: QuerySpec = toml::from_str(&toml::to_string_pretty(&q).unwrap()).unwrap();
        assert_eq!(back, q);
    }
}
