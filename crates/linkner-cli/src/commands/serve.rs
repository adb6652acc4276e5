//! `linkner serve`: the pipeline as an HTTP service (crate `linkner-serve`, docs/serving.md).
//!
//! ```text
//! linkner serve --config configs/twitterner.json --port 8000
//! curl -s localhost:8000/v1/annotate -H 'content-type: application/json' \
//!      -d '{"text": "Klopp joins Liverpool"}'
//! ```
//!
//! Requests of all clients share the tagger's micro-batches (the library's stream path); the
//! LLM always runs under a routing budget (the config's, or 4 calls in flight) so that each
//! request's latency budget and the request timeout hold. SIGINT/SIGTERM: stop accepting,
//! finish the requests in flight, exit 0.

use clap::Args;
use linkner::RoutingBudget;
use linkner_serve::{ServeConfig, Server};

use super::CliError;
use super::pipeline_args::PipelineArgs;

/// Arguments of `linkner serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The pipeline (tagger, estimator, policy, LLM).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Largest body of POST /v1/annotate, bytes (413 above).
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest text of one document, chars (422 above).
    #[arg(long, value_name = "CHARS")]
    pub max_text_chars: Option<usize>,
    /// Most documents per POST /v1/annotate (422 above).
    #[arg(long, value_name = "N")]
    pub max_batch: Option<usize>,
    /// Most requests on /v1 at once (503 with Retry-After above).
    #[arg(long, value_name = "N")]
    pub max_concurrent_requests: Option<usize>,
    /// Per-request timeout, milliseconds (504; the local labels are returned when the LLM is
    /// the slow part).
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// How long a tagger batch waits for more documents after its first one while a tagger
    /// slot is free, milliseconds (default: the config's `pipeline.stream_max_wait_ms`, 10;
    /// while the tagger is busy a batch keeps filling whatever this is).
    #[arg(long, value_name = "MS")]
    pub max_wait_ms: Option<u64>,
    /// Tokio worker threads of the HTTP side (default 2).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub http_threads: usize,
}

impl ServeArgs {
    fn serve_config(&self) -> ServeConfig {
        let mut c = ServeConfig::default();
        if let Some(n) = self.max_body_bytes {
            c.max_body_bytes = n;
        }
        if let Some(n) = self.max_text_chars {
            c.max_text_chars = n;
        }
        if let Some(n) = self.max_batch {
            c.max_batch = n;
        }
        if let Some(n) = self.max_concurrent_requests {
            c.max_concurrent_requests = n;
        }
        if let Some(n) = self.request_timeout_ms {
            c.request_timeout_ms = n;
        }
        c
    }
}

/// Runs `linkner serve`.
pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let serve_config = args.serve_config();
    serve_config.validate()?;
    let mut config = args.pipeline.link_config()?;
    if let Some(ms) = args.max_wait_ms {
        config.pipeline.stream_max_wait_ms = ms;
    }
    // Deadlines (per-request budgets, the request timeout) are enforced by the budget.
    if config.llm.is_some() && config.budget.is_none() {
        config.budget = Some(RoutingBudget::new());
    }
    let llm_url = config.llm.as_ref().map(|l| l.backend.base_url.clone());
    let pipeline = args.pipeline.build(&config, None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.http_threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut builder = Server::builder(pipeline).config(serve_config);
        if let Some(url) = llm_url {
            builder = builder.llm_url(url);
        }
        let server = builder.build()?;
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        eprintln!("linkner serve: listening on http://{addr}");
        server
            .serve(listener, linkner_serve::shutdown_signal())
            .await?;
        eprintln!("linkner serve: stopped (requests in flight finished)");
        Ok::<_, CliError>(())
    })
}
