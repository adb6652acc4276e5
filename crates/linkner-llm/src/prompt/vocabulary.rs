//! The answer vocabulary: how classes are named in the prompt and in the model's answer
//! (names, letters or numbers), and the order the choices are listed in.

use linkner_core::LabelSchema;
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

use super::template::PromptTemplate;

/// How the classes are named in the prompt and in the model's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKeys {
    /// The classes' LLM names (`person`, `not an entity`): natural, but names that share their
    /// first token split its log-probability in the `logprobs` answer mode. The default: with
    /// the 1.5B model letters lose 2.8 F1 on OOV (docs/results.md, ablation).
    #[default]
    Names,
    /// One capital letter per class (`A`, `B`, …; types in schema order, non-entity last): every
    /// answer is one token, so the first token's log-probabilities score every class exactly.
    Letters,
    /// One number per class (`1`, `2`, …), like [`AnswerKeys::Letters`]; at most 9 classes.
    Numbers,
}

impl AnswerKeys {
    /// The key of the `i`-th choice (types in schema order, then non-entity), when keyed.
    fn key(self, i: usize) -> Option<String> {
        match self {
            AnswerKeys::Names => None,
            AnswerKeys::Letters => u8::try_from(i)
                .ok()
                .filter(|&i| i < 26)
                .map(|i| char::from(b'A' + i).to_string()),
            AnswerKeys::Numbers => (i < 9).then(|| (i + 1).to_string()),
        }
    }
}

/// What the model may answer, per class (index 0 = non-entity): the LLM names, or the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerVocabulary {
    /// The answer of each class, in class order.
    pub answers: Vec<String>,
    /// True when the answers are keys (letters or numbers) rather than names.
    pub keyed: bool,
}

impl AnswerVocabulary {
    /// The comma-separated answers, for error messages.
    pub fn list(&self) -> String {
        self.answers.join(", ")
    }
}

impl PromptTemplate {
    /// The answers the model may give for `schema` (class order, non-entity first). Fails when
    /// numbered keys are asked for more than 9 classes or letters for more than 26.
    pub fn vocabulary(&self, schema: &LabelSchema) -> Result<AnswerVocabulary> {
        let n = schema.num_classes();
        let keyed = self.answer_keys != AnswerKeys::Names;
        let mut answers = Vec::with_capacity(n);
        for class in 0..n {
            let answer = if keyed {
                self.answer_keys
                    .key(choice_index(n, class))
                    .ok_or_else(|| {
                        LlmError::Config(format!(
                            "answer_keys {:?} cannot name {n} classes (schema `{}`)",
                            self.answer_keys, schema.name
                        ))
                    })?
            } else {
                schema
                    .class(class)
                    .map(|t| t.llm_name.clone())
                    .unwrap_or_default()
            };
            answers.push(answer);
        }
        Ok(AnswerVocabulary { answers, keyed })
    }
}

/// Choices in prompt order: the types in schema order, then the non-entity class.
pub(super) fn choice_order(num_classes: usize) -> impl Iterator<Item = usize> {
    (1..num_classes).chain(std::iter::once(0))
}

/// Position of `class` in [`choice_order`].
fn choice_index(num_classes: usize, class: usize) -> usize {
    if class == 0 {
        num_classes - 1
    } else {
        class - 1
    }
}
