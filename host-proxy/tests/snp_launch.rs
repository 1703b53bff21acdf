//! `--launch snp` BY CONSTRUCTION ONLY: no SEV-SNP host is available, so QEMU here is a
//! stand-in script that records its arguments and waits. What is covered: the launcher
//! measures the same description it boots, starts QEMU with exactly `qemu_args`, and
//! refuses firmware it cannot measure without starting anything. What is not: a real
//! SNP boot, the guest's vsock, a real AmdSev OVMF.
//!
//! Firmware is SYNTHETIC (snp-measure's test builder, shared by path): laid out like an
//! AmdSev OVMF, booting nothing.

#[path = "../../snp-measure/tests/common/mod.rs"]
mod synthetic;

use host_proxy::snp::{launch_snp, qemu_args, SnpError, SnpLaunch};
use snp_measure::{Error, GuestPolicy, LaunchError, SnpGuest, VcpuType, DEFAULT_GUEST_FEATURES};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(firmware: Vec<u8>) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("OVMF.fd"), firmware).expect("ovmf");
        std::fs::write(dir.path().join("kernel.bin"), b"kernel bytes").expect("kernel");
        std::fs::write(dir.path().join("rd0.bin"), b"initramfs bytes").expect("initrd");
        // A stand-in QEMU: one argument per line, then wait to be killed.
        let qemu = dir.path().join("qemu-standin");
        std::fs::write(
            &qemu,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\nexec sleep 600\n",
                dir.path().join("argv").display()
            ),
        )
        .expect("qemu stand-in");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn launch(&self) -> SnpLaunch {
        SnpLaunch {
            guest: SnpGuest {
                ovmf: self.path("OVMF.fd"),
                kernel: self.path("kernel.bin"),
                initrd: self.path("rd0.bin"),
                append: "console=ttyS0 cleanroom.platform=snp cleanroom.policy=host".into(),
                vcpus: 2,
                vcpu_type: VcpuType::new("EPYC-v4").expect("known"),
                policy: GuestPolicy::DEFAULT,
                guest_features: DEFAULT_GUEST_FEATURES,
            },
            qemu: self.path("qemu-standin"),
            memory_mib: 1024,
            guest_cid: 16,
            console_log: self.path("console.log"),
            cbitpos: 51,
            reduced_phys_bits: 1,
        }
    }

    fn recorded_argv(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.path("argv")).ok()?;
        Some(text.lines().map(str::to_string).collect())
    }
}

fn wait_for(p: &Path) {
    let t = Instant::now();
    while !p.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn construction_only_qemu_gets_exactly_the_measured_description() {
    let s = Setup::new(synthetic::Synthetic::snp(3, true).build());
    let l = s.launch();
    let vm = launch_snp(&l, &s.path("qemu.log")).expect("launch");
    assert_eq!(vm.measurement, l.guest.measure().expect("measures"), "the launcher measured its own description");
    wait_for(&s.path("argv"));
    let expected: Vec<String> = qemu_args(&l).into_iter().map(|a| a.into_string().expect("utf-8")).collect();
    assert_eq!(s.recorded_argv().expect("argv"), expected);
    drop(vm); // kills the stand-in
}

#[test]
fn construction_only_an_ovmf_without_sev_metadata_starts_nothing() {
    let s = Setup::new(synthetic::Synthetic::snp(3, true).without_entry(synthetic::METADATA_GUID).build());
    let e = launch_snp(&s.launch(), &s.path("qemu.log")).err().expect("refused");
    match &e {
        SnpError::Measure(LaunchError::Measure { source, .. }) => assert_eq!(source, &Error::NoSevMetadata),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("no SEV metadata"), "{e}");
    assert!(e.to_string().starts_with("SNP launch not started"), "{e}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.recorded_argv().is_none(), "QEMU must not have run");
    assert!(!s.path("qemu.log").exists());

    // Firmware without the kernel-hashes page cannot cover the kernel: refused the same way.
    let s = Setup::new(synthetic::Synthetic::snp(3, false).build());
    let e = launch_snp(&s.launch(), &s.path("qemu.log")).err().expect("refused");
    assert!(matches!(e, SnpError::Measure(LaunchError::Measure { source: Error::NoKernelHashesSection, .. })), "{e}");
    assert!(s.recorded_argv().is_none());
}
