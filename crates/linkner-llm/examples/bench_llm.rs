//! Accuracy and throughput of the LLM classifier on CoNLL-03 dev, against a naive client.
//!
//! Items: gold entities of CoNLL-03 dev sentences (given the gold span) plus capitalised
//! non-entity distractors (about one in five), drawn with a seed. Few-shot examples come from
//! CoNLL-03 train.
//!
//! ```text
//! scripts/llm-server.sh start quality 8181
//! cargo run --release -p linkner-llm --example bench_llm -- \
//!     --url http://127.0.0.1:8181/v1 --entities 120 --distractors 30 --runs all
//! ```
//!
//! Options: `--data DEV` `--train TRAIN` `--url URL` `--model NAME` `--entities N`
//! `--distractors N` `--seed S` `--k K` (examples per type for the runs "with examples")
//! `--runs all|naive,logprobs,constrained,free_text,logprobs+ex,...` `--naive-items N` (the naive
//! client classifies only the first N items; default all) `--json FILE`.
//!
//! The naive client mimics the official LinkNER code: one request per entity, sequential, free
//! text at temperature 0.3, one random example per type redrawn for every entity and placed at
//! the start of the prompt (so the prompt prefix changes every time and no server cache helps),
//! and a lenient parser (the first label name found anywhere in the answer).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linkner_core::{LabelSchema, Sentence, tags};
use linkner_llm::{
    AnswerMode, ClassifyRequest, Example, ExamplePool, LlmClassifier, OpenAiClassifier,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    data: PathBuf,
    train: PathBuf,
    url: String,
    model: String,
    entities: usize,
    distractors: usize,
    seed: u64,
    k: usize,
    runs: Vec<String>,
    naive_items: Option<usize>,
    json: Option<PathBuf>,
}

fn data_dir() -> PathBuf {
    std::env::var_os("LINKNER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(
                std::env::var_os("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../../shared/data")
        })
}

fn parse_args() -> Result<Args, BoxError> {
    let d = data_dir().join("conll03/conll");
    let mut a = Args {
        data: d.join("dev.txt"),
        train: d.join("train.txt"),
        url: std::env::var("LINKNER_LLM_URL").unwrap_or_else(|_| "http://127.0.0.1:8181/v1".into()),
        model: std::env::var("LINKNER_LLM_MODEL")
            .unwrap_or_else(|_| "qwen2.5-coder-1.5b-instruct-q4_k_m".into()),
        entities: 120,
        distractors: 30,
        seed: 13,
        k: 2,
        runs: vec!["all".into()],
        naive_items: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = val()?.into(),
            "--train" => a.train = val()?.into(),
            "--url" => a.url = val()?,
            "--model" => a.model = val()?,
            "--entities" => a.entities = val()?.parse()?,
            "--distractors" => a.distractors = val()?.parse()?,
            "--seed" => a.seed = val()?.parse()?,
            "--k" => a.k = val()?.parse()?,
            "--runs" => a.runs = val()?.split(',').map(String::from).collect(),
            "--naive-items" => a.naive_items = Some(val()?.parse()?),
            "--json" => a.json = Some(val()?.into()),
            "-h" | "--help" => {
                println!("see the doc comment of crates/linkner-llm/examples/bench_llm.rs");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(a)
}

/// Minimal reader of a CoNLL column file (word first, tag last); `-DOCSTART-` skipped.
fn read_conll(path: &Path) -> Result<Vec<Sentence>, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let (mut words, mut tgs): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut flush = |words: &mut Vec<String>, tgs: &mut Vec<String>| {
        if !words.is_empty() {
            let mut s = Sentence::from_words(words);
            s.spans = tags::chunks(tgs);
            out.push(s);
        }
        words.clear();
        tgs.clear();
    };
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first().is_none_or(|c| *c == "-DOCSTART-") {
            flush(&mut words, &mut tgs);
        } else if cols.len() >= 2 {
            words.push(cols[0].to_string());
            tgs.push(cols[cols.len() - 1].to_string());
        }
    }
    flush(&mut words, &mut tgs);
    Ok(out)
}

struct Item {
    request: ClassifyRequest,
    gold: usize,
}

fn build_items(
    sentences: &[Sentence],
    schema: &Arc<LabelSchema>,
    args: &Args,
) -> Result<Vec<Item>, BoxError> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let pool = ExamplePool::from_sentences(sentences, schema);
    let mut ents: Vec<&Example> = pool.examples.iter().filter(|e| e.class > 0).collect();
    let mut dis: Vec<&Example> = pool.examples.iter().filter(|e| e.class == 0).collect();
    ents.shuffle(&mut rng);
    dis.shuffle(&mut rng);
    let mut items = Vec::new();
    for e in ents
        .into_iter()
        .take(args.entities)
        .chain(dis.into_iter().take(args.distractors))
    {
        // Gold spans are word spans; find the entity as a whole-word occurrence.
        let request = ClassifyRequest::find(e.sentence.clone(), &e.entity, schema.clone())?;
        items.push(Item {
            request,
            gold: e.class,
        });
    }
    items.shuffle(&mut rng);
    Ok(items)
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct RunResult {
    name: String,
    items: usize,
    correct: usize,
    failures: usize,
    non_entity_answers: usize,
    seconds: f64,
    prompt_tokens: u64,
    cached_prompt_tokens: u64,
    completion_tokens: u64,
}

impl RunResult {
    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.items.max(1) as f64
    }
    fn per_s(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }
}

async fn run_linkner(
    name: &str,
    items: &[Item],
    args: &Args,
    mode: AnswerMode,
    examples: Vec<Example>,
) -> Result<RunResult, BoxError> {
    let llm = OpenAiClassifier::builder()
        .base_url(&args.url)
        .model(&args.model)
        .mode(mode)
        .examples(examples)
        .max_in_flight(4)
        .timeout(Duration::from_secs(300))
        .cache(true)
        .build()?;
    let reqs: Vec<ClassifyRequest> = items.iter().map(|i| i.request.clone()).collect();
    let t = Instant::now();
    let answers = llm.classify_batch(&reqs).await;
    let seconds = t.elapsed().as_secs_f64();
    let mut r = RunResult {
        name: name.into(),
        items: items.len(),
        seconds,
        ..Default::default()
    };
    for (a, item) in answers.iter().zip(items) {
        match a {
            Ok(a) => {
                r.correct += usize::from(a.class == item.gold);
                r.non_entity_answers += usize::from(a.class == 0);
            }
            Err(e) => {
                r.failures += 1;
                eprintln!("  {name}: {:?}: {e}", item.request.entity());
            }
        }
    }
    if let Some(st) = llm.stats() {
        r.prompt_tokens = st.prompt_tokens;
        r.cached_prompt_tokens = st.cached_prompt_tokens;
        r.completion_tokens = st.completion_tokens;
    }
    Ok(r)
}

/// The naive client: sequential, free text at T 0.3, examples redrawn per entity at the start.
async fn run_naive(
    items: &[Item],
    args: &Args,
    pool: &ExamplePool,
    schema: &LabelSchema,
) -> Result<RunResult, BoxError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let url = format!("{}/chat/completions", args.url.trim_end_matches('/'));
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let by_type: Vec<Vec<&Example>> = (1..schema.num_classes())
        .map(|c| pool.examples.iter().filter(|e| e.class == c).collect())
        .collect();
    let names: Vec<&str> = schema.types.iter().map(|t| t.llm_name.as_str()).collect();
    let mut r = RunResult {
        name: "naive (official style)".into(),
        items: items.len(),
        ..Default::default()
    };
    let t = Instant::now();
    for item in items {
        let mut prompt = String::from("Here are some examples:\n");
        for (c, exs) in by_type.iter().enumerate() {
            if let Some(e) = exs.choose(&mut rng) {
                prompt.push_str(&format!(
                    "Sentence: {}\nEntity: {}\nType: {}\n\n",
                    e.sentence, e.entity, names[c]
                ));
            }
        }
        prompt.push_str(&format!(
            "Given entity label set: [{}].\n",
            names.join(", ")
        ));
        for ty in &schema.types {
            prompt.push_str(&format!("{}: {}\n", ty.llm_name, ty.description));
        }
        prompt.push_str(&format!(
            "If the span is not an entity, answer \"{}\".\nSentence: {}\nEntity: {}\nWhat is the type of the entity? Answer:",
            schema.non_entity.llm_name, item.request.sentence(), item.request.entity()
        ));
        let body = serde_json::json!({
            "model": args.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.3,
            "max_tokens": 24,
        });
        let resp = http.post(&url).json(&body).send().await;
        let v: serde_json::Value = match resp {
            Ok(resp) => resp.json().await.unwrap_or_default(),
            Err(e) => {
                eprintln!("  naive: {e}");
                r.failures += 1;
                continue;
            }
        };
        let content = v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_lowercase();
        r.prompt_tokens += v["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
        r.completion_tokens += v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        r.cached_prompt_tokens += v["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .or_else(|| v["timings"]["cache_n"].as_u64())
            .unwrap_or(0);
        // Lenient: the label name that occurs first in the answer.
        let class = std::iter::once(&schema.non_entity)
            .chain(schema.types.iter())
            .enumerate()
            .filter_map(|(i, t)| content.find(&t.llm_name.to_lowercase()).map(|p| (p, i)))
            .min()
            .map(|(_, i)| i);
        match class {
            Some(c) => {
                r.correct += usize::from(c == item.gold);
                r.non_entity_answers += usize::from(c == 0);
            }
            None => r.failures += 1,
        }
    }
    r.seconds = t.elapsed().as_secs_f64();
    Ok(r)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let schema = Arc::new(LabelSchema::conll03());
    let dev = read_conll(&args.data)?;
    let train = read_conll(&args.train)?;
    let items = build_items(&dev, &schema, &args)?;
    let pool = ExamplePool::from_sentences(&train, &schema);
    let fixed = pool.draw(schema.num_classes(), args.k, args.seed);
    eprintln!(
        "{} items ({} entities + {} distractors) from {}; {} fixed examples; server {} model {}",
        items.len(),
        items.iter().filter(|i| i.gold > 0).count(),
        items.iter().filter(|i| i.gold == 0).count(),
        args.data.display(),
        fixed.len(),
        args.url,
        args.model
    );
    let all = args.runs.iter().any(|r| r == "all");
    let want = |n: &str| all || args.runs.iter().any(|r| r == n);
    let mut results = Vec::new();
    let runs: Vec<(&str, AnswerMode, bool)> = vec![
        ("logprobs+ex", AnswerMode::default(), true),
        ("constrained+ex", AnswerMode::Constrained, true),
        ("free_text+ex", AnswerMode::FreeText, true),
        ("logprobs", AnswerMode::default(), false),
        ("constrained", AnswerMode::Constrained, false),
        ("free_text", AnswerMode::FreeText, false),
    ];
    for (name, mode, ex) in runs {
        if !want(name) {
            continue;
        }
        let examples = if ex { fixed.clone() } else { Vec::new() };
        let r = run_linkner(name, &items, &args, mode, examples).await?;
        eprintln!(
            "{name}: accuracy {:.3}, {:.3} entities/s, {:.0} prompt tokens/entity ({:.0} cached)",
            r.accuracy(),
            r.per_s(),
            r.prompt_tokens as f64 / r.items as f64,
            r.cached_prompt_tokens as f64 / r.items as f64
        );
        results.push(r);
    }
    if want("naive") {
        let n = args.naive_items.unwrap_or(items.len()).min(items.len());
        let r = run_naive(&items[..n], &args, &pool, &schema).await?;
        eprintln!(
            "naive: accuracy {:.3}, {:.3} entities/s",
            r.accuracy(),
            r.per_s()
        );
        results.push(r);
    }

    println!(
        "| run | items | accuracy | non-entity answers | failures | entities/s | prompt tokens / entity | reused from server cache / entity | completion tokens / entity |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        let n = r.items.max(1) as f64;
        println!(
            "| {} | {} | {:.3} | {} | {} | {:.3} | {:.0} | {:.0} | {:.1} |",
            r.name,
            r.items,
            r.accuracy(),
            r.non_entity_answers,
            r.failures,
            r.per_s(),
            r.prompt_tokens as f64 / n,
            r.cached_prompt_tokens as f64 / n,
            r.completion_tokens as f64 / n
        );
    }
    if let (Some(naive), Some(best)) = (
        results.iter().find(|r| r.name.starts_with("naive")),
        results.iter().find(|r| r.name == "logprobs+ex"),
    ) {
        println!(
            "\nthroughput linkner (logprobs+ex, 4 in flight, cache on) / naive: {:.2}x",
            best.per_s() / naive.per_s().max(1e-9)
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    Ok(())
}
