//! `cleanroom dp plan --mechanism dp-sgd` against Google's `dp-accounting` on a 200-point grid
//! of (q, σ, T, δ): `scripts/dpsgd_accountant_check.py` runs the built binary for every point
//! and fails if ours is below the PLD ε (an under-count), above dp-accounting's RDP ε on its
//! integer orders, or more than 5% above its RDP ε where σ ≥ 1 and ε ≤ 20.
//!
//! Needs `python3` with `dp-accounting` (`make test-deps` installs it). Without them the test
//! fails (it does not skip). About 30 seconds.

use std::process::Command;

#[test]
fn dp_sgd_epsilon_is_never_below_pld_and_close_to_rdp() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dpsgd_accountant_check.py");
    let out = Command::new("python3")
        .args([script, "--cleanroom", env!("CARGO_BIN_EXE_cleanroom")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `python3 {script}`: {e}; this test needs Python 3 with dp-accounting"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}). If dp_accounting is missing: python3 -m pip install dp-accounting \
         (make test-deps); this test does not skip.\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    // The summary (worst ratios) for the test log.
    eprintln!("{}", stdout.lines().rev().take(7).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(stdout.contains("all checks hold"), "{stdout}");
}
