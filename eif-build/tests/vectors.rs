//! The reference vectors in ../../shared/testdata/eif: PCRs, byte-exact images, reader.

mod common;

use common::*;
use eif_build::describe::describe;
use eif_build::eif::{HEADER_SIZE, SECTION_HEADER_SIZE};
use eif_build::pcr::measure_inputs;
use eif_build::{build, Eif, HashAlgorithm, SectionType};

fn measurements_json(m: &eif_build::Measurements) -> serde_json::Value {
    serde_json::to_value(m.to_json()).unwrap()
}

#[test]
fn unsigned_build_matches_expected_pcrs_and_golden_bytes() {
    let inputs = golden_inputs();
    let image = build(&golden_spec(&inputs, None)).unwrap();
    assert_eq!(measurements_json(&image.measurements), expected("expected_unsigned.json"));
    let golden = vector("golden_unsigned.eif");
    assert_eq!(image.bytes.len(), 220_977);
    assert!(image.bytes == golden, "unsigned image differs from golden_unsigned.eif");
    assert_eq!(sha256_hex(&image.bytes), "449560e396dd99248be567b44d553eda417fe55dd865dac22e766144d9e6059b");
}

#[test]
fn signed_build_matches_expected_pcrs_and_differs_only_where_allowed() {
    let inputs = golden_inputs();
    let signer = test_signer();
    let image = build(&golden_spec(&inputs, Some(&signer))).unwrap();
    assert_eq!(measurements_json(&image.measurements), expected("expected_signed.json"));
    let golden = vector("golden_signed.eif");
    // Allowed differences (vectors README): the size-table slot of the signature (5),
    // the CRC, the signature payload and hence the file length.
    let sig_size_slot = 28 + 256 + 8 * 5;
    let sig_header_at = 220_977;
    let allowed = |i: usize| {
        (sig_size_slot..sig_size_slot + 8).contains(&i)
            || (544..548).contains(&i)
            || (sig_header_at + 4..sig_header_at + 12).contains(&i)
    };
    let sig_payload_at = sig_header_at + SECTION_HEADER_SIZE;
    for (i, (ours, theirs)) in image.bytes[..sig_payload_at].iter().zip(&golden[..sig_payload_at]).enumerate() {
        if !allowed(i) {
            assert_eq!(ours, theirs, "byte {i} differs from golden_signed.eif");
        }
    }
    // The signature section header differs only in its size field.
    assert_eq!(image.bytes[220_977..220_981], golden[220_977..220_981]);

    let ours = Eif::parse(&image.bytes, HashAlgorithm::Sha384).unwrap();
    let sigs = ours.signatures.as_ref().unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].register_index, 0);
    assert_eq!(sigs[0].register_value, image.measurements.pcr0);
    assert_eq!(sigs[0].certificate.pem(), vector("test_signing_cert.pem"));
}

#[test]
fn pcrs_from_inputs_with_other_algorithms() {
    let i = golden_inputs();
    let rds: [&[u8]; 2] = [&i.rd0, &i.rd1];
    let cases = [
        (
            HashAlgorithm::Sha256,
            "7115e528999b7202894f4ff857cadd54a2d593ddc7ed05a65bb5710125db00e3",
            "79597ffff9da00ad56ae84691cf2085eec708c5385be838aab141ab4f10462b8",
            "65ed562728a2a697f3e517bdbc9bd6a753a781c5ffe910683856894c2b6e91bd",
        ),
        (
            HashAlgorithm::Sha512,
            "86e4823369dc334d823748e0546eefd6c27928003d21c1101c2e762c2b03ba5f05658964f77ea1b650c3e73c2560588b0ea135bf7cc2636a1dfaae2e18dbc311",
            "c57070c210608035af588ae90f6613147ef06f9bdc90de05444d3100e85a59d523bd098495fd8b242b7345bf196a5f928abfae49807daa5b225b5bc8d7a330c5",
            "c5d88c1dd89ed9634b962e3508ba1b4ee960eada4c9ddcd44a4fe3c74d2e31e08e578ba713a262dc11c984b69e7512d88d9f90118a564032a359f30265a691d3",
        ),
    ];
    for (alg, p0, p1, p2) in cases {
        let m = measure_inputs(alg, &i.kernel, CMDLINE.as_bytes(), &rds, None);
        assert_eq!(hex::encode(&m.pcr0), p0, "{alg} PCR0");
        assert_eq!(hex::encode(&m.pcr1), p1, "{alg} PCR1");
        assert_eq!(hex::encode(&m.pcr2), p2, "{alg} PCR2");
        // The reader recomputes the same values from the golden file.
        let golden = vector("golden_unsigned.eif");
        let eif = Eif::parse(&golden, alg).unwrap();
        assert_eq!(eif.measurements, m);
        // and the EIF bytes do not depend on the algorithm
        let mut spec = golden_spec(&i, None);
        spec.algorithm = alg;
        assert!(build(&spec).unwrap().bytes == golden);
    }
}

#[test]
fn reader_accepts_golden_images_with_expected_pcrs() {
    for (file, exp) in
        [("golden_unsigned.eif", "expected_unsigned.json"), ("golden_signed.eif", "expected_signed.json")]
    {
        let bytes = vector(file);
        let eif = Eif::parse(&bytes, HashAlgorithm::Sha384).unwrap();
        assert_eq!(measurements_json(&eif.measurements), expected(exp), "{file}");
        let d = serde_json::to_value(describe(&eif)).unwrap();
        assert_eq!(d["Measurements"], expected(exp), "{file}");
        assert_eq!(d["ImageName"], "cleanroom-golden");
        assert_eq!(d["Cmdline"], CMDLINE);
        let kinds: Vec<_> = eif.sections.iter().map(|s| s.kind).collect();
        let mut want = vec![
            SectionType::Kernel,
            SectionType::Cmdline,
            SectionType::Metadata,
            SectionType::Ramdisk,
            SectionType::Ramdisk,
        ];
        if eif.is_signed() {
            want.push(SectionType::Signature);
        }
        assert_eq!(kinds, want);
        assert_eq!(eif.sections[0].offset, HEADER_SIZE as u64);
        assert_eq!(eif.metadata().unwrap(), golden_metadata().to_bytes());
        assert_eq!(eif.metadata().unwrap().len(), 346);
    }
}

#[test]
fn written_images_read_back_and_redescribe_identically() {
    let inputs = golden_inputs();
    let ours = build(&golden_spec(&inputs, None)).unwrap().bytes;
    let golden = vector("golden_unsigned.eif");
    let a = describe(&Eif::parse(&ours, HashAlgorithm::Sha384).unwrap());
    let b = describe(&Eif::parse(&golden, HashAlgorithm::Sha384).unwrap());
    assert_eq!(a, b);

    let signer = test_signer();
    let ours = build(&golden_spec(&inputs, Some(&signer))).unwrap().bytes;
    let golden = vector("golden_signed.eif");
    let mut a = describe(&Eif::parse(&ours, HashAlgorithm::Sha384).unwrap());
    let mut b = describe(&Eif::parse(&golden, HashAlgorithm::Sha384).unwrap());
    // Only the signature section's size and hash may differ (random ECDSA nonce upstream).
    for d in [&mut a, &mut b] {
        let s = d.sections.last_mut().unwrap();
        assert_eq!(s.kind, "Signature");
        s.size = 0;
        s.sha384.clear();
    }
    assert_eq!(a, b);

    // Re-building from what the reader extracted gives the same bytes.
    let eif = Eif::parse(&ours, HashAlgorithm::Sha384).unwrap();
    let mut spec = golden_spec(&inputs, Some(&signer));
    spec.kernel = eif.kernel();
    spec.cmdline = eif.cmdline();
    spec.ramdisks = eif.ramdisks();
    assert!(build(&spec).unwrap().bytes == ours);
}

#[test]
fn builds_are_byte_identical() {
    let inputs = golden_inputs();
    let signer = test_signer();
    for signing in [None, Some(&signer)] {
        let a = build(&golden_spec(&inputs, signing)).unwrap().bytes;
        let b = build(&golden_spec(&inputs, signing)).unwrap().bytes;
        assert!(a == b, "signed={}", signing.is_some());
    }
}

#[test]
fn one_ramdisk_and_other_signers() {
    let inputs = golden_inputs();
    let mut spec = golden_spec(&inputs, None);
    spec.ramdisks = vec![&inputs.rd0];
    let img = build(&spec).unwrap();
    assert_eq!(img.measurements.pcr0, img.measurements.pcr1);
    assert_eq!(
        hex::encode(&img.measurements.pcr2),
        "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
    );
    let back = Eif::parse(&img.bytes, HashAlgorithm::Sha384).unwrap();
    assert_eq!(back.measurements, img.measurements);

    // A different P-384 identity, PKCS#8 and SEC1 key forms.
    for key in ["other_p384_key.pem", "other_p384_key_sec1.pem"] {
        let signer = eif_build::SigningMaterial::from_pem(&fixture("other_p384_cert.pem"), &fixture(key)).unwrap();
        let mut spec = golden_spec(&inputs, Some(&signer));
        spec.ramdisks = vec![&inputs.rd0];
        let img = build(&spec).unwrap();
        // PCR0 does not depend on signing; PCR8 does.
        assert_eq!(img.measurements.pcr0, back.measurements.pcr0);
        let back2 = Eif::parse(&img.bytes, HashAlgorithm::Sha384).unwrap();
        assert_eq!(back2.measurements, img.measurements);
        assert_ne!(
            hex::encode(img.measurements.pcr8.as_ref().unwrap()),
            expected("expected_signed.json")["PCR8"].as_str().unwrap()
        );
    }
}

#[test]
fn python_checker_accepts_our_images() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = golden_inputs();
    let signer = test_signer();
    let mut images = vec![
        ("unsigned.eif", build(&golden_spec(&inputs, None)).unwrap()),
        ("signed.eif", build(&golden_spec(&inputs, Some(&signer))).unwrap()),
    ];
    let mut one = golden_spec(&inputs, Some(&signer));
    one.ramdisks = vec![&inputs.rd1];
    one.metadata.custom = None;
    images.push(("one_ramdisk.eif", build(&one).unwrap()));
    for (name, img) in images {
        let p = dir.path().join(name);
        std::fs::write(&p, &img.bytes).unwrap();
        let (ok, out) = python_checker(&p);
        assert!(ok, "eif_pcrs.py rejected {name}:\n{out}");
        assert!(!out.contains("ERROR"), "{out}");
        assert!(out.contains(&format!("PCR0: {}", hex::encode(&img.measurements.pcr0))), "{out}");
        if name != "unsigned.eif" {
            assert!(out.contains("signature verifies: yes") || out.contains("not checked"), "{out}");
        }
    }
}
