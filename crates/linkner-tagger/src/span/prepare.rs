//! From sentences to encoder windows with their spans: [`DocumentContext`], the window items
//! ([`WindowItem`]) of a sentence or a document, and the [`SpanTagger`]'s preparation of
//! sentences and documents (tokenized on several threads on the CPU).

use std::collections::HashMap;

use linkner_core::{LabelSchema, Sentence};
use serde::{Deserialize, Serialize};

use super::features::{
    SPAN_SHAPE_FEATURES, WORD_SHAPE_FEATURES, enumerate_spans, span_shape, word_shape,
};
use super::{PredictOptions, SpanTagger};
use crate::error::{Result, TaggerError};
use crate::tokenize::{
    DocumentPlan, EncodedWindow, SubwordTokenizer, encode_window, plan_document_windows,
};

/// Document context: whether, and how, encoder windows are filled with the neighbouring
/// sentences of the same document.
///
/// When it is on and the input comes in documents, consecutive sentences of a document are
/// packed into one window core of up to `core_tokens` sub-tokens, and up to `margin_tokens`
/// sub-tokens of the words just before and after the core (from the neighbouring sentences) are
/// encoded too, as context: they are not scored, and spans never cross a sentence boundary.
/// Sentences given without documents (raw text, files without document markers) are encoded
/// alone either way. A tagger stores this in its checkpoint (`tagger.json`), so inference
/// encodes windows the way training did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentContext {
    /// Whether documents give context.
    pub enabled: bool,
    /// Most sub-tokens of the sentences packed into one window core.
    #[serde(default = "DocumentContext::default_core_tokens")]
    pub core_tokens: usize,
    /// Sub-tokens of context on each side of a core.
    #[serde(default = "DocumentContext::default_margin_tokens")]
    pub margin_tokens: usize,
}

impl DocumentContext {
    fn default_core_tokens() -> usize {
        128
    }

    fn default_margin_tokens() -> usize {
        32
    }

    /// Document context on, with the default core (128 sub-tokens) and margins (32 on each
    /// side): windows of at most 192 sub-tokens plus the special tokens.
    pub fn on() -> DocumentContext {
        DocumentContext {
            enabled: true,
            core_tokens: Self::default_core_tokens(),
            margin_tokens: Self::default_margin_tokens(),
        }
    }

    /// Document context off: every sentence is encoded alone.
    pub fn off() -> DocumentContext {
        DocumentContext {
            enabled: false,
            ..DocumentContext::on()
        }
    }
}

/// Off: what a checkpoint without the field was trained with.
impl Default for DocumentContext {
    fn default() -> Self {
        DocumentContext::off()
    }
}

/// How sentences are cut and which spans are enumerated.
#[derive(Debug, Clone, Copy)]
pub struct PrepareOptions {
    /// Longest span in words.
    pub max_span_width: usize,
    /// Most tokens per window, special tokens included.
    pub max_tokens: usize,
    /// Words of context kept around a window's core when a sentence is cut.
    pub window_context: usize,
    /// Context from the neighbouring sentences of a document.
    pub document_context: DocumentContext,
}

/// One encoder window with the spans it owns: the spans of one sentence, or with document
/// context the spans of several consecutive sentences of a document.
#[derive(Debug, Clone)]
pub struct WindowItem {
    /// The encoded window; its word indices run over all the words of the sentences it was
    /// planned from (one sentence, or a whole document).
    pub enc: EncodedWindow,
    /// Spans `(start, end)` in word indices of their sentence (end exclusive).
    pub spans: Vec<(usize, usize)>,
    /// Index (in the input order) of the sentence of each span.
    pub span_sentence: Vec<usize>,
    /// Position in `enc.ids` of each span's first sub-token (of its first word) and last
    /// sub-token (of its last word).
    pub positions: Vec<(usize, usize)>,
    /// Shape features of each span.
    pub shapes: Vec<[f32; SPAN_SHAPE_FEATURES]>,
    /// Gold class of each span (0 = non-entity); empty when unlabelled.
    pub labels: Vec<usize>,
    /// Number of sentences whose spans the window owns (the weight of the window when batches
    /// are cut by sentences).
    pub sentences: usize,
}

/// Gold classes of a sentence's entities, keyed by `(start, end)`.
fn gold_classes(
    sentence: &Sentence,
    schema: &LabelSchema,
) -> Result<HashMap<(usize, usize), usize>> {
    sentence
        .spans
        .iter()
        .map(|s| {
            schema
                .class_of(&s.label)
                .filter(|c| *c > 0)
                .map(|c| ((s.start, s.end), c))
                .ok_or_else(|| TaggerError::UnknownLabel {
                    label: s.label.clone(),
                    schema: schema.name.clone(),
                    expected: schema.type_names().join(", "),
                })
        })
        .collect()
}

/// Cuts `sentence` (index `index` in the input) into windows and enumerates its spans; with
/// `schema`, attaches gold classes from `sentence.spans` (an unknown label is an error).
pub fn prepare_sentence(
    index: usize,
    sentence: &Sentence,
    tokenizer: &SubwordTokenizer,
    options: &PrepareOptions,
    schema: Option<&LabelSchema>,
) -> Result<Vec<WindowItem>> {
    prepare_group(
        index,
        std::slice::from_ref(sentence),
        tokenizer,
        options,
        schema,
    )
}

/// Windows of the consecutive sentences of one document, the first of which has index `first`
/// in the input. With document context off, each sentence is prepared alone
/// ([`prepare_sentence`]); with it on, sentences share windows (see [`DocumentContext`]).
pub fn prepare_document(
    first: usize,
    sentences: &[Sentence],
    tokenizer: &SubwordTokenizer,
    options: &PrepareOptions,
    schema: Option<&LabelSchema>,
) -> Result<Vec<WindowItem>> {
    if options.document_context.enabled {
        return prepare_group(first, sentences, tokenizer, options, schema);
    }
    let mut items = Vec::new();
    for (k, s) in sentences.iter().enumerate() {
        items.extend(prepare_sentence(first + k, s, tokenizer, options, schema)?);
    }
    Ok(items)
}

/// The words of the sentences of a group, flattened: their sub-tokens, and per word its
/// sentence and shape features.
struct GroupWords {
    /// Sub-token ids of every word, all sentences in order.
    pieces: Vec<Vec<u32>>,
    /// Per sentence, the sub-token count of each word.
    counts: Vec<Vec<usize>>,
    /// Per flat word: its sentence (index into the group) and its index in that sentence.
    owner: Vec<(usize, usize)>,
    /// Shape features of every flat word.
    shapes: Vec<[f32; WORD_SHAPE_FEATURES]>,
    /// Per sentence, the flat index of its first word.
    offsets: Vec<usize>,
    /// Per sentence, the gold classes of its entities (empty without a schema).
    golds: Vec<HashMap<(usize, usize), usize>>,
}

impl GroupWords {
    /// Tokenizes the words of `sentences` (a word longer than `budget` sub-tokens is logged:
    /// its representation uses the first ones) and reads their gold classes with `schema`.
    fn of(
        sentences: &[Sentence],
        tokenizer: &SubwordTokenizer,
        budget: usize,
        schema: Option<&LabelSchema>,
    ) -> Result<GroupWords> {
        let mut pieces: Vec<Vec<u32>> = Vec::new();
        let mut counts: Vec<Vec<usize>> = Vec::with_capacity(sentences.len());
        // Per flat word: its sentence (index into `sentences`) and its index in that sentence.
        let mut owner: Vec<(usize, usize)> = Vec::new();
        let mut word_shapes: Vec<[f32; WORD_SHAPE_FEATURES]> = Vec::new();
        let mut offsets: Vec<usize> = Vec::with_capacity(sentences.len());
        let mut golds: Vec<HashMap<(usize, usize), usize>> = Vec::with_capacity(sentences.len());
        for (k, sentence) in sentences.iter().enumerate() {
            let words = sentence.words();
            let p = tokenizer.word_pieces(&words)?;
            if let Some((i, c)) = p.iter().enumerate().find(|(_, p)| p.len() > budget) {
                tracing::warn!(
                    word = i,
                    pieces = c.len(),
                    budget,
                    "a word has more sub-tokens than a window holds; its representation uses the first ones"
                );
            }
            counts.push(p.iter().map(Vec::len).collect());
            offsets.push(pieces.len());
            owner.extend((0..words.len()).map(|i| (k, i)));
            word_shapes.extend(words.iter().enumerate().map(|(i, w)| word_shape(w, i == 0)));
            pieces.extend(p);
            golds.push(match schema {
                Some(schema) => gold_classes(sentence, schema)?,
                None => HashMap::new(),
            });
        }
        Ok(GroupWords {
            pieces,
            counts,
            owner,
            shapes: word_shapes,
            offsets,
            golds,
        })
    }
}

/// Windows of `sentences` planned together by [`plan_document_windows`].
fn prepare_group(
    first: usize,
    sentences: &[Sentence],
    tokenizer: &SubwordTokenizer,
    options: &PrepareOptions,
    schema: Option<&LabelSchema>,
) -> Result<Vec<WindowItem>> {
    let budget = options
        .max_tokens
        .saturating_sub(tokenizer.num_special())
        .max(1);
    let words = GroupWords::of(sentences, tokenizer, budget, schema)?;
    let plan = DocumentPlan {
        budget,
        core_tokens: options.document_context.core_tokens,
        margin_tokens: options.document_context.margin_tokens,
        max_width: options.max_span_width,
        context: options.window_context,
    };
    let windows = plan_document_windows(&words.counts, &plan);
    let mut items = Vec::with_capacity(windows.len());
    for w in windows {
        let enc = encode_window(
            &words.pieces,
            w,
            tokenizer.prefix(),
            tokenizer.suffix(),
            budget,
        );
        let mut item = WindowItem {
            enc,
            spans: Vec::new(),
            span_sentence: Vec::new(),
            positions: Vec::new(),
            shapes: Vec::new(),
            labels: Vec::new(),
            sentences: 0,
        };
        let mut flat = w.core_start;
        while flat < w.core_end {
            let (k, local) = words.owner[flat];
            let s0 = words.offsets[k];
            let sentence_end = s0 + sentences[k].len();
            let core_end = w.core_end.min(sentence_end);
            let limit = w.word_end.min(sentence_end) - s0;
            let spans = enumerate_spans(local..core_end - s0, limit, options.max_span_width);
            item.sentences += 1;
            for (s, e) in spans {
                let (fs, fe) = (s0 + s - w.word_start, s0 + e - 1 - w.word_start);
                item.positions.push((item.enc.first[fs], item.enc.last[fe]));
                item.shapes
                    .push(span_shape(&words.shapes[s0..sentence_end], s, e));
                if schema.is_some() {
                    item.labels
                        .push(words.golds[k].get(&(s, e)).copied().unwrap_or(0));
                }
                item.spans.push((s, e));
                item.span_sentence.push(first + k);
            }
            flat = core_end;
        }
        items.push(item);
    }
    Ok(items)
}

impl SpanTagger {
    /// Window and span options of this tagger.
    pub(crate) fn prepare_options(&self) -> PrepareOptions {
        PrepareOptions {
            max_span_width: self.config.model.max_span_width,
            max_tokens: self.config.max_tokens,
            window_context: self.config.window_context,
            document_context: self.config.document_context,
        }
    }

    /// Pad token id.
    pub(crate) fn pad_id(&self) -> u32 {
        self.config.model.encoder.pad_token_id as u32
    }

    /// Windows and spans of `sentences`, each encoded alone, without labels.
    pub(crate) fn prepare(&self, sentences: &[Sentence]) -> Result<Vec<WindowItem>> {
        let singles: Vec<&[Sentence]> = sentences.chunks(1).collect();
        self.prepare_documents(&singles)
    }

    /// Windows and spans of documents given as their sentences, without labels; with document
    /// context on, the sentences of a document share windows. Sentence indices in the items
    /// count the sentences of all documents in order.
    ///
    /// On the LibTorch CPU device, the documents are tokenized on as many threads as a pass
    /// has streams ([`SpanTagger::with_streams`]); the items are the same, in the same order.
    pub(crate) fn prepare_documents(&self, documents: &[&[Sentence]]) -> Result<Vec<WindowItem>> {
        let (parts, _) = self.stream_plan(&PredictOptions::default(), documents.len());
        self.prepare_in_parts(documents, parts)
    }

    /// [`SpanTagger::prepare_documents`] with sentence indices counted from `first`.
    pub(super) fn prepare_from(
        &self,
        mut first: usize,
        documents: &[&[Sentence]],
    ) -> Result<Vec<WindowItem>> {
        let opts = self.prepare_options();
        let mut items = Vec::new();
        for doc in documents {
            items.extend(prepare_document(first, doc, &self.tokenizer, &opts, None)?);
            first += doc.len();
        }
        Ok(items)
    }

    /// [`SpanTagger::prepare_documents`] split into `parts` runs of consecutive documents
    /// (about as many sentences each) tokenized on as many threads; the same items in the
    /// same order.
    fn prepare_in_parts(&self, documents: &[&[Sentence]], parts: usize) -> Result<Vec<WindowItem>> {
        let total: usize = documents.iter().map(|d| d.len()).sum();
        if parts < 2 || documents.len() < 2 {
            return self.prepare_from(0, documents);
        }
        let runs = document_runs(documents, total.div_ceil(parts));
        let prepared: Vec<std::thread::Result<Result<Vec<WindowItem>>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .iter()
                    .map(|&(first, docs)| scope.spawn(move || self.prepare_from(first, docs)))
                    .collect();
                handles.into_iter().map(|h| h.join()).collect()
            });
        let mut items = Vec::new();
        for part in prepared {
            let part = part
                .map_err(|_| TaggerError::InvalidArgument("a tokenizing thread panicked".into()))?;
            items.extend(part?);
        }
        Ok(items)
    }
}

/// Splits `documents` into runs of consecutive documents of at least `per_run` sentences each
/// (the last may have fewer), with the index of each run's first sentence among all of them.
pub(super) fn document_runs<'a>(
    documents: &'a [&'a [Sentence]],
    per_run: usize,
) -> Vec<(usize, &'a [&'a [Sentence]])> {
    let per_run = per_run.max(1);
    let mut runs = Vec::new();
    let (mut start, mut first, mut count) = (0usize, 0usize, 0usize);
    for (i, d) in documents.iter().enumerate() {
        count += d.len();
        if count >= per_run || i + 1 == documents.len() {
            runs.push((first, &documents[start..=i]));
            first += count;
            start = i + 1;
            count = 0;
        }
    }
    runs
}
