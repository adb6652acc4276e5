//! The one error type of `linkner-llm`.
//!
//! Every failure of a backend is an [`LlmError`]; the linker turns any of them into "keep the
//! local label" and records it. [`LlmError::is_retryable`] says which ones the retry loop retries.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = LlmError> = std::result::Result<T, E>;

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
    /// One attempt took longer than the per-request timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// The server could not be reached or the connection broke (refused, reset, closed early).
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
    /// The response is not the JSON shape an OpenAI-compatible server returns.
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
    /// The on-disk answer cache could not be read or written.
    #[error("{}: answer cache: {message}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Any other transport failure reported by the HTTP client.
    #[error("transport error: {0}")]
    Transport(String),
}

impl LlmError {
    /// True for failures that may go away when the same request is sent again: timeouts, broken
    /// connections, HTTP 408/425/429 and 5xx. Answers outside the label set, malformed JSON and
    /// invalid requests are not retried (at temperature 0 the same prompt gives the same answer).
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Timeout(_) | LlmError::Connection(_) => true,
            LlmError::Http { status, .. } => {
                matches!(*status, 408 | 425 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// The innermost error: for [`LlmError::RetriesExhausted`] the last failure, else `self`.
    pub fn root(&self) -> &LlmError {
        match self {
            LlmError::RetriesExhausted { last, .. } => last.root(),
            e => e,
        }
    }

    #[cfg(feature = "openai")]
    pub(crate) fn from_reqwest(e: reqwest::Error, timeout: Duration) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(timeout)
        } else if e.is_connect() || e.is_request() || e.is_body() {
            LlmError::Connection(error_chain(&e))
        } else if e.is_decode() {
            LlmError::MalformedResponse(error_chain(&e))
        } else {
            LlmError::Transport(error_chain(&e))
        }
    }
}

/// The error and its sources on one line.
#[cfg(feature = "openai")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
