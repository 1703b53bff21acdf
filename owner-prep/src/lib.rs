//! The data owner's side before any enclave runs: profile a table and draft its rules
//! ([`suggest`]), apply the reviewed rules, tokenize and seal it ([`prepare`]), keep the
//! owner's keys ([`keystore`], [`hsm_keys`]), and generate the demo's bank table
//! ([`datagen`]). Nothing here runs a model, so the crate links no Wasm runtime.

pub mod datagen;
pub mod hsm_keys;
pub mod keystore;
pub mod prepare;
pub mod suggest;
