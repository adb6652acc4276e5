//! Span embeddings from the tagger's own encoder, and a nearest-neighbour index over labelled
//! spans: the basis of per-entity few-shot demonstrations (`linkner`'s k-NN retriever).
//!
//! A span is embedded as the mean of the fine-tuned encoder's states at its first and last
//! sub-tokens (the two states the SpanNER head reads), L2-normalised, so similarity is a dot
//! product. [`SpanIndex`] holds the embeddings of labelled spans with their sentence and class,
//! answers top-`k` queries by exhaustive search, and saves to / loads from two files (a JSON
//! header with the items, a little-endian `f32` matrix), so the index of a checkpoint is built
//! once and kept next to it.

use std::io::{Read, Write};
use std::path::Path;

use burn::tensor::Tensor;
use linkner_core::Sentence;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TaggerError};
use crate::span::SpanTagger;
use crate::span::batch::{build_batch, length_buckets};
use crate::span::features::SPAN_SHAPE_FEATURES;
use crate::span::prepare::{WindowItem, prepare_sentence};

/// One labelled span of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexItem {
    /// The sentence text.
    pub sentence: String,
    /// Char offset of the span in the sentence.
    pub start: usize,
    /// The span's text.
    pub text: String,
    /// Its class in the tagger's schema (0 = non-entity).
    pub class: usize,
}

/// A span to embed: a sentence and a word span `start..end` of it.
#[derive(Debug, Clone, Copy)]
pub struct SpanQuery<'a> {
    /// The sentence.
    pub sentence: &'a Sentence,
    /// First word.
    pub start: usize,
    /// One past the last word.
    pub end: usize,
}

/// Where a query's span sits: the index of its window among the prepared windows, and its
/// index among that window's spans.
type SpanSlot = (usize, usize);

impl SpanTagger {
    /// Embeds spans with the encoder (deterministic pass): one L2-normalised vector of the
    /// encoder's hidden size per query, in query order. Spans of any width are accepted; a span
    /// is read in the window that holds its first word.
    pub fn embed_spans(
        &self,
        queries: &[SpanQuery<'_>],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let (items, owner) = self.query_windows(queries)?;
        let hidden_size = self.config.model.encoder.hidden_size;
        let per_item = self.embed_windows(&items, batch_size)?;
        owner
            .into_iter()
            .map(|(item, slot)| {
                per_item[item].get(slot).cloned().ok_or_else(|| {
                    TaggerError::InvalidArgument(format!(
                        "no embedding for a span (hidden size {hidden_size})"
                    ))
                })
            })
            .collect()
    }

    /// The windows that hold the spans of `queries` (one prepared sentence per query sentence,
    /// shared by the queries of the same sentence; each query's span set in the window that
    /// owns its first word), and per query its `(window, slot)` among the windows' spans.
    fn query_windows(&self, queries: &[SpanQuery<'_>]) -> Result<(Vec<WindowItem>, Vec<SpanSlot>)> {
        let opts = self.prepare_options();
        // One prepared sentence per query sentence (queries of the same sentence share it).
        let mut items: Vec<WindowItem> = Vec::new();
        let mut owner: Vec<SpanSlot> = Vec::with_capacity(queries.len());
        let mut by_text: std::collections::HashMap<*const Sentence, Vec<usize>> =
            std::collections::HashMap::new();
        for (qi, q) in queries.iter().enumerate() {
            if q.start >= q.end || q.end > q.sentence.tokens.len() {
                return Err(TaggerError::InvalidArgument(format!(
                    "span [{}, {}) outside a sentence of {} words",
                    q.start,
                    q.end,
                    q.sentence.tokens.len()
                )));
            }
            let key: *const Sentence = q.sentence;
            let first_items = match by_text.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let prepared = prepare_sentence(qi, q.sentence, &self.tokenizer, &opts, None)?;
                    let ids: Vec<usize> = (items.len()..items.len() + prepared.len()).collect();
                    for mut it in prepared {
                        it.spans.clear();
                        it.span_sentence.clear();
                        it.positions.clear();
                        it.shapes.clear();
                        it.labels.clear();
                        items.push(it);
                    }
                    by_text.insert(key, ids.clone());
                    ids
                }
            };
            let pick = pick_window(&items, &first_items, q)?;
            let w = items[pick].enc.window;
            let end = q.end.min(w.word_end);
            owner.push((pick, items[pick].spans.len()));
            let item = &mut items[pick];
            // Sub-token positions of the span's first and last word in this window (what the
            // batch gathers; they must be set with the span).
            let positions = (
                item.enc.first[q.start - w.word_start],
                item.enc.last[end - 1 - w.word_start],
            );
            item.spans.push((q.start, end));
            item.span_sentence.push(qi);
            item.positions.push(positions);
            item.shapes.push([0.0; SPAN_SHAPE_FEATURES]);
        }
        Ok((items, owner))
    }

    /// Per window of `items`, the embeddings of its spans in order (windows without spans are
    /// not run).
    fn embed_windows(&self, items: &[WindowItem], batch_size: usize) -> Result<Vec<Vec<Vec<f32>>>> {
        let used: Vec<usize> = (0..items.len())
            .filter(|&i| !items[i].spans.is_empty())
            .collect();
        let batches = length_buckets(items, &used, batch_size.max(1), usize::MAX);
        // Per item, the embeddings of its spans in order.
        let mut per_item: Vec<Vec<Vec<f32>>> = vec![Vec::new(); items.len()];
        for batch in batches {
            let refs: Vec<&WindowItem> = batch.iter().map(|&i| &items[i]).collect();
            let b = build_batch(&refs, self.pad_id(), &self.device);
            let hidden = self.model.encode(&b, false);
            let [bs, t, h] = hidden.dims();
            let flat: Tensor<2> = hidden.reshape([bs * t, h]);
            let first = flat.clone().select(0, b.start_index.clone());
            let last = flat.select(0, b.end_index.clone());
            let mean = (first + last).div_scalar(2.0);
            let v: Vec<f32> = mean.try_into_vec_as::<f32>().map_err(TaggerError::tensor)?;
            let mut k = 0usize;
            for &i in &batch {
                for _ in 0..items[i].spans.len() {
                    let mut e = v[k * h..(k + 1) * h].to_vec();
                    normalise(&mut e);
                    per_item[i].push(e);
                    k += 1;
                }
            }
        }
        Ok(per_item)
    }
}

/// The window, among `candidates` (indices into `items`: the windows of the query's sentence),
/// that owns the span's first word and encodes its last word (else the one that owns its first
/// word; its last sub-token is then the window's last).
fn pick_window(items: &[WindowItem], candidates: &[usize], q: &SpanQuery<'_>) -> Result<usize> {
    candidates
        .iter()
        .copied()
        .find(|&i| {
            let w = items[i].enc.window;
            (w.core_start..w.core_end).contains(&q.start) && q.end <= w.word_end
        })
        .or_else(|| {
            candidates.iter().copied().find(|&i| {
                let w = items[i].enc.window;
                (w.core_start..w.core_end).contains(&q.start)
            })
        })
        .ok_or_else(|| {
            TaggerError::InvalidArgument(format!(
                "no window holds word {} of the sentence",
                q.start
            ))
        })
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        for x in v {
            *x /= n;
        }
    }
}

/// Labelled span embeddings, searched exhaustively by dot product.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanIndex {
    /// Embedding size.
    pub dim: usize,
    /// The items, one per row of `vectors`.
    pub items: Vec<IndexItem>,
    /// Row-major `items.len() × dim` L2-normalised vectors.
    pub vectors: Vec<f32>,
}

/// The JSON header of a saved index.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    dim: usize,
    items: Vec<IndexItem>,
}

const FORMAT: &str = "linkner-span-index-v1";

impl SpanIndex {
    /// An index of `items` with their embeddings (one per item, all of length `dim`).
    pub fn new(dim: usize, items: Vec<IndexItem>, embeddings: Vec<Vec<f32>>) -> Result<SpanIndex> {
        if items.len() != embeddings.len() || embeddings.iter().any(|e| e.len() != dim) {
            return Err(TaggerError::InvalidArgument(format!(
                "{} items, {} embeddings, expected all of size {dim}",
                items.len(),
                embeddings.len()
            )));
        }
        Ok(SpanIndex {
            dim,
            items,
            vectors: embeddings.into_iter().flatten().collect(),
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the index holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `k` items most similar to `query` (by dot product, highest first; ties by index),
    /// skipping items for which `skip` is true (e.g. the query's own sentence).
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        skip: impl Fn(&IndexItem) -> bool,
    ) -> Vec<(usize, f32)> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .chunks_exact(self.dim)
            .enumerate()
            .filter(|(i, _)| !skip(&self.items[*i]))
            .map(|(i, v)| (i, v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>()))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
    }

    /// Saves the index as `<path>.json` (header and items) and `<path>.f32` (vectors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = Header {
            format: FORMAT.into(),
            dim: self.dim,
            items: self.items.clone(),
        };
        let json_path = path.with_extension("json");
        let bin_path = path.with_extension("f32");
        let json = serde_json::to_vec(&header).map_err(|source| TaggerError::Json {
            path: json_path.clone(),
            source,
        })?;
        std::fs::write(&json_path, json).map_err(|e| TaggerError::io(&json_path, e))?;
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&bin_path).map_err(|e| TaggerError::io(&bin_path, e))?,
        );
        for x in &self.vectors {
            f.write_all(&x.to_le_bytes())
                .map_err(|e| TaggerError::io(&bin_path, e))?;
        }
        f.flush().map_err(|e| TaggerError::io(&bin_path, e))?;
        Ok(())
    }

    /// Loads an index saved with [`SpanIndex::save`]; a file of another format or size is an
    /// error naming it.
    pub fn load(path: &Path) -> Result<SpanIndex> {
        let json_path = path.with_extension("json");
        let bin_path = path.with_extension("f32");
        let text = std::fs::read(&json_path).map_err(|e| TaggerError::io(&json_path, e))?;
        let header: Header = serde_json::from_slice(&text).map_err(|source| TaggerError::Json {
            path: json_path.clone(),
            source,
        })?;
        if header.format != FORMAT {
            return Err(TaggerError::InvalidArgument(format!(
                "{}: format `{}`, expected `{FORMAT}`",
                json_path.display(),
                header.format
            )));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&bin_path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| TaggerError::io(&bin_path, e))?;
        let want = header.items.len() * header.dim * 4;
        if bytes.len() != want {
            return Err(TaggerError::InvalidArgument(format!(
                "{}: {} bytes, expected {want} ({} items × {} dims)",
                bin_path.display(),
                bytes.len(),
                header.items.len(),
                header.dim
            )));
        }
        let vectors = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(SpanIndex {
            dim: header.dim,
            items: header.items,
            vectors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str, class: usize) -> IndexItem {
        IndexItem {
            sentence: format!("{text} ."),
            start: 0,
            text: text.into(),
            class,
        }
    }

    fn index() -> SpanIndex {
        let v = |a: f32, b: f32| {
            let mut e = vec![a, b, 0.0];
            normalise(&mut e);
            e
        };
        SpanIndex::new(
            3,
            vec![item("a", 1), item("b", 2), item("c", 0), item("d", 1)],
            vec![v(1.0, 0.0), v(0.0, 1.0), v(1.0, 1.0), v(1.0, 0.1)],
        )
        .unwrap()
    }

    #[test]
    fn nearest_orders_by_similarity_and_skips() {
        let idx = index();
        let got: Vec<usize> = idx
            .nearest(&[1.0, 0.0, 0.0], 3, |_| false)
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, vec![0, 3, 2]);
        let got: Vec<usize> = idx
            .nearest(&[1.0, 0.0, 0.0], 2, |it| it.text == "a")
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, vec![3, 2]);
        assert!(
            idx.nearest(&[1.0, 0.0], 2, |_| false).is_empty(),
            "wrong dim"
        );
        assert_eq!(idx.nearest(&[0.0, 1.0, 0.0], 10, |_| false).len(), 4);
    }

    #[test]
    fn save_and_load_round_trip_and_refuse_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idx");
        let idx = index();
        idx.save(&path).unwrap();
        let back = SpanIndex::load(&path).unwrap();
        assert_eq!(back, idx);
        let q = [0.3, 0.9, 0.1];
        assert_eq!(
            back.nearest(&q, 2, |_| false),
            idx.nearest(&q, 2, |_| false)
        );
        let bin = path.with_extension("f32");
        let bytes = std::fs::read(&bin).unwrap();
        std::fs::write(&bin, &bytes[..bytes.len() - 4]).unwrap();
        let err = SpanIndex::load(&path).unwrap_err().to_string();
        assert!(err.contains("idx.f32") && err.contains("expected"), "{err}");
    }
}
