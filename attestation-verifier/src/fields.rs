//! Typed access to the fields of a decoded payload map (shared by Nitro and simulated evidence).

use std::collections::BTreeMap;

use crate::Error;
use cbor::Value;

/// Number of PCRs a Nitro enclave has.
pub const MAX_PCRS: usize = 32;
/// Size of a SHA-384 PCR.
pub const PCR_LEN: usize = 48;
/// Largest nonce / user_data / public_key accepted.
pub const MAX_BINDING_LEN: usize = 1024;
/// Largest module_id accepted.
pub const MAX_MODULE_ID_LEN: usize = 256;

pub fn text<'a>(v: &'a Value, field: &'static str) -> Result<&'a str, Error> {
    match v {
        Value::Text(t) => Ok(t),
        _ => Err(Error::WrongFieldType { field, expected: "text string" }),
    }
}

pub fn bytes<'a>(v: &'a Value, field: &'static str) -> Result<&'a [u8], Error> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(Error::WrongFieldType { field, expected: "byte string" }),
    }
}

pub fn uint(v: &Value, field: &'static str) -> Result<u64, Error> {
    match v {
        Value::Unsigned(n) => Ok(*n),
        _ => Err(Error::WrongFieldType { field, expected: "unsigned integer" }),
    }
}

/// A byte string that may be null or absent (both mean `None`), at most `max` bytes.
pub fn opt_bytes(v: Option<&Value>, field: &'static str, max: usize) -> Result<Option<Vec<u8>>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bytes(b)) if b.len() > max => Err(Error::FieldSize { field, len: b.len() }),
        Some(Value::Bytes(b)) => Ok(Some(b.clone())),
        Some(_) => Err(Error::WrongFieldType { field, expected: "byte string or null" }),
    }
}

pub fn module_id(v: &Value) -> Result<String, Error> {
    let t = text(v, "module_id")?;
    if t.is_empty() || t.len() > MAX_MODULE_ID_LEN {
        return Err(Error::FieldSize { field: "module_id", len: t.len() });
    }
    Ok(t.to_owned())
}

pub fn digest(v: &Value) -> Result<String, Error> {
    let t = text(v, "digest")?;
    if t != "SHA384" {
        return Err(Error::UnsupportedDigest(t.chars().take(32).collect()));
    }
    Ok(t.to_owned())
}

/// `pcrs`: map of index (0..32) → 48-byte value, at least one entry.
pub fn pcrs(v: &Value) -> Result<BTreeMap<u16, Vec<u8>>, Error> {
    let Value::Map(entries) = v else {
        return Err(Error::WrongFieldType { field: "pcrs", expected: "map" });
    };
    if entries.is_empty() || entries.len() > MAX_PCRS {
        return Err(Error::FieldSize { field: "pcrs", len: entries.len() });
    }
    let mut out = BTreeMap::new();
    for (k, val) in entries {
        let idx = match k {
            Value::Unsigned(n) if *n < MAX_PCRS as u64 => *n as u16,
            Value::Unsigned(n) => {
                return Err(Error::FieldSize { field: "pcrs index", len: usize::try_from(*n).unwrap_or(usize::MAX) })
            }
            _ => return Err(Error::WrongFieldType { field: "pcrs index", expected: "unsigned integer" }),
        };
        let b = bytes(val, "pcr value")?;
        if b.len() != PCR_LEN {
            return Err(Error::FieldSize { field: "pcr value", len: b.len() });
        }
        out.insert(idx, b.to_vec());
    }
    Ok(out)
}

/// Refuses keys not in `known` (text keys only).
pub fn only_known_keys(entries: &[(Value, Value)], known: &[&str]) -> Result<(), Error> {
    for (k, _) in entries {
        match k {
            Value::Text(t) if known.contains(&t.as_str()) => {}
            Value::Text(t) => return Err(Error::UnknownField(t.chars().take(64).collect())),
            other => return Err(Error::UnknownField(format!("<{}>", other.type_name()))),
        }
    }
    Ok(())
}

/// Reads the Nitro claim set from a payload map.
pub fn claims(payload: &Value) -> Result<crate::Claims, Error> {
    let get = |k: &'static str| payload.map_get_text(k).ok_or(Error::MissingField(k));
    let module_id = module_id(get("module_id")?)?;
    let digest = digest(get("digest")?)?;
    let timestamp = uint(get("timestamp")?, "timestamp")?;
    if timestamp == 0 {
        return Err(Error::FieldSize { field: "timestamp", len: 0 });
    }
    let pcrs = pcrs(get("pcrs")?)?;
    Ok(crate::Claims {
        module_id,
        timestamp,
        digest,
        pcrs,
        nonce: opt_bytes(payload.map_get_text("nonce"), "nonce", MAX_BINDING_LEN)?,
        user_data: opt_bytes(payload.map_get_text("user_data"), "user_data", MAX_BINDING_LEN)?,
        public_key: opt_bytes(payload.map_get_text("public_key"), "public_key", MAX_BINDING_LEN)?,
    })
}
