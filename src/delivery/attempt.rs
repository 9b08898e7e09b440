//! One attempt: send the request, classify the answer, and record the
//! outcome (acknowledge, schedule a retry, or dead-letter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http::header::RETRY_AFTER;
use http_body_util::{BodyExt, Limited};
use tracing::{Instrument, debug, info, info_span, warn};

use super::backoff::{backoff_delay, parse_retry_after};
use super::route::Route;
use super::slots::Permits;
use super::{Shared, pool, request};
use crate::clock::unix_ms;
use crate::queue::{
    DeadLetter, DeadReason, Envelope, FailedAttempt, QueueError, RetryOutcome, history_line, id_ms,
};
use crate::source::Destination;
use crate::telemetry::DeliveryOutcome;

/// Bytes of a failed response kept as the error text.
const ERROR_SNIPPET: usize = 512;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Worth trying again: 408, 425, 429, 5xx, 1xx/3xx, timeouts, connection errors.
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// The destination refused the event itself (other 4xx).
    Rejected {
        status: u16,
        error: String,
    },
}

pub fn classify(status: StatusCode) -> AttemptClass {
    match status.as_u16() {
        200..=299 => AttemptClass::Delivered,
        408 | 425 | 429 => AttemptClass::Retry,
        400..=499 => AttemptClass::Reject,
        _ => AttemptClass::Retry,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    Delivered,
    Retry,
    Reject,
}

/// One delivery attempt of one entry, from request to recorded outcome.
pub struct Job {
    pub shared: Arc<Shared>,
    pub route: Arc<Route>,
    /// The breaker's probe: its outcome closes or reopens the breaker, and
    /// a failure is not counted against the event's attempts.
    pub probe: bool,
}

impl Job {
    pub async fn run(self, envelope: Envelope, permits: Permits) {
        let _busy = self.shared.workers.delivery_started();
        let attempt = envelope.attempts + 1;
        let span = info_span!(
            "delivery",
            source = %self.route.source.name,
            destination = %self.route.destination.name,
            event_id = %envelope.event_id,
            entry_id = %envelope.entry_id,
            attempt,
        );
        async {
            let destination = &self.route.destination;
            let started = Instant::now();
            let result = tokio::select! {
                result = self.attempt(&envelope, attempt) => Some(result),
                _ = self.shared.abandon.cancelled() => None,
            };
            let Some(result) = result else {
                info!("delivery abandoned at the shutdown deadline; the entry stays pending");
                return;
            };
            let took = started.elapsed();
            destination.metrics.delivery_duration.record(took.as_secs_f64());
            let settled = tokio::select! {
                settled = self.settle(&envelope, attempt, result, took) => settled,
                // Redis hung at the deadline: whether the script ran or
                // not, the entry is settled or still pending.
                _ = self.shared.abandon.cancelled() => Ok(()),
            };
            if let Err(e) = settled {
                // The entry stays pending and is claimed again after
                // claim_idle: at-least-once, never lost.
                warn!(error = %e, "could not record the delivery outcome; the entry will be retried");
            }
        }
        .instrument(span)
        .await;
        drop(permits);
    }

    async fn attempt(&self, envelope: &Envelope, attempt: u32) -> Attempt {
        let destination = &self.route.destination.config;
        let request = match request::build(&self.route, envelope, attempt) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed {
                    status: None,
                    error: format!("cannot build request: {e}"),
                    retry_after: None,
                };
            }
        };
        let connections = &self.route.connections;
        let exchange = async {
            let (response, lease) = connections.send(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            // Read (a bounded part of) the body so the connection can be
            // reused and a failure has its explanation; a longer or broken
            // body closes the connection.
            let body = match Limited::new(response.into_body(), ERROR_SNIPPET * 8)
                .collect()
                .await
            {
                Ok(body) => {
                    connections.release(lease);
                    body.to_bytes()
                }
                Err(_) => Bytes::new(),
            };
            Ok::<_, pool::SendError>((status, retry_after, body))
        };
        match tokio::time::timeout(destination.timeout, exchange).await {
            Err(_) => Attempt::Failed {
                status: None,
                error: format!("timed out after {:?}", destination.timeout),
                retry_after: None,
            },
            Ok(Err(e)) => Attempt::Failed {
                status: None,
                error: format!("request failed: {}", error_chain(&e)),
                retry_after: None,
            },
            Ok(Ok((status, retry_after, body))) => {
                let snippet = || {
                    let end = body.len().min(ERROR_SNIPPET);
                    String::from_utf8_lossy(&body[..end]).into_owned()
                };
                match classify(status) {
                    AttemptClass::Delivered => Attempt::Delivered {
                        status: status.as_u16(),
                    },
                    AttemptClass::Retry => Attempt::Failed {
                        status: Some(status.as_u16()),
                        error: snippet(),
                        retry_after,
                    },
                    AttemptClass::Reject => Attempt::Rejected {
                        status: status.as_u16(),
                        error: snippet(),
                    },
                }
            }
        }
    }

    /// Records the outcome in Redis with one atomic script (two when the
    /// last attempt failed: recorded, then dead-lettered).
    async fn settle(
        &self,
        envelope: &Envelope,
        attempt: u32,
        result: Attempt,
        took: std::time::Duration,
    ) -> Result<(), QueueError> {
        let queue = &self.shared.queue;
        let keys = &self.route.source.keys;
        let destination = &self.route.destination;
        let config = &destination.config;
        let now = unix_ms();
        // The attempt started `took` ago: that is when its history says.
        let at = now.saturating_sub(took.as_millis() as u64);
        let took_ms = Some(took.as_millis() as u64);
        match result {
            Attempt::Delivered { status } => {
                // A replayed copy counts from its replay.
                let since = match &envelope.of {
                    Some(_) => id_ms(&envelope.entry_id).unwrap_or(envelope.received_ms),
                    None => envelope.received_ms,
                };
                let latency_ms = now.saturating_sub(since);
                // Only the event log keeps a delivered entry's history.
                let line = if self.route.source.history.enabled() {
                    history_line(attempt, at, Some(status), "", took_ms)
                } else {
                    String::new()
                };
                self.route.delivered(&envelope.entry_id, line, latency_ms);
                destination.metrics.delivery(DeliveryOutcome::Success);
                destination
                    .metrics
                    .end_to_end
                    .record(latency_ms as f64 / 1000.0);
                debug!(status, "delivered");
            }
            Attempt::Failed {
                status,
                error,
                retry_after,
            } => {
                let history = history_line(attempt, at, status, &error, took_ms);
                let delay =
                    backoff_delay(&config.retry, attempt, retry_after, rand::random::<f64>());
                let failed = FailedAttempt {
                    entry_id: &envelope.entry_id,
                    delay,
                    history: &history,
                    status,
                    max_attempts: config.retry.max_attempts,
                    breaker_failures: config.breaker.failures,
                    cooldown: config.breaker.cooldown,
                    max_cooldown: config.breaker.max_cooldown,
                    probe: self.probe,
                };
                let recording = self.route.recording();
                let scheduled = queue.schedule_retry(keys, &destination.keys, &failed, &recording);
                match Box::pin(scheduled).await? {
                    RetryOutcome::Scheduled {
                        due_ms,
                        breaker_open_until_ms,
                    } => {
                        debug!(?status, error = %error, ?delay, probe = self.probe, "will retry");
                        destination.metrics.delivery(DeliveryOutcome::Retry);
                        self.route.retry_scheduled(due_ms);
                        if let Some(until_ms) = breaker_open_until_ms {
                            self.route.breaker_opened(until_ms);
                        }
                    }
                    RetryOutcome::Exhausted { .. } => {
                        note_dead_letter(destination, DeadReason::MaxAttempts, status, &error);
                        let dead = DeadLetter {
                            entry_id: &envelope.entry_id,
                            reason: DeadReason::MaxAttempts,
                            status,
                            error: &error,
                            history: "",
                            counted: false,
                        };
                        let dead = queue.dead_letter(keys, &destination.keys, &dead, &recording);
                        Box::pin(dead).await?;
                        destination.metrics.delivery(DeliveryOutcome::Dead);
                    }
                    RetryOutcome::Gone => debug!("settled by another consumer meanwhile"),
                }
            }
            Attempt::Rejected { status, error } => {
                note_dead_letter(destination, DeadReason::Rejected, Some(status), &error);
                let history = history_line(attempt, at, Some(status), &error, took_ms);
                let dead = DeadLetter {
                    entry_id: &envelope.entry_id,
                    reason: DeadReason::Rejected,
                    status: Some(status),
                    error: &error,
                    history: &history,
                    counted: true,
                };
                let recording = self.route.recording();
                let dead = queue.dead_letter(keys, &destination.keys, &dead, &recording);
                Box::pin(dead).await?;
                destination.metrics.delivery(DeliveryOutcome::Dead);
            }
        }
        Ok(())
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Each dead letter is in the DLQ and the metrics; the log says it at warn
/// level at most every few seconds per destination (with how many went
/// since), the rest at debug.
fn note_dead_letter(
    destination: &Destination,
    reason: DeadReason,
    status: Option<u16>,
    error: &str,
) {
    match destination.dead_letter_warning.admit() {
        Some(held_back) => warn!(
            %reason,
            ?status,
            error,
            dead_lettered_since_last_line = held_back,
            "dead-lettering the event"
        ),
        None => debug!(%reason, ?status, error, "dead-lettering the event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_classes_follow_the_design() {
        for code in [200, 201, 204, 299] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                AttemptClass::Delivered
            );
        }
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                AttemptClass::Retry
            );
        }
        for code in [400, 401, 403, 404, 409, 410, 413, 422] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                AttemptClass::Reject
            );
        }
    }
}
