//! Owner-only diagnostics of a spent job.
//!
//! After a grant is spent, why a job failed, how many rows and units it read and how many
//! units were absent after a fault all depend on the data, so none of it may leave in clear.
//! The owner may see its own data: when its policy names an X25519 key, the enclave seals
//! these figures to that key and puts the ciphertext in the job's audit record. The
//! ciphertext has the same length for every job (the plaintext is padded to
//! [`PLAINTEXT_LEN`]), and every spent job under such a policy carries one, success or
//! failure, so its presence and size say nothing either.
//!
//! Construction: an ephemeral X25519 key per job; key = HKDF-SHA256(salt = ephemeral
//! public ‖ owner public, ikm = shared secret, info = [`CONTEXT`]); AES-256-GCM under that
//! single-use key with a zero nonce, the associated data naming the job.

use crate::Bytes;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

pub const CONTEXT: &[u8] = b"cleanroom/owner-diagnostics/v1";
/// Padded plaintext length: the ciphertext is always this plus the 16-byte tag.
pub const PLAINTEXT_LEN: usize = 2048;
/// Longest failure text kept (longer text is cut at a character boundary).
pub const MAX_FAILURE_LEN: usize = 1024;
/// Most distinct fault kinds kept.
pub const MAX_FAULT_KINDS: usize = 32;

/// What the owner learns about one spent job. Exact, data-dependent, owner-only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    pub rows: u64,
    pub units: u64,
    /// Units absent after a fault while scoring them, by kind of fault.
    pub faults: BTreeMap<String, u64>,
    /// Why the job failed, when it did.
    pub failure: Option<String>,
}

/// The sealed form, as it appears in an audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedDiagnostics {
    pub ephemeral_public: Bytes,
    pub ciphertext: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiagnosticsError {
    #[error("the owner's diagnostics key must be 32 bytes")]
    BadKey,
    #[error("key agreement produced a degenerate secret (a low-order public key)")]
    Degenerate,
    #[error("system randomness failed")]
    Random,
    #[error("diagnostics do not decrypt under this key and job (wrong key, or tampered)")]
    Decrypt,
    #[error("decrypted diagnostics are malformed")]
    Malformed,
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn aead_key(shared: &[u8; 32], ephemeral: &[u8; 32], owner: &[u8; 32]) -> Result<LessSafeKey, DiagnosticsError> {
    if shared.iter().all(|&b| b == 0) {
        return Err(DiagnosticsError::Degenerate);
    }
    let mut salt = Vec::with_capacity(64);
    salt.extend_from_slice(ephemeral);
    salt.extend_from_slice(owner);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared);
    let okm = prk.expand(&[CONTEXT], Len(32)).map_err(|_| DiagnosticsError::Decrypt)?;
    let mut key = Zeroizing::new([0u8; 32]);
    okm.fill(&mut key[..]).map_err(|_| DiagnosticsError::Decrypt)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key[..]).map_err(|_| DiagnosticsError::Decrypt)?;
    Ok(LessSafeKey::new(unbound))
}

/// Fit `d` into the padded plaintext: cut the failure text and the fault kinds to their
/// limits, then pad. Deterministic, and never larger than [`PLAINTEXT_LEN`].
fn padded(d: &Diagnostics) -> Zeroizing<Vec<u8>> {
    let mut d = d.clone();
    if let Some(f) = &mut d.failure {
        if f.len() > MAX_FAILURE_LEN {
            let mut cut = MAX_FAILURE_LEN;
            while !f.is_char_boundary(cut) {
                cut -= 1;
            }
            f.truncate(cut);
        }
    }
    while d.faults.len() > MAX_FAULT_KINDS {
        d.faults.pop_last();
    }
    let body = Zeroizing::new(crate::to_cbor(&d));
    // Fault-kind names are short; with the limits above the body fits with a wide margin.
    let body: &[u8] = if body.len() + 4 <= PLAINTEXT_LEN { &body } else { &[] };
    let mut out = Zeroizing::new(vec![0u8; PLAINTEXT_LEN]);
    out[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    out[4..4 + body.len()].copy_from_slice(body);
    out
}

/// Seal `d` to the owner's X25519 public key; `aad` names the job (query digest, grant).
pub fn seal(owner_public: &[u8], aad: &[u8], d: &Diagnostics) -> Result<SealedDiagnostics, DiagnosticsError> {
    let owner: [u8; 32] = owner_public.try_into().map_err(|_| DiagnosticsError::BadKey)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed[..])
        .map_err(|_| DiagnosticsError::Random)?;
    let secret = x25519_dalek::StaticSecret::from(*seed);
    let ephemeral = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let shared = Zeroizing::new(secret.diffie_hellman(&x25519_dalek::PublicKey::from(owner)).to_bytes());
    let key = aead_key(&shared, &ephemeral, &owner)?;
    let mut buf = padded(d).to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(aad), &mut buf)
        .map_err(|_| DiagnosticsError::Decrypt)?;
    Ok(SealedDiagnostics { ephemeral_public: Bytes(ephemeral.to_vec()), ciphertext: Bytes(buf) })
}

/// The owner's side: open with its X25519 secret.
pub fn open(owner_secret: &[u8; 32], aad: &[u8], s: &SealedDiagnostics) -> Result<Diagnostics, DiagnosticsError> {
    let secret = x25519_dalek::StaticSecret::from(*owner_secret);
    let owner = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let ephemeral: [u8; 32] = s.ephemeral_public.as_slice().try_into().map_err(|_| DiagnosticsError::Decrypt)?;
    let shared = Zeroizing::new(secret.diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral)).to_bytes());
    let key = aead_key(&shared, &ephemeral, &owner)?;
    let mut buf = Zeroizing::new(s.ciphertext.0.clone());
    let plain = key
        .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(aad), &mut buf)
        .map_err(|_| DiagnosticsError::Decrypt)?;
    if plain.len() != PLAINTEXT_LEN {
        return Err(DiagnosticsError::Malformed);
    }
    let n = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]) as usize;
    let body = plain.get(4..4 + n).ok_or(DiagnosticsError::Malformed)?;
    crate::from_cbor(body).map_err(|_| DiagnosticsError::Malformed)
}

/// The public half of an owner's diagnostics secret.
pub fn public_key(owner_secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*owner_secret)).to_bytes()
}

/// Associated data binding diagnostics to one job.
pub fn job_aad(query_digest: &crate::Digest, grant_id: &str) -> Vec<u8> {
    crate::Digest::of_parts("cleanroom/diagnostics-aad/v1", &[query_digest.as_bytes(), grant_id.as_bytes()])
        .as_bytes()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> ([u8; 32], [u8; 32]) {
        let s = [9u8; 32];
        (s, public_key(&s))
    }

    #[test]
    fn round_trip_and_fixed_size() {
        let (sk, pk) = owner();
        let small = Diagnostics { rows: 1, ..Default::default() };
        let mut big = Diagnostics { rows: u64::MAX, units: 7, failure: Some("x".repeat(5000)), ..Default::default() };
        for i in 0..100 {
            big.faults.insert(format!("fault-kind-{i:03}"), i);
        }
        let a = seal(&pk, b"job", &small).unwrap();
        let b = seal(&pk, b"job", &big).unwrap();
        assert_eq!(a.ciphertext.0.len(), PLAINTEXT_LEN + 16);
        assert_eq!(a.ciphertext.0.len(), b.ciphertext.0.len(), "the size says nothing about the content");
        assert_eq!(open(&sk, b"job", &a).unwrap(), small);
        let opened = open(&sk, b"job", &b).unwrap();
        assert_eq!(opened.failure.unwrap().len(), MAX_FAILURE_LEN);
        assert_eq!(opened.faults.len(), MAX_FAULT_KINDS);
    }

    #[test]
    fn wrong_key_job_or_tampering_fail() {
        let (sk, pk) = owner();
        let d = Diagnostics { units: 3, ..Default::default() };
        let s = seal(&pk, b"job-1", &d).unwrap();
        assert_eq!(open(&[8; 32], b"job-1", &s), Err(DiagnosticsError::Decrypt));
        assert_eq!(open(&sk, b"job-2", &s), Err(DiagnosticsError::Decrypt));
        let mut t = s.clone();
        t.ciphertext.0[100] ^= 1;
        assert_eq!(open(&sk, b"job-1", &t), Err(DiagnosticsError::Decrypt));
        assert_eq!(seal(&[1; 31], b"job", &d).unwrap_err(), DiagnosticsError::BadKey);
        // A low-order public key (all zeros) gives a degenerate secret: refused, not used.
        assert_eq!(seal(&[0; 32], b"job", &d).unwrap_err(), DiagnosticsError::Degenerate);
    }
}
