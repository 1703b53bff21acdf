//! Malformed and hostile images: every case is a typed error, never a panic.

mod common;

use common::*;
use eif_build::eif::{fix_crc, CRC_OFFSET, HEADER_SIZE, MAX_SECTIONS};
use eif_build::sign::signature_section_entry;
use eif_build::{build, Eif, HashAlgorithm, ReadError, SignError, SigningMaterial};

const SIZES_AT: usize = 28 + 8 * MAX_SECTIONS;

fn parse(b: &[u8]) -> Result<Eif<'_>, ReadError> {
    Eif::parse(b, HashAlgorithm::Sha384)
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Assembles an image from raw (type code, payload) sections with a correct header table
/// and CRC, so that one specific semantic fault can be tested in isolation.
fn raw_image(sections: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE];
    out[0..4].copy_from_slice(b".eif");
    put_u16(&mut out, 4, 4);
    put_u64(&mut out, 8, 1 << 30);
    put_u64(&mut out, 16, 2);
    put_u16(&mut out, 26, sections.len() as u16);
    for (i, (code, payload)) in sections.iter().enumerate() {
        let off = out.len() as u64;
        put_u64(&mut out, 28 + 8 * i, off);
        put_u64(&mut out, SIZES_AT + 8 * i, payload.len() as u64);
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(payload);
    }
    fix_crc(&mut out);
    out
}

#[test]
fn raw_image_helper_is_valid() {
    let img = raw_image(&[(1, b"k"), (2, b"c"), (3, b"r")]);
    parse(&img).unwrap();
}

#[test]
fn every_truncation_is_an_error() {
    for name in ["golden_unsigned.eif", "golden_signed.eif"] {
        let full = vector(name);
        for len in 0..full.len() {
            let r = parse(&full[..len]);
            match r {
                Err(ReadError::TooShort(n)) => assert!(len < HEADER_SIZE && n == len),
                Err(ReadError::SectionHeaderPastEnd { .. } | ReadError::PayloadPastEnd { .. }) => {
                    assert!(len >= HEADER_SIZE)
                }
                other => panic!("{name} truncated to {len}: {other:?}"),
            }
        }
    }
}

#[test]
fn bad_crc_is_detected() {
    let mut img = vector("golden_unsigned.eif");
    img[CRC_OFFSET] ^= 0x01;
    assert!(matches!(parse(&img), Err(ReadError::CrcMismatch { .. })));

    for at in [540, 1000, 100_560 + 12, 220_976] {
        let mut img = vector("golden_unsigned.eif");
        img[at] ^= 0x80;
        let e = parse(&img).unwrap_err();
        assert!(matches!(e, ReadError::CrcMismatch { .. }), "byte {at}: {e:?}");
        assert!(e.to_string().contains("CRC32 mismatch"));
    }
}

#[test]
fn section_sizes_past_end_or_inconsistent() {
    let golden = vector("golden_unsigned.eif");
    // both the table and the section header claim a payload past EOF
    for huge in [u64::MAX, u64::MAX - 11, 1 << 40, golden.len() as u64] {
        let mut img = golden.clone();
        put_u64(&mut img, SIZES_AT + 8 * 4, huge);
        put_u64(&mut img, 150_964 + 4, huge);
        fix_crc(&mut img);
        assert!(matches!(parse(&img), Err(ReadError::PayloadPastEnd { index: 4, .. })), "{huge}: {:?}", parse(&img));
    }
    // only the table changes
    let mut img = golden.clone();
    put_u64(&mut img, SIZES_AT, 99_999);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::SizeMismatch { index: 0, table: 99_999, section: 100_000 })));
    // a smaller size in both places leaves the next section misplaced
    let mut img = golden.clone();
    put_u64(&mut img, SIZES_AT, 99_999);
    put_u64(&mut img, 548 + 4, 99_999);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::NotContiguous { index: 1, .. })));
    // an offset far outside the file
    let mut img = golden.clone();
    put_u64(&mut img, 28 + 8 * 2, u64::MAX);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::NotContiguous { index: 2, .. })));
    // trailing bytes after the last section
    let mut img = golden.clone();
    img.extend_from_slice(&[0; 7]);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::TrailingData(7))));
    // an unused slot that is not zero
    let mut img = golden.clone();
    put_u64(&mut img, SIZES_AT + 8 * 31, 1);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::UnusedSlotNotZero(31))));
}

#[test]
fn header_fields() {
    let golden = vector("golden_unsigned.eif");
    let mut img = golden.clone();
    img[0] = b'E';
    assert!(matches!(parse(&img), Err(ReadError::BadMagic(_))));
    for v in [0u16, 5, 0xffff] {
        let mut img = golden.clone();
        put_u16(&mut img, 4, v);
        fix_crc(&mut img);
        assert!(matches!(parse(&img), Err(ReadError::UnsupportedVersion(x)) if x == v));
    }
    for n in [33u16, 0xffff] {
        let mut img = golden.clone();
        put_u16(&mut img, 26, n);
        fix_crc(&mut img);
        assert!(matches!(parse(&img), Err(ReadError::TooManySections(x)) if x == n));
    }
    let mut img = golden.clone();
    put_u16(&mut img, 26, 0);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::NoSections)));
    // fewer sections declared than present: the rest of the table is then not "unused"
    let mut img = golden.clone();
    put_u16(&mut img, 26, 4);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::UnusedSlotNotZero(4))));
}

#[test]
fn section_types_and_counts() {
    for code in [0u16, 6, 0xffff] {
        let img = raw_image(&[(1, b"k"), (code, b"x"), (2, b"c"), (3, b"r")]);
        assert!(matches!(
            parse(&img),
            Err(ReadError::UnknownSectionType { index: 1, code: c }) if c == code
        ));
    }
    let mut img = raw_image(&[(1, b"k"), (2, b"c"), (3, b"r")]);
    put_u16(&mut img, HEADER_SIZE + 2, 1);
    fix_crc(&mut img);
    assert!(matches!(parse(&img), Err(ReadError::SectionFlags { index: 0, .. })));

    type Case<'a> = (Vec<(u16, &'a [u8])>, ReadError);
    let cases: Vec<Case> = vec![
        (vec![(2, b"c"), (3, b"r")], ReadError::MissingSection("kernel")),
        (vec![(1, b"k"), (3, b"r")], ReadError::MissingSection("cmdline")),
        (vec![(1, b"k"), (2, b"c")], ReadError::MissingSection("ramdisk")),
        (vec![(1, b"k"), (1, b"k"), (2, b"c"), (3, b"r")], ReadError::DuplicateSection("kernel")),
        (vec![(1, b"k"), (2, b"c"), (2, b"c"), (3, b"r")], ReadError::DuplicateSection("cmdline")),
        (vec![(1, b"k"), (2, b"c"), (5, b"{}"), (5, b"{}"), (3, b"r")], ReadError::DuplicateSection("metadata")),
        (vec![(1, b"k"), (2, b"c\0d"), (3, b"r")], ReadError::CmdlineNul),
    ];
    for (sections, want) in cases {
        assert_eq!(parse(&raw_image(&sections)).unwrap_err(), want);
    }
    // metadata that is not JSON is still a readable image (metadata is not measured);
    // describe reports it.
    let img = raw_image(&[(1, b"k"), (2, b"c"), (5, b"\xff{"), (3, b"r")]);
    let eif = parse(&img).unwrap();
    let d = eif_build::describe::describe(&eif);
    assert!(d.metadata.is_none() && d.metadata_error.is_some());
}

/// Index of the byte that encodes the last element of the COSE array-of-uint.
fn last_signature_byte(img: &[u8]) -> usize {
    img.len() - 1
}

#[test]
fn signature_section_faults() {
    let inputs = golden_inputs();
    let signer = test_signer();
    let good = build(&golden_spec(&inputs, Some(&signer))).unwrap().bytes;
    parse(&good).unwrap();

    // flip a bit of the last signature byte (keeps the CBOR shape: <24 stays <24, >=24 stays >=24)
    let mut img = good.clone();
    let at = last_signature_byte(&img);
    img[at] ^= 1;
    fix_crc(&mut img);
    assert_eq!(parse(&img).unwrap_err(), ReadError::Signature(SignError::BadSignature));

    // a valid signature over a different PCR0
    let section = signer.signature_section(&[0u8; 48]);
    let img = raw_image(&[(1, &inputs.kernel), (2, CMDLINE.as_bytes()), (3, &inputs.rd0), (4, &section)]);
    assert_eq!(parse(&img).unwrap_err(), ReadError::Signature(SignError::Pcr0Mismatch));

    // a signature made with one key, presented with another certificate
    let other = SigningMaterial::from_pem(&fixture("other_p384_cert.pem"), &fixture("other_p384_key.pem")).unwrap();
    let pcr0 = build(&golden_spec(&inputs, None)).unwrap().measurements.pcr0;
    let theirs = other.signature_section(&pcr0);
    let ours = signer.signature_section(&pcr0);
    let swapped = swap_certificate(&ours, &fixture("other_p384_cert.pem"));
    let mk = |sig: &[u8]| {
        raw_image(&[(1, &inputs.kernel), (2, CMDLINE.as_bytes()), (3, &inputs.rd0), (3, &inputs.rd1), (4, sig)])
    };
    parse(&mk(&theirs)).unwrap();
    parse(&mk(&ours)).unwrap();
    assert_eq!(parse(&mk(&swapped)).unwrap_err(), ReadError::Signature(SignError::BadSignature));

    // garbage, empty array, byte strings where arrays are expected are accepted by us only
    // if the content is right; shapes that are wrong are Malformed/Cbor errors
    for junk in [&b""[..], b"\x80", b"\xa0", b"\x81\xa0", b"\x9f\xff", b"\x81\xa1\x61x\x00"] {
        let e = parse(&mk(junk)).unwrap_err();
        assert!(matches!(e, ReadError::Signature(SignError::Cbor(_) | SignError::Malformed(_))), "{junk:?}: {e:?}");
    }
    // a signing certificate that is not P-384 inside the section
    let p256 = swap_certificate(&ours, &fixture("p256_cert.pem"));
    assert!(matches!(parse(&mk(&p256)).unwrap_err(), ReadError::Signature(SignError::CertificateNotP384 { .. })));
}

/// Re-encodes a signature section with another certificate PEM (same COSE bytes).
fn swap_certificate(section: &[u8], cert_pem: &[u8]) -> Vec<u8> {
    let v = cbor::decode(section).unwrap();
    let cbor::Value::Array(entries) = v else { panic!() };
    let cose = entries[0].map_get_text("signature").unwrap().as_byte_vec().unwrap();
    signature_section_entry(cert_pem, &cose)
}

#[test]
fn signing_material_must_be_p384_and_match() {
    let cert = vector("test_signing_cert.pem");
    let key = vector("test_signing_key.pem");
    type Case = (Vec<u8>, Vec<u8>, fn(&SignError) -> bool);
    let cases: Vec<Case> = vec![
        (fixture("p256_cert.pem"), fixture("p256_key.pem"), |e| matches!(e, SignError::CertificateNotP384 { .. })),
        (fixture("rsa_cert.pem"), fixture("rsa_key.pem"), |e| matches!(e, SignError::CertificateNotP384 { .. })),
        (cert.clone(), fixture("p256_key.pem"), |e| matches!(e, SignError::KeyNotP384(_))),
        (cert.clone(), fixture("rsa_key.pem"), |e| matches!(e, SignError::KeyNotP384(_))),
        (cert.clone(), fixture("other_p384_key.pem"), |e| *e == SignError::KeyCertificateMismatch),
        (cert.clone(), fixture("other_p384_key_sec1.pem"), |e| *e == SignError::KeyCertificateMismatch),
        (b"not a pem".to_vec(), key.clone(), |e| *e == SignError::NoCertificatePem),
        (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(), key.clone(), |e| {
            matches!(e, SignError::CertificatePem(_))
        }),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(), key.clone(), |e| {
            matches!(e, SignError::CertificateDer(_))
        }),
        (cert.clone(), b"garbage".to_vec(), |e| *e == SignError::KeyPem),
        (
            cert.clone(),
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n".to_vec(),
            |e| *e == SignError::KeyEncrypted,
        ),
    ];
    for (i, (c, k, ok)) in cases.into_iter().enumerate() {
        let e = SigningMaterial::from_pem(&c, &k).unwrap_err();
        assert!(ok(&e), "case {i}: {e:?}");
        assert!(!e.to_string().is_empty());
    }
    // text before the PEM block is tolerated (as OpenSSL does)
    let mut prefixed = b"Certificate:\n    Data: ...\n".to_vec();
    prefixed.extend_from_slice(&cert);
    SigningMaterial::from_pem(&prefixed, &key).unwrap();
    // the key never shows up in Debug output
    let dbg = format!("{:?}", test_signer());
    assert!(dbg.contains("redacted") && !dbg.contains("MIG2"));
}

#[test]
fn build_rejects_bad_specs() {
    let inputs = golden_inputs();
    let mut spec = golden_spec(&inputs, None);
    spec.ramdisks.clear();
    assert_eq!(build(&spec).unwrap_err(), eif_build::BuildError::NoRamdisk);
    let mut spec = golden_spec(&inputs, None);
    spec.cmdline = b"a\0b";
    assert_eq!(build(&spec).unwrap_err(), eif_build::BuildError::CmdlineNul);
    let mut spec = golden_spec(&inputs, None);
    spec.ramdisks = vec![&inputs.rd0; 30];
    assert_eq!(build(&spec).unwrap_err(), eif_build::BuildError::TooManyRamdisks(30));
    spec.ramdisks = vec![&inputs.rd0; 29];
    let img = build(&spec).unwrap();
    parse(&img.bytes).unwrap();
}

/// xorshift64*: a deterministic mutation source.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let small_signed = {
        let signer = test_signer();
        let section = signer.signature_section(&[0u8; 48]);
        let pcr_spec_inputs = [(1u16, &b"kernel"[..]), (2, b"c"), (3, b"rd")];
        let mut secs: Vec<(u16, &[u8])> = pcr_spec_inputs.to_vec();
        secs.push((4, &section));
        raw_image(&secs)
    };
    let bases = [vector("golden_unsigned.eif"), vector("golden_signed.eif"), small_signed];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut errors = 0usize;
    for round in 0..3000 {
        let base = &bases[round % bases.len()];
        let mut img = base.clone();
        let n_mut = 1 + rng.below(4);
        for _ in 0..n_mut {
            match rng.below(6) {
                0 if !img.is_empty() => {
                    let at = rng.below(img.len());
                    img[at] ^= 1 << rng.below(8);
                }
                1 if img.len() >= HEADER_SIZE => {
                    // header bytes are the interesting ones
                    let at = rng.below(HEADER_SIZE);
                    img[at] = rng.next() as u8;
                }
                2 if img.len() >= HEADER_SIZE => {
                    let slot = rng.below(MAX_SECTIONS);
                    let at = if rng.below(2) == 0 { 28 } else { SIZES_AT } + 8 * slot;
                    put_u64(&mut img, at, rng.next() >> rng.below(64));
                }
                3 => {
                    let len = rng.below(img.len() + 1);
                    img.truncate(len);
                }
                4 if !img.is_empty() => {
                    // mutate near the end (signature section of signed bases)
                    let window = img.len().min(2500);
                    let at = img.len() - 1 - rng.below(window);
                    img[at] = rng.next() as u8;
                }
                5 => {
                    let at = rng.below(img.len() + 1);
                    img.insert(at, rng.next() as u8);
                }
                _ => {}
            }
        }
        if rng.below(3) != 0 {
            fix_crc(&mut img);
        }
        if parse(&img).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 2000, "mutations should mostly be rejected ({errors})");
}
