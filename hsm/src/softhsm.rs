//! Test support only (feature `softhsm-test`): a throwaway SoftHSM2 token directory for
//! this crate's tests and bench. Not for owners' keys: its tokens live in a temporary
//! directory and are protected by nothing but file permissions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What to do when SoftHSM2 is missing.
pub const SETUP_HINT: &str = "run `make test-deps` (installs softhsm2: softhsm2-util and libsofthsm2.so)";

/// SO PIN of every test token; tests never log in as security officer.
const SO_PIN: &str = "so-pin-unused";

const MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM2 module: `$SOFTHSM2_MODULE` if set, else the first usual path present.
pub fn module_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SOFTHSM2_MODULE") {
        return Some(p.into());
    }
    MODULE_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
}

/// The directory of a process lives as long as the process (it sits in a static), so
/// remove those of earlier processes: ours by prefix, and older than any run.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if old && entry.file_name().to_string_lossy().starts_with(PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

const PREFIX: &str = "softhsm-";

/// A SoftHSM2 configuration whose token directory is a fresh temporary directory.
pub struct SoftHsm {
    module: PathBuf,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

static SHARED: OnceLock<Result<SoftHsm, String>> = OnceLock::new();

/// The process's SoftHSM2, set up on the first call in a new directory under `base`, with
/// one token per label in `tokens`, all with user PIN `user_pin`. Later calls return the
/// same one and ignore their arguments. SoftHSM2 reads `SOFTHSM2_CONF` and scans its
/// token directory once, at `C_Initialize` (a token made afterwards stays invisible to
/// this process), so every token a process needs is made here, before anything opens the
/// module; tests running in parallel share it, each with its own token.
pub fn shared(base: &Path, tokens: &[&str], user_pin: &str) -> Result<&'static SoftHsm, String> {
    SHARED.get_or_init(|| SoftHsm::create(base, tokens, user_pin)).as_ref().map_err(Clone::clone)
}

impl SoftHsm {
    fn create(base: &Path, labels: &[&str], user_pin: &str) -> Result<SoftHsm, String> {
        let module = module_path().ok_or_else(|| format!("libsofthsm2.so not found; {SETUP_HINT}"))?;
        if !module.exists() {
            return Err(format!("{} does not exist; {SETUP_HINT}", module.display()));
        }
        std::fs::create_dir_all(base).map_err(|e| format!("{}: {e}", base.display()))?;
        remove_stale(base);
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(base)
            .map_err(|e| format!("temporary directory in {}: {e}", base.display()))?;
        let tokendir = dir.path().join("tokens");
        std::fs::create_dir(&tokendir).map_err(|e| format!("{}: {e}", tokendir.display()))?;
        let conf = dir.path().join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokendir.display()
        );
        std::fs::write(&conf, text).map_err(|e| format!("{}: {e}", conf.display()))?;
        let hsm = SoftHsm { module, conf, _dir: dir };
        for label in labels {
            hsm.init_token(label, user_pin)?;
        }
        // Before any C_Initialize in this process (see `shared`).
        std::env::set_var("SOFTHSM2_CONF", &hsm.conf);
        Ok(hsm)
    }

    /// Path of libsofthsm2.so.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// Path of the softhsm2.conf in use.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    fn init_token(&self, label: &str, user_pin: &str) -> Result<(), String> {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label, "--pin", user_pin, "--so-pin", SO_PIN])
            .output()
            .map_err(|e| format!("cannot run softhsm2-util ({e}); {SETUP_HINT}"))?;
        if !out.status.success() {
            return Err(format!(
                "softhsm2-util --init-token --label {label} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
}
