//! Reproducible enclave images for AWS Nitro Enclaves.
//!
//! - [`cpio`]: a deterministic newc cpio writer for the initramfs.
//! - [`eif`]: the Enclave Image File writer ([`eif::build`]) and reader ([`eif::Eif`]).
//! - [`pcr`]: PCR0/1/2/8, computed while writing and recomputed while reading.
//! - [`sign`]: PCR0 signing with a P-384 certificate and key (the signature section), with
//!   RFC 6979 deterministic ECDSA so that signed images are reproducible too (see the
//!   module docs for why this crate uses `p384`/`x509-cert` rather than `ring`).
//! - [`metadata`]: the metadata section's exact JSON.
//!
//! Everything here is pure: it works on byte slices and returns byte vectors. Files,
//! environment variables and the clock are the CLI's business.

pub mod cpio;
pub mod describe;
pub mod eif;
pub mod metadata;
pub mod pcr;
pub mod sign;

pub use eif::{build, Arch, BuildError, BuiltImage, Eif, ImageSpec, ReadError, SectionType};
pub use metadata::Metadata;
pub use pcr::{HashAlgorithm, Measurements};
pub use sign::{SignError, SigningMaterial};
