//! Comparing a new snapshot's manifest with the previous one of the same dataset name in
//! the owner's log: schema drift is reported, a column that became less protected is
//! refused unless its rule says why (`allow_regression = "reason"`).

use protocol::manifest::{ColumnSpec, Manifest, Sensitivity, Transform};
use protocol::Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The previous manifest's digest.
    pub previous: Digest,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// (column, sealed type before, after); "dropped" when not sealed.
    pub retyped: Vec<(String, String, String)>,
    pub regressions: Vec<Regression>,
}

/// A source column whose label or transform protects less than in the previous snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regression {
    pub column: String,
    pub before: String,
    pub after: String,
    /// The rule's `allow_regression`, if the owner gave one.
    pub allowed: Option<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.retyped.is_empty() && self.regressions.is_empty()
    }
}

fn label_rank(l: Sensitivity) -> u8 {
    match l {
        Sensitivity::DirectIdentifier => 3,
        Sensitivity::QuasiIdentifier => 2,
        Sensitivity::Sensitive => 1,
        Sensitivity::Public => 0,
    }
}

/// How much of the source value the transform lets through, in coarse steps.
fn transform_rank(t: &Transform) -> u8 {
    match t {
        Transform::Dropped => 3,
        Transform::Tokenized { .. } => 2,
        Transform::Generalized { .. } => 1,
        Transform::Kept => 0,
    }
}

fn describe(c: &ColumnSpec) -> String {
    let t = match &c.transform {
        Transform::Dropped => "dropped".to_string(),
        Transform::Tokenized { .. } => "tokenized".to_string(),
        Transform::Generalized { rule } => format!("generalized ({rule})"),
        Transform::Kept => "kept".to_string(),
    };
    format!("{:?}, {t}", c.label)
}

/// What changed from `prev` to `next`, column by column (by source name).
pub fn compare(prev: &Manifest, next: &Manifest) -> Drift {
    let find = |m: &'_ Manifest, n: &str| m.columns.iter().find(|c| c.source_name == n).cloned();
    let mut d = Drift { previous: prev.digest(), added: vec![], removed: vec![], retyped: vec![], regressions: vec![] };
    for c in &next.columns {
        let Some(old) = find(prev, &c.source_name) else {
            d.added.push(c.source_name.clone());
            continue;
        };
        if old.sealed_type != c.sealed_type {
            let ty = |t: &Option<String>| t.clone().unwrap_or_else(|| "dropped".into());
            d.retyped.push((c.source_name.clone(), ty(&old.sealed_type), ty(&c.sealed_type)));
        }
        let weaker = label_rank(c.label) < label_rank(old.label)
            || transform_rank(&c.transform) < transform_rank(&old.transform);
        if weaker {
            d.regressions.push(Regression {
                column: c.source_name.clone(),
                before: describe(&old),
                after: describe(c),
                allowed: c.allow_regression.clone(),
            });
        }
    }
    d.removed =
        prev.columns.iter().filter(|c| find(next, &c.source_name).is_none()).map(|c| c.source_name.clone()).collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, label: Sensitivity, transform: Transform, ty: Option<&str>) -> ColumnSpec {
        ColumnSpec {
            source_name: name.into(),
            sealed_name: ty.map(|_| name.to_string()),
            sealed_type: ty.map(str::to_string),
            label,
            transform,
            roles: vec![],
            label_domain: None,
            reason: None,
            allow_pii: None,
            allow_regression: None,
            nullable: false,
        }
    }

    fn manifest(columns: Vec<ColumnSpec>) -> Manifest {
        let mut m: Manifest = serde_json::from_str(
            r#"{"version":1,"dataset_name":"d","columns":[],"privacy_unit":"u",
            "lineage":{"source_file":"f","source_format":"csv","source_digest":"0000000000000000000000000000000000000000000000000000000000000000","ingested_at":0},
            "rows":1,"chunks":1,"rows_per_chunk":1,"dataset_digest":"0000000000000000000000000000000000000000000000000000000000000000",
            "k_anonymity":null,"pii_findings":[]}"#,
        )
        .unwrap();
        m.columns = columns;
        m
    }

    #[test]
    fn drift_and_regressions_are_found() {
        use Sensitivity::*;
        let prev = manifest(vec![
            spec("email", DirectIdentifier, Transform::Dropped, None),
            spec("zip", QuasiIdentifier, Transform::Generalized { rule: "prefix:3".into() }, Some("dict")),
            spec("income", Sensitive, Transform::Kept, Some("f64")),
            spec("old", Public, Transform::Kept, Some("i64")),
        ]);
        let mut next = manifest(vec![
            spec("email", DirectIdentifier, Transform::Dropped, None),
            spec("zip", QuasiIdentifier, Transform::Kept, Some("dict")),
            spec("income", Sensitive, Transform::Kept, Some("i64")),
            spec("new", Public, Transform::Kept, Some("f64")),
        ]);
        let d = compare(&prev, &next);
        assert_eq!((d.added.clone(), d.removed.clone()), (vec!["new".to_string()], vec!["old".to_string()]));
        assert_eq!(d.retyped, vec![("income".to_string(), "f64".to_string(), "i64".to_string())]);
        assert_eq!(d.regressions.len(), 1);
        assert_eq!(d.regressions[0].column, "zip");
        assert_eq!(d.regressions[0].allowed, None);
        next.columns[1].allow_regression = Some("the region model needs five digits".into());
        assert!(compare(&prev, &next).regressions[0].allowed.is_some());
        // A column that became more protected, or a label raised, is no regression.
        let tighter = manifest(vec![spec("income", Sensitive, Transform::Dropped, None)]);
        assert!(compare(&prev, &tighter).regressions.is_empty());
        assert!(compare(&prev, &prev).is_empty());
    }
}
