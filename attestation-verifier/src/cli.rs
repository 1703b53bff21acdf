//! What the `attest` binary needs besides the verification API (feature `cli`):
//! evidence files that may be raw, hex or base64, PEM bundles, and a summary of a
//! certificate for `attest inspect`. Nothing here verifies anything.

use serde::Serialize;

pub use crate::base64::InputEncoding;
use crate::der::{self, Certificate};
use crate::DerError;

/// Detects hex or base64 text and decodes it; anything else is returned as raw bytes.
///
/// Text is recognised only if every byte is printable ASCII or whitespace: all hex
/// digits (optionally after `0x`) with an even count → hex; otherwise valid standard or
/// URL-safe base64 → base64.
pub fn decode_input(input: &[u8]) -> (Vec<u8>, InputEncoding) {
    crate::base64::decode_auto(input)
}

/// Decodes every `-----BEGIN CERTIFICATE-----` block of a PEM text into DER.
pub fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, &'static str> {
    der::pem_certificates(text)
}

/// What `attest inspect` shows of a certificate (decoded, not validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateSummary {
    /// The subject's first commonName.
    pub subject_cn: Option<String>,
    /// The issuer's first commonName.
    pub issuer_cn: Option<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the whole DER certificate (the fingerprint roots are pinned by), hex.
    pub sha256: String,
}

/// Parses a DER certificate strictly and summarises it.
pub fn certificate_summary(cert_der: &[u8]) -> Result<CertificateSummary, DerError> {
    let c = Certificate::parse(cert_der)?;
    Ok(CertificateSummary {
        subject_cn: c.subject_cn(),
        issuer_cn: der::common_name(c.issuer),
        not_before: c.not_before,
        not_after: c.not_after,
        sha256: hex::encode(c.sha256()),
    })
}
