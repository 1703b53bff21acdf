//! `cleanroom dp plan`: what a mechanism's noise will cost before any budget is spent.
//!
//! Prints the exact noise scale, the standard deviation, the expected absolute error and a
//! 95% interval for a mechanism at (ε, δ) and a sensitivity, so an owner can choose ε knowing
//! its cost. With `--samples N` it prints instead N raw noise samples, one integer per line,
//! drawn by exactly the sampler the enclave uses (`dp::plan::NoisePlan::sample`, the same
//! `discrete_laplace` / `discrete_gaussian` the release path calls), seeded from the operating
//! system's CSPRNG, so an outside auditor can test the distribution.
//!
//! `--mechanism dp-sgd` accounts DP-SGD instead (`dp::sgm`): T steps of the Poisson-subsampled
//! Gaussian with sample rate q and noise multiplier σ give (ε, δ) and the best Rényi order; with
//! `--epsilon` in place of `--steps` it prints the largest T that fits. `--json` prints one JSON
//! object for scripts.
//!
//! Every parameter is taken as text and checked here, so a bad value (ε ≤ 0, NaN, infinite,
//! δ outside (0, 1), a zero or non-integer sensitivity, q outside (0, 1], a flag that does not
//! apply to the mechanism) is one clear error line and exit 1.

use dp::plan::{plan_gaussian, plan_laplace, NoisePlan};
use dp::sgm::{max_steps, SampledGaussian, SgmAccount, MAX_STEPS};
use dp::{Delta, Epsilon, Rational};
use std::io::Write;

/// Which noise distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum PlanMechanism {
    /// Exact discrete Laplace (pure ε-DP), scale b = Δ1/ε.
    Laplace,
    /// Exact discrete Gaussian calibrated to (ε, δ) through zCDP, σ² = Δ2²/(2ρ).
    Gaussian,
    /// DP-SGD: T steps of the Poisson-subsampled Gaussian, accounted in Rényi DP.
    DpSgd,
}

impl PlanMechanism {
    fn name(self) -> &'static str {
        match self {
            PlanMechanism::Laplace => "laplace",
            PlanMechanism::Gaussian => "gaussian",
            PlanMechanism::DpSgd => "dp-sgd",
        }
    }
}

/// Arguments of `cleanroom dp plan`, as text: every value is checked here.
#[derive(Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct PlanArgs {
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub mechanism: PlanMechanism,
    /// ε > 0, a decimal (0.5, 1e-3) or a fraction (1/3). For dp-sgd, in place of --steps: the
    /// target, and the largest number of steps that fits is printed.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub epsilon: Option<String>,
    /// δ in (0, 1); required for gaussian and dp-sgd, refused for laplace.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub delta: Option<String>,
    /// Sensitivity in the aggregate's integer units (L1 for laplace, L2 for gaussian), >= 1.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub sensitivity: Option<String>,
    /// Print N raw noise samples (one integer per line) instead of the plan.
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub samples: Option<String>,
    /// dp-sgd: the Poisson sampling rate q in (0, 1] (each unit joins a step's batch with
    /// probability q).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub sample_rate: Option<String>,
    /// dp-sgd: the noise multiplier σ >= 0.1 (noise standard deviation / clipping norm).
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub noise_multiplier: Option<String>,
    /// dp-sgd: the number of steps T in [1, 10^7].
    #[cfg_attr(feature = "cli", arg(long, allow_hyphen_values = true))]
    pub steps: Option<String>,
    /// dp-sgd: print one JSON object instead of text.
    #[cfg_attr(feature = "cli", arg(long))]
    pub json: bool,
}

/// Why a plan could not be made. Each message is one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("--epsilon {value:?}: {why}")]
    Epsilon { value: String, why: String },
    #[error("--delta {value:?}: {why}")]
    Delta { value: String, why: String },
    #[error("--delta is required for --mechanism {0} (e.g. --delta 1e-6)")]
    MissingDelta(&'static str),
    #[error("--delta applies only to --mechanism gaussian and dp-sgd; discrete Laplace is pure ε-DP")]
    UnexpectedDelta,
    #[error("{flag} is required for --mechanism {mechanism} (e.g. {flag} {example})")]
    Missing { flag: &'static str, mechanism: &'static str, example: &'static str },
    #[error("{flag} does not apply to --mechanism {mechanism}")]
    NotApplicable { flag: &'static str, mechanism: &'static str },
    #[error(
        "--mechanism dp-sgd takes either --steps (to get ε) or --epsilon (to get the largest number of steps), \
         not both"
    )]
    StepsAndEpsilon,
    #[error("--steps (to get ε) or --epsilon (to get the largest number of steps) is required for --mechanism dp-sgd")]
    NoStepsNorEpsilon,
    #[error("--sensitivity {0:?}: must be a whole number >= 1 (in the aggregate's integer units)")]
    Sensitivity(String),
    #[error("--samples {0:?}: must be a whole number >= 0")]
    Samples(String),
    #[error("--sample-rate {value:?}: {why}")]
    SampleRate { value: String, why: String },
    #[error("--noise-multiplier {value:?}: {why}")]
    NoiseMultiplier { value: String, why: String },
    #[error("--steps {0:?}: must be a whole number in [1, 10000000]")]
    Steps(String),
    #[error("cannot plan this mechanism: {0}")]
    Dp(#[from] dp::DpError),
    #[error("operating-system randomness is unavailable")]
    Randomness,
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

/// What `dp plan` computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// laplace / gaussian: the noise of one release.
    Noise(NoisePlan),
    /// dp-sgd: an account.
    DpSgd(SgdPlan),
}

/// A DP-SGD account.
#[derive(Debug, Clone, PartialEq)]
pub enum SgdPlan {
    /// With --steps: the (ε, δ) of T steps.
    Steps { sgm: SampledGaussian, account: SgmAccount },
    /// With --epsilon: the largest T whose ε fits, and its account (none if T = 0).
    MaxSteps {
        sample_rate: Rational,
        noise_multiplier: Rational,
        target: Epsilon,
        delta: Delta,
        max_steps: u64,
        account: Option<SgmAccount>,
    },
}

/// Parse and check every parameter, then build the plan. No noise is drawn here.
pub fn make_plan(args: &PlanArgs) -> Result<Plan, PlanError> {
    refuse_flags_of_other_mechanisms(args)?;
    match args.mechanism {
        PlanMechanism::Laplace | PlanMechanism::Gaussian => make_noise_plan(args).map(Plan::Noise),
        PlanMechanism::DpSgd => make_sgd_plan(args).map(Plan::DpSgd),
    }
}

/// A flag given for a mechanism that does not use it is an error, not silently ignored.
fn refuse_flags_of_other_mechanisms(args: &PlanArgs) -> Result<(), PlanError> {
    let m = args.mechanism;
    let given: [(&'static str, bool, bool); 6] = [
        // (flag, given, used by this mechanism)
        ("--sensitivity", args.sensitivity.is_some(), m != PlanMechanism::DpSgd),
        ("--samples", args.samples.is_some(), m != PlanMechanism::DpSgd),
        ("--sample-rate", args.sample_rate.is_some(), m == PlanMechanism::DpSgd),
        ("--noise-multiplier", args.noise_multiplier.is_some(), m == PlanMechanism::DpSgd),
        ("--steps", args.steps.is_some(), m == PlanMechanism::DpSgd),
        ("--json", args.json, m == PlanMechanism::DpSgd),
    ];
    match given.iter().find(|(_, given, used)| *given && !*used) {
        Some((flag, _, _)) => Err(PlanError::NotApplicable { flag, mechanism: m.name() }),
        None => Ok(()),
    }
}

fn make_noise_plan(args: &PlanArgs) -> Result<NoisePlan, PlanError> {
    let mechanism = args.mechanism.name();
    let epsilon = parse_epsilon(required(&args.epsilon, "--epsilon", mechanism, "1")?)?;
    let sensitivity = required(&args.sensitivity, "--sensitivity", mechanism, "1")?;
    let sensitivity =
        parse_count(sensitivity).filter(|&s| s >= 1).ok_or_else(|| PlanError::Sensitivity(sensitivity.to_string()))?;
    match (args.mechanism, &args.delta) {
        (PlanMechanism::Gaussian, None) => Err(PlanError::MissingDelta(mechanism)),
        (PlanMechanism::Gaussian, Some(d)) => Ok(plan_gaussian(&epsilon, &parse_delta(d)?, sensitivity)?),
        (_, Some(_)) => Err(PlanError::UnexpectedDelta),
        (_, None) => Ok(plan_laplace(&epsilon, sensitivity)?),
    }
}

fn make_sgd_plan(args: &PlanArgs) -> Result<SgdPlan, PlanError> {
    let mechanism = args.mechanism.name();
    let sample_rate = parse_sample_rate(required(&args.sample_rate, "--sample-rate", mechanism, "0.01")?)?;
    let noise_multiplier =
        parse_noise_multiplier(required(&args.noise_multiplier, "--noise-multiplier", mechanism, "1.1")?)?;
    let delta = parse_delta(args.delta.as_deref().ok_or(PlanError::MissingDelta(mechanism))?)?;
    match (&args.steps, &args.epsilon) {
        (Some(_), Some(_)) => Err(PlanError::StepsAndEpsilon),
        (None, None) => Err(PlanError::NoStepsNorEpsilon),
        (Some(t), None) => {
            let steps =
                parse_count(t).filter(|t| (1..=MAX_STEPS).contains(t)).ok_or_else(|| PlanError::Steps(t.clone()))?;
            let sgm = SampledGaussian::new(sample_rate, noise_multiplier, steps)?;
            Ok(SgdPlan::Steps { account: sgm.account(&delta)?, sgm })
        }
        (None, Some(e)) => {
            let target = parse_epsilon(e)?;
            let max_steps = max_steps(sample_rate, noise_multiplier, &target, &delta)?;
            let account = match max_steps {
                0 => None,
                t => Some(SampledGaussian::new(sample_rate, noise_multiplier, t)?.account(&delta)?),
            };
            Ok(SgdPlan::MaxSteps { sample_rate, noise_multiplier, target, delta, max_steps, account })
        }
    }
}

fn required<'a>(
    value: &'a Option<String>,
    flag: &'static str,
    mechanism: &'static str,
    example: &'static str,
) -> Result<&'a str, PlanError> {
    value.as_deref().ok_or(PlanError::Missing { flag, mechanism, example })
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
        return Err(bad("must be > 0 for the Gaussian mechanism and DP-SGD".into()));
    }
    Ok(d)
}

fn parse_sample_rate(s: &str) -> Result<Rational, PlanError> {
    let bad = |why: String| PlanError::SampleRate { value: s.to_string(), why };
    if let Some(why) = non_finite_or_negative(s) {
        return Err(bad(why.into()));
    }
    let q = s.trim().parse::<Rational>().map_err(|e| bad(e.to_string()))?;
    if q.is_zero() || q > Rational::ONE {
        return Err(bad(dp::DpError::SampleRateOutOfRange.to_string()));
    }
    Ok(q)
}

fn parse_noise_multiplier(s: &str) -> Result<Rational, PlanError> {
    let bad = |why: String| PlanError::NoiseMultiplier { value: s.to_string(), why };
    if let Some(why) = non_finite_or_negative(s) {
        return Err(bad(why.into()));
    }
    let sigma = s.trim().parse::<Rational>().map_err(|e| bad(e.to_string()))?;
    // The same bound the accountant enforces, reported against the flag.
    SampledGaussian::new(Rational::ONE, sigma, 1).map_err(|e| bad(e.to_string()))?;
    Ok(sigma)
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

/// A DP-SGD plan as text for an owner.
pub fn describe_sgd(p: &SgdPlan) -> String {
    let mut s = String::new();
    let (q, sigma) = match p {
        SgdPlan::Steps { sgm, .. } => (sgm.sample_rate(), sgm.noise_multiplier()),
        SgdPlan::MaxSteps { sample_rate, noise_multiplier, .. } => (*sample_rate, *noise_multiplier),
    };
    s.push_str(&format!(
        "mechanism:               DP-SGD (Poisson-subsampled Gaussian), add or remove one unit\n\
         sample rate q:           {q}\n\
         noise multiplier σ:      {sigma} (noise standard deviation / clipping norm)\n"
    ));
    match p {
        SgdPlan::Steps { sgm, account } => {
            s.push_str(&format!("steps T:                 {}\n", sgm.steps()));
            s.push_str(&describe_account(account));
        }
        SgdPlan::MaxSteps { target, delta, max_steps, account, .. } => {
            s.push_str(&format!("target:                  (ε = {target}, δ = {delta})\n"));
            s.push_str(&match (max_steps, account) {
                (0, _) => "max steps T:             0 (one step already costs more)\n".to_string(),
                (t, _) if *t == MAX_STEPS => format!("max steps T:             {t} (the supported maximum)\n"),
                (t, _) => format!("max steps T:             {t}\n"),
            });
            if let Some(a) = account {
                s.push_str(&describe_account(a));
            }
        }
    }
    s.push_str("accounting:              Rényi DP, integer orders 2..4096 (Mironov–Talwar–Zhang 2019), ε rounded up\n");
    s
}

fn describe_account(a: &SgmAccount) -> String {
    format!(
        "privacy:                 (ε = {}, δ = {})\n\
         best Rényi order:        α = {} (RDP of the T steps at α: {:.6})\n",
        a.epsilon, a.delta, a.order, a.rdp_at_order
    )
}

/// A DP-SGD plan as one JSON object (numbers as `f64`; `epsilon_exact` is the rounded-up
/// rational as text).
pub fn sgd_json(p: &SgdPlan) -> serde_json::Value {
    use serde_json::json;
    let account_fields = |a: &SgmAccount| {
        json!({
            "epsilon": a.epsilon.to_f64(),
            "epsilon_exact": a.epsilon.to_string(),
            "delta": a.delta.to_f64(),
            "order": a.order,
            "rdp_at_order": a.rdp_at_order,
        })
    };
    let mut v = match p {
        SgdPlan::Steps { sgm, account } => {
            let mut v = account_fields(account);
            v["sample_rate"] = json!(sgm.sample_rate().to_f64());
            v["noise_multiplier"] = json!(sgm.noise_multiplier().to_f64());
            v["steps"] = json!(sgm.steps());
            v
        }
        SgdPlan::MaxSteps { sample_rate, noise_multiplier, target, delta, max_steps, account } => {
            let mut v = account.as_ref().map(account_fields).unwrap_or_else(|| json!({ "delta": delta.to_f64() }));
            v["sample_rate"] = json!(sample_rate.to_f64());
            v["noise_multiplier"] = json!(noise_multiplier.to_f64());
            v["target_epsilon"] = json!(target.to_f64());
            v["max_steps"] = json!(max_steps);
            v["steps"] = json!(max_steps);
            v
        }
    };
    v["mechanism"] = json!("dp-sgd");
    v
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

fn write_text(out: &mut impl Write, text: &str) -> Result<(), PlanError> {
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

/// `cleanroom dp plan`: the plan as text (or JSON), or raw noise samples, written to `out`.
pub fn write(args: &PlanArgs, out: &mut impl Write) -> Result<(), PlanError> {
    // Every parameter is checked before any noise is drawn.
    let samples =
        args.samples.as_deref().map(|s| parse_count(s).ok_or_else(|| PlanError::Samples(s.to_string()))).transpose()?;
    let plan = make_plan(args)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let r = match (&plan, samples) {
        (Plan::Noise(p), None) => write_text(&mut out, &describe(p)),
        (Plan::DpSgd(p), _) if args.json => write_text(&mut out, &format!("{}\n", sgd_json(p))),
        (Plan::DpSgd(p), _) => write_text(&mut out, &describe_sgd(p)),
        (Plan::Noise(plan), Some(n)) => {
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|_| PlanError::Randomness)?;
            let mut rng = dp::seeded_rng(seed);
            zeroize::Zeroize::zeroize(&mut seed);
            write_samples(plan, n, &mut rng, &mut out)
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
            epsilon: Some(eps.into()),
            delta: delta.map(String::from),
            sensitivity: Some(s.into()),
            samples: None,
            sample_rate: None,
            noise_multiplier: None,
            steps: None,
            json: false,
        }
    }

    /// `--mechanism dp-sgd --sample-rate q --noise-multiplier σ --delta δ [--steps T]
    /// [--epsilon E]`.
    fn sgd(q: &str, sigma: &str, delta: &str, steps: Option<&str>, eps: Option<&str>) -> PlanArgs {
        PlanArgs {
            mechanism: PlanMechanism::DpSgd,
            epsilon: eps.map(String::from),
            delta: Some(delta.into()),
            sensitivity: None,
            samples: None,
            sample_rate: Some(q.into()),
            noise_multiplier: Some(sigma.into()),
            steps: steps.map(String::from),
            json: false,
        }
    }

    fn noise(a: &PlanArgs) -> NoisePlan {
        match make_plan(a).unwrap() {
            Plan::Noise(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn sgd_plan(a: &PlanArgs) -> SgdPlan {
        match make_plan(a).unwrap() {
            Plan::DpSgd(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn laplace_plan_text() {
        let p = noise(&args(PlanMechanism::Laplace, "0.5", None, "2"));
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
            (PlanArgs { epsilon: None, ..args(PlanMechanism::Laplace, "1", None, "1") }, "--epsilon is required"),
            (
                PlanArgs { sensitivity: None, ..args(PlanMechanism::Gaussian, "1", Some("1e-6"), "1") },
                "--sensitivity is required",
            ),
            (
                PlanArgs { steps: Some("10".into()), ..args(PlanMechanism::Laplace, "1", None, "1") },
                "--steps does not apply to --mechanism laplace",
            ),
            (PlanArgs { json: true, ..args(PlanMechanism::Gaussian, "1", Some("1e-6"), "1") }, "--json does not apply"),
            (sgd("0", "1", "1e-5", Some("10"), None), "--sample-rate \"0\": sample rate must be in (0, 1]"),
            (sgd("1.5", "1", "1e-5", Some("10"), None), "--sample-rate \"1.5\""),
            (sgd("-0.1", "1", "1e-5", Some("10"), None), "must be > 0"),
            (sgd("nan", "1", "1e-5", Some("10"), None), "NaN"),
            (
                sgd("0.01", "0.05", "1e-5", Some("10"), None),
                "--noise-multiplier \"0.05\": noise multiplier must be >= 0.1",
            ),
            (sgd("0.01", "inf", "1e-5", Some("10"), None), "finite"),
            (sgd("0.01", "1", "0", Some("10"), None), "--delta \"0\": must be > 0"),
            (sgd("0.01", "1", "1", Some("10"), None), "delta must be in [0, 1)"),
            (sgd("0.01", "1", "1e-5", Some("0"), None), "--steps \"0\""),
            (sgd("0.01", "1", "1e-5", Some("10000001"), None), "--steps"),
            (sgd("0.01", "1", "1e-5", Some("1.5"), None), "--steps"),
            (sgd("0.01", "1", "1e-5", None, None), "--steps (to get ε) or --epsilon"),
            (sgd("0.01", "1", "1e-5", Some("10"), Some("1")), "not both"),
            (
                PlanArgs { delta: None, ..sgd("0.01", "1", "1e-5", Some("10"), None) },
                "--delta is required for --mechanism dp-sgd",
            ),
            (PlanArgs { sample_rate: None, ..sgd("0.01", "1", "1e-5", Some("10"), None) }, "--sample-rate is required"),
            (
                PlanArgs { noise_multiplier: None, ..sgd("0.01", "1", "1e-5", Some("10"), None) },
                "--noise-multiplier is required",
            ),
            (
                PlanArgs { sensitivity: Some("1".into()), ..sgd("0.01", "1", "1e-5", Some("10"), None) },
                "--sensitivity does not apply to --mechanism dp-sgd",
            ),
            (
                PlanArgs { samples: Some("5".into()), ..sgd("0.01", "1", "1e-5", Some("10"), None) },
                "--samples does not apply",
            ),
        ];
        for (a, want) in cases {
            let e = make_plan(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e:?} !~ {want:?}");
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn samples_are_from_the_enclave_sampler() {
        let p = noise(&args(PlanMechanism::Gaussian, "1", Some("1e-6"), "1"));
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

    #[test]
    fn dp_sgd_account_text_and_json() {
        let p = sgd_plan(&sgd("256/60000", "1.1", "1e-5", Some("14063"), None));
        let SgdPlan::Steps { account, .. } = &p else { panic!("{p:?}") };
        // dp-accounting 0.6.0 on the same integer orders: 2.5970795196566616 at α = 8; ours is
        // rounded up to 10⁻⁹ after the float margin.
        let e = account.epsilon.to_f64();
        assert!((2.5970795196566616..2.5970795196566616 + 5e-9).contains(&e), "{e}");
        let t = describe_sgd(&p);
        for want in ["steps T:                 14063", "δ = 0.00001", "α = 8", "noise multiplier σ:      1.1"] {
            assert!(t.contains(want), "{want:?} not in {t}");
        }
        let j = sgd_json(&p);
        assert_eq!(j["mechanism"], "dp-sgd");
        assert_eq!(j["epsilon"].as_f64(), Some(e));
        assert_eq!(j["epsilon_exact"], account.epsilon.to_string());
        assert_eq!(j["delta"].as_f64(), Some(1e-5));
        assert_eq!(j["sample_rate"].as_f64(), Some(256.0 / 60000.0));
        assert_eq!(j["noise_multiplier"].as_f64(), Some(1.1));
        assert_eq!(j["steps"].as_u64(), Some(14063));
        assert_eq!(j["order"].as_u64(), Some(8));
    }

    #[test]
    fn dp_sgd_max_steps() {
        let p = sgd_plan(&sgd("0.01", "1.1", "1e-5", None, Some("3")));
        let SgdPlan::MaxSteps { max_steps, account: Some(a), .. } = &p else { panic!("{p:?}") };
        assert!(a.epsilon <= "3".parse().unwrap());
        let next = SampledGaussian::new("0.01".parse().unwrap(), "1.1".parse().unwrap(), max_steps + 1).unwrap();
        assert!(next.account(&a.delta).unwrap().epsilon > "3".parse().unwrap());
        let j = sgd_json(&p);
        assert_eq!(j["max_steps"].as_u64(), Some(*max_steps));
        assert_eq!(j["target_epsilon"].as_f64(), Some(3.0));
        assert!(describe_sgd(&p).contains(&format!("max steps T:             {max_steps}\n")));
        // Nothing fits: 0 steps, no account.
        let p = sgd_plan(&sgd("1", "0.5", "1e-5", None, Some("0.01")));
        assert!(matches!(p, SgdPlan::MaxSteps { max_steps: 0, account: None, .. }), "{p:?}");
        assert!(describe_sgd(&p).contains("max steps T:             0 (one step already costs more)"));
    }
}
