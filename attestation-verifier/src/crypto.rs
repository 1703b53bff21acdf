//! The verifier's one door to cryptography: the signature checks and the SHA-256 digests
//! every other module uses. Which library does the work is a build choice:
//!
//! - **ring** (default): what the enclave image links.
//! - **aws-lc-rs** (feature `aws-lc`): AWS-LC, whose P-384 verification is several times
//!   faster; for the owner's and auditor's tools, where a cold verification is on the
//!   critical path. Not the AWS SDK and not OpenSSL.
//!
//! Both backends are written once (the [`backend!`] macro below) against the API the two
//! crates share, so they name the same algorithm constants. What the libraries disagree on
//! is decided here, before either is called: ring takes a P-384 key only as an
//! uncompressed SEC1 point and an RSA key only as a PKCS#1 `RSAPublicKey`, while aws-lc-rs
//! also takes compressed points and SubjectPublicKeyInfo wrappers. The door accepts exactly
//! ring's forms for both, so the verdict never depends on the backend
//! (`tests/backends_agree.rs` checks that on the real vectors and their mutations).

use crate::der::{self, tag};

/// A signature scheme the verifier accepts somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    /// ECDSA P-384 / SHA-384, DER `Ecdsa-Sig-Value` (certificates).
    EcdsaP384Sha384Der,
    /// ECDSA P-384 / SHA-256, DER `Ecdsa-Sig-Value` (certificates).
    EcdsaP384Sha256Der,
    /// ECDSA P-384 / SHA-384, fixed 96-byte r‖s (COSE ES384, SEV-SNP reports).
    EcdsaP384Sha384Fixed,
    /// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt, 2048–8192-bit keys (AMD ARK/ASK).
    RsaPssSha384,
    /// Ed25519 (the simulated platform's development key).
    Ed25519,
}

/// The signature does not verify, or the key is not in the form the scheme takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadSignature;

/// One implementation of the primitives.
pub(crate) trait Backend: Sync {
    /// Name printed by tools and benches.
    fn name(&self) -> &'static str;
    /// Whether `sig` is `alg`'s signature of `msg` under `public_key`.
    fn verify(&self, alg: Alg, public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool;
    /// SHA-256 of the concatenation of `parts`.
    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32];
}

/// Writes a [`Backend`] for a crate with ring's `signature` and `digest` API.
macro_rules! backend {
    ($ty:ident, $lib:ident, $name:literal) => {
        /// The backend implemented by
        #[doc = concat!("`", stringify!($lib), "`.")]
        pub(crate) struct $ty;

        impl Backend for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn verify(&self, alg: Alg, public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
                use $lib::signature as s;
                let alg: &'static dyn s::VerificationAlgorithm = match alg {
                    Alg::EcdsaP384Sha384Der => &s::ECDSA_P384_SHA384_ASN1,
                    Alg::EcdsaP384Sha256Der => &s::ECDSA_P384_SHA256_ASN1,
                    Alg::EcdsaP384Sha384Fixed => &s::ECDSA_P384_SHA384_FIXED,
                    Alg::RsaPssSha384 => &s::RSA_PSS_2048_8192_SHA384,
                    Alg::Ed25519 => &s::ED25519,
                };
                s::UnparsedPublicKey::new(alg, public_key).verify(msg, sig).is_ok()
            }

            fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
                use $lib::digest as d;
                let mut ctx = d::Context::new(&d::SHA256);
                for p in parts {
                    ctx.update(p);
                }
                let mut out = [0u8; 32];
                out.copy_from_slice(ctx.finish().as_ref());
                out
            }
        }
    };
}

backend!(Ring, ring, "ring");
#[cfg(feature = "aws-lc")]
backend!(AwsLc, aws_lc_rs, "aws-lc-rs");

/// The backend this build verifies with.
#[cfg(not(feature = "aws-lc"))]
pub(crate) static BUILT_IN: &dyn Backend = &Ring;
/// The backend this build verifies with.
#[cfg(feature = "aws-lc")]
pub(crate) static BUILT_IN: &dyn Backend = &AwsLc;

thread_local! {
    /// A backend chosen for this thread by [`with_backend`] (tests compare the two).
    static CHOSEN: std::cell::Cell<Option<&'static dyn Backend>> = const { std::cell::Cell::new(None) };
}

/// The backend the calling thread verifies with: [`BUILT_IN`] unless [`with_backend`] chose
/// another. Code that hands work to other threads passes this along.
pub(crate) fn current() -> &'static dyn Backend {
    CHOSEN.with(|c| c.get()).unwrap_or(BUILT_IN)
}

/// Runs `f` with `backend` doing this thread's cryptography (restored afterwards, also on
/// unwind).
pub(crate) fn with_backend<R>(backend: &'static dyn Backend, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<&'static dyn Backend>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CHOSEN.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CHOSEN.with(|c| c.replace(Some(backend))));
    f()
}

/// Length of an uncompressed SEC1 P-384 point (0x04 ‖ x ‖ y).
const P384_POINT_LEN: usize = 1 + 2 * 48;

/// Whether `key` is in the one form both backends read the same way for `alg`.
fn key_form_is_shared(alg: Alg, key: &[u8]) -> bool {
    match alg {
        Alg::EcdsaP384Sha384Der | Alg::EcdsaP384Sha256Der | Alg::EcdsaP384Sha384Fixed => {
            key.len() == P384_POINT_LEN && key[0] == 0x04
        }
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, nothing else.
        Alg::RsaPssSha384 => der::single(key, tag::SEQUENCE).is_ok_and(|seq| {
            let mut r = der::Reader::new(seq.content);
            r.expect(tag::INTEGER).is_ok() && r.expect(tag::INTEGER).is_ok() && r.finish().is_ok()
        }),
        Alg::Ed25519 => key.len() == 32,
    }
}

/// Checks `alg`'s signature `sig` of `msg` under `public_key` with the current backend.
pub(crate) fn verify(alg: Alg, public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), BadSignature> {
    if key_form_is_shared(alg, public_key) && current().verify(alg, public_key, msg, sig) {
        Ok(())
    } else {
        Err(BadSignature)
    }
}

/// SHA-256 of the concatenation of `parts`, by the current backend.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    current().sha256(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};

    fn backends() -> Vec<&'static dyn Backend> {
        #[cfg(feature = "aws-lc")]
        return vec![&Ring, &AwsLc];
        #[cfg(not(feature = "aws-lc"))]
        return vec![&Ring];
    }

    /// A P-384 key given compressed, or wrapped in a SubjectPublicKeyInfo, verifies a real
    /// signature in aws-lc-rs but not in ring; the door refuses both forms for every backend.
    #[test]
    fn key_forms_only_one_backend_reads_are_refused_at_the_door() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = kp.public_key().as_ref().to_vec();
        let msg = b"attested";
        let sig = kp.sign(&rng, msg).unwrap().as_ref().to_vec();
        let mut compressed = vec![0x02 | (point[96] & 1)];
        compressed.extend_from_slice(&point[1..49]);
        // SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING { 0, point } }
        let mut spki = vec![0x30, 0x76, 0x30, 0x10, 0x06, 0x07];
        spki.extend_from_slice(der::oid::EC_PUBLIC_KEY);
        spki.extend_from_slice(&[0x06, 0x05]);
        spki.extend_from_slice(der::oid::SECP384R1);
        spki.extend_from_slice(&[0x03, 0x62, 0x00]);
        spki.extend_from_slice(&point);
        assert_eq!(spki.len(), 0x78);

        for b in backends() {
            let alg = Alg::EcdsaP384Sha384Fixed;
            with_backend(b, || {
                assert_eq!(verify(alg, &point, msg, &sig), Ok(()), "{}", b.name());
                assert_eq!(verify(alg, &compressed, msg, &sig), Err(BadSignature), "{}", b.name());
                assert_eq!(verify(alg, &spki, msg, &sig), Err(BadSignature), "{}", b.name());
            });
        }
        assert!(!Ring.verify(Alg::EcdsaP384Sha384Fixed, &compressed, msg, &sig));
        assert!(!Ring.verify(Alg::EcdsaP384Sha384Fixed, &spki, msg, &sig));
        // Why the door exists: left to itself aws-lc-rs would accept both.
        #[cfg(feature = "aws-lc")]
        {
            assert!(AwsLc.verify(Alg::EcdsaP384Sha384Fixed, &compressed, msg, &sig));
            assert!(AwsLc.verify(Alg::EcdsaP384Sha384Fixed, &spki, msg, &sig));
        }
    }

    /// DER TLV with a long-form length (keys here are longer than 255 bytes).
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let n = content.len();
        let mut out = vec![tag, 0x82, (n >> 8) as u8, n as u8];
        out.extend_from_slice(content);
        out
    }

    /// The AMD ARK's key as PKCS#1 passes the door and verifies the ARK's self-signature
    /// with every backend; the same key wrapped in a SubjectPublicKeyInfo (which aws-lc-rs
    /// alone would read) does not pass.
    #[test]
    fn rsa_keys_pass_the_door_only_as_pkcs1() {
        let ark = der::Certificate::parse(include_bytes!("../roots/ark_milan.der")).unwrap();
        let pkcs1 = ark.public_key;
        let mut bits = vec![0x00];
        bits.extend_from_slice(pkcs1);
        // AlgorithmIdentifier { rsaEncryption, NULL }
        let mut spki_body = vec![0x30, 0x0d, 0x06, 0x09];
        spki_body.extend_from_slice(der::oid::RSA_ENCRYPTION);
        spki_body.extend_from_slice(&[0x05, 0x00]);
        spki_body.extend_from_slice(&tlv(tag::BIT_STRING, &bits));
        let spki = tlv(tag::SEQUENCE, &spki_body);
        let (msg, sig) = (ark.tbs, ark.signature);
        assert!(key_form_is_shared(Alg::RsaPssSha384, pkcs1));
        assert!(!key_form_is_shared(Alg::RsaPssSha384, &spki));
        for b in backends() {
            with_backend(b, || {
                assert_eq!(ark.verify_signed_by(&ark), Ok(()), "{}", b.name());
                assert_eq!(verify(Alg::RsaPssSha384, &spki, msg, sig), Err(BadSignature), "{}", b.name());
            });
        }
        assert!(!Ring.verify(Alg::RsaPssSha384, &spki, msg, sig));
        #[cfg(feature = "aws-lc")]
        assert!(AwsLc.verify(Alg::RsaPssSha384, &spki, msg, sig));
    }

    /// Every scheme, on a valid signature and on each single-byte corruption of the
    /// signature and of the message: all backends give the same answer (and accept only the
    /// valid one).
    #[test]
    fn every_scheme_gets_the_same_answer_from_every_backend() {
        use ring::signature::{self as rs, Ed25519KeyPair};
        let rng = SystemRandom::new();
        let msg = b"a message long enough to flip a few bytes of".to_vec();
        /// Scheme, public key, message, signature.
        type Case = (Alg, Vec<u8>, Vec<u8>, Vec<u8>);
        let mut cases: Vec<Case> = Vec::new();
        for (alg, signing) in [
            (Alg::EcdsaP384Sha384Der, &rs::ECDSA_P384_SHA384_ASN1_SIGNING),
            (Alg::EcdsaP384Sha384Fixed, &rs::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).unwrap();
            let kp = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).unwrap();
            let sig = kp.sign(&rng, &msg).unwrap().as_ref().to_vec();
            cases.push((alg, kp.public_key().as_ref().to_vec(), msg.clone(), sig));
        }
        // ring cannot sign P-384 with SHA-256: a signature of `msg` made once with Python
        // `cryptography` (ec.ECDSA(hashes.SHA256()) on a SECP384R1 key).
        cases.push((
            Alg::EcdsaP384Sha256Der,
            hex::decode(concat!(
                "041fd07c028f4cfab6e29122431900dd68b2b8009d96106d0cd4ff4ea9b7d0b7cd312d772e231929a5cb6a1a0803300e",
                "325fb406949e9c5318438bede196f4a74a01398f23cc8216323207f8d885f78fe36dad9f652f3879bd7e71c26ed0ea0a0e",
            ))
            .unwrap(),
            msg.clone(),
            hex::decode(concat!(
                "3065023100c2f09f094c54e5d320bfaf88d489100377e5668ad5b764b597a3119376fedd6cb899011910d65c23e12041",
                "0b19634b200230508f9ad0656168bc5c03409ab1aeee91b265e42551533483633ff9d260a04a49b4debd82f59c5cba10",
                "22b06ec49f9263",
            ))
            .unwrap(),
        ));
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
        cases.push((Alg::Ed25519, ed.public_key().as_ref().to_vec(), msg.clone(), ed.sign(&msg).as_ref().to_vec()));
        let ark = der::Certificate::parse(include_bytes!("../roots/ark_milan.der")).unwrap();
        cases.push((Alg::RsaPssSha384, ark.public_key.to_vec(), ark.tbs.to_vec(), ark.signature.to_vec()));

        let answers = |alg, key: &[u8], m: &[u8], sig: &[u8]| -> Vec<Result<(), BadSignature>> {
            backends().into_iter().map(|b| with_backend(b, || verify(alg, key, m, sig))).collect()
        };
        for (alg, key, m, sig) in &cases {
            assert!(answers(*alg, key, m, sig).iter().all(|r| r.is_ok()), "{alg:?}");
            let mut variants: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for i in (0..sig.len()).step_by(7).chain([sig.len() - 1]) {
                let mut s2 = sig.clone();
                s2[i] ^= 0x01;
                variants.push((m.clone(), s2));
            }
            for i in (0..m.len()).step_by(m.len() / 5 + 1) {
                let mut m2 = m.clone();
                m2[i] ^= 0x80;
                variants.push((m2, sig.clone()));
            }
            variants.push((m.clone(), sig[..sig.len() - 1].to_vec()));
            variants.push((m.clone(), [sig.as_slice(), &[0]].concat()));
            for (m2, s2) in &variants {
                let a = answers(*alg, key, m2, s2);
                assert!(a.iter().all(|r| *r == Err(BadSignature)), "{alg:?}: {a:?}");
            }
        }
    }

    #[test]
    fn digests_agree() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for b in backends() {
            assert_eq!(hex::encode(b.sha256(&[])), empty);
            assert_eq!(b.sha256(&[b"ab", b"c"]), Ring.sha256(&[b"abc"]));
        }
    }

    #[test]
    fn the_chosen_backend_is_restored() {
        assert_eq!(current().name(), BUILT_IN.name());
        let _ = std::panic::catch_unwind(|| with_backend(&Ring, || panic!("inside")));
        assert_eq!(current().name(), BUILT_IN.name());
        with_backend(&Ring, || assert_eq!(current().name(), "ring"));
    }
}
