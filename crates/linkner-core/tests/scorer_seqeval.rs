//! The scorer against Python `seqeval` on noisy predictions made from real gold files.
//!
//! From the gold test files in `$LINKNER_DATA` (CoNLL-03, WNUT-17, TwitterNER, WikiGold) a
//! seeded RNG makes many prediction sets: dropped, shifted, relabelled and spurious entities,
//! IOB1 and BIOES renderings, and broken BIO (orphan `I-`, type changes inside a chunk, random
//! tags, swapped tags). All of them go to ONE Python process running seqeval from the project
//! venv in its default mode and in `mode="strict"` (IOB1, IOB2, and IOBES for BIOES data); the micro and
//! per-type precision / recall / F1 / support must equal the Rust scorer's to 1e-9, and where
//! strict seqeval rejects a tag the Rust scorer must reject it too.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::PathBuf;
use std::process::Command;

use linkner_core::io::read_conll;
use linkner_core::score::{Mode, Scorer};
use linkner_core::tags::{chunks, spans_to_tags};
use linkner_core::{TagScheme, WordSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-9;

fn data_dir() -> PathBuf {
    match std::env::var_os("LINKNER_DATA") {
        Some(d) => PathBuf::from(d),
        None => std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../../shared/data"),
    }
}

/// The venv's python: `$LINKNER_VENV/bin/python`, else `$LINKNER_CACHE/venv/bin/python`, else
/// `~/.cache/linkner/venv/bin/python`. Missing → the test fails, telling how to create it.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LINKNER_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LINKNER_CACHE").map(|c| PathBuf::from(c).join("venv")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/linkner/venv")))
        .expect("neither LINKNER_VENV, LINKNER_CACHE nor HOME is set");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} not found: the seqeval reference test needs the project venv; run \
         `bash scripts/setup-python.sh` (or set LINKNER_VENV)",
        python.display()
    );
    python
}

const GOLD_FILES: &[&str] = &[
    "conll03/conll/test.txt",
    "wnut17/emerging.test.annotated",
    "twitterner/test.txt",
    "wikigold/wikigold.conll.txt",
];

/// Gold tag sequences (one per sentence) of a data file, read with the crate's CoNLL reader.
fn gold_tags(rel: &str) -> Vec<Vec<String>> {
    let path = data_dir().join(rel);
    assert!(
        path.exists(),
        "{} not found: the tests need the datasets (set LINKNER_DATA to the shared data folder)",
        path.display()
    );
    let docs = read_conll(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tags: Vec<Vec<String>> = docs
        .into_iter()
        .flat_map(|d| d.sentences)
        .map(|s| s.tags.expect("a CoNLL sentence has tags"))
        .collect();
    assert!(tags.len() > 1000, "{rel}: only {} sentences", tags.len());
    tags
}

/// How a noisy prediction set is made.
#[derive(Debug, Clone, Copy)]
struct Noise {
    /// Per gold entity: probability that it is changed at all.
    entity: f64,
    /// Spurious entities per sentence (expected value).
    spurious: f64,
    /// Per word: probability of a tag-level break (orphan I-, type change, random tag, swap).
    breaks: f64,
    /// Scheme the spans are written in.
    scheme: TagScheme,
    /// Whether random tags may carry `E-`/`S-` prefixes.
    bioes_tags: bool,
}

fn random_type(rng: &mut StdRng, types: &[String]) -> String {
    types[rng.random_range(0..types.len())].clone()
}

fn random_tag(rng: &mut StdRng, types: &[String], bioes: bool) -> String {
    let prefixes: &[&str] = if bioes {
        &["B", "I", "E", "S"]
    } else {
        &["B", "I"]
    };
    if rng.random_bool(0.3) {
        return "O".into();
    }
    let p = prefixes[rng.random_range(0..prefixes.len())];
    format!("{p}-{}", random_type(rng, types))
}

/// One noisy prediction for one gold sentence.
fn noisy(rng: &mut StdRng, gold: &[String], types: &[String], noise: Noise) -> Vec<String> {
    let n = gold.len();
    let mut spans: Vec<WordSpan> = Vec::new();
    for mut s in chunks(gold) {
        if rng.random_bool(noise.entity) {
            match rng.random_range(0..5) {
                0 => continue, // dropped
                1 => {
                    // start shifted
                    if rng.random_bool(0.5) && s.start > 0 {
                        s.start -= 1;
                    } else if s.len() > 1 {
                        s.start += 1;
                    }
                }
                2 => {
                    // end shifted
                    if rng.random_bool(0.5) && s.end < n {
                        s.end += 1;
                    } else if s.len() > 1 {
                        s.end -= 1;
                    }
                }
                3 => s.label = random_type(rng, types), // relabelled
                _ => {
                    // both ends moved
                    s.start = s.start.saturating_sub(1);
                    s.end = (s.end + 1).min(n);
                }
            }
        }
        spans.push(s);
    }
    let mut k = 0.0;
    while k < noise.spurious * 2.0 * rng.random::<f64>() {
        let start = rng.random_range(0..n);
        let end = (start + rng.random_range(1..=4)).min(n);
        spans.push(WordSpan::new(start, end, random_type(rng, types)));
        k += 1.0;
    }
    // Overlapping spans: `spans_to_tags` keeps the first in (start, end) order.
    let mut tags = spans_to_tags(&spans, n, noise.scheme);
    for i in 0..n {
        if !rng.random_bool(noise.breaks) {
            continue;
        }
        match rng.random_range(0..4) {
            0 => {
                // orphan I-: a B- becomes I- (or an O inside becomes I- of a random type)
                if let Some(rest) = tags[i].strip_prefix("B-") {
                    tags[i] = format!("I-{rest}");
                } else if tags[i] == "O" {
                    tags[i] = format!("I-{}", random_type(rng, types));
                }
            }
            1 => {
                // type change inside a chunk
                if let Some((p, _)) = tags[i].split_once('-') {
                    tags[i] = format!("{p}-{}", random_type(rng, types));
                }
            }
            2 => tags[i] = random_tag(rng, types, noise.bioes_tags),
            _ => {
                if i + 1 < n {
                    tags.swap(i, i + 1);
                }
            }
        }
    }
    tags
}

fn entity_types(gold: &[Vec<String>]) -> Vec<String> {
    let mut types: Vec<String> = gold
        .iter()
        .flat_map(|s| chunks(s))
        .map(|s| s.label)
        .collect();
    types.sort();
    types.dedup();
    types
}

/// Rewrites gold tags in BIOES (through their conlleval chunks).
fn to_bioes(gold: &[Vec<String>]) -> Vec<Vec<String>> {
    gold.iter()
        .map(|s| spans_to_tags(&chunks(s), s.len(), TagScheme::Bioes))
        .collect()
}

struct Sample {
    name: String,
    gold: Vec<Vec<String>>,
    pred: Vec<Vec<String>>,
    modes: Vec<Mode>,
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Conlleval => "default",
        Mode::Strict(TagScheme::Iob1) => "strict-iob1",
        Mode::Strict(TagScheme::Iob2) => "strict-iob2",
        Mode::Strict(TagScheme::Bioes) => "strict-iobes",
    }
}

fn make_samples() -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(0x5EC0_E7A1);
    let mut samples = Vec::new();
    let iob = vec![
        Mode::Conlleval,
        Mode::Strict(TagScheme::Iob1),
        Mode::Strict(TagScheme::Iob2),
    ];
    let all = vec![
        Mode::Conlleval,
        Mode::Strict(TagScheme::Iob1),
        Mode::Strict(TagScheme::Iob2),
        Mode::Strict(TagScheme::Bioes),
    ];
    for rel in GOLD_FILES {
        let gold = gold_tags(rel);
        let types = entity_types(&gold);
        let corpus = |rng: &mut StdRng, name: String, gold: &[Vec<String>], noise: Noise| {
            let pred = gold.iter().map(|g| noisy(rng, g, &types, noise)).collect();
            Sample {
                name,
                gold: gold.to_vec(),
                pred,
                modes: if noise.bioes_tags || noise.scheme == TagScheme::Bioes {
                    all.clone()
                } else {
                    iob.clone()
                },
            }
        };
        // The whole file: perfect, moderately noisy IOB2, and IOB1 predictions.
        let base = Noise {
            entity: 0.3,
            spurious: 0.3,
            breaks: 0.02,
            scheme: TagScheme::Iob2,
            bioes_tags: false,
        };
        samples.push(Sample {
            name: format!("{rel}: perfect"),
            gold: gold.clone(),
            pred: gold.clone(),
            modes: iob.clone(),
        });
        samples.push(corpus(&mut rng, format!("{rel}: full iob2"), &gold, base));
        let iob1 = Noise {
            scheme: TagScheme::Iob1,
            ..base
        };
        samples.push(corpus(&mut rng, format!("{rel}: full iob1"), &gold, iob1));
        // Random subsets with noise from none to heavy, IOB1 or IOB2.
        for k in 0..10 {
            let level = k as f64 / 9.0;
            let start = rng.random_range(0..gold.len() - 300);
            let subset = &gold[start..start + 300];
            let noise = Noise {
                entity: level,
                spurious: level,
                breaks: 0.1 * level,
                scheme: if k % 3 == 2 {
                    TagScheme::Iob1
                } else {
                    TagScheme::Iob2
                },
                bioes_tags: false,
            };
            samples.push(corpus(
                &mut rng,
                format!("{rel}: subset {k}"),
                subset,
                noise,
            ));
        }
        // IOB1 gold (B- only between two adjacent entities of one type) and IOB1 predictions:
        // what strict IOB1 is for.
        for k in 0..3 {
            let start = rng.random_range(0..gold.len() - 300);
            let subset: Vec<Vec<String>> = gold[start..start + 300]
                .iter()
                .map(|g| spans_to_tags(&chunks(g), g.len(), TagScheme::Iob1))
                .collect();
            let noise = Noise {
                entity: 0.2 * (k + 1) as f64,
                spurious: 0.2 * (k + 1) as f64,
                breaks: 0.03 * k as f64,
                scheme: TagScheme::Iob1,
                bioes_tags: false,
            };
            if k == 0 {
                samples.push(Sample {
                    name: format!("{rel}: iob1 gold, perfect"),
                    gold: subset.clone(),
                    pred: subset.clone(),
                    modes: iob.clone(),
                });
            }
            samples.push(corpus(
                &mut rng,
                format!("{rel}: iob1 gold {k}"),
                &subset,
                noise,
            ));
        }
        // BIOES gold and predictions (strict IOBES applies; strict IOB2 must reject).
        for k in 0..3 {
            let start = rng.random_range(0..gold.len() - 300);
            let subset = to_bioes(&gold[start..start + 300]);
            let noise = Noise {
                entity: 0.4,
                spurious: 0.4,
                breaks: 0.03 * k as f64,
                scheme: TagScheme::Bioes,
                bioes_tags: true,
            };
            samples.push(corpus(
                &mut rng,
                format!("{rel}: bioes {k}"),
                &subset,
                noise,
            ));
        }
        // Tiny samples with heavy noise: zero divisions, types seen on one side only.
        for k in 0..30 {
            let m = rng.random_range(1..=3);
            let start = rng.random_range(0..gold.len() - m);
            let subset = &gold[start..start + m];
            let noise = Noise {
                entity: 0.8,
                spurious: rng.random_range(0.0..2.0),
                breaks: 0.3,
                scheme: TagScheme::Iob2,
                bioes_tags: k % 2 == 1,
            };
            samples.push(corpus(&mut rng, format!("{rel}: tiny {k}"), subset, noise));
        }
    }
    // Tag soup on both sides: every prefix and type in any order.
    let types: Vec<String> = ["PER", "LOC", "creative-work"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for k in 0..40 {
        let bioes = k % 2 == 0;
        let soup = |rng: &mut StdRng| -> Vec<Vec<String>> {
            (0..rng.random_range(1..12))
                .map(|_| {
                    (0..rng.random_range(1..15))
                        .map(|_| random_tag(rng, &types, bioes))
                        .collect()
                })
                .collect()
        };
        let gold = soup(&mut rng);
        let pred = gold
            .iter()
            .map(|g| {
                if rng.random_bool(0.5) {
                    g.clone()
                } else {
                    (0..g.len())
                        .map(|_| random_tag(&mut rng, &types, bioes))
                        .collect()
                }
            })
            .collect();
        samples.push(Sample {
            name: format!("soup {k}"),
            gold,
            pred,
            modes: all.clone(),
        });
    }
    samples
}

const PYTHON: &str = r#"
import json, sys, warnings
from importlib.metadata import version
warnings.filterwarnings("ignore")
if version("seqeval") != "1.2.2":
    sys.exit("seqeval %s is installed; the reference is seqeval==1.2.2 (pinned in "
             "scripts/setup-python.sh)" % version("seqeval"))
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as prfs_default
from seqeval.metrics.v1 import precision_recall_fscore_support as prfs_strict
from seqeval.scheme import Entities, IOB1, IOB2, IOBES

SCHEMES = {"strict-iob1": IOB1, "strict-iob2": IOB2, "strict-iobes": IOBES}

def row(p, r, f, s):
    return [float(p), float(r), float(f), int(s)]

def score(gold, pred, mode):
    if mode == "default":
        names = sorted({t for t, _, _ in get_entities(gold)} | {t for t, _, _ in get_entities(pred)})
        per = prfs_default(gold, pred, average=None)
        micro = prfs_default(gold, pred, average="micro")
    else:
        scheme = SCHEMES[mode]
        try:
            et, ep = Entities(gold, scheme), Entities(pred, scheme)
        except (ValueError, KeyError, IndexError) as e:
            return {"error": repr(e)}
        names = sorted(et.unique_tags | ep.unique_tags)
        kw = dict(scheme=scheme, entities_true=et, entities_pred=ep)
        per = prfs_strict(gold, pred, average=None, **kw)
        micro = prfs_strict(gold, pred, average="micro", **kw)
    labels = {n: row(*v) for n, *v in zip(names, *per)}
    return {"micro": row(*micro), "labels": labels}

samples = json.load(open(sys.argv[1]))
out = [{m: score(s["gold"], s["pred"], m) for m in s["modes"]} for s in samples]
json.dump(out, sys.stdout)
"#;

fn rust_scores(sample: &Sample, mode: Mode) -> Result<Value, String> {
    let mut scorer = Scorer::new(mode);
    for (g, p) in sample.gold.iter().zip(&sample.pred) {
        scorer.add_tags(g, p).map_err(|e| e.to_string())?;
    }
    let s = scorer.finish();
    let labels: serde_json::Map<String, Value> = s
        .per_label
        .iter()
        .map(|(k, v)| (k.clone(), json!([v.precision, v.recall, v.f1, v.support])))
        .collect();
    Ok(json!({"micro": [s.precision, s.recall, s.f1, s.support], "labels": labels}))
}

fn close(a: &Value, b: &Value) -> bool {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    a.len() == 4
        && b.len() == 4
        && (0..3).all(|i| (a[i].as_f64().unwrap() - b[i].as_f64().unwrap()).abs() <= TOLERANCE)
        && a[3].as_u64() == b[3].as_u64()
}

/// Counts the ill-formed transitions the generator produced, to prove they are covered.
fn ill_formed(samples: &[Sample]) -> (usize, usize) {
    let (mut orphans, mut type_changes) = (0, 0);
    for s in samples {
        for tags in &s.pred {
            let mut prev = "O";
            for t in tags {
                if let Some(ty) = t.strip_prefix("I-") {
                    match prev.split_once('-') {
                        None => orphans += 1,
                        Some((_, pty)) if pty != ty => type_changes += 1,
                        _ => {}
                    }
                }
                prev = t;
            }
        }
    }
    (orphans, type_changes)
}

#[test]
fn scorer_matches_seqeval_on_noisy_predictions() {
    let python = venv_python();
    let samples = make_samples();
    let (orphans, type_changes) = ill_formed(&samples);
    assert!(
        orphans > 1000 && type_changes > 1000,
        "generator made too few ill-formed sequences: {orphans} orphans, {type_changes} type changes"
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("samples.json");
    let payload: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "gold": s.gold,
                "pred": s.pred,
                "modes": s.modes.iter().map(|&m| mode_name(m)).collect::<Vec<_>>(),
            })
        })
        .collect();
    std::fs::write(&input, serde_json::to_vec(&payload).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(PYTHON)
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "seqeval run failed ({}); run `bash scripts/setup-python.sh`. stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reference.len(), samples.len());

    let mut failures = Vec::new();
    let (mut compared, mut rejected, mut entities) = (0usize, 0usize, 0u64);
    let mut compared_iob1 = 0usize;
    for (sample, reference) in samples.iter().zip(&reference) {
        for &mode in &sample.modes {
            let want = &reference[mode_name(mode)];
            let got = rust_scores(sample, mode);
            let tag = format!("{} [{}]", sample.name, mode_name(mode));
            match (want.get("error"), got) {
                (Some(_), Err(_)) => rejected += 1,
                (Some(e), Ok(_)) => {
                    failures.push(format!("{tag}: seqeval rejected ({e}), Rust scored"))
                }
                (None, Err(e)) => {
                    failures.push(format!("{tag}: Rust rejected ({e}), seqeval scored"))
                }
                (None, Ok(got)) => {
                    compared += 1;
                    if mode == Mode::Strict(TagScheme::Iob1) {
                        compared_iob1 += 1;
                    }
                    entities += want["micro"][3].as_u64().unwrap();
                    if !close(&got["micro"], &want["micro"]) {
                        failures.push(format!(
                            "{tag}: micro {} != seqeval {}",
                            got["micro"], want["micro"]
                        ));
                    }
                    let (g, w) = (
                        got["labels"].as_object().unwrap(),
                        want["labels"].as_object().unwrap(),
                    );
                    let (gk, wk): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
                    if gk != wk {
                        failures.push(format!("{tag}: types {gk:?} != seqeval {wk:?}"));
                        continue;
                    }
                    for (k, v) in g {
                        if !close(v, &w[k]) {
                            failures.push(format!("{tag}: {k} {v} != seqeval {}", w[k]));
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with seqeval (of {} comparisons), first ones:\n{}",
        failures.len(),
        compared + rejected + failures.len(),
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Enough real comparisons happened, and strict mode did reject some BIOES input.
    assert!(compared >= 400, "only {compared} comparisons");
    assert!(
        compared_iob1 >= 150,
        "only {compared_iob1} strict IOB1 comparisons"
    );
    assert!(rejected >= 10, "only {rejected} strict rejections");
    assert!(entities > 100_000, "only {entities} gold entities compared");
    eprintln!(
        "{} samples: {compared} score comparisons ({compared_iob1} strict IOB1) and {rejected} \
         agreed rejections, {entities} \
         gold entities; {orphans} orphan I- and {type_changes} type changes in predictions",
        samples.len()
    );
}
