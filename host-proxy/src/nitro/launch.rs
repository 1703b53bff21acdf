//! Running `nitro-cli`: the one place in the Nitro launcher that starts processes.
//!
//! Fail safe: once `run-enclave` may have started an enclave, every way out of [`launch`]
//! either hands back a [`NitroEnclave`] (which terminates the enclave when dropped) or
//! terminates it first. When `run-enclave`'s answer cannot be read, the enclave is found
//! by its name (checked free before the launch) and terminated. When even that fails,
//! the error says so and names the command to run by hand.

use super::cli::{self, ConfigError, Described, EnclaveId, Mismatch, NitroConfig, OutputError, RunInfo};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The most we read of one answer of the tool.
const MAX_OUTPUT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NitroError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot run {bin}: {source}")]
    Spawn { bin: PathBuf, source: std::io::Error },
    #[error("nitro-cli {command} did not finish within {secs} s (killed)")]
    TimedOut { command: &'static str, secs: u64 },
    #[error("waiting for nitro-cli {command}: {source}")]
    Wait { command: &'static str, source: std::io::Error },
    #[error("nitro-cli {command} failed ({status}): {stderr}")]
    Failed { command: &'static str, status: String, stderr: String },
    #[error("nitro-cli {command} printed something unexpected: {source}")]
    Output { command: &'static str, source: OutputError },
    #[error("enclave {id}: {source}")]
    Mismatch { id: EnclaveId, source: Mismatch },
    #[error(
        "enclave {id} (name {name:?}, CID {cid}) is already running and in the way of this launch; stop it first: nitro-cli terminate-enclave --enclave-id {id}"
    )]
    InTheWay { id: EnclaveId, name: Option<String>, cid: u64 },
    #[error(
        "{cause}; cleaning up failed too ({cleanup}): check `nitro-cli describe-enclaves` and terminate what is left"
    )]
    CleanupFailed { cause: Box<NitroError>, cleanup: String },
    #[error("console log {path}: {source}")]
    ConsoleLog { path: PathBuf, source: std::io::Error },
}

/// How to run the tool.
#[derive(Debug, Clone)]
pub struct NitroCli {
    pub bin: PathBuf,
    /// `run-enclave` (allocating huge pages can take a while).
    pub run_timeout: Duration,
    /// Every other command.
    pub call_timeout: Duration,
}

impl NitroCli {
    pub fn new(bin: PathBuf) -> NitroCli {
        NitroCli { bin, run_timeout: Duration::from_secs(300), call_timeout: Duration::from_secs(60) }
    }

    /// Runs one command; its stdout if it exited 0.
    fn call(&self, command: &'static str, args: Vec<OsString>) -> Result<String, NitroError> {
        let timeout = if command == "run-enclave" { self.run_timeout } else { self.call_timeout };
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        crate::qemu::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| NitroError::Spawn { bin: self.bin.clone(), source })?;
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(NitroError::TimedOut { command, secs: timeout.as_secs() });
                }
                Err(source) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(NitroError::Wait { command, source });
                }
            }
        };
        let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
        if !status.success() {
            return Err(NitroError::Failed { command, status: status.to_string(), stderr: last_lines(&stderr, 4) });
        }
        Ok(stdout)
    }

    pub fn describe(&self) -> Result<Vec<Described>, NitroError> {
        let out = self.call("describe-enclaves", cli::describe_args())?;
        cli::parse_describe(&out).map_err(|source| NitroError::Output { command: "describe-enclaves", source })
    }

    pub fn terminate(&self, id: &EnclaveId) -> Result<(), NitroError> {
        let out = self.call("terminate-enclave", cli::terminate_args(id))?;
        let said =
            cli::parse_terminate(&out).map_err(|source| NitroError::Output { command: "terminate-enclave", source })?;
        if &said != id {
            return Err(NitroError::Output {
                command: "terminate-enclave",
                source: OutputError::Json(format!("asked to terminate {id}, it answered for {said}")),
            });
        }
        Ok(())
    }
}

/// Reads a pipe to its end (at most [`MAX_OUTPUT`] bytes) on its own thread, so neither
/// pipe can fill up and stall the tool.
fn reader<R: Read + Send + 'static>(r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last `n` lines, control characters replaced: for error messages.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(n)..].join(" | ");
    let clean: String = tail.chars().map(|c| if c.is_control() { '?' } else { c }).take(600).collect();
    if clean.is_empty() {
        "no message".into()
    } else {
        clean
    }
}

/// A running enclave that this proxy started. Dropping it terminates the enclave.
pub struct NitroEnclave {
    cli: NitroCli,
    config: NitroConfig,
    pub run: RunInfo,
    console: Option<Child>,
    live: bool,
}

impl NitroEnclave {
    pub fn id(&self) -> &EnclaveId {
        &self.run.id
    }

    pub fn config(&self) -> &NitroConfig {
        &self.config
    }

    /// `describe-enclaves` for this enclave: Ok(entry) while it runs as asked, Err(why)
    /// once it does not (stopped, gone, or not as asked).
    pub fn describe(&self) -> Result<Described, NitroError> {
        let all = self.cli.describe()?;
        self.config
            .check_described(&self.run.id, &all)
            .cloned()
            .map_err(|source| NitroError::Mismatch { id: self.run.id.clone(), source })
    }

    /// Terminate the enclave (and stop reading its console). Safe to call twice.
    pub fn terminate(&mut self) -> Result<(), NitroError> {
        if let Some(mut c) = self.console.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.live {
            return Ok(());
        }
        match self.cli.terminate(&self.run.id) {
            Ok(()) => {}
            // Already gone (it stopped on its own): nothing is left running.
            Err(e) => match self.cli.describe() {
                Ok(all) if !all.iter().any(|d| d.id == self.run.id) => {}
                _ => return Err(e),
            },
        }
        self.live = false;
        Ok(())
    }

    /// Terminates, then returns `cause` (or both, if terminating failed too).
    fn abort(mut self, cause: NitroError) -> NitroError {
        match self.terminate() {
            Ok(()) => cause,
            Err(e) => NitroError::CleanupFailed { cause: Box::new(cause), cleanup: e.to_string() },
        }
    }
}

impl Drop for NitroEnclave {
    fn drop(&mut self) {
        let id = self.run.id.clone();
        if let Err(e) = self.terminate() {
            eprintln!(
                "host-proxy: could not terminate enclave {id}: {e}; terminate it by hand: nitro-cli terminate-enclave --enclave-id {id}"
            );
        }
    }
}

/// After a `run-enclave` whose answer we cannot use: terminate whatever carries our name
/// (nothing did before the launch, so it is ours), then return `cause`.
fn cleanup_by_name(cli: &NitroCli, config: &NitroConfig, cause: NitroError) -> NitroError {
    let all = match cli.describe() {
        Ok(all) => all,
        Err(e) => return NitroError::CleanupFailed { cause: Box::new(cause), cleanup: e.to_string() },
    };
    for d in all.iter().filter(|d| d.name.as_deref() == Some(config.name.as_str())) {
        if let Err(e) = cli.terminate(&d.id) {
            return NitroError::CleanupFailed { cause: Box::new(cause), cleanup: format!("enclave {}: {e}", d.id) };
        }
    }
    cause
}

/// Start the enclave `config` describes and check that it runs as asked. In debug mode,
/// its console is copied to `console_log`.
pub fn launch(cli: &NitroCli, config: &NitroConfig, console_log: Option<PathBuf>) -> Result<NitroEnclave, NitroError> {
    config.check()?;
    if let Some(d) = config.conflicts(&cli.describe()?) {
        return Err(NitroError::InTheWay { id: d.id.clone(), name: d.name.clone(), cid: d.cid });
    }
    let stdout = match cli.call("run-enclave", config.run_args()) {
        Ok(s) => s,
        Err(e) => return Err(cleanup_by_name(cli, config, e)),
    };
    let run = match cli::parse_run(&stdout) {
        Ok(r) => r,
        Err(source) => return Err(cleanup_by_name(cli, config, NitroError::Output { command: "run-enclave", source })),
    };
    // From here on the enclave is ours to stop: every error path goes through `abort`.
    let mut enclave = NitroEnclave { cli: cli.clone(), config: config.clone(), run, console: None, live: true };
    if let Err(source) = config.check_run(&enclave.run) {
        let id = enclave.run.id.clone();
        return Err(enclave.abort(NitroError::Mismatch { id, source }));
    }
    if let Err(e) = enclave.describe() {
        return Err(enclave.abort(e));
    }
    if config.debug_mode {
        if let Some(path) = console_log {
            match start_console(cli, enclave.id(), &path) {
                Ok(child) => enclave.console = Some(child),
                Err(e) => return Err(enclave.abort(e)),
            }
        }
    }
    Ok(enclave)
}

/// `nitro-cli console --enclave-id ID` with its output in `path` (debug mode only).
fn start_console(cli: &NitroCli, id: &EnclaveId, path: &PathBuf) -> Result<Child, NitroError> {
    let log = File::create(path).map_err(|source| NitroError::ConsoleLog { path: path.clone(), source })?;
    let log2 = log.try_clone().map_err(|source| NitroError::ConsoleLog { path: path.clone(), source })?;
    let mut cmd = Command::new(&cli.bin);
    cmd.args(cli::console_args(id)).stdin(Stdio::null()).stdout(log).stderr(log2);
    crate::qemu::die_with_parent(&mut cmd);
    cmd.spawn().map_err(|source| NitroError::Spawn { bin: cli.bin.clone(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_keeps_the_last_lines_and_no_control_characters() {
        assert_eq!(last_lines("a\nb\n\nc\nd\ne\n", 2), "d | e");
        assert_eq!(last_lines("", 3), "no message");
        assert_eq!(last_lines("bad\x1b[31m red", 1), "bad?[31m red");
    }
}
