//! Canonical encoding: RFC 8949 preferred serialization (shortest heads, definite
//! lengths), the caller's entry order, byte-identical round trips.

use cbor::{decode, encode, Value, Writer};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn uint(n: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.uint(n);
    w.into_bytes()
}

#[test]
fn heads_are_shortest_at_every_boundary() {
    for (n, want) in [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (255, "18ff"),
        (256, "190100"),
        (65_535, "19ffff"),
        (65_536, "1a00010000"),
        (u64::from(u32::MAX), "1affffffff"),
        (u64::from(u32::MAX) + 1, "1b0000000100000000"),
        (u64::MAX, "1bffffffffffffffff"),
    ] {
        assert_eq!(uint(n), hex(want), "{n}");
        assert_eq!(decode(&uint(n)).unwrap(), Value::Unsigned(n));
    }
    let mut w = Writer::new();
    w.int(-1).int(-24).int(-25).int(-35).int(i64::MIN).int(7);
    assert_eq!(w.into_bytes(), hex("20 37 3818 3822 3b7fffffffffffffff 07"));
    // lengths of strings, arrays and maps use the same heads
    let mut w = Writer::new();
    w.array(855);
    assert_eq!(w.into_bytes(), hex("990357"));
    let mut w = Writer::new();
    w.bytes(&[0; 24]);
    assert_eq!(&w.into_bytes()[..2], &[0x58, 24]);
    let mut w = Writer::new();
    w.text(&"x".repeat(256));
    assert_eq!(&w.into_bytes()[..3], &[0x79, 0x01, 0x00]);
    let mut w = Writer::new();
    w.map(24).tag(18);
    assert_eq!(w.into_bytes(), hex("b818 d2"));
}

#[test]
fn simple_values_and_u8_arrays() {
    let mut w = Writer::new();
    w.bool(false).bool(true).null().undefined().opt_bytes(None).opt_bytes(Some(b"a"));
    assert_eq!(w.into_bytes(), hex("f4 f5 f6 f7 f6 4161"));
    // serde_cbor's Vec<u8>: an array of uints, each with its shortest head
    let mut w = Writer::new();
    w.u8_array(&[0x2d, 5, 0xff]);
    assert_eq!(w.into_bytes(), hex("83 182d 05 18ff"));
}

#[test]
fn entries_keep_the_callers_order() {
    // not sorted: the EIF signature section puts "signing_certificate" before "signature"
    let mut w = Writer::new();
    w.map(2).text("b").uint(1).text("a").uint(2);
    let bytes = w.into_bytes();
    assert_eq!(bytes, hex("a2 6162 01 6161 02"));
    assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
}

#[test]
fn canonical_input_round_trips_byte_identically() {
    let v = Value::Map(vec![
        (Value::Unsigned(1), Value::Negative(34)),
        (
            Value::Text("x".into()),
            Value::Array(vec![Value::Bytes(vec![0; 300]), Value::Null, Value::Bool(true), Value::Undefined]),
        ),
        (Value::Unsigned(70_000), Value::Tag(18, Box::new(Value::Unsigned(u64::MAX)))),
        (Value::Negative(u64::MAX), Value::Text("é".repeat(40))),
    ]);
    let bytes = encode(&v);
    assert_eq!(decode(&bytes).unwrap(), v);
    assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
}

#[test]
fn non_canonical_input_is_written_back_canonically() {
    for (input, canonical) in [
        ("1800", "00"),                            // non-minimal head
        ("390022", "3822"),                        // non-minimal negative
        ("9f0102ff", "820102"),                    // indefinite array
        ("bf616101ff", "a1616101"),                // indefinite map
        ("5f42010241 03ff", "43010203"),           // chunked bytes
        ("7f62616261 63ff", "63616263"),           // chunked text
        ("d8 12 9f ff", "d2 80"),                  // non-minimal tag, indefinite array
        ("b900 01 6161 1a00000001", "a1 6161 01"), // non-minimal map length and value
    ] {
        let v = decode(&hex(input)).unwrap();
        assert_eq!(encode(&v), hex(canonical), "{input}");
    }
}

#[test]
fn raw_appends_encoded_items() {
    let mut w = Writer::new();
    w.array(2).raw(&hex("a0")).value(&Value::Text("z".into()));
    assert_eq!(decode(&w.into_bytes()).unwrap(), Value::Array(vec![Value::Map(vec![]), Value::Text("z".into())]));
}
