//! The DP-SGD accountant against reference values from Google's `dp-accounting`
//! (`tests/data/dpsgd_reference.json`, written by `scripts/dpsgd_accountant_check.py
//! --write-reference`; the file records the version). The same three checks as the script, so
//! they hold without Python:
//!
//! 1. ours ≥ the PLD ε (a pessimistic, near-exact upper bound on the true ε): no under-count;
//! 2. ours ≤ dp-accounting's RDP ε on its integer orders (a subset of ours), up to the
//!    floating-point margin;
//! 3. ours ≤ 1.05 × dp-accounting's RDP ε on its default (partly fractional) orders, where
//!    σ ≥ 1 and that ε ≤ 20.

use cleanroom_dp::{Delta, Rational, SampledGaussian};
use serde_json::Value;

const REFERENCE: &str = include_str!("data/dpsgd_reference.json");

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn ours(point: &Value) -> f64 {
    let q = Rational::try_from_f64(num(point, "sample_rate")).unwrap();
    let sigma = Rational::try_from_f64(num(point, "noise_multiplier")).unwrap();
    let steps = point["steps"].as_u64().unwrap();
    let delta = Delta::try_from_f64(num(point, "delta")).unwrap();
    SampledGaussian::new(q, sigma, steps).unwrap().account(&delta).unwrap().epsilon.to_f64()
}

#[test]
fn never_below_pld_and_as_tight_as_integer_order_rdp() {
    let doc: Value = serde_json::from_str(REFERENCE).unwrap();
    let checks = &doc["checks"];
    let (rel_tol, abs_tol) = (num(checks, "int_orders_rel_tol"), num(checks, "int_orders_abs_tol"));
    let max_ratio = num(checks, "max_rdp_ratio");
    let (regime_eps, regime_sigma) =
        (num(checks, "ratio_regime_max_epsilon"), num(checks, "ratio_regime_min_noise_multiplier"));
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 200);

    let mut failures = Vec::new();
    let (mut min_pld, mut max_int, mut max_rdp, mut max_rdp_regime) = (f64::INFINITY, 0f64, 0f64, 0f64);
    for p in points {
        let e = ours(p);
        let (pld, rdp, rdp_int) = (num(p, "pld_epsilon"), num(p, "rdp_epsilon"), num(p, "rdp_int_epsilon"));
        let in_regime = num(p, "noise_multiplier") >= regime_sigma && rdp <= regime_eps;
        min_pld = min_pld.min(e / pld);
        max_int = max_int.max(e / rdp_int);
        max_rdp = max_rdp.max(e / rdp);
        if in_regime {
            max_rdp_regime = max_rdp_regime.max(e / rdp);
        }
        if e < pld {
            failures.push(format!("under-count: ours {e} < PLD {pld} at {p}"));
        }
        if e > rdp_int * (1.0 + rel_tol) + abs_tol {
            failures.push(format!("looser than dp-accounting's integer orders: {e} > {rdp_int} at {p}"));
        }
        if in_regime && e > max_ratio * rdp {
            failures.push(format!("more than {max_ratio} × dp-accounting RDP: {e} > {rdp} at {p}"));
        }
    }
    eprintln!(
        "dp-accounting {}: min ours/PLD {min_pld:.4}, max ours/RDP-integer {max_int:.9}, \
         max ours/RDP {max_rdp:.4} (σ ≥ {regime_sigma}, ε ≤ {regime_eps}: {max_rdp_regime:.4})",
        doc["dp_accounting_version"]
    );
    assert!(failures.is_empty(), "{} violation(s):\n{}", failures.len(), failures.join("\n"));
}
