//! PCR0 signing (the EIF signature section) and its verification.
//!
//! Layout (FORMAT.md §2, "signature"): the section is a CBOR array with one entry
//! `{"signing_certificate": [u8...], "signature": [u8...]}` where both values are arrays
//! of unsigned integers (serde_cbor's `Vec<u8>`), the certificate is the PEM file verbatim
//! and the signature is an untagged COSE_Sign1 (ES384) over
//! `{"register_index": 0, "register_value": [u8...PCR0]}`.
//!
//! The CBOR and the COSE_Sign1 envelope (its `Sig_structure` included) come from the
//! workspace's one strict codec, `cleanroom-cbor`, the same code the attestation
//! verifier checks Nitro documents with.
//!
//! # Why p384 and x509-cert (and not ring, as the verifier uses)
//!
//! Reproducible images. ECDSA needs a per-signature nonce; ring's ECDSA signer takes a
//! `SecureRandom` and mixes fresh randomness into it (it offers no deterministic mode),
//! so every signed build would differ in its signature bytes. The `p384` crate signs with RFC 6979 deterministic nonces
//! (HMAC-DRBG over the key and the message digest): the same key and PCR0 always give
//! the same signature, so a signed image built twice from the same inputs and key is
//! byte-identical, and a data owner can rebuild it and compare whole files, not just
//! PCRs (the reference tool's signed images are not reproducible). `x509-cert`,
//! `pkcs8` and `der` come with it (the RustCrypto family) to read the signing
//! certificate's P-384 key and the PKCS#8/SEC1 private key; the certificate is not
//! validated here (nitro-cli does not either), only its key is taken.

use cbor::cose::{self, CoseError, Sign1, ALG_ES384};
use cbor::{Value, Writer};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use std::fmt;
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// id-ecPublicKey
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp384r1
const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// COSE protected header `{1: -35}` (alg: ES384), encoded.
pub const COSE_PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];

/// Why signing material could not be used or a signature section did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("signing certificate: no PEM CERTIFICATE block found")]
    NoCertificatePem,
    #[error("signing certificate: bad PEM: {0}")]
    CertificatePem(String),
    #[error("signing certificate: bad DER: {0}")]
    CertificateDer(String),
    #[error("signing certificate: public key is not EC P-384 (algorithm {algorithm}, curve {curve})")]
    CertificateNotP384 { algorithm: String, curve: String },
    #[error("signing certificate: invalid P-384 public key")]
    CertificateKey,
    #[error("private key: bad PEM (expected a PKCS#8 \"PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\" block)")]
    KeyPem,
    #[error("private key: encrypted keys are not supported")]
    KeyEncrypted,
    #[error("private key: not an EC P-384 key ({0})")]
    KeyNotP384(String),
    #[error("private key: malformed P-384 key")]
    KeyMalformed,
    #[error("private key does not match the signing certificate's public key")]
    KeyCertificateMismatch,
    #[error("signature section: {0}")]
    Cbor(#[from] cbor::CborError),
    #[error("signature section: {0}")]
    Malformed(&'static str),
    #[error("signature section: malformed COSE_Sign1: {0}")]
    Cose(&'static str),
    #[error("signature section: unsupported COSE algorithm (only ES384 is accepted)")]
    UnsupportedAlgorithm,
    #[error("signature section signs PCR{0}, expected PCR0")]
    WrongRegister(u64),
    #[error("signature section signs a PCR0 that is not this image's PCR0")]
    Pcr0Mismatch,
    #[error("signature section: COSE_Sign1 signature does not verify against the certificate")]
    BadSignature,
}

impl From<CoseError> for SignError {
    fn from(e: CoseError) -> Self {
        match e {
            CoseError::Cbor(e) => SignError::Cbor(e),
            CoseError::Structure(what) => SignError::Cose(what),
            _ => SignError::Cose("COSE error of a newer codec"),
        }
    }
}

/// A parsed signing certificate: the PEM bytes as given (stored verbatim in the image)
/// and the DER (measured into PCR8).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningCertificate {
    pem: Vec<u8>,
    der: Vec<u8>,
    key: VerifyingKey,
}

impl fmt::Debug for SigningCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCertificate").field("der_len", &self.der.len()).finish_non_exhaustive()
    }
}

impl SigningCertificate {
    /// Parses a PEM certificate. Text before the first `BEGIN CERTIFICATE` line is
    /// ignored (as OpenSSL does); the key must be EC P-384.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignError> {
        let der = pem_certificate_der(pem)?;
        let key = p384_key_of_certificate(&der)?;
        Ok(SigningCertificate { pem: pem.to_vec(), der, key })
    }

    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A certificate plus the matching private key. The key is zeroized on drop and never
/// appears in `Debug` output.
pub struct SigningMaterial {
    cert: SigningCertificate,
    key: SigningKey,
}

impl fmt::Debug for SigningMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningMaterial").field("cert", &self.cert).field("key", &"<redacted>").finish()
    }
}

impl SigningMaterial {
    /// Certificate PEM and private key PEM (PKCS#8 or SEC1). Checks that they match.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, SignError> {
        let cert = SigningCertificate::from_pem(cert_pem)?;
        let key = parse_private_key(key_pem)?;
        if key.verifying_key() != cert.verifying_key() {
            return Err(SignError::KeyCertificateMismatch);
        }
        Ok(SigningMaterial { cert, key })
    }

    pub fn certificate(&self) -> &SigningCertificate {
        &self.cert
    }

    /// The signature section payload for an image whose PCR0 is `pcr0`.
    pub fn signature_section(&self, pcr0: &[u8]) -> Vec<u8> {
        let payload = cose_payload(pcr0);
        // RFC 6979: deterministic, so the section (and the image) is reproducible
        let sig: Signature = self.key.sign(&cose::sig_structure(&COSE_PROTECTED_ES384, &payload));
        let sign1 = cose::encode_sign1(&COSE_PROTECTED_ES384, &payload, &sig.to_bytes(), false);
        signature_section_entry(self.cert.pem(), &sign1)
    }
}

/// `[{"signing_certificate": [u8...], "signature": [u8...]}]`: a one-entry signature
/// section holding this certificate PEM and COSE_Sign1, both as arrays of integers.
pub fn signature_section_entry(cert_pem: &[u8], cose_sign1: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(1).map(2).text("signing_certificate").u8_array(cert_pem).text("signature").u8_array(cose_sign1);
    w.into_bytes()
}

/// `{"register_index": 0, "register_value": [u8...]}`
fn cose_payload(pcr0: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.map(2).text("register_index").uint(0).text("register_value").u8_array(pcr0);
    w.into_bytes()
}

/// One verified entry of a signature section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSignature {
    pub certificate: SigningCertificate,
    pub register_index: u64,
    pub register_value: Vec<u8>,
    /// The COSE_Sign1 bytes.
    pub cose: Vec<u8>,
}

/// Decodes a signature section and verifies each entry's COSE_Sign1 against its
/// certificate. Does not compare against the image's PCR0 (see [`check_pcr0`]).
pub fn parse_signature_section(payload: &[u8]) -> Result<Vec<PcrSignature>, SignError> {
    let top = cbor::decode(payload)?;
    let Value::Array(entries) = top else {
        return Err(SignError::Malformed("expected a CBOR array"));
    };
    if entries.is_empty() {
        return Err(SignError::Malformed("no signature entries"));
    }
    entries.iter().map(parse_entry).collect()
}

fn parse_entry(entry: &Value) -> Result<PcrSignature, SignError> {
    let cert_pem = entry
        .map_get_text("signing_certificate")
        .and_then(Value::as_byte_vec)
        .ok_or(SignError::Malformed("entry lacks a signing_certificate byte field"))?;
    let sign1_bytes = entry
        .map_get_text("signature")
        .and_then(Value::as_byte_vec)
        .ok_or(SignError::Malformed("entry lacks a signature byte field"))?;
    let certificate = SigningCertificate::from_pem(&cert_pem)?;

    // tagged or untagged; the unprotected header (not signed) is not used
    let sign1 = Sign1::parse(&sign1_bytes)?;
    if sign1.alg() != Some(ALG_ES384) {
        return Err(SignError::UnsupportedAlgorithm);
    }
    let signature = Signature::from_slice(&sign1.signature).map_err(|_| SignError::BadSignature)?;
    certificate.verifying_key().verify(&sign1.to_be_signed(), &signature).map_err(|_| SignError::BadSignature)?;

    let pl = cbor::decode(&sign1.payload)?;
    let register_index = match pl.map_get_text("register_index") {
        Some(Value::Unsigned(n)) => *n,
        _ => return Err(SignError::Malformed("COSE payload lacks register_index")),
    };
    let register_value = pl
        .map_get_text("register_value")
        .and_then(Value::as_byte_vec)
        .ok_or(SignError::Malformed("COSE payload lacks register_value"))?;
    Ok(PcrSignature { certificate, register_index, register_value, cose: sign1_bytes })
}

/// Checks that the first entry signs register 0 with the value `pcr0`.
pub fn check_pcr0(sigs: &[PcrSignature], pcr0: &[u8]) -> Result<(), SignError> {
    let first = sigs.first().ok_or(SignError::Malformed("no signature entries"))?;
    if first.register_index != 0 {
        return Err(SignError::WrongRegister(first.register_index));
    }
    if first.register_value != pcr0 {
        return Err(SignError::Pcr0Mismatch);
    }
    Ok(())
}

/// Finds the first `-----BEGIN CERTIFICATE-----` block and decodes it to DER.
fn pem_certificate_der(pem: &[u8]) -> Result<Vec<u8>, SignError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let start = find(pem, BEGIN).ok_or(SignError::NoCertificatePem)?;
    let end_rel = find(&pem[start..], END).ok_or(SignError::NoCertificatePem)?;
    let block = &pem[start..start + end_rel + END.len()];
    let (label, der) = der::pem::decode_vec(block).map_err(|e| SignError::CertificatePem(e.to_string()))?;
    if label != "CERTIFICATE" {
        return Err(SignError::NoCertificatePem);
    }
    Ok(der)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn p384_key_of_certificate(der: &[u8]) -> Result<VerifyingKey, SignError> {
    let cert = Certificate::from_der(der).map_err(|e| SignError::CertificateDer(e.to_string()))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY || curve != Some(OID_SECP384R1) {
        return Err(SignError::CertificateNotP384 {
            algorithm: spki.algorithm.oid.to_string(),
            curve: curve.map_or_else(|| "none".to_string(), |c| c.to_string()),
        });
    }
    let point = spki.subject_public_key.as_bytes().ok_or(SignError::CertificateKey)?;
    VerifyingKey::from_sec1_bytes(point).map_err(|_| SignError::CertificateKey)
}

fn parse_private_key(pem: &[u8]) -> Result<SigningKey, SignError> {
    let text = std::str::from_utf8(pem).map_err(|_| SignError::KeyPem)?;
    let (label, der) = der::pem::decode_vec(text.trim().as_bytes()).map_err(|_| SignError::KeyPem)?;
    let der = Zeroizing::new(der);
    match label {
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfo::from_der(&der).map_err(|_| SignError::KeyMalformed)?;
            let curve = info.algorithm.parameters.and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if info.algorithm.oid != OID_EC_PUBLIC_KEY || curve != Some(OID_SECP384R1) {
                return Err(SignError::KeyNotP384(format!(
                    "algorithm {}, curve {}",
                    info.algorithm.oid,
                    curve.map_or_else(|| "none".to_string(), |c| c.to_string())
                )));
            }
            let sk = p384::SecretKey::try_from(info).map_err(|_| SignError::KeyMalformed)?;
            Ok(SigningKey::from(sk))
        }
        "EC PRIVATE KEY" => {
            let sk = p384::SecretKey::from_sec1_der(&der)
                .map_err(|_| SignError::KeyNotP384("SEC1 key is not on P-384".into()))?;
            Ok(SigningKey::from(sk))
        }
        "ENCRYPTED PRIVATE KEY" => Err(SignError::KeyEncrypted),
        _ => Err(SignError::KeyPem),
    }
}

/// Re-encodes DER through the certificate parser (used by tests to check canonical form).
pub fn reencode_certificate(der: &[u8]) -> Result<Vec<u8>, SignError> {
    let cert = Certificate::from_der(der).map_err(|e| SignError::CertificateDer(e.to_string()))?;
    cert.to_der().map_err(|e| SignError::CertificateDer(e.to_string()))
}
