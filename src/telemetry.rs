//! Metric names (part of the contract), their descriptions, the Prometheus
//! recorder, and log setup.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const INGEST_REQUESTS: &str = "hookd_ingest_requests_total";
pub const INGEST_DURATION: &str = "hookd_ingest_duration_seconds";
pub const DELIVERIES: &str = "hookd_deliveries_total";
pub const DELIVERY_DURATION: &str = "hookd_delivery_duration_seconds";
pub const END_TO_END: &str = "hookd_end_to_end_seconds";
pub const QUEUE_BACKLOG: &str = "hookd_queue_backlog";
pub const QUEUE_PENDING: &str = "hookd_queue_pending";
pub const RETRY_SCHEDULED: &str = "hookd_retry_scheduled";
pub const DLQ_SIZE: &str = "hookd_dlq_size";
pub const CLAIMED: &str = "hookd_claimed_total";
pub const WORKERS_BUSY: &str = "hookd_workers_busy";
pub const WORKERS_MAX: &str = "hookd_workers_max";
pub const REDIS_UP: &str = "hookd_redis_up";
pub const DESTINATION_STATE: &str = "hookd_destination_state";
pub const BUILD_INFO: &str = "hookd_build_info";
pub const SPOOL_EVENTS: &str = "hookd_spool_events";
pub const SPOOL_BYTES: &str = "hookd_spool_bytes";

fn describe() {
    describe_counter!(
        INGEST_REQUESTS,
        "Webhook requests by source and outcome (queued, duplicate, unauthorized, ...)."
    );
    describe_histogram!(
        INGEST_DURATION,
        metrics::Unit::Seconds,
        "Time from request head to answer for webhook requests."
    );
    describe_counter!(
        DELIVERIES,
        "Deliveries by source, destination and outcome (success, retry, dead, filtered)."
    );
    describe_histogram!(
        DELIVERY_DURATION,
        metrics::Unit::Seconds,
        "Duration of one delivery attempt."
    );
    describe_histogram!(
        END_TO_END,
        metrics::Unit::Seconds,
        "Time from acceptance to successful delivery."
    );
    describe_gauge!(
        QUEUE_BACKLOG,
        "Events accepted but not yet read for a destination."
    );
    describe_gauge!(
        QUEUE_PENDING,
        "Events read for a destination and not yet finished (in flight or waiting for a retry)."
    );
    describe_gauge!(
        RETRY_SCHEDULED,
        "Events waiting for a retry, per destination."
    );
    describe_gauge!(
        DESTINATION_STATE,
        "1 for a destination's current state (healthy, failing, open, half_open, paused, unknown), else 0."
    );
    describe_gauge!(DLQ_SIZE, "Events in the dead-letter queue.");
    describe_counter!(
        CLAIMED,
        "Entries taken over from another consumer after claim_idle."
    );
    describe_gauge!(WORKERS_BUSY, "Deliveries in flight.");
    describe_gauge!(WORKERS_MAX, "worker.concurrency.");
    describe_gauge!(REDIS_UP, "1 while Redis answers PING, else 0.");
    describe_gauge!(
        SPOOL_EVENTS,
        "Accepted events waiting in the local spool for Redis."
    );
    describe_gauge!(SPOOL_BYTES, "Bytes the spool's segments take on disk.");
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label says which build runs."
    );
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process (tests may start several
/// daemons in one process) and returns the handle that renders /metrics.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0, 3600.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Ingest outcomes, the `outcome` label of [`INGEST_REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Queued,
    Duplicate,
    Unauthorized,
    TooLarge,
    BadRequest,
    MethodNotAllowed,
    Unavailable,
    BacklogFull,
    Draining,
    Timeout,
    /// Accepted into the local spool (Redis unreachable).
    Spooled,
    /// The client went away mid-request (closed the connection or reset
    /// its HTTP/2 stream before the answer): the event may be stored, and
    /// the provider's retry is then answered as a duplicate.
    Abandoned,
}

impl IngestOutcome {
    const ALL: [IngestOutcome; 12] = [
        Self::Queued,
        Self::Spooled,
        Self::Duplicate,
        Self::Unauthorized,
        Self::TooLarge,
        Self::BadRequest,
        Self::MethodNotAllowed,
        Self::Unavailable,
        Self::BacklogFull,
        Self::Draining,
        Self::Timeout,
        Self::Abandoned,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Duplicate => "duplicate",
            Self::Unauthorized => "unauthorized",
            Self::TooLarge => "too_large",
            Self::BadRequest => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable => "unavailable",
            Self::BacklogFull => "backlog_full",
            Self::Draining => "draining",
            Self::Timeout => "timeout",
            Self::Spooled => "spooled",
            Self::Abandoned => "abandoned",
        }
    }
}

/// Delivery outcomes, the `outcome` label of [`DELIVERIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Success,
    Retry,
    Dead,
    /// The destination's filter did not match the event.
    Filtered,
}

impl DeliveryOutcome {
    const ALL: [DeliveryOutcome; 4] = [Self::Success, Self::Retry, Self::Dead, Self::Filtered];

    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Filtered => "filtered",
        }
    }
}

/// Per-source metric handles, registered once so the hot paths do not
/// build label sets per event.
pub struct SourceMetrics {
    ingest: [Counter; IngestOutcome::ALL.len()],
    pub ingest_duration: Histogram,
    pub dlq_size: Gauge,
    pub claimed: Counter,
}

impl SourceMetrics {
    pub fn new(source: &str) -> Self {
        let s = source.to_owned();
        let ingest = IngestOutcome::ALL.map(
            |o| metrics::counter!(INGEST_REQUESTS, "source" => s.clone(), "outcome" => o.label()),
        );
        Self {
            ingest,
            ingest_duration: metrics::histogram!(INGEST_DURATION, "source" => s.clone()),
            dlq_size: metrics::gauge!(DLQ_SIZE, "source" => s.clone()),
            claimed: metrics::counter!(CLAIMED, "source" => s),
        }
    }

    pub fn ingest(&self, outcome: IngestOutcome) {
        let index = IngestOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.ingest[index].increment(1);
    }
}

/// Per-destination metric handles.
pub struct DestinationMetrics {
    deliveries: [Counter; DeliveryOutcome::ALL.len()],
    pub delivery_duration: Histogram,
    pub end_to_end: Histogram,
    pub backlog: Gauge,
    pub pending: Gauge,
    pub retry_scheduled: Gauge,
    states: [Gauge; crate::queue::DestinationState::ALL.len()],
}

impl DestinationMetrics {
    pub fn new(source: &str, destination: &str) -> Self {
        let (s, d) = (source.to_owned(), destination.to_owned());
        let deliveries = DeliveryOutcome::ALL.map(|o| {
            metrics::counter!(DELIVERIES, "source" => s.clone(), "destination" => d.clone(), "outcome" => o.label())
        });
        let states = crate::queue::DestinationState::ALL.map(|state| {
            metrics::gauge!(DESTINATION_STATE, "source" => s.clone(), "destination" => d.clone(), "state" => state.as_str())
        });
        Self {
            deliveries,
            delivery_duration: metrics::histogram!(DELIVERY_DURATION, "source" => s.clone(), "destination" => d.clone()),
            end_to_end: metrics::histogram!(END_TO_END, "source" => s.clone(), "destination" => d.clone()),
            backlog: metrics::gauge!(QUEUE_BACKLOG, "source" => s.clone(), "destination" => d.clone()),
            pending: metrics::gauge!(QUEUE_PENDING, "source" => s.clone(), "destination" => d.clone()),
            retry_scheduled: metrics::gauge!(RETRY_SCHEDULED, "source" => s, "destination" => d),
            states,
        }
    }

    pub fn delivery(&self, outcome: DeliveryOutcome) {
        self.deliveries[outcome as usize].increment(1);
    }

    /// Sets `hookd_destination_state`: 1 for `current`, 0 for the others.
    pub fn state(&self, current: crate::queue::DestinationState) {
        for (gauge, state) in self.states.iter().zip(crate::queue::DestinationState::ALL) {
            gauge.set(if state == current { 1.0 } else { 0.0 });
        }
    }
}

/// Requests for sources that do not exist share one label value, so an
/// attacker cannot grow the label set.
pub fn unknown_source_request() {
    metrics::counter!(INGEST_REQUESTS, "source" => "_unknown", "outcome" => "not_found")
        .increment(1);
}

/// Lets a warning that would repeat with every request through at most
/// once per interval, with how many it held back meanwhile: a refusal at
/// thousands of requests a second is one line every few seconds, not a
/// line per request (the counts are in the metrics).
pub struct Throttle {
    every: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::default(),
        }
    }

    /// `Some(held_back)` when this occurrence is to be logged, with the
    /// number held back since the last one logged; None to stay quiet.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.last {
            Some(last) if now.duration_since(last) < self.every => {
                state.held_back += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.held_back))
            }
        }
    }
}

/// fred warns once per pooled connection when Redis goes away
/// ("Broadcasting error ... Connection closed"), a burst of lines that
/// hookd's own `redis is unreachable` line says once, with the reason. Left
/// out unless `RUST_LOG` names fred itself.
const QUIET_CONNECTION_WARNINGS: &str = "fred::router::responses=error";

/// Logs go to stderr; `RUST_LOG` sets the filter (default info) and
/// `HOOKD_LOG_FORMAT=json` switches to one JSON object per line.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default();
    let mut filter = match EnvFilter::try_new(&spec) {
        Ok(filter) if !spec.trim().is_empty() => filter,
        _ => EnvFilter::new("info"),
    };
    if !spec.contains("fred")
        && let Ok(quiet) = QUIET_CONNECTION_WARNINGS.parse()
    {
        filter = filter.add_directive(quiet);
    }
    let json = std::env::var("HOOKD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_admits_once_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_millis(50));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.admit(), Some(2));
        assert_eq!(throttle.admit(), None);
    }
}
