//! COSE_Sign1 (RFC 9052 §4.2): the envelope, its strict parse, and the one
//! `Sig_structure` builder every signer and verifier in the workspace uses.
//!
//! ```text
//! COSE_Sign1 = #6.18([ protected: bstr .cbor header_map, unprotected: header_map,
//!                      payload: bstr, signature: bstr ])
//! Sig_structure = [ "Signature1", protected, external_aad: bstr, payload ]
//! ```
//!
//! The protected header and the payload are kept as the byte strings received, so a
//! signature is always checked over exactly the bytes that were signed (never over a
//! re-encoding). What a caller accepts in the headers (which algorithm, whether the
//! unprotected header must be empty, which other labels) is its own policy: this module
//! only checks the shape.

use thiserror::Error;

use crate::{decode, CborError, Value, Writer};

/// COSE_Sign1 CBOR tag.
pub const TAG_COSE_SIGN1: u64 = 18;
/// Header label `alg`.
pub const HDR_ALG: i128 = 1;
/// Header label `crit`.
pub const HDR_CRIT: i128 = 2;
/// Header label `content type`.
pub const HDR_CONTENT_TYPE: i128 = 3;
/// Algorithm ES384 (ECDSA P-384 with SHA-384).
pub const ALG_ES384: i128 = -35;
/// Algorithm EdDSA.
pub const ALG_EDDSA: i128 = -8;

/// Why bytes are not a COSE_Sign1 of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoseError {
    /// The envelope or the protected header is not acceptable CBOR.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// The CBOR is fine but it is not a COSE_Sign1 with an attached payload.
    #[error("malformed COSE_Sign1: {0}")]
    Structure(&'static str),
}

/// The four parts of a COSE_Sign1, signed parts kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign1 {
    /// Whether the envelope carried tag 18.
    pub tagged: bool,
    /// Protected header bytes, as received (signed).
    pub protected: Vec<u8>,
    /// The protected header decoded (a map, entries in the order received).
    pub protected_map: Vec<(Value, Value)>,
    /// Unprotected header entries (not signed).
    pub unprotected: Vec<(Value, Value)>,
    /// Payload bytes, as received (signed).
    pub payload: Vec<u8>,
    /// Signature bytes.
    pub signature: Vec<u8>,
}

impl Sign1 {
    /// Parses a tagged (18) or untagged COSE_Sign1 with an attached payload.
    ///
    /// Checks, in order: strict CBOR of the whole input; tag 18 or none; an array of
    /// four; protected header a byte string holding a map; unprotected header a map;
    /// payload a byte string (a detached `nil` payload is refused); signature a byte
    /// string.
    pub fn parse(input: &[u8]) -> Result<Self, CoseError> {
        let (tagged, items) = match decode(input)? {
            Value::Array(items) => (false, items),
            Value::Tag(TAG_COSE_SIGN1, inner) => match *inner {
                Value::Array(items) => (true, items),
                _ => return Err(CoseError::Structure("tag 18 does not wrap an array")),
            },
            Value::Tag(_, _) => return Err(CoseError::Structure("unexpected CBOR tag (not COSE_Sign1)")),
            _ => return Err(CoseError::Structure("not an array")),
        };
        let [protected, unprotected, payload, signature]: [Value; 4] =
            items.try_into().map_err(|_| CoseError::Structure("array does not have 4 elements"))?;
        let Value::Bytes(protected) = protected else {
            return Err(CoseError::Structure("protected header is not a byte string"));
        };
        let Value::Map(protected_map) = decode(&protected)? else {
            return Err(CoseError::Structure("protected header is not a map"));
        };
        let Value::Map(unprotected) = unprotected else {
            return Err(CoseError::Structure("unprotected header is not a map"));
        };
        let Value::Bytes(payload) = payload else {
            return Err(CoseError::Structure("payload is not an attached byte string"));
        };
        let Value::Bytes(signature) = signature else {
            return Err(CoseError::Structure("signature is not a byte string"));
        };
        Ok(Sign1 { tagged, protected, protected_map, unprotected, payload, signature })
    }

    /// The `alg` label of the protected header, if present and an integer.
    pub fn alg(&self) -> Option<i128> {
        self.protected_map.iter().find(|(k, _)| k.as_int() == Some(HDR_ALG)).and_then(|(_, v)| v.as_int())
    }

    /// The bytes the signature covers: [`sig_structure`] of the protected header and
    /// payload as received.
    pub fn to_be_signed(&self) -> Vec<u8> {
        sig_structure(&self.protected, &self.payload)
    }
}

/// `Sig_structure = ["Signature1", protected, external_aad = h'', payload]`, encoded:
/// what a COSE_Sign1 signer signs and its verifier checks.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(4).text("Signature1").bytes(protected).bytes(&[]).bytes(payload);
    w.into_bytes()
}

/// Encodes a COSE_Sign1 with an empty unprotected header: `[protected, {}, payload,
/// signature]`, preceded by tag 18 when `tagged`.
pub fn encode_sign1(protected: &[u8], payload: &[u8], signature: &[u8], tagged: bool) -> Vec<u8> {
    let mut w = Writer::new();
    if tagged {
        w.tag(TAG_COSE_SIGN1);
    }
    w.array(4).bytes(protected).map(0).bytes(payload).bytes(signature);
    w.into_bytes()
}
