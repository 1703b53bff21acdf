//! The front door's relay rules over Unix sockets, with a fake enclave: what reaches the
//! enclave, whose turn the idle timeout runs on, and the upstream cap.

use host_proxy::aio::AsyncListener;
use host_proxy::frontdoor::FrontDoor;
use host_proxy::limits::FrontDoorLimits;
use host_proxy::ratelimit::RateLimiter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use transport::Endpoint;

/// A TLS handshake record header and a 5-byte body: all the front door checks.
const HELLO: &[u8] = &[22, 3, 1, 0, 5, b'h', b'e', b'l', b'l', b'o'];

struct Setup {
    _dir: tempfile::TempDir,
    front: std::path::PathBuf,
    /// Connections the fake enclave accepted.
    upstream: Arc<AtomicUsize>,
}

/// A fake enclave that answers every read with the same bytes after `delay`, and a
/// front door to it.
async fn setup(limits: FrontDoorLimits, delay: Duration) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let enclave_path = dir.path().join("enclave.sock");
    let enclave = UnixListener::bind(&enclave_path).unwrap();
    let upstream = Arc::new(AtomicUsize::new(0));
    let count = upstream.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = enclave.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let front = dir.path().join("front.sock");
    let listener = AsyncListener::bind(&Endpoint::Unix(front.clone())).unwrap();
    let door = FrontDoor::new(limits, Endpoint::Unix(enclave_path), RateLimiter::new(20.0, 80.0, 16));
    tokio::spawn(door.serve(listener));
    Setup { _dir: dir, front, upstream }
}

fn limits(idle: Duration) -> FrontDoorLimits {
    FrontDoorLimits {
        max_connections: 8,
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: idle,
        max_upstream: 4,
        upstream_wait: Duration::from_secs(1),
    }
}

/// Read until `want` bytes arrived; None if the connection closed first.
async fn read_n(s: &mut UnixStream, want: usize) -> Option<Vec<u8>> {
    let mut got = vec![0u8; want];
    s.read_exact(&mut got).await.ok().map(|_| got)
}

/// How long until the front door closes `s` (reading and discarding), at most `max`.
async fn closed_after(s: &mut UnixStream, max: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(max.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_hello_is_relayed_both_ways_and_a_long_wait_for_the_enclave_is_not_idle() {
    // The enclave answers after 1.5 s, longer than the 0.5 s idle timeout: while the
    // enclave has the turn (a job running to its deadline), the client is not idle.
    let s = setup(limits(Duration::from_millis(500)), Duration::from_millis(1500)).await;
    let mut c = UnixStream::connect(&s.front).await.unwrap();
    c.write_all(HELLO).await.unwrap();
    assert_eq!(read_n(&mut c, HELLO.len()).await.as_deref(), Some(HELLO), "the hello comes back");
    c.write_all(b"request").await.unwrap();
    assert_eq!(read_n(&mut c, 7).await.as_deref(), Some(&b"request"[..]), "a slow reply still arrives");
    // Now it is the client's turn: silence closes it after the idle timeout.
    let after = closed_after(&mut c, Duration::from_secs(10)).await.expect("closed when idle");
    assert!(after >= Duration::from_millis(400), "closed after {after:?}, before the idle timeout");
    assert_eq!(s.upstream.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn silence_garbage_and_half_hellos_never_reach_the_enclave() {
    let s = setup(limits(Duration::from_secs(5)), Duration::ZERO).await;
    let start = Instant::now();
    let mut silent = UnixStream::connect(&s.front).await.unwrap();
    let mut garbage = UnixStream::connect(&s.front).await.unwrap();
    let mut half = UnixStream::connect(&s.front).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    half.write_all(&HELLO[..7]).await.unwrap();
    let g = closed_after(&mut garbage, Duration::from_secs(10)).await.expect("garbage is closed");
    assert!(g < Duration::from_millis(1500), "garbage was closed only after {g:?}");
    for c in [&mut silent, &mut half] {
        closed_after(c, Duration::from_secs(10)).await.expect("closed by the handshake timeout");
        let t = start.elapsed();
        assert!(t >= Duration::from_millis(1500), "closed after {t:?}, before the 2 s handshake timeout");
    }
    assert_eq!(s.upstream.load(Ordering::SeqCst), 0, "none of them cost the enclave a connection");
}

#[tokio::test]
async fn over_the_upstream_cap_a_client_waits_then_is_closed_and_over_the_connection_cap_at_once() {
    let mut l = limits(Duration::from_secs(30));
    l.max_upstream = 1;
    l.max_connections = 3;
    // The enclave never answers in this test's time: the first client holds the only slot.
    let s = setup(l, Duration::from_secs(60)).await;
    let mut first = UnixStream::connect(&s.front).await.unwrap();
    first.write_all(HELLO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = UnixStream::connect(&s.front).await.unwrap();
    second.write_all(HELLO).await.unwrap();
    let waited = closed_after(&mut second, Duration::from_secs(10)).await.expect("closed after the wait");
    assert!(waited >= Duration::from_millis(800), "gave up after {waited:?}, before the 1 s upstream wait");
    assert_eq!(s.upstream.load(Ordering::SeqCst), 1);
    // Three open (first, two silent ones) is the cap: a fourth is closed at once.
    let _a = UnixStream::connect(&s.front).await.unwrap();
    let _b = UnixStream::connect(&s.front).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = UnixStream::connect(&s.front).await.unwrap();
    let t = closed_after(&mut over, Duration::from_secs(10)).await.expect("closed");
    assert!(t < Duration::from_millis(1000), "over the cap, closed only after {t:?}");
    drop(first);
}
