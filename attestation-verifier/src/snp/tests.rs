use super::*;
use crate::testdata;

struct Case {
    e: serde_json::Value,
    report: Vec<u8>,
    certs: SnpCerts,
    at: UnixTime,
}

fn cases() -> Vec<Case> {
    testdata::expected("snp")
        .into_iter()
        .map(|e| {
            let report = testdata::read(e["file"].as_str().unwrap());
            let vek = testdata::read(e["vek"].as_str().unwrap());
            let at = UnixTime::from_secs(e["verify_at_unix"].as_u64().unwrap());
            Case { e, report, certs: SnpCerts { vek, ask: None, asvk: None, ark: None }, at }
        })
        .collect()
}

fn none() -> SnpExpectations {
    SnpExpectations::default()
}

fn pem(rel: &str) -> Vec<u8> {
    let text = String::from_utf8(testdata::read(rel)).unwrap();
    der::pem_certificates(&text).unwrap().remove(0)
}

#[test]
fn pinned_roots_match_their_fingerprints_and_testdata() {
    for p in [Product::Milan, Product::Genoa, Product::Turin] {
        let c = Certificate::parse(p.ark()).unwrap();
        assert_eq!(hex::encode(c.sha256()), p.ark_sha256());
        c.verify_signed_by(&c).unwrap();
        Certificate::parse(p.ask()).unwrap().verify_signed_by(&c).unwrap();
    }
    assert_eq!(pem("snp/ark_milan.pem"), Product::Milan.ark());
    assert_eq!(pem("snp/ark_genoa.pem"), Product::Genoa.ark());
    assert_eq!(pem("snp/ask_milan.pem"), Product::Milan.ask());
    assert_eq!(pem("snp/ask_genoa.pem"), Product::Genoa.ask());
    assert_eq!(pem("snp/asvk_milan.pem"), Product::Milan.asvk().unwrap());
    let ark = Certificate::parse(Product::Milan.ark()).unwrap();
    let asvk = Certificate::parse(Product::Milan.asvk().unwrap()).unwrap();
    asvk.verify_signed_by(&ark).unwrap();
    assert_eq!(asvk.subject_cn().as_deref(), Some("SEV-VLEK-Milan"));
}

#[test]
fn every_report_verifies_with_the_listed_fields() {
    let cases = cases();
    assert_eq!(cases.len(), 4);
    for c in &cases {
        let name = c.e["file"].as_str().unwrap();
        assert_eq!(testdata::sha256_hex(&c.report), c.e["sha256"].as_str().unwrap());
        let v = verify_snp(&c.report, &c.certs, &none(), &Options::default(), c.at)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(v.platform, Platform::Snp);
        assert!(!v.simulated && !v.debug);
        let s = v.snp.unwrap();
        assert_eq!(s.product, c.e["product"].as_str().unwrap(), "{name}");
        assert_eq!(hex::encode(&s.measurement), c.e["measurement"].as_str().unwrap());
        assert_eq!(hex::encode(&s.report_data), c.e["report_data"].as_str().unwrap());
        assert_eq!(u64::from(s.version), c.e["report_version"].as_u64().unwrap());
        assert_eq!(format!("{:#x}", s.policy), c.e["policy"].as_str().unwrap());
        assert_eq!(u64::from(s.vmpl), c.e["vmpl"].as_u64().unwrap());
        let t = &c.e["reported_tcb"];
        assert_eq!(
            (s.reported_tcb.bootloader, s.reported_tcb.tee, s.reported_tcb.snp, s.reported_tcb.microcode),
            (
                t["bootloader"].as_u64().unwrap() as u8,
                t["tee"].as_u64().unwrap() as u8,
                t["snp"].as_u64().unwrap() as u8,
                t["microcode"].as_u64().unwrap() as u8
            ),
            "{name}"
        );
        assert_eq!(hex::encode(&s.chip_id[..8]), c.e["chip_id_prefix"].as_str().unwrap());
        assert_eq!(s.signing_key, "vcek");
        for check in ["signature", "tcb_binding", "chip_id_binding", "ark_pinned"] {
            assert!(v.checks_passed.iter().any(|x| x == check), "{name} {check}");
        }
        // same through a bundle and the dispatcher, with explicit ASK/ARK
        let ask = if s.product.starts_with("Genoa") { "snp/ask_genoa.pem" } else { "snp/ask_milan.pem" };
        let ark = if s.product.starts_with("Genoa") { "snp/ark_genoa.pem" } else { "snp/ark_milan.pem" };
        let certs = SnpCerts { vek: c.certs.vek.clone(), ask: Some(pem(ask)), asvk: None, ark: Some(pem(ark)) };
        let b = encode_bundle(&c.report, &certs);
        assert!(crate::verify_evidence(
            Platform::Snp,
            &b,
            &crate::Expectations::Snp(none()),
            &Options::default(),
            c.at
        )
        .is_ok());
    }
}

#[test]
fn refused_outside_the_validity_window() {
    for c in cases() {
        let name = c.e["file"].as_str().unwrap();
        let [start, end] = [0, 1].map(|i| c.e["valid_window_unix"][i].as_u64().unwrap());
        for t in [start, end] {
            assert!(verify_snp(&c.report, &c.certs, &none(), &Options::default(), UnixTime::from_secs(t)).is_ok());
        }
        for also in c.e["also"].as_array().unwrap() {
            let at = UnixTime::from_secs(also["at"].as_u64().unwrap());
            let r = verify_snp(&c.report, &c.certs, &none(), &Options::default(), at);
            match also["verdict"].as_str().unwrap() {
                "invalid: VEK not yet valid" => assert!(
                    matches!(&r, Err(Error::CertificateNotYetValid { role, .. }) if role == "VEK"),
                    "{name}: {r:?}"
                ),
                "invalid: certificate expired" => {
                    assert!(matches!(&r, Err(Error::CertificateExpired { .. })), "{name}: {r:?}")
                }
                other => panic!("unknown verdict {other}"),
            }
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(also["verdict"].as_str().unwrap().trim_start_matches("invalid: ")), "{msg}");
        }
    }
}

#[test]
fn expectations() {
    let c = cases().remove(0);
    let o = Options::default();
    let run = |s: SnpExpectations| verify_snp(&c.report, &c.certs, &s, &o, c.at);
    let m = hex::decode(c.e["measurement"].as_str().unwrap()).unwrap();
    let rd = hex::decode(c.e["report_data"].as_str().unwrap()).unwrap();
    let v = run(SnpExpectations {
        measurement: Some(m.clone()),
        report_data: Some(rd.clone()),
        host_data: Some(vec![0; 32]),
        min_tcb: Some(TcbVersion { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: 0 }),
        max_vmpl: Some(0),
        ..Default::default()
    })
    .unwrap();
    for check in ["measurement", "report_data", "host_data", "min_tcb", "vmpl"] {
        assert!(v.checks_passed.iter().any(|x| x == check), "{check}");
    }
    let mut bad = m.clone();
    bad[0] ^= 1;
    assert_eq!(
        run(SnpExpectations { measurement: Some(bad.clone()), ..Default::default() }),
        Err(Error::MeasurementMismatch { expected: hex::encode(&bad), actual: hex::encode(&m) })
    );
    assert_eq!(
        run(SnpExpectations { report_data: Some(vec![0; 64]), ..Default::default() }),
        Err(Error::ReportDataMismatch)
    );
    assert_eq!(
        run(SnpExpectations { host_data: Some(vec![1; 32]), ..Default::default() }),
        Err(Error::HostDataMismatch)
    );
    assert_eq!(
        run(SnpExpectations { chip_id: Some(vec![1; 64]), ..Default::default() }),
        Err(Error::ExpectedChipIdMismatch)
    );
    assert_eq!(
        run(SnpExpectations { min_tcb: Some(TcbVersion { snp: 9, ..Default::default() }), ..Default::default() }),
        Err(Error::TcbTooLow { component: "snp", reported: 8, minimum: 9 })
    );
    // policy 0x30000 allows SMT
    assert_eq!(run(SnpExpectations { deny_smt: true, ..Default::default() }), Err(Error::SmtNotAllowed));
    // Nitro expectations cannot reach the SNP verifier (its type takes SNP ones only);
    // where the platform is data, the dispatch refuses them rather than ignore them.
    let mut e = crate::NitroExpectations::default();
    e.pcrs.insert(0, vec![0; 48]);
    let bundle = crate::snp::encode_bundle(&c.report, &c.certs);
    assert_eq!(
        crate::verify_evidence(crate::Platform::Snp, &bundle, &crate::Expectations::Nitro(e), &o, c.at),
        Err(Error::ExpectationNotApplicable("nitro expectations for snp evidence"))
    );
    assert!(crate::verify_evidence(crate::Platform::Snp, &bundle, &crate::Expectations::Snp(none()), &o, c.at).is_ok());
}

#[test]
fn vmpl_limit() {
    let c = cases().into_iter().find(|c| c.e["vmpl"] == 1).unwrap();
    let e = SnpExpectations { max_vmpl: Some(0), ..Default::default() };
    assert_eq!(
        verify_snp(&c.report, &c.certs, &e, &Options::default(), c.at),
        Err(Error::VmplTooHigh { vmpl: 1, max: 0 })
    );
}

#[test]
fn channel_binding_report_data() {
    let c = cases().into_iter().find(|c| c.e["report_version"] == 5).unwrap();
    let nonce = hex::decode("df82306ff38a9da023854af947d02a878cfab1b40a793823ff41dc51213b96aa").unwrap();
    let key = hex::decode("03a8107030fabeac06b0df4ef865763918b5e2a9fa030e20025a4315dab4b2a6").unwrap();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    ctx.update(&nonce);
    ctx.update(&key);
    let rd = ctx.finish().as_ref().to_vec();
    let e = SnpExpectations { report_data: Some(rd), ..Default::default() };
    assert!(verify_snp(&c.report, &c.certs, &e, &Options::default(), c.at).is_ok());
    let r = parse_report(&c.report).unwrap();
    assert_eq!(r.launch_mit_vector, Some(0x0b));
    assert_eq!(r.current_mit_vector, Some(0x0b));
}

fn with(report: &[u8], off: usize, bytes: &[u8]) -> Vec<u8> {
    let mut r = report.to_vec();
    r[off..off + bytes.len()].copy_from_slice(bytes);
    r
}

#[test]
fn mutations() {
    let c = cases().remove(0);
    let o = Options::default();
    let v = |r: &[u8]| verify_snp(r, &c.certs, &none(), &o, c.at);
    // flipped byte in the signed region
    let mut r = c.report.clone();
    r[0x90] ^= 1;
    assert_eq!(v(&r), Err(Error::SignatureInvalid));
    // flipped byte of r and s
    for off in [0x2A0, 0x2E8 + 47] {
        let mut r = c.report.clone();
        r[off] ^= 0x10;
        assert_eq!(v(&r), Err(Error::SignatureInvalid));
    }
    // padding
    assert_eq!(v(&with(&c.report, 0x2A0 + 50, &[1])), Err(Error::ReservedNonZero(0x2A0 + 50)));
    assert_eq!(v(&with(&c.report, 0x400, &[1])), Err(Error::ReservedNonZero(0x400)));
    // size
    assert_eq!(v(&c.report[..1183]), Err(Error::ReportSize(1183)));
    let mut long = c.report.clone();
    long.push(0);
    assert_eq!(v(&long), Err(Error::ReportSize(1185)));
    // version, algorithm, signing key
    assert_eq!(v(&with(&c.report, 0, &1u32.to_le_bytes())), Err(Error::UnsupportedReportVersion(1)));
    assert_eq!(v(&with(&c.report, 0x34, &2u32.to_le_bytes())), Err(Error::UnsupportedSignatureAlgorithm(2)));
    assert_eq!(v(&with(&c.report, 0x48, &(7u32 << 2).to_le_bytes())), Err(Error::UnsupportedSigningKey(7)));
    assert!(matches!(
        v(&with(&c.report, 0x48, &(1u32 << 2).to_le_bytes())),
        Err(Error::SigningKeyKindMismatch { report: "vlek", cert: "vcek" })
    ));
    // changed policy (debug) / TCB: signature catches it first
    let p = u64::from_le_bytes(c.report[8..16].try_into().unwrap()) | POLICY_DEBUG;
    assert_eq!(v(&with(&c.report, 8, &p.to_le_bytes())), Err(Error::SignatureInvalid));
    assert_eq!(v(&with(&c.report, 0x180, &[4])), Err(Error::SignatureInvalid));
    // another report's VCEK
    let other = cases().remove(1);
    assert_eq!(verify_snp(&c.report, &other.certs, &none(), &o, c.at), Err(Error::SignatureInvalid));
}

#[test]
fn genoa_needs_the_genoa_chain() {
    let c = cases().into_iter().find(|c| c.e["product"] == "Genoa").unwrap();
    let o = Options::default();
    let certs = SnpCerts { ask: Some(pem("snp/ask_milan.pem")), ..c.certs.clone() };
    assert_eq!(
        verify_snp(&c.report, &certs, &none(), &o, c.at),
        Err(Error::VekIssuerMismatch {
            signing_key: "vcek",
            intermediate: "ASK",
            vek_issuer: "SEV-Genoa".into(),
            intermediate_subject: "SEV-Milan".into()
        })
    );
    let certs = SnpCerts { ark: Some(pem("snp/ark_milan.pem")), ..c.certs.clone() };
    assert_eq!(verify_snp(&c.report, &certs, &none(), &o, c.at), Err(Error::UntrustedRoot("AMD ARK")));
    // ASK that is not a CA: use the VCEK itself as the ASK
    let certs = SnpCerts { ask: Some(c.certs.vek.clone()), ..c.certs.clone() };
    assert!(verify_snp(&c.report, &certs, &none(), &o, c.at).is_err());
}

#[test]
fn tcb_and_chip_binding_are_checked() {
    // The checks run after the signature, so exercise them on a verified
    // report with a VEK whose extensions differ: use the Turin VCEK parsing
    // and the binding logic directly.
    let c = cases().remove(0);
    let v = extract_report(&c.report, &c.certs, c.at).unwrap();
    assert_eq!(v.product, Product::Milan);
    assert_eq!(v.reported_tcb, TcbVersion { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: 0 });
    let turin = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vcek_turin.der")).unwrap();
    let vek = Certificate::parse(&turin).unwrap();
    assert_eq!(product_name(&vek).unwrap(), "Turin");
    assert!(vek_u8(&vek, &amd_oid::FMC, "fmc").is_ok());
    assert_eq!(vek.extension(&amd_oid::HWID).unwrap().value.len(), 8);
    // Turin VCEK chains to the pinned Turin ARK via the built-in ASK
    let ark = Certificate::parse(Product::Turin.ark()).unwrap();
    let ask = Certificate::parse(Product::Turin.ask()).unwrap();
    let roles = ["ARK".to_owned(), "ASK".to_owned(), "VEK".to_owned()];
    crate::chain::verify_chain(&[ark, ask, vek.clone()], &roles, UnixTime::from_secs(1_800_000_000)).unwrap();
    // the Milan report with a Turin VCEK: product/CPUID or chain refuse it
    let certs = SnpCerts { vek: turin.clone(), ask: None, asvk: None, ark: None };
    assert!(verify_snp(&c.report, &certs, &none(), &Options::default(), c.at).is_err());
    // missing extension
    assert_eq!(vek_u8(&vek, &[0x2b, 0x06], "x"), Err(Error::VekExtensionMissing("x")));
}

#[test]
fn turin_tcb_layout() {
    let t = TcbVersion::from_raw(u64::from_le_bytes([1, 2, 3, 4, 0, 0, 0, 5]), Product::Turin);
    assert_eq!(t, TcbVersion { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 });
    let m = TcbVersion::from_raw(0x7300_0000_0000_0803_u64.swap_bytes().swap_bytes(), Product::Milan);
    assert_eq!((m.bootloader, m.tee, m.snp, m.microcode), (3, 8, 0, 0x73));
}

#[test]
fn bundles() {
    let c = cases().remove(0);
    let b = encode_bundle(&c.report, &c.certs);
    let (r, certs) = decode_bundle(&b).unwrap();
    assert_eq!(r, c.report);
    assert_eq!(certs, c.certs);
    let mut trailing = b.clone();
    trailing.push(0);
    assert!(matches!(decode_bundle(&trailing), Err(Error::Cbor(_))));
    assert_eq!(decode_bundle(&[0x80]), Err(Error::BundleMalformed("not a map")));
    let mut w = Writer::new();
    w.map(1).text("vek").bytes(&[1]);
    assert_eq!(decode_bundle(&w.into_bytes()), Err(Error::MissingField("report")));
    assert!(matches!(decode_bundle(&vec![0; MAX_BUNDLE_LEN + 1]), Err(Error::InputTooLarge { .. })));
    // sorting loose certificates
    let sorted = sort_certs(vec![pem("snp/ark_milan.pem"), c.certs.vek.clone(), pem("snp/ask_milan.pem")]).unwrap();
    assert_eq!(sorted.vek, c.certs.vek);
    assert!(sorted.ask.is_some() && sorted.ark.is_some());
    assert_eq!(sort_certs(vec![pem("snp/ark_milan.pem")]), Err(Error::MissingCertificate("VCEK or VLEK")));
}

#[test]
fn debug_and_migration_policy_bits() {
    let c = cases().remove(0);
    let v = extract_report(&c.report, &c.certs, c.at).unwrap();
    let mut dbg = v.clone();
    dbg.report.policy |= POLICY_DEBUG;
    let mut checks = Vec::new();
    assert_eq!(
        check_expectations(&dbg, &SnpExpectations::default(), &Options::default(), &mut checks),
        Err(Error::GuestPolicyDebug { policy: 0x30000 | POLICY_DEBUG })
    );
    let allow = Options { allow_debug: true, ..Default::default() };
    assert!(check_expectations(&dbg, &SnpExpectations::default(), &allow, &mut checks).is_ok());
    let mut ma = v.clone();
    ma.report.policy |= POLICY_MIGRATE_MA;
    assert_eq!(
        check_expectations(&ma, &SnpExpectations::default(), &Options::default(), &mut checks),
        Err(Error::MigrationAgentNotAllowed)
    );
    let e = SnpExpectations { allow_migration_agent: true, ..Default::default() };
    assert!(check_expectations(&ma, &e, &Options::default(), &mut checks).is_ok());
}

#[test]
fn binding_errors() {
    let all = cases();
    let virtee = parse_report(&all[0].report).unwrap();
    // same TCB (3/0/8/115), different chip: trustee's VCEK
    let trustee_vek = Certificate::parse(&all[1].certs.vek).unwrap();
    let mut checks = Vec::new();
    assert_eq!(
        check_vek_binding(&virtee, &trustee_vek, Product::Milan, SigningKey::Vcek, &mut checks),
        Err(Error::ChipIdMismatch)
    );
    // different TCB: the GCP VCEK (bootloader 4)
    let gcp_vek = Certificate::parse(&all[3].certs.vek).unwrap();
    assert_eq!(
        check_vek_binding(&virtee, &gcp_vek, Product::Milan, SigningKey::Vcek, &mut checks),
        Err(Error::TcbMismatch { component: "bootloader", report: 3, cert: 4 })
    );
    // masked chip id is accepted without the hwID comparison
    let mut masked = virtee.clone();
    masked.mask_chip_id = true;
    masked.chip_id = vec![0; 64];
    let own = Certificate::parse(&all[0].certs.vek).unwrap();
    check_vek_binding(&masked, &own, Product::Milan, SigningKey::Vcek, &mut checks).unwrap();
    assert!(checks.contains(&"chip_id_masked".to_owned()));
    // a VLEK has no hwID binding
    checks.clear();
    check_vek_binding(&virtee, &trustee_vek, Product::Milan, SigningKey::Vlek, &mut checks).unwrap();
    assert_eq!(checks, vec!["tcb_binding".to_owned()]);
}

#[test]
fn product_and_cpuid() {
    assert_eq!(Product::from_name("Milan-B0"), Some(Product::Milan));
    assert_eq!(Product::from_name("Genoa"), Some(Product::Genoa));
    assert_eq!(Product::from_name("Turin"), Some(Product::Turin));
    assert_eq!(Product::from_name("Rome"), None);
    assert_eq!(Product::from_cpuid(0x19, 0x01), Some(Product::Milan));
    assert_eq!(Product::from_cpuid(0x19, 0x11), Some(Product::Genoa));
    assert_eq!(Product::from_cpuid(0x1a, 0x02), Some(Product::Turin));
    // the v5 Milan report with the Genoa VCEK: CPUID says Milan
    let all = cases();
    let r = verify_snp(&all[3].report, &all[2].certs, &none(), &Options::default(), all[3].at);
    assert!(matches!(r, Err(Error::UnknownProduct(_))), "{r:?}");
}

/// Issue 16: providers' certificate folders hold ARK, ASK and ASVK together. Every genuine
/// VCEK-signed report must verify from such a folder, whatever order the files come in:
/// the intermediate is chosen by the report's SIGNING_KEY and the VEK's issuer, never by
/// which intermediate happened to be read last. Two folders: the report's own product
/// (ARK, ASK, and the Milan ASVK, the only ASVK in the fixtures) and everything
/// (both ARKs, both ASKs, the ASVK).
#[test]
fn mixed_certificate_folder_accepts_every_vcek_report() {
    let all = cases();
    assert_eq!(all.len(), 4);
    for c in &all {
        let name = c.e["file"].as_str().unwrap();
        let p = if c.e["product"].as_str().unwrap().starts_with("Genoa") { "genoa" } else { "milan" };
        let own = [format!("snp/ark_{p}.pem"), format!("snp/ask_{p}.pem"), "snp/asvk_milan.pem".to_owned()];
        let everything = ["snp/ark_milan.pem", "snp/ark_genoa.pem", "snp/ask_milan.pem", "snp/ask_genoa.pem"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(["snp/asvk_milan.pem".to_owned()])
            .collect::<Vec<_>>();
        for files in [own.to_vec(), everything] {
            let pems: Vec<Vec<u8>> = files.iter().map(|f| pem(f)).collect();
            // the folder in both orders, with the VEK first and last
            let mut forward = vec![c.certs.vek.clone()];
            forward.extend(pems.iter().cloned());
            let mut backward: Vec<Vec<u8>> = pems.iter().rev().cloned().collect();
            backward.push(c.certs.vek.clone());
            for folder in [forward, backward] {
                let certs = sort_certs(folder).unwrap();
                let r = verify_snp(&c.report, &certs, &none(), &Options::default(), c.at);
                assert!(r.is_ok(), "{name} from {files:?}: {r:?}");
                // and through an evidence bundle carrying the sorted certificates
                let b = encode_bundle(&c.report, &certs);
                let r = crate::verify_evidence(
                    Platform::Snp,
                    &b,
                    &crate::Expectations::Snp(none()),
                    &Options::default(),
                    c.at,
                );
                assert!(r.is_ok(), "{name} bundle from {files:?}: {r:?}");
            }
        }
    }
}

/// A report whose SIGNING_KEY field is flipped to VLEK (1) is refused with a typed error
/// naming both kinds, from the mixed folder too: the genuine VCEK cannot stand in for a
/// VLEK. (No genuine ASVK-signed VLEK or VLEK-signed report is among the fixtures; the
/// VLEK path itself is tested under a test root in `simulated_vlek_chain_*`.)
#[test]
fn report_flipped_to_vlek_is_refused_with_a_typed_error() {
    for c in cases() {
        let name = c.e["file"].as_str().unwrap();
        let p = if c.e["product"].as_str().unwrap().starts_with("Genoa") { "genoa" } else { "milan" };
        let mut folder = vec![c.certs.vek.clone()];
        for f in [format!("snp/ark_{p}.pem"), format!("snp/ask_{p}.pem"), "snp/asvk_milan.pem".to_owned()] {
            folder.push(pem(&f));
        }
        let certs = sort_certs(folder).unwrap();
        let flags = u32::from_le_bytes(c.report[0x48..0x4C].try_into().unwrap());
        assert_eq!((flags >> 2) & 7, 0, "{name} is VCEK-signed");
        let flipped = with(&c.report, 0x48, &(flags | 1 << 2).to_le_bytes());
        assert_eq!(
            verify_snp(&flipped, &certs, &none(), &Options::default(), c.at),
            Err(Error::SigningKeyKindMismatch { report: "vlek", cert: "vcek" }),
            "{name}"
        );
    }
}

/// SIMULATED: an AMD-shaped chain under a test root (ECDSA P-384 instead of AMD's RSA-PSS,
/// built by `crate::testcert`), with a test ARK `ARK-Milan`, ASK `SEV-Milan`, ASVK
/// `SEV-VLEK-Milan`, and a VCEK and a VLEK carrying AMD's productName/TCB (and, for the
/// VCEK, hwID) extensions. It exists because no genuine VLEK is among the fixtures; it
/// exercises the same `extract_report_with` the pinned AMD roots go through.
struct TestChain {
    ark: Vec<u8>,
    ark_sha256: String,
    ask: Vec<u8>,
    asvk: Vec<u8>,
    vcek: Vec<u8>,
    vlek: Vec<u8>,
    /// The genuine virtee report re-signed by the test VCEK (SIGNING_KEY 0) and VLEK (1).
    vcek_report: Vec<u8>,
    vlek_report: Vec<u8>,
    at: UnixTime,
}

fn der_uint(v: u8) -> Vec<u8> {
    if v < 0x80 {
        vec![0x02, 1, v]
    } else {
        vec![0x02, 2, 0, v]
    }
}

fn resign(report: &[u8], signing_key: u32, key: &crate::testcert::Key) -> Vec<u8> {
    let mut r = report.to_vec();
    let flags = u32_at(&r, 0x48) & !(7 << 2) | signing_key << 2;
    r[0x48..0x4C].copy_from_slice(&flags.to_le_bytes());
    let sig = key.sign_fixed(&r[..SIGNED_LEN]);
    let (rr, ss) = sig.split_at(48);
    r[0x2A0..0x2A0 + 48].copy_from_slice(&rr.iter().rev().copied().collect::<Vec<_>>());
    r[0x2E8..0x2E8 + 48].copy_from_slice(&ss.iter().rev().copied().collect::<Vec<_>>());
    r
}

fn test_chain() -> TestChain {
    use crate::testcert::{cert, extension, tlv, Key, Spec};
    let genuine = cases().remove(0); // virtee Milan: TCB 3/0/8/115, chip id, report v2
    let parsed = parse_report(&genuine.report).unwrap();
    let tcb = TcbVersion::from_raw(parsed.reported_tcb, Product::Milan);
    let (k_ark, k_ask, k_asvk, k_vcek, k_vlek) = (Key::new(), Key::new(), Key::new(), Key::new(), Key::new());
    let ca = |subject, issuer| Spec {
        subject,
        issuer,
        ca: Some((true, None)),
        key_usage: Some(0x06),
        key_usage_bits: None,
        extra_critical: false,
        extensions: &[],
        validity: ("200101000000Z", "400101000000Z"),
    };
    let mut vek_exts = vec![
        extension(&amd_oid::PRODUCT_NAME, &tlv(0x16, b"Milan-B0")),
        extension(&amd_oid::BOOTLOADER, &der_uint(tcb.bootloader)),
        extension(&amd_oid::TEE, &der_uint(tcb.tee)),
        extension(&amd_oid::SNP, &der_uint(tcb.snp)),
        extension(&amd_oid::MICROCODE, &der_uint(tcb.microcode)),
    ];
    let vlek_spec_exts = vek_exts.clone();
    vek_exts.push(extension(&amd_oid::HWID, &parsed.chip_id));
    let leaf =
        |subject, issuer, exts| Spec { ca: None, key_usage: Some(0x80), extensions: exts, ..ca(subject, issuer) };
    let ark = cert(&ca("ARK-Milan", "ARK-Milan"), &k_ark, &k_ark);
    let ask = cert(&ca("SEV-Milan", "ARK-Milan"), &k_ask, &k_ark);
    let asvk = cert(&ca("SEV-VLEK-Milan", "ARK-Milan"), &k_asvk, &k_ark);
    let vcek = cert(&leaf("SEV-VCEK", "SEV-Milan", &vek_exts), &k_vcek, &k_ask);
    let vlek = cert(&leaf("SEV-VLEK", "SEV-VLEK-Milan", &vlek_spec_exts), &k_vlek, &k_asvk);
    let ark_sha256 = hex::encode(Certificate::parse(&ark).unwrap().sha256());
    TestChain {
        vcek_report: resign(&genuine.report, 0, &k_vcek),
        vlek_report: resign(&genuine.report, 1, &k_vlek),
        ark,
        ark_sha256,
        ask,
        asvk,
        vcek,
        vlek,
        at: genuine.at,
    }
}

impl TestChain {
    /// The test root stands in for AMD's pinned ARK; `asvk_built_in` says whether an ASVK
    /// is "built in" for the product (AMD ships one for Milan only).
    fn anchors<'a>(&'a self, asvk_built_in: bool) -> impl Fn(Product) -> Anchors<'a> + 'a {
        move |_| Anchors {
            ark: &self.ark,
            ark_sha256: &self.ark_sha256,
            ask: &self.ask,
            asvk: asvk_built_in.then_some(self.asvk.as_slice()),
        }
    }

    fn verify(&self, report: &[u8], certs: &SnpCerts, asvk_built_in: bool) -> Result<VerifiedReport, Error> {
        extract_report_with(report, certs, self.at, self.anchors(asvk_built_in))
    }
}

#[test]
fn simulated_vlek_chain_mixed_folder_accepts_vcek_and_vlek_reports() {
    let t = test_chain();
    for (report, vek, kind) in
        [(&t.vcek_report, &t.vcek, SigningKey::Vcek), (&t.vlek_report, &t.vlek, SigningKey::Vlek)]
    {
        let pems = [t.ark.clone(), t.ask.clone(), t.asvk.clone()];
        let mut forward = vec![vek.clone()];
        forward.extend(pems.iter().cloned());
        let mut backward: Vec<Vec<u8>> = pems.iter().rev().cloned().collect();
        backward.push(vek.clone());
        for folder in [forward, backward] {
            let certs = sort_certs(folder).unwrap();
            assert!(certs.ask.is_some() && certs.asvk.is_some() && certs.ark.is_some());
            // nothing built in: the folder's intermediates are what the chain goes through
            let v = t.verify(report, &certs, false).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(v.report.signing_key, kind);
            assert!(v.checks.iter().any(|c| c == "vek_issuer"));
        }
        // only the VEK: the built-in intermediate for its kind
        assert!(t.verify(report, &SnpCerts::vek_only(vek.clone()), true).is_ok(), "{kind:?}");
    }
}

#[test]
fn simulated_vlek_chain_refusals_name_the_intermediate() {
    let t = test_chain();
    // a VLEK report, no ASVK given and none built in
    assert_eq!(
        t.verify(&t.vlek_report, &SnpCerts::vek_only(t.vlek.clone()), false),
        Err(Error::VlekWithoutAsvk { product: "Milan" })
    );
    // …while an ASK alone does not stand in for it
    let only_ask = SnpCerts { ask: Some(t.ask.clone()), ..SnpCerts::vek_only(t.vlek.clone()) };
    assert_eq!(t.verify(&t.vlek_report, &only_ask, false), Err(Error::VlekWithoutAsvk { product: "Milan" }));
    // the ASK in the ASVK slot (what the old "last SEV-* wins" sorting could produce)
    let swapped = SnpCerts { asvk: Some(t.ask.clone()), ..SnpCerts::vek_only(t.vlek.clone()) };
    assert_eq!(
        t.verify(&t.vlek_report, &swapped, false),
        Err(Error::VekIssuerMismatch {
            signing_key: "vlek",
            intermediate: "ASVK",
            vek_issuer: "SEV-VLEK-Milan".into(),
            intermediate_subject: "SEV-Milan".into()
        })
    );
    // and the ASVK in the ASK slot for a VCEK report
    let swapped = SnpCerts { ask: Some(t.asvk.clone()), ..SnpCerts::vek_only(t.vcek.clone()) };
    assert_eq!(
        t.verify(&t.vcek_report, &swapped, false),
        Err(Error::VekIssuerMismatch {
            signing_key: "vcek",
            intermediate: "ASK",
            vek_issuer: "SEV-Milan".into(),
            intermediate_subject: "SEV-VLEK-Milan".into()
        })
    );
    // the report's field and the certificate's kind disagree, both ways
    let vlek_as_vcek = resign(&t.vlek_report, 0, &crate::testcert::Key::new());
    assert_eq!(
        t.verify(&vlek_as_vcek, &SnpCerts::vek_only(t.vlek.clone()), true),
        Err(Error::SigningKeyKindMismatch { report: "vcek", cert: "vlek" })
    );
    let mut vcek_as_vlek = t.vcek_report.clone();
    vcek_as_vlek[0x48] |= 1 << 2;
    assert_eq!(
        t.verify(&vcek_as_vlek, &SnpCerts::vek_only(t.vcek.clone()), true),
        Err(Error::SigningKeyKindMismatch { report: "vlek", cert: "vcek" })
    );
    // the test chain is not AMD's: the pinned roots refuse it
    assert!(extract_report(&t.vlek_report, &SnpCerts::vek_only(t.vlek.clone()), t.at).is_err());
}
