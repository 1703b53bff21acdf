//! Compare step for the Nitro claim set (shared by [`crate::nitro`] and
//! [`crate::simulated`]): every expectation that is set must hold.
//!
//! | check name | meaning |
//! |---|---|
//! | `debug_mode` | PCR0/1/2 are not all zero, or the caller allowed debug |
//! | `pcr<N>` | PCR N equals the expected value exactly |
//! | `nonce` | the document carries exactly the caller's nonce (freshness) |
//! | `user_data` | the document carries exactly the expected user_data |
//! | `public_key` | the document binds exactly the expected public key |
//! | `module_id` | module_id starts with the expected prefix |
//! | `max_age` | the document is at most `max_age_ms` old at the verification time, and not from the future |

use crate::{Claims, Error, NitroExpectations, Options, UnixTime};

/// Allowance for a document timestamp later than the verification time
/// (verification times are often whole seconds, document timestamps are ms).
pub const FUTURE_ALLOWANCE_MS: u64 = 1000;

fn opt_eq(expected: &Option<Vec<u8>>, actual: &Option<Vec<u8>>) -> bool {
    match expected {
        None => true,
        Some(e) => actual.as_deref() == Some(e.as_slice()),
    }
}

/// Checks `claims` against `expect` and `opts`; appends the name of each passed check.
pub fn check_claims(
    claims: &Claims,
    expect: &NitroExpectations,
    opts: &Options,
    at: UnixTime,
    checks: &mut Vec<String>,
) -> Result<(), Error> {
    if claims.is_debug() {
        if !opts.allow_debug {
            return Err(Error::DebugNotAllowed);
        }
        checks.push("debug_mode_allowed".into());
    } else {
        checks.push("debug_mode".into());
    }
    for (index, want) in &expect.pcrs {
        let got = claims.pcrs.get(index).ok_or(Error::PcrMissing(*index))?;
        if got != want {
            return Err(Error::PcrMismatch { index: *index, expected: hex::encode(want), actual: hex::encode(got) });
        }
        checks.push(format!("pcr{index}"));
    }
    if !opt_eq(&expect.nonce, &claims.nonce) {
        return Err(Error::NonceMismatch);
    }
    if expect.nonce.is_some() {
        checks.push("nonce".into());
    }
    if !opt_eq(&expect.user_data, &claims.user_data) {
        return Err(Error::UserDataMismatch);
    }
    if expect.user_data.is_some() {
        checks.push("user_data".into());
    }
    if !opt_eq(&expect.public_key, &claims.public_key) {
        return Err(Error::PublicKeyMismatch);
    }
    if expect.public_key.is_some() {
        checks.push("public_key".into());
    }
    if let Some(prefix) = &expect.module_id_prefix {
        if !claims.module_id.starts_with(prefix.as_str()) {
            return Err(Error::ModuleIdMismatch(claims.module_id.clone()));
        }
        checks.push("module_id".into());
    }
    if let Some(max_age_ms) = expect.max_age_ms {
        let at_ms = at.as_millis();
        if claims.timestamp > at_ms.saturating_add(FUTURE_ALLOWANCE_MS) {
            return Err(Error::FromFuture { timestamp_ms: claims.timestamp, at_ms });
        }
        let age_ms = at_ms.saturating_sub(claims.timestamp);
        if age_ms > max_age_ms {
            return Err(Error::TooOld { age_ms, max_age_ms });
        }
        checks.push("max_age".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        let mut c = Claims::new("i-abc-enc1", 1_000_000);
        c.pcrs.insert(0, vec![1; 48]);
        c.pcrs.insert(1, vec![2; 48]);
        c.pcrs.insert(2, vec![3; 48]);
        c.nonce = Some(vec![9; 8]);
        c.user_data = Some(b"ud".to_vec());
        c.public_key = Some(b"pk".to_vec());
        c
    }

    fn run(c: &Claims, e: &NitroExpectations, o: &Options, at_ms: u64) -> Result<Vec<String>, Error> {
        let mut checks = Vec::new();
        check_claims(c, e, o, UnixTime::from_millis(at_ms), &mut checks).map(|()| checks)
    }

    #[test]
    fn all_expectations_pass() {
        let c = claims();
        let e = NitroExpectations {
            pcrs: c.pcrs.clone(),
            nonce: c.nonce.clone(),
            user_data: c.user_data.clone(),
            public_key: c.public_key.clone(),
            module_id_prefix: Some("i-abc".into()),
            max_age_ms: Some(5_000),
        };
        let checks = run(&c, &e, &Options::default(), 1_004_000).unwrap();
        for name in ["pcr0", "pcr1", "pcr2", "nonce", "user_data", "public_key", "module_id", "max_age"] {
            assert!(checks.iter().any(|c| c == name), "{name} in {checks:?}");
        }
    }

    #[test]
    fn each_mismatch_has_its_error() {
        let c = claims();
        let o = Options::default();
        let mut e = NitroExpectations::default();
        e.pcrs.insert(1, vec![0; 48]);
        assert!(matches!(run(&c, &e, &o, 0), Err(Error::PcrMismatch { index: 1, .. })));
        let mut e = NitroExpectations::default();
        e.pcrs.insert(16, vec![0; 48]);
        assert_eq!(run(&c, &e, &o, 0), Err(Error::PcrMissing(16)));
        let e = NitroExpectations { nonce: Some(vec![1]), ..Default::default() };
        assert_eq!(run(&c, &e, &o, 0), Err(Error::NonceMismatch));
        let e = NitroExpectations { user_data: Some(vec![1]), ..Default::default() };
        assert_eq!(run(&c, &e, &o, 0), Err(Error::UserDataMismatch));
        let e = NitroExpectations { public_key: Some(vec![1]), ..Default::default() };
        assert_eq!(run(&c, &e, &o, 0), Err(Error::PublicKeyMismatch));
        let e = NitroExpectations { module_id_prefix: Some("i-x".into()), ..Default::default() };
        assert!(matches!(run(&c, &e, &o, 0), Err(Error::ModuleIdMismatch(_))));
        let e = NitroExpectations { max_age_ms: Some(10), ..Default::default() };
        assert!(matches!(run(&c, &e, &o, 1_000_011), Err(Error::TooOld { age_ms: 11, max_age_ms: 10 })));
        assert!(run(&c, &e, &o, 1_000_010).is_ok());
        assert!(run(&c, &e, &o, 999_000).is_ok());
        assert!(matches!(run(&c, &e, &o, 998_999), Err(Error::FromFuture { .. })));
    }

    #[test]
    fn absent_field_fails_an_expectation() {
        let mut c = claims();
        c.nonce = None;
        let e = NitroExpectations { nonce: Some(vec![]), ..Default::default() };
        assert_eq!(run(&c, &e, &Options::default(), 0), Err(Error::NonceMismatch));
    }

    #[test]
    fn debug_refused_unless_allowed() {
        let mut c = claims();
        for i in 0..3 {
            c.pcrs.insert(i, vec![0; 48]);
        }
        assert_eq!(run(&c, &NitroExpectations::default(), &Options::default(), 0), Err(Error::DebugNotAllowed));
        let o = Options { allow_debug: true, ..Default::default() };
        assert!(run(&c, &NitroExpectations::default(), &o, 0).unwrap().contains(&"debug_mode_allowed".to_string()));
    }
}
