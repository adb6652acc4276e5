//! Rendering a template for one request: the values of the placeholders (choices,
//! descriptions, instruction, examples, local hint) and the marking of the span.

use std::collections::BTreeMap;

use linkner_core::LabelSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::request::{ClassifyRequest, Example, char_slice};

use super::template::{PromptTemplate, substitute};
use super::vocabulary::{AnswerKeys, AnswerVocabulary, choice_order};

/// Opening and closing marks of the span in a marked sentence.
pub const SPAN_MARKS: (&str, &str) = ("[[", "]]");

/// A rendered prompt: the system and user messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedPrompt {
    /// System message (entity independent).
    pub system: String,
    /// User message.
    pub user: String,
}

impl PromptTemplate {
    /// Renders the prompt for a request. `fixed_examples` go into the prefix (`{examples}`);
    /// the request's own examples, when it brings some, go into the question (`{neighbours}`),
    /// so the prefix stays the same for every entity.
    pub fn render(
        &self,
        request: &ClassifyRequest,
        fixed_examples: &[Example],
    ) -> Result<RenderedPrompt> {
        let schema = &request.schema();
        let vocab = self.vocabulary(schema)?;
        let mut vars: BTreeMap<&str, String> = BTreeMap::new();
        vars.insert("schema", schema.name.clone());
        vars.insert("choices", self.choices(schema, &vocab));
        vars.insert("descriptions", self.descriptions(schema, &vocab));
        vars.insert("instruction", self.instruction(schema, &vocab));
        vars.insert(
            "examples",
            self.render_examples(schema, &vocab, fixed_examples, "Examples:\n"),
        );
        let system = substitute(&self.prefix, &vars)?;
        let sentence = if self.mark_span {
            mark(request.sentence(), request.start(), request.end())
        } else {
            request.sentence().to_string()
        };
        vars.insert("sentence", sentence);
        vars.insert("entity", request.entity().to_string());
        let local = self.render_local(request, &vocab);
        let hint = if self.local_hint && !local.is_empty() {
            format!("Local model's guess: {local}\n")
        } else {
            String::new()
        };
        vars.insert("local", local);
        vars.insert("hint", hint);
        vars.insert(
            "neighbours",
            match &request.examples() {
                Some(ex) => self.render_examples(schema, &vocab, ex, "Similar examples:\n"),
                None => String::new(),
            },
        );
        let user = substitute(&self.question, &vars)?;
        Ok(RenderedPrompt { system, user })
    }

    /// The name of a class in a list: `person`, or `A (person)` with keys.
    fn named(&self, schema: &LabelSchema, vocab: &AnswerVocabulary, class: usize) -> String {
        let name = schema
            .class(class)
            .map(|t| t.llm_name.as_str())
            .unwrap_or("?");
        if vocab.keyed {
            format!("{} ({name})", vocab.answers[class])
        } else {
            name.to_string()
        }
    }

    fn choices(&self, schema: &LabelSchema, vocab: &AnswerVocabulary) -> String {
        choice_order(schema.num_classes())
            .map(|c| self.named(schema, vocab, c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn descriptions(&self, schema: &LabelSchema, vocab: &AnswerVocabulary) -> String {
        choice_order(schema.num_classes())
            .filter_map(|c| {
                let t = schema.class(c)?;
                Some(if vocab.keyed {
                    format!("- {}. {}: {}", vocab.answers[c], t.llm_name, t.description)
                } else {
                    format!("- {}: {}", t.llm_name, t.description)
                })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn instruction(&self, schema: &LabelSchema, vocab: &AnswerVocabulary) -> String {
        let choices = self.choices(schema, vocab);
        let mut s = if vocab.keyed {
            let what = match self.answer_keys {
                AnswerKeys::Numbers => "number",
                _ => "letter",
            };
            format!("Reply with exactly one {what} from: {choices}. Reply with the {what} only.")
        } else {
            format!("Reply with exactly one label from: {choices}. Reply with the label only.")
        };
        if self.mark_span {
            s.push_str(&format!(
                " In each sentence the span is marked {}like this{}.",
                SPAN_MARKS.0, SPAN_MARKS.1
            ));
        }
        s
    }

    fn render_examples(
        &self,
        schema: &LabelSchema,
        vocab: &AnswerVocabulary,
        examples: &[Example],
        title: &str,
    ) -> String {
        if examples.is_empty() {
            return String::new();
        }
        let mut s = String::from(title);
        for e in examples {
            let label = if schema.class(e.class).is_some() {
                vocab.answers[e.class].as_str()
            } else {
                "?"
            };
            let sentence = if self.mark_span {
                mark_example(e)
            } else {
                e.sentence.clone()
            };
            s.push_str(&format!(
                "Sentence: {}\nSpan: {}\nLabel: {}\n\n",
                sentence, e.entity, label
            ));
        }
        s
    }

    fn render_local(&self, request: &ClassifyRequest, vocab: &AnswerVocabulary) -> String {
        request
            .local_top()
            .iter()
            .filter(|l| l.class < vocab.answers.len())
            .map(|l| {
                format!(
                    "{} ({:.2})",
                    self.named(request.schema(), vocab, l.class),
                    l.prob
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `sentence` with chars `start..end` wrapped in [`SPAN_MARKS`].
pub(super) fn mark(sentence: &str, start: usize, end: usize) -> String {
    let mut out = String::with_capacity(sentence.len() + 4);
    for (i, c) in sentence.chars().enumerate() {
        if i == start {
            out.push_str(SPAN_MARKS.0);
        }
        if i == end {
            out.push_str(SPAN_MARKS.1);
        }
        out.push(c);
    }
    let n = sentence.chars().count();
    if start >= n {
        out.push_str(SPAN_MARKS.0);
    }
    if end >= n {
        out.push_str(SPAN_MARKS.1);
    }
    out
}

/// An example's sentence with its span marked (at `start`, else the first occurrence; left
/// unmarked when the entity is not found there).
pub(super) fn mark_example(e: &Example) -> String {
    let len = e.entity.chars().count();
    let start = match e.start {
        Some(s) if char_slice(&e.sentence, s, s + len).as_deref() == Some(e.entity.as_str()) => {
            Some(s)
        }
        _ => e
            .sentence
            .find(&e.entity)
            .filter(|_| !e.entity.is_empty())
            .map(|b| e.sentence[..b].chars().count()),
    };
    match start {
        Some(s) => mark(&e.sentence, s, s + len),
        None => e.sentence.clone(),
    }
}
