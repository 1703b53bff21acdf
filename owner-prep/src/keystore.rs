//! The data owner's key file.
//!
//! One JSON file, mode 0600, holding:
//! * the tokenization key (32 bytes): HMAC-SHA-256 key that turns identifiers into
//!   privacy-unit tokens. Without it nobody (including the enclave) can map a token back
//!   to an identifier or compute the token of a guessed identifier;
//! * the owner's Ed25519 signing seed (32 bytes): signs budget grants and log entries;
//! * one AES-256 data key per sealed dataset, indexed by dataset digest.
//!
//! The file is created when absent and never silently replaced: opening an existing file
//! loads it, a data key is never overwritten by a different one, and [`KeyStore::save`]
//! replaces the file atomically (write a 0600 temporary, fsync, rename). Keys live in
//! zeroizing buffers, never appear in `Debug` output or error messages; a malformed file
//! is reported by line and column only, never by content.

use protocol::sealed::DataKey;
use protocol::signing::SigningKey;
use protocol::Digest;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

const FILE_VERSION: u32 = 1;
const TOKEN_LABEL: &[u8] = b"cleanroom/token/v1\0";
const KEY_ID_LABEL: &[u8] = b"cleanroom/key-id/v1";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    #[error("key file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key file {}: malformed at line {line}, column {column} ({category})", path.display())]
    Malformed { path: PathBuf, line: usize, column: usize, category: &'static str },
    #[error("key file {}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("key file {} is accessible by group or others (mode {mode:o}); run `chmod 600` on it", path.display())]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("dataset {digest} already has a different data key; refusing to overwrite it")]
    KeyConflict { digest: Digest },
    #[error("the system random number generator failed")]
    Random,
}

fn random32() -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
    let mut k = Zeroizing::new([0u8; 32]);
    SystemRandom::new().fill(&mut k[..]).map_err(|_| KeyStoreError::Random)?;
    Ok(k)
}

/// A fresh random AES-256 data key from the system CSPRNG.
pub fn fresh_data_key() -> Result<DataKey, KeyStoreError> {
    let k = random32()?;
    Ok(DataKey(*k))
}

/// The owner's tokenization key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct TokenKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey(id={}, <redacted>)", self.key_id())
    }
}

impl TokenKey {
    /// A fresh random key, not yet stored anywhere (its id can be recorded first).
    pub fn generate() -> Result<Self, KeyStoreError> {
        Ok(TokenKey(random32()?))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenKey(Zeroizing::new(bytes))
    }

    /// Public, non-secret name of this key: hex of the first 8 bytes of
    /// HMAC(key, "cleanroom/key-id/v1"). Domain-separated from tokens, so it reveals
    /// nothing about any token.
    pub fn key_id(&self) -> String {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]), KEY_ID_LABEL);
        hex::encode(&tag.as_ref()[..8])
    }

    /// A reusable tokenizer (holds the expanded HMAC key).
    pub fn tokenizer(&self) -> Tokenizer {
        Tokenizer { key: hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]) }
    }
}

/// Keyed HMAC-SHA-256 tokenization: `token(v) = HMAC(key, "cleanroom/token/v1\0" || v)`.
pub struct Tokenizer {
    key: hmac::Key,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(<redacted>)")
    }
}

impl Tokenizer {
    pub fn token(&self, value: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(TOKEN_LABEL);
        ctx.update(value);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// The owner's keys, loaded from (and saved to) one file.
pub struct KeyStore {
    path: PathBuf,
    token_key: TokenKey,
    signing_seed: Zeroizing<[u8; 32]>,
    data_keys: BTreeMap<Digest, DataKey>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("key_id", &self.key_id())
            .field("data_keys", &self.data_keys.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    /// Public, for humans: which tokenization key this is.
    key_id: &'a str,
    /// Public, for humans: the owner's verifying key.
    signing_public_key: &'a str,
    tokenization_key: &'a str,
    signing_seed: &'a str,
    data_keys: BTreeMap<String, &'a str>,
}

#[derive(Deserialize)]
struct FileIn {
    version: u32,
    tokenization_key: String,
    signing_seed: String,
    #[serde(default)]
    data_keys: BTreeMap<String, String>,
}

impl Drop for FileIn {
    fn drop(&mut self) {
        self.tokenization_key.zeroize();
        self.signing_seed.zeroize();
        for v in self.data_keys.values_mut() {
            v.zeroize();
        }
    }
}

fn decode_key(path: &Path, what: &str, hex_str: &str) -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
    let mut k = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_str, &mut k[..])
        .map_err(|_| KeyStoreError::Invalid { path: path.into(), why: format!("{what} is not 64 hex characters") })?;
    Ok(k)
}

impl KeyStore {
    /// Open the key file at `path`, or create it with fresh keys if it does not exist.
    /// An existing file is never replaced here.
    pub fn create_or_open(path: &Path) -> Result<Self, KeyStoreError> {
        match Self::create_new(path) {
            Err(KeyStoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::open(path)
            }
            other => other,
        }
    }

    /// Open an existing key file.
    pub fn open(path: &Path) -> Result<Self, KeyStoreError> {
        let io = |source| KeyStoreError::Io { path: path.into(), source };
        let mut file = File::open(path).map_err(io)?;
        check_permissions(path, &file)?;
        let mut buf = Zeroizing::new(Vec::new());
        file.read_to_end(&mut buf).map_err(io)?;
        let parsed: FileIn = serde_json::from_slice(&buf).map_err(|e| KeyStoreError::Malformed {
            path: path.into(),
            line: e.line(),
            column: e.column(),
            category: match e.classify() {
                serde_json::error::Category::Io => "I/O",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "wrong field or type",
                serde_json::error::Category::Eof => "unexpected end",
            },
        })?;
        if parsed.version != FILE_VERSION {
            return Err(KeyStoreError::Invalid {
                path: path.into(),
                why: format!("version {} is not supported (expected {FILE_VERSION})", parsed.version),
            });
        }
        let token_key = TokenKey(decode_key(path, "tokenization_key", &parsed.tokenization_key)?);
        let signing_seed = decode_key(path, "signing_seed", &parsed.signing_seed)?;
        let mut data_keys = BTreeMap::new();
        for (digest, key) in &parsed.data_keys {
            let d: Digest = digest.parse().map_err(|_| KeyStoreError::Invalid {
                path: path.into(),
                why: format!("data_keys: {digest:?} is not a dataset digest"),
            })?;
            let k = decode_key(path, "a data key", key)?;
            data_keys.insert(d, DataKey(*k));
        }
        Ok(KeyStore { path: path.into(), token_key, signing_seed, data_keys })
    }

    fn create_new(path: &Path) -> Result<Self, KeyStoreError> {
        let store = KeyStore {
            path: path.into(),
            token_key: TokenKey(random32()?),
            signing_seed: random32()?,
            data_keys: BTreeMap::new(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| KeyStoreError::Io { path: parent.into(), source })?;
        }
        let file = create_private(path)?;
        store.write_to(file, path)?;
        Ok(store)
    }

    /// Where this key store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tokenization_key(&self) -> &TokenKey {
        &self.token_key
    }

    /// Replace the tokenization key (saved before returning). Tokens made with the old key
    /// no longer link to new ones; the old key is gone from this file. Returns the old and
    /// the new key id.
    pub fn replace_tokenization_key(&mut self, next: TokenKey) -> Result<(String, String), KeyStoreError> {
        let old = self.key_id();
        self.token_key = next;
        self.save()?;
        Ok((old, self.key_id()))
    }

    /// Public identifier of the tokenization key (see [`TokenKey::key_id`]).
    pub fn key_id(&self) -> String {
        self.token_key.key_id()
    }

    /// The owner's Ed25519 signing key.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(*self.signing_seed)
    }

    /// Remember the data key of a sealed dataset (call [`KeyStore::save`] to persist).
    /// Storing the same key again is a no-op; a different key for a known digest is
    /// refused, because it would make the earlier sealed copy undecryptable.
    pub fn store_data_key(&mut self, dataset_digest: Digest, key: DataKey) -> Result<(), KeyStoreError> {
        match self.data_keys.get(&dataset_digest) {
            Some(existing) if *existing == key => Ok(()),
            Some(_) => Err(KeyStoreError::KeyConflict { digest: dataset_digest }),
            None => {
                self.data_keys.insert(dataset_digest, key);
                Ok(())
            }
        }
    }

    pub fn data_key(&self, dataset_digest: &Digest) -> Option<DataKey> {
        self.data_keys.get(dataset_digest).cloned()
    }

    /// Digests of the datasets this store holds keys for.
    pub fn datasets(&self) -> Vec<Digest> {
        self.data_keys.keys().copied().collect()
    }

    /// Atomically replace the key file with the current contents.
    pub fn save(&self) -> Result<(), KeyStoreError> {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".tmp");
        let tmp = self.path.with_file_name(name);
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KeyStoreError::Io { path: tmp, source }),
        }
        let file = create_private(&tmp)?;
        self.write_to(file, &tmp)?;
        std::fs::rename(&tmp, &self.path).map_err(|source| KeyStoreError::Io { path: self.path.clone(), source })
    }

    fn write_to(&self, mut file: File, path: &Path) -> Result<(), KeyStoreError> {
        let tokenization_key = Zeroizing::new(hex::encode(&self.token_key.0[..]));
        let signing_seed = Zeroizing::new(hex::encode(&self.signing_seed[..]));
        let data_hex: Vec<(String, Zeroizing<String>)> =
            self.data_keys.iter().map(|(d, k)| (d.to_hex(), Zeroizing::new(hex::encode(k.0)))).collect();
        let key_id = self.key_id();
        let public = hex::encode(self.signing_key().public_key());
        let out = FileOut {
            version: FILE_VERSION,
            key_id: &key_id,
            signing_public_key: &public,
            tokenization_key: &tokenization_key,
            signing_seed: &signing_seed,
            data_keys: data_hex.iter().map(|(d, k)| (d.clone(), k.as_str())).collect(),
        };
        let json = Zeroizing::new(serde_json::to_vec_pretty(&out).expect("key file serializes"));
        let io = |source| KeyStoreError::Io { path: path.into(), source };
        file.write_all(&json).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)
    }
}

/// Create a new file readable and writable by the owner only; fails if it exists.
fn create_private(path: &Path) -> Result<File, KeyStoreError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|source| KeyStoreError::Io { path: path.into(), source })
}

#[cfg(unix)]
fn check_permissions(path: &Path, file: &File) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata().map_err(|source| KeyStoreError::Io { path: path.into(), source })?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::InsecurePermissions { path: path.into(), mode: mode & 0o777 });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path, _: &File) -> Result<(), KeyStoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_reopen_gives_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new-dir").join("owner.keys");
        let mut a = KeyStore::create_or_open(&path).unwrap();
        let digest = Digest::of(b"dataset");
        a.store_data_key(digest, DataKey([9; 32])).unwrap();
        a.save().unwrap();
        let b = KeyStore::create_or_open(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(a.key_id().len(), 16);
        assert_eq!(a.signing_key().public_key(), b.signing_key().public_key());
        assert_eq!(b.data_key(&digest), Some(DataKey([9; 32])));
        assert_eq!(b.data_key(&Digest::of(b"other")), None);
        let t = |s: &KeyStore| s.tokenization_key().tokenizer().token(b"C00000001");
        assert_eq!(t(&a), t(&b));
    }

    #[cfg(unix)]
    #[test]
    fn file_is_private_and_insecure_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.keys");
        let s = KeyStore::create_or_open(&path).unwrap();
        s.save().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = KeyStore::create_or_open(&path).unwrap_err();
        assert!(matches!(e, KeyStoreError::InsecurePermissions { mode: 0o644, .. }), "{e}");
    }

    #[test]
    fn two_stores_have_different_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyStore::create_or_open(&dir.path().join("a")).unwrap();
        let b = KeyStore::create_or_open(&dir.path().join("b")).unwrap();
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(a.tokenization_key().tokenizer().token(b"x"), b.tokenization_key().tokenizer().token(b"x"));
    }

    #[test]
    fn data_key_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = KeyStore::create_or_open(&dir.path().join("k")).unwrap();
        let d = Digest::of(b"ds");
        s.store_data_key(d, DataKey([1; 32])).unwrap();
        s.store_data_key(d, DataKey([1; 32])).unwrap();
        let e = s.store_data_key(d, DataKey([2; 32])).unwrap_err();
        assert!(matches!(e, KeyStoreError::KeyConflict { .. }));
        assert_eq!(s.data_key(&d), Some(DataKey([1; 32])));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let mut s = KeyStore::create_or_open(&path).unwrap();
        s.store_data_key(Digest::of(b"ds"), DataKey([0xab; 32])).unwrap();
        s.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let secret = v["tokenization_key"].as_str().unwrap().to_string();
        let seed = v["signing_seed"].as_str().unwrap().to_string();
        let dbg = format!("{s:?} {:?} {:?}", s.tokenization_key(), s.tokenization_key().tokenizer());
        for needle in [&secret, &seed, &"ab".repeat(32)] {
            assert!(!dbg.contains(needle.as_str()), "{dbg}");
        }
        // A corrupt key file is reported by position, never by content.
        let corrupt = text.replace(&secret, &format!("{secret}zz\" oops"));
        std::fs::write(&path, corrupt).unwrap();
        let e = KeyStore::open(&path).unwrap_err().to_string();
        assert!(e.contains("malformed at line"), "{e}");
        assert!(!e.contains(&secret[..16]), "{e}");
        let bad_hex = text.replace(&secret, &"g".repeat(64));
        std::fs::write(&path, bad_hex).unwrap();
        let e = KeyStore::open(&path).unwrap_err().to_string();
        assert!(e.contains("tokenization_key is not 64 hex"), "{e}");
    }
}
