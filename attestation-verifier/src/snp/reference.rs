//! The owner's reference for an SEV-SNP launch: what `--expect-snp MEASUREMENT.json`
//! holds, parsed into a checked [`SnpReference`]. On SEV-SNP it takes the place PCR0
//! has on Nitro: a PCR is never compared with a launch measurement.
//!
//! ```json
//! {
//!   "measurement": "<48 bytes, hex>",
//!   "min_tcb": { "bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "fmc": 0 },
//!   "max_vmpl": 0,
//!   "policy": { "debug_allowed": false, "migration_agent_allowed": false, "smt_allowed": true }
//! }
//! ```
//!
//! `measurement`, `min_tcb` (its four Milan/Genoa components) and `max_vmpl` (0–3) are
//! required; `min_tcb.fmc` (Turin) defaults to 0; `policy` and each of its switches are
//! optional, with the defaults shown (debug and a migration agent refused, SMT allowed).
//! Unknown fields are refused, so a misspelt switch is an error, not a silent default.
//!
//! What is compared with what:
//!
//! | reference | report field | refusal |
//! |---|---|---|
//! | `measurement` | MEASUREMENT, exactly | [`Error::MeasurementMismatch`] (both values) |
//! | `min_tcb` | REPORTED_TCB, component by component | [`Error::TcbTooLow`] (component, both values) |
//! | `max_vmpl` | VMPL | [`Error::VmplTooHigh`] (both values) |
//! | `policy.debug_allowed` | guest POLICY bit 19 (DEBUG) | [`Error::GuestPolicyDebug`] |
//! | `policy.migration_agent_allowed` | POLICY bit 18 (MIGRATE_MA) | [`Error::MigrationAgentNotAllowed`] |
//! | `policy.smt_allowed` | POLICY bit 16 (SMT) | [`Error::SmtNotAllowed`] |
//!
//! **Why REPORTED_TCB.** It is the TCB the VCEK/VLEK was derived for, and the verifier has
//! already checked that it equals the TCB extensions of that certificate (`tcb_binding`).
//! Firmware at a given level can derive the keys of that level and any lower one, so a
//! minimum on REPORTED_TCB is what keeps a report signed with a key that vulnerable
//! (older) firmware could also have derived from being accepted. CURRENT_TCB and
//! COMMITTED_TCB describe the installed firmware and its anti-rollback floor, and
//! LAUNCH_TCB the level at launch; a host may run newer firmware while reporting an older
//! TCB (the genuine trustee report does: CURRENT ≠ REPORTED), and none of them is what the
//! signing key vouches for, so none of them is compared.

use serde::{Deserialize, Serialize};

use super::{SnpExpectations, TcbVersion};

/// Why an SNP reference file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Not JSON of the documented shape (a missing, unknown or mistyped field; serde names it).
    #[error("SNP reference: {0}")]
    Json(String),
    /// `measurement` is not hex.
    #[error("SNP reference: `measurement` is not hex")]
    MeasurementNotHex,
    /// `measurement` is not 48 bytes.
    #[error("SNP reference: `measurement` is {0} bytes, an SNP launch measurement is 48")]
    MeasurementLength(usize),
    /// `max_vmpl` is not 0–3.
    #[error("SNP reference: `max_vmpl` is {0}, VMPLs are 0–3")]
    VmplOutOfRange(u32),
}

/// Which guest-policy bits the report may have set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuestPolicyRules {
    /// DEBUG (bit 19) may be set. Default `false`: a debuggable guest's memory is open to the host.
    pub debug_allowed: bool,
    /// MIGRATE_MA (bit 18) may be set. Default `false`.
    pub migration_agent_allowed: bool,
    /// SMT (bit 16) may be set. Default `true`.
    pub smt_allowed: bool,
}

impl Default for GuestPolicyRules {
    fn default() -> Self {
        Self { debug_allowed: false, migration_agent_allowed: false, smt_allowed: true }
    }
}

/// `min_tcb` as written in the file: `fmc` optional, everything else required.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MinTcbFile {
    bootloader: u8,
    tee: u8,
    snp: u8,
    microcode: u8,
    #[serde(default)]
    fmc: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    measurement: String,
    min_tcb: MinTcbFile,
    max_vmpl: u32,
    #[serde(default)]
    policy: GuestPolicyRules,
}

/// A checked SNP launch reference: every field present and in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReference {
    /// The launch measurement the owner recomputed (MEASUREMENT).
    pub measurement: [u8; 48],
    /// Lowest REPORTED_TCB accepted, component by component (see the module docs for why
    /// REPORTED_TCB).
    pub min_tcb: TcbVersion,
    /// Highest VMPL the report may have been requested at (0–3).
    pub max_vmpl: u32,
    /// Guest-policy bits the report may carry.
    pub policy: GuestPolicyRules,
}

impl SnpReference {
    /// Parses and checks the JSON of an `--expect-snp` file.
    pub fn from_json(text: &str) -> Result<Self, ReferenceError> {
        let f: ReferenceFile = serde_json::from_str(text).map_err(|e| ReferenceError::Json(e.to_string()))?;
        let hex_text = f.measurement.trim();
        let bytes = hex::decode(hex_text.strip_prefix("0x").unwrap_or(hex_text))
            .map_err(|_| ReferenceError::MeasurementNotHex)?;
        let measurement: [u8; 48] =
            bytes.as_slice().try_into().map_err(|_| ReferenceError::MeasurementLength(bytes.len()))?;
        if f.max_vmpl > 3 {
            return Err(ReferenceError::VmplOutOfRange(f.max_vmpl));
        }
        let t = f.min_tcb;
        Ok(Self {
            measurement,
            min_tcb: TcbVersion {
                bootloader: t.bootloader,
                tee: t.tee,
                snp: t.snp,
                microcode: t.microcode,
                fmc: t.fmc,
            },
            max_vmpl: f.max_vmpl,
            policy: f.policy,
        })
    }

    /// The JSON [`SnpReference::from_json`] reads (pretty-printed).
    pub fn to_json(&self) -> String {
        let t = self.min_tcb;
        let f = ReferenceFile {
            measurement: hex::encode(self.measurement),
            min_tcb: MinTcbFile {
                bootloader: t.bootloader,
                tee: t.tee,
                snp: t.snp,
                microcode: t.microcode,
                fmc: t.fmc,
            },
            max_vmpl: self.max_vmpl,
            policy: self.policy,
        };
        serde_json::to_string_pretty(&f).unwrap_or_default()
    }

    /// Only a launch measurement: minimum TCB zero, any VMPL, default policy rules. What an
    /// enclave requires of the earlier signers of its own log (the same image as its own);
    /// an owner's reference sets the minimum TCB and maximum VMPL as well.
    pub fn launch_only(measurement: [u8; 48]) -> Self {
        Self { measurement, min_tcb: TcbVersion::default(), max_vmpl: 3, policy: GuestPolicyRules::default() }
    }

    /// The verifier's expectations for this reference, with the REPORT_DATA the caller
    /// binds (nonce, channel, key). Pass [`SnpReference::allow_debug`] as
    /// [`crate::Options::allow_debug`].
    pub fn expectations(&self, report_data: Option<Vec<u8>>) -> SnpExpectations {
        SnpExpectations {
            measurement: Some(self.measurement.to_vec()),
            report_data,
            min_tcb: Some(self.min_tcb),
            max_vmpl: Some(self.max_vmpl),
            allow_migration_agent: self.policy.migration_agent_allowed,
            deny_smt: !self.policy.smt_allowed,
            ..Default::default()
        }
    }

    /// Whether the guest policy's DEBUG bit may be set.
    pub fn allow_debug(&self) -> bool {
        self.policy.debug_allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snp::{check_expectations, extract_report, parse_report, SnpCerts, POLICY_DEBUG, POLICY_MIGRATE_MA};
    use crate::{testdata, verify_snp, Error, Options, UnixTime, Verdict};

    struct Fixture {
        name: String,
        report: Vec<u8>,
        certs: SnpCerts,
        at: UnixTime,
        e: serde_json::Value,
    }

    fn fixtures() -> Vec<Fixture> {
        testdata::expected("snp")
            .into_iter()
            .map(|e| Fixture {
                name: e["file"].as_str().unwrap().to_owned(),
                report: testdata::read(e["file"].as_str().unwrap()),
                certs: SnpCerts::vek_only(testdata::read(e["vek"].as_str().unwrap())),
                at: UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap()),
                e,
            })
            .collect()
    }

    /// The reference an owner would write for this fixture, from expected.json (not from the
    /// report the verifier reads): its measurement, its REPORTED_TCB as the minimum, its
    /// VMPL as the maximum, SMT allowed (every fixture's policy has SMT set).
    fn reference_json(f: &Fixture) -> serde_json::Value {
        let t = &f.e["reported_tcb"];
        serde_json::json!({
            "measurement": f.e["measurement"],
            "min_tcb": { "bootloader": t["bootloader"], "tee": t["tee"], "snp": t["snp"], "microcode": t["microcode"] },
            "max_vmpl": f.e["vmpl"],
        })
    }

    fn check(f: &Fixture, r: &SnpReference) -> Result<Verdict, Error> {
        let e = r.expectations(None);
        let o = Options { allow_debug: r.allow_debug(), ..Default::default() };
        verify_snp(&f.report, &f.certs, &e, &o, f.at)
    }

    fn parse(v: &serde_json::Value) -> Result<SnpReference, ReferenceError> {
        SnpReference::from_json(&v.to_string())
    }

    #[test]
    fn genuine_reports_meet_their_reference() {
        let all = fixtures();
        assert_eq!(all.len(), 4);
        for f in &all {
            let r = parse(&reference_json(f)).unwrap();
            let v = check(f, &r).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            for c in ["measurement", "min_tcb", "vmpl", "debug_policy", "migration_agent_policy"] {
                assert!(v.checks_passed.iter().any(|x| x == c), "{} {c}", f.name);
            }
            // the file round-trips
            assert_eq!(SnpReference::from_json(&r.to_json()).unwrap(), r);
        }
    }

    #[test]
    fn each_field_mutated_gives_its_typed_refusal() {
        for f in &fixtures() {
            let good = reference_json(f);
            let n = &f.name;
            // measurement: one bit
            let mut m = hex::decode(f.e["measurement"].as_str().unwrap()).unwrap();
            let actual = hex::encode(&m);
            m[47] ^= 1;
            let mut v = good.clone();
            v["measurement"] = hex::encode(&m).into();
            assert_eq!(
                check(f, &parse(&v).unwrap()),
                Err(Error::MeasurementMismatch { expected: hex::encode(&m), actual: actual.clone() }),
                "{n}"
            );
            // each TCB component one above the report's
            for component in ["bootloader", "tee", "snp", "microcode"] {
                let reported = good["min_tcb"][component].as_u64().unwrap() as u8;
                let mut v = good.clone();
                v["min_tcb"][component] = (reported + 1).into();
                assert_eq!(
                    check(f, &parse(&v).unwrap()),
                    Err(Error::TcbTooLow { component, reported, minimum: reported + 1 }),
                    "{n}"
                );
            }
            // FMC is a Turin component: a Milan/Genoa report has none (0)
            let mut v = good.clone();
            v["min_tcb"]["fmc"] = 1.into();
            assert_eq!(
                check(f, &parse(&v).unwrap()),
                Err(Error::TcbTooLow { component: "fmc", reported: 0, minimum: 1 }),
                "{n}"
            );
            // a lower minimum in one component does not excuse another
            let mut v = good.clone();
            v["min_tcb"]["bootloader"] = 0.into();
            v["min_tcb"]["snp"] = (good["min_tcb"]["snp"].as_u64().unwrap() + 1).into();
            assert!(matches!(check(f, &parse(&v).unwrap()), Err(Error::TcbTooLow { component: "snp", .. })), "{n}");
            // SMT: every fixture's guest policy allows it
            let mut v = good.clone();
            v["policy"] = serde_json::json!({ "smt_allowed": false });
            assert_eq!(check(f, &parse(&v).unwrap()), Err(Error::SmtNotAllowed), "{n}");
            // VMPL: only a report above VMPL 0 can exceed a maximum
            let vmpl = f.e["vmpl"].as_u64().unwrap() as u32;
            if vmpl > 0 {
                let mut v = good.clone();
                v["max_vmpl"] = (vmpl - 1).into();
                assert_eq!(check(f, &parse(&v).unwrap()), Err(Error::VmplTooHigh { vmpl, max: vmpl - 1 }), "{n}");
            }
        }
    }

    #[test]
    fn vmpl_above_the_maximum_on_the_genuine_vmpl1_report() {
        // the GCP report was requested at VMPL1: accepted with max 1 (or more), refused with 0
        let f = fixtures().into_iter().find(|f| f.e["vmpl"] == 1).unwrap();
        let mut v = reference_json(&f);
        for max in [1u32, 2, 3] {
            v["max_vmpl"] = max.into();
            assert!(check(&f, &parse(&v).unwrap()).is_ok(), "max {max}");
        }
        v["max_vmpl"] = 0.into();
        assert_eq!(check(&f, &parse(&v).unwrap()), Err(Error::VmplTooHigh { vmpl: 1, max: 0 }));
    }

    #[test]
    fn reported_tcb_is_compared_not_current_tcb() {
        // trustee: CURRENT_TCB microcode 0xce, REPORTED_TCB microcode 0x73 (the VCEK's)
        let f = fixtures().into_iter().find(|f| f.name.contains("trustee")).unwrap();
        let r = parse_report(&f.report).unwrap();
        assert_eq!((r.current_tcb >> 56) as u8, 0xce);
        assert_eq!((r.reported_tcb >> 56) as u8, 0x73);
        let mut v = reference_json(&f);
        v["min_tcb"]["microcode"] = 0x74.into();
        assert_eq!(
            check(&f, &parse(&v).unwrap()),
            Err(Error::TcbTooLow { component: "microcode", reported: 0x73, minimum: 0x74 })
        );
    }

    /// No genuine fixture has DEBUG or MIGRATE_MA set, and the policy is signed (flipping
    /// the bit in the report is refused as `signature` first, see the mutation corpus), so
    /// these run the compare step on a verified genuine report with the bit set in memory.
    #[test]
    fn debug_and_migration_agent_bits() {
        let f = fixtures().remove(0);
        let good = reference_json(&f);
        let verified = extract_report(&f.report, &f.certs, f.at).unwrap();
        let run = |policy_bits: u64, v: &serde_json::Value| {
            let r = parse(v).unwrap();
            let mut x = verified.clone();
            x.report.policy |= policy_bits;
            let o = Options { allow_debug: r.allow_debug(), ..Default::default() };
            check_expectations(&x, &r.expectations(None), &o, &mut Vec::new())
        };
        let policy = verified.report.policy;
        assert_eq!(run(POLICY_DEBUG, &good), Err(Error::GuestPolicyDebug { policy: policy | POLICY_DEBUG }));
        let mut allow = good.clone();
        allow["policy"] = serde_json::json!({ "debug_allowed": true });
        assert_eq!(run(POLICY_DEBUG, &allow), Ok(()));
        assert_eq!(run(POLICY_MIGRATE_MA, &good), Err(Error::MigrationAgentNotAllowed));
        let mut allow = good.clone();
        allow["policy"] = serde_json::json!({ "migration_agent_allowed": true });
        assert_eq!(run(POLICY_MIGRATE_MA, &allow), Ok(()));
        // the genuine bytes with DEBUG flipped: the signature refuses them first
        let mut flipped = f.report.clone();
        flipped[0x0a] |= 0x08;
        assert_eq!(
            verify_snp(&flipped, &f.certs, &SnpExpectations::default(), &Options::default(), f.at),
            Err(Error::SignatureInvalid)
        );
    }

    #[test]
    fn malformed_reference_files_are_refused_naming_the_field() {
        let f = fixtures().remove(0);
        let good = reference_json(&f);
        let json_err = |v: serde_json::Value, field: &str| {
            let e = parse(&v).unwrap_err();
            assert!(matches!(&e, ReferenceError::Json(m) if m.contains(field)), "{field}: {e}");
        };
        for field in ["measurement", "min_tcb", "max_vmpl"] {
            let mut v = good.clone();
            v.as_object_mut().unwrap().remove(field);
            json_err(v, field);
        }
        for component in ["bootloader", "tee", "snp", "microcode"] {
            let mut v = good.clone();
            v["min_tcb"].as_object_mut().unwrap().remove(component);
            json_err(v, component);
        }
        let mut v = good.clone();
        v["pcr0"] = "00".into();
        json_err(v, "pcr0");
        let mut v = good.clone();
        v["policy"] = serde_json::json!({ "debug": true });
        json_err(v, "debug");
        let mut v = good.clone();
        v["min_tcb"]["microcode"] = 256.into();
        json_err(v, "256");
        let mut v = good.clone();
        v["measurement"] = "zz".into();
        assert_eq!(parse(&v), Err(ReferenceError::MeasurementNotHex));
        let mut v = good.clone();
        v["measurement"] = "00".repeat(47).into();
        assert_eq!(parse(&v), Err(ReferenceError::MeasurementLength(47)));
        let mut v = good.clone();
        v["measurement"] = "00".repeat(32).into(); // a SHA-256, not a launch measurement
        assert_eq!(parse(&v), Err(ReferenceError::MeasurementLength(32)));
        let mut v = good;
        v["max_vmpl"] = 4.into();
        assert_eq!(parse(&v), Err(ReferenceError::VmplOutOfRange(4)));
        assert!(matches!(SnpReference::from_json("not json"), Err(ReferenceError::Json(_))));
    }
}
