//! Mutation corpus for the date and BIT STRING rules webpki enforces, generated from the
//! real vectors in ../../shared/testdata/attestation: in every certificate of every Nitro
//! document, and in the VCEK and ASK of every SEV-SNP report, the validity times are
//! rewritten to dates and times that do not exist, and the KeyUsage BIT STRING to
//! malformed ones. Every mutant must be refused as `certificate_malformed` (the
//! certificate is refused while parsing, before its signature is looked at): never
//! accepted, never another class. Prints the count.
//!
//! Without the checks, the calendar mutants (29–31 February, 31 April/June/September/
//! November, 29 February of a non-leap year) and the padding-bit mutants parse: they are
//! then refused only by accident, as `chain_signature`, `root` or `signature`, because the
//! mutation also breaks a signature over those bytes — and a certificate signed with
//! such a field would have been accepted (see `chain::tests` for that case).

use std::path::PathBuf;

use attestation_verifier::snp::{self, Product, SnpCerts};
use attestation_verifier::{verify_nitro, Error, NitroExpectations, Options, UnixTime, Verdict};
use cbor::{Value, Writer};

fn td(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn expected(kind: &str) -> Vec<serde_json::Value> {
    let all: serde_json::Value = serde_json::from_slice(&td("expected.json")).unwrap();
    all.as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

/// A DER element as a tree: just enough to rewrite one field of a certificate and
/// re-encode it with correct (minimal) lengths around it.
#[derive(Debug, Clone, PartialEq)]
enum Der {
    Primitive(u8, Vec<u8>),
    Constructed(u8, Vec<Der>),
}

impl Der {
    fn parse(b: &[u8]) -> (Der, usize) {
        let tag = b[0];
        let (len, header) = match b[1] {
            n if n < 0x80 => (usize::from(n), 2),
            n => {
                let k = usize::from(n & 0x7f);
                (b[2..2 + k].iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)), 2 + k)
            }
        };
        let content = &b[header..header + len];
        let node = if tag & 0x20 != 0 {
            let mut children = Vec::new();
            let mut at = 0;
            while at < content.len() {
                let (child, used) = Der::parse(&content[at..]);
                children.push(child);
                at += used;
            }
            Der::Constructed(tag, children)
        } else {
            Der::Primitive(tag, content.to_vec())
        };
        (node, header + len)
    }

    fn encode(&self) -> Vec<u8> {
        let (tag, content) = match self {
            Der::Primitive(t, c) => (*t, c.clone()),
            Der::Constructed(t, children) => (*t, children.iter().flat_map(Der::encode).collect()),
        };
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend(content);
        out
    }

    fn children_mut(&mut self) -> &mut Vec<Der> {
        match self {
            Der::Constructed(_, c) => c,
            Der::Primitive(..) => panic!("not constructed"),
        }
    }
}

const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];

/// The TBSCertificate's children.
fn tbs(cert: &mut Der) -> &mut Vec<Der> {
    cert.children_mut()[0].children_mut()
}

/// notBefore and notAfter.
fn validity(cert: &mut Der) -> &mut Vec<Der> {
    tbs(cert)
        .iter_mut()
        .find(|d| matches!(d, Der::Constructed(0x30, c) if c.len() == 2 && c.iter().all(|t| matches!(t, Der::Primitive(0x17 | 0x18, _)))))
        .expect("validity")
        .children_mut()
}

/// The KeyUsage extnValue (the DER of its BIT STRING), if the certificate has one.
fn key_usage(cert: &mut Der) -> Option<&mut Vec<u8>> {
    let exts = tbs(cert).iter_mut().find(|d| matches!(d, Der::Constructed(0xa3, _)))?;
    exts.children_mut()[0].children_mut().iter_mut().find_map(|ext| {
        let parts = ext.children_mut();
        if parts[0] != Der::Primitive(0x06, KEY_USAGE.to_vec()) {
            return None;
        }
        match parts.last_mut() {
            Some(Der::Primitive(0x04, value)) => Some(value),
            _ => None,
        }
    })
}

/// Times that do not exist, built from `t` (UTCTime or GeneralizedTime text) so that
/// only the field under test is wrong. (label, new text)
fn impossible_times(t: &[u8]) -> Vec<(String, Vec<u8>)> {
    let y = t.len() - 11; // length of the year part: 2 or 4
    let with = |year: Option<&[u8]>, mmdd: &[u8], hhmmss: Option<&[u8]>| {
        let mut v = t.to_vec();
        if let Some(year) = year {
            v[..y].copy_from_slice(&year[year.len() - y..]);
        }
        v[y..y + 4].copy_from_slice(mmdd);
        if let Some(h) = hhmmss {
            v[y + 4..y + 10].copy_from_slice(h);
        }
        v
    };
    let mut out = Vec::new();
    for mmdd in ["0230", "0231", "0431", "0631", "0931", "1131", "0132", "0100", "1301", "0001"] {
        out.push((format!("date {mmdd}"), with(None, mmdd.as_bytes(), None)));
    }
    // 29 February of a year that is not a leap year
    let non_leap: &[u8] = if y == 2 { b"23" } else { b"2100" };
    out.push(("29 February, not a leap year".into(), with(Some(non_leap), b"0229", None)));
    for hhmmss in ["240000", "236000", "235960", "000060"] {
        out.push((format!("time {hhmmss}"), with(None, b"0115", Some(hhmmss.as_bytes()))));
    }
    out
}

/// Malformed KeyUsage BIT STRINGs built from the original content `[unused, bits…]`.
fn bad_key_usages(content: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    // a padding bit set: the lowest bit of the last byte, declared unused
    let mut padded = content.to_vec();
    padded[0] = padded[0].max(1);
    *padded.last_mut().unwrap() |= 1;
    out.push(("padding bit set".to_owned(), padded));
    for unused in [8u8, 9, 0x80, 0xff] {
        let mut v = content.to_vec();
        v[0] = unused;
        out.push((format!("{unused} unused bits"), v));
    }
    for unused in [1u8, 7] {
        out.push((format!("empty string with {unused} unused bits"), vec![unused]));
    }
    out
}

/// Every mutant of one certificate: (label, mutated DER).
fn mutants(cert_der: &[u8]) -> Vec<(String, Vec<u8>)> {
    let (cert, used) = Der::parse(cert_der);
    assert_eq!(used, cert_der.len());
    assert_eq!(cert.encode(), cert_der, "the test's DER writer must reproduce vendor certificates exactly");
    let mut out = Vec::new();
    for which in 0..2 {
        let mut c = cert.clone();
        let Der::Primitive(tag, original) = validity(&mut c)[which].clone() else { unreachable!() };
        for (label, t) in impossible_times(&original) {
            let mut c = cert.clone();
            validity(&mut c)[which] = Der::Primitive(tag, t);
            out.push((format!("{} {label}", ["notBefore", "notAfter"][which]), c.encode()));
        }
    }
    let mut c = cert.clone();
    if let Some(value) = key_usage(&mut c) {
        let (Der::Primitive(0x03, content), _) = Der::parse(value) else { panic!("KeyUsage is not a BIT STRING") };
        for (label, bits) in bad_key_usages(&content) {
            let mut c = cert.clone();
            *key_usage(&mut c).unwrap() = Der::Primitive(0x03, bits).encode();
            out.push((format!("KeyUsage {label}"), c.encode()));
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    cases: usize,
    key_usage_cases: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: String, r: Result<Verdict, Error>) {
        self.cases += 1;
        if what.contains("KeyUsage") {
            self.key_usage_cases += 1;
        }
        match r {
            Err(e) if e.check() == "certificate_malformed" => {}
            Err(e) => self.failures.push(format!("{what}: {} ({e}), wanted certificate_malformed", e.check())),
            Ok(_) => self.failures.push(format!("{what}: ACCEPTED")),
        }
    }
}

/// The document with one certificate's bytes replaced (the payload is re-encoded, so
/// its signature no longer holds: only the order of the checks keeps that from mattering,
/// and a certificate is parsed before any signature is checked).
fn replace_certificate(doc: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    let items = match cbor::decode(doc).unwrap() {
        Value::Array(items) => items,
        Value::Tag(_, inner) => match *inner {
            Value::Array(items) => items,
            _ => panic!("not COSE_Sign1"),
        },
        _ => panic!("not COSE_Sign1"),
    };
    let Value::Bytes(payload) = &items[2] else { panic!() };
    let Value::Map(entries) = cbor::decode(payload).unwrap() else { panic!() };
    let swap = |v: &Value| if *v == Value::Bytes(old.to_vec()) { Value::Bytes(new.to_vec()) } else { v.clone() };
    let entries: Vec<(Value, Value)> = entries
        .iter()
        .map(|(k, v)| match v {
            Value::Array(certs) => (k.clone(), Value::Array(certs.iter().map(swap).collect())),
            other => (k.clone(), swap(other)),
        })
        .collect();
    let mut w = Writer::new();
    w.array(4).value(&items[0]).value(&items[1]).bytes(&cbor::encode(&Value::Map(entries))).value(&items[3]);
    w.into_bytes()
}

fn nitro_corpus(t: &mut Tally) {
    let o = Options { allow_debug: true, allow_simulated: false, allow_emulated_nsm: false };
    for e in expected("nitro") {
        let name = e["file"].as_str().unwrap();
        let doc = td(name);
        let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap());
        assert!(verify_nitro(&doc, &NitroExpectations::default(), &o, at).is_ok(), "{name} must verify unmutated");
        let parsed = attestation_verifier::nitro::parse_document(&doc).unwrap();
        let mut certs: Vec<(String, Vec<u8>)> =
            parsed.cabundle.iter().enumerate().map(|(i, c)| (format!("cabundle[{i}]"), c.clone())).collect();
        certs.push(("leaf".into(), parsed.certificate.clone()));
        for (label, cert) in certs {
            for (what, mutant) in mutants(&cert) {
                let d = replace_certificate(&doc, &cert, &mutant);
                t.check(format!("{name} {label} {what}"), verify_nitro(&d, &NitroExpectations::default(), &o, at));
            }
        }
    }
}

fn snp_corpus(t: &mut Tally) {
    let o = Options::default();
    for e in expected("snp") {
        let name = e["file"].as_str().unwrap();
        let report = td(name);
        let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap());
        let vek = td(e["vek"].as_str().unwrap());
        let product = if e["product"].as_str().unwrap().starts_with("Milan") { Product::Milan } else { Product::Genoa };
        let certs = SnpCerts { vek: vek.clone(), ask: Some(product.ask().to_vec()), asvk: None, ark: None };
        let v = |c: &SnpCerts| snp::verify_snp(&report, c, &Default::default(), &o, at);
        assert!(v(&certs).is_ok(), "{name} must verify unmutated");
        for (what, mutant) in mutants(&vek) {
            t.check(format!("{name} VEK {what}"), v(&SnpCerts { vek: mutant, ..certs.clone() }));
        }
        for (what, mutant) in mutants(product.ask()) {
            t.check(format!("{name} ASK {what}"), v(&SnpCerts { ask: Some(mutant), ..certs.clone() }));
        }
    }
}

#[test]
fn impossible_dates_and_malformed_key_usage_are_refused_as_malformed() {
    let mut t = Tally::default();
    nitro_corpus(&mut t);
    snp_corpus(&mut t);
    println!("webpki rules corpus: {} cases ({} KeyUsage), {} wrong", t.cases, t.key_usage_cases, t.failures.len());
    assert!(t.cases >= 500, "only {} cases", t.cases);
    assert!(t.key_usage_cases >= 100, "only {} KeyUsage cases", t.key_usage_cases);
    assert!(t.failures.is_empty(), "{} failures:\n{}", t.failures.len(), t.failures.join("\n"));
}
