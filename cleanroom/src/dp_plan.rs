//! `cleanroom dp plan`: what a mechanism's noise will cost before any budget is spent.
//!
//! Prints the exact noise scale, the standard deviation, the expected absolute error and a
//! 95% interval for a mechanism at (ε, δ) and a sensitivity, so an owner can choose ε knowing
//! its cost. With `--samples N` it prints instead N raw noise samples, one integer per line,
//! drawn by exactly the sampler the enclave uses (`dp::plan::NoisePlan::sample`, the same
//! `discrete_laplace` / `discrete_gaussian` the release path calls), seeded from the operating
//! system's CSPRNG, so an outside auditor can test the distribution.
//!
//! Every parameter is taken as text and checked here, so a bad value (ε ≤ 0, NaN, infinite,
//! δ outside (0, 1), a zero or non-integer sensitivity) is one clear error line and exit 1.

use clap::{Subcommand, ValueEnum};
use dp::plan::{plan_gaussian, plan_laplace, NoisePlan};
use dp::{Delta, Epsilon};
use std::io::Write;

/// `cleanroom dp ...`
#[derive(Subcommand, Debug)]
pub enum DpCmd {
    /// Noise scale, expected error and 95% interval of a mechanism; or raw noise samples.
    Plan(PlanArgs),
}

/// Which noise distribution.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanMechanism {
    /// Exact discrete Laplace (pure ε-DP), scale b = Δ1/ε.
    Laplace,
    /// Exact discrete Gaussian calibrated to (ε, δ) through zCDP, σ² = Δ2²/(2ρ).
    Gaussian,
}

/// Arguments of `cleanroom dp plan`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[arg(long, value_enum)]
    pub mechanism: PlanMechanism,
    /// ε > 0, a decimal (0.5, 1e-3) or a fraction (1/3).
    #[arg(long, allow_hyphen_values = true)]
    pub epsilon: String,
    /// δ in (0, 1); required for gaussian, refused for laplace.
    #[arg(long, allow_hyphen_values = true)]
    pub delta: Option<String>,
    /// Sensitivity in the aggregate's integer units (L1 for laplace, L2 for gaussian), >= 1.
    #[arg(long, allow_hyphen_values = true)]
    pub sensitivity: String,
    /// Print N raw noise samples (one integer per line) instead of the plan.
    #[arg(long, allow_hyphen_values = true)]
    pub samples: Option<String>,
}

/// Why a plan could not be made. Each message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("--epsilon {value:?}: {why}")]
    Epsilon { value: String, why: String },
    #[error("--delta {value:?}: {why}")]
    Delta { value: String, why: String },
    #[error("--delta is required for --mechanism gaussian (e.g. --delta 1e-6)")]
    MissingDelta,
    #[error("--delta applies only to --mechanism gaussian; discrete Laplace is pure ε-DP")]
    UnexpectedDelta,
    #[error("--sensitivity {0:?}: must be a whole number >= 1 (in the aggregate's integer units)")]
    Sensitivity(String),
    #[error("--samples {0:?}: must be a whole number >= 0")]
    Samples(String),
    #[error("cannot plan this mechanism: {0}")]
    Dp(#[from] dp::DpError),
    #[error("operating-system randomness is unavailable")]
    Randomness,
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// Parse and check every parameter, then build the plan. No noise is drawn here.
pub fn make_plan(args: &PlanArgs) -> Result<NoisePlan, PlanError> {
    let epsilon = parse_epsilon(&args.epsilon)?;
    let sensitivity = parse_count(&args.sensitivity)
        .filter(|&s| s >= 1)
        .ok_or_else(|| PlanError::Sensitivity(args.sensitivity.clone()))?;
    match (args.mechanism, &args.delta) {
        (PlanMechanism::Laplace, None) => Ok(plan_laplace(&epsilon, sensitivity)?),
        (PlanMechanism::Laplace, Some(_)) => Err(PlanError::UnexpectedDelta),
        (PlanMechanism::Gaussian, None) => Err(PlanError::MissingDelta),
        (PlanMechanism::Gaussian, Some(d)) => {
            let delta = parse_delta(d)?;
            Ok(plan_gaussian(&epsilon, &delta, sensitivity)?)
        }
    }
}

fn parse_epsilon(s: &str) -> Result<Epsilon, PlanError> {
    let bad = |why: String| PlanError::Epsilon { value: s.to_string(), why };
    if let Some(why) = non_finite_or_negative(s) {
        return Err(bad(why.into()));
    }
    s.trim().parse::<Epsilon>().map_err(|e| bad(e.to_string()))
}

fn parse_delta(s: &str) -> Result<Delta, PlanError> {
    let bad = |why: String| PlanError::Delta { value: s.to_string(), why };
    if let Some(why) = non_finite_or_negative(s) {
        return Err(bad(why.into()));
    }
    let d = s.trim().parse::<Delta>().map_err(|e| bad(e.to_string()))?;
    if d == Delta::ZERO {
        return Err(bad("must be > 0 for the Gaussian mechanism".into()));
    }
    Ok(d)
}

/// A clearer reason than "invalid number" for the inputs people actually type.
fn non_finite_or_negative(s: &str) -> Option<&'static str> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_start_matches('+');
    if t.contains("nan") {
        Some("NaN is not a number")
    } else if t.contains("inf") {
        Some("must be finite")
    } else if t.starts_with('-') && t.trim_start_matches('-').parse::<f64>().is_ok_and(|x| x != 0.0) {
        Some("must be > 0")
    } else {
        None
    }
}

fn parse_count(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// The plan as text for an owner.
pub fn describe(p: &NoisePlan) -> String {
    let mut s = String::new();
    match p.mechanism {
        dp::Mechanism::DiscreteGaussian => {
            let rho = p.rho.map(|r| r.to_string()).unwrap_or_default();
            let delta = p.delta.map(|d| d.to_string()).unwrap_or_default();
            s.push_str(&format!(
                "mechanism:               discrete Gaussian (exact, Canonne–Kamath–Steinke 2020)\n\
                 privacy:                 (ε = {}, δ = {}) via ρ-zCDP with ρ = {rho}\n\
                 sensitivity (L2):        {}\n\
                 noise scale:             σ² = {} (σ ≈ {:.6})\n",
                p.epsilon,
                delta,
                p.sensitivity,
                p.scale,
                p.scale.to_f64().sqrt()
            ));
        }
        _ => {
            s.push_str(&format!(
                "mechanism:               discrete Laplace (exact, Canonne–Kamath–Steinke 2020)\n\
                 privacy:                 ε = {} (pure DP)\n\
                 sensitivity (L1):        {}\n\
                 noise scale:             b = {} (P(z) ∝ exp(-|z|/b))\n",
                p.epsilon, p.sensitivity, p.scale
            ));
        }
    }
    s.push_str(&format!(
        "standard deviation:      {:.6}\n\
         expected absolute error: {:.6}\n\
         95% interval:            true value ± {} (P(|noise| <= {}) >= 0.95)\n",
        p.std_dev, p.expected_abs_error, p.ci95_half_width, p.ci95_half_width
    ));
    s
}

/// Write `n` raw samples of exactly the enclave's sampler to `out`, one per line.
pub fn write_samples<R: rand_core::RngCore + rand_core::CryptoRng>(
    plan: &NoisePlan,
    n: u64,
    rng: &mut R,
    out: &mut impl Write,
) -> Result<(), PlanError> {
    let mut line = String::with_capacity(24);
    for _ in 0..n {
        let z = plan.sample(rng)?;
        line.clear();
        line.push_str(&z.to_string());
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Run `cleanroom dp ...`, printing to stdout.
pub fn run(cmd: DpCmd) -> Result<(), PlanError> {
    let DpCmd::Plan(args) = cmd;
    // Every parameter is checked before any noise is drawn.
    let samples =
        args.samples.as_deref().map(|s| parse_count(s).ok_or_else(|| PlanError::Samples(s.to_string()))).transpose()?;
    let plan = make_plan(&args)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let r = match samples {
        None => out.write_all(describe(&plan).as_bytes()).and_then(|_| out.flush()).map_err(PlanError::from),
        Some(n) => {
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|_| PlanError::Randomness)?;
            let mut rng = dp::seeded_rng(seed);
            zeroize::Zeroize::zeroize(&mut seed);
            write_samples(&plan, n, &mut rng, &mut out)
        }
    };
    match r {
        // `cleanroom dp plan --samples N | head` is not an error.
        Err(PlanError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(m: PlanMechanism, eps: &str, delta: Option<&str>, s: &str) -> PlanArgs {
        PlanArgs {
            mechanism: m,
            epsilon: eps.into(),
            delta: delta.map(String::from),
            sensitivity: s.into(),
            samples: None,
        }
    }

    #[test]
    fn laplace_plan_text() {
        let p = make_plan(&args(PlanMechanism::Laplace, "0.5", None, "2")).unwrap();
        assert_eq!(p.scale.to_string(), "4");
        let t = describe(&p);
        assert!(t.contains("b = 4"), "{t}");
        assert!(t.contains("95% interval:"), "{t}");
        assert!(t.contains("expected absolute error:"), "{t}");
    }

    #[test]
    fn bad_parameters_are_one_line_errors() {
        let cases = [
            (args(PlanMechanism::Laplace, "0", None, "1"), "epsilon must be > 0"),
            (args(PlanMechanism::Laplace, "-1", None, "1"), "must be > 0"),
            (args(PlanMechanism::Laplace, "NaN", None, "1"), "NaN"),
            (args(PlanMechanism::Laplace, "inf", None, "1"), "finite"),
            (args(PlanMechanism::Laplace, "abc", None, "1"), "invalid number"),
            (args(PlanMechanism::Laplace, "1", None, "0"), "--sensitivity"),
            (args(PlanMechanism::Laplace, "1", None, "1.5"), "--sensitivity"),
            (args(PlanMechanism::Laplace, "1", None, "-3"), "--sensitivity"),
            (args(PlanMechanism::Laplace, "1", Some("1e-6"), "1"), "only to --mechanism gaussian"),
            (args(PlanMechanism::Gaussian, "1", None, "1"), "--delta is required"),
            (args(PlanMechanism::Gaussian, "1", Some("0"), "1"), "must be > 0"),
            (args(PlanMechanism::Gaussian, "1", Some("1"), "1"), "delta must be in [0, 1)"),
            (args(PlanMechanism::Gaussian, "1", Some("1.5"), "1"), "delta must be in [0, 1)"),
            (args(PlanMechanism::Gaussian, "1", Some("nan"), "1"), "NaN"),
            (args(PlanMechanism::Gaussian, "1", Some("-1e-6"), "1"), "must be > 0"),
            (args(PlanMechanism::Laplace, "1e-30", None, "1"), "exceeds the supported maximum"),
        ];
        for (a, want) in cases {
            let e = make_plan(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e:?} !~ {want:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn samples_are_from_the_enclave_sampler() {
        let p = make_plan(&args(PlanMechanism::Gaussian, "1", Some("1e-6"), "1")).unwrap();
        let mut out = Vec::new();
        let mut rng = dp::seeded_rng_from_u64(3);
        write_samples(&p, 1000, &mut rng, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let xs: Vec<i64> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(xs.len(), 1000);
        // Same seed, same stream as calling the sampler directly.
        let mut rng = dp::seeded_rng_from_u64(3);
        let direct: Vec<i64> = (0..1000).map(|_| dp::discrete_gaussian(&p.scale, &mut rng).unwrap()).collect();
        assert_eq!(xs, direct);
    }
}
