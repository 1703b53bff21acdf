use std::collections::BTreeMap;

use super::*;
use crate::testdata;
use cbor::{CborError, Writer};

pub(crate) fn docs() -> Vec<(serde_json::Value, Vec<u8>)> {
    testdata::expected("nitro")
        .into_iter()
        .map(|e| {
            let bytes = testdata::read(e["file"].as_str().unwrap());
            (e, bytes)
        })
        .collect()
}

fn at_of(e: &serde_json::Value) -> UnixTime {
    UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap())
}

fn debug_ok() -> Options {
    Options { allow_debug: true, allow_simulated: false, allow_emulated_nsm: false }
}

fn expected_pcrs(e: &serde_json::Value) -> BTreeMap<u16, Vec<u8>> {
    e["pcrs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), hex::decode(v.as_str().unwrap()).unwrap()))
        .collect()
}

#[test]
fn pinned_root_matches_fingerprint() {
    let c = Certificate::parse(AWS_NITRO_ROOT_G1).unwrap();
    assert_eq!(c.sha256(), AWS_NITRO_ROOT_G1_SHA256);
    assert_eq!(AWS_NITRO_ROOT_G1, testdata_root().as_slice());
}

fn testdata_root() -> Vec<u8> {
    let pem = String::from_utf8(testdata::read("nitro/aws_nitro_root_g1.pem")).unwrap();
    crate::der::pem_certificates(&pem).unwrap().remove(0)
}

#[test]
fn every_document_verifies_with_the_listed_fields() {
    let docs = docs();
    assert_eq!(docs.len(), 8);
    for (e, bytes) in &docs {
        let name = e["file"].as_str().unwrap();
        assert_eq!(testdata::sha256_hex(bytes), e["sha256"].as_str().unwrap(), "{name}");
        let pcrs = expected_pcrs(e);
        let expect = NitroExpectations { pcrs: pcrs.clone(), ..Default::default() };
        let v = verify_nitro(bytes, &expect, &debug_ok(), at_of(e)).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(v.platform, Platform::Nitro);
        assert!(!v.simulated);
        assert_eq!(v.module_id.as_deref(), e["module_id"].as_str(), "{name}");
        assert_eq!(v.timestamp, e["timestamp_ms"].as_u64(), "{name}");
        for (i, want) in &pcrs {
            assert_eq!(v.pcrs.get(i), Some(want), "{name} PCR{i}");
        }
        let is_debug = pcrs[&0].iter().all(|b| *b == 0);
        assert_eq!(v.debug, is_debug, "{name}");
        assert!(v.checks_passed.contains(&"signature".to_owned()));
    }
}

#[test]
fn refused_outside_the_validity_window() {
    for (e, bytes) in docs() {
        let name = e["file"].as_str().unwrap();
        let [start, end] = [0, 1].map(|i| e["valid_window_unix"][i].as_u64().unwrap());
        let ex = NitroExpectations::default();
        assert!(verify_nitro(&bytes, &ex, &debug_ok(), UnixTime::from_secs(start)).is_ok(), "{name}");
        assert!(verify_nitro(&bytes, &ex, &debug_ok(), UnixTime::from_secs(end)).is_ok(), "{name}");
        for also in e["also"].as_array().unwrap() {
            let at = UnixTime::from_secs(also["at"].as_u64().unwrap());
            let verdict = also["verdict"].as_str().unwrap();
            let r = verify_nitro(&bytes, &ex, &debug_ok(), at);
            match verdict {
                "invalid: leaf not yet valid" => assert!(
                    matches!(&r, Err(Error::CertificateNotYetValid { role, .. }) if role == "leaf"),
                    "{name}: {r:?}"
                ),
                "invalid: leaf expired" => assert!(
                    matches!(&r, Err(Error::CertificateExpired { role, .. }) if role == "leaf"),
                    "{name}: {r:?}"
                ),
                other => panic!("unknown verdict {other}"),
            }
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(verdict.trim_start_matches("invalid: ")), "{msg}");
        }
    }
}

#[test]
fn debug_documents_need_allow_debug() {
    for (e, bytes) in docs() {
        let debug = expected_pcrs(&e)[&0].iter().all(|b| *b == 0);
        let r = verify_nitro(&bytes, &NitroExpectations::default(), &Options::default(), at_of(&e));
        if debug {
            assert_eq!(r, Err(Error::DebugNotAllowed));
        } else {
            assert!(r.is_ok());
        }
    }
}

#[test]
fn bindings_are_compared() {
    let (e, bytes) = docs().into_iter().find(|(e, _)| e["file"].as_str().unwrap().contains("2022_debug")).unwrap();
    let at = at_of(&e);
    let ok = NitroExpectations {
        public_key: Some(b"my super secret key".to_vec()),
        user_data: Some(b"hello, world!".to_vec()),
        module_id_prefix: Some("i-03ad7cdb817437eeb".into()),
        max_age_ms: Some(1000),
        ..Default::default()
    };
    let v = verify_nitro(&bytes, &ok, &debug_ok(), at).unwrap();
    assert_eq!(v.nonce, None);
    for c in ["public_key", "user_data", "module_id", "max_age"] {
        assert!(v.checks_passed.iter().any(|x| x == c));
    }
    let bad = NitroExpectations { nonce: Some(vec![0; 8]), ..Default::default() };
    assert_eq!(verify_nitro(&bytes, &bad, &debug_ok(), at), Err(Error::NonceMismatch));
    let bad = NitroExpectations { public_key: Some(b"other".to_vec()), ..Default::default() };
    assert_eq!(verify_nitro(&bytes, &bad, &debug_ok(), at), Err(Error::PublicKeyMismatch));
    let bad = NitroExpectations { user_data: Some(b"hello".to_vec()), ..Default::default() };
    assert_eq!(verify_nitro(&bytes, &bad, &debug_ok(), at), Err(Error::UserDataMismatch));
    let mut bad = NitroExpectations::default();
    bad.pcrs.insert(16, vec![0; 48]);
    assert_eq!(verify_nitro(&bytes, &bad, &debug_ok(), at), Err(Error::PcrMissing(16)));
    let mut bad = NitroExpectations::default();
    bad.pcrs.insert(4, vec![0; 48]);
    assert!(matches!(verify_nitro(&bytes, &bad, &debug_ok(), at), Err(Error::PcrMismatch { index: 4, .. })));
    let bad = NitroExpectations { max_age_ms: Some(1000), ..Default::default() };
    assert!(matches!(
        verify_nitro(&bytes, &bad, &debug_ok(), UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap() + 60)),
        Err(Error::TooOld { .. })
    ));
}

/// Decodes the COSE array and payload map of a genuine document.
pub(crate) fn split(doc: &[u8]) -> (Vec<Value>, Vec<(Value, Value)>) {
    let Value::Array(items) = cbor::decode(doc).unwrap() else { panic!() };
    let Value::Bytes(p) = &items[2] else { panic!() };
    let Value::Map(m) = cbor::decode(p).unwrap() else { panic!() };
    (items, m)
}

pub(crate) fn rebuild(items: &[Value], payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(4).value(&items[0]).value(&items[1]).bytes(payload).value(&items[3]);
    w.into_bytes()
}

fn first() -> (serde_json::Value, Vec<u8>) {
    docs().remove(0)
}

#[test]
fn mutations_of_a_real_document() {
    let (e, doc) = first();
    let at = at_of(&e);
    let ex = NitroExpectations::default();
    let o = debug_ok();
    let v = |d: &[u8]| verify_nitro(d, &ex, &o, at);
    // flipped signature byte
    let mut bad = doc.clone();
    let n = bad.len();
    bad[n - 10] ^= 0x01;
    assert_eq!(v(&bad), Err(Error::SignatureInvalid));
    // altered PCR0 byte inside the payload
    let pcr0 = expected_pcrs(&e)[&0].clone();
    let pos = doc.windows(48).position(|w| w == pcr0.as_slice()).unwrap();
    let mut bad = doc.clone();
    bad[pos + 7] ^= 0x80;
    assert_eq!(v(&bad), Err(Error::SignatureInvalid));
    // trailing bytes
    let mut bad = doc.clone();
    bad.extend_from_slice(&[0, 0]);
    assert_eq!(v(&bad), Err(Error::Cbor(CborError::TrailingBytes(2))));
    // truncated
    assert!(matches!(v(&doc[..doc.len() - 1]), Err(Error::Cbor(CborError::LengthTooLarge { .. }))));
    assert_eq!(v(&doc[..0]), Err(Error::Cbor(CborError::Truncated)));
    // expired
    assert!(matches!(
        verify_nitro(&doc, &ex, &o, UnixTime::from_secs(2_000_000_000)),
        Err(Error::CertificateExpired { .. })
    ));
    // tagged COSE_Sign1 (tag 18) is accepted
    let mut tagged = vec![0xd2];
    tagged.extend_from_slice(&doc);
    assert!(v(&tagged).is_ok());
    // another tag is not
    let mut tagged = vec![0xd1];
    tagged.extend_from_slice(&doc);
    assert!(matches!(v(&tagged), Err(Error::CoseStructure(_))));
}

#[test]
fn duplicate_payload_key_refused() {
    let (e, doc) = first();
    let (items, map) = split(&doc);
    let mut w = Writer::new();
    w.map(map.len() + 1);
    for (k, val) in &map {
        w.value(k).value(val);
    }
    w.value(&map[0].0).value(&map[0].1);
    let bad = rebuild(&items, &w.into_bytes());
    assert_eq!(
        verify_nitro(&bad, &NitroExpectations::default(), &debug_ok(), at_of(&e)),
        Err(Error::Cbor(CborError::DuplicateKey))
    );
    // duplicate key in the outer protected header
    let mut w = Writer::new();
    w.map(2).int(1).int(-35).int(1).int(-35);
    let mut items2 = items.clone();
    items2[0] = Value::Bytes(w.into_bytes());
    let Value::Bytes(p) = &items[2] else { panic!() };
    assert_eq!(parse_document(&rebuild(&items2, p)).map(|_| ()), Err(Error::Cbor(CborError::DuplicateKey)));
}

#[test]
fn indefinite_length_reencoding_parses_but_breaks_the_signature() {
    let (e, doc) = first();
    let (items, map) = split(&doc);
    let mut w = Writer::new();
    w.raw(&[0xbf]);
    for (k, val) in &map {
        w.value(k).value(val);
    }
    w.raw(&[0xff]);
    let re = rebuild(&items, &w.into_bytes());
    let parsed = parse_document(&re).unwrap();
    assert_eq!(parsed.claims.module_id, e["module_id"].as_str().unwrap());
    assert_eq!(verify_nitro(&re, &NitroExpectations::default(), &debug_ok(), at_of(&e)), Err(Error::SignatureInvalid));
}

#[test]
fn header_checks() {
    let (_, doc) = first();
    let (items, _) = split(&doc);
    let Value::Bytes(p) = &items[2] else { panic!() };
    let with_header = |h: Vec<u8>| {
        let mut it = items.clone();
        it[0] = Value::Bytes(h);
        parse_document(&rebuild(&it, p)).map(|_| ())
    };
    let mut w = Writer::new();
    w.map(1).int(1).int(-7);
    assert_eq!(with_header(w.into_bytes()), Err(Error::UnsupportedAlgorithm));
    let mut w = Writer::new();
    w.map(2).int(1).int(-35).int(2).array(1).int(99);
    assert!(matches!(with_header(w.into_bytes()), Err(Error::UnexpectedHeader(_))));
    let mut w = Writer::new();
    w.map(2).int(1).int(-35).int(4).bytes(b"kid");
    assert!(matches!(with_header(w.into_bytes()), Err(Error::UnexpectedHeader(_))));
    let mut w = Writer::new();
    w.map(0);
    assert_eq!(with_header(w.into_bytes()), Err(Error::UnsupportedAlgorithm));
    // non-empty unprotected header
    let mut it = items.clone();
    it[1] = Value::Map(vec![(Value::Unsigned(4), Value::Bytes(vec![1]))]);
    assert!(matches!(parse_document(&rebuild(&it, p)), Err(Error::UnexpectedHeader(_))));
}

fn with_payload_entry(doc: &[u8], key: &str, new: Option<Value>) -> Vec<u8> {
    let (items, map) = split(doc);
    let mut m: Vec<(Value, Value)> = map.into_iter().filter(|(k, _)| *k != Value::Text(key.into())).collect();
    if let Some(v) = new {
        m.push((Value::Text(key.into()), v));
    }
    rebuild(&items, &cbor::encode(&Value::Map(m)))
}

#[test]
fn payload_field_checks() {
    let (_, doc) = first();
    let p = |d: Vec<u8>| parse_document(&d).map(|_| ());
    assert_eq!(p(with_payload_entry(&doc, "module_id", None)), Err(Error::MissingField("module_id")));
    assert_eq!(p(with_payload_entry(&doc, "certificate", None)), Err(Error::MissingField("certificate")));
    assert!(matches!(
        p(with_payload_entry(&doc, "timestamp", Some(Value::Text("x".into())))),
        Err(Error::WrongFieldType { field: "timestamp", .. })
    ));
    assert!(matches!(
        p(with_payload_entry(&doc, "digest", Some(Value::Text("SHA256".into())))),
        Err(Error::UnsupportedDigest(_))
    ));
    assert!(matches!(
        p(with_payload_entry(&doc, "nonce", Some(Value::Bytes(vec![0; 5000])))),
        Err(Error::FieldSize { field: "nonce", .. })
    ));
    assert!(matches!(p(with_payload_entry(&doc, "extra", Some(Value::Null))), Err(Error::UnknownField(_))));
    assert_eq!(p(with_payload_entry(&doc, "cabundle", Some(Value::Array(vec![])))), Err(Error::CabundleLength(0)));
    assert!(matches!(
        p(with_payload_entry(&doc, "pcrs", Some(Value::Map(vec![(Value::Unsigned(0), Value::Bytes(vec![0; 32]))])))),
        Err(Error::FieldSize { field: "pcr value", .. })
    ));
    assert!(matches!(p(with_payload_entry(&doc, "certificate", Some(Value::Bytes(vec![0x30, 0x00])))), Ok(())));
    // null nonce is the same as absent
    assert!(p(with_payload_entry(&doc, "nonce", Some(Value::Null))).is_ok());
    assert!(p(with_payload_entry(&doc, "nonce", None)).is_ok());
    assert!(p(with_payload_entry(&doc, "nonce", Some(Value::Unsigned(1)))).is_err());
    let big = vec![0u8; MAX_DOC_LEN + 1];
    assert!(matches!(parse_document(&big), Err(Error::InputTooLarge { .. })));
}

#[test]
fn chain_checks() {
    let (e, doc) = first();
    let at = at_of(&e);
    let (items, map) = split(&doc);
    let get = |k: &str| map.iter().find(|(kk, _)| *kk == Value::Text(k.into())).unwrap().1.clone();
    let Value::Array(bundle) = get("cabundle") else { panic!() };
    let rebuild_with = |bundle: Vec<Value>, leaf: Value| {
        let m: Vec<(Value, Value)> = map
            .iter()
            .map(|(k, v)| match k {
                Value::Text(t) if t == "cabundle" => (k.clone(), Value::Array(bundle.clone())),
                Value::Text(t) if t == "certificate" => (k.clone(), leaf.clone()),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        rebuild(&items, &cbor::encode(&Value::Map(m)))
    };
    let x = |d: Vec<u8>| extract_claims(&d, at).map(|_| ());
    // root not pinned: drop the root
    assert_eq!(
        x(rebuild_with(bundle[1..].to_vec(), get("certificate"))),
        Err(Error::UntrustedRoot("AWS Nitro Enclaves"))
    );
    // swapped intermediates
    let mut swapped = bundle.clone();
    swapped.swap(1, 2);
    assert!(matches!(x(rebuild_with(swapped, get("certificate"))), Err(Error::ChainNameMismatch { .. })));
    // missing intermediate
    let mut missing = bundle.clone();
    missing.remove(3);
    assert!(
        matches!(x(rebuild_with(missing, get("certificate"))), Err(Error::ChainNameMismatch { role }) if role == "leaf")
    );
    // leaf replaced by an intermediate (which is a CA, subject mismatch)
    assert!(matches!(x(rebuild_with(bundle.clone(), bundle[2].clone())), Err(Error::ChainNameMismatch { .. })));
    // corrupted certificate signature byte in intermediate 2
    let Value::Bytes(mut c2) = bundle[2].clone() else { panic!() };
    let l = c2.len();
    c2[l - 3] ^= 1;
    let mut b2 = bundle.clone();
    b2[2] = Value::Bytes(c2);
    assert!(matches!(
        x(rebuild_with(b2, get("certificate"))),
        Err(Error::ChainSignatureInvalid { role }) if role == "intermediate 2"
    ));
    // garbage certificate
    assert!(matches!(
        x(rebuild_with(bundle.clone(), Value::Bytes(vec![0x30, 0x03, 0x02, 0x01, 0x00]))),
        Err(Error::CertificateMalformed { .. })
    ));
    // unchanged chain, re-encoded payload: the writer reproduces NSM's bytes exactly
    assert_eq!(x(rebuild_with(bundle.clone(), get("certificate"))), Ok(()));
    // a different pinned root
    assert_eq!(extract_claims_with_root(&doc, &[0; 32], at), Err(Error::UntrustedRoot("AWS Nitro Enclaves")));
}

#[test]
fn valid_signature_by_a_different_key_is_refused() {
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
    let (e, doc) = first();
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let (mut items, _) = split(&doc);
    let (Value::Bytes(prot), Value::Bytes(payload)) = (&items[0], &items[2]) else { panic!() };
    let sig = kp.sign(&rng, &cose::sig_structure(prot, payload)).unwrap();
    items[3] = Value::Bytes(sig.as_ref().to_vec());
    let forged = cbor::encode(&Value::Array(items));
    assert_eq!(
        verify_nitro(&forged, &NitroExpectations::default(), &debug_ok(), at_of(&e)),
        Err(Error::SignatureInvalid)
    );
}

#[test]
fn every_truncation_is_refused_without_panic() {
    let (e, doc) = first();
    for n in 0..doc.len() {
        assert!(verify_nitro(&doc[..n], &NitroExpectations::default(), &debug_ok(), at_of(&e)).is_err());
    }
}

#[test]
fn cached_verification_gives_the_same_verdicts() {
    let cache = SignatureCache::new();
    for (e, bytes) in docs() {
        let at = at_of(&e);
        let a = verify_nitro(&bytes, &NitroExpectations::default(), &debug_ok(), at);
        let b = verify_nitro_cached(&bytes, &NitroExpectations::default(), &debug_ok(), at, &cache);
        let c = verify_nitro_cached(&bytes, &NitroExpectations::default(), &debug_ok(), at, &cache);
        assert_eq!(a, b);
        assert_eq!(b, c);
        // still refused outside the window and with a flipped signature, even when cached
        let late = UnixTime::from_secs(e["valid_window_unix"][1].as_u64().unwrap() + 1);
        assert!(matches!(
            verify_nitro_cached(&bytes, &NitroExpectations::default(), &debug_ok(), late, &cache),
            Err(Error::CertificateExpired { .. })
        ));
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            verify_nitro_cached(&bad, &NitroExpectations::default(), &debug_ok(), at, &cache),
            Err(Error::SignatureInvalid)
        );
    }
    assert!(cache.len() >= 8);
    // a flipped byte in a CA certificate is not masked by the cache
    let (e, doc) = first();
    let parsed = parse_document(&doc).unwrap();
    let c2 = &parsed.cabundle[2];
    let off = doc.windows(c2.len()).position(|w| w == c2.as_slice()).unwrap();
    let mut bad = doc.clone();
    bad[off + c2.len() - 5] ^= 1;
    assert!(matches!(
        verify_nitro_cached(&bad, &NitroExpectations::default(), &debug_ok(), at_of(&e), &cache),
        Err(Error::ChainSignatureInvalid { .. })
    ));
}
