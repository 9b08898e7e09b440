//! A source's way to one destination: its connections, its in-flight
//! cap, its queue of acknowledgements, and the shared state (pause,
//! breaker) its reader obeys.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::task::TaskTracker;

use super::pool::Connections;
use crate::clock::unix_ms;
use crate::queue::{Ack, AckKind, Breaker, DestinationStatus, Recording};
use crate::source::{Destination, Source};

pub struct Route {
    pub source: Arc<Source>,
    pub destination: Arc<Destination>,
    /// Keep-alive connections to the destination.
    pub connections: Connections,
    /// `max_in_flight` slots.
    pub in_flight: Arc<Semaphore>,
    /// Entries waiting to be acknowledged in a batch.
    pub acks: mpsc::UnboundedSender<Ack>,
    /// The destination's shared state as last read from Redis (by the
    /// state watcher), or as this process' own attempts just changed it.
    pub status: watch::Sender<DestinationStatus>,
    /// The earliest retry this process scheduled and its reader has not
    /// looked for yet (unix ms, u64::MAX for none).
    earliest_retry_ms: AtomicU64,
    /// The state watch has read this destination's pause and breaker at
    /// least once; until then the reader delivers nothing, so a pause
    /// holds across a restart.
    state_read: AtomicBool,
}

impl Route {
    /// The route and the receiving end of its acknowledgements.
    pub fn new(
        source: Arc<Source>,
        destination: Arc<Destination>,
        connector: HttpsConnector<HttpConnector>,
        connection_tasks: TaskTracker,
    ) -> (Self, mpsc::UnboundedReceiver<Ack>) {
        let (acks, pending) = mpsc::unbounded_channel();
        let status = watch::Sender::new(DestinationStatus::default());
        let route = Self {
            connections: Connections::new(
                connector,
                destination.config.url.uri().clone(),
                connection_tasks,
            ),
            in_flight: Arc::new(Semaphore::new(destination.config.max_in_flight)),
            acks,
            status,
            earliest_retry_ms: AtomicU64::new(u64::MAX),
            state_read: AtomicBool::new(false),
            source,
            destination,
        };
        (route, pending)
    }

    /// One of this process' attempts left the breaker open until
    /// `until_ms`: the reader stops at once rather than at the next read
    /// of the shared state.
    pub fn breaker_opened(&self, until_ms: u64) {
        self.status.send_if_modified(|status| {
            let open = Breaker::Open { until_ms };
            let changed = status.breaker != open;
            status.breaker = open;
            changed
        });
    }

    /// The entry is not for this destination (filter, or a replay
    /// addressed elsewhere): acknowledged with the next batch.
    pub fn skip(&self, entry_id: &str) {
        // The acker outlives every route user (it ends when the last route
        // is dropped), so this cannot fail while we hold one.
        let _ = self.acks.send(Ack {
            kind: AckKind::Skipped,
            entry_id: entry_id.to_owned(),
            line: String::new(),
            latency_ms: 0,
        });
    }

    /// The entry was delivered: acknowledged with the next batch, with its
    /// successful attempt's history line.
    pub fn delivered(&self, entry_id: &str, line: String, latency_ms: u64) {
        let _ = self.acks.send(Ack {
            kind: AckKind::Delivered,
            entry_id: entry_id.to_owned(),
            line,
            latency_ms,
        });
    }

    /// Whether the destination's state was read from Redis yet.
    pub fn state_read(&self) -> bool {
        self.state_read.load(Ordering::Acquire)
    }

    /// Publishes a state read from Redis; the first one always wakes the
    /// reader (see [`Route::state_read`]).
    pub fn publish_state(&self, status: DestinationStatus) {
        if !self.state_read.swap(true, Ordering::AcqRel) {
            self.status.send_replace(status);
            return;
        }
        self.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
    }

    /// What a step taken now records besides the entry's move.
    pub fn recording(&self) -> Recording {
        Recording::at(&self.source.keys, self.source.history.enabled(), unix_ms())
    }

    /// A delivery of this process scheduled a retry due at `due_ms`.
    pub fn retry_scheduled(&self, due_ms: u64) {
        self.earliest_retry_ms.fetch_min(due_ms, Ordering::Relaxed);
    }

    /// The earliest retry scheduled here since the last call.
    pub fn take_earliest_retry(&self) -> Option<u64> {
        Some(self.earliest_retry_ms.swap(u64::MAX, Ordering::Relaxed)).filter(|ms| *ms != u64::MAX)
    }
}
