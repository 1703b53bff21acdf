//! Content-addressed blob store and append-only audit log on the host's disk.

use protocol::Digest;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit log line {line} is corrupt: {why}")]
    CorruptLog { line: usize, why: String },
    #[error("append as leaf {index} refused: the log has {size} lines")]
    WrongIndex { index: u64, size: u64 },
}

pub struct BlobStore {
    dir: PathBuf,
    audit_path: PathBuf,
    /// Byte offset of every line in the log; held under the lock that serializes appends.
    audit_lines: Mutex<Vec<u64>>,
    max_blob: usize,
}

/// Most bytes of log lines returned in one page.
pub const AUDIT_PAGE_BYTES: usize = 4 * 1024 * 1024;

impl BlobStore {
    pub fn open(root: &Path, max_blob: usize) -> Result<Self, StoreError> {
        let dir = root.join("blobs");
        fs::create_dir_all(&dir)?;
        let audit_path = root.join("audit.log");
        let offsets = index_log(&audit_path)?;
        Ok(BlobStore { dir, audit_path, audit_lines: Mutex::new(offsets), max_blob })
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

    /// Append one log line as leaf `index`, synced before returning. Refused unless the
    /// log is exactly `index` lines long: the enclave and the host agree on every position.
    pub fn append_audit(&self, index: u64, line: &str) -> Result<u64, StoreError> {
        let mut offsets = self.audit_lines.lock().expect("audit lock");
        if offsets.len() as u64 != index {
            return Err(StoreError::WrongIndex { index, size: offsets.len() as u64 });
        }
        if line.is_empty() || line.contains('\n') {
            return Err(StoreError::CorruptLog {
                line: offsets.len() + 1,
                why: "a log line is one non-empty line".into(),
            });
        }
        let mut f = OpenOptions::new().create(true).append(true).open(&self.audit_path)?;
        let start = f.metadata()?.len();
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_all()?;
        offsets.push(start);
        Ok(offsets.len() as u64)
    }

    /// Log lines from `from` on, at most [`AUDIT_PAGE_BYTES`] of them; `true` if more follow.
    pub fn read_audit(&self, from: u64) -> Result<(Vec<String>, bool), StoreError> {
        let offsets = self.audit_lines.lock().expect("audit lock").clone();
        let Some(&start) = offsets.get(from as usize) else { return Ok((vec![], false)) };
        let mut f = File::open(&self.audit_path)?;
        f.seek(SeekFrom::Start(start))?;
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        for line in BufReader::new(f).lines().take(offsets.len() - from as usize) {
            let line = line?;
            bytes += line.len() + 1;
            lines.push(line);
            if bytes >= AUDIT_PAGE_BYTES {
                break;
            }
        }
        let more = (from as usize + lines.len()) < offsets.len();
        Ok((lines, more))
    }
}

/// Offsets of the lines of a log file (a missing file is an empty log). A torn last line
/// (no newline: the host crashed mid-append, before acknowledging it) is cut off.
fn index_log(path: &Path) -> Result<Vec<u64>, StoreError> {
    let mut text = Vec::new();
    match File::open(path) {
        Ok(f) => BufReader::new(f).read_to_end(&mut text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        OpenOptions::new().write(true).open(path)?.set_len(complete as u64)?;
    }
    let mut offsets = Vec::new();
    let mut start = 0usize;
    for (i, b) in text[..complete].iter().enumerate() {
        if *b == b'\n' {
            offsets.push(start as u64);
            start = i + 1;
        }
    }
    Ok(offsets)
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
        assert_eq!(s.append_audit(0, "one").unwrap(), 1);
        assert_eq!(s.append_audit(1, "two").unwrap(), 2);
        assert!(matches!(s.append_audit(1, "again"), Err(StoreError::WrongIndex { index: 1, size: 2 })));
        assert!(s.append_audit(2, "a\nb").is_err());
        assert_eq!(s.read_audit(0).unwrap(), (vec!["one".to_string(), "two".to_string()], false));
        assert_eq!(s.read_audit(1).unwrap(), (vec!["two".to_string()], false));
        assert_eq!(s.read_audit(5).unwrap(), (vec![], false));
        // A torn last line is cut off on open; a restarted proxy continues the log.
        std::fs::OpenOptions::new().append(true).open(dir.path().join("audit.log")).unwrap().write_all(b"tor").unwrap();
        let s = BlobStore::open(dir.path(), 10).unwrap();
        assert_eq!(s.append_audit(2, "three").unwrap(), 3);
        assert_eq!(s.read_audit(0).unwrap().0.len(), 3);
    }
}
