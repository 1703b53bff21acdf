//! PID-1 duties. In an enclave image `enclave-app` is `/init`: the kernel starts it with
//! nothing mounted, no modules loaded and no arguments, and it must never exit (PID 1
//! exiting panics the kernel). [`early_init`] mounts `/proc`, `/sys` and `/dev`, loads
//! the kernel modules from `/lib/modules` if the image has any (the project's own kernel
//! has its drivers built in, so it has none) and starts a zombie reaper; the supervisor's
//! arguments then come from the kernel command line ([`supervisor_args`]); a fatal error
//! is printed on the console and the VM powered off ([`halt`]), never returned from.
//!
//! Kernel command line keys (last one wins; all optional):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `cleanroom.platform=` | `nitro` | `nitro`, `snp` or `simulated` (no fallback) |
//! | `cleanroom.listen=` | `vsock:4294967295:5000` | the attested TLS channel (VMADDR_CID_ANY) |
//! | `cleanroom.host=` | `vsock:3:5001` | host services (Nitro's parent is CID 3; under QEMU with vhost-device-vsock, `vsock-host:5001`) |
//! | `cleanroom.policy=` | `host` | `host` = fetch from the host proxy (`--policy-from-host`), else a path |
//!
//! Module parameters come from the command line as the kernel's `MODULE.KEY=VALUE`
//! convention has it, for example `virtio_mmio.device=4K@0xd0000000:5`: when a module is
//! built as a loadable module the kernel does not apply them itself.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

pub const MODULE_DIR: &str = "/lib/modules";

/// Load order (dependencies first). Modules present in [`MODULE_DIR`] but not listed
/// here are loaded afterwards in name order.
pub const MODULE_ORDER: &[&str] =
    &["vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport", "virtio_mmio", "nsm"];

/// Prefix of every console line written by the init code.
pub const LOG: &str = "cleanroom-init:";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error("mount {fstype} on {target}: {source}")]
    Mount { fstype: String, target: String, source: io::Error },
    #[error("read /proc/cmdline: {0}")]
    Cmdline(io::Error),
}

/// Are we the first process of the system (the image's `/init`)?
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// What loading one module did.
#[derive(Debug, PartialEq, Eq)]
pub enum ModuleOutcome {
    Loaded,
    /// Built into the kernel or loaded before (EEXIST).
    AlreadyPresent,
    Failed(String),
}

/// Mount the pseudo file systems, load the modules, start the reaper. Returns the kernel
/// command line. Module failures are reported on the console but are not fatal here:
/// whatever needed the module (a vsock listener, the NSM device) fails clearly later.
pub fn early_init() -> Result<String, InitError> {
    eprintln!("{LOG} PID 1, mounting /proc /sys /dev");
    mount("proc", "/proc", "proc", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, "")?;
    mount("sysfs", "/sys", "sysfs", libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, "")?;
    mount("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755")?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").map_err(InitError::Cmdline)?;
    eprintln!("{LOG} cmdline: {}", cmdline.trim_end());
    start_reaper();
    // The image's own kernel (`make kernel`) has every driver built in and the initramfs
    // carries no modules: nothing to load. Only an image built on Debian's cloud kernel
    // (EIF_KERNEL=debian-cloud) has a /lib/modules.
    let results = load_modules(Path::new(MODULE_DIR), &cmdline);
    if results.is_empty() {
        eprintln!("{LOG} no modules in {MODULE_DIR}: drivers are built into the kernel");
    } else {
        let loaded = results.iter().filter(|(_, o)| *o == ModuleOutcome::Loaded).count();
        eprintln!("{LOG} {loaded} of {} modules loaded", results.len());
    }
    Ok(cmdline)
}

#[allow(unsafe_code)] // PID-1 syscalls through libc
fn mount(source: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) -> Result<(), InitError> {
    let err = |source: io::Error| InitError::Mount { fstype: fstype.into(), target: target.into(), source };
    match std::fs::create_dir(target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    let c = |s: &str| CString::new(s).expect("no NUL in a constant");
    let (source_c, target_c, fstype_c, data_c) = (c(source), c(target), c(fstype), c(data));
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
    let rc =
        unsafe { libc::mount(source_c.as_ptr(), target_c.as_ptr(), fstype_c.as_ptr(), flags, data_c.as_ptr().cast()) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // Already mounted (e.g. a devtmpfs the kernel mounted itself) is fine.
    if e.raw_os_error() == Some(libc::EBUSY) {
        return Ok(());
    }
    Err(err(e))
}

/// PID 1 inherits every orphan; reap them so none stays a zombie.
#[allow(unsafe_code)] // PID-1 syscalls through libc
fn start_reaper() {
    std::thread::spawn(|| loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to a local.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            // ECHILD: no children right now.
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

/// Parameters for `module` from the kernel command line: every `module.key=value`
/// (the module name matched with `-` and `_` treated alike), space-separated.
pub fn module_params(cmdline: &str, module: &str) -> String {
    let norm = |s: &str| s.replace('-', "_");
    let want = norm(module);
    cmdline
        .split_whitespace()
        .filter_map(|tok| {
            let (name, param) = tok.split_once('.')?;
            (norm(name) == want && param.contains('=')).then_some(param)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The modules in `dir`, in load order: [`MODULE_ORDER`] first, then the rest by name.
pub fn module_load_order(dir: &Path) -> Vec<String> {
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".ko")).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    present.sort();
    let mut order: Vec<String> =
        MODULE_ORDER.iter().filter(|m| present.iter().any(|p| p == *m)).map(|m| m.to_string()).collect();
    order.extend(present.into_iter().filter(|p| !MODULE_ORDER.contains(&p.as_str())));
    order
}

/// Load every module in `dir` with `finit_module`, printing one console line each.
pub fn load_modules(dir: &Path, cmdline: &str) -> Vec<(String, ModuleOutcome)> {
    module_load_order(dir)
        .into_iter()
        .map(|name| {
            let params = module_params(cmdline, &name);
            let outcome = load_module(&dir.join(format!("{name}.ko")), &params);
            match &outcome {
                ModuleOutcome::Loaded => eprintln!("{LOG} loaded module {name} {params}"),
                ModuleOutcome::AlreadyPresent => eprintln!("{LOG} module {name} already present"),
                ModuleOutcome::Failed(e) => eprintln!("{LOG} FAILED to load module {name}: {e}"),
            }
            (name, outcome)
        })
        .collect()
}

#[allow(unsafe_code)] // PID-1 syscalls through libc
fn load_module(path: &Path, params: &str) -> ModuleOutcome {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return ModuleOutcome::Failed(format!("open {}: {e}", path.display())),
    };
    let Ok(params) = CString::new(params) else {
        return ModuleOutcome::Failed("parameters contain NUL".into());
    };
    // SAFETY: finit_module(fd, params, flags) with an open fd and a NUL-terminated string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc == 0 {
        return ModuleOutcome::Loaded;
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        ModuleOutcome::AlreadyPresent
    } else {
        ModuleOutcome::Failed(e.to_string())
    }
}

/// The supervisor's argv, built from the kernel command line (see the module docs).
pub fn supervisor_args(cmdline: &str) -> Vec<String> {
    let (mut platform, mut listen, mut host, mut policy) =
        ("nitro".to_string(), "vsock:4294967295:5000".to_string(), "vsock:3:5001".to_string(), "host".to_string());
    for tok in cmdline.split_whitespace() {
        let Some((key, value)) = tok.strip_prefix("cleanroom.").and_then(|kv| kv.split_once('=')) else {
            continue;
        };
        match key {
            "platform" => platform = value.into(),
            "listen" => listen = value.into(),
            "host" => host = value.into(),
            "policy" => policy = value.into(),
            other => eprintln!("{LOG} ignoring unknown cmdline key cleanroom.{other}"),
        }
    }
    let mut argv: Vec<String> =
        ["enclave-app", "--platform", &platform, "--listen", &listen, "--host", &host].map(String::from).to_vec();
    if policy == "host" {
        argv.push("--policy-from-host".into());
    } else {
        argv.extend(["--policy".into(), policy]);
    }
    argv
}

/// A fatal error in PID 1: say so on the console, then power off. Never returns (PID 1
/// must not exit). If power-off is refused, sleep forever.
#[allow(unsafe_code)] // PID-1 syscalls through libc
pub fn halt(why: &str) -> ! {
    eprintln!("{LOG} fatal: {why}");
    eprintln!("{LOG} powering off");
    // SAFETY: sync and reboot take no pointers.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMDLINE: &str = "console=ttyS0 reboot=k panic=30 virtio_mmio.device=4K@0xd0000000:5 \
        virtio-mmio.device=4K@0xd0001000:6 virtio_mmio.novalue vsock.x=1 cleanroom.platform=simulated \
        cleanroom.listen=vsock:4294967295:5000 cleanroom.host=vsock-host:5001 cleanroom.policy=host\n";

    #[test]
    fn module_params_come_from_the_cmdline() {
        assert_eq!(module_params(CMDLINE, "virtio_mmio"), "device=4K@0xd0000000:5 device=4K@0xd0001000:6");
        assert_eq!(module_params(CMDLINE, "vsock"), "x=1");
        assert_eq!(module_params(CMDLINE, "nsm"), "");
    }

    #[test]
    fn supervisor_args_from_cmdline_and_defaults() {
        assert_eq!(
            supervisor_args(CMDLINE),
            [
                "enclave-app",
                "--platform",
                "simulated",
                "--listen",
                "vsock:4294967295:5000",
                "--host",
                "vsock-host:5001",
                "--policy-from-host"
            ]
        );
        let d = supervisor_args("console=ttyS0 cleanroom.policy=/etc/p.toml cleanroom.host=vsock:3:9");
        assert_eq!(d[1..5], ["--platform", "nitro", "--listen", "vsock:4294967295:5000"]);
        assert_eq!(d[5..], ["--host", "vsock:3:9", "--policy", "/etc/p.toml"]);
    }

    #[test]
    fn load_order_puts_dependencies_first() {
        let dir = std::env::temp_dir().join(format!("cr-init-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for m in [
            "nsm",
            "virtio_mmio",
            "aaa_extra",
            "vsock",
            "vmw_vsock_virtio_transport",
            "vmw_vsock_virtio_transport_common",
        ] {
            std::fs::write(dir.join(format!("{m}.ko")), b"").unwrap();
        }
        std::fs::write(dir.join("README"), b"").unwrap();
        assert_eq!(
            module_load_order(&dir),
            [
                "vsock",
                "vmw_vsock_virtio_transport_common",
                "vmw_vsock_virtio_transport",
                "virtio_mmio",
                "nsm",
                "aaa_extra"
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
