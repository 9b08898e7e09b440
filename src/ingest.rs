//! `POST /webhooks/{source}`: read the body within its limits, verify the
//! signature, find the event id and type, and store the event (group
//! commit through [`Ingestor`]) before answering.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tracing::{Instrument, debug, info_span, warn};

use crate::clock::{unix_ms, unix_secs};
use crate::config::ServerConfig;
use crate::extract::{self, Body};
use crate::queue::{IngestOutcome, Ingestor, NewEvent, encode_headers_except};
use crate::response::{HttpResponse, error, json, method_not_allowed, unavailable};
use crate::source::{Source, Sources};
use crate::spool::{Appended, Divert, Spool, SpoolError};
use crate::status::Status;
use crate::telemetry::{self, IngestOutcome as Outcome, SourceMetrics, Throttle};
use crate::verify::SignedRequest;

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_REDIS: &str = "1";
const RETRY_AFTER_BACKLOG: &str = "30";
const RETRY_AFTER_DRAINING: &str = "5";

/// What a request may send.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    max_body_bytes: usize,
    request_timeout: Duration,
}

/// A source as ingest sees it: its verification and extraction rules, and
/// the writers that store its events.
struct IngestSource {
    source: Arc<Source>,
    ingestor: Ingestor,
    /// Refusals repeat with every request while their cause lasts.
    backlog_warning: Throttle,
    store_warning: Throttle,
}

/// How often a refusal that repeats per request is logged.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Everything the webhook endpoint uses.
pub struct IngestHandle {
    sources: HashMap<String, IngestSource>,
    status: Arc<Status>,
    limits: BodyLimits,
    /// Where events go while Redis cannot take them (`[spool]`).
    spool: Option<Spool>,
}

impl IngestHandle {
    /// `ingestors` holds one [`Ingestor`] per source, by name.
    pub fn new(
        sources: &Sources,
        mut ingestors: HashMap<String, Ingestor>,
        status: Arc<Status>,
        server: &ServerConfig,
        spool: Option<Spool>,
    ) -> Self {
        let sources = sources
            .iter()
            .filter_map(|source| {
                let ingestor = ingestors.remove(&source.name)?;
                Some((
                    source.name.clone(),
                    IngestSource {
                        source: source.clone(),
                        ingestor,
                        backlog_warning: Throttle::new(REFUSAL_LOG_EVERY),
                        store_warning: Throttle::new(REFUSAL_LOG_EVERY),
                    },
                ))
            })
            .collect();
        Self {
            sources,
            status,
            spool,
            limits: BodyLimits {
                max_body_bytes: server.max_body_bytes,
                request_timeout: server.request_timeout,
            },
        }
    }

    /// Answers a request for `/webhooks/{name}`.
    pub async fn handle(&self, name: &str, req: Request<Incoming>) -> HttpResponse {
        let Some(entry) = self.sources.get(name) else {
            telemetry::unknown_source_request();
            return error(StatusCode::NOT_FOUND, "unknown source");
        };
        let span = info_span!("ingest", source = %name, event_id = tracing::field::Empty);
        async {
            let started = Instant::now();
            let metrics = &entry.source.metrics;
            let unanswered = Unanswered { metrics };
            let (outcome, response) = store(self, entry, req).await;
            unanswered.answered(outcome);
            metrics
                .ingest_duration
                .record(started.elapsed().as_secs_f64());
            response
        }
        .instrument(span)
        .await
    }
}

/// Counts a request whose handler is dropped before it answers as
/// `abandoned`. hyper drops it when the client closes the connection (or
/// resets its HTTP/2 stream) mid-request, by which time the event may be
/// stored; without this the request would be in no outcome at all.
struct Unanswered<'a> {
    metrics: &'a SourceMetrics,
}

impl Unanswered<'_> {
    fn answered(self, outcome: Outcome) {
        self.metrics.ingest(outcome);
        // Counted once: the guard only borrows, so forgetting it frees
        // nothing.
        std::mem::forget(self);
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        self.metrics.ingest(Outcome::Abandoned);
    }
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

async fn store(
    handle: &IngestHandle,
    entry: &IngestSource,
    req: Request<Incoming>,
) -> (Outcome, HttpResponse) {
    let source = &entry.source;
    if req.method() != Method::POST {
        return (Outcome::MethodNotAllowed, method_not_allowed("POST"));
    }
    if handle.status.draining() {
        return (
            Outcome::Draining,
            unavailable("draining for shutdown", RETRY_AFTER_DRAINING),
        );
    }
    // Known down (refused, or hung past the health check's timeout) and
    // no spool: say so now rather than make every request wait for its
    // own timeout.
    if handle.status.redis_known_down() && handle.spool.is_none() {
        return (
            Outcome::Unavailable,
            unavailable("storage unavailable", RETRY_AFTER_REDIS),
        );
    }
    let limit = handle.limits.max_body_bytes;
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
        handle.limits.request_timeout,
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

    let scheme = &source.verify;
    let parsed = Body::new(&body);
    let event_id = match extract::event_id(&source.id_from, scheme, &parts.headers, &parsed) {
        Ok(id) => id,
        Err(e) => {
            return (
                Outcome::BadRequest,
                error(StatusCode::BAD_REQUEST, &e.to_string()),
            );
        }
    };
    let event_type = extract::event_type(&source.event_type_from, scheme, &parts.headers, &parsed);
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
    // While Redis is down, and while the spool still holds events (so a
    // source's events reach Redis in the order they came), new ones go
    // through the spool too.
    if let Some(spool) = &handle.spool {
        let why = if handle.status.redis_known_down() {
            Some(Divert::RedisAway)
        } else if spool.is_diverting() {
            Some(Divert::KeepOrder)
        } else {
            None
        };
        // No answer from the spool: it handed back to Redis meanwhile.
        if let Some(why) = why
            && let Some(answer) = spooled(spool, source, &event, why).await
        {
            return answer;
        }
    }
    let result = entry.ingestor.ingest(&event).await;
    match result {
        Ok(IngestOutcome::Queued { .. }) => (
            Outcome::Queued,
            json(
                StatusCode::ACCEPTED,
                &Queued {
                    id: &event_id,
                    source: &source.name,
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
            if let Some(held_back) = entry.backlog_warning.admit() {
                warn!(
                    backlog,
                    refused_since_last_line = held_back,
                    "backlog over ingest.max_backlog: refusing new events"
                );
            }
            (
                Outcome::BacklogFull,
                unavailable("backlog is full", RETRY_AFTER_BACKLOG),
            )
        }
        Err(e) => match &handle.spool {
            // The call may have run before its connection failed: then
            // the drain finds the duplicate and drops it.
            Some(spool) if e.is_connection() => {
                debug!(error = %e, "redis did not take the event: spooling it");
                // The spool writes every event Redis did not take; the
                // fallback only names what None would mean here.
                spooled(spool, source, &event, Divert::RedisAway)
                    .await
                    .unwrap_or_else(|| {
                        (
                            Outcome::Unavailable,
                            unavailable("storage unavailable", RETRY_AFTER_REDIS),
                        )
                    })
            }
            _ => {
                if let Some(held_back) = entry.store_warning.admit() {
                    warn!(error = %e, refused_since_last_line = held_back, "could not store the event");
                }
                (
                    Outcome::Unavailable,
                    unavailable("storage unavailable", RETRY_AFTER_REDIS),
                )
            }
        },
    }
}

/// Appends the event to the spool: 202 `spooled` once it is fsynced.
/// None when the event only kept order and the spool has handed back to
/// Redis: the caller stores it there.
async fn spooled(
    spool: &Spool,
    source: &Source,
    event: &NewEvent<'_>,
    why: Divert,
) -> Option<(Outcome, HttpResponse)> {
    Some(match spool.append(&source.name, event, why).await {
        Ok(Appended::ToRedis) => return None,
        Ok(Appended::Spooled) => (
            Outcome::Spooled,
            json(
                StatusCode::ACCEPTED,
                &Queued {
                    id: event.event_id,
                    source: &source.name,
                    status: "spooled",
                },
            ),
        ),
        // The spool logs each streak of refusals once.
        Err(SpoolError::Full) => (
            Outcome::Unavailable,
            unavailable("storage unavailable (spool full)", RETRY_AFTER_REDIS),
        ),
        Err(e) => {
            debug!(error = %e, "could not spool the event");
            (
                Outcome::Unavailable,
                unavailable("storage unavailable", RETRY_AFTER_REDIS),
            )
        }
    })
}

fn too_large(limit: usize) -> HttpResponse {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("body exceeds server.max_body_bytes ({limit} bytes)"),
    )
}
