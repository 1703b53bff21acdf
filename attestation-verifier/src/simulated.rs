//! **Insecure** simulated evidence for development and CI.
//!
//! The enclave's `simulated` platform produces this instead of a Nitro or SNP
//! document. It carries the same claim set as a Nitro document (module_id,
//! timestamp, digest, pcrs, nonce, user_data, public_key) so the rest of the
//! system can be exercised end to end on any laptop.
//!
//! # Why it proves nothing
//!
//! It is signed with Ed25519 using a key derived from the seed `DEV_KEY_SEED`,
//! which is published **on purpose** in this source file. Anyone can produce a
//! valid simulated document with any claims. It exists so that development paths
//! are exercised with real parsing and real signature checks, never so that
//! anything is trusted.
//!
//! # Issuing needs the `simulated-issuer` feature
//!
//! Verifying ([`verify_simulated`], [`parse_document`], [`extract_claims`]) needs
//! only the public key [`DEV_PUBLIC_KEY`]. Issuing (`issue_simulated`,
//! `DEV_KEY_SEED`) is compiled only with the `simulated-issuer` feature, which
//! the enclave's `simulated` platform and tests enable: a client that only
//! verifies does not carry a forging tool.
//!
//! # How it can never pass for real evidence
//!
//! - it is a COSE_Sign1 whose protected header is `{1: -8 (EdDSA), 3:
//!   "application/vnd.cleanroom.simulated-attestation+cbor; insecure"}`; the
//!   Nitro verifier requires exactly `{1: -35}` and refuses it;
//! - the payload says `"simulated": true` and carries a `"warning"` text, and
//!   has no certificate chain;
//! - [`verify_simulated`] refuses it with [`Error::SimulatedNotAllowed`] unless
//!   the caller sets [`Options::allow_simulated`], and every [`Verdict`] it
//!   returns has `simulated: true` and a `warning`.
//!
//! Checks, in order: `simulated_allowed`, `cose_structure`,
//! `protected_header`, `payload_fields`, `signature` (development key), then
//! the claim checks of [`crate::policy`].

use cbor::Value;
#[cfg(feature = "simulated-issuer")]
use cbor::Writer;
#[cfg(feature = "simulated-issuer")]
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::cose::{self, ALG_EDDSA, HDR_CONTENT_TYPE};
use crate::crypto::{self, Alg};
use crate::{fields, policy, Claims, Error, NitroExpectations, Options, Platform, UnixTime, Verdict};

/// The PUBLISHED seed of the development signing key. Not a secret: anyone can
/// forge simulated evidence with it, which is the point.
#[cfg(feature = "simulated-issuer")]
pub const DEV_KEY_SEED: [u8; 32] = *b"cleanroom-simulated-INSECURE-v1!";

/// The Ed25519 public key of the development key (derived from the published seed).
pub const DEV_PUBLIC_KEY: [u8; 32] = [
    0x1a, 0xe7, 0x27, 0x26, 0x14, 0x50, 0x04, 0xb2, 0x24, 0x3b, 0xa5, 0xc3, 0xd5, 0x8e, 0x77, 0xdb, 0xce, 0x52, 0x41,
    0xa7, 0x8d, 0x79, 0xd6, 0xec, 0xc3, 0x8b, 0x3a, 0x57, 0x0b, 0xc1, 0x16, 0x93,
];

/// Content type placed in the protected header of every simulated document.
pub const CONTENT_TYPE: &str = "application/vnd.cleanroom.simulated-attestation+cbor; insecure";

/// The warning carried in every simulated document and verdict.
pub const WARNING: &str = "SIMULATED EVIDENCE: signed with a published development key; \
anyone can forge it. It proves nothing about the code that produced it. \
Never release real data or keys on it.";

/// Largest simulated document accepted.
pub const MAX_DOC_LEN: usize = 16 * 1024;

const PAYLOAD_KEYS: &[&str] =
    &["simulated", "warning", "module_id", "digest", "timestamp", "pcrs", "public_key", "user_data", "nonce"];

#[cfg(feature = "simulated-issuer")]
fn dev_key() -> Ed25519KeyPair {
    // The seed is a constant of the right length, so this cannot fail.
    Ed25519KeyPair::from_seed_unchecked(&DEV_KEY_SEED).expect("32-byte seed is always accepted")
}

/// The development public key (32 bytes), derived from [`DEV_KEY_SEED`]; equals
/// [`DEV_PUBLIC_KEY`].
#[cfg(feature = "simulated-issuer")]
pub fn dev_public_key() -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(dev_key().public_key().as_ref());
    out
}

#[cfg(feature = "simulated-issuer")]
fn protected_header() -> Vec<u8> {
    let mut w = Writer::new();
    w.map(2).int(1).int(-8).int(3).text(CONTENT_TYPE);
    w.into_bytes()
}

/// Issues a simulated attestation document with these claims, signed by the
/// published development key. INSECURE by design: see the module docs.
///
/// The claims are encoded as given (the verifier, not the issuer, enforces
/// sizes), with the map keys in NSM's order. Needs the `simulated-issuer` feature.
#[cfg(feature = "simulated-issuer")]
pub fn issue_simulated(claims: &Claims) -> Vec<u8> {
    let mut p = Writer::new();
    p.map(9)
        .text("simulated")
        .bool(true)
        .text("warning")
        .text(WARNING)
        .text("module_id")
        .text(&claims.module_id)
        .text("digest")
        .text(&claims.digest)
        .text("timestamp")
        .uint(claims.timestamp)
        .text("pcrs")
        .map(claims.pcrs.len());
    for (i, v) in &claims.pcrs {
        p.uint(u64::from(*i)).bytes(v);
    }
    p.text("public_key")
        .opt_bytes(claims.public_key.as_deref())
        .text("user_data")
        .opt_bytes(claims.user_data.as_deref())
        .text("nonce")
        .opt_bytes(claims.nonce.as_deref());
    let payload = p.into_bytes();
    let protected = protected_header();
    let sig = dev_key().sign(&cose::sig_structure(&protected, &payload));
    cbor::cose::encode_sign1(&protected, &payload, sig.as_ref(), true)
}

/// A strictly parsed, *not yet verified* simulated document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedDocument {
    /// The claims in the payload.
    pub claims: Claims,
    /// Protected header bytes (signed).
    pub protected: Vec<u8>,
    /// Payload bytes (signed).
    pub payload: Vec<u8>,
    /// Ed25519 signature.
    pub signature: Vec<u8>,
}

/// Strict parsing only (no signature check); use for inspection.
pub fn parse_document(doc: &[u8]) -> Result<SimulatedDocument, Error> {
    if doc.len() > MAX_DOC_LEN {
        return Err(Error::InputTooLarge { len: doc.len(), max: MAX_DOC_LEN });
    }
    let c = cose::parse(doc)?;
    let ct = Value::Text(CONTENT_TYPE.to_owned());
    cose::check_protected(&c.protected_map, ALG_EDDSA, &[(HDR_CONTENT_TYPE, &ct)]).map_err(|e| match e {
        // An ES384 header here means a Nitro document was handed to the simulated verifier.
        Error::UnsupportedAlgorithm => Error::WrongPlatform { expected: Platform::Simulated },
        other => other,
    })?;
    let payload = cbor::decode(&c.payload)?;
    let Value::Map(entries) = &payload else {
        return Err(Error::WrongFieldType { field: "payload", expected: "map" });
    };
    fields::only_known_keys(entries, PAYLOAD_KEYS)?;
    match payload.map_get_text("simulated") {
        Some(Value::Bool(true)) => {}
        Some(_) => return Err(Error::WrongFieldType { field: "simulated", expected: "true" }),
        None => return Err(Error::MissingField("simulated")),
    }
    let claims = fields::claims(&payload)?;
    if c.signature.len() != 64 {
        return Err(Error::FieldSize { field: "signature", len: c.signature.len() });
    }
    Ok(SimulatedDocument { claims, protected: c.protected, payload: c.payload, signature: c.signature })
}

/// Parses and checks the signature of a simulated document and returns its claims,
/// without applying any expectation or the `allow_simulated` switch.
pub fn extract_claims(doc: &[u8]) -> Result<Claims, Error> {
    let d = parse_document(doc)?;
    crypto::verify(Alg::Ed25519, &DEV_PUBLIC_KEY, &cose::sig_structure(&d.protected, &d.payload), &d.signature)
        .map_err(|_| Error::SignatureInvalid)?;
    Ok(d.claims)
}

/// Verifies simulated evidence. Refused with [`Error::SimulatedNotAllowed`]
/// unless `opts.allow_simulated`; the verdict always says `simulated: true`.
pub fn verify_simulated(
    doc: &[u8],
    expect: &NitroExpectations,
    opts: &Options,
    at: UnixTime,
) -> Result<Verdict, Error> {
    if !opts.allow_simulated {
        return Err(Error::SimulatedNotAllowed);
    }
    let mut checks = vec!["simulated_allowed".to_owned()];
    let claims = extract_claims(doc)?;
    checks
        .extend(["cose_structure", "protected_header", "payload_fields", "signature"].iter().map(|s| (*s).to_owned()));
    policy::check_claims(&claims, expect, opts, at, &mut checks)?;
    Ok(Verdict::from_claims(Platform::Simulated, claims, checks))
}

#[cfg(all(test, feature = "simulated-issuer"))]
mod tests {
    use super::*;

    const T: u64 = 1_765_000_000_000;

    fn sample() -> Claims {
        let mut c = Claims::new("sim-enclave-1", T);
        for i in [0u16, 1, 2, 3, 4, 8, 16] {
            c.pcrs.insert(i, vec![i as u8 + 1; 48]);
        }
        c.nonce = Some(b"fresh nonce".to_vec());
        c.user_data = Some(b"policy digest".to_vec());
        c.public_key = Some(vec![7; 65]);
        c
    }

    fn allow() -> Options {
        Options { allow_simulated: true, allow_debug: false, allow_emulated_nsm: false }
    }

    #[test]
    fn round_trip_verifies_and_says_simulated() {
        let c = sample();
        let doc = issue_simulated(&c);
        let e = NitroExpectations {
            pcrs: c.pcrs.clone(),
            nonce: c.nonce.clone(),
            public_key: c.public_key.clone(),
            max_age_ms: Some(60_000),
            ..Default::default()
        };
        let v = verify_simulated(&doc, &e, &allow(), UnixTime::from_millis(T + 10)).unwrap();
        assert!(v.simulated);
        assert_eq!(v.platform, Platform::Simulated);
        assert!(v.warning.as_deref().unwrap().contains("SIMULATED"));
        assert_eq!(v.pcrs, c.pcrs);
        assert_eq!(v.module_id.as_deref(), Some("sim-enclave-1"));
        assert_eq!(v.timestamp, Some(T));
        assert!(v.checks_passed.contains(&"signature".to_owned()));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["simulated"], true);
        assert_eq!(json["platform"], "simulated");
        // through the dispatcher too
        let e = crate::Expectations::Nitro(e);
        let v2 = crate::verify_evidence(Platform::Simulated, &doc, &e, &allow(), UnixTime::from_millis(T)).unwrap();
        assert!(v2.simulated);
    }

    #[test]
    fn issuing_is_deterministic_and_key_is_published() {
        let c = sample();
        assert_eq!(issue_simulated(&c), issue_simulated(&c));
        assert_eq!(dev_public_key(), DEV_PUBLIC_KEY);
    }

    #[test]
    fn refused_unless_allowed() {
        let doc = issue_simulated(&sample());
        let r = verify_simulated(&doc, &NitroExpectations::default(), &Options::default(), UnixTime::from_millis(T));
        assert_eq!(r, Err(Error::SimulatedNotAllowed));
        let r = crate::verify_evidence(
            Platform::Simulated,
            &doc,
            &crate::Expectations::Nitro(NitroExpectations::default()),
            &Options::default(),
            UnixTime::from_millis(T),
        );
        assert_eq!(r, Err(Error::SimulatedNotAllowed));
    }

    #[test]
    fn never_accepted_as_nitro() {
        let doc = issue_simulated(&sample());
        let o = Options { allow_simulated: true, allow_debug: true, allow_emulated_nsm: false };
        let e = crate::Expectations::Nitro(NitroExpectations::default());
        let r = crate::verify_evidence(Platform::Nitro, &doc, &e, &o, UnixTime::from_millis(T));
        assert!(r.is_err());
        assert!(matches!(r, Err(Error::UnsupportedAlgorithm) | Err(Error::WrongPlatform { .. })));
    }

    #[test]
    fn nitro_document_is_not_simulated() {
        let nitro = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/testdata/attestation/nitro/nitro_evervault_2022_signed.cbor"
        ))
        .unwrap();
        assert_eq!(
            verify_simulated(&nitro, &NitroExpectations::default(), &allow(), UnixTime::from_millis(T)),
            Err(Error::WrongPlatform { expected: Platform::Simulated })
        );
    }

    #[test]
    fn tampering_is_detected() {
        let doc = issue_simulated(&sample());
        let o = allow();
        let at = UnixTime::from_millis(T);
        let e = NitroExpectations::default();
        // flipped signature byte
        let mut bad = doc.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(verify_simulated(&bad, &e, &o, at), Err(Error::SignatureInvalid));
        // altered PCR value: find PCR0's 48 bytes of 0x01 and change one
        let mut bad = doc.clone();
        let pos = bad.windows(48).position(|w| w.iter().all(|b| *b == 1)).unwrap();
        bad[pos] = 0x55;
        assert_eq!(verify_simulated(&bad, &e, &o, at), Err(Error::SignatureInvalid));
        // trailing bytes
        let mut bad = doc.clone();
        bad.push(0);
        assert_eq!(verify_simulated(&bad, &e, &o, at), Err(Error::Cbor(cbor::CborError::TrailingBytes(1))));
        // truncation
        assert!(matches!(verify_simulated(&doc[..doc.len() - 1], &e, &o, at), Err(Error::Cbor(_))));
        // too large
        let big = vec![0u8; MAX_DOC_LEN + 1];
        assert!(matches!(verify_simulated(&big, &e, &o, at), Err(Error::InputTooLarge { .. })));
    }

    #[test]
    fn expectations_apply() {
        let c = sample();
        let doc = issue_simulated(&c);
        let mut e = NitroExpectations::default();
        e.pcrs.insert(0, vec![0xee; 48]);
        assert!(matches!(
            verify_simulated(&doc, &e, &allow(), UnixTime::from_millis(T)),
            Err(Error::PcrMismatch { index: 0, .. })
        ));
        let e = NitroExpectations { max_age_ms: Some(1000), ..Default::default() };
        assert!(matches!(
            verify_simulated(&doc, &e, &allow(), UnixTime::from_millis(T + 5000)),
            Err(Error::TooOld { .. })
        ));
    }

    #[test]
    fn debug_simulated_needs_allow_debug() {
        let mut c = sample();
        for i in 0..3 {
            c.pcrs.insert(i, vec![0; 48]);
        }
        let doc = issue_simulated(&c);
        let at = UnixTime::from_millis(T);
        assert_eq!(verify_simulated(&doc, &NitroExpectations::default(), &allow(), at), Err(Error::DebugNotAllowed));
        let o = Options { allow_simulated: true, allow_debug: true, allow_emulated_nsm: false };
        assert!(verify_simulated(&doc, &NitroExpectations::default(), &o, at).unwrap().debug);
    }

    #[test]
    fn bad_claims_are_refused_by_the_verifier() {
        let at = UnixTime::from_millis(T);
        let mut c = sample();
        c.pcrs.insert(5, vec![1; 47]);
        assert!(matches!(
            verify_simulated(&issue_simulated(&c), &NitroExpectations::default(), &allow(), at),
            Err(Error::FieldSize { field: "pcr value", .. })
        ));
        let mut c = sample();
        c.digest = "SHA256".into();
        assert!(matches!(
            verify_simulated(&issue_simulated(&c), &NitroExpectations::default(), &allow(), at),
            Err(Error::UnsupportedDigest(_))
        ));
        let mut c = sample();
        c.pcrs.insert(40, vec![1; 48]);
        assert!(matches!(
            verify_simulated(&issue_simulated(&c), &NitroExpectations::default(), &allow(), at),
            Err(Error::FieldSize { field: "pcrs index", .. })
        ));
        let mut c = sample();
        c.nonce = Some(vec![0; 2000]);
        assert!(matches!(
            verify_simulated(&issue_simulated(&c), &NitroExpectations::default(), &allow(), at),
            Err(Error::FieldSize { field: "nonce", .. })
        ));
    }
}
