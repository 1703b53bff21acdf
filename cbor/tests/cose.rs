//! COSE_Sign1: the Sig_structure, the envelope writer, and the strict shape check.

use std::path::PathBuf;

use cbor::cose::{self, CoseError, Sign1, ALG_EDDSA, ALG_ES384, TAG_COSE_SIGN1};
use cbor::{decode, CborError, Value, Writer};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

const ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];

#[test]
fn sig_structure_is_the_rfc_9052_array() {
    // ["Signature1", h'a1013822', h'', h'0102']
    assert_eq!(cose::sig_structure(&ES384, &[1, 2]), hex("84 6a5369676e617475726531 44a1013822 40 420102"));
    // lengths use their shortest heads
    let s = cose::sig_structure(&[], &[0; 300]);
    assert_eq!(&s[..17], &hex("84 6a5369676e617475726531 40 40 59012c")[..]);
}

#[test]
fn encode_then_parse() {
    for tagged in [false, true] {
        let bytes = cose::encode_sign1(&ES384, b"payload", &[5; 96], tagged);
        assert_eq!(bytes[0], if tagged { 0xd2 } else { 0x84 });
        let s = Sign1::parse(&bytes).unwrap();
        assert_eq!(s.tagged, tagged);
        assert_eq!(s.protected, ES384);
        assert_eq!(s.protected_map, vec![(Value::Unsigned(1), Value::Negative(34))]);
        assert!(s.unprotected.is_empty());
        assert_eq!(s.payload, b"payload");
        assert_eq!(s.signature, vec![5; 96]);
        assert_eq!(s.alg(), Some(ALG_ES384));
        assert_eq!(s.to_be_signed(), cose::sig_structure(&ES384, b"payload"));
    }
}

#[test]
fn signed_bytes_are_kept_as_received() {
    // a non-canonical protected header ({1: -35} with a 2-byte int) is kept verbatim:
    // the signature must cover what was sent, not a re-encoding
    let protected = hex("a1 01 390022");
    let bytes = cose::encode_sign1(&protected, &hex("bf ff"), &[], false);
    let s = Sign1::parse(&bytes).unwrap();
    assert_eq!(s.protected, protected);
    assert_eq!(s.payload, hex("bfff"));
    assert_eq!(s.alg(), Some(ALG_ES384));
    assert_eq!(s.to_be_signed(), cose::sig_structure(&protected, &hex("bfff")));
}

#[test]
fn genuine_nitro_document_parses() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/attestation/nitro/nitro_evervault_2022_signed.cbor");
    let doc = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let s = Sign1::parse(&doc).unwrap();
    assert_eq!(s.alg(), Some(ALG_ES384));
    assert_eq!(s.signature.len(), 96);
    assert!(decode(&s.payload).unwrap().map_get_text("module_id").is_some());
}

#[test]
fn shapes_that_are_not_cose_sign1() {
    let st = |b: &[u8]| Sign1::parse(b).unwrap_err();
    let mut w = Writer::new();
    w.tag(TAG_COSE_SIGN1).map(0);
    assert_eq!(st(&w.into_bytes()), CoseError::Structure("tag 18 does not wrap an array"));
    let mut w = Writer::new();
    w.tag(98).array(0);
    assert_eq!(st(&w.into_bytes()), CoseError::Structure("unexpected CBOR tag (not COSE_Sign1)"));
    assert_eq!(st(&hex("a0")), CoseError::Structure("not an array"));
    assert_eq!(st(&hex("83 40 a0 40")), CoseError::Structure("array does not have 4 elements"));
    assert_eq!(st(&hex("84 a0 a0 40 40")), CoseError::Structure("protected header is not a byte string"));
    assert_eq!(st(&hex("84 4180 a0 40 40")), CoseError::Structure("protected header is not a map"));
    assert_eq!(st(&hex("84 41a0 80 40 40")), CoseError::Structure("unprotected header is not a map"));
    assert_eq!(st(&hex("84 41a0 a0 f6 40")), CoseError::Structure("payload is not an attached byte string"));
    assert_eq!(st(&hex("84 41a0 a0 40 80")), CoseError::Structure("signature is not a byte string"));
    // CBOR errors of the envelope and of the protected header come through as such
    assert_eq!(st(&hex("84 41a0 a0 40")), CoseError::Cbor(CborError::Truncated));
    assert_eq!(st(&hex("84 42a000 a0 40 40")), CoseError::Cbor(CborError::TrailingBytes(1)));
    // an empty protected byte string is not a map either
    assert_eq!(st(&hex("84 40 a0 40 40")), CoseError::Cbor(CborError::Truncated));
    // non-empty unprotected headers are the caller's policy: the shape is fine
    let s = Sign1::parse(&hex("84 41a0 a1 0401 40 40")).unwrap();
    assert_eq!(s.unprotected, vec![(Value::Unsigned(4), Value::Unsigned(1))]);
    assert_eq!(s.alg(), None);
}

#[test]
fn alg_reads_label_1_only() {
    let mut w = Writer::new();
    w.map(2).int(3).text("x").int(1).int(ALG_EDDSA as i64);
    let p = w.into_bytes();
    assert_eq!(Sign1::parse(&cose::encode_sign1(&p, &[], &[], true)).unwrap().alg(), Some(ALG_EDDSA));
    let mut w = Writer::new();
    w.map(1).int(1).text("ES384");
    let p = w.into_bytes();
    assert_eq!(Sign1::parse(&cose::encode_sign1(&p, &[], &[], true)).unwrap().alg(), None);
}

#[test]
fn every_truncation_of_an_envelope_is_an_error() {
    let bytes = cose::encode_sign1(&ES384, &[3; 200], &[4; 96], true);
    for n in 0..bytes.len() {
        assert!(matches!(Sign1::parse(&bytes[..n]), Err(CoseError::Cbor(_))), "{n}");
    }
}
