//! Access to the shared, read-only test vectors (tests only).

use std::path::PathBuf;

use serde_json::Value as Json;

/// `../../shared/testdata/attestation` relative to this crate.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation")
}

/// Reads a file under the test-data directory.
pub fn read(rel: &str) -> Vec<u8> {
    let p = dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The entries of expected.json of one kind.
pub fn expected(kind: &str) -> Vec<Json> {
    let all: Json = serde_json::from_slice(&read("expected.json")).expect("expected.json");
    all.as_array().expect("array").iter().filter(|e| e["kind"] == kind).cloned().collect()
}

/// SHA-256 hex.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}
