//! Reading a sealed dataset back on the owner's side (the owner's own checks and tests).

use super::{chunk_file_name, CHUNKS_DIR, MANIFEST_FILE};
use protocol::manifest::Manifest;
use protocol::sealed::{DataKey, Opener, SealError};
use protocol::table::RecordBatch;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: malformed manifest: {why}", path.display())]
    Manifest { path: PathBuf, why: String },
    #[error("{}: not a sealed chunk: {why}", path.display())]
    Chunk { path: PathBuf, why: String },
    #[error("{}: unexpected file in the chunks directory", path.display())]
    UnexpectedFile { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Seal { path: PathBuf, source: SealError },
    #[error("{}: {source}", dir.display())]
    Incomplete { dir: PathBuf, source: SealError },
    #[error("sealed data does not match the manifest: {0}")]
    Mismatch(String),
}

/// Read `out_dir/manifest.json`.
pub fn load_manifest(out_dir: &Path) -> Result<Manifest, OpenError> {
    let path = out_dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path).map_err(|source| OpenError::Io { path: path.clone(), source })?;
    Manifest::from_json(&text).map_err(|e| OpenError::Manifest { path, why: e.to_string() })
}

/// Owner-side decryption of a prepared dataset: authenticate every chunk in order under
/// `key`, check the stream ends with its final chunk and matches the manifest, and return
/// the plaintext batches.
pub fn open_sealed(out_dir: &Path, key: &DataKey) -> Result<Vec<RecordBatch>, OpenError> {
    let manifest = load_manifest(out_dir)?;
    let dir = out_dir.join(CHUNKS_DIR);
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|source| OpenError::Io { path: dir.clone(), source })? {
        let entry = entry.map_err(|source| OpenError::Io { path: dir.clone(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let index = name.strip_suffix(".sealed").and_then(|s| s.parse::<u64>().ok());
        match index {
            Some(i) if chunk_file_name(i) == name => names.push((i, entry.path())),
            _ => return Err(OpenError::UnexpectedFile { path: entry.path() }),
        }
    }
    names.sort();
    let mut opener = Opener::new(key.clone(), manifest.dataset_digest);
    let mut batches = Vec::with_capacity(names.len());
    for (_, path) in &names {
        let blob = fs::read(path).map_err(|source| OpenError::Io { path: path.clone(), source })?;
        let chunk = protocol::sealed::decode_chunk(&blob)
            .map_err(|e| OpenError::Chunk { path: path.clone(), why: e.to_string() })?;
        let batch = opener.open_next(chunk).map_err(|source| OpenError::Seal { path: path.clone(), source })?;
        batches.push(batch);
    }
    let digest = opener.finish().map_err(|source| OpenError::Incomplete { dir: dir.clone(), source })?;
    if digest != manifest.dataset_digest {
        return Err(OpenError::Mismatch(format!(
            "plaintext digest {digest} differs from the manifest's {}",
            manifest.dataset_digest
        )));
    }
    let rows: u64 = batches.iter().map(|b| b.rows as u64).sum();
    if rows != manifest.rows || batches.len() as u64 != manifest.chunks {
        return Err(OpenError::Mismatch(format!(
            "{rows} rows in {} chunks, manifest says {} rows in {} chunks",
            batches.len(),
            manifest.rows,
            manifest.chunks
        )));
    }
    let schema = manifest.sealed_schema();
    let nullable = manifest.nullable_columns();
    for (i, b) in batches.iter().enumerate() {
        let got: Vec<(String, String)> =
            b.columns.iter().map(|c| (c.name.clone(), c.data.type_name().to_string())).collect();
        if got != schema {
            return Err(OpenError::Mismatch(format!("chunk {i} has columns {got:?}, manifest says {schema:?}")));
        }
        // A nullable column carries its validity in every chunk, and no other column does.
        let with_validity: Vec<String> =
            b.columns.iter().filter(|c| b.validity(&c.name).is_some()).map(|c| c.name.clone()).collect();
        if with_validity != nullable {
            return Err(OpenError::Mismatch(format!(
                "chunk {i} has validity for {with_validity:?}, manifest says nullable {nullable:?}"
            )));
        }
    }
    Ok(batches)
}
