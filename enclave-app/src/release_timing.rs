//! When a reply may leave the enclave.
//!
//! Sampling exact discrete noise takes longer for larger |noise| (the geometric loops of
//! Canonne–Kamath–Steinke run longer; `dp/tests/attacks.rs` measures a correlation of about
//! 0.1–0.3 between sampling time and |noise|), and a job's running time depends on the data.
//! So a reply leaves only at the first multiple of the policy's release quantum after the
//! job started. The release time is a function of the elapsed time alone, and as long as a
//! job finishes inside the same quantum, it is the same whatever noise was drawn.

use std::time::Duration;

/// The offset from the start of a job at which its reply is sent: the smallest whole
/// number of quanta, at least one, that is not earlier than `elapsed`. A zero quantum is
/// treated as 1 ms. Exact to the nanosecond (no rounding of `elapsed` to milliseconds).
pub fn release_delay(elapsed: Duration, quantum: Duration) -> Duration {
    let q = quantum.as_nanos().max(1_000_000);
    let e = elapsed.as_nanos();
    let k = e.div_ceil(q).max(1);
    // k·q ≤ e + q, far below u64::MAX nanoseconds for any real job; saturate regardless.
    let target = k.saturating_mul(q).min(u128::from(u64::MAX));
    Duration::from_nanos(target as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn release_is_on_the_grid_and_never_early() {
        let q = ms(50);
        for e_us in (0..2_000_000u64).step_by(997) {
            let e = Duration::from_micros(e_us);
            let t = release_delay(e, q);
            assert!(t >= e, "released before the job finished: {t:?} < {e:?}");
            assert_eq!(t.as_nanos() % q.as_nanos(), 0, "{t:?} is not a multiple of {q:?}");
            assert!(t < e + q || (e.is_zero() && t == q), "waited a whole extra quantum: {e:?} -> {t:?}");
            assert!(t >= q, "at least one quantum");
        }
    }

    #[test]
    fn release_time_does_not_depend_on_anything_inside_a_quantum() {
        // Two jobs whose running times differ only by the time their noise took to draw
        // (microseconds here; the sampler's dependence on |noise|) are released at the same
        // instant unless they straddle a grid line.
        let q = ms(500);
        let base = ms(1234);
        let t0 = release_delay(base, q);
        for extra_us in [0u64, 1, 7, 50, 900, 20_000, 265_999] {
            assert_eq!(release_delay(base + Duration::from_micros(extra_us), q), t0);
        }
        assert_eq!(t0, ms(1500));
        // Exactly on the grid stays on it; one nanosecond later goes to the next line.
        assert_eq!(release_delay(ms(1500), q), ms(1500));
        assert_eq!(release_delay(ms(1500) + Duration::from_nanos(1), q), ms(2000));
    }

    #[test]
    fn degenerate_quanta() {
        assert_eq!(release_delay(Duration::ZERO, Duration::ZERO), ms(1));
        assert_eq!(release_delay(Duration::from_micros(2500), Duration::ZERO), ms(3));
        assert_eq!(release_delay(Duration::ZERO, ms(50)), ms(50));
        // No overflow or panic at the extremes.
        let t = release_delay(Duration::MAX, Duration::MAX);
        assert!(t > Duration::ZERO);
        let t = release_delay(Duration::from_secs(u64::MAX / 2), ms(1));
        assert!(t > Duration::ZERO);
    }
}
