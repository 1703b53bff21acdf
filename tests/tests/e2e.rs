//! End-to-end: real host-proxy, real enclave-app (simulated platform), real CLI.

use cleanroom_e2e::*;
use std::io::{Read, Write};

fn audit_events(w: &World) -> Vec<String> {
    w.audit_events()
}

/// Keys that would carry an exact count about the data; none may appear in a result.
const EXACT_COUNT_KEYS: &[&str] =
    &["rows", "rows_read", "units", "units_absent", "rows_dropped_by_bounding", "suppressed_groups"];

fn json_keys(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                json_keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_keys(v, out)),
        _ => {}
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// After the spend there is one failure: `job_failed`, with no code, message or number.
fn assert_job_failed(o: &std::process::Output) {
    let t = text(o);
    assert!(!o.status.success(), "expected job_failed, got success: {t}");
    let errors: Vec<&str> = t.trim().lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        errors,
        vec![
            "cleanroom: error: job_failed: the job failed after its grant was spent (by design, nothing more is said)"
        ],
        "{t}"
    );
}

#[test]
fn full_job_releases_a_signed_dp_result_and_a_verifiable_audit_log() {
    let w = World::start(WorldOptions::default());
    let o = w.release("job-1");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("SIMULATED"), "simulated evidence must be announced: {}", text(&o));
    let query = w.read_query(&w.query("job-1", &credit_lr_wasm()));
    let before = now_secs();
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    let after = now_secs();
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());

    let r = read_result(&result);
    assert!(r.simulated);
    assert_eq!(r.query_digest, query.digest(), "the result names the query the owner granted");
    assert_eq!(r.epsilon_spent.as_str(), "1");
    // No exact count leaves: the signed result holds DP values and public inputs only.
    let mut keys = vec![];
    json_keys(&serde_json::to_value(&r).unwrap(), &mut keys);
    for k in EXACT_COUNT_KEYS {
        assert!(!keys.iter().any(|x| x == k), "the result carries an exact count {k:?}: {keys:?}");
    }
    // `released_at` is the deadline fixed at submission, not the clock at release.
    let deadline_s = query.deadline_ms.div_ceil(1000);
    assert!(
        (before + deadline_s..=after + deadline_s).contains(&r.released_at),
        "released_at {} is not submission ({before}..={after}) + {deadline_s} s",
        r.released_at
    );
    assert_eq!(r.outputs.len(), 3);
    assert!(r.outputs.iter().all(|o| o.mechanism == "discrete_laplace"));
    let auc = r.outputs[2].values[0].value;
    assert!((0.5..=1.0).contains(&auc), "AUC {auc}");
    let deciles: f64 = r.outputs[1].values.iter().map(|v| v.value).sum();
    assert!((deciles - 3000.0).abs() < 300.0, "decile counts sum {deciles}");

    let res = result.to_str().unwrap();
    let pd = w.policy_digest.as_str();
    let o = w.cr(&["verify-result", res, "--allow-simulated", "--expect-pcr0", &w.pcr0, "--policy-digest", pd]);
    assert!(o.status.success(), "{}", text(&o));
    // Simulated results are refused unless the verifier opts in.
    let o = w.cr(&["verify-result", res, "--expect-pcr0", &w.pcr0, "--policy-digest", pd]);
    assert_fails_with(&o, "simulated");
    // There is no check without an expected image and policy: nothing is trusted from the
    // result itself.
    assert_fails_with(&w.cr(&["verify-result", res, "--allow-simulated", "--policy-digest", pd]), "expect-pcr");
    assert_fails_with(&w.cr(&["verify-result", res, "--allow-simulated", "--expect-pcr0", &w.pcr0]), "policy-digest");
    let other_image = "11".repeat(48);
    let o = w.cr(&["verify-result", res, "--allow-simulated", "--expect-pcr0", &other_image, "--policy-digest", pd]);
    assert_fails_with(&o, "pcr");

    let log = w.fetch_audit();
    let o = w.verify_audit_with(&log, &["--result", res]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 jobs released"), "{}", text(&o));
    assert!(text(&o).contains("checkpoint of 1 records held by owner (ledger): matches"), "{}", text(&o));
    assert!(text(&o).contains("result included"), "{}", text(&o));
    assert_eq!(audit_events(&w), vec!["key_release", "job_released"]);
    let bundle = w.path("bundle.json");
    let o = w.cr(&[
        "audit",
        "export",
        log.to_str().unwrap(),
        "--ledger",
        w.ledger.to_str().unwrap(),
        "--allow-simulated",
        "--expect-pcr0",
        &w.pcr0,
        "--policy-digest",
        pd,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(b["verification"]["records"], 2);
    assert_eq!(b["records"].as_array().unwrap().len(), 2);
    assert_eq!(w.spent_epsilon(), "1", "{}", w.budget());

    // The grant is single-use: the identical query again is answered with the same signed
    // result from the enclave's cache (averaging defence, see dp_e2e.rs), spending nothing.
    let first = read_result_file(&result).result;
    let (o, again) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(read_result_file(&again).result, first);
    assert_eq!(w.spent_epsilon(), "1", "{}", w.budget());
    assert_eq!(audit_events(&w), vec!["key_release", "job_released", "job_cached"]);
}

#[test]
fn wrong_measurement_releases_no_key() {
    let w = World::start(WorldOptions::default());
    let wrong = "00".repeat(48);
    let o = w.release_via(&w.front, &wrong, "job-1");
    assert_fails_with(&o, "pcr");
    assert_eq!(w.spent_epsilon(), "0", "nothing spent: {}", w.budget());
    assert!(audit_events(&w).is_empty(), "the enclave received no key");
}

#[test]
fn replayed_evidence_with_a_stale_nonce_releases_no_key() {
    let w = World::start(WorldOptions::default());
    let old = fetch_evidence(&w.front, vec![7u8; 32]);
    let relay = EvilRelay::start(RelayMode::Replay(old));
    let o = w.release_via(&relay.addr, &w.pcr0, "job-1");
    assert_fails_with(&o, "nonce");
    assert!(relay.received.lock().unwrap().is_empty(), "a key reached the relay");
    assert_eq!(w.spent_epsilon(), "0", "{}", w.budget());
}

#[test]
fn relay_terminating_tls_is_caught_by_the_channel_binding() {
    let w = World::start(WorldOptions::default());
    let relay = EvilRelay::start(RelayMode::Forward(w.front.clone()));
    let o = w.release_via(&relay.addr, &w.pcr0, "job-1");
    assert_fails_with(&o, "user_data");
    assert!(relay.received.lock().unwrap().is_empty(), "a key reached the relay");
}

/// Run a job over a manipulated sealed index or store. The chunks are read after the grant
/// is spent, so the only possible reply is `job_failed` at the deadline: what went wrong
/// (`detail`, the old error text) is said neither to the provider nor in the audit log.
fn tampered_ingest(manipulate: impl FnOnce(&World) -> String, detail: &str) {
    let w = World::start(WorldOptions::default());
    let o = w.release("job-1");
    assert!(o.status.success(), "{}", text(&o));
    let index = manipulate(&w);
    let deadline = std::time::Duration::from_millis(w.read_query(&w.query("job-1", &credit_lr_wasm())).deadline_ms);
    let t = std::time::Instant::now();
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &index);
    let took = t.elapsed();
    assert_job_failed(&o);
    assert!(!text(&o).contains(detail), "{}", text(&o));
    assert!(took >= deadline, "job_failed left after {took:?}, before the {deadline:?} deadline");
    assert!(!result.exists(), "no result may be written");
    assert_eq!(audit_events(&w), vec!["key_release", "job_failed"]);
    // The audit record of a failed job says that it failed and what was spent; no reason.
    let rec = w.audit_records().pop().unwrap();
    assert_eq!(rec.outcome, "job_failed");
    assert_eq!(rec.epsilon.as_ref().map(|e| e.as_str()), Some("1"), "the grant is spent");
    assert!(rec.result_digest.is_none() && rec.mechanism.is_none() && rec.sensitivity.is_none(), "{rec:?}");
    let log = String::from_utf8(w.audit_log_bytes()).unwrap();
    assert!(!log.contains(detail), "the audit log names the failure");
    let o = w.verify_audit(&w.fetch_audit());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 jobs released, 1 failed after the spend"), "{}", text(&o));
    assert!(text(&o).contains("job job-1: failed after the spend (ε 1 spent)"), "{}", text(&o));
}

#[test]
fn flipped_byte_in_a_sealed_chunk_fails_ingest() {
    tampered_ingest(
        |w| {
            // The host is untrusted: it rewrites a stored chunk and lists the new blob.
            let mut chunks = w.chunk_blobs();
            let path = w.store.join("blobs").join(&chunks[2]);
            let mut chunk: protocol::sealed::SealedChunk = protocol::from_cbor(&std::fs::read(&path).unwrap()).unwrap();
            chunk.ciphertext.0[100] ^= 1;
            let f = w.path("evil.chunk");
            std::fs::write(&f, protocol::to_cbor(&chunk)).unwrap();
            let o = w.cr(&["upload", "--blob-api", &w.blobs, "--file", f.to_str().unwrap()]);
            chunks[2] = String::from_utf8_lossy(&o.stdout).trim().to_string();
            w.upload_index(&chunks)
        },
        "authentication failed",
    );
}

/// The policy names the sealed table's chunk count, so an index that drops the final
/// chunk is refused before the spend, on public inputs alone, with a precise code; the
/// grant is intact and the job then runs on the real index.
#[test]
fn dropped_final_chunk_is_refused_before_the_spend() {
    let w = World::start(WorldOptions::default());
    let o = w.release("job-1");
    assert!(o.status.success(), "{}", text(&o));
    let mut chunks = w.chunk_blobs();
    chunks.pop();
    let index = w.upload_index(&chunks);
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &index);
    assert_fails_with(&o, "bad_sealed_index");
    assert!(!result.exists(), "no result may be written");
    assert_eq!(audit_events(&w), vec!["key_release"], "a refusal before the spend is not logged");
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    assert!(result.exists());
    assert_eq!(audit_events(&w), vec!["key_release", "job_released"]);
}

#[test]
fn swapped_chunks_fail_ingest() {
    tampered_ingest(
        |w| {
            let mut chunks = w.chunk_blobs();
            chunks.swap(1, 2);
            w.upload_index(&chunks)
        },
        "arrived where",
    );
}

#[test]
fn module_importing_wasi_is_rejected_before_it_runs() {
    let wasi = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "cleanroom_abi_version") (result i32) i32.const 1))"#,
    )
    .unwrap();
    let w = World::start(WorldOptions { extra_modules: vec![("wasi.wasm".into(), wasi)], ..Default::default() });
    let module = w.path("wasi.wasm");
    // query-init needs an ABI section this module lacks: the provider writes the query by
    // hand (the demo query, naming this module).
    let mut spec = w.read_query(&w.query("job-1", &credit_lr_wasm()));
    spec.module_hash = protocol::Digest::of(&std::fs::read(&module).unwrap());
    let q = w.write_query("job-1.wasi.toml", &spec);
    let o = w.release_query(&q);
    assert!(o.status.success(), "{}", text(&o));
    let (o, result) = w.submit_query(&q, &module, &w.index);
    // Before the spend: a precise code and message (they depend on no data), no record.
    assert_fails_with(&o, "module_rejected");
    assert!(text(&o).contains("wasi_snapshot_preview1"), "{}", text(&o));
    assert!(!result.exists());
    assert_eq!(audit_events(&w), vec!["key_release"]);
}

#[test]
fn job_over_the_remaining_budget_is_refused_and_spends_nothing() {
    let w = World::start(WorldOptions { budget: "1.2", ..Default::default() });
    assert!(w.release("job-1").status.success());
    let before = w.budget();
    let o = w.release("job-2");
    assert_fails_with(&o, "budget exceeded");
    assert_eq!(w.budget(), before, "ledger unchanged");
    assert_eq!(audit_events(&w), vec!["key_release"], "no second key release reached the enclave");
}

#[test]
fn edited_removed_or_reordered_audit_records_are_named() {
    let w = World::start(WorldOptions::default());
    assert!(w.release("job-1").status.success());
    let (o, _) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}", text(&o));
    assert!(w.release("job-2").status.success());
    let log = w.fetch_audit();
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    assert_eq!(lines.len(), 3);
    let check = |name: &str, lines: Vec<String>, needle: &str| {
        let p = w.path(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let o = w.verify_audit(&p);
        assert_fails_with(&o, needle);
    };
    // Edit: change one character inside the signed payload of record 2.
    let mut edited = lines.clone();
    let mut s: protocol::signing::Signed = serde_json::from_str(&edited[1]).unwrap();
    s.payload.0[10] ^= 1;
    edited[1] = serde_json::to_string(&s).unwrap();
    check("edited.log", edited, "line 2: signature does not verify");
    let mut removed = lines.clone();
    removed.remove(1);
    check("removed.log", removed, "line 2: record says it is leaf 2, but it is leaf 1");
    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    check("reordered.log", reordered, "line 2: record says it is leaf 2, but it is leaf 1");
    let o = w.verify_audit(&log);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn malformed_input_to_network_endpoints_gets_an_error_and_service_continues() {
    let w = World::start(WorldOptions::default());
    let addr = w.blobs.trim_start_matches("tcp:").to_string();
    // An oversized frame declaration on the blob API: an error frame, then the connection closes.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut buf = vec![];
    let _ = s.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).contains("malformed"), "{buf:?}");
    // Garbage instead of a TLS handshake at the front door.
    let mut s = std::net::TcpStream::connect(w.front.trim_start_matches("tcp:")).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let _ = s.read_to_end(&mut buf);
    // Both services still work.
    let o = w.release("job-1");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn cli_bad_input_is_one_clear_error_line() {
    let w = World::start(WorldOptions::default());
    let bad = w.path("bad.toml");
    std::fs::write(&bad, "this is = not [a policy").unwrap();
    let o = w.cr(&["policy", "digest", bad.to_str().unwrap()]);
    assert_fails_with(&o, "bad.toml");
    let o = w.cr(&[
        "budget",
        "set",
        "--ledger",
        w.ledger.to_str().unwrap(),
        "--population",
        &w.population,
        "--collaborator",
        "x",
        "--epsilon",
        "nothex",
        "--delta",
        "0.01",
    ]);
    assert_fails_with(&o, "nothex");
    // A query asking for a negative ε does not even decode (ε is parsed when read): no
    // grant, no key.
    let q = w.query_with("job-1", &credit_lr_wasm(), "negative.toml", |_| {});
    let text = std::fs::read_to_string(&q).unwrap();
    let negative: Vec<String> = text
        .lines()
        .map(|l| if l.trim_start().starts_with("epsilon = ") { "epsilon = \"-1\"".to_string() } else { l.to_string() })
        .collect();
    assert!(negative.iter().any(|l| l == "epsilon = \"-1\""), "{text}");
    std::fs::write(&q, negative.join("\n")).unwrap();
    let o = w.release_query(&q);
    assert_fails_with(&o, "-1");
    assert_eq!(w.spent_epsilon(), "0", "{}", w.budget());
    assert!(audit_events(&w).is_empty());
}
