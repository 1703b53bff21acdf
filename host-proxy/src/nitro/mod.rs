//! `--launch nitro`: run the enclave image on AWS Nitro Enclaves through `nitro-cli`.
//!
//! - [`cli`]: the tool's arguments and answers (pure; the JSON shapes its source defines);
//! - [`restart`]: the restart policy (pure);
//! - [`launch`]: running the tool; the enclave handle that terminates on drop.
//!
//! The relay: the image's measured command line makes enclave-app listen on vsock port
//! [`ENCLAVE_PORT`] (any CID) and reach the host at the parent's CID 3, port
//! [`HOST_PORT`]. The proxy asks for a fixed enclave CID, checks that `run-enclave` and
//! `describe-enclaves` report that CID, and relays the front door to `vsock:CID:5000`.
//!
//! Trust: all of this is host code run by the untrusted operator. Nothing here is evidence
//! for the owner, who trusts only the attestation document (PCRs it recomputed with
//! eif-build, PCR16 = its policy, the enclave's key). What this code owes everyone is to
//! fail safe: a clear error naming the step, no front door before the enclave runs as
//! asked, and no enclave left running when it stops.
//!
//! Not covered without hardware: the tests run a stand-in `nitro-cli`
//! (`tests/fixtures/nitro-cli-standin`) that records its arguments and answers in the
//! documented shapes, and relay to a local socket instead of vsock. They cover argument
//! construction, the lifecycle and error handling; a real enclave, its vsock, its console
//! and its attestation run only on a Nitro instance.

pub mod cli;
pub mod launch;
pub mod restart;

pub use cli::{EnclaveCid, EnclaveId, EnclaveState, NitroConfig};
pub use launch::{launch, NitroCli, NitroEnclave, NitroError};
pub use restart::{Decision, RestartPolicy, Restarts};

use std::path::PathBuf;
use std::time::{Duration, Instant};
use transport::{Endpoint, Stream};

/// The vsock port enclave-app's attested TLS channel listens on (`cleanroom.listen` default).
pub const ENCLAVE_PORT: u32 = 5000;
/// The vsock port of the host services the enclave dials at CID 3 (`cleanroom.host` default).
pub const HOST_PORT: u32 = 5001;
/// VMADDR_CID_ANY: the proxy's services accept from any CID.
pub const CID_ANY: u32 = u32::MAX;

/// How often the proxy asks `describe-enclaves` whether the enclave still runs.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Said in every output of a debug-mode launch.
pub const DEBUG_WARNING: &str = "DEBUG MODE: Nitro reports all-zero PCRs for a debug-mode enclave, so the owner's \
verification refuses it and no data key will be released to it; the host can read its console. Development only.";

/// Where the front door relays to: the enclave's TLS channel, vsock `CID:port`
/// ([`ENCLAVE_PORT`] unless the image says otherwise).
pub fn relay_endpoint(cid: EnclaveCid, port: u32) -> Endpoint {
    Endpoint::Vsock { cid: cid.get(), port }
}

/// Where the proxy serves the enclave's host services (blobs, audit, policy): vsock
/// `port` ([`HOST_PORT`] unless the image says otherwise) on any CID.
pub fn services_endpoint(port: u32) -> Endpoint {
    Endpoint::Vsock { cid: CID_ANY, port }
}

/// Everything needed to start (and restart) the enclave.
#[derive(Debug, Clone)]
pub struct Starter {
    pub cli: NitroCli,
    pub config: NitroConfig,
    /// Debug mode only: where the console is copied.
    pub console_log: Option<PathBuf>,
    /// Where the enclave's TLS channel is reached (vsock `CID:5000`; tests inject a local socket).
    pub relay: Endpoint,
    pub boot_timeout: Duration,
}

impl Starter {
    /// Launch, then wait until the enclave accepts a connection on `relay`. The enclave is
    /// terminated on every error, and when `stop()` turns true first.
    pub fn start(&self, stop: &dyn Fn() -> bool) -> Result<NitroEnclave, String> {
        let enclave = launch(&self.cli, &self.config, self.console_log.clone()).map_err(|e| format!("nitro: {e}"))?;
        let begun = Instant::now();
        let mut polled = Instant::now();
        loop {
            if stop() {
                return Err(format!("stopped while enclave {} was booting (terminated)", enclave.id()));
            }
            if Stream::connect(&self.relay).is_ok() {
                return Ok(enclave);
            }
            if polled.elapsed() >= POLL_EVERY {
                polled = Instant::now();
                if let Err(e) = enclave.describe() {
                    return Err(format!("nitro: the enclave stopped while booting: {e}"));
                }
            }
            if begun.elapsed() > self.boot_timeout {
                return Err(format!(
                    "nitro: enclave {} did not accept connections on {} within {} s (terminated)",
                    enclave.id(),
                    self.relay,
                    self.boot_timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Consecutive `describe-enclaves` failures tolerated before the enclave's state counts as
/// unknown (and so as stopped: the proxy does not relay to what it cannot see).
pub const MAX_FAILED_POLLS: u32 = 3;

/// A running enclave, watched: [`Watched::stopped`] asks the tool at most every
/// [`POLL_EVERY`].
pub struct Watched {
    pub enclave: NitroEnclave,
    last_poll: Instant,
    failed_polls: u32,
}

impl Watched {
    pub fn new(enclave: NitroEnclave) -> Watched {
        Watched { enclave, last_poll: Instant::now(), failed_polls: 0 }
    }

    /// Some(why) once the enclave no longer runs as asked (or its state cannot be learnt
    /// [`MAX_FAILED_POLLS`] times in a row).
    pub fn stopped(&mut self) -> Option<String> {
        if self.last_poll.elapsed() < POLL_EVERY {
            return None;
        }
        self.last_poll = Instant::now();
        match self.enclave.describe() {
            Ok(_) => {
                self.failed_polls = 0;
                None
            }
            Err(e @ NitroError::Mismatch { .. }) => Some(format!("nitro: {e}")),
            Err(e) => {
                self.failed_polls += 1;
                eprintln!(
                    "host-proxy: nitro: cannot learn the state of enclave {} ({}/{MAX_FAILED_POLLS}): {e}",
                    self.enclave.id(),
                    self.failed_polls
                );
                (self.failed_polls >= MAX_FAILED_POLLS)
                    .then(|| format!("nitro: the state of enclave {} cannot be learnt: {e}", self.enclave.id()))
            }
        }
    }
}
