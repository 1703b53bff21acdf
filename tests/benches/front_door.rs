//! The front door under load (issue 18): latency of a real key release (`cleanroom
//! release`: connect, attest, verify, grant, key release, audit) with no other traffic,
//! and while 10,000 connections from 1,000 loopback addresses are held open (mostly
//! silent clients and half-sent TLS hellos, re-opened as the proxy's handshake timeout
//! closes them). Prints the repo's JSON lines; `ratio` is idle latency / loaded latency
//! (1.0 = the flood costs the owner nothing, below 1 = slower under load).
//!
//! `FRONT_DOOR_BENCH_CONNECTIONS` and `FRONT_DOOR_BENCH_RELEASES` change the load and the
//! sample size (defaults 10,000 and 100 releases each).

use cleanroom_e2e::flood::{self, Kind};
use cleanroom_e2e::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    // Nearest rank: with 100 samples p99 is the second slowest.
    let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil().max(1.0) as usize;
    sorted_ms[rank.min(sorted_ms.len()) - 1]
}

fn releases(w: &World, tag: &str, n: usize) -> Vec<f64> {
    let mut ms: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            let o = w.release(&format!("{tag}-{i}"));
            let took = t.elapsed().as_secs_f64() * 1000.0;
            assert!(o.status.success(), "release {tag}-{i}: {}\n{}", text(&o), w.host_log());
            took
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// One line in the repo's shape and key order.
fn line(bench: &str, value: f64, unit: &str, baseline: Option<&str>, ratio: Option<f64>) {
    use serde_json::json;
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    println!(
        "{{\"bench\": {}, \"value\": {}, \"unit\": {}, \"baseline\": {}, \"ratio\": {}}}",
        json!(bench),
        json!(round(value)),
        json!(unit),
        json!(baseline),
        json!(ratio.map(round))
    );
}

fn main() {
    let connections = env("FRONT_DOOR_BENCH_CONNECTIONS", 10_000);
    let n = env("FRONT_DOOR_BENCH_RELEASES", 100);
    let fd_limit = flood::raise_fd_limit();
    assert!(fd_limit as usize > connections + 1024, "{connections} connections need more than {fd_limit} open files");
    // Cap above the load, so every flooding connection is held (the worst case for the
    // proxy); the default caps would refuse most of them at once.
    let w = World::start(WorldOptions {
        budget: "1000",
        proxy_args: vec![format!("--max-connections={}", connections + 2048)],
        ..Default::default()
    });
    let front = w.front.strip_prefix("tcp:").expect("tcp front door").parse().expect("address");
    let idle = releases(&w, "idle", n);

    let kinds = flood::mix(connections, &[(Kind::SlowReader, 70), (Kind::HalfOpen, 25), (Kind::Garbage, 5)]);
    let mut load = flood::Sustained::start(front, kinds, 1000, Duration::from_millis(100), Duration::from_secs(5));
    let ramp = Instant::now();
    while load.open.load(Ordering::Relaxed) < connections * 9 / 10 && ramp.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let proxy = w.proxy_pid();
    let (mut most_threads, mut most_fds) = (0, 0);
    let mut loaded = Vec::with_capacity(n);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        held.push(load.open.load(Ordering::Relaxed) as f64);
        most_threads = most_threads.max(flood::threads(proxy));
        most_fds = most_fds.max(flood::open_fds(proxy));
        let t = Instant::now();
        let o = w.release(&format!("loaded-{i}"));
        loaded.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(o.status.success(), "release under load: {}\n{}", text(&o), w.host_log());
    }
    let connects = load.connects.load(Ordering::Relaxed);
    load.stop();
    loaded.sort_by(f64::total_cmp);

    let (i50, i99) = (percentile(&idle, 50.0), percentile(&idle, 99.0));
    let (l50, l99) = (percentile(&loaded, 50.0), percentile(&loaded, 99.0));
    let k = connections / 1000;
    line("front_door_release_p50_ms_idle", i50, "ms", None, None);
    line("front_door_release_p99_ms_idle", i99, "ms", None, None);
    line(
        &format!("front_door_release_p50_ms_{k}k_conns"),
        l50,
        "ms",
        Some("front_door_release_p50_ms_idle"),
        Some(i50 / l50),
    );
    line(
        &format!("front_door_release_p99_ms_{k}k_conns"),
        l99,
        "ms",
        Some("front_door_release_p99_ms_idle"),
        Some(i99 / l99),
    );
    line(&format!("front_door_open_conns_{k}k_load"), held.iter().sum::<f64>() / n as f64, "connections", None, None);
    line(&format!("front_door_proxy_threads_{k}k_conns"), most_threads as f64, "threads", None, None);
    line(&format!("front_door_proxy_fds_{k}k_conns"), most_fds as f64, "fds", None, None);
    eprintln!("front door bench: {connects} flood connects; releases idle {idle:?} ms, loaded {loaded:?} ms");
}
