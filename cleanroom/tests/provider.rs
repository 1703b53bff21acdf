//! `cleanroom provider check` and `cleanroom provider test`, through the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cleanroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleanroom")).args(args).output().expect("run cleanroom")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// An example model built for wasm32 (`$CLEANROOM_CREDIT_LR_WASM` etc. override), sharing
/// the sandbox tests' target directory.
fn example(package: &str) -> PathBuf {
    let file = format!("{}.wasm", package.replace('-', "_"));
    let var = format!("CLEANROOM_{}_WASM", package.replace('-', "_").to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let target = root().join("target").join("sandbox-tests");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root())
        .args(["build", "--quiet", "--release", "--target", "wasm32-unknown-unknown", "-p", package])
        .arg("--target-dir")
        .arg(&target)
        .status();
    let built = target.join("wasm32-unknown-unknown/release").join(&file);
    match status {
        Ok(s) if s.success() => built,
        _ => root().join("target/wasm32-unknown-unknown/release").join(file),
    }
}

fn hostile(dir: &Path, name: &str) -> PathBuf {
    let src = std::fs::read_to_string(root().join("sandbox/tests/hostile").join(format!("{name}.wat"))).unwrap();
    let p = dir.join(format!("{name}.wasm"));
    std::fs::write(&p, wat::parse_str(&src).unwrap()).unwrap();
    p
}

fn p(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A CSV sample and a query for `module` written with `query-init` (the manifest comes
/// from preparing the sample, as the provider would get the owner's public manifest).
fn sample(dir: &Path, module: &Path, rows: u64) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let o = cleanroom(&["generate", "--rows", &rows.to_string(), "--seed", "5", "--out", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    let sealed = dir.join("sealed");
    let rules = dir.join("rules.toml");
    common::write_small_table_rules(&rules);
    let o = cleanroom(&[
        "prepare",
        p(&data.join("bank.csv")),
        "--rules",
        p(&rules),
        "--keys",
        p(&dir.join("k")),
        "--out",
        p(&sealed),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let q = dir.join("query.toml");
    let o = cleanroom(&[
        "query-init",
        "--manifest",
        p(&sealed.join("manifest.json")),
        "--module",
        p(module),
        "--job",
        "local-1",
        "--collaborator",
        "acme",
        "--out",
        p(&q),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    (data.join("bank.csv"), q)
}

#[test]
fn check_admits_the_examples_and_prints_their_hash() {
    for pkg in ["credit-lr", "credit-gbdt", "credit-loss"] {
        let m = example(pkg);
        let o = cleanroom(&["provider", "check", p(&m)]);
        let t = text(&o);
        assert!(o.status.success(), "{pkg}: {t}");
        let hash = protocol::Digest::of(&std::fs::read(&m).unwrap()).to_hex();
        assert!(t.contains(&format!("sha256:          {hash}")), "{pkg}: {t}");
        assert!(t.contains("ABI version:     1"), "{t}");
        assert!(t.contains("cleanroom.emit"), "{t}");
        let inputs =
            if pkg == "credit-loss" { "6 (f64, f64, i64, i64, i64, i64)" } else { "5 (f64, f64, i64, i64, i64)" };
        assert!(t.contains(inputs), "{pkg}: {t}");
    }
}

#[test]
fn check_refuses_bad_modules_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"(module)").unwrap();
    let cases: [(PathBuf, &str); 5] = [
        (junk, "not a WebAssembly module"),
        (hostile(dir.path(), "01-import-wasi"), "wasi_snapshot_preview1"),
        (hostile(dir.path(), "07-shared-memory"), "refused"),
        (hostile(dir.path(), "15-abi-version-2"), "version"),
        (hostile(dir.path(), "17-huge-initial-memory"), "memory"),
    ];
    for (m, want) in &cases {
        let o = cleanroom(&["provider", "check", p(m)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{} was admitted: {}", m.display(), text(&o));
        assert!(err.contains("refused at admission"), "{err}");
        assert!(err.to_lowercase().contains(&want.to_lowercase()), "{}: {err}", m.display());
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
        assert!(o.stdout.is_empty(), "printed a hash for a refused module");
    }
    // Limits are the same knobs as the policy's: a smaller module limit refuses credit-gbdt.
    let o = cleanroom(&["provider", "check", p(&example("credit-gbdt")), "--max-module-mib", "0"]);
    assert!(!o.status.success());
}

#[test]
fn test_runs_the_module_on_a_sample_and_says_no_dp() {
    let dir = tempfile::tempdir().unwrap();
    let m = example("credit-gbdt");
    let (csv, q) = sample(dir.path(), &m, 1500);
    let out = dir.path().join("exact.json");
    // credit-gbdt spends about 27,000 fuel on a one-row unit of this sample, more than the
    // 20,000 default: give it room, so that every unit scores.
    let o = cleanroom(&[
        "provider",
        "test",
        p(&m),
        "--csv",
        p(&csv),
        "--query",
        p(&q),
        "--out",
        p(&out),
        "--fuel-per-unit",
        "200000",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for needle in [
        "no differential privacy",
        "no privacy budget is spent",
        "no attestation is involved",
        "1500 rows",
        " 0 absent",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in {t}");
    }
    assert!(!t.contains("warning:"), "{t}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["dp"], false);
    assert_eq!(doc["attested"], false);
    assert_eq!(doc["rows"], 1500);
    // One row per customer in the generated sample: one unit per row, none absent.
    assert_eq!(doc["units"], 1500);
    assert_eq!(doc["units_absent"], 0);
    let hist = doc["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "score_histogram").unwrap();
    let total: f64 = hist["values"].as_array().unwrap().iter().map(|v| v["value"].as_f64().unwrap()).sum();
    assert_eq!(total, 1500.0, "exact histogram counts every row once");
}

#[test]
fn test_warns_when_the_query_names_another_module() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, q) = sample(dir.path(), &example("credit-lr"), 300);
    let o = cleanroom(&["provider", "test", p(&example("credit-gbdt")), "--csv", p(&csv), "--query", p(&q)]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("warning: the query names module"), "{t}");
}

/// A module that loops forever does not end the job: fuel bounds every unit, each unit
/// runs out and is absent, and the run finishes quickly with nothing absorbed.
#[test]
fn test_reports_a_hostile_module_as_absent_units() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, q) = sample(dir.path(), &example("credit-lr"), 300);
    // The corpus' infinite loop, declared with the query's five inputs.
    let src = std::fs::read_to_string(root().join("sandbox/tests/hostile/21-infinite-loop.wat")).unwrap().replace(
        r#""\01\00\00\00\01\00\00\00\01\00\00\00\00""#,
        r#""\01\00\00\00\01\00\00\00\05\00\00\00\00\00\01\01\01""#,
    );
    let m = dir.path().join("loop.wasm");
    std::fs::write(&m, wat::parse_str(&src).unwrap()).unwrap();
    let out = dir.path().join("exact.json");
    let t0 = Instant::now();
    let o = cleanroom(&["provider", "test", p(&m), "--csv", p(&csv), "--query", p(&q), "--out", p(&out)]);
    let took = t0.elapsed();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("0 privacy units scored, 300 absent after a fault"), "{t}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((doc["units"].as_u64(), doc["units_absent"].as_u64()), (Some(0), Some(300)));
    // Absent units add nothing to any output.
    for o in doc["outputs"].as_array().unwrap() {
        match o["class"].as_str().unwrap() {
            "group_mean" => assert!(o["values"].as_array().unwrap().is_empty(), "{o}"),
            "histogram" => assert!(o["values"].as_array().unwrap().iter().all(|v| v["value"] == 0.0), "{o}"),
            _ => {}
        }
    }

    // A module whose input count differs from the query's is a clear error.
    let o = cleanroom(&["provider", "test", p(&hostile(dir.path(), "00-echo")), "--csv", p(&csv), "--query", p(&q)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("declares 1"), "{}", text(&o));
}
