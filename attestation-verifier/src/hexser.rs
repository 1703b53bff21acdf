//! Serde helpers: byte fields are written as lower-case hex strings in JSON.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// `Vec<u8>` as a hex string.
pub mod bytes {
    use super::*;

    /// Serialize as hex.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    /// Deserialize from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(D::Error::custom)
    }
}

/// `Option<Vec<u8>>` as a hex string or `null`.
pub mod opt {
    use super::*;

    /// Serialize as hex or null.
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    /// Deserialize from hex or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| hex::decode(s).map_err(D::Error::custom)).transpose()
    }
}

/// `BTreeMap<u16, Vec<u8>>` as `{"0": "hex", ...}`.
pub mod pcr_map {
    use super::*;
    use serde::ser::SerializeMap;

    /// Serialize as a map of index → hex.
    pub fn serialize<S: Serializer>(v: &BTreeMap<u16, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, val) in v {
            m.serialize_entry(&k.to_string(), &hex::encode(val))?;
        }
        m.end()
    }

    /// Deserialize from a map of index → hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u16, Vec<u8>>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let idx = k.parse::<u16>().map_err(D::Error::custom)?;
                let val = hex::decode(v).map_err(D::Error::custom)?;
                Ok((idx, val))
            })
            .collect()
    }
}
