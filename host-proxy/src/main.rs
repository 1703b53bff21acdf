//! host-proxy: launch the enclave and run the untrusted host services.

use clap::{Parser, Subcommand};
use host_proxy::blobstore::BlobStore;
use host_proxy::launcher::{launch_process, ProcessLaunch};
use host_proxy::ratelimit::RateLimiter;
use host_proxy::services;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use transport::{Endpoint, Listener, Stream};

#[derive(Parser)]
#[command(about = "cleanroom host proxy (untrusted): launcher, relay, blob store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Launch the enclave and serve the front door, blob API and enclave services.
    Run {
        /// process (local enclave-app, simulated platform). qemu and nitro come with the image work.
        #[arg(long, default_value = "process")]
        launch: String,
        #[arg(long)]
        enclave_bin: PathBuf,
        #[arg(long, default_value = "simulated")]
        platform: String,
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
        /// Write {"front_door","blob_api","enclave_pid"} here once the enclave answers.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Cmd::Run { launch, enclave_bin, platform, policy, front_door, blob_api, store, max_blob, rate, ready_file } =
        Cli::parse().cmd;
    if launch != "process" {
        eprintln!("host-proxy: launcher {launch:?} is not available in this build; use --launch process");
        return ExitCode::FAILURE;
    }
    match run(enclave_bin, platform, policy, front_door, blob_api, store, max_blob, rate, ready_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("host-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    enclave_bin: PathBuf,
    platform: String,
    policy: PathBuf,
    front_door: Endpoint,
    blob_api: Endpoint,
    store_dir: PathBuf,
    max_blob: usize,
    rate: f64,
    ready_file: Option<PathBuf>,
) -> Result<(), String> {
    let store = Arc::new(BlobStore::open(&store_dir, max_blob).map_err(|e| e.to_string())?);
    let run_dir = store_dir.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    let host_ep = Endpoint::Unix(run_dir.join("host.sock"));
    let enclave_ep = Endpoint::Unix(run_dir.join("enclave.sock"));
    let _ = std::fs::remove_file(run_dir.join("enclave.sock"));

    let services_listener = Listener::bind(&host_ep).map_err(|e| format!("bind {host_ep}: {e}"))?;
    let front = Listener::bind(&front_door).map_err(|e| format!("bind {front_door}: {e}"))?;
    let blobs = Listener::bind(&blob_api).map_err(|e| format!("bind {blob_api}: {e}"))?;
    let front_ep = front.local_endpoint().map_err(|e| e.to_string())?;
    let blob_ep = blobs.local_endpoint().map_err(|e| e.to_string())?;

    let mut child = launch_process(&ProcessLaunch {
        enclave_bin,
        platform,
        policy,
        listen: enclave_ep.clone(),
        host: host_ep,
    })
    .map_err(|e| format!("launch enclave-app: {e}"))?;

    let s = store.clone();
    std::thread::spawn(move || services::serve_enclave(services_listener, s));
    let s = store.clone();
    std::thread::spawn(move || services::serve_blob_api(blobs, s));

    // Ready once the enclave accepts connections (or fail if it died).
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("enclave-app exited during boot: {status}"));
        }
        if Stream::connect(&enclave_ep).is_ok() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err("enclave-app did not start listening within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let limiter = Arc::new(Mutex::new(RateLimiter::new(rate, rate * 4.0)));
    let enclave_for_relay = enclave_ep.clone();
    std::thread::spawn(move || services::serve_front_door(front, enclave_for_relay, limiter));

    if let Some(path) = ready_file {
        let state = serde_json::json!({
            "front_door": front_ep.to_string(),
            "blob_api": blob_ep.to_string(),
            "enclave_pid": child.pid(),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, state.to_string()).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    }
    eprintln!("host-proxy: ready: front door {front_ep}, blob API {blob_ep}, enclave pid {}", child.pid());

    // Stop the enclave with us on SIGINT/SIGTERM; exit if the enclave dies.
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| e.to_string())?;
    loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            eprintln!("host-proxy: stopping");
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("enclave-app exited: {status}"));
        }
    }
}
