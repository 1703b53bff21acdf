//! Everything two cleanroom parties say to each other, and nothing that does I/O.
//!
//! Every other crate depends on this one. It holds the data model (manifest, policy,
//! query spec, grant, result, audit record), the deterministic encodings that get
//! hashed and signed, the length-prefixed frame codec and the sealed-chunk format.
//! Keeping it free of sockets and files makes it fast to test and easy to fuzz.

pub mod audit;
pub mod bytes;
pub mod date;
pub mod deadline;
pub mod diagnostics;
pub mod digest;
pub mod frame;
pub mod grant;
pub mod job;
pub mod manifest;
pub mod pcr;
pub mod platform;
pub mod policy;
pub mod refusal;
pub mod result;
pub mod sealed;
pub mod signing;
pub mod table;
pub mod training;
pub mod wire;

pub use bytes::Bytes;
pub use digest::Digest;

/// Errors decoding or validating protocol objects. Everything a peer outside the trust
/// boundary can send ends up here, never in a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    #[error("malformed TOML: {0}")]
    Toml(String),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
}

/// Deterministic CBOR encoding of a protocol value. Struct fields are emitted in
/// declaration order and maps are `BTreeMap`s, so equal values encode to equal bytes;
/// that is what digests and signatures are computed over.
pub fn to_cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail and all our types serialize infallibly.
    ciborium::ser::into_writer(value, &mut out).expect("CBOR encoding into a Vec is infallible");
    out
}

/// Decode CBOR from an untrusted peer. Trailing bytes are an error.
pub fn from_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, 64)
        .map_err(|e: ciborium::de::Error<std::io::Error>| DecodeError::Cbor(e.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError::Cbor(format!("{} trailing bytes", reader.len())));
    }
    Ok(value)
}
