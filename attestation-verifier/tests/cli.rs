//! The `attest` binary: exit codes, one-line errors, JSON verdicts, input encodings.

use std::path::PathBuf;
use std::process::{Command, Output};

use attestation_verifier::{issue_simulated, Claims};

fn td(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation").join(rel)
}

fn attest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attest")).args(args).output().expect("run attest")
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("attest-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const PCR0: &str = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";

#[test]
fn nitro_valid_and_invalid() {
    let doc = td("nitro/nitro_evervault_2022_signed.cbor");
    let doc = doc.to_str().unwrap();
    let pcr = format!("0={PCR0}");
    let out = attest(&["verify", "nitro", doc, "--at", "1665651482", "--expect-pcr", &pcr]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid: nitro"));

    let out = attest(&["verify", "nitro", doc, "--at", "1665651482", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["platform"], "nitro");
    assert_eq!(v["pcrs"]["0"], PCR0);
    assert_eq!(v["module_id"], "i-020b6af9246d90e92-enc0183d09086c24190");
    assert_eq!(v["timestamp"], 1665651482136u64);
    assert!(v["checks_passed"].as_array().unwrap().len() > 5);
    assert_eq!(v["error"], serde_json::Value::Null);

    // expired: exit 1, one line naming the check
    let out = attest(&["verify", "nitro", doc, "--at", "1665662283"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("invalid: expired: leaf expired"), "{err}");
    let out = attest(&["verify", "nitro", doc, "--at", "1665662283", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["failed_check"], "expired");

    // wrong PCR / nonce
    let out = attest(&["verify", "nitro", doc, "--at", "1665651482", "--expect-pcr", "0=00"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: pcr:"));
    let out = attest(&["verify", "nitro", doc, "--at", "1665651482", "--nonce", "00"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: nonce"));
    // usage error
    let out = attest(&["verify", "nitro", doc, "--at", "1665651482", "--expect-pcr", "zz"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn debug_needs_flag() {
    let doc = td("nitro/nitro_evervault_2022_debug.cbor");
    let doc = doc.to_str().unwrap();
    let out = attest(&["verify", "nitro", doc, "--at", "1665582606"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: debug"));
    let out = attest(&[
        "verify",
        "nitro",
        doc,
        "--at",
        "1665582606",
        "--allow-debug",
        "--user-data",
        "68656c6c6f2c20776f726c6421",
    ]);
    assert!(out.status.success());
}

#[test]
fn hex_and_base64_inputs() {
    let raw = std::fs::read(td("nitro/nitro_oyster_2024_aws.cbor")).unwrap();
    let hex_file = tmp("doc.hex", hex::encode(&raw).as_bytes());
    let b64 = attestation_b64(&raw);
    let b64_file = tmp("doc.b64", b64.as_bytes());
    for f in [hex_file, b64_file] {
        let out = attest(&["verify", "nitro", f.to_str().unwrap(), "--at", "1734075478"]);
        assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

fn attestation_b64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn snp_with_cert_dir_and_bundle() {
    let report = td("snp/snp_azure_genoa_report.bin");
    let vek = td("snp/snp_azure_genoa_vcek.der");
    let out = attest(&[
        "verify",
        "snp",
        report.to_str().unwrap(),
        "--certs",
        vek.to_str().unwrap(),
        "--at",
        "1750000000",
        "--expect-measurement",
        "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["platform"], "snp");
    assert_eq!(v["snp"]["product"], "Genoa");
    assert!(v["chip_id"].as_str().unwrap().starts_with("0506ffba875e939c"));

    // a PEM bundle with VCEK + ASK + ARK
    let mut pem = String::new();
    for f in ["snp/ask_milan.pem", "snp/ark_milan.pem"] {
        pem.push_str(&std::fs::read_to_string(td(f)).unwrap());
    }
    let vcek = std::fs::read(td("snp/snp_virtee_milan_vcek.der")).unwrap();
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    pem.push_str(&attestation_b64(&vcek));
    pem.push_str("\n-----END CERTIFICATE-----\n");
    let bundle = tmp("bundle.pem", pem.as_bytes());
    let report = td("snp/snp_virtee_milan_report.bin");
    let out = attest(&[
        "verify",
        "snp",
        report.to_str().unwrap(),
        "--certs",
        bundle.to_str().unwrap(),
        "--at",
        "1682467200",
        "--report-data",
        "00",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: report_data"));
    let out =
        attest(&["verify", "snp", report.to_str().unwrap(), "--certs", bundle.to_str().unwrap(), "--at", "1901474624"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: expired"));
}

#[test]
fn simulated_needs_opt_in_and_says_so() {
    let mut c = Claims::new("sim-1", 1_700_000_000_000);
    c.pcrs.insert(0, vec![5; 48]);
    let f = tmp("sim.cbor", &issue_simulated(&c));
    let f = f.to_str().unwrap();
    let out = attest(&["verify", "simulated", f, "--at", "1700000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("invalid: simulated"));
    let out = attest(&["verify", "simulated", f, "--at", "1700000000", "--allow-simulated", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["simulated"], true);
    assert!(v["warning"].as_str().unwrap().contains("SIMULATED"));
    // never as nitro
    let out = attest(&["verify", "nitro", f, "--at", "1700000000"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn inspect_prints_without_judging() {
    let out = attest(&["inspect", td("nitro/nitro_privacykit_2025_debug.cbor").to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "nitro");
    assert_eq!(v["debug_mode"], true);
    let out = attest(&["inspect", td("snp/snp_gcp_milan_v5_bound_report.bin").to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "snp-report");
    assert_eq!(v["report"]["version"], 5);
    assert_eq!(v["report"]["vmpl"], 1);
}

/// Issue 16: `attest verify snp --certs DIR` with ARK, ASK and ASVK in one directory (as
/// providers ship them) accepts every genuine VCEK report, Milan and Genoa.
#[test]
fn snp_cert_dir_with_ask_and_asvk_together() {
    let cases = [
        ("snp/snp_virtee_milan_report.bin", "snp/snp_virtee_milan_vcek.der", "milan", "1682467200"),
        ("snp/snp_trustee_milan_report.bin", "snp/snp_trustee_milan_vcek.der", "milan", "1682467200"),
        ("snp/snp_azure_genoa_report.bin", "snp/snp_azure_genoa_vcek.der", "genoa", "1750000000"),
        ("snp/snp_gcp_milan_v5_bound_report.bin", "snp/snp_gcp_milan_v5_bound_vcek.der", "milan", "1765065600"),
    ];
    for (i, (report, vek, product, at)) in cases.iter().enumerate() {
        let dir = std::env::temp_dir().join(format!("attest-cli-{}-mixed-{i}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [format!("snp/ark_{product}.pem"), format!("snp/ask_{product}.pem"), "snp/asvk_milan.pem".into()] {
            std::fs::copy(td(&f), dir.join(f.trim_start_matches("snp/"))).unwrap();
        }
        std::fs::copy(td(vek), dir.join("vcek.der")).unwrap();
        let out =
            attest(&["verify", "snp", td(report).to_str().unwrap(), "--certs", dir.to_str().unwrap(), "--at", at]);
        assert!(out.status.success(), "{report}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid: snp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `attest verify snp --expect-snp FILE`: the owner's reference file on a genuine report
/// (the GCP report: VMPL1, REPORTED_TCB 4/0/27/222); each field changed gives its refusal.
#[test]
fn snp_reference_file() {
    let report = td("snp/snp_gcp_milan_v5_bound_report.bin");
    let vek = td("snp/snp_gcp_milan_v5_bound_vcek.der");
    let measurement =
        "b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a3708f58406f3";
    let run = |reference: serde_json::Value| {
        let f = tmp("reference.json", reference.to_string().as_bytes());
        attest(&[
            "verify",
            "snp",
            report.to_str().unwrap(),
            "--certs",
            vek.to_str().unwrap(),
            "--at",
            "1765065600",
            "--expect-snp",
            f.to_str().unwrap(),
        ])
    };
    let good = serde_json::json!({
        "measurement": measurement,
        "min_tcb": {"bootloader": 4, "tee": 0, "snp": 27, "microcode": 222},
        "max_vmpl": 1
    });
    let out = run(good.clone());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = |v: serde_json::Value, line: &str| {
        let out = run(v);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(line), "{err}");
    };
    let mut v = good.clone();
    v["measurement"] = format!("{}0", &measurement[..95]).into();
    refused(v, "invalid: measurement: launch measurement mismatch: expected");
    let mut v = good.clone();
    v["min_tcb"]["microcode"] = 223.into();
    refused(v, "invalid: min_tcb: reported TCB microcode = 222 is below the required minimum 223");
    let mut v = good.clone();
    v["max_vmpl"] = 0.into();
    refused(v, "invalid: vmpl: VMPL 1 above the allowed maximum 0");
    let mut v = good.clone();
    v["policy"] = serde_json::json!({"smt_allowed": false});
    refused(v, "invalid: smt");
    // a malformed file is a usage error (exit 2) naming the field
    let mut v = good;
    v.as_object_mut().unwrap().remove("max_vmpl");
    let out = run(v);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_vmpl"));
}
