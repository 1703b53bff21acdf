//! The cleanroom Wasm ABI, version 1: names, types and the `cleanroom_abi` section.
//! The prose specification is `docs/wasm-abi.md`.

use crate::error::AdmissionError;
use std::fmt;

/// The ABI version this sandbox implements.
pub const ABI_VERSION: u32 = 1;
/// The only import namespace a module may use.
pub const IMPORT_MODULE: &str = "cleanroom";
/// The custom section declaring version, outputs per row and input kinds.
pub const ABI_SECTION: &str = "cleanroom_abi";
/// Required export: the module's single linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Required export: `(rows: i32) -> i32`, 0 on success.
pub const EXPORT_PROCESS_BATCH: &str = "cleanroom_process_batch";
/// Most input columns a module may declare (matches `protocol::job::MAX_INPUTS`).
pub const MAX_INPUTS: usize = 64;
/// Length of a privacy-unit token.
pub const TOKEN_LEN: usize = protocol::table::TOKEN_LEN;

/// Signature of a `cleanroom` import: parameter and result types, all i32.
pub(crate) struct ImportSig {
    pub name: &'static str,
    pub params: usize,
    pub results: usize,
}

/// Every import a module may declare; all parameters and results are `i32`.
pub(crate) const IMPORTS: &[ImportSig] = &[
    ImportSig { name: "read_f64", params: 3, results: 1 },
    ImportSig { name: "read_i64", params: 3, results: 1 },
    ImportSig { name: "read_codes", params: 3, results: 1 },
    ImportSig { name: "read_tokens", params: 3, results: 1 },
    // Optional and additive within version 1: a module that does not import it is
    // unchanged, and one that does is refused by a sandbox older than it.
    ImportSig { name: READ_VALIDITY, params: 3, results: 1 },
    ImportSig { name: "emit", params: 2, results: 0 },
];

/// The import that copies one validity byte per row (1 = value, 0 = null) of any input.
pub const READ_VALIDITY: &str = "read_validity";

/// Type of an input column as the module sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// f64 little-endian, 8 bytes per row.
    F64,
    /// i64 little-endian, 8 bytes per row.
    I64,
    /// Dictionary code, u32 little-endian, 4 bytes per row.
    Code,
    /// Privacy-unit token, 32 bytes per row.
    Token,
}

impl ColumnKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(ColumnKind::F64),
            1 => Some(ColumnKind::I64),
            2 => Some(ColumnKind::Code),
            3 => Some(ColumnKind::Token),
            _ => None,
        }
    }
    pub fn to_byte(self) -> u8 {
        match self {
            ColumnKind::F64 => 0,
            ColumnKind::I64 => 1,
            ColumnKind::Code => 2,
            ColumnKind::Token => 3,
        }
    }
    /// Bytes per row in guest memory.
    pub fn width(self) -> usize {
        match self {
            ColumnKind::F64 | ColumnKind::I64 => 8,
            ColumnKind::Code => 4,
            ColumnKind::Token => TOKEN_LEN,
        }
    }
    /// The sealed column type (as the manifest and policy name it) this kind reads.
    pub fn sealed_type(self) -> &'static str {
        match self {
            ColumnKind::F64 => "f64",
            ColumnKind::I64 => "i64",
            ColumnKind::Code => "dict",
            ColumnKind::Token => "token",
        }
    }
    /// The import that reads a column of this kind.
    pub fn reader(self) -> &'static str {
        match self {
            ColumnKind::F64 => "read_f64",
            ColumnKind::I64 => "read_i64",
            ColumnKind::Code => "read_codes",
            ColumnKind::Token => "read_tokens",
        }
    }
    /// The kind a module must declare to read `data`.
    pub fn of(data: &protocol::table::ColumnData) -> Self {
        use protocol::table::ColumnData;
        match data {
            ColumnData::F64(_) => ColumnKind::F64,
            ColumnData::I64(_) => ColumnKind::I64,
            ColumnData::Dict { .. } => ColumnKind::Code,
            ColumnData::Token(_) => ColumnKind::Token,
        }
    }
}

impl fmt::Display for ColumnKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnKind::F64 => "f64",
            ColumnKind::I64 => "i64",
            ColumnKind::Code => "code",
            ColumnKind::Token => "token",
        })
    }
}

/// The decoded `cleanroom_abi` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiManifest {
    pub abi_version: u32,
    pub outputs_per_row: u32,
    pub inputs: Vec<ColumnKind>,
}

impl AbiManifest {
    /// Decode and check a section body: `version u32le, outputs_per_row u32le,
    /// n_inputs u32le, n_inputs kind bytes`, nothing after.
    pub fn decode(data: &[u8]) -> Result<Self, AdmissionError> {
        let bad = |why: String| AdmissionError::BadAbiSection(why);
        let word = |i: usize| -> Result<u32, AdmissionError> {
            data.get(i..i + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| bad(format!("{} bytes, need at least 12", data.len())))
        };
        let abi_version = word(0)?;
        if abi_version != ABI_VERSION {
            return Err(AdmissionError::AbiVersion { found: abi_version, supported: ABI_VERSION });
        }
        let outputs_per_row = word(4)?;
        if outputs_per_row != 1 {
            return Err(AdmissionError::OutputsPerRow { found: outputs_per_row });
        }
        let n = word(8)? as usize;
        if n > MAX_INPUTS {
            return Err(bad(format!("{n} inputs, at most {MAX_INPUTS}")));
        }
        if data.len() != 12 + n {
            return Err(bad(format!("{} bytes for {n} inputs, expected {}", data.len(), 12 + n)));
        }
        let inputs = data[12..]
            .iter()
            .enumerate()
            .map(|(i, &b)| ColumnKind::from_byte(b).ok_or_else(|| bad(format!("input {i}: unknown kind {b}"))))
            .collect::<Result<_, _>>()?;
        Ok(AbiManifest { abi_version, outputs_per_row, inputs })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.inputs.len());
        out.extend_from_slice(&self.abi_version.to_le_bytes());
        out.extend_from_slice(&self.outputs_per_row.to_le_bytes());
        out.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        out.extend(self.inputs.iter().map(|k| k.to_byte()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_errors() {
        let m = AbiManifest {
            abi_version: 1,
            outputs_per_row: 1,
            inputs: vec![ColumnKind::F64, ColumnKind::I64, ColumnKind::Code, ColumnKind::Token],
        };
        assert_eq!(AbiManifest::decode(&m.encode()).unwrap(), m);
        let enc = m.encode();
        for cut in 0..enc.len() {
            assert!(AbiManifest::decode(&enc[..cut]).is_err(), "accepted a {cut}-byte prefix");
        }
        let mut long = enc.clone();
        long.push(0);
        assert!(matches!(AbiManifest::decode(&long), Err(AdmissionError::BadAbiSection(_))));
        let mut v2 = enc.clone();
        v2[0] = 2;
        assert_eq!(AbiManifest::decode(&v2), Err(AdmissionError::AbiVersion { found: 2, supported: 1 }));
        let mut outs = enc.clone();
        outs[4] = 3;
        assert_eq!(AbiManifest::decode(&outs), Err(AdmissionError::OutputsPerRow { found: 3 }));
        let mut kind = enc;
        kind[12] = 9;
        assert!(matches!(AbiManifest::decode(&kind), Err(AdmissionError::BadAbiSection(_))));
    }
}
