//! Hugging Face `datasets` token-classification data: one record per sentence with a list of
//! words and a list of tags.
//!
//! ```json
//! {"id": "0", "tokens": ["EU", "rejects", "German", "call"], "ner_tags": [3, 0, 7, 0]}
//! ```
//!
//! Records come as JSON lines or a JSON array (what `Dataset.to_json` writes), or as a Parquet
//! file (what the Hub serves; [`HfReader::read_path`] reads both). Words are in `tokens` (or
//! `words`), tags in `ner_tags` (or `tags`, `ner`, `labels`). Tags are strings (`"B-PER"`) or
//! integers, whose names come from, in this order: [`HfReader::label_names`], the `ClassLabel`
//! names in the Parquet file's `huggingface` metadata, or a `dataset_info.json` (what
//! `save_to_disk` writes) in the file's folder or the folder above. Tags are IOB1, IOB2 or BIOES
//! like CoNLL's. Sentences carry no document boundaries (one [`Document`] holds them all).
//!
//! The writer puts out JSON lines with string tags (`{"id", "tokens", "ner_tags"}`), which
//! `datasets.load_dataset("json", ...)` reads as is.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::check_label;
use super::json_records::read_json_records;
use super::record::TextRecord;
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::tags::{Tag, TagScheme, chunks, spans_to_tags};
use crate::text::{Document, Sentence};

/// The field names that hold the words, in the order they are looked for.
pub const TOKEN_FIELDS: &[&str] = &["tokens", "words"];
/// The field names that hold the tags, in the order they are looked for.
pub const TAG_FIELDS: &[&str] = &["ner_tags", "tags", "ner", "labels"];

/// Reads Hugging Face token-classification records (JSON lines, a JSON array or Parquet).
#[derive(Debug, Clone, Default)]
pub struct HfReader {
    schema: Option<LabelSchema>,
    label_names: Option<Vec<String>>,
}

impl HfReader {
    /// A reader that takes label names from the data's own metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// The names of integer tags (index → tag, e.g. `["O", "B-PER", "I-PER", …]`), overriding
    /// what the data's metadata says.
    pub fn label_names(mut self, names: Option<Vec<String>>) -> Self {
        self.label_names = names;
        self
    }

    /// Reads a file into one document of sentences.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        let (records, meta_names) = if super::parquet::is_parquet(path)? {
            super::parquet::read_rows(path)?
        } else {
            (read_json_records(path)?, None)
        };
        let names = match &self.label_names {
            Some(n) => Some(n.clone()),
            None => match meta_names {
                Some(n) => Some(n),
                None => dataset_info_names(path)?,
            },
        };
        let mut doc = Document {
            id: None,
            sentences: Vec::with_capacity(records.len()),
        };
        for (line, value) in records {
            doc.sentences
                .push(self.sentence(value, names.as_deref(), path, line)?);
        }
        Ok(if doc.sentences.is_empty() {
            Vec::new()
        } else {
            vec![doc]
        })
    }

    fn sentence(
        &self,
        value: Value,
        names: Option<&[String]>,
        path: &Path,
        line: usize,
    ) -> Result<Sentence> {
        let err = |m: String| CoreError::parse(path, line, m);
        let Value::Object(map) = value else {
            return Err(err(
                "expected a JSON object with `tokens` and `ner_tags`".into()
            ));
        };
        let field = |names: &'static [&'static str]| {
            names.iter().find_map(|n| map.get(*n).map(|v| (*n, v)))
        };
        let Some((_, Value::Array(words))) = field(TOKEN_FIELDS) else {
            return Err(err(format!(
                "no list of words; expected one of the fields {}",
                TOKEN_FIELDS.join(", ")
            )));
        };
        let words: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| match w {
                Value::String(s) if !s.is_empty() && !s.chars().any(char::is_whitespace) => {
                    Ok(s.clone())
                }
                _ => Err(err(format!(
                    "word {i} is {w}; expected a non-empty string without whitespace"
                ))),
            })
            .collect::<Result<_>>()?;
        let tags: Vec<String> = match field(TAG_FIELDS) {
            None => vec!["O".to_string(); words.len()],
            Some((name, Value::Array(tags))) => tags
                .iter()
                .enumerate()
                .map(|(i, t)| tag_name(t, names, name, i).map_err(&err))
                .collect::<Result<_>>()?,
            Some((name, other)) => {
                return Err(err(format!("`{name}` is {other}; expected a list of tags")));
            }
        };
        if tags.len() != words.len() {
            return Err(err(format!(
                "{} tags for {} words; expected one tag per word",
                tags.len(),
                words.len()
            )));
        }
        for t in &tags {
            match Tag::parse(t) {
                None => {
                    return Err(err(format!(
                        "bad tag `{t}`; expected `O` or `B-`, `I-`, `E-`, `S-` and a type"
                    )));
                }
                Some(p) if p.prefix != 'O' => {
                    check_label(self.schema.as_ref(), p.label, path, line)?
                }
                Some(_) => {}
            }
        }
        let mut s = Sentence::from_words(&words);
        s.spans = chunks(&tags);
        s.tags = Some(tags);
        Ok(s)
    }
}

/// The tag of one value: a string as is, an integer through `names`.
fn tag_name(
    value: &Value,
    names: Option<&[String]>,
    field: &str,
    i: usize,
) -> std::result::Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => {
            let Some(names) = names else {
                return Err(format!(
                    "`{field}` holds integers but no label names were found; expected a \
                     dataset_info.json next to the file (or one folder up), Parquet metadata, \
                     or label names given (`--label-names`)"
                ));
            };
            n.as_u64()
                .and_then(|k| names.get(k as usize))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "tag {i} is {n}; expected an index below {} (the label names)",
                        names.len()
                    )
                })
        }
        other => Err(format!(
            "tag {i} is {other}; expected a string or an integer"
        )),
    }
}

/// The `ClassLabel` names of the tag field in a `dataset_info.json` next to `path` (or one
/// folder up), if there is one.
pub fn dataset_info_names(path: &Path) -> Result<Option<Vec<String>>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let candidates: Vec<PathBuf> = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("dataset_info.json"))
        .collect();
    for info in candidates {
        if !info.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&info).map_err(|e| super::io_error(&info, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| CoreError::parse(&info, e.line(), e.to_string()))?;
        return Ok(features_names(&v["features"]));
    }
    Ok(None)
}

/// The names of the first tag field's `ClassLabel` in a `datasets` features object.
pub(crate) fn features_names(features: &Value) -> Option<Vec<String>> {
    TAG_FIELDS
        .iter()
        .find_map(|f| features.get(*f))
        .and_then(class_label_names)
}

/// The `names` of a `ClassLabel`, found inside a `Sequence`/`List` feature.
fn class_label_names(v: &Value) -> Option<Vec<String>> {
    if let Some(Value::Array(names)) = v.get("names") {
        return names
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect();
    }
    ["feature", "items"]
        .iter()
        .find_map(|k| v.get(*k))
        .and_then(class_label_names)
}

/// The JSON object of a record: `id`, `tokens` and string `ner_tags` in `scheme`.
pub(crate) fn record_json(record: &TextRecord, words: &Sentence, scheme: TagScheme) -> Value {
    let tags = spans_to_tags(&words.spans, words.tokens.len(), scheme);
    let mut v = json!({ "tokens": words.words(), "ner_tags": tags });
    if let Some(id) = &record.id {
        v["id"] = json!(id);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_tags_take_names_from_dataset_info() {
        let dir = tempfile::tempdir().unwrap();
        let info = json!({"features": {
            "tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
            "ner_tags": {"feature": {"names": ["O", "B-PER", "I-PER", "B-LOC"], "_type": "ClassLabel"}, "_type": "Sequence"}
        }});
        std::fs::write(dir.path().join("dataset_info.json"), info.to_string()).unwrap();
        let data = dir.path().join("train.jsonl");
        std::fs::write(
            &data,
            "{\"tokens\":[\"Zoë\",\"Müller\",\"in\",\"東京\"],\"ner_tags\":[1,2,0,3]}\n",
        )
        .unwrap();
        let docs = HfReader::new().read_path(&data).unwrap();
        let e = docs[0].sentences[0].entities().unwrap();
        assert_eq!(
            e.iter()
                .map(|e| (e.text.as_str(), e.label.as_str()))
                .collect::<Vec<_>>(),
            [("Zoë Müller", "PER"), ("東京", "LOC")]
        );
        std::fs::write(&data, "{\"tokens\":[\"a\"],\"ner_tags\":[9]}\n").unwrap();
        let err = HfReader::new().read_path(&data).unwrap_err().to_string();
        assert!(err.contains(":1: ") && err.contains("below 4"), "{err}");
        std::fs::remove_file(dir.path().join("dataset_info.json")).unwrap();
        let err = HfReader::new().read_path(&data).unwrap_err().to_string();
        assert!(err.contains("no label names"), "{err}");
    }
}
