//! `linkner bench stream`: a labelled test set replayed as an open-loop stream at fixed
//! arrival rates, through the library's stream path ([`linkner::Pipeline::stream`]).
//!
//! ```text
//! linkner bench stream --config configs/twitterner.json --data $LINKNER_DATA/twitterner/test.txt \
//!     --rates 2,5,10,20,50,100 --modes off,llm,budget --latency-budget-ms 2000 --duration 60
//! ```
//!
//! Arrivals are Poisson (seeded exponential gaps) and sent on schedule whatever the pipeline
//! does: a slow pipeline cannot slow the sender down, and every latency is measured from the
//! document's **scheduled** arrival to its annotation (no coordinated omission). Per rate and
//! mode it reports throughput, p50/p95/p99/max latency, local and linked F1 of the streamed
//! output against gold, routed entities, LLM requests and calls, budget drops, failures, the
//! CPU this process used and its peak RSS. Modes: `off` (the local tagger alone), `llm` (the
//! config's routing, no budget), `budget` (the same with the routing budget of the config or
//! of `--llm-budget` / `--latency-budget-ms`). Each (mode, rate) builds a fresh pipeline, so no
//! answer cache carries over between runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use linkner::core::Sentence;
use linkner::{Annotation, LinkConfig, RoutingPolicy, StatsSnapshot, score_annotations};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::sync::mpsc;

use super::CliError;
use super::pipeline_args::PipelineArgs;

/// Arguments of `linkner bench stream`.
#[derive(Debug, Args)]
pub struct StreamBenchArgs {
    /// The pipeline (a `--config` with its LLM, or flags).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Labelled data replayed as the stream (CoNLL, spanner JSON or JSONL), sentence by
    /// sentence in file order.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// How the data files are read (format and reader options).
    #[command(flatten)]
    pub formats: super::formats::DataArgs,
    /// Arrival rates, documents per second.
    #[arg(long, value_delimiter = ',', default_value = "2,5,10,20,50,100")]
    pub rates: Vec<f64>,
    /// Modes: `off` (no LLM), `llm` (no budget), `budget`.
    #[arg(long, value_delimiter = ',', default_value = "off,llm,budget")]
    pub modes: Vec<Mode>,
    /// Seconds of arrivals per run: `rate × duration` documents (capped at the data's size);
    /// 0 = the whole data set at every rate.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// At most this many documents in the `llm` mode (no budget): its queue grows without
    /// limit once the rate is above what the LLM answers, so a long run only shows a longer
    /// queue (0 = no cap).
    #[arg(long, default_value_t = 0)]
    pub llm_cap: usize,
    /// How long a tagger batch waits for more documents after its first, in milliseconds
    /// (default: the config's `pipeline.stream_max_wait_ms`).
    #[arg(long, value_name = "MS")]
    pub max_wait_ms: Option<u64>,
    /// Seed of the arrival times.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The modes of the stream benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The local tagger alone.
    Off,
    /// The config's routing, every routed entity sent and waited for.
    Llm,
    /// The config's routing under the routing budget.
    Budget,
}

/// One (mode, rate) run.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRun {
    /// The mode.
    pub mode: Mode,
    /// Arrival rate asked for, documents per second.
    pub rate: f64,
    /// Documents sent.
    pub documents: usize,
    /// Documents answered (every one: an error counts as answered and in `errors`).
    pub answered: usize,
    /// Documents whose item was an error.
    pub errors: usize,
    /// Seconds from the first scheduled arrival to the last annotation.
    pub wall_seconds: f64,
    /// Documents per second over the run.
    pub throughput: f64,
    /// Latency percentiles, ms, from the scheduled arrival.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// F1 of the local labels of the streamed output.
    pub local_f1: f64,
    /// F1 of the streamed output.
    pub linked_f1: f64,
    /// The pipeline's counters for the run.
    pub stats: StatsSnapshot,
    /// CPU seconds of this process (all threads) during the run.
    pub cpu_seconds: Option<f64>,
    /// Peak resident memory of this process during the run, MiB.
    pub peak_rss_mb: Option<f64>,
}

/// Everything `bench stream` measured.
#[derive(Debug, Clone, Serialize)]
pub struct StreamBench {
    /// The data file.
    pub data: PathBuf,
    /// The config, when one was given.
    pub config: Option<PathBuf>,
    /// The routing budget of the `budget` mode (`in_flight=…,latency=…ms`).
    pub budget: Option<String>,
    /// The runs.
    pub runs: Vec<StreamRun>,
}

/// Runs `linkner bench stream`.
pub fn run(args: &StreamBenchArgs) -> Result<(), CliError> {
    let gold = super::link::read_gold(&args.data, &args.formats, None, 0)?.sentences;
    let mut base = args.pipeline.link_config()?;
    if let Some(ms) = args.max_wait_ms {
        base.pipeline.stream_max_wait_ms = ms;
    }
    if args.modes.contains(&Mode::Budget) && base.budget.is_none() {
        return Err(
            "the `budget` mode needs a routing budget: give --latency-budget-ms MS \
                    and/or --llm-budget SPEC, or a `budget` section in --config"
                .into(),
        );
    }
    let rt = super::link::runtime()?;
    if args.modes.iter().any(|m| *m != Mode::Off) && base.llm.is_some() {
        // Warm the server once (its prompt cache holds the fixed prefix afterwards), through a
        // throwaway pipeline: what a live service sees is a warm server, and no run's budget
        // estimate starts from the cold first answer.
        let mut warm = base.clone();
        warm.policy = RoutingPolicy::Always;
        warm.budget = None;
        let p = args.pipeline.build(&warm, None)?;
        rt.block_on(p.annotate(WARM_TEXT))?;
    }
    let mut runs = Vec::new();
    for &mode in &args.modes {
        for &rate in &args.rates {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("--rates: {rate} is not a positive rate").into());
            }
            let run = measure(args, &base, &gold, &rt, mode, rate)?;
            if !args.json {
                eprintln!("{}", row(&run));
            }
            runs.push(run);
        }
    }
    let report = StreamBench {
        data: args.data.clone(),
        config: args.pipeline.config.clone(),
        budget: base.budget.as_ref().map(|b| b.to_string()),
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", table(&report));
    }
    Ok(())
}

/// One (mode, rate): a fresh pipeline of the mode's config, the stream run, and its figures.
fn measure(
    args: &StreamBenchArgs,
    base: &LinkConfig,
    gold: &[Sentence],
    rt: &tokio::runtime::Runtime,
    mode: Mode,
    rate: f64,
) -> Result<StreamRun, CliError> {
    let mut n = if args.duration > 0.0 {
        ((rate * args.duration).round() as usize).clamp(1, gold.len())
    } else {
        gold.len()
    };
    if mode == Mode::Llm && args.llm_cap > 0 {
        n = n.min(args.llm_cap);
    }
    let mut config = base.clone();
    match mode {
        Mode::Off => {
            config.policy = RoutingPolicy::Never;
            config.budget = None;
        }
        Mode::Llm => config.budget = None,
        Mode::Budget => {}
    }
    let pipeline = args.pipeline.build(&config, None)?;
    let docs = &gold[..n];
    let r = rt.block_on(one_run(&pipeline, docs, rate, args.seed))?;
    let scores = score_annotations(docs, &r.annotations)?;
    let mut lat = r.latencies_ms.clone();
    lat.sort_by(f64::total_cmp);
    Ok(StreamRun {
        mode,
        rate,
        documents: n,
        answered: r.annotations.len() + r.errors,
        errors: r.errors,
        wall_seconds: r.wall.as_secs_f64(),
        throughput: n as f64 / r.wall.as_secs_f64().max(1e-9),
        p50_ms: quantile(&lat, 0.50),
        p95_ms: quantile(&lat, 0.95),
        p99_ms: quantile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        local_f1: scores.local.f1,
        linked_f1: scores.linked.f1,
        stats: pipeline.stats(),
        cpu_seconds: r.cpu_seconds,
        peak_rss_mb: super::bench::peak_rss_mb(),
    })
}

/// The text that warms the LLM server before the runs.
const WARM_TEXT: &str = "Angela Merkel met Barack Obama in Berlin and Paris .";

/// What one run produced.
struct RunOutput {
    annotations: Vec<Annotation>,
    errors: usize,
    latencies_ms: Vec<f64>,
    wall: Duration,
    cpu_seconds: Option<f64>,
}

/// Sends `docs` at Poisson arrivals of `rate` per second and collects the annotations.
async fn one_run(
    pipeline: &linkner::Pipeline,
    docs: &[Sentence],
    rate: f64,
    seed: u64,
) -> Result<RunOutput, CliError> {
    // Warm the tagger (its first LibTorch call) outside the timed run, on text without
    // entities, so that nothing reaches the LLM or its cache.
    pipeline
        .annotate_batch(&["a", "b c d", "e f g h i"])
        .await?;
    pipeline.reset_stats();
    let schedule = poisson_schedule(docs.len(), rate, seed);
    let (tx, rx) = mpsc::unbounded_channel::<(usize, Sentence)>();
    let input =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|d| (d, rx)) });
    super::bench::reset_peak_rss();
    let cpu0 = super::bench::cpu_seconds();
    let start = tokio::time::Instant::now();
    let mut out = pipeline.stream(input)?;
    let send: Vec<(usize, Sentence, f64)> = docs
        .iter()
        .cloned()
        .enumerate()
        .zip(&schedule)
        .map(|((i, s), &t)| (i, s, t))
        .collect();
    let sender = tokio::spawn(async move {
        for (i, s, t) in send {
            tokio::time::sleep_until(start + Duration::from_secs_f64(t)).await;
            if tx.send((i, s)).is_err() {
                return;
            }
        }
    });
    let mut annotations: Vec<Option<Annotation>> = vec![None; docs.len()];
    let mut latencies_ms = vec![0.0; docs.len()];
    let mut errors = 0;
    let mut last = Instant::now();
    while let Some(item) = out.next().await {
        let now = tokio::time::Instant::now();
        let i = item.id;
        let due = start + Duration::from_secs_f64(schedule[i]);
        latencies_ms[i] = now.saturating_duration_since(due).as_secs_f64() * 1000.0;
        last = Instant::now();
        match item.result {
            Ok(a) => annotations[i] = Some(a),
            Err(e) => {
                tracing::warn!("document {i}: {e}");
                errors += 1;
            }
        }
    }
    sender.await?;
    let wall = last.duration_since(start.into_std());
    let cpu_seconds = match (cpu0, super::bench::cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(RunOutput {
        annotations: fill_missing(annotations, docs),
        errors,
        latencies_ms,
        wall,
        cpu_seconds,
    })
}

/// The arrival times (seconds from the start) of `n` documents: a Poisson process of `rate`
/// arrivals per second, seeded.
fn poisson_schedule(n: usize, rate: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut at = 0.0f64;
    (0..n)
        .map(|_| {
            // Exponential gaps: a Poisson process of `rate` arrivals per second.
            let u: f64 = rng.random::<f64>();
            at += -(1.0 - u).ln() / rate;
            at
        })
        .collect()
}

/// The annotations in document order; an error item stands for a document without entities
/// in the scores.
fn fill_missing(annotations: Vec<Option<Annotation>>, docs: &[Sentence]) -> Vec<Annotation> {
    annotations
        .into_iter()
        .zip(docs)
        .map(|(a, s)| {
            a.unwrap_or_else(|| Annotation {
                sentence: s.clone(),
                entities: Vec::new(),
                rejected: Vec::new(),
                timings: None,
            })
        })
        .collect()
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Off => "LLM off",
        Mode::Llm => "LLM, no budget",
        Mode::Budget => "LLM + budget",
    }
}

fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.d$}"))
}

fn row(r: &StreamRun) -> String {
    let s = &r.stats;
    format!(
        "| {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
        mode_name(r.mode),
        r.rate,
        r.documents,
        r.throughput,
        r.p50_ms,
        r.p95_ms,
        r.p99_ms,
        r.max_ms,
        100.0 * r.local_f1,
        100.0 * r.linked_f1,
        s.routed,
        s.llm_calls(),
        s.budget_skipped,
        s.deadline_missed,
        s.failures + r.errors as u64,
        opt(
            r.cpu_seconds.map(|c| 100.0 * c / r.wall_seconds.max(1e-9)),
            0
        ),
        opt(r.peak_rss_mb, 0),
    )
}

/// The Markdown table of the runs.
fn table(b: &StreamBench) -> String {
    let mut out = format!(
        "stream bench on {} (budget: {})\n\n| mode | rate /s | docs | throughput /s | p50 ms | p95 ms | p99 ms | max ms | local F1 | linked F1 | routed | LLM calls | budget skipped | deadline missed | failed | CPU % | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        b.data.display(),
        b.budget.as_deref().unwrap_or("none"),
    );
    for r in &b.runs {
        out.push_str(&row(r));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
