//! The `eif-build` binary: build/describe/extract on the reference vectors, initramfs
//! determinism, and one-line errors.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eif-build"));
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output) -> String {
    assert!(!out.status.success(), "expected failure");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("eif-build: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// `eif-build build` on the golden inputs in `dir`, with the golden metadata.
fn build_golden(dir: &Path, out: &Path, signed: bool) -> Output {
    let v = vectors();
    let mut c = bin();
    c.arg("build")
        .arg("--kernel")
        .arg(dir.join("kernel.bin"))
        .args(["--cmdline", CMDLINE])
        .arg("--ramdisk")
        .arg(dir.join("rd0.bin"))
        .arg("--ramdisk")
        .arg(dir.join("rd1.bin"))
        .args(["--name", "cleanroom-golden"])
        .args(["--build-time", "2025-01-01T00:00:00+00:00"])
        .args(["--build-tool", "cleanroom-testvec"])
        .args(["--build-tool-version", "0.0.0"])
        .args(["--img-os", "TestOS", "--img-kernel", "0.0-test"])
        .arg("--metadata")
        .arg(v.join("custom_metadata.json"))
        .arg("--output")
        .arg(out);
    if signed {
        c.arg("--signing-certificate")
            .arg(v.join("test_signing_cert.pem"))
            .arg("--private-key")
            .arg(v.join("test_signing_key.pem"));
    }
    c.output().unwrap()
}

#[test]
fn build_prints_expected_measurements_and_writes_golden_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_golden_inputs(dir.path());
    let out = dir.path().join("u.eif");
    let stdout = ok(build_golden(dir.path(), &out, false));
    assert_eq!(json(&stdout), serde_json::json!({ "Measurements": expected("expected_unsigned.json") }));
    assert!(std::fs::read(&out).unwrap() == vector("golden_unsigned.eif"));

    let out_s = dir.path().join("s.eif");
    let stdout = ok(build_golden(dir.path(), &out_s, true));
    assert_eq!(json(&stdout), serde_json::json!({ "Measurements": expected("expected_signed.json") }));
    // building again gives the same bytes (signed too: RFC 6979 nonces)
    let again = dir.path().join("s2.eif");
    ok(build_golden(dir.path(), &again, true));
    assert_eq!(sha256_hex(&std::fs::read(&out_s).unwrap()), sha256_hex(&std::fs::read(&again).unwrap()));
}

#[test]
fn output_does_not_depend_on_input_paths() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let nested = b.path().join("some/other place");
    std::fs::create_dir_all(&nested).unwrap();
    write_golden_inputs(a.path());
    write_golden_inputs(&nested);
    let (oa, ob) = (a.path().join("x.eif"), nested.join("y.eif"));
    ok(build_golden(a.path(), &oa, false));
    ok(build_golden(&nested, &ob, false));
    assert!(std::fs::read(oa).unwrap() == std::fs::read(ob).unwrap());
}

#[test]
fn describe_golden_images() {
    for (file, exp) in
        [("golden_unsigned.eif", "expected_unsigned.json"), ("golden_signed.eif", "expected_signed.json")]
    {
        let stdout = ok(bin().arg("describe").arg(vectors().join(file)).output().unwrap());
        let d = json(&stdout);
        assert_eq!(d["Measurements"], expected(exp), "{file}");
        assert_eq!(d["IsSigned"], file.contains("signed.") && !file.contains("unsigned"));
        assert_eq!(d["CheckCRC"], true);
        assert_eq!(d["EifVersion"], 4);
        assert_eq!(d["Metadata"]["CustomMetadata"]["vector"], "golden");
    }
}

#[test]
fn our_image_redescribes_identically_and_extracts() {
    let dir = tempfile::tempdir().unwrap();
    write_golden_inputs(dir.path());
    let out = dir.path().join("u.eif");
    ok(build_golden(dir.path(), &out, false));
    let ours = ok(bin().arg("describe").arg(&out).output().unwrap());
    let golden = ok(bin().arg("describe").arg(vectors().join("golden_unsigned.eif")).output().unwrap());
    assert_eq!(ours, golden);

    let x = dir.path().join("x");
    ok(bin().arg("extract").arg(&out).arg("--out").arg(&x).output().unwrap());
    for f in ["kernel.bin", "cmdline.txt", "rd0.bin", "rd1.bin"] {
        assert!(std::fs::read(x.join(f)).unwrap() == std::fs::read(dir.path().join(f)).unwrap(), "{f}");
    }
    assert_eq!(std::fs::read(x.join("metadata.json")).unwrap().len(), 346);
    // rebuilding from what was extracted gives the same image
    let rebuilt = dir.path().join("r.eif");
    ok(build_golden(&x, &rebuilt, false));
    assert!(std::fs::read(rebuilt).unwrap() == std::fs::read(&out).unwrap());
}

#[test]
fn defaults_are_deterministic_and_use_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_golden_inputs(dir.path());
    let run = |epoch: Option<&str>, out: &PathBuf| {
        let mut c = bin();
        c.arg("build")
            .arg("--kernel")
            .arg(dir.path().join("kernel.bin"))
            .args(["--cmdline", CMDLINE])
            .arg("--ramdisk")
            .arg(dir.path().join("rd0.bin"))
            .arg("--output")
            .arg(out);
        if let Some(e) = epoch {
            c.env("SOURCE_DATE_EPOCH", e);
        }
        ok(c.output().unwrap())
    };
    let (a, b, c) = (dir.path().join("a.eif"), dir.path().join("b.eif"), dir.path().join("c.eif"));
    let pa = run(None, &a);
    run(None, &b);
    let pc = run(Some("1735689600"), &c);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    assert_eq!(pa, pc, "PCRs do not depend on metadata");
    let d = json(&ok(bin().arg("describe").arg(&c).output().unwrap()));
    assert_eq!(d["Metadata"]["BuildMetadata"]["BuildTime"], "2025-01-01T00:00:00+00:00");
    assert_eq!(d["ImageName"], "cleanroom");
    let d = json(&ok(bin().arg("describe").arg(&a).output().unwrap()));
    assert_eq!(d["Metadata"]["BuildMetadata"]["BuildTime"], "1970-01-01T00:00:00+00:00");
    assert_eq!(d["Measurements"]["PCR0"], d["Measurements"]["PCR1"]);
}

#[test]
fn errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let golden = vector("golden_unsigned.eif");
    let trunc = dir.path().join("t.eif");
    std::fs::write(&trunc, &golden[..1000]).unwrap();
    let e = fails(bin().arg("describe").arg(&trunc).output().unwrap());
    assert!(e.contains("past the end"), "{e}");

    let mut bad = golden.clone();
    bad[5000] ^= 1;
    std::fs::write(&trunc, &bad).unwrap();
    let e = fails(bin().arg("describe").arg(&trunc).output().unwrap());
    assert!(e.contains("CRC32 mismatch"), "{e}");

    let e = fails(bin().arg("describe").arg(dir.path().join("missing.eif")).output().unwrap());
    assert!(e.contains("missing.eif"), "{e}");

    write_golden_inputs(dir.path());
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let e = fails(
        bin()
            .arg("build")
            .arg("--kernel")
            .arg(dir.path().join("kernel.bin"))
            .args(["--cmdline", CMDLINE])
            .arg("--ramdisk")
            .arg(dir.path().join("rd0.bin"))
            .arg("--signing-certificate")
            .arg(fx.join("p256_cert.pem"))
            .arg("--private-key")
            .arg(fx.join("p256_key.pem"))
            .arg("--output")
            .arg(dir.path().join("o.eif"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("not EC P-384"), "{e}");
    assert!(!dir.path().join("o.eif").exists());
}

fn initramfs(files: &[(&str, &Path)], out: &Path, epoch: Option<&str>) -> Output {
    let mut c = bin();
    c.arg("initramfs").arg("--out").arg(out);
    for (dest, src) in files {
        c.arg("--file").arg(format!("{dest}={}", src.display()));
    }
    if let Some(e) = epoch {
        c.env("SOURCE_DATE_EPOCH", e);
    }
    c.output().unwrap()
}

#[test]
fn initramfs_is_deterministic_and_host_independent() {
    use std::os::unix::fs::PermissionsExt;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let make = |root: &Path, mtime_secs: u64, mode: u32| {
        let init = root.join("enclave-app");
        let ko = root.join("vsock.ko");
        let nsm = root.join("nsm.ko");
        std::fs::write(&init, b"\x7fELF static supervisor").unwrap();
        std::fs::write(&ko, det(5000, b"vsock")).unwrap();
        std::fs::write(&nsm, det(3001, b"nsm")).unwrap();
        for p in [&init, &ko, &nsm] {
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs)).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            // different ownership where we are allowed to change it
            let _ = std::os::unix::fs::chown(p, Some(mtime_secs as u32 % 1000 + 1), Some(7));
        }
        (init, ko, nsm)
    };
    let (i1, k1, n1) = make(a.path(), 1_000_000, 0o600);
    let (i2, k2, n2) = make(b.path(), 1_700_000_000, 0o777);
    let (o1, o2, o3) = (a.path().join("r.cpio"), b.path().join("r.cpio"), b.path().join("r2.cpio"));
    ok(initramfs(&[("init", &i1), ("lib/modules/vsock.ko", &k1), ("/lib/modules/nsm.ko", &n1)], &o1, None));
    // other order, other host paths, other mtimes/modes/owners
    ok(initramfs(&[("lib/modules/nsm.ko", &n2), ("/init", &i2), ("lib/modules/vsock.ko", &k2)], &o2, None));
    let x1 = std::fs::read(&o1).unwrap();
    let x2 = std::fs::read(&o2).unwrap();
    assert!(x1 == x2);
    for p in [a.path(), b.path()] {
        let s = p.to_string_lossy();
        assert!(!x1.windows(s.len()).any(|w| w == s.as_bytes()));
    }
    let entries = eif_build::cpio::parse(&x1).unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["init", "lib", "lib/modules", "lib/modules/nsm.ko", "lib/modules/vsock.ko"]);
    assert_eq!(entries[0].mode, 0o100755);
    assert_eq!(entries[3].mode, 0o100644);
    assert!(entries.iter().all(|e| e.mtime == 0 && e.uid == 0 && e.gid == 0));

    // SOURCE_DATE_EPOCH sets every mtime, and nothing else
    ok(initramfs(&[("init", &i1)], &o3, Some("1735689600")));
    let e3 = eif_build::cpio::parse(&std::fs::read(&o3).unwrap()).unwrap();
    assert_eq!(e3[0].mtime, 1_735_689_600);

    let e = fails(initramfs(&[("../etc/passwd", &i1)], &o3, None));
    assert!(e.contains("invalid archive path"), "{e}");
}
