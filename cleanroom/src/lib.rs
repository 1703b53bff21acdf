//! cleanroom: the owner's, provider's and auditor's side of the clean room.

pub mod audit;
pub mod audit_files;
pub mod audit_report;
pub mod client;
pub mod datagen;
pub mod dp_plan;
pub mod hsm_keys;
pub mod keystore;
pub mod ledger;
pub mod local_run;
pub mod owner;
pub mod owner_policy;
pub mod prepare;
pub mod provider;
pub mod query_init;
pub mod review;
pub mod suggest;
