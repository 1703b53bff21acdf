//! `host-proxy run --launch nitro` end to end against the STAND-IN `nitro-cli`
//! (tests/fixtures/nitro-cli-standin). The stand-in starts no enclave, so the relay goes
//! to a local Unix socket through the hidden test flags (`--test-relay-to`,
//! `--test-services-on`) instead of vsock: this covers the proxy's lifecycle (launch,
//! ready file, relay, SIGTERM → terminate, restart policy, debug-mode warnings, failures
//! that leave nothing running), not a real enclave or vsock.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TLS handshake record header and a 5-byte body: what the front door waits for.
const HELLO: &[u8] = &[22, 3, 1, 0, 5, b'h', b'e', b'l', b'l', b'o'];

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nitro-cli-standin");
        let wrapper = dir.path().join("nitro-cli");
        let script =
            format!("#!/bin/sh\nNITRO_STANDIN_DIR='{}' exec '{}' \"$@\"\n", dir.path().display(), standin.display());
        std::fs::write(&wrapper, script).expect("wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(dir.path().join("cleanroom.eif"), b"not a real image").expect("eif");
        std::fs::write(dir.path().join("policy.toml"), b"# served to the enclave as bytes\n").expect("policy");
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fake enclave: echoes whatever it is sent (the relay is byte-for-byte).
    fn fake_enclave(&self) {
        let listener = UnixListener::bind(self.path("enclave.sock")).expect("bind");
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }

    fn proxy(&self, extra: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_host-proxy"))
            .args(["run", "--launch", "nitro", "--nitro-cli"])
            .arg(self.path("nitro-cli"))
            .arg("--eif")
            .arg(self.path("cleanroom.eif"))
            .arg("--policy")
            .arg(self.path("policy.toml"))
            .arg("--store")
            .arg(self.path("store"))
            .arg(format!("--front-door=unix:{}", self.path("front.sock").display()))
            .arg(format!("--blob-api=unix:{}", self.path("blob.sock").display()))
            .arg("--ready-file")
            .arg(self.path("ready.json"))
            .arg(format!("--test-relay-to=unix:{}", self.path("enclave.sock").display()))
            .arg(format!("--test-services-on=unix:{}", self.path("host.sock").display()))
            .args(["--memory-mib", "512"])
            .args(if extra.contains(&"--boot-timeout") { &[][..] } else { &["--boot-timeout", "20"][..] })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start host-proxy")
    }

    fn mode(&self, faults: &str) {
        std::fs::write(self.path("mode"), faults).expect("mode");
    }

    fn commands(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("calls.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines.windows(2).filter(|w| w[0] == "CALL").map(|w| w[1].to_string()).collect()
    }

    fn calls_text(&self) -> String {
        std::fs::read_to_string(self.path("calls.log")).unwrap_or_default()
    }

    fn enclave_left(&self) -> bool {
        self.path("enclave").exists()
    }

    /// The ready file once it satisfies `ok`.
    fn wait_ready(&self, child: &mut Child, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let t = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(self.path("ready.json")) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    if ok(&v) {
                        return v;
                    }
                }
            }
            if let Ok(Some(s)) = child.try_wait() {
                panic!("host-proxy exited ({s}): {}", stderr(child));
            }
            assert!(t.elapsed() < Duration::from_secs(30), "not ready in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn stderr(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

#[allow(unsafe_code)]
fn sigterm(child: &Child) {
    // SAFETY: kill(2) on the pid of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("host-proxy did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn relay_round_trip(front: &Path) {
    let mut c = UnixStream::connect(front).expect("front door");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    c.write_all(HELLO).expect("send");
    let mut back = vec![0u8; HELLO.len()];
    c.read_exact(&mut back).expect("echo through the relay");
    assert_eq!(back, HELLO);
}

#[test]
fn standin_launch_relays_reports_state_and_terminates_on_sigterm() {
    let s = Setup::new();
    s.fake_enclave();
    let mut proxy = s.proxy(&[]);
    let ready = s.wait_ready(&mut proxy, |_| true);
    assert_eq!(ready["launcher"], "nitro");
    assert_eq!(ready["enclave_id"], "i-0standin00000000-enc0000000000000001");
    assert_eq!(ready["enclave_cid"], 16);
    assert_eq!(ready["enclave_state"], "RUNNING");
    assert_eq!(ready["debug_mode"], false);
    assert!(ready.get("warning").is_none());
    relay_round_trip(&s.path("front.sock"));
    assert!(s.enclave_left());

    sigterm(&proxy);
    assert!(wait_exit(&mut proxy).success());
    let err = stderr(&mut proxy);
    assert!(err.contains("nitro enclave i-0standin00000000-enc0000000000000001 RUNNING, CID 16"), "{err}");
    assert!(
        s.calls_text().contains("CALL\nterminate-enclave\n--enclave-id\ni-0standin00000000-enc0000000000000001\n"),
        "{}",
        s.calls_text()
    );
    assert!(!s.enclave_left(), "SIGTERM must terminate the enclave");
}

#[test]
fn standin_debug_mode_is_said_everywhere() {
    let s = Setup::new();
    s.fake_enclave();
    let mut proxy = s.proxy(&["--debug-mode"]);
    let ready = s.wait_ready(&mut proxy, |_| true);
    assert_eq!(ready["debug_mode"], true);
    let warning = ready["warning"].as_str().expect("a warning in the ready file");
    assert!(warning.contains("DEBUG MODE") && warning.contains("all-zero PCRs"), "{warning}");
    // The console reader is a child of its own; it records its call when it starts.
    let t = Instant::now();
    while !s.commands().contains(&"console".to_string()) {
        assert!(t.elapsed() < Duration::from_secs(10), "no console call: {:?}", s.commands());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(s.calls_text().contains("--enclave-name\ncleanroom\n--debug-mode\n"));
    sigterm(&proxy);
    assert!(wait_exit(&mut proxy).success());
    let err = stderr(&mut proxy);
    assert!(err.matches("DEBUG MODE").count() >= 2, "the launch and the ready line both say so: {err}");
    assert!(!s.enclave_left());
}

#[test]
fn standin_restart_on_failure_is_bounded() {
    let s = Setup::new();
    s.fake_enclave();
    let mut proxy = s.proxy(&["--restart", "on-failure", "--max-restarts", "1", "--restart-backoff", "0"]);
    let first = s.wait_ready(&mut proxy, |_| true);
    assert_eq!(first["restarts"], 0);
    // The enclave dies (the stand-in's state disappears): one restart, a new enclave ID.
    std::fs::remove_file(s.path("enclave")).expect("kill the stand-in enclave");
    let second = s.wait_ready(&mut proxy, |v| v["restarts"] == 1 && v["enclave_state"] == "RUNNING");
    assert_eq!(second["enclave_id"], "i-0standin00000000-enc0000000000000002");
    relay_round_trip(&s.path("front.sock"));
    // It dies again: the policy is spent, the proxy stops with an error.
    std::fs::remove_file(s.path("enclave")).expect("kill again");
    let status = wait_exit(&mut proxy);
    assert!(!status.success());
    let err = stderr(&mut proxy);
    assert!(err.contains("new attestation"), "{err}");
    assert!(err.contains("restart policy on-failure: 1 restarts done"), "{err}");
    assert_eq!(s.commands().iter().filter(|c| *c == "run-enclave").count(), 2);
    assert!(!s.enclave_left());
}

#[test]
fn standin_failures_exit_with_the_step_named_and_nothing_running() {
    for (fault, says) in [
        ("run-fails", "nitro-cli run-enclave failed"),
        ("run-garbage", "nitro-cli run-enclave printed something unexpected"),
        ("run-other-cid", "asked for CID 16, the tool reports CID 17"),
        ("describe-terminating", "is TERMINATING, not RUNNING"),
    ] {
        let s = Setup::new();
        s.fake_enclave();
        s.mode(fault);
        let mut proxy = s.proxy(&[]);
        let status = wait_exit(&mut proxy);
        let err = stderr(&mut proxy);
        assert!(!status.success(), "{fault}");
        assert!(err.contains(says), "{fault}: {err}");
        assert!(!s.path("ready.json").exists(), "{fault}: no front door may open");
        assert!(!s.enclave_left(), "{fault}: an enclave was left running");
    }
}

#[test]
fn standin_nitro_only_flags_are_refused_elsewhere_and_bad_cids_before_any_call() {
    let s = Setup::new();
    let out = Command::new(env!("CARGO_BIN_EXE_host-proxy"))
        .args(["run", "--launch", "process", "--enclave-bin", "/bin/true", "--debug-mode", "--policy"])
        .arg(s.path("policy.toml"))
        .arg("--store")
        .arg(s.path("store"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--debug-mode applies to --launch nitro only"));

    let mut proxy = s.proxy(&["--guest-cid", "3"]);
    let status = wait_exit(&mut proxy);
    let err = stderr(&mut proxy);
    assert!(!status.success());
    assert!(err.contains("enclave CID 3 is reserved"), "{err}");
    assert!(s.commands().is_empty(), "nitro-cli must not be called for a refused request");
}

#[test]
fn standin_sigterm_while_booting_or_a_boot_timeout_terminates_the_enclave() {
    // No fake enclave: the relay target never answers, so the proxy stays in its boot wait.
    let s = Setup::new();
    let mut proxy = s.proxy(&[]);
    let t = Instant::now();
    while !s.enclave_left() {
        assert!(t.elapsed() < Duration::from_secs(20), "run-enclave never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&proxy);
    let status = wait_exit(&mut proxy);
    let err = stderr(&mut proxy);
    assert!(!status.success());
    assert!(err.contains("stopped while enclave i-0standin00000000-enc0000000000000001 was booting"), "{err}");
    assert!(!s.enclave_left(), "SIGTERM during boot must terminate the enclave");

    let s = Setup::new();
    let mut proxy = s.proxy(&["--boot-timeout", "1"]);
    let status = wait_exit(&mut proxy);
    let err = stderr(&mut proxy);
    assert!(!status.success());
    assert!(err.contains("did not accept connections"), "{err}");
    assert!(!s.enclave_left(), "a boot timeout must terminate the enclave");
    assert!(!s.path("ready.json").exists());
}
