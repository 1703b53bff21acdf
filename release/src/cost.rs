//! What a query costs, from its public parameters alone.
//!
//! Each output is one of three kinds of mechanism:
//! - pure ε-DP (discrete Laplace noise, permute-and-flip), costing its ε;
//! - (ε, δ_p)-DP: a grouped output whose groups come from DP partition selection (the keys
//!   are not all public), costing its ε and the policy's partition δ_p;
//! - ρ-zCDP (discrete Gaussian noise), with ρ = ε²/2 for a declared ε.
//!
//! A query of pure and (ε, δ_p) outputs composes basically: ε = Σε, δ = Σδ_p. A query with
//! a Gaussian output sums the ρ of its zCDP outputs, converts that total once at the
//! query's `delta` (ε = ρ + 2√(ρ ln(1/δ)), Bun and Steinke 2016, Proposition 1.3), and
//! composes the result basically with the (ε, δ_p) outputs. Pure outputs may go either way
//! (pure ε-DP is ε²/2-zCDP, Proposition 1.4); both assignments are valid bounds, and the
//! smaller total ε is charged. The choice depends only on the query, never on data.

use crate::check::keys_are_public;
use crate::noise::gaussian_rho;
use crate::{parse_delta, parse_epsilon, ReleaseError};
use dp::{Epsilon, Rational, Rho};
use protocol::job::{Noise, QuerySpec};
use protocol::policy::Policy;

/// The total a query is charged.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub epsilon: Epsilon,
    pub delta: Rational,
    /// The zCDP part before conversion, when the query has Gaussian outputs.
    pub rho: Option<Rho>,
    /// How the total was composed, for reviews and results.
    pub composition: String,
}

/// The cost of `spec` under `policy` (partition δ, public key domains, training bounds): its
/// outputs' cost, and a training query's DP-SGD cost (`crate::training`) composed with it
/// basically.
pub fn query_cost(spec: &QuerySpec, policy: &Policy) -> Result<Cost, ReleaseError> {
    let training = crate::training::training_cost(spec, policy)?;
    let outputs = if spec.outputs.is_empty() && training.is_some() { None } else { Some(outputs_cost(spec, policy)?) };
    const SGD: &str = "DP-SGD: RDP accountant for T steps of the Poisson-subsampled Gaussian";
    Ok(match (outputs, training) {
        (Some(c), None) => c,
        (None, Some((epsilon, delta))) => Cost { epsilon, delta, rho: None, composition: SGD.into() },
        (Some(c), Some((e, d))) => Cost {
            epsilon: c.epsilon.checked_add(&e)?,
            delta: c.delta.checked_add(&d)?,
            rho: c.rho,
            composition: format!("{SGD}, composed basically with the evaluation outputs ({})", c.composition),
        },
        (None, None) => return Err(ReleaseError::BadQuery("the query has no outputs".into())),
    })
}

fn outputs_cost(spec: &QuerySpec, policy: &Policy) -> Result<Cost, ReleaseError> {
    let partition_delta = parse_delta(&policy.partition_delta)?;
    let mut selected: Vec<Epsilon> = Vec::new();
    let mut pure: Vec<Epsilon> = Vec::new();
    let mut gaussian: Vec<Epsilon> = Vec::new();
    for o in &spec.outputs {
        let e = parse_epsilon(o.epsilon())?;
        if !o.group_by().is_empty() && !keys_are_public(o, policy) {
            selected.push(e);
        } else if o.noise() == Noise::Gaussian {
            gaussian.push(e);
        } else {
            pure.push(e);
        }
    }
    let sum_eps = |v: &[Epsilon]| -> Result<Option<Epsilon>, ReleaseError> {
        let mut t: Option<Epsilon> = None;
        for e in v {
            t = Some(match t {
                None => *e,
                Some(t) => t.checked_add(e)?,
            });
        }
        Ok(t)
    };
    let sel_delta = partition_delta.as_rational().checked_mul_int(selected.len() as u128)?;
    if gaussian.is_empty() {
        let all: Vec<Epsilon> = selected.iter().chain(&pure).copied().collect();
        let epsilon = sum_eps(&all)?.ok_or_else(|| ReleaseError::BadQuery("the query has no outputs".into()))?;
        return Ok(Cost {
            epsilon,
            delta: sel_delta,
            rho: None,
            composition: "basic composition of pure ε-DP and partition-selection outputs".into(),
        });
    }
    let query_delta = match &spec.delta {
        Some(d) => parse_delta(d)?,
        None => return Err(ReleaseError::BadQuery("a query with Gaussian outputs must state delta".into())),
    };
    let rho_of = |v: &[Epsilon]| -> Result<Rho, ReleaseError> {
        let mut t: Option<Rho> = None;
        for e in v {
            let r = gaussian_rho(e)?;
            t = Some(match t {
                None => r,
                Some(t) => t.checked_add(&r)?,
            });
        }
        t.ok_or_else(|| ReleaseError::BadQuery("no zCDP outputs".into()))
    };
    let plus = |a: Option<Epsilon>, b: Epsilon| -> Result<Epsilon, ReleaseError> {
        Ok(match a {
            None => b,
            Some(a) => a.checked_add(&b)?,
        })
    };
    // (a) pure outputs composed basically, beside the converted Gaussian ones
    let rho_a = rho_of(&gaussian)?;
    let outside_a: Vec<Epsilon> = selected.iter().chain(&pure).copied().collect();
    let eps_a = plus(sum_eps(&outside_a)?, dp::accountant::rho_to_epsilon(&rho_a, &query_delta)?)?;
    // (b) pure outputs converted with the Gaussian ones
    let inside_b: Vec<Epsilon> = gaussian.iter().chain(&pure).copied().collect();
    let rho_b = rho_of(&inside_b)?;
    let eps_b = plus(sum_eps(&selected)?, dp::accountant::rho_to_epsilon(&rho_b, &query_delta)?)?;
    let delta = sel_delta.checked_add(query_delta.as_rational())?;
    let (epsilon, rho, how) = if pure.is_empty() || eps_a <= eps_b {
        (eps_a, rho_a, "pure ε-DP outputs composed basically beside")
    } else {
        (eps_b, rho_b, "pure ε-DP outputs (as ρ = ε²/2) converted together with")
    };
    Ok(Cost {
        epsilon,
        delta,
        rho: Some(rho),
        composition: format!(
            "{how} the Gaussian outputs' zCDP total ρ = {rho}, converted at δ = {query_delta}; \
             partition-selection outputs composed basically"
        ),
    })
}
