//! Fine-tune the SpanNER tagger on CoNLL-03 with the library API, then evaluate and save it.
//!
//! ```sh
//! cargo run -p linkner --example train_conll -- [--epochs 5] [--limit N] [--out DIR]
//! ```
//!
//! Data: `$LINKNER_DATA/conll03/conll/{train,dev,test}.txt` (default `../shared/data`). Encoder:
//! all-MiniLM-L6-v2 as `scripts/setup-python.sh` installs it (or `$LINKNER_ENCODER`). This is
//! what `linkner train` does, in a page: read the data, put a new span head on the encoder,
//! train with early stopping on dev F1, score the test set, save one folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use linkner::core::LabelSchema;
use linkner::core::io::{ConllReader, sentences};
use linkner::tagger::train::{EpochReport, TrainObserver};
use linkner::tagger::{
    DeviceSpec, HeadOptions, SpanTagger, TrainConfig, default_encoder_dir, score_tagger, train,
};

/// Prints one line per epoch (the CLI draws a progress bar instead).
struct EpochLines;

impl TrainObserver for EpochLines {
    fn on_epoch(&mut self, r: &EpochReport) {
        println!(
            "epoch {}: loss {:.4}, {:.0} s, dev F1 {}",
            r.epoch,
            r.train_loss,
            r.train_seconds,
            r.dev_f1.map_or("-".into(), |f| format!("{:.2}", 100.0 * f))
        );
    }
}

/// Trains on the first `limit` training sentences (all when `None`) and returns the test F1.
fn run(
    data: &Path,
    epochs: usize,
    limit: Option<usize>,
    out: &Path,
) -> Result<f64, Box<dyn std::error::Error>> {
    let schema = LabelSchema::conll03();
    let read = |name: &str, limit: Option<usize>| -> Result<_, Box<dyn std::error::Error>> {
        let docs = ConllReader::new()
            .schema(Some(schema.clone()))
            .read_path(data.join(name))?;
        let mut s = sentences(docs);
        s.truncate(limit.unwrap_or(usize::MAX));
        Ok(s)
    };
    let (train_set, dev, test) = (
        read("train.txt", limit)?,
        read("dev.txt", limit)?,
        read("test.txt", limit)?,
    );
    println!(
        "{} train, {} dev, {} test sentences",
        train_set.len(),
        dev.len(),
        test.len()
    );
    let encoder = default_encoder_dir().ok_or("MiniLM not found: run scripts/setup-python.sh")?;
    let device = DeviceSpec::Cpu.checked_device()?;
    let (tagger, load) =
        SpanTagger::from_encoder_dir(&encoder, schema, HeadOptions::default(), &device)?;
    println!(
        "encoder: {} tensors loaded, unused: {:?}",
        load.applied.len(),
        load.unused
    );
    let config = TrainConfig {
        epochs,
        ..TrainConfig::default()
    };
    let started = Instant::now();
    let (tagger, report) = train(tagger, &train_set, &dev, &config, &mut EpochLines)?;
    println!(
        "best epoch {} in {:.0} s",
        report.best_epoch,
        started.elapsed().as_secs_f64()
    );
    let scores = score_tagger(&tagger, &test, 64)?;
    println!("{}", scores.table());
    tagger.save(out)?;
    println!("saved to {}", out.display());
    Ok(scores.f1)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut epochs = 5;
    let mut limit = None;
    let mut out = PathBuf::from("models/conll03-minilm");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--epochs" => epochs = value()?.parse()?,
            "--limit" => limit = Some(value()?.parse()?),
            "--out" => out = PathBuf::from(value()?),
            _ => return Err(format!("unknown argument {a} (--epochs, --limit, --out)").into()),
        }
    }
    let data = std::env::var_os("LINKNER_DATA")
        .map_or_else(|| PathBuf::from("../shared/data"), PathBuf::from)
        .join("conll03/conll");
    run(&data, epochs, limit, &out)?;
    Ok(())
}

// `cargo test` runs the example on 64 sentences of each split, one epoch: the plumbing, not the
// accuracy; the saved folder must load and score the same.
#[test]
fn example_runs() {
    let data = std::env::var_os("LINKNER_DATA")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
            PathBuf::from,
        )
        .join("conll03/conll");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let f1 = run(&data, 1, Some(64), &out).unwrap();
    assert!((0.0..=1.0).contains(&f1));
    let loaded = SpanTagger::load(&out, &DeviceSpec::Cpu).unwrap();
    let test = sentences(
        ConllReader::new()
            .schema(Some(LabelSchema::conll03()))
            .read_path(data.join("test.txt"))
            .unwrap(),
    );
    let again = score_tagger(&loaded, &test[..64], 64).unwrap();
    assert!((again.f1 - f1).abs() < 1e-9, "{} vs {f1}", again.f1);
}
