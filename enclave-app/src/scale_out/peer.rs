//! One enclave's identity in a sharded job, and the mutually attested channel between a
//! coordinator (TLS client) and a shard (TLS server).
//!
//! Both sides require of the other exactly what they are themselves: the same image
//! (read from their own boot evidence, which the owner verified against the PCRs or
//! launch measurement it recomputed from source), the same policy digest, the same
//! platform, and evidence bound to this connection's TLS exporter, their fresh nonce, the
//! peer's role and the job (see `shard::wire`). Simulated evidence is accepted only by a
//! simulated enclave; a hardware enclave never accepts it.

use crate::platform::{Platform, PlatformError, POLICY_PCR};
use attestation_verifier::{verify_evidence, Expectations, NitroExpectations, Options, UnixTime};
use protocol::policy::Policy;
use protocol::signing::SigningKey;
use protocol::wire::EXPORTER_LABEL;
use protocol::{Bytes, Digest};
use shard::wire::{evidence_binding, PeerMessage, Role};
use std::sync::Arc;
use tlog::signer::ImageReference;
use zeroize::Zeroize;

/// Evidence older than this is refused (it was asked for moments ago).
const MAX_EVIDENCE_AGE_MS: u64 = 60_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("own evidence: {0}")]
    OwnEvidence(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error("TLS: {0}")]
    Handshake(String),
    #[error("the peer's evidence is for role {found:?}, expected {expected:?}")]
    Role { expected: Role, found: Role },
    #[error("the peer runs policy {0}, not this enclave's")]
    Policy(Digest),
    #[error("the peer's platform ({found}) is not this enclave's ({expected})")]
    PlatformMismatch { expected: String, found: String },
    #[error("the peer's evidence does not verify: {0}")]
    Evidence(String),
    #[error("the peer's TLS certificate is not for its attested key (a relay terminated TLS)")]
    CertificateKey,
    #[error("the peer's attested key is not the one the owner attested for this shard")]
    UnexpectedKey,
    #[error("the peer sent {0} where evidence was due")]
    Unexpected(&'static str),
    #[error("nonce must be 16..=64 bytes")]
    BadNonce,
}

/// What a sharded enclave is: its platform, ephemeral key, policy and own image.
pub struct Identity {
    platform: Box<dyn Platform>,
    key: SigningKey,
    policy: Policy,
    policy_digest: Digest,
    image: ImageReference,
    /// The evidence taken at boot, bound to the policy and the key (no nonce).
    boot: Vec<u8>,
    tls: Arc<rustls::ServerConfig>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Identity {
    /// Boot: an ephemeral key from the platform's randomness, the policy measured into
    /// PCR16 and locked, evidence of both, and this enclave's image read from that evidence
    /// (what every peer, and every earlier signer of the audit log, must also run). The
    /// supervisor (`service::Enclave`) and both sharded roles start here.
    pub fn boot(platform: Box<dyn Platform>, policy: Policy) -> Result<Identity, PeerError> {
        let mut seed = [0u8; 32];
        platform.random(&mut seed)?;
        let key = SigningKey::from_seed(seed);
        seed.zeroize();
        let policy_digest = policy.digest();
        platform.extend_and_lock(POLICY_PCR, policy_digest.as_bytes())?;
        let boot = platform.attest(None, policy_digest.as_bytes(), &key.public_key())?;
        let image = tlog::signer::own_image(
            platform.kind(),
            &key.public_key(),
            &policy_digest,
            &boot,
            now_ms() / 1000,
            platform.simulated(),
            platform.emulated_nsm(),
        )
        .map_err(|e| PeerError::OwnEvidence(e.to_string()))?;
        let tls = crate::tls::server_config(&key)?;
        Ok(Identity { platform, key, policy, policy_digest, image, boot, tls })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    pub fn policy_digest(&self) -> Digest {
        self.policy_digest
    }
    /// For callers that hold references with the identity's lifetime.
    pub fn policy_digest_ref(&self) -> &Digest {
        &self.policy_digest
    }
    pub fn image(&self) -> &ImageReference {
        &self.image
    }
    pub fn boot_evidence(&self) -> &[u8] {
        &self.boot
    }
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key()
    }
    pub fn key(&self) -> &SigningKey {
        &self.key
    }
    pub fn simulated(&self) -> bool {
        self.platform.simulated()
    }
    /// The platform is Nitro on QEMU's emulated NSM (unsigned evidence): test only.
    pub fn emulated_nsm(&self) -> bool {
        self.platform.emulated_nsm()
    }
    pub fn platform(&self) -> &dyn Platform {
        self.platform.as_ref()
    }
    pub fn tls_server(&self) -> Arc<rustls::ServerConfig> {
        self.tls.clone()
    }

    pub fn fresh_nonce(&self) -> Result<Vec<u8>, PeerError> {
        let mut n = vec![0u8; 32];
        self.platform.random(&mut n)?;
        Ok(n)
    }

    /// This enclave's evidence as `role`, answering the peer's `nonce` on the connection
    /// with `exporter`, for `job`; carrying our own challenge `ours` for the peer.
    pub fn evidence(
        &self,
        role: Role,
        nonce: &[u8],
        exporter: &[u8],
        job: &Digest,
        ours: Vec<u8>,
    ) -> Result<PeerMessage, PeerError> {
        if !(16..=64).contains(&nonce.len()) {
            return Err(PeerError::BadNonce);
        }
        let pk = self.key.public_key();
        let binding = evidence_binding(role, nonce, exporter, &pk, &self.policy_digest, job);
        let document = self.platform.attest(Some(nonce), binding.as_bytes(), &pk)?;
        Ok(PeerMessage::Evidence {
            role,
            platform: self.platform.kind(),
            simulated: self.platform.simulated(),
            document: Bytes(document),
            public_key: Bytes(pk),
            policy_digest: self.policy_digest,
            nonce: Bytes(ours),
        })
    }

    /// Check the peer's evidence message: role, policy, platform, and the document
    /// against our own image, our `nonce`, this connection's `exporter` and the `job`.
    /// Returns the peer's attested key and its challenge for us.
    pub fn verify_peer(
        &self,
        msg: PeerMessage,
        expected_role: Role,
        nonce: &[u8],
        exporter: &[u8],
        job: &Digest,
    ) -> Result<(Vec<u8>, Vec<u8>), PeerError> {
        let (role, platform, simulated, document, public_key, policy_digest, theirs) = match msg {
            PeerMessage::Evidence { role, platform, simulated, document, public_key, policy_digest, nonce } => {
                (role, platform, simulated, document, public_key, policy_digest, nonce)
            }
            other => return Err(PeerError::Unexpected(message_name(&other))),
        };
        if role != expected_role {
            return Err(PeerError::Role { expected: expected_role, found: role });
        }
        if policy_digest != self.policy_digest {
            return Err(PeerError::Policy(policy_digest));
        }
        if platform != self.platform.kind() || simulated != self.platform.simulated() {
            return Err(PeerError::PlatformMismatch {
                expected: self.platform.kind().to_string(),
                found: platform.to_string(),
            });
        }
        let binding = evidence_binding(role, nonce, exporter, &public_key.0, &self.policy_digest, job);
        let kind = tlog::signer::evidence_kind(platform).map_err(|e| PeerError::Evidence(e.to_string()))?;
        let expectations = match &self.image {
            ImageReference::Pcrs(pcrs) => {
                let mut pcrs = pcrs.clone();
                pcrs.insert(POLICY_PCR, protocol::pcr::policy_pcr(&self.policy_digest));
                Expectations::Nitro(NitroExpectations {
                    pcrs,
                    nonce: Some(nonce.to_vec()),
                    user_data: Some(binding.as_bytes().to_vec()),
                    public_key: Some(public_key.0.clone()),
                    max_age_ms: Some(MAX_EVIDENCE_AGE_MS),
                    module_id_prefix: None,
                })
            }
            ImageReference::Snp(reference) => Expectations::Snp(
                reference.expectations(Some(
                    protocol::wire::snp_report_data(
                        self.policy_digest.as_bytes(),
                        Some(nonce),
                        binding.as_bytes(),
                        &public_key.0,
                    )
                    .to_vec(),
                )),
            ),
        };
        // A peer on an emulated NSM is accepted only by a peer whose own NSM is emulated.
        let options = Options {
            allow_simulated: self.platform.simulated(),
            allow_debug: false,
            allow_emulated_nsm: self.platform.emulated_nsm(),
        };
        verify_evidence(kind, &document.0, &expectations, &options, UnixTime::from_secs(now_ms() / 1000))
            .map_err(|e| PeerError::Evidence(e.to_string()))?;
        Ok((public_key.0, theirs.0))
    }
}

pub fn message_name(m: &PeerMessage) -> &'static str {
    match m {
        PeerMessage::Hello { .. } => "hello",
        PeerMessage::Evidence { .. } => "evidence",
        PeerMessage::Work(_) => "work",
        PeerMessage::Report(_) => "report",
        PeerMessage::Refused { .. } => "refused",
    }
}

/// The connection's TLS exporter: what every piece of evidence on it binds.
pub fn exporter<C, D>(conn: &C) -> Result<[u8; 32], PeerError>
where
    C: std::ops::Deref<Target = rustls::ConnectionCommon<D>>,
{
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, None).map_err(|e| PeerError::Handshake(e.to_string()))?;
    Ok(out)
}

/// A TLS client config for reaching a peer enclave (`attested_tls`: no PKI, the
/// certificate is kept to be compared with the attested key).
pub fn client_config() -> Result<(Arc<rustls::ClientConfig>, Arc<CertRecorder>), PeerError> {
    attested_tls::client_config().map_err(|e| PeerError::Handshake(e.to_string()))
}

pub use attested_tls::{server_name, CertRecorder};
