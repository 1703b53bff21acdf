//! Load held at the front door (issue 18): floods from many loopback addresses against
//! the real host-proxy and enclave-app. Threads and descriptors stay bounded, connections
//! over a cap are refused at once, idle ones are closed after their timeout, and a real
//! key release and job still succeed while the flood goes on.
//!
//! Bounds are asserted on counts, never on tight latencies: this runs on a loaded 2-core
//! machine next to other tests.

use cleanroom_e2e::flood::{self, Kind};
use cleanroom_e2e::*;
use protocol::wire::{BlobRequest, ClientMessage, EnclaveMessage, HostResponse};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The host proxy's limits in these tests (small, so the test is quick).
const CAP: usize = 1024;
const HANDSHAKE_S: u64 = 4;
const IDLE_S: u64 = 5;
const UPSTREAM: usize = 16;
const BLOB_CAP: usize = 8;
/// The enclave's.
const CHANNELS: usize = 24;
const ENCLAVE_IDLE_S: u64 = 6;

/// Threads host-proxy may have whatever the load: main, signal handler, the enclave
/// services' threads, the runtime's workers (≤ 4) and blocking pool (≤ 8).
const PROXY_THREADS: usize = 24;
/// Descriptors besides the capped connections.
const FD_SLACK: usize = 128;

fn proxy_args() -> Vec<String> {
    [
        format!("--max-connections={CAP}"),
        format!("--handshake-timeout={HANDSHAKE_S}"),
        format!("--idle-timeout={IDLE_S}"),
        format!("--max-upstream={UPSTREAM}"),
        "--upstream-wait=30".into(),
        format!("--max-blob-connections={BLOB_CAP}"),
        format!("--enclave-arg=--max-channels={CHANNELS}"),
        "--enclave-arg=--handshake-timeout=5".into(),
        format!("--enclave-arg=--idle-timeout={ENCLAVE_IDLE_S}"),
    ]
    .to_vec()
}

fn addr(ep: &str) -> SocketAddr {
    ep.strip_prefix("tcp:").expect("a tcp endpoint").parse().expect("socket address")
}

/// The most threads and descriptors seen in the two processes while it runs (and the
/// fewest flooding connections open, if given a flood's counter).
struct Sampler {
    stop: Arc<AtomicBool>,
    max: Arc<[AtomicUsize; 3]>,
    fewest_open: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(proxy: u32, enclave: u32, open: Option<Arc<AtomicUsize>>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let fewest_open = Arc::new(AtomicUsize::new(usize::MAX));
        let (s, m, f) = (stop.clone(), max.clone(), fewest_open.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                m[0].fetch_max(flood::threads(proxy), Ordering::Relaxed);
                m[1].fetch_max(flood::threads(enclave), Ordering::Relaxed);
                m[2].fetch_max(flood::open_fds(proxy), Ordering::Relaxed);
                if let Some(o) = &open {
                    f.fetch_min(o.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler { stop, max, fewest_open, thread: Some(thread) }
    }

    fn fewest_open(&self) -> usize {
        self.fewest_open.load(Ordering::Relaxed)
    }

    /// (host-proxy threads, enclave threads, host-proxy descriptors), the most seen.
    fn finish(mut self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (self.max[0].load(Ordering::Relaxed), self.max[1].load(Ordering::Relaxed), self.max[2].load(Ordering::Relaxed))
    }
}

fn assert_bounded(what: &str, (proxy_threads, enclave_threads, proxy_fds): (usize, usize, usize), enclave_base: usize) {
    eprintln!("{what}: host-proxy threads ≤ {proxy_threads}, fds ≤ {proxy_fds}; enclave threads ≤ {enclave_threads}");
    assert!(
        proxy_threads <= PROXY_THREADS,
        "{what}: host-proxy grew to {proxy_threads} threads (bound {PROXY_THREADS}): a thread per connection?"
    );
    assert!(
        proxy_fds <= CAP + UPSTREAM + BLOB_CAP + FD_SLACK,
        "{what}: host-proxy held {proxy_fds} descriptors, over its caps"
    );
    assert!(
        enclave_threads <= enclave_base + CHANNELS + 2,
        "{what}: enclave-app grew to {enclave_threads} threads (idle {enclave_base}, at most {CHANNELS} channels)"
    );
}

#[test]
fn a_flood_from_many_addresses_is_bounded_and_a_release_and_a_job_still_succeed() {
    let fd_limit = flood::raise_fd_limit();
    assert!(fd_limit >= 4096, "this test needs 4096 open files, the hard limit is {fd_limit}");
    let w = World::start(WorldOptions { proxy_args: proxy_args(), ..Default::default() });
    let front = addr(&w.front);
    let (proxy, enclave) = (w.proxy_pid(), w.enclave_pid());
    let enclave_base = flood::threads(enclave);

    // 1. The cap: 1,500 clients that connect and send nothing, from 250 addresses (six
    // each, within any per-peer rate). Those over the cap are closed at once; the others
    // when their handshake timeout runs out, not before.
    let sampler = Sampler::start(proxy, enclave, None);
    let n = CAP + 476;
    let fates = flood::burst(front, vec![Kind::SlowReader; n], 250, Duration::from_secs(HANDSHAKE_S + 20))
        .join()
        .expect("flood");
    assert_bounded("1,500 slow readers", sampler.finish(), enclave_base);
    let failed = fates.iter().filter(|f| f.connect_failed).count();
    assert!(failed <= n / 100, "{failed} of {n} connects failed outright");
    let at_once = fates.iter().filter(|f| f.closed_after.is_some_and(|t| t < Duration::from_millis(1500))).count();
    let held: Vec<Duration> = fates
        .iter()
        .filter(|f| !f.connect_failed)
        .filter_map(|f| f.closed_after.filter(|t| *t >= Duration::from_millis(1500)))
        .collect();
    let never_closed = fates.iter().filter(|f| !f.connect_failed && f.closed_after.is_none()).count();
    eprintln!("cap: {at_once} refused at once, {} held until the timeout, {never_closed} never closed", held.len());
    assert!(at_once >= n - CAP - failed, "only {at_once} of {n} were refused at once with a cap of {CAP}");
    assert!(held.len() <= CAP, "{} connections were held with a cap of {CAP}", held.len());
    assert_eq!(never_closed, 0, "slow readers must be closed by the handshake timeout");
    let earliest = held.iter().min().copied().unwrap_or_default();
    assert!(
        earliest >= Duration::from_secs(HANDSHAKE_S) - Duration::from_millis(500),
        "a silent client was closed after {earliest:?}, before the {HANDSHAKE_S} s handshake timeout"
    );

    // 2. A sustained mixed flood (900 clients reconnecting as they are closed) while the
    // owner releases a key and the provider runs a job through the same front door.
    let kinds =
        flood::mix(900, &[(Kind::SlowReader, 40), (Kind::Garbage, 20), (Kind::HalfOpen, 39), (Kind::StalledHello, 1)]);
    assert!(kinds.iter().filter(|k| **k == Kind::StalledHello).count() < UPSTREAM, "leave the owner a slot");
    let stagger = Duration::from_secs(HANDSHAKE_S);
    let mut sustained = flood::Sustained::start(front, kinds, 250, Duration::from_millis(300), stagger);
    std::thread::sleep(stagger);
    let ramp = Instant::now();
    while sustained.open.load(Ordering::Relaxed) < 600 && ramp.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let sampler = Sampler::start(proxy, enclave, Some(sustained.open.clone()));
    let t = Instant::now();
    let o = w.release("job-1");
    let release_time = t.elapsed();
    assert!(o.status.success(), "release under load: {}\n{}", text(&o), w.host_log());
    let query = w.read_query(&w.query("job-1", &credit_lr_wasm()));
    let t = Instant::now();
    let (o, result) = w.submit("job-1", &credit_lr_wasm(), &w.index);
    let job_time = t.elapsed();
    assert!(o.status.success(), "job under load: {}\n{}", text(&o), w.host_log());
    assert!(read_result(&result).outputs.len() == 3);
    let fewest = sampler.fewest_open();
    let connects = sustained.connects.load(Ordering::Relaxed);
    sustained.stop();
    eprintln!(
        "under a flood of at least {fewest} open ({connects} connects): release {release_time:?}, job {job_time:?} (deadline {} ms)",
        query.deadline_ms
    );
    assert_bounded("a sustained mixed flood", sampler.finish(), enclave_base);
    // The condition of this phase held: the flood was on the whole time.
    assert!(fewest >= 400, "the flood dropped to {fewest} open connections: the load was not there");
    assert!(release_time < Duration::from_secs(60), "the release took {release_time:?} under load");
    assert!(
        job_time < Duration::from_millis(query.deadline_ms) + Duration::from_secs(60),
        "the job took {job_time:?} under load"
    );

    // 3. Idle clients on their turn are closed after the idle timeout: an attested
    // channel that goes quiet, and the blob API's cap answers with a clear error.
    let mut c = raw_enclave_client(&w.front);
    c.sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    transport::send(&mut c, &ClientMessage::Attest { nonce: protocol::Bytes(vec![5; 32]) }).unwrap();
    assert!(matches!(transport::recv(&mut c), Ok(EnclaveMessage::Evidence { .. })));
    let quiet = Instant::now();
    let blob = addr(&w.blobs);
    let held: Vec<_> = (0..BLOB_CAP).map(|_| std::net::TcpStream::connect(blob).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = transport::Stream::connect(&w.blobs.parse().unwrap()).unwrap();
    transport::send(&mut extra, &BlobRequest::AuditLog { from: 0 }).unwrap();
    match transport::recv::<_, HostResponse>(&mut extra) {
        Ok(HostResponse::Error { code, message }) => {
            assert_eq!(code, "too_many_connections", "{message}");
            assert!(message.contains(&BLOB_CAP.to_string()), "{message}");
        }
        other => panic!("a blob API connection over the cap got {other:?}"),
    }
    let closed = transport::recv::<_, EnclaveMessage>(&mut c);
    let idle_for = quiet.elapsed();
    assert!(closed.is_err(), "the quiet channel must be closed, got {closed:?}");
    assert!(
        idle_for >= Duration::from_secs(IDLE_S) - Duration::from_millis(500) && idle_for < Duration::from_secs(30),
        "a quiet channel was closed after {idle_for:?} (idle timeout {IDLE_S} s)"
    );
    drop(held);
    // The silent blob clients were closed by their first-byte timeout: the API serves again.
    std::thread::sleep(Duration::from_millis(500));
    let mut again = transport::Stream::connect(&w.blobs.parse().unwrap()).unwrap();
    transport::send(&mut again, &BlobRequest::AuditLog { from: 0 }).unwrap();
    assert!(matches!(transport::recv(&mut again), Ok(HostResponse::AuditLog { .. })));
}

#[test]
fn the_enclave_refuses_channels_over_its_cap_with_a_readable_error_and_closes_idle_ones() {
    // A hostile host skips the front door and connects to the enclave's own socket.
    let w = World::start(WorldOptions { proxy_args: proxy_args(), ..Default::default() });
    let enclave = w.enclave_pid();
    let base = flood::threads(enclave);
    let ep = format!("unix:{}", w.enclave_socket().display());
    let extra = 6;
    // Open every connection first (each completes its TLS handshake, refused or not) ...
    let conns: Vec<_> = (0..CHANNELS + extra)
        .map(|_| {
            let mut c = raw_enclave_client(&ep);
            while c.conn.is_handshaking() {
                c.conn.complete_io(&mut c.sock).expect("the TLS handshake completes, even when refused");
            }
            (c, Instant::now())
        })
        .collect();
    let threads = flood::threads(enclave);
    // ... then see which were answered with the refusal (it follows the handshake at once).
    std::thread::sleep(Duration::from_millis(300));
    let (mut held, mut refused) = (vec![], 0);
    for (mut c, since) in conns {
        c.sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match transport::recv::<_, EnclaveMessage>(&mut c) {
            Ok(EnclaveMessage::Error { code, message }) => {
                assert_eq!(code.as_str(), "too_many_channels", "{message}");
                assert!(message.contains(&CHANNELS.to_string()), "{message}");
                refused += 1;
            }
            // Nothing to read: a served channel waiting for its first request.
            Err(transport::TransportError::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                held.push((c, since))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("enclave: {} channels held, {refused} refused, threads {base} -> {threads}", held.len());
    assert!(
        refused >= extra,
        "only {refused} of {} connections over a cap of {CHANNELS} were refused",
        CHANNELS + extra
    );
    assert!(held.len() <= CHANNELS && held.len() >= CHANNELS - 2, "{} channels served at once", held.len());
    assert!(threads <= base + CHANNELS + 1, "enclave threads grew from {base} to {threads}");

    // Each served channel that sends no request is closed after the idle timeout.
    for (c, since) in &mut held {
        c.sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let r = transport::recv::<_, EnclaveMessage>(c);
        let after = since.elapsed();
        assert!(
            matches!(r, Err(transport::TransportError::Closed)),
            "an idle channel must be closed by the enclave, got {r:?}"
        );
        assert!(
            after >= Duration::from_secs(ENCLAVE_IDLE_S) - Duration::from_millis(500)
                && after < Duration::from_secs(ENCLAVE_IDLE_S + 20),
            "an idle channel was closed after {after:?} (idle timeout {ENCLAVE_IDLE_S} s)"
        );
    }
    // Idle channels were closed: the cap frees and a new channel is served again.
    let evidence = fetch_evidence(&ep, vec![3; 32]);
    assert!(matches!(evidence, EnclaveMessage::Evidence { .. }), "{evidence:?}");
}
