//! hookd: verified, de-duplicated, durable webhook ingest into Redis
//! Streams, and reliable delivery to the user's services.
//!
//! [`run`] is the whole daemon; `main.rs` only parses the command line,
//! binds the listeners and turns signals into a cancellation.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod dlq;
pub mod extract;
pub mod http;
pub mod queue;
pub mod telemetry;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, SourceConfig};
use crate::queue::{Ingestor, Queue, QueueError, SourceKeys};
use crate::telemetry::SourceMetrics;
use crate::verify::Verifier;

/// Sockets the daemon serves on; bound by the caller so tests can use port 0.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            public: TcpListener::bind(config.server.listen).await?,
            admin: TcpListener::bind(config.admin.listen).await?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration for source {source_name}: {source}")]
    Source {
        source_name: String,
        #[source]
        source: verify::KeyError,
    },
    #[error("cannot set up redis: {0}")]
    Redis(#[from] QueueError),
    #[error("cannot set up the delivery client: {0}")]
    Delivery(#[from] delivery::DeliveryError),
    #[error("cannot read listener address: {0}")]
    Listener(#[from] std::io::Error),
}

/// How long after `shutdown.timeout` the last steps of a shutdown may take
/// (design: exit within drain_delay + timeout + 1 s).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Concurrent ingest script calls per source. Redis runs scripts one at a
/// time, so more lanes only overlap network time, while fewer lanes let
/// bigger batches form under load (see `queue::Ingestor`).
pub const INGEST_LANES: usize = 2;

/// Runs every check `run` makes before it connects anywhere, building what
/// `run` builds and throwing it away (`hookd check-config`).
pub fn check(config: &Config) -> Result<(), RunError> {
    queue::parse_url(config.redis.url.expose())?;
    for source in &config.sources {
        Verifier::from_config(&source.verify).map_err(|source_err| RunError::Source {
            source_name: source.name.clone(),
            source: source_err,
        })?;
    }
    delivery::check(config)?;
    Ok(())
}

/// A configured source with everything derived from its config once.
pub struct Source {
    pub config: SourceConfig,
    pub verifier: Verifier,
    pub keys: SourceKeys,
    /// Stores accepted events (group commit, see `queue::Ingestor`).
    pub ingestor: Ingestor,
    pub metrics: SourceMetrics,
    pub destination: DestinationState,
}

/// What this process last saw of a destination, for operators.
#[derive(Default)]
pub struct DestinationState {
    pub in_flight: AtomicUsize,
    pub last_success_ms: AtomicU64,
    pub last_failure_ms: AtomicU64,
    /// HTTP status of the last failed attempt, 0 for none / no response.
    pub last_failure_status: AtomicU64,
}

impl DestinationState {
    pub fn record(&self, success: bool, status: Option<u16>) {
        let now = unix_ms();
        if success {
            self.last_success_ms.store(now, Ordering::Relaxed);
        } else {
            self.last_failure_ms.store(now, Ordering::Relaxed);
            self.last_failure_status
                .store(status.map_or(0, u64::from), Ordering::Relaxed);
        }
    }

    /// `healthy` if the last outcome was a success, `failing` if it was a
    /// failure, `unknown` before any delivery.
    pub fn state(&self) -> &'static str {
        let ok = self.last_success_ms.load(Ordering::Relaxed);
        let failed = self.last_failure_ms.load(Ordering::Relaxed);
        match (ok, failed) {
            (0, 0) => "unknown",
            (ok, failed) if ok >= failed => "healthy",
            _ => "failing",
        }
    }
}

/// Process-wide flags read by health checks and the ingest path.
#[derive(Default)]
pub struct Status {
    draining: AtomicBool,
    redis_up: AtomicBool,
}

impl Status {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    pub fn ready(&self) -> bool {
        self.redis_up() && !self.draining()
    }
}

/// State shared by the HTTP handlers and the delivery pipeline.
pub struct App {
    pub config: Config,
    pub queue: Queue,
    pub sources: HashMap<String, Arc<Source>>,
    pub status: Status,
    pub metrics: PrometheusHandle,
    /// Global delivery concurrency (`worker.concurrency`).
    pub workers: Arc<Semaphore>,
    /// Deliveries actually running (readers also hold slots while reading).
    busy: Arc<AtomicUsize>,
}

/// Counts a running delivery for as long as it lives.
pub struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl App {
    /// Builds the shared state; connects to Redis in the background.
    pub fn new(config: Config) -> Result<Arc<Self>, RunError> {
        let metrics = telemetry::install();
        let queue = Queue::connect(config.redis.url.expose(), config.redis.pool_size)?;
        let mut sources = HashMap::new();
        for source in &config.sources {
            let verifier =
                Verifier::from_config(&source.verify).map_err(|source_err| RunError::Source {
                    source_name: source.name.clone(),
                    source: source_err,
                })?;
            let keys = SourceKeys::new(&config.redis.key_prefix, &source.name);
            let ingestor = Ingestor::start(
                &queue,
                keys.clone(),
                INGEST_LANES,
                config.ingest.dedup_ttl.as_secs(),
                config.ingest.max_backlog,
            );
            sources.insert(
                source.name.clone(),
                Arc::new(Source {
                    config: source.clone(),
                    verifier,
                    keys,
                    ingestor,
                    metrics: SourceMetrics::new(&source.name),
                    destination: DestinationState::default(),
                }),
            );
        }
        metrics::gauge!(telemetry::WORKERS_MAX).set(config.worker.concurrency as f64);
        Ok(Arc::new(Self {
            workers: Arc::new(Semaphore::new(config.worker.concurrency)),
            busy: Arc::new(AtomicUsize::new(0)),
            config,
            queue,
            sources,
            status: Status::default(),
            metrics,
        }))
    }

    pub fn workers_busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    pub fn delivery_started(&self) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self.busy.clone())
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_secs() -> i64 {
    (unix_ms() / 1000) as i64
}

/// Runs the daemon until `shutdown` is cancelled, then drains in the order
/// fixed by the design: not ready → drain_delay → stop accepting → finish
/// in-flight requests → stop reading streams → finish in-flight deliveries,
/// all bounded by `shutdown.timeout`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let app = App::new(config)?;
    let public_addr = listeners.public.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;

    // One token per subsystem, cancelled one after the other below: the
    // drain order matters, so they are not children of `shutdown` (which
    // would cancel them all at once).
    let http_token = CancellationToken::new();
    let pipeline_token = CancellationToken::new();
    let background_token = CancellationToken::new();
    let servers = TaskTracker::new();
    servers.spawn(http::serve(
        listeners.public,
        app.clone(),
        http::Listener::Public,
        http_token.clone(),
    ));
    servers.spawn(http::serve(
        listeners.admin,
        app.clone(),
        http::Listener::Admin,
        http_token.clone(),
    ));
    servers.close();
    info!(addr = %public_addr, "public listener bound");
    info!(addr = %admin_addr, "admin listener bound");

    let background = TaskTracker::new();
    background.spawn(monitor(app.clone(), background_token.clone()));
    background.close();

    let deliveries = TaskTracker::new();
    let pipeline =
        delivery::Pipeline::start(app.clone(), pipeline_token.clone(), deliveries.clone())?;

    info!(
        sources = app.sources.len(),
        version = env!("CARGO_PKG_VERSION"),
        "hookd started"
    );
    shutdown.cancelled().await;

    info!("shutdown requested: readiness now fails");
    app.status.draining.store(true, Ordering::Relaxed);
    tokio::time::sleep(app.config.shutdown.drain_delay).await;
    let deadline = tokio::time::Instant::now() + app.config.shutdown.timeout;

    info!("closing listeners, finishing in-flight requests");
    http_token.cancel();
    if tokio::time::timeout_at(deadline, servers.wait())
        .await
        .is_err()
    {
        warn!("in-flight requests did not finish within shutdown.timeout");
    }

    info!("stopping stream readers, finishing in-flight deliveries");
    pipeline_token.cancel();
    // Readers notice within one blocking read (about a second).
    if tokio::time::timeout_at(deadline, pipeline.stopped())
        .await
        .is_err()
    {
        warn!("stream readers did not stop within shutdown.timeout");
    }
    deliveries.close();
    if tokio::time::timeout_at(deadline, deliveries.wait())
        .await
        .is_err()
    {
        warn!(
            in_flight = app.workers_busy(),
            "deliveries still in flight at shutdown.timeout; they stay pending in redis and will be claimed"
        );
        pipeline.abandon_deliveries();
    }
    // What remains (acknowledging finished deliveries, leaving the
    // consumer groups, closing connections) is quick unless Redis is
    // hung; either way the process exits within timeout + 1 s.
    let hard_stop = deadline + SHUTDOWN_GRACE;
    if tokio::time::timeout_at(hard_stop, pipeline.acks_flushed())
        .await
        .is_err()
    {
        warn!("some acknowledgements were not written; those events will be delivered again");
    }
    let _ = tokio::time::timeout_at(hard_stop, pipeline.release_consumers()).await;
    background_token.cancel();
    let _ = tokio::time::timeout_at(hard_stop, background.wait()).await;
    let _ = tokio::time::timeout_at(hard_stop, app.queue.quit()).await;
    info!("shutdown complete");
    Ok(())
}

/// Watches Redis (readiness, `hookd_redis_up`) and refreshes the queue
/// gauges.
async fn monitor(app: Arc<App>, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Histogram samples pile up in the recorder until drained; without
        // this, memory grows with every event when nobody scrapes /metrics
        // (seen in the 10-minute soak).
        app.metrics.run_upkeep();
        let up = app.queue.ping().await;
        let was = app.status.redis_up.swap(up, Ordering::Relaxed);
        if up != was {
            if up {
                info!("redis is reachable");
                for warning in app.queue.durability_warnings().await {
                    warn!("{warning}");
                }
            } else {
                warn!("redis is unreachable: ingest answers 503 until it returns");
            }
        }
        metrics::gauge!(telemetry::REDIS_UP).set(if up { 1.0 } else { 0.0 });
        metrics::gauge!(telemetry::WORKERS_BUSY).set(app.workers_busy() as f64);
        if !up {
            continue;
        }
        for source in app.sources.values() {
            if let Ok(stats) = app.queue.stats(&source.keys).await {
                source.metrics.backlog.set(stats.backlog as f64);
                source.metrics.pending.set(stats.pending as f64);
                source.metrics.retry_scheduled.set(stats.retrying as f64);
                source.metrics.dlq_size.set(stats.dlq as f64);
            }
        }
    }
}
