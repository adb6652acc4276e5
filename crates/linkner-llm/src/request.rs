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

/// One entity to classify in its sentence, **valid by construction**: the span is a non-empty
/// char range of the sentence, the schema has at least one type, and the local classes and
/// example classes are classes of the schema. The constructors and setters check it and return
/// [`LlmError::InvalidRequest`] otherwise, so a backend reads a request without checking it.
///
/// Offsets are **char offsets** into `sentence` (end exclusive), as everywhere in linkner.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyRequest {
    sentence: String,
    start: usize,
    end: usize,
    entity: String,
    schema: Arc<LabelSchema>,
    local_top: Vec<LocalLabel>,
    examples: Option<Vec<Example>>,
}

impl ClassifyRequest {
    /// Builds a request for the chars `start..end` of `sentence`; the entity text is taken from
    /// the sentence. Fails when the span is empty or outside the sentence, or when the schema
    /// has no entity type.
    pub fn new(
        sentence: impl Into<String>,
        start: usize,
        end: usize,
        schema: Arc<LabelSchema>,
    ) -> Result<Self> {
        let sentence = sentence.into();
        if schema.types.is_empty() {
            return Err(LlmError::InvalidRequest(format!(
                "schema `{}` has no entity types",
                schema.name
            )));
        }
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

    /// Sets the local model's top classes; fails when one is outside the schema.
    pub fn with_local_top(mut self, local_top: Vec<LocalLabel>) -> Result<Self> {
        let n = self.schema.num_classes();
        if let Some(bad) = local_top.iter().find(|l| l.class >= n) {
            return Err(LlmError::InvalidRequest(format!(
                "local class {} outside a schema of {n} classes",
                bad.class
            )));
        }
        self.local_top = local_top;
        Ok(self)
    }

    /// Sets per-request few-shot examples; fails when one's class is outside the schema.
    pub fn with_examples(mut self, examples: Vec<Example>) -> Result<Self> {
        let n = self.schema.num_classes();
        if let Some(bad) = examples.iter().find(|e| e.class >= n) {
            return Err(LlmError::InvalidRequest(format!(
                "example class {} outside a schema of {n} classes",
                bad.class
            )));
        }
        self.examples = Some(examples);
        Ok(self)
    }

    /// The sentence, as in the caller's original text.
    pub fn sentence(&self) -> &str {
        &self.sentence
    }

    /// Char offset of the entity's first char in the sentence.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Char offset one past the entity's last char.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The entity text (the sentence's chars `start..end`, never empty).
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The label schema to classify into (at least one entity type).
    pub fn schema(&self) -> &Arc<LabelSchema> {
        &self.schema
    }

    /// The local model's best classes with their probabilities (may be empty), each a class of
    /// the schema.
    pub fn local_top(&self) -> &[LocalLabel] {
        &self.local_top
    }

    /// Few-shot examples for this request only. When `None` the backend uses its own fixed
    /// examples (which keeps the prompt prefix stable and cacheable).
    pub fn examples(&self) -> Option<&[Example]> {
        self.examples.as_deref()
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
