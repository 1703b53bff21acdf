//! cleanroom-sandbox: runs a provider's model, compiled to WebAssembly, over decrypted
//! record batches, with nothing but the cleanroom ABI (`docs/wasm-abi.md`) to talk to.
//!
//! The shape follows wasmtime's embedding API:
//!
//! - a [`SandboxConfig`] (the limits) is fixed once when the [`Sandbox`] is built;
//! - the [`Sandbox`] owns one wasmtime `Engine` (pooling allocator, copy-on-write memory
//!   images, fuel), the epoch ticker thread and the cache of compiled modules (keyed by
//!   SHA-256 of the module bytes);
//! - [`Sandbox::admit`] checks a module statically and compiles it, before anything runs;
//! - [`Sandbox::unit_runner`] gives the enclave's path: [`UnitRunner::score`] runs each
//!   privacy unit in a fresh `Store` and instance with that unit's fuel, so no state
//!   crosses units, and an error makes only that unit absent;
//! - [`Sandbox::start_job`] instantiates one `Store` for a whole job, fed batch after batch
//!   ([`Job::process_batch`]; any error ends it): the provider's local runs and the
//!   baseline of the isolation benchmark.
//!
//! Cranelift does not canonicalize NaNs: a module may see the processor's NaN bits, which
//! carry nothing it did not have and never leave (`emit` canonicalizes, a non-finite
//! output makes the unit absent). Scores are the same bits on every run on one machine;
//! docs/wasm-abi.md ("NaN bits") has the argument.
//!
//! The thread calling into the guest runs it on its own stack: it needs at least
//! `max_wasm_stack` plus about 256 KiB of stack.

mod abi;
mod admission;
mod error;
mod host;
mod train;

pub use abi::{
    validate_output_name, AbiManifest, ColumnKind, ABI_SECTION, ABI_VERSION, DEFAULT_OUTPUT_NAME, EXPORT_MEMORY,
    EXPORT_PROCESS_BATCH, IMPORT_MODULE, MAX_OUTPUTS_PER_ROW, MAX_OUTPUT_NAME_LEN, READ_VALIDITY,
};
pub use admission::{read_abi, read_train, MAX_TABLES};
pub use error::{AdmissionError, OutputNameError, RunError, SandboxError};
pub use train::{
    Tensor, TrainManifest, EXPORT_INITIAL_PARAMS, EXPORT_TRAIN_UNIT, MAX_PARAMS, READ_PARAMS, TRAIN_SECTION,
};

use host::{Emission, HostState, Limiter, Staged};
use protocol::table::RecordBatch;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, InstancePre, Linker, Memory, Store, TypedFunc};

/// Interval of the epoch ticker; a job overruns its time limit by at most about this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Most elements of a module's table.
pub const MAX_TABLE_ELEMENTS: u64 = 1 << 16;
/// Most rows in one batch.
pub const MAX_BATCH_ROWS: usize = 1 << 24;
/// Compiled modules kept; the oldest is dropped beyond this.
pub const MODULE_CACHE_CAPACITY: usize = 32;
/// Longest accepted `time_limit`.
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Largest accepted `max_wasm_stack`.
pub const MAX_WASM_STACK_LIMIT: usize = 16 << 20;

/// The limits of every job run by one [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Most bytes of linear memory a job's instance may have.
    pub memory_limit_bytes: u64,
    /// Wall-clock limit of a whole job, from [`Sandbox::start_job`] on, instantiation included.
    pub time_limit: Duration,
    /// Largest module accepted by [`Sandbox::admit`].
    pub max_module_bytes: usize,
    /// Most bytes of native stack the guest may use.
    pub max_wasm_stack: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            memory_limit_bytes: 256 << 20,
            time_limit: Duration::from_secs(60),
            max_module_bytes: 16 << 20,
            max_wasm_stack: 512 << 10,
        }
    }
}

impl SandboxConfig {
    /// Build from the owner's policy, with the default stack. The wall-clock limit is the
    /// longest deadline the policy allows.
    pub fn from_policy(policy: &protocol::policy::Policy) -> Self {
        let limits = &policy.sandbox;
        SandboxConfig {
            memory_limit_bytes: limits.memory_limit_bytes,
            time_limit: Duration::from_millis(policy.timing.max_deadline_ms),
            max_module_bytes: usize::try_from(limits.max_module_bytes).unwrap_or(usize::MAX),
            ..SandboxConfig::default()
        }
    }

    fn validate(&self) -> Result<(), SandboxError> {
        let bad = |s: &str| Err(SandboxError::Config(s.to_string()));
        if self.memory_limit_bytes == 0 || self.memory_limit_bytes > 4 << 30 {
            return bad("memory_limit_bytes must be between 1 byte and 4 GiB");
        }
        if self.time_limit.is_zero() || self.time_limit > MAX_TIME_LIMIT {
            return bad("time_limit must be positive and at most one day");
        }
        if self.max_module_bytes == 0 {
            return bad("max_module_bytes must be positive");
        }
        if self.max_wasm_stack < 64 << 10 || self.max_wasm_stack > MAX_WASM_STACK_LIMIT {
            return bad("max_wasm_stack must be between 64 KiB and 16 MiB");
        }
        Ok(())
    }
}

/// A module that passed admission and is compiled, ready to start jobs.
#[derive(Clone)]
pub struct AdmittedModule {
    hash: [u8; 32],
    manifest: AbiManifest,
    training: Option<TrainManifest>,
    /// Whether the module imports `read_validity` (only then is validity staged).
    reads_validity: bool,
    size: usize,
    compile_time: Duration,
    pre: InstancePre<HostState>,
}

impl AdmittedModule {
    /// SHA-256 of the module bytes: the value an owner's policy allows.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
    pub fn digest(&self) -> protocol::Digest {
        protocol::Digest(self.hash)
    }
    pub fn abi_version(&self) -> u32 {
        self.manifest.abi_version
    }
    /// Values the module emits per input row, `m`, from 1 to [`MAX_OUTPUTS_PER_ROW`]. Every
    /// batch of `rows` rows yields `rows * m` values, row-major: row 0's `m` values (in the
    /// order of [`AdmittedModule::output_names`]), then row 1's, and so on.
    pub fn outputs_per_row(&self) -> u32 {
        self.manifest.outputs_per_row
    }
    /// The names of the module's outputs, in emission order: `outputs_per_row` of them,
    /// `["score"]` for a module whose section names none.
    pub fn output_names(&self) -> &[String] {
        &self.manifest.output_names
    }
    /// The module's trainable parameters, if it can be fine-tuned.
    pub fn training(&self) -> Option<&TrainManifest> {
        self.training.as_ref()
    }
    /// The input column kinds the module declared, in order.
    pub fn inputs(&self) -> &[ColumnKind] {
        &self.manifest.inputs
    }
    pub fn size_bytes(&self) -> usize {
        self.size
    }
    /// The module's imports as `namespace.name` (admission allowed only the cleanroom ABI).
    pub fn imports(&self) -> Vec<String> {
        self.pre.module().imports().map(|i| format!("{}.{}", i.module(), i.name())).collect()
    }
    /// The names of the module's exports.
    pub fn exports(&self) -> Vec<String> {
        self.pre.module().exports().map(|e| e.name().to_string()).collect()
    }
    /// Time the first admission of these bytes spent compiling them (cache hits share it).
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

impl fmt::Debug for AdmittedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmittedModule")
            .field("hash", &protocol::Digest(self.hash).to_hex())
            .field("manifest", &self.manifest)
            .field("training", &self.training)
            .field("size", &self.size)
            .field("compile_time", &self.compile_time)
            .finish()
    }
}

/// Ticks the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, SandboxError> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cleanroom-epoch".into())
            .stack_size(64 << 10)
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Ticker(e.to_string()))?;
        Ok(Ticker { stop: Some(tx), thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct Cache {
    modules: HashMap<[u8; 32], AdmittedModule>,
    order: VecDeque<[u8; 32]>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    config: SandboxConfig,
    cache: Mutex<Cache>,
    // Dropped last: jobs hold an `Arc<Inner>`, so the ticker outlives every job.
    _ticker: Ticker,
}

/// One wasmtime engine with fixed limits, shared by all jobs. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// Instances the pooling allocator holds at once (live units and batch jobs together).
pub const POOL_INSTANCES: u32 = 16;
/// Bytes of a table reset in place (not discarded) after each instance.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

fn engine_config(cfg: &SandboxConfig) -> Config {
    let mut c = Config::new();
    // Per-unit isolation instantiates the module once per privacy unit. The pooling
    // allocator with copy-on-write memory images makes that a slot reuse and a page reset,
    // not an mmap and a copy of the data segments.
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_core_instances(POOL_INSTANCES)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * admission::MAX_TABLES as u32)
        .max_memories_per_module(1)
        .max_tables_per_module(admission::MAX_TABLES as u32)
        .table_elements(MAX_TABLE_ELEMENTS as usize)
        .max_memory_size(usize::try_from(cfg.memory_limit_bytes).unwrap_or(usize::MAX))
        // Keep a unit's whole memory resident and reset it by memset: no page faults, so
        // what a unit costs barely depends on which pages it touches (fuel does not count
        // memory traffic), and its worst case is the memset of its memory limit.
        .linear_memory_keep_resident(usize::try_from(cfg.memory_limit_bytes).unwrap_or(usize::MAX))
        // With Linux's PAGEMAP_SCAN (6.7+; needs /proc), reset only the pages the unit
        // wrote, back to the image, instead of the whole memory: same worst case, a
        // credit-lr unit ~3x cheaper (BENCHMARKS.md, "Per-unit isolation"). Without it,
        // the memset above. Tables likewise (their first 64 KiB: 8,192 elements).
        .pagemap_scan(wasmtime::Enabled::Auto)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .epoch_interruption(true)
        // Fuel bounds each unit deterministically: a unit's fate (scored or absent) does
        // not depend on the machine's speed or load.
        .consume_fuel(true)
        .max_wasm_stack(cfg.max_wasm_stack)
        // Off: NaN bits are the one thing Wasm leaves to the processor, and canonicalizing
        // every float result costs about half of credit-lr's throughput. They carry nothing
        // new into the module (the unit's own values, the module's constants, or the
        // architecture's public default NaN) and nothing out: `emit` canonicalizes every
        // NaN and a non-finite output makes the unit absent. A module that branches on
        // them computes a deterministic function of the unit's rows on one machine, which
        // DP covers; between x86-64 (negative default NaN) and AArch64 (positive) its
        // scores may differ, a matter of reproducibility only. The argument in full:
        // docs/wasm-abi.md, "NaN bits"; what stays guaranteed: tests/nan_bits.rs.
        .cranelift_nan_canonicalization(false)
        // Deterministic and single-threaded: no threads, no relaxed SIMD.
        .wasm_shared_everything_threads(false)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        // One 32-bit memory; nothing the ABI does not need.
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .wasm_tail_call(false)
        .wasm_stack_switching(false)
        .wasm_gc(false);
    c
}

impl Sandbox {
    /// Build the engine, the ABI linker and the epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        config.validate()?;
        let engine = Engine::new(&engine_config(&config)).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let linker = host::linker(&engine).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(Sandbox {
            inner: Arc::new(Inner { engine, linker, config, cache: Mutex::new(Cache::default()), _ticker: ticker }),
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Check and compile a module. Nothing is instantiated. A module admitted before
    /// (same SHA-256) comes from the cache without being compiled again.
    pub fn admit(&self, wasm: &[u8]) -> Result<AdmittedModule, AdmissionError> {
        let cfg = &self.inner.config;
        if wasm.len() > cfg.max_module_bytes {
            return Err(AdmissionError::TooLarge { size: wasm.len(), limit: cfg.max_module_bytes });
        }
        let hash = protocol::Digest::of(wasm).0;
        if let Some(m) = self.cache().modules.get(&hash) {
            return Ok(m.clone());
        }
        let limits =
            admission::StaticLimits { memory_bytes: cfg.memory_limit_bytes, table_elements: MAX_TABLE_ELEMENTS };
        let (manifest, training) = admission::inspect(wasm, &limits)?;
        let started = Instant::now();
        let module = wasmtime::Module::from_binary(&self.inner.engine, wasm)
            .map_err(|e| AdmissionError::Invalid(format!("{e:#}")))?;
        // Defence in depth: wasmtime's own view must agree with the static pass.
        for import in module.imports() {
            if import.module() != abi::IMPORT_MODULE {
                return Err(AdmissionError::ForbiddenImport {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                });
            }
        }
        let pre = self.inner.linker.instantiate_pre(&module).map_err(|e| AdmissionError::Invalid(format!("{e:#}")))?;
        let reads_validity = module.imports().any(|i| i.name() == abi::READ_VALIDITY);
        let admitted = AdmittedModule {
            hash,
            manifest,
            training,
            reads_validity,
            size: wasm.len(),
            compile_time: started.elapsed(),
            pre,
        };
        let mut cache = self.cache();
        if !cache.modules.contains_key(&hash) {
            if cache.order.len() >= MODULE_CACHE_CAPACITY {
                if let Some(old) = cache.order.pop_front() {
                    cache.modules.remove(&old);
                }
            }
            cache.order.push_back(hash);
            cache.modules.insert(hash, admitted.clone());
        }
        Ok(admitted)
    }

    /// Number of compiled modules in the cache.
    pub fn cached_modules(&self) -> usize {
        self.cache().modules.len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break halfway; recover from poison.
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Instantiate `module` in a fresh store for one job reading `input_names` (in the
    /// module's declared input order). The job's time limit starts now and covers
    /// instantiation (a start function) and every batch.
    pub fn start_job(&self, module: &AdmittedModule, input_names: &[String]) -> Result<Job, RunError> {
        let started = Instant::now();
        let cfg = &self.inner.config;
        if !Engine::same(module.pre.module().engine(), &self.inner.engine) {
            return Err(RunError::ForeignModule);
        }
        if input_names.len() != module.manifest.inputs.len() {
            return Err(RunError::InputCount { declared: module.manifest.inputs.len(), given: input_names.len() });
        }
        let deadline = started + cfg.time_limit;
        let state = HostState {
            limiter: Limiter::new(cfg.memory_limit_bytes, MAX_TABLE_ELEMENTS),
            columns: module.manifest.inputs.iter().map(|&kind| Staged::new(kind, module.reads_validity)).collect(),
            rows: 0,
            emission: Emission::PerRow(module.manifest.outputs_per_row as usize),
            params: None,
            in_batch: false,
            out: Vec::new(),
            memory: None,
            deadline,
            time_limit: cfg.time_limit,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        // A batch job is limited by wall-clock time (epochs), not fuel.
        store.set_fuel(u64::MAX).map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
        // Wake at the first tick that may be past the deadline, then check the clock.
        let ticks = (cfg.time_limit.as_micros() / EPOCH_TICK.as_micros()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        abort_at_deadline(&mut store);
        let instance = module.pre.instantiate(&mut store).map_err(|e| host::classify(&store, e, true))?;
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or_else(|| RunError::Instantiate("no exported memory".into()))?;
        let process = instance
            .get_typed_func::<i32, i32>(&mut store, abi::EXPORT_PROCESS_BATCH)
            .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
        store.data_mut().memory = Some(memory);
        Ok(Job {
            _sandbox: self.inner.clone(),
            store,
            process,
            memory,
            input_names: input_names.to_vec(),
            ended: false,
            batches: 0,
            rows: 0,
            started,
        })
    }
}

impl Sandbox {
    /// A runner that scores each privacy unit in a fresh instance of `module` (see
    /// [`UnitRunner`]), with `fuel_per_unit` fuel per unit and no unit started after
    /// `deadline`.
    pub fn unit_runner(
        &self,
        module: &AdmittedModule,
        input_names: &[String],
        fuel_per_unit: u64,
        deadline: Instant,
    ) -> Result<UnitRunner, RunError> {
        if !Engine::same(module.pre.module().engine(), &self.inner.engine) {
            return Err(RunError::ForeignModule);
        }
        if input_names.len() != module.manifest.inputs.len() {
            return Err(RunError::InputCount { declared: module.manifest.inputs.len(), given: input_names.len() });
        }
        Ok(UnitRunner {
            sandbox: self.inner.clone(),
            pre: module.pre.clone(),
            kinds: module.manifest.inputs.clone(),
            outputs_per_row: module.manifest.outputs_per_row as usize,
            input_names: input_names.to_vec(),
            reads_validity: module.reads_validity,
            fuel_per_unit,
            deadline,
            spare: None,
            params: None,
            n_params: module.training.as_ref().map(|t| t.n_params as usize),
        })
    }

    /// A runner that computes each privacy unit's gradient in a fresh instance of a
    /// trainable `module` ([`UnitRunner::gradient`]): it stages the module's inputs and then
    /// `label`, the column the training section's label kind reads.
    pub fn train_runner(
        &self,
        module: &AdmittedModule,
        input_names: &[String],
        label: &str,
        fuel_per_unit: u64,
        deadline: Instant,
    ) -> Result<UnitRunner, RunError> {
        let training = module.training.as_ref().ok_or(RunError::NotTrainable)?;
        let mut runner = self.unit_runner(module, input_names, fuel_per_unit, deadline)?;
        runner.kinds.push(training.label);
        runner.input_names.push(label.to_string());
        Ok(runner)
    }

    /// The module's pretrained parameters: `cleanroom_initial_params` run once in a fresh
    /// instance that can read no row, with `fuel` fuel. Public: a function of the module.
    pub fn initial_params(&self, module: &AdmittedModule, fuel: u64) -> Result<Vec<f64>, RunError> {
        let training = module.training.as_ref().ok_or(RunError::NotTrainable)?;
        if !Engine::same(module.pre.module().engine(), &self.inner.engine) {
            return Err(RunError::ForeignModule);
        }
        let cfg = &self.inner.config;
        let state = HostState {
            limiter: Limiter::new(cfg.memory_limit_bytes, MAX_TABLE_ELEMENTS),
            columns: Vec::new(),
            rows: 0,
            emission: Emission::Fixed(training.n_params as usize),
            params: None,
            in_batch: false,
            out: Vec::new(),
            memory: None,
            deadline: Instant::now() + cfg.time_limit,
            time_limit: cfg.time_limit,
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        run_export(&module.pre, &mut store, fuel, train::EXPORT_INITIAL_PARAMS, None)?;
        Ok(store.into_data().out)
    }
}

/// Per-unit isolation: every call to [`UnitRunner::score`] runs the module in a new store
/// and a new instance, so nothing the module computes for one privacy unit (its memory,
/// globals, tables) survives into the next. That is what the sensitivity of every output
/// assumes: a unit's scores depend only on that unit's rows.
pub struct UnitRunner {
    sandbox: Arc<Inner>,
    pre: InstancePre<HostState>,
    kinds: Vec<ColumnKind>,
    outputs_per_row: usize,
    input_names: Vec<String>,
    reads_validity: bool,
    fuel_per_unit: u64,
    deadline: Instant,
    /// Staging buffers of the previous unit's store, reused so a unit costs no allocation.
    spare: Option<(Vec<Staged>, Vec<f64>)>,
    /// What `read_params` gives the module: the current parameters of a training job.
    params: Option<Arc<[f64]>>,
    /// The module's parameter count, if it is trainable.
    n_params: Option<usize>,
}

impl fmt::Debug for UnitRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitRunner")
            .field("inputs", &self.input_names)
            .field("fuel_per_unit", &self.fuel_per_unit)
            .finish_non_exhaustive()
    }
}

impl UnitRunner {
    /// Values per row in what [`UnitRunner::score`] returns (the module's
    /// [`AdmittedModule::outputs_per_row`]).
    pub fn outputs_per_row(&self) -> usize {
        self.outputs_per_row
    }

    /// Score one unit's rows in a fresh instance with the unit's fuel: `rows * m` values
    /// for `m` outputs per row ([`AdmittedModule::outputs_per_row`]), row-major. Any error
    /// (a trap, fuel exhaustion, a bad status, a wrong number of scores, a missing column)
    /// is returned for the caller to treat the unit as absent; the runner stays usable.
    pub fn score(&mut self, unit: &RecordBatch) -> Result<Vec<f64>, RunError> {
        self.call(unit, abi::EXPORT_PROCESS_BATCH, Emission::PerRow(self.outputs_per_row))
    }

    /// Parameters that `read_params` gives the module in every later call (the trained
    /// parameters, for scoring after training); `None` gives none, so the module uses its
    /// own. Their count must be the module's.
    pub fn set_params(&mut self, params: Option<Arc<[f64]>>) -> Result<(), RunError> {
        if let Some(p) = &params {
            let declared = self.n_params.ok_or(RunError::NotTrainable)?;
            if p.len() != declared {
                return Err(RunError::ParamCount { declared, given: p.len() });
            }
        }
        self.params = params;
        Ok(())
    }

    /// One unit's gradient at `params`, computed in a fresh instance with the unit's fuel
    /// (a runner from [`Sandbox::train_runner`]): `n_params` values, the gradient of the
    /// unit's summed loss, then the loss. Errors as for [`UnitRunner::score`].
    pub fn gradient(&mut self, unit: &RecordBatch, params: &Arc<[f64]>) -> Result<Vec<f64>, RunError> {
        self.set_params(Some(params.clone()))?;
        let n = self.n_params.ok_or(RunError::NotTrainable)?;
        self.call(unit, train::EXPORT_TRAIN_UNIT, Emission::Fixed(n + 1))
    }

    fn call(&mut self, unit: &RecordBatch, export: &'static str, emission: Emission) -> Result<Vec<f64>, RunError> {
        let rows = unit.rows;
        if rows > MAX_BATCH_ROWS {
            return Err(RunError::BatchTooLarge { rows, limit: MAX_BATCH_ROWS });
        }
        let cfg = &self.sandbox.config;
        let with_validity = self.reads_validity;
        let (mut columns, mut out) = self
            .spare
            .take()
            .unwrap_or_else(|| (self.kinds.iter().map(|&kind| Staged::new(kind, with_validity)).collect(), Vec::new()));
        for (name, staged) in self.input_names.iter().zip(columns.iter_mut()) {
            let Some(data) = unit.column(name) else {
                self.spare = Some((columns, out));
                return Err(RunError::MissingColumn { name: name.clone() });
            };
            let validity = unit.validity(name);
            if let Some(len) = validity.map(|v| v.len()).filter(|&len| len != rows) {
                self.spare = Some((columns, out));
                return Err(RunError::RaggedBatch { name: name.clone(), len, rows });
            }
            if data.len() != rows || !staged.stage(data, validity) {
                let found = data.type_name();
                let expected = staged.kind;
                self.spare = Some((columns, out));
                return Err(RunError::ColumnType { name: name.clone(), expected, found });
            }
        }
        // Room for every value the call may emit (`emit` refuses more), allocated once.
        out.reserve_exact(emission.expected(rows));
        let state = HostState {
            limiter: Limiter::new(cfg.memory_limit_bytes, MAX_TABLE_ELEMENTS),
            columns,
            rows,
            emission,
            params: self.params.clone(),
            in_batch: false,
            out,
            memory: None,
            deadline: self.deadline,
            time_limit: cfg.time_limit,
        };
        let mut store = Store::new(&self.sandbox.engine, state);
        store.limiter(|s| &mut s.limiter);
        let result = run_export(&self.pre, &mut store, self.fuel_per_unit, export, Some(rows as i32));
        let mut state = store.into_data();
        let values = result.map(|()| std::mem::take(&mut state.out));
        // Keep the allocations, never the contents: the next unit overwrites the staged
        // columns and starts from an empty output.
        state.out.clear();
        self.spare = Some((state.columns, state.out));
        values
    }
}

/// Instantiate `pre` in `store` with `fuel` and call `export`, `(rows) -> i32` or, without
/// `rows`, `() -> i32`; check its status and that it emitted what the store expects.
fn run_export(
    pre: &InstancePre<HostState>,
    store: &mut Store<HostState>,
    fuel: u64,
    export: &'static str,
    rows: Option<i32>,
) -> Result<(), RunError> {
    store.set_fuel(fuel).map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
    // The epoch ticker only backs up the job's deadline; fuel is what bounds a unit.
    store.set_epoch_deadline(1);
    abort_at_deadline(store);
    if Instant::now() >= store.data().deadline {
        return Err(RunError::TimeLimit { limit: store.data().time_limit });
    }
    let instance = pre.instantiate(&mut *store).map_err(|e| host::classify(store, e, true))?;
    let memory = instance
        .get_memory(&mut *store, abi::EXPORT_MEMORY)
        .ok_or_else(|| RunError::Instantiate("no exported memory".into()))?;
    {
        let s = store.data_mut();
        s.memory = Some(memory);
        s.in_batch = true;
    }
    let status = match rows {
        Some(rows) => instance
            .get_typed_func::<i32, i32>(&mut *store, export)
            .map_err(|e| RunError::Instantiate(format!("{e:#}")))
            .map(|f| f.call(&mut *store, rows)),
        None => instance
            .get_typed_func::<(), i32>(&mut *store, export)
            .map_err(|e| RunError::Instantiate(format!("{e:#}")))
            .map(|f| f.call(&mut *store, ())),
    };
    store.data_mut().in_batch = false;
    let status = status?.map_err(|e| host::classify(store, e, false))?;
    if status != 0 {
        return Err(RunError::ModelFailed { status });
    }
    let s = store.data();
    let (emitted, expected) = (s.out.len(), s.emission.expected(s.rows));
    if emitted != expected {
        return Err(RunError::BadEmission { rows: s.rows, expected, emitted });
    }
    Ok(())
}

/// At every epoch tick past the store's deadline, end the call with a time-limit error.
fn abort_at_deadline(store: &mut Store<HostState>) {
    store.epoch_deadline_callback(|ctx| {
        let s = ctx.data();
        if Instant::now() >= s.deadline {
            Err(host::abort(RunError::TimeLimit { limit: s.time_limit }))
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(1))
        }
    });
}

/// One job: one instance in its own store, fed batch after batch. Used by the provider's
/// local tests and as the baseline of the per-unit isolation benchmark; the enclave scores
/// units with [`UnitRunner`].
pub struct Job {
    // Keeps the epoch ticker alive for as long as the job can run.
    _sandbox: Arc<Inner>,
    store: Store<HostState>,
    process: TypedFunc<i32, i32>,
    memory: Memory,
    input_names: Vec<String>,
    ended: bool,
    batches: u64,
    rows: u64,
    started: Instant,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("inputs", &self.input_names)
            .field("ended", &self.ended)
            .field("batches", &self.batches)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// Run the module over `batch`: copy the job's input columns into guest memory on
    /// request and return exactly `rows * m` values for `m` outputs per row, row-major
    /// (row 0's `m` values, then row 1's, ...). Any error ends the job.
    pub fn process_batch(&mut self, batch: &RecordBatch) -> Result<Vec<f64>, RunError> {
        if self.ended {
            return Err(RunError::JobEnded);
        }
        let result = self.run(batch);
        if result.is_err() {
            self.ended = true;
            // Drop staged plaintext now rather than when the job is dropped.
            let s = self.store.data_mut();
            s.columns.iter_mut().for_each(Staged::release);
            s.out = Vec::new();
        }
        result
    }

    fn run(&mut self, batch: &RecordBatch) -> Result<Vec<f64>, RunError> {
        let rows = batch.rows;
        if rows > MAX_BATCH_ROWS {
            return Err(RunError::BatchTooLarge { rows, limit: MAX_BATCH_ROWS });
        }
        let state = self.store.data_mut();
        if Instant::now() >= state.deadline {
            return Err(RunError::TimeLimit { limit: state.time_limit });
        }
        for (name, staged) in self.input_names.iter().zip(state.columns.iter_mut()) {
            let data = batch.column(name).ok_or_else(|| RunError::MissingColumn { name: name.clone() })?;
            // `RecordBatch` has public fields, so its invariant is checked again here.
            if data.len() != rows {
                return Err(RunError::RaggedBatch { name: name.clone(), len: data.len(), rows });
            }
            let validity = batch.validity(name);
            if let Some(len) = validity.map(|v| v.len()).filter(|&len| len != rows) {
                return Err(RunError::RaggedBatch { name: name.clone(), len, rows });
            }
            if !staged.stage(data, validity) {
                return Err(RunError::ColumnType {
                    name: name.clone(),
                    expected: staged.kind,
                    found: data.type_name(),
                });
            }
        }
        state.rows = rows;
        state.out.clear();
        // Room for every value the batch may emit (`emit` refuses more), allocated once.
        let expected = state.emission.expected(rows);
        state.out.reserve_exact(expected);
        state.in_batch = true;
        let status = self.process.call(&mut self.store, rows as i32);
        self.store.data_mut().in_batch = false;
        let status = status.map_err(|e| host::classify(&self.store, e, false))?;
        if status != 0 {
            return Err(RunError::ModelFailed { status });
        }
        let state = self.store.data_mut();
        let expected = state.emission.expected(rows);
        if state.out.len() != expected {
            return Err(RunError::BadEmission { rows, expected, emitted: state.out.len() });
        }
        self.batches += 1;
        self.rows += rows as u64;
        Ok(std::mem::take(&mut state.out))
    }

    /// Whether an error has ended this job.
    pub fn ended(&self) -> bool {
        self.ended
    }
    pub fn batches(&self) -> u64 {
        self.batches
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Time since [`Sandbox::start_job`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
    /// Current size of the guest's linear memory in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }
}
