//! Interoperability: the Merkle tree, its proofs and the signed checkpoints agree with an
//! independent Python implementation written from RFC 6962 / RFC 9162 and the C2SP
//! signed-note and tlog-checkpoint specifications (`tests/rfc6962_reference.py`).
//!
//! Needs `python3` with the `cryptography` package on the PATH. Without them the test
//! fails (it does not skip): CI has both.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cleanroom_tlog::checkpoint::{self, Checkpoint};
use cleanroom_tlog::merkle::{self, Hash, MerkleTree};
use protocol::signing::SigningKey;
use serde_json::{json, Value};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

struct Log {
    leaves: Vec<Vec<u8>>,
    tree: MerkleTree,
    inclusion: Vec<(u64, u64)>,
    consistency: Vec<(u64, u64)>,
}

fn powers_of_two_up_to(n: u64) -> impl Iterator<Item = u64> {
    (0..64).map(|k| 1u64 << k).take_while(move |&p| p <= n)
}

fn make_log(rng: &mut Rng, n: u64) -> Log {
    let leaves: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = rng.range(0, 64) as usize;
            rng.bytes(len)
        })
        .collect();
    let mut tree = MerkleTree::new();
    for l in &leaves {
        tree.push(l);
    }
    assert_eq!(tree.size(), n);

    let mut inclusion = vec![(0, n), (n - 1, n), (0, 1)];
    for p in powers_of_two_up_to(n) {
        inclusion.push((rng.range(0, p - 1), p));
        inclusion.push((p - 1, p));
    }
    for _ in 0..6 {
        let size = rng.range(1, n);
        inclusion.push((rng.range(0, size - 1), size));
    }

    let mut consistency = vec![(n, n), (1, n), (1, 1)];
    for p in powers_of_two_up_to(n) {
        consistency.push((p, n));
        consistency.push((p, rng.range(p, n)));
        consistency.push((rng.range(1, p), p));
    }
    for _ in 0..6 {
        let new = rng.range(1, n);
        let old = rng.range(1, new);
        consistency.push((old, new));
        consistency.push((new, new));
    }
    Log { leaves, tree, inclusion, consistency }
}

fn hash(v: &Value) -> Hash {
    let s = v.as_str().unwrap_or_else(|| panic!("expected a hex string, got {v}"));
    hex::decode(s).expect("hex").try_into().unwrap_or_else(|_| panic!("{s} is not 32 bytes"))
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap_or_else(|| panic!("expected a list of hashes, got {v}")).iter().map(hash).collect()
}

/// Run the Python reference once on `request`; fail loudly if it cannot run.
fn run_reference(request: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc6962_reference.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `python3 {script}`: {e}. This interoperability test needs Python 3 \
                 with the `cryptography` package (pip install cryptography); it fails rather than skips."
            )
        });
    let input = serde_json::to_vec(request).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // A writer thread, so that a large request and answer cannot deadlock on the pipes. If
    // python3 exits early (say on a failed import) the write fails with a broken pipe; its
    // exit status and stderr are reported first, as they say why.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for python3");
    let written = writer.join().expect("the writer thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python reference failed ({}). If `cryptography` is missing, install it \
         (pip install cryptography); this test does not skip.\n--- stderr ---\n{stderr}",
        out.status
    );
    written.expect("write the request to python3");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the Python reference wrote no JSON answer: {e}\n--- stderr ---\n{stderr}"))
}

#[test]
fn merkle_tree_and_checkpoints_match_the_python_reference() {
    let started = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let mut sizes: Vec<u64> = vec![
        1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 500, 511, 512,
        513, 999, 1000,
    ];
    for _ in 0..20 {
        sizes.push(rng.range(1, 1000));
    }
    let logs: Vec<Log> = sizes.iter().map(|&n| make_log(&mut rng, n)).collect();

    // Three checkpoints, each by its own key, plus one with a damaged signature.
    let keys: Vec<SigningKey> = (0..3u8).map(|i| SigningKey::from_seed([0x40 + i; 32])).collect();
    let last = logs.last().unwrap();
    let checkpoints = [
        Checkpoint {
            origin: checkpoint::origin_for_owner(&keys[0].public_key()),
            size: last.tree.size(),
            root: last.tree.root(),
        },
        Checkpoint { origin: "example.com/log/empty".into(), size: 0, root: merkle::empty_root() },
        Checkpoint { origin: "cleanroom/audit/ffffffffffffffff".into(), size: u64::MAX, root: rng_root(&mut rng) },
    ];
    let mut notes: Vec<(String, &Checkpoint, &SigningKey)> =
        checkpoints.iter().zip(&keys).map(|(cp, k)| (cp.sign(k), cp, k)).collect();
    let flipped = flip_signature_byte(&notes[0].0);
    assert!(
        checkpoint::parse(&flipped).unwrap().verify(&keys[0].public_key()).is_err(),
        "the Rust verifier accepts the damaged note"
    );
    notes.push((flipped, &checkpoints[0], &keys[0]));

    let request = json!({
        "logs": logs.iter().map(|l| json!({
            "leaves": l.leaves.iter().map(hex::encode).collect::<Vec<_>>(),
            "inclusion": l.inclusion,
            "consistency": l.consistency,
        })).collect::<Vec<_>>(),
        "notes": notes.iter().map(|(text, _, k)| json!({
            "text": text,
            "public_key": hex::encode(k.public_key()),
        })).collect::<Vec<_>>(),
    });
    let python_started = Instant::now();
    let answer = run_reference(&request);
    let python_took = python_started.elapsed();

    // Merkle roots and proofs.
    let py_logs = answer["logs"].as_array().expect("logs in the answer");
    assert_eq!(py_logs.len(), logs.len());
    let (mut n_roots, mut n_incl, mut n_cons) = (0, 0, 0);
    for (log, py) in logs.iter().zip(py_logs) {
        let n = log.tree.size();
        let roots = hashes(&py["roots"]);
        assert_eq!(roots.len() as u64, n, "Python returned the wrong number of roots for a log of {n}");
        for (i, r) in roots.iter().enumerate() {
            let size = i as u64 + 1;
            assert_eq!(
                hex::encode(log.tree.root_at(size).unwrap()),
                hex::encode(r),
                "root of size {size} (log of {n})"
            );
            n_roots += 1;
        }
        let py_incl = py["inclusion"].as_array().unwrap();
        assert_eq!(py_incl.len(), log.inclusion.len());
        for (&(index, size), p) in log.inclusion.iter().zip(py_incl) {
            let py_proof = hashes(p);
            let rust_proof = log.tree.inclusion_proof(index, size).unwrap();
            assert_eq!(
                rust_proof.iter().map(hex::encode).collect::<Vec<_>>(),
                py_proof.iter().map(hex::encode).collect::<Vec<_>>(),
                "inclusion proof of leaf {index} in size {size} (log of {n})"
            );
            let leaf = merkle::leaf_hash(&log.leaves[index as usize]);
            assert_eq!(log.tree.leaf(index), Some(leaf));
            merkle::verify_inclusion(&leaf, index, size, &py_proof, &log.tree.root_at(size).unwrap()).unwrap_or_else(
                |e| panic!("Rust rejects Python's inclusion proof of {index} in {size} (log of {n}): {e}"),
            );
            n_incl += 1;
        }
        let py_cons = py["consistency"].as_array().unwrap();
        assert_eq!(py_cons.len(), log.consistency.len());
        for (&(old, new), p) in log.consistency.iter().zip(py_cons) {
            let py_proof = hashes(p);
            let rust_proof = log.tree.consistency_proof(old, new).unwrap();
            assert_eq!(
                rust_proof.iter().map(hex::encode).collect::<Vec<_>>(),
                py_proof.iter().map(hex::encode).collect::<Vec<_>>(),
                "consistency proof {old} -> {new} (log of {n})"
            );
            let (old_root, new_root) = (log.tree.root_at(old).unwrap(), log.tree.root_at(new).unwrap());
            merkle::verify_consistency(old, new, &old_root, &new_root, &py_proof)
                .unwrap_or_else(|e| panic!("Rust rejects Python's consistency proof {old} -> {new} (log of {n}): {e}"));
            n_cons += 1;
        }
    }

    // Checkpoints.
    let py_notes = answer["notes"].as_array().expect("notes in the answer");
    assert_eq!(py_notes.len(), notes.len());
    for (i, ((text, cp, key), py)) in notes.iter().zip(py_notes).enumerate() {
        let damaged = i == notes.len() - 1;
        assert!(py.get("error").is_none(), "Python cannot parse note {i}: {py}\n{text}");
        assert_eq!(py["origin"].as_str(), Some(cp.origin.as_str()), "origin of note {i}");
        assert_eq!(py["size"].as_u64(), Some(cp.size), "size of note {i}");
        assert_eq!(py["root"].as_str(), Some(hex::encode(cp.root).as_str()), "root of note {i}");
        assert_eq!(py["extensions"], json!([]), "note {i} has no extension lines");
        let sigs = py["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 1, "note {i} has one signature line");
        assert_eq!(sigs[0]["name"].as_str(), Some(cp.origin.as_str()), "key name of note {i}");
        assert_eq!(
            sigs[0]["key_id"].as_str(),
            Some(hex::encode(checkpoint::key_id(&cp.origin, &key.public_key())).as_str()),
            "key ID of note {i}"
        );
        assert_eq!(py["key_id_matches"], json!(true), "key ID of note {i} per Python");
        assert_eq!(
            py["signature_valid"],
            json!(!damaged),
            "Python's verdict on the signature of note {i} (damaged: {damaged})\n{text}"
        );
        if !damaged {
            let parsed = checkpoint::parse(text).unwrap();
            assert_eq!(&parsed.checkpoint, *cp);
            parsed.verify(&key.public_key()).unwrap();
        }
    }

    eprintln!(
        "interop: {} logs, {n_roots} roots, {n_incl} inclusion and {n_cons} consistency proofs, {} notes \
         agree with the Python reference (python {:.2?}, total {:.2?})",
        logs.len(),
        notes.len(),
        python_took,
        started.elapsed()
    );
}

fn rng_root(rng: &mut Rng) -> Hash {
    rng.bytes(32).try_into().unwrap()
}

/// The note with one byte of its Ed25519 signature (not of the key ID) changed.
fn flip_signature_byte(note: &str) -> String {
    let (head, sig_line) = note.trim_end_matches('\n').rsplit_once('\n').unwrap();
    let (prefix, b64) = sig_line.rsplit_once(' ').unwrap();
    let mut blob = B64.decode(b64).unwrap();
    assert_eq!(blob.len(), 4 + 64);
    blob[4 + 20] ^= 0x01;
    format!("{head}\n{prefix} {}\n", B64.encode(blob))
}
