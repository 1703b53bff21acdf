//! Sealing a table ten times larger must not need more memory: `cleanroom prepare` streams
//! the source, sorts by privacy unit with an external sort that spills to disk, and
//! re-reads the sorted rows. The peak resident set of the `prepare` process for a table of
//! 20,000 rows and one of 200,000 rows must differ by less than 20%.
//!
//! The sort's in-memory segment is set small (4,096 rows) so both tables spill; with an
//! in-memory sort (a segment larger than the table) the larger run grows well past 20%.
#![allow(unsafe_code)] // a counting global allocator

use std::path::Path;
use std::process::Command;

fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    exe.parent().and_then(Path::parent).expect("target dir").join(name)
}

/// Run `cmd` to completion; its exit status and its own peak RSS in KiB (wait4 reports
/// the resource use of that one child, not of earlier ones such as the generator).
#[allow(clippy::zombie_processes)] // wait4 below reaps the child
fn run_measured(cmd: &mut Command, log: &Path) -> (bool, i64) {
    let err = std::fs::File::create(log).expect("log");
    let child = cmd.stdout(std::process::Stdio::null()).stderr(err).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 writes the status and one rusage into the pointers it is given.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(rc, pid, "wait4");
    // SAFETY: initialized by the successful call above.
    let usage = unsafe { usage.assume_init() };
    (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, usage.ru_maxrss)
}

fn seal(dir: &Path, rows: u64, segment_rows: &str) -> (i64, u64) {
    let data = dir.join(format!("data-{rows}"));
    let o = Command::new(bin("cleanroom"))
        .args(["generate", "--rows", &rows.to_string(), "--seed", "3", "--out", data.to_str().unwrap()])
        .output()
        .expect("generate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, cleanroom_e2e::bank_rules_keeping_small_classes()).unwrap();
    let csv = data.join("bank.csv");
    let log = dir.join(format!("prepare-{rows}.log"));
    let (ok, rss) = run_measured(
        Command::new(bin("cleanroom"))
            .args(["prepare", csv.to_str().unwrap(), "--rules", rules.to_str().unwrap()])
            .args(["--keys", dir.join("owner.keys").to_str().unwrap()])
            .args(["--out", dir.join(format!("sealed-{rows}")).to_str().unwrap()])
            .args(["--rows-per-chunk", "4096", "--sort-segment-rows", segment_rows]),
        &log,
    );
    assert!(ok, "prepare failed: {}", std::fs::read_to_string(&log).unwrap_or_default());
    (rss, std::fs::metadata(&csv).unwrap().len())
}

#[test]
fn sealing_a_ten_times_larger_table_needs_no_more_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (small_rss, small_bytes) = seal(dir.path(), 20_000, "4096");
    let (large_rss, large_bytes) = seal(dir.path(), 200_000, "4096");
    println!(
        "prepare peak RSS: {small_rss} KiB for {small_bytes} CSV bytes, {large_rss} KiB for {large_bytes} CSV bytes"
    );
    assert!(large_bytes > 9 * small_bytes);
    assert!(
        (large_rss as f64) < 1.2 * small_rss as f64,
        "peak RSS grew from {small_rss} KiB to {large_rss} KiB for a ten times larger table"
    );
}
