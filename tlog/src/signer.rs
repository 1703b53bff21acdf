//! "Is this signer an attested enclave running the expected image under an expected
//! policy?" One function answers it for results, audit records and a booting enclave
//! continuing the log. The caller always supplies the image measurements: nothing here
//! trusts what a record or a result says about its own signer.

use crate::replay::Signer;
use attestation_verifier::{
    verify_evidence, Expectations, NitroExpectations, Options, Platform, SnpReference, UnixTime, Verdict,
};
use protocol::Digest;
use std::collections::BTreeMap;

pub use protocol::pcr::{policy_pcr, POLICY_PCR};

/// The boot PCRs that name the image (Nitro: enclave image, kernel, application). PCR3
/// and PCR4 name the parent instance and IAM role, which legitimately change.
pub const IMAGE_PCRS: [u16; 3] = [0, 1, 2];

/// What names the image a signer must have run: PCRs for Nitro (and simulated evidence),
/// the launch reference for SEV-SNP. A PCR is never compared with an SNP launch
/// measurement, nor an SNP reference with Nitro PCRs: evidence of the other kind is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageReference {
    /// Nitro and simulated: PCR index → value; at least PCR0.
    Pcrs(BTreeMap<u16, Vec<u8>>),
    /// SEV-SNP: launch measurement, minimum REPORTED_TCB, maximum VMPL, guest-policy rules
    /// (the owner's `--expect-snp` file).
    Snp(SnpReference),
}

impl ImageReference {
    /// What to pass as `--expect-…` for this kind of reference.
    pub fn flag(&self) -> &'static str {
        match self {
            ImageReference::Pcrs(_) => "--expect-pcr0/--expect-pcrs",
            ImageReference::Snp(_) => "--expect-snp",
        }
    }

    /// Whether debug-mode evidence is acceptable (only an SNP reference can allow it).
    pub fn allows_debug(&self) -> bool {
        matches!(self, ImageReference::Snp(r) if r.allow_debug())
    }
}

/// What the verifier requires of every signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedImage {
    /// The image: Nitro/simulated PCRs or an SEV-SNP launch reference.
    pub image: ImageReference,
    /// Policies the signers may have been booted with (measured into PCR16).
    pub policies: Vec<Digest>,
    /// Accept simulated (development, forgeable) evidence.
    pub allow_simulated: bool,
    /// Accept the unsigned documents of QEMU's emulated NSM (a test root; see
    /// `attestation_verifier::emulated`).
    pub allow_emulated_nsm: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignerError {
    #[error("no image measurement is expected (PCR0 or the SNP launch measurement is required)")]
    NoImageExpected,
    #[error("its evidence is {platform} evidence, which {given} cannot describe (give {needed})")]
    WrongReference { platform: String, given: &'static str, needed: &'static str },
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

/// What the boot evidence of an enclave with key `signer` under `policy` must show, and
/// whether debug-mode evidence is acceptable. `image: None` checks the key and policy
/// only (an enclave reading its own image from its own evidence).
pub fn boot_expectations(
    kind: Platform,
    image: Option<&ImageReference>,
    policy: &Digest,
    signer: &[u8],
) -> Result<(Expectations, bool), SignerError> {
    let wrong = |given: &ImageReference, needed: &'static str| SignerError::WrongReference {
        platform: kind.to_string(),
        given: given.flag(),
        needed,
    };
    match (kind, image) {
        (Platform::Snp, None | Some(ImageReference::Snp(_))) => {
            let report_data =
                protocol::wire::snp_report_data(policy.as_bytes(), None, policy.as_bytes(), signer).to_vec();
            let (snp, allow_debug) = match image {
                Some(ImageReference::Snp(r)) => (r.expectations(Some(report_data)), r.allow_debug()),
                _ => (
                    attestation_verifier::SnpExpectations { report_data: Some(report_data), ..Default::default() },
                    false,
                ),
            };
            Ok((Expectations::Snp(snp), allow_debug))
        }
        (Platform::Snp, Some(given)) => Err(wrong(given, "--expect-snp")),
        (_, Some(given @ ImageReference::Snp(_))) => Err(wrong(given, "--expect-pcr0 or --expect-pcrs")),
        (_, None | Some(ImageReference::Pcrs(_))) => {
            let mut pcrs = match image {
                Some(ImageReference::Pcrs(p)) => p.clone(),
                _ => BTreeMap::new(),
            };
            pcrs.insert(POLICY_PCR, policy_pcr(policy));
            let expect = NitroExpectations {
                pcrs,
                public_key: Some(signer.to_vec()),
                user_data: Some(policy.as_bytes().to_vec()),
                ..Default::default()
            };
            Ok((Expectations::Nitro(expect), false))
        }
    }
}

/// The verifier's name for a platform (the two enums name the same three kinds; the
/// verifier links no wire types).
pub fn evidence_kind(platform: protocol::platform::Platform) -> Result<Platform, SignerError> {
    use protocol::platform::Platform as Wire;
    match platform {
        Wire::Nitro => Ok(Platform::Nitro),
        Wire::Snp => Ok(Platform::Snp),
        Wire::Simulated => Ok(Platform::Simulated),
        other => Err(SignerError::UnknownPlatform(other.to_string())),
    }
}

/// Verify the boot evidence of `public_key`, booted under `policy` on `platform`, at `time`.
pub fn verify_boot_evidence(
    platform: protocol::platform::Platform,
    public_key: &[u8],
    policy: &Digest,
    document: &[u8],
    time: u64,
    expected: &ExpectedImage,
) -> Result<Verdict, SignerError> {
    if matches!(&expected.image, ImageReference::Pcrs(p) if !p.contains_key(&0)) {
        return Err(SignerError::NoImageExpected);
    }
    let kind = evidence_kind(platform)?;
    if !expected.policies.contains(policy) {
        return Err(SignerError::UnexpectedPolicy(*policy));
    }
    let (expect, allow_debug) = boot_expectations(kind, Some(&expected.image), policy, public_key)?;
    let opts = Options {
        allow_simulated: expected.allow_simulated,
        allow_debug,
        allow_emulated_nsm: expected.allow_emulated_nsm,
    };
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
    verify_boot_evidence(signer.platform, &signer.public_key, &signer.policy_digest, doc, signer.first_time, expected)
}

/// A booting enclave's own image, read from its own boot evidence (checked for its key
/// and policy, but against no image: this is where the image to require comes from).
pub fn own_image(
    platform: protocol::platform::Platform,
    public_key: &[u8],
    policy: &Digest,
    document: &[u8],
    time: u64,
    simulated: bool,
    emulated_nsm: bool,
) -> Result<ImageReference, SignerError> {
    let kind = evidence_kind(platform)?;
    let (expect, _) = boot_expectations(kind, None, policy, public_key)?;
    let opts = Options { allow_simulated: simulated, allow_debug: false, allow_emulated_nsm: emulated_nsm };
    let verdict = verify_evidence(kind, document, &expect, &opts, UnixTime::from_secs(time))
        .map_err(|e| SignerError::Evidence(e.to_string()))?;
    Ok(image_of(&verdict))
}

/// The image a verdict shows, as an [`ImageReference`]: a booting enclave requires its
/// predecessors to have run exactly its own image. For SEV-SNP that is the same launch
/// measurement ([`SnpReference::launch_only`]: the minimum TCB and maximum VMPL are the
/// owner's to set, in its own `--expect-snp`).
pub fn image_of(verdict: &Verdict) -> ImageReference {
    match &verdict.snp {
        Some(snp) => {
            let mut m = [0u8; 48];
            if snp.measurement.len() == 48 {
                m.copy_from_slice(&snp.measurement);
            }
            ImageReference::Snp(SnpReference::launch_only(m))
        }
        None => ImageReference::Pcrs(
            verdict.pcrs.iter().filter(|(i, _)| IMAGE_PCRS.contains(i)).map(|(i, v)| (*i, v.clone())).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attestation_verifier::TcbVersion;

    fn snp_ref() -> ImageReference {
        ImageReference::Snp(SnpReference {
            measurement: [7; 48],
            min_tcb: TcbVersion { bootloader: 4, tee: 0, snp: 27, microcode: 222, fmc: 0 },
            max_vmpl: 0,
            policy: Default::default(),
        })
    }

    fn pcrs() -> ImageReference {
        ImageReference::Pcrs(BTreeMap::from([(0, vec![7; 48])]))
    }

    #[test]
    fn a_pcr_never_describes_snp_evidence_nor_an_snp_reference_nitro_evidence() {
        let p = Digest::of(b"policy");
        let r = boot_expectations(Platform::Snp, Some(&pcrs()), &p, b"k");
        assert_eq!(
            r.map(|_| ()),
            Err(SignerError::WrongReference {
                platform: "snp".into(),
                given: "--expect-pcr0/--expect-pcrs",
                needed: "--expect-snp"
            })
        );
        for kind in [Platform::Nitro, Platform::Simulated] {
            let r = boot_expectations(kind, Some(&snp_ref()), &p, b"k").map(|_| ());
            assert!(matches!(r, Err(SignerError::WrongReference { needed: "--expect-pcr0 or --expect-pcrs", .. })));
        }
        // the SNP reference turns into measurement, minimum TCB, maximum VMPL and the binding
        let (e, debug) = boot_expectations(Platform::Snp, Some(&snp_ref()), &p, b"k").unwrap();
        assert!(!debug);
        let Expectations::Snp(e) = e else { panic!("{e:?}") };
        assert_eq!(e.measurement, Some(vec![7; 48]));
        assert_eq!(e.max_vmpl, Some(0));
        assert_eq!(e.min_tcb.map(|t| t.microcode), Some(222));
        let rd = protocol::wire::snp_report_data(p.as_bytes(), None, p.as_bytes(), b"k").to_vec();
        assert_eq!(e.report_data, Some(rd));
        // and verify_boot_evidence refuses the pairing before looking at the document
        let expected =
            ExpectedImage { image: pcrs(), policies: vec![p], allow_simulated: false, allow_emulated_nsm: false };
        assert!(matches!(
            verify_boot_evidence(protocol::platform::Platform::Snp, b"k", &p, b"not evidence", 0, &expected),
            Err(SignerError::WrongReference { .. })
        ));
        let none = ExpectedImage { image: ImageReference::Pcrs(BTreeMap::new()), ..expected };
        assert_eq!(
            verify_boot_evidence(protocol::platform::Platform::Nitro, b"k", &p, b"", 0, &none).map(|_| ()),
            Err(SignerError::NoImageExpected)
        );
    }
}
