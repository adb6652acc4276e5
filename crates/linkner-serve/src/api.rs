//! Request bodies, their parsing with located errors, and the JSON error of every route.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use linkner::DocumentOptions;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ServeConfig;

/// What went wrong, as a stable machine-readable code (the `error.code` of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body is not UTF-8 (the message gives the byte offset).
    InvalidUtf8,
    /// 400: the body is not JSON of the expected shape (the message names the field, line
    /// and column).
    InvalidJson,
    /// 413: the body is larger than `max_body_bytes`.
    PayloadTooLarge,
    /// 422: a text is longer than `max_text_chars`.
    TextTooLong,
    /// 422: more documents than `max_batch`, or none.
    BatchTooLarge,
    /// 422: the body is JSON of the right shape with a value that cannot be served.
    InvalidRequest,
    /// 503: `max_concurrent_requests` are running, or the service is shutting down; see
    /// `Retry-After`.
    Overloaded,
    /// 504: the request timeout passed (with the local labels when the LLM was the slow part).
    Timeout,
    /// 500: a document could not be annotated (the tagger failed).
    AnnotationFailed,
    /// 404: no such route.
    NotFound,
    /// 500: a bug (a handler panicked).
    Internal,
}

/// A JSON error response: `{"error": {"code": …, "message": …, …}}` plus optional fields.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message (what was expected, where).
    pub message: String,
    /// More members of the top-level object (e.g. `annotations` of a partial 504).
    pub extra: serde_json::Map<String, Value>,
    /// `Retry-After` seconds (503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error without extra members.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: serde_json::Map::new(),
            retry_after: None,
        }
    }

    /// 400 / 422 helper.
    pub(crate) fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut top = self.extra.clone();
        top.insert(
            "error".into(),
            serde_json::json!({"code": self.code, "message": self.message}),
        );
        Value::Object(top)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// Per-request options (`options` of the body, or the query of the stream route).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RequestOptions {
    /// `false`: local tagger only.
    pub llm: Option<bool>,
    /// Latency budget of each document, in milliseconds.
    pub latency_budget_ms: Option<u64>,
}

impl RequestOptions {
    /// The document options, the deadline capped by the request timeout. Returns them and
    /// whether the cap (not the caller's budget) is what bounds the LLM.
    pub fn document_options(&self, config: &ServeConfig) -> (DocumentOptions, bool) {
        let cap = config.request_timeout_ms;
        let (budget, capped) = match self.latency_budget_ms {
            Some(ms) if ms < cap => (ms, false),
            _ => (cap, true),
        };
        let mut o = DocumentOptions::default().with_latency_budget(budget);
        if let Some(on) = self.llm {
            o = o.with_llm(on);
        }
        (o, capped)
    }
}

/// One document of a batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentIn {
    /// The caller's id (any JSON), passed through.
    #[serde(default)]
    pub id: Option<Value>,
    /// The text.
    pub text: String,
}

/// The body of `POST /v1/annotate`: exactly one of `text`, `texts`, `documents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnnotateRequest {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    texts: Option<Vec<String>>,
    #[serde(default)]
    documents: Option<Vec<DocumentIn>>,
    #[serde(default)]
    pub options: RequestOptions,
}

impl AnnotateRequest {
    /// Parses a body: UTF-8 first (byte offset), then JSON (field path, line, column), then
    /// the shape and the limits.
    pub fn parse(
        body: &[u8],
        config: &ServeConfig,
    ) -> Result<(Vec<DocumentIn>, RequestOptions), ApiError> {
        let text = std::str::from_utf8(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidUtf8,
                format!(
                    "the body is not valid UTF-8 at byte {} (offset from 0)",
                    e.valid_up_to()
                ),
            )
        })?;
        let de = &mut serde_json::Deserializer::from_str(text);
        let request: AnnotateRequest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = if path.is_empty() || path == "." {
                String::new()
            } else {
                format!("field `{path}`: ")
            };
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                format!(
                    "{at}{inner}; expected {{\"text\": \"…\"}}, {{\"texts\": [\"…\"]}} or \
                     {{\"documents\": [{{\"id\": …, \"text\": \"…\"}}]}} with optional \
                     \"options\": {{\"llm\": bool, \"latency_budget_ms\": int}}"
                ),
            )
        })?;
        let options = request.options;
        let (docs, field) = match (request.text, request.texts, request.documents) {
            (Some(t), None, None) => (vec![DocumentIn { id: None, text: t }], "text"),
            (None, Some(ts), None) => (
                ts.into_iter()
                    .map(|t| DocumentIn { id: None, text: t })
                    .collect(),
                "texts",
            ),
            (None, None, Some(d)) => (d, "documents"),
            _ => {
                return Err(ApiError::unprocessable(
                    ErrorCode::InvalidRequest,
                    "give exactly one of `text`, `texts` or `documents`",
                ));
            }
        };
        check_limits(&docs, field, config)?;
        Ok((docs, options))
    }
}

/// The batch and text limits, naming the document at fault.
fn check_limits(docs: &[DocumentIn], field: &str, config: &ServeConfig) -> Result<(), ApiError> {
    if docs.is_empty() {
        return Err(ApiError::unprocessable(
            ErrorCode::BatchTooLarge,
            format!("`{field}` is empty: give at least one document"),
        ));
    }
    if docs.len() > config.max_batch {
        return Err(ApiError::unprocessable(
            ErrorCode::BatchTooLarge,
            format!(
                "`{field}` has {} documents; at most {} per request (max_batch): split the \
                 batch or use /v1/annotate/stream",
                docs.len(),
                config.max_batch
            ),
        ));
    }
    for (i, d) in docs.iter().enumerate() {
        check_text(&d.text, config).map_err(|n| {
            let at = if field == "text" {
                "`text`".to_string()
            } else if field == "texts" {
                format!("`texts[{i}]`")
            } else {
                format!("`documents[{i}].text`")
            };
            ApiError::unprocessable(
                ErrorCode::TextTooLong,
                format!(
                    "{at} has {n} chars; at most {} (max_text_chars)",
                    config.max_text_chars
                ),
            )
        })?;
    }
    Ok(())
}

/// `Err(chars)` when the text is over the limit (counted only up to the limit + 1).
pub(crate) fn check_text(text: &str, config: &ServeConfig) -> Result<(), usize> {
    if text.len() <= config.max_text_chars {
        return Ok(());
    }
    let n = text.chars().count();
    if n > config.max_text_chars {
        Err(n)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(Vec<DocumentIn>, RequestOptions), ApiError> {
        AnnotateRequest::parse(body.as_bytes(), &ServeConfig::default())
    }

    #[test]
    fn the_three_shapes_parse_and_keep_ids() {
        let (d, o) = parse(r#"{"text": "Köln"}"#).unwrap();
        assert_eq!((d.len(), d[0].text.as_str()), (1, "Köln"));
        assert_eq!(o, RequestOptions::default());
        let (d, _) = parse(r#"{"texts": ["a", "b"]}"#).unwrap();
        assert_eq!(d.len(), 2);
        let (d, o) =
            parse(r#"{"documents": [{"id": 7, "text": "x"}], "options": {"llm": false}}"#).unwrap();
        assert_eq!(d[0].id, Some(serde_json::json!(7)));
        assert_eq!(o.llm, Some(false));
    }

    #[test]
    fn errors_name_the_field_or_the_byte() {
        let e = parse(r#"{"documents": [{"id": 1, "text": 3}]}"#).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson)
        );
        assert!(e.message.contains("documents[0].text"), "{}", e.message);
        let e = parse(r#"{"txt": "a"}"#).unwrap_err();
        assert!(e.message.contains("txt"), "{}", e.message);
        let e = parse(r#"{"text": "a", "texts": ["b"]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let mut bytes = br#"{"text": "caf"#.to_vec();
        bytes.push(0xE9);
        bytes.extend_from_slice(br#""}"#);
        let e = AnnotateRequest::parse(&bytes, &ServeConfig::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidUtf8);
        assert!(e.message.contains("byte 13"), "{}", e.message);
    }

    #[test]
    fn limits_name_the_document() {
        let config = ServeConfig {
            max_text_chars: 3,
            max_batch: 2,
            ..ServeConfig::default()
        };
        // 3 chars of 2 bytes each pass; 4 do not.
        assert!(AnnotateRequest::parse(r#"{"text": "ééé"}"#.as_bytes(), &config).is_ok());
        let e =
            AnnotateRequest::parse(r#"{"texts": ["a", "éééé"]}"#.as_bytes(), &config).unwrap_err();
        assert_eq!(e.code, ErrorCode::TextTooLong);
        assert!(e.message.contains("texts[1]") && e.message.contains("4 chars"));
        let e = AnnotateRequest::parse(r#"{"texts": ["a", "b", "c"]}"#.as_bytes(), &config)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BatchTooLarge);
        let e = AnnotateRequest::parse(r#"{"texts": []}"#.as_bytes(), &config).unwrap_err();
        assert_eq!(e.code, ErrorCode::BatchTooLarge);
    }

    #[test]
    fn the_request_timeout_caps_the_budget() {
        let config = ServeConfig {
            request_timeout_ms: 1000,
            ..ServeConfig::default()
        };
        let o = RequestOptions {
            llm: None,
            latency_budget_ms: Some(200),
        };
        let (d, capped) = o.document_options(&config);
        assert_eq!((d.latency_budget_ms, capped), (Some(200), false));
        let o = RequestOptions {
            llm: Some(false),
            latency_budget_ms: Some(5000),
        };
        let (d, capped) = o.document_options(&config);
        assert_eq!(
            (d.latency_budget_ms, d.llm, capped),
            (Some(1000), Some(false), true)
        );
    }
}
