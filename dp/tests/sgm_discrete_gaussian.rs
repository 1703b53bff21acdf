//! The DP-SGD accountant's bound holds for the *discrete* Gaussian the enclave adds, checked
//! numerically with exact sums over the integer lattice (docs/dp-sgd-accounting.md, step (c)).
//!
//! One coordinate, P = N_Z(0, σ²), R = N_Z(v, σ²) for an integer shift v, M = (1−q)P + qR.
//! For every point of a grid of q, σ (down to 0.5, where discrete and continuous differ), α and
//! v, with sums over z ∈ [−(αv + 40σ + 10), αv + 40σ + 10] (the tails beyond are below e^-800):
//!
//!   D_α(P ‖ M) ≤ D_α(M ‖ P) = ln A_α(q, σ/v)/(α−1),
//!
//! the right-hand side being what `SampledGaussian::rdp_at_order` computes for one step with
//! noise multiplier σ/v. The equality is exact for integer α and v (completing the square,
//! the lattice is invariant under the shift αv), so it is checked to 10⁻⁹; the inequality is
//! the add/remove domination that the document proves for any pair R = P∘(z ↦ v − z).

use cleanroom_dp::{Rational, SampledGaussian};

const SIGMAS: [f64; 5] = [0.5, 0.7, 1.0, 2.0, 5.0];
const RATES: [f64; 6] = [0.001, 0.01, 0.1, 0.5, 0.9, 1.0];
const ORDERS: [u32; 7] = [2, 3, 4, 6, 8, 16, 32];
const SHIFTS: [i64; 3] = [1, 2, 3];

/// ln Σ exp(x_i).
fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    max + xs.map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// ln(e^a + e^b).
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

/// (D_α(M ‖ P), D_α(P ‖ M)) for the discrete Gaussian, by exact lattice sums.
fn lattice_divergences(q: f64, sigma: f64, alpha: u32, v: i64) -> (f64, f64) {
    let a = f64::from(alpha);
    let two_var = 2.0 * sigma * sigma;
    let reach = (a * v as f64 + 40.0 * sigma + 10.0).ceil() as i64;
    let zs = -reach..=reach;
    let ln_norm = log_sum_exp(zs.clone().map(|z| -((z * z) as f64) / two_var));
    let ln_p = move |z: i64| -((z * z) as f64) / two_var - ln_norm;
    // ln(M/P) = ln((1−q) + q·R/P), ln(R/P) = (2zv − v²)/(2σ²): the normalisers cancel.
    let ln_m_over_p = move |z: i64| {
        let ln_l = ((2 * z * v - v * v) as f64) / two_var;
        if q >= 1.0 {
            ln_l
        } else {
            log_add_exp((-q).ln_1p(), q.ln() + ln_l)
        }
    };
    let remove = log_sum_exp(zs.clone().map(|z| ln_p(z) + a * ln_m_over_p(z))) / (a - 1.0);
    let add = log_sum_exp(zs.map(|z| ln_p(z) + (1.0 - a) * ln_m_over_p(z))) / (a - 1.0);
    (remove, add)
}

fn accountant_rdp(q: f64, sigma: f64, alpha: u32, v: i64) -> f64 {
    let q = Rational::try_from_f64(q).unwrap();
    let s = Rational::try_from_f64(sigma).unwrap().checked_div(&Rational::from_integer(v as u128)).unwrap();
    SampledGaussian::new(q, s, 1).unwrap().rdp_at_order(alpha).unwrap()
}

#[test]
fn discrete_gaussian_divergences_are_within_the_accountant_bound() {
    let mut checked = 0;
    let mut worst_gap = 0f64; // max (add − remove)/remove: must stay ≤ 0
    let grid = SIGMAS.iter().flat_map(|&s| RATES.iter().map(move |&q| (s, q)));
    let grid = grid.flat_map(|(s, q)| ORDERS.iter().flat_map(move |&a| SHIFTS.iter().map(move |&v| (s, q, a, v))));
    for (sigma, q, alpha, v) in grid {
        let (remove, add) = lattice_divergences(q, sigma, alpha, v);
        let bound = accountant_rdp(q, sigma, alpha, v);
        let at = format!("σ {sigma} q {q} α {alpha} v {v}");
        assert!(remove.is_finite() && add.is_finite() && bound.is_finite(), "{at}");
        // Exact for integer α and v: the lattice moments equal the continuous ones.
        assert!((remove - bound).abs() <= 1e-9 * bound + 1e-15, "{at}: D(M‖P) {remove} vs accountant {bound}");
        // The add direction never exceeds the remove direction.
        assert!(add <= remove * (1.0 + 1e-9) + 1e-15, "{at}: D(P‖M) {add} > D(M‖P) {remove}");
        if remove > 0.0 {
            worst_gap = worst_gap.max((add - remove) / remove);
        }
        checked += 1;
    }
    assert_eq!(checked, SIGMAS.len() * RATES.len() * ORDERS.len() * SHIFTS.len());
    eprintln!("{checked} points; max (D(P‖M) − D(M‖P))/D(M‖P) = {worst_gap:e}");
}

/// The lemma behind the add/remove domination, on one pair {z, v − z}: with P ∝ (e^-s, e^s)
/// and M = (1−q)P + q·swap(P), tanh d = (1−2q)·tanh s, |d| ≤ s, the remove direction's term
/// is at least the add direction's iff F(s, d) ≥ F(d, s), F(x, y) = cosh(x)^(2α−1)·
/// cosh(αy − (α−1)x). Checked here directly (in logs) on a dense grid, fractional α included.
#[test]
fn two_point_lemma_holds_on_a_grid() {
    // ln cosh without overflow.
    let ln_cosh = |x: f64| x.abs() + (-2.0 * x.abs()).exp().ln_1p() - std::f64::consts::LN_2;
    let ln_f = |x: f64, y: f64, a: f64| (2.0 * a - 1.0) * ln_cosh(x) + ln_cosh(a * y - (a - 1.0) * x);
    let mut n = 0;
    for i in 0..=400 {
        let s = 0.05 * f64::from(i); // 0..=20
        for j in 0..=40 {
            let d = s * (f64::from(j) / 20.0 - 1.0); // −s..=s
            for a in [1.0, 1.5, 2.0, 3.0, 4.5, 8.0, 32.0, 256.0] {
                let (lhs, rhs) = (ln_f(s, d, a), ln_f(d, s, a));
                assert!(lhs >= rhs - 1e-12 * rhs.abs().max(1.0), "s {s} d {d} α {a}: {lhs} < {rhs}");
                n += 1;
            }
        }
    }
    assert_eq!(n, 401 * 41 * 8);
}
