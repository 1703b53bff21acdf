//! **Unsigned** attestation documents from QEMU's emulated Nitro Secure Module.
//!
//! QEMU (>= 9.2) has a `nitro-enclave` machine that boots an EIF and emulates the NSM
//! (`virtio-nsm`). Its attestation documents have the Nitro shape but are not signed:
//!
//! - COSE_Sign1 protected header `{1: -1}` (alg -1: "not signed"; no real algorithm);
//! - signature: 64 zero bytes;
//! - `certificate`: 64 zero bytes; `cabundle`: one entry of 64 zero bytes;
//! - `pcrs`: only the *locked* PCRs (the machine locks PCR0-15 at boot, PCR0/1/2 computed
//!   from the EIF like `nitro-cli`; the supervisor locks PCR16 after extending it).
//!
//! Such a document proves nothing about AWS hardware: anyone can write one with any PCRs.
//! It is accepted only when the caller sets [`Options::allow_emulated_nsm`] (a test root:
//! for running the real NSM code path under the emulator), and then without any signature
//! or chain check, but with every claim check of [`crate::policy`] (PCRs, nonce,
//! user_data, public_key, module_id, freshness). Every verdict says `emulated_nsm: true`
//! and carries [`WARNING`].
//!
//! A real AWS document can never take this path: it says alg -35 (ES384) and goes through
//! the full chain and signature checks of [`crate::nitro`]. A document that says alg -1 but
//! does not have exactly the emulator's zeroes is refused ([`Error::EmulatedShape`]); one
//! that has them is refused with [`Error::EmulatedNsmNotAllowed`] unless allowed.
//!
//! Checks, in order: `emulated_nsm_allowed`, `cose_structure`, `protected_header_unsigned`,
//! `payload_fields`, `emulated_zero_signature`, `emulated_zero_certificates`, then the
//! claim checks.

use crate::cose;
use crate::{fields, policy, Claims, Error, NitroExpectations, Options, Platform, UnixTime, Verdict};
use cbor::Value;

/// The COSE "algorithm" QEMU's virtio-nsm writes: -1, meaning the document is not signed.
pub const ALG_UNSIGNED: i128 = -1;

/// Length of the zero-filled signature, certificate and CA-bundle entry QEMU writes.
pub const ZERO_FIELD_LEN: usize = 64;

/// The warning carried by every verdict on an emulated document.
pub const WARNING: &str = "EMULATED NSM: unsigned attestation document from QEMU's nitro-enclave \
machine (alg -1, zero signature, zero certificate and CA bundle). No AWS signature and no Nitro \
hardware: it proves nothing about where the code ran. Accepted only as a test root.";

const PAYLOAD_KEYS: &[&str] =
    &["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"];

fn all_zero(b: &[u8]) -> bool {
    b.len() == ZERO_FIELD_LEN && b.iter().all(|x| *x == 0)
}

/// Does this document's protected header say alg -1 (unsigned, the emulator's mark)?
/// Cheap; the Nitro verifier uses it to send such documents here instead of to the
/// chain check (which they would fail with a less helpful error).
pub fn says_unsigned(doc: &[u8]) -> bool {
    doc.len() <= crate::nitro::MAX_DOC_LEN
        && cose::parse(doc).is_ok_and(|c| {
            c.protected_map.iter().any(|(k, v)| k.as_int() == Some(1) && v.as_int() == Some(ALG_UNSIGNED))
        })
}

/// Strict parse of an emulator-shaped document: the Nitro payload fields and exactly
/// QEMU's zeroes where a real document has its signature and certificates.
pub fn extract_claims(doc: &[u8]) -> Result<Claims, Error> {
    if doc.len() > crate::nitro::MAX_DOC_LEN {
        return Err(Error::InputTooLarge { len: doc.len(), max: crate::nitro::MAX_DOC_LEN });
    }
    let c = cose::parse(doc)?;
    cose::check_protected(&c.protected_map, ALG_UNSIGNED, &[])?;
    let payload = cbor::decode(&c.payload)?;
    let Value::Map(entries) = &payload else {
        return Err(Error::WrongFieldType { field: "payload", expected: "map" });
    };
    fields::only_known_keys(entries, PAYLOAD_KEYS)?;
    let claims = fields::claims(&payload)?;
    if !all_zero(&c.signature) {
        return Err(Error::EmulatedShape("signature is not 64 zero bytes"));
    }
    match payload.map_get_text("certificate") {
        Some(Value::Bytes(b)) if all_zero(b) => {}
        _ => return Err(Error::EmulatedShape("certificate is not 64 zero bytes")),
    }
    match payload.map_get_text("cabundle") {
        Some(Value::Array(items)) if items.len() == 1 && matches!(&items[0], Value::Bytes(b) if all_zero(b)) => {}
        _ => return Err(Error::EmulatedShape("cabundle is not one entry of 64 zero bytes")),
    }
    Ok(claims)
}

/// Verifies an emulated-NSM document: refused with [`Error::EmulatedNsmNotAllowed`]
/// unless `opts.allow_emulated_nsm`; no signature or chain check (there is none to
/// make); every claim check applied. The verdict says `emulated_nsm: true`.
pub fn verify_emulated(doc: &[u8], expect: &NitroExpectations, opts: &Options, at: UnixTime) -> Result<Verdict, Error> {
    let claims = extract_claims(doc)?;
    if !opts.allow_emulated_nsm {
        return Err(Error::EmulatedNsmNotAllowed);
    }
    let mut checks: Vec<String> = [
        "emulated_nsm_allowed",
        "cose_structure",
        "protected_header_unsigned",
        "payload_fields",
        "emulated_zero_signature",
        "emulated_zero_certificates",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    policy::check_claims(&claims, expect, opts, at, &mut checks)?;
    let mut v = Verdict::from_claims(Platform::Nitro, claims, checks);
    v.emulated_nsm = true;
    v.warning = Some(WARNING.to_owned());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbor::Writer;
    use std::collections::BTreeMap;

    const T: u64 = 1_765_000_000_000;

    /// A document with exactly the shape QEMU's virtio-nsm writes, built by hand from
    /// the format (not from QEMU's code): untagged COSE_Sign1, protected `{1: -1}`,
    /// empty unprotected map, the nine payload fields, 64 zero bytes of signature.
    struct Doc {
        alg: i64,
        pcrs: BTreeMap<u16, Vec<u8>>,
        certificate: Vec<u8>,
        cabundle: Vec<Vec<u8>>,
        signature: Vec<u8>,
        nonce: Option<Vec<u8>>,
        timestamp: u64,
    }

    fn pcr(i: u16) -> Vec<u8> {
        vec![i as u8 + 0x10; 48]
    }

    impl Doc {
        fn emulator() -> Self {
            // PCR0-15 locked at boot (3-15 zero here except 0-2), PCR16 locked by the supervisor.
            let mut pcrs: BTreeMap<u16, Vec<u8>> = (0..16).map(|i| (i, vec![0; 48])).collect();
            for i in [0u16, 1, 2, 16] {
                pcrs.insert(i, pcr(i));
            }
            Doc {
                alg: -1,
                pcrs,
                certificate: vec![0; 64],
                cabundle: vec![vec![0; 64]],
                signature: vec![0; 64],
                nonce: Some(b"owner nonce".to_vec()),
                timestamp: T,
            }
        }

        fn encode(&self) -> Vec<u8> {
            let mut h = Writer::new();
            h.map(1).int(1).int(self.alg);
            let protected = h.into_bytes();
            let mut p = Writer::new();
            p.map(9)
                .text("module_id")
                .text("i-234-enc5678")
                .text("digest")
                .text("SHA384")
                .text("timestamp")
                .uint(self.timestamp)
                .text("pcrs")
                .map(self.pcrs.len());
            for (i, v) in &self.pcrs {
                p.uint(u64::from(*i)).bytes(v);
            }
            p.text("certificate").bytes(&self.certificate).text("cabundle").array(self.cabundle.len());
            for c in &self.cabundle {
                p.bytes(c);
            }
            p.text("public_key")
                .bytes(b"enclave key")
                .text("user_data")
                .bytes(b"user data")
                .text("nonce")
                .opt_bytes(self.nonce.as_deref());
            cbor::cose::encode_sign1(&protected, &p.into_bytes(), &self.signature, false)
        }
    }

    fn expect() -> NitroExpectations {
        NitroExpectations {
            pcrs: [0u16, 1, 2, 16].into_iter().map(|i| (i, pcr(i))).collect(),
            nonce: Some(b"owner nonce".to_vec()),
            user_data: Some(b"user data".to_vec()),
            public_key: Some(b"enclave key".to_vec()),
            max_age_ms: Some(60_000),
            ..Default::default()
        }
    }

    fn allow() -> Options {
        Options { allow_emulated_nsm: true, ..Default::default() }
    }

    fn at() -> UnixTime {
        UnixTime::from_millis(T + 5_000)
    }

    fn verify(doc: &[u8], o: &Options) -> Result<Verdict, Error> {
        crate::verify_evidence(Platform::Nitro, doc, &crate::Expectations::Nitro(expect()), o, at())
    }

    #[test]
    fn accepted_only_when_allowed_and_named_in_the_verdict() {
        let doc = Doc::emulator().encode();
        assert!(says_unsigned(&doc));
        assert_eq!(verify(&doc, &Options::default()), Err(Error::EmulatedNsmNotAllowed));
        // allow_simulated is not allow_emulated_nsm.
        let sim = Options { allow_simulated: true, allow_debug: true, ..Default::default() };
        assert_eq!(verify(&doc, &sim), Err(Error::EmulatedNsmNotAllowed));
        let v = verify(&doc, &allow()).unwrap();
        assert!(v.emulated_nsm);
        assert!(!v.simulated);
        assert_eq!(v.platform, Platform::Nitro);
        assert!(v.warning.as_deref().unwrap().starts_with("EMULATED NSM"));
        for c in
            ["emulated_nsm_allowed", "pcr0", "pcr1", "pcr2", "pcr16", "nonce", "user_data", "public_key", "max_age"]
        {
            assert!(v.checks_passed.iter().any(|x| x == c), "{c} not in {:?}", v.checks_passed);
        }
        // No check claims a signature or chain that was never verified.
        assert!(!v.checks_passed.iter().any(|c| c == "signature" || c.starts_with("chain") || c == "root_pinned"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["emulated_nsm"], true);
        assert_eq!(Error::EmulatedNsmNotAllowed.check(), "emulated_nsm");
    }

    #[test]
    fn one_changed_pcr_byte_is_refused() {
        let mut d = Doc::emulator();
        d.pcrs.get_mut(&1).unwrap()[47] ^= 1;
        assert!(matches!(verify(&d.encode(), &allow()), Err(Error::PcrMismatch { index: 1, .. })));
        // Negative control: the same document with PCR1 not expected passes.
        let mut e = expect();
        e.pcrs.remove(&1);
        assert!(verify_emulated(&d.encode(), &e, &allow(), at()).is_ok());
        // The policy PCR too.
        let mut d = Doc::emulator();
        d.pcrs.get_mut(&16).unwrap()[0] ^= 0x80;
        assert!(matches!(verify(&d.encode(), &allow()), Err(Error::PcrMismatch { index: 16, .. })));
        // An unlocked (absent) PCR16: the emulator reports only locked PCRs.
        let mut d = Doc::emulator();
        d.pcrs.remove(&16);
        assert_eq!(verify(&d.encode(), &allow()), Err(Error::PcrMissing(16)));
    }

    #[test]
    fn bindings_and_freshness_still_apply() {
        let mut d = Doc::emulator();
        d.nonce = Some(b"replayed nonce".to_vec());
        assert_eq!(verify(&d.encode(), &allow()), Err(Error::NonceMismatch));
        let mut e = expect();
        e.nonce = Some(b"replayed nonce".to_vec());
        assert!(verify_emulated(&d.encode(), &e, &allow(), at()).is_ok(), "control: matching nonce passes");
        let mut d = Doc::emulator();
        d.timestamp = T - 3_600_000;
        assert!(matches!(verify(&d.encode(), &allow()), Err(Error::TooOld { .. })));
        let mut e = expect();
        e.max_age_ms = None;
        assert!(verify_emulated(&d.encode(), &e, &allow(), at()).is_ok(), "control: no max age");
        let mut e = expect();
        e.public_key = Some(b"another key".to_vec());
        assert_eq!(verify_emulated(&Doc::emulator().encode(), &e, &allow(), at()), Err(Error::PublicKeyMismatch));
        let mut e = expect();
        e.user_data = Some(b"other".to_vec());
        assert_eq!(verify_emulated(&Doc::emulator().encode(), &e, &allow(), at()), Err(Error::UserDataMismatch));
    }

    #[test]
    fn anything_but_the_exact_emulator_zeroes_is_refused() {
        type Mutation = (&'static str, fn(&mut Doc));
        let cases: [Mutation; 6] = [
            ("signature", |d| d.signature[10] = 1),
            ("signature", |d| d.signature = vec![0; 96]),
            ("certificate", |d| d.certificate[0] = 0x30),
            ("certificate", |d| d.certificate = vec![0; 65]),
            ("cabundle", |d| d.cabundle.push(vec![0; 64])),
            ("cabundle", |d| d.cabundle[0][63] = 1),
        ];
        for (what, mutate) in cases {
            let mut d = Doc::emulator();
            mutate(&mut d);
            match verify(&d.encode(), &allow()) {
                Err(Error::EmulatedShape(why)) => assert!(why.starts_with(what), "{what}: {why}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_real_alg_never_takes_the_emulated_path() {
        // The emulator's zeroes under alg -35 (ES384) go to the real chain check and fail it.
        let mut d = Doc::emulator();
        d.alg = -35;
        let doc = d.encode();
        assert!(!says_unsigned(&doc));
        assert!(verify(&doc, &allow()).is_err());
        // Genuine AWS documents (every one in the shared test data) are not unsigned-shaped.
        let dir = format!("{}/../../shared/testdata/attestation/nitro", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "cbor") {
                continue;
            }
            let real = std::fs::read(&path).unwrap();
            assert!(!says_unsigned(&real), "{}", path.display());
            assert!(extract_claims(&real).is_err(), "{}", path.display());
            seen += 1;
        }
        assert!(seen > 0, "no genuine Nitro documents in {dir}");
        // An emulated document is never simulated evidence either.
        let o = Options { allow_simulated: true, allow_emulated_nsm: true, ..Default::default() };
        let r = crate::verify_evidence(
            Platform::Simulated,
            &Doc::emulator().encode(),
            &crate::Expectations::Nitro(expect()),
            &o,
            at(),
        );
        assert!(r.is_err());
    }
}
