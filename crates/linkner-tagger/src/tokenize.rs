//! Sub-word tokenisation of words and windowing of long sentences.
//!
//! [`SubwordTokenizer`] wraps a Hugging Face `tokenizer.json` with its built-in padding and
//! truncation turned off (this crate pads batches itself and never truncates: long sentences are
//! cut into overlapping [`Window`]s). Words are encoded as pre-tokenized input so every sub-token
//! knows its word; a word the tokenizer turns into nothing (e.g. a lone combining mark that the
//! normaliser strips) gets the unknown token, so every word has a first and a last sub-token.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::error::{Result, TaggerError};

/// A Hugging Face tokenizer used word by word.
#[derive(Clone)]
pub struct SubwordTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    unk_id: u32,
    /// Whether `word_pieces` puts " " before each word (byte-level pre-tokenizers that are not
    /// a plain top-level ByteLevel, which adds the space itself).
    prefix_space: bool,
}

impl std::fmt::Debug for SubwordTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubwordTokenizer")
            .field("path", &self.path)
            .field("prefix", &self.prefix)
            .field("suffix", &self.suffix)
            .field("unk_id", &self.unk_id)
            .field("prefix_space", &self.prefix_space)
            .finish()
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> TaggerError {
    TaggerError::Tokenizer(format!("{}: {e}", path.display()))
}

impl SubwordTokenizer {
    /// Loads `tokenizer.json`; turns its padding and truncation off.
    pub fn from_file(path: &Path) -> Result<SubwordTokenizer> {
        let text = std::fs::read_to_string(path).map_err(|e| TaggerError::io(path, e))?;
        // Byte-level BPE (RoBERTa) encodes a word differently at the start of a text and after a
        // space; words inside a sentence must look like the latter, as Hugging Face does with
        // `add_prefix_space=True` for pre-tokenized input.
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| TaggerError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let mut prefix_space = json
            .get("pre_tokenizer")
            .is_some_and(|p| p.to_string().contains("\"ByteLevel\""));
        // A top-level ByteLevel pre-tokenizer gets `add_prefix_space: true`, exactly what
        // `RobertaTokenizerFast(add_prefix_space=True)` does, instead of `word_pieces` putting " "
        // before each word: that gave an extra "Ġ" token to a word that is a special token's text
        // ("<s>", "<unk>", "</s>": HF matches those before pre-tokenizing, so they get no space)
        // and a second space to a word starting with " " (ByteLevel adds one only if none is there).
        let patched = match json.get_mut("pre_tokenizer") {
            Some(serde_json::Value::Object(p))
                if p.get("type").and_then(serde_json::Value::as_str) == Some("ByteLevel") =>
            {
                p.insert("add_prefix_space".into(), serde_json::Value::Bool(true));
                prefix_space = false;
                Some(serde_json::to_vec(&json).map_err(|e| tok_err(path, e))?)
            }
            _ => None,
        };
        let bytes = patched.as_deref().unwrap_or(text.as_bytes());
        let mut tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| tok_err(path, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| tok_err(path, e))?;

        let probe = tokenizer
            .encode(vec!["a"], true)
            .map_err(|e| tok_err(path, e))?;
        let word_ids = probe.get_word_ids();
        let ids = probe.get_ids();
        let first = word_ids.iter().position(Option::is_some).unwrap_or(0);
        let last = word_ids
            .iter()
            .rposition(Option::is_some)
            .map_or(ids.len(), |i| i + 1);
        let prefix = ids[..first].to_vec();
        let suffix = ids[last..].to_vec();
        let unk_id = ["[UNK]", "<unk>", "<UNK>", "[unk]"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .ok_or_else(|| tok_err(path, "no unknown token ([UNK] or <unk>) in the vocabulary"))?;
        Ok(SubwordTokenizer {
            tokenizer,
            path: path.to_path_buf(),
            prefix,
            suffix,
            unk_id,
            prefix_space,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Special token ids put before the words (e.g. `[CLS]`).
    pub fn prefix(&self) -> &[u32] {
        &self.prefix
    }

    /// Special token ids put after the words (e.g. `[SEP]`).
    pub fn suffix(&self) -> &[u32] {
        &self.suffix
    }

    /// Number of special tokens around a sequence.
    pub fn num_special(&self) -> usize {
        self.prefix.len() + self.suffix.len()
    }

    /// The sub-token ids of each word (without special tokens); never empty for a word.
    pub fn word_pieces<S: AsRef<str>>(&self, words: &[S]) -> Result<Vec<Vec<u32>>> {
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let input: Vec<String> = words
            .iter()
            .map(|w| {
                if self.prefix_space {
                    format!(" {}", w.as_ref())
                } else {
                    w.as_ref().to_string()
                }
            })
            .collect();
        let enc = self
            .tokenizer
            .encode(input, false)
            .map_err(|e| tok_err(&self.path, e))?;
        let mut pieces = vec![Vec::new(); words.len()];
        for (id, w) in enc.get_ids().iter().zip(enc.get_word_ids()) {
            if let Some(w) = w
                && let Some(p) = pieces.get_mut(*w as usize)
            {
                p.push(*id);
            }
        }
        for p in &mut pieces {
            if p.is_empty() {
                p.push(self.unk_id);
            }
        }
        Ok(pieces)
    }
}

/// A slice of a sentence's words encoded together.
///
/// Words `word_start..word_end` are encoded; spans whose first word lies in the core
/// `core_start..core_end` are predicted from this window. Cores partition the sentence, so
/// every span is predicted exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First word encoded.
    pub word_start: usize,
    /// One past the last word encoded.
    pub word_end: usize,
    /// First word whose spans this window owns.
    pub core_start: usize,
    /// One past the last word whose spans this window owns.
    pub core_end: usize,
}

/// Cuts a sentence whose words have `counts` sub-tokens into windows of at most `budget`
/// sub-tokens (a single word longer than the budget is cut to it).
///
/// Consecutive windows overlap so that every span of up to `max_width` words starting in a
/// window's core lies inside that window, with up to `context` extra words of context on each
/// side when the budget allows.
pub fn plan_windows(
    counts: &[usize],
    budget: usize,
    max_width: usize,
    context: usize,
) -> Vec<Window> {
    let n = counts.len();
    let budget = budget.max(1);
    let cost = |i: usize| counts[i].clamp(1, budget);
    let mut windows = Vec::new();
    if n == 0 {
        return windows;
    }
    let extend = |a: usize| {
        let (mut b, mut total) = (a, 0usize);
        while b < n && total + cost(b) <= budget {
            total += cost(b);
            b += 1;
        }
        b.max(a + 1)
    };
    let (mut a, mut core_start) = (0usize, 0usize);
    loop {
        let mut b = extend(a);
        // Give up left context until the window reaches past the spans starting at the core.
        while a < core_start && b < n.min(core_start + max_width.max(1)) {
            a += 1;
            b = extend(a);
        }
        if b >= n {
            windows.push(Window {
                word_start: a,
                word_end: n,
                core_start,
                core_end: n,
            });
            return windows;
        }
        let reach = max_width.saturating_sub(1);
        let mut core_end = b.saturating_sub(reach + context);
        if core_end <= core_start {
            core_end = b.saturating_sub(reach);
        }
        if core_end <= core_start {
            core_end = core_start + 1;
        }
        windows.push(Window {
            word_start: a,
            word_end: b,
            core_start,
            core_end,
        });
        core_start = core_end;
        a = core_end.saturating_sub(context).max(a + 1);
    }
}

/// How [`plan_document_windows`] fills windows with the sentences of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentPlan {
    /// Most sub-tokens of a window, special tokens excluded.
    pub budget: usize,
    /// Consecutive sentences are packed into one window core while their sub-tokens stay within
    /// this (a core always holds at least one sentence).
    pub core_tokens: usize,
    /// Sub-tokens of context taken from the neighbouring sentences on each side of a core.
    pub margin_tokens: usize,
    /// Longest span in words.
    pub max_width: usize,
    /// Words of context around a core when a sentence longer than `budget` is cut (see
    /// [`plan_windows`]).
    pub context: usize,
}

/// Plans the windows of a document whose sentences have `counts[i]` sub-tokens per word.
///
/// Word indices are flat: the words of all sentences in order. Consecutive sentences are packed
/// into a window's core (up to `core_tokens` sub-tokens), and the window is filled with up to
/// `margin_tokens` sub-tokens of the words just before and just after the core, taken from the
/// neighbouring sentences of the same document. A sentence longer than `budget` is cut by
/// [`plan_windows`] on its own, without context from other sentences. Cores partition the
/// document's words and start and end on sentence boundaries (except inside a cut sentence);
/// spans are enumerated per sentence, so none crosses a sentence boundary.
///
/// A document of one sentence that fits the budget gives the window [`plan_windows`] gives it.
pub fn plan_document_windows(counts: &[Vec<usize>], plan: &DocumentPlan) -> Vec<Window> {
    let budget = plan.budget.max(1);
    let mut offsets = Vec::with_capacity(counts.len() + 1);
    let mut n = 0usize;
    for c in counts {
        offsets.push(n);
        n += c.len();
    }
    offsets.push(n);
    let flat: Vec<usize> = counts
        .iter()
        .flatten()
        .map(|c| (*c).clamp(1, budget))
        .collect();
    let tokens = |i: usize| -> usize { flat[offsets[i]..offsets[i + 1]].iter().sum() };
    let mut windows = Vec::new();
    let mut i = 0usize;
    while i < counts.len() {
        let (s0, e0) = (offsets[i], offsets[i + 1]);
        if s0 == e0 {
            i += 1;
            continue;
        }
        let first = tokens(i);
        if first > budget {
            windows.extend(
                plan_windows(&counts[i], budget, plan.max_width, plan.context)
                    .into_iter()
                    .map(|w| Window {
                        word_start: w.word_start + s0,
                        word_end: w.word_end + s0,
                        core_start: w.core_start + s0,
                        core_end: w.core_end + s0,
                    }),
            );
            i += 1;
            continue;
        }
        let mut total = first;
        let mut j = i + 1;
        while j < counts.len() {
            let t = tokens(j);
            if total + t <= plan.core_tokens.min(budget) {
                total += t;
                j += 1;
            } else {
                break;
            }
        }
        let (core_start, core_end) = (s0, offsets[j]);
        let room = budget - total;
        let left_max = plan.margin_tokens.min(room / 2);
        let mut word_start = core_start;
        let mut used = 0usize;
        while word_start > 0 && used + flat[word_start - 1] <= left_max {
            used += flat[word_start - 1];
            word_start -= 1;
        }
        let right_max = plan.margin_tokens.min(room - used);
        let mut word_end = core_end;
        let mut used_right = 0usize;
        while word_end < n && used_right + flat[word_end] <= right_max {
            used_right += flat[word_end];
            word_end += 1;
        }
        windows.push(Window {
            word_start,
            word_end,
            core_start,
            core_end,
        });
        i = j;
    }
    windows
}

/// The encoder input of one window: token ids with special tokens, and for each word of the
/// window its first and last sub-token position in `ids`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedWindow {
    /// The window.
    pub window: Window,
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Per word of the window (`word_start..word_end`): position of its first sub-token.
    pub first: Vec<usize>,
    /// Per word of the window: position of its last sub-token.
    pub last: Vec<usize>,
}

/// Encodes the words of `window` from their `pieces` with the tokenizer's special tokens; a
/// word longer than `budget` sub-tokens keeps its first `budget`.
pub fn encode_window(
    pieces: &[Vec<u32>],
    window: Window,
    prefix: &[u32],
    suffix: &[u32],
    budget: usize,
) -> EncodedWindow {
    let mut ids = prefix.to_vec();
    let mut first = Vec::with_capacity(window.word_end - window.word_start);
    let mut last = Vec::with_capacity(first.capacity());
    for p in &pieces[window.word_start..window.word_end] {
        let take = p.len().clamp(1, budget.max(1));
        first.push(ids.len());
        ids.extend_from_slice(&p[..take.min(p.len())]);
        last.push(ids.len() - 1);
    }
    ids.extend_from_slice(suffix);
    EncodedWindow {
        window,
        ids,
        first,
        last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_sentence_is_one_window() {
        let w = plan_windows(&[1, 2, 3], 10, 5, 4);
        assert_eq!(
            w,
            vec![Window {
                word_start: 0,
                word_end: 3,
                core_start: 0,
                core_end: 3
            }]
        );
    }

    proptest! {
        #[test]
        fn windows_cover_every_span_once(
            counts in proptest::collection::vec(1usize..6, 1..120),
            budget in 8usize..160,
            max_width in 1usize..6,
            context in 0usize..8,
        ) {
            let windows = plan_windows(&counts, budget, max_width, context);
            let n = counts.len();
            // Cores partition 0..n, in order.
            let mut next = 0;
            for w in &windows {
                prop_assert_eq!(w.core_start, next);
                prop_assert!(w.core_end > w.core_start);
                prop_assert!(w.word_start <= w.core_start && w.core_end <= w.word_end);
                let tokens: usize = counts[w.word_start..w.word_end].iter().map(|c| (*c).min(budget)).sum();
                prop_assert!(tokens <= budget || w.word_end - w.word_start == 1);
                next = w.core_end;
            }
            prop_assert_eq!(next, n);
            // With room for the span reach and the context on both sides, every span fits
            // inside the window that owns its first word.
            if budget >= 5 * (2 * max_width + 2 * context + 2) {
                for s in 0..n {
                    for e in s + 1..=(s + max_width).min(n) {
                        let owners: Vec<_> = windows.iter().filter(|w| w.core_start <= s && s < w.core_end).collect();
                        prop_assert_eq!(owners.len(), 1);
                        prop_assert!(e <= owners[0].word_end, "span {}..{} cut by {:?}", s, e, owners[0]);
                    }
                }
            }
        }
    }

    fn doc_plan(budget: usize, core: usize, margin: usize, width: usize) -> DocumentPlan {
        DocumentPlan {
            budget,
            core_tokens: core,
            margin_tokens: margin,
            max_width: width,
            context: 4,
        }
    }

    #[test]
    fn document_windows_pack_sentences_and_add_margins() {
        // Five sentences of 3 words, 1 sub-token each; cores of up to 6 tokens, margins of 2.
        let counts = vec![vec![1; 3]; 5];
        let w = plan_document_windows(&counts, &doc_plan(100, 6, 2, 5));
        let got: Vec<(usize, usize, usize, usize)> = w
            .iter()
            .map(|w| (w.word_start, w.core_start, w.core_end, w.word_end))
            .collect();
        assert_eq!(got, vec![(0, 0, 6, 8), (4, 6, 12, 14), (10, 12, 15, 15)]);
        // A single sentence that fits is the window plan_windows gives it.
        let one = vec![vec![1, 2, 3]];
        assert_eq!(
            plan_document_windows(&one, &doc_plan(10, 4, 2, 5)),
            plan_windows(&one[0], 10, 5, 4)
        );
    }

    proptest! {
        #[test]
        fn document_windows_cover_every_sentence_span_once(
            counts in proptest::collection::vec(proptest::collection::vec(1usize..5, 0..30), 1..12),
            budget in 8usize..120,
            core in 1usize..80,
            margin in 0usize..40,
            max_width in 1usize..6,
        ) {
            let plan = doc_plan(budget, core, margin, max_width);
            let windows = plan_document_windows(&counts, &plan);
            let flat: Vec<usize> = counts.iter().flatten().copied().collect();
            let n = flat.len();
            let mut sentence_of = Vec::new();
            let mut bounds = Vec::new();
            for (k, c) in counts.iter().enumerate() {
                let s0 = sentence_of.len();
                sentence_of.extend(std::iter::repeat_n(k, c.len()));
                bounds.push((s0, s0 + c.len()));
            }
            let mut next = 0;
            for w in &windows {
                prop_assert_eq!(w.core_start, next);
                prop_assert!(w.core_end > w.core_start);
                prop_assert!(w.word_start <= w.core_start && w.core_end <= w.word_end && w.word_end <= n);
                let tokens: usize = flat[w.word_start..w.word_end].iter().map(|c| (*c).min(budget)).sum();
                prop_assert!(tokens <= budget || w.word_end - w.word_start == 1);
                // A core that spans several sentences holds whole sentences.
                let (a, b) = (sentence_of[w.core_start], sentence_of[w.core_end - 1]);
                if a != b {
                    prop_assert_eq!(w.core_start, bounds[a].0);
                    prop_assert_eq!(w.core_end, bounds[b].1);
                }
                next = w.core_end;
            }
            prop_assert_eq!(next, n);
            // Every span inside a sentence lies in the window that owns its first word, when the
            // budget leaves room for cutting long sentences with their span reach.
            if budget >= 4 * (2 * max_width + 2 * 4 + 2) {
                for &(s0, e0) in &bounds {
                    for s in s0..e0 {
                        let owners: Vec<_> = windows.iter().filter(|w| w.core_start <= s && s < w.core_end).collect();
                        prop_assert_eq!(owners.len(), 1);
                        for e in s + 1..=(s + max_width).min(e0) {
                            prop_assert!(e <= owners[0].word_end, "span {}..{} cut by {:?}", s, e, owners[0]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn encode_window_maps_words_to_pieces() {
        let pieces = vec![vec![5], vec![6, 7, 8], vec![9]];
        let w = Window {
            word_start: 1,
            word_end: 3,
            core_start: 1,
            core_end: 3,
        };
        let e = encode_window(&pieces, w, &[101], &[102], 2);
        assert_eq!(e.ids, vec![101, 6, 7, 9, 102]);
        assert_eq!(e.first, vec![1, 3]);
        assert_eq!(e.last, vec![2, 3]);
    }
}
