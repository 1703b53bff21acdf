//! AWS Nitro Enclaves: the Nitro Secure Module (NSM) behind `/dev/nsm`.
//!
//! * `attest` asks the NSM for an attestation document carrying `nonce`, `user_data`
//!   and `public_key`; the COSE_Sign1 bytes are returned exactly as the NSM produced them
//!   (never re-encoded: the signature covers those bytes).
//! * `extend_and_lock` extends a PCR (`PCR = SHA-384(PCR || data)`), locks it, and reads
//!   it back to check that it is locked and holds the value the extension produced.
//! * `random` is the NSM's `GetRandom`, repeated until the buffer is full.
//!
//! The hardware is reached through [`NsmDevice`]. [`NsmDriver`] is the real one (the
//! `aws-nitro-enclaves-nsm-api` driver: CBOR request/response over an ioctl on
//! `/dev/nsm`). **The real device path is untested here: there is no Nitro hardware on
//! the development machines or in CI.** The tests use a fake device that speaks the same
//! CBOR wire format as the driver and replays genuine AWS-signed attestation documents
//! from `shared/testdata/attestation/nitro/`, so everything above the ioctl is covered.

use super::{Platform, PlatformError};
use aws_nitro_enclaves_nsm_api::api::{Digest, ErrorCode, Request, Response};
use serde_bytes::ByteBuf;
use std::fs::File;
use std::os::fd::AsRawFd;

/// The NSM device node inside a Nitro enclave.
pub const NSM_DEVICE: &str = "/dev/nsm";

const NAME: &str = "nitro";

/// Upper bound on `GetRandom` round trips for one `random` call (the NSM returns a few
/// hundred bytes per call; our callers ask for at most a few dozen).
const MAX_RANDOM_CALLS: usize = 1024;

/// One request/response exchange with a Nitro Secure Module.
pub trait NsmDevice: Send + Sync {
    fn process(&self, request: Request) -> Response;
}

/// The real NSM: `/dev/nsm`, driven by `aws_nitro_enclaves_nsm_api::driver`.
///
/// The device file is opened here rather than with `nsm_init` so that a failure carries
/// the operating system's reason; requests go through `nsm_process_request` on its fd.
/// Untested without Nitro hardware.
pub struct NsmDriver {
    file: File,
}

impl NsmDriver {
    pub fn open(path: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        Ok(NsmDriver { file })
    }
}

impl NsmDevice for NsmDriver {
    fn process(&self, request: Request) -> Response {
        aws_nitro_enclaves_nsm_api::driver::nsm_process_request(self.file.as_raw_fd(), request)
    }
}

/// The Nitro platform over any [`NsmDevice`].
pub struct NitroPlatform {
    device: Box<dyn NsmDevice>,
    module_id: String,
    /// Set by the first attestation: did the NSM answer with QEMU's unsigned document?
    emulated: std::sync::OnceLock<bool>,
}

fn device_error(request: &'static str, reason: impl Into<String>) -> PlatformError {
    PlatformError::Device { platform: NAME, request, reason: reason.into() }
}

fn nsm_error(request: &'static str, response: Response) -> PlatformError {
    match response {
        Response::Error(code) => device_error(request, format!("NSM error {code:?}")),
        other => device_error(request, format!("unexpected NSM response {}", response_kind(&other))),
    }
}

fn response_kind(r: &Response) -> &'static str {
    match r {
        Response::DescribePCR { .. } => "DescribePCR",
        Response::ExtendPCR { .. } => "ExtendPCR",
        Response::LockPCR => "LockPCR",
        Response::LockPCRs => "LockPCRs",
        Response::DescribeNSM { .. } => "DescribeNSM",
        Response::Attestation { .. } => "Attestation",
        Response::GetRandom { .. } => "GetRandom",
        Response::Error(_) => "Error",
        _ => "unknown",
    }
}

impl NitroPlatform {
    /// Opens `/dev/nsm` and checks that it answers as an NSM. Fails (never falls back)
    /// when the device is absent.
    pub fn open() -> Result<Self, PlatformError> {
        Self::open_path(NSM_DEVICE)
    }

    /// [`open`](Self::open) for another device node (tests use a node that is not an NSM).
    pub fn open_path(path: &'static str) -> Result<Self, PlatformError> {
        let unusable = |reason: String| PlatformError::DeviceUnavailable { platform: NAME, path, reason };
        let driver = NsmDriver::open(path).map_err(|e| unusable(e.to_string()))?;
        Self::with_device(Box::new(driver)).map_err(|e| unusable(e.to_string()))
    }

    /// The platform over `device`, after a `DescribeNSM` probe: the device must report
    /// SHA-384 PCRs and enough of them to hold the policy PCR.
    pub fn with_device(device: Box<dyn NsmDevice>) -> Result<Self, PlatformError> {
        match device.process(Request::DescribeNSM) {
            Response::DescribeNSM { digest, max_pcrs, module_id, .. } => {
                if digest != Digest::SHA384 {
                    return Err(device_error("DescribeNSM", format!("PCR digest is {digest:?}, expected SHA384")));
                }
                if max_pcrs <= super::POLICY_PCR {
                    return Err(device_error(
                        "DescribeNSM",
                        format!("only {max_pcrs} PCRs; PCR{} is needed for the policy", super::POLICY_PCR),
                    ));
                }
                Ok(NitroPlatform { device, module_id, emulated: std::sync::OnceLock::new() })
            }
            other => Err(nsm_error("DescribeNSM", other)),
        }
    }

    /// The NSM's module id (`i-…-enc…`), as reported at open.
    pub fn module_id(&self) -> &str {
        &self.module_id
    }
}

impl Platform for NitroPlatform {
    fn kind(&self) -> protocol::platform::Platform {
        protocol::platform::Platform::Nitro
    }

    fn simulated(&self) -> bool {
        false
    }

    fn emulated_nsm(&self) -> bool {
        self.emulated.get().copied().unwrap_or(false)
    }

    fn attest(&self, nonce: Option<&[u8]>, user_data: &[u8], public_key: &[u8]) -> Result<Vec<u8>, PlatformError> {
        let request = Request::Attestation {
            user_data: Some(ByteBuf::from(user_data)),
            nonce: nonce.map(ByteBuf::from),
            public_key: Some(ByteBuf::from(public_key)),
        };
        match self.device.process(request) {
            Response::Attestation { document } if !document.is_empty() => {
                // QEMU's nitro-enclave machine emulates the NSM without signing; say so once,
                // loudly, on the console (the owner's verifier refuses such documents unless
                // told to accept them as a test root).
                self.emulated.get_or_init(|| {
                    let emulated = attestation_verifier::emulated::extract_claims(&document).is_ok();
                    if emulated {
                        eprintln!(
                            "enclave-app: EMULATED NSM: the NSM returned an unsigned document \
                             (QEMU nitro-enclave machine); this is not AWS Nitro hardware"
                        );
                    }
                    emulated
                });
                Ok(document)
            }
            Response::Attestation { .. } => Err(device_error("Attestation", "empty document")),
            Response::Error(ErrorCode::InputTooLarge) => Err(device_error(
                "Attestation",
                format!(
                    "NSM error InputTooLarge (nonce {} B, user_data {} B, public_key {} B)",
                    nonce.map_or(0, <[u8]>::len),
                    user_data.len(),
                    public_key.len()
                ),
            )),
            other => Err(nsm_error("Attestation", other)),
        }
    }

    fn extend_and_lock(&self, index: u16, data: &[u8]) -> Result<(), PlatformError> {
        let extended = match self.device.process(Request::ExtendPCR { index, data: data.to_vec() }) {
            Response::ExtendPCR { data } => data,
            Response::Error(ErrorCode::ReadOnlyIndex) => return Err(PlatformError::Locked(index)),
            other => return Err(nsm_error("ExtendPCR", other)),
        };
        match self.device.process(Request::LockPCR { index }) {
            Response::LockPCR => {}
            other => return Err(nsm_error("LockPCR", other)),
        }
        // Read it back: the attested state must be the value we just produced, locked.
        match self.device.process(Request::DescribePCR { index }) {
            Response::DescribePCR { lock: true, data } if data == extended => Ok(()),
            Response::DescribePCR { lock, .. } => Err(device_error(
                "DescribePCR",
                format!(
                    "PCR{index} reads back {} after extend and lock",
                    if lock { "another value" } else { "unlocked" }
                ),
            )),
            other => Err(nsm_error("DescribePCR", other)),
        }
    }

    fn random(&self, buf: &mut [u8]) -> Result<(), PlatformError> {
        let mut filled = 0;
        let mut calls = 0;
        while filled < buf.len() {
            calls += 1;
            if calls > MAX_RANDOM_CALLS {
                return Err(PlatformError::Random);
            }
            match self.device.process(Request::GetRandom) {
                Response::GetRandom { random } if !random.is_empty() => {
                    let n = random.len().min(buf.len() - filled);
                    buf[filled..filled + n].copy_from_slice(&random[..n]);
                    filled += n;
                }
                _ => return Err(PlatformError::Random),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;
    use crate::platform::{extend_pcr, POLICY_PCR};
    use attestation_verifier::{verify_evidence, Error, Expectations, NitroExpectations, Options, UnixTime};
    use serde_cbor::Value;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// What the driver allows on the wire (`NSM_REQUEST_MAX_SIZE` / `NSM_RESPONSE_MAX_SIZE`).
    const WIRE_REQUEST_MAX: usize = 0x1000;
    const WIRE_RESPONSE_MAX: usize = 0x3000;

    #[derive(Default)]
    struct FakeState {
        pcrs: BTreeMap<u16, (Vec<u8>, bool)>,
        /// Every request as it crossed the wire (decoded CBOR).
        log: Vec<Value>,
    }

    /// A fake NSM at the driver boundary. Requests are CBOR-encoded exactly as
    /// `nsm_process_request` encodes them, answered at the CBOR level, and the answer is
    /// decoded as the driver decodes it. Attestation replays a genuine document; PCRs
    /// and randomness behave like the NSM's.
    struct FakeNsm {
        document: Vec<u8>,
        random_chunk: usize,
        fail_attestation: Option<&'static str>,
        state: Arc<Mutex<FakeState>>,
    }

    impl FakeNsm {
        fn new(document: Vec<u8>) -> Self {
            FakeNsm { document, random_chunk: 256, fail_attestation: None, state: Default::default() }
        }

        fn handle(&self, request: Value) -> Value {
            let mut st = self.state.lock().unwrap();
            st.log.push(request.clone());
            let (kind, body) = match &request {
                Value::Text(kind) => (kind.as_str(), BTreeMap::new()),
                Value::Map(m) if m.len() == 1 => match m.iter().next().unwrap() {
                    (Value::Text(kind), Value::Map(body)) => (kind.as_str(), body.clone()),
                    _ => return err("InvalidArgument"),
                },
                _ => return err("InvalidArgument"),
            };
            let field = |name: &str| body.get(&Value::Text(name.into())).cloned();
            let index = || match field("index") {
                Some(Value::Integer(i)) => u16::try_from(i).ok(),
                _ => None,
            };
            match kind {
                "DescribeNSM" => variant(
                    "DescribeNSM",
                    vec![
                        ("version_major", Value::Integer(1)),
                        ("version_minor", Value::Integer(0)),
                        ("version_patch", Value::Integer(0)),
                        ("module_id", Value::Text("i-0fake-enc0fake".into())),
                        ("max_pcrs", Value::Integer(32)),
                        ("locked_pcrs", Value::Array((0..16).map(Value::Integer).collect())),
                        ("digest", Value::Text("SHA384".into())),
                    ],
                ),
                "Attestation" => match self.fail_attestation {
                    Some(code) => err(code),
                    None => variant("Attestation", vec![("document", Value::Bytes(self.document.clone()))]),
                },
                "ExtendPCR" => {
                    let (Some(i), Some(Value::Bytes(data))) = (index(), field("data")) else {
                        return err("InvalidArgument");
                    };
                    let pcr = st.pcrs.entry(i).or_insert_with(|| (vec![0; 48], false));
                    if pcr.1 {
                        return err("ReadOnlyIndex");
                    }
                    pcr.0 = extend_pcr(&pcr.0, &data);
                    variant("ExtendPCR", vec![("data", Value::Bytes(pcr.0.clone()))])
                }
                "LockPCR" => {
                    let Some(i) = index() else { return err("InvalidArgument") };
                    st.pcrs.entry(i).or_insert_with(|| (vec![0; 48], false)).1 = true;
                    Value::Text("LockPCR".into())
                }
                "DescribePCR" => {
                    let Some(i) = index() else { return err("InvalidArgument") };
                    let (data, lock) = st.pcrs.get(&i).cloned().unwrap_or((vec![0; 48], false));
                    variant("DescribePCR", vec![("lock", Value::Bool(lock)), ("data", Value::Bytes(data))])
                }
                "GetRandom" => {
                    let bytes = (0..self.random_chunk).map(|i| (i * 7 + st.log.len()) as u8).collect();
                    variant("GetRandom", vec![("random", Value::Bytes(bytes))])
                }
                _ => err("InvalidOperation"),
            }
        }
    }

    fn variant(name: &str, fields: Vec<(&str, Value)>) -> Value {
        let body = fields.into_iter().map(|(k, v)| (Value::Text(k.into()), v)).collect();
        Value::Map(BTreeMap::from([(Value::Text(name.into()), Value::Map(body))]))
    }

    fn err(code: &str) -> Value {
        Value::Map(BTreeMap::from([(Value::Text("Error".into()), Value::Text(code.into()))]))
    }

    impl NsmDevice for FakeNsm {
        fn process(&self, request: Request) -> Response {
            let wire = serde_cbor::to_vec(&request).expect("encode request as the driver does");
            if wire.len() > WIRE_REQUEST_MAX {
                return Response::Error(ErrorCode::InputTooLarge);
            }
            let reply = self.handle(serde_cbor::from_slice(&wire).expect("request is CBOR"));
            let reply = serde_cbor::to_vec(&reply).unwrap();
            assert!(reply.len() <= WIRE_RESPONSE_MAX, "response would not fit the driver's buffer");
            serde_cbor::from_slice(&reply).unwrap_or(Response::Error(ErrorCode::InternalError))
        }
    }

    fn platform(fake: FakeNsm) -> (NitroPlatform, Arc<Mutex<FakeState>>) {
        let state = fake.state.clone();
        (NitroPlatform::with_device(Box::new(fake)).expect("fake NSM opens"), state)
    }

    fn bytes_field(v: &Value, kind: &str, name: &str) -> Option<Vec<u8>> {
        let Value::Map(m) = v else { panic!("not a map: {v:?}") };
        let Some(Value::Map(body)) = m.get(&Value::Text(kind.into())) else { panic!("not {kind}: {v:?}") };
        match body.get(&Value::Text(name.into())) {
            Some(Value::Bytes(b)) => Some(b.clone()),
            Some(Value::Null) | None => None,
            Some(other) => panic!("{name} is not a byte string on the wire: {other:?}"),
        }
    }

    /// Every genuine Nitro document goes through the platform byte for byte and still
    /// verifies with attestation-verifier at the time listed for it; the NSM saw exactly
    /// the nonce, user_data and public_key we asked for, as CBOR byte strings.
    #[test]
    fn attest_passes_real_documents_through_unchanged() {
        let vectors = testdata::vectors("nitro");
        assert_eq!(vectors.len(), 8, "expected the 8 Nitro documents of the README");
        for v in vectors {
            let (p, state) = platform(FakeNsm::new(v.bytes.clone()));
            assert_eq!(p.module_id(), "i-0fake-enc0fake");
            let nonce = b"fresh nonce from the owner";
            let user_data = [0x5au8; 32];
            let public_key = [0x11u8; 32];
            let doc = p.attest(Some(nonce), &user_data, &public_key).unwrap();
            assert_eq!(doc, v.bytes, "{}: document altered", v.file);

            let st = state.lock().unwrap();
            let req = st.log.last().unwrap();
            assert_eq!(bytes_field(req, "Attestation", "nonce").as_deref(), Some(&nonce[..]));
            assert_eq!(bytes_field(req, "Attestation", "user_data").as_deref(), Some(&user_data[..]));
            assert_eq!(bytes_field(req, "Attestation", "public_key").as_deref(), Some(&public_key[..]));

            let opts = Options { allow_debug: true, ..Default::default() };
            let at = UnixTime::from_secs(v.verify_at);
            let verdict = verify_evidence(
                attestation_verifier::Platform::Nitro,
                &doc,
                &Expectations::Nitro(NitroExpectations::default()),
                &opts,
                at,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", v.file));
            assert!(!verdict.simulated);
            assert_eq!(verdict.platform, attestation_verifier::Platform::Nitro);
        }
    }

    /// The fake replays an old document, so the owner's nonce check must refuse it:
    /// nothing in the platform can make a replayed document look fresh.
    #[test]
    fn replayed_document_fails_the_owners_nonce_check() {
        let v = testdata::vector("nitro/nitro_privacykit_2025_release.cbor");
        let (p, _) = platform(FakeNsm::new(v.bytes.clone()));
        let nonce = b"owner nonce 0123456789";
        let doc = p.attest(Some(nonce), b"binding", b"key").unwrap();
        let expect = Expectations::Nitro(NitroExpectations { nonce: Some(nonce.to_vec()), ..Default::default() });
        let at = UnixTime::from_secs(v.verify_at);
        let r = verify_evidence(attestation_verifier::Platform::Nitro, &doc, &expect, &Options::default(), at);
        assert_eq!(r.err(), Some(Error::NonceMismatch));
    }

    #[test]
    fn boot_attestation_without_nonce_sends_null() {
        let v = testdata::vector("nitro/nitro_oyster_2024_aws.cbor");
        let (p, state) = platform(FakeNsm::new(v.bytes.clone()));
        p.attest(None, b"policy digest", b"key").unwrap();
        let st = state.lock().unwrap();
        let Value::Map(m) = st.log.last().unwrap() else { panic!() };
        let Some(Value::Map(body)) = m.get(&Value::Text("Attestation".into())) else { panic!() };
        assert_eq!(body.get(&Value::Text("nonce".into())), Some(&Value::Null));
    }

    #[test]
    fn extend_then_lock_then_refuse() {
        let (p, state) = platform(FakeNsm::new(vec![1]));
        p.extend_and_lock(POLICY_PCR, b"policy digest").unwrap();
        let want = extend_pcr(&[0u8; 48], b"policy digest");
        assert_eq!(state.lock().unwrap().pcrs.get(&POLICY_PCR), Some(&(want, true)));
        let kinds: Vec<String> = state
            .lock()
            .unwrap()
            .log
            .iter()
            .map(|v| match v {
                Value::Map(m) => match m.keys().next() {
                    Some(Value::Text(t)) => t.clone(),
                    _ => "?".into(),
                },
                Value::Text(t) => t.clone(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(kinds, ["DescribeNSM", "ExtendPCR", "LockPCR", "DescribePCR"]);
        assert!(matches!(p.extend_and_lock(POLICY_PCR, b"other"), Err(PlatformError::Locked(16))));
    }

    #[test]
    fn random_spans_several_nsm_calls() {
        let mut fake = FakeNsm::new(vec![1]);
        fake.random_chunk = 7;
        let (p, state) = platform(fake);
        let mut buf = [0u8; 32];
        p.random(&mut buf).unwrap();
        assert!(buf.iter().any(|b| *b != 0));
        // DescribeNSM + ceil(32 / 7) GetRandom calls.
        assert_eq!(state.lock().unwrap().log.len(), 1 + 5);

        let mut empty = FakeNsm::new(vec![1]);
        empty.random_chunk = 0;
        let (p, _) = platform(empty);
        assert!(matches!(p.random(&mut buf), Err(PlatformError::Random)));
    }

    #[test]
    fn device_errors_are_named() {
        let mut fake = FakeNsm::new(vec![1]);
        fake.fail_attestation = Some("InternalError");
        let (p, _) = platform(fake);
        let e = p.attest(Some(b"n"), b"u", b"k").unwrap_err();
        assert!(matches!(e, PlatformError::Device { platform: "nitro", request: "Attestation", .. }), "{e:?}");

        // A request larger than the driver's 4 KiB request buffer.
        let (p, _) = platform(FakeNsm::new(vec![1]));
        let e = p.attest(Some(b"n"), &[0u8; 5000], b"k").unwrap_err();
        assert!(e.to_string().contains("InputTooLarge"), "{e}");
    }

    /// The real driver path on a node that is not an NSM: the ioctl fails, the probe
    /// reports it, and `open` refuses.
    #[test]
    fn a_device_that_is_not_an_nsm_is_refused() {
        let e = NitroPlatform::open_path("/dev/null").err().expect("/dev/null is not an NSM");
        assert!(matches!(e, PlatformError::DeviceUnavailable { platform: "nitro", path: "/dev/null", .. }), "{e:?}");
        assert!(e.to_string().contains("DescribeNSM"), "{e}");
    }
}
