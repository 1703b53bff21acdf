//! The enclave's TLS 1.3 server identity: a self-signed certificate for the attested
//! ephemeral Ed25519 key. Clients do not trust it by PKI; they trust the attestation
//! evidence that names the same key and binds this very connection's exporter.

use protocol::signing::SigningKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}

pub fn server_config(key: &SigningKey) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let pkcs8 = key.pkcs8_der();
    let pkcs8_der = PrivatePkcs8KeyDer::from(pkcs8.to_vec());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8_der, &rcgen::PKCS_ED25519)?;
    let params = rcgen::CertificateParams::new(vec!["cleanroom-enclave".to_string()])?;
    let cert = params.self_signed(&key_pair)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], PrivateKeyDer::Pkcs8(pkcs8_der))?;
    Ok(Arc::new(config))
}
