//! The template itself: its two parts and switches, its defaults, and the placeholder syntax
//! (`{name}`, with `{{` and `}}` for literal braces) that checks and fills it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

use super::vocabulary::AnswerKeys;

/// Placeholders allowed in the prefix.
const PREFIX_KEYS: &[&str] = &[
    "schema",
    "choices",
    "descriptions",
    "instruction",
    "examples",
];
/// Placeholders allowed in the question.
const QUESTION_KEYS: &[&str] = &[
    "schema",
    "choices",
    "descriptions",
    "instruction",
    "examples",
    "sentence",
    "entity",
    "local",
    "hint",
    "neighbours",
];

/// The default prefix (system message).
pub const DEFAULT_PREFIX: &str = "You are an expert annotator of named entities ({schema} guidelines). \
You are given a sentence and a span of it. Decide which type of named entity the span is, or \
whether it is not an entity at all.\n\nTypes:\n{descriptions}\n\nA span that is a common word, a \
title or role, only part of a name, or a name of a type not listed is \"not an entity\".\n\
{instruction}\n\n{examples}";

/// The default question (user message).
pub const DEFAULT_QUESTION: &str = "{neighbours}Sentence: {sentence}\n{hint}Span: {entity}\nLabel:";

/// A two-part prompt template with its switches (see the module docs for the placeholders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// Entity-independent part, sent first (system message).
    pub prefix: String,
    /// Entity part (user message).
    pub question: String,
    /// Mark the span inside the sentence (`[[…]]`), in the question and in the examples
    /// (default off: −0.54 F1 with the 1.5B model, docs/results.md).
    #[serde(default)]
    pub mark_span: bool,
    /// Show the local model's best labels with their probabilities (`{hint}`, default off).
    #[serde(default)]
    pub local_hint: bool,
    /// How answers are named (default the classes' names; letter keys measured −2.79 F1).
    #[serde(default)]
    pub answer_keys: AnswerKeys,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        PromptTemplate {
            prefix: DEFAULT_PREFIX.to_string(),
            question: DEFAULT_QUESTION.to_string(),
            mark_span: false,
            local_hint: false,
            answer_keys: AnswerKeys::Names,
        }
    }
}

impl PromptTemplate {
    /// Builds a template (switches off, as [`PromptTemplate::default`]) and checks its
    /// placeholders.
    pub fn new(prefix: impl Into<String>, question: impl Into<String>) -> Result<Self> {
        let t = PromptTemplate {
            prefix: prefix.into(),
            question: question.into(),
            ..PromptTemplate::default()
        };
        t.validate()?;
        Ok(t)
    }

    /// The default template with every switch off: the prompt of linkner 0.1, and the default
    /// (the measured best with the 1.5B model).
    pub fn plain() -> Self {
        PromptTemplate::default()
    }

    /// The default instructions with every switch on: span marked, the local tagger's guess
    /// shown, letter keys. Measured with the 1.5B model it loses to [`PromptTemplate::plain`]
    /// (docs/results.md, ablation); a stronger model may differ.
    pub fn full() -> Self {
        PromptTemplate {
            mark_span: true,
            local_hint: true,
            answer_keys: AnswerKeys::Letters,
            ..PromptTemplate::default()
        }
    }

    /// Sets [`PromptTemplate::mark_span`].
    pub fn with_mark_span(mut self, on: bool) -> Self {
        self.mark_span = on;
        self
    }

    /// Sets [`PromptTemplate::local_hint`].
    pub fn with_local_hint(mut self, on: bool) -> Self {
        self.local_hint = on;
        self
    }

    /// Sets [`PromptTemplate::answer_keys`].
    pub fn with_answer_keys(mut self, keys: AnswerKeys) -> Self {
        self.answer_keys = keys;
        self
    }

    /// Checks that every placeholder is known and that the prefix uses no entity placeholder.
    pub fn validate(&self) -> Result<()> {
        check_placeholders(&self.prefix, PREFIX_KEYS, "prefix")?;
        check_placeholders(&self.question, QUESTION_KEYS, "question")?;
        if !self.question.contains("{entity}") {
            return Err(LlmError::Config(
                "the question template must contain {entity}".into(),
            ));
        }
        Ok(())
    }
}

/// Yields the template's pieces: `Ok(text)` literal runs and `Err(name)` placeholders.
fn pieces(template: &str) -> Result<Vec<std::result::Result<String, String>>> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                        _ => {
                            return Err(LlmError::Config(format!(
                                "unterminated or invalid placeholder `{{{name}` in template"
                            )));
                        }
                    }
                }
                if !lit.is_empty() {
                    out.push(Ok(std::mem::take(&mut lit)));
                }
                out.push(Err(name));
            }
            '}' => {
                return Err(LlmError::Config(
                    "single `}` in template (write `}}` for a literal brace)".into(),
                ));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Ok(lit));
    }
    Ok(out)
}

fn check_placeholders(template: &str, allowed: &[&str], part: &str) -> Result<()> {
    for p in pieces(template)? {
        if let Err(name) = p
            && !allowed.contains(&name.as_str())
        {
            return Err(LlmError::Config(format!(
                "placeholder {{{name}}} is not allowed in the {part} template (allowed: {})",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

pub(super) fn substitute(template: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let mut s = String::with_capacity(template.len() + 256);
    for p in pieces(template)? {
        match p {
            Ok(lit) => s.push_str(&lit),
            Err(name) => match vars.get(name.as_str()) {
                Some(v) => s.push_str(v),
                None => {
                    return Err(LlmError::Config(format!(
                        "placeholder {{{name}}} has no value here"
                    )));
                }
            },
        }
    }
    Ok(s)
}
