//! AMD SEV-SNP: attestation reports from the AMD Secure Processor through the Linux
//! `sev-guest` driver (`/dev/sev-guest`), via the `sev` crate.
//!
//! SEV-SNP has no PCRs that a guest can extend, and a report carries one 64-byte field
//! chosen by the guest, REPORT_DATA. So:
//!
//! * `extend_and_lock(16, digest)` records the policy digest, once; a second call is
//!   refused with [`PlatformError::Locked`], and any other index is unsupported.
//! * `attest(nonce, user_data, public_key)` asks for a report whose REPORT_DATA is
//!   [`report_data`]`(policy_digest, nonce, user_data, public_key)`, a SHA-512 binding
//!   of all four (SHA-512 is exactly REPORT_DATA's size). It refuses before the policy
//!   digest is recorded, so no SNP evidence leaves the enclave without naming the policy.
//! * The evidence is `attestation_verifier::snp::encode_bundle(report, certs)` with the
//!   VCEK (or VLEK, whichever the report says signed it) that the host attached to the
//!   extended report; the verifier supplies the pinned ASK/ASVK and ARK itself. A VEK
//!   can also be configured with [`SnpPlatform::with_vek`] for hosts that attach none.
//! * `random` is the kernel's getrandom (seeded from the CPU's RDRAND/RDSEED, which the
//!   SNP host cannot see or influence); the AMD-SP offers no randomness service.
//!
//! The hardware is reached through [`SevGuestDevice`]. [`SevGuest`] is the real one.
//! **The real device path is untested here: there is no SEV-SNP hardware on the
//! development machines or in CI.** The tests use a fake device that replays genuine
//! AMD-signed reports and their VCEKs from `shared/testdata/attestation/snp/`, passing
//! the certificates through the kernel's certificate-table format.

use super::{Platform, PlatformError, POLICY_PCR};
use attestation_verifier::snp::encode_bundle;
use attestation_verifier::SnpCerts;
use sev::firmware::guest::Firmware;
use sev::firmware::host::{CertTableEntry, CertType};
use std::sync::Mutex;

/// The SEV-SNP guest device node.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";

/// Size of an ATTESTATION_REPORT.
pub const REPORT_LEN: usize = 1184;

const NAME: &str = "snp";

// The REPORT_DATA layout is shared with the owner's verifier, so it lives in `protocol`.
pub use protocol::wire::{snp_report_data as report_data, SNP_REPORT_DATA_CONTEXT as REPORT_DATA_CONTEXT};

/// What the device returns for one report request.
pub struct SnpReply {
    /// The raw ATTESTATION_REPORT.
    pub report: Vec<u8>,
    /// The certificate table the host attached (empty when none, or for a plain report).
    pub certs: Vec<CertTableEntry>,
}

/// One report request to the SEV-SNP guest device.
pub trait SevGuestDevice: Send + Sync {
    fn report(&self, report_data: [u8; 64]) -> Result<SnpReply, String>;
}

/// The real device: `/dev/sev-guest` through `sev::firmware::guest::Firmware`.
/// Untested without SEV-SNP hardware.
pub struct SevGuest {
    firmware: Mutex<Firmware>,
    vmpl: u32,
}

impl SevGuest {
    /// Opens `/dev/sev-guest`; reports are requested at VMPL 0 (the guest kernel's level
    /// on a plain SNP guest). Use [`with_vmpl`](Self::with_vmpl) under a paravisor/SVSM.
    pub fn open() -> std::io::Result<Self> {
        Ok(SevGuest { firmware: Mutex::new(Firmware::open()?), vmpl: 0 })
    }

    pub fn with_vmpl(mut self, vmpl: u32) -> Self {
        self.vmpl = vmpl;
        self
    }
}

impl SevGuestDevice for SevGuest {
    fn report(&self, report_data: [u8; 64]) -> Result<SnpReply, String> {
        let mut fw = self.firmware.lock().map_err(|_| "sev-guest lock poisoned".to_owned())?;
        // The extended report carries the host's certificates (the VCEK); kernels or
        // hosts without it still give a plain report.
        match fw.get_ext_report(None, Some(report_data), Some(self.vmpl)) {
            Ok((report, certs)) => Ok(SnpReply { report, certs: certs.unwrap_or_default() }),
            Err(ext) => match fw.get_report(None, Some(report_data), Some(self.vmpl)) {
                Ok(report) => Ok(SnpReply { report, certs: Vec::new() }),
                Err(plain) => Err(format!("extended report: {ext}; report: {plain}")),
            },
        }
    }
}

/// The SEV-SNP platform over any [`SevGuestDevice`].
pub struct SnpPlatform {
    device: Box<dyn SevGuestDevice>,
    policy_digest: Mutex<Option<Vec<u8>>>,
    configured_vek: Option<Vec<u8>>,
}

fn device_error(reason: impl Into<String>) -> PlatformError {
    PlatformError::Device { platform: NAME, request: "attestation report", reason: reason.into() }
}

impl SnpPlatform {
    /// Opens `/dev/sev-guest`. Fails (never falls back) when the device is absent.
    pub fn open() -> Result<Self, PlatformError> {
        let device = SevGuest::open().map_err(|e| PlatformError::DeviceUnavailable {
            platform: NAME,
            path: SEV_GUEST_DEVICE,
            reason: e.to_string(),
        })?;
        Ok(Self::with_device(Box::new(device)))
    }

    pub fn with_device(device: Box<dyn SevGuestDevice>) -> Self {
        SnpPlatform { device, policy_digest: Mutex::new(None), configured_vek: None }
    }

    /// A VCEK/VLEK (DER) to use when the host attaches none to the extended report.
    /// A wrong one only makes the evidence fail verification; it cannot forge anything.
    pub fn with_vek(mut self, der: Vec<u8>) -> Self {
        self.configured_vek = Some(der);
        self
    }

    /// The VEK for a report: the kind named by the report's SIGNING_KEY field, from the
    /// host's certificate table, else the configured one.
    fn vek_for(&self, report: &[u8], certs: &[CertTableEntry]) -> Result<Vec<u8>, PlatformError> {
        let info = u32::from_le_bytes(report[0x48..0x4c].try_into().expect("4 bytes"));
        let (kind, name) = match (info >> 2) & 0b111 {
            0 => (CertType::VCEK, "VCEK"),
            1 => (CertType::VLEK, "VLEK"),
            other => return Err(device_error(format!("report is not signed by a VCEK or VLEK (SIGNING_KEY={other})"))),
        };
        if let Some(entry) = certs.iter().find(|c| c.cert_type == kind) {
            return Ok(entry.data().to_vec());
        }
        self.configured_vek.clone().ok_or_else(|| {
            device_error(format!(
                "the report is signed by a {name}, but the host attached no {name} certificate to the \
                 extended report and none is configured"
            ))
        })
    }
}

impl Platform for SnpPlatform {
    fn kind(&self) -> protocol::platform::Platform {
        protocol::platform::Platform::Snp
    }

    fn simulated(&self) -> bool {
        false
    }

    fn attest(&self, nonce: Option<&[u8]>, user_data: &[u8], public_key: &[u8]) -> Result<Vec<u8>, PlatformError> {
        let policy =
            self.policy_digest.lock().expect("policy lock").clone().ok_or_else(|| PlatformError::Unsupported {
                platform: NAME,
                reason: format!("attest before extend_and_lock({POLICY_PCR}): the policy digest is not recorded"),
            })?;
        let binding = report_data(&policy, nonce, user_data, public_key);
        let reply = self.device.report(binding).map_err(device_error)?;
        if reply.report.len() != REPORT_LEN {
            return Err(device_error(format!("report is {} bytes, expected {REPORT_LEN}", reply.report.len())));
        }
        let vek = self.vek_for(&reply.report, &reply.certs)?;
        Ok(encode_bundle(&reply.report, &SnpCerts { vek, ask: None, asvk: None, ark: None }))
    }

    fn extend_and_lock(&self, index: u16, data: &[u8]) -> Result<(), PlatformError> {
        if index != POLICY_PCR {
            return Err(PlatformError::Unsupported {
                platform: NAME,
                reason: format!("no PCR {index}: only the policy digest (index {POLICY_PCR}) can be recorded"),
            });
        }
        let mut policy = self.policy_digest.lock().expect("policy lock");
        if policy.is_some() {
            return Err(PlatformError::Locked(index));
        }
        *policy = Some(data.to_vec());
        Ok(())
    }

    fn random(&self, buf: &mut [u8]) -> Result<(), PlatformError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new().fill(buf).map_err(|_| PlatformError::Random)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;
    use attestation_verifier::snp::decode_bundle;
    use attestation_verifier::{verify_evidence, Error, Expectations, Options, SnpExpectations, UnixTime};
    use std::sync::Arc;

    /// A fake `/dev/sev-guest` that replays a genuine report, with the host's
    /// certificates packed into and parsed back from the kernel's certificate-table
    /// layout (the same parser `get_ext_report` uses). Records the REPORT_DATA asked for.
    struct FakeSevGuest {
        report: Vec<u8>,
        certs: Vec<(CertType, Vec<u8>)>,
        requests: Arc<Mutex<Vec<[u8; 64]>>>,
    }

    impl SevGuestDevice for FakeSevGuest {
        fn report(&self, report_data: [u8; 64]) -> Result<SnpReply, String> {
            self.requests.lock().unwrap().push(report_data);
            let certs = if self.certs.is_empty() {
                Vec::new()
            } else {
                let table: Vec<CertTableEntry> =
                    self.certs.iter().map(|(t, d)| CertTableEntry::new(t.clone(), d.clone())).collect();
                let mut page = CertTableEntry::cert_table_to_vec_bytes(&table).map_err(|e| e.to_string())?;
                CertTableEntry::vec_bytes_to_cert_table(&mut page).map_err(|e| e.to_string())?
            };
            Ok(SnpReply { report: self.report.clone(), certs })
        }
    }

    fn fake(report: Vec<u8>, certs: Vec<(CertType, Vec<u8>)>) -> (SnpPlatform, Arc<Mutex<Vec<[u8; 64]>>>) {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let dev = FakeSevGuest { report, certs, requests: requests.clone() };
        (SnpPlatform::with_device(Box::new(dev)), requests)
    }

    fn snp_verify(bundle: &[u8], expect: &SnpExpectations, at: u64) -> Result<attestation_verifier::Verdict, Error> {
        verify_evidence(
            attestation_verifier::Platform::Snp,
            bundle,
            &Expectations::Snp(expect.clone()),
            &Options::default(),
            UnixTime::from_secs(at),
        )
    }

    /// Every genuine report goes through the platform unchanged, bundled with the VCEK
    /// the host attached, and the bundle verifies at the time listed for it; the device
    /// was asked for exactly the binding of policy, nonce, user_data and public key.
    #[test]
    fn attest_bundles_real_reports_that_verify() {
        let vectors = testdata::vectors("snp");
        assert_eq!(vectors.len(), 4, "expected the 4 SNP reports of the README");
        for v in vectors {
            let vek = v.vek.clone().expect("vek");
            let (p, requests) = fake(v.bytes.clone(), vec![(CertType::VCEK, vek.clone())]);
            p.extend_and_lock(POLICY_PCR, b"policy digest").unwrap();
            let nonce = b"fresh nonce from the owner";
            let bundle = p.attest(Some(nonce), b"channel binding", b"public key").unwrap();

            let (report, certs) = decode_bundle(&bundle).unwrap();
            assert_eq!(report, v.bytes, "{}: report altered", v.file);
            assert_eq!(certs, SnpCerts { vek, ask: None, asvk: None, ark: None });
            assert_eq!(
                requests.lock().unwrap().as_slice(),
                [report_data(b"policy digest", Some(nonce), b"channel binding", b"public key")]
            );

            let verdict = snp_verify(&bundle, &SnpExpectations::default(), v.verify_at)
                .unwrap_or_else(|e| panic!("{}: {e}", v.file));
            assert!(!verdict.simulated);
            assert_eq!(verdict.snp.unwrap().report_data, v.bytes[0x50..0x90]);
        }
    }

    /// A replayed report does not carry this connection's binding: the owner's
    /// REPORT_DATA check refuses it.
    #[test]
    fn replayed_report_fails_the_owners_binding_check() {
        let v = testdata::vector("snp/snp_gcp_milan_v5_bound_report.bin");
        let (p, _) = fake(v.bytes.clone(), vec![(CertType::VCEK, v.vek.clone().unwrap())]);
        p.extend_and_lock(POLICY_PCR, b"policy").unwrap();
        let bundle = p.attest(Some(b"nonce"), b"binding", b"key").unwrap();
        let want = report_data(b"policy", Some(b"nonce"), b"binding", b"key");
        let expect = SnpExpectations { report_data: Some(want.to_vec()), ..Default::default() };
        assert_eq!(snp_verify(&bundle, &expect, v.verify_at).err(), Some(Error::ReportDataMismatch));
    }

    #[test]
    fn policy_is_recorded_once_and_required() {
        let v = testdata::vector("snp/snp_virtee_milan_report.bin");
        let (p, requests) = fake(v.bytes.clone(), vec![(CertType::VCEK, v.vek.clone().unwrap())]);
        let e = p.attest(None, b"u", b"k").unwrap_err();
        assert!(matches!(e, PlatformError::Unsupported { platform: "snp", .. }), "{e:?}");
        assert!(requests.lock().unwrap().is_empty(), "no report before the policy is recorded");

        assert!(matches!(p.extend_and_lock(0, b"x"), Err(PlatformError::Unsupported { .. })));
        p.extend_and_lock(POLICY_PCR, b"first").unwrap();
        assert!(matches!(p.extend_and_lock(POLICY_PCR, b"second"), Err(PlatformError::Locked(16))));
        p.attest(None, b"u", b"k").unwrap();
        assert_eq!(requests.lock().unwrap()[0], report_data(b"first", None, b"u", b"k"));
    }

    #[test]
    fn binding_separates_every_input() {
        let base = report_data(b"policy", Some(b"nonce"), b"user", b"key");
        let variants = [
            report_data(b"policy2", Some(b"nonce"), b"user", b"key"),
            report_data(b"policy", None, b"user", b"key"),
            report_data(b"policy", Some(b""), b"user", b"key"),
            report_data(b"policy", Some(b"nonce2"), b"user", b"key"),
            report_data(b"policy", Some(b"nonce"), b"user2", b"key"),
            report_data(b"policy", Some(b"nonce"), b"user", b"key2"),
            // Moving bytes across a field boundary changes the binding.
            report_data(b"policy", Some(b"nonc"), b"euser", b"key"),
            report_data(b"policy", Some(b"nonce"), b"use", b"rkey"),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(&base, v, "variant {i} collides");
        }
        assert_eq!(base, report_data(b"policy", Some(b"nonce"), b"user", b"key"));
    }

    #[test]
    fn missing_vek_is_a_clear_error_unless_configured() {
        let v = testdata::vector("snp/snp_trustee_milan_report.bin");
        let (p, _) = fake(v.bytes.clone(), Vec::new());
        p.extend_and_lock(POLICY_PCR, b"p").unwrap();
        let e = p.attest(Some(b"n"), b"u", b"k").unwrap_err();
        assert!(e.to_string().contains("no VCEK certificate"), "{e}");

        let (p, _) = fake(v.bytes.clone(), Vec::new());
        let p = p.with_vek(v.vek.clone().unwrap());
        p.extend_and_lock(POLICY_PCR, b"p").unwrap();
        let bundle = p.attest(Some(b"n"), b"u", b"k").unwrap();
        snp_verify(&bundle, &SnpExpectations::default(), v.verify_at).unwrap();
    }

    #[test]
    fn vek_kind_follows_the_reports_signing_key() {
        let v = testdata::vector("snp/snp_azure_genoa_report.bin");
        // Host attaches ARK/ASK as well as the VCEK: only the VCEK goes into the bundle.
        let certs = vec![
            (CertType::ARK, b"ark".to_vec()),
            (CertType::ASK, b"ask".to_vec()),
            (CertType::VCEK, v.vek.clone().unwrap()),
        ];
        let (p, _) = fake(v.bytes.clone(), certs.clone());
        p.extend_and_lock(POLICY_PCR, b"p").unwrap();
        let (_, got) = decode_bundle(&p.attest(None, b"u", b"k").unwrap()).unwrap();
        assert_eq!(got.vek, v.vek.clone().unwrap());

        // The same report marked as VLEK-signed must not be paired with the VCEK.
        let mut vlek_report = v.bytes.clone();
        vlek_report[0x48] = (vlek_report[0x48] & !0b1_1100) | (1 << 2);
        let (p, _) = fake(vlek_report, certs);
        p.extend_and_lock(POLICY_PCR, b"p").unwrap();
        let e = p.attest(None, b"u", b"k").unwrap_err();
        assert!(e.to_string().contains("no VLEK certificate"), "{e}");
    }

    #[test]
    fn short_report_is_refused() {
        let (p, _) = fake(vec![0; 100], Vec::new());
        p.extend_and_lock(POLICY_PCR, b"p").unwrap();
        assert!(p.attest(None, b"u", b"k").unwrap_err().to_string().contains("expected 1184"));
    }
}
