//! `--launch qemu`: boot the kernel, cmdline and initramfs of an enclave image (EIF) in a
//! QEMU VM with a real virtio-vsock device.
//!
//! Two machine types ([`QemuMachine`]):
//!
//! - `microvm` (the default) boots the way a Nitro enclave does: no PCI, no ACPI, and the
//!   vsock device (`vhost-user-vsock-device`) on a virtio-mmio transport that the guest
//!   learns about only from a `virtio_mmio.device=SIZE@BASE:IRQ` parameter on its kernel
//!   command line. QEMU appends that parameter itself (`auto-kernel-cmdline=on`), after
//!   the EIF's cmdline; the guest kernel needs `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`.
//!   ACPI is switched off on purpose: with it, the guest could also find the transport
//!   in the DSDT, and the test would no longer show that command-line discovery works.
//! - `q35` puts the same device on PCI (`vhost-user-vsock-pci`), as before issue 16.
//! - `nitro-enclave` (QEMU >= 9.2 built with libcbor and gnutls: `make nitro-emulator`)
//!   is an *emulated* Nitro Enclave: a microvm that takes the whole EIF as `-kernel`,
//!   computes PCR0/1/2 (and 8) from it itself, and adds an emulated NSM device
//!   (`virtio-nsm`), so the supervisor runs its real `nitro` platform against
//!   `/dev/nsm`. The vsock device is the machine's own (`vsock=<chardev>`). The EIF's
//!   measured cmdline comes first; the launch values below are appended after it by
//!   QEMU and are NOT measured (real Nitro appends nothing). Its attestation documents
//!   are unsigned; the owner accepts them only with `--allow-emulated-nsm`.
//!
//! The vsock device is served by `vhost-device-vsock` (crates.io) with a Unix-socket
//! backend, so no host kernel vsock support (and nothing on the host's own vsock CID 2)
//! is involved:
//!
//! - host → guest: the front door connects to `<uds>` and says `CONNECT <listen_port>`
//!   (transport endpoint `vsock-uds:<uds>:<port>`);
//! - guest → host: the supervisor connects to vsock CID 2 (`vsock-host:<host_port>`),
//!   which arrives on the Unix socket `<uds>_<host_port>` that the proxy listens on.
//!
//! The launch parameters (platform, ports, policy from host) are appended to the EIF's
//! cmdline as `cleanroom.*=` values; the kernel, initramfs and the EIF's own cmdline
//! are used unchanged. QEMU and the backend die with the proxy (killed on drop, and
//! `PR_SET_PDEATHSIG` if the proxy itself is killed).

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// VMADDR_CID_ANY: the guest listens on every CID it has.
pub const VSOCK_CID_ANY: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QemuError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("eif-build extract {eif} failed: {why}")]
    Extract { eif: PathBuf, why: String },
    #[error("vhost-device-vsock did not come up: {0}")]
    Backend(String),
    #[error("--accel kvm asked for, but /dev/kvm is not usable here")]
    NoKvm,
    #[error("unknown --accel {0:?}: use auto, kvm or tcg")]
    BadAccel(String),
    #[error("unknown --qemu-machine {0:?}: use microvm, q35 or nitro-enclave")]
    BadMachine(String),
    #[error("{eif}: not a readable enclave image: {why}")]
    BadEif { eif: PathBuf, why: String },
}

/// The QEMU machine type, and with it how the guest finds its vsock device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuMachine {
    /// `microvm`: virtio-mmio transport declared on the kernel command line (the Nitro way).
    Microvm,
    /// `q35`: virtio-pci.
    Q35,
    /// `nitro-enclave`: QEMU's emulated Nitro Enclave (EIF as -kernel, emulated NSM).
    NitroEnclave,
}

impl QemuMachine {
    pub fn name(self) -> &'static str {
        match self {
            QemuMachine::Microvm => "microvm",
            QemuMachine::Q35 => "q35",
            QemuMachine::NitroEnclave => "nitro-enclave",
        }
    }
}

impl std::str::FromStr for QemuMachine {
    type Err = QemuError;
    fn from_str(s: &str) -> Result<Self, QemuError> {
        match s {
            "microvm" => Ok(QemuMachine::Microvm),
            "q35" => Ok(QemuMachine::Q35),
            "nitro-enclave" => Ok(QemuMachine::NitroEnclave),
            other => Err(QemuError::BadMachine(other.into())),
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> QemuError {
    let what = what.into();
    move |source| QemuError::Io { what, source }
}

pub struct QemuLaunch {
    /// The enclave image; its kernel, cmdline and first ramdisk are booted.
    pub eif: PathBuf,
    pub eif_build: PathBuf,
    pub qemu: PathBuf,
    pub backend: PathBuf,
    /// Extracted image, sockets and logs go here.
    pub work_dir: PathBuf,
    pub guest_cid: u32,
    pub memory_mib: u32,
    /// auto (KVM when /dev/kvm is usable, else TCG), kvm or tcg.
    pub accel: String,
    pub machine: QemuMachine,
    /// Supervisor platform, passed as `cleanroom.platform=`.
    pub platform: String,
    /// Guest vsock port of the attested TLS channel.
    pub listen_port: u32,
    /// Host vsock port of the enclave services (blobs, audit, policy).
    pub host_port: u32,
}

/// The backend's host-side Unix socket for a launch in `work_dir`.
pub fn uds_path(work_dir: &Path) -> PathBuf {
    work_dir.join("vsock.sock")
}

/// A running VM and its vsock backend. Both are killed when this is dropped.
pub struct QemuVm {
    qemu: Child,
    backend: Child,
    pub accel: &'static str,
    pub machine: QemuMachine,
    pub console_log: PathBuf,
    pub qemu_log: PathBuf,
    /// When QEMU was started (wall clock and monotonic).
    pub started_at: SystemTime,
    pub started: Instant,
}

impl QemuVm {
    pub fn pid(&self) -> u32 {
        self.qemu.id()
    }

    /// Has QEMU or the backend exited? Either ends the enclave.
    pub fn try_wait(&mut self) -> std::io::Result<Option<(&'static str, ExitStatus)>> {
        if let Some(s) = self.qemu.try_wait()? {
            return Ok(Some(("qemu", s)));
        }
        if let Some(s) = self.backend.try_wait()? {
            return Ok(Some(("vhost-device-vsock", s)));
        }
        Ok(None)
    }

    /// Kill QEMU and the backend and wait for both (idempotent).
    pub fn kill(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let _ = self.backend.kill();
        let _ = self.backend.wait();
    }

    /// The last `lines` lines of the guest console, for error messages.
    pub fn console_tail(&self, lines: usize) -> String {
        tail(&self.console_log, lines)
    }
}

impl Drop for QemuVm {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Is KVM usable (not just present)? Opens /dev/kvm and creates, then drops, a VM.
#[allow(unsafe_code)] // ioctls on /dev/kvm
pub fn kvm_usable() -> bool {
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
    // SAFETY: plain syscalls on a file descriptor we own; every fd opened here is closed.
    unsafe {
        let fd = libc::open(c"/dev/kvm".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::ioctl(fd, KVM_GET_API_VERSION as _, 0) == 12 && {
            let vm = libc::ioctl(fd, KVM_CREATE_VM as _, 0);
            if vm >= 0 {
                libc::close(vm);
            }
            vm >= 0
        };
        libc::close(fd);
        ok
    }
}

/// Children die with the proxy even if it is killed with SIGKILL.
#[allow(unsafe_code)] // a pre-exec hook: prctl in the child
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The kernel, first ramdisk and command line of an enclave image, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The image's own command line (trailing NULs and newlines removed).
    pub cmdline: String,
}

/// `eif-build extract EIF --out DIR`: the image's boot parts, unchanged.
pub fn extract_eif(eif_build: &Path, eif: &Path, out_dir: &Path) -> Result<ExtractedImage, QemuError> {
    let _ = std::fs::remove_dir_all(out_dir);
    let out = Command::new(eif_build)
        .arg("extract")
        .arg(eif)
        .arg("--out")
        .arg(out_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(io(format!("run {}", eif_build.display())))?;
    if !out.status.success() {
        return Err(QemuError::Extract {
            eif: eif.to_path_buf(),
            why: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    let cmdline = std::fs::read(out_dir.join("cmdline.txt")).map_err(io("read extracted cmdline"))?;
    let cmdline = String::from_utf8_lossy(&cmdline).trim_end_matches(['\0', '\n']).to_string();
    Ok(ExtractedImage { kernel: out_dir.join("kernel.bin"), initrd: out_dir.join("rd0.bin"), cmdline })
}

/// The image's command line plus the launch values a VM launcher appends (on SEV-SNP with
/// kernel hashes these are measured too, so the owner recomputes with exactly this text).
pub fn launch_cmdline(image_cmdline: &str, platform: &str, listen_port: u32, host_port: u32) -> String {
    format!(
        "{image_cmdline} cleanroom.platform={platform} cleanroom.listen=vsock:{VSOCK_CID_ANY}:{listen_port} \
         cleanroom.host=vsock-host:{host_port} cleanroom.policy=host"
    )
}

/// The enclave id (NSM `module_id`) the emulated machine reports: says what it is.
pub const EMULATED_ENCLAVE_ID: &str = "i-emulated-qemu-nitro-enclave";

/// The EIF's header magic (`.eif`), checked before an emulator boot so a wrong file is
/// named here rather than in QEMU's log.
const EIF_MAGIC: &[u8; 4] = b".eif";

fn check_eif_magic(eif: &Path) -> Result<(), QemuError> {
    let bad = |why: String| QemuError::BadEif { eif: eif.to_path_buf(), why };
    let mut head = [0u8; 4];
    let mut f = File::open(eif).map_err(|e| bad(e.to_string()))?;
    std::io::Read::read_exact(&mut f, &mut head).map_err(|e| bad(e.to_string()))?;
    if &head != EIF_MAGIC {
        return Err(bad("no EIF magic".into()));
    }
    Ok(())
}

/// Extract the image (not for `nitro-enclave`, which reads the EIF itself), start the
/// backend, then QEMU.
pub fn launch_qemu(l: &QemuLaunch) -> Result<QemuVm, QemuError> {
    let accel = match l.accel.as_str() {
        "auto" if kvm_usable() => "kvm",
        "auto" | "tcg" => "tcg",
        "kvm" if kvm_usable() => "kvm",
        "kvm" => return Err(QemuError::NoKvm),
        other => return Err(QemuError::BadAccel(other.into())),
    };
    std::fs::create_dir_all(&l.work_dir).map_err(io(format!("create {}", l.work_dir.display())))?;

    // 1. kernel, cmdline and initramfs exactly as in the image. The emulated Nitro
    //    machine boots the EIF itself and prepends its cmdline to ours.
    let (kernel, initrd, cmdline) = if l.machine == QemuMachine::NitroEnclave {
        check_eif_magic(&l.eif)?;
        (l.eif.clone(), None, launch_cmdline("", &l.platform, l.listen_port, l.host_port).trim_start().to_string())
    } else {
        let image = extract_eif(&l.eif_build, &l.eif, &l.work_dir.join("image"))?;
        let cmdline = launch_cmdline(&image.cmdline, &l.platform, l.listen_port, l.host_port);
        (image.kernel, Some(image.initrd), cmdline)
    };

    // 2. the vsock backend.
    let vhost_socket = l.work_dir.join("vhost-user.sock");
    let uds = uds_path(&l.work_dir);
    for p in [&vhost_socket, &uds] {
        let _ = std::fs::remove_file(p);
    }
    let backend_log = l.work_dir.join("vhost-device-vsock.log");
    let log = File::create(&backend_log).map_err(io("create backend log"))?;
    let mut cmd = Command::new(&l.backend);
    cmd.arg("--vm")
        .arg(format!("guest-cid={},socket={},uds-path={}", l.guest_cid, vhost_socket.display(), uds.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("backend log"))?)
        .stderr(log);
    die_with_parent(&mut cmd);
    let mut backend = cmd.spawn().map_err(io(format!("start {}", l.backend.display())))?;
    let t = Instant::now();
    while !vhost_socket.exists() {
        if let Ok(Some(s)) = backend.try_wait() {
            return Err(QemuError::Backend(format!("exited with {s}: {}", tail(&backend_log, 5))));
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = backend.kill();
            let _ = backend.wait();
            return Err(QemuError::Backend(format!("no socket after 10 s: {}", tail(&backend_log, 5))));
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // 3. QEMU.
    let console_log = l.work_dir.join("console.log");
    let qemu_log = l.work_dir.join("qemu.log");
    let _ = std::fs::remove_file(&console_log);
    let log = File::create(&qemu_log).map_err(io("create qemu log"))?;
    let mut cmd = Command::new(&l.qemu);
    cmd.args(qemu_args(&QemuArgs {
        machine: l.machine,
        accel,
        memory_mib: l.memory_mib,
        kernel: &kernel,
        initrd: initrd.as_deref(),
        cmdline: &cmdline,
        console_log: &console_log,
        vhost_socket: &vhost_socket,
    }))
    .stdin(Stdio::null())
    .stdout(log.try_clone().map_err(io("qemu log"))?)
    .stderr(log);
    die_with_parent(&mut cmd);
    let started_at = SystemTime::now();
    let started = Instant::now();
    let qemu = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = backend.kill();
            let _ = backend.wait();
            return Err(io(format!("start {}", l.qemu.display()))(e));
        }
    };
    Ok(QemuVm { qemu, backend, accel, machine: l.machine, console_log, qemu_log, started_at, started })
}

/// What the QEMU command line is built from.
pub struct QemuArgs<'a> {
    pub machine: QemuMachine,
    /// `kvm` or `tcg` (already resolved).
    pub accel: &'a str,
    pub memory_mib: u32,
    /// The kernel (for `nitro-enclave`: the whole EIF).
    pub kernel: &'a Path,
    /// The initramfs (none for `nitro-enclave`: it is in the EIF).
    pub initrd: Option<&'a Path>,
    pub cmdline: &'a str,
    pub console_log: &'a Path,
    pub vhost_socket: &'a Path,
}

/// The QEMU arguments for one boot. Guest memory is a shared memfd in both machine types:
/// the vhost-user backend maps the virtqueues from it, which only works with `share=on`.
pub fn qemu_args(a: &QemuArgs) -> Vec<OsString> {
    let mem = format!("{}M", a.memory_mib);
    let cpu = if a.accel == "kvm" { "host" } else { "max" };
    let (machine, device) = match a.machine {
        // No PCI bus and no ACPI tables: the only way the guest can find a virtio device is
        // the virtio_mmio.device= parameter that auto-kernel-cmdline appends to -append.
        // The ISA serial port stays: it is the console.
        QemuMachine::Microvm => (
            "microvm,memory-backend=mem0,acpi=off,pcie=off,isa-serial=on,auto-kernel-cmdline=on",
            "vhost-user-vsock-device,chardev=vsock0",
        ),
        QemuMachine::Q35 => ("q35,memory-backend=mem0", "vhost-user-vsock-pci,chardev=vsock0"),
        // The machine adds its own vhost-user-vsock device on the chardev named by
        // vsock=, and its emulated NSM; PCI and ACPI are off in it already.
        QemuMachine::NitroEnclave => ("", ""),
    };
    let nitro_machine = format!("nitro-enclave,vsock=vsock0,id={EMULATED_ENCLAVE_ID},memory-backend=mem0");
    let machine = if a.machine == QemuMachine::NitroEnclave { nitro_machine.as_str() } else { machine };
    let mut v: Vec<OsString> = [
        "-name",
        "cleanroom-enclave",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-accel",
        a.accel,
        "-cpu",
        cpu,
        "-smp",
        "1",
        "-m",
        &mem,
        "-object",
        &format!("memory-backend-memfd,id=mem0,size={mem},share=on"),
        "-machine",
        machine,
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    v.extend(["-kernel".into(), a.kernel.as_os_str().to_owned()]);
    if let Some(initrd) = a.initrd {
        v.extend(["-initrd".into(), initrd.as_os_str().to_owned()]);
    }
    v.extend(["-append".into(), a.cmdline.into()]);
    v.extend(["-serial".into(), format!("file:{}", a.console_log.display()).into()]);
    v.extend(["-chardev".into(), format!("socket,id=vsock0,path={}", a.vhost_socket.display()).into()]);
    if !device.is_empty() {
        v.extend(["-device".into(), device.into()]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&p, 2), "b\nc");
        assert_eq!(tail(&p, 10), "a\nb\nc");
        assert_eq!(tail(&dir.path().join("missing"), 3), "");
    }

    #[test]
    fn launch_values_are_appended_to_the_image_cmdline_exactly() {
        // On SNP this text is measured, so the owner recomputes with exactly it.
        assert_eq!(
            launch_cmdline("console=ttyS0 quiet", "snp", 5000, 5001),
            "console=ttyS0 quiet cleanroom.platform=snp cleanroom.listen=vsock:4294967295:5000 \
             cleanroom.host=vsock-host:5001 cleanroom.policy=host"
        );
    }

    #[test]
    fn bad_accel_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let l = QemuLaunch {
            eif: dir.path().join("none.eif"),
            eif_build: "eif-build".into(),
            qemu: "qemu-system-x86_64".into(),
            backend: "vhost-device-vsock".into(),
            work_dir: dir.path().join("w"),
            guest_cid: 16,
            memory_mib: 256,
            accel: "hvf".into(),
            machine: QemuMachine::Microvm,
            platform: "simulated".into(),
            listen_port: 5000,
            host_port: 5001,
        };
        assert!(matches!(launch_qemu(&l), Err(QemuError::BadAccel(_))));
        assert!(!l.work_dir.exists());
    }

    fn args_for(machine: QemuMachine) -> Vec<String> {
        let a = QemuArgs {
            machine,
            accel: "tcg",
            memory_mib: 512,
            kernel: Path::new("/w/image/kernel.bin"),
            initrd: (machine != QemuMachine::NitroEnclave).then_some(Path::new("/w/image/rd0.bin")),
            cmdline: "console=ttyS0 cleanroom.platform=simulated",
            console_log: Path::new("/w/console.log"),
            vhost_socket: Path::new("/w/vhost-user.sock"),
        };
        qemu_args(&a).into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn microvm_puts_vsock_on_cmdline_declared_mmio_only() {
        let args = args_for(QemuMachine::Microvm);
        let machine = value_after(&args, "-machine");
        assert_eq!(machine.len(), 1);
        let opts: Vec<&str> = machine[0].split(',').collect();
        assert_eq!(opts[0], "microvm");
        // No other discovery path than the command line: no ACPI tables, no PCI bus.
        for want in ["acpi=off", "pcie=off", "auto-kernel-cmdline=on", "memory-backend=mem0"] {
            assert!(opts.contains(&want), "{want} missing from {machine:?}");
        }
        assert_eq!(value_after(&args, "-device"), ["vhost-user-vsock-device,chardev=vsock0"]);
        assert!(!args.iter().any(|a| a.contains("-pci")), "a PCI device in a microvm boot: {args:?}");
        // vhost-user needs guest memory the backend can map.
        assert_eq!(value_after(&args, "-object"), ["memory-backend-memfd,id=mem0,size=512M,share=on"]);
        assert_eq!(value_after(&args, "-append"), ["console=ttyS0 cleanroom.platform=simulated"]);
        assert_eq!(value_after(&args, "-kernel"), ["/w/image/kernel.bin"]);
        assert_eq!(value_after(&args, "-initrd"), ["/w/image/rd0.bin"]);
        assert_eq!(value_after(&args, "-serial"), ["file:/w/console.log"]);
    }

    #[test]
    fn q35_puts_vsock_on_pci() {
        let args = args_for(QemuMachine::Q35);
        assert_eq!(value_after(&args, "-machine"), ["q35,memory-backend=mem0"]);
        assert_eq!(value_after(&args, "-device"), ["vhost-user-vsock-pci,chardev=vsock0"]);
        assert_eq!(value_after(&args, "-object"), ["memory-backend-memfd,id=mem0,size=512M,share=on"]);
    }

    #[test]
    fn nitro_enclave_boots_the_whole_eif_with_the_machines_own_vsock() {
        let args = args_for(QemuMachine::NitroEnclave);
        assert_eq!(
            value_after(&args, "-machine"),
            [format!("nitro-enclave,vsock=vsock0,id={EMULATED_ENCLAVE_ID},memory-backend=mem0")]
        );
        assert!(value_after(&args, "-device").is_empty(), "the machine makes its own vsock device: {args:?}");
        assert!(value_after(&args, "-initrd").is_empty());
        assert_eq!(value_after(&args, "-chardev"), ["socket,id=vsock0,path=/w/vhost-user.sock"]);
        assert_eq!(value_after(&args, "-object"), ["memory-backend-memfd,id=mem0,size=512M,share=on"]);
    }

    #[test]
    fn a_file_without_eif_magic_is_named_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let eif = dir.path().join("truncated.eif");
        std::fs::write(&eif, b".ei").unwrap();
        let l = QemuLaunch {
            eif: eif.clone(),
            eif_build: "eif-build".into(),
            qemu: "qemu-system-x86_64".into(),
            backend: "/nonexistent/vhost-device-vsock".into(),
            work_dir: dir.path().join("w"),
            guest_cid: 16,
            memory_mib: 256,
            accel: "tcg".into(),
            machine: QemuMachine::NitroEnclave,
            platform: "nitro".into(),
            listen_port: 5000,
            host_port: 5001,
        };
        let Err(e) = launch_qemu(&l) else { panic!("a 3-byte EIF booted") };
        assert!(matches!(&e, QemuError::BadEif { eif: p, .. } if *p == eif), "{e}");
        assert!(e.to_string().contains("truncated.eif"), "{e}");
    }

    #[test]
    fn machine_names_round_trip_and_unknown_ones_are_refused() {
        for m in [QemuMachine::Microvm, QemuMachine::Q35, QemuMachine::NitroEnclave] {
            assert_eq!(m.name().parse::<QemuMachine>().unwrap(), m);
        }
        let e = "pc".parse::<QemuMachine>().unwrap_err();
        assert_eq!(e.to_string(), "unknown --qemu-machine \"pc\": use microvm, q35 or nitro-enclave");
    }
}
