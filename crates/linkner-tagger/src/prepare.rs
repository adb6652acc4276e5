//! From sentences to encoder windows with their spans, and from windows to tensor batches.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use linkner_core::{LabelSchema, Sentence};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TaggerError};
use crate::model::SpanBatch;
use crate::span::{
    SPAN_SHAPE_FEATURES, WORD_SHAPE_FEATURES, enumerate_spans, span_shape, word_shape,
};
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
    let plan = DocumentPlan {
        budget,
        core_tokens: options.document_context.core_tokens,
        margin_tokens: options.document_context.margin_tokens,
        max_width: options.max_span_width,
        context: options.window_context,
    };
    let windows = plan_document_windows(&counts, &plan);
    let mut items = Vec::with_capacity(windows.len());
    for w in windows {
        let enc = encode_window(&pieces, w, tokenizer.prefix(), tokenizer.suffix(), budget);
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
            let (k, local) = owner[flat];
            let s0 = offsets[k];
            let sentence_end = s0 + sentences[k].len();
            let core_end = w.core_end.min(sentence_end);
            let limit = w.word_end.min(sentence_end) - s0;
            let spans = enumerate_spans(local..core_end - s0, limit, options.max_span_width);
            item.sentences += 1;
            for (s, e) in spans {
                let (fs, fe) = (s0 + s - w.word_start, s0 + e - 1 - w.word_start);
                item.positions.push((item.enc.first[fs], item.enc.last[fe]));
                item.shapes
                    .push(span_shape(&word_shapes[s0..sentence_end], s, e));
                if schema.is_some() {
                    item.labels
                        .push(golds[k].get(&(s, e)).copied().unwrap_or(0));
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

/// The host arrays of a batch of windows (right-padded), ready to be copied to a device; built
/// apart from the device so that another thread can prepare the next batch while the device
/// runs the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Windows × padded length.
    pub dims: [usize; 2],
    /// Token ids, row-major `[windows, length]`.
    pub ids: Vec<i64>,
    /// 1.0 for tokens, 0.0 for padding.
    pub mask: Vec<f32>,
    /// Flat index of each span's first sub-token.
    pub start: Vec<i64>,
    /// Flat index of each span's last sub-token.
    pub end: Vec<i64>,
    /// `width - 1` of each span.
    pub width: Vec<i64>,
    /// Shape features, `SPAN_SHAPE_FEATURES` per span.
    pub shape: Vec<f32>,
}

impl HostBatch {
    /// The arrays of `items` (right-padded with `pad_id`).
    pub fn new(items: &[&WindowItem], pad_id: u32) -> HostBatch {
        let b = items.len();
        let t = items
            .iter()
            .map(|i| i.enc.ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let spans: usize = items.iter().map(|i| i.spans.len()).sum();
        let mut hb = HostBatch {
            dims: [b, t],
            ids: vec![i64::from(pad_id); b * t],
            mask: vec![0f32; b * t],
            start: Vec::with_capacity(spans),
            end: Vec::with_capacity(spans),
            width: Vec::with_capacity(spans),
            shape: Vec::with_capacity(spans * SPAN_SHAPE_FEATURES),
        };
        for (bi, item) in items.iter().enumerate() {
            for (k, id) in item.enc.ids.iter().enumerate() {
                hb.ids[bi * t + k] = i64::from(*id);
                hb.mask[bi * t + k] = 1.0;
            }
            for (k, &(s, e)) in item.spans.iter().enumerate() {
                let (first, last) = item.positions[k];
                hb.start.push((bi * t + first) as i64);
                hb.end.push((bi * t + last) as i64);
                hb.width.push((e - s - 1) as i64);
                hb.shape.extend_from_slice(&item.shapes[k]);
            }
        }
        hb
    }

    /// The batch's tensors on `device`.
    pub fn to_device(self, device: &Device) -> SpanBatch {
        let [b, t] = self.dims;
        let n = self.start.len();
        SpanBatch {
            input_ids: Tensor::<2, Int>::from_data(TensorData::new(self.ids, [b, t]), device),
            attention_mask: Tensor::<2>::from_data(TensorData::new(self.mask, [b, t]), device),
            start_index: Tensor::<1, Int>::from_data(TensorData::new(self.start, [n]), device),
            end_index: Tensor::<1, Int>::from_data(TensorData::new(self.end, [n]), device),
            width: Tensor::<1, Int>::from_data(TensorData::new(self.width, [n]), device),
            shape: Tensor::<2>::from_data(
                TensorData::new(self.shape, [n, SPAN_SHAPE_FEATURES]),
                device,
            ),
        }
    }
}

/// Builds the tensors of a batch of windows (right-padded with `pad_id`).
pub fn build_batch(items: &[&WindowItem], pad_id: u32, device: &Device) -> SpanBatch {
    HostBatch::new(items, pad_id).to_device(device)
}

/// Groups item indices into batches of at most `batch_size` sentences (a window counts the
/// sentences it owns, see [`WindowItem::sentences`]; a batch holds at least one window) and
/// `max_spans` spans, in order of token length (so padding is small).
pub fn length_buckets(
    items: &[WindowItem],
    order: &[usize],
    batch_size: usize,
    max_spans: usize,
) -> Vec<Vec<usize>> {
    let mut sorted: Vec<usize> = order.to_vec();
    sorted.sort_by_key(|&i| items[i].enc.ids.len());
    let mut batches = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let (mut spans, mut weight) = (0usize, 0usize);
    for i in sorted {
        let n = items[i].spans.len();
        let w = items[i].sentences.max(1);
        if !cur.is_empty() && (weight + w > batch_size.max(1) || spans + n > max_spans.max(1)) {
            batches.push(std::mem::take(&mut cur));
            spans = 0;
            weight = 0;
        }
        spans += n;
        weight += w;
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}
