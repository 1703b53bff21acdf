//! Privacy budget accountants. The owner's ledger is the source of truth; these are the
//! in-enclave counters that make sure one job never spends more than its grant.
//!
//! * [`PureDpAccountant`]: basic (sequential) composition, ε's add up exactly.
//! * [`ZcdpAccountant`]: ρ's add up exactly (zCDP composes additively); pure ε-DP steps are
//!   charged as ρ = ε²/2; the total converts to (ε, δ)-DP via ε = ρ + 2·√(ρ·ln(1/δ))
//!   (Bun–Steinke 2016, Prop. 1.3), rounded *up* to a rational.
//!
//! A failed `spend` changes nothing.

use serde::{Deserialize, Serialize};

use crate::rational::{Delta, Epsilon, Rational, Rho};
use crate::DpError;

/// The request does not fit in what is left of the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("privacy budget exceeded: requested {requested}, remaining {remaining}")]
pub struct BudgetExceeded {
    /// What the caller asked to spend (ε or ρ).
    pub requested: Rational,
    /// What is left (ε or ρ).
    pub remaining: Rational,
}

/// Pure ε-DP accountant with basic composition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PureDpAccountant {
    budget: Epsilon,
    spent: Rational,
}

impl PureDpAccountant {
    /// A fresh accountant with total budget `budget`.
    pub fn new(budget: Epsilon) -> Self {
        PureDpAccountant { budget, spent: Rational::ZERO }
    }

    /// Total budget.
    pub fn budget(&self) -> Epsilon {
        self.budget
    }

    /// Spent so far.
    pub fn spent(&self) -> Rational {
        self.spent
    }

    /// What is left (never negative).
    pub fn remaining(&self) -> Rational {
        self.budget.as_rational().checked_sub(&self.spent).ok().flatten().unwrap_or(Rational::ZERO)
    }

    /// Would `eps` fit? Does not spend.
    pub fn can_spend(&self, eps: &Epsilon) -> bool {
        matches!(self.spent.checked_add(eps.as_rational()), Ok(t) if t <= *self.budget.as_rational())
    }

    /// Spend `eps` if it fits; otherwise change nothing and report what is left.
    pub fn spend(&mut self, eps: &Epsilon) -> Result<(), BudgetExceeded> {
        let exceeded = || BudgetExceeded { requested: *eps.as_rational(), remaining: self.remaining() };
        let total = self.spent.checked_add(eps.as_rational()).map_err(|_| exceeded())?;
        if total > *self.budget.as_rational() {
            return Err(exceeded());
        }
        self.spent = total;
        Ok(())
    }

    /// Spend several ε's atomically (all or nothing).
    pub fn spend_all(&mut self, eps: &[Epsilon]) -> Result<(), DpError> {
        let mut sum = Rational::ZERO;
        for e in eps {
            sum = sum.checked_add(e.as_rational())?;
        }
        if sum.is_zero() {
            return Ok(());
        }
        self.spend(&Epsilon::try_from(sum)?)?;
        Ok(())
    }
}

/// zCDP accountant (ρ adds up exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZcdpAccountant {
    budget: Rho,
    spent: Rational,
}

impl ZcdpAccountant {
    /// A fresh accountant with total budget ρ.
    pub fn new(budget: Rho) -> Self {
        ZcdpAccountant { budget, spent: Rational::ZERO }
    }

    /// Total ρ budget.
    pub fn budget(&self) -> Rho {
        self.budget
    }

    /// ρ spent so far.
    pub fn spent(&self) -> Rational {
        self.spent
    }

    /// ρ left.
    pub fn remaining(&self) -> Rational {
        self.budget.as_rational().checked_sub(&self.spent).ok().flatten().unwrap_or(Rational::ZERO)
    }

    /// Spend ρ if it fits.
    pub fn spend_rho(&mut self, rho: &Rho) -> Result<(), BudgetExceeded> {
        let exceeded = || BudgetExceeded { requested: *rho.as_rational(), remaining: self.remaining() };
        let total = self.spent.checked_add(rho.as_rational()).map_err(|_| exceeded())?;
        if total > *self.budget.as_rational() {
            return Err(exceeded());
        }
        self.spent = total;
        Ok(())
    }

    /// Charge a pure ε-DP step as ρ = ε²/2.
    pub fn spend_pure(&mut self, eps: &Epsilon) -> Result<(), DpError> {
        let rho = Rho::from_pure(eps)?;
        self.spend_rho(&rho)?;
        Ok(())
    }

    /// The (ε, δ) guarantee of what was spent so far (None if nothing was spent).
    pub fn spent_as_epsilon(&self, delta: &Delta) -> Result<Option<Epsilon>, DpError> {
        if self.spent.is_zero() {
            return Ok(None);
        }
        rho_to_epsilon(&Rho::try_from(self.spent)?, delta).map(Some)
    }
}

/// ρ-zCDP ⇒ (ε, δ)-DP with ε = ρ + 2·√(ρ·ln(1/δ)) (Bun–Steinke 2016). Computed in `f64`
/// (reporting, not sampling) and rounded **up** to a multiple of 10⁻⁹ after adding a
/// relative margin of 10⁻¹², so the returned rational is never below the true value.
pub fn rho_to_epsilon(rho: &Rho, delta: &Delta) -> Result<Epsilon, DpError> {
    if delta.as_rational().is_zero() {
        return Err(DpError::ZeroDelta);
    }
    let r = rho.to_f64();
    let d = delta.to_f64();
    if !(r.is_finite() && d > 0.0) {
        return Err(DpError::NonFinite);
    }
    let e = r + 2.0 * (r * (-d.ln())).sqrt();
    let e = e * (1.0 + 1e-12) + 1e-12;
    let units = (e * 1e9).ceil();
    if !units.is_finite() || units >= 1e30 {
        return Err(DpError::Overflow("rho to epsilon"));
    }
    Epsilon::from_ratio(units as u128, 1_000_000_000)
}

/// The largest ρ (a rational on a 10⁻¹² grid) such that ρ-zCDP implies (ε, δ)-DP by
/// [`rho_to_epsilon`]: ρ = (√(ln(1/δ) + ε) − √ln(1/δ))², rounded down and then lowered until
/// `rho_to_epsilon(ρ, δ) <= ε` holds exactly (as rationals).
pub fn epsilon_delta_to_rho(epsilon: &Epsilon, delta: &Delta) -> Result<Rho, DpError> {
    if delta.as_rational().is_zero() {
        return Err(DpError::ZeroDelta);
    }
    let e = epsilon.to_f64();
    let l = -delta.to_f64().ln();
    if !(e.is_finite() && l.is_finite()) {
        return Err(DpError::NonFinite);
    }
    let mut r = ((l + e).sqrt() - l.sqrt()).powi(2);
    for _ in 0..10_000 {
        let units = (r * 1e12).floor();
        if !(1.0..1e30).contains(&units) {
            return Err(DpError::Overflow("epsilon to rho"));
        }
        let rho = Rho::from_ratio(units as u128, 1_000_000_000_000)?;
        if rho_to_epsilon(&rho, delta)? <= *epsilon {
            return Ok(rho);
        }
        r *= 1.0 - 1e-7;
    }
    Err(DpError::Overflow("epsilon to rho"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(s: &str) -> Epsilon {
        s.parse().unwrap()
    }

    #[test]
    fn pure_basic_composition_exact() {
        let mut a = PureDpAccountant::new(eps("1"));
        for _ in 0..10 {
            a.spend(&eps("0.1")).unwrap();
        }
        // exactly used up: 10 × 0.1 = 1 with no float drift
        assert_eq!(a.spent(), Rational::ONE);
        assert_eq!(a.remaining(), Rational::ZERO);
        let err = a.spend(&eps("0.000001")).unwrap_err();
        assert_eq!(err.requested.to_string(), "0.000001");
        assert_eq!(err.remaining, Rational::ZERO);
        assert!(err.to_string().contains("remaining 0"));
    }

    #[test]
    fn failed_spend_changes_nothing() {
        let mut a = PureDpAccountant::new(eps("0.5"));
        a.spend(&eps("0.3")).unwrap();
        let before = a.clone();
        let err = a.spend(&eps("0.3")).unwrap_err();
        assert_eq!(err.remaining.to_string(), "0.2");
        assert_eq!(a, before);
        assert!(a.can_spend(&eps("0.2")));
        assert!(!a.can_spend(&eps("0.2000001")));
        assert!(a.spend_all(&[eps("0.1"), eps("0.2")]).is_err());
        assert_eq!(a, before);
        a.spend_all(&[eps("0.1"), eps("0.1")]).unwrap();
        assert_eq!(a.remaining(), Rational::ZERO);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"budget":"0.5","spent":"0.5"}"#);
    }

    #[test]
    fn zcdp_accounting_and_conversion() {
        let mut z = ZcdpAccountant::new("1".parse().unwrap());
        z.spend_rho(&"0.25".parse().unwrap()).unwrap();
        z.spend_pure(&eps("1")).unwrap(); // ρ = 0.5
        assert_eq!(z.spent().to_string(), "0.75");
        assert!(z.spend_rho(&"0.5".parse().unwrap()).is_err());
        assert_eq!(z.spent().to_string(), "0.75");
        let delta: Delta = "1e-6".parse().unwrap();
        let e = z.spent_as_epsilon(&delta).unwrap().unwrap();
        let exact = 0.75 + 2.0 * (0.75f64 * 1e6f64.ln()).sqrt();
        assert!(e.to_f64() >= exact && e.to_f64() < exact + 2e-9, "{e} vs {exact}");
        assert!(rho_to_epsilon(&"1".parse().unwrap(), &Delta::ZERO).is_err());
        // round trip (ε, δ) → ρ → ε' with ε' ≤ ε and close to it
        let rho = epsilon_delta_to_rho(&eps("1"), &delta).unwrap();
        let back = rho_to_epsilon(&rho, &delta).unwrap();
        assert!(back <= eps("1") && back.to_f64() > 0.999, "{rho} -> {back}");
    }
}
