//! The cleanroom Wasm ABI, version 1: names, types and the `cleanroom_abi` section.
//! The prose specification is `docs/wasm-abi.md`.

use crate::error::{AdmissionError, OutputNameError};
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
    // Likewise optional: a trainable module reads the parameters the enclave gives it.
    ImportSig { name: crate::train::READ_PARAMS, params: 2, results: 1 },
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

/// Most values a module may emit per input row (its declared outputs).
pub const MAX_OUTPUTS_PER_ROW: u32 = 16;
/// Longest output name, in bytes.
pub const MAX_OUTPUT_NAME_LEN: usize = 64;
/// The name of a module's single output when its section names none.
pub const DEFAULT_OUTPUT_NAME: &str = "score";

/// Check one output name: 1 to [`MAX_OUTPUT_NAME_LEN`] bytes of `[a-z0-9_]`, starting
/// with a letter. Returns it as a `str`.
pub fn validate_output_name(bytes: &[u8]) -> Result<&str, OutputNameError> {
    if bytes.is_empty() {
        return Err(OutputNameError::Empty);
    }
    if bytes.len() > MAX_OUTPUT_NAME_LEN {
        return Err(OutputNameError::TooLong { len: bytes.len() });
    }
    let name = std::str::from_utf8(bytes).map_err(|_| OutputNameError::NotUtf8)?;
    if let Some(found) = name.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')) {
        return Err(OutputNameError::BadChar { found });
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err(OutputNameError::FirstNotLetter);
    }
    Ok(name)
}

/// The decoded `cleanroom_abi` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiManifest {
    pub abi_version: u32,
    /// Values the module emits per input row, 1 to [`MAX_OUTPUTS_PER_ROW`].
    pub outputs_per_row: u32,
    pub inputs: Vec<ColumnKind>,
    /// One name per output, in emission order: `outputs_per_row` of them. A section that
    /// names no output declares a single one, [`DEFAULT_OUTPUT_NAME`].
    pub output_names: Vec<String>,
}

impl AbiManifest {
    /// Decode and check a section body: `version u32le, outputs_per_row u32le,
    /// n_inputs u32le, n_inputs kind bytes`, then, optionally, `outputs_per_row` output
    /// names, each a length byte and that many bytes of `[a-z0-9_]`; nothing after.
    /// Without names, `outputs_per_row` must be 1 and the output is named `score`.
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
        if outputs_per_row == 0 || outputs_per_row > MAX_OUTPUTS_PER_ROW {
            return Err(AdmissionError::OutputsPerRow { found: outputs_per_row });
        }
        let n = word(8)? as usize;
        if n > MAX_INPUTS {
            return Err(bad(format!("{n} inputs, at most {MAX_INPUTS}")));
        }
        let kinds = data
            .get(12..12 + n)
            .ok_or_else(|| bad(format!("{} bytes for {n} inputs, need at least {}", data.len(), 12 + n)))?;
        let inputs = kinds
            .iter()
            .enumerate()
            .map(|(i, &b)| ColumnKind::from_byte(b).ok_or_else(|| bad(format!("input {i}: unknown kind {b}"))))
            .collect::<Result<_, _>>()?;
        let output_names = decode_output_names(&data[12 + n..], outputs_per_row)?;
        Ok(AbiManifest { abi_version, outputs_per_row, inputs, output_names })
    }

    /// The section body. The output names are written only when they are not the default
    /// (a single output named `score`), so a section without names encodes as it was.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.inputs.len());
        out.extend_from_slice(&self.abi_version.to_le_bytes());
        out.extend_from_slice(&self.outputs_per_row.to_le_bytes());
        out.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        out.extend(self.inputs.iter().map(|k| k.to_byte()));
        if self.output_names != [DEFAULT_OUTPUT_NAME] {
            for name in &self.output_names {
                // Names of a decoded manifest are at most 64 bytes.
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
            }
        }
        out
    }
}

/// The output names after the input kinds: none (a single output, `score`), or exactly
/// `outputs` valid, distinct names and nothing after them.
fn decode_output_names(rest: &[u8], outputs: u32) -> Result<Vec<String>, AdmissionError> {
    if rest.is_empty() {
        if outputs != 1 {
            return Err(AdmissionError::OutputNamesMissing { outputs });
        }
        return Ok(vec![DEFAULT_OUTPUT_NAME.to_string()]);
    }
    let mut names: Vec<String> = Vec::with_capacity(outputs as usize);
    let mut at = 0;
    for index in 0..outputs {
        let Some(&len) = rest.get(at) else {
            return Err(AdmissionError::OutputNameCount { declared: outputs, found: index });
        };
        let len = len as usize;
        at += 1;
        let available = rest.len() - at;
        if len > available {
            return Err(AdmissionError::TruncatedOutputName { index, len, available });
        }
        let bytes = &rest[at..at + len];
        at += len;
        let name = validate_output_name(bytes).map_err(|problem| AdmissionError::BadOutputName {
            index,
            name: String::from_utf8_lossy(bytes).into_owned(),
            problem,
        })?;
        if let Some(first) = names.iter().position(|n| n == name) {
            return Err(AdmissionError::DuplicateOutputName {
                name: name.to_string(),
                first: first as u32,
                second: index,
            });
        }
        names.push(name.to_string());
    }
    if at != rest.len() {
        return Err(AdmissionError::AbiTrailingBytes { count: rest.len() - at, outputs });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OutputNameError as N;

    /// A section built by hand: `m` outputs, kinds f64 and i64, and the names (if any)
    /// with their own length bytes.
    fn section(m: u32, names: Option<&[&[u8]]>) -> Vec<u8> {
        let mut s = vec![1, 0, 0, 0];
        s.extend_from_slice(&m.to_le_bytes());
        s.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        for n in names.unwrap_or_default() {
            s.push(n.len() as u8);
            s.extend_from_slice(n);
        }
        s
    }

    fn decode(b: &[u8]) -> Result<AbiManifest, AdmissionError> {
        AbiManifest::decode(b)
    }

    #[test]
    fn manifest_round_trip_and_errors() {
        let m = AbiManifest {
            abi_version: 1,
            outputs_per_row: 1,
            inputs: vec![ColumnKind::F64, ColumnKind::I64, ColumnKind::Code, ColumnKind::Token],
            output_names: vec!["score".into()],
        };
        assert_eq!(AbiManifest::decode(&m.encode()).unwrap(), m);
        let enc = m.encode();
        // A single output named `score` is not written: the version-1 layout, 12 + n bytes.
        assert_eq!(enc, [1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 1, 2, 3]);
        for cut in 0..enc.len() {
            assert!(AbiManifest::decode(&enc[..cut]).is_err(), "accepted a {cut}-byte prefix");
        }
        let mut v2 = enc.clone();
        v2[0] = 2;
        assert_eq!(AbiManifest::decode(&v2), Err(AdmissionError::AbiVersion { found: 2, supported: 1 }));
        let mut kind = enc;
        kind[12] = 9;
        assert!(matches!(AbiManifest::decode(&kind), Err(AdmissionError::BadAbiSection(_))));
    }

    #[test]
    fn named_outputs_round_trip() {
        let names = ["p_default", "risk_band", "x9"];
        let m = AbiManifest {
            abi_version: 1,
            outputs_per_row: 3,
            inputs: vec![ColumnKind::F64, ColumnKind::I64],
            output_names: names.iter().map(|s| s.to_string()).collect(),
        };
        let enc = m.encode();
        let by_hand = section(3, Some(&[b"p_default", b"risk_band", b"x9"]));
        assert_eq!(enc, by_hand);
        assert_eq!(decode(&enc).unwrap(), m);
        assert_eq!(decode(&enc).unwrap().encode(), enc);
        // Every prefix is refused: the names are all there or the section is bad.
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err(), "accepted a {cut}-byte prefix");
        }
        // The most outputs, and names of the longest length.
        let long: Vec<Vec<u8>> = (0..16u8).map(|i| [vec![b'a' + i], vec![b'z'; 63]].concat()).collect();
        let long_refs: Vec<&[u8]> = long.iter().map(Vec::as_slice).collect();
        let sixteen = decode(&section(16, Some(&long_refs))).unwrap();
        assert_eq!(sixteen.output_names.len(), 16);
        assert_eq!(sixteen.output_names[15].len(), MAX_OUTPUT_NAME_LEN);
        // A single output may be named; naming it `score` is the same as not naming it.
        let p = decode(&section(1, Some(&[b"p"]))).unwrap();
        assert_eq!(p.output_names, ["p"]);
        assert_eq!(p.encode(), section(1, Some(&[b"p"])));
        let score = decode(&section(1, Some(&[b"score"]))).unwrap();
        assert_eq!(score.output_names, ["score"]);
        assert_eq!(score.encode(), section(1, None));
    }

    #[test]
    fn bad_output_declarations_are_typed_errors() {
        use AdmissionError as A;
        assert_eq!(decode(&section(0, None)), Err(A::OutputsPerRow { found: 0 }));
        assert_eq!(decode(&section(0, Some(&[]))), Err(A::OutputsPerRow { found: 0 }));
        let seventeen: Vec<Vec<u8>> = (0..17u8).map(|i| vec![b'a' + i]).collect();
        let refs: Vec<&[u8]> = seventeen.iter().map(Vec::as_slice).collect();
        assert_eq!(decode(&section(17, Some(&refs))), Err(A::OutputsPerRow { found: 17 }));
        assert_eq!(decode(&section(u32::MAX, None)), Err(A::OutputsPerRow { found: u32::MAX }));
        assert_eq!(
            decode(&section(3, Some(&[b"a", b"b", b"a"]))),
            Err(A::DuplicateOutputName { name: "a".into(), first: 0, second: 2 })
        );
        let bad_name = |index, name: &str, problem| Err(A::BadOutputName { index, name: name.into(), problem });
        assert_eq!(
            decode(&section(2, Some(&[b"p", b"p-default"]))),
            bad_name(1, "p-default", N::BadChar { found: '-' })
        );
        assert_eq!(decode(&section(2, Some(&[b"Score", b"p"]))), bad_name(0, "Score", N::BadChar { found: 'S' }));
        assert_eq!(
            decode(&section(2, Some(&[b"p", "p\u{e9}".as_bytes()]))),
            bad_name(1, "p\u{e9}", N::BadChar { found: '\u{e9}' })
        );
        assert_eq!(decode(&section(2, Some(&[b"p", b"p q"]))), bad_name(1, "p q", N::BadChar { found: ' ' }));
        assert_eq!(decode(&section(2, Some(&[b"1p", b"p"]))), bad_name(0, "1p", N::FirstNotLetter));
        assert_eq!(decode(&section(2, Some(&[b"_p", b"p"]))), bad_name(0, "_p", N::FirstNotLetter));
        assert_eq!(decode(&section(2, Some(&[b"p", b"\xff"]))), bad_name(1, "\u{fffd}", N::NotUtf8));
        assert_eq!(decode(&section(2, Some(&[b"p", b""]))), bad_name(1, "", N::Empty));
        let long = [b'a'; 65];
        assert_eq!(
            decode(&section(2, Some(&[b"p", &long]))),
            bad_name(1, std::str::from_utf8(&long).unwrap(), N::TooLong { len: 65 })
        );
        assert_eq!(decode(&section(2, None)), Err(A::OutputNamesMissing { outputs: 2 }));
        assert_eq!(decode(&section(3, Some(&[b"a", b"b"]))), Err(A::OutputNameCount { declared: 3, found: 2 }));
        // A length byte that promises more than the section holds.
        let mut cut = section(2, Some(&[b"a", b"bcd"]));
        cut.pop();
        assert_eq!(decode(&cut), Err(A::TruncatedOutputName { index: 1, len: 3, available: 2 }));
        // Anything after the last name, or a byte after a section without names (read as
        // the length of a first name: an empty one).
        let mut trailing = section(2, Some(&[b"a", b"b"]));
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(A::AbiTrailingBytes { count: 1, outputs: 2 }));
        let extra_name = section(1, Some(&[b"a", b"b"]));
        assert_eq!(decode(&extra_name), Err(A::AbiTrailingBytes { count: 2, outputs: 1 }));
        let mut unnamed_and_a_byte = section(1, None);
        unnamed_and_a_byte.push(0);
        assert_eq!(decode(&unnamed_and_a_byte), bad_name(0, "", N::Empty));
        // The messages name what is wrong.
        assert_eq!(
            A::OutputsPerRow { found: 17 }.to_string(),
            "module declares 17 outputs per row, this sandbox supports 1 to 16"
        );
        assert_eq!(
            A::BadOutputName { index: 1, name: "p-default".into(), problem: N::BadChar { found: '-' } }.to_string(),
            "output name 1 (\"p-default\") contains '-'; only a-z, 0-9 and _ are allowed"
        );
    }
}
