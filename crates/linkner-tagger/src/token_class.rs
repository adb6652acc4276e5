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

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData};
use linkner_core::tags::chunks;
use linkner_core::{Candidate, Entity, LabelSchema, Sentence, WordSpan};
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::dropout::dropout;
use crate::encoder::load_hf_safetensors;
use crate::encoder::{Encoder, EncoderConfig, LoadReport};
use crate::error::{Result, TaggerError};
use crate::tagger::{LocalTagger, Precision, PredictOptions, cast_module};
use crate::tokenize::{EncodedWindow, SubwordTokenizer, encode_window, plan_windows};

/// File names of a Hugging Face token-classification folder.
pub mod files {
    /// The model config, with `architectures` and `id2label`.
    pub const CONFIG: &str = "config.json";
    /// The weights.
    pub const WEIGHTS: &str = "model.safetensors";
    /// The fast tokenizer.
    pub const TOKENIZER: &str = "tokenizer.json";
}

/// The architectures (`config.json`'s `architectures`) this module loads.
pub const ARCHITECTURES: &[&str] = &[
    "BertForTokenClassification",
    "RobertaForTokenClassification",
    "XLMRobertaForTokenClassification",
    "CamembertForTokenClassification",
];

/// The prefix of a token-classification label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagPrefix {
    /// `O`: not an entity.
    Outside,
    /// `B-`: begins an entity.
    Begin,
    /// `I-` (or no prefix): inside an entity.
    Inside,
    /// `E-` (or BILOU's `L-`): ends an entity.
    End,
    /// `S-` (or BILOU's `U-`): a one-word entity.
    Single,
}

impl TagPrefix {
    fn letter(self) -> &'static str {
        match self {
            TagPrefix::Outside => "O",
            TagPrefix::Begin => "B",
            TagPrefix::Inside => "I",
            TagPrefix::End => "E",
            TagPrefix::Single => "S",
        }
    }
}

/// One label of the checkpoint's `id2label`, read as a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLabel {
    /// The label as `id2label` spells it (`B-PER`).
    pub name: String,
    /// Its prefix.
    pub prefix: TagPrefix,
    /// The entity type (empty for `O`).
    pub entity_type: String,
}

impl TokenLabel {
    /// Reads a label: `O`; `B-X`, `I-X`, `E-X`, `S-X`, `L-X` (as `E-X`), `U-X` (as `S-X`); or a
    /// bare type `X` (as `I-X`, like the `transformers` pipeline).
    pub fn parse(name: &str) -> std::result::Result<TokenLabel, String> {
        let name_s = name.to_string();
        if name == "O" {
            return Ok(TokenLabel {
                name: name_s,
                prefix: TagPrefix::Outside,
                entity_type: String::new(),
            });
        }
        let (prefix, ty) = match name.split_once('-') {
            Some(("B", t)) => (TagPrefix::Begin, t),
            Some(("I", t)) => (TagPrefix::Inside, t),
            Some(("E" | "L", t)) => (TagPrefix::End, t),
            Some(("S" | "U", t)) => (TagPrefix::Single, t),
            _ => (TagPrefix::Inside, name),
        };
        if ty.trim().is_empty() {
            return Err(format!("label `{name}` has no entity type"));
        }
        if ty.chars().any(char::is_whitespace) {
            return Err(format!(
                "label `{name}`: an entity type cannot hold whitespace"
            ));
        }
        Ok(TokenLabel {
            name: name_s,
            prefix,
            entity_type: ty.to_string(),
        })
    }

    /// The tag in the canonical spelling the chunker reads (`B-PER`, `O`).
    pub fn tag(&self) -> String {
        match self.prefix {
            TagPrefix::Outside => "O".into(),
            p => format!("{}-{}", p.letter(), self.entity_type),
        }
    }
}

/// What a token-classification checkpoint is, besides its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenClassConfig {
    /// The head's architecture (`BertForTokenClassification`, …).
    pub architecture: String,
    /// The encoder.
    pub encoder: EncoderConfig,
    /// The labels, by label id.
    pub labels: Vec<TokenLabel>,
    /// The class (index into `schema`) of each label id.
    pub label_class: Vec<usize>,
    /// The label schema (from `id2label`, or a schema file applied on top).
    pub schema: LabelSchema,
    /// Dropout on the encoder output before the classifier (Monte-Carlo passes only).
    pub classifier_dropout: f64,
    /// Most tokens per encoder window (special tokens included).
    pub max_tokens: usize,
    /// Words of context kept around a window's core when a sentence is cut.
    pub window_context: usize,
}

/// The subset of `config.json` read besides the encoder's fields.
#[derive(Debug, Deserialize)]
struct HfHead {
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    id2label: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    classifier_dropout: Option<f64>,
    #[serde(default)]
    hidden_dropout_prob: Option<f64>,
}

fn bad(path: &Path, message: impl Into<String>) -> TaggerError {
    TaggerError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Whether `config.json` at `path` declares a token-classification head this module loads.
pub fn is_token_classification_config(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(head) = serde_json::from_str::<HfHead>(&text) else {
        return false;
    };
    head.id2label.is_some()
        && head
            .architectures
            .unwrap_or_default()
            .iter()
            .any(|a| a.ends_with("ForTokenClassification"))
}

impl TokenClassConfig {
    /// Reads `config.json` (the encoder's fields, `architectures`, `id2label`, the dropouts);
    /// the schema is built from `id2label` (see the module docs). `max_tokens` is capped by the
    /// encoder's position table.
    pub fn from_hf_file(path: &Path, max_tokens: usize, window_context: usize) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TaggerError::io(path, e))?;
        let head: HfHead = serde_json::from_str(&text).map_err(|source| TaggerError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let architectures = head.architectures.unwrap_or_default();
        let architecture = architectures
            .iter()
            .find(|a| a.ends_with("ForTokenClassification"))
            .cloned()
            .ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "`architectures` is {architectures:?}; expected a token-classification \
                         head ({})",
                        ARCHITECTURES.join(", ")
                    ),
                )
            })?;
        if !ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(bad(
                path,
                format!(
                    "architecture `{architecture}` is not supported; expected one of {} (BERT \
                     and RoBERTa encoders)",
                    ARCHITECTURES.join(", ")
                ),
            ));
        }
        let encoder = EncoderConfig::from_hf_file(path)?;
        let id2label = head
            .id2label
            .ok_or_else(|| bad(path, "no `id2label`: the labels of the head are unknown"))?;
        let mut by_id: Vec<(usize, String)> = id2label
            .into_iter()
            .map(|(k, v)| {
                k.trim()
                    .parse::<usize>()
                    .map(|id| (id, v))
                    .map_err(|_| bad(path, format!("id2label key `{k}` is not a label id")))
            })
            .collect::<Result<_>>()?;
        by_id.sort_by_key(|(id, _)| *id);
        if let Some((i, (id, _))) = by_id.iter().enumerate().find(|(i, (id, _))| i != id) {
            return Err(bad(
                path,
                format!(
                    "id2label ids must be 0..{}; id {i} is missing (found {id})",
                    by_id.len()
                ),
            ));
        }
        let labels: Vec<TokenLabel> = by_id
            .into_iter()
            .map(|(id, name)| {
                TokenLabel::parse(&name).map_err(|m| bad(path, format!("id2label[{id}]: {m}")))
            })
            .collect::<Result<_>>()?;
        let outside = labels
            .iter()
            .filter(|l| l.prefix == TagPrefix::Outside)
            .count();
        if outside != 1 {
            return Err(bad(
                path,
                format!(
                    "id2label must have exactly one `O` label (found {outside} among {}): \
                     linkner reads BIO/IOBES tags",
                    labels
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut types: Vec<String> = Vec::new();
        for l in &labels {
            if l.prefix != TagPrefix::Outside && !types.contains(&l.entity_type) {
                types.push(l.entity_type.clone());
            }
        }
        if types.is_empty() {
            return Err(bad(path, "id2label has no entity label besides `O`"));
        }
        let name = path
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("token-classification")
            .to_string();
        let schema = schema_of_types(&name, &types).map_err(|e| bad(path, e.to_string()))?;
        let label_class = label_classes(&labels, &schema).map_err(|m| bad(path, m))?;
        let classifier_dropout = head
            .classifier_dropout
            .or(head.hidden_dropout_prob)
            .unwrap_or(0.1);
        if !(0.0..1.0).contains(&classifier_dropout) {
            return Err(bad(
                path,
                format!("classifier_dropout {classifier_dropout} is outside [0, 1)"),
            ));
        }
        let max_tokens = max_tokens.min(encoder.max_sequence_len());
        Ok(TokenClassConfig {
            architecture,
            encoder,
            labels,
            label_class,
            schema,
            classifier_dropout,
            max_tokens,
            window_context,
        })
    }
}

/// The schema of the types of a checkpoint: the built-in one when its types are exactly these
/// (in the checkpoint's order), else one derived from the type names.
fn schema_of_types(name: &str, types: &[String]) -> linkner_core::Result<LabelSchema> {
    let derived = LabelSchema::new(
        name,
        types
            .iter()
            .map(|t| {
                linkner_core::EntityType::new(
                    t.clone(),
                    linkner_core::schema::llm_name_of(t),
                    linkner_core::schema::generic_description(t),
                )
            })
            .collect(),
    );
    match LabelSchema::builtin_matching(types) {
        Some(builtin) => builtin.aligned_to(&derived),
        None => {
            derived.validate()?;
            Ok(derived)
        }
    }
}

/// The schema class of every label.
fn label_classes(
    labels: &[TokenLabel],
    schema: &LabelSchema,
) -> std::result::Result<Vec<usize>, String> {
    labels
        .iter()
        .map(|l| {
            if l.prefix == TagPrefix::Outside {
                Ok(0)
            } else {
                schema
                    .class_of(&l.entity_type)
                    .filter(|c| *c > 0)
                    .ok_or_else(|| {
                        format!("label `{}`: type not in schema `{}`", l.name, schema.name)
                    })
            }
        })
        .collect()
}

/// Architecture of a [`TokenClassifier`].
#[derive(Config, Debug)]
pub struct TokenClassifierConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// Number of labels (`id2label`'s size).
    pub num_labels: usize,
    /// Dropout before the classifier (Monte-Carlo passes only).
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// `transformers`' `*ForTokenClassification`: an encoder, dropout, and a linear layer from each
/// token's hidden state to label logits.
#[derive(Module, Debug)]
pub struct TokenClassifier {
    /// The encoder.
    pub encoder: Encoder,
    /// Hidden state → label logits.
    pub classifier: Linear,
    /// Dropout before the classifier.
    pub dropout: f64,
}

impl TokenClassifierConfig {
    /// Builds a randomly initialised model on `device`.
    pub fn init(&self, device: &Device) -> TokenClassifier {
        TokenClassifier {
            encoder: self.encoder.init(device),
            classifier: LinearConfig::new(self.encoder.hidden_size, self.num_labels).init(device),
            dropout: self.dropout,
        }
    }
}

impl TokenClassifier {
    /// Label logits of every token `[batch, seq, labels]` (the `logits` of `transformers`).
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Tensor<2>,
        encoder_dropout: bool,
        head_dropout: bool,
    ) -> Tensor<3> {
        let hidden = self
            .encoder
            .forward(input_ids, attention_mask, encoder_dropout);
        self.classifier
            .forward(dropout(hidden, self.dropout, head_dropout))
    }

    /// Label logits `[n, labels]` of the rows `index` of the flattened hidden states
    /// `[batch * seq, hidden]`.
    pub fn rows_logits(
        &self,
        hidden: Tensor<3>,
        index: Tensor<1, Int>,
        head_dropout: bool,
    ) -> Tensor<2> {
        let [b, t, h] = hidden.dims();
        let rows = hidden.reshape([b * t, h]).select(0, index);
        self.classifier
            .forward(dropout(rows, self.dropout, head_dropout))
    }
}

/// Loads a Hugging Face token-classification `model.safetensors` into `model`: the encoder's
/// remapping ([`HF_KEY_REMAPPING`](crate::encoder::HF_KEY_REMAPPING)), then the encoder's paths
/// moved under `encoder.`; `classifier.*` keeps its name.
fn load_weights(model: &mut TokenClassifier, path: &Path) -> Result<LoadReport> {
    load_hf_safetensors(model, path, &[(r"^(embeddings|layers)\.", "encoder.${1}.")])
}

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

    /// The burn module (internal: for this workspace's tests).
    #[doc(hidden)]
    pub fn model(&self) -> &TokenClassifier {
        &self.model
    }

    /// The sub-word tokenizer (internal: for this workspace's tests).
    #[doc(hidden)]
    pub fn tokenizer(&self) -> &SubwordTokenizer {
        &self.tokenizer
    }
}

/// Default most tokens per window (capped by the checkpoint's position table).
pub const DEFAULT_MAX_TOKENS: usize = 512;
/// Default words of context around a window's core.
pub const DEFAULT_WINDOW_CONTEXT: usize = 16;

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
        let l = self.config.labels.len();
        let windows = self.windows(sentences)?;
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&i| windows[i].enc.ids.len());
        let mut logits: Vec<Vec<Option<Vec<f32>>>> = sentences
            .iter()
            .map(|s| vec![None; s.tokens.len()])
            .collect();
        let mut mc: Vec<Vec<Vec<Option<Vec<f32>>>>> = sentences
            .iter()
            .map(|s| vec![vec![None; s.tokens.len()]; options.mc_samples])
            .collect();
        for batch in order.chunks(options.batch_size.max(1)) {
            let items: Vec<&TokenWindow> = batch.iter().map(|&i| &windows[i]).collect();
            let b = items.len();
            let t = items
                .iter()
                .map(|w| w.enc.ids.len())
                .max()
                .unwrap_or(1)
                .max(1);
            let (input, mask) =
                self.input_tensors(items.iter().map(|w| w.enc.ids.as_slice()), b, t);
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
                logits[s][w] = Some(det[k * l..(k + 1) * l].to_vec());
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
                    mc[s][sample][w] = Some(p[k * l..(k + 1) * l].to_vec());
                }
            }
        }
        let missing = |s: usize| {
            TaggerError::InvalidArgument(format!(
                "sentence {s}: a word got no window (windowing bug)"
            ))
        };
        logits
            .into_iter()
            .zip(mc)
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

    /// The tag of each word: the label of highest probability, in canonical spelling.
    pub fn word_tags(&self, scores: &WordScores) -> Vec<String> {
        scores
            .logits
            .iter()
            .map(|z| self.config.labels[argmax(z)].tag())
            .collect()
    }

    /// Decodes one sentence's word scores into candidates (see the module docs).
    pub fn candidates(&self, sentence: &Sentence, scores: &WordScores) -> Result<Vec<Candidate>> {
        if scores.logits.len() != sentence.tokens.len() {
            return Err(TaggerError::InvalidArgument(format!(
                "{} word scores for a sentence of {} words",
                scores.logits.len(),
                sentence.tokens.len()
            )));
        }
        let schema = &self.config.schema;
        let k = schema.num_classes();
        let word_log_q: Vec<Vec<f64>> = scores
            .logits
            .iter()
            .map(|z| {
                collapse(
                    &log_softmax(z.iter().map(|&x| f64::from(x))),
                    &self.config.label_class,
                    k,
                )
            })
            .collect();
        let sample_log_q: Vec<Vec<Vec<f64>>> = scores
            .mc_probs
            .iter()
            .map(|words| {
                words
                    .iter()
                    .map(|p| {
                        let lp: Vec<f64> = p
                            .iter()
                            .map(|&x| f64::from(x).max(f64::MIN_POSITIVE).ln())
                            .collect();
                        collapse(&lp, &self.config.label_class, k)
                    })
                    .collect()
            })
            .collect();
        let tags = self.word_tags(scores);
        let mut out = Vec::new();
        for span in chunks(&tags) {
            let class = schema
                .class_of(&span.label)
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    TaggerError::InvalidArgument(format!(
                        "decoded type `{}` is not in schema `{}`",
                        span.label, schema.name
                    ))
                })?;
            let log_probs = span_mean(&word_log_q[span.start..span.end], k);
            let probs: Vec<f32> = log_probs.iter().map(|l| l.exp() as f32).collect();
            let logits: Vec<f32> = log_probs.iter().map(|&l| l as f32).collect();
            let mc_probs = sample_log_q
                .iter()
                .map(|words| {
                    span_mean(&words[span.start..span.end], k)
                        .iter()
                        .map(|l| l.exp() as f32)
                        .collect()
                })
                .collect();
            let label = schema
                .class(class)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| span.label.clone());
            let word_span = WordSpan::new(span.start, span.end, label);
            let mut entity = Entity::from_word_span(sentence, &word_span)?;
            entity.score = Some(probs[class]);
            out.push(Candidate {
                span: word_span,
                entity,
                class,
                logits,
                probs,
                mc_probs,
                alpha: None,
            });
        }
        Ok(out)
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn log_sum_exp(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = v.clone().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn log_softmax(z: impl Iterator<Item = f64> + Clone) -> Vec<f64> {
    let lse = log_sum_exp(z.clone());
    z.map(|x| x - lse).collect()
}

/// Per class, the log of the summed probabilities of its labels.
fn collapse(log_p: &[f64], label_class: &[usize], k: usize) -> Vec<f64> {
    (0..k)
        .map(|c| {
            log_sum_exp(
                log_p
                    .iter()
                    .zip(label_class)
                    .filter(|(_, lc)| **lc == c)
                    .map(|(l, _)| *l),
            )
        })
        .collect()
}

/// Log of the mean over words of their class distributions.
fn span_mean(words: &[Vec<f64>], k: usize) -> Vec<f64> {
    let n = words.len().max(1) as f64;
    (0..k)
        .map(|c| log_sum_exp(words.iter().map(|w| w[c])) - n.ln())
        .collect()
}

impl LocalTagger for TokenClassTagger {
    fn schema(&self) -> &LabelSchema {
        &self.config.schema
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let scores = self.word_scores(sentences, options)?;
        sentences
            .iter()
            .zip(&scores)
            .map(|(s, w)| self.candidates(s, w))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_in_every_scheme() {
        let t = |s: &str| TokenLabel::parse(s).unwrap();
        assert_eq!(t("O").prefix, TagPrefix::Outside);
        assert_eq!(t("B-PER").tag(), "B-PER");
        assert_eq!(t("I-geo-loc").entity_type, "geo-loc");
        assert_eq!(t("E-X").tag(), "E-X");
        assert_eq!(t("L-X").tag(), "E-X");
        assert_eq!(t("U-X").tag(), "S-X");
        assert_eq!(t("S-X").tag(), "S-X");
        assert_eq!(t("PER").tag(), "I-PER");
        assert_eq!(t("geo-loc").tag(), "I-geo-loc");
        assert!(TokenLabel::parse("B-").is_err());
        assert!(TokenLabel::parse("B-a b").is_err());
    }

    #[test]
    fn span_distribution_is_the_mean_of_collapsed_word_distributions() {
        // Labels: O, B-A, I-A, B-B, I-B -> classes 0, 1, 1, 2, 2.
        let label_class = [0usize, 1, 1, 2, 2];
        let p1 = [0.1f64, 0.5, 0.2, 0.1, 0.1];
        let p2 = [0.3f64, 0.0, 0.6, 0.05, 0.05];
        let q1 = collapse(&p1.map(f64::ln), &label_class, 3);
        let q2 = collapse(&p2.map(|p| p.max(f64::MIN_POSITIVE).ln()), &label_class, 3);
        let span: Vec<f64> = span_mean(&[q1, q2], 3).iter().map(|l| l.exp()).collect();
        let want = [(0.1 + 0.3) / 2.0, (0.7 + 0.6) / 2.0, (0.2 + 0.1) / 2.0];
        for (a, b) in span.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{span:?} vs {want:?}");
        }
        let ls = log_softmax([1000.0f64, 0.0, -1000.0].into_iter());
        assert!(ls.iter().all(|x| x.is_finite()));
        assert!((ls[0]).abs() < 1e-12);
    }
}
