//! cleanroom: the owner's, provider's and auditor's side of the clean room, over the
//! enclave's channel. Table preparation is `owner_prep`, the budget ledger `ledger`, and
//! offline audit `audit`; this crate attests, releases keys, submits jobs and runs models
//! locally. [`commands`] holds one library call per CLI command; the `cleanroom` binary
//! (main.rs with cli.rs and print.rs) parses arguments, makes that call and prints.

pub mod client;
pub mod commands;
pub mod dp_plan;
pub mod error;
pub mod files;
pub mod local_run;
pub mod owner;
pub mod owner_policy;
pub mod provider;
pub mod query_init;
pub mod review;

pub use error::Error;
