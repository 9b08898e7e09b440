//! The delivery pipeline. Per source a [`reader`] takes from the stream
//! only what it can start now (worker and destination slots, rate limit)
//! and hands each entry to an [`attempt`], which sends the [`request`] over
//! the destination's keep-alive [`pool`] and records the outcome: an
//! [`acker`] acknowledges deliveries in batches, failures are parked in
//! Redis with their [`backoff`] until the [`promoter`] moves them back, and
//! entries that cannot be delivered go to the dead-letter queue. Entries a
//! dead process held are claimed by the readers of the living ones.

mod acker;
mod attempt;
mod backoff;
mod pool;
mod promoter;
mod rate;
mod reader;
mod request;
mod route;
mod slots;
mod tls;

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Notify;
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

/// What readers, attempts and the promoter share.
struct Shared {
    queue: Queue,
    workers: Workers,
    worker: WorkerConfig,
    consumer: String,
    /// Signalled when this process schedules a retry.
    retry_scheduled: Notify,
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
    /// Starts a reader per source and the promoter; they stop when `token`
    /// is cancelled. Deliveries run on `deliveries`.
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
            retry_scheduled: Notify::new(),
            abandon: CancellationToken::new(),
            deliveries,
            connections: TaskTracker::new(),
        });
        let readers = TaskTracker::new();
        let ackers = TaskTracker::new();
        for source in context.sources.iter() {
            let (route, pending_acks) = Route::new(
                source.clone(),
                settings.connector.clone(),
                shared.connections.clone(),
            );
            ackers.spawn(acker::run(
                shared.queue.clone(),
                source.clone(),
                pending_acks,
            ));
            readers
                .spawn(reader::Reader::new(shared.clone(), Arc::new(route), token.clone()).run());
        }
        readers.spawn(promoter::run(
            shared.clone(),
            context.sources.clone(),
            token,
        ));
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

    /// Resolves once every reader and the promoter have stopped.
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
            self.shared
                .queue
                .remove_idle_consumer(&source.keys, &self.shared.consumer)
                .await;
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
