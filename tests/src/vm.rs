//! Shared by the tests that boot the real image in QEMU (`qemu_smoke`, `nitro_emulator`):
//! the small policy they boot with, the host proxy as a child process, its logs.

use protocol::policy::{Collaborator, ColumnPolicy, ColumnRole, Policy, SandboxLimits, Timing};
use protocol::{Bytes, Digest};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A valid one-input policy for a boot test; `name` makes its population, module and
/// dataset (and so its digest) the test's own.
pub fn boot_policy(name: &str) -> Policy {
    let column = ColumnPolicy::new;
    let policy = Policy {
        population: format!("{name}-population"),
        rows_per_chunk: 1 << 20,
        allowed_modules: vec![Digest::of(format!("{name} module").as_bytes())],
        allowed_query_classes: vec!["histogram".into()],
        collaborators: vec![Collaborator {
            name: "acme".into(),
            public_key: Bytes(protocol::signing::SigningKey::from_seed([6; 32]).public_key()),
        }],
        min_group_size: 5,
        timing: Timing {
            max_deadline_ms: 60_000,
            setup_ms: 250,
            ns_per_fuel: 2,
            unit_overhead_ns: 30_000,
            ingest_ns_per_row: 3_000,
            ns_per_memory_page: 2_000,
        },
        sandbox: SandboxLimits { fuel_per_unit: 20_000, memory_limit_bytes: 64 << 20, max_module_bytes: 1 << 20 },
        ..Policy::new(
            protocol::signing::SigningKey::from_seed([5; 32]).public_key(),
            Digest::of(format!("{name} dataset").as_bytes()),
            "customer_token",
            vec![column("customer_token", "token", vec![]), column("income", "f64", vec![ColumnRole::Input])],
        )
    };
    policy.validate().expect("the boot test's policy is valid");
    policy
}

/// The host proxy as a child: stopped with SIGTERM (so it stops what it launched) when
/// asked or dropped, killed if it has not exited 20 s later.
pub struct Proxy(pub Child);

impl Proxy {
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        self.0.wait().ok()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// A log file as text (empty if it is not there yet).
pub fn log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
