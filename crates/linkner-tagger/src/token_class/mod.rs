//! Hugging Face token-classification checkpoints as a [`LocalTagger`]: [`TokenClassTagger`].
//!
//! A folder with a `BertForTokenClassification` or `RobertaForTokenClassification` head (also
//! XLM-R and CamemBERT, which use RoBERTa's keys) — `config.json` with `id2label`,
//! `model.safetensors`, `tokenizer.json` — is loaded into burn: the encoder through
//! [`crate::encoder`]'s key remapping (keys carry a `bert.`/`roberta.` prefix), the head from
//! `classifier.{weight,bias}`. No retraining: any fine-tuned NER model people run with
//! `pipeline("ner")` becomes the local model of a linkner pipeline.
//!
//! ## From tokens to entities
//!
//! 1. **Words.** The sentence's words are tokenised word by word ([`SubwordTokenizer`]); a word
//!    is read from its **first sub-token**, as `transformers`'
//!    `pipeline("token-classification", aggregation_strategy="first")` does.
//! 2. **Windows.** A sentence longer than the encoder's positions (or `max_tokens`) is cut into
//!    overlapping windows by [`plan_windows`] (the span tagger's windowing, with spans of one
//!    word): every word is predicted from exactly one window, the one whose core holds it, with
//!    up to `window_context` words of context on each side. Nothing is truncated.
//! 3. **Tags.** Each word takes the label with the highest probability (softmax of its logits).
//!    Labels are read as `O`, `B-X`, `I-X`, `E-X`, `S-X` (BILOU's `L-X`/`U-X` as `E-X`/`S-X`);
//!    a label without prefix (`PER`) is read as `I-PER`, as the pipeline does. So BIO, IOB1,
//!    IOB2, IOBES and prefix-less IO models all decode.
//! 4. **Entities.** The tags are chunked with conlleval's rules ([`linkner_core::tags::chunks`]):
//!    `B-X` opens an entity, `I-X`/`E-X` continue an open `X` entity (and open one after `O` or
//!    another type), `E-X`/`S-X` close it. On BIO tags this is exactly the pipeline's grouping
//!    (a new group at every `B-` and every change of type, `O` words dropped); the pipeline has
//!    no notion of `E-`/`S-`, this decoder has.
//!
//! ## The class distribution of an entity
//!
//! Estimators need a distribution over the schema's classes (`O` + types) per entity. For an
//! entity of words `w₁..wₙ`:
//!
//! - per word, the label distribution `p_w` (softmax of its first sub-token's logits) is
//!   **collapsed** onto classes: `q_w(X) = Σ p_w(L)` over every label `L` of type `X` (`B-X`,
//!   `I-X`, `E-X`, `S-X`, `X`), and `q_w(O) = p_w(O)`;
//! - the entity's distribution is the **mean over its words**: `probs(c) = (1/n) Σ_w q_w(c)`,
//!   computed in log space (`logits(c) = log probs(c)`, finite, so `softmax(logits) = probs`);
//! - `class` is the type the tags decoded, `entity.score = probs(class)`. The tags come from each
//!   word's best *label*, the distribution sums labels per *type*, so in rare cases another type
//!   holds more mass than the decoded one: that disagreement is itself a sign of uncertainty;
//! - Monte-Carlo dropout ([`PredictOptions::mc_samples`]): each stochastic pass gives new
//!   `p_w`, turned into one distribution per entity the same way (the entity's words are those of
//!   the deterministic pass). Dropout is the checkpoint's `classifier_dropout` (else its
//!   `hidden_dropout_prob`, as in `transformers`) on the encoder output before the classifier;
//!   with [`PredictOptions::mc_encoder`] the encoder's own dropout is on too (one encoder pass
//!   per sample);
//! - no Dirichlet parameters (`alpha`): the head was trained with cross-entropy, so the
//!   evidential estimator does not apply (it reports a typed error, as for a cross-entropy
//!   SpanNER model).
//!
//! [`PredictOptions::overlapping`] has no effect: tags never overlap.
//!
//! ## The label schema
//!
//! The schema comes from `id2label`: the types in order of their first label id, named as in the
//! labels (`B-PER` → `PER`). When the types are exactly those of a built-in schema (CoNLL-03's
//! PER, LOC, ORG, MISC — most public English NER checkpoints), that schema's LLM names and
//! descriptions are used; otherwise LLM names are derived from the tags
//! ([`linkner_core::schema::llm_name_of`]) with a generic description, and
//! [`TokenClassTagger::with_schema`] applies a schema file's wording.
//!
//! ## Files
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`TokenClassTagger`]: loading, accessors, schema and precision switches |
//! | `config.rs` | `config.json` read ([`TokenClassConfig`]), labels as tags ([`TokenLabel`]), the schema |
//! | `model.rs` | the burn module ([`TokenClassifier`]) and its weights |
//! | `score.rs` | windows and the per-word label scores of a pass ([`WordScores`]) |
//! | `decode.rs` | tags → candidates with their class distributions, the [`LocalTagger`] impl |

mod config;
mod decode;
mod model;
mod score;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, FloatDType};
use linkner_core::LabelSchema;
#[cfg(doc)]
use linkner_core::tagger::{LocalTagger, PredictOptions};

pub use config::{
    ARCHITECTURES, TagPrefix, TokenClassConfig, TokenLabel, files, is_token_classification_config,
};
use config::{bad, label_classes};
use model::load_weights;
pub use model::{TokenClassifier, TokenClassifierConfig};
pub use score::WordScores;

use crate::device::DeviceSpec;
use crate::encoder::LoadReport;
use crate::error::{Result, TaggerError};
use crate::precision::{Precision, cast_module};
use crate::tokenize::SubwordTokenizer;
#[cfg(doc)]
use crate::tokenize::plan_windows;

/// A Hugging Face token-classification model as a linkner [`LocalTagger`] (see the module docs).
#[derive(Debug, Clone)]
pub struct TokenClassTagger {
    /// The model (inference device, no autodiff).
    pub(crate) model: TokenClassifier,
    /// Labels, schema, windowing.
    pub(crate) config: TokenClassConfig,
    /// The tokenizer.
    pub(crate) tokenizer: SubwordTokenizer,
    /// Where it runs.
    pub(crate) device: Device,
    /// The folder it was loaded from.
    pub(crate) dir: PathBuf,
    /// What loading the weights did (unused keys such as `bert.pooler.*`).
    pub(crate) report: LoadReport,
}

impl TokenClassTagger {
    /// Labels, schema and windowing.
    pub fn config(&self) -> &TokenClassConfig {
        &self.config
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The folder it was loaded from.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// What loading the weights did (keys of the checkpoint that were not used, such as
    /// `bert.pooler.*`): loading never drops weights silently.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }
}

/// Default most tokens per window (capped by the checkpoint's position table).
pub const DEFAULT_MAX_TOKENS: usize = 512;
/// Default words of context around a window's core.
pub const DEFAULT_WINDOW_CONTEXT: usize = 16;

impl TokenClassTagger {
    /// Loads a Hugging Face token-classification folder with the default windowing.
    pub fn load(dir: &Path, device: &DeviceSpec) -> Result<TokenClassTagger> {
        Self::load_with(
            dir,
            &device.checked_device()?,
            DEFAULT_MAX_TOKENS,
            DEFAULT_WINDOW_CONTEXT,
        )
    }

    /// Loads a folder on `device` with windows of at most `max_tokens` tokens and
    /// `window_context` words of context.
    pub fn load_with(
        dir: &Path,
        device: &Device,
        max_tokens: usize,
        window_context: usize,
    ) -> Result<TokenClassTagger> {
        if max_tokens < 3 {
            return Err(TaggerError::InvalidArgument(format!(
                "max_tokens {max_tokens} leaves no room for words"
            )));
        }
        let config =
            TokenClassConfig::from_hf_file(&dir.join(files::CONFIG), max_tokens, window_context)?;
        let tokenizer = SubwordTokenizer::from_file(&dir.join(files::TOKENIZER))?;
        let mut model = TokenClassifierConfig::new(config.encoder.clone(), config.labels.len())
            .with_dropout(config.classifier_dropout)
            .init(device);
        let report = load_weights(&mut model, &dir.join(files::WEIGHTS))?;
        let [_, rows] = model.classifier.weight.val().dims();
        if rows != config.labels.len() {
            return Err(bad(
                &dir.join(files::WEIGHTS),
                format!(
                    "the classifier has {rows} outputs but id2label lists {} labels",
                    config.labels.len()
                ),
            ));
        }
        tracing::info!(
            dir = %dir.display(),
            architecture = %config.architecture,
            labels = config.labels.len(),
            unused = report.unused.len(),
            "loaded a token-classification checkpoint"
        );
        Ok(TokenClassTagger {
            model,
            config,
            tokenizer,
            device: device.clone(),
            dir: dir.to_path_buf(),
            report,
        })
    }

    /// The same tagger with the wording (LLM names, descriptions, non-entity class, name) of
    /// `schema`, which must have exactly the checkpoint's types (in any order): how a schema
    /// file gives the LLM good descriptions of a checkpoint's labels.
    pub fn with_schema(mut self, schema: &LabelSchema) -> Result<TokenClassTagger> {
        let aligned = schema.aligned_to(&self.config.schema)?;
        self.config.label_class =
            label_classes(&self.config.labels, &aligned).map_err(TaggerError::InvalidArgument)?;
        self.config.schema = aligned;
        Ok(self)
    }

    /// A copy whose float parameters are cast to `precision` (inference only).
    pub fn with_precision(&self, precision: Precision) -> Result<TokenClassTagger> {
        let mut tagger = self.clone();
        tagger.model = cast_module(tagger.model, &self.device, precision)?;
        Ok(tagger)
    }

    fn dtype(&self) -> FloatDType {
        FloatDType::from(self.model.classifier.weight.val().dtype())
    }
}
