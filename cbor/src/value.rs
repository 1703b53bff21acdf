//! The decoded data item.

/// A decoded CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the value is `-1 - n`.
    Negative(u64),
    /// Major type 2 (chunks of an indefinite string are concatenated).
    Bytes(Vec<u8>),
    /// Major type 3 (chunks of an indefinite string are concatenated).
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5, in the order received.
    Map(Vec<(Value, Value)>),
    /// Major type 6.
    Tag(u64, Box<Value>),
    /// Simple values 20 / 21.
    Bool(bool),
    /// Simple value 22.
    Null,
    /// Simple value 23.
    Undefined,
}

impl Value {
    /// The value as an `i128` if it is an integer.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Unsigned(n) => Some(i128::from(*n)),
            Value::Negative(n) => Some(-1 - i128::from(*n)),
            _ => None,
        }
    }

    /// Looks up a text key in a map (`None` for anything that is not a map).
    pub fn map_get_text(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| match k {
                Value::Text(t) if t == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// A byte field written either as a byte string or as an array of unsigned
    /// integers 0..=255 (how serde_cbor writes a Rust `Vec<u8>` without `serde_bytes`;
    /// see [`crate::Writer::u8_array`]).
    pub fn as_byte_vec(&self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(b) => Some(b.clone()),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Unsigned(n) => u8::try_from(*n).ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// A short name of the item's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Unsigned(_) => "unsigned integer",
            Value::Negative(_) => "negative integer",
            Value::Bytes(_) => "byte string",
            Value::Text(_) => "text string",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Tag(_, _) => "tag",
            Value::Bool(_) => "bool",
            Value::Null => "null",
            Value::Undefined => "undefined",
        }
    }
}
