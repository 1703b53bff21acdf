//! The training extension of ABI version 1: the `cleanroom_train` section and its exports.
//!
//! A module that can be fine-tuned declares, besides its `cleanroom_abi` section, a
//! `cleanroom_train` section: how many parameters it has (flattened, f64), how they are
//! laid out (named tensors), and the kind of the label column it learns from. It exports
//! two more functions:
//!
//! - `cleanroom_initial_params() -> i32`: emits its pretrained parameters (the warm start),
//!   called once, in a fresh instance that can read no row;
//! - `cleanroom_train_unit(rows: i32) -> i32`: reads one privacy unit's rows (its inputs,
//!   then the label as one more column) and the current parameters (`read_params`), and
//!   emits the gradient of the unit's summed loss, then the loss: `n_params + 1` values.
//!
//! The enclave owns the loop (sampling, clipping, noise, the optimizer); the module sees
//! one unit at a time in a fresh instance and never sees noise or other units' gradients.
//! The prose specification is `docs/wasm-abi.md`, "Training".

use crate::abi::{validate_output_name, ColumnKind};
use crate::error::AdmissionError;

/// The custom section declaring a module's trainable parameters.
pub const TRAIN_SECTION: &str = "cleanroom_train";
/// Version of the training section this sandbox reads.
pub const TRAIN_VERSION: u32 = 1;
/// Export: `() -> i32`, emits the pretrained parameters; 0 on success.
pub const EXPORT_INITIAL_PARAMS: &str = "cleanroom_initial_params";
/// Export: `(rows: i32) -> i32`, emits one unit's gradient and loss; 0 on success.
pub const EXPORT_TRAIN_UNIT: &str = "cleanroom_train_unit";
/// Import: `(dst: i32, max: i32) -> i32`, copies the current parameters (f64) to `dst`
/// and returns how many; 0 when the job gives none (the module then uses its own).
pub const READ_PARAMS: &str = "read_params";
/// Most parameters a module may declare (8 MiB of f64).
pub const MAX_PARAMS: u32 = 1 << 20;
/// Most named tensors in a layout.
pub const MAX_TENSORS: usize = 64;

/// One named tensor of the parameter vector, in layout order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub name: String,
    pub len: u32,
}

/// The decoded `cleanroom_train` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainManifest {
    /// Length of the flattened parameter vector: the sum of the tensors' lengths.
    pub n_params: u32,
    /// Kind of the label column, read as the column after the module's inputs.
    pub label: ColumnKind,
    pub layout: Vec<Tensor>,
}

impl TrainManifest {
    /// Decode and check a section body: `version u32le, n_params u32le, label kind byte,
    /// n_tensors byte`, then per tensor a name (length byte, `[a-z0-9_]` bytes) and its
    /// length (u32le); the lengths sum to `n_params`; nothing after.
    pub fn decode(data: &[u8]) -> Result<Self, AdmissionError> {
        let bad = |why: String| AdmissionError::BadTrainSection(why);
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], AdmissionError> {
            let s = data.get(at..at + n).ok_or_else(|| bad(format!("ends after {} bytes", data.len())))?;
            at += n;
            Ok(s)
        };
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let version = word(take(4)?);
        if version != TRAIN_VERSION {
            return Err(bad(format!("version {version}, this sandbox reads {TRAIN_VERSION}")));
        }
        let n_params = word(take(4)?);
        if n_params == 0 || n_params > MAX_PARAMS {
            return Err(bad(format!("{n_params} parameters, 1 to {MAX_PARAMS} are allowed")));
        }
        let kind = take(1)?[0];
        let label = ColumnKind::from_byte(kind)
            .filter(|k| *k != ColumnKind::Token)
            .ok_or_else(|| bad(format!("label kind {kind} is not f64, i64 or code")))?;
        let count = take(1)?[0] as usize;
        if count == 0 || count > MAX_TENSORS {
            return Err(bad(format!("{count} tensors, 1 to {MAX_TENSORS} are allowed")));
        }
        let mut layout: Vec<Tensor> = Vec::with_capacity(count);
        let mut total = 0u64;
        for index in 0..count {
            let len = take(1)?[0] as usize;
            let bytes = take(len)?;
            let name = validate_output_name(bytes)
                .map_err(|p| bad(format!("tensor {index} name {:?} {p}", String::from_utf8_lossy(bytes))))?;
            if layout.iter().any(|t| t.name == name) {
                return Err(bad(format!("tensor {name:?} is declared twice")));
            }
            let len = word(take(4)?);
            if len == 0 {
                return Err(bad(format!("tensor {name:?} is empty")));
            }
            total += u64::from(len);
            layout.push(Tensor { name: name.to_string(), len });
        }
        if total != u64::from(n_params) {
            return Err(bad(format!("tensors hold {total} parameters, the section declares {n_params}")));
        }
        if at != data.len() {
            return Err(bad(format!("{} unexpected bytes after the layout", data.len() - at)));
        }
        Ok(TrainManifest { n_params, label, layout })
    }

    /// The section body ([`TrainManifest::decode`]'s layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&TRAIN_VERSION.to_le_bytes());
        out.extend_from_slice(&self.n_params.to_le_bytes());
        out.push(self.label.to_byte());
        out.push(self.layout.len() as u8);
        for t in &self.layout {
            out.push(t.name.len() as u8);
            out.extend_from_slice(t.name.as_bytes());
            out.extend_from_slice(&t.len.to_le_bytes());
        }
        out
    }

    /// `name[i]` for every parameter, in order: how results and reviews name them.
    pub fn parameter_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_params as usize);
        for t in &self.layout {
            if t.len == 1 {
                names.push(t.name.clone());
            } else {
                names.extend((0..t.len).map(|i| format!("{}[{i}]", t.name)));
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TrainManifest {
        TrainManifest {
            n_params: 7,
            label: ColumnKind::I64,
            layout: vec![Tensor { name: "w".into(), len: 6 }, Tensor { name: "b".into(), len: 1 }],
        }
    }

    #[test]
    fn round_trip_and_every_prefix_refused() {
        let m = sample();
        let enc = m.encode();
        assert_eq!(TrainManifest::decode(&enc).unwrap(), m);
        for cut in 0..enc.len() {
            assert!(TrainManifest::decode(&enc[..cut]).is_err(), "accepted a {cut}-byte prefix");
        }
        let mut trailing = enc.clone();
        trailing.push(0);
        assert!(TrainManifest::decode(&trailing).is_err());
        assert_eq!(m.parameter_names()[..2], ["w[0]".to_string(), "w[1]".into()]);
        assert_eq!(m.parameter_names()[6], "b");
    }

    #[test]
    fn bad_layouts_are_typed_errors() {
        let refuse = |m: TrainManifest, what: &str| {
            let e = TrainManifest::decode(&m.encode()).unwrap_err();
            assert!(matches!(&e, AdmissionError::BadTrainSection(s) if s.contains(what)), "{e}");
        };
        refuse(TrainManifest { n_params: 8, ..sample() }, "hold 7 parameters");
        refuse(TrainManifest { n_params: 0, ..sample() }, "0 parameters");
        refuse(TrainManifest { label: ColumnKind::Token, ..sample() }, "label kind 3");
        refuse(TrainManifest { layout: vec![], n_params: 7, ..sample() }, "0 tensors");
        let twice = vec![Tensor { name: "w".into(), len: 3 }, Tensor { name: "w".into(), len: 4 }];
        refuse(TrainManifest { layout: twice, ..sample() }, "declared twice");
        let empty = vec![Tensor { name: "w".into(), len: 7 }, Tensor { name: "b".into(), len: 0 }];
        refuse(TrainManifest { layout: empty, ..sample() }, "is empty");
        let upper = vec![Tensor { name: "W".into(), len: 7 }];
        refuse(TrainManifest { layout: upper, ..sample() }, "tensor 0 name");
        let mut v2 = sample().encode();
        v2[0] = 2;
        assert!(TrainManifest::decode(&v2).is_err());
    }
}
