//! The sandbox's hostile corpus (sandbox/tests/hostile/*.wat), submitted to a running
//! enclave-app through the real CLI and host proxy. Every job ends with an error within the
//! policy's time limit plus a margin, writes no result, the enclave then still runs
//! credit-lr, and its resident memory comes back to its level after a warm-up job.

use cleanroom_e2e::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The policy's per-job time limit in this world.
const TIME_LIMIT_MS: u64 = 1500;
/// Attestation, TLS, blob upload and decryption on top of the time limit, on a shared box.
const MARGIN: Duration = Duration::from_secs(6);
/// Allowed growth of the enclave's RSS over its post-warm-up baseline.
const RSS_MARGIN_KIB: u64 = 16 << 10;

/// Corpus members sent through the enclave (refused at admission, trapping, over a limit,
/// or running into the time limit), each with a phrase its error must contain.
const CORPUS: &[(&str, &str)] = &[
    ("01-import-wasi", "forbidden import"),
    ("02-import-env", "forbidden import"),
    ("07-shared-memory", "shared memory"),
    ("09-multi-memory", "memories"),
    ("12-wrong-export-signature", "wrong kind or type"),
    ("17-huge-initial-memory", "exceeds the limit"),
    ("18-table-bomb", "exceeds the limit"),
    ("21-infinite-loop", "time limit"),
    ("22-infinite-loop-in-start", "time limit"),
    ("23-deep-recursion", "stack"),
    ("24-memory-grow-beyond-cap", "memory limit"),
    ("25-memory-grow-to-limit", "memory limit"),
    ("27-read-out-of-bounds", "outside linear memory"),
    ("30-guest-out-of-bounds-store", "out of bounds"),
    ("31-emit-flood", "emitted"),
    ("34-trap-after-half", "unreachable"),
    ("41-timing-channel", "time limit"),
    ("42-host-call-storm", "time limit"),
    ("43-divide-by-zero", "divide by zero"),
    ("45-data-segment-out-of-range", "out of bounds"),
];

/// The corpus declares one f64 input; the demo query hands the module five (income,
/// utilization, late_payments, tenure_months, birth_decade). Re-declare the ABI section
/// with those five, so each module gets past the input-count check and shows its hostility.
const ONE_F64: &str = r#""\01\00\00\00\01\00\00\00\01\00\00\00\00""#;
const DEMO_INPUTS: &str = r#""\01\00\00\00\01\00\00\00\05\00\00\00\00\00\01\01\01""#;

fn corpus() -> Vec<(String, Vec<u8>, &'static str)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/tests/hostile");
    CORPUS
        .iter()
        .map(|&(name, needle)| {
            let src = std::fs::read_to_string(dir.join(format!("{name}.wat"))).expect("corpus file");
            assert!(src.contains(ONE_F64), "{name}: unexpected ABI section");
            let wasm = wat::parse_str(src.replace(ONE_F64, DEMO_INPUTS)).unwrap_or_else(|e| panic!("{name}: {e}"));
            (format!("{name}.wasm"), wasm, needle)
        })
        .collect()
}

fn enclave_rss_kib(w: &World) -> u64 {
    let ready: serde_json::Value = serde_json::from_slice(&std::fs::read(w.path("ready.json")).unwrap()).unwrap();
    let pid = ready["enclave_pid"].as_u64().expect("enclave_pid in the ready file");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("enclave-app is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn run_good(w: &World, job: &str) {
    let o = w.release(job, "1");
    assert!(o.status.success(), "{}", text(&o));
    let (o, result) = w.submit(job, &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{job}: {}\n{}", text(&o), w.host_log());
    assert!(result.exists());
}

#[test]
fn hostile_corpus_is_contained_by_the_running_enclave() {
    let modules = corpus();
    assert!(modules.len() >= 10);
    let w = World::start(WorldOptions {
        extra_modules: modules.iter().map(|(n, b, _)| (n.clone(), b.clone())).collect(),
        time_limit_ms: TIME_LIMIT_MS,
        budget: "100",
        rows: 2000,
        ..Default::default()
    });

    run_good(&w, "warm-up");
    let baseline = enclave_rss_kib(&w);

    let limit = Duration::from_millis(TIME_LIMIT_MS) + MARGIN;
    let mut slowest = Duration::ZERO;
    for (i, (name, _, needle)) in modules.iter().enumerate() {
        let job = format!("hostile-{i:02}");
        let o = w.release(&job, "1");
        assert!(o.status.success(), "{name}: grant: {}", text(&o));
        let module: PathBuf = w.path(name);
        let t = Instant::now();
        let (o, result) = w.submit(&job, &module, &w.index);
        let took = t.elapsed();
        slowest = slowest.max(took);
        let out = text(&o);
        assert!(!o.status.success(), "{name} produced a result: {out}");
        assert!(out.contains("error") && out.contains(needle), "{name}: expected an error with {needle:?}: {out}");
        assert!(!result.exists(), "{name}: a result file was written");
        assert!(took < limit, "{name}: took {took:?}, limit {limit:?}: {out}");
        eprintln!("{name}: refused in {took:?}: {}", out.lines().last().unwrap_or(""));
    }

    // Still serving, with the same sandbox.
    run_good(&w, "after-corpus");
    let after = enclave_rss_kib(&w);
    eprintln!("enclave RSS: {baseline} KiB after warm-up, {after} KiB after the corpus; slowest job {slowest:?}");
    assert!(after <= baseline + RSS_MARGIN_KIB, "enclave RSS grew from {baseline} KiB to {after} KiB");
}
