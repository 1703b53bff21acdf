//! Hostile input: truncation and garbage never panic, declared sizes never allocate,
//! nesting is bounded.

use std::path::PathBuf;

use cbor::{decode, CborError, Value, Writer, MAX_DEPTH};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// Well-formed samples: hand-made ones and a genuine Nitro attestation document
/// (indefinite-length payload map inside a tagged COSE_Sign1).
fn samples() -> Vec<Vec<u8>> {
    let mut w = Writer::new();
    w.tag(18).array(4).bytes(&hex("a10138 22")).map(0).bytes(&[7; 300]).bytes(&[9; 96]);
    let nitro = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/attestation/nitro/nitro_evervault_2022_signed.cbor");
    vec![
        hex("bf61610161629f0203ffff"),
        hex("5f42010241 03ff"),
        hex("7f62616261 63ff"),
        hex("a3 6161 43010203 6162 83 01 18c8 18 18 6163 f6"),
        hex("1bffffffffffffffff"),
        w.into_bytes(),
        std::fs::read(&nitro).unwrap_or_else(|e| panic!("{}: {e}", nitro.display())),
    ]
}

#[test]
fn every_proper_prefix_is_an_error_never_a_panic() {
    for s in samples() {
        decode(&s).unwrap();
        for n in 0..s.len() {
            match decode(&s[..n]) {
                Err(CborError::Truncated | CborError::LengthTooLarge { .. }) => {}
                other => panic!("prefix {n} of {} bytes: {other:?}", s.len()),
            }
        }
    }
}

#[test]
fn every_input_of_up_to_three_bytes_and_every_bit_flip_is_handled() {
    // exhaustive, not sampled: all 16,843,008 inputs of one to three bytes
    let mut accepted = 0usize;
    for n in 1..=3usize {
        for x in 0u32..1 << (8 * n) {
            accepted += usize::from(decode(&x.to_be_bytes()[4 - n..]).is_ok());
        }
    }
    assert!(accepted > 0);
    // every single-bit flip of every sample (the Nitro document included)
    for s in samples() {
        for i in 0..s.len() {
            for bit in 0..8 {
                let mut d = s.clone();
                d[i] ^= 1 << bit;
                let _ = decode(&d);
            }
        }
    }
}

#[test]
fn huge_declared_lengths_fail_before_allocating() {
    for input in [
        "5bffffffffffffffff", // bytes of 2^64-1
        "7bffffffffffffffff", // text of 2^64-1
        "9bffffffffffffffff", // array of 2^64-1 items
        "bb7fffffffffffffff", // map of 2^63-1 entries
        "9a7fffffff",         // array of 2^31-1 items
        "450102",             // bytes of 5, 2 present
        "83 01 02",           // array of 3, 2 present: too long for what remains
        "5f 5a7fffffff ff",   // a chunk longer than the input
    ] {
        assert!(matches!(decode(&hex(input)), Err(CborError::LengthTooLarge { .. })), "{input}");
    }
    // a map's entries take at least two bytes each
    assert_eq!(decode(&hex("a3 0001 02")), Err(CborError::LengthTooLarge { declared: 6, remaining: 3 }));
}

fn nested(prefix: u8, depth: usize) -> Vec<u8> {
    let mut v = vec![prefix; depth];
    v.push(0);
    v
}

#[test]
fn nesting_is_bounded_at_max_depth() {
    // `depth` containers around a scalar: the scalar sits at nesting level `depth`
    for prefix in [0x81u8, 0xd2] {
        assert!(decode(&nested(prefix, MAX_DEPTH)).is_ok(), "{prefix:#x} at {MAX_DEPTH}");
        assert_eq!(decode(&nested(prefix, MAX_DEPTH + 1)), Err(CborError::TooDeep), "{prefix:#x}");
    }
    // indefinite arrays and maps count the same
    let mut v = vec![0x9f; MAX_DEPTH + 1];
    v.push(0);
    v.extend(vec![0xff; MAX_DEPTH + 1]);
    assert_eq!(decode(&v), Err(CborError::TooDeep));
    let mut v = Vec::new();
    for _ in 0..=MAX_DEPTH {
        v.extend([0xa1, 0x00]);
    }
    v.push(0);
    assert_eq!(decode(&v), Err(CborError::TooDeep));
    // a long flat sequence is not deep
    let mut w = Writer::new();
    w.array(10_000);
    for _ in 0..10_000 {
        w.uint(1);
    }
    assert!(matches!(decode(&w.into_bytes()), Ok(Value::Array(a)) if a.len() == 10_000));
    // and depth bombs far beyond the limit stop early
    assert_eq!(decode(&vec![0x81; 100_000]), Err(CborError::TooDeep));
}
