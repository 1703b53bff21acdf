//! The aws-lc-rs backend (feature `aws-lc`) gives the same verdict and the same typed
//! error as ring, the reference, on every real vector in ../../shared/testdata/attestation
//! (at its time and at the times it must be refused) and on a deterministic sample of
//! mutations of each (bit flips spread over the whole input, every signature byte,
//! truncations), plus simulated evidence. Both backends are in this one test build: ring
//! always is a dependency, and `with_ring_backend` makes it do the checks.
//!
//! `cargo test --release -p attestation-verifier --features aws-lc --test backends_agree -- --nocapture`

#![cfg(feature = "aws-lc")]

use std::path::PathBuf;

use attestation_verifier::snp::{self, SnpCerts};
use attestation_verifier::{
    crypto_backend, issue_simulated, verify_nitro, verify_simulated, with_ring_backend, Claims, Error,
    NitroExpectations, Options, UnixTime, Verdict,
};

fn td(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Inputs derived from `input`: `step`-spaced single-bit flips over all of it, a flip in
/// each of its last `tail` bytes (where the signatures are), and truncations.
fn mutations(input: &[u8], step: usize, tail: usize) -> Vec<(String, Vec<u8>)> {
    let n = input.len();
    let mut out = Vec::new();
    let flip = |i: usize, bit: usize| {
        let mut d = input.to_vec();
        d[i] ^= 1 << (bit % 8);
        (format!("flip[{i}].{}", bit % 8), d)
    };
    for (k, i) in (0..n).step_by(step).enumerate() {
        out.push(flip(i, k));
    }
    for i in n.saturating_sub(tail)..n {
        out.push(flip(i, i * 3));
    }
    for len in [0, 1, n / 2, n - 1] {
        out.push((format!("truncated to {len}"), input[..len].to_vec()));
    }
    out
}

#[derive(Default)]
struct Agreement {
    cases: usize,
    accepted: usize,
    disagreements: Vec<String>,
}

impl Agreement {
    /// Runs `verify` with this build's backend and with ring; both results must be equal.
    fn check(&mut self, what: &str, verify: impl Fn() -> Result<Verdict, Error>) {
        let ours = verify();
        let reference = with_ring_backend(&verify);
        self.cases += 1;
        self.accepted += usize::from(ours.is_ok());
        if ours != reference {
            self.disagreements.push(format!("{what}: {} {ours:?}\n    ring {reference:?}", crypto_backend()));
        }
    }

    fn finish(self, label: &str) {
        let n = self.disagreements.len();
        println!("{label}: {} cases ({} accepted), {n} on which the backends differ", self.cases, self.accepted);
        assert!(
            self.disagreements.is_empty(),
            "{n} of {} {label} cases differ:\n{}",
            self.cases,
            self.disagreements.join("\n")
        );
    }
}

#[test]
fn this_build_verifies_with_aws_lc() {
    assert_eq!(crypto_backend(), "aws-lc-rs");
    assert_eq!(with_ring_backend(crypto_backend), "aws-lc-rs", "the name is the build's, not the thread's");
}

#[test]
fn real_vectors_and_their_mutations_get_the_same_verdict_from_both_backends() {
    let all: serde_json::Value = serde_json::from_slice(&td("expected.json")).unwrap();
    let opts = Options { allow_debug: true, allow_simulated: false, allow_emulated_nsm: false };
    let strict = Options { allow_debug: false, allow_simulated: false, allow_emulated_nsm: false };
    let mut a = Agreement::default();
    let mut vectors = 0;
    for e in all.as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        let at = e["verify_at_unix"].as_u64().unwrap();
        let mut times = vec![at];
        times.extend(e["also"].as_array().into_iter().flatten().filter_map(|x| x["at"].as_u64()));
        let doc = td(file);
        vectors += 1;
        if e["kind"] == "nitro" {
            let ex = NitroExpectations::default();
            for t in &times {
                for o in [&opts, &strict] {
                    a.check(&format!("{file} at {t}"), || verify_nitro(&doc, &ex, o, UnixTime::from_secs(*t)));
                }
            }
            for (what, m) in mutations(&doc, 23, 96) {
                a.check(&format!("{file} {what}"), || verify_nitro(&m, &ex, &opts, UnixTime::from_secs(at)));
            }
        } else {
            let vek = td(e["vek"].as_str().unwrap());
            let certs = |vek: &[u8]| SnpCerts { vek: vek.to_vec(), ask: None, asvk: None, ark: None };
            let ex = Default::default();
            for t in &times {
                a.check(&format!("{file} at {t}"), || {
                    snp::verify_snp(&doc, &certs(&vek), &ex, &opts, UnixTime::from_secs(*t))
                });
            }
            // the report: spread flips and every byte of r and s (0x2A0.., 0x2E8..)
            let mut ms = mutations(&doc, 11, 0);
            for i in (0x2A0..0x2A0 + 48).chain(0x2E8..0x2E8 + 48) {
                let mut d = doc.clone();
                d[i] ^= 0x10;
                ms.push((format!("sig[{i:#x}]"), d));
            }
            for (what, m) in ms {
                a.check(&format!("{file} {what}"), || {
                    snp::verify_snp(&m, &certs(&vek), &ex, &opts, UnixTime::from_secs(at))
                });
            }
            // the VEK certificate (its TBS, key and ECDSA signature by the ASK's RSA-PSS)
            for (what, m) in mutations(&vek, 13, 64) {
                a.check(&format!("{file} VEK {what}"), || {
                    snp::verify_snp(&doc, &certs(&m), &ex, &opts, UnixTime::from_secs(at))
                });
            }
        }
    }
    assert!(vectors >= 10, "expected.json lists {vectors} vectors");
    a.finish("real vectors and mutations");
}

#[test]
fn simulated_evidence_gets_the_same_verdict_from_both_backends() {
    let opts = Options { allow_debug: false, allow_simulated: true, allow_emulated_nsm: false };
    let mut claims = Claims::new("sim-backends", 1_700_000_000_000);
    for i in [0u16, 1, 2] {
        claims.pcrs.insert(i, vec![i as u8 + 1; 48]);
    }
    claims.nonce = Some(vec![7; 32]);
    let doc = issue_simulated(&claims);
    let at = UnixTime::from_millis(1_700_000_000_000);
    let ex = NitroExpectations::default();
    let v = verify_simulated(&doc, &ex, &opts, at);
    assert!(v.is_ok(), "the unmutated document must verify: {v:?}");
    let mut a = Agreement::default();
    a.check("simulated", || verify_simulated(&doc, &ex, &opts, at));
    for (what, m) in mutations(&doc, 3, 64) {
        a.check(&format!("simulated {what}"), || verify_simulated(&m, &ex, &opts, at));
    }
    a.finish("simulated");
}
