//! A real boot: `host-proxy run --launch qemu` boots the kernel, cmdline and initramfs of
//! `target/eif/cleanroom.eif` in QEMU with a vhost-user virtio-vsock device, and an owner
//! asks the supervisor (PID 1 in the guest, simulated platform) for evidence through the
//! front door, over real vsock.
//!
//! The machine is `microvm` unless `CLEANROOM_QEMU_MACHINE=q35`: no PCI, no ACPI, the
//! vsock device on a virtio-mmio transport that QEMU declares on the guest's kernel
//! command line (`virtio_mmio.device=...`, the way Nitro declares its devices). The test
//! checks on the guest console that the kernel registered that transport from the
//! command line (a line only `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` prints) and that the
//! supervisor then served over vsock. Under `q35` the device is on virtio-pci.
//!
//! Ignored by default (it needs QEMU, vhost-device-vsock and a built EIF, and takes
//! minutes under TCG). `make qemu-smoke` (scripts/qemu-smoke.sh) builds everything and
//! runs it with `--ignored`. Prints `{"bench":"qemu_<machine>_boot_to_evidence_s",...}`:
//! seconds from QEMU start to the first evidence answer.

use attestation_verifier::{verify_evidence, Expectations, NitroExpectations, Options, Platform, UnixTime};
use cleanroom_e2e::vm::{log, now_ms, Proxy};
use cleanroom_e2e::{bin, fetch_evidence, workspace_root};
use protocol::policy::Policy;
use protocol::wire::EnclaveMessage;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn smoke_policy() -> Policy {
    cleanroom_e2e::vm::boot_policy("qemu-smoke")
}

fn alive(pid: u64) -> bool {
    // Gone, or a zombie waiting for its (new) parent to reap it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
#[ignore = "boots a VM (minutes under TCG): run with `make qemu-smoke`"]
fn qemu_boot_answers_evidence_over_vsock() {
    let eif = std::env::var_os("CLEANROOM_EIF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/eif/cleanroom.eif"));
    assert!(eif.exists(), "{} is missing: run `make eif`", eif.display());
    let dir = tempfile::tempdir().unwrap();
    let policy = smoke_policy();
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy.to_toml()).unwrap();
    let machine = std::env::var("CLEANROOM_QEMU_MACHINE").unwrap_or_else(|_| "microvm".into());
    assert!(machine == "microvm" || machine == "q35", "CLEANROOM_QEMU_MACHINE={machine:?}: use microvm or q35");
    let ready = dir.path().join("ready.json");
    let proxy_log = dir.path().join("host-proxy.log");

    let mut proxy = Proxy(
        Command::new(bin("host-proxy"))
            .args(["run", "--launch", "qemu", "--platform", "simulated", "--qemu-machine", &machine])
            .arg("--eif")
            .arg(&eif)
            .arg("--policy")
            .arg(&policy_path)
            .arg("--store")
            .arg(dir.path().join("host"))
            .args(["--front-door", "tcp:127.0.0.1:0", "--blob-api", "tcp:127.0.0.1:0"])
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&proxy_log).unwrap())
            .spawn()
            .expect("start host-proxy"),
    );

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
    assert_eq!(state["machine"].as_str(), Some(machine.as_str()), "host-proxy booted another machine type");

    let mut nonce = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).unwrap();
    let reply = fetch_evidence(&front, nonce.clone());
    let answered = now_ms();
    let EnclaveMessage::Evidence { platform, simulated, document, public_key, policy_digest } = reply else {
        panic!("expected evidence, got {reply:?}");
    };
    assert_eq!(platform, protocol::platform::Platform::Simulated);
    assert!(simulated);
    assert_eq!(policy_digest, policy.digest(), "the guest measured the policy the host served");

    // The policy digest is extended into PCR16 from zero, as the NSM does it.
    let mut pcr16 = ring::digest::Context::new(&ring::digest::SHA384);
    pcr16.update(&[0u8; 48]);
    pcr16.update(policy.digest().as_bytes());
    let expect = Expectations::Nitro(NitroExpectations {
        nonce: Some(nonce.clone()),
        public_key: Some(public_key.0.clone()),
        pcrs: [(16u16, pcr16.finish().as_ref().to_vec())].into_iter().collect(),
        max_age_ms: Some(300_000),
        ..Default::default()
    });
    let opts = Options { allow_simulated: true, allow_debug: false, allow_emulated_nsm: false };
    let verdict =
        verify_evidence(Platform::Simulated, document.as_slice(), &expect, &opts, UnixTime::from_millis(now_ms()))
            .expect("the guest's evidence verifies");
    assert!(verdict.simulated);
    assert_eq!(verdict.nonce.as_deref(), Some(nonce.as_slice()));

    // The guest console shows PID 1 doing its init duties and serving over vsock.
    let text = log(&console);
    let mut needles = vec!["cleanroom-init: PID 1", "listening on vsock:"];
    let image_has_modules = text.contains("cleanroom-init: loaded module");
    if image_has_modules {
        // An image on Debian's cloud kernel (EIF_KERNEL=debian-cloud): vsock is loaded.
        needles.extend([
            "cleanroom-init: loaded module vsock",
            "cleanroom-init: loaded module vmw_vsock_virtio_transport ",
        ]);
    } else {
        needles.push("cleanroom-init: no modules in /lib/modules: drivers are built into the kernel");
    }
    for needle in &needles {
        assert!(text.contains(needle), "guest console lacks {needle:?}:\n{text}");
    }
    if machine == "microvm" {
        // The vsock transport reached the guest the Nitro way: the kernel registered a
        // virtio-mmio device from a `virtio_mmio.device=` parameter (this line is printed
        // only by the command-line parser, CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), at the
        // address QEMU's microvm appended to the command line. With ACPI and PCI off in
        // the machine there is no other way the guest could have found it.
        let cmdline_line = text
            .lines()
            .find(|l| l.contains("cleanroom-init: cmdline:"))
            .unwrap_or_else(|| panic!("no cmdline line on the guest console:\n{text}"));
        let appended: Vec<&str> = cmdline_line
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("virtio_mmio.device="))
            .filter(|d| !d.contains("@0xd000"))
            .collect();
        assert!(!appended.is_empty(), "microvm appended no virtio_mmio.device= to the cmdline: {cmdline_line}");
        for dev in appended {
            // "512@0xfeb00e00:12" → registered as 0xfeb00e00-0xfeb00fff, IRQ 12.
            let (_, base_irq) = dev.split_once('@').expect("SIZE@BASE:IRQ");
            let (base, irq) = base_irq.split_once(':').expect("BASE:IRQ");
            let registered = "virtio-mmio: Registering device virtio-mmio.";
            let at = format!(" at {base}-");
            let irq = format!(", IRQ {irq}.");
            assert!(
                text.lines().any(|l| l.contains(registered) && l.contains(&at) && l.contains(&irq)),
                "the kernel did not register the command-line virtio-mmio device {dev}:\n{text}"
            );
        }
    }
    let secs = answered.saturating_sub(launched) as f64 / 1000.0;
    // One JSON object per line, keys in the conventional order.
    println!(
        r#"{{"bench":"qemu_{machine}_boot_to_evidence_s","value":{secs},"unit":"s","baseline":null,"ratio":null}}"#
    );
    eprintln!("qemu-smoke: {machine}, accel {}, first evidence {secs:.2} s after QEMU start", state["accel"]);

    for line in log(&proxy_log).lines().filter(|l| l.contains("qemu") || l.contains("KVM") || l.contains("ready")) {
        eprintln!("  {line}");
    }

    // Stopping the proxy stops the VM.
    let status = proxy.stop();
    assert!(status.is_some_and(|s| s.success()), "host-proxy did not stop cleanly:\n{}", log(&proxy_log));
    let t = Instant::now();
    while alive(qemu_pid) {
        assert!(t.elapsed() < Duration::from_secs(10), "QEMU (pid {qemu_pid}) outlived the host proxy");
        std::thread::sleep(Duration::from_millis(100));
    }
}
