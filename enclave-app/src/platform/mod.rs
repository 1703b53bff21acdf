//! The one seam between the supervisor and the hardware: attest, extend-and-lock a
//! measurement register, and random bytes.
//!
//! | platform | module | device |
//! |---|---|---|
//! | `nitro` | [`nitro`] | `/dev/nsm` (AWS Nitro Secure Module) |
//! | `snp` | [`snp`] | `/dev/sev-guest` (AMD SEV-SNP guest driver) |
//! | `simulated` | here | none: development key, insecure |
//!
//! The hardware code is written against a small device trait per platform
//! ([`nitro::NsmDevice`], [`snp::SevGuestDevice`]). The tests drive it with fake devices
//! that replay genuine, vendor-signed responses from `shared/testdata/attestation/`;
//! the real device paths (`/dev/nsm`, `/dev/sev-guest`) cannot be exercised without the
//! hardware. See `docs/platforms.md`.

pub mod nitro;
pub mod snp;

pub use nitro::NitroPlatform;
pub use snp::SnpPlatform;

use attestation_verifier::{simulated, Claims};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    #[error("PCR {0} is locked")]
    Locked(u16),
    #[error("platform randomness failed")]
    Random,
    #[error("cannot measure the running binary: {0}")]
    Measure(String),
    #[error("unknown platform {0:?} (expected nitro, snp or simulated)")]
    Unavailable(String),
    /// The platform's device cannot be opened or does not answer like that device.
    /// Never a reason to fall back to `simulated`.
    #[error("platform {platform}: device {path} is not usable: {reason} (no fallback to simulated)")]
    DeviceUnavailable { platform: &'static str, path: &'static str, reason: String },
    /// The device answered a request with an error or an unexpected response.
    #[error("platform {platform}: {request} failed: {reason}")]
    Device { platform: &'static str, request: &'static str, reason: String },
    /// The request cannot be expressed on this platform.
    #[error("platform {platform}: {reason}")]
    Unsupported { platform: &'static str, reason: String },
}

pub trait Platform: Send + Sync {
    /// Which platform this is: what evidence, results and log records name.
    fn kind(&self) -> protocol::platform::Platform;
    /// "nitro", "snp" or "simulated".
    fn name(&self) -> &'static str {
        self.kind().as_str()
    }
    /// True when evidence is not hardware-backed.
    fn simulated(&self) -> bool;
    /// True when this platform's NSM answered with an unsigned document of QEMU's
    /// emulated NSM (`nitro-enclave` machine; known after the first `attest`). An enclave
    /// on an emulated NSM accepts its predecessors' and peers' emulated evidence, because
    /// its own has no hardware root either; on real Nitro this is always false.
    fn emulated_nsm(&self) -> bool {
        false
    }
    /// Evidence binding `nonce`, `user_data` and `public_key` to the measured state.
    fn attest(&self, nonce: Option<&[u8]>, user_data: &[u8], public_key: &[u8]) -> Result<Vec<u8>, PlatformError>;
    /// Extend a measurement register with `data` and lock it against further change.
    fn extend_and_lock(&self, index: u16, data: &[u8]) -> Result<(), PlatformError>;
    fn random(&self, buf: &mut [u8]) -> Result<(), PlatformError>;
}

/// Nitro-style PCR extension, as the NSM does it (one definition, in `protocol::pcr`).
pub use protocol::pcr::{extend as extend_pcr, POLICY_PCR};

/// Development platform. Its "PCR0" is the SHA-384 of the running executable, reported
/// by the process itself, and its evidence is signed with a published development key:
/// anyone can forge it. It exists so the whole flow runs on a laptop and in CI; every
/// document, result and audit record produced under it says `simulated`.
pub struct SimulatedPlatform {
    pcrs: Mutex<BTreeMap<u16, (Vec<u8>, bool)>>,
    module_id: String,
}

impl SimulatedPlatform {
    pub fn new() -> Result<Self, PlatformError> {
        let exe = std::env::current_exe().map_err(|e| PlatformError::Measure(e.to_string()))?;
        let bytes = std::fs::read(&exe).map_err(|e| PlatformError::Measure(e.to_string()))?;
        Ok(Self::with_measurement(&bytes))
    }

    /// A simulated platform whose PCR0 is the SHA-384 of `image`.
    pub fn with_measurement(image: &[u8]) -> Self {
        let pcr0 = ring::digest::digest(&ring::digest::SHA384, image).as_ref().to_vec();
        let mut pcrs = BTreeMap::new();
        pcrs.insert(0, (pcr0, true));
        pcrs.insert(POLICY_PCR, (vec![0u8; 48], false));
        SimulatedPlatform { pcrs: Mutex::new(pcrs), module_id: "simulated-cleanroom-enclave".into() }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Platform for SimulatedPlatform {
    fn kind(&self) -> protocol::platform::Platform {
        protocol::platform::Platform::Simulated
    }
    fn simulated(&self) -> bool {
        true
    }
    fn attest(&self, nonce: Option<&[u8]>, user_data: &[u8], public_key: &[u8]) -> Result<Vec<u8>, PlatformError> {
        let mut claims = Claims::new(self.module_id.clone(), now_ms());
        claims.pcrs = self.pcrs.lock().expect("pcr lock").iter().map(|(i, (v, _))| (*i, v.clone())).collect();
        claims.nonce = nonce.map(<[u8]>::to_vec);
        claims.user_data = Some(user_data.to_vec());
        claims.public_key = Some(public_key.to_vec());
        Ok(simulated::issue_simulated(&claims))
    }
    fn extend_and_lock(&self, index: u16, data: &[u8]) -> Result<(), PlatformError> {
        let mut pcrs = self.pcrs.lock().expect("pcr lock");
        let entry = pcrs.entry(index).or_insert_with(|| (vec![0u8; 48], false));
        if entry.1 {
            return Err(PlatformError::Locked(index));
        }
        entry.0 = extend_pcr(&entry.0, data);
        entry.1 = true;
        Ok(())
    }
    fn random(&self, buf: &mut [u8]) -> Result<(), PlatformError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new().fill(buf).map_err(|_| PlatformError::Random)
    }
}

/// Build the platform named on the command line. There is no fallback: asking for
/// `nitro` on a machine without the NSM device is an error, never a simulated run.
///
/// `nitro` opens `/dev/nsm` and checks that it answers as a Nitro Secure Module; `snp`
/// opens `/dev/sev-guest`. Either fails with [`PlatformError::DeviceUnavailable`] when
/// the device is absent.
pub fn open(kind: protocol::platform::Platform) -> Result<Box<dyn Platform>, PlatformError> {
    use protocol::platform::Platform as Kind;
    match kind {
        Kind::Simulated => Ok(Box::new(SimulatedPlatform::new()?)),
        Kind::Nitro => Ok(Box::new(NitroPlatform::open()?)),
        Kind::Snp => Ok(Box::new(SnpPlatform::open()?)),
        other => Err(PlatformError::Unavailable(other.to_string())),
    }
}

/// The genuine attestation vectors in `shared/testdata/attestation/` (read-only), as
/// listed in its `expected.json`.
#[cfg(test)]
pub(crate) mod testdata {
    pub struct Vector {
        pub file: String,
        pub bytes: Vec<u8>,
        /// SEV-SNP: the VCEK/VLEK (DER) that signed the report.
        pub vek: Option<Vec<u8>>,
        pub verify_at: u64,
    }

    pub fn dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation")
    }

    fn read(name: &str) -> Vec<u8> {
        let path = dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn vectors(kind: &str) -> Vec<Vector> {
        let list: Vec<serde_json::Value> = serde_json::from_slice(&read("expected.json")).expect("expected.json");
        list.iter()
            .filter(|e| e["kind"] == kind && e["verdict"] == "valid")
            .map(|e| {
                let file = e["file"].as_str().expect("file").to_owned();
                Vector {
                    bytes: read(&file),
                    vek: e["vek"].as_str().map(read),
                    verify_at: e["verify_at_unix"].as_u64().expect("verify_at_unix"),
                    file,
                }
            })
            .collect()
    }

    pub fn vector(file: &str) -> Vector {
        let kind = file.split('/').next().unwrap_or_default();
        vectors(kind).into_iter().find(|v| v.file == file).unwrap_or_else(|| panic!("no vector {file}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_extends_once_then_locks() {
        let p = SimulatedPlatform::with_measurement(b"image");
        p.extend_and_lock(POLICY_PCR, b"policy").unwrap();
        assert!(matches!(p.extend_and_lock(POLICY_PCR, b"other"), Err(PlatformError::Locked(16))));
        assert!(matches!(p.extend_and_lock(0, b"x"), Err(PlatformError::Locked(0))));
    }

    #[test]
    fn unknown_platform_is_refused() {
        // An unknown name never becomes a platform: it fails where it is parsed.
        let err = "sgx".parse::<protocol::platform::Platform>().expect_err("unknown platform must fail");
        assert!(err.contains("nitro, snp, simulated"), "{err}");
    }

    /// Asking for real hardware on a machine without it is an error that names the
    /// device, never a simulated platform.
    #[test]
    fn no_silent_fallback_to_simulated() {
        for (name, path) in [("nitro", nitro::NSM_DEVICE), ("snp", snp::SEV_GUEST_DEVICE)] {
            if std::path::Path::new(path).exists() {
                eprintln!("{path} exists here: skipping the absent-device check for {name}");
                continue;
            }
            let err =
                open(name.parse().unwrap()).err().unwrap_or_else(|| panic!("{name} must not open without {path}"));
            match &err {
                PlatformError::DeviceUnavailable { platform, path: p, .. } => {
                    assert_eq!(*platform, name);
                    assert_eq!(*p, path);
                }
                other => panic!("{name}: unexpected error {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(path) && msg.contains("no fallback to simulated"), "{msg}");
        }
    }
}
