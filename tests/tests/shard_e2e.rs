//! Scale-out across enclaves (issue 18, docs/scale-out.md), with real processes: the
//! host proxy with the ordinary supervisor (`enclave-app`, which coordinates when the
//! owner names shards for a query) and three `enclave-app shard` processes, on the
//! simulated platform, over the real attested TLS channels on TCP.
//!
//! The owner attests every shard, releases the data key and the query's grant to the
//! coordinator as to any enclave, and names the shards on that same channel; the provider
//! submits the job with its proof of possession. The spend, the noise, the signed result,
//! the audit record and the owner's sealed diagnostics are the single enclave's.
//!
//! Misbehaving shards are played by [`SimulatedAdversary`]: a compromised shard that still
//! holds valid (simulated, hence forgeable) evidence for the right image. It sits between
//! the coordinator and a real shard, attests to both, forwards the work, and edits or
//! replays the real shard's report. It speaks the protocol directly; it is not in any
//! enclave binary.
//!
//! The coordinator's noise seed is fixed with `--insecure-noise-seed` (simulated only),
//! so a sharded release can be compared with the single enclave's release of the same
//! query bit for bit.

use cleanroom_e2e::*;
use enclave_app::platform::SimulatedPlatform;
use enclave_app::scale_out::peer::{client_config, exporter, server_name, Identity};
use protocol::result::JobResult;
use protocol::wire::{ClientMessage, EnclaveMessage, ShardPeer};
use protocol::{Bytes, Digest};
use shard::report::Report;
use shard::wire::{evidence_binding, JobBinding, PeerMessage, Role};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SEED: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
/// The owner's diagnostics secret in these tests (the policy holds its public half).
const DIAGNOSTICS_SECRET: [u8; 32] = [7; 32];
/// The least deadline of every job here: the shards report 2 s before it (the
/// coordinator's grace and release time).
const DEADLINE_MS: u64 = 8_000;

/// One `enclave-app shard` process.
struct Node {
    child: Child,
    endpoint: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_shard(w: &World) -> Node {
    let mut child = Command::new(bin("enclave-app"))
        .arg("shard")
        .args(["--platform", "simulated", "--listen", "tcp:127.0.0.1:0"])
        .arg("--host")
        .arg(format!("unix:{}", w.store.join("run/host.sock").display()))
        .arg("--policy")
        .arg(&w.policy)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start enclave-app shard");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    // Keep draining stderr so the process never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    let endpoint = first.rsplit(' ').next().expect("endpoint").to_string();
    Node { child, endpoint }
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

/// The owner attests the shard at `endpoint`: its evidence must show the enclave-app
/// image (PCR0), the policy (PCR16), our nonce, this channel and its key. Returns the
/// attested key, which the owner then names to the coordinator.
fn owner_attests_shard(w: &World, endpoint: &str) -> ShardPeer {
    use attestation_verifier::{verify_evidence, Expectations, NitroExpectations, Options, Platform, UnixTime};
    let (mut tls, ex, recorder) = connect(endpoint);
    let nonce = Digest::of(format!("owner nonce for {endpoint}").as_bytes()).0.to_vec();
    transport::send(&mut tls, &PeerMessage::Hello { job: None, nonce: Bytes(nonce.clone()) }).unwrap();
    let reply: PeerMessage = transport::recv(&mut tls).unwrap();
    let PeerMessage::Evidence { role, document, public_key, policy_digest, .. } = reply else {
        panic!("no evidence from {endpoint}")
    };
    assert_eq!(role, Role::Shard);
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
    ShardPeer { endpoint: endpoint.to_string(), public_key }
}

/// A world whose enclave draws its noise from [`SEED`] and seals diagnostics to the
/// test's owner key.
fn world() -> World {
    let diagnostics = hex::encode(protocol::diagnostics::public_key(&DIAGNOSTICS_SECRET));
    World::start(WorldOptions {
        budget: "20",
        policy_args: vec!["--diagnostics-key".into(), diagnostics],
        proxy_args: vec![format!("--enclave-arg=--insecure-noise-seed={SEED}")],
        ..Default::default()
    })
}

fn shards(w: &World, n: usize) -> Vec<Node> {
    (0..n).map(|_| spawn_shard(w)).collect()
}

/// A credit-lr query named `name` with the test's deadline.
fn query(w: &World, name: &str) -> std::path::PathBuf {
    w.query_with(name, &credit_lr_wasm(), &format!("{name}.toml"), |q: &mut protocol::job::QuerySpec| {
        // Room for the coordinator's grace and release time after the shards' worst case.
        q.deadline_ms = (q.deadline_ms + 2_000).max(DEADLINE_MS);
    })
}

/// The owner's side: attest the coordinator, grant the query through the ledger, release
/// the key and the grant, and (for a sharded job) name the shards on the same channel.
/// Returns the coordinator's reply to the naming (or `None` for an unsharded job).
fn owner_releases(w: &World, query: &Path, shards: &[ShardPeer]) -> Option<EnclaveMessage> {
    let (mut c, reply) = w.grant_on_raw_channel(query);
    assert!(matches!(reply, EnclaveMessage::KeyAccepted { .. }), "{reply:?}");
    if shards.is_empty() {
        return None;
    }
    let msg = ClientMessage::NameShards { query_digest: w.read_query(query).digest(), shards: shards.to_vec() };
    transport::send(&mut c, &msg).unwrap();
    Some(transport::recv(&mut c).unwrap())
}

/// The provider submits the query; the raw reply, with how long it took.
fn provider_submits(w: &World, query: &Path) -> RawReply {
    let spec = w.read_query(query);
    let blob = w.upload_file(&credit_lr_wasm());
    w.raw_submit(&spec, blob, &w.index, &w.provider_signing_key())
}

/// Owner and provider, one sharded (or, with no shards, single-enclave) job.
fn run(w: &World, name: &str, shards: &[ShardPeer]) -> RawReply {
    let q = query(w, name);
    if let Some(named) = owner_releases(w, &q, shards) {
        assert!(
            matches!(named, EnclaveMessage::ShardsNamed { shards: n, .. } if n as usize == shards.len()),
            "{named:?}"
        );
    }
    provider_submits(w, &q)
}

fn released(w: &World, reply: &RawReply) -> JobResult {
    match &reply.message {
        EnclaveMessage::JobResult { result, .. } => result.decode().expect("a signed result"),
        other => panic!("expected a release, got {other:?}\n{}", w.host_log()),
    }
}

/// The reply is `job_failed` (nothing else leaves), at the deadline; returns why, from
/// the owner's sealed diagnostics in the job's audit record.
fn failed_why(w: &World, reply: &RawReply) -> String {
    assert!(matches!(reply.message, EnclaveMessage::JobFailed { .. }), "expected job_failed, got {:?}", reply.message);
    assert!(
        reply.elapsed >= Duration::from_millis(DEADLINE_MS),
        "a failure leaves at the deadline ({:?})",
        reply.elapsed
    );
    let rec = w.audit_records().into_iter().last().expect("the job's record");
    assert_eq!(rec.outcome, "job_failed");
    let sealed: protocol::diagnostics::SealedDiagnostics =
        protocol::from_cbor(rec.diagnostics.as_ref().expect("sealed diagnostics").as_slice()).unwrap();
    let aad = protocol::diagnostics::job_aad(rec.query_digest.as_ref().unwrap(), rec.grant_id.as_ref().unwrap());
    let d = protocol::diagnostics::open(&DIAGNOSTICS_SECRET, &aad, &sealed).expect("the owner opens its diagnostics");
    let why = d.failure.expect("a failure reason");
    eprintln!("job failed as expected; the owner reads: {why}");
    why
}

fn attested(w: &World, nodes: &[Node]) -> Vec<ShardPeer> {
    nodes.iter().map(|n| owner_attests_shard(w, &n.endpoint)).collect()
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
/// The single enclave's own release (`service.rs` reading every chunk itself) and the
/// release of the same query spread over three shards and merged by the same enclave,
/// with the same fixed noise seed: equal bit for bit, value and noise term alike.
fn a_three_shard_release_equals_the_single_enclave_release_with_the_same_noise() {
    let w = world();
    let three = shards(&w, 3);
    let single = released(&w, &run(&w, "single", &[]));
    let reply = run(&w, "sharded", &attested(&w, &three));
    assert!(
        reply.elapsed >= Duration::from_millis(DEADLINE_MS),
        "the reply leaves at the deadline ({:?})",
        reply.elapsed
    );
    let sharded = released(&w, &reply);
    assert!(!single.outputs.is_empty());
    assert_eq!(sharded.outputs, single.outputs, "three shards release exactly what one enclave releases");
    assert!(single.shard_keys.is_empty());
    assert_eq!(sharded.shard_keys, attested_keys(&three, &w), "the result names the shards the owner attested");
    assert!(sharded.simulated && sharded.insecure_fixed_noise);
    // One budget and one audit log: each job spent its grant once, in the coordinator's log.
    let events = w.audit_events();
    assert_eq!(events.iter().filter(|e| e.as_str() == "job_released").count(), 2, "{events:?}");
}

fn attested_keys(nodes: &[Node], w: &World) -> Vec<Bytes> {
    attested(w, nodes).into_iter().map(|p| p.public_key).collect()
}

#[test]
fn a_shard_that_lies_about_its_units_fails_the_job_with_no_release() {
    let w = world();
    let real = shards(&w, 3);
    let adversary = SimulatedAdversary::start(&w, &real[1]);
    let mut peers = attested(&w, &real);
    peers[1] = owner_attests_shard(&w, &adversary.endpoint);
    // Through the adversary relaying honestly, the job succeeds: the harness itself is sound.
    released(&w, &run(&w, "relayed", &peers));
    for (lie, code) in [
        (Lie::WrongRange, "wrong_range"),
        (Lie::UnitCount, "unit_count_mismatch"),
        (Lie::Overlap, "units_outside_range"),
    ] {
        adversary.set(lie);
        let why = failed_why(&w, &run(&w, &format!("lie-{code}"), &peers));
        assert!(why.starts_with(&format!("shards: {code}")), "{lie:?}: {why}");
    }
}

#[test]
fn a_replayed_report_from_an_earlier_job_is_caught() {
    let w = world();
    let real = shards(&w, 3);
    let adversary = SimulatedAdversary::start(&w, &real[2]);
    let mut peers = attested(&w, &real);
    peers[2] = owner_attests_shard(&w, &adversary.endpoint);
    released(&w, &run(&w, "replay-source", &peers));
    adversary.set(Lie::Replay);
    let why = failed_why(&w, &run(&w, "replay-target", &peers));
    assert!(why.starts_with("shards: replayed_report"), "{why}");
}

#[test]
fn a_shard_that_dies_mid_job_fails_the_job_with_no_partial_release() {
    let w = world();
    let mut real = shards(&w, 3);
    let peers = attested(&w, &real);
    let q = query(&w, "dies");
    owner_releases(&w, &q, &peers);
    let victim = real.remove(1);
    let killer = std::thread::spawn(move || {
        // After the work went out (attestation takes well under this), before the reports.
        std::thread::sleep(Duration::from_millis(DEADLINE_MS / 2));
        drop(victim);
    });
    let reply = provider_submits(&w, &q);
    killer.join().unwrap();
    let why = failed_why(&w, &reply);
    assert!(why.starts_with("shards: shard_lost"), "{why}");
}

#[test]
fn shards_are_named_only_by_the_owner_of_the_grant_and_a_missing_shard_spends_nothing() {
    let w = world();
    let real = shards(&w, 2);
    let peers = attested(&w, &real);
    // The owner released the query's grant on its own channel; another channel (the
    // provider's, say, or the host's) names shards for it: refused.
    let q = query(&w, "not-granted-here");
    let spec = w.read_query(&q);
    assert!(owner_releases(&w, &q, &[]).is_none());
    let mut c = raw_enclave_client(&w.front);
    transport::send(&mut c, &ClientMessage::Attest { nonce: Bytes(vec![6; 32]) }).unwrap();
    let _: EnclaveMessage = transport::recv(&mut c).unwrap();
    transport::send(&mut c, &ClientMessage::NameShards { query_digest: spec.digest(), shards: peers.clone() }).unwrap();
    let reply: EnclaveMessage = transport::recv(&mut c).unwrap();
    assert!(matches!(&reply, EnclaveMessage::Error { code, .. } if code.as_str() == "shards_not_granted"), "{reply:?}");
    // A shard named twice: refused.
    let twice = vec![peers[0].clone(), peers[0].clone()];
    let named = owner_releases(&w, &query(&w, "twice"), &twice).unwrap();
    assert!(matches!(&named, EnclaveMessage::Error { code, .. } if code.as_str() == "bad_shards"), "{named:?}");
    // A named shard that is gone by the submission: refused before the spend, with the
    // reason, and the grant is still pending (nothing spent, nothing logged as spent).
    let q = query(&w, "gone");
    owner_releases(&w, &q, &peers);
    drop(real);
    let before = w.audit_events();
    let reply = provider_submits(&w, &q);
    assert!(
        matches!(&reply.message, EnclaveMessage::Error { code, .. } if code.as_str() == "shard_unavailable"),
        "{:?}",
        reply.message
    );
    assert_eq!(w.audit_events(), before, "a refusal before the spend logs nothing");
}

#[test]
/// The owner's and the provider's own tools: `cleanroom release --shard …` attests every
/// shard and names them; `cleanroom submit` gets the signed result; `verify-result` says
/// it ran across the shards. A shard that fails its attestation stops the release before
/// anything is granted.
fn the_owner_shards_a_query_with_cleanroom_release() {
    let w = world();
    let three = shards(&w, 3);
    let q = query(&w, "cli-sharded");
    let release = |eps: &[&str]| {
        let (keys, ledger, policy) = (w.keys.to_str().unwrap(), w.ledger.to_str().unwrap(), w.policy.to_str().unwrap());
        let mut args = vec!["release", "--front-door", &w.front, "--expect-pcr0", &w.pcr0, "--allow-simulated"];
        args.extend(["--keys", keys, "--ledger", ledger, "--policy", policy, "--query", q.to_str().unwrap()]);
        for ep in eps {
            args.extend(["--shard", ep]);
        }
        w.cr(&args)
    };
    // A "shard" that is the coordinator's own front door answers as no shard does.
    let spent = w.spent_epsilon();
    let o = release(&[&three[0].endpoint, &w.front]);
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(w.spent_epsilon(), spent, "nothing granted when a shard fails its attestation");
    let eps: Vec<&str> = three.iter().map(|n| n.endpoint.as_str()).collect();
    let o = release(&eps);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("named 3 shards"), "{}", text(&o));
    let (o, result) = w.submit_query(&q, &credit_lr_wasm(), &w.index);
    assert!(o.status.success(), "{}", text(&o));
    let v = w.verify_result(&result);
    assert!(v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("run across 3 shard enclaves"), "{}", text(&v));
    assert!(text(&v).contains("INSECURE FIXED NOISE"), "{}", text(&v));
    assert_eq!(read_result(&result).shard_keys, attested_keys(&three, &w));
}
