//! host-proxy: launch the enclave and run the untrusted host services.

use clap::{Parser, Subcommand};
use host_proxy::aio::AsyncListener;
use host_proxy::blobapi::BlobApi;
use host_proxy::blobstore::BlobStore;
use host_proxy::frontdoor::FrontDoor;
use host_proxy::launcher::{launch_process, Launched, ProcessLaunch};
use host_proxy::limits::{BlobApiLimits, Counters, FrontDoorLimits};
use host_proxy::qemu::{self, QemuLaunch, QemuVm};
use host_proxy::ratelimit::RateLimiter;
use host_proxy::services;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use transport::{vhost_uds, Endpoint, Listener, Stream};

#[derive(Parser)]
#[command(about = "cleanroom host proxy (untrusted): launcher, relay, blob store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Launch the enclave and serve the front door, blob API and enclave services.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// process (local enclave-app) or qemu (boot the EIF's kernel + initramfs in QEMU with
    /// a real virtio-vsock device). nitro comes with the Nitro work.
    #[arg(long, default_value = "process")]
    launch: String,
    /// enclave-app binary (process launcher).
    #[arg(long, required_if_eq("launch", "process"))]
    enclave_bin: Option<PathBuf>,
    #[arg(long, default_value = "simulated")]
    platform: String,
    /// The owner's policy (TOML). Passed as a file to a process enclave; served to an
    /// enclave that fetches it from the host (qemu launcher: always).
    #[arg(long)]
    policy: PathBuf,
    /// TCP front door relayed to the enclave's TLS channel.
    #[arg(long, default_value = "tcp:127.0.0.1:7443")]
    front_door: Endpoint,
    /// Blob API for owners and providers.
    #[arg(long, default_value = "tcp:127.0.0.1:7444")]
    blob_api: Endpoint,
    /// Directory for blobs, the audit log and sockets.
    #[arg(long)]
    store: PathBuf,
    /// Largest blob accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_blob: usize,
    /// New front-door connections per second per peer (burst 4x).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Peers the rate limiter remembers at most (full or least recently seen buckets are
    /// forgotten first).
    #[arg(long, default_value_t = host_proxy::ratelimit::DEFAULT_MAX_PEERS)]
    max_peers: usize,
    /// Front-door connections open at once; more are closed as soon as they are accepted.
    #[arg(long, default_value_t = FrontDoorLimits::default().max_connections)]
    max_connections: usize,
    /// Seconds a new front-door connection has to send its TLS hello (blob API: its
    /// first byte) before it is closed.
    #[arg(long, default_value_t = FrontDoorLimits::default().handshake_timeout.as_secs())]
    handshake_timeout: u64,
    /// Seconds without a byte from a client, on its turn, before its connection is closed
    /// (front door and blob API). The wait for a job's reply is not idle time.
    #[arg(long, default_value_t = FrontDoorLimits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Connections to the enclave open at once (at most the enclave's --max-channels).
    #[arg(long, default_value_t = FrontDoorLimits::default().max_upstream)]
    max_upstream: usize,
    /// Seconds a client waits for a connection to the enclave before it is closed.
    #[arg(long, default_value_t = FrontDoorLimits::default().upstream_wait.as_secs())]
    upstream_wait: u64,
    /// Blob API connections open at once; more get a `too_many_connections` error.
    #[arg(long, default_value_t = BlobApiLimits::default().max_connections)]
    max_blob_connections: usize,
    /// process launcher only: one more argument for enclave-app, e.g.
    /// `--enclave-arg=--idle-timeout=5` (repeatable). An enclave image takes its arguments
    /// from its measured kernel command line instead.
    #[arg(long, allow_hyphen_values = true)]
    enclave_arg: Vec<String>,
    /// Write {"front_door","blob_api","enclave_pid",...} here once the enclave answers.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Seconds to wait for the enclave to accept connections (default: 60, qemu: 600).
    #[arg(long)]
    boot_timeout: Option<u64>,
    #[command(flatten)]
    qemu: QemuArgs,
}

#[derive(clap::Args)]
struct QemuArgs {
    /// qemu: the enclave image to boot (kernel, cmdline and initramfs are taken from it).
    #[arg(long, default_value = "target/eif/cleanroom.eif")]
    eif: PathBuf,
    /// qemu: eif-build binary (default: next to this binary, else on PATH).
    #[arg(long)]
    eif_build: Option<PathBuf>,
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu_bin: PathBuf,
    /// qemu: vhost-device-vsock binary (default: on PATH, else ~/.cargo/bin).
    #[arg(long)]
    vhost_vsock_bin: Option<PathBuf>,
    /// qemu: auto (KVM when /dev/kvm is usable, else TCG), kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: String,
    /// qemu: microvm (vsock on virtio-mmio declared on the kernel command line, as on
    /// Nitro) or q35 (vsock on virtio-pci).
    #[arg(long, default_value = "microvm")]
    qemu_machine: String,
    #[arg(long, default_value_t = 16)]
    guest_cid: u32,
    #[arg(long, default_value_t = 512)]
    memory_mib: u32,
    /// qemu: guest vsock port of the enclave's TLS channel.
    #[arg(long, default_value_t = 5000)]
    guest_port: u32,
    /// qemu: host vsock port of the enclave services (the guest dials CID 2 on it).
    #[arg(long, default_value_t = 5001)]
    host_port: u32,
}

fn main() -> ExitCode {
    let Cmd::Run(args) = Cli::parse().cmd;
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The launched enclave, whichever launcher started it. Dropping it stops it.
enum Enclave {
    Process(Launched),
    Qemu(QemuVm),
}

impl Enclave {
    fn pid(&self) -> u32 {
        match self {
            Enclave::Process(p) => p.pid(),
            Enclave::Qemu(q) => q.pid(),
        }
    }

    /// Some(description) once the enclave (or something it needs) has exited.
    fn exited(&mut self) -> Option<String> {
        match self {
            Enclave::Process(p) => match p.try_wait() {
                Ok(Some(s)) => Some(format!("enclave-app exited: {s}")),
                _ => None,
            },
            Enclave::Qemu(q) => match q.try_wait() {
                Ok(Some((what, s))) => Some(format!(
                    "{what} exited: {s}: {}; guest console ends with:\n{}",
                    qemu::tail(&q.qemu_log, 1),
                    q.console_tail(20)
                )),
                _ => None,
            },
        }
    }
}

/// A binary next to this one (as `cargo build` lays them out), else the bare name (PATH).
fn sibling_or_path(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn on_path_or_cargo_bin(name: &str) -> PathBuf {
    let on_path =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file())).unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !on_path && PathBuf::from(&home).join(".cargo/bin").join(name).is_file() => {
            PathBuf::from(home).join(".cargo/bin").join(name)
        }
        _ => PathBuf::from(name),
    }
}

/// How long an `--accel auto` KVM boot may stay silent before it is retried under TCG.
const KVM_GRACE: Duration = Duration::from_secs(60);

fn start_vm(l: &QemuLaunch) -> Result<QemuVm, String> {
    let vm = qemu::launch_qemu(l).map_err(|e| format!("launch qemu: {e}"))?;
    eprintln!(
        "host-proxy: qemu pid {} ({}, {}) booting {}; guest console: {}",
        vm.pid(),
        vm.machine.name(),
        vm.accel,
        l.eif.display(),
        vm.console_log.display()
    );
    Ok(vm)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The bounds from the command line, checked.
fn limits(a: &RunArgs) -> Result<(FrontDoorLimits, BlobApiLimits), String> {
    for (flag, v) in [
        ("--max-connections", a.max_connections),
        ("--max-upstream", a.max_upstream),
        ("--max-blob-connections", a.max_blob_connections),
        ("--max-peers", a.max_peers),
        ("--handshake-timeout", a.handshake_timeout as usize),
        ("--idle-timeout", a.idle_timeout as usize),
        ("--upstream-wait", a.upstream_wait as usize),
    ] {
        if v == 0 {
            return Err(format!("{flag} must be at least 1"));
        }
    }
    if !(a.rate.is_finite() && a.rate > 0.0) {
        return Err("--rate must be a positive number".into());
    }
    let front = FrontDoorLimits {
        max_connections: a.max_connections,
        handshake_timeout: Duration::from_secs(a.handshake_timeout),
        idle_timeout: Duration::from_secs(a.idle_timeout),
        max_upstream: a.max_upstream,
        upstream_wait: Duration::from_secs(a.upstream_wait),
    };
    let blob = BlobApiLimits {
        max_connections: a.max_blob_connections,
        first_byte_timeout: Duration::from_secs(a.handshake_timeout),
        idle_timeout: Duration::from_secs(a.idle_timeout),
    };
    Ok((front, blob))
}

/// Descriptors needed besides the capped connections (listeners, the store, the log,
/// the enclave services, the launcher's pipes).
const FD_RESERVE: u64 = 128;

/// Raise the soft open-file limit to the hard one; the limit now in force.
#[allow(unsafe_code)]
fn raise_fd_limit() -> Result<u64, String> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// The fewest front-door connections worth running with.
const MIN_FRONT_CONNECTIONS: u64 = 64;

/// Make the caps fit the open-file limit: if the descriptors could run out first,
/// `accept` would fail for everyone, the owner included, instead of the cap refusing the
/// flood. The front door's cap is lowered to fit (with a warning); below
/// `MIN_FRONT_CONNECTIONS` the proxy does not start.
fn fit_fd_limit(front: &mut FrontDoorLimits, blob: &BlobApiLimits) -> Result<(), String> {
    let limit = raise_fd_limit()?;
    let others = (front.max_upstream + blob.max_connections) as u64 + FD_RESERVE;
    let fits = limit.saturating_sub(others);
    if front.max_connections as u64 <= fits {
        return Ok(());
    }
    if fits < MIN_FRONT_CONNECTIONS {
        return Err(format!(
            "the open-file limit ({limit}) leaves room for {fits} front-door connections: raise it (ulimit -n) or lower --max-blob-connections or --max-upstream"
        ));
    }
    eprintln!(
        "host-proxy: warning: the open-file limit ({limit}) fits {fits} front-door connections, not --max-connections {}; using {fits} (raise ulimit -n for more)",
        front.max_connections
    );
    front.max_connections = fits as usize;
    Ok(())
}

/// Every 10 s, one line of what each listener turned away (if anything changed).
async fn log_counters(front: Arc<FrontDoor>, blob: Arc<BlobApi>) {
    let mut last = String::new();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let now =
            format!("front door: {}; blob API: {}", counters_line(&front.counters), counters_line(&blob.counters));
        if now != last {
            eprintln!("host-proxy: {now}");
            last = now;
        }
    }
}

fn counters_line(c: &Counters) -> String {
    let s = c.summary();
    if s.is_empty() {
        "nothing".into()
    } else {
        s
    }
}

fn run(a: RunArgs) -> Result<(), String> {
    if a.launch != "process" && a.launch != "qemu" {
        return Err(format!("launcher {:?} is not available in this build; use --launch process or qemu", a.launch));
    }
    let (mut front_limits, blob_limits) = limits(&a)?;
    fit_fd_limit(&mut front_limits, &blob_limits)?;
    // A few workers whatever the load: connections are tasks, not threads. The blocking
    // pool (store I/O, connects to the enclave) is bounded too.
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(8)
        .thread_name("host-proxy-io")
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let _in_runtime = runtime.enter();
    let policy_bytes = Arc::new(std::fs::read(&a.policy).map_err(|e| format!("policy {}: {e}", a.policy.display()))?);
    let store = Arc::new(BlobStore::open(&a.store, a.max_blob).map_err(|e| e.to_string())?);
    let run_dir = a.store.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    let run_dir = run_dir.canonicalize().map_err(|e| e.to_string())?;

    // Where the enclave reaches our services, and where we reach the enclave.
    let (host_ep, enclave_ep) = if a.launch == "qemu" {
        let uds = qemu::uds_path(&run_dir);
        (
            Endpoint::Unix(vhost_uds::guest_port_path(&uds, a.qemu.host_port)),
            Endpoint::VsockUds { path: uds, port: a.qemu.guest_port },
        )
    } else {
        let _ = std::fs::remove_file(run_dir.join("enclave.sock"));
        (Endpoint::Unix(run_dir.join("host.sock")), Endpoint::Unix(run_dir.join("enclave.sock")))
    };

    let services_listener = Listener::bind(&host_ep).map_err(|e| format!("bind {host_ep}: {e}"))?;
    let front = AsyncListener::bind(&a.front_door).map_err(|e| format!("bind {}: {e}", a.front_door))?;
    let blobs = AsyncListener::bind(&a.blob_api).map_err(|e| format!("bind {}: {e}", a.blob_api))?;
    let front_ep = front.local_endpoint().map_err(|e| e.to_string())?;
    let blob_ep = blobs.local_endpoint().map_err(|e| e.to_string())?;

    let s = store.clone();
    let p = policy_bytes.clone();
    std::thread::spawn(move || services::serve_enclave(services_listener, s, p));
    let blob_api = BlobApi::new(blob_limits, store.clone());
    runtime.spawn(blob_api.clone().serve(blobs));

    if a.launch != "process" && !a.enclave_arg.is_empty() {
        return Err("--enclave-arg applies to --launch process only (an image's arguments are measured)".into());
    }
    let machine: qemu::QemuMachine = a.qemu.qemu_machine.parse().map_err(|e: qemu::QemuError| e.to_string())?;
    let mut qemu_launch = (a.launch == "qemu").then(|| {
        let q = &a.qemu;
        QemuLaunch {
            eif: q.eif.clone(),
            eif_build: q.eif_build.clone().unwrap_or_else(|| sibling_or_path("eif-build")),
            qemu: q.qemu_bin.clone(),
            backend: q.vhost_vsock_bin.clone().unwrap_or_else(|| on_path_or_cargo_bin("vhost-device-vsock")),
            work_dir: run_dir.clone(),
            guest_cid: q.guest_cid,
            memory_mib: q.memory_mib,
            accel: q.accel.clone(),
            machine,
            platform: a.platform.clone(),
            listen_port: q.guest_port,
            host_port: q.host_port,
        }
    });
    let mut enclave = match &qemu_launch {
        Some(l) => Enclave::Qemu(start_vm(l)?),
        None => {
            let enclave_bin = a.enclave_bin.clone().ok_or("--enclave-bin is required with --launch process")?;
            Enclave::Process(
                launch_process(&ProcessLaunch {
                    enclave_bin,
                    platform: a.platform.clone(),
                    policy: a.policy.clone(),
                    listen: enclave_ep.clone(),
                    host: host_ep,
                    extra_args: a.enclave_arg.clone(),
                })
                .map_err(|e| format!("launch enclave-app: {e}"))?,
            )
        }
    };
    let launched_at = SystemTime::now();

    // Ready once the enclave accepts connections (or fail if it died).
    let timeout = Duration::from_secs(a.boot_timeout.unwrap_or(if a.launch == "qemu" { 600 } else { 60 }));
    let mut start = std::time::Instant::now();
    loop {
        // /dev/kvm can accept VMs and still fail to run this guest (nested or partial
        // KVM). With --accel auto, a KVM boot that dies or is silent for KVM_GRACE
        // seconds is retried once under TCG.
        let died = enclave.exited();
        if let (Some(l), Enclave::Qemu(vm)) = (&mut qemu_launch, &mut enclave) {
            if vm.accel == "kvm" && l.accel == "auto" && (died.is_some() || start.elapsed() > KVM_GRACE) {
                let why = died.unwrap_or_else(|| format!("no answer after {} s", KVM_GRACE.as_secs()));
                eprintln!("host-proxy: KVM boot failed ({}); retrying under TCG", why.lines().next().unwrap_or(""));
                vm.kill();
                l.accel = "tcg".into();
                *vm = start_vm(l)?;
                start = std::time::Instant::now();
                continue;
            }
        }
        if let Some(why) = died {
            return Err(format!("enclave died during boot: {why}"));
        }
        if Stream::connect(&enclave_ep).is_ok() {
            break;
        }
        if start.elapsed() > timeout {
            return Err(format!("the enclave did not start listening within {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(if a.launch == "qemu" { 200 } else { 50 }));
    }
    let ready_at = SystemTime::now();
    let limiter = RateLimiter::new(a.rate, a.rate * 4.0, a.max_peers);
    let front_door = FrontDoor::new(front_limits, enclave_ep.clone(), limiter);
    runtime.spawn(front_door.clone().serve(front));
    runtime.spawn(log_counters(front_door.clone(), blob_api.clone()));

    if let Some(path) = &a.ready_file {
        let mut state = serde_json::json!({
            "front_door": front_ep.to_string(),
            "blob_api": blob_ep.to_string(),
            "enclave_pid": enclave.pid(),
            "launcher": a.launch,
            "launched_at_unix_ms": unix_ms(launched_at),
            "ready_at_unix_ms": unix_ms(ready_at),
        });
        if let Enclave::Qemu(vm) = &enclave {
            state["qemu_pid"] = vm.pid().into();
            state["accel"] = vm.accel.into();
            state["machine"] = vm.machine.name().into();
            state["console_log"] = vm.console_log.display().to_string().into();
            state["launched_at_unix_ms"] = unix_ms(vm.started_at).into();
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, state.to_string()).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
    }
    let boot = match &enclave {
        Enclave::Qemu(vm) => format!(" (qemu boot to vsock: {:.1} s)", vm.started.elapsed().as_secs_f64()),
        Enclave::Process(_) => String::new(),
    };
    eprintln!("host-proxy: ready: front door {front_ep}, blob API {blob_ep}, enclave pid {}{boot}", enclave.pid());

    // Stop the enclave with us on SIGINT/SIGTERM; exit if the enclave dies.
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| e.to_string())?;
    loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            eprintln!(
                "host-proxy: stopping; front door: {}; blob API: {}",
                counters_line(&front_door.counters),
                counters_line(&blob_api.counters)
            );
            return Ok(());
        }
        if let Some(why) = enclave.exited() {
            return Err(why);
        }
    }
}
