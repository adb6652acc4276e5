//! The one error type of `linkner-llm`, and the [`FailureKind`] every error falls into.
//!
//! Every failure of a backend is an [`LlmError`]; the linker turns any of them into "keep the
//! local label" and records its [`kind`](LlmError::kind). [`LlmError::is_retryable`] says which
//! ones the [`Retry`](crate::layer::Retry) layer retries.
//!
//! This module is free of HTTP-client types, so custom backends and the
//! [layers](crate::layer) use it without the OpenAI backend's dependencies.

use std::path::PathBuf;
use std::time::Duration;

use linkner_core::BoxError;
use serde::{Deserialize, Serialize};

/// Result alias of this crate.
pub type Result<T, E = LlmError> = std::result::Result<T, E>;

/// What kind of failure an [`LlmError`] is: a small, stable, serialisable name for statistics,
/// provenance and exit codes (the error's message stays beside it).
///
/// Serialised in `snake_case` (`"rate_limited"`, `"circuit_open"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// An attempt took longer than the per-request timeout (also HTTP 408).
    Timeout,
    /// The server refused for now: HTTP 429 (too many requests).
    RateLimited,
    /// The server failed: HTTP 5xx.
    ServerError,
    /// The server refused the request: HTTP 4xx other than 408 and 429 (bad model name,
    /// missing key, wrong URL path, …). Usually a configuration mistake.
    ClientError,
    /// The server could not be reached or the exchange broke: refused, reset, closed early, a
    /// body cut before its end, TLS failure, any other transport error.
    Connection,
    /// The response body was larger than the configured cap and was abandoned.
    TooLarge,
    /// A complete response that is not the expected JSON shape.
    Malformed,
    /// The model answered, but not with one of the schema's labels.
    OutOfSchema,
    /// The request itself is invalid (span outside the sentence, empty schema, …).
    InvalidRequest,
    /// The circuit breaker failed the call fast: the server had failed too often in a row.
    CircuitOpen,
    /// The overall per-entity deadline (across retries) passed.
    Deadline,
    /// The few-shot examples of the entity could not be retrieved, so no request was sent
    /// (the pipeline's example retriever failed).
    Retrieval,
    /// The backend is misconfigured.
    Config,
    /// A custom backend's own failure ([`LlmError::Backend`]), or anything else.
    Backend,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [FailureKind; 14] = [
        FailureKind::Timeout,
        FailureKind::RateLimited,
        FailureKind::ServerError,
        FailureKind::ClientError,
        FailureKind::Connection,
        FailureKind::TooLarge,
        FailureKind::Malformed,
        FailureKind::OutOfSchema,
        FailureKind::InvalidRequest,
        FailureKind::CircuitOpen,
        FailureKind::Deadline,
        FailureKind::Retrieval,
        FailureKind::Config,
        FailureKind::Backend,
    ];

    /// The `snake_case` name (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::ServerError => "server_error",
            FailureKind::ClientError => "client_error",
            FailureKind::Connection => "connection",
            FailureKind::TooLarge => "too_large",
            FailureKind::Malformed => "malformed",
            FailureKind::OutOfSchema => "out_of_schema",
            FailureKind::InvalidRequest => "invalid_request",
            FailureKind::CircuitOpen => "circuit_open",
            FailureKind::Deadline => "deadline",
            FailureKind::Retrieval => "retrieval",
            FailureKind::Config => "config",
            FailureKind::Backend => "backend",
        }
    }

    /// Position in [`FailureKind::ALL`] (for fixed-size counters).
    pub fn index(self) -> usize {
        FailureKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(FailureKind::ALL.len() - 1)
    }

    /// True for the failures a circuit breaker counts: the server did not answer in time or
    /// could not be reached ([`FailureKind::Timeout`], [`FailureKind::Connection`]).
    pub fn is_transport(self) -> bool {
        matches!(self, FailureKind::Timeout | FailureKind::Connection)
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FailureKind {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<FailureKind> {
        FailureKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                LlmError::Config(format!(
                    "unknown failure kind `{s}`; expected one of: {}",
                    FailureKind::ALL.map(FailureKind::name).join(", ")
                ))
            })
    }
}

/// Every failure of `linkner-llm`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The request itself is invalid (span outside the sentence, empty schema, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend is misconfigured (bad URL, template with unknown placeholders, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// One setting has an invalid value; `field` names it as in [`crate::OpenAiConfig`]
    /// (`timeout_s`, `max_in_flight`, …).
    #[error("`{field}`: {message}")]
    InvalidSetting {
        /// The setting's name.
        field: String,
        /// What is wrong with its value.
        message: String,
    },
    /// One attempt took longer than the per-request timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The server could not be reached or the connection broke (refused, reset, closed early,
    /// a body cut before its end, an error while reading the body).
    #[error("connection failed: {0}")]
    Connection(String),
    /// The server answered with an HTTP error status.
    #[error("HTTP {status}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// First bytes of the body, for diagnosis.
        body: String,
        /// The `Retry-After` delay the server asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The response body was larger than the cap; it was abandoned unread.
    #[error("response body larger than the {limit}-byte cap; abandoned")]
    ResponseTooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// A complete response that is not the JSON shape an OpenAI-compatible server returns.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// The model answered, but not with one of the schema's labels (strict parsing: a label
    /// outside the set is a failure, never a guess).
    #[error("answer {answer:?} is not one of the labels: {expected}")]
    LabelOutsideSchema {
        /// What the model answered.
        answer: String,
        /// The allowed labels, comma separated.
        expected: String,
    },
    /// Retryable failures went on until the retry budget was spent.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        /// Attempts made (first try included).
        attempts: u32,
        /// The last failure.
        last: Box<LlmError>,
    },
    /// The circuit breaker is open: the server failed (timed out or could not be reached)
    /// too many times in a row, so calls fail fast until the cool-down ends.
    #[error(
        "circuit breaker open after {failures} consecutive connection failures or timeouts \
         (last: {last_error}); next try in {retry_in:.1?}"
    )]
    CircuitOpen {
        /// Consecutive transport failures that opened it.
        failures: u32,
        /// The last of them, as text.
        last_error: String,
        /// Time left before the breaker lets a probe through.
        retry_in: Duration,
    },
    /// The overall per-entity deadline passed (it spans every attempt and backoff).
    #[error("deadline of {0:?} for the entity passed (retries included)")]
    DeadlineExceeded(Duration),
    /// The entity's few-shot examples could not be retrieved (the pipeline's example
    /// retriever failed), so no request was built; the message is the retriever's.
    #[error("example retrieval failed: {0}")]
    Retrieval(String),
    /// The on-disk answer cache could not be read.
    #[error("{}: answer cache: {message}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Any other transport failure reported by the HTTP client (not retried).
    #[error("transport error: {0}")]
    Transport(String),
    /// A custom backend's own failure, with its cause.
    #[error("{message}")]
    Backend {
        /// What went wrong, for people.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl LlmError {
    /// A custom backend's own failure — the one constructor for errors of an
    /// [`LlmClassifier`](crate::LlmClassifier) written outside linkner, as
    /// `TaggerError::backend` and `UncertaintyError::backend` are for the other two traits.
    /// `error` is any error (kept as the source) or a message (`"…"`, `format!(…)`); the
    /// error's text is the message.
    pub fn backend(error: impl Into<BoxError>) -> LlmError {
        let source: BoxError = error.into();
        LlmError::Backend {
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// The kind of failure (of the last attempt for [`LlmError::RetriesExhausted`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            LlmError::InvalidRequest(_) => FailureKind::InvalidRequest,
            LlmError::Config(_) | LlmError::InvalidSetting { .. } => FailureKind::Config,
            LlmError::Timeout(_) => FailureKind::Timeout,
            LlmError::Connection(_) | LlmError::Transport(_) => FailureKind::Connection,
            LlmError::Http { status, .. } => match *status {
                429 => FailureKind::RateLimited,
                408 => FailureKind::Timeout,
                s if s >= 500 => FailureKind::ServerError,
                _ => FailureKind::ClientError,
            },
            LlmError::ResponseTooLarge { .. } => FailureKind::TooLarge,
            LlmError::MalformedResponse(_) => FailureKind::Malformed,
            LlmError::LabelOutsideSchema { .. } => FailureKind::OutOfSchema,
            LlmError::RetriesExhausted { last, .. } => last.kind(),
            LlmError::CircuitOpen { .. } => FailureKind::CircuitOpen,
            LlmError::DeadlineExceeded(_) => FailureKind::Deadline,
            LlmError::Retrieval(_) => FailureKind::Retrieval,
            LlmError::Cache { .. } | LlmError::Backend { .. } => FailureKind::Backend,
        }
    }

    /// True for failures that may go away when the same request is sent again: timeouts,
    /// broken connections (a body cut short included), HTTP 408/425/429 and 5xx. Answers
    /// outside the label set, malformed JSON, oversized bodies, invalid requests, an open
    /// circuit breaker and a passed deadline are not retried (at temperature 0 the same prompt
    /// gives the same answer; the breaker and the deadline exist to stop retrying).
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Timeout(_) | LlmError::Connection(_) => true,
            LlmError::Http { status, .. } => {
                matches!(*status, 408 | 425 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// The delay the server asked for (`Retry-After`), when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The innermost error: for [`LlmError::RetriesExhausted`] the last failure, else `self`.
    pub fn root(&self) -> &LlmError {
        match self {
            LlmError::RetriesExhausted { last, .. } => last.root(),
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_serde_and_names() {
        for k in FailureKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<FailureKind>(&json).unwrap(), k);
            assert_eq!(k.name().parse::<FailureKind>().unwrap(), k);
            assert_eq!(FailureKind::ALL[k.index()], k);
        }
        assert!("nope".parse::<FailureKind>().is_err());
    }

    #[test]
    fn every_error_has_its_kind() {
        let http = |status| LlmError::Http {
            status,
            body: String::new(),
            retry_after: None,
        };
        let cases = [
            (
                LlmError::Timeout(Duration::from_secs(1)),
                FailureKind::Timeout,
            ),
            (http(408), FailureKind::Timeout),
            (http(429), FailureKind::RateLimited),
            (http(503), FailureKind::ServerError),
            (http(401), FailureKind::ClientError),
            (
                LlmError::Connection("reset".into()),
                FailureKind::Connection,
            ),
            (
                LlmError::ResponseTooLarge { limit: 1 },
                FailureKind::TooLarge,
            ),
            (
                LlmError::MalformedResponse("x".into()),
                FailureKind::Malformed,
            ),
            (
                LlmError::LabelOutsideSchema {
                    answer: "x".into(),
                    expected: "y".into(),
                },
                FailureKind::OutOfSchema,
            ),
            (
                LlmError::InvalidRequest("x".into()),
                FailureKind::InvalidRequest,
            ),
            (
                LlmError::CircuitOpen {
                    failures: 4,
                    last_error: "request timed out".into(),
                    retry_in: Duration::ZERO,
                },
                FailureKind::CircuitOpen,
            ),
            (
                LlmError::DeadlineExceeded(Duration::from_secs(1)),
                FailureKind::Deadline,
            ),
            (
                LlmError::Retrieval("index gone".into()),
                FailureKind::Retrieval,
            ),
            (LlmError::backend("mine"), FailureKind::Backend),
            (
                LlmError::RetriesExhausted {
                    attempts: 3,
                    last: Box::new(http(502)),
                },
                FailureKind::ServerError,
            ),
        ];
        for (e, k) in cases {
            assert_eq!(e.kind(), k, "{e}");
        }
    }

    #[test]
    fn backend_errors_keep_their_source() {
        let io = std::io::Error::other("disk on fire");
        let e = LlmError::backend(io);
        assert_eq!(e.to_string(), "disk on fire");
        let src = std::error::Error::source(&e).unwrap();
        assert_eq!(src.to_string(), "disk on fire");
        assert!(!e.is_retryable());
    }
}
