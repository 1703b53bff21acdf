//! COSE_Sign1 as this verifier accepts it: the shared envelope parse of
//! `cleanroom-cbor` plus this crate's header policy (an empty unprotected header;
//! a protected header of exactly the algorithm and the labels a format names).

use cbor::cose::{CoseError, Sign1, HDR_ALG, HDR_CRIT};
use cbor::Value;

pub(crate) use cbor::cose::{sig_structure, ALG_EDDSA, ALG_ES384, HDR_CONTENT_TYPE};

use crate::Error;

impl From<CoseError> for Error {
    fn from(e: CoseError) -> Self {
        match e {
            CoseError::Cbor(e) => Error::Cbor(e),
            CoseError::Structure(what) => Error::CoseStructure(what),
            _ => Error::CoseStructure("COSE error of a newer codec"),
        }
    }
}

/// Parses a tagged or untagged COSE_Sign1 with an empty unprotected header and an attached payload.
pub fn parse(input: &[u8]) -> Result<Sign1, Error> {
    let s = Sign1::parse(input)?;
    if !s.unprotected.is_empty() {
        return Err(Error::UnexpectedHeader("unprotected header not empty".into()));
    }
    Ok(s)
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
