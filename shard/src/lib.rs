//! Scale-out across enclaves, as pure logic (no I/O; `enclave-app`'s `scale_out` module
//! runs it over attested channels). The design and its threat model are in
//! `docs/scale-out.md`; in short:
//!
//! - [`assign`]: which shard holds which privacy units. A public function of the shard
//!   count and the unit's token alone, fixed before any data is read; the ranges are
//!   disjoint and cover every token, so each unit is in exactly one shard.
//! - [`report`]: what a shard sends its coordinator: its exact integer aggregates with the
//!   job, shard index, assigned range and unit count they are for, padded to a size fixed
//!   by the job so its length says nothing.
//! - [`collect`]: the coordinator's merge. Every report is checked (job and round, shard,
//!   range, unit count against the aggregates) before it is added; one bad or missing
//!   report fails the whole job, and the noise is added once, to the sum, by the caller.
//! - [`wire`]: the messages between coordinator and shards.

pub mod assign;
pub mod collect;
pub mod report;
pub mod wire;

pub use assign::{Plan, UnitRange};
pub use collect::{Collect, ShardError};
pub use report::{Partial, Report};
pub use wire::{JobBinding, PeerMessage, Role, ShardPeer, Work};
