//! What we say to `nitro-cli` and what we accept back. Pure: no process is started here.
//!
//! Facts about the tool (aws-nitro-enclaves-cli, `src/lib.rs` and
//! `src/common/json_output.rs`):
//! - `run-enclave --eif-path P --cpu-count N --memory MIB [--enclave-cid C]
//!   [--enclave-name NAME] [--debug-mode]` prints one JSON object on stdout: `EnclaveName`,
//!   `EnclaveID`, `ProcessID`, `EnclaveCID`, `NumberOfCPUs`, `CPUIDs`, `MemoryMiB`
//!   (progress lines go to stderr). The tool may give more memory than asked for.
//! - `describe-enclaves` prints a JSON array of objects with the same fields (`EnclaveName`
//!   optional) plus `State` (`RUNNING`, `TERMINATING`, `EMPTY`), `Flags` (`NONE` or
//!   `DEBUG_MODE`) and, in recent versions, `Measurements` (`PCR0`…) and image fields.
//! - `terminate-enclave --enclave-id ID` prints `{EnclaveName, EnclaveID, Terminated}`.
//! - `console --enclave-id ID` streams the console of a debug-mode enclave.
//! - CIDs 0 (auto), 1, 2, 3 (the parent) and `u32::MAX` are not enclave CIDs.
//!
//! Everything that comes back is untrusted host output, so it is parsed strictly: one JSON
//! value and nothing after it, every field we rely on present and typed, an enclave ID
//! that cannot be mistaken for an option when we pass it back.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The parent instance's vsock CID on Nitro (the enclave reaches the host there).
pub const PARENT_CID: u32 = 3;

/// A vsock CID an enclave may be given: 4 to `u32::MAX - 1`. Asking for a fixed CID (never
/// 0, "pick one") lets the relay target be known before the tool answers, and checked
/// against what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnclaveCid(u32);

impl EnclaveCid {
    pub fn new(cid: u64) -> Result<EnclaveCid, ConfigError> {
        match u32::try_from(cid) {
            Ok(c) if c > PARENT_CID && c != u32::MAX => Ok(EnclaveCid(c)),
            _ => Err(ConfigError::ReservedCid(cid)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A bad launch request, refused before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("enclave CID {0} is reserved or out of range: use 4 to 4294967294 (0 = auto, 1, 2 and 3 = the parent are not enclave CIDs)")]
    ReservedCid(u64),
    #[error("--cpu-count must be at least 1")]
    NoCpus,
    #[error("--memory-mib must be at least 1")]
    NoMemory,
    #[error("enclave name {0:?}: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with -)")]
    BadName(String),
}

/// One enclave launch, as the operator asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NitroConfig {
    pub eif: PathBuf,
    pub cpu_count: u32,
    pub memory_mib: u64,
    pub cid: EnclaveCid,
    /// Names our enclave, so one left behind (the proxy killed with SIGKILL) is found.
    pub name: String,
    /// Nitro debug mode: console readable by the host, and every PCR in the attestation
    /// document reads as zeros, so the owner's verification refuses the enclave.
    pub debug_mode: bool,
}

/// A name or ID we pass back to the tool as an argument value.
fn safe_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl NitroConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.cpu_count == 0 {
            return Err(ConfigError::NoCpus);
        }
        if self.memory_mib == 0 {
            return Err(ConfigError::NoMemory);
        }
        if !safe_token(&self.name, 64) {
            return Err(ConfigError::BadName(self.name.clone()));
        }
        Ok(())
    }

    /// `nitro-cli run-enclave …`, without the program name.
    pub fn run_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["run-enclave".into(), "--eif-path".into(), self.eif.clone().into()];
        a.extend(["--cpu-count".into(), self.cpu_count.to_string().into()]);
        a.extend(["--memory".into(), self.memory_mib.to_string().into()]);
        a.extend(["--enclave-cid".into(), self.cid.get().to_string().into()]);
        a.extend(["--enclave-name".into(), self.name.clone().into()]);
        if self.debug_mode {
            a.push("--debug-mode".into());
        }
        a
    }
}

pub fn describe_args() -> Vec<OsString> {
    vec!["describe-enclaves".into()]
}

pub fn terminate_args(id: &EnclaveId) -> Vec<OsString> {
    vec!["terminate-enclave".into(), "--enclave-id".into(), id.as_str().into()]
}

pub fn console_args(id: &EnclaveId) -> Vec<OsString> {
    vec!["console".into(), "--enclave-id".into(), id.as_str().into()]
}

/// An enclave ID as the tool printed it, checked to be a plain token (it is passed back
/// as an argument, so it must not look like an option or hold anything else).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnclaveId(String);

impl EnclaveId {
    pub fn parse(s: &str) -> Result<EnclaveId, OutputError> {
        if safe_token(s, 128) {
            Ok(EnclaveId(s.to_string()))
        } else {
            Err(OutputError::BadEnclaveId(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnclaveId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Output of the tool that is not what its documentation says it prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("not the documented JSON: {0}")]
    Json(String),
    #[error("enclave ID {0:?} is not a plain token")]
    BadEnclaveId(String),
    #[error("Terminated is false")]
    NotTerminated,
}

/// `enclave State` as `describe-enclaves` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnclaveState {
    Running,
    Terminating,
    Empty,
    /// A state this launcher does not know; treated as not running.
    Other(String),
}

impl EnclaveState {
    fn from_tool(s: &str) -> EnclaveState {
        match s {
            "RUNNING" => EnclaveState::Running,
            "TERMINATING" => EnclaveState::Terminating,
            "EMPTY" => EnclaveState::Empty,
            other => EnclaveState::Other(other.chars().take(40).collect()),
        }
    }
}

impl std::fmt::Display for EnclaveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnclaveState::Running => f.write_str("RUNNING"),
            EnclaveState::Terminating => f.write_str("TERMINATING"),
            EnclaveState::Empty => f.write_str("EMPTY"),
            EnclaveState::Other(s) => write!(f, "{s:?} (unknown)"),
        }
    }
}

/// What `run-enclave` printed, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub name: String,
    pub id: EnclaveId,
    pub process_id: u32,
    pub cid: u64,
    pub cpu_count: u64,
    pub cpu_ids: Vec<u32>,
    pub memory_mib: u64,
}

/// One entry of `describe-enclaves`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub name: Option<String>,
    pub id: EnclaveId,
    pub process_id: u32,
    pub cid: u64,
    pub cpu_count: u64,
    pub memory_mib: u64,
    pub state: EnclaveState,
    /// `Flags` says `DEBUG_MODE`.
    pub debug_mode: bool,
    /// `Measurements` (PCR0, PCR1, PCR2, …) if this version of the tool reports them.
    /// Informational only: the host can print anything here; the owner checks PCRs in the
    /// attestation document.
    pub measurements: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RunJson {
    #[serde(rename = "EnclaveName")]
    name: String,
    #[serde(rename = "EnclaveID")]
    id: String,
    #[serde(rename = "ProcessID")]
    process_id: u32,
    #[serde(rename = "EnclaveCID")]
    cid: u64,
    #[serde(rename = "NumberOfCPUs")]
    cpu_count: u64,
    #[serde(rename = "CPUIDs")]
    cpu_ids: Vec<u32>,
    #[serde(rename = "MemoryMiB")]
    memory_mib: u64,
}

#[derive(Deserialize)]
struct DescribeJson {
    #[serde(rename = "EnclaveName", default)]
    name: Option<String>,
    #[serde(rename = "EnclaveID")]
    id: String,
    #[serde(rename = "ProcessID")]
    process_id: u32,
    #[serde(rename = "EnclaveCID")]
    cid: u64,
    #[serde(rename = "NumberOfCPUs")]
    cpu_count: u64,
    #[serde(rename = "MemoryMiB")]
    memory_mib: u64,
    #[serde(rename = "State")]
    state: String,
    #[serde(rename = "Flags")]
    flags: String,
    #[serde(rename = "Measurements", default)]
    measurements: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct TerminateJson {
    #[serde(rename = "EnclaveID")]
    id: String,
    #[serde(rename = "Terminated")]
    terminated: bool,
}

fn json<T: serde::de::DeserializeOwned>(stdout: &str) -> Result<T, OutputError> {
    // serde_json refuses anything but whitespace after the value.
    serde_json::from_str(stdout).map_err(|e| OutputError::Json(e.to_string()))
}

pub fn parse_run(stdout: &str) -> Result<RunInfo, OutputError> {
    let r: RunJson = json(stdout)?;
    Ok(RunInfo {
        id: EnclaveId::parse(&r.id)?,
        name: r.name,
        process_id: r.process_id,
        cid: r.cid,
        cpu_count: r.cpu_count,
        cpu_ids: r.cpu_ids,
        memory_mib: r.memory_mib,
    })
}

pub fn parse_describe(stdout: &str) -> Result<Vec<Described>, OutputError> {
    let all: Vec<DescribeJson> = json(stdout)?;
    all.into_iter()
        .map(|d| {
            Ok(Described {
                id: EnclaveId::parse(&d.id)?,
                name: d.name,
                process_id: d.process_id,
                cid: d.cid,
                cpu_count: d.cpu_count,
                memory_mib: d.memory_mib,
                state: EnclaveState::from_tool(&d.state),
                debug_mode: d.flags == "DEBUG_MODE",
                measurements: d.measurements,
            })
        })
        .collect()
}

/// `terminate-enclave`'s answer: the enclave it names, if it says it terminated it.
pub fn parse_terminate(stdout: &str) -> Result<EnclaveId, OutputError> {
    let t: TerminateJson = json(stdout)?;
    if !t.terminated {
        return Err(OutputError::NotTerminated);
    }
    EnclaveId::parse(&t.id)
}

/// The tool's answers disagree with what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    #[error("asked for CID {requested}, the tool reports CID {reported}")]
    Cid { requested: u32, reported: u64 },
    #[error("asked for {requested} CPUs, the tool reports {reported}")]
    CpuCount { requested: u32, reported: u64 },
    #[error("asked for {requested} MiB, the tool reports {reported} MiB")]
    Memory { requested: u64, reported: u64 },
    #[error("asked for the name {requested:?}, the tool reports {reported:?}")]
    Name { requested: String, reported: String },
    #[error("describe-enclaves does not list the enclave")]
    NotListed,
    #[error("the enclave is {0}, not RUNNING")]
    NotRunning(EnclaveState),
    #[error("debug mode {}, but the tool reports Flags {}", if *.requested { "asked for" } else { "not asked for" }, if *.reported { "DEBUG_MODE" } else { "NONE" })]
    DebugMode { requested: bool, reported: bool },
}

impl NitroConfig {
    /// Does `run-enclave`'s answer describe the enclave we asked for? (More memory than
    /// asked is allowed: the tool rounds up to whole huge pages.)
    pub fn check_run(&self, r: &RunInfo) -> Result<(), Mismatch> {
        if r.cid != u64::from(self.cid.get()) {
            return Err(Mismatch::Cid { requested: self.cid.get(), reported: r.cid });
        }
        if r.cpu_count != u64::from(self.cpu_count) {
            return Err(Mismatch::CpuCount { requested: self.cpu_count, reported: r.cpu_count });
        }
        if r.memory_mib < self.memory_mib {
            return Err(Mismatch::Memory { requested: self.memory_mib, reported: r.memory_mib });
        }
        if r.name != self.name {
            return Err(Mismatch::Name { requested: self.name.clone(), reported: r.name.clone() });
        }
        Ok(())
    }

    /// Our enclave in a `describe-enclaves` listing, if it is running as asked.
    pub fn check_described<'a>(&self, id: &EnclaveId, all: &'a [Described]) -> Result<&'a Described, Mismatch> {
        let d = all.iter().find(|d| &d.id == id).ok_or(Mismatch::NotListed)?;
        if d.state != EnclaveState::Running {
            return Err(Mismatch::NotRunning(d.state.clone()));
        }
        if d.cid != u64::from(self.cid.get()) {
            return Err(Mismatch::Cid { requested: self.cid.get(), reported: d.cid });
        }
        if d.debug_mode != self.debug_mode {
            return Err(Mismatch::DebugMode { requested: self.debug_mode, reported: d.debug_mode });
        }
        Ok(d)
    }

    /// Enclaves that are in the way of this launch: one with our name (left behind by an
    /// earlier proxy) or one holding our CID.
    pub fn conflicts<'a>(&self, all: &'a [Described]) -> Option<&'a Described> {
        all.iter().find(|d| d.name.as_deref() == Some(self.name.as_str()) || d.cid == u64::from(self.cid.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(debug: bool) -> NitroConfig {
        NitroConfig {
            eif: "/srv/cleanroom.eif".into(),
            cpu_count: 2,
            memory_mib: 1024,
            cid: EnclaveCid::new(16).unwrap(),
            name: "cleanroom".into(),
            debug_mode: debug,
        }
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn run_arguments_are_the_tools_own_names() {
        assert_eq!(
            strings(config(false).run_args()),
            [
                "run-enclave",
                "--eif-path",
                "/srv/cleanroom.eif",
                "--cpu-count",
                "2",
                "--memory",
                "1024",
                "--enclave-cid",
                "16",
                "--enclave-name",
                "cleanroom"
            ]
        );
        let debug = strings(config(true).run_args());
        assert_eq!(debug.last().map(String::as_str), Some("--debug-mode"));
        assert_eq!(debug.iter().filter(|a| a.as_str() == "--debug-mode").count(), 1);
        let id = EnclaveId::parse("i-0abc-enc0123456789abcdef").unwrap();
        assert_eq!(strings(terminate_args(&id)), ["terminate-enclave", "--enclave-id", "i-0abc-enc0123456789abcdef"]);
        assert_eq!(strings(console_args(&id)), ["console", "--enclave-id", "i-0abc-enc0123456789abcdef"]);
        assert_eq!(strings(describe_args()), ["describe-enclaves"]);
    }

    #[test]
    fn reserved_cids_and_bad_requests_are_refused() {
        for cid in [0u64, 1, 2, 3, u64::from(u32::MAX), 1 << 40] {
            assert_eq!(EnclaveCid::new(cid), Err(ConfigError::ReservedCid(cid)));
        }
        assert_eq!(EnclaveCid::new(4).unwrap().get(), 4);
        assert_eq!(NitroConfig { cpu_count: 0, ..config(false) }.check(), Err(ConfigError::NoCpus));
        assert_eq!(NitroConfig { memory_mib: 0, ..config(false) }.check(), Err(ConfigError::NoMemory));
        for name in ["", "-x", "a b", "a/b", &"n".repeat(65)] {
            assert!(matches!(NitroConfig { name: name.into(), ..config(false) }.check(), Err(ConfigError::BadName(_))));
        }
        assert_eq!(config(false).check(), Ok(()));
    }

    const RUN: &str = r#"{
  "EnclaveName": "cleanroom",
  "EnclaveID": "i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE",
  "ProcessID": 7077,
  "EnclaveCID": 16,
  "NumberOfCPUs": 2,
  "CPUIDs": [1, 3],
  "MemoryMiB": 1024
}
"#;

    fn describe(state: &str, flags: &str, cid: u64) -> String {
        format!(
            r#"[{{"EnclaveName": "cleanroom", "EnclaveID": "i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE",
  "ProcessID": 7077, "EnclaveCID": {cid}, "NumberOfCPUs": 2, "CPUIDs": [1, 3], "MemoryMiB": 1024,
  "State": "{state}", "Flags": "{flags}",
  "Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "00", "PCR1": "11", "PCR2": "22"}}}}]"#
        )
    }

    #[test]
    fn documented_output_parses_and_checks() {
        let c = config(false);
        let r = parse_run(RUN).unwrap();
        assert_eq!((r.cid, r.cpu_count, r.memory_mib, r.process_id), (16, 2, 1024, 7077));
        assert_eq!(c.check_run(&r), Ok(()));
        let all = parse_describe(&describe("RUNNING", "NONE", 16)).unwrap();
        let d = c.check_described(&r.id, &all).unwrap();
        assert_eq!(d.measurements.get("PCR1").map(String::as_str), Some("11"));
        // Older versions print no Measurements and no EnclaveName.
        let old = r#"[{"EnclaveID": "i-1-enc2", "ProcessID": 1, "EnclaveCID": 16, "NumberOfCPUs": 2,
            "CPUIDs": [1, 3], "MemoryMiB": 1024, "State": "RUNNING", "Flags": "NONE"}]"#;
        let all = parse_describe(old).unwrap();
        assert_eq!(all[0].name, None);
        assert!(all[0].measurements.is_empty());
        assert_eq!(parse_describe("[]\n").unwrap(), vec![]);
        let t = parse_terminate(r#"{"EnclaveName": "cleanroom", "EnclaveID": "i-1-enc2", "Terminated": true}"#);
        assert_eq!(t, Ok(EnclaveId::parse("i-1-enc2").unwrap()));
    }

    #[test]
    fn unexpected_output_is_refused_by_name() {
        for garbage in ["", "Start allocating memory...\n", "{}", "[1]", "null"] {
            assert!(matches!(parse_run(garbage), Err(OutputError::Json(_))), "{garbage:?}");
            assert!(matches!(parse_describe(garbage), Err(OutputError::Json(_))), "{garbage:?}");
        }
        // A valid object followed by anything else is not the documented output.
        assert!(matches!(parse_run(&format!("{RUN}\n{RUN}")), Err(OutputError::Json(_))));
        assert!(matches!(parse_run(&RUN.replace("16,", "-16,")), Err(OutputError::Json(_))));
        assert!(matches!(parse_run(&RUN.replace("7077", "\"7077\"")), Err(OutputError::Json(_))));
        // An ID that would be read as an option, or that smuggles a second argument.
        for id in ["--all", "i-1 --all", "", "i-1\n", "../x"] {
            let bad = RUN.replace("i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE", &id.replace('\n', "\\n"));
            assert!(matches!(parse_run(&bad), Err(OutputError::BadEnclaveId(_))), "{id:?}");
        }
        assert_eq!(
            parse_terminate(r#"{"EnclaveName": "x", "EnclaveID": "i-1-enc2", "Terminated": false}"#),
            Err(OutputError::NotTerminated)
        );
    }

    #[test]
    fn answers_that_differ_from_the_request_are_mismatches() {
        let c = config(false);
        let r = parse_run(RUN).unwrap();
        let id = r.id.clone();
        assert_eq!(c.check_run(&RunInfo { cid: 17, ..r.clone() }), Err(Mismatch::Cid { requested: 16, reported: 17 }));
        assert!(matches!(c.check_run(&RunInfo { cpu_count: 4, ..r.clone() }), Err(Mismatch::CpuCount { .. })));
        assert!(matches!(c.check_run(&RunInfo { memory_mib: 512, ..r.clone() }), Err(Mismatch::Memory { .. })));
        assert_eq!(c.check_run(&RunInfo { memory_mib: 1026, ..r.clone() }), Ok(()));
        assert!(matches!(c.check_run(&RunInfo { name: "other".into(), ..r }), Err(Mismatch::Name { .. })));

        let check = |text: String| c.check_described(&id, &parse_describe(&text).unwrap()).map(|_| ());
        assert_eq!(check(describe("TERMINATING", "NONE", 16)), Err(Mismatch::NotRunning(EnclaveState::Terminating)));
        assert!(matches!(check(describe("PAUSED", "NONE", 16)), Err(Mismatch::NotRunning(EnclaveState::Other(_)))));
        assert_eq!(check(describe("RUNNING", "NONE", 17)), Err(Mismatch::Cid { requested: 16, reported: 17 }));
        assert_eq!(
            check(describe("RUNNING", "DEBUG_MODE", 16)),
            Err(Mismatch::DebugMode { requested: false, reported: true })
        );
        assert_eq!(check("[]".into()), Err(Mismatch::NotListed));
        let debug = config(true);
        let all = parse_describe(&describe("RUNNING", "NONE", 16)).unwrap();
        assert_eq!(
            debug.check_described(&id, &all).map(|_| ()),
            Err(Mismatch::DebugMode { requested: true, reported: false })
        );
    }

    #[test]
    fn an_enclave_with_our_name_or_cid_is_in_the_way() {
        let c = config(false);
        let ours = parse_describe(&describe("RUNNING", "NONE", 99)).unwrap();
        assert!(c.conflicts(&ours).is_some(), "same name");
        let other_name = NitroConfig { name: "someone-else".into(), ..config(false) };
        assert!(other_name.conflicts(&ours).is_none());
        let same_cid = parse_describe(&describe("RUNNING", "NONE", 16)).unwrap();
        assert!(other_name.conflicts(&same_cid).is_some(), "same CID");
    }
}
