//! Throughput of the owner's keys in a PKCS#11 token (SoftHSM2, set up here in a temporary
//! token directory) next to ring doing the same work in process memory, in the same run.
//! One JSON object per line; `ratio` = ours / baseline (below 1: the token is slower).
//! `CLEANROOM_BENCH_HSM_IDS` sets how many 32-byte ids are tokenized (default 20000).

use cleanroom_hsm::{softhsm, Pin, Token};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, signature};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const PIN: &str = "bench-pin-1234";
const LABEL: &str = "bench";

/// Best of `rounds` timings of `f`, which does `n` operations; operations per second.
fn rate(n: usize, rounds: usize, mut f: impl FnMut()) -> f64 {
    let best = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::MAX);
    n as f64 / best.as_secs_f64()
}

fn line(bench: &str, value: f64, unit: &str, baseline: &str, base: f64) {
    println!(
        "{{\"bench\": \"{bench}\", \"value\": {value:.1}, \"unit\": \"{unit}\", \"baseline\": \"{baseline}\", \"ratio\": {:.4}}}",
        value / base
    );
}

fn main() {
    let n: usize = std::env::var("CLEANROOM_BENCH_HSM_IDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let hsm = softhsm::shared(Path::new(env!("CARGO_TARGET_TMPDIR")), &[LABEL], PIN)
        .unwrap_or_else(|e| panic!("SoftHSM2 bench setup failed: {e}"));
    let token = Token::open(hsm.module(), LABEL, &Pin::new(PIN)).unwrap_or_else(|e| panic!("{e}"));
    let rng = SystemRandom::new();

    // Tokenization: HMAC-SHA-256 of 32-byte ids.
    let mut ids = vec![[0u8; 32]; n];
    for id in &mut ids {
        rng.fill(id).unwrap();
    }
    let refs: Vec<&[u8]> = ids.iter().map(|id| id.as_slice()).collect();
    let key = token.generate_hmac_key("bench-tokenization").unwrap_or_else(|e| panic!("{e}"));
    let ours = rate(n, 3, || {
        black_box(key.hmac_many(black_box(&refs)).unwrap());
    });
    let mut raw = [0u8; 32];
    rng.fill(&mut raw).unwrap();
    let ring_key = hmac::Key::new(hmac::HMAC_SHA256, &raw);
    let base = rate(n, 10, || {
        let out: Vec<[u8; 32]> =
            refs.iter().map(|m| hmac::sign(&ring_key, black_box(m)).as_ref().try_into().unwrap()).collect();
        black_box(out);
    });
    line("hsm_hmac_tokens_per_s", ours, "tokens/s", "ring_hmac_tokens_per_s", base);

    // Grant signing: Ed25519 over 256-byte messages.
    let m = (n / 10).max(100);
    let mut msgs = vec![[0u8; 256]; m];
    for msg in &mut msgs {
        rng.fill(msg).unwrap();
    }
    let ed = token.generate_ed25519_key("bench-grant-signing").unwrap_or_else(|e| panic!("{e}"));
    let ours = rate(m, 3, || {
        for msg in &msgs {
            black_box(ed.sign(black_box(msg)).unwrap());
        }
    });
    let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let base = rate(m, 10, || {
        for msg in &msgs {
            black_box(pair.sign(black_box(msg)));
        }
    });
    line("hsm_ed25519_signs_per_s", ours, "signs/s", "ring_ed25519_signs_per_s", base);
}
