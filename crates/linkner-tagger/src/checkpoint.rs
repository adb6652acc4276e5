//! Which kind of tagger a folder holds ([`TaggerKind`]), and one type that loads and runs either
//! ([`AnyTagger`]): what the CLI and the linker's config use so that a SpanNER checkpoint and a
//! Hugging Face token-classification checkpoint plug in the same way.
//!
//! | kind | folder |
//! |---|---|
//! | [`TaggerKind::Span`] | `tagger.json` (+ `model.safetensors`, `tokenizer.json`): written by `linkner train` / [`SpanTagger::save`] |
//! | [`TaggerKind::TokenClassification`] | `config.json` with `id2label` and a `*ForTokenClassification` architecture (+ `model.safetensors`, `tokenizer.json`): a Hugging Face checkpoint, see [`crate::token_class`] |

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use linkner_core::{Candidate, Document, LabelSchema, Sentence};
use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::error::{Result, TaggerError};
use crate::precision::Precision;
use crate::span::{DocumentContext, SpanTagger, TaggerConfig, files};
use crate::token_class::{self, TokenClassConfig, TokenClassTagger};
use linkner_core::{LocalTagger, PredictOptions};

/// The kinds of local tagger a folder can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaggerKind {
    /// A SpanNER checkpoint written by `linkner train` (`tagger.json`).
    Span,
    /// A Hugging Face `*ForTokenClassification` checkpoint (`config.json` with `id2label`).
    TokenClassification,
}

impl TaggerKind {
    /// Names accepted by [`TaggerKind::from_str`] (and serde).
    pub const NAMES: &'static [&'static str] = &["span", "token_classification"];

    /// The kind's name (`span`, `token_classification`).
    pub fn name(self) -> &'static str {
        match self {
            TaggerKind::Span => "span",
            TaggerKind::TokenClassification => "token_classification",
        }
    }

    /// The kind of the folder `dir`: `tagger.json` is a SpanNER checkpoint; a `config.json` with
    /// `id2label` and a `*ForTokenClassification` architecture is a token-classification one.
    /// Anything else is a [`TaggerError::Checkpoint`] saying what was expected.
    pub fn detect(dir: &Path) -> Result<TaggerKind> {
        if dir.join(files::CONFIG).is_file() {
            return Ok(TaggerKind::Span);
        }
        let config = dir.join(token_class::files::CONFIG);
        if token_class::is_token_classification_config(&config) {
            return Ok(TaggerKind::TokenClassification);
        }
        let message = if !dir.is_dir() {
            "no such folder; expected a tagger folder (a linkner checkpoint with tagger.json, or a \
             Hugging Face token-classification folder)"
                .to_string()
        } else if config.is_file() {
            "config.json has no token-classification head (`architectures` with \
             *ForTokenClassification and `id2label`): a bare encoder is not a tagger — train one \
             on it with `linkner train --encoder DIR`"
                .to_string()
        } else {
            "neither tagger.json (a linkner checkpoint) nor config.json (a Hugging Face \
             token-classification folder) is there"
                .to_string()
        };
        Err(TaggerError::Checkpoint {
            path: dir.to_path_buf(),
            message,
        })
    }
}

impl fmt::Display for TaggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaggerKind {
    type Err = TaggerError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "span" | "spanner" => Ok(TaggerKind::Span),
            "token_classification" | "token" | "tokens" => Ok(TaggerKind::TokenClassification),
            other => Err(TaggerError::InvalidArgument(format!(
                "unknown tagger kind `{other}`; expected one of: {}",
                TaggerKind::NAMES.join(", ")
            ))),
        }
    }
}

/// The label schema stored in a tagger folder, read without loading any weight (`kind`
/// detected when `None`): the `schema` of `tagger.json`, or the one built from a
/// token-classification checkpoint's `id2label`.
pub fn checkpoint_schema(dir: &Path, kind: Option<TaggerKind>) -> Result<LabelSchema> {
    let kind = match kind {
        Some(k) => k,
        None => TaggerKind::detect(dir)?,
    };
    match kind {
        TaggerKind::Span => {
            let path = dir.join(files::CONFIG);
            let text = std::fs::read_to_string(&path).map_err(|e| TaggerError::io(&path, e))?;
            let config: TaggerConfig =
                serde_json::from_str(&text).map_err(|source| TaggerError::Json { path, source })?;
            Ok(config.schema)
        }
        TaggerKind::TokenClassification => Ok(TokenClassConfig::from_hf_file(
            &dir.join(token_class::files::CONFIG),
            token_class::DEFAULT_MAX_TOKENS,
            token_class::DEFAULT_WINDOW_CONTEXT,
        )?
        .schema),
    }
}

/// A SpanNER tagger or a token-classification tagger, loaded from a folder of either kind.
#[derive(Debug, Clone)]
pub enum AnyTagger {
    /// A SpanNER checkpoint.
    Span(SpanTagger),
    /// A Hugging Face token-classification checkpoint.
    TokenClassification(TokenClassTagger),
}

impl AnyTagger {
    /// Loads the folder `dir` as `kind` (detected with [`TaggerKind::detect`] when `None`).
    pub fn load(dir: &Path, kind: Option<TaggerKind>, device: &DeviceSpec) -> Result<AnyTagger> {
        // A device that cannot run (`cuda:99`, CUDA without LibTorch) is the error to report
        // first, before anything about the folder.
        device.checked_device()?;
        let kind = match kind {
            Some(k) => k,
            None => TaggerKind::detect(dir)?,
        };
        Ok(match kind {
            TaggerKind::Span => AnyTagger::Span(SpanTagger::load(dir, device)?),
            TaggerKind::TokenClassification => {
                AnyTagger::TokenClassification(TokenClassTagger::load(dir, device)?)
            }
        })
    }

    /// Which kind it is.
    pub fn kind(&self) -> TaggerKind {
        match self {
            AnyTagger::Span(_) => TaggerKind::Span,
            AnyTagger::TokenClassification(_) => TaggerKind::TokenClassification,
        }
    }

    /// The same tagger with its float parameters cast to `precision` (no copy for `F32`).
    pub fn with_precision(self, precision: Precision) -> Result<AnyTagger> {
        if precision == Precision::F32 {
            return Ok(self);
        }
        Ok(match self {
            AnyTagger::Span(t) => AnyTagger::Span(t.with_precision(precision)?),
            AnyTagger::TokenClassification(t) => {
                AnyTagger::TokenClassification(t.with_precision(precision)?)
            }
        })
    }

    /// The same tagger with the wording of `schema` (LLM names, descriptions, non-entity class)
    /// in place of the stored one; `schema` must have exactly the model's types
    /// ([`LabelSchema::aligned_to`]), otherwise an error naming the types that differ.
    pub fn with_schema(self, schema: &LabelSchema) -> Result<AnyTagger> {
        Ok(match self {
            AnyTagger::Span(mut t) => {
                t.config.schema = schema.aligned_to(&t.config.schema)?;
                AnyTagger::Span(t)
            }
            AnyTagger::TokenClassification(t) => {
                AnyTagger::TokenClassification(t.with_schema(schema)?)
            }
        })
    }

    /// Whether candidates carry Dirichlet parameters (a SpanNER model trained with the
    /// evidential loss).
    pub fn is_evidential(&self) -> bool {
        match self {
            AnyTagger::Span(t) => t.config.evidential.is_some(),
            AnyTagger::TokenClassification(_) => false,
        }
    }

    /// The longest entity, in words, the model can return (`None`: no limit).
    pub fn max_span_width(&self) -> Option<usize> {
        match self {
            AnyTagger::Span(t) => Some(t.config.model.max_span_width),
            AnyTagger::TokenClassification(_) => None,
        }
    }

    /// Sets how the sentences of a document are read together (SpanNER checkpoints; a
    /// token-classification model reads each sentence alone and is returned unchanged).
    pub fn with_document_context(self, context: DocumentContext) -> AnyTagger {
        match self {
            AnyTagger::Span(t) => AnyTagger::Span(t.with_document_context(context)),
            other => other,
        }
    }

    /// Sets the concurrent CPU streams of a deterministic pass ([`SpanTagger::with_streams`];
    /// a token-classification model runs one stream and is returned unchanged).
    pub fn with_streams(self, streams: usize) -> AnyTagger {
        match self {
            AnyTagger::Span(t) => AnyTagger::Span(t.with_streams(streams)),
            other => other,
        }
    }

    /// The SpanNER tagger, if it is one.
    pub fn as_span(&self) -> Option<&SpanTagger> {
        match self {
            AnyTagger::Span(t) => Some(t),
            AnyTagger::TokenClassification(_) => None,
        }
    }
}

impl From<SpanTagger> for AnyTagger {
    fn from(t: SpanTagger) -> Self {
        AnyTagger::Span(t)
    }
}

impl From<TokenClassTagger> for AnyTagger {
    fn from(t: TokenClassTagger) -> Self {
        AnyTagger::TokenClassification(t)
    }
}

impl LocalTagger for AnyTagger {
    fn schema(&self) -> &LabelSchema {
        match self {
            AnyTagger::Span(t) => t.schema(),
            AnyTagger::TokenClassification(t) => t.schema(),
        }
    }

    fn tag_sentences(
        &self,
        sentences: &[Sentence],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        match self {
            AnyTagger::Span(t) => t.tag_sentences(sentences, options),
            AnyTagger::TokenClassification(t) => t.tag_sentences(sentences, options),
        }
    }

    fn tag_documents(
        &self,
        documents: &[Document],
        options: &PredictOptions,
    ) -> Result<Vec<Vec<Vec<Candidate>>>> {
        match self {
            AnyTagger::Span(t) => t.tag_documents(documents, options),
            AnyTagger::TokenClassification(t) => t.tag_documents(documents, options),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for name in TaggerKind::NAMES {
            assert_eq!(name.parse::<TaggerKind>().unwrap().name(), *name);
        }
        assert_eq!(
            "token-classification".parse::<TaggerKind>().unwrap(),
            TaggerKind::TokenClassification
        );
        assert!("crf".parse::<TaggerKind>().is_err());
        let json = serde_json::to_string(&TaggerKind::TokenClassification).unwrap();
        assert_eq!(json, "\"token_classification\"");
    }

    #[test]
    fn detection_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = TaggerKind::detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("neither tagger.json"), "{err}");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"architectures": ["BertModel"], "model_type": "bert"}"#,
        )
        .unwrap();
        let err = TaggerKind::detect(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bare encoder"), "{err}");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"architectures": ["BertForTokenClassification"], "id2label": {"0": "O", "1": "B-X"}}"#,
        )
        .unwrap();
        assert_eq!(
            TaggerKind::detect(dir.path()).unwrap(),
            TaggerKind::TokenClassification
        );
        std::fs::write(dir.path().join("tagger.json"), "{}").unwrap();
        assert_eq!(TaggerKind::detect(dir.path()).unwrap(), TaggerKind::Span);
        let err = TaggerKind::detect(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such folder"), "{err}");
    }
}
