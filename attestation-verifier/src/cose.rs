//! COSE_Sign1 (RFC 9052) envelope: strict structure, Sig_structure construction.

use crate::cbor::{self, Value, Writer};
use crate::Error;

/// COSE_Sign1 CBOR tag.
pub const TAG_COSE_SIGN1: u64 = 18;
/// COSE header label `alg`.
pub const HDR_ALG: i128 = 1;
/// COSE header label `crit`.
pub const HDR_CRIT: i128 = 2;
/// COSE header label `content type`.
pub const HDR_CONTENT_TYPE: i128 = 3;
/// COSE algorithm ES384.
pub const ALG_ES384: i128 = -35;
/// COSE algorithm EdDSA.
pub const ALG_EDDSA: i128 = -8;

/// The four parts of a COSE_Sign1.
pub struct CoseSign1 {
    /// Protected header bytes, as received (signed).
    pub protected: Vec<u8>,
    /// Decoded protected header map entries.
    pub protected_map: Vec<(Value, Value)>,
    /// Payload bytes, as received (signed).
    pub payload: Vec<u8>,
    /// Signature bytes.
    pub signature: Vec<u8>,
}

/// Parses a tagged or untagged COSE_Sign1 with an empty unprotected header and an attached payload.
pub fn parse(input: &[u8]) -> Result<CoseSign1, Error> {
    let outer = cbor::decode(input)?;
    let items = match outer {
        Value::Array(items) => items,
        Value::Tag(TAG_COSE_SIGN1, inner) => match *inner {
            Value::Array(items) => items,
            _ => return Err(Error::CoseStructure("tag 18 does not wrap an array")),
        },
        Value::Tag(_, _) => return Err(Error::CoseStructure("unexpected CBOR tag (not COSE_Sign1)")),
        _ => return Err(Error::CoseStructure("not an array")),
    };
    let [protected, unprotected, payload, signature]: [Value; 4] =
        items.try_into().map_err(|_| Error::CoseStructure("array does not have 4 elements"))?;
    let Value::Bytes(protected) = protected else {
        return Err(Error::CoseStructure("protected header is not a byte string"));
    };
    let protected_map = match cbor::decode(&protected)? {
        Value::Map(m) => m,
        _ => return Err(Error::CoseStructure("protected header is not a map")),
    };
    match unprotected {
        Value::Map(m) if m.is_empty() => {}
        Value::Map(_) => return Err(Error::UnexpectedHeader("unprotected header not empty".into())),
        _ => return Err(Error::CoseStructure("unprotected header is not a map")),
    }
    let Value::Bytes(payload) = payload else {
        return Err(Error::CoseStructure("payload is not an attached byte string"));
    };
    let Value::Bytes(signature) = signature else {
        return Err(Error::CoseStructure("signature is not a byte string"));
    };
    Ok(CoseSign1 { protected, protected_map, payload, signature })
}

/// Checks that the protected header is exactly `{1: alg}` plus, optionally, the
/// listed extra labels with the given values. `crit` and anything else is refused.
pub fn check_protected(map: &[(Value, Value)], alg: i128, extra: &[(i128, &Value)]) -> Result<(), Error> {
    let mut saw_alg = false;
    for (k, v) in map {
        match k.as_int() {
            Some(HDR_ALG) => {
                if v.as_int() != Some(alg) {
                    return Err(Error::UnsupportedAlgorithm);
                }
                saw_alg = true;
            }
            Some(HDR_CRIT) => return Err(Error::UnexpectedHeader("crit".into())),
            Some(label) => match extra.iter().find(|(l, _)| *l == label) {
                Some((_, want)) if *want == v => {}
                _ => return Err(Error::UnexpectedHeader(format!("label {label}"))),
            },
            None => return Err(Error::UnexpectedHeader(format!("<{}>", k.type_name()))),
        }
    }
    if !saw_alg {
        return Err(Error::UnsupportedAlgorithm);
    }
    if map.len() != 1 + extra.len() {
        return Err(Error::UnexpectedHeader("missing required header".into()));
    }
    Ok(())
}

/// `Sig_structure = ["Signature1", protected, external_aad = h'', payload]`, encoded.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(4).text("Signature1").bytes(protected).bytes(&[]).bytes(payload);
    w.into_bytes()
}
