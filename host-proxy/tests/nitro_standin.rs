//! The Nitro launcher against a STAND-IN `nitro-cli` (tests/fixtures/nitro-cli-standin),
//! which records its arguments and answers in the real tool's documented JSON shapes, with
//! switchable faults. No enclave runs here: these tests cover argument construction, the
//! lifecycle (describe, run, check, console, terminate) and error handling; a real
//! enclave, its vsock and its attestation are covered only on Nitro hardware.

use host_proxy::nitro::cli::{EnclaveState, Mismatch};
use host_proxy::nitro::{launch, EnclaveCid, NitroCli, NitroConfig, NitroError};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One stand-in with its own state directory, reached through a wrapper script so that
/// parallel tests do not share environment variables.
struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    fn new() -> StandIn {
        let dir = tempfile::tempdir().expect("tempdir");
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nitro-cli-standin");
        let wrapper = dir.path().join("nitro-cli");
        let script =
            format!("#!/bin/sh\nNITRO_STANDIN_DIR='{}' exec '{}' \"$@\"\n", dir.path().display(), standin.display());
        std::fs::write(&wrapper, script).expect("write wrapper");
        make_executable(&wrapper);
        std::fs::write(dir.path().join("cleanroom.eif"), b"not a real image: the stand-in boots nothing").expect("eif");
        StandIn { dir }
    }

    fn mode(&self, faults: &str) {
        std::fs::write(self.dir.path().join("mode"), faults).expect("mode");
    }

    fn cli(&self) -> NitroCli {
        NitroCli {
            bin: self.dir.path().join("nitro-cli"),
            run_timeout: Duration::from_secs(20),
            call_timeout: Duration::from_secs(20),
        }
    }

    fn config(&self, debug_mode: bool) -> NitroConfig {
        NitroConfig {
            eif: self.dir.path().join("cleanroom.eif"),
            cpu_count: 2,
            memory_mib: 512,
            cid: EnclaveCid::new(16).expect("cid"),
            name: "cleanroom".into(),
            debug_mode,
        }
    }

    /// Every call so far, as argument vectors.
    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default();
        let mut calls: Vec<Vec<String>> = Vec::new();
        for line in text.lines() {
            if line == "CALL" {
                calls.push(Vec::new());
            } else if let Some(c) = calls.last_mut() {
                c.push(line.to_string());
            }
        }
        calls
    }

    fn commands(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.first().cloned().unwrap_or_default()).collect()
    }

    /// Is the stand-in's enclave still "running"?
    fn enclave_left(&self) -> bool {
        self.dir.path().join("enclave").exists()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

const FIRST_ID: &str = "i-0standin00000000-enc0000000000000001";

#[test]
fn standin_lifecycle_uses_the_tools_argument_names_and_terminates_on_drop() {
    let s = StandIn::new();
    let enclave = launch(&s.cli(), &s.config(false), None).expect("launch");
    assert_eq!(enclave.id().as_str(), FIRST_ID);
    assert_eq!(enclave.run.cid, 16);
    assert_eq!(enclave.describe().expect("running").state, EnclaveState::Running);
    let eif = s.path("cleanroom.eif").display().to_string();
    assert_eq!(
        s.calls(),
        vec![
            vec!["describe-enclaves".to_string()],
            [
                "run-enclave",
                "--eif-path",
                &eif,
                "--cpu-count",
                "2",
                "--memory",
                "512",
                "--enclave-cid",
                "16",
                "--enclave-name",
                "cleanroom"
            ]
            .map(String::from)
            .to_vec(),
            vec!["describe-enclaves".to_string()],
            vec!["describe-enclaves".to_string()],
        ]
    );
    assert!(s.enclave_left());
    drop(enclave);
    assert_eq!(s.calls().last().expect("a call"), &["terminate-enclave", "--enclave-id", FIRST_ID]);
    assert!(!s.enclave_left(), "dropping the handle must terminate the enclave");
}

#[test]
fn standin_debug_mode_is_asked_for_checked_and_its_console_read() {
    let s = StandIn::new();
    let log = s.path("console.log");
    let enclave = launch(&s.cli(), &s.config(true), Some(log.clone())).expect("launch");
    // The console child runs on its own; wait for its first line.
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("stand-in console") {
        assert!(t.elapsed() < Duration::from_secs(10), "console never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    let calls = s.calls();
    assert_eq!(calls[1].last().map(String::as_str), Some("--debug-mode"));
    assert!(calls.iter().any(|c| c == &["console", "--enclave-id", FIRST_ID]), "{calls:?}");
    drop(enclave);
    assert!(!s.enclave_left());
}

#[test]
fn standin_run_failure_names_the_step_and_starts_nothing() {
    let s = StandIn::new();
    s.mode("run-fails");
    let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
    match &e {
        NitroError::Failed { command: "run-enclave", stderr, .. } => {
            assert!(stderr.contains("Insufficient memory"), "{e}")
        }
        other => panic!("{other}"),
    }
    assert!(!s.enclave_left());
    assert!(!s.commands().contains(&"terminate-enclave".to_string()), "nothing to terminate");
}

#[test]
fn standin_run_output_that_is_not_json_terminates_the_enclave_by_name() {
    let s = StandIn::new();
    s.mode("run-garbage");
    let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
    assert!(matches!(e, NitroError::Output { command: "run-enclave", .. }), "{e}");
    assert!(e.to_string().contains("run-enclave printed something unexpected"), "{e}");
    assert_eq!(s.calls().last().expect("a call"), &["terminate-enclave", "--enclave-id", FIRST_ID]);
    assert!(!s.enclave_left(), "the enclave it started must not be left running");
}

#[test]
fn standin_a_cid_other_than_asked_is_refused_and_terminated() {
    let s = StandIn::new();
    s.mode("run-other-cid");
    let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
    assert!(matches!(e, NitroError::Mismatch { source: Mismatch::Cid { requested: 16, reported: 17 }, .. }), "{e}");
    assert!(!s.enclave_left());
}

#[test]
fn standin_an_enclave_not_running_or_not_as_asked_is_refused_and_terminated() {
    for (fault, want) in [
        ("describe-terminating", Mismatch::NotRunning(EnclaveState::Terminating)),
        ("describe-debug", Mismatch::DebugMode { requested: false, reported: true }),
    ] {
        let s = StandIn::new();
        s.mode(fault);
        let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
        match &e {
            NitroError::Mismatch { source, .. } => assert_eq!(source, &want, "{fault}"),
            other => panic!("{fault}: {other}"),
        }
        assert!(s.commands().contains(&"terminate-enclave".to_string()), "{fault}");
        assert!(!s.enclave_left(), "{fault}");
    }
}

#[test]
fn standin_describe_failing_or_garbled_before_the_launch_starts_nothing() {
    for fault in ["describe-fails", "describe-garbage"] {
        let s = StandIn::new();
        s.mode(fault);
        let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
        let named = matches!(
            e,
            NitroError::Failed { command: "describe-enclaves", .. }
                | NitroError::Output { command: "describe-enclaves", .. }
        );
        assert!(named, "{fault}: {e}");
        assert_eq!(s.commands(), ["describe-enclaves"], "{fault}");
    }
}

#[test]
fn standin_an_enclave_left_behind_is_in_the_way_and_named() {
    let s = StandIn::new();
    // As if an earlier proxy had been killed with SIGKILL: an enclave with our name runs.
    std::fs::write(s.path("enclave"), "i-0old-enc00000000000000aa cleanroom 99 2 512 NONE\n").expect("state");
    let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
    assert!(matches!(e, NitroError::InTheWay { cid: 99, .. }), "{e}");
    assert!(e.to_string().contains("nitro-cli terminate-enclave --enclave-id i-0old-enc00000000000000aa"), "{e}");
    assert_eq!(s.commands(), ["describe-enclaves"]);
    assert!(s.enclave_left(), "an enclave this proxy did not start is not terminated by it");
}

#[test]
fn standin_a_failed_cleanup_is_reported_with_both_causes() {
    let s = StandIn::new();
    s.mode("run-other-cid,terminate-fails");
    let e = launch(&s.cli(), &s.config(false), None).err().expect("refused");
    assert!(matches!(e, NitroError::CleanupFailed { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("CID 17") && text.contains("terminate-enclave failed"), "{text}");
    assert!(text.contains("describe-enclaves"), "{text}");
    // The enclave is still "running": the error says so, rather than pretending.
    assert!(s.enclave_left());
}

#[test]
fn standin_terminate_failure_on_shutdown_is_an_error_not_silence() {
    let s = StandIn::new();
    let mut enclave = launch(&s.cli(), &s.config(false), None).expect("launch");
    s.mode("terminate-fails");
    let e = enclave.terminate().expect_err("refused");
    assert!(matches!(e, NitroError::Failed { command: "terminate-enclave", .. }), "{e}");
    s.mode("");
    enclave.terminate().expect("second try");
    assert!(!s.enclave_left());
}

#[test]
fn standin_a_missing_or_hanging_tool_is_a_clear_error() {
    let s = StandIn::new();
    let missing = NitroCli { bin: s.path("no-such-nitro-cli"), ..s.cli() };
    let e = launch(&missing, &s.config(false), None).err().expect("refused");
    assert!(matches!(e, NitroError::Spawn { .. }), "{e}");

    let hang = s.path("hanging-nitro-cli");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 30\n").expect("write");
    make_executable(&hang);
    let hanging = NitroCli { bin: hang, call_timeout: Duration::from_millis(500), ..s.cli() };
    let t = std::time::Instant::now();
    let e = launch(&hanging, &s.config(false), None).err().expect("refused");
    assert!(matches!(e, NitroError::TimedOut { command: "describe-enclaves", .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}
