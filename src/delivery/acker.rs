//! Acknowledgements, batched: a delivered entry is acknowledged (and
//! removed from the stream) together with whatever else finished meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::clock::unix_ms;
use crate::queue::{Ack, Queue, Recording};
use crate::source::{Destination, Source};

/// Acknowledges delivered entries of one source in batches: it takes what
/// has queued up since the last round trip (up to ACK_BATCH), so an idle
/// system acks at once and a busy one amortises the round trip. A failed
/// ack is retried briefly; if Redis stays away the entries remain pending
/// and are delivered again after claim_idle (at-least-once).
pub async fn run(
    queue: Queue,
    source: Arc<Source>,
    destination: Arc<Destination>,
    mut pending: mpsc::UnboundedReceiver<Ack>,
) {
    const ACK_BATCH: usize = 512;
    let mut batch: Vec<Ack> = Vec::with_capacity(ACK_BATCH);
    while let Some(first) = pending.recv().await {
        batch.push(first);
        while batch.len() < ACK_BATCH {
            match pending.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        let recording = Recording::at(&source.keys, source.history.enabled(), unix_ms());
        let mut tries = 0;
        loop {
            match queue
                .ack(&source.keys, &destination.keys, &batch, &recording)
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 3 => {
                    tries += 1;
                    debug!(source = %source.name, destination = %destination.name, error = %e, "ack failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => {
                    warn!(
                        source = %source.name,
                        destination = %destination.name,
                        entries = batch.len(),
                        error = %e,
                        "could not acknowledge delivered entries; they will be delivered again after claim_idle"
                    );
                    break;
                }
            }
        }
        batch.clear();
    }
}
