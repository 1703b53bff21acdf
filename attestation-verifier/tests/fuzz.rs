//! Property test: arbitrary bytes and structure-aware mutations of the real
//! vectors never panic; every input gets `Ok` or a typed `Error`.
//!
//! Short run by default (`cargo test`). Long run:
//! `ATTEST_FUZZ_CASES=1000000 cargo test -p attestation-verifier --release --test fuzz -- --nocapture`
//! (`ATTEST_FUZZ_SEED` picks the seed). Prints the number of cases.

use std::path::PathBuf;

use attestation_verifier::snp::{self, SnpCerts};
use attestation_verifier::{
    issue_simulated, nitro, simulated, verify_evidence, Claims, Expectations, NitroExpectations, Options, Platform,
    UnixTime,
};
use cbor::Value;

/// splitmix64: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn td(rel: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation").join(rel))
        .unwrap()
}

fn corpus() -> Vec<(Platform, Vec<u8>, Option<SnpCerts>, UnixTime)> {
    let all: serde_json::Value = serde_json::from_slice(&td("expected.json")).unwrap();
    let mut out = Vec::new();
    for e in all.as_array().unwrap() {
        let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap());
        let bytes = td(e["file"].as_str().unwrap());
        if e["kind"] == "nitro" {
            out.push((Platform::Nitro, bytes, None, at));
        } else {
            let certs = SnpCerts { vek: td(e["vek"].as_str().unwrap()), ask: None, asvk: None, ark: None };
            out.push((Platform::Snp, snp::encode_bundle(&bytes, &certs), None, at));
            out.push((Platform::Snp, bytes, Some(certs), at));
        }
    }
    let mut c = Claims::new("sim", 1_700_000_000_000);
    c.pcrs.insert(0, vec![1; 48]);
    c.nonce = Some(vec![2; 16]);
    out.push((Platform::Simulated, issue_simulated(&c), None, UnixTime::from_millis(1_700_000_000_000)));
    out
}

/// Mutates one random node of a CBOR tree.
fn mutate_value(v: &mut Value, rng: &mut Rng, depth: usize) {
    let choice = rng.below(10);
    match v {
        Value::Array(items) if !items.is_empty() && choice < 6 && depth < 8 => {
            let i = rng.below(items.len());
            mutate_value(&mut items[i], rng, depth + 1);
        }
        Value::Map(entries) if !entries.is_empty() && choice < 6 && depth < 8 => {
            let i = rng.below(entries.len());
            if rng.below(4) == 0 {
                mutate_value(&mut entries[i].0, rng, depth + 1);
            } else {
                mutate_value(&mut entries[i].1, rng, depth + 1);
            }
        }
        Value::Map(entries) if !entries.is_empty() && choice < 8 => {
            let i = rng.below(entries.len());
            if rng.below(2) == 0 {
                entries.remove(i);
            } else {
                let dup = entries[i].clone();
                entries.push(dup); // duplicate key
            }
        }
        Value::Bytes(b) if choice < 7 => {
            // nested CBOR (protected header, payload): recurse into it sometimes
            if let Ok(mut inner) = cbor::decode(b) {
                if rng.below(2) == 0 {
                    mutate_value(&mut inner, rng, depth + 1);
                    *b = cbor::encode(&inner);
                    return;
                }
            }
            if !b.is_empty() {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            if rng.below(5) == 0 {
                let n = rng.below(b.len() + 1);
                b.truncate(n);
            }
        }
        _ => {
            *v = match rng.below(9) {
                0 => Value::Unsigned(rng.next()),
                1 => Value::Negative(rng.next() % 64),
                2 => Value::Bytes(vec![0; rng.below(100)]),
                3 => Value::Text("x".repeat(rng.below(300))),
                4 => Value::Array(vec![Value::Null; rng.below(5)]),
                5 => Value::Map(vec![]),
                6 => Value::Null,
                7 => Value::Bool(true),
                _ => Value::Tag(18, Box::new(Value::Null)),
            };
        }
    }
}

fn mutate(base: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = base.to_vec();
    match rng.below(8) {
        0 | 1 => {
            for _ in 0..=rng.below(8) {
                if !d.is_empty() {
                    let i = rng.below(d.len());
                    d[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let i = rng.below(d.len() + 1);
            d.truncate(i);
        }
        3 => {
            let i = rng.below(d.len() + 1);
            let n = rng.below(16);
            let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            d.splice(i..i, ins);
        }
        4 => {
            // splice a slice of another document in
            let i = rng.below(d.len() + 1);
            let a = rng.below(other.len() + 1);
            let b = (a + rng.below(64)).min(other.len());
            d.splice(i..i, other[a..b].iter().copied());
        }
        5 => {
            // set a random byte to an interesting CBOR head
            let heads =
                [0x00, 0x18, 0x1b, 0x3b, 0x5b, 0x5f, 0x7f, 0x9f, 0xbf, 0xbb, 0xd2, 0xf6, 0xf7, 0xf9, 0xfb, 0xff];
            if !d.is_empty() {
                let i = rng.below(d.len());
                d[i] = heads[rng.below(heads.len())];
            }
        }
        _ => {
            if let Ok(mut v) = cbor::decode(&d) {
                mutate_value(&mut v, rng, 0);
                d = cbor::encode(&v);
            } else if !d.is_empty() {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
        }
    }
    d
}

/// Runs every parser and the verifier on `input`; the verdict (as text) if it verifies.
fn exercise(kind: Platform, input: &[u8], certs: &Option<SnpCerts>, at: UnixTime) -> Option<String> {
    let o = Options { allow_debug: true, allow_simulated: true, allow_emulated_nsm: false };
    let e = NitroExpectations::default();
    let any = |k: Platform| match k {
        Platform::Snp => Expectations::Snp(Default::default()),
        _ => Expectations::Nitro(e.clone()),
    };
    let _ = cbor::decode(input);
    let _ = nitro::parse_document(input);
    let _ = simulated::parse_document(input);
    let _ = snp::parse_report(input);
    let _ = snp::decode_bundle(input);
    let _ = attestation_verifier::certificate_ed25519_key(input);
    let _ = attestation_verifier::cli::certificate_summary(input);
    let r = match certs {
        Some(c) => snp::verify_snp(input, c, &Default::default(), &o, at),
        None => verify_evidence(kind, input, &any(kind), &o, at),
    };
    r.ok().map(|v| format!("{v:?}"))
}

#[test]
fn no_input_panics() {
    let cases: usize = std::env::var("ATTEST_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let seed: u64 = std::env::var("ATTEST_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    let corpus = corpus();
    // Every genuine document verifies; its verdict is what an accepted mutant must give.
    let verdicts: Vec<String> = corpus
        .iter()
        .map(|(kind, base, certs, at)| exercise(*kind, base, certs, *at).expect("the unmutated corpus verifies"))
        .collect();
    let mut rng = Rng(seed);
    let mut accepted = 0usize;
    let mut arbitrary = 0usize;
    for i in 0..cases {
        if i % 10 == 0 {
            // arbitrary bytes, sometimes starting like a COSE_Sign1
            arbitrary += 1;
            let cap = if rng.below(2) == 0 { 64 } else { 2048 };
            let n = rng.below(cap);
            let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && b.len() > 2 {
                b[0] = 0x84;
                b[1] = 0x44;
            }
            for kind in [Platform::Nitro, Platform::Snp, Platform::Simulated] {
                exercise(kind, &b, &None, UnixTime::from_secs(1_700_000_000));
            }
            continue;
        }
        let pick = rng.below(corpus.len());
        let (kind, base, certs, at) = &corpus[pick];
        let (_, other, _, _) = &corpus[rng.below(corpus.len())];
        let mut m = mutate(base, other, &mut rng);
        if rng.below(4) == 0 {
            m = mutate(&m, other, &mut rng);
        }
        if let Some(v) = exercise(*kind, &m, certs, *at) {
            // A mutant may verify only as a re-encoding of the same signed content: the
            // same verdict (claims, PCRs, keys, checks) as the document it came from.
            assert_eq!(v, verdicts[pick], "a mutant verified with another verdict: {}", hex::encode(&m));
            if m != *base {
                accepted += 1;
            }
        }
    }
    println!("fuzz: {cases} cases ({arbitrary} arbitrary, {} mutated), seed {seed:#x}, {accepted} mutants accepted (outer re-encodings only), no panic", cases - arbitrary);
}
