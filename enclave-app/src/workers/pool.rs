//! The supervisor's side of its worker processes: start them, deal each task's units out
//! in order (contiguous slices, one per worker), and put the outcomes back in that order.

use super::codec::{encode_task, read_frame, write_frame, CodecError, Init, Reply, UnitOutcome};
use protocol::table::RecordBatch;
use std::collections::VecDeque;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a worker may take to compile the module and say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start worker process {worker}: {why}")]
    Spawn { worker: usize, why: String },
    #[error("worker {worker} refused the job: {why}")]
    InitFailed { worker: usize, why: String },
    #[error("worker {worker} was lost: {why}")]
    Lost { worker: usize, why: String },
    #[error("worker {worker} answered out of protocol: {why}")]
    Protocol { worker: usize, why: String },
}

struct Worker {
    child: Child,
    /// Frames for the worker, written to its stdin by a thread of their own: a task bigger
    /// than the pipe's buffer then never holds the supervisor until this worker has
    /// finished its previous task, while the next worker waits for its own. Dropping the
    /// sender closes the worker's stdin once the frames before are written.
    tasks: Option<Sender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    /// Frames the worker wrote, read by a thread of their own so that a worker never
    /// blocks on a full pipe while the supervisor is writing it the next task.
    replies: Receiver<Result<Vec<u8>, CodecError>>,
}

/// Worker processes serving one job. Dropping the pool kills them.
pub struct ProcessPool {
    workers: Vec<Worker>,
    /// The columns a worker reads (the module's inputs, and the label of a training job):
    /// the only ones sent.
    columns: Vec<String>,
    /// Per task submitted and not yet collected: how many units each worker got.
    in_flight: VecDeque<Vec<usize>>,
}

impl ProcessPool {
    /// Start `count` workers from `exe` and give each the job; returns once every one has
    /// compiled the module.
    pub fn start(exe: &Path, count: usize, init: &Init) -> Result<ProcessPool, WorkerError> {
        let mut pool = Self::spawn(exe, count, init)?;
        pool.wait_ready()?;
        Ok(pool)
    }

    /// Start `count` workers from `exe` and send each the job, without waiting for them to
    /// compile it: [`ProcessPool::wait_ready`] does that.
    pub fn spawn(exe: &Path, count: usize, init: &Init) -> Result<ProcessPool, WorkerError> {
        let columns = init.inputs.iter().chain(&init.label).cloned().collect();
        let mut pool = ProcessPool { workers: Vec::with_capacity(count), columns, in_flight: VecDeque::new() };
        for worker in 0..count {
            let spawn_err = |e: std::io::Error| WorkerError::Spawn { worker, why: e.to_string() };
            let mut child = Command::new(exe)
                .arg(super::WORKER_ARG)
                .env_clear()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                // A worker holds unit data after the spend: nothing it could print (a panic
                // message, an error with a length in it) may reach the console, which the
                // host can read. Its failures reach the supervisor as a lost pipe.
                .stderr(Stdio::null())
                .spawn()
                .map_err(spawn_err)?;
            let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
            let (tx, replies) = std::sync::mpsc::channel();
            let (tasks, frames) = std::sync::mpsc::channel::<Vec<u8>>();
            // Pushed before anything can fail, so that dropping the pool reaps this child.
            pool.workers.push(Worker { child, tasks: Some(tasks), writer: None, replies });
            let mut stdin = stdin.ok_or_else(|| spawn_err(std::io::Error::other("no stdin pipe")))?;
            let mut stdout = stdout.ok_or_else(|| spawn_err(std::io::Error::other("no stdout pipe")))?;
            // A write that fails ends the thread, which closes the worker's stdin (so the
            // worker ends, and its reader sees the end of stream: the task waited for is a
            // lost worker, never a hang) and drops `frames` (a later task fails at once).
            let writer = std::thread::Builder::new()
                .name("cleanroom-worker-writer".into())
                .spawn(move || {
                    for frame in frames {
                        if write_frame(&mut stdin, &frame).is_err() {
                            break;
                        }
                    }
                })
                .map_err(spawn_err)?;
            pool.workers[worker].writer = Some(writer);
            std::thread::Builder::new()
                .name("cleanroom-worker-reader".into())
                .spawn(move || loop {
                    let frame = read_frame(&mut stdout);
                    let end = !matches!(frame, Ok(Some(_)));
                    if tx.send(frame.and_then(|f| f.ok_or(CodecError::Io("end of stream".into())))).is_err() || end {
                        break;
                    }
                })
                .map_err(spawn_err)?;
        }
        let frame = init.encode();
        for worker in 0..count {
            pool.write(worker, frame.clone())?;
        }
        Ok(pool)
    }

    /// Wait until every worker has compiled the module.
    pub fn wait_ready(&mut self) -> Result<(), WorkerError> {
        for worker in 0..self.workers.len() {
            match self.reply(worker, Some(READY_TIMEOUT))? {
                Reply::Ready => {}
                Reply::InitFailed(why) => return Err(WorkerError::InitFailed { worker, why }),
                Reply::Outcomes(_) => {
                    return Err(WorkerError::Protocol { worker, why: "outcomes before any task".into() })
                }
            }
        }
        Ok(())
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Send a task's units out: worker `i` gets the `i`-th contiguous slice. Collect the
    /// outcomes with [`ProcessPool::collect`], in the order tasks were submitted.
    pub fn submit(
        &mut self,
        gradient: bool,
        remaining: Duration,
        params: Option<&[f64]>,
        units: &[&RecordBatch],
    ) -> Result<(), WorkerError> {
        let per = units.len().div_ceil(self.workers.len()).max(1);
        let mut dealt = vec![0; self.workers.len()];
        for (worker, slice) in units.chunks(per).enumerate() {
            self.write(worker, encode_task(gradient, remaining, params, slice, Some(&self.columns)))?;
            dealt[worker] = slice.len();
        }
        self.in_flight.push_back(dealt);
        Ok(())
    }

    /// The outcomes of the oldest task not yet collected, in its units' order.
    pub fn collect(&mut self) -> Result<Vec<UnitOutcome>, WorkerError> {
        let dealt = self.in_flight.pop_front().unwrap_or_default();
        let mut out = Vec::with_capacity(dealt.iter().sum());
        for (worker, &want) in dealt.iter().enumerate().filter(|(_, &n)| n > 0) {
            match self.reply(worker, None)? {
                Reply::Outcomes(o) if o.len() == want => out.extend(o),
                Reply::Outcomes(o) => {
                    let why = format!("{} outcomes for {want} units", o.len());
                    return Err(WorkerError::Protocol { worker, why });
                }
                _ => return Err(WorkerError::Protocol { worker, why: "a second ready".into() }),
            }
        }
        Ok(out)
    }

    /// Queue `frame` for `worker` (its writer thread writes it).
    fn write(&mut self, worker: usize, frame: Vec<u8>) -> Result<(), WorkerError> {
        let lost = |why: &str| WorkerError::Lost { worker, why: why.into() };
        let tasks = self.workers[worker].tasks.as_ref().ok_or_else(|| lost("no stdin pipe"))?;
        tasks.send(frame).map_err(|_| lost("its stdin is closed"))
    }

    fn reply(&mut self, worker: usize, timeout: Option<Duration>) -> Result<Reply, WorkerError> {
        let lost = |why: String| WorkerError::Lost { worker, why };
        let replies = &self.workers[worker].replies;
        let frame = match timeout {
            None => replies.recv().map_err(|_| lost("reader ended".into()))?,
            Some(t) => replies.recv_timeout(t).map_err(|e| match e {
                RecvTimeoutError::Timeout => lost(format!("no answer in {t:?}")),
                RecvTimeoutError::Disconnected => lost("reader ended".into()),
            })?,
        };
        let frame = frame.map_err(|e| lost(e.to_string()))?;
        Reply::decode(&frame).map_err(|e| WorkerError::Protocol { worker, why: e.to_string() })
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing stdin ends an idle worker; a busy one is killed. Either way it is
            // reaped here, so no worker outlives its job (the supervisor may be PID 1), and
            // so is its writer (a write to a dead worker fails at once).
            w.tasks.take();
            let _ = w.child.kill();
            let _ = w.child.wait();
            if let Some(writer) = w.writer.take() {
                let _ = writer.join();
            }
        }
    }
}
