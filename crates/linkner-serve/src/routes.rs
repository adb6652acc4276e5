//! The routes, their layers and the handlers of the JSON endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State as Extract};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use linkner::{Annotation, Pipeline, Provenance};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::api::{AnnotateRequest, ApiError, ErrorCode};
use crate::hub::Hub;
use crate::{ServeConfig, metrics};

/// Every route: (method, path). The OpenAPI document is checked against this list.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/annotate"),
    ("post", "/v1/annotate/stream"),
];

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub pipeline: Pipeline,
    pub hub: Hub,
    pub config: ServeConfig,
    pub llm_url: Option<String>,
    pub requests: Arc<Semaphore>,
    pub draining: AtomicBool,
    pub http: reqwest::Client,
}

type Shared = Arc<State>;

/// The app: routes, then (inside out) the concurrency limit on `/v1`, the metrics, panics
/// as JSON 500, gzip, tracing.
pub(crate) fn router(state: Shared) -> Router {
    let v1 = Router::new()
        .route("/v1/annotate", post(annotate))
        .route(
            "/v1/annotate/stream",
            post(crate::ndjson::annotate_stream).layer(DefaultBodyLimit::disable()),
        )
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit));
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .merge(v1)
        .fallback(not_found)
        .route_layer(middleware::from_fn(measure))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts and times every request by route and status; the in-flight gauge.
async fn measure(path: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = path.map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let t0 = Instant::now();
    metrics::in_flight(1.0);
    let response = next.run(request).await;
    metrics::in_flight(-1.0);
    metrics::request(
        &route,
        response.status().as_u16(),
        t0.elapsed().as_secs_f64(),
    );
    response
}

/// `max_concurrent_requests` on `/v1`: one more is refused at once (503 + Retry-After),
/// as is every request once shutdown began.
async fn limit(Extract(state): Extract<Shared>, request: Request, next: Next) -> Response {
    let overloaded = |message: String| {
        metrics::rejected("overloaded");
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            message,
        );
        e.retry_after = Some(state.config.retry_after_s);
        e.into_response()
    };
    if state.draining.load(Ordering::SeqCst) {
        return overloaded("the service is shutting down".into());
    }
    let Ok(_permit) = state.requests.clone().try_acquire_owned() else {
        return overloaded(format!(
            "{} requests are being served (max_concurrent_requests); retry after {} s",
            state.config.max_concurrent_requests, state.config.retry_after_s
        ));
    };
    next.run(request).await
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "internal error (a handler panicked; see the server log)",
    )
    .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!(
            "no route {} {}; see GET /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn page() -> Html<&'static str> {
    Html(crate::PAGE)
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        crate::OPENAPI,
    )
        .into_response()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the tagger is loaded (it is, once serving) and not shutting down; the LLM is
/// probed (`GET {url}/models`): unreachable makes the service `degraded` (still 200: local
/// labels are served, routed entities keep theirs), not unready.
async fn readyz(Extract(state): Extract<Shared>) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        let body = json!({"status": "shutting_down", "tagger": "loaded"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let llm = match (&state.llm_url, state.pipeline.llm_name()) {
        (_, None) => json!({"status": "none"}),
        (None, Some(name)) => json!({"status": "not_probed", "backend": name}),
        (Some(url), Some(name)) => {
            let models = format!("{}/models", url.trim_end_matches('/'));
            let timeout = Duration::from_secs_f64(state.config.llm_probe_timeout_s);
            let probe = state.http.get(&models).timeout(timeout).send().await;
            match probe {
                Ok(r) if r.status().is_success() => {
                    json!({"status": "reachable", "backend": name, "url": url})
                }
                Ok(r) => json!({"status": "unreachable", "backend": name, "url": url,
                                "error": format!("GET {models}: HTTP {}", r.status())}),
                Err(e) => json!({"status": "unreachable", "backend": name, "url": url,
                                 "error": format!("GET {models}: {e}")}),
            }
        }
    };
    let degraded = llm["status"] == "unreachable";
    let body = json!({
        "status": if degraded { "degraded" } else { "ready" },
        "tagger": "loaded",
        "llm": llm,
    });
    Json(body).into_response()
}

async fn metrics_text(Extract(state): Extract<Shared>) -> Response {
    match metrics::render(&state.pipeline) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            text,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "another metrics recorder was installed in this process; /metrics is not available",
        )
        .into_response(),
    }
}

/// The JSON of one annotation as `linkner annotate --format jsonl` writes it, with `id`.
pub(crate) fn annotation_json(a: &Annotation, id: Option<&Value>) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let (Value::Object(map), Some(id)) = (&mut v, id) {
        map.insert("id".into(), id.clone());
    }
    v
}

/// True when an entity of `a` kept its local label because of the deadline.
fn cut_by_deadline(a: &Annotation) -> bool {
    a.entities
        .iter()
        .chain(&a.rejected)
        .any(|e| matches!(e.provenance, Provenance::Budget { .. }))
}

/// `POST /v1/annotate`.
async fn annotate(
    Extract(state): Extract<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let body = body.map_err(|e| body_error(e, state.config.max_body_bytes))?;
    let (docs, options) = AnnotateRequest::parse(&body, &state.config).inspect_err(|e| {
        metrics::rejected(match e.code {
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::BatchTooLarge => "batch_too_large",
            _ => "invalid_request",
        })
    })?;
    let (doc_options, capped) = options.document_options(&state.config);
    let mut waiting = Vec::with_capacity(docs.len());
    let mut ids = Vec::with_capacity(docs.len());
    for d in docs {
        let rx = state.hub.submit(d.text, doc_options).await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Overloaded,
                "the annotation stream has stopped; restart the service",
            )
        })?;
        waiting.push(rx);
        ids.push(d.id);
    }
    // The LLM side stops at the deadline; a little slack for merging and sending.
    let hard = state.config.request_timeout() + Duration::from_millis(500);
    let results = tokio::time::timeout(hard, futures_util::future::join_all(waiting))
        .await
        .map_err(|_| {
            metrics::rejected("timeout");
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                format!(
                    "the local tagger did not finish within the request timeout ({} ms)",
                    state.config.request_timeout_ms
                ),
            )
        })?;
    let mut out = Vec::with_capacity(results.len());
    let mut failed = None;
    let mut partial = false;
    for (i, (r, id)) in results.into_iter().zip(&ids).enumerate() {
        match r {
            Ok(Ok(a)) => {
                partial |= capped && cut_by_deadline(&a);
                out.push(annotation_json(&a, id.as_ref()));
            }
            Ok(Err(e)) => {
                failed.get_or_insert((i, e.to_string()));
                out.push(json!({"id": id, "error": {"message": e.to_string()}}));
            }
            Err(_) => {
                failed.get_or_insert((i, "the document was dropped".into()));
                out.push(json!({"id": id, "error": {"message": "dropped"}}));
            }
        }
    }
    let timings = json!({"total_ms": t0.elapsed().as_secs_f64() * 1000.0});
    if let Some((i, message)) = failed {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::AnnotationFailed,
            format!("document {i} could not be annotated: {message}"),
        );
        e.extra.insert("annotations".into(), Value::Array(out));
        return Err(e);
    }
    if partial {
        metrics::rejected("timeout");
        let mut e = ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Timeout,
            format!(
                "the LLM did not answer within the request timeout ({} ms): the entities \
                 with provenance `budget` keep their local labels",
                state.config.request_timeout_ms
            ),
        );
        e.extra.insert("annotations".into(), Value::Array(out));
        e.extra.insert("partial".into(), Value::Bool(true));
        e.extra.insert("timings".into(), timings);
        return Err(e);
    }
    Ok(Json(json!({"annotations": out, "timings": timings})).into_response())
}

/// A body that could not be read: too large (413) or broken.
pub(crate) fn body_error(e: BytesRejection, max: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        metrics::rejected("payload_too_large");
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the body is larger than {max} bytes (max_body_bytes); split it or use \
                 /v1/annotate/stream"
            ),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
        format!("the body could not be read: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// The hand-kept OpenAPI document lists exactly the routes (the integration tests call
    /// each documented route on the real router).
    #[test]
    fn openapi_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.push((method.clone(), path.clone()));
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
