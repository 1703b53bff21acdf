//! The supervisor that runs inside the enclave.
//!
//! It boots, creates an ephemeral key pair from the platform's randomness, measures the
//! owner's policy into the attested state, and then serves an attested TLS channel over
//! which owners release data keys and budget grants and providers submit jobs. Every
//! job's result is DP-noised, signed with the attested key, audited and only then sent.

pub mod admission;
pub mod audit_log;
pub mod boundary;
pub mod channels;
pub mod fetch;
pub mod host;
pub mod init;
pub mod platform;
pub mod scale_out;
pub mod service;
pub mod tls;
pub mod workers;
