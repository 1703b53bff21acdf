//! Distribution tests of the exact samplers against their exact PMFs.
//!
//! For each scale (0.5, 1, 3.7, 100, 10^6; for the Gaussian these are σ) we draw N = 10^6
//! samples and run two tests, each at false-alarm rate α = 10^-7 (so < 10^-6 even together):
//!
//! * Kolmogorov–Smirnov against the exact CDF. Threshold from the DKW–Massart inequality
//!   P(sup|F_n − F| > t) ≤ 2·exp(−2Nt²): t = √(ln(2/α)/(2N)) = √(ln(2·10^7)/(2·10^6)) ≈ 0.00290.
//!   This bound holds for every distribution (discrete ones only make it conservative).
//! * Pearson χ² over ~100 equal-probability bins (bins with expectation < 50 merged). Threshold
//!   from Laurent–Massart: P(χ²_k ≥ k + 2√(kx) + 2x) ≤ e^{−x} with x = ln(10^7) ≈ 16.1, e.g.
//!   k = 99 → 211.
//!
//! The same tests are run on a deliberately wrong sampler — the same exact sampler with the
//! scale off by 10% — and must reject it at every scale. (Expected KS distance for a 10% scale
//! error is ≈ 0.015–0.02, five times the threshold.)
//!
//! Run with `cargo test -p cleanroom-dp --release --test distribution`.

mod common;

use cleanroom_dp::{discrete_gaussian, discrete_laplace, seeded_rng_from_u64, Rational};
use common::*;

const N: usize = 1_000_000;
const ALPHA: f64 = 1e-7;

fn r(s: &str) -> Rational {
    s.parse().unwrap()
}

struct Outcome {
    ks: f64,
    ks_threshold: f64,
    chi2: f64,
    chi2_threshold: f64,
}

impl Outcome {
    fn passes(&self) -> bool {
        self.ks <= self.ks_threshold && self.chi2 <= self.chi2_threshold
    }
    fn rejects_both(&self) -> bool {
        self.ks > self.ks_threshold && self.chi2 > self.chi2_threshold
    }
}

fn evaluate(mut samples: Vec<i64>, cdf: &dyn Fn(i64) -> f64) -> Outcome {
    let ks = ks_distance(&mut samples, cdf); // sorts
    let (chi2, df) = chi_square(&samples, cdf, 100);
    Outcome {
        ks,
        ks_threshold: dkw_threshold(samples.len(), ALPHA),
        chi2,
        chi2_threshold: chi_square_threshold(df, ALPHA),
    }
}

fn laplace_case(scale: &str, seed: u64) {
    let b = r(scale);
    let bf = b.to_f64();
    let cdf = |x| dlap_cdf(bf, x);
    let t = std::time::Instant::now();
    let mut rng = seeded_rng_from_u64(seed);
    let good: Vec<i64> = (0..N).map(|_| discrete_laplace(&b, &mut rng).unwrap()).collect();
    let secs = t.elapsed().as_secs_f64();
    let o = evaluate(good, &cdf);
    eprintln!(
        "laplace b={scale}: KS {:.5} (thr {:.5}), chi2 {:.1} (thr {:.1}), {:.0} ns/sample",
        o.ks,
        o.ks_threshold,
        o.chi2,
        o.chi2_threshold,
        secs * 1e9 / N as f64
    );
    assert!(o.passes(), "correct sampler rejected at b={scale}");

    let wrong_b = b.checked_mul(&r("1.1")).unwrap();
    let bad: Vec<i64> = (0..N).map(|_| discrete_laplace(&wrong_b, &mut rng).unwrap()).collect();
    let o = evaluate(bad, &cdf);
    eprintln!("laplace b={scale} WRONG(x1.1): KS {:.5}, chi2 {:.1}", o.ks, o.chi2);
    assert!(o.rejects_both(), "10%-off sampler not rejected at b={scale}");
}

fn gaussian_case(sigma: &str, seed: u64) {
    let s = r(sigma);
    let sigma_sq = s.checked_mul(&s).unwrap();
    let dist = DGaussCdf::new(s.to_f64());
    let cdf = |x| dist.cdf(x);
    let t = std::time::Instant::now();
    let mut rng = seeded_rng_from_u64(seed);
    let good: Vec<i64> = (0..N).map(|_| discrete_gaussian(&sigma_sq, &mut rng).unwrap()).collect();
    let secs = t.elapsed().as_secs_f64();
    let o = evaluate(good, &cdf);
    eprintln!(
        "gaussian σ={sigma}: KS {:.5} (thr {:.5}), chi2 {:.1} (thr {:.1}), {:.0} ns/sample",
        o.ks,
        o.ks_threshold,
        o.chi2,
        o.chi2_threshold,
        secs * 1e9 / N as f64
    );
    assert!(o.passes(), "correct sampler rejected at σ={sigma}");

    let wrong = sigma_sq.checked_mul(&r("1.21")).unwrap(); // σ off by 10%
    let bad: Vec<i64> = (0..N).map(|_| discrete_gaussian(&wrong, &mut rng).unwrap()).collect();
    let o = evaluate(bad, &cdf);
    eprintln!("gaussian σ={sigma} WRONG(x1.1): KS {:.5}, chi2 {:.1}", o.ks, o.chi2);
    assert!(o.rejects_both(), "10%-off sampler not rejected at σ={sigma}");
}

#[test]
fn laplace_0_5() {
    laplace_case("0.5", 101);
}
#[test]
fn laplace_1() {
    laplace_case("1", 102);
}
#[test]
fn laplace_3_7() {
    laplace_case("3.7", 103);
}
#[test]
fn laplace_100() {
    laplace_case("100", 104);
}
#[test]
fn laplace_1e6() {
    laplace_case("1000000", 105);
}
#[test]
fn gaussian_0_5() {
    gaussian_case("0.5", 201);
}
#[test]
fn gaussian_1() {
    gaussian_case("1", 202);
}
#[test]
fn gaussian_3_7() {
    gaussian_case("3.7", 203);
}
#[test]
fn gaussian_100() {
    gaussian_case("100", 204);
}
#[test]
fn gaussian_1e6() {
    gaussian_case("1000000", 205);
}

// Beyond the required scales: 10^9 for both, and σ = 10^13, where every acceptance test of
// the discrete Gaussian goes through the big-integer path.
#[test]
fn laplace_1e9() {
    laplace_case("1000000000", 106);
}
#[test]
fn gaussian_1e9() {
    gaussian_case("1000000000", 206);
}
#[test]
fn gaussian_1e13_big_integer_path() {
    gaussian_case("10000000000000", 207);
}

/// Bernoulli(exp(−γ)) against exp(−γ) computed in f64, 10^6 draws per γ. The count is
/// Binomial(N, p); by Hoeffding P(|p̂ − p| > t) ≤ 2·exp(−2Nt²), so t = √(ln(2/α)/(2N)) ≈ 0.0029
/// at α = 10^-7. A 10% error in γ moves p by ≥ 0.0029 for every γ tested here except γ = 0.
#[test]
fn bernoulli_exp_frequencies() {
    let mut rng = seeded_rng_from_u64(300);
    let t = dkw_threshold(N, ALPHA);
    for g in ["0", "0.1", "0.5", "1", "1.5", "3.7", "10/3", "7"] {
        let gamma = r(g);
        let hits = (0..N).filter(|_| cleanroom_dp::bernoulli_exp(&gamma, &mut rng)).count();
        let p_hat = hits as f64 / N as f64;
        let p = (-gamma.to_f64()).exp();
        assert!((p_hat - p).abs() <= t, "γ={g}: {p_hat} vs {p}");
        // Where p is small, DKW's band holds 0 (γ = 7: p = 0.0009, band ±0.0027), so count
        // the hits as well: Binomial(N, p) within 6 standard deviations. A sampler that
        // always says false fails here.
        let expected = N as f64 * p;
        let sd = (expected * (1.0 - p)).sqrt();
        assert!((hits as f64 - expected).abs() <= 6.0 * sd + 1.0, "γ={g}: {hits} hits, expected {expected:.0}");
        if g != "0" {
            let wrong = (-1.1 * gamma.to_f64()).exp();
            // the test would reject a sampler with γ off by 10% only where the gap exceeds 2t
            if (p - wrong).abs() > 2.0 * t {
                assert!((p_hat - wrong).abs() > t, "γ={g}: cannot tell from 10% off");
            }
        }
    }
}

#[test]
fn helpers_are_sane() {
    // CDFs are CDFs
    assert!((dlap_cdf(1.0, -1000) - 0.0).abs() < 1e-12);
    assert!((dlap_cdf(1.0, 1000) - 1.0).abs() < 1e-12);
    let g = DGaussCdf::new(3.7);
    assert!((g.cdf(0) - (1.0 - g.cdf(-1))).abs() < 1e-12); // symmetry: F(0) = 1 - F(-1)
    let g = DGaussCdf::new(1e6);
    assert!((g.cdf(0) + g.cdf(-1) - 1.0).abs() < 1e-9);
    // Clopper–Pearson with 0 successes: upper = 1 - (alpha/2)^(1/n)
    let (lo, hi) = clopper_pearson(0, 1000, 0.05);
    assert_eq!(lo, 0.0);
    assert!((hi - (1.0 - 0.025f64.powf(1.0 / 1000.0))).abs() < 1e-9);
    let (lo, hi) = clopper_pearson(500, 1000, 0.05);
    assert!(lo < 0.5 && hi > 0.5 && hi - lo < 0.07);
}
