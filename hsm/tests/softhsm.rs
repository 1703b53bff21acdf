//! The owner's keys in a real PKCS#11 token: SoftHSM2, set up here in a temporary token
//! directory. Without SoftHSM2 these tests fail (never skip): run `make test-deps`.
//!
//! All tests share one SoftHSM2 configuration (it is read once per process) and each uses
//! its own token, so they run in parallel.

use cleanroom_hsm::cryptoki::error::{Error as CkError, RvError};
use cleanroom_hsm::cryptoki::mechanism::Mechanism;
use cleanroom_hsm::cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cleanroom_hsm::cryptoki::session::Session;
use cleanroom_hsm::{softhsm, HsmError, KeyKind, Pin, Token};
use ring::{hmac, signature};
use std::path::Path;

const PIN: &str = "user-pin-1234";
/// One token per test, all made before the module is first opened.
const TOKENS: &[&str] = &["hmac-known", "hmac-generated", "hmac-sealed", "ed25519", "unreachable", "debug"];

fn hsm() -> &'static softhsm::SoftHsm {
    softhsm::shared(Path::new(env!("CARGO_TARGET_TMPDIR")), TOKENS, PIN)
        .unwrap_or_else(|e| panic!("SoftHSM2 test setup failed: {e}"))
}

/// This test's token, fresh (labels are unique per test).
fn new_token(label: &str) -> Token {
    assert!(TOKENS.contains(&label), "add {label:?} to TOKENS");
    open(label)
}

fn open(label: &str) -> Token {
    Token::open(hsm().module(), label, &Pin::new(PIN)).unwrap_or_else(|e| panic!("{e}"))
}

fn ring_hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref().try_into().unwrap()
}

/// Create a secret key from known bytes through the raw session (test only).
fn import_secret(
    session: &Session,
    label: &str,
    value: &[u8],
    sensitive: bool,
    extractable: bool,
    derive: bool,
) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(value.to_vec()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(sensitive),
            Attribute::Extractable(extractable),
            Attribute::Derive(derive),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()
}

fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 return code: {other}"),
    }
}

/// The value of `handle` cannot be read: C_GetAttributeValue(CKA_VALUE) returns
/// CKR_ATTRIBUTE_SENSITIVE (reported by cryptoki as `AttributeInfo::Sensitive`).
fn assert_value_unreadable(session: &Session, handle: ObjectHandle) {
    let info = session.get_attribute_info(handle, &[AttributeType::Value]).unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "CKA_VALUE readable: {info:?}");
    let got = session.get_attributes(handle, &[AttributeType::Value]).unwrap();
    assert!(got.is_empty(), "CKA_VALUE returned: {} attributes", got.len());
}

/// Wrapping (exporting encrypted) `handle` under a fresh AES key is refused with
/// CKR_KEY_UNEXTRACTABLE.
fn assert_wrap_refused(session: &Session, handle: ObjectHandle) {
    let wrapper = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32u64.into()),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    for mechanism in [Mechanism::AesKeyWrap, Mechanism::AesKeyWrapPad] {
        let e = session.wrap_key(&mechanism, wrapper, handle).expect_err("wrapping a non-extractable key succeeded");
        assert_eq!(rv(e), RvError::KeyUnextractable);
    }
    session.destroy_object(wrapper).unwrap();
}

fn messages() -> Vec<Vec<u8>> {
    vec![
        Vec::new(),
        b"a".to_vec(),
        b"C00000001".to_vec(),
        [0x5a; 32].to_vec(),
        (0..=255u8).collect(),
        (0..1_000_000u32).map(|i| (i % 251) as u8).collect(),
    ]
}

#[test]
fn hmac_through_the_token_equals_ring_hmac_sha256() {
    let token = new_token("hmac-known");
    let key: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
    import_secret(token.raw_session(), "imported", &key, true, false, false);
    let k = token.find_hmac_key("imported").unwrap();
    assert!(!k.generated_in_token(), "an imported key must not claim to be generated in the token");

    let msgs = messages();
    for m in &msgs {
        assert_eq!(k.hmac(m).unwrap(), ring_hmac(&key, m), "message of {} bytes", m.len());
    }
    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    let many = k.hmac_many(&refs).unwrap();
    assert_eq!(many, msgs.iter().map(|m| ring_hmac(&key, m)).collect::<Vec<_>>());

    // Same framing and key id as the file key store (cleanroom/src/keystore.rs):
    // token(v) = HMAC(key, "cleanroom/token/v1\0" || v), key id = hex(HMAC(key,
    // "cleanroom/key-id/v1")[..8]).
    assert_eq!(k.token(b"C00000001").unwrap(), ring_hmac(&key, b"cleanroom/token/v1\0C00000001"));
    assert_eq!(
        k.tokens(&[b"x", b""]).unwrap(),
        vec![ring_hmac(&key, b"cleanroom/token/v1\0x"), ring_hmac(&key, b"cleanroom/token/v1\0")]
    );
    assert_eq!(k.key_id(), hex::encode(&ring_hmac(&key, b"cleanroom/key-id/v1")[..8]));
}

#[test]
fn generated_key_is_deterministic_and_checked_by_the_token() {
    let label = "hmac-generated";
    let ids: Vec<Vec<u8>> = (0..5u32).map(|i| format!("C{i:08}").into_bytes()).collect();
    let refs: Vec<&[u8]> = ids.iter().map(|v| v.as_slice()).collect();
    let (first, key_id) = {
        let token = new_token(label);
        let k = token.generate_hmac_key("tokenization").unwrap();
        assert!(k.generated_in_token());
        assert_eq!(k.key_id().len(), 16);
        assert_eq!(k.key_id(), hex::encode(&k.hmac(b"cleanroom/key-id/v1").unwrap()[..8]));
        let tokens = k.tokens(&refs).unwrap();
        assert_eq!(tokens, k.tokens(&refs).unwrap(), "same input, same token");
        for (i, a) in tokens.iter().enumerate() {
            for b in &tokens[i + 1..] {
                assert_ne!(a, b, "different inputs gave the same token");
            }
        }
        // Checked by the token (C_Verify), never by exporting the key.
        for (v, t) in ids.iter().zip(&tokens) {
            let mut m = b"cleanroom/token/v1\0".to_vec();
            m.extend_from_slice(v);
            assert!(k.verify(&m, t).unwrap());
            let mut bad = *t;
            bad[31] ^= 1;
            assert!(!k.verify(&m, &bad).unwrap());
            assert!(!k.verify(&m, &t[..16]).unwrap());
        }
        let e = token.generate_hmac_key("tokenization").unwrap_err();
        assert!(matches!(e, HsmError::KeyExists { kind: KeyKind::Tokenization, .. }), "{e}");
        (tokens, k.key_id().to_string())
    };
    // A new session after the first one closed: same key, same tokens, same key id.
    let token = open(label);
    let k = token.find_hmac_key("tokenization").unwrap();
    assert_eq!(k.key_id(), key_id);
    assert_eq!(k.tokens(&refs).unwrap(), first);
    assert!(format!("{k:?}").contains(&key_id));
}

#[test]
fn tokenization_key_cannot_leave_the_token() {
    let token = new_token("hmac-sealed");
    let s = token.raw_session();
    let k = token.generate_hmac_key("tokenization").unwrap();
    let h = k.raw_handle();
    assert_value_unreadable(s, h);
    assert_wrap_refused(s, h);
    // PKCS#11 lets these attributes move only towards safety.
    let e = s.update_attributes(h, &[Attribute::Extractable(true)]).expect_err("made extractable");
    assert_eq!(rv(e), RvError::AttributeReadOnly);
    let e = s.update_attributes(h, &[Attribute::Sensitive(false)]).expect_err("made non-sensitive");
    assert_eq!(rv(e), RvError::AttributeReadOnly);
    let e = s.copy_object(h, &[Attribute::Extractable(true)]).expect_err("extractable copy");
    assert_eq!(rv(e), RvError::AttributeReadOnly);

    // Keys the token would let out are refused by find_hmac_key, with the reason.
    let key = [7u8; 32];
    let refused = |label: &str, why: &str| {
        let e = token.find_hmac_key(label).unwrap_err();
        assert!(matches!(e, HsmError::KeyAttributes { kind: KeyKind::Tokenization, .. }), "{label}: {e}");
        assert!(e.to_string().contains(why), "{label}: {e}");
    };
    import_secret(s, "extractable", &key, true, true, false);
    refused("extractable", "CKA_EXTRACTABLE is true");
    import_secret(s, "readable", &key, false, false, false);
    refused("readable", "CKA_SENSITIVE is false");
    import_secret(s, "derivable", &key, true, false, true);
    refused("derivable", "CKA_DERIVE is true");
    import_secret(s, "short", &[0x0b; 20], true, false, false);
    refused("short", "20 bytes long, not 32");
    // The same key made safely is accepted.
    import_secret(s, "safe", &key, true, false, false);
    assert_eq!(token.find_hmac_key("safe").unwrap().hmac(b"m").unwrap(), ring_hmac(&key, b"m"));

    let e = token.find_hmac_key("absent").unwrap_err();
    assert!(matches!(e, HsmError::KeyNotFound { .. }), "{e}");
    assert_eq!(e.to_string(), "no HMAC tokenization key labelled \"absent\" on token \"hmac-sealed\"");
    import_secret(s, "twice", &key, true, false, false);
    import_secret(s, "twice", &key, true, false, false);
    let e = token.find_hmac_key("twice").unwrap_err();
    assert!(matches!(e, HsmError::AmbiguousKey { count: 2, .. }), "{e}");
}

#[test]
fn ed25519_signs_in_the_token_and_verifies_with_ring() {
    let label = "ed25519";
    let message = b"budget grant: dataset d, provider p, epsilon 1.0";
    let (public, sig) = {
        let token = new_token(label);
        let k = token.generate_ed25519_key("grant-signing").unwrap();
        assert!(k.generated_in_token());
        let public = k.public_key();
        let sig = k.sign(message).unwrap();
        let verifier = signature::UnparsedPublicKey::new(&signature::ED25519, public);
        verifier.verify(message, &sig).expect("token signature verifies with ring");
        let mut flipped = message.to_vec();
        flipped[3] ^= 0x01;
        assert!(verifier.verify(&flipped, &sig).is_err(), "a flipped message bit still verified");
        let mut bad = sig;
        bad[10] ^= 0x80;
        assert!(verifier.verify(message, &bad).is_err(), "a flipped signature bit still verified");
        verifier.verify(b"", &k.sign(b"").unwrap()).unwrap();

        assert_value_unreadable(token.raw_session(), k.raw_private_handle());
        assert_wrap_refused(token.raw_session(), k.raw_private_handle());
        let e = token.generate_ed25519_key("grant-signing").unwrap_err();
        assert!(matches!(e, HsmError::KeyExists { kind: KeyKind::Ed25519, .. }), "{e}");
        (public, sig)
    };
    let token = open(label);
    let k = token.find_ed25519_key("grant-signing").unwrap();
    assert_eq!(k.public_key(), public);
    // Ed25519 is deterministic: the same key signs the same message identically.
    assert_eq!(k.sign(message).unwrap(), sig);
    let e = token.find_ed25519_key("other").unwrap_err();
    assert!(matches!(e, HsmError::KeyNotFound { kind: KeyKind::Ed25519, .. }), "{e}");
}

#[test]
fn unreachable_token_gives_typed_one_line_errors() {
    let label = "unreachable";
    let one_line = |e: &HsmError| {
        let s = e.to_string();
        assert!(!s.contains('\n') && !s.contains(PIN), "{s}");
        s
    };

    let e = Token::open("/nonexistent/libpkcs11.so", label, &Pin::new(PIN)).unwrap_err();
    assert!(matches!(e, HsmError::ModuleLoad { .. }), "{e}");
    assert!(one_line(&e).starts_with("PKCS#11 module /nonexistent/libpkcs11.so: cannot be loaded: "), "{e}");

    // A file that is not a shared library.
    let e = Token::open(hsm().conf(), label, &Pin::new(PIN)).unwrap_err();
    assert!(matches!(e, HsmError::ModuleLoad { .. }), "{e}");
    one_line(&e);

    let e = Token::open(hsm().module(), label, &Pin::new("wrong-pin")).unwrap_err();
    assert!(matches!(e, HsmError::WrongPin { .. }), "{e}");
    assert_eq!(one_line(&e), "wrong PIN for token \"unreachable\"");

    let e = Token::open(hsm().module(), "no-such-token", &Pin::new(PIN)).unwrap_err();
    assert!(matches!(e, HsmError::TokenNotFound { .. }), "{e}");
    let s = one_line(&e);
    assert!(s.starts_with("no token labelled \"no-such-token\" in PKCS#11 module "), "{s}");
    assert!(s.contains("\"unreachable\""), "the message lists the tokens present: {s}");

    // The failed attempts left nothing behind: the right PIN works, once at a time.
    let token = open(label);
    let e = Token::open(hsm().module(), label, &Pin::new(PIN)).unwrap_err();
    assert!(matches!(e, HsmError::TokenInUse { .. }), "{e}");
    one_line(&e);
    drop(token);
    open(label);
}

#[test]
fn secrets_stay_out_of_debug() {
    let token = new_token("debug");
    let pin = Pin::new(PIN);
    let k = token.generate_hmac_key("k").unwrap();
    let e = token.generate_ed25519_key("e").unwrap();
    let dbg = format!("{pin:?} {token:?} {k:?} {e:?}");
    assert!(!dbg.contains(PIN), "{dbg}");
    assert!(
        dbg.contains("<redacted>") && dbg.contains(k.key_id()) && dbg.contains(&hex::encode(e.public_key())),
        "{dbg}"
    );
}
