//! enclave-app: the supervisor. In an enclave image it is `/init` (PID 1): it then does
//! the init duties first and reads its arguments from the kernel command line (see
//! `enclave_app::init`). In development it runs as a local process with the simulated
//! platform.

use clap::Parser;
use enclave_app::channels::{self, ChannelLimits};
use enclave_app::host::HostClient;
use enclave_app::init;
use enclave_app::service::Enclave;
use enclave_app::workers::{self, Workers};
use protocol::policy::Policy;
use std::process::ExitCode;
use std::time::Duration;
use transport::{Endpoint, Listener};

#[derive(Parser)]
#[command(
    about = "cleanroom enclave supervisor",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    /// Run as one enclave of a sharded job instead (docs/scale-out.md).
    #[command(subcommand)]
    role: Option<ScaleOut>,
    /// nitro | snp | simulated. No silent fallback: a missing device is an error.
    #[arg(long)]
    platform: Option<protocol::platform::Platform>,
    /// Where clients reach the attested TLS channel (through the host proxy).
    #[arg(long, required = true)]
    listen: Option<Endpoint>,
    /// The host proxy's service endpoint (blobs, audit log).
    #[arg(long, required = true)]
    host: Option<Endpoint>,
    /// The owner's policy (TOML). Its digest is measured into PCR16 at boot.
    #[arg(long, required_unless_present = "policy_from_host", conflicts_with = "policy_from_host")]
    policy: Option<std::path::PathBuf>,
    /// Fetch the policy from the host proxy instead (safe: its digest is measured into
    /// PCR16 and attested, so the host cannot substitute one unnoticed).
    #[arg(long)]
    policy_from_host: bool,
    /// Channels served at once; one more gets `too_many_channels` and is closed.
    #[arg(long, default_value_t = ChannelLimits::default().max_channels)]
    max_channels: usize,
    /// Seconds from accept to the end of a channel's TLS handshake.
    #[arg(long, default_value_t = ChannelLimits::default().handshake_timeout.as_secs())]
    handshake_timeout: u64,
    /// Seconds for each request to arrive, counted from the previous reply. A running
    /// job is not idle time: its reply is written at its deadline.
    #[arg(long, default_value_t = ChannelLimits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Worker processes a job scores (and trains) on; 0 = one per vCPU. The release is the
    /// same for any count.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Simulated platform only: draw every job's noise from this seed (64 hex digits), so
    /// a test can compare two enclaves' releases bit for bit (a sharded job's with a
    /// single enclave's). Refused on hardware; every result says it.
    #[arg(long)]
    insecure_noise_seed: Option<String>,
}

/// A shard of a sharded job (docs/scale-out.md). Its coordinator is the ordinary
/// supervisor, to which the owner names the shards of a granted query.
#[derive(clap::Subcommand)]
enum ScaleOut {
    /// Hold one range of privacy units: attest, read only those units, report to the
    /// coordinator over the attested channel at the job's reply instant.
    Shard(RoleArgs),
}

#[derive(clap::Args)]
struct RoleArgs {
    #[arg(long)]
    platform: protocol::platform::Platform,
    /// Where the coordinator (and the owner, to attest it) connects.
    #[arg(long)]
    listen: Endpoint,
    /// The host proxy's service endpoint (blobs).
    #[arg(long)]
    host: Endpoint,
    /// The owner's policy (TOML), measured into PCR16 at boot.
    #[arg(long)]
    policy: std::path::PathBuf,
}

fn main() -> ExitCode {
    // A worker process of a job (enclave_app::workers): the supervisor's pipes, nothing else.
    if std::env::args_os().nth(1).is_some_and(|a| a == workers::WORKER_ARG) {
        use std::os::fd::AsFd;
        // Replies go out unbuffered, a frame a write: stdout's line buffer would cut each
        // one at its last newline byte, and wake the supervisor's reader once per piece.
        let Ok(stdout) = std::io::stdout().as_fd().try_clone_to_owned() else { return ExitCode::FAILURE };
        let (mut input, mut output) = (std::io::stdin().lock(), std::fs::File::from(stdout));
        // Its stderr is closed by the supervisor (it may hold unit data): a failure is
        // the exit status and the closed pipe, nothing printed.
        return match workers::child::serve(&mut input, &mut output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    if init::is_pid1() {
        // PID 1 must never exit: every failure ends in init::halt.
        let cmdline = init::early_init().unwrap_or_else(|e| init::halt(&e.to_string()));
        let args = Args::try_parse_from(init::supervisor_args(&cmdline)).unwrap_or_else(|e| init::halt(&e.to_string()));
        match std::panic::catch_unwind(|| run(args)) {
            Ok(Ok(())) => init::halt("the supervisor returned"),
            Ok(Err(e)) => init::halt(&format!("enclave-app: {e}")),
            Err(_) => init::halt("the supervisor panicked"),
        }
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enclave-app: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if let Some(role) = args.role {
        return run_scale_out(role);
    }
    let (Some(kind), Some(listen), Some(host)) = (args.platform, args.listen, args.host) else {
        return Err("--platform, --listen and --host are required".into());
    };
    if args.max_channels == 0 || args.handshake_timeout == 0 || args.idle_timeout == 0 {
        return Err("--max-channels, --handshake-timeout and --idle-timeout must be at least 1".into());
    }
    let limits = ChannelLimits {
        max_channels: args.max_channels,
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let host = HostClient::new(host);
    let text = match &args.policy {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("policy {}: {e}", path.display()))?,
        None => {
            let bytes = host.get_policy().map_err(|e| format!("policy from host: {e}"))?;
            String::from_utf8(bytes).map_err(|_| "policy from host: not UTF-8 text".to_string())?
        }
    };
    let policy = Policy::from_toml(&text).map_err(|e| format!("policy: {e}"))?;
    let platform = enclave_app::platform::open(kind).map_err(|e| e.to_string())?;
    let simulated = platform.simulated();
    let count = if args.workers == 0 { workers::available() } else { args.workers };
    let plan = match std::env::current_exe() {
        Ok(exe) => Workers::processes(exe, count),
        Err(e) => {
            eprintln!("enclave-app: cannot find its own binary ({e}): jobs run on one worker");
            Workers::InProcess
        }
    };
    let noise_seed = args.insecure_noise_seed.as_deref().map(parse_seed).transpose()?;
    if noise_seed.is_some() && !simulated {
        return Err("--insecure-noise-seed is accepted on the simulated platform only".into());
    }
    let enclave = Enclave::boot_with(platform, policy, host, plan.clone(), noise_seed).map_err(|e| e.to_string())?;
    let listener = Listener::bind(&listen).map_err(|e| e.to_string())?;
    let bound = listener.local_endpoint().map_err(|e| e.to_string())?;
    eprintln!(
        "enclave-app: platform={}{}{} policy={} key={} workers={} listening on {bound}",
        kind,
        if simulated { " (SIMULATED: not hardware-backed, insecure)" } else { "" },
        if noise_seed.is_some() { " (INSECURE FIXED NOISE: releases protect no one)" } else { "" },
        enclave.policy_digest(),
        hex_short(&enclave.public_key()),
        plan.count(),
    );
    channels::serve_listener(enclave, listener, limits);
    Ok(())
}

fn run_scale_out(role: ScaleOut) -> Result<(), String> {
    use enclave_app::scale_out::{peer::Identity, shard::ShardService};
    let ScaleOut::Shard(common) = role;
    let text =
        std::fs::read_to_string(&common.policy).map_err(|e| format!("policy {}: {e}", common.policy.display()))?;
    let policy = Policy::from_toml(&text).map_err(|e| format!("policy: {e}"))?;
    let platform = enclave_app::platform::open(common.platform).map_err(|e| e.to_string())?;
    let id = Identity::boot(platform, policy).map_err(|e| e.to_string())?;
    let host = HostClient::new(common.host);
    let listener = Listener::bind(&common.listen).map_err(|e| e.to_string())?;
    let bound = listener.local_endpoint().map_err(|e| e.to_string())?;
    let s = ShardService::new(id, host)?;
    eprintln!(
        "enclave-app shard: platform={}{} policy={} key={} listening on {bound}",
        common.platform,
        if s.identity().simulated() { " (SIMULATED: not hardware-backed, insecure)" } else { "" },
        s.identity().policy_digest(),
        hex::encode(s.identity().public_key()),
    );
    s.serve(listener);
    Ok(())
}

fn parse_seed(h: &str) -> Result<[u8; 32], String> {
    hex::decode(h)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| "--insecure-noise-seed: 64 hex digits".into())
}

fn hex_short(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}
