//! [`GoldOracle`]: an [`LlmClassifier`] that answers with the gold label — the ceiling of
//! routing, for evaluation only (`linkner link --oracle`).
//!
//! It is **not** a model: it looks the request's span up in labelled sentences. Use it to see how
//! much an ideal LLM could add at a given routing policy, and label every figure it produces as
//! an oracle.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use linkner_core::Sentence;
use linkner_llm::{Answer, ClassifyRequest, LlmClassifier, LlmError, async_trait};

/// Gold labels of one sentence by char span.
type SpanLabels = HashMap<(usize, usize), String>;

/// Answers each request with the gold label of its span in the labelled sentences it was built
/// from: the span's type when it is a gold entity, "not an entity" otherwise.
///
/// Requests are matched by sentence text and char span. When the same sentence text occurs
/// several times with different gold labels for one span, the first occurrence wins (the
/// exact per-sentence ceiling is [`crate::scoring::oracle_spans`]); a sentence text the oracle
/// was not built from is an error, so a mismatch is never mistaken for "not an entity".
#[derive(Debug, Clone)]
pub struct GoldOracle {
    /// sentence text → (char start, char end) → gold label.
    gold: Arc<HashMap<String, SpanLabels>>,
    answered: Arc<AtomicU64>,
}

impl GoldOracle {
    /// An oracle for the gold entities of `sentences` (their `spans`).
    pub fn new(sentences: &[Sentence]) -> GoldOracle {
        let mut gold: HashMap<String, SpanLabels> = HashMap::new();
        for s in sentences {
            let spans = gold.entry(s.text.clone()).or_default();
            for span in &s.spans {
                let (Some(first), Some(last)) = (
                    s.tokens.get(span.start),
                    span.end.checked_sub(1).and_then(|i| s.tokens.get(i)),
                ) else {
                    continue;
                };
                spans
                    .entry((first.start, last.end))
                    .or_insert_with(|| span.label.clone());
            }
        }
        GoldOracle {
            gold: Arc::new(gold),
            answered: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl LlmClassifier for GoldOracle {
    fn name(&self) -> String {
        "oracle (gold labels)".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> linkner_llm::Result<Answer> {
        let spans = self.gold.get(request.sentence()).ok_or_else(|| {
            LlmError::InvalidRequest(format!(
                "the oracle has no gold sentence with the text {:?}",
                request.sentence()
            ))
        })?;
        let class = match spans.get(&(request.start(), request.end())) {
            None => 0,
            Some(label) => request.schema().class_of(label).ok_or_else(|| {
                LlmError::InvalidRequest(format!(
                    "gold label `{label}` is not in the schema `{}`",
                    request.schema().name
                ))
            })?,
        };
        self.answered.fetch_add(1, Ordering::Relaxed);
        let mut answer = Answer::for_class(request.schema(), class)?;
        answer.confidence = Some(1.0);
        answer.raw = "oracle".into();
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkner_core::{LabelSchema, WordSpan};

    #[tokio::test]
    async fn answers_gold_types_and_non_entities() {
        let mut s = Sentence::from_words(&["Zoë", "visited", "Köln"]);
        s.spans = vec![WordSpan::new(0, 1, "PER"), WordSpan::new(2, 3, "LOC")];
        let oracle = GoldOracle::new(std::slice::from_ref(&s));
        let schema = Arc::new(LabelSchema::conll03());
        let ask = |start, end| ClassifyRequest::new(s.text.clone(), start, end, schema.clone());
        let per = oracle.classify(&ask(0, 3).unwrap()).await.unwrap();
        assert_eq!(per.label, "PER");
        let loc = oracle.classify(&ask(12, 16).unwrap()).await.unwrap();
        assert_eq!(loc.label, "LOC");
        let none = oracle.classify(&ask(4, 11).unwrap()).await.unwrap();
        assert!(none.is_non_entity());
        assert_eq!(oracle.answered(), 3);
        let stranger = ClassifyRequest::new("Another text", 0, 7, schema.clone()).unwrap();
        assert!(oracle.classify(&stranger).await.is_err());
    }
}
