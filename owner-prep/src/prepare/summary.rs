//! The owner's report of one `prepare` run, as text. Its counts are for the owner only.

use super::PrepareReport;
use protocol::manifest::Transform;
use std::fmt::Write;
use std::path::Path;

fn transform_text(t: &Transform) -> String {
    match t {
        Transform::Tokenized { key_id } => format!("tokenized (HMAC key {key_id})"),
        Transform::Dropped => "dropped".into(),
        Transform::Generalized { rule } => format!("generalized ({rule})"),
        Transform::Kept => "kept".into(),
    }
}

/// What was sealed, where, and what the checks found.
pub fn summary(r: &PrepareReport, out: &Path) -> String {
    let m = &r.manifest;
    let mut s = String::new();
    let _ = writeln!(s, "sealed {} rows ({} people) into {} chunks in {}", r.rows, r.units, r.chunks, out.display());
    let _ = writeln!(s, "public manifest (schema only, for providers): {}", out.join("public-manifest.json").display());
    if let Some(p) = m.population() {
        let _ = writeln!(s, "population (token key id): {p}");
    }
    let _ = writeln!(s, "dataset digest:  {}", r.dataset_digest);
    let _ = writeln!(s, "manifest digest: {}", r.manifest_digest);
    if let Some(d) = &m.lineage.rules_digest {
        let _ = writeln!(s, "rules digest:    {d}");
    }
    for c in &m.columns {
        let roles: Vec<&str> = c.roles.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(
            s,
            "  {:<16} {:<18} {:<34} -> {:<16} {}",
            c.source_name,
            format!("{:?}", c.label),
            transform_text(&c.transform),
            c.sealed_name.as_deref().unwrap_or("-"),
            roles.join(",")
        );
    }
    if m.rows_dropped_null > 0 {
        let _ = writeln!(s, "rows left out for a null (nulls = \"drop_row\"): {}", m.rows_dropped_null);
    }
    if let Some(d) = &r.drift {
        let _ = writeln!(s, "since the previous snapshot (manifest {}):", d.previous);
        if d.is_empty() {
            let _ = writeln!(s, "  no schema drift");
        }
        for c in &d.added {
            let _ = writeln!(s, "  column added: {c}");
        }
        for c in &d.removed {
            let _ = writeln!(s, "  column removed: {c}");
        }
        for (c, a, b) in &d.retyped {
            let _ = writeln!(s, "  column retyped: {c} {a} -> {b}");
        }
        for g in &d.regressions {
            let why = g.allowed.as_deref().unwrap_or("-");
            let _ = writeln!(s, "  less protected: {} ({} -> {}); allowed because: {why}", g.column, g.before, g.after);
        }
    }
    for (col, n) in &r.nulls_sealed {
        let _ = writeln!(s, "{col}: {n} nulls sealed as nulls (nulls = \"keep\")");
    }
    for (col, n) in &r.merged_categories {
        let _ = writeln!(s, "{col}: {n} rare categories merged into \"other\"");
    }
    if let Some(k) = &r.k_anonymity {
        let _ = writeln!(
            s,
            "k-anonymity over {:?} (in people): k_min = {}, {} classes, {} below k = {} ({} rows); remedy: {}",
            k.quasi_identifiers,
            k.k_min,
            k.classes,
            k.classes_below_target,
            k.k_target,
            k.rows_below_target,
            k.remedy.as_deref().unwrap_or("-")
        );
        if k.rows_suppressed > 0 {
            let _ = writeln!(s, "  rows suppressed (not sealed, never released): {}", k.rows_suppressed);
        }
        for l in &k.l_diversity {
            let _ = writeln!(
                s,
                "  l-diversity of {}: l_min = {}, {} classes where everyone shares one value",
                l.column, l.l_min, l.classes_with_one_value
            );
        }
    }
    for f in &r.findings {
        let _ = writeln!(
            s,
            "  PII scan: column {} matched {} {} times in {} values",
            f.column, f.detector, f.matches, f.sampled
        );
    }
    s
}
