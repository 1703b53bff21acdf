//! `certificate_ed25519_key`, the one certificate helper clients use: the enclave's TLS
//! certificate (Ed25519, self-signed by rcgen, as `enclave-app/src/tls.rs` makes it) must
//! carry the key its attestation evidence names.

use attestation_verifier::certificate_ed25519_key;

fn enclave_like_certificate() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["cleanroom-enclave".to_string()]).unwrap().self_signed(&key).unwrap();
    (cert.der().to_vec(), key.public_key_raw().to_vec())
}

#[test]
fn the_key_of_an_ed25519_certificate() {
    let (der, public) = enclave_like_certificate();
    assert_eq!(certificate_ed25519_key(&der).map(|k| k.to_vec()), Some(public));
    // another certificate has another key
    let (other, _) = enclave_like_certificate();
    assert_ne!(certificate_ed25519_key(&other), certificate_ed25519_key(&der));
}

#[test]
fn other_keys_and_non_certificates_give_none() {
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap().self_signed(&p256).unwrap();
    assert_eq!(certificate_ed25519_key(cert.der()), None);
    // the AWS Nitro root: a P-384 key
    assert_eq!(certificate_ed25519_key(attestation_verifier::nitro::AWS_NITRO_ROOT_G1), None);
    for len in 0..64 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
        assert_eq!(certificate_ed25519_key(&junk), None);
    }
    assert_eq!(certificate_ed25519_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
}

#[test]
fn every_truncation_or_extension_gives_none() {
    let (der, _) = enclave_like_certificate();
    for n in 0..der.len() {
        assert_eq!(certificate_ed25519_key(&der[..n]), None, "{n}");
    }
    let mut long = der.clone();
    long.push(0);
    assert_eq!(certificate_ed25519_key(&long), None);
}
