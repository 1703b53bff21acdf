//! "Is this signer an attested enclave running the expected image under an expected
//! policy?" One function answers it for results, audit records and a booting enclave
//! continuing the log. The caller always supplies the image measurements: nothing here
//! trusts what a record or a result says about its own signer.

use crate::replay::Signer;
use attestation_verifier::{verify_evidence, Expectations, Options, Platform, SnpExpectations, UnixTime, Verdict};
use protocol::Digest;
use std::collections::BTreeMap;

pub use protocol::pcr::{policy_pcr, POLICY_PCR};

/// The boot PCRs that name the image (Nitro: enclave image, kernel, application). PCR3
/// and PCR4 name the parent instance and IAM role, which legitimately change.
pub const IMAGE_PCRS: [u16; 3] = [0, 1, 2];

/// What the verifier requires of every signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedImage {
    /// Nitro and simulated: PCR index → value; at least PCR0. SEV-SNP: index 0 holds the
    /// launch measurement.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// Policies the signers may have been booted with (measured into PCR16).
    pub policies: Vec<Digest>,
    /// Accept simulated (development, forgeable) evidence.
    pub allow_simulated: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignerError {
    #[error("no image measurement is expected (PCR0 or the SNP launch measurement is required)")]
    NoImageExpected,
    #[error("its evidence document is missing (digest {0})")]
    EvidenceMissing(Digest),
    #[error("its evidence document does not hash to the digest its records name")]
    EvidenceDigest,
    #[error("unknown platform {0:?}")]
    UnknownPlatform(String),
    #[error("it ran policy {0}, which is not an expected policy")]
    UnexpectedPolicy(Digest),
    #[error("its evidence does not attest it: {0}")]
    Evidence(String),
}

/// What the boot evidence of an enclave with key `signer` under `policy` must show.
pub fn boot_expectations(
    kind: Platform,
    image: &BTreeMap<u16, Vec<u8>>,
    policy: &Digest,
    signer: &[u8],
) -> Expectations {
    match kind {
        Platform::Snp => Expectations {
            snp: SnpExpectations {
                measurement: image.get(&0).cloned(),
                report_data: Some(
                    protocol::wire::snp_report_data(policy.as_bytes(), None, policy.as_bytes(), signer).to_vec(),
                ),
                ..Default::default()
            },
            ..Default::default()
        },
        _ => {
            let mut pcrs = image.clone();
            pcrs.insert(POLICY_PCR, policy_pcr(policy));
            Expectations {
                pcrs,
                public_key: Some(signer.to_vec()),
                user_data: Some(policy.as_bytes().to_vec()),
                ..Default::default()
            }
        }
    }
}

/// Verify the boot evidence of `public_key`, booted under `policy` on `platform`, at `time`.
pub fn verify_boot_evidence(
    platform: &str,
    public_key: &[u8],
    policy: &Digest,
    document: &[u8],
    time: u64,
    expected: &ExpectedImage,
) -> Result<Verdict, SignerError> {
    if !expected.pcrs.contains_key(&0) {
        return Err(SignerError::NoImageExpected);
    }
    let kind: Platform = platform.parse().map_err(|_| SignerError::UnknownPlatform(platform.to_string()))?;
    if !expected.policies.contains(policy) {
        return Err(SignerError::UnexpectedPolicy(*policy));
    }
    let expect = boot_expectations(kind, &expected.pcrs, policy, public_key);
    let opts = Options { allow_simulated: expected.allow_simulated, allow_debug: false };
    verify_evidence(kind, document, &expect, &opts, UnixTime::from_secs(time))
        .map_err(|e| SignerError::Evidence(e.to_string()))
}

/// Verify a log signer against its evidence document (looked up by the digest its records name).
pub fn verify_signer(
    signer: &Signer,
    document: Option<&[u8]>,
    expected: &ExpectedImage,
) -> Result<Verdict, SignerError> {
    let doc = document.ok_or(SignerError::EvidenceMissing(signer.evidence_digest))?;
    if Digest::of(doc) != signer.evidence_digest {
        return Err(SignerError::EvidenceDigest);
    }
    verify_boot_evidence(&signer.platform, &signer.public_key, &signer.policy_digest, doc, signer.first_time, expected)
}

/// A booting enclave's own image, read from its own boot evidence (checked for its key
/// and policy, but against no image: this is where the image to require comes from).
pub fn own_image(
    platform: &str,
    public_key: &[u8],
    policy: &Digest,
    document: &[u8],
    time: u64,
    simulated: bool,
) -> Result<BTreeMap<u16, Vec<u8>>, SignerError> {
    let kind: Platform = platform.parse().map_err(|_| SignerError::UnknownPlatform(platform.to_string()))?;
    let expect = boot_expectations(kind, &BTreeMap::new(), policy, public_key);
    let opts = Options { allow_simulated: simulated, allow_debug: false };
    let verdict = verify_evidence(kind, document, &expect, &opts, UnixTime::from_secs(time))
        .map_err(|e| SignerError::Evidence(e.to_string()))?;
    Ok(image_of(&verdict))
}

/// The image measurements a verdict shows, in the shape [`ExpectedImage::pcrs`] takes: a
/// booting enclave requires its predecessors to have run exactly its own image.
pub fn image_of(verdict: &Verdict) -> BTreeMap<u16, Vec<u8>> {
    match &verdict.snp {
        Some(snp) => BTreeMap::from([(0u16, snp.measurement.clone())]),
        None => verdict.pcrs.iter().filter(|(i, _)| IMAGE_PCRS.contains(i)).map(|(i, v)| (*i, v.clone())).collect(),
    }
}
