//! Certificates built in tests (a tiny DER writer plus ring's ECDSA P-384 signing), so
//! chain rules can be violated on purpose and chains that no genuine fixture covers can
//! be built under a test root. Nothing here is trusted by the verifier itself.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};

use crate::der::oid;

pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn name(cn: &str) -> Vec<u8> {
    let atv = seq(&[tlv(0x06, oid::COMMON_NAME), tlv(0x0c, cn.as_bytes())]);
    seq(&[tlv(0x31, &atv)])
}

/// A non-critical extension `oid` whose extnValue is `value` (already DER).
pub fn extension(oid: &[u8], value: &[u8]) -> Vec<u8> {
    seq(&[tlv(0x06, oid), tlv(0x04, value)])
}

/// A P-384 key pair (the pkcs8 is kept to sign reports with the fixed r‖s encoding too).
pub struct Key(pub EcdsaKeyPair, Vec<u8>);

impl Key {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Key(pair, pkcs8.as_ref().to_vec())
    }

    pub fn spki(&self) -> Vec<u8> {
        let alg = seq(&[tlv(0x06, oid::EC_PUBLIC_KEY), tlv(0x06, oid::SECP384R1)]);
        let mut bits = vec![0u8];
        bits.extend_from_slice(self.0.public_key().as_ref());
        seq(&[alg, tlv(0x03, &bits)])
    }

    /// ECDSA P-384/SHA-384 signature as r‖s, 48 bytes each, big-endian (as an SNP report holds it, reversed).
    pub fn sign_fixed(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &self.1, &rng).unwrap();
        k.sign(&rng, msg).unwrap().as_ref().to_vec()
    }
}

pub struct Spec<'a> {
    pub subject: &'a str,
    pub issuer: &'a str,
    pub ca: Option<(bool, Option<u8>)>,
    pub key_usage: Option<u8>,
    /// Raw KeyUsage BIT STRING content (unused-bits octet first), instead of `key_usage`.
    pub key_usage_bits: Option<&'a [u8]>,
    pub extra_critical: bool,
    /// Further (non-critical) extensions, each made by [`extension`].
    pub extensions: &'a [Vec<u8>],
    /// notBefore, notAfter (UTCTime text).
    pub validity: (&'a str, &'a str),
}

pub fn cert(spec: &Spec<'_>, subject_key: &Key, issuer_key: &Key) -> Vec<u8> {
    let sig_alg = seq(&[tlv(0x06, oid::ECDSA_SHA384)]);
    let validity = seq(&[tlv(0x17, spec.validity.0.as_bytes()), tlv(0x17, spec.validity.1.as_bytes())]);
    let mut exts = Vec::new();
    if let Some((ca, pl)) = spec.ca {
        let mut bc = Vec::new();
        if ca {
            bc.push(tlv(0x01, &[0xff]));
        }
        if let Some(p) = pl {
            bc.push(tlv(0x02, &[p]));
        }
        exts.push(seq(&[tlv(0x06, oid::BASIC_CONSTRAINTS), tlv(0x01, &[0xff]), tlv(0x04, &seq(&bc))]));
    }
    let ku_bits = spec.key_usage_bits.map(<[u8]>::to_vec).or(spec.key_usage.map(|ku| vec![0x01, ku]));
    if let Some(bits) = ku_bits {
        exts.push(seq(&[tlv(0x06, oid::KEY_USAGE), tlv(0x01, &[0xff]), tlv(0x04, &tlv(0x03, &bits))]));
    }
    if spec.extra_critical {
        exts.push(seq(&[tlv(0x06, &[0x2a, 0x03, 0x04]), tlv(0x01, &[0xff]), tlv(0x04, &[0x05, 0x00])]));
    }
    exts.extend(spec.extensions.iter().cloned());
    let mut tbs_parts = vec![
        tlv(0xa0, &tlv(0x02, &[2])),
        tlv(0x02, &[1]),
        sig_alg.clone(),
        name(spec.issuer),
        validity,
        name(spec.subject),
        subject_key.spki(),
    ];
    if !exts.is_empty() {
        tbs_parts.push(tlv(0xa3, &seq(&exts)));
    }
    let tbs = seq(&tbs_parts);
    let sig = issuer_key.0.sign(&SystemRandom::new(), &tbs).unwrap();
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    seq(&[tbs, sig_alg, tlv(0x03, &bits)])
}
