//! Shared helpers: the reference vectors' inputs, regenerated as `gen_inputs.py` does.
#![allow(dead_code)]

use eif_build::{Arch, HashAlgorithm, ImageSpec, Metadata, SigningMaterial};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// `../../shared/testdata/eif` relative to the crate directory.
pub fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/eif")
}

pub fn vector(name: &str) -> Vec<u8> {
    let p = vectors().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `det(n, seed) = SHA256(seed || be32(0)) || SHA256(seed || be32(1)) || ...` cut to n.
pub fn det(n: usize, seed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut counter: u32 = 0;
    while out.len() < n {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(n);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub const CMDLINE: &str = "console=ttyS0 reboot=k";

pub struct Inputs {
    pub kernel: Vec<u8>,
    pub rd0: Vec<u8>,
    pub rd1: Vec<u8>,
}

pub fn golden_inputs() -> Inputs {
    let i = Inputs { kernel: det(100_000, b"kernel"), rd0: det(50_000, b"rd0"), rd1: det(70_001, b"rd1") };
    // digests printed by gen_inputs.py (README.md)
    assert_eq!(sha256_hex(&i.kernel), "51016e6d8ccd6df11350b076d7df2b08d8aa1e2e631e4427a743a25f77f39fb9");
    assert_eq!(sha256_hex(CMDLINE.as_bytes()), "3558d1a42316318db957c9980cc4548f6b9d5940673d0e06f6c7f4f2e3319082");
    assert_eq!(sha256_hex(&i.rd0), "76fce10806eaad156495fc2570a70ecdb9f0030be872d6df3c4653c2576b8e8a");
    assert_eq!(sha256_hex(&i.rd1), "e0f9eeef42338e5d6af76ead94faa8039fbe0c50fbb3274be9b8d834687c5fed");
    i
}

/// The metadata the golden images were built with (README.md "Metadata used").
pub fn golden_metadata() -> Metadata {
    let mut m = Metadata::new("2025-01-01T00:00:00+00:00".into());
    m.image_name = "cleanroom-golden".into();
    m.image_version = "cleanroom-golden".into();
    m.build_tool = "cleanroom-testvec".into();
    m.build_tool_version = "0.0.0".into();
    m.operating_system = "TestOS".into();
    m.kernel_version = "0.0-test".into();
    m.custom = Some(serde_json::from_slice(&vector("custom_metadata.json")).unwrap());
    m
}

pub fn golden_spec<'a>(i: &'a Inputs, signing: Option<&'a SigningMaterial>) -> ImageSpec<'a> {
    ImageSpec {
        kernel: &i.kernel,
        cmdline: CMDLINE.as_bytes(),
        ramdisks: vec![&i.rd0, &i.rd1],
        metadata: golden_metadata(),
        arch: Arch::X86_64,
        algorithm: HashAlgorithm::Sha384,
        signing,
    }
}

pub fn test_signer() -> SigningMaterial {
    SigningMaterial::from_pem(&vector("test_signing_cert.pem"), &vector("test_signing_key.pem")).unwrap()
}

/// `expected_*.json` as (key, value) pairs.
pub fn expected(name: &str) -> serde_json::Value {
    serde_json::from_slice(&vector(name)).unwrap()
}

/// Writes the golden inputs as gen_inputs.py does (kernel.bin, cmdline.txt, rd0.bin, rd1.bin).
pub fn write_golden_inputs(dir: &std::path::Path) {
    let i = golden_inputs();
    std::fs::write(dir.join("kernel.bin"), &i.kernel).unwrap();
    std::fs::write(dir.join("cmdline.txt"), CMDLINE).unwrap();
    std::fs::write(dir.join("rd0.bin"), &i.rd0).unwrap();
    std::fs::write(dir.join("rd1.bin"), &i.rd1).unwrap();
}

/// Runs `python3 eif_pcrs.py parse FILE`. Panics if python3 cannot run: the independent
/// checker is part of the test (`make test` runs on machines that have it), so a missing
/// interpreter must fail the test, not skip it.
pub fn python_checker(eif: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("python3")
        .arg(vectors().join("eif_pcrs.py"))
        .arg("parse")
        .arg(eif)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 for the independent EIF checker (eif_pcrs.py): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "eif_pcrs.py is missing a Python module: {stderr}");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}
