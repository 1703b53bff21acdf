//! `make bench` figures for the transparency log, side by side in one run:
//! - append throughput: what the enclave does per record (sign it, add its leaf, sign a
//!   checkpoint, build the inclusion proof) next to the hash chain it replaced (sign it,
//!   link digest);
//! - inclusion-proof verification time in a log of N records;
//! - `audit verify`'s core (replay: parse, signature, index, tree) over N records plus a
//!   checkpoint check, next to the same log verified as a hash chain only (parse,
//!   signature, link digest). N = TLOG_BENCH_RECORDS, default 1,000,000.

extern crate cleanroom_tlog as tlog;

use protocol::audit::{log_line, AuditEvent, AuditRecord, AUDIT_CONTEXT};
use protocol::signing::{Signed, SigningKey};
use protocol::Digest;
use std::time::Instant;
use tlog::checkpoint::Checkpoint;
use tlog::merkle::{leaf_hash, verify_inclusion, MerkleTree};
use tlog::replay::Replayer;
use tlog::LogState;

fn line(name: &str, value: f64, unit: &str, baseline: Option<&str>, ratio: Option<f64>) {
    println!(
        "{}",
        serde_json::json!({"bench": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio})
    );
}

fn record(index: u64) -> AuditRecord {
    AuditRecord {
        index,
        time: 1_796_083_200 + index,
        event: if index.is_multiple_of(2) { AuditEvent::KeyRelease } else { AuditEvent::JobReleased },
        principal: "acme-models".into(),
        job_id: Some(format!("job-{}", index / 2)),
        grant_id: Some(format!("grant-{:032x}", index / 2)),
        dataset_digest: Some(Digest::of(b"dataset")),
        policy_digest: Digest::of(b"policy"),
        module_hash: Some(Digest::of(b"module")),
        query_digest: Some(Digest::of(&index.to_be_bytes())),
        result_digest: (index % 2 == 1).then(|| Digest::of(&index.to_le_bytes())),
        evidence_digest: Digest::of(b"evidence"),
        platform: protocol::platform::Platform::Simulated,
        simulated: true,
        mechanism: Some("discrete_laplace".into()),
        epsilon: Some(protocol::policy::Decimal::literal("1")),
        delta: Some(protocol::policy::Decimal::literal("0")),
        sensitivity: Some("mean_risk_by_zip3: 1/20".into()),
        budget_before: Some(protocol::policy::Decimal::literal("3")),
        budget_after: Some(protocol::policy::Decimal::literal("2")),
        outcome: "released".into(),
        diagnostics: None,
    }
}

/// The hash-chain baseline: what the old log verified per record.
fn chain_link(prev: &Digest, line: &str) -> Digest {
    Digest::of_parts("bench/chain", &[prev.as_bytes(), line.as_bytes()])
}

fn main() {
    let n: u64 = std::env::var("TLOG_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let key = SigningKey::from_seed([9; 32]);
    let origin = "cleanroom/audit/bench".to_string();

    // Append: 20,000 records each way.
    let m = 20_000u64;
    let mut log = LogState::new(origin.clone(), MerkleTree::new());
    let t = Instant::now();
    for i in 0..m {
        let mut r = record(i);
        r.index = log.tree.size();
        let l = log_line(&key.sign(AUDIT_CONTEXT, &r));
        log.tree.push(l.as_bytes());
        std::hint::black_box(log.receipt(r.index, l, &key).expect("receipt"));
    }
    let ours = m as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut prev = Digest::default();
    for i in 0..m {
        let l = log_line(&key.sign(AUDIT_CONTEXT, &record(i)));
        prev = chain_link(&prev, &l);
    }
    std::hint::black_box(prev);
    let chain = m as f64 / t.elapsed().as_secs_f64();
    line("tlog_append_records_per_s", ours.round(), "records/s", Some("hash_chain_append"), Some(ours / chain));
    line("hash_chain_append_records_per_s", chain.round(), "records/s", None, None);

    // The N-record log, signed on every core.
    let threads = std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1) as u64;
    let per = n.div_ceil(threads);
    let t = Instant::now();
    let parts: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let key = &key;
                s.spawn(move || {
                    (k * per..((k + 1) * per).min(n)).map(|i| log_line(&key.sign(AUDIT_CONTEXT, &record(i)))).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("signer thread")).collect()
    });
    let lines: Vec<String> = parts.into_iter().flatten().collect();
    eprintln!("generated {n} records in {:.1} s", t.elapsed().as_secs_f64());

    // audit verify: replay + one checkpoint, vs the hash chain only.
    let t = Instant::now();
    let mut replay = Replayer::new();
    for l in &lines {
        replay.push(l).expect("replay");
    }
    let note = Checkpoint { origin: origin.clone(), size: n, root: replay.tree().root() }.sign(&key);
    let parsed = tlog::checkpoint::parse(&note).expect("checkpoint");
    parsed.verify(&key.public_key()).expect("checkpoint signature");
    assert_eq!(replay.tree().root_at(parsed.checkpoint.size).expect("size"), parsed.checkpoint.root);
    let ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut prev = Digest::default();
    for l in &lines {
        let s: Signed = serde_json::from_str(l).expect("line");
        s.verify_self_signed(AUDIT_CONTEXT).expect("signature");
        let _r: AuditRecord = s.decode().expect("record");
        prev = chain_link(&prev, l);
    }
    std::hint::black_box(prev);
    let chain = t.elapsed().as_secs_f64();
    line(&format!("audit_verify_{n}_records_s"), ours, "s", Some("hash_chain_verify"), Some(chain / ours));
    line(&format!("hash_chain_verify_{n}_records_s"), chain, "s", None, None);

    // Inclusion proof verification in the N-record tree (mean over 10,000 proofs).
    let tree = replay.tree();
    let root = tree.root();
    let k = 10_000u64;
    let proofs: Vec<(u64, [u8; 32], Vec<[u8; 32]>)> = (0..k)
        .map(|j| {
            let i = (j * 7_919) % n;
            (i, leaf_hash(lines[i as usize].as_bytes()), tree.inclusion_proof(i, n).expect("proof"))
        })
        .collect();
    let t = Instant::now();
    for (i, leaf, p) in &proofs {
        verify_inclusion(leaf, *i, n, p, &root).expect("inclusion");
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / k as f64;
    line(&format!("inclusion_proof_verify_{n}_records_us"), us, "µs", None, None);
    let t = Instant::now();
    for (i, _, _) in proofs.iter().take(1000) {
        std::hint::black_box(tree.inclusion_proof(*i, n).expect("proof"));
    }
    line(&format!("inclusion_proof_build_{n}_records_us"), t.elapsed().as_secs_f64() * 1e6 / 1000.0, "µs", None, None);
}
