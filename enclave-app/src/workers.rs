//! Every core: units scored, or their gradients computed, on several worker threads.
//!
//! A batch of units is split into contiguous slices, one per worker; each worker builds its
//! own runner (one sandbox store per unit, as always) and the results come back in the
//! batch's order. Everything after (the accumulator, the gradient sum, the diagnostics) runs
//! on the calling thread in that order, so a release is bit for bit the same for any number
//! of workers with the same noise. Nothing here is visible outside: the reply leaves at the
//! deadline whatever the speed.

/// Most workers a job uses.
pub const MAX_WORKERS: usize = 64;

/// Workers a job uses today: one. Measured on a 2-vCPU VM (`make bench`,
/// `enclave_scoring_*`), two workers score at about 0.6× of one: each unit's memory reset
/// (PAGEMAP_SCAN in wasmtime's pooling allocator) write-protects the pages it scans, and the
/// TLB shootdown of every reset interrupts the other worker's core; without PAGEMAP_SCAN one
/// worker is 2.5× slower and two still do not scale. Workers in address spaces of their
/// own would not share those shootdowns; until then the job runs on one, and
/// [`map_ordered`] keeps the result independent of this number.
pub const JOB_WORKERS: usize = 1;
/// Stack of a worker thread: the guest runs on it (the sandbox's `max_wasm_stack`, at most
/// 16 MiB, plus the host's frames).
const WORKER_STACK: usize = 20 << 20;

/// Workers for this machine: its available parallelism, at most [`MAX_WORKERS`].
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_WORKERS)
}

/// `f(state, item)` for every item, on up to `workers` threads with a state each from
/// `make`, the results in item order. One worker (or one item) runs on the calling thread.
pub fn map_ordered<T, S, R>(
    workers: usize,
    items: &[T],
    make: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let workers = workers.clamp(1, MAX_WORKERS).min(items.len().max(1));
    if workers == 1 {
        let mut state = make();
        return items.iter().map(|t| f(&mut state, t)).collect();
    }
    let per = items.len().div_ceil(workers);
    let (make, f) = (&make, &f);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|slice| {
                std::thread::Builder::new().name("cleanroom-worker".into()).stack_size(WORKER_STACK).spawn_scoped(
                    scope,
                    move || {
                        let mut state = make();
                        slice.iter().map(|t| f(&mut state, t)).collect::<Vec<R>>()
                    },
                )
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (h, slice) in handles.into_iter().zip(items.chunks(per)) {
            match h {
                Ok(h) => match h.join() {
                    Ok(part) => out.extend(part),
                    // A worker that panicked (a bug, never the guest: its faults are
                    // errors) is re-raised here, where the job's own failure handling is.
                    Err(p) => std::panic::resume_unwind(p),
                },
                // No thread to be had: this slice runs here.
                Err(_) => {
                    let mut state = make();
                    out.extend(slice.iter().map(|t| f(&mut state, t)));
                }
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_come_back_in_order_for_any_number_of_workers() {
        let items: Vec<u64> = (0..1001).collect();
        let want: Vec<u64> = items.iter().map(|x| x * x + 1).collect();
        for workers in [1, 2, 3, 4, 7, 64, 1000] {
            let states = AtomicUsize::new(0);
            let got = map_ordered(
                workers,
                &items,
                || {
                    states.fetch_add(1, Ordering::SeqCst);
                    0u64
                },
                |calls, x| {
                    *calls += 1;
                    x * x + 1
                },
            );
            assert_eq!(got, want, "{workers} workers");
            assert!(states.load(Ordering::SeqCst) <= workers.min(MAX_WORKERS), "one state per worker");
        }
        assert!(map_ordered(4, &[] as &[u64], || (), |_, x| *x).is_empty());
    }

    #[test]
    fn each_worker_keeps_its_own_state() {
        // The state counts the items its worker saw; with contiguous slices, the counts
        // restart at every slice boundary and nowhere else.
        let items = vec![(); 10];
        let got = map_ordered(
            3,
            &items,
            || 0usize,
            |n, _| {
                *n += 1;
                *n
            },
        );
        assert_eq!(got, [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]);
    }
}
