//! What a token-classification checkpoint is besides its weights: `config.json` read into a
//! [`TokenClassConfig`], its labels read as tags ([`TokenLabel`]), and the label schema built
//! from them.

use std::path::Path;

use linkner_core::LabelSchema;
use serde::{Deserialize, Serialize};

use crate::encoder::EncoderConfig;
use crate::error::{Result, TaggerError};

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

pub(super) fn bad(path: &Path, message: impl Into<String>) -> TaggerError {
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
        let architecture = token_classification_architecture(path, head.architectures)?;
        let encoder = EncoderConfig::from_hf_file(path)?;
        let id2label = head
            .id2label
            .ok_or_else(|| bad(path, "no `id2label`: the labels of the head are unknown"))?;
        let labels = read_labels(path, id2label)?;
        let types = entity_types(path, &labels)?;
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

/// The token-classification head among `config.json`'s `architectures`, when it is one this
/// module loads.
fn token_classification_architecture(
    path: &Path,
    architectures: Option<Vec<String>>,
) -> Result<String> {
    let architectures = architectures.unwrap_or_default();
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
    Ok(architecture)
}

/// The labels of `id2label` in label-id order: ids must be `0..n`, every label must parse, and
/// exactly one must be `O`.
fn read_labels(
    path: &Path,
    id2label: std::collections::BTreeMap<String, String>,
) -> Result<Vec<TokenLabel>> {
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
    Ok(labels)
}

/// The entity types of `labels`, in order of their first label; an error when there is none.
fn entity_types(path: &Path, labels: &[TokenLabel]) -> Result<Vec<String>> {
    let mut types: Vec<String> = Vec::new();
    for l in labels {
        if l.prefix != TagPrefix::Outside && !types.contains(&l.entity_type) {
            types.push(l.entity_type.clone());
        }
    }
    if types.is_empty() {
        return Err(bad(path, "id2label has no entity label besides `O`"));
    }
    Ok(types)
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
pub(super) fn label_classes(
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
}
