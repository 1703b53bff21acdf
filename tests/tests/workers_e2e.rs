//! Every core, through the real enclave service: the same jobs (every output class of the
//! audit query over credit-lr, and a DP fine-tuning job of credit-lr-tune with its
//! evaluation output) on one worker, two worker processes and four, with the platform's
//! randomness from one seed, give bit-for-bit the same release. The worker processes are
//! the real enclave-app binary, started through a wrapper that notes each start, so the
//! test also shows that they ran (no silent fallback to one worker).

use cleanroom_e2e::neighbours::{audit_query, training_query, Side};
use enclave_app::workers::Workers;
use protocol::wire::EnclaveMessage;

const DEMO_INPUTS: &[&str] = &["income", "utilization", "late_payments", "tenure_months", "birth_decade"];

fn modules() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("credit-lr", std::fs::read(cleanroom_e2e::credit_lr_wasm()).expect("credit-lr wasm")),
        ("credit-lr-tune", std::fs::read(cleanroom_e2e::credit_lr_tune_wasm()).expect("credit-lr-tune wasm")),
    ]
}

/// Every released value of a job, in order, as bits (a NaN or a -0.0 would count).
fn released(reply: &Result<EnclaveMessage, String>) -> Vec<(String, String, u64)> {
    let Ok(EnclaveMessage::JobResult { result, .. }) = reply else { panic!("no release: {reply:?}") };
    let r: protocol::result::JobResult = protocol::from_cbor(result.payload.as_slice()).expect("result");
    let mut out = vec![];
    for o in &r.outputs {
        for v in &o.values {
            out.push((o.name.clone(), format!("{} {}", v.key, v.stat), v.value.to_bits()));
        }
    }
    assert!(!out.is_empty(), "a release with no values");
    out
}

/// A wrapper around enclave-app that appends a line to `log` for every worker it starts.
fn counting_worker_exe(dir: &std::path::Path, log: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.join("enclave-app-counting");
    let real = cleanroom_e2e::bin("enclave-app");
    std::fs::write(&exe, format!("#!/bin/sh\necho started >> '{}'\nexec '{}' \"$@\"\n", log.display(), real.display()))
        .expect("wrapper");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    exe
}

/// The releases of both jobs on `workers`, with the platform seeded by `seed`. The token
/// key comes from `store`, shared by every run: tokens order the units, and a training
/// job's Poisson sample picks units by their place in that order.
fn releases(store: &std::path::Path, workers: Workers, seed: u64) -> Vec<Vec<(String, String, u64)>> {
    let side = Side::with(false, &modules(), store, workers, Some(seed));
    let score = audit_query(&side, "credit-lr", DEMO_INPUTS, "workers-score");
    side.grant(&score);
    let tune = &modules()[1].1;
    let n_params = sandbox::read_train(tune).expect("section").expect("trainable").n_params as usize;
    let train = training_query(&side, "credit-lr-tune", DEMO_INPUTS, "workers-train", n_params);
    side.grant(&train);
    vec![released(&side.run(&score, "credit-lr").reply), released(&side.run(&train, "credit-lr-tune").reply)]
}

#[test]
fn the_release_is_the_same_for_one_two_and_four_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("starts");
    let exe = counting_worker_exe(dir.path(), &log);
    let starts = || std::fs::read_to_string(&log).unwrap_or_default().lines().count();
    let store = dir.path().join("keys.json");
    let one = releases(&store, Workers::InProcess, 7);
    assert_eq!(starts(), 0, "one worker runs in the supervisor");
    for count in [2, 4] {
        let before = starts();
        let many = releases(&store, Workers::processes(exe.clone(), count), 7);
        // Two jobs, `count` worker processes each.
        assert_eq!(starts() - before, 2 * count, "{count} worker processes per job");
        assert_eq!(one, many, "the release with {count} workers differs from one worker's");
    }
    // The control: another seed gives other noise, so the comparison above can fail.
    assert_ne!(one, releases(&store, Workers::InProcess, 8), "the seed does not reach the noise");
}
