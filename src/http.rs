//! The HTTP surface: webhook ingest, health probes and metrics.

mod connection;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::extract::{self, Body};
use crate::queue::{IngestOutcome, NewEvent, encode_headers_except};
use crate::telemetry::IngestOutcome as Outcome;
use crate::verify::SignedRequest;
use crate::{App, Source, unix_ms, unix_secs};

pub type HttpResponse = Response<Full<Bytes>>;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Providers: `/webhooks/*`, health, metrics.
    Public,
    /// Operators: health, metrics, the demo sink.
    Admin,
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_REDIS: &str = "1";
const RETRY_AFTER_BACKLOG: &str = "30";
const RETRY_AFTER_DRAINING: &str = "5";

/// Accepts connections until `token` is cancelled, then lets the open
/// connections finish their current request and closes them. At most
/// `server.max_connections` are served at once: beyond that the listener
/// stops accepting and the kernel's backlog holds the rest.
pub async fn serve(listener: TcpListener, app: Arc<App>, kind: Listener, token: CancellationToken) {
    let server = &app.config.server;
    let (first_request, idle) = (server.header_read_timeout, server.idle_timeout);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout);
    let slots = Arc::new(Semaphore::new(server.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            _ = token.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly
                    // rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = connection::Activity::new();
        let service = {
            let (app, activity) = (app.clone(), activity.clone());
            service_fn(move |req| {
                let app = app.clone();
                let request = activity.request_started();
                async move {
                    let response = route(&app, kind, req).await;
                    drop(request);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                result = conn => if let Err(e) = result {
                    debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = connection::expired(&activity, first_request, idle) => {
                    debug!(%peer, "closing a connection with no request in progress");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn route(app: &Arc<App>, kind: Listener, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path();
    if kind == Listener::Public
        && let Some(name) = path.strip_prefix("/webhooks/")
    {
        return match app.sources.get(name) {
            Some(source) => {
                let source = source.clone();
                let span = info_span!("ingest", source = %source.config.name, event_id = tracing::field::Empty);
                ingest(app, &source, req).instrument(span).await
            }
            None => {
                crate::telemetry::unknown_source_request();
                error(StatusCode::NOT_FOUND, "unknown source")
            }
        };
    }
    if kind == Listener::Admin && crate::admin::handles(path) {
        return crate::admin::route(app, req).await;
    }
    match path {
        "/health/live" => json(StatusCode::OK, &serde_json::json!({"status": "live"})),
        "/health/ready" => {
            if app.status.ready() {
                json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
            } else {
                let reason = if app.status.draining() {
                    "draining"
                } else {
                    "redis unreachable"
                };
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "not ready", "reason": reason}),
                )
            }
        }
        "/health" => health(app).await,
        DEMO_SINK_PATH if kind == Listener::Admin => demo_sink(req).await,
        "/metrics" => Response::builder()
            .header(CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(Full::new(Bytes::from(app.metrics.render())))
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "render failed")),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A destination built into the admin listener so the shipped config works
/// without a service of your own: it logs each delivery and answers 204.
pub const DEMO_SINK_PATH: &str = "/demo/sink";

async fn demo_sink(req: Request<Incoming>) -> HttpResponse {
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed");
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, source, event_type, attempt) = (
        header("webhook-id"),
        header("x-hookd-source"),
        header("x-hookd-event-type"),
        header("x-hookd-attempt"),
    );
    let body = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    tracing::info!(
        webhook_id = %id,
        source = %source,
        event_type = %event_type,
        attempt = %attempt,
        body = %String::from_utf8_lossy(&body[..body.len().min(200)]),
        "demo sink received a delivery"
    );
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

#[derive(Serialize)]
struct Queued<'a> {
    id: &'a str,
    source: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct Duplicate<'a> {
    id: &'a str,
    status: &'static str,
}

async fn ingest(app: &App, source: &Source, req: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let (outcome, response) = ingest_inner(app, source, req).await;
    source.metrics.ingest(outcome);
    source
        .metrics
        .ingest_duration
        .record(started.elapsed().as_secs_f64());
    response
}

async fn ingest_inner(
    app: &App,
    source: &Source,
    req: Request<Incoming>,
) -> (Outcome, HttpResponse) {
    if req.method() != Method::POST {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return (Outcome::MethodNotAllowed, response);
    }
    if app.status.draining() {
        return (
            Outcome::Draining,
            unavailable("draining for shutdown", RETRY_AFTER_DRAINING),
        );
    }
    // Known down (refused, or hung past the health check's timeout): say so
    // now rather than make every request wait for its own timeout.
    if !app.status.redis_up() {
        return (
            Outcome::Unavailable,
            unavailable("storage unavailable", RETRY_AFTER_REDIS),
        );
    }
    let limit = app.config.server.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return (Outcome::TooLarge, too_large(limit));
    }

    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        app.config.server.request_timeout,
        Limited::new(body, limit).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            return (
                Outcome::Timeout,
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                ),
            );
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return (Outcome::TooLarge, too_large(limit));
        }
        Ok(Err(_)) => {
            return (
                Outcome::BadRequest,
                error(StatusCode::BAD_REQUEST, "unreadable request body"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };

    let signed = SignedRequest {
        headers: &parts.headers,
        query: parts.uri.query(),
        body: &body,
    };
    if let Err(e) = source.verifier.verify(&signed, unix_secs()) {
        debug!(error = %e, "signature check failed");
        return (
            Outcome::Unauthorized,
            error(
                StatusCode::UNAUTHORIZED,
                &format!("signature verification failed: {e}"),
            ),
        );
    }

    let scheme = &source.config.verify;
    let mut parsed = Body::new(&body);
    let event_id =
        match extract::event_id(&source.config.id_from, scheme, &parts.headers, &mut parsed) {
            Ok(id) => id,
            Err(e) => {
                return (
                    Outcome::BadRequest,
                    error(StatusCode::BAD_REQUEST, &e.to_string()),
                );
            }
        };
    let event_type = extract::event_type(
        &source.config.event_type_from,
        scheme,
        &parts.headers,
        &mut parsed,
    );
    tracing::Span::current().record("event_id", event_id.as_str());

    let event = NewEvent {
        event_id: &event_id,
        event_type: &event_type,
        content_type: parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        // A header that is the secret itself (X-Gitlab-Token) is not kept.
        headers: encode_headers_except(&parts.headers, source.verifier.secret_headers()),
        body,
        received_ms: unix_ms(),
    };
    let result = source.ingestor.ingest(&event).await;
    match result {
        Ok(IngestOutcome::Queued { .. }) => (
            Outcome::Queued,
            json(
                StatusCode::ACCEPTED,
                &Queued {
                    id: &event_id,
                    source: &source.config.name,
                    status: "queued",
                },
            ),
        ),
        Ok(IngestOutcome::Duplicate { .. }) => (
            Outcome::Duplicate,
            json(
                StatusCode::OK,
                &Duplicate {
                    id: &event_id,
                    status: "duplicate",
                },
            ),
        ),
        Ok(IngestOutcome::BacklogFull { backlog }) => {
            warn!(
                backlog,
                "backlog over ingest.max_backlog: refusing new events"
            );
            (
                Outcome::BacklogFull,
                unavailable("backlog is full", RETRY_AFTER_BACKLOG),
            )
        }
        Err(e) => {
            warn!(error = %e, "could not store the event");
            (
                Outcome::Unavailable,
                unavailable("storage unavailable", RETRY_AFTER_REDIS),
            )
        }
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    redis: &'static str,
    draining: bool,
    workers: Workers,
    sources: std::collections::BTreeMap<String, Option<crate::queue::SourceStats>>,
}

#[derive(Serialize)]
struct Workers {
    busy: usize,
    max: usize,
}

async fn health(app: &App) -> HttpResponse {
    let redis_up = app.status.redis_up();
    let mut sources = std::collections::BTreeMap::new();
    for (name, source) in &app.sources {
        let stats = if redis_up {
            app.queue.stats(&source.keys).await.ok()
        } else {
            None
        };
        sources.insert(name.clone(), stats);
    }
    let ready = app.status.ready();
    let body = Health {
        status: if app.status.draining() {
            "draining"
        } else if ready {
            "ok"
        } else {
            "degraded"
        },
        redis: if redis_up { "up" } else { "down" },
        draining: app.status.draining(),
        workers: Workers {
            busy: app.workers_busy(),
            max: app.config.worker.concurrency,
        },
        sources,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &body)
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }))
}

fn unavailable(message: &str, retry_after: &'static str) -> HttpResponse {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
    response
}

fn too_large(limit: usize) -> HttpResponse {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("body exceeds server.max_body_bytes ({limit} bytes)"),
    )
}
