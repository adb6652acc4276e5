//! Label Studio tasks: the JSON export of a text project with a `Labels` control, and tasks with
//! `predictions` to import for review.
//!
//! ```json
//! [{"data": {"text": "Zoë lives in 東京"},
//!   "annotations": [{"result": [{"from_name": "label", "to_name": "text", "type": "labels",
//!     "value": {"start": 0, "end": 3, "text": "Zoë", "labels": ["PER"]}}]}]}]
//! ```
//!
//! **Offsets are UTF-16 code units by default**: Label Studio's editor measures selections in
//! JavaScript string units, so a text with emoji or other chars outside the Basic Multilingual
//! Plane has offsets that Python indices would get wrong. Each region's `text` is checked against
//! the text it points at; a mismatch that the other unit would explain says so.
//!
//! Reading: the text is `data.text` (or the only string in `data`); the gold entities are the
//! `labels` regions of the task's first annotation that was not cancelled. A task without one is
//! an error (Label Studio exports only annotated tasks unless asked for all). Each task is a
//! [`Document`] of one sentence (words cut at entity boundaries, [`super::align`]).
//!
//! Writing: one task per record with `data.text` (and `data.id` when the record has an id).
//! Gold records become an `annotations` entry; predicted ones a `predictions` entry whose regions
//! carry **the entity's uncertainty as `score`** (and the prediction's `score` is the highest
//! uncertainty of the task), so that sorting tasks by prediction score in Label Studio puts the
//! most doubtful first. The control names are Label Studio's NER template's: `from_name`
//! `label`, `to_name` `text`.

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

/// The `from_name` of written regions (the `Labels` control of Label Studio's NER template).
pub const FROM_NAME: &str = "label";
/// The `to_name` of written regions (the `Text` object of Label Studio's NER template).
pub const TO_NAME: &str = "text";

/// Reads Label Studio JSON exports.
#[derive(Debug, Clone)]
pub struct LabelStudioReader {
    schema: Option<LabelSchema>,
    offsets: OffsetUnit,
}

impl Default for LabelStudioReader {
    fn default() -> Self {
        LabelStudioReader {
            schema: None,
            offsets: OffsetUnit::Utf16,
        }
    }
}

impl LabelStudioReader {
    /// A reader of UTF-16 offsets that accepts any label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes any label that `schema` does not list a [`CoreError::UnknownLabel`].
    pub fn schema(mut self, schema: Option<LabelSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// The unit of the file's offsets (UTF-16 by default).
    pub fn offsets(mut self, unit: OffsetUnit) -> Self {
        self.offsets = unit;
        self
    }

    /// Reads an export: one [`Document`] per task.
    pub fn read_path(&self, path: impl AsRef<Path>) -> Result<Vec<Document>> {
        let path = path.as_ref();
        read_json_records(path)?
            .into_iter()
            .map(|(line, task)| self.document(&task, path, line))
            .collect()
    }

    fn document(&self, task: &Value, path: &Path, line: usize) -> Result<Document> {
        let err = |m: String| CoreError::parse(path, line, m);
        let text = task_text(task).map_err(&err)?;
        let Some(annotation) = task
            .get("annotations")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter().find(|x| {
                    !x.get("was_cancelled")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
            })
        else {
            return Err(err(format!(
                "task {} has no annotation that was not cancelled; expected annotated tasks \
                 (Label Studio's JSON export of annotated tasks)",
                task.get("id").unwrap_or(&Value::Null)
            )));
        };
        let map = OffsetMap::new(text, self.offsets);
        let chars: Vec<char> = text.chars().collect();
        let results = annotation.get("result").and_then(Value::as_array);
        let mut spans = Vec::new();
        for (i, region) in results.into_iter().flatten().enumerate() {
            let value = &region["value"];
            let Some(labels) = value.get("labels").and_then(Value::as_array) else {
                continue; // not a `labels` region (choices, relations, text areas …)
            };
            let what = format!("region {i}");
            let (Some(s), Some(e)) = (
                value.get("start").and_then(Value::as_u64),
                value.get("end").and_then(Value::as_u64),
            ) else {
                return Err(err(format!("{what} has no integer `start` and `end`")));
            };
            let at = |o: u64| {
                map.to_char(o as usize).ok_or_else(|| {
                    unit_error(path, line, &what, o as usize, self.offsets, map.len())
                })
            };
            let (s, e) = (at(s)?, at(e)?);
            if let Some(t) = value.get("text").and_then(Value::as_str)
                && s < e
                && chars[s..e].iter().collect::<String>() != t
            {
                return Err(err(mismatch(text, &what, t, (s, e), self.offsets, &chars)));
            }
            if labels.len() != 1 {
                return Err(err(format!(
                    "{what} has {} labels; expected exactly one",
                    labels.len()
                )));
            }
            let label = labels[0].as_str().unwrap_or_default();
            check_label(self.schema.as_ref(), label, path, line)?;
            spans.push(CharSpan::new(s, e, label));
        }
        let sentence = sentence_from_char_spans(text, None, &spans).map_err(err)?;
        Ok(Document {
            id: task
                .get("data")
                .and_then(|d| d.get("id"))
                .or_else(|| task.get("id"))
                .and_then(id_string),
            sentences: vec![sentence],
        })
    }
}

/// The task's text: `data.text`, or the only string in `data`.
fn task_text(task: &Value) -> std::result::Result<&str, String> {
    let Some(data) = task.get("data").and_then(Value::as_object) else {
        return Err("no `data` object; expected a Label Studio task".into());
    };
    if let Some(t) = data.get("text").and_then(Value::as_str) {
        return Ok(t);
    }
    let strings: Vec<&str> = data.values().filter_map(Value::as_str).collect();
    match strings.as_slice() {
        [t] => Ok(t),
        _ => Err(format!(
            "`data` has no `text` and {} strings; expected the text in `data.text`",
            strings.len()
        )),
    }
}

/// The message of a region whose `text` is not what its offsets point at.
fn mismatch(
    text: &str,
    what: &str,
    said: &str,
    (s, e): (usize, usize),
    unit: OffsetUnit,
    chars: &[char],
) -> String {
    let other = match unit {
        OffsetUnit::Chars => OffsetUnit::Utf16,
        OffsetUnit::Utf16 => OffsetUnit::Chars,
    };
    let (so, eo) = {
        let m = OffsetMap::new(text, unit);
        (m.from_char(s), m.from_char(e))
    };
    let alt = OffsetMap::new(text, other);
    let fits = matches!((alt.to_char(so), alt.to_char(eo)),
        (Some(a), Some(b)) if a < b && chars[a..b].iter().collect::<String>() == said);
    let hint = if fits {
        format!(" (read as {other} offsets they fit: use offsets {other})")
    } else {
        String::new()
    };
    format!(
        "{what} says {said:?} but {unit} offsets [{so}, {eo}) of the text are {:?}{hint}",
        chars[s..e].iter().collect::<String>()
    )
}

/// The task of a record (offsets in `map`'s unit).
pub(crate) fn task_json(record: &TextRecord, index: usize, map: &OffsetMap) -> Value {
    let regions: Vec<Value> = record
        .entities
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let mut r = json!({
                "id": format!("t{index}e{k}"),
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "labels",
                "value": {
                    "start": map.from_char(e.entity.start),
                    "end": map.from_char(e.entity.end),
                    "text": e.entity.text,
                    "labels": [e.entity.label],
                },
            });
            if let Some(u) = e.uncertainty {
                r["score"] = json!(u);
            }
            if let Some(routed) = e.routed {
                r["meta"] = json!({ "routed": routed });
            }
            r
        })
        .collect();
    let mut data = json!({ "text": record.text });
    if let Some(id) = &record.id {
        data["id"] = json!(id);
    }
    if record.predicted {
        let top = record
            .entities
            .iter()
            .filter_map(|e| e.uncertainty)
            .fold(0.0f64, f64::max);
        json!({
            "data": data,
            "predictions": [{ "model_version": "linkner", "score": top, "result": regions }],
        })
    } else {
        json!({ "data": data, "annotations": [{ "result": regions }] })
    }
}
