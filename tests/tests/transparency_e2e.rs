//! The audit log as a transparency log, attacked the way a host operator would: records
//! deleted from the end, an edited record, a fork (owner and provider shown different
//! trees), a rollback before the next key release, a log from another image, a result
//! that is not in the log, and enclave restarts appending to one tree.

use cleanroom_e2e::*;
use std::path::{Path, PathBuf};

/// The fetched log's lines.
fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap().lines().map(String::from).collect()
}

/// Write `lines` as a log in a fresh directory beside the fetched one, with its evidence.
fn write_log(w: &World, name: &str, from: &Path, lines: &[String]) -> PathBuf {
    let dir = w.path(name);
    std::fs::create_dir_all(dir.join("evidence")).unwrap();
    for e in std::fs::read_dir(from.parent().unwrap().join("evidence")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join("evidence").join(e.file_name())).unwrap();
    }
    let log = dir.join("audit.log");
    std::fs::write(&log, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    log
}

fn run_job(w: &World, job: &str) -> PathBuf {
    let o = w.release(job);
    assert!(o.status.success(), "{}", text(&o));
    let (o, result) = w.submit(job, &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}\n{}", text(&o), w.host_log());
    result
}

fn checkpoint_size(note: &str) -> u64 {
    tlog::checkpoint::parse(note).unwrap().checkpoint.size
}

#[test]
fn a_deleted_last_record_or_suffix_is_caught_by_the_checkpoints_held() {
    let w = World::start(WorldOptions::default());
    let result = run_job(&w, "job-1");
    assert!(w.release("job-2").status.success());
    let log = w.fetch_audit();
    let all = lines(&log);
    assert_eq!(all.len(), 3, "key_release, job_released, key_release");
    let res = result.to_str().unwrap();
    let o = w.verify_audit_with(&log, &["--result", res]);
    assert!(o.status.success(), "{}", text(&o));

    // The last record deleted: the owner's checkpoint (from job-2's key release) covers it.
    let short = write_log(&w, "deleted-last", &log, &all[..2]);
    assert_fails_with(
        &w.verify_audit(&short),
        "checkpoint held by owner (ledger) covers 3 records but the log has 2: records were removed",
    );
    // A suffix (job-1's result and job-2's key release) deleted: the provider's checkpoint
    // names it too, and without the ledger the result alone catches it.
    let shorter = write_log(&w, "deleted-suffix", &log, &all[..1]);
    assert_fails_with(&w.verify_audit(&shorter), "covers 3 records but the log has 1");
    let mut args = vec!["audit", "verify", shorter.to_str().unwrap(), "--allow-simulated"];
    args.extend(["--expect-pcr0", &w.pcr0, "--policy-digest", &w.policy_digest, "--result", res]);
    assert_fails_with(&w.cr(&args), "covers 2 records but the log has 1");
    // Negative control: the whole log passes with every checkpoint given.
    assert!(w.verify_audit_with(&log, &["--result", res]).status.success());
}

#[test]
fn an_edited_record_breaks_its_signature_and_a_resigned_one_is_impossible_without_the_key() {
    let w = World::start(WorldOptions::default());
    let result = run_job(&w, "job-1");
    let log = w.fetch_audit();
    let mut edited = lines(&log);
    // The host edits the result record's outcome text in the JSON (the signature breaks)…
    let mut s: protocol::signing::Signed = serde_json::from_str(&edited[1]).unwrap();
    s.payload.0[20] ^= 1;
    edited[1] = serde_json::to_string(&s).unwrap();
    let e = write_log(&w, "edited", &log, &edited);
    assert_fails_with(&w.verify_audit(&e), "audit log line 2: signature does not verify");
    // …or swaps in a record signed by a key of its own: not an attested signer.
    let mallory = protocol::signing::SigningKey::from_seed([66; 32]);
    let orig: protocol::signing::Signed = serde_json::from_str(&lines(&log)[1]).unwrap();
    let mut rec: protocol::audit::AuditRecord = orig.decode().unwrap();
    rec.outcome = "forged".into();
    edited[1] = protocol::audit::log_line(&mallory.sign(protocol::audit::AUDIT_CONTEXT, &rec));
    let e = write_log(&w, "resigned", &log, &edited);
    let o = w.verify_audit_with(&e, &["--result", result.to_str().unwrap()]);
    assert_fails_with(&o, "line 2");
    assert_fails_with(&o, "signer");
}

#[test]
fn enclave_restarts_append_to_one_tree_that_never_shrinks() {
    let mut w = World::start(WorldOptions { budget: "3", ..Default::default() });
    let r1 = run_job(&w, "job-1");
    w.restart();
    let o = w.release("job-2");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("extends the checkpoint the ledger held (1 records)"), "{}", text(&o));
    let (o, r2) = w.submit("job-2", &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}", text(&o));
    w.restart();
    let r3 = run_job(&w, "job-3");
    let receipts: Vec<u64> =
        [&r1, &r2, &r3].iter().map(|r| checkpoint_size(&read_result_file(r).receipt.checkpoint)).collect();
    assert_eq!(receipts, vec![2, 4, 6], "one tree across three enclave instances");
    let log = w.fetch_audit();
    let args: Vec<&str> = [&r1, &r2, &r3].iter().flat_map(|r| ["--result", r.to_str().unwrap()]).collect();
    let o = w.verify_audit_with(&log, &args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6 records"), "{}", text(&o));
    assert_eq!(text(&o).matches("  signer ").count(), 3, "{}", text(&o));
    assert_eq!(text(&o).matches("result included").count(), 3, "{}", text(&o));
}

#[test]
fn a_rollback_is_refused_before_the_key_is_sent_and_a_fork_is_named() {
    let mut w = World::start(WorldOptions::default());
    let r1 = run_job(&w, "job-1");
    // The host keeps a copy of the log as it is now (2 records).
    let store_log = w.store.join("audit.log");
    let two = std::fs::read(&store_log).unwrap();
    let old_ledger = w.path("ledger-before-job-2.sqlite");
    std::fs::copy(&w.ledger, &old_ledger).unwrap();
    assert!(w.release("job-2").status.success());
    let tree_a = w.fetch_audit();
    assert_eq!(lines(&tree_a).len(), 3);

    // Rollback: the host restarts the enclave on the older log (2 records). The owner's
    // ledger holds a checkpoint of 3: the release is refused before any key is sent.
    w.stop();
    std::fs::write(&store_log, &two).unwrap();
    w.restart();
    let spent = w.spent_epsilon();
    let o = w.release("job-3");
    assert_fails_with(&o, "rolled the log back");
    assert_fails_with(&o, "no key was sent");
    assert_eq!(w.spent_epsilon(), spent, "nothing granted: {}", w.budget());
    assert_eq!(w.audit_events(), vec!["key_release", "job_released"], "the enclave received no key");

    // Fork: an owner whose ledger predates job-2 (checkpoint of 1) is shown the rolled-back
    // tree, which is consistent with what it holds, and releases there. Now two trees of
    // 3 records exist; each checkpoint is caught against the other tree.
    let q = w.query("job-2b", &credit_lr_wasm());
    let o = w.release_query_with_ledger(&w.front, &w.pcr0, &q, &old_ledger);
    assert!(o.status.success(), "{}", text(&o));
    let tree_b = w.fetch_audit();
    assert_eq!(lines(&tree_b).len(), 3);
    assert_fails_with(
        &w.verify_audit(&tree_b),
        "checkpoint held by owner (ledger) (size 3) does not match the log's first 3 records",
    );
    assert_fails_with(&w.verify_audit(&tree_b), "fork");
    // Both trees still hold the provider's record: its result verifies against either.
    let res = r1.to_str().unwrap();
    for t in [&tree_a, &tree_b] {
        let mut args = vec!["audit", "verify", t.to_str().unwrap(), "--allow-simulated"];
        args.extend(["--expect-pcr0", &w.pcr0, "--policy-digest", &w.policy_digest, "--result", res]);
        let o = w.cr(&args);
        assert!(o.status.success(), "{}", text(&o));
    }
}

#[test]
fn a_log_from_another_image_is_refused_by_the_auditor_and_by_a_restarted_enclave() {
    let mut w = World::start(WorldOptions::default());
    let result = run_job(&w, "job-1");
    let log = w.fetch_audit();
    let verify_expecting = |pcr0: &str, policy: &str| {
        let log = log.to_str().unwrap();
        w.cr(&["audit", "verify", log, "--allow-simulated", "--expect-pcr0", pcr0, "--policy-digest", policy])
    };
    let o = verify_expecting(&"22".repeat(48), &w.policy_digest);
    assert_fails_with(&o, "audit log line 1: signer");
    assert_fails_with(&o, "pcr0");
    // Another policy than the one expected.
    assert_fails_with(&verify_expecting(&w.pcr0, &"33".repeat(32)), "not an expected policy");
    // A different enclave executable (another simulated PCR0) will not continue this log.
    let evil = w.path("enclave-app-other-image");
    let mut bytes = std::fs::read(bin("enclave-app")).unwrap();
    bytes.extend_from_slice(b"another image");
    std::fs::write(&evil, bytes).unwrap();
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let err = w.restart_with_enclave(&evil).expect_err("an enclave of another image must not resume the log");
    assert!(err.contains("not an attested enclave of this image"), "{err}");
    // Negative control: the right image resumes it.
    w.restart();
    let o = w.verify_audit_with(&w.fetch_audit(), &["--result", result.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_result_not_in_the_log_is_named() {
    let w = World::start(WorldOptions::default());
    run_job(&w, "job-1");
    let other = World::start(WorldOptions::default());
    let foreign = run_job(&other, "job-1");
    let log = w.fetch_audit();
    let o = w.verify_audit_with(&log, &["--result", foreign.to_str().unwrap()]);
    assert_fails_with(&o, &foreign.display().to_string());
    // Another owner's log: its checkpoint names another origin.
    assert_fails_with(&o, "is for log");
    // The result's own receipt, with the record swapped for another line of the log.
    let mut f = read_result_file(&run_job(&w, "job-2"));
    let all = lines(&w.fetch_audit());
    f.receipt.record = all[0].clone();
    let tampered = w.path("tampered.result.json");
    std::fs::write(&tampered, serde_json::to_vec(&f).unwrap()).unwrap();
    let o = w.verify_audit_with(&w.fetch_audit(), &["--result", tampered.to_str().unwrap()]);
    assert_fails_with(&o, "tampered.result.json");
}

#[test]
fn bad_checkpoints_and_failing_logs_are_named_and_nothing_is_written() {
    let w = World::start(WorldOptions::default());
    let result = run_job(&w, "job-1");
    let log = w.fetch_audit();
    let note = read_result_file(&result).receipt.checkpoint;
    let bad = |name: &str, text: &str, needle: &str| {
        let p = w.path(name);
        std::fs::write(&p, text).unwrap();
        assert_fails_with(&w.verify_audit_with(&log, &["--checkpoint", p.to_str().unwrap()]), needle);
    };
    bad("garbage.note", "not a checkpoint", "no blank line before its signatures");
    bad("backwards.note", &note.replacen("\n2\n", "\n1\n", 1), "not signed by any attested signer");
    bad("leading-zero.note", &note.replacen("\n2\n", "\n02\n", 1), "leading zeros");
    let mut flipped = note.clone().into_bytes();
    let at = flipped.len() - 8;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    bad("flipped.note", &String::from_utf8(flipped).unwrap(), "not signed by any attested signer");
    // A proof of the wrong size in a result's receipt.
    let mut f = read_result_file(&result);
    f.receipt.inclusion.pop();
    let p = w.path("short-proof.result.json");
    std::fs::write(&p, serde_json::to_vec(&f).unwrap()).unwrap();
    assert_fails_with(&w.verify_audit_with(&log, &["--result", p.to_str().unwrap()]), "inclusion proof");

    // A failing log: no report, no export.
    let broken = write_log(&w, "broken", &log, &lines(&log)[1..]);
    let out = w.path("report-of-broken");
    let mut args = vec!["audit", "report", broken.to_str().unwrap(), "--allow-simulated"];
    args.extend(["--expect-pcr0", &w.pcr0, "--policy-digest", &w.policy_digest, "--out", out.to_str().unwrap()]);
    assert_fails_with(&w.cr(&args), "line 1");
    assert!(!out.exists(), "a report was written for a log that does not verify");
    let jsonl = w.path("broken.jsonl");
    let mut args = vec!["audit", "export", broken.to_str().unwrap(), "--allow-simulated", "--format", "jsonl"];
    args.extend(["--expect-pcr0", &w.pcr0, "--policy-digest", &w.policy_digest, "--out", jsonl.to_str().unwrap()]);
    assert_fails_with(&w.cr(&args), "line 1");
    assert!(!jsonl.exists());

    // The good log exports one flat object per record.
    let mut args = vec!["audit", "export", log.to_str().unwrap(), "--allow-simulated", "--format", "jsonl"];
    args.extend(["--expect-pcr0", &w.pcr0, "--policy-digest", &w.policy_digest, "--out", jsonl.to_str().unwrap()]);
    let o = w.cr(&args);
    assert!(o.status.success(), "{}", text(&o));
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["event"], "job_released");
    assert!(rows.iter().all(|r| r.as_object().unwrap().values().all(|v| !v.is_object() && !v.is_array())));
}

#[test]
fn an_append_the_host_refuses_fails_the_operation_and_nothing_is_kept() {
    let w = World::start(WorldOptions { budget: "5", ..Default::default() });
    run_job(&w, "job-1");
    assert!(w.release("job-2").status.success());
    // The host stops storing records (its log path is no longer a writable file).
    let store_log = w.store.join("audit.log");
    let saved = std::fs::read(&store_log).unwrap();
    std::fs::remove_file(&store_log).unwrap();
    std::fs::create_dir(&store_log).unwrap();
    // A spent job whose record cannot be logged releases nothing and caches nothing.
    let (o, result) = w.submit("job-2", &credit_lr_wasm(), &w.index);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("job_failed"), "{}", text(&o));
    assert!(!result.exists(), "a result left although its record was not logged");
    // A key release whose record cannot be logged is refused, and the grant is not kept.
    let o = w.release("job-3");
    assert_fails_with(&o, "audit_failed");
    std::fs::remove_dir(&store_log).unwrap();
    std::fs::write(&store_log, &saved).unwrap();
    let (o, _) = w.submit("job-3", &credit_lr_wasm(), &w.index);
    assert_fails_with(&o, "no_grant");
    // Negative control: with the log writable again, the next release is logged.
    assert!(w.release("job-4").status.success());
}
