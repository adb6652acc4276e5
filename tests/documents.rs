//! `Pipeline::annotate_documents`: the tagger gets whole documents (its `tag_documents`, where a
//! tagger with document context reads the sentences of a document together), and the pipeline
//! returns one annotation per sentence, in document order.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use linkner::core::tagger::{LocalTagger, PredictOptions, Result as TResult};
use linkner::core::{Candidate, Document, Entity, LabelSchema, Sentence, WordSpan};
use linkner::uncertainty::builtins::Confidence;
use linkner::{Pipeline, RoutingPolicy};

/// Tags a capitalised word as PER only when another sentence of the same document contains
/// it too (a cue that only document context gives); sentences alone get nothing.
struct NeedsContext(LabelSchema);

fn candidate(sentence: &Sentence, word: usize, schema: &LabelSchema) -> Candidate {
    let span = WordSpan::new(word, word + 1, "PER");
    let class = schema.class_of("PER").unwrap();
    let mut probs = vec![0.0; schema.num_classes()];
    probs[class] = 1.0;
    Candidate {
        entity: Entity::from_word_span(sentence, &span).unwrap(),
        span,
        class,
        logits: probs.clone(),
        probs,
        mc_probs: Vec::new(),
        alpha: None,
    }
}

impl LocalTagger for NeedsContext {
    fn schema(&self) -> &LabelSchema {
        &self.0
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        _: &PredictOptions,
    ) -> TResult<Vec<Vec<Candidate>>> {
        Ok(vec![Vec::new(); sentences.len()])
    }

    fn tag_documents(
        &self,
        documents: &[Document],
        _: &PredictOptions,
    ) -> TResult<Vec<Vec<Vec<Candidate>>>> {
        Ok(documents
            .iter()
            .map(|d| {
                d.sentences
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        s.tokens
                            .iter()
                            .enumerate()
                            .filter(|(_, w)| w.text.starts_with(char::is_uppercase))
                            .filter(|(_, w)| {
                                d.sentences.iter().enumerate().any(|(j, o)| {
                                    j != i && o.tokens.iter().any(|x| x.text == w.text)
                                })
                            })
                            .map(|(k, _)| candidate(s, k, &self.0))
                            .collect()
                    })
                    .collect()
            })
            .collect())
    }
}

fn doc(sentences: &[&[&str]]) -> Document {
    Document {
        id: None,
        sentences: sentences.iter().map(|w| Sentence::from_words(w)).collect(),
    }
}

#[tokio::test]
async fn documents_reach_the_tagger_whole_and_come_back_per_sentence() {
    let pipeline = Pipeline::builder()
        .tagger(Arc::new(NeedsContext(LabelSchema::conll03())))
        .estimator(Arc::new(Confidence))
        .policy(RoutingPolicy::Never)
        .build()
        .unwrap();
    let docs = vec![
        doc(&[&["Smith", "scored", "twice"], &["Later", "Smith", "left"]]),
        doc(&[&["Jones", "won"]]),
        doc(&[
            &["Brown", "met", "Jones"],
            &["Jones", "smiled"],
            &["Nobody", "cared"],
        ]),
    ];
    let sentences: Vec<Sentence> = docs.iter().flat_map(|d| d.sentences.clone()).collect();
    let out = pipeline.annotate_documents(docs).await.unwrap();
    assert_eq!(out.len(), 6);
    let found: Vec<Vec<&str>> = out
        .iter()
        .map(|a| a.entities.iter().map(|e| e.entity.text.as_str()).collect())
        .collect();
    // "Jones" of document 2 is not context for "Jones" of document 3's neighbours and vice versa:
    // document 2 has one sentence, so nothing there.
    assert_eq!(
        found,
        [
            vec!["Smith"],
            vec!["Smith"],
            vec![],
            vec!["Jones"],
            vec!["Jones"],
            vec![]
        ]
    );
    for (a, s) in out.iter().zip(&sentences) {
        assert_eq!(a.sentence.text, s.text);
    }
    // The same sentences one by one: no context, nothing found.
    let alone = pipeline.annotate_sentences(sentences).await.unwrap();
    assert!(alone.iter().all(|a| a.entities.is_empty()));
}
