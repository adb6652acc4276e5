//! `POST /v1/annotate/stream`: NDJSON in (`{"id": …, "text": "…"}` per line), NDJSON out, each
//! line written as soon as its document is ready (completed order, with `line` and `id`).
//!
//! A line that cannot be a document (not UTF-8, not JSON, no `text`, too long) gets an error
//! record `{"line": N, "id": …, "error": {"code": …, "message": …}}` in its place; the stream
//! goes on. The request body is read as it arrives, so a client can keep one request open
//! and write documents into it.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as Extract};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use linkner::DocumentOptions;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::api::{ApiError, ErrorCode, RequestOptions, check_text};
use crate::routes::{State, annotation_json};

/// Most documents of one stream waiting for their annotation at once (then the body is read
/// more slowly: backpressure).
const IN_FLIGHT_PER_STREAM: usize = 256;

/// The route.
pub(crate) async fn annotate_stream(
    Extract(state): Extract<Arc<State>>,
    query: Result<Query<RequestOptions>, QueryRejection>,
    body: Body,
) -> Response {
    let options = match query {
        Ok(Query(o)) => o,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                format!("query: {e}; expected ?llm=true|false&latency_budget_ms=N"),
            )
            .into_response();
        }
    };
    let (doc_options, _) = options.document_options(&state.config);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(pump(state, body, doc_options, tx));
    let out = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(out),
    )
        .into_response()
}

/// Reads the body line by line, sends each document to the hub and each result out.
async fn pump(state: Arc<State>, body: Body, options: DocumentOptions, out: mpsc::Sender<Bytes>) {
    let limit = state.config.max_line_bytes;
    let slots = Arc::new(Semaphore::new(IN_FLIGHT_PER_STREAM));
    let mut lines = LineSplitter::new(limit);
    let mut data = body.into_data_stream();
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    let mut read_error = None;
    loop {
        let chunk = match data.next().await {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                read_error = Some(e.to_string());
                None
            }
            None => None,
        };
        let done = chunk.is_none();
        let ready = match &chunk {
            Some(c) => lines.push(c),
            None => lines.finish(),
        };
        for line in ready {
            n += 1;
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (state, out) = (state.clone(), out.clone());
            tasks.spawn(async move {
                let record = one_line(&state, n, line, options).await;
                let _ = out.send(record).await;
                drop(permit);
            });
        }
        // Finished tasks are reaped as we go.
        while tasks.try_join_next().is_some() {}
        if done {
            break;
        }
    }
    while tasks.join_next().await.is_some() {}
    if let Some(e) = read_error {
        let record = json!({"error": {"code": ErrorCode::InvalidRequest,
                             "message": format!("the request body broke off after line {n}: {e}")}});
        let _ = out.send(to_line(&record)).await;
    }
}

/// One input line (or why it is none).
enum Line {
    Bytes(Vec<u8>),
    TooLong,
}

/// The output record of one line.
async fn one_line(state: &State, n: u64, line: Line, options: DocumentOptions) -> Bytes {
    let error = |id: Option<Value>, code: ErrorCode, message: String| {
        to_line(&json!({"line": n, "id": id, "error": {"code": code, "message": message}}))
    };
    let bytes = match line {
        Line::TooLong => {
            return error(
                None,
                ErrorCode::TextTooLong,
                format!(
                    "line {n} is longer than {} bytes (max_line_bytes)",
                    state.config.max_line_bytes
                ),
            );
        }
        Line::Bytes(b) => b,
    };
    let (id, text) = match parse_line(&bytes, n) {
        Ok(x) => x,
        Err((id, code, message)) => return error(id, code, message),
    };
    if let Err(chars) = check_text(&text, &state.config) {
        let message = format!(
            "line {n}: `text` has {chars} chars; at most {} (max_text_chars)",
            state.config.max_text_chars
        );
        return error(id, ErrorCode::TextTooLong, message);
    }
    let rx = match state.hub.submit(text, options).await {
        Ok(rx) => rx,
        Err(_) => {
            return error(
                id,
                ErrorCode::Overloaded,
                "the annotation stream has stopped".into(),
            );
        }
    };
    match rx.await {
        Ok(Ok(a)) => {
            let mut v = annotation_json(&a, id.as_ref());
            if let Value::Object(map) = &mut v {
                map.insert("line".into(), n.into());
            }
            to_line(&v)
        }
        Ok(Err(e)) => error(id, ErrorCode::AnnotationFailed, format!("line {n}: {e}")),
        Err(_) => error(id, ErrorCode::Internal, format!("line {n}: dropped")),
    }
}

type LineError = (Option<Value>, ErrorCode, String);

/// `{"id": …, "text": "…"}` with located errors.
fn parse_line(bytes: &[u8], n: u64) -> Result<(Option<Value>, String), LineError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        (
            None,
            ErrorCode::InvalidUtf8,
            format!(
                "line {n}: not valid UTF-8 at byte {} of the line",
                e.valid_up_to()
            ),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            None,
            ErrorCode::InvalidJson,
            format!("line {n}: not JSON ({e}); expected {{\"id\": …, \"text\": \"…\"}}"),
        )
    })?;
    let Value::Object(mut map) = value else {
        return Err((
            None,
            ErrorCode::InvalidJson,
            format!("line {n}: expected a JSON object {{\"id\": …, \"text\": \"…\"}}"),
        ));
    };
    let id = map.remove("id");
    match map.remove("text") {
        Some(Value::String(t)) => Ok((id, t)),
        Some(_) => Err((
            id,
            ErrorCode::InvalidJson,
            format!("line {n}: field `text` must be a string"),
        )),
        None => Err((
            id,
            ErrorCode::InvalidJson,
            format!("line {n}: missing field `text` (a string)"),
        )),
    }
}

fn to_line(v: &Value) -> Bytes {
    let mut s = serde_json::to_vec(v).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

/// Splits a byte stream into lines (`\n`, `\r\n`), never holding more than `limit` bytes of
/// one line; empty lines are skipped.
struct LineSplitter {
    buf: Vec<u8>,
    too_long: bool,
    limit: usize,
}

impl LineSplitter {
    fn new(limit: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            too_long: false,
            limit,
        }
    }

    fn push(&mut self, mut chunk: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while !chunk.is_empty() {
            let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !self.too_long {
                if self.buf.len() + take > self.limit {
                    self.too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            chunk = &chunk[(take + usize::from(newline)).min(chunk.len())..];
            if newline {
                out.extend(self.end_line());
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<Line> {
        self.end_line().into_iter().collect()
    }

    fn end_line(&mut self) -> Option<Line> {
        if std::mem::take(&mut self.too_long) {
            self.buf.clear();
            return Some(Line::TooLong);
        }
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(Line::Bytes(line))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]], limit: usize) -> Vec<Option<Vec<u8>>> {
        let mut s = LineSplitter::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.push(c));
        }
        out.extend(s.finish());
        out.into_iter()
            .map(|l| match l {
                Line::Bytes(b) => Some(b),
                Line::TooLong => None,
            })
            .collect()
    }

    #[test]
    fn lines_split_across_chunks_and_long_ones_are_marked() {
        let got = lines(&[b"ab", b"c\r\n\nde", b"f\n0123456789", b"0123\nlast"], 8);
        assert_eq!(
            got,
            vec![
                Some(b"abc".to_vec()),
                Some(b"def".to_vec()),
                None,
                Some(b"last".to_vec())
            ]
        );
    }

    #[test]
    fn bad_lines_are_located() {
        assert_eq!(
            parse_line(br#"{"id": 3, "text": "x"}"#, 1).unwrap(),
            (Some(json!(3)), "x".to_string())
        );
        let e = parse_line(br#"{"id": 3}"#, 4).unwrap_err();
        assert_eq!(e.0, Some(json!(3)));
        assert!(e.2.contains("line 4: missing field `text`"));
        let e = parse_line(b"caf\xe9", 2).unwrap_err();
        assert_eq!(e.1, ErrorCode::InvalidUtf8);
        assert!(e.2.contains("byte 3"));
        assert_eq!(parse_line(b"[1]", 2).unwrap_err().1, ErrorCode::InvalidJson);
    }
}
