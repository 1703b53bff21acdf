//! enclave-app
