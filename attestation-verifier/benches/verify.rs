//! Median verification time per test vector, side by side with an independent
//! verifier (`bench/reference_verify.py`, Python `cryptography`) in the same run.
//! Prints one JSON object per line:
//! `{"bench": NAME, "value": X, "unit": U, "baseline": NAME_OR_NULL, "ratio": R_OR_NULL}`.
//!
//! `cargo bench -p attestation-verifier` (ATTEST_BENCH_ITERS sets iterations, default 300);
//! add `--features aws-lc` for the aws-lc-rs backend (the backend is named on stderr).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use attestation_verifier::snp::{self, SnpCerts};
use attestation_verifier::{verify_nitro, verify_nitro_cached, NitroExpectations, Options, SignatureCache, UnixTime};
use serde_json::{json, Value};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // On stderr, so the JSON lines keep their shape: which library did the checks.
    eprintln!("attestation-verifier crypto backend: {}", attestation_verifier::crypto_backend());
    let iters: usize = std::env::var("ATTEST_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let td = crate_dir.join("../../shared/testdata/attestation");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(td.join("expected.json")).expect("expected.json")).expect("json");

    // Baseline first, in the same run.
    let mut baseline: BTreeMap<String, f64> = BTreeMap::new();
    match Command::new("python3")
        .arg(crate_dir.join("bench/reference_verify.py"))
        .arg(&td)
        .arg(iters.to_string())
        .output()
    {
        Ok(out) if out.status.success() => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    if let (Some(f), Some(us)) = (v["file"].as_str(), v["median_us"].as_f64()) {
                        baseline.insert(f.to_owned(), us);
                    }
                }
            }
        }
        Ok(out) => eprintln!("reference verifier failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => eprintln!("reference verifier not run: {e}"),
    }

    let opts = Options { allow_debug: true, allow_simulated: false, allow_emulated_nsm: false };
    for e in expected.as_array().expect("array") {
        let ex = NitroExpectations::default();
        let file = e["file"].as_str().expect("file").to_owned();
        let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().expect("at"));
        let data = std::fs::read(td.join(&file)).expect("vector");
        let nitro = e["kind"] == "nitro";
        if nitro {
            // warm: CA-certificate signatures remembered across calls (the document signature never is)
            let cache = SignatureCache::new();
            let d = data.clone();
            let exw = ex.clone();
            let warm = move || verify_nitro_cached(&d, &exw, &opts, at, &cache).is_ok();
            assert!(warm());
            let times: Vec<f64> = (0..iters)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(warm());
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            let base = baseline.get(&file).copied();
            let warm_median = median(times);
            println!(
                "{}",
                json!({
                    "bench": format!("verify_nitro_cached_chain/{file}"),
                    "value": warm_median,
                    "unit": "us",
                    "baseline": base.map(|_| format!("reference_python_cryptography/{file}")),
                    // how many times faster than the reference (> 1 is better)
                    "ratio": base.map(|b| b / warm_median),
                })
            );
        }
        let run: Box<dyn Fn() -> bool> = if nitro {
            Box::new(move || verify_nitro(&data, &ex, &opts, at).is_ok())
        } else {
            let certs = SnpCerts {
                vek: std::fs::read(td.join(e["vek"].as_str().expect("vek"))).expect("vek"),
                ask: None,
                asvk: None,
                ark: None,
            };
            Box::new(move || snp::verify_snp(&data, &certs, &Default::default(), &opts, at).is_ok())
        };
        assert!(run(), "{file} must verify");
        for _ in 0..10 {
            run();
        }
        let times: Vec<f64> = (0..iters)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(run());
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        let ours = median(times);
        let kind = e["kind"].as_str().unwrap_or("?");
        let base = baseline.get(&file).copied();
        let base_name = format!("reference_python_cryptography/{file}");
        if let Some(b) = base {
            println!("{}", json!({"bench": base_name, "value": b, "unit": "us", "baseline": null, "ratio": null}));
        }
        println!(
            "{}",
            json!({
                "bench": format!("verify_{kind}/{file}"),
                "value": ours,
                "unit": "us",
                "baseline": base.map(|_| base_name),
                "ratio": base.map(|b| b / ours),
            })
        );
    }
}
