//! Sampler throughput, one JSON object per line (the workspace bench convention):
//! `cargo run -p cleanroom-dp --release --example sampler_bench [samples]`.
//! `baseline`/`ratio` are null here; the `make bench` target fills them with OpenDP's numbers.

use std::time::Instant;

use cleanroom_dp::{discrete_gaussian, discrete_laplace, seeded_rng_from_u64, Rational};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut rng = seeded_rng_from_u64(0);
    for (name, scale) in [("1", "1"), ("100", "100"), ("1e6", "1000000")] {
        let b: Rational = scale.parse().expect("constant");
        let sigma_sq = b.checked_mul(&b).expect("constant");
        let mut acc = 0i64;
        let t = Instant::now();
        for _ in 0..n {
            acc = acc.wrapping_add(discrete_laplace(&b, &mut rng).expect("valid scale"));
        }
        let lap = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..n {
            acc = acc.wrapping_add(discrete_gaussian(&sigma_sq, &mut rng).expect("valid scale"));
        }
        let gau = n as f64 / t.elapsed().as_secs_f64();
        std::hint::black_box(acc);
        println!(
            r#"{{"bench": "discrete_laplace_scale_{name}", "value": {lap:.0}, "unit": "samples/s", "baseline": null, "ratio": null}}"#
        );
        println!(
            r#"{{"bench": "discrete_gaussian_sigma_{name}", "value": {gau:.0}, "unit": "samples/s", "baseline": null, "ratio": null}}"#
        );
    }
}
