//! When to start an enclave again after it stopped on its own. Pure: the supervisor asks,
//! this answers.
//!
//! What a restart means for jobs: the new enclave is a new attestation. It generates a new
//! ephemeral key, so every grant the owner signed names the old key and cannot be spent
//! by the new one; the data key released to the old enclave is gone with it. A job in
//! flight fails (its connection drops); nothing of the privacy budget is reset, because
//! the owner's ledger holds it. Owners and providers must attest again (same PCRs, new
//! key) and the owner must release the data key again before any job runs. A bounded count
//! keeps a crashing image from being relaunched forever.

use std::time::Duration;

/// The longest wait between two starts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// An enclave that stops ends the proxy (with an error).
    Never,
    /// Start it again, at most `max_restarts` times over the proxy's life, waiting
    /// `backoff`, then twice that, … (at most [`MAX_BACKOFF`]) before each start.
    OnFailure { max_restarts: u32, backoff: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestartError {
    #[error("--restart {0:?}: use never or on-failure")]
    Unknown(String),
    #[error("--restart on-failure needs --max-restarts of at least 1")]
    NoRestarts,
}

impl RestartPolicy {
    pub fn parse(name: &str, max_restarts: u32, backoff: Duration) -> Result<RestartPolicy, RestartError> {
        match name {
            "never" => Ok(RestartPolicy::Never),
            "on-failure" if max_restarts == 0 => Err(RestartError::NoRestarts),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_restarts, backoff }),
            other => Err(RestartError::Unknown(other.to_string())),
        }
    }
}

/// What to do now that the enclave stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this wait; this is restart number `n` (from 1).
    Restart { after: Duration, n: u32 },
    /// Stop the proxy: the policy allows no (more) restarts.
    GiveUp { restarts_done: u32 },
}

/// The restarts done so far under one policy.
#[derive(Debug, Clone)]
pub struct Restarts {
    policy: RestartPolicy,
    done: u32,
}

impl Restarts {
    pub fn new(policy: RestartPolicy) -> Restarts {
        Restarts { policy, done: 0 }
    }

    pub fn done(&self) -> u32 {
        self.done
    }

    /// The enclave stopped without being asked to: restart or give up?
    pub fn after_failure(&mut self) -> Decision {
        match self.policy {
            RestartPolicy::OnFailure { max_restarts, backoff } if self.done < max_restarts => {
                let after = backoff.saturating_mul(1u32.checked_shl(self.done).unwrap_or(u32::MAX)).min(MAX_BACKOFF);
                self.done += 1;
                Decision::Restart { after, n: self.done }
            }
            _ => Decision::GiveUp { restarts_done: self.done },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_gives_up_at_once() {
        let mut r = Restarts::new(RestartPolicy::parse("never", 5, Duration::from_secs(1)).unwrap());
        assert_eq!(r.after_failure(), Decision::GiveUp { restarts_done: 0 });
    }

    #[test]
    fn on_failure_is_bounded_with_doubling_capped_backoff() {
        let mut r = Restarts::new(RestartPolicy::parse("on-failure", 3, Duration::from_secs(5)).unwrap());
        assert_eq!(r.after_failure(), Decision::Restart { after: Duration::from_secs(5), n: 1 });
        assert_eq!(r.after_failure(), Decision::Restart { after: Duration::from_secs(10), n: 2 });
        assert_eq!(r.after_failure(), Decision::Restart { after: Duration::from_secs(20), n: 3 });
        assert_eq!(r.after_failure(), Decision::GiveUp { restarts_done: 3 });
        assert_eq!(r.after_failure(), Decision::GiveUp { restarts_done: 3 });

        let mut r = Restarts::new(RestartPolicy::OnFailure { max_restarts: 100, backoff: Duration::from_secs(7) });
        let waits: Vec<Duration> = (0..40)
            .map(|_| match r.after_failure() {
                Decision::Restart { after, .. } => after,
                d => panic!("{d:?}"),
            })
            .collect();
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
        assert_eq!(waits[39], MAX_BACKOFF);
    }

    #[test]
    fn bad_policies_are_refused() {
        assert_eq!(RestartPolicy::parse("always", 3, Duration::ZERO), Err(RestartError::Unknown("always".into())));
        assert_eq!(RestartPolicy::parse("on-failure", 0, Duration::ZERO), Err(RestartError::NoRestarts));
    }
}
