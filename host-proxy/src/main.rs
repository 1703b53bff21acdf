//! host-proxy: launch the enclave and run the untrusted host services.

use clap::{Parser, Subcommand};
use host_proxy::aio::AsyncListener;
use host_proxy::blobapi::BlobApi;
use host_proxy::blobstore::BlobStore;
use host_proxy::frontdoor::FrontDoor;
use host_proxy::launcher::{launch_process, Launched, ProcessLaunch};
use host_proxy::limits::{BlobApiLimits, Counters, FrontDoorLimits};
use host_proxy::nitro::{self, Decision, EnclaveCid, NitroCli, NitroConfig, RestartPolicy, Restarts};
use host_proxy::qemu::{self, QemuLaunch, QemuVm};
use host_proxy::ratelimit::RateLimiter;
use host_proxy::services;
use host_proxy::snp::{self, SnpLaunch, SnpVm};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// process (local enclave-app), qemu (boot the EIF's kernel + initramfs in QEMU with
    /// a real virtio-vsock device), nitro (the EIF on AWS Nitro Enclaves, through
    /// nitro-cli) or snp (the EIF's kernel + initramfs as an SEV-SNP guest with kernel
    /// hashes; needs an SNP host).
    #[arg(long, default_value = "process")]
    launch: String,
    /// enclave-app binary (process launcher).
    #[arg(long, required_if_eq("launch", "process"))]
    enclave_bin: Option<PathBuf>,
    /// Platform of a process or qemu enclave. nitro: the image's measured command line
    /// decides (nitro); snp: always snp.
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
    /// Seconds to wait for the enclave to accept connections (default: 60, qemu and snp:
    /// 600, nitro: 300).
    #[arg(long)]
    boot_timeout: Option<u64>,
    #[command(flatten)]
    qemu: QemuArgs,
    #[command(flatten)]
    nitro: NitroArgs,
    #[command(flatten)]
    snp: SnpArgs,
}

#[derive(clap::Args)]
struct NitroArgs {
    /// nitro: the nitro-cli binary.
    #[arg(long, default_value = "nitro-cli")]
    nitro_cli: PathBuf,
    /// nitro, snp: vCPUs of the enclave (snp: measured, the owner recomputes with it).
    #[arg(long, default_value_t = 2)]
    cpu_count: u32,
    /// nitro: the enclave's name, so one left behind by a killed proxy is found.
    #[arg(long, default_value = "cleanroom")]
    enclave_name: String,
    /// nitro: start the enclave in debug mode and copy its console to STORE/run/console.log.
    /// Nitro then reports all-zero PCRs, so the owner's verification refuses the enclave and
    /// releases nothing to it: development only.
    #[arg(long)]
    debug_mode: bool,
    /// nitro: never (an enclave that stops ends the proxy) or on-failure (start it again,
    /// at most --max-restarts times; each restart is a new attestation: owners must attest
    /// and release the data key again).
    #[arg(long, default_value = "never")]
    restart: String,
    /// nitro: restarts allowed over the proxy's life with --restart on-failure.
    #[arg(long, default_value_t = 3)]
    max_restarts: u32,
    /// nitro: seconds before the first restart, doubled for each next one (at most 300).
    #[arg(long, default_value_t = 5)]
    restart_backoff: u64,
    /// TESTS ONLY (nitro): relay to this endpoint instead of the enclave's vsock CID, for
    /// the stand-in nitro-cli, which starts no enclave. Harmless to the owner, who trusts
    /// only the attestation, but never useful in production.
    #[arg(long, hide = true)]
    test_relay_to: Option<Endpoint>,
    /// TESTS ONLY (nitro): serve the enclave's host services here instead of vsock.
    #[arg(long, hide = true)]
    test_services_on: Option<Endpoint>,
}

#[derive(clap::Args)]
struct SnpArgs {
    /// snp: an OVMF built for SEV-SNP with kernel hashes (edk2 AmdSevX64); measured.
    #[arg(long)]
    ovmf: Option<PathBuf>,
    /// snp: QEMU vCPU type (EPYC-v4, EPYC-Milan, EPYC-Genoa, …); measured.
    #[arg(long, default_value = "EPYC-v4")]
    vcpu_type: String,
    /// snp: guest policy (sev-snp-guest,policy=); in every report. DEBUG and MIGRATE_MA
    /// are refused.
    #[arg(long, default_value = "0x30000")]
    snp_policy: String,
    /// snp: the SEV_FEATURES this host's KVM sets in each VMSA (measured; 0x1 = SNPActive
    /// only, as current kernels do).
    #[arg(long, default_value = "0x1")]
    snp_guest_features: String,
    /// snp: C-bit position (CPUID 0x8000001F EBX[5:0]; 51 on EPYC 7003/9004).
    #[arg(long, default_value_t = 51)]
    snp_cbitpos: u32,
    /// snp: physical address bits lost to encryption (CPUID 0x8000001F EBX[11:6]).
    #[arg(long, default_value_t = 1)]
    snp_reduced_phys_bits: u32,
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
    /// Nitro), q35 (vsock on virtio-pci) or nitro-enclave (QEMU's EMULATED Nitro Enclave:
    /// the whole EIF, an emulated NSM, unsigned attestation; needs `make nitro-emulator`
    /// and --qemu-bin target/nitro-emulator/bin/qemu-system-x86_64, --platform nitro).
    #[arg(long, default_value = "microvm")]
    qemu_machine: String,
    /// qemu, snp, nitro: the enclave's vsock CID (nitro: asked for, then checked).
    #[arg(long, default_value_t = 16)]
    guest_cid: u32,
    /// qemu, snp, nitro: the enclave's memory in MiB.
    #[arg(long, default_value_t = 512)]
    memory_mib: u32,
    /// qemu, snp, nitro: guest vsock port of the enclave's TLS channel.
    #[arg(long, default_value_t = 5000)]
    guest_port: u32,
    /// qemu, snp, nitro: host vsock port of the enclave services (the guest dials CID 2 on
    /// it; on Nitro, the parent's CID 3).
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
    Nitro(nitro::Watched),
    Snp(SnpVm),
}

impl Enclave {
    /// The local process that holds the enclave (nitro: the tool's enclave process).
    fn pid(&self) -> u32 {
        match self {
            Enclave::Process(p) => p.pid(),
            Enclave::Qemu(q) => q.pid(),
            Enclave::Nitro(n) => n.enclave.run.process_id,
            Enclave::Snp(v) => v.pid(),
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
            Enclave::Nitro(n) => n.stopped(),
            Enclave::Snp(v) => match v.try_wait() {
                Ok(Some(s)) => Some(format!("qemu (snp) exited: {s}")),
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

/// What only one launcher accepts, refused elsewhere rather than silently ignored.
fn check_launcher_flags(a: &RunArgs) -> Result<(), String> {
    if !["process", "qemu", "nitro", "snp"].contains(&a.launch.as_str()) {
        return Err(format!("unknown launcher {:?}: use --launch process, qemu, nitro or snp", a.launch));
    }
    if a.launch != "process" && !a.enclave_arg.is_empty() {
        return Err("--enclave-arg applies to --launch process only (an image's arguments are measured)".into());
    }
    let n = &a.nitro;
    if a.launch != "nitro" {
        for (flag, given) in [
            ("--debug-mode", n.debug_mode),
            ("--restart", n.restart != "never"),
            ("--test-relay-to", n.test_relay_to.is_some()),
            ("--test-services-on", n.test_services_on.is_some()),
        ] {
            if given {
                return Err(format!("{flag} applies to --launch nitro only"));
            }
        }
    }
    if a.launch != "snp" && a.snp.ovmf.is_some() {
        return Err("--ovmf applies to --launch snp only".into());
    }
    Ok(())
}

/// The Nitro launch the flags describe.
fn nitro_starter(a: &RunArgs, run_dir: &std::path::Path, relay: Endpoint) -> Result<nitro::Starter, String> {
    let n = &a.nitro;
    let config = NitroConfig {
        eif: a.qemu.eif.clone(),
        cpu_count: n.cpu_count,
        memory_mib: u64::from(a.qemu.memory_mib),
        cid: EnclaveCid::new(u64::from(a.qemu.guest_cid)).map_err(|e| e.to_string())?,
        name: n.enclave_name.clone(),
        debug_mode: n.debug_mode,
    };
    config.check().map_err(|e| e.to_string())?;
    Ok(nitro::Starter {
        cli: NitroCli::new(n.nitro_cli.clone()),
        config,
        console_log: n.debug_mode.then(|| run_dir.join("console.log")),
        relay,
        boot_timeout: Duration::from_secs(a.boot_timeout.unwrap_or(300)),
    })
}

/// The SNP launch the flags describe: the image's parts, extracted, and the one
/// description that is both measured and booted.
fn snp_launch(a: &RunArgs, run_dir: &std::path::Path) -> Result<SnpLaunch, String> {
    let s = &a.snp;
    let ovmf = s.ovmf.clone().ok_or("--launch snp needs --ovmf (an AmdSev OVMF build; see docs/operations.md)")?;
    let features = s.snp_guest_features.trim();
    let guest_features = match features.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => features.parse(),
    }
    .map_err(|_| format!("--snp-guest-features {features:?} is not a number"))?;
    let vcpu_type = snp_measure::VcpuType::new(&s.vcpu_type).map_err(|e| format!("--vcpu-type: {e}"))?;
    let policy = snp_measure::GuestPolicy::parse(&s.snp_policy).map_err(|e| format!("--snp-policy: {e}"))?;
    let eif_build = a.qemu.eif_build.clone().unwrap_or_else(|| sibling_or_path("eif-build"));
    let image = qemu::extract_eif(&eif_build, &a.qemu.eif, &run_dir.join("image")).map_err(|e| format!("snp: {e}"))?;
    let guest = snp_measure::SnpGuest {
        ovmf,
        kernel: image.kernel,
        initrd: image.initrd,
        append: qemu::launch_cmdline(&image.cmdline, "snp", a.qemu.guest_port, a.qemu.host_port),
        vcpus: a.nitro.cpu_count,
        vcpu_type,
        policy,
        guest_features,
    };
    // Measured now, before any listener or process: firmware that cannot be measured is
    // refused here. (launch_snp measures again, so it is safe on its own too.)
    guest.measure().map_err(|e| snp::SnpError::from(e).to_string())?;
    let launch = SnpLaunch {
        guest,
        qemu: a.qemu.qemu_bin.clone(),
        memory_mib: a.qemu.memory_mib,
        guest_cid: a.qemu.guest_cid,
        console_log: run_dir.join("console.log"),
        cbitpos: s.snp_cbitpos,
        reduced_phys_bits: s.snp_reduced_phys_bits,
    };
    launch.check().map_err(|e| e.to_string())?;
    Ok(launch)
}

/// Write the ready file atomically (a reader never sees half of it).
fn write_state(path: &std::path::Path, state: &serde_json::Value) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, state.to_string()).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// What the ready file says about a Nitro enclave (rewritten after each restart).
fn nitro_state(state: &mut serde_json::Value, w: &nitro::Watched, restarts: u32) {
    let e = &w.enclave;
    state["enclave_id"] = e.id().as_str().into();
    state["enclave_cid"] = e.run.cid.into();
    state["enclave_state"] = "RUNNING".into();
    state["enclave_pid"] = e.run.process_id.into();
    state["cpu_count"] = e.run.cpu_count.into();
    state["memory_mib"] = e.run.memory_mib.into();
    state["restarts"] = restarts.into();
    state["debug_mode"] = e.config().debug_mode.into();
    if e.config().debug_mode {
        state["warning"] = nitro::DEBUG_WARNING.into();
    }
}

fn nitro_ready_line(w: &nitro::Watched) -> String {
    let e = &w.enclave;
    let debug = if e.config().debug_mode { format!("; {}", nitro::DEBUG_WARNING) } else { String::new() };
    format!(
        "nitro enclave {} RUNNING, CID {}, {} CPUs, {} MiB{debug}",
        e.id(),
        e.run.cid,
        e.run.cpu_count,
        e.run.memory_mib
    )
}

/// Sleep `d`, or less if asked to stop. True if asked to stop.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.load(Ordering::SeqCst)
}

fn run(a: RunArgs) -> Result<(), String> {
    check_launcher_flags(&a)?;
    let restart_policy =
        RestartPolicy::parse(&a.nitro.restart, a.nitro.max_restarts, Duration::from_secs(a.nitro.restart_backoff))
            .map_err(|e| e.to_string())?;
    let (mut front_limits, blob_limits) = limits(&a)?;
    fit_fd_limit(&mut front_limits, &blob_limits)?;
    // Stop cleanly on SIGINT/SIGTERM from the start: an enclave being launched is stopped
    // too (nitro: terminated), never left behind.
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst)).map_err(|e| e.to_string())?;
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
    let (host_ep, enclave_ep) = match a.launch.as_str() {
        "qemu" => {
            let uds = qemu::uds_path(&run_dir);
            (
                Endpoint::Unix(vhost_uds::guest_port_path(&uds, a.qemu.host_port)),
                Endpoint::VsockUds { path: uds, port: a.qemu.guest_port },
            )
        }
        "nitro" => {
            let cid = EnclaveCid::new(u64::from(a.qemu.guest_cid)).map_err(|e| e.to_string())?;
            (
                a.nitro.test_services_on.clone().unwrap_or_else(|| nitro::services_endpoint(a.qemu.host_port)),
                a.nitro.test_relay_to.clone().unwrap_or_else(|| nitro::relay_endpoint(cid, a.qemu.guest_port)),
            )
        }
        "snp" => (
            Endpoint::Vsock { cid: nitro::CID_ANY, port: a.qemu.host_port },
            Endpoint::Vsock { cid: a.qemu.guest_cid, port: a.qemu.guest_port },
        ),
        _ => {
            let _ = std::fs::remove_file(run_dir.join("enclave.sock"));
            (Endpoint::Unix(run_dir.join("host.sock")), Endpoint::Unix(run_dir.join("enclave.sock")))
        }
    };
    if a.nitro.test_relay_to.is_some() || a.nitro.test_services_on.is_some() {
        eprintln!("host-proxy: TEST MODE: relaying to {enclave_ep} and serving the enclave on {host_ep}, not vsock");
    }
    // Everything that can be refused is refused before the first listener or process.
    let nitro_starter = match a.launch.as_str() {
        "nitro" => Some(nitro_starter(&a, &run_dir, enclave_ep.clone())?),
        _ => None,
    };
    let snp_launch = match a.launch.as_str() {
        "snp" => Some(snp_launch(&a, &run_dir)?),
        _ => None,
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
    let mut restarts = Restarts::new(restart_policy);
    let launched_at = SystemTime::now();
    let mut enclave = if let Some(l) = &qemu_launch {
        Enclave::Qemu(start_vm(l)?)
    } else if let Some(starter) = &nitro_starter {
        if starter.config.debug_mode {
            eprintln!("host-proxy: {}", nitro::DEBUG_WARNING);
        }
        // Launched and waited for here: it must accept connections before the front door
        // opens, and it is terminated on every way out.
        Enclave::Nitro(nitro::Watched::new(starter.start(&|| stop.load(Ordering::SeqCst))?))
    } else if let Some(l) = &snp_launch {
        let vm = snp::launch_snp(l, &run_dir.join("qemu.log")).map_err(|e| e.to_string())?;
        let args: Vec<String> = l.guest.measure_args().iter().map(|s| s.to_string_lossy().into_owned()).collect();
        eprintln!(
            "host-proxy: snp: qemu pid {} booting {}; launch measurement {} (the owner recomputes it: snp-measure {})",
            vm.pid(),
            a.qemu.eif.display(),
            snp_measure::to_hex(&vm.measurement),
            args.join(" ")
        );
        Enclave::Snp(vm)
    } else {
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
    };

    // Ready once the enclave accepts connections (or fail if it died). The nitro launcher
    // has waited already.
    let vm_boot = a.launch == "qemu" || a.launch == "snp";
    let timeout = Duration::from_secs(a.boot_timeout.unwrap_or(if vm_boot { 600 } else { 60 }));
    let mut start = std::time::Instant::now();
    while !matches!(enclave, Enclave::Nitro(_)) {
        if stop.load(Ordering::SeqCst) {
            return Err("stopped while the enclave was booting".into());
        }
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
            // Name the image: a VM that dies at once usually could not load it.
            return Err(match &qemu_launch {
                Some(l) => format!("enclave died during boot of {}: {why}", l.eif.display()),
                None => format!("enclave died during boot: {why}"),
            });
        }
        if Stream::connect(&enclave_ep).is_ok() {
            break;
        }
        if start.elapsed() > timeout {
            return Err(format!("the enclave did not start listening within {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(if vm_boot { 200 } else { 50 }));
    }
    let ready_at = SystemTime::now();
    let limiter = RateLimiter::new(a.rate, a.rate * 4.0, a.max_peers);
    let front_door = FrontDoor::new(front_limits, enclave_ep.clone(), limiter);
    runtime.spawn(front_door.clone().serve(front));
    runtime.spawn(log_counters(front_door.clone(), blob_api.clone()));

    let mut state = serde_json::json!({
        "front_door": front_ep.to_string(),
        "blob_api": blob_ep.to_string(),
        "enclave_pid": enclave.pid(),
        "launcher": a.launch,
        "launched_at_unix_ms": unix_ms(launched_at),
        "ready_at_unix_ms": unix_ms(ready_at),
    });
    match &enclave {
        Enclave::Qemu(vm) => {
            state["qemu_pid"] = vm.pid().into();
            state["accel"] = vm.accel.into();
            state["machine"] = vm.machine.name().into();
            state["console_log"] = vm.console_log.display().to_string().into();
            state["launched_at_unix_ms"] = unix_ms(vm.started_at).into();
        }
        Enclave::Nitro(w) => nitro_state(&mut state, w, 0),
        Enclave::Snp(vm) => {
            state["qemu_pid"] = vm.pid().into();
            state["snp_measurement"] = snp_measure::to_hex(&vm.measurement).into();
            state["console_log"] = run_dir.join("console.log").display().to_string().into();
        }
        Enclave::Process(_) => {}
    }
    if let Some(path) = &a.ready_file {
        write_state(path, &state)?;
    }
    let boot = match &enclave {
        Enclave::Qemu(vm) => format!(" (qemu boot to vsock: {:.1} s)", vm.started.elapsed().as_secs_f64()),
        Enclave::Snp(vm) => format!(" (snp boot to vsock: {:.1} s)", vm.started.elapsed().as_secs_f64()),
        Enclave::Nitro(w) => format!("; {}", nitro_ready_line(w)),
        Enclave::Process(_) => String::new(),
    };
    eprintln!("host-proxy: ready: front door {front_ep}, blob API {blob_ep}, enclave pid {}{boot}", enclave.pid());

    // Stop the enclave with us on SIGINT/SIGTERM; exit if the enclave dies (nitro: or
    // restart it, if the policy says so).
    loop {
        if sleep_unless_stopped(Duration::from_millis(200), &stop) {
            eprintln!(
                "host-proxy: stopping; front door: {}; blob API: {}",
                counters_line(&front_door.counters),
                counters_line(&blob_api.counters)
            );
            // Dropping the enclave stops it (nitro: terminate-enclave).
            drop(enclave);
            return Ok(());
        }
        let Some(why) = enclave.exited() else { continue };
        let (Enclave::Nitro(_), Some(starter)) = (&enclave, &nitro_starter) else {
            return Err(why);
        };
        match restarts.after_failure() {
            Decision::GiveUp { restarts_done } => {
                return Err(format!("{why} (restart policy {}: {restarts_done} restarts done)", a.nitro.restart));
            }
            Decision::Restart { after, n } => {
                eprintln!(
                    "host-proxy: {why}; restart {n} of {} in {} s. The new enclave is a new attestation: \
                     grants issued to the old one cannot be spent, jobs in flight failed, owners must attest \
                     and release the data key again (the privacy budget is unaffected: the owner's ledger holds it)",
                    a.nitro.max_restarts,
                    after.as_secs()
                );
                state["enclave_state"] = "RESTARTING".into();
                if let Some(path) = &a.ready_file {
                    write_state(path, &state)?;
                }
                // The old one is terminated first, whatever state it is in.
                drop(enclave);
                if sleep_unless_stopped(after, &stop) {
                    return Ok(());
                }
                let w = nitro::Watched::new(starter.start(&|| stop.load(Ordering::SeqCst))?);
                nitro_state(&mut state, &w, n);
                state["ready_at_unix_ms"] = unix_ms(SystemTime::now()).into();
                if let Some(path) = &a.ready_file {
                    write_state(path, &state)?;
                }
                eprintln!("host-proxy: ready again: {}", nitro_ready_line(&w));
                enclave = Enclave::Nitro(w);
            }
        }
    }
}
