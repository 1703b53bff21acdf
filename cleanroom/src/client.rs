//! The client side of the attested channel, used by owners and providers.
//!
//! Connect through the (untrusted) host proxy, finish a TLS 1.3 handshake without PKI,
//! then ask for evidence bound to a fresh nonce, this connection's TLS exporter and the
//! enclave's key, and verify it with `attestation-verifier` against the measurement and
//! policy the caller expects. Only a session that passed every check is returned; the
//! caller sends secrets over nothing else.

use attestation_verifier::{verify_evidence, Expectations, NitroExpectations, Options, Platform, UnixTime, Verdict};
use protocol::wire::{channel_binding, BlobRequest, ClientMessage, EnclaveMessage, HostResponse, EXPORTER_LABEL};
use protocol::{Bytes, Digest};
use rustls::{ClientConnection, StreamOwned};
use std::collections::BTreeMap;
use std::time::Duration;
use transport::{Endpoint, Stream, TransportError};

pub use protocol::pcr::POLICY_PCR;
pub use tlog::signer::ImageReference;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the enclave: {0}")]
    Transport(#[from] TransportError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("attestation refused: {0}")]
    Attestation(#[from] attestation_verifier::Error),
    #[error("attestation refused: {0}")]
    Binding(&'static str),
    #[error(
        "attestation refused: the enclave sent {platform} evidence, which {given} cannot describe (give {needed})"
    )]
    WrongReference { platform: String, given: &'static str, needed: &'static str },
    #[error("enclave refused: {code}: {message}")]
    Refused { code: protocol::refusal::RefusalCode, message: String },
    #[error("unexpected reply from the enclave")]
    Unexpected,
    #[error("blob store: {0}")]
    Blob(String),
}

/// What the caller expects the enclave to be.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The image, recomputed from source: boot PCRs (at least PCR0; PCR1, PCR2 from
    /// `eif-build`'s pcrs.json) for Nitro and simulated evidence, or the SEV-SNP launch
    /// reference (`--expect-snp`: measurement, minimum TCB, maximum VMPL, guest policy).
    /// Evidence of the other kind is refused: a PCR never stands for a launch measurement.
    pub image: ImageReference,
    pub policy_digest: Digest,
    /// Accept simulated (insecure, development) evidence. Off unless asked for.
    pub allow_simulated: bool,
    /// Accept the UNSIGNED documents of QEMU's emulated NSM (`--allow-emulated-nsm`; a
    /// test root, see `attestation_verifier::emulated`). Off unless asked for.
    pub allow_emulated_nsm: bool,
    /// Largest accepted age of the evidence.
    pub max_age: Duration,
}

impl Expected {
    /// The image and policy to expect, with evidence at most five minutes old.
    pub fn new(image: ImageReference, policy_digest: Digest, allow_simulated: bool) -> Expected {
        Expected { image, policy_digest, allow_simulated, allow_emulated_nsm: false, max_age: Duration::from_secs(300) }
    }

    /// Also accept unsigned emulated-NSM evidence (QEMU `nitro-enclave`), as a test root.
    pub fn with_emulated_nsm(mut self, allow: bool) -> Expected {
        self.allow_emulated_nsm = allow;
        self
    }
}

fn parsed<T>(path: &std::path::Path, r: Result<T, String>) -> Result<T, crate::Error> {
    r.map_err(|why| crate::Error::Parse { path: path.to_path_buf(), why })
}

/// The image reference from exactly one of the CLI's `--expect-pcr0 HEX`, `--expect-pcrs
/// pcrs.json` (eif-build's) or `--expect-snp FILE` (measurement, minimum TCB, maximum VMPL).
pub fn image_reference(
    pcr0: Option<&str>,
    pcrs: Option<&std::path::Path>,
    snp: Option<&std::path::Path>,
) -> Result<ImageReference, crate::Error> {
    use crate::files::{parse_hex, read_text};
    Ok(match (pcr0, pcrs, snp) {
        (Some(hex), None, None) => ImageReference::Pcrs(BTreeMap::from([(0u16, parse_hex(hex, "--expect-pcr0")?)])),
        (None, Some(file), None) => ImageReference::Pcrs(parsed(file, read_pcrs_json(&read_text(file)?))?),
        (None, None, Some(file)) => ImageReference::Snp(parsed(
            file,
            attestation_verifier::SnpReference::from_json(&read_text(file)?).map_err(|e| e.to_string()),
        )?),
        (None, None, None) => {
            return Err(crate::Error::Usage(
                "give --expect-pcr0 HEX, --expect-pcrs pcrs.json or --expect-snp FILE".into(),
            ))
        }
        _ => return Err(crate::Error::Usage("give only one of --expect-pcr0, --expect-pcrs, --expect-snp".into())),
    })
}

/// PCR16 after the enclave extends it once with the policy digest.
pub use protocol::pcr::policy_pcr as expected_policy_pcr;

pub struct AttestedSession {
    tls: StreamOwned<ClientConnection, Stream>,
    pub verdict: Verdict,
    pub public_key: Vec<u8>,
    pub platform: protocol::platform::Platform,
    pub simulated: bool,
    pub evidence: Vec<u8>,
    /// This connection's TLS exporter: what a provider's proof of possession signs.
    exporter: [u8; 32],
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Connect, attest and verify. The returned session is the only thing secrets go over.
pub fn connect_attested(front_door: &Endpoint, expect: &Expected) -> Result<AttestedSession, ClientError> {
    let (config, recorder) = attested_tls::client_config().map_err(|e| ClientError::Tls(e.to_string()))?;
    let conn =
        ClientConnection::new(config, attested_tls::server_name()).map_err(|e| ClientError::Tls(e.to_string()))?;
    let stream = Stream::connect_retry(front_door, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(600))).map_err(TransportError::Io)?;
    let mut tls = StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| ClientError::Tls(e.to_string()))?;
    }

    let nonce = fresh_nonce()?;
    transport::send(&mut tls, &ClientMessage::Attest { nonce: Bytes(nonce.to_vec()) })?;
    let (platform, simulated, document, public_key) = match transport::recv(&mut tls)? {
        EnclaveMessage::Evidence { platform, simulated, document, public_key, .. } => {
            (platform, simulated, document.0, public_key.0)
        }
        EnclaveMessage::Error { code, message } => return Err(ClientError::Refused { code, message }),
        _ => return Err(ClientError::Unexpected),
    };

    let mut exporter = [0u8; 32];
    tls.conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, None)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let binding = channel_binding(&nonce, &exporter, &public_key, &expect.policy_digest);
    let kind =
        tlog::signer::evidence_kind(platform).map_err(|_| ClientError::Binding("unknown platform in evidence"))?;
    let (expectations, options) = evidence_expectations(kind, expect, &nonce, &binding, &public_key)?;
    let verdict = verify_evidence(kind, &document, &expectations, &options, UnixTime::from_secs(unix_now()))?;
    // The TLS server must hold the attested key: no relay can substitute its own certificate.
    if !recorder.certifies(&public_key) {
        return Err(ClientError::Binding("TLS certificate key is not the attested key (a relay terminated TLS)"));
    }
    Ok(AttestedSession { tls, verdict, public_key, platform, simulated, evidence: document, exporter })
}

/// Attest a shard enclave of a sharded job (docs/scale-out.md) against the same image and
/// policy as the coordinator: its evidence answers our nonce, binds this connection's
/// exporter and names its key, and its TLS certificate is for that key. Returns what the
/// owner names to the coordinator (`ClientMessage::NameShards`).
pub fn attest_shard(endpoint: &Endpoint, expect: &Expected) -> Result<protocol::wire::ShardPeer, ClientError> {
    use shard::wire::{evidence_binding, PeerMessage, Role};
    let (config, recorder) = attested_tls::client_config().map_err(|e| ClientError::Tls(e.to_string()))?;
    let conn =
        ClientConnection::new(config, attested_tls::server_name()).map_err(|e| ClientError::Tls(e.to_string()))?;
    let stream = Stream::connect_retry(endpoint, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(TransportError::Io)?;
    let mut tls = StreamOwned::new(conn, stream);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).map_err(|e| ClientError::Tls(e.to_string()))?;
    }
    let nonce = fresh_nonce()?;
    transport::send(&mut tls, &PeerMessage::Hello { job: None, nonce: Bytes(nonce.to_vec()) })?;
    let (platform, document, public_key) = match transport::recv(&mut tls)? {
        PeerMessage::Evidence { role: Role::Shard, platform, document, public_key, .. } => {
            (platform, document.0, public_key.0)
        }
        PeerMessage::Refused { reason } => {
            return Err(ClientError::Refused { code: protocol::refusal::RefusalCode::Unknown, message: reason })
        }
        _ => return Err(ClientError::Binding("the peer did not answer as a shard")),
    };
    let mut exporter = [0u8; 32];
    tls.conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, None)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    // No job yet: the owner attests the shard itself, before any job exists.
    let binding =
        evidence_binding(Role::Shard, &nonce, &exporter, &public_key, &expect.policy_digest, &Digest::default());
    let kind =
        tlog::signer::evidence_kind(platform).map_err(|_| ClientError::Binding("unknown platform in evidence"))?;
    let (expectations, options) = evidence_expectations(kind, expect, &nonce, &binding, &public_key)?;
    verify_evidence(kind, &document, &expectations, &options, UnixTime::from_secs(unix_now()))?;
    if !recorder.certifies(&public_key) {
        return Err(ClientError::Binding("TLS certificate key is not the attested key (a relay terminated TLS)"));
    }
    Ok(protocol::wire::ShardPeer { endpoint: endpoint.to_string(), public_key: Bytes(public_key) })
}

fn fresh_nonce() -> Result<[u8; 32], ClientError> {
    let mut nonce = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| ClientError::Tls("system randomness failed".into()))?;
    Ok(nonce)
}

/// What the evidence of `kind` must show for `expect`, on a channel with this `nonce`,
/// channel `binding` and enclave `public_key`; and the verifier options. SEV-SNP evidence
/// is checked against the owner's launch reference only, Nitro and simulated evidence
/// against PCRs only: the other pairing is refused before anything is verified.
pub fn evidence_expectations(
    kind: Platform,
    expect: &Expected,
    nonce: &[u8],
    binding: &Digest,
    public_key: &[u8],
) -> Result<(Expectations, Options), ClientError> {
    let expectations = match (kind, &expect.image) {
        // SEV-SNP has no PCRs: the owner's launch reference (measurement, minimum TCB,
        // maximum VMPL, guest policy) stands for them, and the policy digest, nonce and
        // channel binding are folded into REPORT_DATA.
        (Platform::Snp, ImageReference::Snp(reference)) => Expectations::Snp(
            reference.expectations(Some(
                protocol::wire::snp_report_data(
                    expect.policy_digest.as_bytes(),
                    Some(nonce),
                    binding.as_bytes(),
                    public_key,
                )
                .to_vec(),
            )),
        ),
        (_, ImageReference::Pcrs(image)) if kind != Platform::Snp => {
            if !image.contains_key(&0) {
                return Err(ClientError::Binding("no PCR0 expected"));
            }
            let mut pcrs = image.clone();
            pcrs.insert(POLICY_PCR, expected_policy_pcr(&expect.policy_digest));
            Expectations::Nitro(NitroExpectations {
                pcrs,
                nonce: Some(nonce.to_vec()),
                user_data: Some(binding.as_bytes().to_vec()),
                public_key: Some(public_key.to_vec()),
                max_age_ms: Some(expect.max_age.as_millis() as u64),
                module_id_prefix: None,
            })
        }
        (_, given) => {
            return Err(ClientError::WrongReference {
                platform: kind.to_string(),
                given: given.flag(),
                needed: if kind == Platform::Snp { "--expect-snp" } else { "--expect-pcr0 or --expect-pcrs" },
            })
        }
    };
    let options = Options {
        allow_simulated: expect.allow_simulated,
        allow_debug: expect.image.allows_debug(),
        allow_emulated_nsm: expect.allow_emulated_nsm,
    };
    Ok((expectations, options))
}

impl AttestedSession {
    /// The provider's proof of possession for submitting `query` on this channel.
    pub fn submission_proof(&self, provider: &protocol::signing::SigningKey, query: &protocol::Digest) -> Bytes {
        let binding = protocol::grant::submit_binding(&self.exporter, query);
        provider.sign_bytes(protocol::grant::SUBMIT_CONTEXT, binding.as_bytes().to_vec()).signature
    }

    pub fn call(&mut self, msg: &ClientMessage) -> Result<EnclaveMessage, ClientError> {
        transport::send(&mut self.tls, msg)?;
        match transport::recv(&mut self.tls)? {
            EnclaveMessage::Error { code, message } => Err(ClientError::Refused { code, message }),
            reply => Ok(reply),
        }
    }
}

/// Client of the host proxy's blob API.
pub struct BlobClient {
    s: Stream,
}

impl BlobClient {
    pub fn connect(ep: &Endpoint) -> Result<BlobClient, ClientError> {
        let s = Stream::connect_retry(ep, Duration::from_secs(10))?;
        Ok(BlobClient { s })
    }

    fn call(&mut self, req: &BlobRequest) -> Result<HostResponse, ClientError> {
        transport::send(&mut self.s, req)?;
        match transport::recv(&mut self.s)? {
            HostResponse::Error { code, message } => Err(ClientError::Blob(format!("{code}: {message}"))),
            r => Ok(r),
        }
    }

    /// Upload and check the host named it by its real content hash.
    pub fn put(&mut self, data: Vec<u8>) -> Result<Digest, ClientError> {
        let expected = Digest::of(&data);
        match self.call(&BlobRequest::Put { data: Bytes(data) })? {
            HostResponse::Stored { digest } if digest == expected => Ok(digest),
            HostResponse::Stored { .. } => Err(ClientError::Blob("host stored the blob under a wrong digest".into())),
            _ => Err(ClientError::Unexpected),
        }
    }

    /// Every line of the audit log, page by page.
    pub fn audit_log(&mut self) -> Result<Vec<String>, ClientError> {
        let mut lines = Vec::new();
        loop {
            match self.call(&BlobRequest::AuditLog { from: lines.len() as u64 })? {
                HostResponse::AuditLog { lines: page, more } => {
                    let empty = page.is_empty();
                    lines.extend(page);
                    if !more || empty {
                        return Ok(lines);
                    }
                }
                _ => return Err(ClientError::Unexpected),
            }
        }
    }

    /// Fetch a blob and check it is the one asked for.
    pub fn get(&mut self, digest: &Digest) -> Result<Vec<u8>, ClientError> {
        match self.call(&BlobRequest::Get { digest: *digest })? {
            HostResponse::Blob { data } if Digest::of(data.as_slice()) == *digest => Ok(data.0),
            HostResponse::Blob { .. } => Err(ClientError::Blob("host returned another blob than asked for".into())),
            _ => Err(ClientError::Unexpected),
        }
    }
}

impl audit::files::AuditSource for BlobClient {
    type Error = ClientError;
    fn audit_log(&mut self) -> Result<Vec<String>, ClientError> {
        BlobClient::audit_log(self)
    }
    fn get(&mut self, digest: &Digest) -> Result<Vec<u8>, ClientError> {
        BlobClient::get(self, digest)
    }
}

/// Read the boot PCRs from a `pcrs.json` in the shape `eif-build` and `nitro-cli
/// build-enclave` print: `{"Measurements": {"PCR0": hex, "PCR1": hex, "PCR2": hex, ...}}`.
pub fn read_pcrs_json(text: &str) -> Result<BTreeMap<u16, Vec<u8>>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let m = v.get("Measurements").and_then(|m| m.as_object()).ok_or("no \"Measurements\" object")?;
    let mut out = BTreeMap::new();
    for (k, val) in m {
        let Some(index) = k.strip_prefix("PCR").and_then(|i| i.parse::<u16>().ok()) else { continue };
        let hex_value = val.as_str().ok_or_else(|| format!("{k} is not a string"))?;
        let bytes = hex::decode(hex_value).map_err(|_| format!("{k} is not hex"))?;
        if bytes.len() != 48 {
            return Err(format!("{k} is {} bytes, a SHA-384 PCR is 48", bytes.len()));
        }
        out.insert(index, bytes);
    }
    if !out.contains_key(&0) {
        return Err("no PCR0".into());
    }
    Ok(out)
}

/// A 32-byte secret kept as one hex line in a file of mode 0600 (a provider's Ed25519 seed,
/// an owner's X25519 diagnostics key). Every copy is zeroized when dropped.
fn read_secret_file(path: &std::path::Path, what: &str) -> Result<zeroize::Zeroizing<[u8; 32]>, String> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let bytes =
        zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| format!("{}: not a hex key", path.display()))?);
    let secret: [u8; 32] =
        bytes.as_slice().try_into().map_err(|_| format!("{}: a {what} is 32 bytes", path.display()))?;
    Ok(zeroize::Zeroizing::new(secret))
}

/// Create a fresh secret file (refuses to overwrite one).
fn create_secret_file(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret[..])
        .map_err(|_| "system randomness failed".to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = zeroize::Zeroizing::new(hex::encode(&secret[..]));
    f.write_all(text.as_bytes()).and_then(|_| f.write_all(b"\n")).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(secret)
}

/// A provider's Ed25519 key file (`cleanroom keygen`).
pub fn read_provider_key(path: &std::path::Path) -> Result<protocol::signing::SigningKey, String> {
    Ok(protocol::signing::SigningKey::from_seed(*read_secret_file(path, "provider key")?))
}

/// Create a provider key file and return the key.
pub fn create_provider_key(path: &std::path::Path) -> Result<protocol::signing::SigningKey, String> {
    Ok(protocol::signing::SigningKey::from_seed(*create_secret_file(path)?))
}

/// Create the owner's X25519 diagnostics key file and return its public half.
pub fn create_diagnostics_key(path: &std::path::Path) -> Result<[u8; 32], String> {
    Ok(protocol::diagnostics::public_key(&*create_secret_file(path)?))
}

/// Read the owner's X25519 diagnostics secret.
pub fn read_diagnostics_key(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>, String> {
    read_secret_file(path, "diagnostics key")
}

#[cfg(test)]
mod pcrs_json_tests {
    use super::*;

    #[test]
    fn reads_eif_build_output_and_rejects_bad_files() {
        let ok = format!(
            r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{0}","PCR2":"{1}"}}}}"#,
            "ab".repeat(48),
            "cd".repeat(48)
        );
        let m = read_pcrs_json(&ok).unwrap();
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert!(read_pcrs_json("{}").is_err());
        assert!(read_pcrs_json(r#"{"Measurements":{"PCR0":"zz"}}"#).is_err());
        assert!(read_pcrs_json(r#"{"Measurements":{"PCR0":"abcd"}}"#).is_err());
        assert!(read_pcrs_json(r#"{"Measurements":{"PCR1":"00"}}"#).is_err());
    }
}

/// The owner's SNP path at the library level: no SEV-SNP guest can run here, so the
/// genuine SNP reports in ../shared/testdata stand in for an enclave's evidence. What runs
/// is the client's own [`evidence_expectations`] and the same `verify_evidence` call
/// `connect_attested` makes; only REPORT_DATA is taken from the fixture (it was bound by
/// other software to its own nonce, not by our channel binding).
#[cfg(test)]
mod snp_reference_tests {
    use super::*;
    use attestation_verifier::snp::{encode_bundle, SnpCerts};
    use attestation_verifier::{Error, SnpReference};

    fn td(rel: &str) -> Vec<u8> {
        let p =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/attestation").join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    struct Fixture {
        name: String,
        bundle: Vec<u8>,
        at: UnixTime,
        e: serde_json::Value,
    }

    fn fixtures() -> Vec<Fixture> {
        let all: serde_json::Value = serde_json::from_slice(&td("expected.json")).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "snp")
            .map(|e| Fixture {
                name: e["file"].as_str().unwrap().to_owned(),
                bundle: encode_bundle(
                    &td(e["file"].as_str().unwrap()),
                    &SnpCerts::vek_only(td(e["vek"].as_str().unwrap())),
                ),
                at: UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap()),
                e: e.clone(),
            })
            .collect()
    }

    /// The `--expect-snp` file an owner writes for this launch (values from expected.json).
    fn reference(f: &Fixture) -> serde_json::Value {
        let t = &f.e["reported_tcb"];
        serde_json::json!({
            "measurement": f.e["measurement"],
            "min_tcb": {"bootloader": t["bootloader"], "tee": t["tee"], "snp": t["snp"], "microcode": t["microcode"]},
            "max_vmpl": f.e["vmpl"],
        })
    }

    fn expected(image: ImageReference) -> Expected {
        Expected {
            image,
            policy_digest: Digest::of(b"policy"),
            allow_simulated: false,
            allow_emulated_nsm: false,
            max_age: Duration::from_secs(300),
        }
    }

    fn snp(v: &serde_json::Value) -> ImageReference {
        ImageReference::Snp(SnpReference::from_json(&v.to_string()).unwrap())
    }

    /// The client's check of `f` against `image`: with REPORT_DATA as the client binds it
    /// (`bound`), or taken from the fixture.
    fn check_with(f: &Fixture, image: ImageReference, bound: bool) -> Result<Verdict, ClientError> {
        let expect = expected(image);
        let binding = Digest::of(b"channel");
        let (mut e, o) = evidence_expectations(Platform::Snp, &expect, &[7; 32], &binding, &[9; 32])?;
        if let (false, Expectations::Snp(e)) = (bound, &mut e) {
            e.report_data = Some(hex::decode(f.e["report_data"].as_str().unwrap()).unwrap());
        }
        Ok(verify_evidence(Platform::Snp, &f.bundle, &e, &o, f.at)?)
    }

    fn check(f: &Fixture, image: ImageReference) -> Result<Verdict, ClientError> {
        check_with(f, image, false)
    }

    #[test]
    fn genuine_snp_reports_meet_the_owners_reference_and_each_field_is_checked() {
        let all = fixtures();
        assert_eq!(all.len(), 4);
        for f in &all {
            let n = &f.name;
            let good = reference(f);
            // the client always binds REPORT_DATA to its channel: the genuine report was
            // bound to another, and is refused for that alone
            assert!(
                matches!(check_with(f, snp(&good), true), Err(ClientError::Attestation(Error::ReportDataMismatch))),
                "{n}"
            );
            let v = check(f, snp(&good)).unwrap_or_else(|e| panic!("{n}: {e}"));
            for c in ["measurement", "min_tcb", "vmpl", "report_data", "debug_policy"] {
                assert!(v.checks_passed.iter().any(|x| x == c), "{n}: {c}");
            }
            let refused = |v: serde_json::Value| match check(f, snp(&v)) {
                Err(ClientError::Attestation(e)) => e,
                other => panic!("{n}: {other:?}"),
            };
            let m = f.e["measurement"].as_str().unwrap();
            let other = format!("{}{}", &m[..94], if m.ends_with("00") { "01" } else { "00" });
            let mut v = good.clone();
            v["measurement"] = other.clone().into();
            assert_eq!(refused(v), Error::MeasurementMismatch { expected: other, actual: m.to_owned() }, "{n}");
            for component in ["bootloader", "tee", "snp", "microcode"] {
                let reported = good["min_tcb"][component].as_u64().unwrap() as u8;
                let mut v = good.clone();
                v["min_tcb"][component] = (reported + 1).into();
                assert_eq!(refused(v), Error::TcbTooLow { component, reported, minimum: reported + 1 }, "{n}");
            }
            let vmpl = f.e["vmpl"].as_u64().unwrap() as u32;
            if vmpl > 0 {
                let mut v = good.clone();
                v["max_vmpl"] = (vmpl - 1).into();
                assert_eq!(refused(v), Error::VmplTooHigh { vmpl, max: vmpl - 1 }, "{n}");
            }
            let mut v = good.clone();
            v["policy"] = serde_json::json!({"smt_allowed": false});
            assert_eq!(refused(v), Error::SmtNotAllowed, "{n}");
        }
    }

    #[test]
    fn the_debug_rule_reaches_the_verifier_options() {
        let f = fixtures().remove(0);
        let mut v = reference(&f);
        let d = Digest::of(b"c");
        let (_, o) = evidence_expectations(Platform::Snp, &expected(snp(&v)), &[0; 32], &d, &[0; 32]).unwrap();
        assert!(!o.allow_debug);
        v["policy"] = serde_json::json!({"debug_allowed": true});
        let (_, o) = evidence_expectations(Platform::Snp, &expected(snp(&v)), &[0; 32], &d, &[0; 32]).unwrap();
        assert!(o.allow_debug);
        let (_, o) = evidence_expectations(
            Platform::Nitro,
            &expected(ImageReference::Pcrs(BTreeMap::from([(0, vec![0; 48])]))),
            &[0; 32],
            &d,
            &[0; 32],
        )
        .unwrap();
        assert!(!o.allow_debug);
    }

    /// Before: the client put PCR0 where the launch measurement belongs. Now SNP evidence
    /// with PCRs expected is refused without comparing anything, even when the "PCR0"
    /// happens to equal the measurement; and an SNP reference does not describe Nitro or
    /// simulated evidence.
    #[test]
    fn pcrs_never_stand_for_a_launch_measurement() {
        let f = fixtures().remove(0);
        let m = hex::decode(f.e["measurement"].as_str().unwrap()).unwrap();
        let d = Digest::of(b"c");
        let pcrs = ImageReference::Pcrs(BTreeMap::from([(0, m)]));
        let r = evidence_expectations(Platform::Snp, &expected(pcrs), &[0; 32], &d, &[0; 32]);
        assert!(
            matches!(&r, Err(ClientError::WrongReference { platform, given, needed })
                if platform == "snp" && *given == "--expect-pcr0/--expect-pcrs" && *needed == "--expect-snp"),
            "{r:?}"
        );
        assert!(r.unwrap_err().to_string().contains("give --expect-snp"));
        for kind in [Platform::Nitro, Platform::Simulated] {
            let r = evidence_expectations(kind, &expected(snp(&reference(&f))), &[0; 32], &d, &[0; 32]);
            assert!(
                matches!(&r, Err(ClientError::WrongReference { given, needed, .. })
                    if *given == "--expect-snp" && *needed == "--expect-pcr0 or --expect-pcrs"),
                "{r:?}"
            );
        }
        let r = evidence_expectations(
            Platform::Nitro,
            &expected(ImageReference::Pcrs(BTreeMap::new())),
            &[0; 32],
            &d,
            &[0; 32],
        );
        assert!(matches!(r, Err(ClientError::Binding("no PCR0 expected"))));
    }
}
