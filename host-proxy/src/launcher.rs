//! Launching the enclave. `process` runs enclave-app as a local child process (with the
//! simulated platform); `qemu` ([`crate::qemu`]), `nitro` ([`crate::nitro`]) and `snp`
//! ([`crate::snp`]) boot the real image. The child is killed when the launcher is dropped.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use transport::Endpoint;

pub struct ProcessLaunch {
    pub enclave_bin: PathBuf,
    pub platform: String,
    pub policy: PathBuf,
    pub listen: Endpoint,
    pub host: Endpoint,
    /// More arguments, after the ones above (development and tests).
    pub extra_args: Vec<String>,
}

pub struct Launched {
    child: Child,
}

impl Launched {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Has the enclave exited? Returns its status if so.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unsafe_code)] // a pre-exec hook: prctl in the child
pub fn launch_process(l: &ProcessLaunch) -> std::io::Result<Launched> {
    let mut cmd = Command::new(&l.enclave_bin);
    // If the host proxy dies (even by SIGKILL) the enclave process must not linger.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .arg("--platform")
        .arg(&l.platform)
        .arg("--listen")
        .arg(l.listen.to_string())
        .arg("--host")
        .arg(l.host.to_string())
        .arg("--policy")
        .arg(&l.policy)
        .args(&l.extra_args)
        .stdin(Stdio::null())
        .spawn()?;
    Ok(Launched { child })
}
