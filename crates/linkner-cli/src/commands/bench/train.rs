//! `linkner bench train`: one training pass of linkner against a PyTorch training loop (see the
//! parent module).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use linkner::core::io::sentences;
use linkner::core::{LabelSchema, Sentence};
use linkner::tagger::train::{Silent, train};
use linkner::tagger::{DeviceSpec, HeadOptions, SpanTagger, TrainConfig};
use serde::Serialize;

use super::{
    PeerScript, TRAIN_PEER, bench_threads, cpu_seconds, data_file, default_encoder, num,
    peak_rss_mb, python_of, reset_peak_rss, run_json,
};
use crate::commands::CliError;

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

/// Runs `linkner bench train`: linkner's pass, then the peer's, then the table or the JSON
/// object.
pub(super) fn run_train(args: &TrainBenchArgs) -> Result<(), CliError> {
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
    let mut data = sentences(
        crate::commands::formats::DataArgs::default().read(&data_path, Some(schema.clone()))?,
    );
    data.truncate(args.limit);
    let n = data.len();
    let extrapolate = |secs: f64| secs * args.epoch_sentences as f64 / n.max(1) as f64;

    let linkner = linkner_pass(args, &encoder, schema, &device, &data, &extrapolate)?;
    let python = if args.no_python {
        TrainSide {
            unavailable: Some("--no-python".into()),
            ..TrainSide::default()
        }
    } else {
        python_pass(args, &encoder, &data_path, threads, &extrapolate)?
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
    print_train(&report);
    Ok(())
}

/// One epoch of linkner's trainer over `data`, timed; a training error becomes the side's
/// `unavailable`.
fn linkner_pass(
    args: &TrainBenchArgs,
    encoder: &Path,
    schema: LabelSchema,
    device: &DeviceSpec,
    data: &[Sentence],
    extrapolate: &dyn Fn(f64) -> f64,
) -> Result<TrainSide, CliError> {
    let n = data.len();
    let (tagger, _) = SpanTagger::from_encoder_dir(
        encoder,
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
    Ok(match train(tagger, data, &[], &config, &mut Silent) {
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
    })
}

/// The peer's training pass; a failed run becomes the side's `unavailable`.
fn python_pass(
    args: &TrainBenchArgs,
    encoder: &Path,
    data_path: &Path,
    threads: usize,
    extrapolate: &dyn Fn(f64) -> f64,
) -> Result<TrainSide, CliError> {
    let script = PeerScript::new(&args.peer_script, "bench_train_peer.py", TRAIN_PEER)?;
    let mut cmd = Command::new(python_of(&args.python));
    cmd.arg(&script.path)
        .arg("--encoder")
        .arg(encoder)
        .arg("--data")
        .arg(data_path)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--device")
        .arg(&args.device)
        .arg("--batch-size")
        .arg(args.batch_size.to_string())
        .arg("--limit")
        .arg(args.limit.to_string());
    Ok(match run_json(cmd, threads) {
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
    })
}

/// The table of `linkner bench train`.
fn print_train(report: &TrainBench) {
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
}
