//! End-to-end DP defences with the real processes (issue 8, issue 11):
//! * averaging: the identical query is answered from the enclave's cache, with the same
//!   signed values, no new grant, and the owner's ledger charged once;
//! * timing: replies leave at the query's deadline, whatever noise was drawn.

use cleanroom_e2e::*;
use protocol::job::{OutputSpec, QuerySpec};
use protocol::result::JobResult;
use protocol::signing::Signed;
use protocol::wire::EnclaveMessage;
use std::path::Path;

fn audit_events(w: &World) -> Vec<String> {
    w.audit_events()
}

/// `cleanroom submit` of a query file of our own over credit-lr, the result to `out`.
fn submit_query(w: &World, query: &Path, out: &Path) -> std::process::Output {
    let (o, written) = w.submit_query(query, &credit_lr_wasm(), &w.index);
    if written.exists() {
        std::fs::rename(&written, out).unwrap();
    }
    o
}

fn values(r: &JobResult) -> Vec<(String, String, f64)> {
    r.outputs.iter().flat_map(|o| o.values.iter().map(|v| (o.name.clone(), v.key.clone(), v.value))).collect()
}

fn spent(w: &World) -> String {
    w.spent_epsilon()
}

#[test]
fn identical_query_is_answered_from_cache_and_spent_once() {
    let w = World::start(WorldOptions::default());
    let o = w.release("job-1");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(spent(&w), "1");
    let query = w.query("job-1", &credit_lr_wasm());

    let (o, first_path) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    let first: Signed = read_result_file(&first_path).result;
    let r1: JobResult = first.decode().unwrap();

    // Same job, same query, same dataset, same module, no new grant: the cached answer.
    let again_path = w.path("job-1.again.json");
    let o = submit_query(&w, &query, &again_path);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    let again: Signed = read_result_file(&again_path).result;
    let r2: JobResult = again.decode().unwrap();
    assert_eq!(values(&r1), values(&r2), "an identical query must get the identical noisy answer");
    assert_eq!(first.payload, again.payload, "the same signed result, not a recomputation");
    assert_eq!(r2.grant_id, r1.grant_id);
    // The enclave ran the job once: the second answer is logged as served from its cache.
    assert_eq!(audit_events(&w), vec!["key_release", "job_released", "job_cached"]);

    // Ten more identical queries: still the same answer, still one job run.
    for i in 0..10 {
        let p = w.path(&format!("job-1.again{i}.json"));
        let o = submit_query(&w, &query, &p);
        assert!(o.status.success(), "{}", text(&o));
        let s: Signed = read_result_file(&p).result;
        assert_eq!(s.payload, first.payload);
    }
    let events = audit_events(&w);
    assert_eq!(events.iter().filter(|e| *e == "job_released").count(), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "job_cached").count(), 11, "{events:?}");
    // and the owner granted once (the ledger is written at release, never by a submit)
    assert_eq!(spent(&w), "1");

    // A different query under the same job id is not the cached one and has no grant.
    let q = std::fs::read_to_string(&query).unwrap();
    assert_eq!(q.matches("epsilon = \"0.4\"").count(), 1, "{q}");
    let q2 = q.replace("epsilon = \"0.4\"", "epsilon = \"0.2\"");
    let spec = QuerySpec::from_toml(&q2).unwrap();
    assert!(matches!(&spec.outputs[0], OutputSpec::Mean { epsilon, .. } if epsilon.as_str() == "0.2"));
    let changed = w.path("job-1-changed.toml");
    std::fs::write(&changed, q2).unwrap();
    let o = submit_query(&w, &changed, &w.path("changed.json"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no_grant"), "{}", text(&o));
    assert_eq!(spent(&w), "1");

    // A refusal before the spend leaves no record: the log is unchanged by it.
    let mut want = vec!["key_release".to_string(), "job_released".to_string()];
    want.extend(std::iter::repeat_n("job_cached".to_string(), 11));
    assert_eq!(audit_events(&w), want);
    let log = w.fetch_audit();
    let o = w.verify_audit(&log);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 jobs released"), "{}", text(&o));
}

/// Jobs at ε = 1 (noise of a few units on every count, different in every job) all reply
/// at the deadline the query declared: the time from sending the job to receiving the
/// result is `deadline_ms` plus a small transport latency, whatever the noise (or the
/// data) made the job do. `released_at` is that deadline too.
#[test]
fn replies_leave_at_the_deadline_whatever_the_noise() {
    let jobs = 6;
    let w = World::start(WorldOptions { budget: "20", ..Default::default() });
    let module_blob = w.upload_file(&credit_lr_wasm());
    let key = w.provider_signing_key();

    let mut offsets = vec![];
    let mut deciles: Vec<Vec<f64>> = vec![];
    let mut deadline_ms = 0;
    for i in 0..jobs {
        let job = format!("timing-{i}");
        let o = w.release(&job);
        assert!(o.status.success(), "{}", text(&o));
        let spec = w.read_query(&w.query(&job, &credit_lr_wasm()));
        deadline_ms = spec.deadline_ms;
        if i == 0 {
            // The first admission compiles the module (before the spend, from public inputs,
            // and only once per module): warm that up with a submission the enclave refuses
            // after compiling, for a sealed index the host does not hold. Nothing is spent.
            let missing = protocol::Digest::of(b"no such sealed index").to_hex();
            let warm = w.raw_submit(&spec, module_blob, &missing, &key);
            assert!(
                matches!(&warm.message, EnclaveMessage::Error { code: protocol::refusal::RefusalCode::HostFailed, .. }),
                "{:?}",
                warm.message
            );
        }
        let submitted = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let reply = w.raw_submit(&spec, module_blob, &w.index, &key);
        let r: JobResult = match reply.message {
            EnclaveMessage::JobResult { result, .. } => result.decode().unwrap(),
            other => panic!("{other:?}\n{}", w.host_log()),
        };
        let released_after = r.released_at - submitted;
        assert!(
            (spec.deadline_ms / 1000..=spec.deadline_ms.div_ceil(1000) + 1).contains(&released_after),
            "released_at is {released_after} s after submission, the deadline {} ms",
            spec.deadline_ms
        );
        offsets.push(reply.elapsed.as_secs_f64() * 1000.0);
        deciles.push(r.outputs[1].values.iter().map(|v| v.value).collect());
    }
    // The noise differed between jobs (the true counts are the same in every job).
    assert!(deciles.windows(2).any(|w| w[0] != w[1]), "noise must vary between jobs: {deciles:?}");
    eprintln!("reply offsets (ms) for a {deadline_ms} ms deadline: {offsets:.1?}");
    let d = deadline_ms as f64;
    for t in &offsets {
        assert!(*t >= d - 5.0 && *t < d + 150.0, "reply {t:.1} ms after submission, deadline {d} ms: {offsets:?}");
    }
    let spread = offsets.iter().cloned().fold(f64::MIN, f64::max) - offsets.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 100.0, "replies spread over {spread:.1} ms: {offsets:?}");
}

/// Issue 8, bad input: a query on an undeclared column is refused before the module sees a
/// row, so the job's grant is not spent: the corrected query runs on the same grant.
#[test]
fn query_on_an_undeclared_column_spends_nothing() {
    let w = World::start(WorldOptions::default());
    assert!(w.release("job-1").status.success());
    let good = w.query("job-1", &credit_lr_wasm());
    let q = std::fs::read_to_string(&good).unwrap();
    assert_eq!(q.matches("group_by = [\"zip3\"]").count(), 1, "{q}");
    let bad = w.path("job-1-bad.toml");
    std::fs::write(&bad, q.replace("group_by = [\"zip3\"]", "group_by = [\"zip9\"]")).unwrap();
    let o = submit_query(&w, &bad, &w.path("bad.json"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("unknown_column"), "{}", text(&o));
    assert!(text(&o).contains("column \"zip9\" is not in the sealed schema"), "{}", text(&o));
    assert!(!w.path("bad.json").exists());
    // The grant was not spent: the corrected query runs on it.
    let o = submit_query(&w, &good, &w.path("good.json"));
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    assert_eq!(spent(&w), "1");
    assert_eq!(audit_events(&w), vec!["key_release", "job_released"]);
}

/// `released_at` is the instant the reply leaves, so it is never later than the moment the
/// provider holds the result, and the audit log (whose records carry it) stays in time
/// order. A deadline that is not a whole number of seconds, submitted early in a second,
/// shows the difference between the deadline instant and ⌊spend⌋ + ⌈deadline⌉.
#[test]
fn released_at_never_runs_ahead_of_the_reply() {
    let w = World::start(WorldOptions::default());
    let mut spec = w.read_query(&w.query("job-1", &credit_lr_wasm()));
    spec.deadline_ms += 500;
    let q = w.write_query("job-1.half-second.toml", &spec);
    assert!(w.release_query(&q).status.success());
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    while now().subsec_millis() >= 100 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (o, result) = w.submit_query(&q, &credit_lr_wasm(), &w.index);
    let received = now().as_secs();
    assert!(o.status.success(), "{}", text(&o));
    let r: JobResult = read_result(&result);
    assert!(r.released_at <= received, "released_at {} is after the result was received ({received})", r.released_at);
    // The cached answer right after appends a record stamped with the clock.
    let (o, _) = w.submit_query(&q, &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}", text(&o));
    let o = w.verify_audit(&w.fetch_audit());
    assert!(o.status.success(), "{}", text(&o));
}
