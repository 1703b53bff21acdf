//! Scale-out: shard and coordinator enclaves (issue 18, `docs/scale-out.md`).
//!
//! The pure protocol (who holds which units, the report, the checked merge) is the
//! `shard` crate; this module is its I/O: the mutually attested TLS channel between a
//! coordinator and each shard ([`peer`]), a shard's service ([`shard`]) and the
//! coordinator's ([`coordinator`]). Both run as `enclave-app shard` / `enclave-app
//! coordinator`.
//!
//! What is integrated and what is not (see the doc): the channels, attestation in both
//! directions, the assignment, sealed ingest, the sandbox, the accumulator, the checked
//! merge, noise once and the signed result are the real ones. The owner's signed budget
//! grant, the ledger and the transparency log are not wired into these two roles yet:
//! the coordinator takes its job from the owner over an attested channel and signs its
//! result, but spends no grant and appends no audit record.

pub mod coordinator;
pub mod peer;
pub mod shard;
