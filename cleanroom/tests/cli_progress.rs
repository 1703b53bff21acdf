//! Off a terminal, `prepare` reports progress as plain lines on standard error (rate and
//! ETA), and standard output keeps only the report.

mod common;

use std::process::Command;

#[test]
fn prepare_prints_plain_progress_lines_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let bin = env!("CARGO_BIN_EXE_cleanroom");
    let o = Command::new(bin).args(["generate", "--rows", "300", "--out", &d("data")]).output().unwrap();
    assert!(o.status.success());
    let rules = d("rules.toml");
    common::write_small_table_rules(std::path::Path::new(&rules));
    let o = Command::new(bin)
        .args(["prepare", &d("data/bank.csv"), "--rules", &rules, "--keys", &d("k"), "--out", &d("out")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(err.lines().any(|l| l.starts_with("reading and tokenizing:") && l.contains("MB/s, ETA")), "{err}");
    assert!(err.lines().any(|l| l.starts_with("sealing: 300 of 300 rows")), "{err}");
    assert!(!out.contains("ETA") && out.contains("sealed 300 rows"), "{out}");
}
