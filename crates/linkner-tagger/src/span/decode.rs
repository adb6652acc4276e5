//! From scored spans to candidates: [`decode_spans`] (greedy, non-overlapping unless asked) and
//! the [`LocalTagger`] implementation of [`SpanTagger`].

use linkner_core::{Candidate, Document, Entity, LabelSchema, Sentence, WordSpan};

use super::{Evidence, LocalTagger, PredictOptions, ScoredSpan, SpanTagger};
use crate::error::{Result, TaggerError};

/// The most probable class and its probability (the first one on ties).
fn best_class(probs: &[f32]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |a, (i, p)| {
            if p > a.1 { (i, p) } else { a }
        })
}

impl SpanTagger {
    /// Turns the scored spans of one sentence into candidates (see [`decode_spans`]).
    pub fn candidates(
        &self,
        sentence: &Sentence,
        spans: Vec<ScoredSpan>,
        overlapping: bool,
    ) -> Result<Vec<Candidate>> {
        decode_spans(
            sentence,
            spans,
            &self.config.schema,
            self.config.evidential,
            overlapping,
        )
    }
}

/// Keeps the spans whose most probable class is an entity; unless `overlapping`, selects
/// greedily by that probability the spans that overlap no better one. Returns candidates in
/// order of their first word.
pub fn decode_spans(
    sentence: &Sentence,
    spans: Vec<ScoredSpan>,
    schema: &LabelSchema,
    evidential: Option<Evidence>,
    overlapping: bool,
) -> Result<Vec<Candidate>> {
    let mut entities: Vec<(usize, f32, ScoredSpan)> = spans
        .into_iter()
        .filter_map(|s| {
            let (class, p) = best_class(&s.probs);
            (class != 0).then_some((class, p, s))
        })
        .collect();
    entities.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.start.cmp(&b.2.start)));
    let mut chosen: Vec<(usize, f32, ScoredSpan)> = Vec::new();
    for e in entities {
        if overlapping
            || !chosen
                .iter()
                .any(|c| c.2.start < e.2.end && e.2.start < c.2.end)
        {
            chosen.push(e);
        }
    }
    chosen.sort_by_key(|c| (c.2.start, c.2.end));
    chosen
        .into_iter()
        .map(|(class, p, s)| {
            let label = schema.class(class).map(|t| t.name.clone()).ok_or_else(|| {
                TaggerError::InvalidArgument(format!("class {class} outside schema"))
            })?;
            let span = WordSpan::new(s.start, s.end, label);
            let mut entity = Entity::from_word_span(sentence, &span)?;
            entity.score = Some(p);
            let alpha = evidential.map(|ev| s.logits.iter().map(|l| ev.of(*l) + 1.0).collect());
            Ok(Candidate {
                span,
                entity,
                class,
                logits: s.logits,
                probs: s.probs,
                mc_probs: s.mc_probs,
                alpha,
            })
        })
        .collect()
}

impl LocalTagger for SpanTagger {
    fn schema(&self) -> &LabelSchema {
        &self.config.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let singles: Vec<&[Sentence]> = sentences.chunks(1).collect();
        let scored = self.score_documents_kept(&singles, options, false)?;
        sentences
            .iter()
            .zip(scored)
            .map(|(s, spans)| self.candidates(s, spans, options.overlapping))
            .collect()
    }

    fn tag_documents(
        &self,
        documents: &[Document],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Vec<Candidate>>>> {
        let docs: Vec<&[Sentence]> = documents.iter().map(|d| d.sentences.as_slice()).collect();
        let mut scored = self
            .score_documents_kept(&docs, options, false)?
            .into_iter();
        documents
            .iter()
            .map(|d| {
                d.sentences
                    .iter()
                    .zip(scored.by_ref())
                    .map(|(s, spans)| self.candidates(s, spans, options.overlapping))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(start: usize, end: usize, probs: [f32; 3]) -> ScoredSpan {
        ScoredSpan {
            start,
            end,
            logits: probs.iter().map(|p| p.ln()).collect(),
            probs: probs.to_vec(),
            mc_probs: Vec::new(),
        }
    }

    fn schema() -> LabelSchema {
        LabelSchema::new(
            "t",
            vec![
                linkner_core::EntityType::new("PER", "person", "p"),
                linkner_core::EntityType::new("LOC", "location", "l"),
            ],
        )
    }

    #[test]
    fn greedy_decoding_keeps_the_most_probable_non_overlapping_spans() {
        let s = Sentence::from_words(&["New", "York", "Times", "said"]);
        let spans = vec![
            scored(0, 2, [0.2, 0.1, 0.7]),   // LOC "New York" 0.7
            scored(0, 3, [0.1, 0.05, 0.85]), // LOC "New York Times" 0.85 (wins)
            scored(1, 2, [0.3, 0.6, 0.1]),   // PER "York" overlaps the winner
            scored(3, 4, [0.9, 0.05, 0.05]), // non-entity
        ];
        let c = decode_spans(&s, spans.clone(), &schema(), None, false).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].span, WordSpan::new(0, 3, "LOC"));
        assert_eq!(c[0].entity.text, "New York Times");
        assert_eq!((c[0].entity.start, c[0].entity.end), (0, 14));
        assert_eq!(c[0].entity.score, Some(0.85));
        assert!(c[0].alpha.is_none());
        let all = decode_spans(&s, spans, &schema(), Some(Evidence::Exp), true).unwrap();
        let got: Vec<(usize, usize)> = all.iter().map(|c| (c.span.start, c.span.end)).collect();
        assert_eq!(got, vec![(0, 2), (0, 3), (1, 2)]);
        let alpha = all[0].alpha.as_ref().unwrap();
        assert!((alpha[2] - (0.7f32.ln().exp() + 1.0)).abs() < 1e-5);
    }
}
