//! From word scores to candidates: each word's best label as a tag, tags chunked into entities
//! (conlleval's rules), and each entity's class distribution (see the module docs); the
//! [`LocalTagger`] implementation of [`TokenClassTagger`].

use linkner_core::prob::{argmax, log_softmax, log_sum_exp};
use linkner_core::tagger::{LocalTagger, PredictOptions};
use linkner_core::tags::chunks;
use linkner_core::{Candidate, Entity, LabelSchema, Sentence, WordSpan};

use super::{TokenClassTagger, WordScores};
use crate::error::{Result, TaggerError};

impl TokenClassTagger {
    /// The tag of each word: the label of highest probability, in canonical spelling.
    pub fn word_tags(&self, scores: &WordScores) -> Vec<String> {
        scores
            .logits
            .iter()
            .map(|z| self.config.labels[argmax(z).unwrap_or(0)].tag())
            .collect()
    }

    /// Decodes one sentence's word scores into candidates (see the module docs).
    pub fn candidates(&self, sentence: &Sentence, scores: &WordScores) -> Result<Vec<Candidate>> {
        if scores.logits.len() != sentence.tokens.len() {
            return Err(TaggerError::InvalidArgument(format!(
                "{} word scores for a sentence of {} words",
                scores.logits.len(),
                sentence.tokens.len()
            )));
        }
        let schema = &self.config.schema;
        let k = schema.num_classes();
        let word_log_q: Vec<Vec<f64>> = scores
            .logits
            .iter()
            .map(|z| {
                collapse(
                    &log_softmax(z.iter().map(|&x| f64::from(x))),
                    &self.config.label_class,
                    k,
                )
            })
            .collect();
        let sample_log_q: Vec<Vec<Vec<f64>>> = scores
            .mc_probs
            .iter()
            .map(|words| {
                words
                    .iter()
                    .map(|p| {
                        let lp: Vec<f64> = p
                            .iter()
                            .map(|&x| f64::from(x).max(f64::MIN_POSITIVE).ln())
                            .collect();
                        collapse(&lp, &self.config.label_class, k)
                    })
                    .collect()
            })
            .collect();
        let tags = self.word_tags(scores);
        let mut out = Vec::new();
        for span in chunks(&tags) {
            let class = schema
                .class_of(&span.label)
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    TaggerError::InvalidArgument(format!(
                        "decoded type `{}` is not in schema `{}`",
                        span.label, schema.name
                    ))
                })?;
            let log_probs = span_mean(&word_log_q[span.start..span.end], k);
            let probs: Vec<f32> = log_probs.iter().map(|l| l.exp() as f32).collect();
            let logits: Vec<f32> = log_probs.iter().map(|&l| l as f32).collect();
            let mc_probs = sample_log_q
                .iter()
                .map(|words| {
                    span_mean(&words[span.start..span.end], k)
                        .iter()
                        .map(|l| l.exp() as f32)
                        .collect()
                })
                .collect();
            let label = schema
                .class(class)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| span.label.clone());
            let word_span = WordSpan::new(span.start, span.end, label);
            let mut entity = Entity::from_word_span(sentence, &word_span)?;
            entity.score = Some(probs[class]);
            out.push(Candidate {
                span: word_span,
                entity,
                class,
                logits,
                probs,
                mc_probs,
                alpha: None,
            });
        }
        Ok(out)
    }
}

/// Per class, the log of the summed probabilities of its labels.
fn collapse(log_p: &[f64], label_class: &[usize], k: usize) -> Vec<f64> {
    (0..k)
        .map(|c| {
            log_sum_exp(
                log_p
                    .iter()
                    .zip(label_class)
                    .filter(|(_, lc)| **lc == c)
                    .map(|(l, _)| *l),
            )
        })
        .collect()
}

/// Log of the mean over words of their class distributions.
fn span_mean(words: &[Vec<f64>], k: usize) -> Vec<f64> {
    let n = words.len().max(1) as f64;
    (0..k)
        .map(|c| log_sum_exp(words.iter().map(|w| w[c])) - n.ln())
        .collect()
}

impl LocalTagger for TokenClassTagger {
    fn schema(&self) -> &LabelSchema {
        &self.config.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let scores = self.word_scores(sentences, options)?;
        sentences
            .iter()
            .zip(&scores)
            .map(|(s, w)| self.candidates(s, w))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_distribution_is_the_mean_of_collapsed_word_distributions() {
        // Labels: O, B-A, I-A, B-B, I-B -> classes 0, 1, 1, 2, 2.
        let label_class = [0usize, 1, 1, 2, 2];
        let p1 = [0.1f64, 0.5, 0.2, 0.1, 0.1];
        let p2 = [0.3f64, 0.0, 0.6, 0.05, 0.05];
        let q1 = collapse(&p1.map(f64::ln), &label_class, 3);
        let q2 = collapse(&p2.map(|p| p.max(f64::MIN_POSITIVE).ln()), &label_class, 3);
        let span: Vec<f64> = span_mean(&[q1, q2], 3).iter().map(|l| l.exp()).collect();
        let want = [(0.1 + 0.3) / 2.0, (0.7 + 0.6) / 2.0, (0.2 + 0.1) / 2.0];
        for (a, b) in span.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{span:?} vs {want:?}");
        }
        let ls = log_softmax([1000.0f64, 0.0, -1000.0].into_iter());
        assert!(ls.iter().all(|x| x.is_finite()));
        assert!((ls[0]).abs() < 1e-12);
    }
}
