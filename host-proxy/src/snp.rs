//! `--launch snp`: boot the enclave image's kernel, initramfs and command line as an AMD
//! SEV-SNP guest in QEMU, with kernel hashes, so the launch measurement covers all three.
//!
//! One typed description, [`snp_measure::SnpGuest`], is both measured
//! ([`SnpGuest::measure`]) and launched ([`qemu_args`] takes it): the firmware, kernel,
//! initrd, command line, vCPU count and type that QEMU gets are the ones the measurement
//! used, by construction. The launcher measures before it starts anything, so firmware
//! that cannot be measured (no SEV metadata, no kernel-hashes page) is refused by name and
//! QEMU never runs.
//!
//! The QEMU command line follows QEMU's SEV-SNP documentation (QEMU 9.1 and later):
//! `-machine q35,confidential-guest-support=sev0,memory-backend=ram1`, a shared
//! `memory-backend-memfd` for the guest's shared memory (QEMU adds the private
//! guest_memfd itself), `-object sev-snp-guest,…,policy=…,kernel-hashes=on`, the AmdSev
//! OVMF as `-bios`, and a kernel vhost-vsock device (`vhost-vsock-pci`, with
//! `iommu_platform` as an SNP guest's virtio devices need). The front door relays to
//! `vsock:CID:5000`; the guest reaches the host services at vsock CID 2, port 5001.
//!
//! Trust: host code. The measurement it prints is a convenience for the operator; the
//! owner recomputes it with `snp-measure` from its own build and trusts only the report
//! the AMD secure processor signs. Not covered here: no SEV-SNP host is available, so the
//! command line is tested by construction only (exact vector, inputs equal to the measured
//! ones, and the spawned process receiving exactly that vector); it has never booted.

use snp_measure::{LaunchError, SnpGuest};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// One SNP launch: the measured guest plus what QEMU needs besides.
#[derive(Debug, Clone)]
pub struct SnpLaunch {
    /// What is measured and launched.
    pub guest: SnpGuest,
    pub qemu: PathBuf,
    pub memory_mib: u32,
    /// The guest's vsock CID (kernel vhost-vsock).
    pub guest_cid: u32,
    /// Serial console file.
    pub console_log: PathBuf,
    /// The C-bit position (CPUID 0x8000001F EBX[5:0]): 51 on EPYC 7003/9004.
    pub cbitpos: u32,
    /// Physical address bits lost to encryption (CPUID 0x8000001F EBX[11:6]): 1 on EPYC.
    pub reduced_phys_bits: u32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// The launch could not be measured; nothing was started.
    #[error("SNP launch not started: {0}")]
    Measure(#[from] LaunchError),
    /// QEMU option values are comma-separated, so a path with a comma cannot be passed.
    #[error("path {0} contains a comma, which QEMU's option syntax cannot carry")]
    CommaInPath(PathBuf),
    #[error("--memory-mib must be at least 1")]
    NoMemory,
    #[error("guest CID {0} is reserved: use 3 to 4294967294")]
    ReservedCid(u32),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

/// The vsock port enclave-app's TLS channel listens on in the guest.
pub const GUEST_PORT: u32 = 5000;
/// The host port the guest dials (at CID 2) for the host services.
pub const HOST_PORT: u32 = 5001;

impl SnpLaunch {
    /// The request's own bounds (memory, CID, a console path QEMU can take), checked
    /// before anything else.
    pub fn check(&self) -> Result<(), SnpError> {
        if self.memory_mib == 0 {
            return Err(SnpError::NoMemory);
        }
        if self.guest_cid < 3 || self.guest_cid == u32::MAX {
            return Err(SnpError::ReservedCid(self.guest_cid));
        }
        // The other paths are separate arguments; only the console sits inside an option.
        if self.console_log.to_string_lossy().contains(',') {
            return Err(SnpError::CommaInPath(self.console_log.clone()));
        }
        Ok(())
    }
}

/// QEMU's arguments (without the program) for `l`. Pure: every measured input comes from
/// `l.guest`, nothing else.
pub fn qemu_args(l: &SnpLaunch) -> Vec<OsString> {
    let g = &l.guest;
    let mem = format!("{}M", l.memory_mib);
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&["-name", "cleanroom-snp", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    push(&["-accel", "kvm", "-cpu", g.vcpu_type.name(), "-smp", &g.vcpus.to_string(), "-m", &mem]);
    push(&["-machine", "q35,confidential-guest-support=sev0,memory-backend=ram1"]);
    push(&["-object", &format!("memory-backend-memfd,id=ram1,size={mem},share=true,prealloc=false")]);
    push(&[
        "-object",
        &format!(
            "sev-snp-guest,id=sev0,cbitpos={},reduced-phys-bits={},policy={},kernel-hashes=on",
            l.cbitpos,
            l.reduced_phys_bits,
            g.policy.to_qemu()
        ),
    ]);
    a.push("-bios".into());
    a.push(g.ovmf.clone().into());
    a.push("-kernel".into());
    a.push(g.kernel.clone().into());
    a.push("-initrd".into());
    a.push(g.initrd.clone().into());
    a.push("-append".into());
    a.push(g.append.clone().into());
    a.push("-serial".into());
    let mut serial = OsString::from("file:");
    serial.push(&l.console_log);
    a.push(serial);
    a.push("-device".into());
    a.push(format!("vhost-vsock-pci,guest-cid={},disable-legacy=on,iommu_platform=true", l.guest_cid).into());
    a
}

/// A running SNP guest. QEMU is killed when this is dropped (and if the proxy dies).
pub struct SnpVm {
    qemu: Child,
    /// The measurement the launcher computed (the owner recomputes its own).
    pub measurement: [u8; snp_measure::MEASUREMENT_LEN],
    pub started: Instant,
}

impl SnpVm {
    pub fn pid(&self) -> u32 {
        self.qemu.id()
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.qemu.try_wait()
    }

    pub fn kill(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

impl Drop for SnpVm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Measure, then start QEMU with exactly [`qemu_args`]. A launch that cannot be measured
/// starts nothing.
pub fn launch_snp(l: &SnpLaunch, qemu_log: &Path) -> Result<SnpVm, SnpError> {
    l.check()?;
    let measurement = l.guest.measure()?;
    let log = File::create(qemu_log)
        .map_err(|source| SnpError::Io { what: format!("create {}", qemu_log.display()), source })?;
    let log2 = log.try_clone().map_err(|source| SnpError::Io { what: "qemu log".into(), source })?;
    let mut cmd = Command::new(&l.qemu);
    cmd.args(qemu_args(l)).stdin(Stdio::null()).stdout(log).stderr(log2);
    crate::qemu::die_with_parent(&mut cmd);
    let qemu = cmd.spawn().map_err(|source| SnpError::Io { what: format!("start {}", l.qemu.display()), source })?;
    Ok(SnpVm { qemu, measurement, started: Instant::now() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use snp_measure::{GuestPolicy, VcpuType, DEFAULT_GUEST_FEATURES};

    pub(crate) fn launch() -> SnpLaunch {
        SnpLaunch {
            guest: SnpGuest {
                ovmf: "/opt/amdsev/OVMF.fd".into(),
                kernel: "/run/image/kernel.bin".into(),
                initrd: "/run/image/rd0.bin".into(),
                append: "console=ttyS0 cleanroom.platform=snp".into(),
                vcpus: 2,
                vcpu_type: VcpuType::new("EPYC-Milan").unwrap(),
                policy: GuestPolicy::DEFAULT,
                guest_features: DEFAULT_GUEST_FEATURES,
            },
            qemu: "qemu-system-x86_64".into(),
            memory_mib: 2048,
            guest_cid: 16,
            console_log: "/run/console.log".into(),
            cbitpos: 51,
            reduced_phys_bits: 1,
        }
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn the_exact_argument_vector() {
        assert_eq!(
            strings(qemu_args(&launch())),
            [
                "-name",
                "cleanroom-snp",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
                "-accel",
                "kvm",
                "-cpu",
                "EPYC-Milan",
                "-smp",
                "2",
                "-m",
                "2048M",
                "-machine",
                "q35,confidential-guest-support=sev0,memory-backend=ram1",
                "-object",
                "memory-backend-memfd,id=ram1,size=2048M,share=true,prealloc=false",
                "-object",
                "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000,kernel-hashes=on",
                "-bios",
                "/opt/amdsev/OVMF.fd",
                "-kernel",
                "/run/image/kernel.bin",
                "-initrd",
                "/run/image/rd0.bin",
                "-append",
                "console=ttyS0 cleanroom.platform=snp",
                "-serial",
                "file:/run/console.log",
                "-device",
                "vhost-vsock-pci,guest-cid=16,disable-legacy=on,iommu_platform=true",
            ]
        );
    }

    /// The value after `flag` in an argument vector.
    fn after(args: &[String], flag: &str) -> String {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing"));
        args[i + 1].clone()
    }

    #[test]
    fn every_measured_input_reaches_qemu_and_the_owners_recompute_alike() {
        let base = launch();
        let q = strings(qemu_args(&base));
        let m = strings(base.guest.measure_args());
        // The same values on both sides.
        for (qemu_flag, measure_flag) in [
            ("-bios", "--ovmf"),
            ("-kernel", "--kernel"),
            ("-initrd", "--initrd"),
            ("-smp", "--vcpus"),
            ("-cpu", "--vcpu-type"),
        ] {
            assert_eq!(after(&q, qemu_flag), after(&m, measure_flag), "{qemu_flag} vs {measure_flag}");
        }
        assert_eq!(after(&q, "-append"), m.last().unwrap().strip_prefix("--append=").unwrap());
        assert!(q.iter().any(|a| a.starts_with("sev-snp-guest,") && a.ends_with(",kernel-hashes=on")));

        // Changing any one input of the description changes both vectors.
        let mut g = base.guest.clone();
        let variants: Vec<SnpGuest> = vec![
            SnpGuest { ovmf: "/other/OVMF.fd".into(), ..g.clone() },
            SnpGuest { kernel: "/other/kernel".into(), ..g.clone() },
            SnpGuest { initrd: "/other/rd".into(), ..g.clone() },
            SnpGuest { append: "console=ttyS1".into(), ..g.clone() },
            SnpGuest { vcpus: 4, ..g.clone() },
            SnpGuest { vcpu_type: VcpuType::new("EPYC-Genoa").unwrap(), ..g.clone() },
        ];
        for v in variants {
            let l = SnpLaunch { guest: v.clone(), ..base.clone() };
            assert_ne!(strings(qemu_args(&l)), q, "{v:?}");
            assert_ne!(strings(v.measure_args()), m, "{v:?}");
        }
        // The policy reaches QEMU (and the report), not the measurement.
        g.policy = GuestPolicy::parse("0x20000").unwrap();
        let l = SnpLaunch { guest: g.clone(), ..base.clone() };
        assert!(strings(qemu_args(&l)).iter().any(|a| a.contains("policy=0x20000,")));
        assert_eq!(strings(g.measure_args()), m);
    }

    #[test]
    fn bad_requests_start_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("qemu.log");
        let with_comma = SnpLaunch { console_log: "/run/a,b.log".into(), ..launch() };
        assert!(matches!(launch_snp(&with_comma, &log), Err(SnpError::CommaInPath(_))));
        assert!(matches!(launch_snp(&SnpLaunch { memory_mib: 0, ..launch() }, &log), Err(SnpError::NoMemory)));
        assert!(matches!(launch_snp(&SnpLaunch { guest_cid: 2, ..launch() }, &log), Err(SnpError::ReservedCid(2))));
        // Files that do not exist: refused while measuring, before QEMU.
        assert!(matches!(launch_snp(&launch(), &log), Err(SnpError::Measure(LaunchError::Read { .. }))));
        assert!(!log.exists());
    }
}
