//! The one seam between the supervisor and the hardware: attest, extend-and-lock a
//! measurement register, and random bytes.

use attestation_verifier::{simulated, Claims};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("PCR {0} is locked")]
    Locked(u16),
    #[error("platform randomness failed")]
    Random,
    #[error("cannot measure the running binary: {0}")]
    Measure(String),
    #[error("platform {0:?} is not available in this build; use `simulated` for development")]
    Unavailable(String),
}

pub trait Platform: Send + Sync {
    /// "nitro", "snp" or "simulated".
    fn name(&self) -> &'static str;
    /// True when evidence is not hardware-backed.
    fn simulated(&self) -> bool;
    /// Evidence binding `nonce`, `user_data` and `public_key` to the measured state.
    fn attest(&self, nonce: Option<&[u8]>, user_data: &[u8], public_key: &[u8]) -> Result<Vec<u8>, PlatformError>;
    /// Extend a measurement register with `data` and lock it against further change.
    fn extend_and_lock(&self, index: u16, data: &[u8]) -> Result<(), PlatformError>;
    fn random(&self, buf: &mut [u8]) -> Result<(), PlatformError>;
}

/// Nitro-style PCR extension, as the NSM does it: `PCR = SHA-384(PCR || data)`.
pub fn extend_pcr(pcr: &[u8], data: &[u8]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA384);
    ctx.update(pcr);
    ctx.update(data);
    ctx.finish().as_ref().to_vec()
}

/// Development platform. Its "PCR0" is the SHA-384 of the running executable, reported
/// by the process itself, and its evidence is signed with a published development key:
/// anyone can forge it. It exists so the whole flow runs on a laptop and in CI; every
/// document, result and audit record produced under it says `simulated`.
pub struct SimulatedPlatform {
    pcrs: Mutex<BTreeMap<u16, (Vec<u8>, bool)>>,
    module_id: String,
}

/// PCR index our policy digest is extended into (the first application PCR on Nitro).
pub const POLICY_PCR: u16 = 16;

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
    fn name(&self) -> &'static str {
        "simulated"
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
pub fn from_name(name: &str) -> Result<Box<dyn Platform>, PlatformError> {
    match name {
        "simulated" => Ok(Box::new(SimulatedPlatform::new()?)),
        other => Err(PlatformError::Unavailable(other.to_string())),
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
    fn no_silent_fallback_to_simulated() {
        assert!(matches!(from_name("nitro"), Err(PlatformError::Unavailable(_))));
    }
}
