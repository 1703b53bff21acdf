//! Harness for end-to-end tests: a temporary owner/provider/host world with the real
//! binaries, plus a hostile TLS relay for attacks on the attested channel.
//!
//! The binaries and the example module are built by `make test` before the tests run
//! (`cargo build --release --workspace --bins` and the wasm32 build of credit-lr).

pub mod flood;
pub mod neighbours;
pub mod vm;

use protocol::wire::{ClientMessage, EnclaveMessage};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Directory holding the workspace binaries (the profile directory of this test binary).
static FETCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The command failed with exactly one error line, which contains `needle` (any case).
pub fn assert_fails_with(o: &std::process::Output, needle: &str) {
    let t = text(o);
    assert!(!o.status.success(), "expected failure, got success: {t}");
    assert!(t.to_lowercase().contains(&needle.to_lowercase()), "expected {needle:?} in: {t}");
    assert_eq!(t.trim().lines().filter(|l| l.contains("error")).count(), 1, "one clear error line: {t}");
}

pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing: run `make test` (it builds the binaries first)", p.display());
    p
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

pub fn credit_lr_wasm() -> PathBuf {
    let p = std::env::var_os("CLEANROOM_CREDIT_LR_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-unknown-unknown/release/credit_lr.wasm"));
    assert!(p.exists(), "{} is missing: run `make wasm`", p.display());
    p
}

/// The credit-gbdt example module (the second demo model).
pub fn credit_gbdt_wasm() -> PathBuf {
    let p = std::env::var_os("CLEANROOM_CREDIT_GBDT_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-unknown-unknown/release/credit_gbdt.wasm"));
    assert!(p.exists(), "{} is missing: run `make wasm`", p.display());
    p
}

/// The credit-impute example module (credit-lr reading validity, for nullable inputs).
pub fn credit_impute_wasm() -> PathBuf {
    example_wasm("CLEANROOM_CREDIT_IMPUTE_WASM", "credit_impute.wasm")
}

/// The default-lr example module (a provider's model for the BYO table `default.csv`).
/// The two-output example (p_default, risk_band), built by `make wasm`.
pub fn credit_multi_wasm() -> PathBuf {
    example_wasm("CLEANROOM_CREDIT_MULTI_WASM", "credit_multi.wasm")
}

pub fn credit_lr_tune_wasm() -> PathBuf {
    example_wasm("CLEANROOM_CREDIT_LR_TUNE_WASM", "credit_lr_tune.wasm")
}

pub fn credit_mlp_wasm() -> PathBuf {
    example_wasm("CLEANROOM_CREDIT_MLP_WASM", "credit_mlp.wasm")
}

pub fn default_lr_wasm() -> PathBuf {
    example_wasm("CLEANROOM_DEFAULT_LR_WASM", "default_lr.wasm")
}

/// The wage-lr example module (a provider's model for the BYO table `wage.parquet`).
pub fn wage_lr_wasm() -> PathBuf {
    example_wasm("CLEANROOM_WAGE_LR_WASM", "wage_lr.wasm")
}

fn example_wasm(var: &str, file: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-unknown-unknown/release").join(file));
    assert!(p.exists(), "{} is missing: run `make wasm`", p.display());
    p
}

/// A file of the "bring your own table" fixtures (tests/fixtures/byo).
pub fn byo_fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/byo").join(name)
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// One self-contained world: owner files, a running host proxy and enclave.
pub struct World {
    pub dir: tempfile::TempDir,
    pub keys: PathBuf,
    pub ledger: PathBuf,
    pub policy: PathBuf,
    pub sealed: PathBuf,
    pub manifest: PathBuf,
    pub store: PathBuf,
    pub dataset: String,
    pub policy_digest: String,
    pub pcr0: String,
    pub front: String,
    pub blobs: String,
    pub index: String,
    pub collaborator: String,
    /// The provider's Ed25519 key file (the policy lists its public half for `acme`).
    pub provider_key: PathBuf,
    pub population: String,
    /// What `cleanroom prepare` printed (its summary: k-anonymity, PII scan, roles).
    pub prepare_output: String,
    proxy: Child,
    /// Extra `host-proxy run` arguments (kept for restarts).
    proxy_args: Vec<String>,
}

pub struct WorldOptions {
    pub rows: u64,
    pub rows_per_chunk: u64,
    pub budget: &'static str,
    /// Extra modules (name, bytes) the policy allows besides credit-lr.
    pub extra_modules: Vec<(String, Vec<u8>)>,
    /// The policy's fuel per privacy unit.
    pub fuel_per_unit: u64,
    /// Extra `policy init` arguments.
    pub policy_args: Vec<String>,
    /// Extra `host-proxy run` arguments (its limits; `--enclave-arg=...` for enclave-app's).
    pub proxy_args: Vec<String>,
}

/// An outside table for [`World::start_table`].
pub struct TableOptions {
    /// The source table (CSV or Parquet).
    pub table: PathBuf,
    /// The owner's rules file.
    pub rules: PathBuf,
    /// Modules the policy allows.
    pub modules: Vec<PathBuf>,
    /// `policy init --label` columns (besides those the rules declare).
    pub labels: Vec<String>,
    pub rows_per_chunk: u64,
    /// The provider's (and the population's) ε budget.
    pub budget: String,
    /// Extra `policy init` arguments (`--max-rows-per-unit 3`, `--min-group-size 20`, …).
    pub policy_args: Vec<String>,
}

/// Run the `cleanroom` CLI; its trimmed stdout (panics, with the output, if it fails).
pub fn run_cleanroom(args: &[&str]) -> String {
    let o = Command::new(bin("cleanroom")).args(args).output().expect("run cleanroom");
    assert!(o.status.success(), "cleanroom {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

impl Default for WorldOptions {
    fn default() -> Self {
        WorldOptions {
            rows: 3000,
            rows_per_chunk: 500,
            budget: "2",
            extra_modules: vec![],
            fuel_per_unit: 40_000,
            policy_args: vec![],
            proxy_args: vec![],
        }
    }
}

impl World {
    pub fn start(opts: WorldOptions) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_path_buf();
        let data = d.join("data");
        run_cleanroom(&["generate", "--rows", &opts.rows.to_string(), "--seed", "11", "--out", data.to_str().unwrap()]);
        let rules = d.join("bank-rules.toml");
        std::fs::write(&rules, bank_rules_keeping_small_classes()).expect("rules");
        let mut modules = vec![credit_lr_wasm()];
        for (name, bytes) in &opts.extra_modules {
            let p = d.join(name);
            std::fs::write(&p, bytes).unwrap();
            modules.push(p);
        }
        let mut policy_args: Vec<String> =
            ["--min-group-size", "5", "--fuel-per-unit", &opts.fuel_per_unit.to_string()].map(String::from).to_vec();
        policy_args.extend(opts.policy_args.iter().cloned());
        let table = TableOptions {
            table: data.join("bank.csv"),
            rules,
            modules,
            labels: vec!["defaulted".into()],
            rows_per_chunk: opts.rows_per_chunk,
            budget: opts.budget.to_string(),
            policy_args,
        };
        World::start_table_in(dir, &table, opts.proxy_args)
    }

    /// A world over an outside table sealed by the owner's rules file (`cleanroom prepare
    /// TABLE --rules RULES`), with a policy allowing `modules`: the same owner, host and
    /// provider steps as [`World::start`]. `prepare_output` holds what prepare printed.
    pub fn start_table(t: &TableOptions) -> World {
        World::start_table_in(tempfile::tempdir().expect("tempdir"), t, vec![])
    }

    fn start_table_in(dir: tempfile::TempDir, t: &TableOptions, proxy_args: Vec<String>) -> World {
        let d = dir.path();
        let keys = d.join("owner.keys");
        let sealed = d.join("sealed");
        let prepare_output = run_cleanroom(&[
            "prepare",
            t.table.to_str().unwrap(),
            "--rules",
            t.rules.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--out",
            sealed.to_str().unwrap(),
            "--rows-per-chunk",
            &t.rows_per_chunk.to_string(),
        ]);
        let policy_argv = |keys: &Path, manifest: &Path, policy: &Path, provider_public: &str| {
            let mut args: Vec<String> = vec![
                "policy".into(),
                "init".into(),
                "--keys".into(),
                keys.to_str().unwrap().into(),
                "--manifest".into(),
                manifest.to_str().unwrap().into(),
                "--collaborator".into(),
                format!("acme={provider_public}"),
                "--max-delta".into(),
                "0.001".into(),
                "--out".into(),
                policy.to_str().unwrap().into(),
            ];
            for m in &t.modules {
                args.push("--allow-module".into());
                args.push(m.to_str().unwrap().into());
            }
            for l in &t.labels {
                args.push("--label".into());
                args.push(l.clone());
            }
            args.extend(t.policy_args.iter().cloned());
            args
        };
        World::launch(dir, prepare_output, policy_argv, &t.budget, proxy_args)
    }

    /// Everything after `prepare` wrote `dir/sealed` with the key file `dir/owner.keys`:
    /// provider key, policy (`policy init` with the argv `policy_argv` builds from the key
    /// file, the manifest, the policy path and the provider's public key), budget, host
    /// proxy and enclave, upload.
    fn launch(
        dir: tempfile::TempDir,
        prepare_output: String,
        policy_argv: impl FnOnce(&Path, &Path, &Path, &str) -> Vec<String>,
        budget: &str,
        proxy_args: Vec<String>,
    ) -> World {
        let d = dir.path();
        let keys = d.join("owner.keys");
        let ledger = d.join("ledger.sqlite");
        let sealed = d.join("sealed");
        let policy = d.join("policy.toml");
        let store = d.join("host");
        let run = run_cleanroom;
        let manifest = sealed.join("manifest.json");
        let provider_key = d.join("provider.key");
        let keygen = run(&["keygen", "--out", provider_key.to_str().unwrap()]);
        let provider_public = keygen.rsplit(' ').next().expect("public key").to_string();
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        let dataset = m["dataset_digest"].as_str().expect("dataset digest").to_string();
        let args = policy_argv(&keys, &manifest, &policy, &provider_public);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let init = run(&argv);
        let population = init.rsplit(' ').next().expect("population").to_string();
        let policy_digest = run(&["policy", "digest", policy.to_str().unwrap()]);
        let l = ledger.to_str().unwrap();
        run(&["budget", "cap", "--ledger", l, "--population", &population, "--epsilon", budget, "--delta", "0.01"]);
        run(&[
            "budget",
            "set",
            "--ledger",
            l,
            "--population",
            &population,
            "--collaborator",
            "acme",
            "--epsilon",
            budget,
            "--delta",
            "0.01",
        ]);
        let (proxy, front, blobs) = start_proxy(d, &policy, &store, &proxy_args);
        let index = run(&["upload", "--blob-api", &blobs, "--sealed", sealed.to_str().unwrap()]);
        let pcr0 = run(&["measure", bin("enclave-app").to_str().unwrap()]);
        World {
            dir,
            keys,
            ledger,
            policy,
            sealed,
            manifest,
            store,
            dataset,
            policy_digest,
            pcr0,
            front,
            blobs,
            index,
            collaborator: "acme".into(),
            provider_key,
            population,
            prepare_output,
            proxy,
            proxy_args,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cr(&self, args: &[&str]) -> Output {
        Command::new(bin("cleanroom")).args(args).output().expect("run cleanroom")
    }

    /// `cleanroom release` of the grant for `query` against `front_door` with the given
    /// expected PCR0.
    pub fn release_query_via(&self, front_door: &str, pcr0: &str, query: &Path) -> Output {
        self.release_query_with_ledger(front_door, pcr0, query, &self.ledger)
    }

    /// `cleanroom release` as [`World::release_query_via`], with the owner's ledger at `ledger`.
    pub fn release_query_with_ledger(&self, front_door: &str, pcr0: &str, query: &Path, ledger: &Path) -> Output {
        self.cr(&[
            "release",
            "--front-door",
            front_door,
            "--expect-pcr0",
            pcr0,
            "--allow-simulated",
            "--keys",
            self.keys.to_str().unwrap(),
            "--ledger",
            ledger.to_str().unwrap(),
            "--policy",
            self.policy.to_str().unwrap(),
            "--query",
            query.to_str().unwrap(),
        ])
    }

    /// The owner reviews and grants the demo query of job `job` over credit-lr.
    pub fn release_via(&self, front_door: &str, pcr0: &str, job: &str) -> Output {
        let q = self.query(job, &credit_lr_wasm());
        self.release_query_via(front_door, pcr0, &q)
    }

    pub fn release(&self, job: &str) -> Output {
        self.release_via(&self.front, &self.pcr0, job)
    }

    pub fn release_query(&self, query: &Path) -> Output {
        self.release_query_via(&self.front, &self.pcr0, query)
    }

    /// The provider's demo query for `job` over `module` (deterministic: the same job and
    /// module give the same query digest).
    pub fn query(&self, job: &str, module: &Path) -> PathBuf {
        let stem = module.file_stem().and_then(|s| s.to_str()).unwrap_or("module");
        let q = self.path(&format!("{job}.{stem}.toml"));
        let public = self.sealed.join("public-manifest.json");
        let o = self.cr(&[
            "query-init",
            "--manifest",
            public.to_str().unwrap(),
            "--module",
            module.to_str().unwrap(),
            "--job",
            job,
            "--collaborator",
            &self.collaborator,
            "--policy",
            self.policy.to_str().unwrap(),
            "--out",
            q.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        // On the bank table, the demo's five inputs whatever the module declares (a module
        // that reads others is refused by the enclave, as a provider's mistake would be).
        let manifest = std::fs::read_to_string(&public).unwrap_or_default();
        if manifest.contains("\"utilization\"") {
            let mut spec = self.read_query(&q);
            spec.inputs =
                ["income", "utilization", "late_payments", "tenure_months", "birth_decade"].map(String::from).to_vec();
            std::fs::write(&q, toml::to_string_pretty(&spec).unwrap()).unwrap();
        }
        q
    }

    /// `cleanroom verify-result` of `result` against this world's image and policy.
    pub fn verify_result(&self, result: &Path) -> Output {
        self.cr(&[
            "verify-result",
            result.to_str().unwrap(),
            "--allow-simulated",
            "--expect-pcr0",
            &self.pcr0,
            "--policy-digest",
            &self.policy_digest,
        ])
    }

    /// `cleanroom owner-check` for `query` over `module`: the owner's exact values on its own
    /// machine (never released), written to `truth.json` in the world's folder.
    pub fn owner_check(&self, query: &Path, module: &Path) -> PathBuf {
        let truth = self.path("truth.json");
        let o = self.cr(&[
            "owner-check",
            "--sealed",
            self.sealed.to_str().unwrap(),
            "--keys",
            self.keys.to_str().unwrap(),
            "--policy",
            self.policy.to_str().unwrap(),
            "--module",
            module.to_str().unwrap(),
            "--query",
            query.to_str().unwrap(),
            "--out",
            truth.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "owner-check: {}", text(&o));
        truth
    }

    /// Submit `query` with `module` as the provider, with `provider_key`.
    pub fn submit_query_as(&self, query: &Path, module: &Path, index: &str, provider_key: &Path) -> (Output, PathBuf) {
        let stem = query.file_stem().and_then(|s| s.to_str()).unwrap_or("query").to_string();
        let out = self.path(&format!("{stem}.result.json"));
        let o = self.cr(&[
            "submit",
            "--front-door",
            &self.front,
            "--expect-pcr0",
            &self.pcr0,
            "--allow-simulated",
            "--policy-digest",
            &self.policy_digest,
            "--blob-api",
            &self.blobs,
            "--module",
            module.to_str().unwrap(),
            "--query",
            query.to_str().unwrap(),
            "--sealed-index",
            index,
            "--provider-key",
            provider_key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        (o, out)
    }

    pub fn submit_query(&self, query: &Path, module: &Path, index: &str) -> (Output, PathBuf) {
        self.submit_query_as(query, module, index, &self.provider_key)
    }

    /// The provider submits its demo query for `job` over `module`.
    pub fn submit(&self, job: &str, module: &Path, index: &str) -> (Output, PathBuf) {
        let q = self.query(job, module);
        self.submit_query(&q, module, index)
    }

    /// `audit fetch` into a fresh directory; returns the path of its `audit.log`.
    pub fn fetch_audit(&self) -> PathBuf {
        let n = FETCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.path(&format!("audit-{n}"));
        let o = self.cr(&["audit", "fetch", "--blob-api", &self.blobs, "--out", dir.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        dir.join("audit.log")
    }

    /// `audit verify` of `log` with the owner's ledger, the expected image and policy, and
    /// `extra` arguments (`--result F`, `--checkpoint F`).
    pub fn verify_audit_with(&self, log: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "audit",
            "verify",
            log.to_str().unwrap(),
            "--ledger",
            self.ledger.to_str().unwrap(),
            "--allow-simulated",
            "--expect-pcr0",
            &self.pcr0,
            "--policy-digest",
            &self.policy_digest,
        ];
        args.extend_from_slice(extra);
        self.cr(&args)
    }

    pub fn verify_audit(&self, log: &Path) -> Output {
        self.verify_audit_with(log, &[])
    }

    pub fn budget(&self) -> String {
        text(&self.cr(&["budget", "show", "--ledger", self.ledger.to_str().unwrap()]))
    }

    /// Paths of the sealed chunk blobs in the host's store, in order, from the index.
    pub fn chunk_blobs(&self) -> Vec<String> {
        let index = std::fs::read(self.store.join("blobs").join(&self.index)).expect("index blob");
        let idx: protocol::sealed::SealedIndex = protocol::from_cbor(&index).expect("index");
        idx.chunks.iter().map(|d| d.to_hex()).collect()
    }

    /// Upload a hand-made sealed index (the host is untrusted and may do exactly this).
    pub fn upload_index(&self, chunks: &[String]) -> String {
        let idx = protocol::sealed::SealedIndex {
            dataset_digest: self.dataset.parse().unwrap(),
            chunks: chunks.iter().map(|c| c.parse().unwrap()).collect(),
            rows_per_chunk: self.chunk_rows(),
        };
        let f = self.path("index.cbor");
        std::fs::write(&f, protocol::to_cbor(&idx)).unwrap();
        let o = self.cr(&["upload", "--blob-api", &self.blobs, "--file", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// The public manifest's rows per chunk.
    pub fn chunk_rows(&self) -> u64 {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.sealed.join("public-manifest.json")).unwrap()).unwrap();
        m["rows_per_chunk"].as_u64().expect("rows_per_chunk")
    }

    pub fn host_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host-proxy.log")).unwrap_or_default()
    }
}

/// Start host-proxy (which launches enclave-app) and wait until it is ready.
fn start_proxy(d: &Path, policy: &Path, store: &Path, extra: &[String]) -> (Child, String, String) {
    try_start_proxy(d, policy, store, &bin("enclave-app"), Duration::from_secs(60), extra)
        .expect("host-proxy did not become ready")
}

/// Start host-proxy with `enclave_bin`; the host-proxy log if it is not ready in `wait`.
fn try_start_proxy(
    d: &Path,
    policy: &Path,
    store: &Path,
    enclave_bin: &Path,
    wait: Duration,
    extra: &[String],
) -> Result<(Child, String, String), String> {
    let ready = d.join("ready.json");
    let _ = std::fs::remove_file(&ready);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("host-proxy.log")).unwrap();
    let proxy = Command::new(bin("host-proxy"))
        .args(["run", "--launch", "process", "--platform", "simulated"])
        .arg("--enclave-bin")
        .arg(enclave_bin)
        .arg("--policy")
        .arg(policy)
        .arg("--store")
        .arg(store)
        .args(["--front-door", "tcp:127.0.0.1:0", "--blob-api", "tcp:127.0.0.1:0"])
        .arg("--ready-file")
        .arg(&ready)
        .args(extra)
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start host-proxy");
    let mut proxy = proxy;
    let start = Instant::now();
    while !ready.exists() {
        let exited = proxy.try_wait().ok().flatten().is_some();
        if exited || start.elapsed() > wait {
            let _ = proxy.kill();
            let _ = proxy.wait();
            return Err(std::fs::read_to_string(d.join("host-proxy.log")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
    Ok((proxy, r["front_door"].as_str().unwrap().to_string(), r["blob_api"].as_str().unwrap().to_string()))
}

impl World {
    /// Stop the host proxy and its enclave and start fresh ones on the same store and
    /// policy: a restarted enclave, with a new ephemeral key.
    pub fn restart(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
        let (proxy, front, blobs) = start_proxy(self.dir.path(), &self.policy, &self.store, &self.proxy_args);
        self.proxy = proxy;
        self.front = front;
        self.blobs = blobs;
    }

    /// Stop everything and start again with another enclave executable (in process mode
    /// its SHA-384 is the simulated PCR0: another image). Err(host-proxy log) if it does
    /// not come up.
    pub fn restart_with_enclave(&mut self, enclave_bin: &Path) -> Result<(), String> {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
        let (proxy, front, blobs) = try_start_proxy(
            self.dir.path(),
            &self.policy,
            &self.store,
            enclave_bin,
            Duration::from_secs(20),
            &self.proxy_args,
        )?;
        self.proxy = proxy;
        self.front = front;
        self.blobs = blobs;
        Ok(())
    }

    /// Stop the host proxy and its enclave (nothing restarted).
    pub fn stop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }

    /// Process id of the running host-proxy.
    pub fn proxy_pid(&self) -> u32 {
        self.proxy.id()
    }

    /// The enclave's own listener (process launcher): what a hostile host could connect
    /// to directly, bypassing the front door's limits.
    pub fn enclave_socket(&self) -> PathBuf {
        self.store.join("run/enclave.sock")
    }

    /// Process id of the running enclave-app.
    pub fn enclave_pid(&self) -> u32 {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("ready.json")).unwrap()).unwrap();
        r["enclave_pid"].as_u64().expect("enclave_pid") as u32
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

// ---------------------------------------------------------------------------------
// A hostile relay that terminates TLS itself.

#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, transport::Stream>;

/// A TLS client to the real enclave that trusts anything (what an attacker would run).
pub fn raw_enclave_client(front_door: &str) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "cleanroom-enclave".try_into().unwrap()).unwrap();
    let s = transport::Stream::connect(&front_door.parse().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, s)
}

impl World {
    /// The owner grants `query` straight from its ledger (no review, as a careless owner
    /// could) and releases the grant with the data key on a raw channel of its own.
    /// Returns the channel, still open, and the enclave's reply.
    pub fn grant_on_raw_channel(&self, query: &Path) -> (Tls, EnclaveMessage) {
        let spec = self.read_query(query);
        let policy = protocol::policy::Policy::from_toml(&std::fs::read_to_string(&self.policy).unwrap()).unwrap();
        let mut c = raw_enclave_client(&self.front);
        transport::send(&mut c, &ClientMessage::Attest { nonce: protocol::Bytes(vec![5; 32]) }).unwrap();
        let enclave_key = match transport::recv(&mut c).unwrap() {
            EnclaveMessage::Evidence { public_key, .. } => public_key.0,
            other => panic!("{other:?}"),
        };
        let ks = owner_prep::keystore::KeyStore::open(&self.keys).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let grant = cleanroom::review::grant_for_query(
            &mut ledger::Ledger::open(&self.ledger).unwrap(),
            &policy,
            &spec,
            &enclave_key,
            now,
            600,
        )
        .expect("the ledger issues the grant");
        let msg = ClientMessage::ReleaseKey {
            dataset_digest: policy.dataset_digest,
            data_key: ks.data_key(&policy.dataset_digest).unwrap(),
            grant: ks.signing_key().sign(protocol::grant::GRANT_CONTEXT, &grant),
        };
        transport::send(&mut c, &msg).unwrap();
        let reply = transport::recv(&mut c).unwrap();
        (c, reply)
    }
}

/// Ask the real enclave for evidence with `nonce` over a connection of our own.
pub fn fetch_evidence(front_door: &str, nonce: Vec<u8>) -> EnclaveMessage {
    let mut c = raw_enclave_client(front_door);
    transport::send(&mut c, &ClientMessage::Attest { nonce: protocol::Bytes(nonce) }).unwrap();
    transport::recv(&mut c).unwrap()
}

pub enum RelayMode {
    /// Answer every attestation request with this evidence (captured earlier).
    Replay(EnclaveMessage),
    /// Forward the victim's nonce to the real enclave on a separate connection and pass
    /// the genuine evidence back (a relay splicing two TLS connections).
    Forward(String),
}

/// A relay that terminates TLS with its own certificate and records what it receives.
pub struct EvilRelay {
    pub addr: String,
    pub received: Arc<Mutex<Vec<String>>>,
}

impl EvilRelay {
    pub fn start(mode: RelayMode) -> EvilRelay {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["cleanroom-enclave".into()]).unwrap().self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("tcp:{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(vec![]));
        let rec = received.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { continue };
                let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, transport::Stream::Tcp(s));
                while let Ok(msg) = transport::recv::<_, ClientMessage>(&mut tls) {
                    let reply = match (&msg, &mode) {
                        (ClientMessage::Attest { .. }, RelayMode::Replay(ev)) => ev.clone(),
                        (ClientMessage::Attest { nonce }, RelayMode::Forward(front)) => {
                            fetch_evidence(front, nonce.0.clone())
                        }
                        (ClientMessage::ReleaseKey { .. }, _) => {
                            rec.lock().unwrap().push("release_key".into());
                            EnclaveMessage::Error {
                                code: protocol::refusal::RefusalCode::Unknown,
                                message: "a relay kept the key".into(),
                            }
                        }
                        (ClientMessage::ProveLog { .. }, _) => {
                            rec.lock().unwrap().push("prove_log".into());
                            EnclaveMessage::Error { code: protocol::refusal::RefusalCode::Unknown, message: "x".into() }
                        }
                        (ClientMessage::SubmitJob { .. }, _) => {
                            rec.lock().unwrap().push("submit_job".into());
                            EnclaveMessage::Error { code: protocol::refusal::RefusalCode::Unknown, message: "x".into() }
                        }
                        (ClientMessage::NameShards { .. }, _) => {
                            rec.lock().unwrap().push("name_shards".into());
                            EnclaveMessage::Error { code: protocol::refusal::RefusalCode::Unknown, message: "x".into() }
                        }
                    };
                    if transport::send(&mut tls, &reply).is_err() {
                        break;
                    }
                }
            }
        });
        EvilRelay { addr, received }
    }
}

// ---------------------------------------------------------------------------------
// Queries, audit records and raw submissions.

/// One submission over an attested channel of our own: the reply exactly as it left the
/// enclave (the frame's bytes), decoded, and the time from sending the job to the reply.
pub struct RawReply {
    pub frame: Vec<u8>,
    pub message: EnclaveMessage,
    pub elapsed: Duration,
}

impl World {
    /// Read a query file.
    pub fn read_query(&self, path: &Path) -> protocol::job::QuerySpec {
        protocol::job::QuerySpec::from_toml(&std::fs::read_to_string(path).expect("query file")).expect("query")
    }

    /// Write `spec` as the query file `name`.
    pub fn write_query(&self, name: &str, spec: &protocol::job::QuerySpec) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, toml::to_string_pretty(spec).expect("query to TOML")).unwrap();
        p
    }

    /// The demo query for `job` over `module`, changed by `edit`, written as `name`.
    pub fn query_with(
        &self,
        job: &str,
        module: &Path,
        name: &str,
        edit: impl FnOnce(&mut protocol::job::QuerySpec),
    ) -> PathBuf {
        let mut spec = self.read_query(&self.query(job, module));
        edit(&mut spec);
        self.write_query(name, &spec)
    }

    /// The provider's signing key (the one the policy lists for `acme`).
    pub fn provider_signing_key(&self) -> protocol::signing::SigningKey {
        cleanroom::client::read_provider_key(&self.provider_key).expect("provider key")
    }

    /// Put a file into the host's blob store; its digest.
    pub fn upload_file(&self, file: &Path) -> protocol::Digest {
        let o = self.cr(&["upload", "--blob-api", &self.blobs, "--file", file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().parse().expect("digest")
    }

    /// The audit log as the host stores it (bytes, one signed record per line).
    pub fn audit_log_bytes(&self) -> Vec<u8> {
        std::fs::read(self.store.join("audit.log")).unwrap_or_default()
    }

    /// The audit records the host stores, decoded.
    pub fn audit_records(&self) -> Vec<protocol::audit::AuditRecord> {
        let log = String::from_utf8(self.audit_log_bytes()).expect("audit log is text");
        tlog::replay::lines(&log)
            .expect("audit log lines")
            .iter()
            .map(|l| serde_json::from_str::<protocol::signing::Signed>(l).expect("log line"))
            .map(|s| s.decode().expect("audit record"))
            .collect()
    }

    /// The events of the audit records, in order.
    pub fn audit_events(&self) -> Vec<String> {
        self.audit_records().into_iter().map(|r| r.event.to_string()).collect()
    }

    /// Submit `spec` on a fresh channel of our own, proving possession of `key` on it, and
    /// time the reply from the moment the job is sent.
    pub fn raw_submit(
        &self,
        spec: &protocol::job::QuerySpec,
        module_blob: protocol::Digest,
        index: &str,
        key: &protocol::signing::SigningKey,
    ) -> RawReply {
        let mut c = raw_enclave_client(&self.front);
        transport::send(&mut c, &ClientMessage::Attest { nonce: protocol::Bytes(vec![9u8; 32]) }).unwrap();
        let ev: EnclaveMessage = transport::recv(&mut c).unwrap();
        assert!(matches!(ev, EnclaveMessage::Evidence { .. }), "{ev:?}");
        let mut exporter = [0u8; 32];
        c.conn.export_keying_material(&mut exporter, protocol::wire::EXPORTER_LABEL, None).unwrap();
        let binding = protocol::grant::submit_binding(&exporter, &spec.digest());
        let proof = key.sign_bytes(protocol::grant::SUBMIT_CONTEXT, binding.as_bytes().to_vec()).signature;
        let msg = ClientMessage::SubmitJob {
            spec: Box::new(spec.clone()),
            module_blob,
            sealed_index_blob: index.parse().expect("index digest"),
            proof,
        };
        let t = Instant::now();
        transport::send(&mut c, &msg).unwrap();
        let frame = transport::read_frame(&mut c, protocol::frame::MAX_FRAME).expect("a reply frame");
        let elapsed = t.elapsed();
        let message = protocol::from_cbor(&frame).expect("the reply decodes");
        RawReply { frame, message, elapsed }
    }
}

impl World {
    /// The ledger's (ε spent, δ spent) for the provider on this world's population.
    pub fn spent(&self) -> (String, String) {
        let l = ledger::Ledger::open(&self.ledger).expect("ledger opens");
        let b = l.budget(&self.population, &self.collaborator).expect("budget row");
        (b.epsilon.spent.to_string(), b.delta.spent.to_string())
    }

    /// The ledger's ε spent by the provider, as exact decimal text.
    pub fn spent_epsilon(&self) -> String {
        self.spent().0
    }
}

/// A signed result file, decoded (after the caller checked what it needs to).
pub fn read_result(path: &Path) -> protocol::result::JobResult {
    read_result_file(path).result.decode().unwrap()
}

/// A result file as `cleanroom submit` writes it: the signed result and its log receipt.
pub fn read_result_file(path: &Path) -> audit::ResultFile {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Everything about a release that the query fixes: per output its name, class, mechanism,
/// ε, δ, sensitivity, noise scale, fixed-point resolution and, if asked, how many values.
pub fn release_shape(r: &protocol::result::JobResult, with_value_counts: bool) -> Vec<String> {
    r.outputs
        .iter()
        .map(|o| {
            let counts = if with_value_counts { format!(" {}", o.values.len()) } else { String::new() };
            format!(
                "{} {} {} {} {:?} {} {} {:?}{counts}",
                o.name,
                o.class,
                o.mechanism,
                o.epsilon,
                o.delta,
                o.sensitivity,
                o.noise_scale,
                o.fixed_point_resolution
            )
        })
        .collect()
}

/// The demo's bank rules file, except that k-anonymity classes below k are kept (and the
/// override recorded): test tables of a few thousand rows are far too small for k = 10 over
/// zip3 × birth decade, and the tests compare against every generated row.
pub fn bank_rules_keeping_small_classes() -> String {
    let shipped = owner_prep::prepare::BANK_RULES;
    let edited = shipped.replace(
        "remedy = \"suppress\"",
        "remedy = \"override\"\nreason = \"test table: every generated row is compared\"",
    );
    assert_ne!(edited, shipped, "the bank rules changed: update this edit");
    edited
}

/// Exact AUC of `scores` against 0/1 `labels` (ties count half): the owner's plaintext
/// reference in the training tests and the utility benchmark.
pub fn exact_auc(scores: &[f64], labels: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| labels[idx[k]] == 1.0).count() as f64 * mid_rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&y| y == 1.0).count() as f64;
    let neg = labels.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}
