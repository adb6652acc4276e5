//! What a classifier is asked ([`ClassifyRequest`]) and what it answers ([`Answer`]).

use std::sync::Arc;
use std::time::Duration;

use linkner_core::LabelSchema;
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

/// One labelled example shown to the LLM (few-shot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The sentence the example comes from.
    pub sentence: String,
    /// The entity (or non-entity span) text.
    pub entity: String,
    /// Its class: `0` non-entity, `1..` the schema's types.
    pub class: usize,
    /// Char offset of the entity in `sentence`, when known (otherwise its first occurrence is
    /// marked when the prompt marks spans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
}

impl Example {
    /// An example whose span is the first occurrence of `entity` in `sentence`.
    pub fn new(sentence: impl Into<String>, entity: impl Into<String>, class: usize) -> Example {
        Example {
            sentence: sentence.into(),
            entity: entity.into(),
            class,
            start: None,
        }
    }

    /// Sets the entity's char offset in the sentence.
    pub fn at(mut self, start: usize) -> Example {
        self.start = Some(start);
        self
    }
}

/// A class the local model proposed, with its probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocalLabel {
    /// Class index (`0` non-entity).
    pub class: usize,
    /// The local model's probability for it.
    pub prob: f32,
}

/// One entity to classify in its sentence.
///
/// Offsets are **char offsets** into `sentence` (end exclusive), as everywhere in linkner.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyRequest {
    /// The sentence, as in the caller's original text.
    pub sentence: String,
    /// Char offset of the entity's first char in `sentence`.
    pub start: usize,
    /// Char offset one past the entity's last char.
    pub end: usize,
    /// The entity text (`sentence` chars `start..end`).
    pub entity: String,
    /// The label schema to classify into.
    pub schema: Arc<LabelSchema>,
    /// The local model's best classes with their probabilities (may be empty).
    pub local_top: Vec<LocalLabel>,
    /// Few-shot examples for this request only. When `None` the backend uses its own fixed
    /// examples (which keeps the prompt prefix stable and cacheable).
    pub examples: Option<Vec<Example>>,
}

impl ClassifyRequest {
    /// Builds a request for the chars `start..end` of `sentence`; the entity text is taken from
    /// the sentence. Fails when the span is empty or outside the sentence.
    pub fn new(
        sentence: impl Into<String>,
        start: usize,
        end: usize,
        schema: Arc<LabelSchema>,
    ) -> Result<Self> {
        let sentence = sentence.into();
        let entity = char_slice(&sentence, start, end).ok_or_else(|| {
            LlmError::InvalidRequest(format!(
                "char span [{start}, {end}) is empty or outside a sentence of {} chars",
                sentence.chars().count()
            ))
        })?;
        Ok(ClassifyRequest {
            sentence,
            start,
            end,
            entity,
            schema,
            local_top: Vec::new(),
            examples: None,
        })
    }

    /// Builds a request for the first occurrence of `entity` in `sentence`.
    pub fn find(
        sentence: impl Into<String>,
        entity: &str,
        schema: Arc<LabelSchema>,
    ) -> Result<Self> {
        let sentence = sentence.into();
        let byte = sentence
            .find(entity)
            .filter(|_| !entity.is_empty())
            .ok_or_else(|| {
                LlmError::InvalidRequest(format!("{entity:?} does not occur in the sentence"))
            })?;
        let start = sentence[..byte].chars().count();
        let end = start + entity.chars().count();
        Self::new(sentence, start, end, schema)
    }

    /// Sets the local model's top classes.
    pub fn with_local_top(mut self, local_top: Vec<LocalLabel>) -> Self {
        self.local_top = local_top;
        self
    }

    /// Sets per-request few-shot examples.
    pub fn with_examples(mut self, examples: Vec<Example>) -> Self {
        self.examples = Some(examples);
        self
    }

    /// Checks the request: a schema with at least one type, a non-empty span inside the
    /// sentence whose text is `entity`, local classes inside the schema. Every backend should
    /// call it first and return its error.
    pub fn validate(&self) -> Result<()> {
        if self.schema.types.is_empty() {
            return Err(LlmError::InvalidRequest(format!(
                "schema `{}` has no entity types",
                self.schema.name
            )));
        }
        match char_slice(&self.sentence, self.start, self.end) {
            Some(t) if t == self.entity => {}
            Some(t) => {
                return Err(LlmError::InvalidRequest(format!(
                    "entity {:?} does not match the sentence chars [{}, {}) = {t:?}",
                    self.entity, self.start, self.end
                )));
            }
            None => {
                return Err(LlmError::InvalidRequest(format!(
                    "char span [{}, {}) is empty or outside a sentence of {} chars",
                    self.start,
                    self.end,
                    self.sentence.chars().count()
                )));
            }
        }
        let n = self.schema.num_classes();
        if let Some(bad) = self.local_top.iter().find(|l| l.class >= n) {
            return Err(LlmError::InvalidRequest(format!(
                "local class {} outside a schema of {n} classes",
                bad.class
            )));
        }
        if let Some(ex) = &self.examples
            && let Some(bad) = ex.iter().find(|e| e.class >= n)
        {
            return Err(LlmError::InvalidRequest(format!(
                "example class {} outside a schema of {n} classes",
                bad.class
            )));
        }
        Ok(())
    }
}

/// Chars `start..end` of `s`, `None` when empty or outside ([`linkner_core::text::char_slice`]).
pub(crate) fn char_slice(s: &str, start: usize, end: usize) -> Option<String> {
    linkner_core::text::char_slice(s, start, end)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
}

/// Token counts of one answer (zero for a cache hit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens the server counted.
    pub prompt_tokens: u64,
    /// Completion tokens the server counted.
    pub completion_tokens: u64,
    /// Prompt tokens the server reused from its prompt cache, when it reports them.
    pub cached_prompt_tokens: u64,
}

impl Usage {
    /// Adds another usage into this one.
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_prompt_tokens += other.cached_prompt_tokens;
    }
}

/// A classifier's answer: a class of the request's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Class index: `0` non-entity, `1..` the schema's types in order.
    pub class: usize,
    /// The class's data-file name (`O` for non-entity, else e.g. `PER`).
    pub label: String,
    /// Confidence in `[0, 1]` when the backend can give one.
    pub confidence: Option<f32>,
    /// A distribution over all `schema.num_classes()` classes (sums to 1), when available.
    pub distribution: Option<Vec<f32>>,
    /// The probability mass the model put on the answer vocabulary before `distribution` was
    /// renormalised (log-probability mode): `1 − label_mass` is what it put on anything else —
    /// its own doubt. `None` when the backend gives no probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_mass: Option<f32>,
    /// Token usage of the call (zero when answered from cache).
    pub usage: Usage,
    /// Wall time of the call, retries included.
    #[serde(with = "duration_secs")]
    pub latency: Duration,
    /// True when the answer came from the answer cache.
    pub cached: bool,
    /// The raw text the model produced (for logs).
    pub raw: String,
}

impl Answer {
    /// True when the answer is "not an entity".
    pub fn is_non_entity(&self) -> bool {
        self.class == 0
    }

    /// Builds an answer for class `class` of `schema` (checks the index).
    pub fn for_class(schema: &LabelSchema, class: usize) -> Result<Answer> {
        let t = schema
            .class(class)
            .ok_or_else(|| LlmError::LabelOutsideSchema {
                answer: format!("class #{class}"),
                expected: label_list(schema),
            })?;
        Ok(Answer {
            class,
            label: t.name.clone(),
            confidence: None,
            distribution: None,
            label_mass: None,
            usage: Usage::default(),
            latency: Duration::ZERO,
            cached: false,
            raw: String::new(),
        })
    }
}

/// The schema's LLM names, non-entity first, comma separated.
pub(crate) fn label_list(schema: &LabelSchema) -> String {
    std::iter::once(&schema.non_entity)
        .chain(schema.types.iter())
        .map(|t| t.llm_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(v).unwrap_or_default())
    }
}
