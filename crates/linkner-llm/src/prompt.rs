//! Prompts: a replaceable two-part template and few-shot examples drawn with a seed.
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
//! | `{choices}` | both | the LLM names, comma separated, non-entity last |
//! | `{descriptions}` | both | one `- name: description` line per class |
//! | `{examples}` | both | an `Examples:` block (empty when there are none) |
//! | `{sentence}` | question | the sentence |
//! | `{entity}` | question | the entity text |
//! | `{local}` | question | the local model's top labels with probabilities |

use std::collections::BTreeMap;

use linkner_core::{LabelSchema, Sentence};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};
use crate::request::{ClassifyRequest, Example};

/// Placeholders allowed in the prefix.
const PREFIX_KEYS: &[&str] = &["schema", "choices", "descriptions", "examples"];
/// Placeholders allowed in the question.
const QUESTION_KEYS: &[&str] = &[
    "schema",
    "choices",
    "descriptions",
    "examples",
    "sentence",
    "entity",
    "local",
];

/// The default prefix (system message).
pub const DEFAULT_PREFIX: &str = "You are an expert annotator of named entities ({schema} guidelines). \
You are given a sentence and a span of it. Decide which type of named entity the span is, or \
whether it is not an entity at all.\n\nTypes:\n{descriptions}\n\nA span that is a common word, a \
title or role, only part of a name, or a name of a type not listed is \"not an entity\".\nReply \
with exactly one label from: {choices}. Reply with the label only.\n\n{examples}";

/// The default question (user message).
pub const DEFAULT_QUESTION: &str = "Sentence: {sentence}\nSpan: {entity}\nLabel:";

/// A two-part prompt template (see the module docs for the placeholders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// Entity-independent part, sent first (system message).
    pub prefix: String,
    /// Entity part (user message).
    pub question: String,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        PromptTemplate {
            prefix: DEFAULT_PREFIX.to_string(),
            question: DEFAULT_QUESTION.to_string(),
        }
    }
}

/// A rendered prompt: the system and user messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedPrompt {
    /// System message (entity independent unless the request brought its own examples).
    pub system: String,
    /// User message.
    pub user: String,
}

impl PromptTemplate {
    /// Builds a template and checks its placeholders.
    pub fn new(prefix: impl Into<String>, question: impl Into<String>) -> Result<Self> {
        let t = PromptTemplate {
            prefix: prefix.into(),
            question: question.into(),
        };
        t.validate()?;
        Ok(t)
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

    /// Renders the prompt for a request. `default_examples` are used unless the request brings
    /// its own.
    pub fn render(
        &self,
        request: &ClassifyRequest,
        default_examples: &[Example],
    ) -> Result<RenderedPrompt> {
        let schema = &request.schema;
        let examples = request.examples.as_deref().unwrap_or(default_examples);
        let mut vars: BTreeMap<&str, String> = BTreeMap::new();
        vars.insert("schema", schema.name.clone());
        vars.insert("choices", choices(schema));
        vars.insert("descriptions", descriptions(schema));
        vars.insert("examples", render_examples(schema, examples));
        let system = substitute(&self.prefix, &vars)?;
        vars.insert("sentence", request.sentence.clone());
        vars.insert("entity", request.entity.clone());
        vars.insert("local", render_local(request));
        let user = substitute(&self.question, &vars)?;
        Ok(RenderedPrompt { system, user })
    }
}

/// LLM names, types first then the non-entity class.
fn choices(schema: &LabelSchema) -> String {
    schema
        .types
        .iter()
        .chain(std::iter::once(&schema.non_entity))
        .map(|t| t.llm_name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn descriptions(schema: &LabelSchema) -> String {
    schema
        .types
        .iter()
        .chain(std::iter::once(&schema.non_entity))
        .map(|t| format!("- {}: {}", t.llm_name, t.description))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_examples(schema: &LabelSchema, examples: &[Example]) -> String {
    if examples.is_empty() {
        return String::new();
    }
    let mut s = String::from("Examples:\n");
    for e in examples {
        let label = schema
            .class(e.class)
            .map(|t| t.llm_name.as_str())
            .unwrap_or("?");
        s.push_str(&format!(
            "Sentence: {}\nSpan: {}\nLabel: {}\n\n",
            e.sentence, e.entity, label
        ));
    }
    s
}

fn render_local(request: &ClassifyRequest) -> String {
    request
        .local_top
        .iter()
        .filter_map(|l| {
            request
                .schema
                .class(l.class)
                .map(|t| format!("{} ({:.2})", t.llm_name, l.prob))
        })
        .collect::<Vec<_>>()
        .join(", ")
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

fn substitute(template: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
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

/// A pool of labelled examples to draw few-shot examples from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamplePool {
    /// All examples, any order.
    pub examples: Vec<Example>,
}

impl ExamplePool {
    /// A pool of the given examples.
    pub fn new(examples: Vec<Example>) -> Self {
        ExamplePool { examples }
    }

    /// Builds a pool from labelled sentences: every gold entity is an example of its type, and
    /// every capitalised word outside all gold entities (not the first word) is a non-entity
    /// example. Entities whose label the schema does not know are skipped.
    pub fn from_sentences(sentences: &[Sentence], schema: &LabelSchema) -> Self {
        let mut examples = Vec::new();
        for s in sentences {
            let mut covered = vec![false; s.tokens.len()];
            for span in &s.spans {
                for c in covered
                    .iter_mut()
                    .take(span.end.min(s.tokens.len()))
                    .skip(span.start)
                {
                    *c = true;
                }
                let Some(class) = schema.class_of(&span.label) else {
                    continue;
                };
                let (Some(a), Some(b)) = (
                    s.tokens.get(span.start),
                    s.tokens.get(span.end.wrapping_sub(1)),
                ) else {
                    continue;
                };
                if let Some(text) = s.char_slice(a.start, b.end) {
                    examples.push(Example {
                        sentence: s.text.clone(),
                        entity: text,
                        class,
                    });
                }
            }
            for (i, t) in s.tokens.iter().enumerate().skip(1) {
                let capitalised = t.text.chars().next().is_some_and(|c| c.is_uppercase())
                    && t.text.chars().count() > 1
                    && t.text.chars().any(|c| c.is_lowercase());
                if capitalised && !covered[i] {
                    examples.push(Example {
                        sentence: s.text.clone(),
                        entity: t.text.clone(),
                        class: 0,
                    });
                }
            }
        }
        ExamplePool { examples }
    }

    /// Draws up to `k` examples of every class `0..num_classes` with a seeded shuffle, and
    /// interleaves them (first example of every type, then the second, …; non-entity last in
    /// each round). The same pool, `k` and seed always give the same examples.
    pub fn draw(&self, num_classes: usize, k: usize, seed: u64) -> Vec<Example> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut by_class: Vec<Vec<&Example>> = vec![Vec::new(); num_classes];
        for e in &self.examples {
            if let Some(v) = by_class.get_mut(e.class) {
                v.push(e);
            }
        }
        for v in by_class.iter_mut() {
            v.shuffle(&mut rng);
            v.truncate(k);
        }
        let order: Vec<usize> = (1..num_classes).chain(std::iter::once(0)).collect();
        let mut out = Vec::new();
        for round in 0..k {
            for &c in &order {
                if let Some(e) = by_class[c].get(round) {
                    out.push((*e).clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn req(sentence: &str, entity: &str) -> ClassifyRequest {
        ClassifyRequest::find(sentence, entity, Arc::new(LabelSchema::conll03())).unwrap()
    }

    #[test]
    fn prefix_does_not_depend_on_the_entity() {
        let t = PromptTemplate::default();
        let ex = vec![Example {
            sentence: "Paris is nice .".into(),
            entity: "Paris".into(),
            class: 2,
        }];
        let a = t
            .render(&req("John lives in Berlin .", "John"), &ex)
            .unwrap();
        let b = t
            .render(&req("Acme Corp fired Bob .", "Acme Corp"), &ex)
            .unwrap();
        assert_eq!(a.system, b.system);
        assert_ne!(a.user, b.user);
        assert!(a.system.contains("Label: location"));
        assert!(a.user.contains("Span: John"));
        assert!(a.system.contains("not an entity"));
    }

    #[test]
    fn entity_placeholders_are_refused_in_the_prefix() {
        assert!(PromptTemplate::new("{entity}", "{entity}").is_err());
        assert!(PromptTemplate::new("{nope}", "{entity}").is_err());
        assert!(PromptTemplate::new("ok", "no entity here").is_err());
        assert!(PromptTemplate::new("{{literal}}", "{sentence} {entity} {{x}}").is_ok());
        assert!(PromptTemplate::new("bad { brace", "{entity}").is_err());
    }

    #[test]
    fn custom_template_renders_local_labels_and_braces() {
        let t = PromptTemplate::new("{{json}} {choices}", "{entity} / {local}").unwrap();
        let r = req("John lives in Berlin .", "Berlin").with_local_top(vec![crate::LocalLabel {
            class: 2,
            prob: 0.75,
        }]);
        let p = t.render(&r, &[]).unwrap();
        assert_eq!(
            p.system,
            "{json} person, location, organization, miscellaneous, not an entity"
        );
        assert_eq!(p.user, "Berlin / location (0.75)");
    }

    #[test]
    fn draw_is_seeded_and_balanced() {
        let mut ex = Vec::new();
        for c in 0..5 {
            for i in 0..10 {
                ex.push(Example {
                    sentence: format!("s{c}-{i}"),
                    entity: format!("e{c}-{i}"),
                    class: c,
                });
            }
        }
        let pool = ExamplePool::new(ex);
        let a = pool.draw(5, 2, 7);
        let b = pool.draw(5, 2, 7);
        let c = pool.draw(5, 2, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        for class in 0..5 {
            assert_eq!(a.iter().filter(|e| e.class == class).count(), 2);
        }
        assert_eq!(a[0].class, 1);
        assert_eq!(a[4].class, 0);
    }

    #[test]
    fn pool_from_sentences_takes_gold_and_capitalised_distractors() {
        let schema = LabelSchema::conll03();
        let mut s = Sentence::from_words(&["The", "Mayor", "of", "Paris", "spoke", "."]);
        s.spans.push(linkner_core::WordSpan::new(3, 4, "LOC"));
        let pool = ExamplePool::from_sentences(&[s], &schema);
        assert!(
            pool.examples
                .iter()
                .any(|e| e.entity == "Paris" && e.class == 2)
        );
        assert!(
            pool.examples
                .iter()
                .any(|e| e.entity == "Mayor" && e.class == 0)
        );
        assert!(!pool.examples.iter().any(|e| e.entity == "The"));
    }
}
