//! A connection flood from many loopback source addresses, for the front door's load test
//! and benchmark. On Linux all of 127.0.0.0/8 routes to `lo`, so binding each client
//! socket to another 127.x.y.z before connecting makes it another peer to the proxy.
//!
//! The flood runs on its own small tokio runtime (one task per connection), so a test can
//! hold thousands of connections without thousands of threads of its own.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a flooding client behaves once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connects and never sends a byte.
    SlowReader,
    /// Sends random bytes (not TLS), then waits.
    Garbage,
    /// Sends a TLS record header and part of the record it announces, then stalls.
    HalfOpen,
    /// Sends a whole, real TLS ClientHello, then never finishes the handshake: the one
    /// kind that reaches the enclave.
    StalledHello,
}

/// What happened to one flooding connection.
#[derive(Debug, Clone)]
pub struct Fate {
    pub kind: Kind,
    /// The connect failed (refused, reset or timed out).
    pub connect_failed: bool,
    /// From connected to closed by the server; None if still open when the hold ended.
    pub closed_after: Option<Duration>,
}

/// The `i`-th source address of `n`: 127.0.{1..}.{1..=250}, never 127.0.0.1 itself.
pub fn source_addr(i: usize, n: usize) -> Ipv4Addr {
    let k = i % n.max(1);
    Ipv4Addr::new(127, 0, 1 + (k / 250) as u8, 1 + (k % 250) as u8)
}

/// The mix of `n` connections: kinds in the given proportions, interleaved.
pub fn mix(n: usize, kinds: &[(Kind, usize)]) -> Vec<Kind> {
    let total: usize = kinds.iter().map(|(_, w)| w).sum();
    (0..n)
        .map(|i| {
            let mut r = i % total.max(1);
            for (k, w) in kinds {
                if r < *w {
                    return *k;
                }
                r -= w;
            }
            kinds[0].0
        })
        .collect()
}

/// A real ClientHello record (what rustls sends first).
pub fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(cfg), "cleanroom-enclave".try_into().expect("name"))
        .expect("client connection");
    let mut out = vec![];
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write hello");
    }
    out
}

fn garbage(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One connection: connect from `src`, behave as `kind`, wait until the server closes it
/// or `until` passes (or `stop` is set).
async fn one(front: SocketAddr, src: Ipv4Addr, kind: Kind, seed: u64, until: Instant, stop: &AtomicBool) -> Fate {
    let failed = Fate { kind, connect_failed: true, closed_after: None };
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else { return failed };
    if sock.bind(SocketAddr::V4(SocketAddrV4::new(src, 0))).is_err() {
        return failed;
    }
    let mut s = match tokio::time::timeout(Duration::from_secs(10), sock.connect(front)).await {
        Ok(Ok(s)) => s,
        _ => return failed,
    };
    let connected = Instant::now();
    let first: Vec<u8> = match kind {
        Kind::SlowReader => vec![],
        Kind::Garbage => {
            let mut g = garbage(seed);
            g[0] = 0x47; // "G": never a TLS record type
            g
        }
        Kind::HalfOpen => {
            let mut h = vec![22, 3, 1, 2, 0]; // a handshake record of 512 bytes...
            h.extend_from_slice(&[1u8; 100]); // ...of which 100 arrive
            h
        }
        Kind::StalledHello => client_hello(),
    };
    if !first.is_empty() && s.write_all(&first).await.is_err() {
        return Fate { kind, connect_failed: false, closed_after: Some(connected.elapsed()) };
    }
    let mut buf = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now()).min(Duration::from_millis(200));
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            return Fate { kind, connect_failed: false, closed_after: None };
        }
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Fate { kind, connect_failed: false, closed_after: Some(connected.elapsed()) };
            }
            Ok(Ok(_)) | Err(_) => continue,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("flood runtime")
}

/// Open one connection per entry of `kinds` at once, from `addrs` source addresses, and
/// wait (at most `hold`) for the server to close each. Runs on a thread of its own.
pub fn burst(front: SocketAddr, kinds: Vec<Kind>, addrs: usize, hold: Duration) -> std::thread::JoinHandle<Vec<Fate>> {
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            let until = Instant::now() + hold;
            let stop = Arc::new(AtomicBool::new(false));
            let tasks: Vec<_> = kinds
                .into_iter()
                .enumerate()
                .map(|(i, kind)| {
                    let stop = stop.clone();
                    tokio::spawn(async move { one(front, source_addr(i, addrs), kind, i as u64, until, &stop).await })
                })
                .collect();
            let mut fates = Vec::with_capacity(tasks.len());
            for t in tasks {
                fates.push(t.await.expect("flood task"));
            }
            fates
        })
    })
}

/// A flood kept up until stopped: every client reconnects as soon as it is closed (after
/// `pause`, so a refused client does not spin).
pub struct Sustained {
    stop: Arc<AtomicBool>,
    /// Connections made so far.
    pub connects: Arc<AtomicUsize>,
    /// Connections currently open (connected and not yet closed by the server).
    pub open: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sustained {
    /// Start the clients spread evenly over `stagger` (so they do not all time out, and
    /// reconnect, in one wave).
    pub fn start(front: SocketAddr, kinds: Vec<Kind>, addrs: usize, pause: Duration, stagger: Duration) -> Sustained {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (s, c, o) = (stop.clone(), connects.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let n = kinds.len().max(1);
                let tasks: Vec<_> = kinds
                    .into_iter()
                    .enumerate()
                    .map(|(i, kind)| {
                        let (stop, connects, open) = (s.clone(), c.clone(), o.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(stagger.mul_f64(i as f64 / n as f64)).await;
                            let mut round = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                connects.fetch_add(1, Ordering::Relaxed);
                                open.fetch_add(1, Ordering::Relaxed);
                                let far = Instant::now() + Duration::from_secs(3600);
                                let seed = (i as u64) << 20 | round;
                                one(front, source_addr(i, addrs), kind, seed, far, &stop).await;
                                open.fetch_sub(1, Ordering::Relaxed);
                                round += 1;
                                tokio::time::sleep(pause).await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            })
        });
        Sustained { stop, connects, open, thread: Some(thread) }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sustained {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `Threads:` of /proc/PID/status.
pub fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Raise this process's soft open-file limit to its hard limit; the new soft limit.
#[allow(unsafe_code)]
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}
