//! Reading and writing the files the CLI's commands take and make. Every error names the
//! file; every written file is replaced atomically, so a crash never leaves half of one.

use crate::Error;
use protocol::job::QuerySpec;
use protocol::manifest::{Manifest, PublicManifest};
use protocol::policy::Policy;
use std::path::Path;

pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

pub fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Write through a temporary file beside `path` and rename it into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|source| Error::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn parse<T, E: std::fmt::Display>(path: &Path, r: Result<T, E>) -> Result<T, Error> {
    r.map_err(|e| Error::Parse { path: path.to_path_buf(), why: e.to_string() })
}

pub fn load_policy(path: &Path) -> Result<Policy, Error> {
    parse(path, Policy::from_toml(&read_text(path)?))
}

pub fn load_query(path: &Path) -> Result<QuerySpec, Error> {
    parse(path, QuerySpec::from_toml(&read_text(path)?))
}

pub fn load_manifest(path: &Path) -> Result<Manifest, Error> {
    parse(path, Manifest::from_json(&read_text(path)?))
}

/// A provider's view of the dataset: the public manifest, or the owner's full manifest
/// reduced to it.
pub fn load_public_manifest(path: &Path) -> Result<PublicManifest, Error> {
    let text = read_text(path)?;
    match PublicManifest::from_json(&text) {
        Ok(m) => Ok(m),
        Err(_) => Ok(parse(path, Manifest::from_json(&text))?.public()),
    }
}

/// A provider's result file (the signed result and its log receipt).
pub fn load_result_file(path: &Path) -> Result<audit::ResultFile, Error> {
    parse(path, serde_json::from_slice(&read(path)?).map_err(|e| format!("not a result file: {e}")))
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Parse { path: path.to_path_buf(), why: e.to_string() })?;
    write_atomic(path, text.as_bytes())
}

pub fn parse_hex(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    hex::decode(s.trim()).map_err(|_| Error::Usage(format!("{what} must be hex")))
}

pub fn sha384_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA384, data))
}
