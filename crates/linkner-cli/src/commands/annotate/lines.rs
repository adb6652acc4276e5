//! The input side of `linkner annotate`: lines read in constant memory, each a document or the
//! located reason it is none.

use std::io::BufRead;

use serde_json::Value;
use tokio::sync::mpsc;

use super::{InputFormat, LineId, Read};

/// Reads `reader` line by line (`\n` or `\r\n`) into `tx`, each line with its number; a line
/// longer than `limit` bytes is read to its end in constant memory and becomes an error.
pub(super) fn read_lines(
    mut reader: Box<dyn BufRead + Send>,
    name: &str,
    format: InputFormat,
    limit: usize,
    tx: &mpsc::Sender<Read>,
) {
    let mut n = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let (complete, too_long) = match read_capped(&mut reader, &mut buf, limit) {
            Ok(r) => r,
            Err(e) => {
                let id = LineId {
                    line: n + 1,
                    id: None,
                };
                let _ = tx.blocking_send((id, Err(format!("{name}: line {}: {e}", n + 1))));
                return;
            }
        };
        if !complete && buf.is_empty() && !too_long {
            return;
        }
        n += 1;
        let item = parse_line(&buf, too_long, n, name, format, limit);
        if tx.blocking_send(item).is_err() {
            return;
        }
        if !complete {
            return;
        }
    }
}

/// Reads one line into `buf` (without its end), keeping at most `limit` bytes. Returns
/// (ended by a newline, longer than the limit).
fn read_capped(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(bool, bool)> {
    let mut too_long = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok((false, too_long));
        }
        let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            let room = limit.saturating_sub(buf.len());
            if take > room {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take + usize::from(newline));
        if newline {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok((true, too_long));
        }
    }
}

/// One line's document, or the located reason it is none.
fn parse_line(
    bytes: &[u8],
    too_long: bool,
    line: u64,
    name: &str,
    format: InputFormat,
    limit: usize,
) -> Read {
    let at = |m: String| format!("{name}: line {line}: {m}");
    let plain = LineId { line, id: None };
    if too_long {
        return (
            plain,
            Err(at(format!(
                "longer than {limit} bytes (--max-line-bytes); line skipped"
            ))),
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return (
                plain,
                Err(at(format!(
                    "invalid UTF-8 at byte {} of the line",
                    e.valid_up_to() + 1
                ))),
            );
        }
    };
    match format {
        InputFormat::Text => (plain, Ok(text.to_string())),
        InputFormat::Jsonl => parse_json_line(text, line, &at),
    }
}

/// `{"id": …, "text": "…"}`.
fn parse_json_line(text: &str, line: u64, at: &dyn Fn(String) -> String) -> Read {
    let plain = LineId { line, id: None };
    if text.trim().is_empty() {
        return (
            plain,
            Err(at(
                "empty line; expected a JSON object {\"id\": …, \"text\": \"…\"}".into(),
            )),
        );
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (plain, Err(at(format!("not JSON: {e}")))),
    };
    let Value::Object(mut map) = value else {
        return (
            plain,
            Err(at(
                "expected a JSON object {\"id\": …, \"text\": \"…\"}".into()
            )),
        );
    };
    let id = LineId {
        line,
        id: map.remove("id"),
    };
    match map.remove("text") {
        Some(Value::String(t)) => (id, Ok(t)),
        Some(other) => (
            id,
            Err(at(format!(
                "field `text` must be a string, got {}",
                kind_of(&other)
            ))),
        ),
        None => (id, Err(at("missing field `text` (a string)".into()))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8], format: InputFormat, limit: usize) -> Vec<Read> {
        let (tx, mut rx) = mpsc::channel(64);
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::BufReader::with_capacity(
            8,
            std::io::Cursor::new(input.to_vec()),
        ));
        read_lines(reader, "in", format, limit, &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(x) = rx.try_recv() {
            out.push(x);
        }
        out
    }

    #[test]
    fn text_lines_keep_their_numbers_and_bad_ones_are_located() {
        let long = "x".repeat(40);
        let input = format!("first\r\nsecond caf\u{e9}\n{long}\n\nlast");
        let mut bytes = input.into_bytes();
        // Make line 2 invalid UTF-8.
        let at = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
        bytes[at + 1] = b'(';
        let got = lines_of(&bytes, InputFormat::Text, 32);
        let lines: Vec<u64> = got.iter().map(|(id, _)| id.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5]);
        assert_eq!(got[0].1, Ok("first".into()));
        assert_eq!(
            got[1].1,
            Err("in: line 2: invalid UTF-8 at byte 11 of the line".into())
        );
        assert!(
            got[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("line 3: longer than 32 bytes")
        );
        assert_eq!(got[3].1, Ok(String::new()));
        assert_eq!(got[4].1, Ok("last".into()));
        assert!(lines_of(b"", InputFormat::Text, 32).is_empty());
    }

    #[test]
    fn jsonl_lines_pass_their_id_and_refuse_what_is_not_a_document() {
        let input = br#"{"id": 7, "text": "Rome"}
{"text": "no id"}

{"id": "x", "text": 3}
[1, 2]
{"id": "y"}
{"id": {"k": 1}, "text": "ok"
"#;
        let got = lines_of(input, InputFormat::Jsonl, 1 << 20);
        assert_eq!(got.len(), 7);
        assert_eq!(got[0].0.id, Some(Value::from(7)));
        assert_eq!(got[0].1, Ok("Rome".into()));
        assert_eq!(
            (got[1].0.id.clone(), got[1].1.clone()),
            (None, Ok("no id".into()))
        );
        let err = |i: usize| got[i].1.clone().unwrap_err();
        assert!(err(2).contains("line 3: empty line"), "{}", err(2));
        assert!(err(3).contains("line 4: field `text` must be a string, got a number"));
        assert_eq!(got[3].0.id, Some(Value::from("x")), "the id still travels");
        assert!(err(4).contains("line 5: expected a JSON object"));
        assert!(err(5).contains("line 6: missing field `text`"));
        assert!(err(6).contains("line 7: not JSON"));
    }
}
