//! Concurrent CPU streams of an inference pass: how many a pass uses ([`plan`]) and the
//! scheduler that runs its tasks on them ([`run`]). Shared by the built-in taggers (one copy);
//! the SpanNER tagger's deterministic passes run in streams (see `SpanTagger::with_streams`),
//! the token-classification tagger runs its batches in turn on the calling thread.

use burn::tensor::Device;

use crate::device::DeviceSpec;
use crate::error::{Result, TaggerError};

/// The number of streams a pass of `batches` batches uses on `device` when `streams` are asked
/// for (`0`: one per LibTorch thread) with `mc_samples` Monte-Carlo passes, and the LibTorch
/// threads of each; `(1, threads)` when it runs on the calling thread alone (not on LibTorch's
/// CPU device, or with Monte-Carlo passes, so that random draws stay in a reproducible order).
pub(crate) fn plan(
    device: &Device,
    streams: usize,
    mc_samples: usize,
    batches: usize,
) -> (usize, usize) {
    let threads = crate::device::threads().max(1);
    let streamable =
        cfg!(feature = "tch") && *device == DeviceSpec::Cpu.device() && mc_samples == 0;
    let wanted = if streams == 0 { threads } else { streams };
    let streams = wanted.min(batches).max(1);
    if !streamable || streams == 1 {
        return (1, threads);
    }
    (streams, (threads / streams).max(1))
}

/// Runs `tasks` tasks (`work(state, k)` for k in `0..tasks`) in `streams` worker threads
/// with `per_stream` LibTorch threads each; every worker starts from `init()` and takes the
/// next task when it is done with its last. Returns the workers' states, or the first
/// error (the other workers stop at their next task).
pub(crate) fn run<S: Send>(
    tasks: usize,
    (streams, per_stream): (usize, usize),
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> Result<()> + Sync,
) -> Result<Vec<S>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let threads = crate::device::threads().max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // Every worker sets its thread count before any of them computes.
    let ready = std::sync::Barrier::new(streams);
    let joined: Vec<std::thread::Result<Result<S>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|_| {
                scope.spawn(|| -> Result<S> {
                    crate::device::set_worker_threads(per_stream);
                    ready.wait();
                    let mut state = init();
                    while !failed.load(Ordering::Relaxed) {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= tasks {
                            break;
                        }
                        if let Err(e) = work(&mut state, k) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(state)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    crate::device::restore_threads(threads);
    joined
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|_| {
                Err(TaggerError::InvalidArgument(
                    "a tagging stream panicked".into(),
                ))
            })
        })
        .collect()
}
