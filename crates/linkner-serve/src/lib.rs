//! linkner as an HTTP service (`linkner serve`).
//!
//! ```text
//! clients ──► axum (limits, metrics, compression) ──► Hub ──► Pipeline::stream_with_options
//!             POST /v1/annotate          JSON         one shared stream: requests of every
//!             POST /v1/annotate/stream   NDJSON       client share tagger micro-batches, the
//!             GET  /healthz /readyz /metrics          LLM under the routing budget
//!             GET  /openapi.json /
//! ```
//!
//! Every request's documents go into **one** long-lived stream of the pipeline
//! ([`linkner::Pipeline::stream_with_options`], completed order), so that concurrent callers
//! share tagger batches; each document keeps its own options (LLM on or off, latency budget).
//! Build a [`Server`] from a [`Pipeline`](linkner::Pipeline) and a [`ServeConfig`] inside a
//! tokio runtime, then [`Server::serve`] it on a listener (or take its [`Server::router`] for
//! in-process use).
//!
//! ```no_run
//! # async fn demo(pipeline: linkner::Pipeline) -> Result<(), Box<dyn std::error::Error>> {
//! let server = linkner_serve::Server::builder(pipeline)
//!     .config(linkner_serve::ServeConfig::default())
//!     .build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! server.serve(listener, linkner_serve::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! The HTTP contract (routes, bodies, errors, limits) is `docs/serving.md` and
//! [`OPENAPI`]; the metrics are listed in [`metrics`].

mod api;
mod hub;
pub mod metrics;
mod ndjson;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use api::{ApiError, ErrorCode};

/// The OpenAPI 3 description of the routes (hand-kept; a test checks it against the router).
pub const OPENAPI: &str = include_str!("../assets/openapi.json");

/// The page served at `/`.
pub const PAGE: &str = include_str!("../assets/index.html");

/// Limits and timeouts of the service. Every limit gives a JSON error naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Largest request body of `POST /v1/annotate`, in bytes (413 above; default 1 MiB).
    pub max_body_bytes: usize,
    /// Longest text of one document, in chars (422 above; default 100,000). Longer texts
    /// than the encoder's window are windowed, not truncated: this limit only bounds memory.
    pub max_text_chars: usize,
    /// Most documents in one `POST /v1/annotate` (422 above; default 256).
    pub max_batch: usize,
    /// Longest line of `POST /v1/annotate/stream`, in bytes (that line gets an error record;
    /// default 256 KiB).
    pub max_line_bytes: usize,
    /// Most requests on `/v1/…` at once; one more gets 503 with `Retry-After` (default 256).
    pub max_concurrent_requests: usize,
    /// Seconds a refused client is told to wait (`Retry-After`; default 1).
    pub retry_after_s: u64,
    /// Per-request timeout of `POST /v1/annotate`, in milliseconds (default 30,000). Routed
    /// entities still waiting for the LLM at the timeout keep their local labels (provenance
    /// `budget`) and the response is a 504 that carries them (`"partial": true`); a request
    /// whose tagging itself is not done by then gets a 504 without annotations.
    pub request_timeout_ms: u64,
    /// Seconds `/readyz` waits for the LLM server's `GET /models` (default 2).
    pub llm_probe_timeout_s: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_body_bytes: 1 << 20,
            max_text_chars: 100_000,
            max_batch: 256,
            max_line_bytes: 256 * 1024,
            max_concurrent_requests: 256,
            retry_after_s: 1,
            request_timeout_ms: 30_000,
            llm_probe_timeout_s: 2.0,
        }
    }
}

impl ServeConfig {
    /// Checks that every limit is at least 1.
    pub fn validate(&self) -> Result<(), ServeError> {
        let zero = [
            ("max_body_bytes", self.max_body_bytes == 0),
            ("max_text_chars", self.max_text_chars == 0),
            ("max_batch", self.max_batch == 0),
            ("max_line_bytes", self.max_line_bytes == 0),
            ("max_concurrent_requests", self.max_concurrent_requests == 0),
            ("request_timeout_ms", self.request_timeout_ms == 0),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(ServeError::Config(format!("{name} must be at least 1")));
        }
        if !(self.llm_probe_timeout_s.is_finite() && self.llm_probe_timeout_s > 0.0) {
            return Err(ServeError::Config(
                "llm_probe_timeout_s must be a positive number".into(),
            ));
        }
        Ok(())
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A [`ServeConfig`] value is out of range.
    #[error("serve config: {0}")]
    Config(String),
    /// The pipeline's stream could not start.
    #[error("pipeline: {0}")]
    Pipeline(#[from] linkner::LinkError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds a [`Server`].
#[derive(Debug)]
pub struct ServerBuilder {
    pipeline: linkner::Pipeline,
    config: ServeConfig,
    llm_url: Option<String>,
}

impl ServerBuilder {
    /// The limits (default: [`ServeConfig::default`]).
    pub fn config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// The OpenAI-compatible base URL of the pipeline's LLM (`…/v1`), probed by `/readyz`
    /// (`GET {url}/models`). Without it, `/readyz` reports the LLM as not probed.
    pub fn llm_url(mut self, url: impl Into<String>) -> Self {
        self.llm_url = Some(url.into());
        self
    }

    /// Starts the shared stream and builds the routes. Must run inside a tokio runtime.
    pub fn build(self) -> Result<Server, ServeError> {
        self.config.validate()?;
        metrics::install();
        let hub = hub::Hub::start(&self.pipeline)?;
        let state = Arc::new(routes::State {
            requests: Arc::new(tokio::sync::Semaphore::new(
                self.config.max_concurrent_requests,
            )),
            pipeline: self.pipeline,
            hub,
            config: self.config,
            llm_url: self.llm_url,
            draining: AtomicBool::new(false),
            http: reqwest::Client::new(),
        });
        Ok(Server { state })
    }
}

/// The service: a [`Pipeline`](linkner::Pipeline) behind the routes of `docs/serving.md`.
#[derive(Debug, Clone)]
pub struct Server {
    state: Arc<routes::State>,
}

impl Server {
    /// A builder around the pipeline (its tagger already loaded).
    pub fn builder(pipeline: linkner::Pipeline) -> ServerBuilder {
        ServerBuilder {
            pipeline,
            config: ServeConfig::default(),
            llm_url: None,
        }
    }

    /// The routes with their layers, for in-process use (`tower::ServiceExt::oneshot`) or
    /// to nest in a larger axum app.
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// The limits in force.
    pub fn config(&self) -> &ServeConfig {
        &self.state.config
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting, finishes the
    /// requests in flight (`/readyz` says 503 meanwhile) and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state.clone();
        let app = self.router();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                state.draining.store(true, Ordering::SeqCst);
                tracing::info!("shutting down: finishing the requests in flight");
            })
            .await?;
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM (for [`Server::serve`]); never when they cannot be watched.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot watch SIGINT/SIGTERM: stop the service another way");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}
