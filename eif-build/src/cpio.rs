//! A deterministic newc ("070701") cpio writer for initramfs images.
//!
//! Output depends only on the entries' archive paths, contents and the modes chosen here:
//! entries are sorted bytewise by path (so every directory precedes its contents), missing
//! parent directories are added, inode numbers count up from 1 in that order, uid/gid are 0,
//! every mtime is the one given (SOURCE_DATE_EPOCH or 0), device numbers are 0, and no host
//! path, owner or timestamp is ever read.

use std::collections::BTreeMap;

/// Mode of regular, non-executable files.
pub const FILE_MODE: u32 = 0o100644;
/// Mode of executable files.
pub const EXEC_MODE: u32 = 0o100755;
/// Mode of directories.
pub const DIR_MODE: u32 = 0o040755;
const TRAILER: &str = "TRAILER!!!";

/// Why an archive could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpioError {
    #[error("invalid archive path {0:?} (must be relative, no empty, '.' or '..' components, no NUL)")]
    BadPath(String),
    #[error("duplicate archive path {0:?}")]
    Duplicate(String),
    #[error("{0:?} is both a file and a directory")]
    FileDirConflict(String),
    #[error("{path:?} is {size} bytes; newc entries are limited to 4 GiB")]
    TooLarge { path: String, size: u64 },
    #[error("mtime {0} does not fit newc's 32-bit field")]
    MtimeOutOfRange(u64),
    #[error("too many entries for 32-bit inode numbers")]
    TooManyEntries,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File { mode: u32, data: Vec<u8> },
}

/// Collects entries, then writes them in canonical order.
#[derive(Debug, Clone, Default)]
pub struct CpioBuilder {
    entries: BTreeMap<String, Entry>,
}

/// Normalizes `/a/b` and `a/b` to `a/b`; rejects anything that could escape or is ambiguous.
fn normalize(path: &str) -> Result<String, CpioError> {
    let trimmed = path.trim_start_matches('/');
    let bad = || CpioError::BadPath(path.to_string());
    if trimmed.is_empty() || trimmed.contains('\0') {
        return Err(bad());
    }
    for comp in trimmed.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(bad());
        }
    }
    Ok(trimmed.to_string())
}

impl CpioBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file with mode 0644 (0755 if `executable`).
    pub fn add_file(&mut self, path: &str, data: Vec<u8>, executable: bool) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        if data.len() as u64 > u32::MAX as u64 {
            return Err(CpioError::TooLarge { size: data.len() as u64, path });
        }
        self.add_parents(&path)?;
        // Every directory that has contents is itself an entry (parents are added above),
        // so one lookup finds both duplicates and file/directory conflicts.
        match self.entries.get(&path) {
            Some(Entry::Dir) => return Err(CpioError::FileDirConflict(path)),
            Some(Entry::File { .. }) => return Err(CpioError::Duplicate(path)),
            None => {}
        }
        let mode = if executable { EXEC_MODE } else { FILE_MODE };
        self.entries.insert(path, Entry::File { mode, data });
        Ok(self)
    }

    /// Adds an (empty) directory. Adding one that already exists is not an error.
    pub fn add_dir(&mut self, path: &str) -> Result<&mut Self, CpioError> {
        let path = normalize(path)?;
        self.add_parents(&path)?;
        self.insert_dir(path)?;
        Ok(self)
    }

    fn insert_dir(&mut self, path: String) -> Result<(), CpioError> {
        match self.entries.get(&path) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File { .. }) => Err(CpioError::FileDirConflict(path)),
            None => {
                self.entries.insert(path, Entry::Dir);
                Ok(())
            }
        }
    }

    fn add_parents(&mut self, path: &str) -> Result<(), CpioError> {
        let mut idx = 0;
        while let Some(pos) = path[idx..].find('/') {
            let parent = &path[..idx + pos];
            self.insert_dir(parent.to_string())?;
            idx += pos + 1;
        }
        Ok(())
    }

    /// Writes the archive. `mtime` is the timestamp of every entry.
    pub fn finish(&self, mtime: u64) -> Result<Vec<u8>, CpioError> {
        let mtime = u32::try_from(mtime).map_err(|_| CpioError::MtimeOutOfRange(mtime))?;
        if self.entries.len() >= u32::MAX as usize {
            return Err(CpioError::TooManyEntries);
        }
        let mut out = Vec::new();
        for (i, (path, entry)) in self.entries.iter().enumerate() {
            let ino = i as u32 + 1;
            match entry {
                Entry::Dir => write_entry(&mut out, ino, DIR_MODE, 2, mtime, path, &[]),
                Entry::File { mode, data } => write_entry(&mut out, ino, *mode, 1, mtime, path, data),
            }
        }
        write_entry(&mut out, 0, 0, 1, 0, TRAILER, &[]);
        Ok(out)
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, mtime: u32, name: &str, data: &[u8]) {
    let fields: [u32; 13] = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        mtime,
        data.len() as u32,
        0, // devmajor
        0, // devminor
        0, // rdevmajor
        0, // rdevminor
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// One parsed newc entry (used by tests and `describe`-style tooling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub data: Vec<u8>,
}

/// Reads a newc archive up to its trailer. Returns `None` on any malformation.
pub fn parse(mut buf: &[u8]) -> Option<Vec<CpioEntry>> {
    let mut out = Vec::new();
    let total = buf.len();
    loop {
        let at = total - buf.len();
        if buf.len() < 110 || &buf[..6] != b"070701" {
            return None;
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let s = std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i]).ok()?;
            *v = u32::from_str_radix(s, 16).ok()?;
        }
        let namesize = f[11] as usize;
        let name_end = 110usize.checked_add(namesize)?;
        if namesize == 0 || name_end > buf.len() {
            return None;
        }
        let name = std::str::from_utf8(&buf[110..name_end - 1]).ok()?.to_string();
        let data_start = (at + name_end).next_multiple_of(4) - at;
        let data_end = data_start.checked_add(f[6] as usize)?;
        if data_end > buf.len() {
            return None;
        }
        let data = buf[data_start..data_end].to_vec();
        let next = ((at + data_end).next_multiple_of(4) - at).min(buf.len());
        buf = &buf[next..];
        if name == TRAILER {
            return Some(out);
        }
        out.push(CpioEntry { name, ino: f[0], mode: f[1], uid: f[2], gid: f[3], nlink: f[4], mtime: f[5], data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_with_parents_and_trailer() {
        let mut b = CpioBuilder::new();
        b.add_file("/lib/modules/nsm.ko", b"nsm".to_vec(), false).unwrap();
        b.add_file("init", b"#!".to_vec(), true).unwrap();
        b.add_file("lib/modules/a.ko", b"a".to_vec(), false).unwrap();
        let bytes = b.finish(7).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let e = parse(&bytes).unwrap();
        let names: Vec<_> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["init", "lib", "lib/modules", "lib/modules/a.ko", "lib/modules/nsm.ko"]);
        assert_eq!(e[0].mode, EXEC_MODE);
        assert_eq!(e[1].mode, DIR_MODE);
        assert_eq!(e[4].mode, FILE_MODE);
        assert!(e.iter().all(|e| e.mtime == 7 && e.uid == 0 && e.gid == 0));
        assert_eq!(e.iter().map(|e| e.ino).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(e[4].data, b"nsm");
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let mut a = CpioBuilder::new();
        a.add_file("x/1", vec![1], false).unwrap();
        a.add_file("y", vec![2; 5], true).unwrap();
        let mut b = CpioBuilder::new();
        b.add_file("y", vec![2; 5], true).unwrap();
        b.add_file("/x/1", vec![1], false).unwrap();
        assert_eq!(a.finish(0).unwrap(), b.finish(0).unwrap());
    }

    #[test]
    fn rejects_bad_paths_and_conflicts() {
        let mut b = CpioBuilder::new();
        for p in ["", "/", "a/../b", "./a", "a//b", "a/", "a\0b"] {
            assert!(matches!(b.add_file(p, vec![], false), Err(CpioError::BadPath(_))));
        }
        b.add_file("a/b", vec![], false).unwrap();
        assert!(matches!(b.add_file("a/b", vec![], false), Err(CpioError::Duplicate(_))));
        assert!(matches!(b.add_file("a", vec![], false), Err(CpioError::FileDirConflict(_))));
        assert!(matches!(b.add_file("a/b/c", vec![], false), Err(CpioError::FileDirConflict(_))));
        assert!(matches!(b.finish(1 << 32), Err(CpioError::MtimeOutOfRange(_))));
    }
}
