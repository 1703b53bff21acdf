//! The real NSM path under an EMULATED Nitro Enclave: QEMU's `nitro-enclave` machine
//! (built by `make nitro-emulator`) boots `target/eif/cleanroom.eif` itself, computes
//! PCR0/1/2 from it, and emulates the NSM device. The supervisor runs its `nitro`
//! platform against the kernel's `/dev/nsm` (CONFIG_NSM): NSM attestation, PCR16 extended
//! with the policy digest and locked through the NSM. The owner's side verifies the
//! document with `allow_emulated_nsm` (it is unsigned) and compares PCR0/1/2 with what
//! `eif-build` computed — two independent implementations of the EIF measurement — and
//! PCR16 with the policy's.
//!
//! What this does NOT show: an AWS signature (there is none: alg -1, zero signature and
//! certificates) or Nitro hardware (TCG on this machine). The launch values
//! (`cleanroom.platform=nitro`, the listen port, `cleanroom.host=vsock-host:5001`, i.e.
//! the host at vsock CID 2) are appended by QEMU after the EIF's measured cmdline and are
//! not measured: vhost-device-vsock routes guest connections only to CID 2, not to the
//! Nitro parent's CID 3 that the image's own default names.
//!
//! Ignored by default; `make nitro-smoke` (scripts/nitro-smoke.sh) builds everything and
//! runs it. Prints `{"bench":"nitro_enclave_boot_to_evidence_s",...}`.

use attestation_verifier::{verify_evidence, Error, Expectations, NitroExpectations, Options, Platform, UnixTime};
use cleanroom_e2e::vm::{log, now_ms, Proxy};
use cleanroom_e2e::{bin, fetch_evidence, workspace_root};
use protocol::policy::Policy;
use protocol::wire::EnclaveMessage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn policy() -> Policy {
    cleanroom_e2e::vm::boot_policy("nitro-emulator")
}

fn eif() -> PathBuf {
    std::env::var_os("CLEANROOM_EIF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/eif/cleanroom.eif"))
}

fn emulator() -> PathBuf {
    let q = std::env::var_os("CLEANROOM_NITRO_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/nitro-emulator/bin/qemu-system-x86_64"));
    assert!(q.exists(), "{} is missing: run `make nitro-emulator`", q.display());
    q
}

/// PCR0/1/2 as `eif-build` wrote them next to the image (`pcrs.json`, nitro-cli's shape).
fn eif_build_pcrs(eif: &Path) -> BTreeMap<u16, Vec<u8>> {
    let path = eif.with_file_name("pcrs.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (0u16..3)
        .map(|i| {
            let hex_pcr = v["Measurements"][format!("PCR{i}")].as_str().unwrap_or_else(|| panic!("PCR{i} in {path:?}"));
            (i, hex::decode(hex_pcr).unwrap())
        })
        .collect()
}

fn start_proxy(eif: &Path, dir: &Path, policy: &Policy) -> (Proxy, PathBuf, PathBuf) {
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy.to_toml()).unwrap();
    let ready = dir.join("ready.json");
    let proxy_log = dir.join("host-proxy.log");
    let child = Command::new(bin("host-proxy"))
        .args(["run", "--launch", "qemu", "--qemu-machine", "nitro-enclave", "--platform", "nitro", "--accel", "tcg"])
        .arg("--qemu-bin")
        .arg(emulator())
        .arg("--eif")
        .arg(eif)
        .arg("--policy")
        .arg(&policy_path)
        .arg("--store")
        .arg(dir.join("host"))
        .args(["--front-door", "tcp:127.0.0.1:0", "--blob-api", "tcp:127.0.0.1:0"])
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&proxy_log).unwrap())
        .spawn()
        .expect("start host-proxy");
    (Proxy(child), ready, proxy_log)
}

/// Processes whose command line mentions `needle` (ours are started with paths in a
/// fresh temporary directory, so this finds exactly what the test started).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')));
        if cmd.contains(needle) && !zombie {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
#[ignore = "boots QEMU's emulated Nitro Enclave (minutes under TCG): run with `make nitro-smoke`"]
fn emulated_nitro_enclave_attests_through_the_real_nsm_path() {
    let eif = eif();
    assert!(eif.exists(), "{} is missing: run `make eif`", eif.display());
    let built = eif_build_pcrs(&eif);
    let dir = tempfile::tempdir().unwrap();
    let policy = policy();
    let (mut proxy, ready, proxy_log) = start_proxy(&eif, dir.path(), &policy);

    let t = Instant::now();
    while !ready.exists() {
        if let Ok(Some(s)) = proxy.0.try_wait() {
            panic!("host-proxy exited ({s}) before the enclave answered:\n{}", log(&proxy_log));
        }
        assert!(t.elapsed() < Duration::from_secs(900), "no ready file after 900 s:\n{}", log(&proxy_log));
        std::thread::sleep(Duration::from_millis(200));
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    let front = state["front_door"].as_str().unwrap().to_string();
    let console = PathBuf::from(state["console_log"].as_str().unwrap());
    let qemu_pid = state["qemu_pid"].as_u64().unwrap();
    let launched = state["launched_at_unix_ms"].as_u64().unwrap();
    assert_eq!(state["machine"].as_str(), Some("nitro-enclave"));

    let mut nonce = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).unwrap();
    let reply = fetch_evidence(&front, nonce.clone());
    let answered = now_ms();
    let EnclaveMessage::Evidence { platform, simulated, document, public_key, policy_digest } = reply else {
        panic!("expected evidence, got {reply:?}");
    };
    // The supervisor ran its real nitro platform, not the simulated one.
    assert_eq!(platform, protocol::platform::Platform::Nitro);
    assert!(!simulated);
    assert_eq!(policy_digest, policy.digest(), "the guest measured the policy the host served");

    let pcr16 = protocol::pcr::extend(&[0u8; 48], policy.digest().as_bytes());
    let mut pcrs = built.clone();
    pcrs.insert(16, pcr16.clone());
    let expect = |pcrs: BTreeMap<u16, Vec<u8>>| {
        Expectations::Nitro(NitroExpectations {
            nonce: Some(nonce.clone()),
            public_key: Some(public_key.0.clone()),
            pcrs,
            max_age_ms: Some(300_000),
            ..Default::default()
        })
    };
    let at = UnixTime::from_millis(now_ms());
    let doc = document.as_slice();

    // Without the explicit option the emulator's document is refused, with its own error.
    assert_eq!(
        verify_evidence(Platform::Nitro, doc, &expect(pcrs.clone()), &Options::default(), at),
        Err(Error::EmulatedNsmNotAllowed)
    );
    let allow = Options { allow_emulated_nsm: true, ..Default::default() };
    let verdict = verify_evidence(Platform::Nitro, doc, &expect(pcrs.clone()), &allow, at)
        .expect("the emulated NSM's document verifies against eif-build's PCRs and the policy");
    assert!(verdict.emulated_nsm && !verdict.simulated);
    assert!(verdict.warning.as_deref().is_some_and(|w| w.starts_with("EMULATED NSM")));
    for i in 0u16..3 {
        assert_eq!(verdict.pcrs.get(&i), built.get(&i), "PCR{i}: emulated NSM vs eif-build");
    }
    assert_eq!(verdict.pcrs.get(&16), Some(&pcr16), "PCR16: the policy digest, extended and locked via the NSM");
    // The emulator reports locked PCRs only: 0-15 (locked at boot) and 16 (locked by us).
    assert_eq!(verdict.pcrs.keys().copied().collect::<Vec<_>>(), (0u16..=16).collect::<Vec<_>>());

    // Negative controls: a changed expectation, and a changed PCR byte in the document.
    let mut wrong = pcrs.clone();
    wrong.get_mut(&0).unwrap()[0] ^= 1;
    assert!(matches!(
        verify_evidence(Platform::Nitro, doc, &expect(wrong), &allow, at),
        Err(Error::PcrMismatch { index: 0, .. })
    ));
    let mut tampered = document.0.clone();
    let pos = tampered.windows(48).position(|w| w == built[&2].as_slice()).expect("PCR2 bytes in the document");
    tampered[pos + 47] ^= 1;
    assert!(matches!(
        verify_evidence(Platform::Nitro, &tampered, &expect(pcrs.clone()), &allow, at),
        Err(Error::PcrMismatch { index: 2, .. })
    ));

    let text = log(&console);
    for needle in ["cleanroom-init: PID 1", "enclave-app: EMULATED NSM", "listening on vsock:"] {
        assert!(text.contains(needle), "guest console lacks {needle:?}:\n{text}");
    }
    let secs = answered.saturating_sub(launched) as f64 / 1000.0;
    println!(
        r#"{{"bench":"nitro_enclave_boot_to_evidence_s","value":{secs},"unit":"s","baseline":null,"ratio":null}}"#
    );
    eprintln!("nitro-smoke: EMULATED Nitro Enclave (QEMU nitro-enclave machine, TCG; unsigned NSM documents)");
    for i in [0u16, 1, 2, 16] {
        eprintln!("nitro-smoke:   PCR{i:<2} {} (emulated NSM) == expected", hex::encode(&verdict.pcrs[&i]));
    }
    eprintln!("nitro-smoke: checks passed: {}", verdict.checks_passed.join(", "));
    let cmdline = text.lines().find(|l| l.contains("cleanroom-init: cmdline:")).unwrap_or_default();
    eprintln!(
        "nitro-smoke: guest {cmdline}\nnitro-smoke:   (the cleanroom.* launch values follow the EIF's measured cmdline; \
         QEMU appends them and they are NOT measured: real Nitro appends nothing)"
    );
    eprintln!("nitro-smoke: first evidence {secs:.2} s after QEMU start");

    let status = proxy.stop();
    assert!(status.is_some_and(|s| s.success()), "host-proxy did not stop cleanly:\n{}", log(&proxy_log));
    let t = Instant::now();
    while !processes_mentioning(&dir.path().display().to_string()).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "QEMU (pid {qemu_pid}) outlived the host proxy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "starts QEMU's emulated Nitro Enclave: run with `make nitro-smoke`"]
fn a_truncated_eif_is_named_and_leaves_nothing_running() {
    let eif = eif();
    assert!(eif.exists(), "{} is missing: run `make eif`", eif.display());
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&eif).unwrap();
    let truncated = dir.path().join("truncated.eif");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let (mut proxy, ready, proxy_log) = start_proxy(&truncated, dir.path(), &policy());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = proxy.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "host-proxy still running on a truncated EIF:\n{}",
            log(&proxy_log)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = log(&proxy_log);
    assert!(!status.success(), "host-proxy succeeded on a truncated EIF:\n{err}");
    assert!(!ready.exists(), "a ready file for a truncated EIF");
    let fatal = err.lines().find(|l| l.contains("enclave died during boot")).unwrap_or_default();
    assert!(
        fatal.contains("truncated.eif") && fatal.contains("qemu exited"),
        "the error does not name the image:\n{err}"
    );
    assert!(fatal.contains("EIF"), "QEMU's own reason is not in the error:\n{err}");
    eprintln!(
        "nitro-smoke: truncated EIF refused:\n{}",
        err.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
    );
    let left = processes_mentioning(&dir.path().display().to_string());
    assert!(left.is_empty(), "processes left running: {left:?}");
}
