//! The typed launch description ([`SnpGuest`]) that a launcher and this measurement share,
//! and the owner's `MEASUREMENT.json` written from it.
//!
//! Firmware here is SYNTHETIC (tests/common): laid out like an AmdSev OVMF with an
//! SNP_KERNEL_HASHES page, booting nothing. It proves that every launched input reaches the
//! digest and that the file the CLI writes is the one the owner's parser reads, not that
//! any real firmware boots.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use attestation_verifier::SnpReference;
use common::{Synthetic, METADATA_GUID};
use snp_measure::{
    launch_digest, Error, GuestPolicy, KernelHashes, LaunchConfig, LaunchError, SnpGuest, VcpuType, VmmType,
    DEFAULT_GUEST_FEATURES,
};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("OVMF.fd"), Synthetic::snp(7, true).build()).expect("write ovmf");
        std::fs::write(dir.path().join("kernel.bin"), b"a kernel image, as eif-build extracts it").expect("write");
        std::fs::write(dir.path().join("rd0.bin"), b"an initramfs").expect("write");
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn guest(&self) -> SnpGuest {
        SnpGuest {
            ovmf: self.path("OVMF.fd"),
            kernel: self.path("kernel.bin"),
            initrd: self.path("rd0.bin"),
            append: "console=ttyS0 cleanroom.platform=snp".into(),
            vcpus: 2,
            vcpu_type: VcpuType::new("EPYC-v4").expect("known"),
            policy: GuestPolicy::DEFAULT,
            guest_features: DEFAULT_GUEST_FEATURES,
        }
    }

    /// A copy of `name` with one byte flipped, as a new file.
    fn flipped(&self, name: &str, at: usize) -> PathBuf {
        let mut bytes = std::fs::read(self.path(name)).expect("read");
        bytes[at] ^= 1;
        let p = self.path(&format!("flipped-{name}"));
        std::fs::write(&p, bytes).expect("write");
        p
    }
}

#[test]
fn the_description_measures_what_the_library_measures_on_the_same_bytes() {
    let f = Files::new();
    let g = f.guest();
    let read = |p: &Path| std::fs::read(p).expect("read");
    let direct = launch_digest(&LaunchConfig {
        firmware: &read(&g.ovmf),
        kernel_hashes: Some(KernelHashes::new(&read(&g.kernel), Some(&read(&g.initrd)), Some(&g.append))),
        vcpus: 2,
        vcpu_sig: snp_measure::VcpuSignature::from_type("EPYC-v4").expect("known"),
        guest_features: DEFAULT_GUEST_FEATURES,
        vmm: VmmType::Qemu,
    })
    .expect("measures");
    assert_eq!(g.measure().expect("measures"), direct);
}

#[test]
fn every_launched_input_changes_the_measurement() {
    let f = Files::new();
    let base = f.guest();
    let m0 = base.measure().expect("measures");
    let ovmf_len = std::fs::metadata(&base.ovmf).expect("stat").len() as usize;
    let variants: Vec<(&str, SnpGuest)> = vec![
        ("one OVMF byte", SnpGuest { ovmf: f.flipped("OVMF.fd", ovmf_len / 3), ..base.clone() }),
        ("one kernel byte", SnpGuest { kernel: f.flipped("kernel.bin", 0), ..base.clone() }),
        ("one initrd byte", SnpGuest { initrd: f.flipped("rd0.bin", 5), ..base.clone() }),
        ("the command line", SnpGuest { append: format!("{} ", base.append), ..base.clone() }),
        ("the vCPU count", SnpGuest { vcpus: 3, ..base.clone() }),
        ("the vCPU type", SnpGuest { vcpu_type: VcpuType::new("EPYC-Milan").expect("known"), ..base.clone() }),
        ("the guest features", SnpGuest { guest_features: 0x21, ..base.clone() }),
    ];
    for (what, g) in variants {
        assert_ne!(g.measure().expect("measures"), m0, "changing {what} left the measurement unchanged");
    }
    // The guest policy is not measured: the secure processor puts it in the report's POLICY
    // field, which the owner's reference checks separately (policy rules).
    let other_policy = SnpGuest { policy: GuestPolicy::parse("0x20000").expect("valid"), ..base.clone() };
    assert_eq!(other_policy.measure().expect("measures"), m0);
}

#[test]
fn an_ovmf_without_sev_metadata_is_refused_by_name() {
    let f = Files::new();
    let p = f.path("plain-OVMF.fd");
    std::fs::write(&p, Synthetic::snp(7, true).without_entry(METADATA_GUID).build()).expect("write");
    let e = SnpGuest { ovmf: p.clone(), ..f.guest() }.measure().unwrap_err();
    assert_eq!(e.measure_error(), Some(&Error::NoSevMetadata));
    assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    // An image without the kernel-hashes page cannot measure a direct kernel boot.
    std::fs::write(&p, Synthetic::snp(7, false).build()).expect("write");
    let e = SnpGuest { ovmf: p, ..f.guest() }.measure().unwrap_err();
    assert_eq!(e.measure_error(), Some(&Error::NoKernelHashesSection));
}

#[test]
fn missing_files_and_a_nul_in_the_cmdline_are_refused_by_name() {
    let f = Files::new();
    let e = SnpGuest { initrd: f.path("absent"), ..f.guest() }.measure().unwrap_err();
    assert!(matches!(e, LaunchError::Read { what: "initrd", .. }), "{e}");
    let e = SnpGuest { append: "a\0b".into(), ..f.guest() }.measure().unwrap_err();
    assert!(matches!(e, LaunchError::NulInCmdline), "{e}");
}

fn snp_measure() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snp-measure"))
}

/// The CLI's answer for `args`: Ok(stdout) or Err(stderr).
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().expect("run snp-measure");
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn measure_args_recompute_the_launch_with_our_cli_and_the_reference() {
    let f = Files::new();
    // Non-default values everywhere, so an argument left out would show.
    let g = SnpGuest {
        vcpus: 3,
        vcpu_type: VcpuType::new("EPYC-Milan").expect("known"),
        guest_features: 0x21,
        append: "-starts with a dash".into(),
        ..f.guest()
    };
    let expected = hex::encode(g.measure().expect("measures"));
    assert_eq!(run(snp_measure().args(g.measure_args())).expect("cli"), expected);
    // The same arguments given to the reference (virtee's sev-snp-measure, PyPI): a missing
    // reference is a failure here too (`make test-deps` installs it).
    let reference = run(Command::new("python3")
        .args(["-m", "sevsnpmeasure.cli", "--mode", "snp", "--output-format", "hex"])
        .args(g.measure_args()))
    .expect("python3 -m sevsnpmeasure.cli (install with `python3 -m pip install sev-snp-measure`)");
    assert_eq!(reference, expected);
}

#[test]
fn written_expectations_are_what_the_owner_parser_reads() {
    let f = Files::new();
    let g = f.guest();
    let out = f.path("MEASUREMENT.json");
    let printed = run(snp_measure().args(g.measure_args()).arg("--write-expectations").arg(&out).args([
        "--min-tcb",
        "bootloader=4,tee=0,snp=22,microcode=213",
        "--max-vmpl",
        "0",
    ]))
    .expect("cli");
    let text = std::fs::read_to_string(&out).expect("written");
    let r = SnpReference::from_json(&text).expect("the owner's parser accepts it");
    assert_eq!(hex::encode(r.measurement), printed);
    assert_eq!(r.measurement, g.measure().expect("measures"));
    assert_eq!((r.min_tcb.bootloader, r.min_tcb.tee, r.min_tcb.snp, r.min_tcb.microcode), (4, 0, 22, 213));
    assert_eq!(r.max_vmpl, 0);
    assert!(!r.allow_debug());
    assert!(!r.policy.migration_agent_allowed);
    assert!(r.policy.smt_allowed, "the default guest policy allows SMT, so must the reference");

    // One wrong kernel byte: another measurement in the file.
    let bad = SnpGuest { kernel: f.flipped("kernel.bin", 3), ..g.clone() };
    let out2 = f.path("MEASUREMENT-bad-kernel.json");
    run(snp_measure()
        .args(bad.measure_args())
        .arg("--write-expectations")
        .arg(&out2)
        .args(["--min-tcb", "bootloader=4,tee=0,snp=22,microcode=213", "--max-vmpl", "0"])
        .args(["--guest-policy", "0x20000"]))
    .expect("cli");
    let r2 = SnpReference::from_json(&std::fs::read_to_string(&out2).expect("written")).expect("parses");
    assert_ne!(r2.measurement, r.measurement);
    assert!(!r2.policy.smt_allowed, "a guest policy without SMT gives a reference that refuses SMT");
}

#[test]
fn expectations_need_the_owner_choices_and_a_kernel_and_write_nothing_otherwise() {
    let f = Files::new();
    let g = f.guest();
    let out = f.path("MEASUREMENT.json");
    let tcb = ["--min-tcb", "bootloader=4,tee=0,snp=22,microcode=213"];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--max-vmpl".into(), "0".into()], "needs --min-tcb"),
        (tcb.iter().map(|s| s.to_string()).collect(), "needs --max-vmpl"),
        ([&tcb[..], &["--max-vmpl", "4"]].concat().iter().map(|s| s.to_string()).collect(), "0-3"),
        (
            [&tcb[..], &["--max-vmpl", "0", "--guest-policy", "0xb0000"]]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            "allows debugging",
        ),
        (vec!["--min-tcb".into(), "snp=1".into(), "--max-vmpl".into(), "0".into()], "bootloader is missing"),
    ];
    for (extra, says) in cases {
        let e = run(snp_measure().args(g.measure_args()).arg("--write-expectations").arg(&out).args(&extra))
            .expect_err("refused");
        assert!(e.contains(says), "{extra:?}: {e}");
        assert!(!out.exists(), "{extra:?} wrote a file");
    }
    // Without --kernel the measurement covers no kernel, initrd or cmdline: no reference.
    let e = run(snp_measure()
        .arg("--ovmf")
        .arg(&g.ovmf)
        .args(["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--write-expectations"])
        .arg(&out)
        .args(tcb)
        .args(["--max-vmpl", "0"]))
    .expect_err("refused");
    assert!(e.contains("needs --kernel"), "{e}");
    assert!(!out.exists());
    // Owner choices without a file to write are a mistake, not ignored.
    let e = run(snp_measure().args(g.measure_args()).args(tcb)).expect_err("refused");
    assert!(e.contains("go with --write-expectations"), "{e}");
}
