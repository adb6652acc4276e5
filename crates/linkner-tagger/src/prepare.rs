//! From sentences to encoder windows with their spans, and from windows to tensor batches.

use std::collections::HashMap;

use burn::tensor::{Device, Int, Tensor, TensorData};
use linkner_core::{LabelSchema, Sentence};

use crate::error::{Result, TaggerError};
use crate::model::SpanBatch;
use crate::span::{
    SPAN_SHAPE_FEATURES, WORD_SHAPE_FEATURES, enumerate_spans, span_shape, word_shape,
};
use crate::tokenize::{EncodedWindow, SubwordTokenizer, encode_window, plan_windows};

/// How sentences are cut and which spans are enumerated.
#[derive(Debug, Clone, Copy)]
pub struct PrepareOptions {
    /// Longest span in words.
    pub max_span_width: usize,
    /// Most tokens per window, special tokens included.
    pub max_tokens: usize,
    /// Words of context kept around a window's core when a sentence is cut.
    pub window_context: usize,
}

/// One encoder window of one sentence with the spans it owns.
#[derive(Debug, Clone)]
pub struct WindowItem {
    /// Index of the sentence in the input slice.
    pub sentence: usize,
    /// The encoded window.
    pub enc: EncodedWindow,
    /// Spans `(start, end)` in sentence word indices (end exclusive).
    pub spans: Vec<(usize, usize)>,
    /// Shape features of each span.
    pub shapes: Vec<[f32; SPAN_SHAPE_FEATURES]>,
    /// Gold class of each span (0 = non-entity); empty when unlabelled.
    pub labels: Vec<usize>,
}

/// Cuts `sentence` into windows and enumerates its spans; with `schema`, attaches gold classes
/// from `sentence.spans` (an unknown label is an error).
pub fn prepare_sentence(
    index: usize,
    sentence: &Sentence,
    tokenizer: &SubwordTokenizer,
    options: &PrepareOptions,
    schema: Option<&LabelSchema>,
) -> Result<Vec<WindowItem>> {
    if sentence.tokens.is_empty() {
        return Ok(Vec::new());
    }
    let words = sentence.words();
    let pieces = tokenizer.word_pieces(&words)?;
    let budget = options
        .max_tokens
        .saturating_sub(tokenizer.num_special())
        .max(1);
    let counts: Vec<usize> = pieces.iter().map(Vec::len).collect();
    if let Some((i, c)) = counts.iter().enumerate().find(|(_, c)| **c > budget) {
        tracing::warn!(
            word = i,
            pieces = c,
            budget,
            "a word has more sub-tokens than a window holds; its representation uses the first ones"
        );
    }
    let windows = plan_windows(
        &counts,
        budget,
        options.max_span_width,
        options.window_context,
    );
    let word_shapes: Vec<[f32; WORD_SHAPE_FEATURES]> = words
        .iter()
        .enumerate()
        .map(|(i, w)| word_shape(w, i == 0))
        .collect();
    let gold: HashMap<(usize, usize), usize> = match schema {
        Some(schema) => sentence
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
            .collect::<Result<_>>()?,
        None => HashMap::new(),
    };
    let mut items = Vec::with_capacity(windows.len());
    for w in windows {
        let enc = encode_window(&pieces, w, tokenizer.prefix(), tokenizer.suffix(), budget);
        let spans = enumerate_spans(w.core_start..w.core_end, w.word_end, options.max_span_width);
        let shapes = spans
            .iter()
            .map(|&(s, e)| span_shape(&word_shapes, s, e))
            .collect();
        let labels = if schema.is_some() {
            spans
                .iter()
                .map(|k| gold.get(k).copied().unwrap_or(0))
                .collect()
        } else {
            Vec::new()
        };
        items.push(WindowItem {
            sentence: index,
            enc,
            spans,
            shapes,
            labels,
        });
    }
    Ok(items)
}

/// Builds the tensors of a batch of windows (right-padded with `pad_id`).
pub fn build_batch(items: &[&WindowItem], pad_id: u32, device: &Device) -> SpanBatch {
    let b = items.len();
    let t = items
        .iter()
        .map(|i| i.enc.ids.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut ids = vec![pad_id as i64; b * t];
    let mut mask = vec![0f32; b * t];
    let mut start = Vec::new();
    let mut end = Vec::new();
    let mut width = Vec::new();
    let mut shape = Vec::new();
    for (bi, item) in items.iter().enumerate() {
        for (k, id) in item.enc.ids.iter().enumerate() {
            ids[bi * t + k] = i64::from(*id);
            mask[bi * t + k] = 1.0;
        }
        let ws = item.enc.window.word_start;
        for (k, &(s, e)) in item.spans.iter().enumerate() {
            start.push((bi * t + item.enc.first[s - ws]) as i64);
            end.push((bi * t + item.enc.last[e - 1 - ws]) as i64);
            width.push((e - s - 1) as i64);
            shape.extend_from_slice(&item.shapes[k]);
        }
    }
    let n = start.len();
    SpanBatch {
        input_ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), device),
        attention_mask: Tensor::<2>::from_data(TensorData::new(mask, [b, t]), device),
        start_index: Tensor::<1, Int>::from_data(TensorData::new(start, [n]), device),
        end_index: Tensor::<1, Int>::from_data(TensorData::new(end, [n]), device),
        width: Tensor::<1, Int>::from_data(TensorData::new(width, [n]), device),
        shape: Tensor::<2>::from_data(TensorData::new(shape, [n, SPAN_SHAPE_FEATURES]), device),
    }
}

/// Groups item indices into batches of at most `batch_size` items and `max_spans` spans, in
/// order of token length (so padding is small).
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
    let mut spans = 0usize;
    for i in sorted {
        let n = items[i].spans.len();
        if !cur.is_empty() && (cur.len() >= batch_size.max(1) || spans + n > max_spans.max(1)) {
            batches.push(std::mem::take(&mut cur));
            spans = 0;
        }
        spans += n;
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}
