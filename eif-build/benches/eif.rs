//! `cargo bench -p eif-build`: one JSON object per line.
//!
//! - `eif_build_ms`: building an unsigned EIF from prebuilt in-memory inputs the size of the
//!   real image (12 MiB kernel, 350 KiB initramfs), median of several runs;
//! - `eif_build_signed_ms`: the same, signed with the test P-384 key;
//! - `pcr_sha384_mb_s`: PCR hashing throughput.

use eif_build::{build, Arch, HashAlgorithm, ImageSpec, Metadata, SigningMaterial};
use std::time::Instant;

fn filler(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn line(name: &str, value: f64, unit: &str) {
    println!(
        "{{\"bench\": \"{name}\", \"value\": {value:.3}, \"unit\": \"{unit}\", \"baseline\": null, \"ratio\": null}}"
    );
}

fn main() {
    let kernel = filler(12 << 20, 1);
    let ramdisk = filler(350 << 10, 2);
    let spec = |signing| ImageSpec {
        kernel: &kernel,
        cmdline: b"console=ttyS0 reboot=k",
        ramdisks: vec![&ramdisk],
        metadata: Metadata::new("1970-01-01T00:00:00+00:00".into()),
        arch: Arch::X86_64,
        algorithm: HashAlgorithm::Sha384,
        signing,
    };
    let ms = median_ms(9, || {
        std::hint::black_box(build(&spec(None)).expect("build"));
    });
    line("eif_build_ms", ms, "ms");

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/eif");
    if let (Ok(c), Ok(k)) =
        (std::fs::read(dir.join("test_signing_cert.pem")), std::fs::read(dir.join("test_signing_key.pem")))
    {
        let signer = SigningMaterial::from_pem(&c, &k).expect("test key");
        let ms = median_ms(9, || {
            std::hint::black_box(build(&spec(Some(&signer))).expect("build"));
        });
        line("eif_build_signed_ms", ms, "ms");
    }

    let data = filler(64 << 20, 3);
    let ms = median_ms(5, || {
        std::hint::black_box(eif_build::pcr::extend_from_zero(HashAlgorithm::Sha384, &data));
    });
    line("pcr_sha384_mb_s", data.len() as f64 / 1e6 / (ms / 1000.0), "MB/s");
}
