//! # cleanroom-cbor
//!
//! The one CBOR (RFC 8949) codec of the workspace's hand-parsed formats, and the
//! COSE_Sign1 (RFC 9052) envelope built on it. Used by `attestation-verifier` (Nitro
//! attestation documents, simulated evidence, SEV-SNP evidence bundles) and by
//! `eif-build` (the EIF signature section). Serde wire types elsewhere use `ciborium`;
//! this crate is for formats whose exact bytes matter: signatures are checked over the
//! bytes as received, and signed images must come out byte-identical.
//!
//! No I/O, no `unsafe`, no dependency but `thiserror`.
//!
//! ## Decoding ([`decode`]) is strict
//!
//! - exactly one item spanning the whole input ([`CborError::TrailingBytes`]);
//! - every declared length and element count is checked against the bytes that remain
//!   *before* anything is read ([`CborError::LengthTooLarge`]), and no memory is ever
//!   reserved from a declared count: a string is copied only once its bytes are known to
//!   be present, and containers grow only with the items actually decoded, so a hostile
//!   header cannot make the decoder allocate more than the input backs;
//! - nesting deeper than [`MAX_DEPTH`] is refused ([`CborError::TooDeep`]);
//! - duplicate map keys, invalid UTF-8, floats and simple values other than
//!   `false`/`true`/`null`/`undefined`, reserved additional information and misplaced
//!   break bytes are refused;
//! - definite **and indefinite** lengths are accepted (genuine Nitro documents use
//!   indefinite-length maps); chunks of an indefinite string are concatenated;
//! - a truncated input is an error, never a panic.
//!
//! Canonical (deterministic) encoding is not *required* of the input: NSM does not emit
//! it, and signatures are always verified over the bytes as received (see
//! [`cose::Sign1`], which keeps the signed byte strings verbatim).
//!
//! ## Encoding ([`Writer`], [`encode`]) is canonical
//!
//! The writer emits RFC 8949 preferred serialization: the shortest head for every
//! argument and definite lengths only. Map entries are written in the order given (the
//! formats here fix their key order), so the same calls always give the same bytes.
//!
//! ```
//! use cbor::{decode, encode, Value, Writer};
//!
//! let mut w = Writer::new();
//! w.map(2).text("a").uint(1).text("b").array(2).int(-35).bytes(b"xy");
//! let bytes = w.into_bytes();
//! let v = decode(&bytes).unwrap();
//! assert_eq!(v.map_get_text("a"), Some(&Value::Unsigned(1)));
//! assert_eq!(encode(&v), bytes);
//!
//! // indefinite lengths are read, and written back in canonical form
//! let indefinite = [0xbf, 0x61, 0x61, 0x01, 0xff]; // {_ "a": 1}
//! assert_eq!(encode(&decode(&indefinite).unwrap()), [0xa1, 0x61, 0x61, 0x01]);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cose;
mod decode;
mod encode;
mod value;

pub use decode::{decode, CborError, MAX_DEPTH};
pub use encode::{encode, Writer};
pub use value::Value;
