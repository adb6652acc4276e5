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
//! [`PromptTemplate::answer_keys`]) all default to on; with all three off the default template
//! renders exactly the prompt of linkner 0.1 (the `plain` prompt of the ablations).

use std::collections::BTreeMap;

use linkner_core::{LabelSchema, Sentence};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};
use crate::request::{ClassifyRequest, Example, char_slice};

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

/// Opening and closing marks of the span in a marked sentence.
pub const SPAN_MARKS: (&str, &str) = ("[[", "]]");

/// How the classes are named in the prompt and in the model's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKeys {
    /// The classes' LLM names (`person`, `not an entity`): natural, but names that share their
    /// first token split its log-probability in the `logprobs` answer mode.
    Names,
    /// One capital letter per class (`A`, `B`, …; types in schema order, non-entity last): every
    /// answer is one token, so the first token's log-probabilities score every class exactly.
    #[default]
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

fn default_true() -> bool {
    true
}

/// A two-part prompt template with its switches (see the module docs for the placeholders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// Entity-independent part, sent first (system message).
    pub prefix: String,
    /// Entity part (user message).
    pub question: String,
    /// Mark the span inside the sentence (`[[…]]`), in the question and in the examples
    /// (default on).
    #[serde(default = "default_true")]
    pub mark_span: bool,
    /// Show the local model's best labels with their probabilities (`{hint}`, default on).
    #[serde(default = "default_true")]
    pub local_hint: bool,
    /// How answers are named (default single-letter keys).
    #[serde(default)]
    pub answer_keys: AnswerKeys,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        PromptTemplate {
            prefix: DEFAULT_PREFIX.to_string(),
            question: DEFAULT_QUESTION.to_string(),
            mark_span: true,
            local_hint: true,
            answer_keys: AnswerKeys::default(),
        }
    }
}

/// A rendered prompt: the system and user messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedPrompt {
    /// System message (entity independent).
    pub system: String,
    /// User message.
    pub user: String,
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
    /// Builds a template (switches on) and checks its placeholders.
    pub fn new(prefix: impl Into<String>, question: impl Into<String>) -> Result<Self> {
        let t = PromptTemplate {
            prefix: prefix.into(),
            question: question.into(),
            ..PromptTemplate::default()
        };
        t.validate()?;
        Ok(t)
    }

    /// The default template with every switch off: the prompt of linkner 0.1.
    pub fn plain() -> Self {
        PromptTemplate {
            mark_span: false,
            local_hint: false,
            answer_keys: AnswerKeys::Names,
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

    /// Renders the prompt for a request. `fixed_examples` go into the prefix (`{examples}`);
    /// the request's own examples, when it brings some, go into the question (`{neighbours}`),
    /// so the prefix stays the same for every entity.
    pub fn render(
        &self,
        request: &ClassifyRequest,
        fixed_examples: &[Example],
    ) -> Result<RenderedPrompt> {
        let schema = &request.schema;
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
            mark(&request.sentence, request.start, request.end)
        } else {
            request.sentence.clone()
        };
        vars.insert("sentence", sentence);
        vars.insert("entity", request.entity.clone());
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
            match &request.examples {
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
            .local_top
            .iter()
            .filter(|l| l.class < vocab.answers.len())
            .map(|l| {
                format!(
                    "{} ({:.2})",
                    self.named(&request.schema, vocab, l.class),
                    l.prob
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Choices in prompt order: the types in schema order, then the non-entity class.
fn choice_order(num_classes: usize) -> impl Iterator<Item = usize> {
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

/// `sentence` with chars `start..end` wrapped in [`SPAN_MARKS`].
fn mark(sentence: &str, start: usize, end: usize) -> String {
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
fn mark_example(e: &Example) -> String {
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

/// Which non-entity examples [`ExamplePool::from_sentences`] collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NegativeExamples {
    /// Capitalised words outside every gold entity (not sentence-initial): linkner 0.1's
    /// choice, a cue that lower-cased text such as tweets lacks.
    Capitalised,
    /// Several kinds, drawn in turn: capitalised words, lower-case words, part of a gold
    /// entity, and a gold entity extended by a neighbouring word — the mistakes a tagger makes.
    #[default]
    Varied,
}

/// The kind of a non-entity example, for drawing them in turn.
fn negative_kind(e: &Example) -> usize {
    let words = e.entity.split_whitespace().count();
    let capitalised = e.entity.chars().next().is_some_and(char::is_uppercase);
    match (words > 1, capitalised) {
        (false, true) => 0,
        (false, false) => 1,
        (true, _) => 2,
    }
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

    /// Builds a pool from labelled sentences with [`NegativeExamples::Capitalised`] non-entity
    /// examples (linkner 0.1's pool).
    pub fn from_sentences(sentences: &[Sentence], schema: &LabelSchema) -> Self {
        Self::from_sentences_with(sentences, schema, NegativeExamples::Capitalised)
    }

    /// Builds a pool from labelled sentences: every gold entity is an example of its type, and
    /// non-entity examples are collected as `negatives` says. Entities whose label the schema
    /// does not know are skipped.
    pub fn from_sentences_with(
        sentences: &[Sentence],
        schema: &LabelSchema,
        negatives: NegativeExamples,
    ) -> Self {
        let mut examples = Vec::new();
        for s in sentences {
            let n = s.tokens.len();
            let mut covered = vec![false; n];
            for span in &s.spans {
                for c in covered.iter_mut().take(span.end.min(n)).skip(span.start) {
                    *c = true;
                }
            }
            let slice = |a: usize, b: usize| -> Option<Example> {
                let (first, last) = (s.tokens.get(a)?, s.tokens.get(b.checked_sub(1)?)?);
                let text = s.char_slice(first.start, last.end)?;
                Some(Example::new(s.text.clone(), text, 0).at(first.start))
            };
            for span in &s.spans {
                let Some(class) = schema.class_of(&span.label) else {
                    continue;
                };
                if let Some(mut e) = slice(span.start, span.end) {
                    e.class = class;
                    examples.push(e);
                }
                if negatives == NegativeExamples::Varied {
                    // Part of a multi-word entity, and the entity with the next (non-entity)
                    // word: the boundary mistakes of a span tagger.
                    if span.end - span.start > 1
                        && let Some(e) = slice(span.start, span.end - 1)
                    {
                        examples.push(e);
                    }
                    if span.end < n
                        && !covered[span.end]
                        && s.tokens[span.end].text.chars().any(char::is_alphanumeric)
                        && let Some(e) = slice(span.start, span.end + 1)
                    {
                        examples.push(e);
                    }
                }
            }
            for (i, t) in s.tokens.iter().enumerate().skip(1) {
                if covered[i] {
                    continue;
                }
                let capitalised = t.text.chars().next().is_some_and(|c| c.is_uppercase())
                    && t.text.chars().count() > 1
                    && t.text.chars().any(|c| c.is_lowercase());
                let lower_word =
                    t.text.chars().count() > 3 && t.text.chars().all(char::is_lowercase);
                if (capitalised || (negatives == NegativeExamples::Varied && lower_word))
                    && let Some(e) = slice(i, i + 1)
                {
                    examples.push(e);
                }
            }
        }
        ExamplePool { examples }
    }

    /// Draws up to `k` examples of every class `0..num_classes` with a seeded shuffle, and
    /// interleaves them (first example of every type, then the second, …; non-entity last in
    /// each round). Non-entity examples are drawn in turn from their kinds (capitalised word,
    /// lower-case word, multi-word span), so a varied pool gives varied examples. The same
    /// pool, `k` and seed always give the same examples.
    pub fn draw(&self, num_classes: usize, k: usize, seed: u64) -> Vec<Example> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut by_class: Vec<Vec<&Example>> = vec![Vec::new(); num_classes];
        for e in &self.examples {
            if let Some(v) = by_class.get_mut(e.class) {
                v.push(e);
            }
        }
        for (class, v) in by_class.iter_mut().enumerate() {
            v.shuffle(&mut rng);
            if class == 0 {
                // Round-robin over the kinds, each kind in its shuffled order.
                let mut kinds: Vec<Vec<&Example>> = vec![Vec::new(); 3];
                for e in v.drain(..) {
                    kinds[negative_kind(e)].push(e);
                }
                let longest = kinds.iter().map(Vec::len).max().unwrap_or(0);
                for i in 0..longest {
                    for kind in &kinds {
                        if let Some(e) = kind.get(i) {
                            v.push(e);
                        }
                    }
                }
            }
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
        for t in [PromptTemplate::default(), PromptTemplate::plain()] {
            let ex = vec![Example::new("Paris is nice .", "Paris", 2)];
            let a = t
                .render(&req("John lives in Berlin .", "John"), &ex)
                .unwrap();
            let b = t
                .render(&req("Acme Corp fired Bob .", "Acme Corp"), &ex)
                .unwrap();
            assert_eq!(a.system, b.system);
            assert_ne!(a.user, b.user);
            assert!(a.user.contains("Span: John"));
            assert!(a.system.contains("not an entity"));
        }
    }

    #[test]
    fn plain_renders_the_prompt_of_linkner_0_1() {
        // The 0.1 prompt, written out: the plain template must reproduce it exactly.
        let old_prefix = "You are an expert annotator of named entities ({schema} guidelines). \
You are given a sentence and a span of it. Decide which type of named entity the span is, or \
whether it is not an entity at all.\n\nTypes:\n{descriptions}\n\nA span that is a common word, a \
title or role, only part of a name, or a name of a type not listed is \"not an entity\".\nReply \
with exactly one label from: {choices}. Reply with the label only.\n\n{examples}";
        let old = PromptTemplate {
            prefix: old_prefix.into(),
            question: "Sentence: {sentence}\nSpan: {entity}\nLabel:".into(),
            ..PromptTemplate::plain()
        };
        let ex = vec![Example::new("Paris is nice .", "Paris", 2)];
        let r = req("John lives in Berlin .", "Berlin").with_local_top(vec![crate::LocalLabel {
            class: 2,
            prob: 0.7,
        }]);
        assert_eq!(
            PromptTemplate::plain().render(&r, &ex).unwrap(),
            old.render(&r, &ex).unwrap()
        );
        let p = PromptTemplate::plain().render(&r, &ex).unwrap();
        assert!(p.system.contains("Label: location"));
        assert_eq!(
            p.user,
            "Sentence: John lives in Berlin .\nSpan: Berlin\nLabel:"
        );
    }

    #[test]
    fn switches_mark_hint_keys_and_neighbours() {
        let r = req("John lives in Berlin .", "Berlin")
            .with_local_top(vec![
                crate::LocalLabel {
                    class: 2,
                    prob: 0.62,
                },
                crate::LocalLabel {
                    class: 0,
                    prob: 0.2,
                },
            ])
            .with_examples(vec![Example::new("Bonn is small .", "Bonn", 2).at(0)]);
        let fixed = vec![Example::new("Mr Smith spoke .", "Smith", 1)];
        let p = PromptTemplate::default().render(&r, &fixed).unwrap();
        assert!(
            p.user.contains("Sentence: John lives in [[Berlin]] ."),
            "{}",
            p.user
        );
        assert!(
            p.user
                .contains("Local model's guess: B (location) (0.62), E (not an entity) (0.20)"),
            "{}",
            p.user
        );
        assert!(
            p.user.starts_with(
                "Similar examples:\nSentence: [[Bonn]] is small .\nSpan: Bonn\nLabel: B"
            ),
            "{}",
            p.user
        );
        assert!(p.system.contains("- A. person:"));
        assert!(
            p.system
                .contains("Reply with exactly one letter from: A (person), B (location)")
        );
        assert!(
            p.system
                .contains("Sentence: Mr [[Smith]] spoke .\nSpan: Smith\nLabel: A")
        );
        // The retrieved examples never reach the prefix.
        assert!(!p.system.contains("Bonn"));
        let numbers = PromptTemplate::default()
            .with_answer_keys(AnswerKeys::Numbers)
            .render(&r, &fixed)
            .unwrap();
        assert!(
            numbers
                .system
                .contains("Reply with exactly one number from: 1 (person)")
        );
        let off = PromptTemplate::default()
            .with_mark_span(false)
            .with_local_hint(false)
            .render(&r, &fixed)
            .unwrap();
        assert!(!off.user.contains("[[") && !off.user.contains("guess"));
    }

    #[test]
    fn vocabulary_per_key_style() {
        let s = LabelSchema::conll03();
        let names = PromptTemplate::plain().vocabulary(&s).unwrap();
        assert_eq!(
            names.answers,
            [
                "not an entity",
                "person",
                "location",
                "organization",
                "miscellaneous"
            ]
        );
        let letters = PromptTemplate::default().vocabulary(&s).unwrap();
        assert_eq!(letters.answers, ["E", "A", "B", "C", "D"]);
        assert!(letters.keyed);
        let numbers = PromptTemplate::default()
            .with_answer_keys(AnswerKeys::Numbers)
            .vocabulary(&s)
            .unwrap();
        assert_eq!(numbers.answers, ["5", "1", "2", "3", "4"]);
        let big = LabelSchema::ontonotes5();
        assert!(
            PromptTemplate::default()
                .with_answer_keys(AnswerKeys::Numbers)
                .vocabulary(&big)
                .is_err()
        );
        assert!(PromptTemplate::default().vocabulary(&big).is_ok());
    }

    #[test]
    fn marking_counts_chars_not_bytes() {
        assert_eq!(mark("Zoë ❤ Köln", 6, 10), "Zoë ❤ [[Köln]]");
        assert_eq!(mark("Zoë ❤ Köln", 0, 3), "[[Zoë]] ❤ Köln");
        let e = Example::new("Köln und Köln", "Köln", 2).at(9);
        assert_eq!(mark_example(&e), "Köln und [[Köln]]");
        let wrong = Example::new("Köln und Köln", "Köln", 2).at(3);
        assert_eq!(mark_example(&wrong), "[[Köln]] und Köln");
    }

    #[test]
    fn entity_placeholders_are_refused_in_the_prefix() {
        assert!(PromptTemplate::new("{entity}", "{entity}").is_err());
        assert!(PromptTemplate::new("{hint}", "{entity}").is_err());
        assert!(PromptTemplate::new("{nope}", "{entity}").is_err());
        assert!(PromptTemplate::new("ok", "no entity here").is_err());
        assert!(PromptTemplate::new("{{literal}}", "{sentence} {entity} {{x}}").is_ok());
        assert!(PromptTemplate::new("bad { brace", "{entity}").is_err());
    }

    #[test]
    fn custom_template_renders_local_labels_and_braces() {
        let t = PromptTemplate::new("{{json}} {choices}", "{entity} / {local}")
            .unwrap()
            .with_answer_keys(AnswerKeys::Names);
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
    fn template_json_fills_switch_defaults() {
        let t: PromptTemplate =
            serde_json::from_str(r#"{"prefix": "{choices}", "question": "{entity}"}"#).unwrap();
        assert!(t.mark_span && t.local_hint);
        assert_eq!(t.answer_keys, AnswerKeys::Letters);
        let back: PromptTemplate =
            serde_json::from_str(&serde_json::to_string(&PromptTemplate::plain()).unwrap())
                .unwrap();
        assert_eq!(back, PromptTemplate::plain());
    }

    #[test]
    fn draw_is_seeded_and_balanced() {
        let mut ex = Vec::new();
        for c in 0..5 {
            for i in 0..10 {
                ex.push(Example::new(format!("s{c}-{i}"), format!("e{c}-{i}"), c));
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

    fn sentence() -> Sentence {
        let mut s = Sentence::from_words(&[
            "The", "Mayor", "of", "New", "York", "met", "Acme", "staff", "today", ".",
        ]);
        s.spans.push(linkner_core::WordSpan::new(3, 5, "LOC"));
        s.spans.push(linkner_core::WordSpan::new(6, 7, "ORG"));
        s
    }

    #[test]
    fn pool_from_sentences_takes_gold_and_capitalised_distractors() {
        let schema = LabelSchema::conll03();
        let pool = ExamplePool::from_sentences(&[sentence()], &schema);
        let has = |text: &str, class: usize| {
            pool.examples
                .iter()
                .any(|e| e.entity == text && e.class == class)
        };
        assert!(has("New York", 2) && has("Acme", 3) && has("Mayor", 0));
        assert!(!pool.examples.iter().any(|e| e.entity == "The"));
        assert!(!has("today", 0) && !has("New", 0));
    }

    #[test]
    fn varied_negatives_add_partial_extended_and_lowercase_spans_and_draw_in_turn() {
        let schema = LabelSchema::conll03();
        let pool =
            ExamplePool::from_sentences_with(&[sentence()], &schema, NegativeExamples::Varied);
        let has = |text: &str| {
            pool.examples
                .iter()
                .any(|e| e.entity == text && e.class == 0)
        };
        assert!(has("Mayor"), "capitalised word");
        assert!(has("today") && has("staff"), "lower-case words");
        assert!(has("New"), "part of an entity");
        assert!(
            has("Acme staff") && has("New York met"),
            "entity plus next word"
        );
        assert!(!has("York"), "no suffix spans");
        let drawn = pool.draw(schema.num_classes(), 3, 1);
        let kinds: Vec<usize> = drawn
            .iter()
            .filter(|e| e.class == 0)
            .map(negative_kind)
            .collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1, 2],
            "one non-entity of each kind: {drawn:?}"
        );
    }
}
