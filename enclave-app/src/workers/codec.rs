//! The frames between the supervisor and its worker processes: length-prefixed, fixed
//! layout, little-endian. Both ends are the same measured binary inside the enclave, so
//! this is not a trust boundary; it is still parsed as carefully as one (every length is
//! checked against the bytes left before anything is allocated, a frame's layout is
//! checked whole before any of its units is used, and every unit is rebuilt through
//! [`RecordBatch::with_validity`], which checks it again), because a bug here would
//! otherwise score the wrong rows. A general codec (the CBOR of `RecordBatch::encode`) costs
//! about 5 µs to decode a one-row unit, half of what scoring it costs; this costs about
//! 1,500 instructions for a one-row unit of five columns, checks included (BENCHMARKS.md,
//! "Every core").
//!
//! A task frame (counts `u32`, values `u64`/`f64` bits, all little-endian):
//!
//! ```text
//! tag u8 (2 score | 3 gradient)   remaining u64 (ns)   params: flag u8 [n u32, n × f64]
//! groups u32, each:
//!   schema: columns u32, each: name (len u32, UTF-8), kind u8 (1 f64 | 2 i64 | 3 dict | 4 token)
//!   units u32, each: rows u32, then per schema column in order:
//!     f64 | i64: rows × 8 bytes    token: rows × 32 bytes
//!     dict: values u32, each (len u32, UTF-8), then rows × u32 codes
//!     validity: flag u8 (0 none | 1 then rows bytes of 0 or 1)
//! ```
//!
//! A reply: tag u8, then for outcomes (3) a count u32 and per unit, in the task's order,
//! flag u8 1 and its values (n u32, n × f64), or flag 0 and the kind of fault (text).
//!
//! A group is a run of consecutive units with the same column names and kinds (a task cut
//! from one chunk is one group): names travel once per group, not once per unit, and a
//! worker decodes every unit of a group into the same column buffers ([`TaskFrame`]), so
//! decoding a unit allocates nothing. The supervisor sends only the columns a worker reads
//! (the module's inputs, and a training job's label; see [`encode_task`]).

use protocol::table::{Column, ColumnData, RecordBatch, Validity, TOKEN_LEN};
use sandbox::SandboxConfig;
use std::collections::BTreeMap;
use std::io::{IoSlice, Read, Write};
use std::time::Duration;

/// Largest frame either side accepts (a batch of units or their results).
pub const MAX_FRAME: usize = 1 << 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("frame truncated: {what} needs {needed} bytes, {left} left")]
    Truncated { what: &'static str, needed: usize, left: usize },
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown {what} tag {tag}")]
    Tag { what: &'static str, tag: u8 },
    #[error("{0} trailing bytes after the frame's content")]
    Trailing(usize),
    #[error("text is not UTF-8")]
    Utf8,
    #[error("unit: {0}")]
    Unit(String),
    #[error("{0}")]
    Io(String),
}

/// What a worker needs for a whole job, sent once before any task.
#[derive(Debug, Clone, PartialEq)]
pub struct Init {
    pub config: SandboxConfig,
    pub wasm: Vec<u8>,
    pub inputs: Vec<String>,
    /// The label column of a training job: the worker then also computes gradients.
    pub label: Option<String>,
    pub fuel_per_unit: u64,
}

/// One slice of units to run, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Score each unit (`process_batch`), with these parameters given to `read_params`.
    Score { remaining: Duration, params: Option<Vec<f64>>, units: Vec<RecordBatch> },
    /// Each unit's gradient and loss at `at` (`train_unit`).
    Gradient { remaining: Duration, at: Vec<f64>, units: Vec<RecordBatch> },
}

/// One unit's outcome: its values, or the kind of fault that makes it absent.
pub type UnitOutcome = Result<Vec<f64>, String>;

/// What a worker answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The job's module is compiled and the worker waits for tasks.
    Ready,
    /// It is not (a message without data: the module or the limits were refused).
    InitFailed(String),
    /// One outcome per unit of the task, in the task's order.
    Outcomes(Vec<UnitOutcome>),
}

const INIT: u8 = 1;
const SCORE: u8 = 2;
const GRADIENT: u8 = 3;
const READY: u8 = 1;
const INIT_FAILED: u8 = 2;
const OUTCOMES: u8 = 3;

const F64: u8 = 1;
const I64: u8 = 2;
const DICT: u8 = 3;
const TOKEN: u8 = 4;

/// Write `payload` as one frame: length and payload in one gathered write where the writer
/// takes it whole (a pipe with room does), so the reader wakes once per frame, not twice.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).ok().filter(|&n| n as usize <= MAX_FRAME);
    let len = len.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let len = len.to_le_bytes();
    let mut parts = [IoSlice::new(&len), IoSlice::new(payload)];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        match w.write_vectored(parts) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    w.flush()
}

/// Read one frame; `Ok(None)` at a clean end of stream (before a frame's first byte).
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, CodecError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(CodecError::Truncated { what: "frame length", needed: 4, left: got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CodecError::Io(e.to_string())),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(CodecError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| CodecError::Io(format!("frame body: {e}")))?;
    Ok(Some(buf))
}

// --- encoding ---------------------------------------------------------------------------

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: usize) {
        // Every count here is bounded by a frame (< 4 GiB) long before it overflows.
        self.0.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn f64s(&mut self, v: &[f64]) {
        self.u32(v.len());
        // Bits, so a NaN's payload and a zero's sign arrive as they left.
        v.iter().for_each(|x| self.u64(x.to_bits()));
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn duration(&mut self, d: Duration) {
        self.u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
    fn patch_u32(&mut self, at: usize, v: usize) {
        let v = u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes();
        self.0[at..at + 4].copy_from_slice(&v);
    }
    /// `units` as groups of consecutive units with one schema: names and kinds once per
    /// group, then each unit's values; with `only`, just the columns it names.
    fn units(&mut self, units: &[&RecordBatch], only: Option<&[String]>) {
        let count_at = self.0.len();
        self.u32(0);
        let mut groups = 0;
        let mut rest = units;
        while let Some(first) = rest.first() {
            let (group, tail) = rest.split_at(rest.iter().take_while(|u| same_schema(first, u)).count());
            let keep = kept(first, only);
            self.u32(keep.len());
            for &c in &keep {
                self.str(&first.columns[c].name);
                self.u8(kind(&first.columns[c].data));
            }
            self.u32(group.len());
            group.iter().for_each(|u| self.unit(u, &keep));
            groups += 1;
            rest = tail;
        }
        self.patch_u32(count_at, groups);
    }
    /// One unit's values: its columns at `keep`, in its group's schema order.
    fn unit(&mut self, b: &RecordBatch, keep: &[usize]) {
        self.u32(b.rows);
        for c in keep.iter().map(|&c| &b.columns[c]) {
            match &c.data {
                ColumnData::F64(v) => v.iter().for_each(|x| self.u64(x.to_bits())),
                ColumnData::I64(v) => v.iter().for_each(|x| self.u64(*x as u64)),
                ColumnData::Dict { codes, values } => {
                    self.u32(values.len());
                    values.iter().for_each(|s| self.str(s));
                    codes.iter().for_each(|k| self.0.extend_from_slice(&k.to_le_bytes()));
                }
                ColumnData::Token(v) => v.iter().for_each(|t| self.0.extend_from_slice(t)),
            }
            match b.validity.get(&c.name) {
                None => self.u8(0),
                Some(valid) => {
                    self.u8(1);
                    valid.as_slice().iter().for_each(|&v| self.u8(v as u8));
                }
            }
        }
    }
}

/// The indices of `unit`'s columns that `only` names (every column without it), in order.
fn kept(unit: &RecordBatch, only: Option<&[String]>) -> Vec<usize> {
    let wanted = |c: &Column| only.is_none_or(|names| names.contains(&c.name));
    unit.columns.iter().enumerate().filter(|(_, c)| wanted(c)).map(|(i, _)| i).collect()
}

fn kind(data: &ColumnData) -> u8 {
    match data {
        ColumnData::F64(_) => F64,
        ColumnData::I64(_) => I64,
        ColumnData::Dict { .. } => DICT,
        ColumnData::Token(_) => TOKEN,
    }
}

/// The same column names and kinds in the same order: one group of a task frame.
fn same_schema(a: &RecordBatch, b: &RecordBatch) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| x.name == y.name && kind(&x.data) == kind(&y.data))
}

/// Bytes of one unit's values in a task frame (its columns at `keep`), to size the
/// frame's buffer once.
fn unit_len(b: &RecordBatch, keep: &[usize]) -> usize {
    let column = |c: &Column| {
        let values = match &c.data {
            ColumnData::F64(v) => 8 * v.len(),
            ColumnData::I64(v) => 8 * v.len(),
            ColumnData::Dict { codes, values } => {
                4 + values.iter().map(|s| 4 + s.len()).sum::<usize>() + 4 * codes.len()
            }
            ColumnData::Token(v) => TOKEN_LEN * v.len(),
        };
        values + 1 + b.validity.get(&c.name).map_or(0, Validity::len)
    };
    4 + keep.iter().map(|&c| column(&b.columns[c])).sum::<usize>()
}

impl Init {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::default();
        o.u8(INIT);
        o.u64(self.config.memory_limit_bytes);
        o.duration(self.config.time_limit);
        o.u64(self.config.max_module_bytes as u64);
        o.u64(self.config.max_wasm_stack as u64);
        o.u64(self.fuel_per_unit);
        o.u32(self.inputs.len());
        self.inputs.iter().for_each(|s| o.str(s));
        o.opt_str(self.label.as_deref());
        o.bytes(&self.wasm);
        o.0
    }

    pub fn decode(frame: &[u8]) -> Result<Init, CodecError> {
        let mut i = In::new(frame);
        i.tag("init", &[INIT])?;
        let config = SandboxConfig {
            memory_limit_bytes: i.u64("memory limit")?,
            time_limit: i.duration("time limit")?,
            max_module_bytes: i.usize("module limit")?,
            max_wasm_stack: i.usize("stack limit")?,
        };
        let fuel_per_unit = i.u64("fuel")?;
        let n = i.count("inputs", 4)?;
        let inputs = (0..n).map(|_| i.string("input name")).collect::<Result<_, _>>()?;
        let label = i.opt_string("label")?;
        let wasm = i.bytes("module")?.to_vec();
        i.end()?;
        Ok(Init { config, wasm, inputs, label, fuel_per_unit })
    }
}

/// A task's frame, encoded from borrowed units (the supervisor keeps its own). With
/// `only`, a unit carries just the columns it names: a worker's runner reads no others
/// (the module's inputs, and a training job's label), so the rest need not cross the pipe.
pub fn encode_task(
    gradient: bool,
    remaining: Duration,
    params: Option<&[f64]>,
    units: &[&RecordBatch],
    only: Option<&[String]>,
) -> Vec<u8> {
    // Sized once from the first unit (a task's units are mostly alike), not grown unit by unit.
    let per_unit = units.first().map_or(0, |u| unit_len(u, &kept(u, only)));
    let mut o = Out(Vec::with_capacity(64 + params.map_or(0, |p| 8 * p.len()) + per_unit * units.len()));
    o.u8(if gradient { GRADIENT } else { SCORE });
    o.duration(remaining);
    match params {
        None => o.u8(0),
        Some(p) => {
            o.u8(1);
            o.f64s(p);
        }
    }
    o.units(units, only);
    o.0
}

impl Task {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Task::Score { remaining, params, units } => {
                encode_task(false, *remaining, params.as_deref(), &units.iter().collect::<Vec<_>>(), None)
            }
            Task::Gradient { remaining, at, units } => {
                encode_task(true, *remaining, Some(at), &units.iter().collect::<Vec<_>>(), None)
            }
        }
    }

    /// The task with its own copy of every unit (a worker uses [`TaskFrame`] instead).
    pub fn decode(frame: &[u8]) -> Result<Task, CodecError> {
        let task = TaskFrame::parse(frame)?;
        let mut units = Vec::with_capacity(task.len());
        task.for_each_unit(|u| units.push(u.clone()))?;
        let TaskFrame { gradient, remaining, params, .. } = task;
        match (gradient, params) {
            (false, params) => Ok(Task::Score { remaining, params, units }),
            (true, Some(at)) => Ok(Task::Gradient { remaining, at, units }),
            (true, None) => Err(CodecError::Unit("a gradient task without parameters".into())),
        }
    }
}

/// A task frame, its layout checked whole: its header decoded, its units decoded one at a
/// time, each into the buffers the one before it used.
pub struct TaskFrame<'a> {
    /// Gradients (`train_unit`) rather than scores (`process_batch`).
    pub gradient: bool,
    pub remaining: Duration,
    /// Scores: the parameters given to `read_params` (none: the module's own). Gradients:
    /// the point to compute them at (always present).
    pub params: Option<Vec<f64>>,
    /// The groups, from their count to the frame's end.
    groups: &'a [u8],
    units: usize,
}

// By hand: the frame's bytes are units' values, which no debug output should carry.
impl std::fmt::Debug for TaskFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFrame")
            .field("gradient", &self.gradient)
            .field("remaining", &self.remaining)
            .field("params", &self.params.as_ref().map(Vec::len))
            .field("units", &self.units)
            .finish_non_exhaustive()
    }
}

impl<'a> TaskFrame<'a> {
    pub fn parse(frame: &'a [u8]) -> Result<TaskFrame<'a>, CodecError> {
        let mut i = In::new(frame);
        let tag = i.tag("task", &[SCORE, GRADIENT])?;
        let remaining = i.duration("remaining time")?;
        let params = match i.u8("params flag")? {
            0 => None,
            1 => Some(i.f64s("params")?),
            tag => return Err(CodecError::Tag { what: "params flag", tag }),
        };
        if tag == GRADIENT && params.is_none() {
            return Err(CodecError::Unit("a gradient task without parameters".into()));
        }
        let mut task = TaskFrame { gradient: tag == GRADIENT, remaining, params, groups: i.rest, units: 0 };
        // The layout of every unit checked now (each count, length, kind, text and validity
        // byte, and no byte to spare), so that a frame cut short or with bytes to spare is
        // refused before any of its units is used. Building the units waits for their use.
        task.units = task.walk(false, |_| {})?;
        Ok(task)
    }

    /// How many units the frame holds.
    pub fn len(&self) -> usize {
        self.units
    }

    pub fn is_empty(&self) -> bool {
        self.units == 0
    }

    /// Each unit in order, rebuilt through [`RecordBatch::with_validity`]; the batch lent
    /// to `f` is rebuilt for the next unit in the same buffers, so a unit costs no
    /// allocation (but a null's validity or a longer column). A unit that `with_validity`
    /// refuses ends the walk with an error: its frame is refused, and nothing of the units
    /// before it may be sent.
    pub fn for_each_unit(&self, f: impl FnMut(&RecordBatch)) -> Result<(), CodecError> {
        self.walk(true, f).map(|_| ())
    }

    /// Every unit's layout, and with `build` the unit itself for `f`; how many there are.
    fn walk(&self, build: bool, mut f: impl FnMut(&RecordBatch)) -> Result<usize, CodecError> {
        let mut i = In::new(self.groups);
        let mut total = 0usize;
        // A group is at least its two counts; a unit at least its rows and a flag a column.
        for _ in 0..i.count("groups", 8)? {
            let n = i.count("schema columns", 5)?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let name = i.str("column name")?.to_string();
                let data = match i.tag("column kind", &[F64, I64, DICT, TOKEN])? {
                    F64 => ColumnData::F64(Vec::new()),
                    I64 => ColumnData::I64(Vec::new()),
                    DICT => ColumnData::Dict { codes: Vec::new(), values: Vec::new() },
                    _ => ColumnData::Token(Vec::new()),
                };
                columns.push(Column { name, data });
            }
            let units = i.count("units", 4 + n)?;
            let mut batch = RecordBatch { rows: 0, columns, validity: BTreeMap::new() };
            for _ in 0..units {
                if let Some(unit) = i.unit(&mut batch, build)? {
                    f(unit);
                }
            }
            total += units;
        }
        i.end()?;
        Ok(total)
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out::default();
        match self {
            Reply::Ready => o.u8(READY),
            Reply::InitFailed(why) => {
                o.u8(INIT_FAILED);
                o.str(why);
            }
            Reply::Outcomes(outcomes) => {
                // Sized once (outcomes are mostly alike), not grown outcome by outcome.
                let values = outcomes.iter().find_map(|r| r.as_ref().ok()).map_or(0, Vec::len);
                o.0.reserve(5 + outcomes.len() * (5 + 8 * values));
                o.u8(OUTCOMES);
                o.u32(outcomes.len());
                for r in outcomes {
                    match r {
                        Ok(values) => {
                            o.u8(1);
                            o.f64s(values);
                        }
                        Err(kind) => {
                            o.u8(0);
                            o.str(kind);
                        }
                    }
                }
            }
        }
        o.0
    }

    pub fn decode(frame: &[u8]) -> Result<Reply, CodecError> {
        let mut i = In::new(frame);
        let reply = match i.tag("reply", &[READY, INIT_FAILED, OUTCOMES])? {
            READY => Reply::Ready,
            INIT_FAILED => Reply::InitFailed(i.string("reason")?),
            _ => {
                let n = i.count("outcomes", 5)?;
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(match i.u8("outcome flag")? {
                        1 => Ok(i.f64s("values")?),
                        0 => Err(i.string("fault kind")?),
                        tag => return Err(CodecError::Tag { what: "outcome flag", tag }),
                    });
                }
                Reply::Outcomes(out)
            }
        };
        i.end()?;
        Ok(reply)
    }
}

// --- decoding ---------------------------------------------------------------------------

struct In<'a> {
    rest: &'a [u8],
}

impl<'a> In<'a> {
    fn new(frame: &'a [u8]) -> Self {
        In { rest: frame }
    }
    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.rest.len() {
            return Err(CodecError::Truncated { what, needed: n, left: self.rest.len() });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(what, 1)?[0])
    }
    fn tag(&mut self, what: &'static str, known: &[u8]) -> Result<u8, CodecError> {
        let tag = self.u8(what)?;
        known.contains(&tag).then_some(tag).ok_or(CodecError::Tag { what, tag })
    }
    fn u32(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let b = self.take(what, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let b = self.take(what, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn usize(&mut self, what: &'static str) -> Result<usize, CodecError> {
        usize::try_from(self.u64(what)?).map_err(|_| CodecError::Unit(format!("{what} does not fit this machine")))
    }
    fn duration(&mut self, what: &'static str) -> Result<Duration, CodecError> {
        Ok(Duration::from_nanos(self.u64(what)?))
    }
    /// A count of items each at least `min_bytes` long: refused before allocating if the
    /// frame cannot hold that many.
    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<usize, CodecError> {
        let n = self.u32(what)?;
        let needed = n.saturating_mul(min_bytes);
        if needed > self.rest.len() {
            return Err(CodecError::Truncated { what, needed, left: self.rest.len() });
        }
        Ok(n)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let n = self.u32(what)?;
        self.take(what, n)
    }
    fn str(&mut self, what: &'static str) -> Result<&'a str, CodecError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| CodecError::Utf8)
    }
    fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        self.str(what).map(str::to_string)
    }
    fn opt_string(&mut self, what: &'static str) -> Result<Option<String>, CodecError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => self.string(what).map(Some),
            tag => Err(CodecError::Tag { what, tag }),
        }
    }
    fn f64s(&mut self, what: &'static str) -> Result<Vec<f64>, CodecError> {
        let n = self.count(what, 8)?;
        // One slice for all of them (its length checked once), not one read per value.
        let bytes = self.array(what, n, 8)?;
        Ok(bytes.chunks_exact(8).map(|b| f64::from_bits(u64::from_le_bytes(b.try_into().expect("8 bytes")))).collect())
    }
    /// `rows` fixed-size values.
    fn array(&mut self, what: &'static str, rows: usize, size: usize) -> Result<&'a [u8], CodecError> {
        let n =
            rows.checked_mul(size).ok_or(CodecError::Truncated { what, needed: usize::MAX, left: self.rest.len() })?;
        self.take(what, n)
    }
    /// The next unit: its layout checked against `batch`'s columns (its group's schema), and
    /// with `build` its values decoded into them and the unit rebuilt through
    /// [`RecordBatch::with_validity`].
    fn unit<'b>(&mut self, batch: &'b mut RecordBatch, build: bool) -> Result<Option<&'b RecordBatch>, CodecError> {
        let rows = self.u32("unit rows")?;
        let mut columns = std::mem::take(&mut batch.columns);
        let mut validity = std::mem::take(&mut batch.validity);
        // The last unit's nulls, if it had any (clearing an empty map still walks it).
        if !validity.is_empty() {
            validity.clear();
        }
        for c in &mut columns {
            // Each array is taken (its length checked against the frame) before it is copied.
            match &mut c.data {
                ColumnData::F64(v) => {
                    let bytes = self.array("f64 column", rows, 8)?;
                    v.clear();
                    v.extend(
                        bytes
                            .chunks_exact(8)
                            .map(|b| f64::from_bits(u64::from_le_bytes(b.try_into().expect("8 bytes")))),
                    );
                }
                ColumnData::I64(v) => {
                    let bytes = self.array("i64 column", rows, 8)?;
                    if build {
                        v.clear();
                        v.extend(bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))));
                    }
                }
                ColumnData::Dict { codes, values } => {
                    let k = self.count("dictionary", 4)?;
                    if build {
                        values.truncate(k);
                    }
                    for j in 0..k {
                        let s = self.str("dictionary value")?;
                        match values.get_mut(j) {
                            _ if !build => {}
                            Some(v) => {
                                v.clear();
                                v.push_str(s);
                            }
                            None => values.push(s.to_string()),
                        }
                    }
                    let bytes = self.array("dictionary codes", rows, 4)?;
                    if build {
                        codes.clear();
                        codes.extend(bytes.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))));
                    }
                }
                ColumnData::Token(v) => {
                    let bytes = self.array("token column", rows, TOKEN_LEN)?;
                    if build {
                        v.clear();
                        v.extend(
                            bytes.chunks_exact(TOKEN_LEN).map(|b| <[u8; TOKEN_LEN]>::try_from(b).expect("TOKEN_LEN")),
                        );
                    }
                }
            }
            match self.u8("validity flag")? {
                0 => {}
                1 => {
                    let bits = self.array("validity", rows, 1)?;
                    if bits.iter().any(|&b| b > 1) {
                        return Err(CodecError::Unit(format!("column {}: validity byte is not 0 or 1", c.name)));
                    }
                    if build {
                        validity.insert(c.name.clone(), Validity::from_bools(bits.iter().map(|&b| b == 1).collect()));
                    }
                }
                tag => return Err(CodecError::Tag { what: "validity flag", tag }),
            }
        }
        if !build {
            // Only the layout was checked: the columns go back as they were (the validity
            // taken is empty: only a built unit has one).
            batch.columns = columns;
            return Ok(None);
        }
        *batch = RecordBatch::with_validity(columns, validity).map_err(|e| CodecError::Unit(e.to_string()))?;
        if batch.columns.is_empty() {
            // No column carries the row count of a unit without columns; the frame does.
            batch.rows = rows;
        } else if batch.rows != rows {
            return Err(CodecError::Unit(format!("{} rows where the frame says {rows}", batch.rows)));
        }
        Ok(Some(batch))
    }
    fn end(&self) -> Result<(), CodecError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units with every column kind, nulls, a NaN with a payload, -0.0, an empty dictionary
    /// and a unit without columns.
    fn units() -> Vec<RecordBatch> {
        let col = |name: &str, data| Column { name: name.into(), data };
        let nan = f64::from_bits(0x7ff8_dead_beef_0001);
        let full = RecordBatch::with_validity(
            vec![
                col("f", ColumnData::F64(vec![nan, -0.0, 0.0])),
                col("i", ColumnData::I64(vec![i64::MIN, 0, i64::MAX])),
                col("d", ColumnData::Dict { codes: vec![1, 0, 0], values: vec!["a".into(), "ünï".into()] }),
                col("t", ColumnData::Token(vec![[7; TOKEN_LEN], [0; TOKEN_LEN], [255; TOKEN_LEN]])),
            ],
            BTreeMap::from([("f".to_string(), Validity::from_bools(vec![true, true, false]))]),
        )
        .expect("batch");
        let empty_dict =
            RecordBatch::new(vec![col("d", ColumnData::Dict { codes: vec![], values: vec![] })]).expect("batch");
        vec![full, empty_dict, RecordBatch { rows: 0, columns: vec![], validity: BTreeMap::new() }]
    }

    fn same_bits(a: &[RecordBatch], b: &[RecordBatch]) -> bool {
        // PartialEq on f64 says NaN != NaN; the encoding must keep the bits.
        format!("{a:?}") == format!("{b:?}")
            && a.iter().zip(b).all(|(x, y)| {
                x.columns.iter().zip(&y.columns).all(|(c, d)| match (&c.data, &d.data) {
                    (ColumnData::F64(p), ColumnData::F64(q)) => {
                        p.iter().map(|v| v.to_bits()).eq(q.iter().map(|v| v.to_bits()))
                    }
                    _ => c == d,
                })
            })
    }

    #[test]
    fn tasks_init_and_replies_round_trip_bit_for_bit() {
        let units = units();
        let remaining = Duration::from_nanos(123_456_789);
        let score = Task::Score { remaining, params: Some(vec![f64::NAN, -0.0, 1.5]), units: units.clone() };
        let Task::Score { params, units: back, .. } = Task::decode(&score.encode()).expect("decodes") else {
            panic!("not a score task")
        };
        assert!(same_bits(&units, &back));
        assert_eq!(
            params.map(|p| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
            Some(vec![f64::NAN.to_bits(), (-0.0f64).to_bits(), 1.5f64.to_bits()])
        );
        let grad = Task::Gradient { remaining, at: vec![0.5], units: vec![] };
        assert_eq!(Task::decode(&grad.encode()).expect("decodes"), grad);
        let grad = Task::Gradient { remaining, at: vec![-0.0, 2.0], units: units.clone() };
        let Task::Gradient { at, units: back, .. } = Task::decode(&grad.encode()).expect("decodes") else {
            panic!("not a gradient task")
        };
        assert!(same_bits(&units, &back));
        assert_eq!(at.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [(-0.0f64).to_bits(), 2.0f64.to_bits()]);
        // A gradient task must say where.
        let mut no_point = header(0);
        no_point.0[0] = GRADIENT;
        assert!(matches!(Task::decode(&no_point.0), Err(CodecError::Unit(_))));
        let init = Init {
            config: SandboxConfig::default(),
            wasm: b"\0asm....".to_vec(),
            inputs: vec!["a".into(), "b".into()],
            label: Some("y".into()),
            fuel_per_unit: 40_000,
        };
        assert_eq!(Init::decode(&init.encode()).expect("decodes"), init);
        for reply in [
            Reply::Ready,
            Reply::InitFailed("module: no".into()),
            Reply::Outcomes(vec![Ok(vec![0.25, 1.0]), Err("Trap".into()), Ok(vec![])]),
        ] {
            assert_eq!(Reply::decode(&reply.encode()).expect("decodes"), reply);
        }
    }

    #[test]
    fn every_truncation_and_every_extra_byte_is_refused() {
        let task = Task::Score { remaining: Duration::from_secs(1), params: None, units: units() }.encode();
        for cut in 0..task.len() {
            assert!(Task::decode(&task[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = task.clone();
        long.push(0);
        assert_eq!(Task::decode(&long), Err(CodecError::Trailing(1)));
        let reply = Reply::Outcomes(vec![Ok(vec![1.0]), Err("Trap".into())]).encode();
        for cut in 0..reply.len() {
            assert!(Reply::decode(&reply[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// A score task's header without parameters, then `groups`.
    fn header(groups: u32) -> Out {
        let mut o = Out::default();
        o.u8(SCORE);
        o.duration(Duration::from_secs(1));
        o.u8(0);
        o.u32(groups as usize);
        o
    }

    #[test]
    fn counts_beyond_the_frame_are_refused_before_allocating() {
        let truncated = |o: &Out| match Task::decode(&o.0) {
            Err(CodecError::Truncated { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        // 2^32 - 1 groups, schema columns, units, rows of f64 and dictionary values, each
        // in a frame of a few bytes.
        assert_eq!(truncated(&header(u32::MAX)), "groups");
        let mut o = header(1);
        o.u32(u32::MAX as usize);
        o.u32(0);
        assert_eq!(truncated(&o), "schema columns");
        let mut o = header(1);
        o.u32(0);
        o.u32(u32::MAX as usize);
        assert_eq!(truncated(&o), "units");
        let column = |kind: u8| {
            let mut o = header(1);
            o.u32(1);
            o.str("x");
            o.u8(kind);
            o.u32(1);
            o.u32(u32::MAX as usize);
            o
        };
        let padded = |mut o: Out| {
            o.u8(0);
            o
        };
        assert_eq!(truncated(&padded(column(F64))), "f64 column");
        assert_eq!(truncated(&padded(column(TOKEN))), "token column");
        assert_eq!(truncated(&padded(column(I64))), "i64 column");
        let mut dict = column(DICT);
        dict.u32(u32::MAX as usize);
        assert_eq!(truncated(&dict), "dictionary");
        let mut codes = column(DICT);
        codes.u32(0);
        assert_eq!(truncated(&codes), "dictionary codes");
        // 2^32 - 1 parameters; 2^32 - 1 outcomes in a reply.
        let mut o = Out::default();
        o.u8(SCORE);
        o.duration(Duration::from_secs(1));
        o.u8(1);
        o.u32(u32::MAX as usize);
        assert_eq!(truncated(&o), "params");
        let mut o = Out::default();
        o.u8(OUTCOMES);
        o.u32(u32::MAX as usize);
        assert!(matches!(Reply::decode(&o.0), Err(CodecError::Truncated { what: "outcomes", .. })));
        // A frame length over the limit is refused before its body is read.
        let mut stream: &[u8] = &((MAX_FRAME as u32) + 1).to_le_bytes();
        assert_eq!(read_frame(&mut stream), Err(CodecError::TooLarge(MAX_FRAME + 1)));
    }

    #[test]
    fn a_unit_that_breaks_the_batch_rules_refuses_its_frame() {
        // A good unit, then a null f64 row holding a value: its layout is sound, but
        // RecordBatch::with_validity refuses the unit, and with it the whole frame.
        let mut o = header(1);
        o.u32(1);
        o.str("f");
        o.u8(F64);
        o.u32(2);
        o.u32(1);
        o.u64(2.0f64.to_bits());
        o.u8(0);
        o.u32(1);
        o.u64(1.0f64.to_bits());
        o.u8(1);
        o.u8(0);
        let frame = TaskFrame::parse(&o.0).expect("the layout is sound");
        let mut seen = 0;
        assert!(matches!(frame.for_each_unit(|_| seen += 1), Err(CodecError::Unit(_))));
        assert_eq!(seen, 1);
        assert!(matches!(Task::decode(&o.0), Err(CodecError::Unit(_))), "{:?}", Task::decode(&o.0));
        // A validity byte that is neither 0 nor 1: refused with the layout, before any unit.
        let last = o.0.len() - 1;
        o.0[last] = 2;
        assert!(matches!(TaskFrame::parse(&o.0), Err(CodecError::Unit(_))));
        // Two columns of one name.
        let mut o = header(1);
        o.u32(2);
        for _ in 0..2 {
            o.str("x");
            o.u8(I64);
        }
        o.u32(1);
        o.u32(0);
        o.u8(0);
        o.u8(0);
        assert!(matches!(Task::decode(&o.0), Err(CodecError::Unit(_))));
    }

    #[test]
    fn units_of_different_schemas_and_buffers_reused_between_units_round_trip() {
        let col = |name: &str, data| Column { name: name.into(), data };
        let dict = |codes: Vec<u32>, values: &[&str]| ColumnData::Dict {
            codes,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let unit = |columns, nulls: &[(&str, Vec<bool>)]| {
            let validity = nulls.iter().map(|(n, v)| (n.to_string(), Validity::from_bools(v.clone()))).collect();
            RecordBatch::with_validity(columns, validity).expect("batch")
        };
        // One schema with nulls, then without (the decoder's validity is cleared), a
        // dictionary that grows, shrinks and empties, a longer then shorter column, then
        // another schema and the first again: four groups.
        let units = vec![
            unit(
                vec![col("a", ColumnData::F64(vec![0.0, 2.5])), col("d", dict(vec![0, 1], &["x", "yy"]))],
                &[("a", vec![false, true])],
            ),
            unit(
                vec![col("a", ColumnData::F64(vec![1.0, 2.0, 3.0])), col("d", dict(vec![2, 0, 1], &["p", "q", "rrr"]))],
                &[],
            ),
            unit(vec![col("a", ColumnData::F64(vec![-0.0])), col("d", dict(vec![0], &["z"]))], &[]),
            unit(vec![col("a", ColumnData::F64(vec![])), col("d", dict(vec![], &[]))], &[]),
            unit(vec![col("a", ColumnData::I64(vec![7])), col("d", dict(vec![0], &["x"]))], &[]),
            unit(
                vec![col("a", ColumnData::F64(vec![0.0])), col("d", dict(vec![0], &["x"]))],
                &[("a", vec![false]), ("d", vec![false])],
            ),
            RecordBatch { rows: 0, columns: vec![], validity: BTreeMap::new() },
        ];
        let task = Task::Score { remaining: Duration::from_secs(1), params: None, units: units.clone() };
        let frame = task.encode();
        let Task::Score { units: back, .. } = Task::decode(&frame).expect("decodes") else {
            panic!("not a score task")
        };
        assert!(same_bits(&units, &back));
        // Groups: [0, 3], [4], [5], [6].
        assert_eq!(In::new(&frame[10..]).u32("groups"), Ok(4));
        assert_eq!(TaskFrame::parse(&frame).expect("parses").len(), units.len());
    }

    #[test]
    fn only_the_columns_a_worker_reads_are_sent() {
        let col = |name: &str, data| Column { name: name.into(), data };
        let unit = RecordBatch::with_validity(
            vec![
                col("t", ColumnData::Token(vec![[1; TOKEN_LEN], [2; TOKEN_LEN]])),
                col("a", ColumnData::F64(vec![0.0, 1.5])),
                col("z", ColumnData::I64(vec![3, 4])),
                col("b", ColumnData::I64(vec![5, 0])),
            ],
            BTreeMap::from([("a".to_string(), Validity::from_bools(vec![false, true]))]),
        )
        .expect("batch");
        let only = ["b".to_string(), "a".to_string(), "missing".to_string()];
        let frame = encode_task(false, Duration::from_secs(1), None, &[&unit], Some(&only));
        let Task::Score { units: back, .. } = Task::decode(&frame).expect("decodes") else {
            panic!("not a score task")
        };
        // The named columns, in the unit's order, with their validity; the rows kept.
        let expected = RecordBatch::with_validity(
            vec![unit.columns[1].clone(), unit.columns[3].clone()],
            BTreeMap::from([("a".to_string(), Validity::from_bools(vec![false, true]))]),
        )
        .expect("batch");
        assert_eq!(back, [expected]);
        // A unit with none of them keeps its row count.
        let frame = encode_task(false, Duration::from_secs(1), None, &[&unit], Some(&["y".to_string()]));
        let Task::Score { units: back, .. } = Task::decode(&frame).expect("decodes") else {
            panic!("not a score task")
        };
        assert_eq!((back[0].rows, back[0].columns.len()), (2, 0));
    }

    #[test]
    fn a_frame_written_a_few_bytes_at_a_time_arrives_whole() {
        // A writer that takes at most 3 bytes a call (a pipe short of room).
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = Trickle(vec![]);
        write_frame(&mut w, b"abcdefg").expect("write");
        write_frame(&mut w, b"").expect("write");
        let mut r: &[u8] = &w.0;
        assert_eq!(read_frame(&mut r), Ok(Some(b"abcdefg".to_vec())));
        assert_eq!(read_frame(&mut r), Ok(Some(vec![])));
        assert_eq!(read_frame(&mut r), Ok(None));
    }

    #[test]
    fn a_stream_ends_cleanly_only_between_frames() {
        let mut buf = vec![];
        write_frame(&mut buf, b"abc").expect("write");
        let mut r: &[u8] = &buf;
        assert_eq!(read_frame(&mut r), Ok(Some(b"abc".to_vec())));
        assert_eq!(read_frame(&mut r), Ok(None));
        let mut half: &[u8] = &buf[..2];
        assert!(matches!(read_frame(&mut half), Err(CodecError::Truncated { .. })));
        let mut body: &[u8] = &buf[..5];
        assert!(matches!(read_frame(&mut body), Err(CodecError::Io(_))));
    }
}
