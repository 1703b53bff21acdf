//! The client side of an attested TLS channel to an enclave, shared by the owner's and
//! provider's client (`cleanroom`) and by a coordinator reaching its shards.
//!
//! There is no PKI: the enclave's certificate is self-signed for its ephemeral key, and
//! trust comes from attestation evidence that names the same key and binds the
//! connection's exporter. So the verifier here accepts any certificate during the
//! handshake, but still makes the server prove possession of the certificate's key (the
//! TLS 1.3 signature is checked), refuses TLS 1.2, and keeps the certificate so that,
//! once the evidence is verified, [`CertRecorder::certifies`] can require it to be for
//! the attested key. A relay that terminated TLS could not present that certificate.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};

/// The name every enclave's certificate carries (it names nothing: trust is attestation).
pub const SERVER_NAME: &str = "cleanroom-enclave";

/// A TLS 1.3 client configuration for an enclave, and the recorder of the certificate
/// its server presents.
pub fn client_config() -> Result<(Arc<rustls::ClientConfig>, Arc<CertRecorder>), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(CertRecorder { provider: provider.clone(), seen: Mutex::new(None) });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    Ok((Arc::new(config), recorder))
}

pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a static, valid name")
}

/// Remembers the server's certificate; see the crate documentation.
#[derive(Debug)]
pub struct CertRecorder {
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl CertRecorder {
    /// Whether the server presented a certificate for the Ed25519 key `key`.
    pub fn certifies(&self, key: &[u8]) -> bool {
        let seen = self.seen.lock().expect("certificate lock");
        seen.as_deref().and_then(attestation_verifier::certificate_ed25519_key).is_some_and(|k| k[..] == key[..])
    }
}

impl ServerCertVerifier for CertRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("certificate lock") = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not accepted".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A TLS 1.3 server with a self-signed Ed25519 certificate, as an enclave has; its
    /// raw public key.
    fn server() -> (rustls::ServerConnection, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.into()]).unwrap().self_signed(&key).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap();
        (rustls::ServerConnection::new(Arc::new(config)).unwrap(), key.public_key_raw().to_vec())
    }

    /// Pump bytes between the two ends until both finish the handshake.
    fn handshake(client: &mut rustls::ClientConnection, server: &mut rustls::ServerConnection) {
        for _ in 0..16 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets().unwrap();
            if !client.is_handshaking() && !server.is_handshaking() {
                return;
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn it_certifies_the_servers_key_and_no_other() {
        let (config, recorder) = client_config().unwrap();
        assert!(!recorder.certifies(&[0; 32]), "nothing is certified before a handshake");
        let (mut server, key) = server();
        let mut client = rustls::ClientConnection::new(config, server_name()).unwrap();
        handshake(&mut client, &mut server);
        assert!(recorder.certifies(&key));
        let mut other = key.clone();
        other[0] ^= 1;
        assert!(!recorder.certifies(&other));
        assert!(!recorder.certifies(&key[..31]));
    }
}
