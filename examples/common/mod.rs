//! Stand-ins shared by the examples so that they run without a trained model or a network:
//! a lexicon tagger that "finds" listed phrases with a chosen label distribution, and an LLM
//! that confirms every local label. Replace them by `SpanTagger::load(..)` and
//! `OpenAiClassifier` in real use (see the `quickstart` docs).

#![allow(dead_code)]

use linkner::async_trait;
use linkner::core::{Candidate, Entity, LabelSchema, Sentence, WordSpan};
use linkner::core::{LocalTagger, PredictOptions, TaggerError};
use linkner::llm::{Answer, ClassifyRequest, LlmClassifier, LlmError};

/// A stand-in for a trained tagger: every listed phrase found on word boundaries becomes a
/// candidate of `label`, with probability `p` for it and the rest spread over the other classes.
pub struct LexiconTagger {
    pub schema: LabelSchema,
    pub lexicon: Vec<(&'static str, &'static str, f32)>,
}

impl LocalTagger for LexiconTagger {
    fn schema(&self) -> &LabelSchema {
        &self.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        let k = self.schema.num_classes();
        let mut out = Vec::new();
        for s in sentences {
            let mut cands = Vec::new();
            for &(phrase, label, p) in &self.lexicon {
                let class = self.schema.class_of(label).ok_or_else(|| {
                    TaggerError::InvalidArgument(format!("unknown label {label}"))
                })?;
                for (byte, _) in s.text.match_indices(phrase) {
                    let start = s.text[..byte].chars().count();
                    let end = start + phrase.chars().count();
                    let first = s.tokens.iter().position(|t| t.start == start);
                    let last = s.tokens.iter().position(|t| t.end == end);
                    let (Some(first), Some(last)) = (first, last) else {
                        continue;
                    };
                    let span = WordSpan::new(first, last + 1, label);
                    let probs: Vec<f32> = (0..k)
                        .map(|c| {
                            if c == class {
                                p
                            } else {
                                (1.0 - p) / (k - 1) as f32
                            }
                        })
                        .collect();
                    cands.push(Candidate {
                        entity: Entity::from_word_span(s, &span)?,
                        span,
                        class,
                        logits: probs.iter().map(|q| q.ln()).collect(),
                        mc_probs: vec![probs.clone(); options.mc_samples],
                        probs,
                        alpha: None,
                    });
                }
            }
            cands.sort_by_key(|c| c.span.start);
            out.push(cands);
        }
        Ok(out)
    }
}

/// A stand-in LLM that confirms the local model's best class.
pub struct ConfirmLocal;

#[async_trait]
impl LlmClassifier for ConfirmLocal {
    fn name(&self) -> String {
        "confirm-local".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        let class = request.local_top().first().map_or(0, |l| l.class);
        Answer::for_class(request.schema(), class)
    }
}

/// The demo lexicon: CoNLL-03 types with confident and hesitant entries.
pub fn demo_tagger() -> LexiconTagger {
    LexiconTagger {
        schema: LabelSchema::conll03(),
        lexicon: vec![
            ("Jürgen Klopp", "PER", 0.97),
            ("Liverpool", "LOC", 0.48),
            ("Anfield", "ORG", 0.41),
            ("東京", "LOC", 0.93),
            ("Premier League", "MISC", 0.62),
            ("Monday", "MISC", 0.45),
        ],
    }
}

/// Demo texts (char offsets of the output point into them).
pub const TEXTS: &[&str] = &[
    "Jürgen Klopp said on Monday that Liverpool will play at Anfield .",
    "The Premier League 🏆 tour visits 東京 .",
];

/// Trains a tiny real tagger (the MiniLM encoder + a SpanNER head) on four CoNLL sentences, for
/// the examples' CI runs: it memorises them in ~20 s on one CPU thread, enough to find real
/// entities and exercise the LLM path. Returns its checkpoint folder inside `dir`.
pub fn tiny_tagger(
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    use linkner::core::io::{ConllReader, sentences};
    use linkner::tagger::train::Silent;
    use linkner::tagger::{DeviceSpec, HeadOptions, SpanTagger, TrainConfig, train};
    let encoder = linkner::tagger::default_encoder_dir()
        .ok_or("all-MiniLM-L6-v2 not found: run scripts/setup-python.sh")?;
    let train_text = "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n\n\
                      BRUSSELS B-LOC\n1996-08-22 O\n\nJapan B-LOC\nbeat O\nSyria B-LOC\n. O\n";
    let schema = LabelSchema::conll03();
    let docs = ConllReader::new()
        .schema(Some(schema.clone()))
        .read(train_text.as_bytes(), "tiny.conll")?;
    let data = sentences(docs);
    let device = DeviceSpec::Cpu.checked_device()?;
    let (tagger, _) =
        SpanTagger::from_encoder_dir(&encoder, schema, HeadOptions::default(), &device)?;
    let config = TrainConfig {
        epochs: 20,
        batch_size: 2,
        learning_rate: 2e-4,
        patience: 0,
        ..TrainConfig::default()
    };
    let (tagger, _) = train(tagger, &data, &[], &config, &mut Silent)?;
    let out = dir.join("tiny-tagger");
    tagger.save(&out)?;
    Ok(out)
}
