//! Static admission checks, done on the binary before it is compiled or instantiated.
//!
//! This pass parses section headers only (function bodies are left to the validator that
//! runs during compilation) and refuses, with a typed error, anything the ABI does not
//! allow: foreign imports, missing or mistyped exports, a wrong ABI version, more than
//! one memory, shared or 64-bit memory, oversized initial memories and tables.

use crate::abi::{self, AbiManifest};
use crate::error::AdmissionError;
use crate::train::{self, TrainManifest};
use wasmtime::wasmparser::{CompositeInnerType, Encoding, ExternalKind, FuncType, Parser, Payload, TypeRef, ValType};

/// Most tables a module may have (Rust and C toolchains emit one).
pub const MAX_TABLES: usize = 1;

/// What admission needs to know about the limits.
pub(crate) struct StaticLimits {
    pub memory_bytes: u64,
    pub table_elements: u64,
}

fn malformed(e: wasmtime::wasmparser::BinaryReaderError) -> AdmissionError {
    AdmissionError::Malformed(e.to_string())
}

fn is_i32s(ty: &FuncType, params: usize, results: usize) -> bool {
    ty.params().len() == params
        && ty.results().len() == results
        && ty.params().iter().chain(ty.results()).all(|t| *t == ValType::I32)
}

/// Inspect `wasm` and return its declared ABI manifest and, for a trainable module, its
/// training manifest; or why it is refused.
pub(crate) fn inspect(
    wasm: &[u8],
    limits: &StaticLimits,
) -> Result<(AbiManifest, Option<TrainManifest>), AdmissionError> {
    // Function types by type index; `None` for non-function (GC) types.
    let mut types: Vec<Option<FuncType>> = Vec::new();
    // Type index of every function, imported ones first.
    let mut funcs: Vec<u32> = Vec::new();
    let mut memories = 0usize;
    let mut tables = 0usize;
    let mut manifest: Option<Result<AbiManifest, AdmissionError>> = None;
    let mut training: Option<Result<TrainManifest, AdmissionError>> = None;
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();

    let check_memory = |m: &wasmtime::wasmparser::MemoryType| -> Result<(), AdmissionError> {
        if m.shared {
            return Err(AdmissionError::SharedMemory);
        }
        if m.memory64 {
            return Err(AdmissionError::Memory64);
        }
        let page = 1u64 << m.page_size_log2.unwrap_or(16);
        let initial_bytes = m.initial.saturating_mul(page);
        if initial_bytes > limits.memory_bytes {
            return Err(AdmissionError::MemoryTooLarge { initial_bytes, limit: limits.memory_bytes });
        }
        Ok(())
    };
    let check_table = |t: &wasmtime::wasmparser::TableType| -> Result<(), AdmissionError> {
        if t.initial > limits.table_elements {
            return Err(AdmissionError::TableTooLarge { initial: t.initial, limit: limits.table_elements });
        }
        Ok(())
    };

    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::Version { encoding, .. } if encoding != Encoding::Module => {
                return Err(AdmissionError::Component);
            }
            Payload::TypeSection(r) => {
                for group in r {
                    for sub in group.map_err(malformed)?.into_types() {
                        types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.map_err(malformed)?;
                    let forbidden = || AdmissionError::ForbiddenImport {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                    };
                    if import.module != abi::IMPORT_MODULE {
                        return Err(forbidden());
                    }
                    let Some(sig) = abi::IMPORTS.iter().find(|s| s.name == import.name) else {
                        return Err(forbidden());
                    };
                    match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            let ok =
                                matches!(types.get(t as usize), Some(Some(f)) if is_i32s(f, sig.params, sig.results));
                            if !ok {
                                return Err(AdmissionError::ImportSignature { name: import.name.to_string() });
                            }
                            funcs.push(t);
                        }
                        _ => return Err(forbidden()),
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    funcs.push(t.map_err(malformed)?);
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t.map_err(malformed)?;
                    check_table(&t.ty)?;
                    tables += 1;
                }
                if tables > MAX_TABLES {
                    return Err(AdmissionError::TableCount { count: tables, limit: MAX_TABLES });
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    let m = m.map_err(malformed)?;
                    check_memory(&m)?;
                    memories += 1;
                }
                if memories > 1 {
                    return Err(AdmissionError::MemoryCount { count: memories });
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(malformed)?;
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            Payload::CustomSection(c) if c.name() == abi::ABI_SECTION => {
                if manifest.is_some() {
                    return Err(AdmissionError::DuplicateAbiSection);
                }
                manifest = Some(AbiManifest::decode(c.data()));
            }
            Payload::CustomSection(c) if c.name() == train::TRAIN_SECTION => {
                if training.is_some() {
                    return Err(AdmissionError::DuplicateTrainSection);
                }
                training = Some(TrainManifest::decode(c.data()));
            }
            Payload::UnknownSection { id, .. } => {
                return Err(AdmissionError::Malformed(format!("unknown section id {id}")));
            }
            _ => {}
        }
    }

    if memories != 1 {
        return Err(AdmissionError::MemoryCount { count: memories });
    }
    let manifest = manifest.ok_or(AdmissionError::MissingAbiSection)??;
    let training = training.transpose()?;

    let mut seen_memory = false;
    let mut seen_process = false;
    let mut seen_train = [false; 2];
    let func_is = |index: u32, params: usize| {
        matches!(funcs.get(index as usize).and_then(|&t| types.get(t as usize)),
            Some(Some(f)) if is_i32s(f, params, 1))
    };
    for (name, kind, index) in &exports {
        match name.as_str() {
            abi::EXPORT_MEMORY => {
                if *kind != ExternalKind::Memory || *index != 0 {
                    return Err(AdmissionError::ExportSignature { name: name.clone() });
                }
                seen_memory = true;
            }
            abi::EXPORT_PROCESS_BATCH => {
                if !(*kind == ExternalKind::Func && func_is(*index, 1)) {
                    return Err(AdmissionError::ExportSignature { name: name.clone() });
                }
                seen_process = true;
            }
            train::EXPORT_TRAIN_UNIT | train::EXPORT_INITIAL_PARAMS => {
                let (slot, params) = if name == train::EXPORT_TRAIN_UNIT { (0, 1) } else { (1, 0) };
                if training.is_none() {
                    return Err(AdmissionError::TrainExportWithoutSection { name: name.clone() });
                }
                if !(*kind == ExternalKind::Func && func_is(*index, params)) {
                    return Err(AdmissionError::ExportSignature { name: name.clone() });
                }
                seen_train[slot] = true;
            }
            // A typo in an ABI export would otherwise be silently ignored.
            other if other.starts_with("cleanroom") => {
                return Err(AdmissionError::UnknownExport { name: other.to_string() });
            }
            // Other exports (for example `__heap_base`) are never called or read.
            _ => {}
        }
    }
    if !seen_memory {
        return Err(AdmissionError::MissingExport { name: abi::EXPORT_MEMORY });
    }
    if !seen_process {
        return Err(AdmissionError::MissingExport { name: abi::EXPORT_PROCESS_BATCH });
    }
    if training.is_some() {
        if !seen_train[0] {
            return Err(AdmissionError::MissingExport { name: train::EXPORT_TRAIN_UNIT });
        }
        if !seen_train[1] {
            return Err(AdmissionError::MissingExport { name: train::EXPORT_INITIAL_PARAMS });
        }
    }
    Ok((manifest, training))
}

/// The module's `cleanroom_abi` section alone (what it reads and emits), without the other
/// admission checks: for a provider writing a query, not for running the module. A module
/// this accepts may still be refused by [`crate::Sandbox::admit`].
pub fn read_abi(wasm: &[u8]) -> Result<AbiManifest, AdmissionError> {
    read_section(wasm, abi::ABI_SECTION, AdmissionError::DuplicateAbiSection, AbiManifest::decode)?
        .ok_or(AdmissionError::MissingAbiSection)
}

/// The module's `cleanroom_train` section alone, if it has one (see [`read_abi`]).
pub fn read_train(wasm: &[u8]) -> Result<Option<TrainManifest>, AdmissionError> {
    read_section(wasm, train::TRAIN_SECTION, AdmissionError::DuplicateTrainSection, TrainManifest::decode)
}

/// The custom section `name`, decoded; `duplicate` if there are two.
fn read_section<T>(
    wasm: &[u8],
    name: &str,
    duplicate: AdmissionError,
    decode: fn(&[u8]) -> Result<T, AdmissionError>,
) -> Result<Option<T>, AdmissionError> {
    let mut found = None;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(c) = payload.map_err(malformed)? {
            if c.name() == name {
                if found.is_some() {
                    return Err(duplicate);
                }
                found = Some(decode(c.data())?);
            }
        }
    }
    Ok(found)
}
