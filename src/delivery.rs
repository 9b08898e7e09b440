//! The delivery pipeline. Per destination a [`reader`] takes from its
//! consumer group only what it can start now (worker and destination
//! slots, rate limit), skips what its filter does not want, and hands each
//! entry to an [`attempt`], which sends the [`request`] over the
//! destination's keep-alive [`pool`] and records the outcome: an [`acker`]
//! acknowledges deliveries in batches, failures wait in Redis with their
//! [`backoff`] until the reader takes them again, and entries that cannot
//! be delivered go to the dead-letter queue. Entries a dead process held
//! are claimed by the readers of the living ones. Per source a [`watch`]
//! task keeps every reader in line with its destination's shared state
//! (paused, breaker open).

mod acker;
mod attempt;
mod backoff;
mod pool;
mod rate;
mod reader;
mod request;
mod route;
mod slots;
mod tls;
mod watch;

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use attempt::{AttemptClass, classify};
pub use backoff::{backoff_delay, parse_retry_after};

use crate::clock::unix_ms;
use crate::config::WorkerConfig;
use crate::queue::Queue;
use crate::source::Sources;
use crate::workers::Workers;
use route::Route;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot set up tls for https destinations")]
    Tls(#[source] rustls::Error),
}

/// What delivery builds before it starts: the client every destination's
/// connections are dialled with (TLS roots loaded once).
pub struct Settings {
    connector: HttpsConnector<HttpConnector>,
}

impl Settings {
    pub fn build() -> Result<Self, DeliveryError> {
        let mut http = HttpConnector::new();
        // The scheme is the TLS wrapper's business (https_or_http).
        http.enforce_http(false);
        // Each delivery is written whole and then waits for its answer, so
        // Nagle's algorithm has nothing to coalesce; left on, it could hold
        // a large body's last partial segment back until the peer
        // acknowledges the one before (up to its delayed-ACK timer).
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self { connector })
    }
}

/// What the pipeline uses of the rest of hookd.
pub struct Context {
    pub queue: Queue,
    pub sources: Arc<Sources>,
    pub workers: Workers,
    pub worker: WorkerConfig,
}

/// What readers and attempts share.
struct Shared {
    queue: Queue,
    workers: Workers,
    worker: WorkerConfig,
    consumer: String,
    /// Cancelled at the shutdown deadline: deliveries still waiting for
    /// their destination give up and stay pending for another consumer.
    abandon: CancellationToken,
    /// Every delivery runs here.
    deliveries: TaskTracker,
    /// The destinations' connection tasks.
    connections: TaskTracker,
}

pub struct Pipeline {
    shared: Arc<Shared>,
    sources: Arc<Sources>,
    readers: TaskTracker,
    ackers: TaskTracker,
}

impl Pipeline {
    /// Starts a reader per destination and a state watcher per source;
    /// they stop when `token` is cancelled. Deliveries run on `deliveries`.
    pub fn start(
        settings: Settings,
        context: Context,
        token: CancellationToken,
        deliveries: TaskTracker,
    ) -> Self {
        let consumer = consumer_name();
        info!(consumer = %consumer, "delivery pipeline starting");
        let shared = Arc::new(Shared {
            queue: context.queue,
            workers: context.workers,
            worker: context.worker,
            consumer,
            abandon: CancellationToken::new(),
            deliveries,
            connections: TaskTracker::new(),
        });
        let readers = TaskTracker::new();
        let ackers = TaskTracker::new();
        for source in context.sources.iter() {
            let mut routes = Vec::with_capacity(source.destinations.len());
            for destination in &source.destinations {
                let (route, pending_acks) = Route::new(
                    source.clone(),
                    destination.clone(),
                    settings.connector.clone(),
                    shared.connections.clone(),
                );
                let route = Arc::new(route);
                routes.push(route.clone());
                ackers.spawn(acker::run(
                    shared.queue.clone(),
                    source.clone(),
                    destination.clone(),
                    pending_acks,
                ));
                readers.spawn(reader::Reader::new(shared.clone(), route, token.clone()).run());
            }
            readers.spawn(watch::run(
                shared.queue.clone(),
                source.clone(),
                routes,
                token.clone(),
            ));
        }
        readers.close();
        ackers.close();
        shared.connections.close();
        Self {
            shared,
            sources: context.sources,
            readers,
            ackers,
        }
    }

    /// Makes every delivery still in flight give up at once, without
    /// recording an outcome: its entry stays pending in Redis and is
    /// claimed after `claim_idle`.
    pub fn abandon_deliveries(&self) {
        self.shared.abandon.cancel();
    }

    /// Resolves once every reader and state watcher has stopped.
    pub async fn stopped(&self) {
        self.readers.wait().await;
    }

    /// Resolves once every delivered entry has been acknowledged; the
    /// ackers end when the last delivery holding their route is gone.
    pub async fn acks_flushed(&self) {
        self.ackers.wait().await;
    }

    /// Deletes this process' consumer from each group if it holds nothing.
    pub async fn release_consumers(&self) {
        for source in self.sources.iter() {
            for destination in &source.destinations {
                self.shared
                    .queue
                    .remove_idle_consumer(&source.keys, &destination.keys, &self.shared.consumer)
                    .await;
            }
        }
    }
}

fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:x}", std::process::id(), unix_ms())
}
