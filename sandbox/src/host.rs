//! Host side of the ABI: the per-job store data, the resource limiter, the `cleanroom`
//! import functions and the mapping of wasmtime errors to [`RunError`].
//!
//! Every import checks its arguments and returns a typed abort (a trap) on misuse; none
//! of them can panic on guest-controlled input.

use crate::abi::{self, ColumnKind};
use crate::error::RunError;
use protocol::table::{ColumnData, Validity};
use std::time::{Duration, Instant};
use wasmtime::{Caller, Engine, Linker, Memory, ResourceLimiter, Store, Trap};

/// A [`RunError`] raised from inside the host (an import, the limiter or the epoch
/// callback); it travels through wasmtime as the trap's error and is recovered intact.
#[derive(Debug)]
pub(crate) struct Abort(pub RunError);

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Abort {}

pub(crate) fn abort(e: RunError) -> wasmtime::Error {
    wasmtime::Error::new(Abort(e))
}

/// Store limits for one job. Growth past a limit traps with a typed error rather than
/// returning -1, so that hitting a limit always ends the job.
pub(crate) struct Limiter {
    memory_bytes: u64,
    table_elements: u64,
}

impl Limiter {
    pub fn new(memory_bytes: u64, table_elements: u64) -> Self {
        Limiter { memory_bytes, table_elements }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_bytes {
            return Err(abort(RunError::MemoryLimit { limit: self.memory_bytes }));
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements {
            return Err(abort(RunError::TableLimit { limit: self.table_elements }));
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        crate::admission::MAX_TABLES
    }
    fn memories(&self) -> usize {
        1
    }
}

/// One input column staged as little-endian bytes for the current batch.
pub(crate) struct Staged {
    pub kind: ColumnKind,
    pub bytes: Vec<u8>,
    /// One byte per row: 1 for a value, 0 for a null (what `read_validity` copies). Staged
    /// only for a module that imports `read_validity` (no other can read it); empty
    /// otherwise.
    pub validity: Vec<u8>,
    with_validity: bool,
}

impl Staged {
    /// `with_validity`: whether the module imports `read_validity`.
    pub fn new(kind: ColumnKind, with_validity: bool) -> Self {
        Staged { kind, bytes: Vec::new(), validity: Vec::new(), with_validity }
    }

    /// Drop the staged plaintext (not only its length).
    pub fn release(&mut self) {
        self.bytes = Vec::new();
        self.validity = Vec::new();
    }

    /// Copy `data` in as little-endian bytes and its validity (every row valid when
    /// `None`) as one byte per row; false if its type is not `self.kind`. The caller
    /// checked that `validity`, if any, has one entry per value.
    pub fn stage(&mut self, data: &ColumnData, validity: Option<&Validity>) -> bool {
        if ColumnKind::of(data) != self.kind {
            return false;
        }
        self.validity.clear();
        if self.with_validity {
            match validity {
                Some(v) => self.validity.extend(v.as_slice().iter().map(|&ok| u8::from(ok))),
                None => self.validity.resize(data.len(), 1),
            }
        }
        let b = &mut self.bytes;
        match data {
            ColumnData::F64(v) => put(b, v, |x| x.to_le_bytes()),
            ColumnData::I64(v) => put(b, v, |x| x.to_le_bytes()),
            ColumnData::Dict { codes, .. } => put(b, codes, |x| x.to_le_bytes()),
            ColumnData::Token(v) => put(b, v, |x| *x),
        }
        true
    }
}

/// Write `values` into `b` as `W` bytes each. Every byte is overwritten, so only a longer
/// buffer is zero-filled first, at its new tail. The width is a constant, so each value is
/// one store (a plain copy on little-endian hosts), not a call to `memcpy`.
fn put<const W: usize, T>(b: &mut Vec<u8>, values: &[T], bytes: impl Fn(&T) -> [u8; W]) {
    b.truncate(values.len() * W);
    b.resize(values.len() * W, 0);
    let (chunks, _) = b.as_chunks_mut::<W>();
    for (c, x) in chunks.iter_mut().zip(values) {
        *c = bytes(x);
    }
}

/// How many values a call into the module must emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emission {
    /// `rows * m` values, row-major (scoring, `m` outputs per row).
    PerRow(usize),
    /// Exactly this many, whatever the rows (a gradient and its loss; initial parameters).
    Fixed(usize),
}

impl Emission {
    pub fn expected(self, rows: usize) -> usize {
        match self {
            // rows <= MAX_BATCH_ROWS (2^24) and m <= 16: no overflow.
            Emission::PerRow(m) => rows * m,
            Emission::Fixed(n) => n,
        }
    }
}

/// Data of a job's store.
pub(crate) struct HostState {
    pub limiter: Limiter,
    pub columns: Vec<Staged>,
    pub rows: usize,
    /// How many values the current call must emit.
    pub emission: Emission,
    /// The parameters `read_params` copies out; `None` outside a training job.
    pub params: Option<std::sync::Arc<[f64]>>,
    /// True only while `cleanroom_process_batch` runs.
    pub in_batch: bool,
    pub out: Vec<f64>,
    pub memory: Option<Memory>,
    pub deadline: Instant,
    pub time_limit: Duration,
}

/// Range `[ptr, ptr + len)` of guest memory, or an out-of-bounds abort.
fn guest_range(call: &'static str, mem_len: usize, ptr: i32, len: usize) -> Result<std::ops::Range<usize>, RunError> {
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= mem_len => Ok(start..end),
        _ => Err(RunError::OutOfBounds { call, ptr: ptr as u32, len: len as u64 }),
    }
}

fn memory_of(caller: &Caller<'_, HostState>, call: &'static str) -> Result<Memory, RunError> {
    caller.data().memory.ok_or_else(|| RunError::AbiMisuse(format!("{call} called before instantiation finished")))
}

/// What a read copies out of a staged column.
#[derive(Clone, Copy)]
enum Part {
    /// The values, through the reader of this kind (which must be the column's).
    Values(ColumnKind),
    /// The validity bytes, of a column of any kind.
    Validity,
}

fn read(caller: Caller<'_, HostState>, kind: ColumnKind, col: i32, dst: i32, max_rows: i32) -> Result<i32, RunError> {
    copy_out(caller, Part::Values(kind), col, dst, max_rows)
}

fn read_validity(caller: Caller<'_, HostState>, col: i32, dst: i32, max_rows: i32) -> Result<i32, RunError> {
    copy_out(caller, Part::Validity, col, dst, max_rows)
}

/// Copy the first `n = min(max_rows, rows)` rows of `part` of input `col` to `dst`; every
/// argument is checked before a byte is written.
fn copy_out(mut caller: Caller<'_, HostState>, part: Part, col: i32, dst: i32, max_rows: i32) -> Result<i32, RunError> {
    let call = match part {
        Part::Values(kind) => kind.reader(),
        Part::Validity => abi::READ_VALIDITY,
    };
    let s = caller.data();
    if !s.in_batch {
        return Err(RunError::AbiMisuse(format!("{call} called outside cleanroom_process_batch")));
    }
    let staged = usize::try_from(col)
        .ok()
        .and_then(|c| s.columns.get(c))
        .ok_or_else(|| RunError::AbiMisuse(format!("{call}: no input column {col}")))?;
    let width = match part {
        Part::Values(kind) if staged.kind != kind => {
            return Err(RunError::AbiMisuse(format!("{call}: input column {col} is {}", staged.kind)));
        }
        Part::Values(kind) => kind.width(),
        Part::Validity => 1,
    };
    let max = usize::try_from(max_rows).map_err(|_| RunError::AbiMisuse(format!("{call}: negative max_rows")))?;
    let n = max.min(s.rows);
    let len = n * width;
    let memory = memory_of(&caller, call)?;
    let (mem, s) = memory.data_and_store_mut(&mut caller);
    let range = guest_range(call, mem.len(), dst, len)?;
    let staged = &s.columns[col as usize];
    let src = match part {
        Part::Values(_) => &staged.bytes,
        Part::Validity => &staged.validity,
    };
    // Staged with `rows` rows (validity for every module that imports its reader); never
    // a panic on what a module asks, whatever it asks.
    let src = src.get(..len).ok_or_else(|| RunError::AbiMisuse(format!("{call}: input column {col} not staged")))?;
    mem[range].copy_from_slice(src);
    // n <= rows <= MAX_BATCH_ROWS < i32::MAX
    Ok(n as i32)
}

fn emit(mut caller: Caller<'_, HostState>, ptr: i32, n: i32) -> Result<(), RunError> {
    let s = caller.data();
    if !s.in_batch {
        return Err(RunError::EmitOutsideBatch);
    }
    let n = usize::try_from(n).map_err(|_| RunError::AbiMisuse("emit: negative count".into()))?;
    let emitted = s.out.len().saturating_add(n);
    let expected = s.emission.expected(s.rows);
    if emitted > expected {
        return Err(RunError::BadEmission { rows: s.rows, expected, emitted });
    }
    let memory = memory_of(&caller, "emit")?;
    let (mem, s) = memory.data_and_store_mut(&mut caller);
    let range = guest_range("emit", mem.len(), ptr, n * 8)?;
    // `range` is `8n` bytes long: exactly `n` values, no remainder.
    let (values, _) = mem[range].as_chunks::<8>();
    s.out.extend(values.iter().map(|c| {
        let x = f64::from_le_bytes(*c);
        // One NaN only: a NaN's sign and payload must not carry information out (nor its
        // bits, which Cranelift leaves to the processor: docs/wasm-abi.md, "NaN bits").
        if x.is_nan() {
            f64::NAN
        } else {
            x
        }
    }));
    Ok(())
}

/// Copy up to `max` of the current parameters to `dst`; 0 when the job gives none.
fn read_params(mut caller: Caller<'_, HostState>, dst: i32, max: i32) -> Result<i32, RunError> {
    let call = crate::train::READ_PARAMS;
    let s = caller.data();
    if !s.in_batch {
        return Err(RunError::AbiMisuse(format!("{call} called outside a call into the module")));
    }
    let max = usize::try_from(max).map_err(|_| RunError::AbiMisuse(format!("{call}: negative max")))?;
    let Some(params) = s.params.clone() else { return Ok(0) };
    let n = max.min(params.len());
    let memory = memory_of(&caller, call)?;
    let mem = memory.data_mut(&mut caller);
    let range = guest_range(call, mem.len(), dst, n * 8)?;
    for (c, x) in mem[range].chunks_exact_mut(8).zip(params.iter()) {
        c.copy_from_slice(&x.to_le_bytes());
    }
    // n <= MAX_PARAMS < i32::MAX
    Ok(n as i32)
}

/// The linker with exactly the `cleanroom` imports and nothing else.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    let m = abi::IMPORT_MODULE;
    l.func_wrap(m, "read_f64", |c: Caller<'_, HostState>, col: i32, dst: i32, max: i32| {
        read(c, ColumnKind::F64, col, dst, max).map_err(abort)
    })?;
    l.func_wrap(m, "read_i64", |c: Caller<'_, HostState>, col: i32, dst: i32, max: i32| {
        read(c, ColumnKind::I64, col, dst, max).map_err(abort)
    })?;
    l.func_wrap(m, "read_codes", |c: Caller<'_, HostState>, col: i32, dst: i32, max: i32| {
        read(c, ColumnKind::Code, col, dst, max).map_err(abort)
    })?;
    l.func_wrap(m, "read_tokens", |c: Caller<'_, HostState>, col: i32, dst: i32, max: i32| {
        read(c, ColumnKind::Token, col, dst, max).map_err(abort)
    })?;
    l.func_wrap(m, abi::READ_VALIDITY, |c: Caller<'_, HostState>, col: i32, dst: i32, max: i32| {
        read_validity(c, col, dst, max).map_err(abort)
    })?;
    l.func_wrap(m, crate::train::READ_PARAMS, |c: Caller<'_, HostState>, dst: i32, max: i32| {
        read_params(c, dst, max).map_err(abort)
    })?;
    l.func_wrap(m, "emit", |c: Caller<'_, HostState>, ptr: i32, n: i32| emit(c, ptr, n).map_err(abort))?;
    Ok(l)
}

/// Map an error from instantiation or a call to the reason the job ended.
pub(crate) fn classify(store: &Store<HostState>, e: wasmtime::Error, instantiating: bool) -> RunError {
    if let Some(Abort(r)) = e.downcast_ref::<Abort>() {
        return r.clone();
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => RunError::TimeLimit { limit: store.data().time_limit },
            Trap::OutOfFuel => RunError::OutOfFuel,
            Trap::StackOverflow => RunError::StackOverflow,
            t => RunError::Trap(t.to_string()),
        };
    }
    if instantiating {
        RunError::Instantiate(format!("{e:#}"))
    } else {
        RunError::Trap(format!("{e:#}"))
    }
}
