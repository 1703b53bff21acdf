//! `cleanroom query-init`: a provider's first query for any dataset and module, written
//! from the owner's public manifest and the module's ABI section alone.
//!
//! The file is TOML with comments: every sealed column with its type and the roles the
//! owner's rules allow, the module's inputs (matched to columns) and outputs, a runnable
//! starting set of outputs, and a commented example of every output class with its
//! parameters, naming real columns. Nothing here reads data.

use protocol::job::{QueryClass, QuerySpec};
use protocol::manifest::PublicManifest;
use protocol::policy::ColumnRole;
use protocol::Digest;
use std::fmt::Write;

/// What the module declares (from its `cleanroom_abi` section).
pub struct ModuleAbi {
    pub hash: Digest,
    /// Sealed type each input reads, in ABI order (f64, i64, dict, token).
    pub input_types: Vec<String>,
    pub output_names: Vec<String>,
}

/// Everything the provider chooses on the command line.
pub struct Choices {
    pub job_id: String,
    pub collaborator: String,
    /// Sealed columns for the module's inputs, in ABI order; matched by type when absent.
    pub inputs: Option<Vec<String>>,
    /// ε to spread over the starting outputs (the policy's per-job maximum, or 1).
    pub total_epsilon: dp::Epsilon,
    pub deadline_ms: u64,
    /// A training query instead: DP fine-tuning, then one evaluation output.
    pub training: Option<TrainingChoice>,
}

/// The starting hyperparameters of a training query ([`default_training`]).
#[derive(Debug, Clone)]
pub struct TrainingChoice {
    pub spec: protocol::training::TrainingSpec,
    /// What the accountant charges for them.
    pub accounted: dp::Epsilon,
    /// ε of the evaluation output (the trained model's AUC).
    pub evaluation_epsilon: dp::Epsilon,
}

/// Starting hyperparameters for fine-tuning against `label` within `total` ε: q = 0.02 (or
/// the policy's maximum), T = 100, C = 1, Adam at 0.05, δ = 10⁻⁶; an eighth of `total` for
/// the evaluation AUC, and the smallest σ (in tenths, at least the policy's floor) whose
/// accounted ε fits the rest. `max_units` (the table's public bound on rows) sizes the
/// expected batch.
pub fn default_training(
    label: &str,
    total: &dp::Epsilon,
    limits: &protocol::training::TrainingLimits,
    max_units: u64,
) -> Result<TrainingChoice, QueryInitError> {
    use protocol::policy::Decimal;
    use protocol::training::{Optimizer, TrainingSpec};
    let q = dp::Rational::new(1, 50)?.min(limits.max_sample_rate.as_str().parse()?);
    let evaluation_epsilon = total.checked_div_int(8)?;
    let budget = total.as_rational().checked_sub(evaluation_epsilon.as_rational())?.unwrap_or(dp::Rational::ZERO);
    let floor: f64 = limits.min_noise_multiplier.as_str().parse::<dp::Rational>()?.to_f64();
    let d = Decimal::literal;
    let mut spec = TrainingSpec {
        label: label.to_string(),
        sample_rate: Decimal::from(q),
        noise_multiplier: d("0"),
        clip_norm: d("1"),
        steps: 100.min(limits.max_steps),
        expected_batch_size: ((q.to_f64() * max_units as f64).ceil() as u64).max(1),
        optimizer: Optimizer::Adam { learning_rate: d("0.05"), beta1: d("0.9"), beta2: d("0.999"), epsilon: d("1e-8") },
        delta: d("0.000001"),
    };
    for tenths in ((floor * 10.0).ceil() as u64).max(1)..=500 {
        spec.noise_multiplier = Decimal::new(format!("{}.{}", tenths / 10, tenths % 10))?;
        let Ok(plan) = release::training::TrainingPlan::within(&spec, limits) else { continue };
        if plan.epsilon.as_rational() <= &budget {
            return Ok(TrainingChoice { spec, accounted: plan.epsilon, evaluation_epsilon });
        }
    }
    Err(QueryInitError::Training(format!("no noise multiplier up to 50 fits ε {budget} in {} steps", spec.steps)))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryInitError {
    #[error("--inputs names {given} columns; the module reads {wanted}")]
    InputCount { given: usize, wanted: usize },
    #[error("input {index} ({column:?}): {why}")]
    Input { index: usize, column: String, why: String },
    #[error("the module's input {index} reads {kind}, and no unused sealed column of that type may be an input; name them with --inputs")]
    NoColumnFor { index: usize, kind: String },
    #[error("the dataset has nothing the module's outputs can be summarized by")]
    NothingToRelease,
    #[error("ε split: {0}")]
    Dp(#[from] dp::DpError),
    #[error("training: {0}")]
    Training(String),
    #[error("the policy's worst case overflows the deadline's range")]
    WorstCaseOverflows,
    #[error("the query does not fit the policy: {0}")]
    Release(#[from] release::ReleaseError),
    #[error("the skeleton does not parse back (a bug): {0}")]
    Skeleton(String),
}

fn has(c: &protocol::manifest::PublicColumn, r: ColumnRole) -> bool {
    c.roles.contains(&r)
}

/// The module's inputs as sealed columns: as given (checked) or matched in manifest order.
fn match_inputs(
    m: &PublicManifest,
    abi: &ModuleAbi,
    given: &Option<Vec<String>>,
) -> Result<Vec<String>, QueryInitError> {
    if let Some(names) = given {
        if names.len() != abi.input_types.len() {
            return Err(QueryInitError::InputCount { given: names.len(), wanted: abi.input_types.len() });
        }
        for (i, (n, t)) in names.iter().zip(&abi.input_types).enumerate() {
            let bad = |why: String| QueryInitError::Input { index: i, column: n.clone(), why };
            let c = m.columns.iter().find(|c| &c.name == n).ok_or_else(|| bad("not a sealed column".into()))?;
            if &c.sealed_type != t {
                return Err(bad(format!("the module reads {t}, the column is {}", c.sealed_type)));
            }
        }
        return Ok(names.clone());
    }
    let mut used: Vec<String> = Vec::new();
    for (i, t) in abi.input_types.iter().enumerate() {
        let c = m
            .columns
            .iter()
            .find(|c| &c.sealed_type == t && has(c, ColumnRole::Input) && !used.contains(&c.name))
            .ok_or_else(|| QueryInitError::NoColumnFor { index: i, kind: t.clone() })?;
        used.push(c.name.clone());
    }
    Ok(used)
}

/// `weights` scaled to sum to `total`, exactly.
fn split(total: &dp::Epsilon, weights: &[u128]) -> Result<Vec<String>, QueryInitError> {
    let sum: u128 = weights.iter().sum();
    weights
        .iter()
        .map(|&w| {
            let share = dp::Rational::new(w, sum)?;
            Ok(total.as_rational().checked_mul(&share)?.to_string())
        })
        .collect()
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The skeleton as TOML text. It parses as a [`QuerySpec`] as written.
pub fn skeleton(m: &PublicManifest, abi: &ModuleAbi, ch: &Choices) -> Result<String, QueryInitError> {
    let inputs = match_inputs(m, abi, &ch.inputs)?;
    let out0 = abi.output_names.first().cloned().unwrap_or_else(|| "score".into());
    let of0 =
        if abi.output_names.len() > 1 { format!("of = {{ output = {} }}\n", quote(&out0)) } else { String::new() };
    let group = m.columns.iter().find(|c| has(c, ColumnRole::GroupBy));
    let label = m.columns.iter().find(|c| has(c, ColumnRole::Label));
    let value = m.columns.iter().find(|c| c.sealed_type == "f64" || c.sealed_type == "i64");
    let groups: Vec<&str> =
        m.columns.iter().filter(|c| has(c, ColumnRole::GroupBy)).map(|c| c.name.as_str()).take(3).collect();

    // The starting outputs: what a model vendor asks first.
    let mut starting: Vec<(u128, String)> = Vec::new();
    if let Some(g) = group {
        starting.push((
            4,
            format!(
                "[[outputs]]\nkind = \"mean\"\nname = {}\n{of0}group_by = [{}]\nlower = 0.0\nupper = 1.0\n",
                quote(&format!("mean_{out0}_by_{}", g.name)),
                quote(&g.name)
            ),
        ));
    }
    starting.push((
        3,
        format!(
            "[[outputs]]\nkind = \"histogram\"\nname = {}\n{of0}edges = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]\n",
            quote(&format!("{out0}_histogram"))
        ),
    ));
    if let Some(l) = label {
        starting.push((
            3,
            format!(
                "[[outputs]]\nkind = \"auc\"\nname = {}\n{of0}label = {}\nbins = 100\n",
                quote(&format!("auc_{out0}_vs_{}", l.name)),
                quote(&l.name)
            ),
        ));
    }
    let mut eps = split(&ch.total_epsilon, &starting.iter().map(|(w, _)| *w).collect::<Vec<_>>())?;
    // A training query starts with one evaluation output: the trained model's AUC.
    if let Some(tc) = &ch.training {
        starting = vec![(
            1,
            format!(
                "[[outputs]]\nkind = \"auc\"\nname = {}\n{of0}label = {}\nbins = 100\n",
                quote(&format!("auc_{out0}_after_fine_tuning")),
                quote(&tc.spec.label)
            ),
        )];
        eps = vec![tc.evaluation_epsilon.to_string()];
    }

    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "# Query for dataset {:?} ({})", m.dataset_name, m.dataset_digest);
    let _ = writeln!(w, "# written by `cleanroom query-init` from the public manifest and the module's ABI section.");
    let _ = writeln!(w, "# Check it offline with `cleanroom query check THIS --manifest M --policy P --module W`.");
    let _ = writeln!(w, "#");
    let _ = writeln!(w, "# Sealed columns (type; roles the owner's rules allow — the policy has the final word):");
    for c in &m.columns {
        let roles: Vec<&str> = c.roles.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(
            w,
            "#   {:<20} {:<6} {}{}",
            c.name,
            c.sealed_type,
            if roles.is_empty() { "-".to_string() } else { roles.join(", ") },
            if c.nullable { " (may hold nulls)" } else { "" }
        );
    }
    let _ = writeln!(w, "#");
    let _ = writeln!(
        w,
        "# The module {} reads {} input(s) and emits per row: {}.",
        abi.hash,
        abi.input_types.len(),
        abi.output_names.join(", ")
    );
    let _ = writeln!(w, "# Output classes: {}.", QueryClass::ALL.map(|c| c.as_str()).join(", "));
    let _ =
        writeln!(w, "# Each output aggregates `of` (a model output by name, or a sealed column the policy allows as");
    let _ =
        writeln!(w, "# \"value\"); without `of`, the module's only output. `noise = \"gaussian\"` (zCDP, ρ = ε²/2)");
    let _ = writeln!(w, "# needs a query-level `delta` and public key domains for group_by (docs/analyses.md).");
    let _ = writeln!(w);
    let _ = writeln!(w, "job_id = {}", quote(&ch.job_id));
    let _ = writeln!(w, "collaborator = {}", quote(&ch.collaborator));
    let _ = writeln!(w, "dataset_digest = {}", quote(&m.dataset_digest.to_string()));
    let _ = writeln!(w, "module_hash = {}", quote(&abi.hash.to_string()));
    let _ = writeln!(w, "# in ABI order: {}", abi.input_types.join(", "));
    let _ = writeln!(w, "inputs = [{}]", inputs.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "));
    let _ = writeln!(w, "# milliseconds from the spend to the reply, at least the policy's worst case");
    let _ = writeln!(w, "deadline_ms = {}", ch.deadline_ms);
    for ((_, body), e) in starting.iter().zip(&eps) {
        let _ = writeln!(w, "\n{body}epsilon = {}", quote(e));
    }
    if let Some(tc) = &ch.training {
        let t = &tc.spec;
        let _ = writeln!(
            w,
            "\n# DP fine-tuning before the outputs (docs/dp-sgd.md). The accountant charges ε = {} at",
            tc.accounted
        );
        let _ = writeln!(w, "# δ = {} for these; plan others with `cleanroom dp plan --mechanism dp-sgd`.", t.delta);
        let _ = writeln!(w, "[training]");
        let _ = writeln!(w, "label = {}", quote(&t.label));
        let _ = writeln!(w, "sample_rate = {}   # q", quote(t.sample_rate.as_str()));
        let _ = writeln!(w, "noise_multiplier = {}   # σ", quote(t.noise_multiplier.as_str()));
        let _ = writeln!(w, "clip_norm = {}   # C", quote(t.clip_norm.as_str()));
        let _ = writeln!(w, "steps = {}   # T", t.steps);
        let _ = writeln!(w, "expected_batch_size = {}   # about q × units (public)", t.expected_batch_size);
        let _ = writeln!(w, "delta = {}", quote(t.delta.as_str()));
        let _ = writeln!(w, "\n[training.optimizer]");
        let _ = writeln!(w, "kind = \"adam\"   # or \"sgd\" with momentum");
        let _ = writeln!(w, "learning_rate = \"0.05\"");
    }
    // Every other class, commented, with this dataset's names.
    let _ = writeln!(w, "\n# More outputs: uncomment, keep the total ε within the policy's per-job maximum.");
    let key_list = groups.iter().map(|g| quote(g)).collect::<Vec<_>>().join(", ");
    let examples: Vec<String> = [
        (!groups.is_empty()).then(|| format!("kind = \"count\"\nname = \"rows_by_keys\"\ngroup_by = [{key_list}]   # up to three keys\nepsilon = \"0.2\"")),
        Some(format!("kind = \"sum\"\nname = \"sum_{out0}\"\n{of0}lower = 0.0\nupper = 1.0\nepsilon = \"0.2\"")),
        Some(format!("kind = \"variance\"\nname = \"spread_{out0}\"\n{of0}lower = 0.0\nupper = 1.0\nepsilon = \"0.3\"   # mean and variance, ε split in three")),
        value.map(|v| format!("kind = \"mean\"\nname = \"mean_{0}\"\nof = {{ column = {1} }}   # the policy must allow {1} as \"value\"\nlower = 0.0\nupper = 100000.0\nepsilon = \"0.2\"", v.name, quote(&v.name))),
        Some(format!("kind = \"quantiles\"\nname = \"{out0}_quantiles\"\n{of0}lower = 0.0\nupper = 1.0\nquantiles = [0.5, 0.9]\ngrid = 1024\nepsilon = \"0.2\"   # split over the quantiles")),
        label.map(|l| format!("kind = \"confusion_matrix\"\nname = \"confusion_vs_{0}\"\n{of0}label = {1}\nthresholds = [0.3, 0.5, 0.7]\nepsilon = \"0.2\"", l.name, quote(&l.name))),
        label.map(|l| format!("kind = \"calibration\"\nname = \"calibration_vs_{0}\"\n{of0}label = {1}\nbins = 10\nepsilon = \"0.2\"", l.name, quote(&l.name))),
        (abi.output_names.len() > 1).then(|| format!(
            "kind = \"covariance\"   # discrete Gaussian: set delta = \"1e-6\" at the top\nname = \"output_covariance\"\nof = [{}]\nlower = 0.0\nupper = 1.0\nepsilon = \"0.3\"",
            abi.output_names.iter().map(|o| format!("{{ output = {} }}", quote(o))).collect::<Vec<_>>().join(", ")
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    for e in examples {
        let _ = writeln!(w, "\n# [[outputs]]");
        for line in e.lines() {
            let _ = writeln!(w, "# {line}");
        }
    }
    if starting.is_empty() {
        return Err(QueryInitError::NothingToRelease);
    }
    QuerySpec::from_toml(&t).map_err(|e| QueryInitError::Skeleton(e.to_string()))?;
    Ok(t)
}

/// The shortest whole-second deadline, plus a second, that the policy's worst case allows
/// for the starting outputs (which never select groups) or, for a training query, its
/// schedule with the evaluation output that scores every unit again.
pub fn shortest_deadline_ms(
    m: &PublicManifest,
    module_hash: Digest,
    policy: &protocol::policy::Policy,
    training: Option<&(TrainingChoice, usize)>,
) -> Result<u64, QueryInitError> {
    let mut shape = QuerySpec {
        job_id: String::new(),
        collaborator: String::new(),
        dataset_digest: m.dataset_digest,
        module_hash,
        inputs: vec![],
        outputs: vec![],
        delta: None,
        deadline_ms: 1,
        training: None,
    };
    let plan = match training {
        Some((c, n)) => {
            shape.training = Some(c.spec.clone());
            shape.outputs = vec![protocol::job::OutputSpec::auc("evaluation", &c.spec.label, 100, "1")];
            Some((release::training::TrainingPlan::new(&c.spec, policy)?, *n))
        }
        None => None,
    };
    let s = release::training::schedule(&shape, policy, plan.as_ref().map(|(p, n)| (p, *n)))
        .ok_or(QueryInitError::WorstCaseOverflows)?;
    Ok((s.minimum.as_millis() as u64).div_ceil(1000) * 1000 + 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::training::TrainingLimits;

    #[test]
    fn default_training_fits_the_budget_with_the_smallest_noise() {
        let limits = TrainingLimits::default();
        let total: dp::Epsilon = "4".parse().unwrap();
        let c = default_training("defaulted", &total, &limits, 20_000).unwrap();
        assert_eq!(c.evaluation_epsilon.to_string(), "0.5");
        assert!(c.accounted.to_f64() <= 3.5, "{}", c.accounted);
        assert_eq!(c.spec.expected_batch_size, 400);
        // One tenth less noise would not fit.
        let sigma: f64 = c.spec.noise_multiplier.as_str().parse().unwrap();
        let mut less = c.spec.clone();
        less.noise_multiplier = protocol::policy::Decimal::new(format!("{:.1}", sigma - 0.1)).unwrap();
        let plan = release::training::TrainingPlan::within(&less, &limits).unwrap();
        assert!(plan.epsilon.to_f64() > 3.5, "σ {} was not the smallest", sigma);
        // A budget nothing fits.
        let tiny: dp::Epsilon = "0.0001".parse().unwrap();
        assert!(matches!(default_training("defaulted", &tiny, &limits, 20_000), Err(QueryInitError::Training(_))));
    }
}
