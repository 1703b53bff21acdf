//! The crate split holds: preparing a table links no Wasm runtime, and auditing a log
//! links no table reader and no network client. Read from cargo's own resolved graph
//! (normal dependencies only, as a release build links them).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// Every package `root` links, transitively, through normal (non-dev, non-build) edges.
fn linked(meta: &serde_json::Value, root: &str) -> BTreeSet<String> {
    let name_of: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let root_id = name_of.iter().find(|(_, n)| **n == root).map(|(id, _)| *id).expect("root package");
    let (mut seen, mut stack) = (BTreeSet::new(), vec![root_id]);
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            let pkg = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(name_of[pkg].to_string()) {
                stack.push(pkg);
            }
        }
    }
    seen
}

#[test]
fn preparing_links_no_wasm_runtime_and_auditing_no_table_reader() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--filter-platform", "x86_64-unknown-linux-gnu", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let prep = linked(&meta, "cleanroom-owner-prep");
    assert!(prep.contains("parquet"), "the walk must see owner-prep's own table readers: {prep:?}");
    for forbidden in ["wasmtime", "cleanroom-sandbox", "cranelift-codegen"] {
        assert!(!prep.contains(forbidden), "owner-prep links {forbidden}");
    }
    let audit = linked(&meta, "cleanroom-audit");
    assert!(audit.contains("rusqlite"), "the walk must see the ledger the audit reads: {audit:?}");
    for forbidden in ["parquet", "arrow-array", "csv", "wasmtime", "rustls", "cleanroom-transport"] {
        assert!(!audit.contains(forbidden), "audit links {forbidden}");
    }
    // The CLI links everything, so the walk itself is not blind.
    let cli = linked(&meta, "cleanroom");
    for needed in ["wasmtime", "parquet", "rustls", "aws-lc-rs"] {
        assert!(cli.contains(needed), "cleanroom should link {needed}");
    }
    // aws-lc-rs (the verifier's fast backend) is AWS-LC built from source: it brings
    // neither the AWS SDK nor OpenSSL, into the tools or the enclave.
    let enclave = linked(&meta, "enclave-app");
    for (who, set) in [("cleanroom", &cli), ("enclave-app", &enclave)] {
        for name in set {
            let sdk = name.starts_with("aws-sdk-") || name.starts_with("aws-smithy-") || name == "aws-config";
            assert!(!sdk && !name.starts_with("openssl"), "{who} links {name}");
        }
    }
}

/// The enclave image is built from `enclave-app` alone (`make enclave-static`), so only its
/// own features count: it must not link aws-lc-rs, which `cleanroom` turns on for the
/// verifier (a workspace build unifies it everywhere, and so does `cargo metadata` above).
#[test]
fn the_enclave_image_links_ring_not_aws_lc() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "enclave-app",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        crates.contains("attestation-verifier") && crates.contains("ring"),
        "the tree must be the enclave's: {crates:?}"
    );
    for c in &crates {
        assert!(
            !c.starts_with("aws-lc") && !c.starts_with("openssl") && !c.starts_with("aws-sdk-"),
            "enclave-app links {c}"
        );
    }
}
