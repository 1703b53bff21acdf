//! `cleanroom prepare TABLE --suggest-rules RULES.toml`: scan a table and draft its rules
//! file, with a comment on every column saying what the scan found. The draft is a start
//! for the owner's review, not a decision: every `reason` is left empty, and a rules file
//! with an empty reason is refused, so a draft cannot be sealed unread.

use crate::prepare::{Date, InputFormat, InputOptions, PrepareError};
use pii::{DistinctCount, InferredType, Kind, Profile};
use std::fmt::Write;
use std::path::Path;

/// Rows profiled in full; beyond them one row in `SAMPLE_STRIDE` (so a large table is
/// scanned in bounded time, and every part of it is seen).
pub const FULL_SCAN_ROWS: u64 = 100_000;
pub const SAMPLE_STRIDE: u64 = 10;
/// Categories below this many distinct values are suggested as group keys.
const GROUP_KEY_MAX_DISTINCT: u64 = 50;

#[derive(Debug, Clone)]
pub struct Suggestion {
    pub toml: String,
    pub rows_seen: u64,
    pub rows_scanned: u64,
    /// The column suggested as the privacy unit, if any looked like one.
    pub unit: Option<String>,
    pub profiles: Vec<(String, Profile)>,
}

/// What the scan suggests for one column.
struct Draft {
    label: &'static str,
    transform: String,
    roles: Vec<&'static str>,
    into: Option<String>,
    extra: Vec<String>,
}

/// Scan `input` (CSV dialect sniffed from its first line when `opts` is the default) and
/// draft rules. `today` is the reference date for suggested ages.
pub fn suggest_rules(input: &Path, opts: &InputOptions, today: Date) -> Result<Suggestion, PrepareError> {
    let mut opts = opts.clone();
    if opts.format != InputFormat::Parquet {
        if let Some(d) = sniff_delimiter(input) {
            opts.delimiter = d;
        }
    }
    let mut src = crate::prepare::open_source(input, &opts)?;
    let names = src.names().to_vec();
    let mut profiles: Vec<pii::ColumnProfile> = names.iter().map(|n| pii::ColumnProfile::new(n)).collect();
    let (mut seen, mut scanned) = (0u64, 0u64);
    let mut row = Vec::new();
    while src.next_text_row(&mut row)? {
        seen += 1;
        if seen > FULL_SCAN_ROWS && !seen.is_multiple_of(SAMPLE_STRIDE) {
            continue;
        }
        scanned += 1;
        for (p, v) in profiles.iter_mut().zip(&row) {
            p.observe(v.as_deref());
        }
    }
    let profiles: Vec<(String, Profile)> = names.iter().cloned().zip(profiles.iter().map(|p| p.finish())).collect();
    // The unit: an identifier-like column, preferring one whose name says it identifies a person.
    let unit = profiles
        .iter()
        .filter(|(_, p)| p.looks_like_unit_id())
        // An account or record id is the usual unit; a column that is itself personal data
        // (an SSN, an email) comes after it.
        .max_by_key(|(_, p)| (p.dominant_pii(0.5).is_none(), p.hint.identifier, p.hint.person_identifier))
        .map(|(n, _)| n.clone());

    let mut t = String::new();
    let _ = writeln!(t, "# Draft rules from `cleanroom prepare --suggest-rules` (format: docs/prepare-rules.md).");
    let _ = writeln!(t, "# Scanned {scanned} of {seen} rows. Review every column: its label, transform, roles and");
    let _ = writeln!(t, "# reason. Every reason is empty on purpose: prepare refuses a rule without one.");
    let _ = writeln!(t, "version = 1");
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
    let _ = writeln!(t, "dataset = {}", quote(&stem));
    let _ = writeln!(t, "# retention_until = \"YYYY-MM-DD\"   # the last day the sealed copy may be used");
    let _ = writeln!(t, "\n[input]");
    let _ = writeln!(t, "format = \"{}\"", if src.is_parquet() { "parquet" } else { "csv" });
    if !src.is_parquet() {
        let _ = writeln!(t, "delimiter = {}", quote(&opts.delimiter.to_string()));
        let _ = writeln!(t, "header = {}", opts.header);
        let _ = writeln!(t, "null_values = {:?}", opts.null_values);
    }
    let _ = writeln!(t, "\n[k_anonymity]");
    let _ =
        writeln!(t, "# Over the quasi-identifiers below: refuse to seal while any class holds fewer than k people.");
    let _ = writeln!(t, "k = 10\nremedy = \"refuse\"   # or \"suppress\", or \"override\" with reason = \"...\"");
    for (name, p) in &profiles {
        let d = draft(name, p, unit.as_deref() == Some(name.as_str()), today);
        let _ = writeln!(t, "\n[[column]]");
        for line in findings(p) {
            let _ = writeln!(t, "# {line}");
        }
        let _ = writeln!(t, "name = {}", quote(name));
        let _ = writeln!(t, "label = \"{}\"", d.label);
        let _ = writeln!(t, "transform = {}", d.transform);
        if let Some(into) = &d.into {
            let _ = writeln!(t, "into = {}", quote(into));
        }
        if !d.roles.is_empty() {
            let _ = writeln!(t, "roles = {:?}", d.roles);
        }
        for e in &d.extra {
            let _ = writeln!(t, "{e}");
        }
        let _ = writeln!(t, "reason = \"\"");
    }
    Ok(Suggestion { toml: t, rows_seen: seen, rows_scanned: scanned, unit, profiles })
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `x` rounded away from the middle of its range to two significant digits.
fn coarse(x: f64, up: bool) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(x.abs().log10().floor() as i32 - 1);
    let q = x / scale;
    (if up { q.ceil() } else { q.floor() }) * scale
}

/// One plain-words line per thing the scan found.
fn findings(p: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    let share = |n: u64| if p.values == 0 { 0.0 } else { 100.0 * n as f64 / p.values as f64 };
    let mut found: Vec<String> = p
        .hits
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} ({n} values, {:.1}%)", k.name(), share(*n)))
        .collect();
    if found.is_empty() {
        found.push("no personal data detected".into());
    }
    out.push(format!("found: {}", found.join(", ")));
    let distinct = match p.distinct {
        DistinctCount::Exact(n) => format!("{n} distinct"),
        DistinctCount::MoreThan { cap, estimate } => format!("more than {cap} distinct (about {estimate})"),
    };
    let mut shape = format!("{:?}, {distinct}, {} nulls of {}", p.inferred_type, p.nulls, p.values + p.nulls);
    // The extremes are one person's exact values (the oldest, the richest): the draft,
    // which is reviewed and shared, gets them rounded outward to two significant digits.
    if let Some(r) = &p.numeric {
        let _ = write!(shape, ", range within {} to {}", coarse(r.min, false), coarse(r.max, true));
    }
    if p.mean_words >= 3.0 {
        let _ = write!(shape, ", {:.1} words on average", p.mean_words);
    }
    out.push(shape);
    if p.looks_like_unit_id() {
        out.push("identifier-like: nearly every value is distinct".into());
    }
    out
}

fn draft(name: &str, p: &Profile, is_unit: bool, today: Date) -> Draft {
    let mut d = Draft { label: "sensitive", transform: String::new(), roles: vec![], into: None, extra: vec![] };
    if is_unit {
        d.label = "direct_identifier";
        d.transform = "{ kind = \"tokenize\" }".into();
        d.roles = vec!["privacy_unit"];
        d.into = Some(format!("{name}_token"));
        return d;
    }
    if p.nulls > 0 {
        d.extra.push("nulls = \"refuse\"   # or \"drop_row\", or \"keep\" (sealed as nulls)".into());
    }
    match p.dominant_pii(0.5) {
        Some((k, _)) if k.is_direct_identifier() => {
            d.label = "direct_identifier";
            d.transform = "{ kind = \"drop\" }".into();
            d.extra.clear();
            return d;
        }
        Some((Kind::Postcode, _)) => {
            d.label = "quasi_identifier";
            d.transform = "{ kind = \"prefix\", chars = 3 }".into();
            d.into = Some(format!("{name}3"));
            d.roles = vec!["input", "group_key"];
            d.extra.push("merge_rare_below = 10".into());
            return d;
        }
        Some((Kind::DateOfBirth, _)) => {
            d.label = "quasi_identifier";
            d.transform = format!("{{ kind = \"age_at\", at = \"{today}\", width = 10 }}");
            d.into = Some("age_band".into());
            d.roles = vec!["input"];
            return d;
        }
        Some((Kind::FreeText, _)) => {
            d.transform = "{ kind = \"drop\" }".into();
            d.extra = vec!["# free text may hold anything; keep it only with allow_pii = \"reason\"".into()];
            return d;
        }
        _ => {}
    }
    if p.count(Kind::FreeText) > 0 || p.hits.iter().any(|(k, n)| *n > 0 && k.is_identifying()) {
        d.extra.push("# some values look like personal data: drop the column, or keep it with allow_pii".into());
    }
    let distinct = p.distinct.estimate();
    if looks_quasi(name) {
        d.label = "quasi_identifier";
        d.extra.push("# with other quasi-identifiers this can single people out: generalize it (bins, prefix)".into());
    }
    match p.inferred_type {
        InferredType::Empty => d.transform = "{ kind = \"drop\" }".into(),
        InferredType::Boolean => {
            d.transform = "{ kind = \"keep\", type = \"bool\" }".into();
            d.roles = vec!["input"];
        }
        InferredType::Integer => {
            d.transform = "{ kind = \"keep\", type = \"i64\" }".into();
            d.roles = vec!["input"];
        }
        InferredType::Float => {
            d.transform = "{ kind = \"keep\", type = \"f64\" }".into();
            d.roles = vec!["input"];
        }
        InferredType::Date | InferredType::DateTime => {
            d.label = "quasi_identifier";
            d.transform = "{ kind = \"date_trunc\", to = \"month\" }".into();
            d.roles = vec!["input", "group_key"];
        }
        InferredType::Text if distinct <= GROUP_KEY_MAX_DISTINCT => {
            d.transform = "{ kind = \"keep\", type = \"text\" }".into();
            d.roles = vec!["input", "group_key"];
            d.extra.push("merge_rare_below = 10".into());
        }
        InferredType::Text if p.unique_ratio > 0.5 => {
            d.label = "direct_identifier";
            d.transform = "{ kind = \"drop\" }".into();
            d.extra = vec!["# nearly every value is distinct: it may identify people".into()];
        }
        InferredType::Text => {
            d.transform = "{ kind = \"keep\", type = \"text\" }".into();
            d.roles = vec!["input"];
            d.extra.push("merge_rare_below = 10".into());
        }
    }
    d
}

/// Column names that usually hold quasi-identifiers (demographics).
fn looks_quasi(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let words: Vec<&str> = n.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    words.iter().any(|w| {
        matches!(
            *w,
            "age" | "gender" | "sex" | "race" | "ethnicity" | "marital" | "maritl" | "religion" | "nationality"
        )
    })
}

/// The delimiter of a CSV's first line: the most frequent of `,` `;` tab `|`, if any.
fn sniff_delimiter(input: &Path) -> Option<char> {
    use std::io::{BufRead, BufReader, Read};
    let mut line = String::new();
    let f = std::fs::File::open(input).ok()?;
    BufReader::new(f).take(64 * 1024).read_line(&mut line).ok()?;
    if line.as_bytes().starts_with(b"PAR1") {
        return None;
    }
    [',', ';', '\t', '|']
        .into_iter()
        .map(|c| (line.matches(c).count(), c))
        .filter(|(n, _)| *n > 0)
        .max()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_rounded_outward() {
        assert_eq!(coarse(99258.0, true), 100000.0);
        assert_eq!(coarse(1052.0, false), 1000.0);
        assert_eq!(coarse(771.97, false), 770.0);
        assert_eq!(coarse(-3.7, false), -3.7);
        assert_eq!(coarse(18.0, false), 18.0);
        assert_eq!(coarse(80.0, true), 80.0);
    }

    #[test]
    fn delimiters_are_sniffed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "a;b;c\n1;2;3\n").unwrap();
        assert_eq!(sniff_delimiter(&p), Some(';'));
        std::fs::write(&p, "a\tb\n").unwrap();
        assert_eq!(sniff_delimiter(&p), Some('\t'));
        std::fs::write(&p, "single\n").unwrap();
        assert_eq!(sniff_delimiter(&p), None);
    }
}
