//! `host-proxy run --launch snp` refusing what it cannot measure, BY CONSTRUCTION ONLY:
//! `eif-build` and QEMU are stand-in scripts (no SEV-SNP host here), the firmware is
//! synthetic. A refused launch must start no QEMU, open no listener and write no ready
//! file.

#[path = "../../snp-measure/tests/common/mod.rs"]
mod synthetic;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(firmware: Vec<u8>) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("OVMF.fd"), firmware).expect("ovmf");
        std::fs::write(d.join("cleanroom.eif"), b"stand-in image").expect("eif");
        std::fs::write(d.join("policy.toml"), b"# policy\n").expect("policy");
        // A stand-in `eif-build extract EIF --out DIR`: writes the three parts.
        script(
            &d.join("eif-build"),
            "mkdir -p \"$4\" && printf kernel > \"$4/kernel.bin\" && printf initrd > \"$4/rd0.bin\" \
             && printf 'console=ttyS0' > \"$4/cmdline.txt\"\n",
        );
        script(&d.join("qemu"), &format!("touch '{}'\nexec sleep 600\n", d.join("qemu-ran").display()));
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, extra: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_host-proxy"))
            .args(["run", "--launch", "snp", "--eif"])
            .arg(self.path("cleanroom.eif"))
            .arg("--eif-build")
            .arg(self.path("eif-build"))
            .arg("--qemu-bin")
            .arg(self.path("qemu"))
            .arg("--policy")
            .arg(self.path("policy.toml"))
            .arg("--store")
            .arg(self.path("store"))
            .arg(format!("--front-door=unix:{}", self.path("front.sock").display()))
            .arg(format!("--blob-api=unix:{}", self.path("blob.sock").display()))
            .arg("--ready-file")
            .arg(self.path("ready.json"))
            // Should a regression get as far as binding, stay off the usual vsock ports.
            .args(["--host-port", "47001", "--guest-port", "47000"])
            .args(if extra.contains(&"--guest-cid") { &[][..] } else { &["--guest-cid", "4000000"][..] })
            .args(extra)
            .output()
            .expect("run host-proxy");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn nothing_started(&self) {
        assert!(!self.path("qemu-ran").exists(), "QEMU must not run");
        assert!(!self.path("front.sock").exists(), "no front door");
        assert!(!self.path("ready.json").exists(), "no ready file");
    }
}

#[test]
fn construction_only_snp_run_refuses_firmware_without_sev_metadata_and_starts_nothing() {
    let s = Setup::new(synthetic::Synthetic::snp(5, true).without_entry(synthetic::METADATA_GUID).build());
    let ovmf = s.path("OVMF.fd").display().to_string();
    let (ok, err) = s.run(&["--ovmf", &ovmf]);
    assert!(!ok);
    assert!(err.contains("SNP launch not started") && err.contains("no SEV metadata"), "{err}");
    s.nothing_started();
}

#[test]
fn construction_only_snp_run_refuses_bad_requests_before_anything() {
    let s = Setup::new(synthetic::Synthetic::snp(5, true).build());
    let ovmf = s.path("OVMF.fd").display().to_string();
    for (extra, says) in [
        (vec![], "--launch snp needs --ovmf"),
        (vec!["--ovmf", &ovmf, "--snp-policy", "0xb0000"], "allows debugging"),
        (vec!["--ovmf", &ovmf, "--vcpu-type", "Skylake"], "unknown vCPU type"),
        (vec!["--ovmf", &ovmf, "--cpu-count", "0"], "vCPU count must be at least 1"),
        (vec!["--ovmf", &ovmf, "--debug-mode"], "--debug-mode applies to --launch nitro only"),
        (vec!["--ovmf", &ovmf, "--guest-cid", "2"], "guest CID 2 is reserved"),
    ] {
        let (ok, err) = s.run(&extra);
        assert!(!ok, "{extra:?}");
        assert!(err.contains(says), "{extra:?}: {err}");
        s.nothing_started();
    }
}
