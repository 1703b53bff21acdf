//! Our measurement against the reference implementation, `sev-snp-measure` (virtee, PyPI),
//! run as a separate process on the same files. A missing Python or package is a failure,
//! not a skip: without the reference this test proves nothing.
//!
//! Inputs: Debian's real `ovmf` images (SEV-capable, but no SNP_KERNEL_HASHES section), and
//! SYNTHETIC firmware images (tests/common) for everything with kernel hashes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Rng, Synthetic};
use snp_measure::{launch_digest, to_hex, Error, KernelHashes, LaunchConfig, VcpuSignature};

const INSTALL_HINT: &str = "install the reference with `python3 -m pip install sev-snp-measure` (or `make test-deps`)";
const REAL_OVMF: &[&str] = &["/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/ovmf/OVMF.fd"];

/// One launch, as files on disk (the reference reads files).
#[derive(Clone)]
struct Case {
    label: String,
    ovmf: PathBuf,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
    vcpus: u32,
    vcpu_type: &'static str,
    vmm: &'static str,
    guest_features: u64,
}

fn require_reference() {
    let out = Command::new("python3").args(["-c", "import sevsnpmeasure.cli"]).output();
    match out {
        Err(e) => panic!("python3 not runnable ({e}); {INSTALL_HINT}"),
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            panic!("python3 cannot import sevsnpmeasure ({}); {INSTALL_HINT}", err.lines().last().unwrap_or("").trim())
        }
        Ok(_) => {}
    }
}

/// The reference's answer: Ok(hex) or Err(its error output).
fn reference(c: &Case) -> Result<String, String> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "sevsnpmeasure.cli", "--mode", "snp", "--output-format", "hex"])
        .args(["--vcpus", &c.vcpus.to_string(), "--vcpu-type", c.vcpu_type, "--vmm-type", c.vmm])
        .args(["--guest-features", &format!("{:#x}", c.guest_features)])
        .arg("--ovmf")
        .arg(&c.ovmf);
    if let Some(k) = &c.kernel {
        cmd.arg("--kernel").arg(k);
    }
    if let Some(i) = &c.initrd {
        cmd.arg("--initrd").arg(i);
    }
    if let Some(a) = &c.append {
        cmd.arg(format!("--append={a}"));
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("running python3: {e}; {INSTALL_HINT}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn ours(c: &Case) -> Result<String, Error> {
    let firmware = read(&c.ovmf);
    let kernel_hashes = c.kernel.as_ref().map(|k| {
        let initrd = c.initrd.as_ref().map(|i| read(i));
        KernelHashes::new(&read(k), initrd.as_deref(), c.append.as_deref())
    });
    let config = LaunchConfig {
        firmware: &firmware,
        kernel_hashes,
        vcpus: c.vcpus,
        vcpu_sig: VcpuSignature::from_type(c.vcpu_type)?,
        guest_features: c.guest_features,
        vmm: c.vmm.parse()?,
    };
    launch_digest(&config).map(|d| to_hex(&d))
}

/// Runs every case through both; returns the digests so callers can compare across cases.
fn assert_all_equal(cases: &[Case]) -> Vec<String> {
    require_reference();
    let mut failures = Vec::new();
    let mut digests = Vec::new();
    for c in cases {
        let theirs = reference(c);
        let mine = ours(c);
        match (&theirs, &mine) {
            (Ok(t), Ok(m)) if t == m && t.len() == 96 => {
                eprintln!("equal    {}: {m}", c.label);
                digests.push(m.clone());
            }
            _ => failures.push(format!("{}: reference {theirs:?}, ours {mine:?}", c.label)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from sev-snp-measure:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    digests
}

fn real_ovmf(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.exists(), "{path} is missing: install Debian's OVMF with `apt-get install ovmf`");
    p
}

fn case(label: impl Into<String>, ovmf: &Path, vcpus: u32, vcpu_type: &'static str) -> Case {
    Case {
        label: label.into(),
        ovmf: ovmf.to_path_buf(),
        kernel: None,
        initrd: None,
        append: None,
        vcpus,
        vcpu_type,
        vmm: "QEMU",
        guest_features: snp_measure::DEFAULT_GUEST_FEATURES,
    }
}

/// Real Debian OVMF images: 1, 2 and 4 vCPUs, three vCPU types, the three VMM types and a
/// second guest-features value.
#[test]
fn real_debian_ovmf_equals_reference() {
    let mut cases = Vec::new();
    for path in REAL_OVMF {
        let ovmf = real_ovmf(path);
        for vcpus in [1, 2, 4] {
            for ty in ["EPYC-v4", "EPYC-Milan", "EPYC-Genoa"] {
                cases.push(case(format!("{path} {vcpus}x{ty}"), &ovmf, vcpus, ty));
            }
        }
        for vmm in ["ec2", "gce"] {
            let mut c = case(format!("{path} 2xEPYC-Rome vmm={vmm}"), &ovmf, 2, "EPYC-Rome");
            c.vmm = vmm;
            cases.push(c);
        }
        let mut c = case(format!("{path} 4xEPYC-v4 features=0x21"), &ovmf, 4, "EPYC-v4");
        c.guest_features = 0x21;
        cases.push(c);
    }
    let digests = assert_all_equal(&cases);
    // Negative control: every case measures something different (vCPU count, type, VMM).
    let mut unique = digests.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), digests.len() / REAL_OVMF.len() * REAL_OVMF.len(), "distinct settings gave one digest");
}

/// Debian's OVMF has no SNP_KERNEL_HASHES section: the reference refuses a kernel, and so do we.
#[test]
fn real_debian_ovmf_refuses_kernel_hashes_like_reference() {
    require_reference();
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, Rng(7).bytes(10_000)).expect("write kernel");
    let mut c = case("debian ovmf + kernel", &real_ovmf(REAL_OVMF[0]), 1, "EPYC-v4");
    c.kernel = Some(kernel);
    let theirs = reference(&c);
    assert!(
        theirs.as_ref().is_err_and(|e| e.contains("SNP_KERNEL_HASHES")),
        "reference should refuse a kernel here: {theirs:?}"
    );
    assert_eq!(ours(&c), Err(Error::NoKernelHashesSection));
}

/// SYNTHETIC firmware, with and without kernel hashes, random kernel/initrd/command line.
#[test]
fn synthetic_firmware_equals_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cases = Vec::new();
    let types = ["EPYC-v4", "EPYC-Rome", "EPYC-Milan"];
    for (i, &vcpus) in [1u32, 2, 4].iter().enumerate() {
        for (j, &ty) in types.iter().enumerate() {
            for hashes in [false, true] {
                let seed = (i * 10 + j) as u64 * 2 + hashes as u64;
                let ovmf = dir.path().join(format!("ovmf-{seed}.fd"));
                std::fs::write(&ovmf, Synthetic::snp(seed, hashes).build()).expect("write ovmf");
                let mut c = case(format!("synthetic#{seed} {vcpus}x{ty} hashes={hashes}"), &ovmf, vcpus, ty);
                if hashes {
                    let mut rng = Rng(seed + 1000);
                    let kernel = dir.path().join(format!("kernel-{seed}"));
                    let n = 50_000 + (rng.next() % 50_000) as usize;
                    std::fs::write(&kernel, rng.bytes(n)).expect("write");
                    c.kernel = Some(kernel);
                    // Vary which of initrd / command line are given.
                    if !seed.is_multiple_of(3) {
                        let initrd = dir.path().join(format!("initrd-{seed}"));
                        let n = 20_000 + (rng.next() % 50_000) as usize;
                        std::fs::write(&initrd, rng.bytes(n)).expect("write");
                        c.initrd = Some(initrd);
                    }
                    if !seed.is_multiple_of(5) {
                        c.append = Some(format!("console=ttyS0 {}", rng.text(40)));
                    }
                }
                cases.push(c);
            }
        }
    }
    assert_all_equal(&cases);
}

/// Negative controls: flipping one byte of the firmware, the kernel, or the command line,
/// or changing the vCPU count changes both digests, and both still agree.
#[test]
fn one_changed_input_changes_both_digests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fw = Synthetic::snp(42, true).build();
    let kernel: Vec<u8> = Rng(43).bytes(30_000);
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).expect("write");
        p
    };
    let mut base = case("base", &write("fw", &fw), 2, "EPYC-Milan");
    base.kernel = Some(write("k", &kernel));
    base.append = Some("root=/dev/vda".into());

    let mut fw2 = fw.clone();
    fw2[1234] ^= 1;
    let mut k2 = kernel.clone();
    k2[0] ^= 0x80;
    let variants = [
        Case { label: "firmware byte flipped".into(), ovmf: write("fw2", &fw2), ..base.clone() },
        Case { label: "kernel byte flipped".into(), kernel: Some(write("k2", &k2)), ..base.clone() },
        Case { label: "cmdline changed".into(), append: Some("root=/dev/vdb".into()), ..base.clone() },
        Case { label: "3 vCPUs".into(), vcpus: 3, ..base.clone() },
    ];
    let mut all = vec![base.clone()];
    all.extend(variants);
    let digests = assert_all_equal(&all);
    for (c, d) in all.iter().zip(&digests).skip(1) {
        assert_ne!(d, &digests[0], "{} did not change the digest", c.label);
    }
}

/// Debian's 4 MiB OVMF has a footer table but no SEV metadata. The reference still prints a
/// digest, but QEMU refuses to launch such firmware as SNP, so we refuse it by name rather
/// than publish a measurement no guest can have.
#[test]
fn ovmf_without_sev_metadata_is_refused() {
    let c = case("debian 4M", &real_ovmf("/usr/share/OVMF/OVMF_CODE_4M.fd"), 1, "EPYC-v4");
    assert_eq!(ours(&c), Err(Error::NoSevMetadata));
}

/// The `snp-measure` binary prints what the reference prints, and refuses with one line.
#[test]
fn cli_equals_reference() {
    require_reference();
    let dir = tempfile::tempdir().expect("tempdir");
    let ovmf = dir.path().join("ovmf.fd");
    std::fs::write(&ovmf, Synthetic::snp(77, true).build()).expect("write");
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, Rng(78).bytes(12_345)).expect("write");
    let mut c = case("cli", &ovmf, 4, "EPYC-Genoa");
    c.kernel = Some(kernel.clone());
    c.append = Some("quiet".into());
    let theirs = reference(&c).expect("reference digest");
    let out = Command::new(env!("CARGO_BIN_EXE_snp-measure"))
        .args(["--vcpus", "4", "--vcpu-type", "EPYC-Genoa", "--append", "quiet"])
        .arg("--ovmf")
        .arg(&ovmf)
        .arg("--kernel")
        .arg(&kernel)
        .output()
        .expect("run snp-measure");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), theirs);

    let out = Command::new(env!("CARGO_BIN_EXE_snp-measure"))
        .args(["--vcpus", "0", "--vcpu-type", "EPYC-v4", "--ovmf"])
        .arg(&ovmf)
        .output()
        .expect("run snp-measure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1 && err.contains("at least 1"), "{err}");
}
