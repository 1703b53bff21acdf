//! The sandbox's hostile corpus (sandbox/tests/hostile/*.wat), submitted to a running
//! enclave-app through the real CLI and host proxy.
//!
//! A module refused at admission is refused before the grant is spent, with a precise
//! code and reason (they depend on no data). Every other hostile module runs unit by unit,
//! and whatever it does to a unit (trap, loop, exhaust its fuel, overflow the stack,
//! grow memory, read or write out of bounds, flood emits) makes that unit absent: the
//! job still ends in a signed release, at the query's deadline, whose structure is that
//! of any other release of the query (here of an empty table) and which says nothing of
//! what the module did. The enclave then still runs credit-lr, and its resident memory
//! comes back to its level after a warm-up job.

use cleanroom_e2e::*;
use protocol::result::JobResult;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Attestation, TLS and blob upload on top of the deadline, on a shared box.
const MARGIN: Duration = Duration::from_secs(6);
/// Allowed growth of the enclave's RSS over its post-warm-up baseline.
const RSS_MARGIN_KIB: u64 = 16 << 10;

/// What the enclave does with a corpus member.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    /// Refused at admission, before the spend, with a phrase its error must contain.
    Refused(&'static str),
    /// Admitted; every unit it touches is absent, the job releases an empty table.
    EveryUnitAbsent,
}
use Fate::*;

const CORPUS: &[(&str, Fate)] = &[
    ("01-import-wasi", Refused("forbidden import")),
    ("02-import-env", Refused("forbidden import")),
    ("07-shared-memory", Refused("shared memory")),
    ("09-multi-memory", Refused("memories")),
    ("12-wrong-export-signature", Refused("wrong kind or type")),
    ("17-huge-initial-memory", Refused("exceeds the limit")),
    ("18-table-bomb", Refused("exceeds the limit")),
    ("21-infinite-loop", EveryUnitAbsent),
    ("22-infinite-loop-in-start", EveryUnitAbsent),
    ("23-deep-recursion", EveryUnitAbsent),
    ("24-memory-grow-beyond-cap", EveryUnitAbsent),
    // Page by page up to the limit: the deadline counts every unit touching all its pages.
    ("25-memory-grow-to-limit", EveryUnitAbsent),
    ("27-read-out-of-bounds", EveryUnitAbsent),
    ("30-guest-out-of-bounds-store", EveryUnitAbsent),
    ("31-emit-flood", EveryUnitAbsent),
    ("34-trap-after-half", EveryUnitAbsent),
    ("35-failure-status", EveryUnitAbsent),
    ("41-timing-channel", EveryUnitAbsent),
    ("42-host-call-storm", EveryUnitAbsent),
    ("43-divide-by-zero", EveryUnitAbsent),
    ("45-data-segment-out-of-range", EveryUnitAbsent),
];

/// The corpus declares one f64 input; the demo query hands the module five (income,
/// utilization, late_payments, tenure_months, birth_decade). Re-declare the ABI section
/// with those five, so each module gets past the input-count check and shows its hostility.
const ONE_F64: &str = r#""\01\00\00\00\01\00\00\00\01\00\00\00\00""#;
const DEMO_INPUTS: &str = r#""\01\00\00\00\01\00\00\00\05\00\00\00\00\00\01\01\01""#;

fn corpus() -> Vec<(String, Vec<u8>, Fate)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sandbox/tests/hostile");
    CORPUS
        .iter()
        .map(|&(name, fate)| {
            let src = std::fs::read_to_string(dir.join(format!("{name}.wat"))).expect("corpus file");
            assert!(src.contains(ONE_F64), "{name}: unexpected ABI section");
            let wasm = wat::parse_str(src.replace(ONE_F64, DEMO_INPUTS)).unwrap_or_else(|e| panic!("{name}: {e}"));
            (format!("{name}.wasm"), wasm, fate)
        })
        .collect()
}

fn enclave_rss_kib(w: &World) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.enclave_pid())).expect("enclave-app is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn run_good(w: &World, job: &str) -> JobResult {
    let o = w.release(job);
    assert!(o.status.success(), "{}", text(&o));
    let (o, result) = w.submit(job, &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{job}: {}\n{}", text(&o), w.host_log());
    read_result(&result)
}

#[test]
fn hostile_corpus_is_contained_by_the_running_enclave() {
    let modules = corpus();
    assert!(modules.len() >= 10);
    let w = World::start(WorldOptions {
        extra_modules: modules.iter().map(|(n, b, _)| (n.clone(), b.clone())).collect(),
        budget: "100",
        rows: 2000,
        ..Default::default()
    });

    let good = run_good(&w, "warm-up");
    let baseline = enclave_rss_kib(&w);

    let mut slowest = Duration::ZERO;
    let mut empty: Option<JobResult> = None;
    for (i, (name, _, fate)) in modules.iter().enumerate() {
        let job = format!("hostile-{i:02}");
        let module: PathBuf = w.path(name);
        let q = w.query(&job, &module);
        let deadline = Duration::from_millis(w.read_query(&q).deadline_ms);
        let o = w.release_query(&q);
        assert!(o.status.success(), "{name}: grant: {}", text(&o));
        let records = w.audit_records().len();
        let t = Instant::now();
        let (o, result) = w.submit_query(&q, &module, &w.index);
        let took = t.elapsed();
        slowest = slowest.max(took);
        let out = text(&o);
        match fate {
            Refused(needle) => {
                assert!(!o.status.success(), "{name} produced a result: {out}");
                assert!(
                    out.contains("module_rejected") && out.contains(needle),
                    "{name}: expected module_rejected with {needle:?}: {out}"
                );
                assert!(!result.exists(), "{name}: a result file was written");
                assert_eq!(w.audit_records().len(), records, "{name}: a refusal before the spend is not logged");
                assert!(took < MARGIN, "{name}: refused after {took:?}");
                eprintln!("{name}: refused in {took:?}: {}", out.lines().last().unwrap_or(""));
            }
            EveryUnitAbsent => {
                assert!(o.status.success(), "{name}: {out}\n{}", w.host_log());
                assert!(
                    took >= deadline && took < deadline + MARGIN,
                    "{name}: replied after {took:?}, deadline {deadline:?}"
                );
                let r = read_result(&result);
                assert_eq!(
                    release_shape(&r, false),
                    release_shape(&good, false),
                    "{name}: the release has the query's structure"
                );
                // Every unit was absent: no group survives, the counts are noise around 0.
                let hist: f64 = r.outputs[1].values.iter().map(|v| v.value).sum();
                assert!(
                    r.outputs[0].values.is_empty(),
                    "{name}: groups released from an empty table: {:?}",
                    r.outputs[0]
                );
                assert!(hist.abs() < 200.0, "{name}: histogram sums to {hist}, not noise around 0");
                if let Some(e) = &empty {
                    let lens = |r: &JobResult| r.outputs.iter().map(|o| o.values.len()).collect::<Vec<_>>();
                    assert_eq!(lens(&r), lens(e), "{name}: every empty release has as many values");
                } else {
                    empty = Some(r);
                }
                let recs = w.audit_records();
                assert_eq!(recs.len(), records + 1);
                assert_eq!(recs[records].event.as_str(), "job_released", "{name}");
                eprintln!("{name}: released (every unit absent) after {took:?}");
            }
        }
    }

    // Still serving, with the same sandbox.
    run_good(&w, "after-corpus");
    let after = enclave_rss_kib(&w);
    eprintln!("enclave RSS: {baseline} KiB after warm-up, {after} KiB after the corpus; slowest job {slowest:?}");
    assert!(after <= baseline + RSS_MARGIN_KIB, "enclave RSS grew from {baseline} KiB to {after} KiB");
}
