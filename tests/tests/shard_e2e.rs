//! Scale-out across enclaves (issue 18, docs/scale-out.md), with real processes: one
//! host proxy (the untrusted blob store), one `enclave-app coordinator` and three
//! `enclave-app shard` processes on the simulated platform, speaking the real attested
//! TLS channels over TCP. The test plays the owner: it attests every shard and the
//! coordinator against the PCR0 of the enclave-app binary and the policy, then hands the
//! coordinator the job, the data key and the shards' attested keys.
//!
//! Misbehaving shards are played by [`SimulatedAdversary`]: a compromised shard that still
//! holds valid (simulated, hence forgeable) evidence for the right image. It sits between
//! the coordinator and a real shard, attests to both, forwards the work, and edits or
//! replays the real shard's report. It speaks the protocol directly; it is not in any
//! enclave binary.
//!
//! Not integrated here (see docs/scale-out.md): the owner's budget grant and ledger, and
//! the audit log. The noise seed is fixed with `--insecure-noise-seed` (simulated only) so
//! releases can be compared.

use cleanroom_e2e::*;
use enclave_app::platform::SimulatedPlatform;
use enclave_app::scale_out::peer::{client_config, exporter, server_name, Identity};
use protocol::{Bytes, Digest};
use shard::report::Report;
use shard::wire::{evidence_binding, JobBinding, Outcome, PeerMessage, Role, RunRequest, ShardPeer, ShardedResult};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEED: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const REPLY_AFTER_MS: u64 = 10_000;
const REPORT_SIZE: u32 = 256 * 1024;

/// One enclave-app process in a sharded role.
struct Node {
    child: Child,
    endpoint: String,
    key: Vec<u8>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(w: &World, role: &str, extra: &[&str]) -> Node {
    let mut child = Command::new(bin("enclave-app"))
        .arg(role)
        .args(["--platform", "simulated", "--listen", "tcp:127.0.0.1:0"])
        .arg("--host")
        .arg(format!("unix:{}", w.store.join("run/host.sock").display()))
        .arg("--policy")
        .arg(&w.policy)
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start enclave-app");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    // Keep draining stderr so the process never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    let field = |name: &str| {
        first.split(' ').find_map(|f| f.strip_prefix(name)).unwrap_or_else(|| panic!("{name} in {first:?}")).to_string()
    };
    let endpoint = first.rsplit(' ').next().expect("endpoint").to_string();
    Node { child, endpoint, key: hex::decode(field("key=")).expect("hex key") }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, transport::Stream>;

fn connect(endpoint: &str) -> (Tls, [u8; 32], Arc<enclave_app::scale_out::peer::CertRecorder>) {
    let (config, recorder) = client_config().unwrap();
    let conn = rustls::ClientConnection::new(config, server_name()).unwrap();
    let s = transport::Stream::connect_retry(&endpoint.parse().unwrap(), Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, s);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    let ex = exporter(&tls.conn).unwrap();
    (tls, ex, recorder)
}

/// The owner attests the enclave at `endpoint` in `role`: its evidence must show the
/// enclave-app image (PCR0), the policy (PCR16), our nonce, this channel and its key.
/// Returns the channel and the attested key.
fn owner_attest(w: &World, endpoint: &str, role: Role) -> (Tls, Vec<u8>) {
    use attestation_verifier::{verify_evidence, Expectations, NitroExpectations, Options, Platform, UnixTime};
    let (mut tls, ex, recorder) = connect(endpoint);
    let nonce = Digest::of(format!("owner nonce for {endpoint}").as_bytes()).0.to_vec();
    transport::send(&mut tls, &PeerMessage::Hello { job: None, nonce: Bytes(nonce.clone()) }).unwrap();
    let reply: PeerMessage = transport::recv(&mut tls).unwrap();
    let PeerMessage::Evidence { role: r, document, public_key, policy_digest, .. } = reply else {
        panic!("no evidence from {endpoint}")
    };
    assert_eq!(r, role);
    let policy: Digest = w.policy_digest.parse().unwrap();
    assert_eq!(policy_digest, policy);
    let binding = evidence_binding(role, &nonce, &ex, &public_key.0, &policy, &Digest::default());
    let expect = Expectations::Nitro(NitroExpectations {
        pcrs: [(0u16, hex::decode(&w.pcr0).unwrap()), (16, protocol::pcr::policy_pcr(&policy))].into(),
        nonce: Some(nonce),
        user_data: Some(binding.as_bytes().to_vec()),
        public_key: Some(public_key.0.clone()),
        max_age_ms: Some(60_000),
        module_id_prefix: None,
    });
    let now =
        UnixTime::from_secs(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let opts = Options { allow_simulated: true, allow_debug: false, allow_emulated_nsm: false };
    verify_evidence(Platform::Simulated, &document.0, &expect, &opts, now).expect("the owner verifies the evidence");
    assert!(recorder.certifies(&public_key.0), "TLS terminates in the attested enclave");
    (tls, public_key.0)
}

struct Job {
    request: RunRequest,
}

fn job(w: &World, name: &str) -> Job {
    let q = w.query(name, &credit_lr_wasm());
    let spec = w.read_query(&q);
    let module_blob = w.upload_file(&credit_lr_wasm());
    let keys = owner_prep::keystore::KeyStore::open(&w.keys).expect("owner key store");
    let data_key = keys.data_key(&spec.dataset_digest).expect("the dataset's key");
    Job {
        request: RunRequest {
            spec,
            module_blob,
            index_blob: w.index.parse().unwrap(),
            data_key,
            shards: Vec::new(),
            report_size: REPORT_SIZE,
            reply_after_ms: REPLY_AFTER_MS,
        },
    }
}

/// The owner attests every shard endpoint, then the coordinator, and runs the job.
/// Returns the outcome and how long after the request it arrived.
fn run(w: &World, coordinator: &Node, shards: &[String], j: &Job) -> (Outcome, Duration) {
    let mut request = j.request.clone();
    request.shards = shards
        .iter()
        .map(|ep| ShardPeer { endpoint: ep.clone(), public_key: Bytes(owner_attest(w, ep, Role::Shard).1) })
        .collect();
    let (mut tls, key) = owner_attest(w, &coordinator.endpoint, Role::Coordinator);
    assert_eq!(key, coordinator.key);
    let start = Instant::now();
    transport::send(&mut tls, &PeerMessage::Run(Box::new(request))).unwrap();
    let reply: PeerMessage = transport::recv(&mut tls).unwrap();
    let PeerMessage::Outcome(o) = reply else { panic!("no outcome: {reply:?}") };
    (*o, start.elapsed())
}

fn released(o: &Outcome, coordinator: &Node) -> ShardedResult {
    let Outcome::Released { result } = o else { panic!("expected a release, got {o:?}") };
    result.verify(shard::wire::RESULT_CONTEXT, &coordinator.key).expect("signed by the attested coordinator");
    protocol::from_cbor(result.payload.as_slice()).expect("a sharded result")
}

fn failed_code(o: &Outcome) -> &str {
    match o {
        Outcome::Failed { code, message } => {
            eprintln!("job failed as expected: {code}: {message}");
            code
        }
        other => panic!("expected a failure without release, got {other:?}"),
    }
}

fn world() -> World {
    World::start(WorldOptions::default())
}

fn shards(w: &World, n: usize) -> Vec<Node> {
    (0..n).map(|_| spawn(w, "shard", &[])).collect()
}

fn coordinator(w: &World) -> Node {
    spawn(w, "coordinator", &["--insecure-noise-seed", SEED])
}

#[test]
/// The comparison is with one shard running the same code, not with the single-enclave
/// service (`service.rs` draws its noise from the platform and takes no test seed).
fn a_three_shard_release_equals_the_one_shard_release_with_the_same_noise() {
    let w = world();
    let c = coordinator(&w);
    let j = job(&w, "sharded");
    let three = shards(&w, 3);
    let eps: Vec<String> = three.iter().map(|n| n.endpoint.clone()).collect();
    let (o3, took) = run(&w, &c, &eps, &j);
    let r3 = released(&o3, &c);
    assert!(took >= Duration::from_millis(REPLY_AFTER_MS), "the reply leaves at its instant, not before ({took:?})");
    let one = shards(&w, 1);
    let (o1, _) = run(&w, &c, &[one[0].endpoint.clone()], &j);
    let r1 = released(&o1, &c);
    assert!(!r3.outputs.is_empty());
    assert_eq!(r3.outputs, r1.outputs, "three shards release exactly what one enclave releases");
    assert_eq!(r3.shard_keys.len(), 3);
    assert!(r3.simulated && r3.insecure_fixed_noise);
}

/// What the simulated adversary does to the real shard's report.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    /// Forward everything unchanged (and remember the report).
    Honest,
    /// Report the next shard's range.
    WrongRange,
    /// Report one unit more than it read.
    UnitCount,
    /// Claim a unit of the next shard's range (an overlap).
    Overlap,
    /// Send the report remembered from an earlier job instead of this one's.
    Replay,
}

/// A compromised shard with valid evidence, between the coordinator and a real shard.
struct SimulatedAdversary {
    endpoint: String,
    mode: Arc<Mutex<Lie>>,
}

impl SimulatedAdversary {
    fn start(w: &World, real: &Node) -> SimulatedAdversary {
        let image = std::fs::read(bin("enclave-app")).unwrap();
        let policy = protocol::policy::Policy::from_toml(&std::fs::read_to_string(&w.policy).unwrap()).unwrap();
        // Forgeable simulated evidence for the genuine image: a compromised enclave.
        let id = Identity::boot(Box::new(SimulatedPlatform::with_measurement(&image)), policy).unwrap();
        let listener = transport::Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let endpoint = listener.local_endpoint().unwrap().to_string();
        let mode = Arc::new(Mutex::new(Lie::Honest));
        let (m, real) = (mode.clone(), real.endpoint.clone());
        std::thread::spawn(move || {
            let remembered: Mutex<Option<Vec<u8>>> = Mutex::new(None);
            while let Ok(s) = listener.accept() {
                let lie = *m.lock().unwrap();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    relay(&id, s, &real, lie, &remembered);
                }));
            }
        });
        SimulatedAdversary { endpoint, mode }
    }

    fn set(&self, lie: Lie) {
        *self.mode.lock().unwrap() = lie;
    }
}

fn relay(id: &Identity, s: transport::Stream, real: &str, lie: Lie, remembered: &Mutex<Option<Vec<u8>>>) {
    let conn = rustls::ServerConnection::new(id.tls_server()).unwrap();
    let mut up = rustls::StreamOwned::new(conn, s);
    while up.conn.is_handshaking() {
        up.conn.complete_io(&mut up.sock).unwrap();
    }
    let up_ex = exporter(&up.conn).unwrap();
    let hello: PeerMessage = transport::recv(&mut up).unwrap();
    let PeerMessage::Hello { job, nonce } = hello else { return };
    let job_digest = job.as_ref().map(JobBinding::digest).unwrap_or_default();
    let ours = id.fresh_nonce().unwrap();
    transport::send(&mut up, &id.evidence(Role::Shard, &nonce.0, &up_ex, &job_digest, ours).unwrap()).unwrap();
    let Some(job) = job else { return }; // the owner attesting us
    let _coordinator_evidence: PeerMessage = transport::recv(&mut up).unwrap();
    // Now play the coordinator towards the real shard.
    let (mut down, down_ex, _) = connect(real);
    let n = id.fresh_nonce().unwrap();
    transport::send(&mut down, &PeerMessage::Hello { job: Some(job.clone()), nonce: Bytes(n) }).unwrap();
    let evidence: PeerMessage = transport::recv(&mut down).unwrap();
    let PeerMessage::Evidence { nonce: theirs, .. } = evidence else { return };
    transport::send(&mut down, &id.evidence(Role::Coordinator, &theirs.0, &down_ex, &job_digest, vec![]).unwrap())
        .unwrap();
    let work: PeerMessage = transport::recv(&mut up).unwrap();
    transport::send(&mut down, &work).unwrap();
    let reply: PeerMessage = transport::recv(&mut down).unwrap();
    let PeerMessage::Report(report) = reply else { return };
    let plan = shard::Plan::new(job.shards).unwrap();
    let edit = |f: &mut dyn FnMut(&mut shard::Partial, &shard::Plan)| {
        let Report::Partial(mut p) = Report::from_padded(&report.0, job.report_size).unwrap() else {
            panic!("the real shard failed")
        };
        f(&mut p, &plan);
        Report::Partial(p).to_padded(job.report_size).unwrap()
    };
    let next = |p: &shard::Partial, plan: &shard::Plan| plan.range((p.shard + 1) % plan.shards()).unwrap();
    let sent = match lie {
        Lie::Honest => {
            *remembered.lock().unwrap() = Some(report.0.clone());
            report.0
        }
        Lie::WrongRange => edit(&mut |p, plan| p.range = next(p, plan)),
        Lie::UnitCount => edit(&mut |p, _| p.units += 1),
        Lie::Overlap => edit(&mut |p, plan| {
            let mut t = p.last_unit.expect("the shard read units");
            t[..8].copy_from_slice(&next(p, plan).first.to_be_bytes());
            p.last_unit = Some(t);
        }),
        Lie::Replay => remembered.lock().unwrap().clone().expect("a report to replay"),
    };
    transport::send(&mut up, &PeerMessage::Report(Bytes(sent))).unwrap();
}

#[test]
fn a_shard_that_lies_about_its_units_fails_the_job_with_no_release() {
    let w = world();
    let c = coordinator(&w);
    let real = shards(&w, 3);
    let adversary = SimulatedAdversary::start(&w, &real[1]);
    let eps = vec![real[0].endpoint.clone(), adversary.endpoint.clone(), real[2].endpoint.clone()];
    // Through the adversary relaying honestly, the job succeeds: the harness itself is sound.
    let (o, _) = run(&w, &c, &eps, &job(&w, "relayed"));
    released(&o, &c);
    for (lie, code) in [
        (Lie::WrongRange, "wrong_range"),
        (Lie::UnitCount, "unit_count_mismatch"),
        (Lie::Overlap, "units_outside_range"),
    ] {
        adversary.set(lie);
        let (o, took) = run(&w, &c, &eps, &job(&w, &format!("lie-{code}")));
        assert_eq!(failed_code(&o), code, "{lie:?}");
        assert!(took >= Duration::from_millis(REPLY_AFTER_MS), "a failure leaves at the same instant ({took:?})");
    }
}

#[test]
fn a_replayed_report_from_an_earlier_job_or_round_is_caught() {
    let w = world();
    let c = coordinator(&w);
    let real = shards(&w, 3);
    let adversary = SimulatedAdversary::start(&w, &real[2]);
    let eps = vec![real[0].endpoint.clone(), real[1].endpoint.clone(), adversary.endpoint.clone()];
    let first = job(&w, "replay-source");
    let (o, _) = run(&w, &c, &eps, &first);
    released(&o, &c);
    adversary.set(Lie::Replay);
    // A later job, and the very same job again (a fresh round): both refuse the old report.
    let (o, _) = run(&w, &c, &eps, &job(&w, "replay-target"));
    assert_eq!(failed_code(&o), "replayed_report");
    let (o, _) = run(&w, &c, &eps, &first);
    assert_eq!(failed_code(&o), "replayed_report");
}

#[test]
fn a_shard_that_dies_mid_job_fails_the_job_with_no_partial_release() {
    let w = world();
    let c = coordinator(&w);
    let mut real = shards(&w, 3);
    let eps: Vec<String> = real.iter().map(|n| n.endpoint.clone()).collect();
    let j = job(&w, "dies");
    let victim = real.remove(1);
    let killer = std::thread::spawn(move || {
        // After the work went out (attestation takes well under this), before the reports.
        std::thread::sleep(Duration::from_millis(REPLY_AFTER_MS / 2));
        drop(victim);
    });
    let (o, took) = run(&w, &c, &eps, &j);
    killer.join().unwrap();
    assert_eq!(failed_code(&o), "shard_lost");
    assert!(took >= Duration::from_millis(REPLY_AFTER_MS), "the failure leaves at the reply instant ({took:?})");
}
