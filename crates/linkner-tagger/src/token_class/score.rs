//! The passes of a [`TokenClassTagger`]: sentences cut into windows, windows bucketed by length
//! and run batch by batch, and the label scores of every word read from its first sub-token.

use burn::tensor::activation::softmax;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};
use linkner_core::Sentence;
use linkner_core::tagger::PredictOptions;

use super::TokenClassTagger;
use crate::error::{Result, TaggerError};
use crate::tokenize::{EncodedWindow, encode_window, plan_windows};

/// The per-word label scores of one sentence: the first sub-token's logits of each word, and
/// the label probabilities of each Monte-Carlo pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WordScores {
    /// `[word][label]` logits of the deterministic pass.
    pub logits: Vec<Vec<f32>>,
    /// `[sample][word][label]` probabilities of the stochastic passes.
    pub mc_probs: Vec<Vec<Vec<f32>>>,
}

/// One encoder window of one sentence.
struct TokenWindow {
    sentence: usize,
    enc: EncodedWindow,
}

impl TokenClassTagger {
    /// Label logits `[seq][labels]` of every token of each id sequence (special tokens
    /// included, as given; one batch, right-padded): what `transformers`' model returns.
    pub fn token_logits(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        let b = ids.len();
        let t = ids.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || t == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let (input, mask) = self.input_tensors(ids.iter().map(Vec::as_slice), b, t);
        let logits = self.model.forward(input, mask, false, false);
        let l = self.config.labels.len();
        let flat: Vec<f32> = logits
            .try_into_vec_as::<f32>()
            .map_err(TaggerError::tensor)?;
        Ok(ids
            .iter()
            .enumerate()
            .map(|(i, row)| {
                (0..row.len())
                    .map(|k| flat[(i * t + k) * l..(i * t + k + 1) * l].to_vec())
                    .collect()
            })
            .collect())
    }

    fn input_tensors<'a>(
        &self,
        rows: impl Iterator<Item = &'a [u32]>,
        b: usize,
        t: usize,
    ) -> (Tensor<2, Int>, Tensor<2>) {
        let pad = self.config.encoder.pad_token_id as i64;
        let mut ids = vec![pad; b * t];
        let mut mask = vec![0f32; b * t];
        for (i, row) in rows.enumerate() {
            for (k, id) in row.iter().enumerate() {
                ids[i * t + k] = i64::from(*id);
                mask[i * t + k] = 1.0;
            }
        }
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &self.device);
        let mut mask = Tensor::<2>::from_data(TensorData::new(mask, [b, t]), &self.device);
        let dtype = self.dtype();
        if dtype != FloatDType::F32 {
            mask = mask.cast(dtype);
        }
        (input, mask)
    }

    /// The windows of `sentences` (see the module docs).
    fn windows(&self, sentences: &[Sentence]) -> Result<Vec<TokenWindow>> {
        let budget = self
            .config
            .max_tokens
            .saturating_sub(self.tokenizer.num_special())
            .max(1);
        let mut out = Vec::new();
        for (i, s) in sentences.iter().enumerate() {
            if s.tokens.is_empty() {
                continue;
            }
            let pieces = self.tokenizer.word_pieces(&s.words())?;
            let counts: Vec<usize> = pieces.iter().map(Vec::len).collect();
            for w in plan_windows(&counts, budget, 1, self.config.window_context) {
                let enc = encode_window(
                    &pieces,
                    w,
                    self.tokenizer.prefix(),
                    self.tokenizer.suffix(),
                    budget,
                );
                out.push(TokenWindow { sentence: i, enc });
            }
        }
        Ok(out)
    }

    /// The label logits of every word (its first sub-token) of every sentence, with
    /// `options.mc_samples` stochastic passes.
    pub fn word_scores(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<WordScores>> {
        let windows = self.windows(sentences)?;
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&i| windows[i].enc.ids.len());
        let mut slots = WordSlots {
            logits: sentences
                .iter()
                .map(|s| vec![None; s.tokens.len()])
                .collect(),
            mc: sentences
                .iter()
                .map(|s| vec![vec![None; s.tokens.len()]; options.mc_samples])
                .collect(),
        };
        for batch in order.chunks(options.batch_size.max(1)) {
            let items: Vec<&TokenWindow> = batch.iter().map(|&i| &windows[i]).collect();
            self.score_windows(&items, options, &mut slots)?;
        }
        slots.into_scores()
    }

    /// Runs one batch of windows (deterministic pass, then `options.mc_samples` stochastic
    /// ones) and fills the slots of their core words.
    fn score_windows(
        &self,
        items: &[&TokenWindow],
        options: &PredictOptions,
        slots: &mut WordSlots,
    ) -> Result<()> {
        let l = self.config.labels.len();
        let b = items.len();
        let t = items
            .iter()
            .map(|w| w.enc.ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let (input, mask) = self.input_tensors(items.iter().map(|w| w.enc.ids.as_slice()), b, t);
        // The first sub-token of every core word, and where its scores go.
        let mut rows: Vec<i64> = Vec::new();
        let mut dest: Vec<(usize, usize)> = Vec::new();
        for (bi, w) in items.iter().enumerate() {
            let win = w.enc.window;
            for word in win.core_start..win.core_end {
                rows.push((bi * t + w.enc.first[word - win.word_start]) as i64);
                dest.push((w.sentence, word));
            }
        }
        let n = rows.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &self.device);
        let hidden = self
            .model
            .encoder
            .forward(input.clone(), mask.clone(), false);
        let det: Vec<f32> = self
            .model
            .rows_logits(hidden.clone(), index.clone(), false)
            .try_into_vec_as::<f32>()
            .map_err(TaggerError::tensor)?;
        for (k, &(s, w)) in dest.iter().enumerate() {
            slots.logits[s][w] = Some(det[k * l..(k + 1) * l].to_vec());
        }
        let mut passes: Vec<Vec<f32>> = Vec::with_capacity(options.mc_samples);
        for _ in 0..options.mc_samples {
            let h = if options.mc_encoder {
                self.model
                    .encoder
                    .forward(input.clone(), mask.clone(), true)
            } else {
                hidden.clone()
            };
            passes.push(
                softmax(self.model.rows_logits(h, index.clone(), true), 1)
                    .try_into_vec_as::<f32>()
                    .map_err(TaggerError::tensor)?,
            );
        }
        for (sample, p) in passes.iter().enumerate() {
            for (k, &(s, w)) in dest.iter().enumerate() {
                slots.mc[s][sample][w] = Some(p[k * l..(k + 1) * l].to_vec());
            }
        }
        Ok(())
    }
}

/// The word scores of a pass while its batches run: per sentence and word, the deterministic
/// logits and, per Monte-Carlo sample, the probabilities (`None` until a window scores it).
struct WordSlots {
    /// `[sentence][word]` logits.
    logits: Vec<Vec<Option<Vec<f32>>>>,
    /// `[sentence][sample][word]` probabilities.
    mc: Vec<Vec<Vec<Option<Vec<f32>>>>>,
}

impl WordSlots {
    /// The scores of every sentence; an error when a word got no window.
    fn into_scores(self) -> Result<Vec<WordScores>> {
        let missing = |s: usize| {
            TaggerError::InvalidArgument(format!(
                "sentence {s}: a word got no window (windowing bug)"
            ))
        };
        self.logits
            .into_iter()
            .zip(self.mc)
            .enumerate()
            .map(|(s, (words, samples))| {
                Ok(WordScores {
                    logits: words
                        .into_iter()
                        .map(|w| w.ok_or_else(|| missing(s)))
                        .collect::<Result<_>>()?,
                    mc_probs: samples
                        .into_iter()
                        .map(|ws| {
                            ws.into_iter()
                                .map(|w| w.ok_or_else(|| missing(s)))
                                .collect()
                        })
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
    }
}
