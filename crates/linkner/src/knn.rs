//! [`KnnRetriever`]: few-shot demonstrations retrieved per entity from a labelled set, by
//! similarity of the tagger's own span embeddings (feature `span-tagger`).
//!
//! The index holds every gold entity of the labelled set and non-entity spans of the kinds a
//! tagger gets wrong (see [`NegativeExamples::Varied`]), embedded once with the checkpoint's
//! encoder and cached next to it (`knn-<hash>.json` / `.f32`); each routed entity is embedded
//! the same way and gets its `k` nearest labelled spans, most similar last (nearest to the
//! question), never from a sentence with the same text.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use linkner_core::{LabelSchema, Sentence, WordSpan};
use linkner_llm::{Example, ExamplePool, NegativeExamples};
use linkner_tagger::SpanTagger;
use linkner_tagger::retrieval::{IndexItem, SpanIndex, SpanQuery};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{LinkError, Result};
use crate::retrieve::{ExampleRetriever, RetrieveError};

/// Settings of a [`KnnRetriever`] index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnnOptions {
    /// Which non-entity spans are indexed.
    pub negatives: NegativeExamples,
    /// Most spans in the index (all gold entities first, then non-entities drawn with `seed`).
    pub max_items: usize,
    /// Seed of the non-entity draw.
    pub seed: u64,
    /// Windows per encoder pass while embedding.
    pub batch_size: usize,
}

impl Default for KnnOptions {
    fn default() -> Self {
        KnnOptions {
            negatives: NegativeExamples::Varied,
            max_items: 40_000,
            seed: 42,
            batch_size: 64,
        }
    }
}

/// Retrieves the `k` labelled spans most similar to each routed entity.
pub struct KnnRetriever {
    tagger: Mutex<SpanTagger>,
    index: SpanIndex,
    k: usize,
    name: String,
}

impl std::fmt::Debug for KnnRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnnRetriever")
            .field("name", &self.name)
            .field("items", &self.index.len())
            .field("k", &self.k)
            .finish()
    }
}

/// The labelled spans of `sentences`: gold entities (class of the schema) and non-entities
/// (class 0) of the kinds `negatives` says, as (sentence index, word span, class).
fn labelled_spans(
    sentences: &[Sentence],
    schema: &LabelSchema,
    options: &KnnOptions,
) -> Vec<(usize, WordSpan, usize)> {
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let pool =
            ExamplePool::from_sentences_with(std::slice::from_ref(s), schema, options.negatives);
        for e in pool.examples {
            let Some(start) = e.start else { continue };
            let end = start + e.entity.chars().count();
            let first = s.tokens.iter().position(|t| t.start == start);
            let last = s.tokens.iter().position(|t| t.end == end);
            if let (Some(a), Some(b)) = (first, last)
                && a <= b
            {
                let span = WordSpan::new(a, b + 1, "");
                if e.class == 0 {
                    negatives.push((i, span, 0));
                } else {
                    positives.push((i, span, e.class));
                }
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    negatives.shuffle(&mut rng);
    positives.truncate(options.max_items);
    let room = options.max_items.saturating_sub(positives.len());
    negatives.truncate(room.min(positives.len().max(1) * 2));
    positives.extend(negatives);
    positives
}

impl KnnRetriever {
    /// Builds the index of the labelled `sentences` with `tagger`'s encoder.
    pub fn build(
        tagger: SpanTagger,
        sentences: &[Sentence],
        k: usize,
        options: &KnnOptions,
    ) -> Result<KnnRetriever> {
        let schema = tagger.config().schema.clone();
        let spans = labelled_spans(sentences, &schema, options);
        let queries: Vec<SpanQuery<'_>> = spans
            .iter()
            .map(|(i, w, _)| SpanQuery {
                sentence: &sentences[*i],
                start: w.start,
                end: w.end,
            })
            .collect();
        let embeddings = tagger.embed_spans(&queries, options.batch_size)?;
        let items: Vec<IndexItem> = spans
            .iter()
            .map(|(i, w, class)| {
                let s = &sentences[*i];
                let (a, b) = (s.tokens[w.start].start, s.tokens[w.end - 1].end);
                IndexItem {
                    sentence: s.text.clone(),
                    start: a,
                    text: s.char_slice(a, b).unwrap_or_default(),
                    class: *class,
                }
            })
            .collect();
        let dim = embeddings
            .first()
            .map_or(tagger.config().model.encoder.hidden_size, Vec::len);
        let index = SpanIndex::new(dim, items, embeddings)?;
        Ok(Self::from_index(tagger, index, k))
    }

    /// A retriever over an existing index (built with the same tagger).
    pub fn from_index(tagger: SpanTagger, index: SpanIndex, k: usize) -> KnnRetriever {
        KnnRetriever {
            name: format!("knn:{k} of {}", index.len()),
            tagger: Mutex::new(tagger),
            index,
            k,
        }
    }

    /// Loads the index cached for (`model_dir`, `data`, `options`) next to the checkpoint, or
    /// builds and caches it. A checkpoint folder that cannot be written only loses the cache
    /// (a warning), never the retriever.
    pub fn load_or_build(
        tagger: SpanTagger,
        model_dir: &Path,
        data: &Path,
        sentences: &[Sentence],
        k: usize,
        options: &KnnOptions,
    ) -> Result<KnnRetriever> {
        let path = index_path(model_dir, data, sentences, options);
        if path.with_extension("json").is_file() {
            match SpanIndex::load(&path) {
                Ok(index) if index.dim == tagger.config().model.encoder.hidden_size => {
                    return Ok(Self::from_index(tagger, index, k));
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "k-NN index of another encoder size; rebuilding")
                }
                Err(e) => tracing::warn!(error = %e, "unreadable k-NN index; rebuilding"),
            }
        }
        let r = Self::build(tagger, sentences, k, options)?;
        if let Err(e) = r.index.save(&path) {
            tracing::warn!(error = %e, "could not cache the k-NN index next to the checkpoint");
        }
        Ok(r)
    }

    /// The index.
    pub fn index(&self) -> &SpanIndex {
        &self.index
    }
}

/// `<model_dir>/knn-<hash>`: the hash covers the data (its path, size and sentences), the
/// options and the index format.
fn index_path(
    model_dir: &Path,
    data: &Path,
    sentences: &[Sentence],
    options: &KnnOptions,
) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    "knn-v2".hash(&mut h);
    data.hash(&mut h);
    sentences.len().hash(&mut h);
    for s in sentences {
        s.text.hash(&mut h);
        for sp in &s.spans {
            (sp.start, sp.end, &sp.label).hash(&mut h);
        }
    }
    format!("{:?}", options.negatives).hash(&mut h);
    options.max_items.hash(&mut h);
    options.seed.hash(&mut h);
    model_dir.join(format!("knn-{:016x}", h.finish()))
}

impl ExampleRetriever for KnnRetriever {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn retrieve(
        &self,
        queries: &[(&Sentence, &WordSpan)],
    ) -> std::result::Result<Vec<Vec<Example>>, RetrieveError> {
        let spans: Vec<SpanQuery<'_>> = queries
            .iter()
            .map(|(s, w)| SpanQuery {
                sentence: s,
                start: w.start,
                end: w.end,
            })
            .collect();
        let embeddings = {
            let tagger = self
                .tagger
                .lock()
                .map_err(|_| LinkError::Task("k-NN tagger lock poisoned".into()))?;
            tagger.embed_spans(&spans, 64)?
        };
        Ok(queries
            .iter()
            .zip(embeddings)
            .map(|((s, _), q)| {
                let mut near = self.index.nearest(&q, self.k, |it| it.sentence == s.text);
                // Most similar last: nearest to the question.
                near.reverse();
                near.into_iter()
                    .map(|(i, _)| {
                        let it = &self.index.items[i];
                        Example::new(it.sentence.clone(), it.text.clone(), it.class).at(it.start)
                    })
                    .collect()
            })
            .collect())
    }
}
