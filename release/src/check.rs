//! Resolving a query against the policy and the module before any data is read: where each
//! output's values come from, whether its groups are public or selected, and (by building
//! every aggregator, see [`crate::Accumulator::new`]) that every noise scale is usable.

use crate::ReleaseError;
use protocol::job::{Noise, OutputSpec, QuerySpec, ValueSource, MAX_PUBLIC_GROUPS};
use protocol::policy::Policy;

/// Where a row's value comes from once the module's outputs are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Index into the module's outputs for the row (m per row, row-major).
    Model(usize),
    /// A sealed f64 or i64 column.
    Column(String),
}

impl Source {
    pub(crate) fn label(&self, names: &[String]) -> String {
        match self {
            Source::Model(i) => names.get(*i).cloned().unwrap_or_default(),
            Source::Column(c) => c.clone(),
        }
    }
}

/// How an output's groups are found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Keys {
    /// No group_by: one aggregate over every row.
    Total,
    /// Every group key has a public domain in the policy: each combination is a group.
    Public(Vec<String>),
    /// Groups come from the data and are released only through DP partition selection.
    Selected,
}

/// Separator of several key values inside one group key: no dictionary value the enclave
/// releases contains it (the public form joins with " | ").
pub(crate) const KEY_SEP: char = '\u{1f}';

/// Whether every group key of `o` has a public domain in the policy.
pub fn keys_are_public(o: &OutputSpec, policy: &Policy) -> bool {
    o.group_by().iter().all(|g| policy.column(g).is_some_and(|c| c.domain.is_some()))
}

pub(crate) fn keys_of(o: &OutputSpec, policy: &Policy) -> Result<Keys, ReleaseError> {
    let keys = o.group_by();
    if keys.is_empty() {
        return Ok(Keys::Total);
    }
    if !keys_are_public(o, policy) {
        if o.noise() == Noise::Gaussian {
            return Err(ReleaseError::BadOutput {
                output: o.name().into(),
                why: "noise: Gaussian noise needs public key domains for every group_by column \
                      (partition selection is Laplace-only); declare the domains in the policy or use Laplace"
                    .into(),
            });
        }
        return Ok(Keys::Selected);
    }
    let domains: Vec<&Vec<String>> =
        keys.iter().map(|g| policy.column(g).and_then(|c| c.domain.as_ref()).expect("checked public")).collect();
    let size = domains.iter().try_fold(1usize, |acc, d| acc.checked_mul(d.len()).filter(|&n| n <= MAX_PUBLIC_GROUPS));
    if size.is_none() {
        return Err(ReleaseError::BadOutput {
            output: o.name().into(),
            why: format!("group_by: the product of the key domains exceeds {MAX_PUBLIC_GROUPS} groups"),
        });
    }
    let mut all = vec![String::new()];
    for (i, d) in domains.iter().enumerate() {
        all = all
            .iter()
            .flat_map(|prefix| d.iter().map(move |v| if i == 0 { v.clone() } else { format!("{prefix}{KEY_SEP}{v}") }))
            .collect();
    }
    Ok(Keys::Public(all))
}

/// Resolves each value source of `o` against the module's output names. `None` (no `of`)
/// is the module's only output.
pub(crate) fn sources(o: &OutputSpec, model_outputs: &[String]) -> Result<Vec<Source>, ReleaseError> {
    let unknown = |name: &str| ReleaseError::UnknownModelOutput {
        output: o.name().into(),
        name: name.into(),
        available: model_outputs.join(", "),
    };
    o.values()
        .into_iter()
        .map(|v| match v {
            None if model_outputs.len() == 1 => Ok(Source::Model(0)),
            None => Err(ReleaseError::BadOutput {
                output: o.name().into(),
                why: format!(
                    "of: the module has {} outputs ({}); name one with of = {{ output = \"...\" }}",
                    model_outputs.len(),
                    model_outputs.join(", ")
                ),
            }),
            Some(ValueSource::Output(n)) => {
                model_outputs.iter().position(|m| m == n).map(Source::Model).ok_or_else(|| unknown(n))
            }
            Some(ValueSource::Column(c)) => Ok(Source::Column(c.clone())),
        })
        .collect()
}

/// Outputs whose release time grows with the data (partition selection over the groups
/// found): the deadline reserves time for them per sealed row.
pub fn selected_group_outputs(spec: &QuerySpec, policy: &Policy) -> u64 {
    spec.outputs.iter().filter(|o| !o.group_by().is_empty() && !keys_are_public(o, policy)).count() as u64
}
