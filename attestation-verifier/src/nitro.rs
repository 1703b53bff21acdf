//! AWS Nitro Enclaves attestation documents (COSE_Sign1, ES384).
//!
//! Pipeline:
//!
//! 1. **Parse strictly** ([`parse_document`]): hard size limit, strict CBOR
//!    (duplicate keys, trailing bytes, floats refused; definite and indefinite
//!    lengths accepted), COSE_Sign1 tagged or untagged with an empty unprotected
//!    header, a protected header of exactly `{1: -35}` (ES384; `crit` or any
//!    other label refused), a payload map with only the fields NSM defines,
//!    each of the right type and size.
//! 2. **Extract claims** ([`extract_claims`]): `cabundle[0]` must be the AWS
//!    Nitro root pinned by its SHA-256 fingerprint ([`AWS_NITRO_ROOT_G1_SHA256`]);
//!    root → cabundle[1..] → certificate must chain by name and ECDSA-P384
//!    signature; each issuer must be a CA allowed to sign certificates within
//!    its path length; no unknown critical extension; every certificate must
//!    be inside its validity window at the time passed in; the document
//!    signature (96-byte r‖s, high-S accepted as real documents use it) must
//!    verify with the leaf key over the COSE Sig_structure of the bytes as
//!    received.
//! 3. **Compare** with the caller's [`NitroExpectations`] ([`crate::policy`]):
//!    debug mode refused unless allowed, PCRs, nonce, user_data, public_key,
//!    module_id prefix, maximum age.

use crate::chain::SignatureCache;
use crate::cose::{self, ALG_ES384};
use crate::crypto::{self, Alg};
use crate::der::Certificate;
use crate::{fields, policy, Claims, Error, NitroExpectations, Options, Platform, UnixTime, Verdict};
use cbor::Value;

/// SHA-256 of the DER encoding of the AWS Nitro Enclaves root certificate
/// (CN=aws.nitro-enclaves, 2019-10-28 … 2049-10-28).
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31, 0x7e, 0xd7, 0xcd,
    0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// The pinned AWS Nitro root certificate (DER).
pub const AWS_NITRO_ROOT_G1: &[u8] = include_bytes!("../roots/aws_nitro_root_g1.der");

/// Largest document accepted (real ones are about 4.5 KiB).
pub const MAX_DOC_LEN: usize = 32 * 1024;
/// Largest certificate accepted.
pub const MAX_CERT_LEN: usize = 4096;
/// Most certificates accepted in the cabundle.
pub const MAX_CABUNDLE: usize = 8;

const PAYLOAD_KEYS: &[&str] =
    &["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"];

/// A strictly parsed, *not yet verified* Nitro attestation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroDocument {
    /// The claims in the payload.
    pub claims: Claims,
    /// Leaf certificate (DER).
    pub certificate: Vec<u8>,
    /// CA bundle, root first (DER each).
    pub cabundle: Vec<Vec<u8>>,
    /// Protected header bytes (signed).
    pub protected: Vec<u8>,
    /// Payload bytes (signed).
    pub payload: Vec<u8>,
    /// Signature (r‖s).
    pub signature: Vec<u8>,
}

fn cert_bytes(v: &Value, field: &'static str) -> Result<Vec<u8>, Error> {
    let b = fields::bytes(v, field)?;
    if b.is_empty() || b.len() > MAX_CERT_LEN {
        return Err(Error::FieldSize { field, len: b.len() });
    }
    Ok(b.to_vec())
}

/// Step 1: strict parsing only. Nothing is verified; use for inspection.
pub fn parse_document(doc: &[u8]) -> Result<NitroDocument, Error> {
    if doc.len() > MAX_DOC_LEN {
        return Err(Error::InputTooLarge { len: doc.len(), max: MAX_DOC_LEN });
    }
    let c = cose::parse(doc)?;
    cose::check_protected(&c.protected_map, ALG_ES384, &[])?;
    let payload = cbor::decode(&c.payload)?;
    let Value::Map(entries) = &payload else {
        return Err(Error::WrongFieldType { field: "payload", expected: "map" });
    };
    fields::only_known_keys(entries, PAYLOAD_KEYS)?;
    let claims = fields::claims(&payload)?;
    let certificate =
        cert_bytes(payload.map_get_text("certificate").ok_or(Error::MissingField("certificate"))?, "certificate")?;
    let cabundle = match payload.map_get_text("cabundle").ok_or(Error::MissingField("cabundle"))? {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_CABUNDLE {
                return Err(Error::CabundleLength(items.len()));
            }
            items.iter().map(|v| cert_bytes(v, "cabundle entry")).collect::<Result<Vec<_>, _>>()?
        }
        _ => return Err(Error::WrongFieldType { field: "cabundle", expected: "array" }),
    };
    if c.signature.len() != 96 {
        return Err(Error::FieldSize { field: "signature", len: c.signature.len() });
    }
    Ok(NitroDocument {
        claims,
        certificate,
        cabundle,
        protected: c.protected,
        payload: c.payload,
        signature: c.signature,
    })
}

fn role(i: usize, n: usize) -> String {
    if i == 0 {
        "root".into()
    } else if i + 1 == n {
        "leaf".into()
    } else {
        format!("intermediate {i}")
    }
}

/// Steps 1–2: parses, verifies the certificate chain to the pinned root at
/// `at` and the document signature, and returns the claims AWS vouches for.
/// No expectation is applied.
pub fn extract_claims(doc: &[u8], at: UnixTime) -> Result<Claims, Error> {
    extract_claims_with_root(doc, &AWS_NITRO_ROOT_G1_SHA256, at)
}

/// [`extract_claims`] with a different pinned root fingerprint (for tests of
/// private CAs; production code should use the AWS root).
pub fn extract_claims_with_root(doc: &[u8], root_sha256: &[u8; 32], at: UnixTime) -> Result<Claims, Error> {
    extract_claims_inner(doc, root_sha256, at, None)
}

fn extract_claims_inner(
    doc: &[u8],
    root_sha256: &[u8; 32],
    at: UnixTime,
    cache: Option<&SignatureCache>,
) -> Result<Claims, Error> {
    let d = parse_document(doc)?;
    let mut ders: Vec<&[u8]> = d.cabundle.iter().map(Vec::as_slice).collect();
    ders.push(&d.certificate);
    let n = ders.len();
    let roles: Vec<String> = (0..n).map(|i| role(i, n)).collect();
    let chain = ders
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Certificate::parse(b).map_err(|source| Error::CertificateMalformed { role: roles[i].clone(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if n < 2 || chain[0].sha256() != *root_sha256 {
        return Err(Error::UntrustedRoot("AWS Nitro Enclaves"));
    }
    crate::chain::verify_chain_cached(&chain, &roles, at, cache)?;
    let leaf = &chain[n - 1];
    if !leaf.is_p384_key() {
        return Err(Error::CertificateAlgorithm { role: "leaf".into() });
    }
    crypto::verify(
        Alg::EcdsaP384Sha384Fixed,
        leaf.public_key,
        &cose::sig_structure(&d.protected, &d.payload),
        &d.signature,
    )
    .map_err(|_| Error::SignatureInvalid)?;
    Ok(d.claims)
}

/// Verifies a Nitro attestation document against the pinned AWS root at time
/// `at`, then checks the caller's expectations. See the module docs.
pub fn verify_nitro(doc: &[u8], expect: &NitroExpectations, opts: &Options, at: UnixTime) -> Result<Verdict, Error> {
    verify_inner(doc, expect, opts, at, None)
}

/// [`verify_nitro`] that remembers verified CA-certificate signatures in `cache`
/// (same verdicts; faster for documents from the same instance).
pub fn verify_nitro_cached(
    doc: &[u8],
    expect: &NitroExpectations,
    opts: &Options,
    at: UnixTime,
    cache: &SignatureCache,
) -> Result<Verdict, Error> {
    verify_inner(doc, expect, opts, at, Some(cache))
}

fn verify_inner(
    doc: &[u8],
    expect: &NitroExpectations,
    opts: &Options,
    at: UnixTime,
    cache: Option<&SignatureCache>,
) -> Result<Verdict, Error> {
    // alg -1 is QEMU's emulated NSM (unsigned): its own path, refused unless allowed.
    // A real document says ES384 and never gets here.
    if crate::emulated::says_unsigned(doc) {
        return crate::emulated::verify_emulated(doc, expect, opts, at);
    }
    let claims = extract_claims_inner(doc, &AWS_NITRO_ROOT_G1_SHA256, at, cache)?;
    let mut checks: Vec<String> = [
        "input_size",
        "cose_structure",
        "protected_header_es384",
        "payload_fields",
        "root_pinned",
        "chain_names",
        "chain_basic_constraints",
        "chain_signatures",
        "certificate_validity",
        "signature",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    policy::check_claims(&claims, expect, opts, at, &mut checks)?;
    Ok(Verdict::from_claims(Platform::Nitro, claims, checks))
}

#[cfg(test)]
pub(crate) mod tests;
