//! The SpanNER tagger end to end on a tiny random encoder with the MiniLM tokenizer:
//! Monte-Carlo dropout, windowing of long sentences, checkpoints, and learning a toy set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod common;

use std::collections::HashSet;

use burn::tensor::Device;
use linkner_core::{LabelSchema, Sentence, WordSpan};
use linkner_core::{LocalTagger, PredictOptions};
use linkner_tagger::encoder::{EncoderConfig, EncoderKind};
use linkner_tagger::internals::{SpanTaggerInternals, SubwordTokenizer};
use linkner_tagger::span::SpanNerConfig;
use linkner_tagger::{
    DeviceSpec, DocumentContext, LossConfig, SpanTagger, TaggerConfig, TrainConfig, score_tagger,
    train,
};

/// The tests share LibTorch's global random generator (initialisation, dropout): they run one
/// at a time so that each is reproducible.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_tagger(device: Device, max_tokens: usize) -> SpanTagger {
    // One LibTorch thread: these tiny models gain nothing from more, and busy-waiting OpenMP
    // workers slow a shared machine down.
    linkner_tagger::set_threads(1).unwrap();
    device.seed(7);
    let tokenizer =
        SubwordTokenizer::from_file(&common::minilm_dir().join("tokenizer.json")).unwrap();
    let encoder = EncoderConfig::new(EncoderKind::Bert, 30522, 32, 2, 4, 64, 64)
        .with_hidden_dropout(0.1)
        .with_attention_dropout(0.1);
    let schema = LabelSchema::conll03();
    let model_config = SpanNerConfig::new(encoder, schema.num_classes())
        .with_width_dim(8)
        .with_hidden_dim(32)
        .with_head_dropout(0.3);
    let model = model_config.init(&device);
    SpanTagger::from_parts(
        model,
        TaggerConfig {
            model: model_config,
            schema,
            max_tokens,
            window_context: 2,
            evidential: None,
            document_context: DocumentContext::off(),
        },
        tokenizer,
        device,
    )
}

/// A sentence and its gold entities `(first word, end word, type)`.
type Toy = (&'static str, &'static [(usize, usize, &'static str)]);

fn toy_set() -> Vec<Sentence> {
    let data: &[Toy] = &[
        (
            "John Smith lives in Paris .",
            &[(0, 2, "PER"), (4, 5, "LOC")],
        ),
        (
            "Mary works for Google in London .",
            &[(0, 1, "PER"), (3, 4, "ORG"), (5, 6, "LOC")],
        ),
        ("The German team won .", &[(1, 2, "MISC")]),
        (
            "Peter visited Berlin yesterday .",
            &[(0, 1, "PER"), (2, 3, "LOC")],
        ),
        (
            "Microsoft and Apple signed a deal .",
            &[(0, 1, "ORG"), (2, 3, "ORG")],
        ),
        ("it rained all day .", &[]),
        (
            "Anna Karenina met French officials in Moscow .",
            &[(0, 2, "PER"), (3, 4, "MISC"), (6, 7, "LOC")],
        ),
        ("nothing happened here today .", &[]),
    ];
    data.iter()
        .map(|(text, spans)| {
            let words: Vec<&str> = text.split(' ').collect();
            let mut s = Sentence::from_words(&words);
            s.spans = spans
                .iter()
                .map(|(a, b, l)| WordSpan::new(*a, *b, *l))
                .collect();
            s
        })
        .collect()
}

#[test]
fn monte_carlo_samples_differ_and_the_deterministic_pass_does_not() {
    let _guard = serial();
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64);
    let sentences = toy_set();
    let opts = PredictOptions {
        mc_samples: 4,
        ..PredictOptions::default()
    };
    let a = tagger.score_spans(&sentences[..2], &opts).unwrap();
    let b = tagger.score_spans(&sentences[..2], &opts).unwrap();
    let span = &a[0][0];
    assert_eq!(span.mc_probs.len(), 4);
    // Deterministic pass: identical logits on repeated calls.
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert_eq!(x.logits, y.logits);
    }
    // Stochastic passes: samples differ from each other and from the deterministic probs.
    let distinct: HashSet<Vec<u32>> = span
        .mc_probs
        .iter()
        .map(|p| p.iter().map(|x| x.to_bits()).collect())
        .collect();
    assert_eq!(
        distinct.len(),
        4,
        "MC samples are identical: {:?}",
        span.mc_probs
    );
    assert!(span.mc_probs.iter().all(|p| p != &span.probs));
    for p in &span.mc_probs {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    // With the encoder stochastic too, the samples still differ.
    let enc = PredictOptions {
        mc_samples: 2,
        mc_encoder: true,
        ..PredictOptions::default()
    };
    let c = tagger.score_spans(&sentences[..1], &enc).unwrap();
    assert_ne!(c[0][0].mc_probs[0], c[0][0].mc_probs[1]);
}

#[test]
fn long_sentences_are_windowed_without_losing_or_duplicating_spans() {
    let _guard = serial();
    // 16 tokens per window (14 without [CLS]/[SEP]) for a 60-word sentence.
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 16);
    let words: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
    let s = Sentence::from_words(&words);
    let items = tagger.prepare(std::slice::from_ref(&s)).unwrap();
    assert!(
        items.len() > 2,
        "expected several windows, got {}",
        items.len()
    );
    assert!(items.iter().all(|i| i.enc.ids.len() <= 16));
    let scored = tagger
        .score_spans(&[s], &PredictOptions::default())
        .unwrap();
    let got: Vec<(usize, usize)> = scored[0].iter().map(|x| (x.start, x.end)).collect();
    let mut want = Vec::new();
    for a in 0..60 {
        for b in a + 1..=(a + 5).min(60) {
            want.push((a, b));
        }
    }
    assert_eq!(got, want);
}

/// Document context packing cores of up to 12 sub-tokens with 6 of context on each side.
fn small_context() -> DocumentContext {
    DocumentContext {
        enabled: true,
        core_tokens: 12,
        margin_tokens: 6,
    }
}

fn max_logit_diff(
    a: &[Vec<linkner_tagger::ScoredSpan>],
    b: &[Vec<linkner_tagger::ScoredSpan>],
) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            assert_eq!((p.start, p.end), (q.start, q.end));
            for (l, m) in p.logits.iter().zip(&q.logits) {
                worst = worst.max((l - m).abs());
            }
        }
    }
    worst
}

#[test]
fn document_context_fills_windows_with_neighbouring_sentences() {
    let _guard = serial();
    let doc = toy_set();
    let docs: Vec<&[Sentence]> = vec![&doc[..5], &doc[5..]];
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64).with_document_context(small_context());
    let items = tagger.prepare_documents(&docs).unwrap();
    assert!(
        items.len() < doc.len(),
        "{} windows for {} sentences",
        items.len(),
        doc.len()
    );
    assert!(items.iter().any(|i| i.sentences > 1));
    assert!(items.iter().all(|i| i.enc.ids.len() <= 64));
    let w = |i: &linkner_tagger::internals::WindowItem| i.enc.window;
    assert!(
        items
            .iter()
            .any(|i| w(i).word_start < w(i).core_start || w(i).word_end > w(i).core_end),
        "no window carries context words"
    );
    // Spans never cross a sentence nor a document: every span of every sentence, once.
    let with = tagger
        .score_documents(&docs, &PredictOptions::default())
        .unwrap();
    assert_eq!(with.len(), doc.len());
    for (k, s) in doc.iter().enumerate() {
        let got: Vec<(usize, usize)> = with[k].iter().map(|x| (x.start, x.end)).collect();
        let n = s.len();
        let want: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (a + 1..=(a + 5).min(n)).map(move |b| (a, b)))
            .collect();
        assert_eq!(got, want, "sentence {k}");
    }
    // The context changes the scores; switched off, the documents' sentences are scored exactly
    // as sentences alone.
    let alone = tagger
        .score_spans(&doc, &PredictOptions::default())
        .unwrap();
    assert!(
        max_logit_diff(&with, &alone) > 1e-3,
        "context made no difference"
    );
    let off = tagger.clone().with_document_context(DocumentContext::off());
    let off_docs = off
        .score_documents(&docs, &PredictOptions::default())
        .unwrap();
    assert!(max_logit_diff(&off_docs, &alone) < 1e-5);
    // tag_documents answers each sentence of each document.
    let documents: Vec<linkner_core::Document> = docs
        .iter()
        .map(|d| linkner_core::Document {
            id: None,
            sentences: d.to_vec(),
        })
        .collect();
    let tagged = tagger
        .tag_documents(
            &documents,
            &PredictOptions {
                overlapping: true,
                ..PredictOptions::default()
            },
        )
        .unwrap();
    assert_eq!(tagged.len(), 2);
    assert_eq!((tagged[0].len(), tagged[1].len()), (5, doc.len() - 5));
    for (d, sentences) in tagged.iter().zip(&documents) {
        for (cands, s) in d.iter().zip(&sentences.sentences) {
            for c in cands {
                assert!(c.span.end <= s.len());
                assert_eq!(
                    c.entity.text,
                    s.char_slice(c.entity.start, c.entity.end).unwrap()
                );
            }
        }
    }
}

#[test]
fn pipelined_scoring_gives_the_sequential_scores() {
    let _guard = serial();
    let doc = toy_set();
    // Chunks of 8 × batch 1 sentences: two chunks, so the second is prepared while the first runs.
    let opts = PredictOptions {
        batch_size: 1,
        mc_samples: 0,
        ..PredictOptions::default()
    };
    for context in [DocumentContext::off(), small_context()] {
        let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64).with_document_context(context);
        // 17 sentences: the last chunk is a partial one.
        let docs: Vec<&[Sentence]> = vec![
            &doc[..3],
            &doc[3..5],
            &doc[5..],
            &doc[..4],
            &doc[4..],
            &doc[..1],
        ];
        let seq = tagger.score_documents(&docs, &opts).unwrap();
        let piped = tagger.score_pipelined(&docs, &opts, true).unwrap();
        assert_eq!(seq.len(), 2 * doc.len() + 1);
        assert!(max_logit_diff(&seq, &piped) < 1e-5);
        // Keeping only the entity-argmax spans keeps exactly those of the full list.
        let kept = tagger.score_pipelined(&docs, &opts, false).unwrap();
        for (all, some) in seq.iter().zip(&kept) {
            let want: Vec<(usize, usize)> = all
                .iter()
                .filter(|s| {
                    let best = s
                        .probs
                        .iter()
                        .copied()
                        .enumerate()
                        .fold((0, f32::MIN), |a, (i, p)| if p > a.1 { (i, p) } else { a });
                    best.0 != 0
                })
                .map(|s| (s.start, s.end))
                .collect();
            let got: Vec<(usize, usize)> = some.iter().map(|s| (s.start, s.end)).collect();
            assert_eq!(got, want);
        }
    }
}

#[test]
fn concurrent_streams_give_the_single_stream_results() {
    let _guard = serial();
    let doc = toy_set();
    let opts = PredictOptions {
        batch_size: 1,
        ..PredictOptions::default()
    };
    for context in [DocumentContext::off(), small_context()] {
        let one = tiny_tagger(DeviceSpec::Cpu.device(), 64)
            .with_document_context(context)
            .with_streams(1);
        linkner_tagger::set_threads(2).unwrap();
        // Streams are a LibTorch CPU feature; without `tch` the CPU device is `flex`, which
        // runs one stream (and LibTorch's thread count is 1).
        let tch = cfg!(feature = "tch");
        let t = if tch { 2 } else { 1 };
        assert_eq!(linkner_tagger::threads(), t);
        let three = one.clone().with_streams(3);
        assert_eq!(one.stream_plan(&opts, 10), (1, t));
        let (three_plan, two_plan) = if tch {
            ((3, 1), (2, 1))
        } else {
            ((1, 1), (1, 1))
        };
        assert_eq!(three.stream_plan(&opts, 10), three_plan);
        assert_eq!(
            three.stream_plan(&opts, 2),
            two_plan,
            "no more streams than batches"
        );
        let mc = PredictOptions {
            mc_samples: 2,
            ..opts
        };
        assert_eq!(
            three.stream_plan(&mc, 10).0,
            1,
            "Monte-Carlo passes run one stream"
        );
        let docs: Vec<&[Sentence]> = vec![&doc[..3], &doc[3..5], &doc[5..], &doc[..4]];
        // Tokenizing in parts gives the same windows in the same order.
        let items_one = one.prepare_documents(&docs).unwrap();
        let items_three = three.prepare_documents(&docs).unwrap();
        assert!(!items_one.is_empty());
        assert_eq!(items_one.len(), items_three.len());
        for (a, b) in items_one.iter().zip(&items_three) {
            assert_eq!(a.enc.ids, b.enc.ids);
            assert_eq!(a.spans, b.spans);
            assert_eq!(a.span_sentence, b.span_sentence);
        }
        let seq = one.score_documents(&docs, &opts).unwrap();
        let streamed = three.score_documents(&docs, &opts).unwrap();
        assert_eq!(seq.len(), 12);
        assert!(seq.iter().any(|s| !s.is_empty()));
        assert!(max_logit_diff(&seq, &streamed) < 1e-5);
        let plain = PredictOptions {
            overlapping: true,
            ..opts
        };
        let a = one.tag_sentences(&doc, &plain).unwrap();
        let b = three.tag_sentences(&doc, &plain).unwrap();
        assert_eq!(a.len(), doc.len());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let spans = |c: &[linkner_core::Candidate]| -> Vec<WordSpan> {
                c.iter().map(|c| c.span.clone()).collect()
            };
            assert_eq!(spans(x), spans(y));
        }
        // The encoder-only timing path runs in streams too.
        let batches = three.build_batches(&items_three, &[vec![0], vec![1], vec![2]]);
        assert_eq!(three.encode_all(&batches).unwrap(), 3);
        // The workers' one-thread count does not outlive the pass: a new thread starts with
        // the count set before it.
        assert_eq!(
            std::thread::spawn(linkner_tagger::threads).join().unwrap(),
            t
        );
        assert_eq!(linkner_tagger::threads(), t);
        // A failing batch in one stream is the pass's error, not a panic.
        let err = three
            .score_batches(
                &items_three,
                &[vec![0], vec![1], vec![99], vec![2]],
                doc.len(),
            )
            .unwrap_err();
        assert!(err.to_string().contains("window 99"), "{err}");
    }
}

#[test]
fn learns_a_toy_set_with_document_context() {
    let _guard = serial();
    let data = toy_set();
    let docs = vec![
        linkner_core::Document {
            id: None,
            sentences: data[..4].to_vec(),
        },
        linkner_core::Document {
            id: None,
            sentences: data[4..].to_vec(),
        },
    ];
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64).with_document_context(small_context());
    let (tagger, report) = linkner_tagger::train_documents(
        tagger,
        &docs,
        &docs,
        &quick_config(LossConfig::Ce),
        &mut linkner_tagger::train::Silent,
    )
    .unwrap();
    assert_eq!(tagger.config().document_context, small_context());
    let f1 = linkner_tagger::score_tagger_documents(&tagger, &docs, 8)
        .unwrap()
        .f1;
    assert!(f1 >= 0.9, "toy F1 with document context {f1}");
    assert!(report.epochs.iter().all(|e| e.dev_f1.is_some()));
}

#[test]
fn raw_text_candidates_point_into_the_original_string() {
    let _guard = serial();
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64);
    let text = "Zoë Müller  flew to 東京 with 👩\u{200D}🚀 crew.";
    let opts = PredictOptions {
        overlapping: true,
        ..PredictOptions::default()
    };
    let out = tagger.tag_texts(&[text], &opts).unwrap();
    let (sentence, cands) = &out[0];
    let chars: Vec<char> = text.chars().collect();
    for t in &sentence.tokens {
        assert_eq!(t.text, chars[t.start..t.end].iter().collect::<String>());
    }
    for c in cands {
        assert_eq!(
            c.entity.text,
            chars[c.entity.start..c.entity.end]
                .iter()
                .collect::<String>()
        );
        assert_eq!(c.probs.len(), 5);
        assert_ne!(c.class, 0);
    }
}

#[test]
fn checkpoints_round_trip() {
    let _guard = serial();
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64).with_document_context(small_context());
    let dir = tempfile::tempdir().unwrap();
    tagger.save(dir.path()).unwrap();
    let loaded = SpanTagger::load(dir.path(), &DeviceSpec::Cpu).unwrap();
    assert_eq!(loaded.config().document_context, small_context());
    let s = &toy_set()[..2];
    let a = tagger.score_spans(s, &PredictOptions::default()).unwrap();
    let b = loaded.score_spans(s, &PredictOptions::default()).unwrap();
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        for (p, q) in x.logits.iter().zip(&y.logits) {
            assert!((p - q).abs() < 1e-5);
        }
    }
    assert_eq!(loaded.config().schema, tagger.config().schema);
    // A checkpoint written before document context existed was trained without it.
    let cfg = dir.path().join("tagger.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("document_context");
    std::fs::write(&cfg, json.to_string()).unwrap();
    let old = SpanTagger::load(dir.path(), &DeviceSpec::Cpu).unwrap();
    assert_eq!(old.config().document_context, DocumentContext::off());
    // A folder without weights is a typed error.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert!(SpanTagger::load(dir.path(), &DeviceSpec::Cpu).is_err());
}

fn quick_config(loss: LossConfig) -> TrainConfig {
    TrainConfig {
        epochs: 40,
        batch_size: 2,
        learning_rate: 3e-3,
        head_lr_multiplier: 3.0,
        non_entity_weight: 1.0,
        warmup_ratio: 0.0,
        patience: 0,
        loss,
        ..TrainConfig::default()
    }
}

#[test]
fn learns_a_toy_set() {
    let _guard = serial();
    let data = toy_set();
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64);
    let before = score_tagger(&tagger, &data, 8).unwrap();
    let (tagger, report) = train(
        tagger,
        &data,
        &[],
        &quick_config(LossConfig::Ce),
        &mut linkner_tagger::train::Silent,
    )
    .unwrap();
    let first = report.epochs.first().unwrap().train_loss;
    let last = report.epochs.last().unwrap().train_loss;
    assert!(last < first * 0.2, "loss {first} -> {last}");
    let after = score_tagger(&tagger, &data, 8).unwrap();
    assert!(
        after.f1 >= 0.9,
        "toy F1 {} (before {})",
        after.f1,
        before.f1
    );
    assert!(after.f1 > before.f1);
}

#[test]
fn evidential_training_learns_and_reports_alpha() {
    let _guard = serial();
    let data = toy_set();
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64);
    // KL to the uniform Dirichlet annealed over the whole run (it dominates a toy set early).
    let loss = LossConfig::Evidential {
        evidence: linkner_tagger::Evidence::Exp,
        anneal_epochs: 60.0,
        uncertainty_weight: 0.1,
    };
    let config = TrainConfig {
        epochs: 60,
        learning_rate: 5e-3,
        ..quick_config(loss)
    };
    let (tagger, report) = train(
        tagger,
        &data,
        &[],
        &config,
        &mut linkner_tagger::train::Silent,
    )
    .unwrap();
    assert!(report.epochs.iter().all(|e| e.train_loss.is_finite()));
    let first = report.epochs.first().unwrap().train_loss;
    let last = report.epochs.last().unwrap().train_loss;
    assert!(last < first * 0.3, "loss {first} -> {last}");
    let f1 = score_tagger(&tagger, &data, 8).unwrap().f1;
    assert!(f1 >= 0.85, "evidential toy F1 {f1}");
    let cands = tagger
        .tag_sentences(&data[..1], &PredictOptions::default())
        .unwrap();
    let c = &cands[0][0];
    let alpha = c.alpha.as_ref().expect("evidential tagger returns alpha");
    assert_eq!(alpha.len(), 5);
    assert!(alpha.iter().all(|a| *a >= 1.0));
}

#[test]
fn the_pure_rust_backend_runs_the_tagger() {
    let _guard = serial();
    let tagger = tiny_tagger(Device::flex(), 64);
    let out = tagger
        .score_spans(
            &toy_set()[..2],
            &PredictOptions {
                mc_samples: 2,
                ..PredictOptions::default()
            },
        )
        .unwrap();
    assert_eq!(out[0].len(), 5 + 5 + 4 + 3 + 2 + 1);
    assert_ne!(out[0][0].mc_probs[0], out[0][0].mc_probs[1]);
}

#[test]
fn bad_training_settings_are_typed_errors() {
    let _guard = serial();
    let data = toy_set();
    for config in [
        TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        },
        TrainConfig {
            learning_rate: -1.0,
            ..TrainConfig::default()
        },
        TrainConfig {
            warmup_ratio: 2.0,
            ..TrainConfig::default()
        },
        TrainConfig {
            non_entity_weight: f32::NAN,
            ..TrainConfig::default()
        },
    ] {
        let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64);
        let err = train(
            tagger,
            &data,
            &[],
            &config,
            &mut linkner_tagger::train::Silent,
        )
        .unwrap_err();
        assert!(
            matches!(err, linkner_core::TaggerError::InvalidArgument(_)),
            "{err}"
        );
    }
    // A label outside the schema is reported, not panicked on.
    let mut bad = toy_set();
    bad[0].spans.push(WordSpan::new(1, 2, "FOOD"));
    let tagger = tiny_tagger(DeviceSpec::Cpu.device(), 64);
    let err = train(
        tagger,
        &bad,
        &[],
        &TrainConfig::default(),
        &mut linkner_tagger::train::Silent,
    )
    .unwrap_err();
    assert!(
        matches!(err, linkner_core::TaggerError::UnknownLabel { .. }),
        "{err}"
    );
}
