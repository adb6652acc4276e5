//! `linkner eval`: entity-level precision / recall / F1 of a trained tagger on labelled data.
//!
//! ```text
//! linkner eval --model DIR --data test.txt [--json]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use linkner::core::io::sentences;
use linkner::tagger::{DeviceSpec, SpanTagger, evaluate};

use super::CliError;
use super::tagger_common::read_docs;

/// Arguments of `linkner eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Trained tagger folder (from `linkner train`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Labelled data (CoNLL, spanner JSON or JSONL).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Data format (conll, spanner, jsonl); guessed by default.
    #[arg(long)]
    pub format: Option<String>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Device: cpu (LibTorch), cuda, cuda:N, flex.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// LibTorch CPU threads (default: LibTorch's choice; 1 is often fastest on a busy machine).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `linkner eval`.
pub fn run(args: EvalArgs) -> Result<(), CliError> {
    let device: DeviceSpec = args.device.parse()?;
    if let Some(n) = args.threads {
        linkner::tagger::set_threads(n)?;
    }
    let tagger = SpanTagger::load(&args.model, &device)?;
    let data = sentences(read_docs(
        &args.data,
        args.format.as_deref(),
        Some(tagger.config.schema.clone()),
    )?);
    let started = Instant::now();
    let scores = evaluate(&tagger, &data, args.batch_size)?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        println!("{}", scores.table());
        println!(
            "{} sentences in {:.1} s ({:.1} sentences/s)",
            data.len(),
            secs,
            data.len() as f64 / secs.max(1e-9)
        );
        let width = tagger.config.model.max_span_width;
        let unreachable: usize = data
            .iter()
            .map(|s| linkner::tagger::span::out_of_reach(&s.spans, width))
            .sum();
        println!("{unreachable} gold entities are wider than the max span width ({width} words)");
    }
    Ok(())
}
