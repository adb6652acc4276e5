//! Prompts: a replaceable two-part template, its switches, the answer vocabulary, and few-shot
//! examples drawn with a seed.
//!
//! The template has a **prefix** (sent as the system message) that may only use
//! entity-independent placeholders, and a **question** (the user message) for the entity. Keeping
//! everything that does not depend on the entity in the prefix lets an OpenAI-compatible server
//! (llama.cpp, vLLM) reuse its prompt cache across entities.
//!
//! Placeholders (`{{` and `}}` write literal braces):
//!
//! | placeholder | where | expands to |
//! |---|---|---|
//! | `{schema}` | both | the schema name |
//! | `{choices}` | both | the answers, comma separated, non-entity last (`person, …` or `A (person), …`) |
//! | `{descriptions}` | both | one `- name: description` line per class (`- A. name: …` with keys) |
//! | `{instruction}` | both | how to answer (one label, or one key), and where the span is marked |
//! | `{examples}` | both | the fixed `Examples:` block (empty when there are none) |
//! | `{sentence}` | question | the sentence, with the span marked `[[…]]` when [`PromptTemplate::mark_span`] |
//! | `{entity}` | question | the entity text |
//! | `{local}` | question | the local model's top labels with probabilities |
//! | `{hint}` | question | a line with `{local}` when [`PromptTemplate::local_hint`], else nothing |
//! | `{neighbours}` | question | the request's own examples (e.g. retrieved per entity), else nothing |
//!
//! The switches ([`PromptTemplate::mark_span`], [`PromptTemplate::local_hint`],
//! [`PromptTemplate::answer_keys`]) default to off (class names): the default template renders
//! exactly the prompt of linkner 0.1 (the `plain` prompt of the ablations), the measured best
//! with the 1.5B model; [`PromptTemplate::full`] turns all three on.

mod examples;
mod render;
mod template;
mod vocabulary;

pub use examples::{ExamplePool, NegativeExamples};
pub use render::{RenderedPrompt, SPAN_MARKS};
pub use template::{DEFAULT_PREFIX, DEFAULT_QUESTION, PromptTemplate};
pub use vocabulary::{AnswerKeys, AnswerVocabulary};

#[cfg(test)]
mod tests;
