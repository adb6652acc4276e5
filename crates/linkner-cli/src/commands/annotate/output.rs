//! The output side of `linkner annotate`: JSONL, text or a record format, one annotation (or
//! error record) at a time, flushed.

use std::io::Write;

use futures_util::StreamExt;
use linkner::Annotation;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{AnnotateArgs, AnnotateFormat, LineId, Marker, OnError, Order};
use crate::commands::CliError;

/// The record writer of `--output-format` when linkner-core writes it (not jsonl, text).
pub(super) fn record_writer(
    args: &AnnotateArgs,
) -> Result<Option<Box<dyn linkner::core::io::RecordWriter>>, CliError> {
    let Some(format) = args.format.record_format() else {
        return Ok(None);
    };
    let output = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    crate::commands::formats::open_record_writer(format, output, args.offsets).map(Some)
}

/// Whether the router sent an entity to the LLM.
fn routed(e: &linkner::LinkedEntity) -> bool {
    !matches!(e.provenance, linkner::Provenance::Local)
}

/// The record of an annotation: id the caller's (or `line<N>`), entities with their
/// uncertainty and whether they were routed.
fn text_record(id: &LineId, a: &Annotation) -> linkner::core::io::TextRecord {
    use linkner::core::io::{RecordEntity, TextRecord};
    let id = match &id.id {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => format!("line{}", id.line),
    };
    TextRecord {
        id: Some(id),
        text: a.sentence.text.clone(),
        tokens: Some(a.sentence.tokens.clone()),
        entities: a
            .entities
            .iter()
            .map(|e| RecordEntity {
                entity: e.entity.clone(),
                uncertainty: Some(f64::from(e.uncertainty)),
                routed: Some(routed(e)),
            })
            .collect(),
        predicted: true,
    }
}

/// Writes the records, flushed one by one.
pub(super) struct Writer<'a, W: Write> {
    /// Where JSONL and text go.
    pub(super) out: &'a mut W,
    /// The writer of a format that linkner-core writes (then `out` is not written).
    pub(super) records: Option<Box<dyn linkner::core::io::RecordWriter>>,
    /// `--output-format`.
    pub(super) format: AnnotateFormat,
    /// `--on-error`.
    pub(super) on_error: OnError,
    /// `--only routed`.
    pub(super) only_routed: bool,
    /// Annotations written so far.
    pub(super) written: u64,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the pipeline's items and the bad lines: in input order by the markers, or as
    /// they come.
    pub(super) async fn run(
        &mut self,
        mut stream: linkner::Annotations<LineId>,
        mut marks: mpsc::Receiver<Marker>,
        order: Order,
    ) -> Result<(), CliError> {
        match order {
            Order::Input => {
                while let Some(mark) = marks.recv().await {
                    match mark {
                        Marker::Bad(id, message) => self.error(&id, message)?,
                        Marker::Doc => match stream.next().await {
                            Some(item) => self.item(item)?,
                            None => return Err("the pipeline ended before the input".into()),
                        },
                    }
                }
                // Documents handed over before a stop are still finished.
                while let Some(item) = stream.next().await {
                    self.item(item)?;
                }
            }
            Order::Completed => {
                let (mut marks_open, mut stream_open) = (true, true);
                while marks_open || stream_open {
                    tokio::select! {
                        mark = marks.recv(), if marks_open => match mark {
                            Some(Marker::Bad(id, message)) => self.error(&id, message)?,
                            Some(Marker::Doc) => {}
                            None => marks_open = false,
                        },
                        item = stream.next(), if stream_open => match item {
                            Some(item) => self.item(item)?,
                            None => stream_open = false,
                        },
                    }
                }
            }
        }
        Ok(())
    }

    fn item(&mut self, item: linkner::Streamed<LineId>) -> Result<(), CliError> {
        match item.result {
            Ok(a) => self.annotation(&item.id, &a),
            Err(e) => {
                let message = format!("line {}: {e}", item.id.line);
                self.error(&item.id, message)
            }
        }
    }

    fn annotation(&mut self, id: &LineId, a: &Annotation) -> Result<(), CliError> {
        let kept;
        let a = if self.only_routed {
            if !a.entities.iter().any(routed) {
                return Ok(());
            }
            let mut only = a.clone();
            only.entities.retain(routed);
            kept = only;
            &kept
        } else {
            a
        };
        if let Some(records) = &mut self.records {
            records.write(&text_record(id, a))?;
            self.written += 1;
            return Ok(());
        }
        match self.format {
            AnnotateFormat::Jsonl => {
                let mut v = serde_json::to_value(a)?;
                if let Value::Object(map) = &mut v {
                    map.insert("line".into(), id.line.into());
                    if let Some(i) = &id.id {
                        map.insert("id".into(), i.clone());
                    }
                }
                serde_json::to_writer(&mut *self.out, &v)?;
                self.out.write_all(b"\n")?;
            }
            AnnotateFormat::Text => {
                if let Some(i) = &id.id {
                    writeln!(self.out, "[{i}]")?;
                }
                self.out
                    .write_all(crate::commands::link::annotation_text(a).as_bytes())?;
            }
            _ => unreachable!("record formats are written above"),
        }
        self.written += 1;
        self.out.flush()?;
        Ok(())
    }

    fn error(&mut self, id: &LineId, message: String) -> Result<(), CliError> {
        if self.on_error == OnError::Fail {
            self.out.flush()?;
            return Err(message.into());
        }
        tracing::warn!("{message}; skipped");
        match self.format {
            AnnotateFormat::Jsonl => {
                let mut record = serde_json::json!({
                    "error": {"line": id.line, "message": message}
                });
                if let Some(i) = &id.id {
                    record["id"] = i.clone();
                }
                serde_json::to_writer(&mut *self.out, &record)?;
                self.out.write_all(b"\n")?;
            }
            AnnotateFormat::Text => writeln!(self.out, "error: {message}")?,
            // A record format has no place for an error: the warning above says it.
            _ => {}
        }
        self.out.flush()?;
        Ok(())
    }
}
