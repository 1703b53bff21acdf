//! A JSON description of a parsed image (what `eif-build describe` prints).

use crate::eif::Eif;
use crate::pcr::{HashAlgorithm, Hasher, MeasurementsJson};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Description {
    #[serde(rename = "EifVersion")]
    pub eif_version: u16,
    #[serde(rename = "Arch")]
    pub arch: &'static str,
    #[serde(rename = "DefaultMemory")]
    pub default_memory: u64,
    #[serde(rename = "DefaultCpus")]
    pub default_cpus: u64,
    /// Always true: the reader rejects an image whose CRC does not match.
    #[serde(rename = "CheckCRC")]
    pub check_crc: bool,
    #[serde(rename = "Measurements")]
    pub measurements: MeasurementsJson,
    #[serde(rename = "IsSigned")]
    pub is_signed: bool,
    /// True when signed: the reader rejects a signature that does not verify or does
    /// not sign this image's PCR0.
    #[serde(rename = "SignatureCheck", skip_serializing_if = "Option::is_none")]
    pub signature_check: Option<bool>,
    #[serde(rename = "SigningCertificateSha384", skip_serializing_if = "Option::is_none")]
    pub signing_certificate_sha384: Option<String>,
    #[serde(rename = "ImageName", skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    #[serde(rename = "ImageVersion", skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    #[serde(rename = "Metadata", skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(rename = "MetadataError", skip_serializing_if = "Option::is_none")]
    pub metadata_error: Option<String>,
    #[serde(rename = "Cmdline")]
    pub cmdline: String,
    #[serde(rename = "Sections")]
    pub sections: Vec<SectionInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionInfo {
    #[serde(rename = "Index")]
    pub index: usize,
    #[serde(rename = "Offset")]
    pub offset: u64,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "Size")]
    pub size: usize,
    #[serde(rename = "Sha384")]
    pub sha384: String,
}

fn sha384_hex(data: &[u8]) -> String {
    let mut h = Hasher::new(HashAlgorithm::Sha384);
    h.update(data);
    hex::encode(h.finalize())
}

/// Describes a parsed image.
pub fn describe(eif: &Eif<'_>) -> Description {
    let (metadata, metadata_error) = match eif.metadata() {
        None => (None, None),
        Some(raw) => match serde_json::from_slice::<Value>(raw) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("metadata is not JSON: {e}"))),
        },
    };
    let field = |k: &str| metadata.as_ref().and_then(|m| m.get(k)).and_then(Value::as_str).map(str::to_string);
    Description {
        eif_version: eif.header.version,
        arch: eif.header.arch.name(),
        default_memory: eif.header.default_mem,
        default_cpus: eif.header.default_cpus,
        check_crc: true,
        measurements: eif.measurements.to_json(),
        is_signed: eif.is_signed(),
        signature_check: eif.is_signed().then_some(true),
        signing_certificate_sha384: eif
            .signatures
            .as_ref()
            .and_then(|s| s.first())
            .map(|s| sha384_hex(s.certificate.der())),
        image_name: field("ImageName"),
        image_version: field("ImageVersion"),
        cmdline: String::from_utf8_lossy(eif.cmdline()).into_owned(),
        metadata,
        metadata_error,
        sections: eif
            .sections
            .iter()
            .map(|s| SectionInfo {
                index: s.index,
                offset: s.offset,
                kind: s.kind.name(),
                size: s.payload.len(),
                sha384: sha384_hex(s.payload),
            })
            .collect(),
    }
}
