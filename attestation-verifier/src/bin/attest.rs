//! `attest`: verify or inspect Nitro / SEV-SNP / simulated attestation evidence.
//!
//! Exit status: 0 only for valid evidence that meets every expectation; 1 when
//! the evidence is refused (one line names the first failed check); 2 for
//! usage or I/O errors. Input files may be raw bytes, hex or base64.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use attestation_verifier::cli::{certificate_summary, decode_input, pem_certificates};
use attestation_verifier::{
    nitro, simulated, snp, Error, NitroExpectations, Options, Platform, SnpExpectations, SnpReference, TcbVersion,
    UnixTime, Verdict,
};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value as Json};

#[derive(Parser)]
#[command(name = "attest", version, about = "Verify AWS Nitro and AMD SEV-SNP attestation evidence offline")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify evidence against pinned vendor roots at an explicit time.
    Verify {
        #[command(subcommand)]
        kind: VerifyKind,
    },
    /// Print the decoded document without judging it.
    Inspect {
        /// Evidence file (raw, hex or base64).
        file: PathBuf,
    },
}

#[derive(Args)]
struct Common {
    /// Verification time, Unix seconds (never the system clock).
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: u64,
    /// Print a JSON verdict object.
    #[arg(long)]
    json: bool,
    /// Accept debug-mode evidence.
    #[arg(long)]
    allow_debug: bool,
}

#[derive(Args)]
struct ClaimArgs {
    /// Expected PCR value, repeatable: INDEX=HEX.
    #[arg(long = "expect-pcr", value_name = "I=HEX")]
    expect_pcr: Vec<String>,
    /// Expected nonce.
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Expected user_data.
    #[arg(long, value_name = "HEX")]
    user_data: Option<String>,
    /// Expected public_key.
    #[arg(long, value_name = "HEX")]
    public_key: Option<String>,
    /// module_id must start with this prefix.
    #[arg(long, value_name = "PREFIX")]
    module_id_prefix: Option<String>,
    /// Maximum document age at --at, milliseconds.
    #[arg(long, value_name = "MS")]
    max_age_ms: Option<u64>,
}

#[derive(Subcommand)]
enum VerifyKind {
    /// AWS Nitro Enclaves attestation document (COSE_Sign1).
    Nitro {
        /// Document file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        claims: ClaimArgs,
        /// Accept the UNSIGNED documents of QEMU's emulated NSM (`nitro-enclave` machine)
        /// without signature or chain checks (a test root; every claim is still checked).
        #[arg(long)]
        allow_emulated_nsm: bool,
    },
    /// AMD SEV-SNP attestation report.
    Snp {
        /// 1184-byte report (or an SNP evidence bundle made by the library).
        report: PathBuf,
        /// Directory of certificates or a PEM bundle (VCEK/VLEK, optionally ASK/ASVK and ARK).
        #[arg(long, value_name = "DIR_OR_BUNDLE")]
        certs: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// The owner's SNP reference (JSON: measurement, min_tcb, max_vmpl, optional policy);
        /// replaces --expect-measurement, --min-tcb, --max-vmpl, --allow-migration-agent, --deny-smt.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["expect_measurement", "min_tcb", "max_vmpl", "allow_migration_agent", "deny_smt"])]
        expect_snp: Option<PathBuf>,
        /// Expected launch measurement.
        #[arg(long, value_name = "HEX")]
        expect_measurement: Option<String>,
        /// Expected REPORT_DATA (64 bytes).
        #[arg(long, value_name = "HEX")]
        report_data: Option<String>,
        /// Expected HOST_DATA (32 bytes).
        #[arg(long, value_name = "HEX")]
        host_data: Option<String>,
        /// Expected CHIP_ID (64 bytes).
        #[arg(long, value_name = "HEX")]
        chip_id: Option<String>,
        /// Minimum TCB as `BOOTLOADER:TEE:SNP:MICROCODE[:FMC]` (decimal).
        #[arg(long, value_name = "B:T:S:M")]
        min_tcb: Option<String>,
        /// Highest VMPL accepted.
        #[arg(long)]
        max_vmpl: Option<u32>,
        /// Accept a guest policy that allows a migration agent.
        #[arg(long)]
        allow_migration_agent: bool,
        /// Refuse a guest policy that allows SMT.
        #[arg(long)]
        deny_smt: bool,
    },
    /// INSECURE simulated development evidence (needs --allow-simulated).
    Simulated {
        /// Document file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        claims: ClaimArgs,
        /// Accept simulated evidence (it proves nothing; anyone can forge it).
        #[arg(long)]
        allow_simulated: bool,
    },
}

/// A usage or I/O problem (exit 2).
struct UsageError(String);

fn hex_arg(name: &str, v: &Option<String>) -> Result<Option<Vec<u8>>, UsageError> {
    v.as_ref()
        .map(|s| {
            let s = s.trim();
            let s = s.strip_prefix("0x").unwrap_or(s);
            hex::decode(s).map_err(|e| UsageError(format!("--{name}: not hex: {e}")))
        })
        .transpose()
}

fn read_input(path: &Path) -> Result<Vec<u8>, UsageError> {
    let raw = std::fs::read(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    Ok(decode_input(&raw).0)
}

fn claim_expectations(c: &ClaimArgs) -> Result<NitroExpectations, UsageError> {
    let mut pcrs = BTreeMap::new();
    for spec in &c.expect_pcr {
        let (i, h) =
            spec.split_once('=').ok_or_else(|| UsageError(format!("--expect-pcr {spec}: expected INDEX=HEX")))?;
        let i: u16 = i.trim().parse().map_err(|_| UsageError(format!("--expect-pcr {spec}: bad index")))?;
        let v = hex_arg("expect-pcr", &Some(h.to_owned()))?.unwrap_or_default();
        if pcrs.insert(i, v).is_some() {
            return Err(UsageError(format!("--expect-pcr: PCR{i} given twice")));
        }
    }
    Ok(NitroExpectations {
        pcrs,
        nonce: hex_arg("nonce", &c.nonce)?,
        user_data: hex_arg("user-data", &c.user_data)?,
        public_key: hex_arg("public-key", &c.public_key)?,
        module_id_prefix: c.module_id_prefix.clone(),
        max_age_ms: c.max_age_ms,
    })
}

fn parse_tcb(s: &str) -> Result<TcbVersion, UsageError> {
    let parts: Result<Vec<u8>, _> = s.split(':').map(|p| p.trim().parse::<u8>()).collect();
    match parts.as_deref() {
        Ok([b, t, s, m]) => Ok(TcbVersion { bootloader: *b, tee: *t, snp: *s, microcode: *m, fmc: 0 }),
        Ok([b, t, s, m, f]) => Ok(TcbVersion { bootloader: *b, tee: *t, snp: *s, microcode: *m, fmc: *f }),
        _ => Err(UsageError(format!("--min-tcb {s}: expected B:T:S:M[:F] (decimal)"))),
    }
}

/// Certificates from a directory (every regular file; PEM or DER, raw/hex/base64) or a PEM bundle.
fn load_certs(path: &Path) -> Result<Vec<Vec<u8>>, UsageError> {
    let io = |e: std::io::Error| UsageError(format!("{}: {e}", path.display()));
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            let p = entry.map_err(io)?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut out = Vec::new();
    for f in files {
        let raw = std::fs::read(&f).map_err(|e| UsageError(format!("{}: {e}", f.display())))?;
        if let Ok(text) = std::str::from_utf8(&raw) {
            if text.contains("-----BEGIN CERTIFICATE-----") {
                out.extend(pem_certificates(text).map_err(|e| UsageError(format!("{}: {e}", f.display())))?);
                continue;
            }
        }
        let der = decode_input(&raw).0;
        if certificate_summary(&der).is_ok() {
            out.push(der);
        } else if !path.is_dir() {
            return Err(UsageError(format!("{}: not a certificate (PEM or DER)", f.display())));
        }
    }
    Ok(out)
}

fn verdict_json(v: &Verdict) -> Json {
    let mut j = serde_json::to_value(v).unwrap_or(Json::Null);
    if let Json::Object(m) = &mut j {
        m.insert("valid".into(), Json::Bool(true));
        m.insert("error".into(), Json::Null);
        if let Some(s) = &v.snp {
            m.insert("measurement".into(), json!(hex::encode(&s.measurement)));
            m.insert("chip_id".into(), json!(hex::encode(&s.chip_id)));
            m.insert("report_data".into(), json!(hex::encode(&s.report_data)));
        }
    }
    j
}

fn one_line(v: &Verdict) -> String {
    let mut s = format!("valid: {} evidence", v.platform);
    if v.simulated {
        s.push_str(" (SIMULATED, INSECURE: proves nothing)");
    }
    if v.emulated_nsm {
        s.push_str(" (EMULATED NSM: unsigned, QEMU nitro-enclave; no AWS signature checked)");
    }
    if v.debug {
        s.push_str(" (DEBUG MODE)");
    }
    if let Some(m) = &v.module_id {
        s.push_str(&format!(", module_id {m}"));
    }
    if let Some(t) = v.timestamp {
        s.push_str(&format!(", timestamp {t} ms"));
    }
    if let Some(snp) = &v.snp {
        s.push_str(&format!(
            ", {} report v{}, measurement {}",
            snp.product,
            snp.version,
            hex::encode(&snp.measurement)
        ));
    }
    s.push_str(&format!(", {} checks passed", v.checks_passed.len()));
    s
}

fn report(platform: Platform, json: bool, r: Result<Verdict, Error>) -> ExitCode {
    match r {
        Ok(v) => {
            if json {
                println!("{}", verdict_json(&v));
            } else {
                println!("{}", one_line(&v));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    json!({
                        "valid": false,
                        "platform": platform,
                        "simulated": platform == Platform::Simulated,
                        "failed_check": e.check(),
                        "error": e.to_string(),
                    })
                );
            } else {
                eprintln!("invalid: {}: {e}", e.check());
            }
            ExitCode::from(1)
        }
    }
}

fn run_verify(kind: VerifyKind) -> Result<ExitCode, UsageError> {
    match kind {
        VerifyKind::Nitro { file, common, claims, allow_emulated_nsm } => {
            let doc = read_input(&file)?;
            let e = claim_expectations(&claims)?;
            let o = Options { allow_debug: common.allow_debug, allow_simulated: false, allow_emulated_nsm };
            let r = nitro::verify_nitro(&doc, &e, &o, UnixTime::from_secs(common.at));
            Ok(report(Platform::Nitro, common.json, r))
        }
        VerifyKind::Simulated { file, common, claims, allow_simulated } => {
            let doc = read_input(&file)?;
            let e = claim_expectations(&claims)?;
            let o = Options { allow_debug: common.allow_debug, allow_simulated, allow_emulated_nsm: false };
            let r = simulated::verify_simulated(&doc, &e, &o, UnixTime::from_secs(common.at));
            Ok(report(Platform::Simulated, common.json, r))
        }
        VerifyKind::Snp {
            report: report_path,
            certs,
            common,
            expect_snp,
            expect_measurement,
            report_data,
            host_data,
            chip_id,
            min_tcb,
            max_vmpl,
            allow_migration_agent,
            deny_smt,
        } => {
            let input = read_input(&report_path)?;
            let e = SnpExpectations {
                measurement: hex_arg("expect-measurement", &expect_measurement)?,
                report_data: hex_arg("report-data", &report_data)?,
                host_data: hex_arg("host-data", &host_data)?,
                chip_id: hex_arg("chip-id", &chip_id)?,
                min_tcb: min_tcb.as_deref().map(parse_tcb).transpose()?,
                max_vmpl,
                allow_migration_agent,
                deny_smt,
            };
            let mut o = Options { allow_debug: common.allow_debug, allow_simulated: false, allow_emulated_nsm: false };
            let mut e = e;
            if let Some(path) = expect_snp {
                let text =
                    std::fs::read_to_string(&path).map_err(|err| UsageError(format!("{}: {err}", path.display())))?;
                let reference =
                    SnpReference::from_json(&text).map_err(|err| UsageError(format!("{}: {err}", path.display())))?;
                let snp = reference.expectations(e.report_data.take());
                e = SnpExpectations { host_data: e.host_data.take(), chip_id: e.chip_id.take(), ..snp };
                o.allow_debug |= reference.allow_debug();
            }
            let at = UnixTime::from_secs(common.at);
            let r = match certs {
                Some(path) => {
                    let ders = load_certs(&path)?;
                    snp::sort_certs(ders).and_then(|c| snp::verify_snp(&input, &c, &e, &o, at))
                }
                None if input.len() == snp::REPORT_LEN => {
                    return Err(UsageError("--certs DIR_OR_BUNDLE is required for a bare report".into()))
                }
                None => snp::verify_snp_bundle(&input, &e, &o, at),
            };
            Ok(report(Platform::Snp, common.json, r))
        }
    }
}

fn cert_summary(der: &[u8]) -> Json {
    match certificate_summary(der) {
        Ok(c) => json!(c),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn inspect(path: &Path) -> Result<ExitCode, UsageError> {
    let (bytes, enc) = decode_input(&std::fs::read(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?);
    let encoding = format!("{enc:?}").to_lowercase();
    let out = if bytes.len() == snp::REPORT_LEN {
        match snp::parse_report(&bytes) {
            Ok(r) => json!({ "format": "snp-report", "encoding": encoding, "report": r }),
            Err(e) => json!({ "format": "snp-report?", "encoding": encoding, "parse_error": e.to_string() }),
        }
    } else if let Ok(d) = nitro::parse_document(&bytes) {
        json!({
            "format": "nitro",
            "encoding": encoding,
            "claims": d.claims,
            "debug_mode": d.claims.is_debug(),
            "certificate": cert_summary(&d.certificate),
            "cabundle": d.cabundle.iter().map(|c| cert_summary(c)).collect::<Vec<_>>(),
            "signature": hex::encode(&d.signature),
        })
    } else if let Ok(d) = simulated::parse_document(&bytes) {
        json!({
            "format": "simulated",
            "warning": simulated::WARNING,
            "encoding": encoding,
            "claims": d.claims,
            "debug_mode": d.claims.is_debug(),
            "signature": hex::encode(&d.signature),
        })
    } else if let Ok((report, certs)) = snp::decode_bundle(&bytes) {
        json!({
            "format": "snp-bundle",
            "encoding": encoding,
            "report": snp::parse_report(&report).map_err(|e| e.to_string()).ok(),
            "vek": cert_summary(&certs.vek),
            "ask": certs.ask.as_deref().map(cert_summary),
            "asvk": certs.asvk.as_deref().map(cert_summary),
            "ark": certs.ark.as_deref().map(cert_summary),
        })
    } else {
        let why = nitro::parse_document(&bytes).err().map(|e| e.to_string());
        json!({ "format": "unknown", "encoding": encoding, "len": bytes.len(), "nitro_parse_error": why })
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Verify { kind } => run_verify(kind),
        Cmd::Inspect { file } => inspect(&file),
    };
    match r {
        Ok(code) => code,
        Err(UsageError(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
