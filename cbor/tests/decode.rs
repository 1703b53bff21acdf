//! Strict decoding: what is accepted, and every way an input is refused.

use cbor::{decode, CborError, Value};

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

#[test]
fn integers_and_strings() {
    assert_eq!(decode(&hex("00")).unwrap(), Value::Unsigned(0));
    assert_eq!(decode(&hex("17")).unwrap(), Value::Unsigned(23));
    assert_eq!(decode(&hex("1818")).unwrap(), Value::Unsigned(24));
    assert_eq!(decode(&hex("1903e8")).unwrap(), Value::Unsigned(1000));
    assert_eq!(decode(&hex("3822")).unwrap().as_int(), Some(-35));
    assert_eq!(decode(&hex("1bffffffffffffffff")).unwrap(), Value::Unsigned(u64::MAX));
    assert_eq!(decode(&hex("3bffffffffffffffff")).unwrap().as_int(), Some(-1 - i128::from(u64::MAX)));
    assert_eq!(decode(&hex("4401020304")).unwrap(), Value::Bytes(vec![1, 2, 3, 4]));
    assert_eq!(decode(&hex("6161")).unwrap(), Value::Text("a".into()));
    assert_eq!(decode(&hex("f4")).unwrap(), Value::Bool(false));
    assert_eq!(decode(&hex("f5")).unwrap(), Value::Bool(true));
    assert_eq!(decode(&hex("f6")).unwrap(), Value::Null);
    assert_eq!(decode(&hex("f7")).unwrap(), Value::Undefined);
    assert_eq!(decode(&hex("d2 80")).unwrap(), Value::Tag(18, Box::new(Value::Array(vec![]))));
}

#[test]
fn non_minimal_heads_are_read() {
    // the input need not be canonical: NSM does not emit it and signatures cover the bytes as received
    assert_eq!(decode(&hex("1800")).unwrap(), Value::Unsigned(0));
    assert_eq!(decode(&hex("390022")).unwrap().as_int(), Some(-35));
    assert_eq!(decode(&hex("5a00000001 ff")).unwrap(), Value::Bytes(vec![0xff]));
}

#[test]
fn indefinite_lengths_accepted() {
    // {_ "a": 1, "b": [_ 2, 3]}
    let v = decode(&hex("bf61610161629f0203ffff")).unwrap();
    assert_eq!(v.map_get_text("a"), Some(&Value::Unsigned(1)));
    assert_eq!(v.map_get_text("b"), Some(&Value::Array(vec![Value::Unsigned(2), Value::Unsigned(3)])));
    // (_ h'0102', h'03')
    assert_eq!(decode(&hex("5f42010241 03ff")).unwrap(), Value::Bytes(vec![1, 2, 3]));
    // (_ "ab", "c")
    assert_eq!(decode(&hex("7f62616261 63ff")).unwrap(), Value::Text("abc".into()));
    // empty indefinite containers and strings
    assert_eq!(decode(&hex("9fff")).unwrap(), Value::Array(vec![]));
    assert_eq!(decode(&hex("bfff")).unwrap(), Value::Map(vec![]));
    assert_eq!(decode(&hex("5fff")).unwrap(), Value::Bytes(vec![]));
    // a UTF-8 character split across chunks is fine once concatenated
    assert_eq!(decode(&hex("7f 61c3 61a9 ff")).unwrap(), Value::Text("é".into()));
}

#[test]
fn rejects_truncated() {
    assert_eq!(decode(&hex("1903")), Err(CborError::Truncated));
    assert_eq!(decode(&hex("bf6161")), Err(CborError::Truncated));
    assert_eq!(decode(&hex("9f01")), Err(CborError::Truncated));
    assert_eq!(decode(&hex("81 1903")), Err(CborError::Truncated));
    assert_eq!(decode(&[]), Err(CborError::Truncated));
}

#[test]
fn rejects_trailing() {
    assert_eq!(decode(&hex("0000")), Err(CborError::TrailingBytes(1)));
    assert_eq!(decode(&hex("80 ff")), Err(CborError::TrailingBytes(1)));
}

#[test]
fn rejects_duplicate_keys() {
    assert_eq!(decode(&hex("a2616101616102")), Err(CborError::DuplicateKey));
    assert_eq!(decode(&hex("bf616101616102ff")), Err(CborError::DuplicateKey));
    assert_eq!(decode(&hex("a201010102")), Err(CborError::DuplicateKey));
    // the same key in different maps is fine
    assert!(decode(&hex("82 a10101 a10102")).is_ok());
}

#[test]
fn rejects_bad_utf8_and_reserved_and_floats() {
    assert_eq!(decode(&hex("62c328")), Err(CborError::InvalidUtf8));
    assert_eq!(decode(&hex("7f 61c3 ff")), Err(CborError::InvalidUtf8));
    assert_eq!(decode(&hex("1c")), Err(CborError::Reserved(28)));
    assert_eq!(decode(&hex("5d")), Err(CborError::Reserved(29)));
    assert_eq!(decode(&hex("fe")), Err(CborError::Reserved(30)));
    assert_eq!(decode(&hex("f93c00")), Err(CborError::Unsupported(25)));
    assert_eq!(decode(&hex("fa47c35000")), Err(CborError::Unsupported(26)));
    assert_eq!(decode(&hex("fb3ff199999999999a")), Err(CborError::Unsupported(27)));
    assert_eq!(decode(&hex("f814")), Err(CborError::Unsupported(24)));
    assert_eq!(decode(&hex("f0")), Err(CborError::Unsupported(16)));
}

#[test]
fn rejects_breaks_and_bad_chunks() {
    assert_eq!(decode(&hex("ff")), Err(CborError::UnexpectedBreak));
    assert_eq!(decode(&hex("81ff")), Err(CborError::UnexpectedBreak));
    // a chunk of another type, and a nested indefinite chunk
    assert_eq!(decode(&hex("5f6161ff")), Err(CborError::BadChunk));
    assert_eq!(decode(&hex("5f5fffff")), Err(CborError::BadChunk));
    assert_eq!(decode(&hex("1f")), Err(CborError::IndefiniteNotAllowed(0)));
    assert_eq!(decode(&hex("3f")), Err(CborError::IndefiniteNotAllowed(1)));
    assert_eq!(decode(&hex("df00")), Err(CborError::IndefiniteNotAllowed(6)));
}

#[test]
fn value_helpers() {
    let v = decode(&hex("a3 6161 43010203 6162 83 01 18c8 18 18 6163 f6")).unwrap();
    assert_eq!(v.map_get_text("a").unwrap().as_byte_vec(), Some(vec![1, 2, 3]));
    assert_eq!(v.map_get_text("b").unwrap().as_byte_vec(), Some(vec![1, 200, 24]));
    assert_eq!(v.map_get_text("c").unwrap().as_byte_vec(), None);
    assert_eq!(v.map_get_text("d"), None);
    assert_eq!(Value::Array(vec![Value::Unsigned(256)]).as_byte_vec(), None);
    assert_eq!(Value::Unsigned(1).map_get_text("a"), None);
    assert_eq!(v.type_name(), "map");
    assert_eq!(Value::Text("x".into()).as_int(), None);
}
