//! The release boundary of issue 11, end to end with the real processes:
//! * a query naming a column in a role the policy does not allow is refused before any
//!   data is read, even with a grant, and nothing is spent or logged;
//! * a module's failure status is not a channel: a module returning 0x12345678 gets the
//!   same reply as one that traps, and the status appears nowhere the provider or the
//!   host can look;
//! * a grant is not a bearer token: another key, or the host with a job id read from the
//!   audit log, cannot spend it; the real provider then can;
//! * a module that runs long on one data bit replies at the same instant as one that
//!   does not: at the query's deadline.

use cleanroom_e2e::*;
use protocol::job::{OutputSpec, QuerySpec};
use protocol::result::JobResult;
use protocol::wire::EnclaveMessage;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The five inputs of the demo query (income f64, utilization f64, late_payments i64,
/// tenure_months i64, birth_decade i64), as the `cleanroom_abi` section declares them.
const DEMO_ABI: &str = r#"(@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\05\00\00\00\00\00\01\01\01")"#;

/// A module that scores every row 0.5, emits all of it, then ends with `ending`.
fn module_ending_with(ending: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "cleanroom" "emit" (func $emit (param i32 i32)))
             (memory (export "memory") 1)
             (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
               (local $i i32)
               (block $done
                 (loop $l
                   (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
                   (f64.store (i32.shl (local.get $i) (i32.const 3)) (f64.const 0.5))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br $l)))
               (call $emit (i32.const 0) (local.get $rows))
               {ending})
             {DEMO_ABI})"#
    ))
    .expect("valid WAT")
}

/// Returns the status 0x12345678 (305419896) from `cleanroom_process_batch`.
fn status_module() -> Vec<u8> {
    module_ending_with("(i32.const 0x12345678)")
}

/// Traps after emitting.
fn trap_module() -> Vec<u8> {
    module_ending_with("(unreachable)")
}

/// One i64 input. When the unit's first value is not zero it spins `spins` iterations of a
/// multiply on a subnormal float (12 fuel each, and slow: subnormal arithmetic is the most
/// time per fuel the timing figures allow for) and scores 1.0; otherwise it scores 0.0 at
/// once.
fn spin_on_nonzero_module(spins: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
             (import "cleanroom" "read_i64" (func $read_i64 (param i32 i32 i32) (result i32)))
             (import "cleanroom" "emit" (func $emit (param i32 i32)))
             (memory (export "memory") 1)
             (func (export "cleanroom_process_batch") (param $rows i32) (result i32)
               (local $n i32) (local $i i32) (local $score f64) (local $x f64)
               (if (i32.gt_u (local.get $rows) (i32.const 64)) (then (return (i32.const 3))))
               (drop (call $read_i64 (i32.const 0) (i32.const 0) (local.get $rows)))
               (if (i64.ne (i64.load (i32.const 0)) (i64.const 0))
                 (then
                   (local.set $score (f64.const 1))
                   (local.set $n (i32.const {spins}))
                   (local.set $x (f64.const 1e-310))
                   (loop $spin
                     (local.set $x (f64.mul (local.get $x) (f64.const 1.0000001)))
                     (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                     (br_if $spin (i32.ne (local.get $n) (i32.const 0))))
                   ;; keep the multiplies: the score depends on them (x never reaches 1)
                   (if (f64.eq (local.get $x) (f64.const 1)) (then (local.set $score (f64.const 0.5))))))
               (block $done
                 (loop $l
                   (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
                   (f64.store (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 3))) (local.get $score))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br $l)))
               (call $emit (i32.const 1024) (local.get $rows))
               (i32.const 0))
             (@custom "cleanroom_abi" "\01\00\00\00\01\00\00\00\01\00\00\00\01"))"#
    ))
    .expect("valid WAT")
}

fn decode(reply: &RawReply, w: &World) -> JobResult {
    match &reply.message {
        EnclaveMessage::JobResult { result, .. } => result.decode().unwrap(),
        other => panic!("expected a signed result, got {other:?}\n{}", w.host_log()),
    }
}

fn histogram(r: &JobResult) -> Vec<f64> {
    let o = r.outputs.iter().find(|o| o.class == "histogram").expect("a histogram output");
    o.values.iter().map(|v| v.value).collect()
}

/// What the ledger spent and the host's audit log hold: neither may move on a refusal.
fn snapshot(w: &World) -> ((String, String), Vec<u8>) {
    (w.spent(), w.audit_log_bytes())
}

fn assert_refused(o: &std::process::Output, code: &str, result: &Path) {
    let t = text(o);
    assert!(!o.status.success(), "expected {code}, got success: {t}");
    assert!(t.contains(code), "expected {code} in: {t}");
    assert!(!result.exists(), "a result was written for a refused job");
}

// ---------------------------------------------------------------------------------

/// The owner grants a query directly through its ledger (no review) and releases the
/// grant with the data key to the enclave, as a careless owner could.
fn grant_without_review(w: &World, query: &Path) {
    let (_, reply) = w.grant_on_raw_channel(query);
    assert!(matches!(reply, EnclaveMessage::KeyAccepted { .. }), "{reply:?}");
}

/// The host is untrusted and may withhold blobs: with the sealed chunks gone from its
/// store, a job that read any data could not finish with anything but `job_failed`.
fn hide_chunks(w: &World) -> Vec<(PathBuf, PathBuf)> {
    let moved: Vec<_> = w
        .chunk_blobs()
        .iter()
        .map(|c| {
            let p = w.store.join("blobs").join(c);
            (p.clone(), p.with_extension("hidden"))
        })
        .collect();
    for (from, to) in &moved {
        std::fs::rename(from, to).unwrap();
    }
    moved
}

#[test]
fn auc_against_a_column_the_policy_does_not_allow_as_label_is_refused_before_any_data_is_read() {
    let w = World::start(WorldOptions::default());
    // tenure_months is an i64 column the policy allows as an input only; `defaulted` is the
    // one label. An AUC against it would compare scores with month counts.
    let bad = w.query_with("job-tenure", &credit_lr_wasm(), "job-tenure.toml", |q| {
        for o in &mut q.outputs {
            if let OutputSpec::Auc { label, .. } = o {
                *label = "tenure_months".into();
            }
        }
    });
    let policy = w.policy.to_str().unwrap();

    // The owner's review refuses it, and so does `release`, which reviews first: no grant,
    // no key, nothing in the ledger or the log.
    let before = snapshot(&w);
    let o = w.cr(&["review", bad.to_str().unwrap(), "--policy", policy]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the policy does not allow \"tenure_months\" as label"), "{}", text(&o));
    let o = w.release_query(&bad);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("\"tenure_months\" as label"), "{}", text(&o));
    assert_eq!(snapshot(&w), before);
    assert!(w.audit_events().is_empty());

    // An owner that skipped the review: the enclave holds a grant and the data key for
    // exactly this query, and still refuses it, before reading a row.
    grant_without_review(&w, &bad);
    let before = snapshot(&w);
    assert_eq!(w.audit_events(), vec!["key_release"]);
    let hidden = hide_chunks(&w);
    let (o, result) = w.submit_query(&bad, &credit_lr_wasm(), &w.index);
    for (from, to) in &hidden {
        std::fs::rename(to, from).unwrap();
    }
    assert_refused(&o, "column_role_not_allowed", &result);
    assert!(text(&o).contains("tenure_months"), "the refusal names the column: {}", text(&o));
    assert!(!text(&o).contains("job_failed"), "{}", text(&o));
    assert_eq!(snapshot(&w), before, "the submission spent nothing and logged nothing");

    // The same table, with its chunks back, answers a reviewed query as usual.
    assert!(w.release("job-1").status.success());
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    assert_eq!(read_result(&result).outputs.len(), 3);
}

// ---------------------------------------------------------------------------------

/// Every way 0x12345678 could be spelt in bytes or text.
fn spellings_of_the_status() -> Vec<(String, Vec<u8>)> {
    let v: u32 = 0x1234_5678;
    vec![
        ("little-endian bytes".into(), v.to_le_bytes().to_vec()),
        ("big-endian bytes".into(), v.to_be_bytes().to_vec()),
        ("decimal".into(), v.to_string().into_bytes()),
        ("hex".into(), b"12345678".to_vec()),
        ("hex, little-endian".into(), b"78563412".to_vec()),
    ]
}

fn assert_no_status(what: &str, bytes: &[u8]) {
    let lower = bytes.to_ascii_lowercase();
    for (name, needle) in spellings_of_the_status() {
        assert!(
            !lower.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the status 0x12345678 appears ({name}) in {what}"
        );
    }
}

#[test]
fn a_failure_status_gets_the_reply_of_a_trap_and_leaves_no_trace() {
    let status = status_module();
    let trap = trap_module();
    let w = World::start(WorldOptions {
        extra_modules: vec![("status.wasm".into(), status), ("trap.wasm".into(), trap)],
        budget: "4",
        ..Default::default()
    });
    let key = w.provider_signing_key();
    let mut replies = vec![];
    for name in ["status", "trap"] {
        let module = w.path(&format!("{name}.wasm"));
        let q = w.query(&format!("job-{name}"), &module);
        let o = w.release_query(&q);
        assert!(o.status.success(), "{}", text(&o));
        let blob = w.upload_file(&module);
        let reply = w.raw_submit(&w.read_query(&q), blob, &w.index, &key);
        let r = decode(&reply, &w);
        // Every unit is absent (each one's instance failed), so this is the release of an
        // empty table: no group passes selection and the counts are noise around zero.
        assert!(r.outputs[0].values.is_empty(), "{name}: {:?}", r.outputs[0]);
        let total: f64 = histogram(&r).iter().sum();
        assert!(total.abs() < 200.0, "{name}: the histogram sums to {total}, units were scored");
        // The CLI gets the same signed result (the enclave's cache) and writes it.
        let (o, file) = w.submit_query(&q, &module, &w.index);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_no_status(&format!("the {name} job's CLI output"), text(&o).as_bytes());
        let written = std::fs::read(&file).unwrap();
        assert_eq!(read_result(&file), r);
        replies.push((name, reply, r, written));
    }
    let (_, _, status_result, _) = &replies[0];
    let (_, _, trap_result, _) = &replies[1];
    assert_eq!(
        release_shape(status_result, true),
        release_shape(trap_result, true),
        "a failure status and a trap give the same release"
    );
    assert_eq!(
        w.audit_events(),
        ["key_release", "job_released", "job_cached", "key_release", "job_released", "job_cached"]
    );
    for (name, reply, r, written) in &replies {
        assert_no_status(&format!("the {name} job's reply frame"), &reply.frame);
        assert_no_status(&format!("the {name} job's result file"), written);
        assert_no_status(&format!("the {name} job's signed result"), &protocol::to_cbor(r));
    }
    assert_no_status("the audit log", &w.audit_log_bytes());
    for rec in w.audit_records() {
        assert_no_status("an audit record", &protocol::to_cbor(&rec));
        assert_no_status("an audit record's outcome", rec.outcome.as_bytes());
    }
    assert_no_status("the host's log", w.host_log().as_bytes());
}

// ---------------------------------------------------------------------------------

#[test]
fn another_key_or_the_host_with_a_job_id_from_the_audit_log_cannot_spend_a_grant() {
    // Mallory is a collaborator of the owner's too, with a key of its own; the host can
    // also make up a key. Neither is the provider the grant names.
    let keys = tempfile::tempdir().unwrap();
    let mallory_key = keys.path().join("mallory.key");
    let mallory = cleanroom::client::create_provider_key(&mallory_key).unwrap();
    let stranger_key = keys.path().join("stranger.key");
    cleanroom::client::create_provider_key(&stranger_key).unwrap();
    let w = World::start(WorldOptions {
        policy_args: vec!["--collaborator".into(), format!("mallory={}", hex::encode(mallory.public_key()))],
        ..Default::default()
    });
    let module = credit_lr_wasm();
    let q = w.query("job-1", &module);
    let o = w.release_query(&q);
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshot(&w);

    // The granted query itself, with a proof by another key: refused before anything.
    for key in [&stranger_key, &mallory_key] {
        let (o, result) = w.submit_query_as(&q, &module, &w.index, key);
        assert_refused(&o, "bad_provider_proof", &result);
        assert_eq!(snapshot(&w), before, "{}: the refusal spent or logged something", key.display());
    }

    // The host reads the job id from the audit log anyone may fetch, and submits a query
    // of its own under it: as Mallory (whose proof is good), and with the provider's key
    // (as if it held it) for a different query. The grant approves one query digest.
    let records = w.audit_records();
    let job =
        records.iter().find(|r| r.event.as_str() == "key_release").and_then(|r| r.job_id.clone()).expect("job id");
    assert_eq!(job, "job-1");
    let as_mallory = w.query_with(&job, &module, "mallory.toml", |q| q.collaborator = "mallory".into());
    let (o, result) = w.submit_query_as(&as_mallory, &module, &w.index, &mallory_key);
    assert_refused(&o, "no_grant", &result);
    assert_eq!(snapshot(&w), before);
    let histogram_only = w.query_with(&job, &module, "histogram-only.toml", |q| {
        q.outputs.retain(|o| matches!(o, OutputSpec::Histogram { .. }));
    });
    let (o, result) = w.submit_query(&histogram_only, &module, &w.index);
    assert_refused(&o, "no_grant", &result);
    assert_eq!(snapshot(&w), before);

    // The grant is intact: the real provider's job runs on it.
    let (o, result) = w.submit_query(&q, &module, &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    let r = read_result(&result);
    let spec = w.read_query(&q);
    assert_eq!(r.query_digest, spec.digest());
    assert_eq!(r.collaborator, "acme");
    assert_eq!(Some(r.grant_id.clone()), records[0].grant_id, "the result spent the grant the owner released");
    assert_eq!(w.audit_events(), vec!["key_release", "job_released"]);
    assert_eq!(w.spent(), before.0, "the ledger was charged once, at the grant");
}

// ---------------------------------------------------------------------------------

#[test]
fn a_module_that_spins_on_one_data_bit_replies_at_the_same_instant() {
    // 1,000 customers; 2 · 10^5 fuel per unit, of which a unit whose bit is set spends
    // 1.2 · 10^5 in subnormal multiplies: about 0.35 ms here, so that without the deadline
    // and the fetch schedule the job with every bit set replies about 0.35 s later.
    let spin = spin_on_nonzero_module(10_000);
    let rows = 1000u64;
    let w = World::start(WorldOptions {
        rows,
        rows_per_chunk: 250,
        fuel_per_unit: 200_000,
        extra_modules: vec![("spin.wasm".into(), spin)],
        budget: "4",
        ..Default::default()
    });
    let module = w.path("spin.wasm");
    let blob = w.upload_file(&module);
    let key = w.provider_signing_key();
    // The same module on two columns: the bit is set for every customer in the birth
    // decade (1940, 1950, …) and for the few who defaulted.
    let mut runs = vec![];
    for (job, column) in [("job-every-unit-spins", "birth_decade"), ("job-few-units-spin", "defaulted")] {
        let q = w.query_with(job, &module, &format!("{job}.toml"), |q: &mut QuerySpec| {
            q.inputs = vec![column.into()];
        });
        let o = w.release_query(&q);
        assert!(o.status.success(), "{}", text(&o));
        let spec = w.read_query(&q);
        let reply = w.raw_submit(&spec, blob, &w.index, &key);
        let r = decode(&reply, &w);
        runs.push((column, spec.deadline_ms, reply.elapsed, r));
    }
    let offsets: Vec<String> = runs.iter().map(|(c, d, t, _)| format!("{c}: {t:?} for a {d} ms deadline")).collect();
    eprintln!("reply offsets: {offsets:?}");

    // Both jobs scored every unit (none ran out of fuel): the units whose bit is set took
    // the spinning branch, and their score 1.0 fills the top bin.
    let (every, few) = (histogram(&runs[0].3), histogram(&runs[1].3));
    for h in [&every, &few] {
        let total: f64 = h.iter().sum();
        assert!((total - rows as f64).abs() < 100.0, "the histogram sums to {total}, not about {rows}: {h:?}");
    }
    assert!(every[every.len() - 1] > 0.9 * rows as f64, "units skipped the spinning branch: {every:?}");
    assert!(few[few.len() - 1] < 0.4 * rows as f64, "too many units took the spinning branch: {few:?}");
    assert_eq!(runs[0].1, runs[1].1, "both queries declare the same deadline");

    let deadline = Duration::from_millis(runs[0].1);
    for (column, _, t, _) in &runs {
        let off = t.as_secs_f64() - deadline.as_secs_f64();
        assert!(off.abs() < 0.150, "{column}: the reply left {t:?} after submission, the deadline is {deadline:?}");
    }
    let gap = runs[0].2.abs_diff(runs[1].2);
    assert!(gap < Duration::from_millis(100), "the two replies are {gap:?} apart: {offsets:?}");
}
