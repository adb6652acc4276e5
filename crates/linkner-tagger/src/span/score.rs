//! The scoring passes of a [`SpanTagger`]: windows are bucketed by length and run batch by
//! batch, in turn or in concurrent CPU streams (`crate::streams`), or pipelined with the host
//! work on CUDA; every enumerated span gets its logits, probabilities and Monte-Carlo samples.

use burn::tensor::activation::softmax;
use burn::tensor::{FloatDType, Tensor};
use linkner_core::{Candidate, Sentence};

use super::batch::{HostBatch, build_batch, length_buckets};
use super::prepare::{WindowItem, document_runs};
use super::{PredictOptions, ScoredSpan, SpanBatch, SpanTagger};
use crate::device::DeviceSpec;
use crate::error::{Result, TaggerError};

impl SpanTagger {
    /// Scores every enumerated span of every sentence, each sentence encoded alone.
    pub fn score_spans(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        let singles: Vec<&[Sentence]> = sentences.chunks(1).collect();
        self.score_documents(&singles, options)
    }

    /// Scores every enumerated span of every sentence of the documents (given as their
    /// sentences); the result has one entry per sentence, all documents in order.
    pub fn score_documents(
        &self,
        documents: &[&[Sentence]],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        self.score_documents_kept(documents, options, true)
    }

    /// [`SpanTagger::score_documents`], keeping the spans whose most probable class is the
    /// non-entity class only with `non_entities`.
    pub(super) fn score_documents_kept(
        &self,
        documents: &[&[Sentence]],
        options: &PredictOptions,
        non_entities: bool,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        if self.pipelines() {
            return self.score_pipelined(documents, options, non_entities);
        }
        let total: usize = documents.iter().map(|d| d.len()).sum();
        let items = self.prepare_documents(documents)?;
        let order: Vec<usize> = (0..items.len()).collect();
        let batches = length_buckets(&items, &order, options.batch_size, usize::MAX);
        self.score_windows(&items, &batches, total, options, non_entities)
    }

    /// Deterministic scores of prepared windows, fed to the model exactly in `batches` (lists
    /// of indices into `items`, run in the given order, without re-sorting) — unlike
    /// [`SpanTagger::score_spans`], which buckets windows by length. Float inputs are cast to
    /// the model's precision and the logits read back as f32. Returns the scored spans of each
    /// of `num_sentences` sentences, sorted by `(start, end)`.
    pub(crate) fn score_batches(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
        num_sentences: usize,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        self.score_windows(
            items,
            batches,
            num_sentences,
            &PredictOptions::default(),
            true,
        )
    }

    /// Candidates of `sentences` from their prepared windows (from [`SpanTagger::prepare`] or
    /// [`SpanTagger::prepare_documents`] on the same sentences), fed to the model exactly in
    /// `batches` — what [`LocalTagger::tag_sentences`](linkner_core::LocalTagger::tag_sentences) does after bucketing windows by length.
    pub(crate) fn tag_batches(
        &self,
        sentences: &[Sentence],
        items: &[WindowItem],
        batches: &[Vec<usize>],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let scored = self.score_windows(items, batches, sentences.len(), options, false)?;
        sentences
            .iter()
            .zip(scored)
            .map(|(s, spans)| self.candidates(s, spans, options.overlapping))
            .collect()
    }

    /// The batch tensors of prepared windows on the tagger's device, in the model's precision
    /// (for timing the encoder alone: [`SpanTagger::encode_all`]).
    pub(crate) fn build_batches(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
    ) -> Vec<SpanBatch> {
        batches
            .iter()
            .map(|b| {
                let batch_items: Vec<&WindowItem> =
                    b.iter().filter_map(|&i| items.get(i)).collect();
                self.cast_inputs(build_batch(&batch_items, self.pad_id(), &self.device))
            })
            .collect()
    }

    /// Runs the encoder alone over `batches` and waits until the device is done (reads one
    /// value of the last output back); returns the number of batches run.
    pub(crate) fn encode_all(&self, batches: &[SpanBatch]) -> Result<usize> {
        let plan = self.stream_plan(&PredictOptions::default(), batches.len());
        if plan.0 > 1 {
            // As many streams as `score_batches` uses; each reads back one value of every
            // output (a CPU forward pass is done when it returns).
            crate::streams::run(
                batches.len(),
                plan,
                || (),
                |(), k| read_one(self.model.encode(&batches[k], false)),
            )?;
            return Ok(batches.len());
        }
        let mut last = None;
        for b in batches {
            last = Some(self.model.encode(b, false));
        }
        if let Some(h) = last {
            read_one(h)?;
        }
        Ok(batches.len())
    }

    /// Whether inference overlaps the host work with the device: on CUDA (the device runs
    /// asynchronously), not on the CPU, where the host work would compete with LibTorch's
    /// threads for the same cores.
    fn pipelines(&self) -> bool {
        self.device != DeviceSpec::Cpu.device() && self.device != DeviceSpec::Flex.device()
    }

    /// [`SpanTagger::score_documents`] with the host work overlapped with the device: a second
    /// thread tokenizes, windows, buckets by length and builds the batch arrays of the next
    /// chunk of documents (about eight batches) while this thread runs the current chunk on the
    /// device and decodes its results. Length buckets are formed within each chunk. Used on
    /// CUDA; gives the same spans as the sequential path (up to the batch composition).
    pub fn score_pipelined(
        &self,
        documents: &[&[Sentence]],
        options: &PredictOptions,
        non_entities: bool,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        /// One chunk: its windows and its batches (indices into the windows, host arrays).
        type Chunk = (Vec<WindowItem>, Vec<(Vec<usize>, HostBatch)>);
        let total: usize = documents.iter().map(|d| d.len()).sum();
        let chunks = document_runs(documents, options.batch_size.max(1) * 8);
        let pad = self.pad_id();
        let mut out: Vec<Vec<ScoredSpan>> = vec![Vec::new(); total];
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk>>(1);
            scope.spawn(move || {
                for (first, docs) in chunks {
                    let chunk = (|| -> Result<Chunk> {
                        let items = self.prepare_from(first, docs)?;
                        let order: Vec<usize> = (0..items.len()).collect();
                        let batches =
                            length_buckets(&items, &order, options.batch_size, usize::MAX)
                                .into_iter()
                                .map(|b| {
                                    let refs: Vec<&WindowItem> =
                                        b.iter().map(|&i| &items[i]).collect();
                                    let host = HostBatch::new(&refs, pad);
                                    (b, host)
                                })
                                .collect();
                        Ok((items, batches))
                    })();
                    let failed = chunk.is_err();
                    if tx.send(chunk).is_err() || failed {
                        break;
                    }
                }
            });
            for chunk in rx {
                let (items, batches) = chunk?;
                for (b, host) in batches {
                    let refs: Vec<&WindowItem> = b.iter().map(|&i| &items[i]).collect();
                    self.score_batch(&refs, host, options, non_entities, &mut out)?;
                }
            }
            Ok(())
        })?;
        for spans in &mut out {
            spans.sort_by_key(|s| (s.start, s.end));
        }
        Ok(out)
    }

    /// Scores prepared windows batch by batch in the order given, with `options.mc_samples`
    /// stochastic passes per batch; spans of each sentence sorted by `(start, end)`. Without
    /// `non_entities`, only the spans whose most probable class is an entity are returned (all
    /// that decoding looks at), which spares building the others.
    fn score_windows(
        &self,
        items: &[WindowItem],
        batches: &[Vec<usize>],
        num_sentences: usize,
        options: &PredictOptions,
        non_entities: bool,
    ) -> Result<Vec<Vec<ScoredSpan>>> {
        let run = |out: &mut Vec<Vec<ScoredSpan>>, batch_idx: &[usize]| -> Result<()> {
            let batch_items: Vec<&WindowItem> = batch_idx
                .iter()
                .map(|&i| {
                    items.get(i).ok_or_else(|| {
                        TaggerError::InvalidArgument(format!("window {i} outside the items"))
                    })
                })
                .collect::<Result<_>>()?;
            let host = HostBatch::new(&batch_items, self.pad_id());
            self.score_batch(&batch_items, host, options, non_entities, out)
        };
        let plan = self.stream_plan(options, batches.len());
        let mut out: Vec<Vec<ScoredSpan>> = vec![Vec::new(); num_sentences];
        if plan.0 > 1 {
            let parts = crate::streams::run(
                batches.len(),
                plan,
                || vec![Vec::new(); num_sentences],
                |part, k| run(part, &batches[k]),
            )?;
            for part in parts {
                for (spans, more) in out.iter_mut().zip(part) {
                    spans.extend(more);
                }
            }
        } else {
            for batch_idx in batches {
                run(&mut out, batch_idx)?;
            }
        }
        for spans in &mut out {
            spans.sort_by_key(|s| (s.start, s.end));
        }
        Ok(out)
    }

    /// Runs one batch (its windows and their host arrays) and appends the scored spans to `out`
    /// (one list per sentence).
    fn score_batch(
        &self,
        batch_items: &[&WindowItem],
        host: HostBatch,
        options: &PredictOptions,
        non_entities: bool,
        out: &mut [Vec<ScoredSpan>],
    ) -> Result<()> {
        let num_sentences = out.len();
        let classes = self.config.schema.num_classes();
        // Per span, one row read back: logits, probabilities, the most probable class, then the
        // probabilities of each stochastic pass.
        let width = 2 * classes + 1 + options.mc_samples * classes;
        {
            let batch = self.cast_inputs(host.to_device(&self.device));
            let hidden = self.model.encode(&batch, false);
            // Span gathering, scoring, softmax and argmax stay on the device; one transfer of
            // the packed rows per batch.
            let logits = self
                .model
                .span_logits(hidden.clone(), &batch, false)
                .cast(FloatDType::F32);
            let probs = softmax(logits.clone(), 1);
            let best = probs.clone().argmax(1).float();
            let mut parts = vec![logits, probs, best];
            for _ in 0..options.mc_samples {
                let h = if options.mc_encoder {
                    self.model.encode(&batch, true)
                } else {
                    hidden.clone()
                };
                let sample = self
                    .model
                    .span_logits(h, &batch, true)
                    .cast(FloatDType::F32);
                parts.push(softmax(sample, 1));
            }
            let packed: Vec<f32> = Tensor::cat(parts, 1)
                .try_into_vec_as::<f32>()
                .map_err(TaggerError::tensor)?;
            let mut k = 0usize;
            for item in batch_items {
                for (&(s, e), &sentence) in item.spans.iter().zip(&item.span_sentence) {
                    let spans = out.get_mut(sentence).ok_or_else(|| {
                        TaggerError::InvalidArgument(format!(
                            "sentence {sentence} outside the {num_sentences} sentences"
                        ))
                    })?;
                    let row = packed.get(k * width..(k + 1) * width).ok_or_else(|| {
                        TaggerError::InvalidArgument(format!(
                            "the model scored fewer spans than the batch holds ({k})"
                        ))
                    })?;
                    k += 1;
                    if !non_entities && row[2 * classes] < 0.5 {
                        continue;
                    }
                    let mc_probs = row[2 * classes + 1..]
                        .chunks(classes)
                        .map(<[f32]>::to_vec)
                        .collect();
                    spans.push(ScoredSpan {
                        start: s,
                        end: e,
                        logits: row[..classes].to_vec(),
                        probs: row[classes..2 * classes].to_vec(),
                        mc_probs,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Reads one value of `h` back to the host (waits until the device has computed it).
fn read_one(h: Tensor<3>) -> Result<()> {
    let [b, t, d] = h.dims();
    if b * t * d > 0 {
        h.slice([0..1, 0..1, 0..1])
            .try_into_vec_as::<f32>()
            .map_err(TaggerError::tensor)?;
    }
    Ok(())
}
