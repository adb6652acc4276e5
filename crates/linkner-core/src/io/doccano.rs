//! doccano's sequence-labeling JSONL: one text per line with char-offset labels.
//!
//! ```json
//! {"id": 7, "text": "Zoë lives in 東京", "label": [[0, 3, "PER"], [13, 15, "LOC"]]}
//! ```
//!
//! Both layouts doccano has used are read: `label` (or `labels`) as `[start, end, label]`
//! triples, and `entities` as objects `{"start_offset", "end_offset", "label"}`. `id` is kept as
//! the document id. Each line is a [`Document`] of one sentence (words cut at entity boundaries,
//! [`super::align`]). The writer puts out the `label` layout, which doccano imports.

use std::path::Path;

use serde_json::{Value, json};

use super::align::{CharSpan, sentence_from_char_spans};
use super::json_records::read_json_records;
use super::offsets::{OffsetMap, OffsetUnit};
use super::record::TextRecord;
use super::{check_label, id_string, unit_error};
use crate::error::{CoreError, Result};
use crate::schema::LabelSchema;
use crate::text::Document;

/// Reads doccano JSONL exports.
#[derive(Debug, Clone, Default)]
pub struct DoccanoReader {
    schema: Option<LabelSchema>,
    offsets: OffsetUnit,
}

impl DoccanoReader {
    /// A reader of char offsets that accepts any label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// The unit of the file's offsets (chars by default).
    pub fn offsets(mut self, unit: OffsetUnit) -> Self {
        self.offsets = unit;
        self
    }

    /// Reads a file: one [`Document`] per line.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        read_json_records(path)?
            .into_iter()
            .map(|(line, value)| self.document(value, path, line))
            .collect()
    }

    fn document(&self, value: Value, path: &Path, line: usize) -> Result<Document> {
        let err = |m: String| CoreError::parse(path, line, m);
        let Some(text) = value.get("text").and_then(Value::as_str) else {
            return Err(err("no `text` string; expected a doccano record".into()));
        };
        let map = OffsetMap::new(text, self.offsets);
        let raw = raw_spans(&value).map_err(&err)?;
        let mut spans = Vec::with_capacity(raw.len());
        for (i, (s, e, label)) in raw.into_iter().enumerate() {
            check_label(self.schema.as_ref(), &label, path, line)?;
            let at = |o| {
                map.to_char(o).ok_or_else(|| {
                    unit_error(
                        path,
                        line,
                        &format!("label {i}"),
                        o,
                        self.offsets,
                        map.len(),
                    )
                })
            };
            spans.push(CharSpan::new(at(s)?, at(e)?, label));
        }
        let sentence = sentence_from_char_spans(text, None, &spans).map_err(err)?;
        Ok(Document {
            id: value.get("id").and_then(id_string),
            sentences: vec![sentence],
        })
    }
}

/// The `(start, end, label)` of every label of a record, in either layout.
fn raw_spans(value: &Value) -> std::result::Result<Vec<(usize, usize, String)>, String> {
    let mut out = Vec::new();
    if let Some(list) = value.get("label").or_else(|| value.get("labels")) {
        let Some(list) = list.as_array() else {
            return Err(format!(
                "`label` is {list}; expected a list of [start, end, label]"
            ));
        };
        for (i, item) in list.iter().enumerate() {
            match item.as_array().map(Vec::as_slice) {
                Some([Value::Number(s), Value::Number(e), Value::String(l)]) => {
                    match (s.as_u64(), e.as_u64()) {
                        (Some(s), Some(e)) => out.push((s as usize, e as usize, l.clone())),
                        _ => return Err(format!("label {i} is {item}; expected offsets >= 0")),
                    }
                }
                _ => return Err(format!("label {i} is {item}; expected [start, end, label]")),
            }
        }
    }
    if let Some(list) = value.get("entities") {
        let Some(list) = list.as_array() else {
            return Err(format!("`entities` is {list}; expected a list of objects"));
        };
        for (i, item) in list.iter().enumerate() {
            let s = item.get("start_offset").and_then(Value::as_u64);
            let e = item.get("end_offset").and_then(Value::as_u64);
            let l = item.get("label").and_then(Value::as_str);
            match (s, e, l) {
                (Some(s), Some(e), Some(l)) => out.push((s as usize, e as usize, l.to_string())),
                _ => {
                    return Err(format!(
                        "entity {i} is {item}; expected {{\"start_offset\", \"end_offset\", \
                         \"label\"}}"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The doccano record of a [`TextRecord`] (`label` triples in `map`'s unit).
pub(crate) fn record_json(record: &TextRecord, map: &OffsetMap) -> Value {
    let labels: Vec<Value> = record
        .entities
        .iter()
        .map(|e| {
            json!([
                map.from_char(e.entity.start),
                map.from_char(e.entity.end),
                e.entity.label
            ])
        })
        .collect();
    let mut v = json!({ "text": record.text, "label": labels });
    if let Some(id) = &record.id {
        v["id"] = json!(id);
    }
    v
}
