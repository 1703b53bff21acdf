//! The host proxy: everything outside the enclave that the operator runs.
//!
//! It is untrusted by design. It only ever handles ciphertext, public keys, signed
//! results and signed audit records; what it could do wrong (drop, reorder, replay,
//! substitute) is detected inside the enclave or by the owner's verification.

pub mod aio;
pub mod blobapi;
pub mod blobstore;
pub mod frontdoor;
pub mod launcher;
pub mod limits;
pub mod nitro;
pub mod qemu;
pub mod ratelimit;
pub mod services;
pub mod snp;
