//! Mutation corpus generated from the real vectors in ../../shared/testdata/attestation:
//! every mutated document must be refused with the right class of error
//! (`Error::check()`), never accepted and never a panic. Prints the count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use attestation_verifier::snp::{self, SnpCerts};
use attestation_verifier::{nitro, verify_nitro, Error, NitroExpectations, Options, UnixTime, Verdict};
use cbor::{Value, Writer};

fn td(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn expected() -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&td("expected.json")).unwrap().as_array().unwrap().clone()
}

#[derive(Default)]
struct Tally {
    cases: usize,
    failures: Vec<String>,
    by_class: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn check(&mut self, what: &str, r: Result<Verdict, Error>, allowed: &[&str]) {
        self.cases += 1;
        match r {
            Ok(_) => self.failures.push(format!("{what}: ACCEPTED")),
            Err(e) => {
                *self.by_class.entry(e.check()).or_default() += 1;
                if !allowed.contains(&e.check()) {
                    self.failures.push(format!("{what}: {} ({e}); wanted one of {allowed:?}", e.check()));
                }
            }
        }
    }
}

const CERT_CLASSES: &[&str] = &[
    "certificate_malformed",
    "chain_name",
    "chain_signature",
    "certificate_algorithm",
    "critical_extension",
    "basic_constraints",
    "path_len",
    "key_usage",
    "root",
    "not_yet_valid",
    "expired",
    "signature",
];

fn split(doc: &[u8]) -> (Vec<Value>, Vec<(Value, Value)>) {
    let Ok(Value::Array(items)) = cbor::decode(doc) else { panic!("not an array") };
    let Value::Bytes(p) = &items[2] else { panic!() };
    let Ok(Value::Map(m)) = cbor::decode(p) else { panic!() };
    (items, m)
}

fn rebuild(items: &[Value], payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(4).value(&items[0]).value(&items[1]).bytes(payload).value(&items[3]);
    w.into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn flip(doc: &[u8], off: usize, bit: u8) -> Vec<u8> {
    let mut d = doc.to_vec();
    d[off] ^= 1 << (bit % 8);
    d
}

fn nitro_corpus(t: &mut Tally) {
    let o = Options { allow_debug: true, allow_simulated: false, allow_emulated_nsm: false };
    let ex = NitroExpectations::default();
    let entries: Vec<_> = expected().into_iter().filter(|e| e["kind"] == "nitro").collect();
    let docs: Vec<Vec<u8>> = entries.iter().map(|e| td(e["file"].as_str().unwrap())).collect();
    for (ei, (e, doc)) in entries.iter().zip(&docs).enumerate() {
        let name = e["file"].as_str().unwrap();
        let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap());
        let v = |d: &[u8]| verify_nitro(d, &ex, &o, at);
        assert!(v(doc).is_ok(), "{name} must verify unmutated");
        let parsed = nitro::parse_document(doc).unwrap();

        // signature: every byte
        let n = doc.len();
        for i in 0..96 {
            t.check(&format!("{name} sig[{i}]"), v(&flip(doc, n - 96 + i, i as u8)), &["signature"]);
        }
        // protected header: every bit of its 4 bytes
        let ph = find(doc, &parsed.protected).unwrap();
        for i in 0..parsed.protected.len() {
            for bit in 0..8 {
                t.check(
                    &format!("{name} protected[{i}].{bit}"),
                    v(&flip(doc, ph + i, bit)),
                    &["cbor", "algorithm", "header", "cose_structure"],
                );
            }
        }
        // payload CBOR structure bytes right at the start of the payload
        let pl = find(doc, &parsed.payload).unwrap();
        for i in 0..8 {
            t.check(
                &format!("{name} payload-head[{i}]"),
                v(&flip(doc, pl + i, 3)),
                &["cbor", "field_type", "missing_field", "unknown_field", "field_size", "digest", "signature"],
            );
        }
        // each PCR: several bytes
        for (idx, val) in &parsed.claims.pcrs {
            let Some(off) = find(&doc[pl..], val).map(|p| p + pl) else { continue };
            for k in [0usize, 11, 23, 35, 47] {
                t.check(&format!("{name} PCR{idx}[{k}]"), v(&flip(doc, off + k, k as u8)), &["signature"]);
            }
        }
        // module_id, timestamp, nonce/user_data/public_key bytes
        let mid = find(doc, parsed.claims.module_id.as_bytes()).unwrap();
        for k in 0..parsed.claims.module_id.len() {
            t.check(&format!("{name} module_id[{k}]"), v(&flip(doc, mid + k, 0)), &["signature"]);
            t.check(&format!("{name} module_id[{k}].7"), v(&flip(doc, mid + k, 7)), &["cbor", "signature"]);
        }
        for (label, b) in [
            ("nonce", &parsed.claims.nonce),
            ("user_data", &parsed.claims.user_data),
            ("public_key", &parsed.claims.public_key),
        ] {
            if let Some(b) = b {
                if b.iter().all(|x| *x == 0) {
                    continue; // position not unique
                }
                let off = find(doc, b).unwrap();
                for k in (0..b.len()).step_by(7) {
                    t.check(&format!("{name} {label}[{k}]"), v(&flip(doc, off + k, 1)), &["signature"]);
                }
            }
        }
        // each certificate: bytes spread over the whole DER
        let mut certs: Vec<(String, &Vec<u8>)> = vec![("leaf".into(), &parsed.certificate)];
        for (i, c) in parsed.cabundle.iter().enumerate() {
            certs.push((format!("cabundle[{i}]"), c));
        }
        for (label, c) in certs {
            let off = find(doc, c).unwrap();
            let step = (c.len() / 40).max(1);
            for k in (0..c.len()).step_by(step) {
                let allowed: &[&str] =
                    if label == "cabundle[0]" { &["root", "certificate_malformed"] } else { CERT_CLASSES };
                t.check(&format!("{name} {label}[{k}]"), v(&flip(doc, off + k, (k % 8) as u8)), allowed);
            }
        }
        // truncations
        for len in (0..n).step_by((n / 60).max(1)) {
            t.check(&format!("{name} truncated to {len}"), v(&doc[..len]), &["cbor"]);
        }
        // trailing bytes
        for tail in [&[0u8][..], &[0xff], &[0x00, 0x00, 0x00, 0x00], &[0x84, 0x40, 0xa0, 0x40, 0x40]] {
            let mut d = doc.clone();
            d.extend_from_slice(tail);
            t.check(&format!("{name} trailing {tail:?}"), v(&d), &["cbor"]);
        }
        // oversized
        let mut big = doc.clone();
        big.resize(nitro::MAX_DOC_LEN + 1, 0);
        t.check(&format!("{name} oversized"), v(&big), &["input_size"]);

        let (items, map) = split(doc);
        // re-encodings of the payload: indefinite map, reversed key order, non-minimal int
        let mut w = Writer::new();
        w.raw(&[0xbf]);
        for (k, val) in &map {
            w.value(k).value(val);
        }
        w.raw(&[0xff]);
        t.check(&format!("{name} payload indefinite"), v(&rebuild(&items, &w.into_bytes())), &["signature"]);
        let mut rev = map.clone();
        rev.reverse();
        t.check(
            &format!("{name} payload reordered"),
            v(&rebuild(&items, &cbor::encode(&Value::Map(rev)))),
            &["signature"],
        );
        let mut it = items.clone();
        it[0] = Value::Bytes(vec![0xa1, 0x01, 0x39, 0x00, 0x22]); // {1: -35} with a 2-byte int
        let Value::Bytes(p) = &items[2] else { panic!() };
        t.check(&format!("{name} protected non-minimal"), v(&rebuild(&it, p)), &["signature"]);
        // duplicated keys: each key of the payload once
        for i in 0..map.len() {
            let mut w = Writer::new();
            w.map(map.len() + 1);
            for (k, val) in &map {
                w.value(k).value(val);
            }
            w.value(&map[i].0).value(&map[i].1);
            t.check(&format!("{name} duplicate key {i}"), v(&rebuild(&items, &w.into_bytes())), &["cbor"]);
        }
        let mut it = items.clone();
        it[0] = Value::Bytes(vec![0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22]);
        t.check(&format!("{name} duplicate header key"), v(&rebuild(&it, p)), &["cbor"]);
        // wrong types for every field
        let wrong = [
            Value::Unsigned(7),
            Value::Negative(7),
            Value::Text("x".into()),
            Value::Bytes(vec![1, 2, 3]),
            Value::Array(vec![]),
            Value::Map(vec![]),
            Value::Bool(true),
        ];
        for (ki, (k, orig)) in map.iter().enumerate() {
            let optional = matches!(k, Value::Text(s) if ["nonce", "user_data", "public_key"].contains(&s.as_str()));
            for (wi, w) in wrong.iter().enumerate() {
                if std::mem::discriminant(w) == std::mem::discriminant(orig) {
                    continue;
                }
                let mut m = map.clone();
                m[ki] = (k.clone(), w.clone());
                t.check(
                    &format!("{name} field {ki} wrong type {wi}"),
                    v(&rebuild(&items, &cbor::encode(&Value::Map(m)))),
                    // a byte string where null was is well-typed: only the signature catches it
                    if optional && matches!(w, Value::Bytes(_)) {
                        &["signature"]
                    } else {
                        &["field_type", "cabundle", "field_size"]
                    },
                );
            }
            // removed field
            let mut m = map.clone();
            m.remove(ki);
            t.check(
                &format!("{name} field {ki} removed"),
                v(&rebuild(&items, &cbor::encode(&Value::Map(m)))),
                if optional { &["signature"] } else { &["missing_field"] },
            );
        }
        // swapped certificates
        let get = |key: &str| map.iter().find(|(k, _)| *k == Value::Text(key.into())).unwrap().1.clone();
        let Value::Array(bundle) = get("cabundle") else { panic!() };
        let leaf = get("certificate");
        let with_chain = |bundle: Vec<Value>, leaf: Value| {
            let m: Vec<(Value, Value)> = map
                .iter()
                .map(|(k, val)| match k {
                    Value::Text(s) if s == "cabundle" => (k.clone(), Value::Array(bundle.clone())),
                    Value::Text(s) if s == "certificate" => (k.clone(), leaf.clone()),
                    _ => (k.clone(), val.clone()),
                })
                .collect();
            rebuild(&items, &cbor::encode(&Value::Map(m)))
        };
        for i in 0..bundle.len() {
            for j in (i + 1)..bundle.len() {
                let mut b = bundle.clone();
                b.swap(i, j);
                t.check(
                    &format!("{name} swap cabundle {i}<->{j}"),
                    v(&with_chain(b, leaf.clone())),
                    &["root", "chain_name"],
                );
            }
            let mut b = bundle.clone();
            let l = std::mem::replace(&mut b[i], leaf.clone());
            t.check(&format!("{name} swap leaf<->cabundle {i}"), v(&with_chain(b, l)), &["root", "chain_name"]);
        }
        // the leaf and bundle of another document
        let other = &docs[(ei + 1) % docs.len()];
        let (_, omap) = split(other);
        let oleaf = omap.iter().find(|(k, _)| *k == Value::Text("certificate".into())).unwrap().1.clone();
        t.check(
            &format!("{name} other doc's leaf"),
            v(&with_chain(bundle.clone(), oleaf)),
            // a leaf from the same parent chains fine but is outside its window, or signs other bytes
            &["chain_name", "chain_signature", "not_yet_valid", "expired", "signature"],
        );
        // a valid signature by a different key
        {
            use ring::rand::SystemRandom;
            use ring::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
            let rng = SystemRandom::new();
            let pk = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pk.as_ref(), &rng).unwrap();
            let sig = kp.sign(&rng, &cbor::cose::sig_structure(&parsed.protected, &parsed.payload)).unwrap();
            let mut it = items.clone();
            it[3] = Value::Bytes(sig.as_ref().to_vec());
            t.check(&format!("{name} signed by another key"), v(&cbor::encode(&Value::Array(it))), &["signature"]);
        }
        // outside the validity window
        for also in e["also"].as_array().unwrap() {
            let at = UnixTime::from_secs(also["at"].as_u64().unwrap());
            t.check(&format!("{name} at {at:?}"), verify_nitro(doc, &ex, &o, at), &["not_yet_valid", "expired"]);
        }
        // a wrong PCR expectation
        let mut bad = NitroExpectations::default();
        let mut p0 = parsed.claims.pcrs[&0].clone();
        p0[0] ^= 1;
        bad.pcrs.insert(0, p0);
        t.check(&format!("{name} expected PCR0 differs"), verify_nitro(doc, &bad, &o, at), &["pcr"]);
        // debug refused by default
        if parsed.claims.is_debug() {
            t.check(&format!("{name} debug"), verify_nitro(doc, &ex, &Options::default(), at), &["debug"]);
        }
    }
}

fn snp_corpus(t: &mut Tally) {
    let o = Options::default();
    let ex = attestation_verifier::SnpExpectations::default();
    let entries: Vec<_> = expected().into_iter().filter(|e| e["kind"] == "snp").collect();
    let all: Vec<(Vec<u8>, SnpCerts)> = entries
        .iter()
        .map(|e| {
            (
                td(e["file"].as_str().unwrap()),
                SnpCerts { vek: td(e["vek"].as_str().unwrap()), ask: None, asvk: None, ark: None },
            )
        })
        .collect();
    for (ei, (e, (report, certs))) in entries.iter().zip(&all).enumerate() {
        let name = e["file"].as_str().unwrap();
        let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap());
        let v = |r: &[u8], c: &SnpCerts| snp::verify_snp(r, c, &ex, &o, at);
        assert!(v(report, certs).is_ok(), "{name} must verify unmutated");
        // every byte of the signed region
        for off in 0..snp::SIGNED_LEN {
            let allowed: &[&str] = match off {
                0..=3 => &["report_version", "signature"],
                0x34..=0x37 => &["signature_algorithm"],
                0x48..=0x4b => &["signing_key", "signing_key_kind", "signature"],
                0x188..=0x18a => &["product", "signature"],
                _ => &["signature"],
            };
            t.check(&format!("{name} [{off:#x}]"), v(&flip(report, off, (off % 8) as u8), certs), allowed);
        }
        // r and s (significant bytes) and their padding, reserved tail
        for off in (0x2A0..0x2A0 + 48).chain(0x2E8..0x2E8 + 48) {
            t.check(&format!("{name} sig[{off:#x}]"), v(&flip(report, off, (off % 8) as u8), certs), &["signature"]);
        }
        for off in (0x2A0 + 48..0x2A0 + 72).chain(0x2E8 + 48..0x2E8 + 72).chain((0x330..snp::REPORT_LEN).step_by(16)) {
            t.check(&format!("{name} pad[{off:#x}]"), v(&flip(report, off, 0), certs), &["reserved"]);
        }
        // truncation / extension
        for len in (0..snp::REPORT_LEN).step_by(37).chain([snp::REPORT_LEN - 1]) {
            t.check(&format!("{name} truncated {len}"), v(&report[..len], certs), &["report_size"]);
        }
        let mut long = report.clone();
        long.push(0);
        t.check(&format!("{name} extended"), v(&long, certs), &["report_size"]);
        // changed TCB / policy
        for (off, label) in [
            (0x180, "tcb bootloader"),
            (0x186, "tcb snp"),
            (0x187, "tcb microcode"),
            (0x08, "policy"),
            (0x0a, "policy smt"),
            (0x0a, "policy debug"),
        ] {
            let mut r = report.clone();
            r[off] = r[off].wrapping_add(if label == "policy debug" { 0x08 } else { 1 });
            t.check(&format!("{name} changed {label}"), v(&r, certs), &["signature"]);
        }
        // other reports' VCEKs
        for (j, (_, oc)) in all.iter().enumerate() {
            if j != ei {
                t.check(
                    &format!("{name} with VCEK {j}"),
                    v(report, oc),
                    &["signature", "product", "not_yet_valid", "expired"],
                );
            }
        }
        // VEK bytes
        let step = if ei == 0 { 3 } else { 29 };
        for k in (0..certs.vek.len()).step_by(step) {
            let mut c = certs.clone();
            c.vek[k] ^= 1 << (k % 8);
            t.check(
                &format!("{name} vek[{k}]"),
                v(report, &c),
                &[
                    "certificate_malformed",
                    "chain_name",
                    "vek_issuer",
                    "chain_signature",
                    "certificate_algorithm",
                    "critical_extension",
                    "vek_extension",
                    "product",
                    "signing_key_kind",
                    "signature",
                    "tcb_binding",
                    "chip_id_binding",
                    "basic_constraints",
                    "key_usage",
                ],
            );
        }
        // wrong ASK / ARK supplied
        let milan = e["product"].as_str().unwrap().starts_with("Milan");
        let (wrong_ask, wrong_ark) = if milan {
            (attestation_verifier::snp::Product::Genoa.ask(), attestation_verifier::snp::Product::Genoa.ark())
        } else {
            (attestation_verifier::snp::Product::Milan.ask(), attestation_verifier::snp::Product::Milan.ark())
        };
        let c = SnpCerts { ask: Some(wrong_ask.to_vec()), ..certs.clone() };
        t.check(&format!("{name} wrong ASK"), v(report, &c), &["vek_issuer"]);
        let c = SnpCerts { ark: Some(wrong_ark.to_vec()), ..certs.clone() };
        t.check(&format!("{name} wrong ARK"), v(report, &c), &["root"]);
        let c = SnpCerts { ask: Some(certs.vek.clone()), ..certs.clone() };
        t.check(&format!("{name} VEK as ASK"), v(report, &c), &["vek_issuer"]);
        // the ASVK where the ASK belongs (a VCEK report chains through the ASK only)
        let asvk = attestation_verifier::snp::Product::Milan.asvk().unwrap().to_vec();
        let c = SnpCerts { ask: Some(asvk.clone()), ..certs.clone() };
        t.check(&format!("{name} ASVK as ASK"), v(report, &c), &["vek_issuer"]);
        // SIGNING_KEY flipped to VLEK with both intermediates supplied
        let c = SnpCerts { asvk: Some(asvk), ..certs.clone() };
        assert!(v(report, &c).is_ok(), "{name} must verify with an ASVK beside it");
        let mut flipped = report.clone();
        flipped[0x48] |= 1 << 2;
        t.check(&format!("{name} flipped to VLEK"), v(&flipped, &c), &["signing_key_kind"]);
        // outside validity
        for also in e["also"].as_array().unwrap() {
            let at = UnixTime::from_secs(also["at"].as_u64().unwrap());
            t.check(
                &format!("{name} at {at:?}"),
                snp::verify_snp(report, certs, &ex, &o, at),
                &["not_yet_valid", "expired"],
            );
        }
    }
}

#[test]
fn mutation_corpus_is_refused_with_the_right_error() {
    let mut t = Tally::default();
    nitro_corpus(&mut t);
    let nitro_cases = t.cases;
    snp_corpus(&mut t);
    println!(
        "mutation corpus: {} cases ({} nitro, {} snp), {} wrong; by class: {:?}",
        t.cases,
        nitro_cases,
        t.cases - nitro_cases,
        t.failures.len(),
        t.by_class
    );
    assert!(t.cases >= 2000, "only {} cases", t.cases);
    assert!(t.failures.is_empty(), "{} failures:\n{}", t.failures.len(), t.failures.join("\n"));
}
