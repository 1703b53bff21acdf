//! Typed errors of the sandbox: configuration, admission and running.

use crate::abi::ColumnKind;
use std::time::Duration;

/// What is wrong with one output name in the `cleanroom_abi` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputNameError {
    #[error("is empty")]
    Empty,
    #[error("is {len} bytes, at most 64 are allowed")]
    TooLong { len: usize },
    #[error("is not UTF-8")]
    NotUtf8,
    #[error("does not start with a letter a-z")]
    FirstNotLetter,
    #[error("contains {found:?}; only a-z, 0-9 and _ are allowed")]
    BadChar { found: char },
}

/// The sandbox could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(String),
}

/// A module was refused before anything ran. Nothing was instantiated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    #[error("module is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly module: {0}")]
    Malformed(String),
    #[error("components are not accepted, only core WebAssembly modules")]
    Component,
    #[error("module is invalid or uses a disabled feature: {0}")]
    Invalid(String),
    #[error("forbidden import {module}::{name}: only functions of the `cleanroom` namespace may be imported")]
    ForbiddenImport { module: String, name: String },
    #[error("import cleanroom::{name} has the wrong type")]
    ImportSignature { name: String },
    #[error("missing export {name:?}")]
    MissingExport { name: &'static str },
    #[error("export {name:?} has the wrong kind or type")]
    ExportSignature { name: String },
    #[error("unknown cleanroom export {name:?}")]
    UnknownExport { name: String },
    #[error("missing `cleanroom_abi` custom section (was the module built with the model SDK's export_model!?)")]
    MissingAbiSection,
    #[error("more than one `cleanroom_abi` custom section")]
    DuplicateAbiSection,
    #[error("malformed `cleanroom_abi` section: {0}")]
    BadAbiSection(String),
    #[error("malformed `cleanroom_train` section: {0}")]
    BadTrainSection(String),
    #[error("more than one `cleanroom_train` custom section")]
    DuplicateTrainSection,
    #[error("export {name:?} belongs to training, but the module has no `cleanroom_train` section")]
    TrainExportWithoutSection { name: String },
    #[error("module speaks cleanroom ABI version {found}, this sandbox speaks {supported}")]
    AbiVersion { found: u32, supported: u32 },
    #[error("module declares {found} outputs per row, this sandbox supports 1 to 16")]
    OutputsPerRow { found: u32 },
    #[error(
        "module declares {outputs} outputs per row but names none; only a single output may go unnamed (it is `score`)"
    )]
    OutputNamesMissing { outputs: u32 },
    #[error(
        "module declares {declared} outputs per row but the `cleanroom_abi` section ends after {found} output names"
    )]
    OutputNameCount { declared: u32, found: u32 },
    #[error(
        "output name {index} is declared {len} bytes long but the `cleanroom_abi` section has only {available} left"
    )]
    TruncatedOutputName { index: u32, len: usize, available: usize },
    #[error("output name {index} ({name:?}) {problem}")]
    BadOutputName { index: u32, name: String, problem: OutputNameError },
    #[error("output name {name:?} is declared twice (outputs {first} and {second})")]
    DuplicateOutputName { name: String, first: u32, second: u32 },
    #[error("{count} unexpected bytes after the {outputs} output names of the `cleanroom_abi` section")]
    AbiTrailingBytes { count: usize, outputs: u32 },
    #[error("shared memory (threads) is not allowed")]
    SharedMemory,
    #[error("64-bit memory is not allowed")]
    Memory64,
    #[error("module has {count} memories, exactly one is allowed")]
    MemoryCount { count: usize },
    #[error("initial memory of {initial_bytes} bytes exceeds the limit of {limit} bytes")]
    MemoryTooLarge { initial_bytes: u64, limit: u64 },
    #[error("module has {count} tables, at most {limit} allowed")]
    TableCount { count: usize, limit: usize },
    #[error("table of {initial} elements exceeds the limit of {limit}")]
    TableTooLarge { initial: u64, limit: u64 },
}

/// Why a job ended. Any error ends the job: later calls return [`RunError::JobEnded`]
/// and nothing of the job's output may be released.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("module was admitted by a different sandbox")]
    ForeignModule,
    #[error("module reads {declared} input columns, the job names {given}")]
    InputCount { declared: usize, given: usize },
    #[error("batch has no column {name:?}")]
    MissingColumn { name: String },
    #[error("column {name:?} is {found}, the module reads {expected}")]
    ColumnType { name: String, expected: ColumnKind, found: &'static str },
    #[error("column {name:?} has {len} values in a batch of {rows} rows")]
    RaggedBatch { name: String, len: usize, rows: usize },
    #[error("batch of {rows} rows exceeds the limit of {limit}")]
    BatchTooLarge { rows: usize, limit: usize },
    #[error("time limit of {limit:?} exceeded")]
    TimeLimit { limit: Duration },
    #[error("the unit's fuel ran out")]
    OutOfFuel,
    #[error("memory limit of {limit} bytes exceeded")]
    MemoryLimit { limit: u64 },
    #[error("table limit of {limit} elements exceeded")]
    TableLimit { limit: u64 },
    #[error("wasm stack exhausted")]
    StackOverflow,
    #[error("module trapped: {0}")]
    Trap(String),
    #[error("{call}: guest range {ptr:#x}+{len} is outside linear memory")]
    OutOfBounds { call: &'static str, ptr: u32, len: u64 },
    #[error("ABI misuse: {0}")]
    AbiMisuse(String),
    /// `expected` is `rows` times the module's outputs per row (for a training call, the
    /// parameter count plus one; for the initial parameters, the parameter count).
    #[error("module emitted {emitted} values for a batch of {rows} rows, expected {expected}")]
    BadEmission { rows: usize, expected: usize, emitted: usize },
    #[error("module emitted values outside cleanroom_process_batch")]
    EmitOutsideBatch,
    #[error("module reported failure status {status}")]
    ModelFailed { status: i32 },
    #[error("cannot instantiate module: {0}")]
    Instantiate(String),
    #[error("job already ended with an error")]
    JobEnded,
    #[error("module is not trainable (it has no `cleanroom_train` section)")]
    NotTrainable,
    #[error("{given} parameters given, the module declares {declared}")]
    ParamCount { declared: usize, given: usize },
}
