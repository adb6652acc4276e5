//! Scripted components shared by the linker's tests: a tagger that "finds" listed surface
//! strings with a chosen label and uncertainty, and LLM backends whose answers, failures and
//! delays are chosen per entity. Written against the public API only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use linkner::async_trait;
use linkner::core::{Candidate, Entity, LabelSchema, Sentence, WordSpan};
use linkner::core::{LocalTagger, PredictOptions, TaggerError};
use linkner::llm::{Answer, ClassifyRequest, LlmClassifier, LlmError, Usage};

/// A small schema (class 1 PER, 2 LOC, 3 ORG, 4 MISC).
pub fn schema() -> LabelSchema {
    LabelSchema::conll03()
}

/// Class probabilities whose `1 − max` is `uncertainty` for `class` (the confidence
/// estimator then scores exactly `uncertainty`).
pub fn probs_for(class: usize, uncertainty: f32, num_classes: usize) -> Vec<f32> {
    let rest = uncertainty / (num_classes - 1) as f32;
    assert!(
        1.0 - uncertainty > rest,
        "uncertainty {uncertainty} too high: `class` would not be the most probable"
    );
    (0..num_classes)
        .map(|c| if c == class { 1.0 - uncertainty } else { rest })
        .collect()
}

/// One scripted entity: its surface text, its local label and its uncertainty.
#[derive(Clone, Debug)]
pub struct Entry {
    pub surface: String,
    pub label: String,
    pub uncertainty: f32,
}

pub fn entry(surface: &str, label: &str, uncertainty: f32) -> Entry {
    Entry {
        surface: surface.into(),
        label: label.into(),
        uncertainty,
    }
}

/// A tagger that finds every occurrence of its entries' surface strings whose boundaries fall
/// on word boundaries, and records the options it was called with.
pub struct ScriptedTagger {
    pub schema: LabelSchema,
    pub entries: Vec<Entry>,
    pub seen_options: Mutex<Vec<PredictOptions>>,
    pub calls: AtomicUsize,
    /// Fail every call when set.
    pub fail: bool,
}

impl ScriptedTagger {
    pub fn new(entries: Vec<Entry>) -> Self {
        ScriptedTagger {
            schema: schema(),
            entries,
            seen_options: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            fail: false,
        }
    }

    fn tag_one(&self, sentence: &Sentence, options: &PredictOptions) -> Vec<Candidate> {
        let n = self.schema.num_classes();
        let mut out = Vec::new();
        for e in &self.entries {
            let class = self.schema.class_of(&e.label).expect("label in schema");
            for (byte, _) in sentence.text.match_indices(e.surface.as_str()) {
                let start = sentence.text[..byte].chars().count();
                let end = start + e.surface.chars().count();
                let first = sentence.tokens.iter().position(|t| t.start == start);
                let last = sentence.tokens.iter().position(|t| t.end == end);
                let (Some(first), Some(last)) = (first, last) else {
                    continue;
                };
                let span = WordSpan::new(first, last + 1, e.label.clone());
                let mut entity = Entity::from_word_span(sentence, &span).unwrap();
                let probs = probs_for(class, e.uncertainty, n);
                entity.score = Some(probs[class]);
                out.push(Candidate {
                    span,
                    entity,
                    class,
                    logits: probs.iter().map(|p| p.ln()).collect(),
                    mc_probs: vec![probs.clone(); options.mc_samples],
                    probs,
                    alpha: None,
                });
            }
        }
        out.sort_by_key(|c| (c.span.start, c.span.end));
        out
    }
}

impl LocalTagger for ScriptedTagger {
    fn schema(&self) -> &LabelSchema {
        &self.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>, TaggerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen_options.lock().unwrap().push(*options);
        if self.fail {
            return Err(TaggerError::InvalidArgument(
                "scripted tagger failure".into(),
            ));
        }
        Ok(sentences.iter().map(|s| self.tag_one(s, options)).collect())
    }
}

/// What a scripted LLM answers for one entity text.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This class (0 = not an entity).
    Class(usize),
    /// A connection error.
    Fail,
}

/// An LLM that answers by entity text (`default` for the rest: confirm the local label),
/// counts its calls, simulates a cache (a repeated request is answered with `cached = true`
/// and no tokens) and can go down after `fail_after` calls.
pub struct ScriptedLlm {
    pub replies: HashMap<String, Reply>,
    pub calls: AtomicUsize,
    pub fail_after: Option<usize>,
    pub delay: Duration,
    seen: Mutex<std::collections::HashSet<(String, usize, usize)>>,
}

impl ScriptedLlm {
    pub fn new(replies: &[(&str, Reply)]) -> Self {
        ScriptedLlm {
            replies: replies
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            calls: AtomicUsize::new(0),
            fail_after: None,
            delay: Duration::ZERO,
            seen: Mutex::new(Default::default()),
        }
    }

    pub fn failing_after(mut self, n: usize) -> Self {
        self.fail_after = Some(n);
        self
    }

    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// Usage reported per (non-cached) call.
pub const PROMPT_TOKENS: u64 = 100;
pub const COMPLETION_TOKENS: u64 = 2;

#[async_trait]
impl LlmClassifier for ScriptedLlm {
    fn name(&self) -> String {
        "scripted".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail_after.is_some_and(|k| n >= k) {
            return Err(LlmError::Connection("server went away".into()));
        }
        let class = match self.replies.get(request.entity()) {
            Some(Reply::Fail) => return Err(LlmError::Connection("scripted failure".into())),
            Some(Reply::Class(c)) => *c,
            None => request.local_top().first().map(|l| l.class).unwrap_or(0),
        };
        let mut answer = Answer::for_class(request.schema(), class)?;
        let key = (
            request.sentence().to_string(),
            request.start(),
            request.end(),
        );
        let cached = !self.seen.lock().unwrap().insert(key);
        answer.cached = cached;
        answer.confidence = Some(0.75);
        if !cached {
            answer.usage = Usage {
                prompt_tokens: PROMPT_TOKENS,
                completion_tokens: COMPLETION_TOKENS,
                cached_prompt_tokens: 0,
            };
        }
        Ok(answer)
    }
}

/// A backend that breaks its contract: with `short_batch`, `classify_batch` returns one answer
/// too few; otherwise `classify` answers a class outside the schema. Broken backends must not
/// lose entities either.
pub struct BrokenLlm {
    pub short_batch: bool,
}

#[async_trait]
impl LlmClassifier for BrokenLlm {
    fn name(&self) -> String {
        "broken".into()
    }

    async fn classify(&self, request: &ClassifyRequest) -> Result<Answer, LlmError> {
        let mut a = Answer::for_class(request.schema(), 1)?;
        a.class = 99;
        Ok(a)
    }

    async fn classify_batch(&self, requests: &[ClassifyRequest]) -> Vec<Result<Answer, LlmError>> {
        let skip = usize::from(self.short_batch);
        let mut out = Vec::new();
        for r in requests.iter().skip(skip) {
            out.push(self.classify(r).await);
        }
        out
    }
}

/// A backend that panics (a bug in a user's backend): its requests fail, nothing else does.
pub struct PanickingLlm;

#[async_trait]
impl LlmClassifier for PanickingLlm {
    fn name(&self) -> String {
        "panicking".into()
    }

    async fn classify(&self, _: &ClassifyRequest) -> Result<Answer, LlmError> {
        panic!("backend bug");
    }
}

/// Chars `start..end` of `text`.
pub fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}
