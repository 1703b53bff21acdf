//! Content-addressed blob store and append-only audit log on the host's disk.

use protocol::signing::Signed;
use protocol::Digest;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit log line {line} is corrupt: {why}")]
    CorruptLog { line: usize, why: String },
}

pub struct BlobStore {
    dir: PathBuf,
    audit_path: PathBuf,
    /// Records in the log; held under the lock that serializes appends.
    audit_count: Mutex<u64>,
    max_blob: usize,
}

impl BlobStore {
    pub fn open(root: &Path, max_blob: usize) -> Result<Self, StoreError> {
        let dir = root.join("blobs");
        fs::create_dir_all(&dir)?;
        let audit_path = root.join("audit.log");
        let count = read_audit_log(&audit_path)?.len() as u64;
        Ok(BlobStore { dir, audit_path, audit_count: Mutex::new(count), max_blob })
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.to_hex())
    }

    /// Store a blob under its SHA-256. Written to a temporary file and renamed, so a
    /// crash never leaves a partial blob under a valid name.
    pub fn put(&self, data: &[u8]) -> Result<Digest, StoreError> {
        if data.len() > self.max_blob {
            return Err(StoreError::TooLarge { size: data.len(), max: self.max_blob });
        }
        let d = Digest::of(data);
        let final_path = self.path(&d);
        if final_path.exists() {
            return Ok(d);
        }
        let tmp = self.dir.join(format!(".tmp-{}-{}", d.to_hex(), std::process::id()));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &final_path)?;
        Ok(d)
    }

    pub fn get(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        fs::read(self.path(d)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(*d),
            _ => e.into(),
        })
    }

    /// Append one signed record as a JSON line, synced before returning.
    pub fn append_audit(&self, record: &Signed) -> Result<u64, StoreError> {
        let mut count = self.audit_count.lock().expect("audit lock");
        let mut f = OpenOptions::new().create(true).append(true).open(&self.audit_path)?;
        let line = serde_json::to_string(record).expect("signed record serializes");
        writeln!(f, "{line}")?;
        f.sync_all()?;
        *count += 1;
        Ok(*count)
    }

    pub fn read_audit(&self) -> Result<Vec<Signed>, StoreError> {
        read_audit_log(&self.audit_path)
    }
}

/// Read a JSON-lines audit log (a missing file is an empty log).
pub fn read_audit_log(path: &Path) -> Result<Vec<Signed>, StoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    BufReader::new(f).read_to_string(&mut text)?;
    protocol::audit::parse_log(&text).map_err(|(line, why)| StoreError::CorruptLog { line, why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path(), 10).unwrap();
        let d = s.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(s.get(&d).unwrap(), b"hello");
        assert_eq!(s.put(b"hello").unwrap(), d, "idempotent");
        assert!(matches!(s.put(&[0; 11]), Err(StoreError::TooLarge { .. })));
        assert!(matches!(s.get(&Digest::of(b"x")), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn audit_log_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path(), 10).unwrap();
        let k = protocol::signing::SigningKey::from_seed([1; 32]);
        assert_eq!(s.append_audit(&k.sign("c", &1u8)).unwrap(), 1);
        assert_eq!(s.append_audit(&k.sign("c", &2u8)).unwrap(), 2);
        assert_eq!(s.read_audit().unwrap().len(), 2);
        // A restarted proxy continues the count from the file.
        let s = BlobStore::open(dir.path(), 10).unwrap();
        assert_eq!(s.append_audit(&k.sign("c", &3u8)).unwrap(), 3);
    }
}
