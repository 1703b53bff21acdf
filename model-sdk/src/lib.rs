//! Guest SDK for cleanroom models.
//!
//! A model provider implements [`Model`] and calls [`export_model!`]; the SDK supplies
//! everything the cleanroom Wasm ABI (version [`ABI_VERSION`], see `docs/wasm-abi.md`)
//! needs: the `cleanroom_abi` custom section, the `cleanroom_process_batch` export, and
//! the calls that copy input columns into guest memory and emit the scores.
//!
//! A model emits one score per row (named `score`) unless it declares several named
//! outputs in [`Model::OUTPUTS`]; it then writes all of a row's values in
//! [`Model::score_into`], and every batch yields `rows × OUTPUTS.len()` values, row-major
//! (row 0's outputs in `OUTPUTS` order, then row 1's, ...).
//!
//! The same crate builds natively. There [`run_native`] runs a model over a [`Batch`]
//! through exactly the code path the sandbox uses, so a provider (or a test) can compare
//! the sandbox's output with the native one bit for bit. Use [`math`] rather than
//! `f64::ln`/`f64::exp`: the standard library's versions call the platform's libm, whose
//! last bit may differ from the one compiled into the Wasm module.
//!
//! ```
//! use cleanroom_model_sdk::{export_model, Kind, Model, Row};
//!
//! #[derive(Default)]
//! struct Doubler;
//! impl Model for Doubler {
//!     const INPUTS: &'static [Kind] = &[Kind::F64];
//!     fn score(&self, row: &Row<'_>) -> f64 {
//!         2.0 * row.f64(0)
//!     }
//! }
//! export_model!(Doubler);
//! ```
//!
//! Several outputs per row:
//!
//! ```
//! use cleanroom_model_sdk::{export_model, Kind, Model, Row};
//!
//! #[derive(Default)]
//! struct Both;
//! impl Model for Both {
//!     const INPUTS: &'static [Kind] = &[Kind::F64];
//!     const OUTPUTS: &'static [&'static str] = &["double", "square"];
//!     /// The first output.
//!     fn score(&self, row: &Row<'_>) -> f64 {
//!         2.0 * row.f64(0)
//!     }
//!     fn score_into(&self, row: &Row<'_>, out: &mut [f64]) {
//!         out[0] = self.score(row);
//!         out[1] = row.f64(0) * row.f64(0);
//!     }
//! }
//! export_model!(Both);
//!
//! let x = [3.0, -1.0];
//! let out = cleanroom_model_sdk::run_native(&Both, &[cleanroom_model_sdk::Column::F64(&x)]).unwrap();
//! assert_eq!(out, [6.0, 9.0, -2.0, 1.0]);
//! ```
#![allow(unsafe_code)] // the guest side of the ABI: raw imports and the exported entry point
#![no_std]

extern crate alloc;

pub use alloc::vec::Vec;
use core::fmt;

mod train;
pub use train::{
    param_count, params_of, train_section, train_section_len, unit_gradient_native, Trainable, MAX_PARAMS,
    TRAIN_VERSION,
};

/// Version of the cleanroom Wasm ABI this SDK speaks.
pub const ABI_VERSION: u32 = 1;
/// Name of the custom section that declares the ABI version and the inputs.
pub const ABI_SECTION: &str = "cleanroom_abi";
/// Length in bytes of a privacy-unit token.
pub const TOKEN_LEN: usize = 32;
/// Most input columns a module may declare.
pub const MAX_INPUTS: usize = 64;
/// Most outputs per row a model may declare ([`Model::OUTPUTS`]).
pub const MAX_OUTPUTS_PER_ROW: usize = 16;
/// Longest output name, in bytes.
pub const MAX_OUTPUT_NAME_LEN: usize = 64;
/// The outputs of a model that declares none: a single one named `score`.
pub const DEFAULT_OUTPUTS: &[&str] = &["score"];

/// Type of one input column, as declared in the `cleanroom_abi` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `f64` little-endian, 8 bytes per row.
    F64 = 0,
    /// `i64` little-endian, 8 bytes per row.
    I64 = 1,
    /// Dictionary code, `u32` little-endian, 4 bytes per row.
    Code = 2,
    /// Privacy-unit token, 32 bytes per row.
    Token = 3,
}

impl Kind {
    pub const fn width(self) -> usize {
        match self {
            Kind::F64 | Kind::I64 => 8,
            Kind::Code => 4,
            Kind::Token => TOKEN_LEN,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Kind::F64 => "f64",
            Kind::I64 => "i64",
            Kind::Code => "code",
            Kind::Token => "token",
        }
    }
}

/// Length of the `cleanroom_abi` section for a single-output model with these inputs
/// (`abi_section_len(inputs, DEFAULT_OUTPUTS)`).
pub const fn manifest_len(inputs: &[Kind]) -> usize {
    abi_section_len(inputs, DEFAULT_OUTPUTS)
}

/// Content of the `cleanroom_abi` section of a single-output model:
/// `abi_section(inputs, DEFAULT_OUTPUTS)`.
pub const fn manifest<const N: usize>(inputs: &[Kind]) -> [u8; N] {
    abi_section(inputs, DEFAULT_OUTPUTS)
}

/// Whether `outputs` is the default, a single output named `score` (whose name the
/// section does not carry).
pub const fn is_default_outputs(outputs: &[&str]) -> bool {
    outputs.len() == 1 && bytes_eq(outputs[0].as_bytes(), DEFAULT_OUTPUTS[0].as_bytes())
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Check a model's output names; panics (at compile time when evaluated in a constant, as
/// [`export_model!`] does) unless there are 1 to [`MAX_OUTPUTS_PER_ROW`] of them, each 1 to
/// [`MAX_OUTPUT_NAME_LEN`] bytes of `[a-z0-9_]` starting with a letter, all distinct.
///
/// ```compile_fail
/// use cleanroom_model_sdk::{export_model, Kind, Model, Row};
///
/// #[derive(Default)]
/// struct Bad;
/// impl Model for Bad {
///     const INPUTS: &'static [Kind] = &[Kind::F64];
///     // Upper case and a hyphen: refused at compile time.
///     const OUTPUTS: &'static [&'static str] = &["P-default"];
///     fn score(&self, row: &Row<'_>) -> f64 {
///         row.f64(0)
///     }
/// }
/// export_model!(Bad);
/// ```
pub const fn check_outputs(outputs: &[&str]) {
    assert!(!outputs.is_empty(), "Model::OUTPUTS is empty: a model has at least one output");
    assert!(outputs.len() <= MAX_OUTPUTS_PER_ROW, "Model::OUTPUTS has more than 16 names");
    let mut i = 0;
    while i < outputs.len() {
        let b = outputs[i].as_bytes();
        assert!(!b.is_empty(), "an output name in Model::OUTPUTS is empty");
        assert!(b.len() <= MAX_OUTPUT_NAME_LEN, "an output name in Model::OUTPUTS is longer than 64 bytes");
        assert!(b[0].is_ascii_lowercase(), "an output name in Model::OUTPUTS does not start with a letter a-z");
        let mut j = 0;
        while j < b.len() {
            let c = b[j];
            assert!(
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_',
                "an output name in Model::OUTPUTS has a character other than a-z, 0-9 and _"
            );
            j += 1;
        }
        let mut k = 0;
        while k < i {
            assert!(!bytes_eq(outputs[k].as_bytes(), b), "Model::OUTPUTS names the same output twice");
            k += 1;
        }
        i += 1;
    }
}

/// Length of the `cleanroom_abi` section for a model with these inputs and outputs.
pub const fn abi_section_len(inputs: &[Kind], outputs: &[&str]) -> usize {
    let mut len = 12 + inputs.len();
    if !is_default_outputs(outputs) {
        let mut i = 0;
        while i < outputs.len() {
            len += 1 + outputs[i].len();
            i += 1;
        }
    }
    len
}

/// Content of the `cleanroom_abi` section: `abi_version: u32le`, `outputs_per_row: u32le`
/// (`m = outputs.len()`), `n_inputs: u32le`, one [`Kind`] byte per input, then, unless the
/// outputs are the default single `score`, the `m` output names, each a length byte and
/// its bytes. Panics (a compile error in a constant) on bad inputs or outputs.
pub const fn abi_section<const N: usize>(inputs: &[Kind], outputs: &[&str]) -> [u8; N] {
    check_outputs(outputs);
    assert!(N == abi_section_len(inputs, outputs), "manifest length");
    assert!(inputs.len() <= MAX_INPUTS, "too many inputs");
    let mut out = [0u8; N];
    let v = ABI_VERSION.to_le_bytes();
    let o = (outputs.len() as u32).to_le_bytes();
    let n = (inputs.len() as u32).to_le_bytes();
    let mut i = 0;
    while i < 4 {
        out[i] = v[i];
        out[4 + i] = o[i];
        out[8 + i] = n[i];
        i += 1;
    }
    let mut j = 0;
    while j < inputs.len() {
        out[12 + j] = inputs[j] as u8;
        j += 1;
    }
    if !is_default_outputs(outputs) {
        let mut at = 12 + inputs.len();
        let mut k = 0;
        while k < outputs.len() {
            let name = outputs[k].as_bytes();
            out[at] = name.len() as u8;
            at += 1;
            let mut b = 0;
            while b < name.len() {
                out[at] = name[b];
                at += 1;
                b += 1;
            }
            k += 1;
        }
    }
    out
}

/// One input column of a batch, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Column<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
    Code(&'a [u32]),
    Token(&'a [[u8; TOKEN_LEN]]),
}

impl Column<'_> {
    pub fn len(&self) -> usize {
        match self {
            Column::F64(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::Code(v) => v.len(),
            Column::Token(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn kind(&self) -> Kind {
        match self {
            Column::F64(_) => Kind::F64,
            Column::I64(_) => Kind::I64,
            Column::Code(_) => Kind::Code,
            Column::Token(_) => Kind::Token,
        }
    }
}

/// Why a batch could not be handed to a model natively.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// `got` validity slices were given for `expected` columns.
    ValidityCount { expected: usize, got: usize },
    /// The validity of column `index` is not one byte of 0 or 1 for each of `rows` rows.
    Validity { index: usize, rows: usize },
    /// The model declares `expected` inputs, the batch has `got` columns.
    InputCount { expected: usize, got: usize },
    /// Column `index` has the wrong type.
    Kind { index: usize, expected: Kind, got: Kind },
    /// Column `index` has `got` rows, the first column has `rows`.
    Ragged { index: usize, rows: usize, got: usize },
    /// The model produced `got` values for `rows` rows, not `expected` (`rows` times its
    /// number of outputs).
    Output { rows: usize, expected: usize, got: usize },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::InputCount { expected, got } => write!(f, "model reads {expected} columns, batch has {got}"),
            BatchError::Kind { index, expected, got } => {
                write!(f, "input {index}: model reads {}, column is {}", expected.name(), got.name())
            }
            BatchError::Ragged { index, rows, got } => write!(f, "input {index} has {got} rows, expected {rows}"),
            BatchError::Output { rows, expected, got } => {
                write!(f, "model produced {got} values for {rows} rows, expected {expected}")
            }
            BatchError::ValidityCount { expected, got } => {
                write!(f, "{got} validity slices for {expected} columns")
            }
            BatchError::Validity { index, rows } => {
                write!(f, "input {index}: validity must be {rows} bytes, each 0 (null) or 1 (value)")
            }
        }
    }
}

/// What a batch knows about nulls.
#[derive(Debug, Clone, Copy)]
enum Nulls<'a> {
    /// The model does not read validity ([`Model::READS_VALIDITY`] is false): asking is a
    /// bug in the model, and panics (a trap in the sandbox).
    NotRead,
    /// Every row of every column holds a value.
    None,
    /// Per column, one byte per row: 1 for a value, 0 for a null.
    Given(&'a [&'a [u8]]),
}

/// The input columns of one batch, in the order the model declared them.
///
/// A null's slot holds its type's canonical value (`0.0`, `0`, code `0`); only the
/// validity ([`Batch::is_valid`], [`Row::f64_opt`] and friends) tells it from a real zero.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    rows: usize,
    columns: &'a [Column<'a>],
    nulls: Nulls<'a>,
}

impl<'a> Batch<'a> {
    /// Check that the columns have equal lengths and match `inputs`. Every value is present.
    pub fn new(inputs: &[Kind], columns: &'a [Column<'a>]) -> Result<Self, BatchError> {
        if inputs.len() != columns.len() {
            return Err(BatchError::InputCount { expected: inputs.len(), got: columns.len() });
        }
        let rows = columns.first().map(Column::len).unwrap_or(0);
        for (index, (c, &k)) in columns.iter().zip(inputs).enumerate() {
            if c.kind() != k {
                return Err(BatchError::Kind { index, expected: k, got: c.kind() });
            }
            if c.len() != rows {
                return Err(BatchError::Ragged { index, rows, got: c.len() });
            }
        }
        Ok(Batch { rows, columns, nulls: Nulls::None })
    }

    /// [`Batch::new`] with the validity of every column: one byte per row, 1 for a value
    /// and 0 for a null, as the sandbox's `read_validity` writes it.
    pub fn with_validity(
        inputs: &[Kind],
        columns: &'a [Column<'a>],
        validity: &'a [&'a [u8]],
    ) -> Result<Self, BatchError> {
        let batch = Batch::new(inputs, columns)?;
        if validity.len() != columns.len() {
            return Err(BatchError::ValidityCount { expected: columns.len(), got: validity.len() });
        }
        for (index, v) in validity.iter().enumerate() {
            if v.len() != batch.rows || v.iter().any(|&b| b > 1) {
                return Err(BatchError::Validity { index, rows: batch.rows });
            }
        }
        Ok(Batch { nulls: Nulls::Given(validity), ..batch })
    }

    /// The validity of input `i`, one byte per row (1 value, 0 null); `None` when every
    /// row holds a value. Panics if the model does not declare [`Model::READS_VALIDITY`].
    pub fn validity(&self, i: usize) -> Option<&'a [u8]> {
        match self.nulls {
            Nulls::NotRead => not_read_panic(),
            Nulls::None => None,
            Nulls::Given(v) => Some(v[i]),
        }
    }

    /// Whether row `row` of input `i` holds a value (see [`Batch::validity`]).
    pub fn is_valid(&self, i: usize, row: usize) -> bool {
        assert!(row < self.rows, "row out of range");
        self.validity(i).is_none_or(|v| v[row] != 0)
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn columns(&self) -> &'a [Column<'a>] {
        self.columns
    }
    /// Column `i`, or a panic (a trap in the sandbox) if there is none.
    pub fn column(&self, i: usize) -> Column<'a> {
        self.columns[i]
    }
    pub fn f64s(&self, i: usize) -> &'a [f64] {
        match self.columns[i] {
            Column::F64(v) => v,
            c => kind_panic(i, Kind::F64, c.kind()),
        }
    }
    pub fn i64s(&self, i: usize) -> &'a [i64] {
        match self.columns[i] {
            Column::I64(v) => v,
            c => kind_panic(i, Kind::I64, c.kind()),
        }
    }
    pub fn codes(&self, i: usize) -> &'a [u32] {
        match self.columns[i] {
            Column::Code(v) => v,
            c => kind_panic(i, Kind::Code, c.kind()),
        }
    }
    pub fn tokens(&self, i: usize) -> &'a [[u8; TOKEN_LEN]] {
        match self.columns[i] {
            Column::Token(v) => v,
            c => kind_panic(i, Kind::Token, c.kind()),
        }
    }
    /// Row `index` (panics if out of range).
    pub fn row(&self, index: usize) -> Row<'_> {
        assert!(index < self.rows, "row out of range");
        Row { batch: self, index }
    }
}

#[cold]
fn kind_panic(i: usize, want: Kind, got: Kind) -> ! {
    panic!("input {i}: read as {} but it is {}", want.name(), got.name())
}

#[cold]
fn not_read_panic() -> ! {
    panic!("validity asked for, but the model does not declare Model::READS_VALIDITY = true")
}

/// One row of a batch: typed access to its values by input index.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    batch: &'a Batch<'a>,
    index: usize,
}

impl Row<'_> {
    pub fn index(&self) -> usize {
        self.index
    }
    pub fn f64(&self, input: usize) -> f64 {
        self.batch.f64s(input)[self.index]
    }
    pub fn i64(&self, input: usize) -> i64 {
        self.batch.i64s(input)[self.index]
    }
    pub fn code(&self, input: usize) -> u32 {
        self.batch.codes(input)[self.index]
    }
    pub fn token(&self, input: usize) -> &[u8; TOKEN_LEN] {
        &self.batch.tokens(input)[self.index]
    }
    /// Whether this row's value of `input` is present (not null).
    pub fn is_valid(&self, input: usize) -> bool {
        self.batch.is_valid(input, self.index)
    }
    /// The value, or `None` for a null.
    pub fn f64_opt(&self, input: usize) -> Option<f64> {
        self.is_valid(input).then(|| self.f64(input))
    }
    pub fn i64_opt(&self, input: usize) -> Option<i64> {
        self.is_valid(input).then(|| self.i64(input))
    }
    pub fn code_opt(&self, input: usize) -> Option<u32> {
        self.is_valid(input).then(|| self.code(input))
    }
}

/// A model: reads the declared input columns, returns one score per row, or several
/// named ones ([`Model::OUTPUTS`]).
pub trait Model {
    /// The input columns, in the order the query spec names them.
    const INPUTS: &'static [Kind];

    /// The names of the values the model produces for each row, in order: 1 to
    /// [`MAX_OUTPUTS_PER_ROW`] names of 1 to [`MAX_OUTPUT_NAME_LEN`] bytes of `[a-z0-9_]`,
    /// starting with a letter, all distinct ([`export_model!`] and [`run_native`] check
    /// this at compile time). The default is one output, `score`, and a module that keeps
    /// it has exactly the section it had before outputs could be named. A model with
    /// several outputs implements [`Model::score_into`] (or [`Model::score_batch`]).
    const OUTPUTS: &'static [&'static str] = DEFAULT_OUTPUTS;

    /// Whether the model reads which values are null ([`Row::is_valid`], [`Row::f64_opt`],
    /// [`Batch::validity`]). Only then does the module import `read_validity`; a model
    /// that leaves it `false` runs on sandboxes that predate nulls and reads a null as its
    /// type's canonical value (`0.0`, `0`, code `0`).
    const READS_VALIDITY: bool = false;

    /// Score one row. For a model with several outputs this is its first output
    /// (`OUTPUTS[0]`) by convention; the SDK then calls [`Model::score_into`] instead.
    fn score(&self, row: &Row<'_>) -> f64;

    /// Write the row's `OUTPUTS.len()` values to `out` (exactly that long), in `OUTPUTS`
    /// order. The default, for a single-output model, is `out[0] = self.score(row)`; a
    /// model with several outputs must override it (the default panics: a trap in the
    /// sandbox, where the unit is then absent).
    fn score_into(&self, row: &Row<'_>, out: &mut [f64]) {
        assert!(out.len() == 1, "a model with several OUTPUTS must implement Model::score_into");
        out[0] = self.score(row);
    }

    /// Score a whole batch, appending exactly `batch.rows() * OUTPUTS.len()` values to
    /// `out`, row-major (row 0's outputs, then row 1's, ...). Override for columnar speed;
    /// the default calls [`Model::score_into`] row by row.
    fn score_batch(&self, batch: &Batch<'_>, out: &mut Vec<f64>) {
        let m = Self::OUTPUTS.len();
        out.reserve(batch.rows() * m);
        for i in 0..batch.rows() {
            let at = out.len();
            out.resize(at + m, 0.0);
            self.score_into(&batch.row(i), &mut out[at..]);
        }
    }
}

/// Run `model` natively over `columns` (every value present), through the same code path
/// as the sandbox: `rows × M::OUTPUTS.len()` values, row-major.
pub fn run_native<M: Model>(model: &M, columns: &[Column<'_>]) -> Result<Vec<f64>, BatchError> {
    let batch = Batch::new(M::INPUTS, columns)?;
    score_native(model, batch)
}

/// [`run_native`] over columns with nulls: `validity[i]` has one byte per row of column
/// `i`, 1 for a value and 0 for a null (whose slot should hold the canonical value, as in
/// the sandbox). As in the sandbox, a model that does not declare
/// [`Model::READS_VALIDITY`] is not shown the validity.
pub fn run_native_with_validity<M: Model>(
    model: &M,
    columns: &[Column<'_>],
    validity: &[&[u8]],
) -> Result<Vec<f64>, BatchError> {
    let batch = Batch::with_validity(M::INPUTS, columns, validity)?;
    score_native(model, batch)
}

fn score_native<M: Model>(model: &M, mut batch: Batch<'_>) -> Result<Vec<f64>, BatchError> {
    const { check_outputs(M::OUTPUTS) };
    if !M::READS_VALIDITY {
        batch.nulls = Nulls::NotRead;
    }
    let expected = batch.rows() * M::OUTPUTS.len();
    let mut out = Vec::with_capacity(expected);
    model.score_batch(&batch, &mut out);
    if out.len() != expected {
        return Err(BatchError::Output { rows: batch.rows(), expected, got: out.len() });
    }
    Ok(out)
}

/// Deterministic math: pure-Rust implementations that give the same bits on every target.
pub mod math {
    /// Natural logarithm.
    pub fn ln(x: f64) -> f64 {
        libm::log(x)
    }
    /// `e^x`.
    pub fn exp(x: f64) -> f64 {
        libm::exp(x)
    }
    pub fn sqrt(x: f64) -> f64 {
        libm::sqrt(x)
    }
    pub fn pow(x: f64, y: f64) -> f64 {
        libm::pow(x, y)
    }
    pub fn tanh(x: f64) -> f64 {
        libm::tanh(x)
    }
    /// The logistic function `1 / (1 + e^-x)`, computed without overflow.
    pub fn sigmoid(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + exp(-x))
        } else {
            let e = exp(x);
            e / (1.0 + e)
        }
    }
}

/// Glue used by [`export_model!`]; not a stable API.
#[doc(hidden)]
pub mod __guest {
    use super::{Batch, Column, Kind, Model, Trainable, TOKEN_LEN};
    use alloc::vec::Vec;
    use core::cell::UnsafeCell;

    /// Status returned by `cleanroom_process_batch` (0 is success).
    pub const STATUS_OK: i32 = 0;
    /// The host reported fewer rows than requested for a column.
    pub const STATUS_SHORT_READ: i32 = 1;
    /// The model produced a number of values other than rows × outputs.
    pub const STATUS_BAD_OUTPUT: i32 = 2;
    /// `rows` was negative, or rows × outputs does not fit an `i32`.
    pub const STATUS_BAD_ROWS: i32 = 3;

    enum Buf {
        F64(Vec<f64>),
        I64(Vec<i64>),
        Code(Vec<u32>),
        Token(Vec<[u8; TOKEN_LEN]>),
    }

    /// Per-instance state: the model and buffers reused across batches.
    pub struct State<M> {
        model: Option<M>,
        bufs: Vec<Buf>,
        /// One validity buffer per input, filled only for a model that reads validity.
        valid: Vec<Vec<u8>>,
        out: Vec<f64>,
    }

    /// A cell for the single guest instance. A cleanroom module has no threads (the
    /// sandbox refuses shared memory), so there is never concurrent access.
    pub struct GuestCell<M>(UnsafeCell<State<M>>);

    // SAFETY: only ever used on wasm32 without threads; see the type's documentation.
    unsafe impl<M> Sync for GuestCell<M> {}

    impl<M> GuestCell<M> {
        pub const fn new() -> Self {
            GuestCell(UnsafeCell::new(State { model: None, bufs: Vec::new(), valid: Vec::new(), out: Vec::new() }))
        }
    }

    impl<M> Default for GuestCell<M> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The host's column readers; each copies up to `max_rows` values of input `col`
    /// to `dst` and returns how many it copied.
    pub struct Host {
        pub read_f64: unsafe extern "C" fn(i32, *mut f64, i32) -> i32,
        pub read_i64: unsafe extern "C" fn(i32, *mut i64, i32) -> i32,
        pub read_codes: unsafe extern "C" fn(i32, *mut u32, i32) -> i32,
        pub read_tokens: unsafe extern "C" fn(i32, *mut [u8; TOKEN_LEN], i32) -> i32,
        /// Present only for a model that reads validity, so that no other module imports it.
        pub read_validity: Option<unsafe extern "C" fn(i32, *mut u8, i32) -> i32>,
        pub emit: unsafe extern "C" fn(*const f64, i32),
    }

    /// Let the host fill `buf` with exactly `rows` values.
    ///
    /// # Safety
    /// `read(ptr, ..)` must write the number of values it returns, and no more, at `ptr`.
    unsafe fn fill<T: Copy>(buf: &mut Vec<T>, rows: usize, read: impl FnOnce(*mut T) -> i32) -> bool {
        buf.clear();
        buf.reserve(rows);
        let got = read(buf.as_mut_ptr());
        if got < 0 || got as usize != rows {
            return false;
        }
        // SAFETY: capacity >= rows and the host initialised exactly `rows` values.
        unsafe { buf.set_len(rows) };
        true
    }

    /// Copy `rows` rows of the input columns of `kinds` into `bufs` (rebuilt if their kinds
    /// differ); false on a short read.
    ///
    /// # Safety
    /// `host` must be the real ABI imports.
    unsafe fn read_columns(bufs: &mut Vec<Buf>, kinds: &[Kind], host: &Host, rows: i32) -> bool {
        let n = rows as usize;
        let same = bufs.len() == kinds.len() && bufs.iter().zip(kinds).all(|(b, k)| b.kind() == *k);
        if !same {
            *bufs = kinds
                .iter()
                .map(|k| match k {
                    Kind::F64 => Buf::F64(Vec::new()),
                    Kind::I64 => Buf::I64(Vec::new()),
                    Kind::Code => Buf::Code(Vec::new()),
                    Kind::Token => Buf::Token(Vec::new()),
                })
                .collect();
        }
        for (i, b) in bufs.iter_mut().enumerate() {
            let col = i as i32;
            // SAFETY: each destination has capacity for `rows` elements of the right width,
            // and the host writes at most `max_rows` values (reporting how many).
            let ok = unsafe {
                match b {
                    Buf::F64(v) => fill(v, n, |p| (host.read_f64)(col, p, rows)),
                    Buf::I64(v) => fill(v, n, |p| (host.read_i64)(col, p, rows)),
                    Buf::Code(v) => fill(v, n, |p| (host.read_codes)(col, p, rows)),
                    Buf::Token(v) => fill(v, n, |p| (host.read_tokens)(col, p, rows)),
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }

    fn columns_of(bufs: &[Buf]) -> Vec<Column<'_>> {
        bufs.iter()
            .map(|b| match b {
                Buf::F64(v) => Column::F64(v),
                Buf::I64(v) => Column::I64(v),
                Buf::Code(v) => Column::Code(v),
                Buf::Token(v) => Column::Token(v),
            })
            .collect()
    }

    impl Buf {
        fn kind(&self) -> Kind {
            match self {
                Buf::F64(_) => Kind::F64,
                Buf::I64(_) => Kind::I64,
                Buf::Code(_) => Kind::Code,
                Buf::Token(_) => Kind::Token,
            }
        }
    }

    /// The host's parameter reader: copies up to `max` f64s to `dst`, returns how many
    /// (0 when the enclave gives none).
    pub type ReadParams = unsafe extern "C" fn(*mut f64, i32) -> i32;

    /// Before scoring: take the parameters the enclave gives, if any (the model keeps its
    /// own otherwise). False if the enclave gave a wrong number.
    ///
    /// # Safety
    /// As for [`process_batch`]; `read_params` must be the real import.
    pub unsafe fn load_params<M: Trainable>(cell: &GuestCell<M>, init: fn() -> M, read_params: ReadParams) -> bool {
        // SAFETY: single-threaded guest and no re-entrancy.
        let state = unsafe { &mut *cell.0.get() };
        let n = crate::param_count(M::LAYOUT);
        let mut p: Vec<f64> = Vec::with_capacity(n);
        // SAFETY: capacity n; the host writes at most n values and says how many.
        let got = unsafe { read_params(p.as_mut_ptr(), n as i32) };
        if got == 0 {
            return true;
        }
        if got as usize != n {
            return false;
        }
        // SAFETY: the host initialised exactly n values.
        unsafe { p.set_len(n) };
        state.model.get_or_insert_with(init).set_params(&p);
        true
    }

    /// Body of `cleanroom_initial_params`: emit the model's own (pretrained) parameters.
    ///
    /// # Safety
    /// As for [`process_batch`].
    pub unsafe fn initial_params<M: Trainable>(cell: &GuestCell<M>, init: fn() -> M, host: &Host) -> i32 {
        // SAFETY: single-threaded guest and no re-entrancy.
        let state = unsafe { &mut *cell.0.get() };
        let p = crate::params_of(state.model.get_or_insert_with(init));
        // SAFETY: `p` holds n initialised f64s.
        unsafe { (host.emit)(p.as_ptr(), p.len() as i32) };
        STATUS_OK
    }

    /// Body of `cleanroom_train_unit`: read one unit's inputs and label and the current
    /// parameters, emit the gradient of the unit's summed loss and then the loss.
    ///
    /// # Safety
    /// As for [`process_batch`]; `read_params` must be the real import.
    pub unsafe fn train_unit<M: Trainable>(
        cell: &GuestCell<M>,
        init: fn() -> M,
        host: &Host,
        read_params: ReadParams,
        rows: i32,
    ) -> i32 {
        if rows < 0 {
            return STATUS_BAD_ROWS;
        }
        // SAFETY: forwarded.
        if !unsafe { load_params(cell, init, read_params) } {
            return STATUS_SHORT_READ;
        }
        // SAFETY: single-threaded guest and no re-entrancy.
        let state = unsafe { &mut *cell.0.get() };
        let mut kinds: Vec<Kind> = M::INPUTS.to_vec();
        kinds.push(M::LABEL);
        // SAFETY: forwarded.
        if !unsafe { read_columns(&mut state.bufs, &kinds, host, rows) } {
            return STATUS_SHORT_READ;
        }
        let columns = columns_of(&state.bufs);
        let Some((label, inputs)) = columns.split_last() else { return STATUS_SHORT_READ };
        let Some(labels) = crate::train::labels_of(label) else { return STATUS_SHORT_READ };
        let Ok(batch) = Batch::new(M::INPUTS, inputs) else { return STATUS_SHORT_READ };
        let batch = Batch { nulls: super::Nulls::NotRead, ..batch };
        let model = state.model.get_or_insert_with(init);
        let (mut grad, loss) = crate::train::unit_gradient(model, &batch, &labels);
        grad.push(loss);
        // SAFETY: `grad` holds n + 1 initialised f64s.
        unsafe { (host.emit)(grad.as_ptr(), grad.len() as i32) };
        STATUS_OK
    }

    /// Body of `cleanroom_process_batch`.
    ///
    /// # Safety
    /// `cell` must not be accessed concurrently (true on wasm32 without threads) and
    /// `host` must be the real ABI imports.
    pub unsafe fn process_batch<M: Model>(cell: &GuestCell<M>, init: fn() -> M, host: &Host, rows: i32) -> i32 {
        // SAFETY: single-threaded guest and no re-entrancy (the host never calls back in).
        let state = unsafe { &mut *cell.0.get() };
        const { super::check_outputs(M::OUTPUTS) };
        if rows < 0 {
            return STATUS_BAD_ROWS;
        }
        let n = rows as usize;
        // What the model emits: `outputs` values per row, row-major.
        let Some(values) = n.checked_mul(M::OUTPUTS.len()).and_then(|v| i32::try_from(v).ok()) else {
            return STATUS_BAD_ROWS;
        };
        let model = state.model.get_or_insert_with(init);
        // SAFETY: forwarded from this function's contract.
        if !unsafe { read_columns(&mut state.bufs, M::INPUTS, host, rows) } {
            return STATUS_SHORT_READ;
        }
        if M::READS_VALIDITY {
            let Some(read_validity) = host.read_validity else {
                return STATUS_SHORT_READ;
            };
            state.valid.resize_with(M::INPUTS.len(), Vec::new);
            for (i, v) in state.valid.iter_mut().enumerate() {
                // SAFETY: as for the columns above, one byte per row.
                if !unsafe { fill(v, n, |p| read_validity(i as i32, p, rows)) } {
                    return STATUS_SHORT_READ;
                }
            }
        }
        let columns = columns_of(&state.bufs);
        let valid: Vec<&[u8]> = state.valid.iter().map(Vec::as_slice).collect();
        let batch = if M::READS_VALIDITY {
            Batch::with_validity(M::INPUTS, &columns, &valid)
        } else {
            Batch::new(M::INPUTS, &columns).map(|b| Batch { nulls: super::Nulls::NotRead, ..b })
        };
        let Ok(batch) = batch else {
            return STATUS_SHORT_READ;
        };
        state.out.clear();
        model.score_batch(&batch, &mut state.out);
        if state.out.len() != values as usize {
            return STATUS_BAD_OUTPUT;
        }
        // SAFETY: `out` holds `values` initialised f64s.
        unsafe { (host.emit)(state.out.as_ptr(), values) };
        STATUS_OK
    }
}

/// Export a [`Model`] as a cleanroom Wasm module.
///
/// `export_model!(MyModel)` builds the model with `Default::default()` on the first
/// batch; `export_model!(MyModel, expr)` uses `expr` instead. The `cleanroom_abi` section
/// is computed at compile time from [`Model::INPUTS`] and [`Model::OUTPUTS`]; bad output
/// names are a compile error on every target ([`check_outputs`]). On targets other than
/// wasm32 the macro expands to that check only, so the crate still builds (and tests)
/// natively.
#[macro_export]
macro_rules! export_model {
    ($ty:ty) => {
        $crate::export_model!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        $crate::__export_module!($ty, $init, scoring);
    };
}

/// Export a [`Trainable`] model: everything [`export_model!`] exports, plus the
/// `cleanroom_train` section (from [`Trainable::LAYOUT`] and [`Trainable::LABEL`]),
/// `cleanroom_initial_params` and `cleanroom_train_unit`; `cleanroom_process_batch` first
/// takes the parameters the enclave gives (`read_params`), so after fine-tuning the same
/// module scores with the trained parameters. Same two forms as [`export_model!`].
#[macro_export]
macro_rules! export_trainable {
    ($ty:ty) => {
        $crate::export_trainable!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        $crate::__export_module!($ty, $init, trainable);
    };
}

/// The body of [`export_model!`] and [`export_trainable!`]; not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_module {
    ($ty:ty, $init:expr, $mode:ident) => {
        const _: () = $crate::check_outputs(<$ty as $crate::Model>::OUTPUTS);

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[link_section = "cleanroom_abi"]
            #[used]
            static CLEANROOM_ABI: [u8; $crate::abi_section_len(
                <$ty as $crate::Model>::INPUTS,
                <$ty as $crate::Model>::OUTPUTS,
            )] = $crate::abi_section(<$ty as $crate::Model>::INPUTS, <$ty as $crate::Model>::OUTPUTS);

            static STATE: $crate::__guest::GuestCell<$ty> = $crate::__guest::GuestCell::new();

            mod imports {
                #[link(wasm_import_module = "cleanroom")]
                extern "C" {
                    #[link_name = "read_f64"]
                    pub fn read_f64(col: i32, dst: *mut f64, max_rows: i32) -> i32;
                    #[link_name = "read_i64"]
                    pub fn read_i64(col: i32, dst: *mut i64, max_rows: i32) -> i32;
                    #[link_name = "read_codes"]
                    pub fn read_codes(col: i32, dst: *mut u32, max_rows: i32) -> i32;
                    #[link_name = "read_tokens"]
                    pub fn read_tokens(col: i32, dst: *mut [u8; $crate::TOKEN_LEN], max_rows: i32) -> i32;
                    #[link_name = "read_validity"]
                    pub fn read_validity(col: i32, dst: *mut u8, max_rows: i32) -> i32;
                    #[link_name = "read_params"]
                    pub fn read_params(dst: *mut f64, max: i32) -> i32;
                    #[link_name = "emit"]
                    pub fn emit(ptr: *const f64, n: i32);
                }
            }

            fn init() -> $ty {
                $init
            }

            // Built at compile time: the `read_validity` import is referenced, and so
            // imported, only by a model that reads validity, whatever the optimisation level.
            const HOST: $crate::__guest::Host = $crate::__guest::Host {
                read_f64: imports::read_f64,
                read_i64: imports::read_i64,
                read_codes: imports::read_codes,
                read_tokens: imports::read_tokens,
                read_validity: if <$ty as $crate::Model>::READS_VALIDITY { Some(imports::read_validity) } else { None },
                emit: imports::emit,
            };

    $crate::__export_module!(@$mode $ty);
        };
    };
    (@scoring $ty:ty) => {
        #[no_mangle]
        pub extern "C" fn cleanroom_process_batch(rows: i32) -> i32 {
            // SAFETY: wasm32 guests are single-threaded and `HOST` is the ABI imports.
            unsafe { $crate::__guest::process_batch::<$ty>(&STATE, init, &HOST, rows) }
        }
    };
    (@trainable $ty:ty) => {
        #[link_section = "cleanroom_train"]
        #[used]
        static CLEANROOM_TRAIN: [u8; $crate::train_section_len(<$ty as $crate::Trainable>::LAYOUT)] =
            $crate::train_section(<$ty as $crate::Trainable>::LAYOUT, <$ty as $crate::Trainable>::LABEL);

        #[no_mangle]
        pub extern "C" fn cleanroom_process_batch(rows: i32) -> i32 {
            // SAFETY: wasm32 guests are single-threaded and these are the ABI imports.
            unsafe {
                if !$crate::__guest::load_params::<$ty>(&STATE, init, imports::read_params) {
                    return $crate::__guest::STATUS_SHORT_READ;
                }
                $crate::__guest::process_batch::<$ty>(&STATE, init, &HOST, rows)
            }
        }

        #[no_mangle]
        pub extern "C" fn cleanroom_initial_params() -> i32 {
            // SAFETY: as above.
            unsafe { $crate::__guest::initial_params::<$ty>(&STATE, init, &HOST) }
        }

        #[no_mangle]
        pub extern "C" fn cleanroom_train_unit(rows: i32) -> i32 {
            // SAFETY: as above.
            unsafe { $crate::__guest::train_unit::<$ty>(&STATE, init, &HOST, imports::read_params, rows) }
        }
    };
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[derive(Default)]
    struct Sum;
    impl Model for Sum {
        const INPUTS: &'static [Kind] = &[Kind::F64, Kind::I64, Kind::Code, Kind::Token];
        fn score(&self, row: &Row<'_>) -> f64 {
            row.f64(0) + row.i64(1) as f64 + row.code(2) as f64 + row.token(3)[0] as f64
        }
    }
    export_model!(Sum);

    #[test]
    fn manifest_layout() {
        let m: [u8; 16] = manifest(Sum::INPUTS);
        assert_eq!(m, [1, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 1, 2, 3]);
        assert_eq!(manifest_len(Sum::INPUTS), 16);
    }

    #[test]
    fn run_native_checks_its_inputs() {
        let (f, i, c, t) = ([1.5, 2.0], [1i64, -1], [3u32, 0], [[7u8; TOKEN_LEN], [0u8; TOKEN_LEN]]);
        let cols = [Column::F64(&f), Column::I64(&i), Column::Code(&c), Column::Token(&t)];
        assert_eq!(run_native(&Sum, &cols).unwrap(), vec![12.5, 1.0]);
        assert_eq!(run_native(&Sum, &cols[..3]), Err(BatchError::InputCount { expected: 4, got: 3 }));
        let swapped = [Column::I64(&i), Column::F64(&f), Column::Code(&c), Column::Token(&t)];
        assert_eq!(run_native(&Sum, &swapped), Err(BatchError::Kind { index: 0, expected: Kind::F64, got: Kind::I64 }));
        let short = [Column::F64(&f), Column::I64(&i[..1]), Column::Code(&c), Column::Token(&t)];
        assert_eq!(run_native(&Sum, &short), Err(BatchError::Ragged { index: 1, rows: 2, got: 1 }));
        let empty: [Column<'_>; 4] = [Column::F64(&[]), Column::I64(&[]), Column::Code(&[]), Column::Token(&[])];
        assert_eq!(run_native(&Sum, &empty).unwrap(), Vec::<f64>::new());
    }

    /// Reads validity: a null income counts as the median, a null count as none.
    #[derive(Default)]
    struct Imputes;
    impl Model for Imputes {
        const INPUTS: &'static [Kind] = &[Kind::F64, Kind::I64, Kind::Code];
        const READS_VALIDITY: bool = true;
        fn score(&self, row: &Row<'_>) -> f64 {
            let code = match row.code_opt(2) {
                Some(c) => c as f64,
                None => -100.0,
            };
            row.f64_opt(0).unwrap_or(50.0) + row.i64_opt(1).unwrap_or(0) as f64 * 10.0 + code
        }
    }

    /// Asks for validity without declaring that it reads it.
    #[derive(Default)]
    struct Undeclared;
    impl Model for Undeclared {
        const INPUTS: &'static [Kind] = &[Kind::F64];
        fn score(&self, row: &Row<'_>) -> f64 {
            if row.is_valid(0) {
                1.0
            } else {
                0.0
            }
        }
    }

    #[test]
    fn validity_reaches_a_model_that_reads_it() {
        // Nulls hold the canonical value in their slots.
        let (f, i, c) = ([1.5, 0.0, 0.0], [2i64, 0, 3], [0u32, 1, 0]);
        let cols = [Column::F64(&f), Column::I64(&i), Column::Code(&c)];
        let valid: [&[u8]; 3] = [&[1, 0, 1], &[1, 0, 1], &[1, 1, 0]];
        assert_eq!(run_native_with_validity(&Imputes, &cols, &valid).unwrap(), vec![21.5, 51.0, 30.0 - 100.0]);
        // Without a validity every value is present.
        assert_eq!(run_native(&Imputes, &cols).unwrap(), vec![21.5, 1.0, 30.0]);
        // A model that does not read validity sees the canonical values, as in the sandbox.
        assert_eq!(
            run_native_with_validity(
                &Sum,
                &[Column::F64(&f), Column::I64(&i), Column::Code(&c), Column::Token(&[[1; 32]; 3])],
                &[&[1, 0, 1], &[1; 3], &[1; 3], &[1; 3]]
            )
            .unwrap(),
            vec![4.5, 2.0, 4.0]
        );
        // The validity's shape is checked like the columns'.
        assert_eq!(
            run_native_with_validity(&Imputes, &cols, &valid[..2]),
            Err(BatchError::ValidityCount { expected: 3, got: 2 })
        );
        let short: [&[u8]; 3] = [&[1, 0, 1], &[1, 0], &[1, 1, 0]];
        assert_eq!(run_native_with_validity(&Imputes, &cols, &short), Err(BatchError::Validity { index: 1, rows: 3 }));
        let two: [&[u8]; 3] = [&[1, 0, 1], &[1, 2, 1], &[1, 1, 0]];
        assert_eq!(run_native_with_validity(&Imputes, &cols, &two), Err(BatchError::Validity { index: 1, rows: 3 }));
    }

    #[test]
    #[should_panic(expected = "READS_VALIDITY")]
    fn asking_for_validity_undeclared_is_a_panic() {
        let f = [1.0];
        let _ = run_native_with_validity(&Undeclared, &[Column::F64(&f)], &[&[1]]);
    }

    /// Two outputs per row: the sum of its inputs and their product.
    #[derive(Default)]
    struct SumAndProduct;
    impl Model for SumAndProduct {
        const INPUTS: &'static [Kind] = &[Kind::F64, Kind::I64];
        const OUTPUTS: &'static [&'static str] = &["sum", "product"];
        fn score(&self, row: &Row<'_>) -> f64 {
            row.f64(0) + row.i64(1) as f64
        }
        fn score_into(&self, row: &Row<'_>, out: &mut [f64]) {
            out[0] = self.score(row);
            out[1] = row.f64(0) * row.i64(1) as f64;
        }
    }
    export_model!(SumAndProduct);

    /// Declares two outputs but implements only `score`.
    struct Forgetful;
    impl Model for Forgetful {
        const INPUTS: &'static [Kind] = &[Kind::F64];
        const OUTPUTS: &'static [&'static str] = &["a", "b"];
        fn score(&self, row: &Row<'_>) -> f64 {
            row.f64(0)
        }
    }

    /// Declares two outputs, and its columnar code emits one per row.
    struct Miscounts;
    impl Model for Miscounts {
        const INPUTS: &'static [Kind] = &[Kind::F64];
        const OUTPUTS: &'static [&'static str] = &["a", "b"];
        fn score(&self, row: &Row<'_>) -> f64 {
            row.f64(0)
        }
        fn score_batch(&self, batch: &Batch<'_>, out: &mut Vec<f64>) {
            out.extend_from_slice(batch.f64s(0));
        }
    }

    #[test]
    fn section_names_outputs_unless_default() {
        // The default single output: byte for byte the layout without names.
        let plain: [u8; 16] = abi_section(Sum::INPUTS, DEFAULT_OUTPUTS);
        assert_eq!(plain, manifest::<16>(Sum::INPUTS));
        assert!(is_default_outputs(&["score"]) && !is_default_outputs(&["scores"]) && !is_default_outputs(&[]));
        assert!(!is_default_outputs(&["score", "x"]));
        const LEN: usize = abi_section_len(SumAndProduct::INPUTS, SumAndProduct::OUTPUTS);
        let named: [u8; LEN] = abi_section(SumAndProduct::INPUTS, SumAndProduct::OUTPUTS);
        let mut want = vec![1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 3];
        want.extend_from_slice(b"sum");
        want.push(7);
        want.extend_from_slice(b"product");
        assert_eq!(named.as_slice(), want.as_slice());
        // A single output with another name is written out.
        let p: [u8; 15] = abi_section(&[Kind::F64], &["p"]);
        assert_eq!(p, [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, b'p']);
    }

    #[test]
    fn output_names_are_checked() {
        let longest = "a".repeat(MAX_OUTPUT_NAME_LEN);
        check_outputs(&["a", "b9", "c_d", &longest]);
        let sixteen = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"];
        check_outputs(&sixteen);
        let too_long = "a".repeat(MAX_OUTPUT_NAME_LEN + 1);
        let seventeen = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"];
        let bad: [&[&str]; 9] = [&[], &seventeen, &["a", "a"], &[""], &[&too_long], &["A"], &["1a"], &["_a"], &["a-b"]];
        for names in bad {
            let panicked = std::panic::catch_unwind(|| check_outputs(names)).is_err();
            assert!(panicked, "{names:?} accepted");
        }
    }

    #[test]
    fn several_outputs_come_row_major() {
        let (f, i) = ([1.5, 2.0, -1.0], [2i64, 0, 3]);
        let cols = [Column::F64(&f), Column::I64(&i)];
        assert_eq!(run_native(&SumAndProduct, &cols).unwrap(), vec![3.5, 3.0, 2.0, 0.0, 2.0, -3.0]);
        let empty = [Column::F64(&[]), Column::I64(&[])];
        assert_eq!(run_native(&SumAndProduct, &empty).unwrap(), Vec::<f64>::new());
        assert_eq!(
            run_native(&Miscounts, &[Column::F64(&f)]),
            Err(BatchError::Output { rows: 3, expected: 6, got: 3 })
        );
        assert_eq!(
            BatchError::Output { rows: 3, expected: 6, got: 3 }.to_string(),
            "model produced 3 values for 3 rows, expected 6"
        );
    }

    #[test]
    #[should_panic(expected = "must implement Model::score_into")]
    fn several_outputs_without_score_into_is_a_panic() {
        let _ = run_native(&Forgetful, &[Column::F64(&[1.0])]);
    }

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(math::sigmoid(0.0), 0.5);
        assert_eq!(math::sigmoid(1000.0), 1.0);
        assert_eq!(math::sigmoid(-1000.0), 0.0);
        assert!(math::sigmoid(f64::NAN).is_nan());
    }
}
