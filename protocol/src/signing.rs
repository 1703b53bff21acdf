//! Signed envelopes. We sign the exact bytes that travel (a CBOR payload), never a
//! re-encoding, so a verifier checks what the signer produced.

use crate::{Bytes, DecodeError};
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use zeroize::Zeroizing;

/// An Ed25519 signature over `context || payload`. The context string separates
/// signatures made for different purposes with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    pub context: String,
    pub payload: Bytes,
    pub signer: Bytes,
    pub signature: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("signed for {got:?}, expected {expected:?}")]
    WrongContext { expected: String, got: String },
    #[error("signed by an unexpected key")]
    WrongSigner,
}

/// An Ed25519 key pair built from a 32-byte seed. The seed is zeroized on drop.
pub struct SigningKey {
    seed: Zeroizing<[u8; 32]>,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public={})", hex::encode(self.public_key()))
    }
}

impl SigningKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32-byte seed is an Ed25519 key");
        SigningKey { seed: Zeroizing::new(seed), pair }
    }

    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// PKCS#8 v1 DER of this key (for building a TLS certificate for it).
    pub fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        // RFC 8410 fixed prefix for an Ed25519 private key, followed by the seed.
        const PREFIX: [u8; 16] =
            [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        let mut v = Zeroizing::new(Vec::with_capacity(48));
        v.extend_from_slice(&PREFIX);
        v.extend_from_slice(&self.seed[..]);
        v
    }

    pub fn sign_bytes(&self, context: &str, payload: Vec<u8>) -> Signed {
        let sig = self.pair.sign(&message(context, &payload));
        Signed {
            context: context.to_string(),
            payload: Bytes(payload),
            signer: Bytes(self.public_key()),
            signature: Bytes(sig.as_ref().to_vec()),
        }
    }

    pub fn sign<T: Serialize>(&self, context: &str, value: &T) -> Signed {
        self.sign_bytes(context, crate::to_cbor(value))
    }

    /// A plain Ed25519 signature over the text of a C2SP signed note (a log checkpoint),
    /// the one message signed without a context prefix, because the note format fixes its
    /// own. A note body is UTF-8 text without control characters: it cannot be a
    /// context-framed message (those start with eight length bytes, the first zero) nor a
    /// TLS 1.3 CertificateVerify input (64 spaces).
    pub fn sign_note_text(&self, text: &str) -> [u8; 64] {
        assert!(
            !text.starts_with(' ') && text.chars().all(|c| c == '\n' || !c.is_control()),
            "only note text is signed without a context"
        );
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(text.as_bytes()).as_ref());
        out
    }
}

fn message(context: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 9 + payload.len());
    m.extend_from_slice(&(context.len() as u64).to_be_bytes());
    m.extend_from_slice(context.as_bytes());
    m.push(0);
    m.extend_from_slice(payload);
    m
}

/// A signer whose key may live elsewhere (a PKCS#11 token): it signs the bytes it is
/// given with Ed25519. [`Signed::sign_with`] frames them exactly as [`SigningKey`] does.
pub trait Signer {
    fn public_key(&self) -> Vec<u8>;
    fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64], String>;
}

impl Signer for SigningKey {
    fn public_key(&self) -> Vec<u8> {
        SigningKey::public_key(self)
    }
    fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64], String> {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        Ok(out)
    }
}

impl Signed {
    /// Sign `value` for `context` with any [`Signer`], framed like [`SigningKey::sign`].
    pub fn sign_with<T: Serialize>(signer: &dyn Signer, context: &str, value: &T) -> Result<Signed, String> {
        let payload = crate::to_cbor(value);
        let signature = signer.sign_raw(&message(context, &payload))?;
        Ok(Signed {
            context: context.to_string(),
            payload: Bytes(payload),
            signer: Bytes(signer.public_key()),
            signature: Bytes(signature.to_vec()),
        })
    }

    /// Check the signature (by whoever `signer` names) and the context.
    pub fn verify_self_signed(&self, context: &str) -> Result<(), SignatureError> {
        if self.context != context {
            return Err(SignatureError::WrongContext { expected: context.into(), got: self.context.clone() });
        }
        UnparsedPublicKey::new(&ED25519, self.signer.as_slice())
            .verify(&message(&self.context, self.payload.as_slice()), self.signature.as_slice())
            .map_err(|_| SignatureError::BadSignature)
    }

    /// Check the signature and that the signer is `expected_signer`.
    pub fn verify(&self, context: &str, expected_signer: &[u8]) -> Result<(), SignatureError> {
        if self.signer.as_slice() != expected_signer {
            return Err(SignatureError::WrongSigner);
        }
        self.verify_self_signed(context)
    }

    /// Decode the payload. Call only after verifying.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        crate::from_cbor(self.payload.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let k = SigningKey::from_seed([3; 32]);
        let s = k.sign("ctx", &vec![1u32, 2, 3]);
        s.verify("ctx", &k.public_key()).unwrap();
        assert_eq!(s.decode::<Vec<u32>>().unwrap(), vec![1, 2, 3]);
        assert!(matches!(s.verify("other", &k.public_key()), Err(SignatureError::WrongContext { .. })));
        let other = SigningKey::from_seed([4; 32]);
        assert_eq!(s.verify("ctx", &other.public_key()), Err(SignatureError::WrongSigner));
        let mut t = s.clone();
        t.payload.0[1] ^= 1;
        assert_eq!(t.verify("ctx", &k.public_key()), Err(SignatureError::BadSignature));
    }

    #[test]
    fn any_signer_frames_like_the_key() {
        let k = SigningKey::from_seed([6; 32]);
        let via_trait = Signed::sign_with(&k, "ctx", &7u8).unwrap();
        assert_eq!(via_trait, k.sign("ctx", &7u8));
        via_trait.verify("ctx", &k.public_key()).unwrap();
    }

    #[test]
    fn pkcs8_is_accepted_by_ring() {
        let k = SigningKey::from_seed([5; 32]);
        let p = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&k.pkcs8_der()).unwrap();
        assert_eq!(p.public_key().as_ref(), &k.public_key()[..]);
    }

    #[test]
    fn debug_does_not_leak_seed() {
        let k = SigningKey::from_seed([0xcd; 32]);
        assert!(!format!("{k:?}").contains("cdcdcdcd"));
    }
}
