//! Acknowledgements, batched: a delivered entry is acknowledged (and
//! removed from the stream) together with whatever else finished meanwhile
//! or within a short linger.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::clock::unix_ms;
use crate::queue::{Ack, Queue, Recording};
use crate::source::{Destination, Source};

/// Most entries one ack call carries.
const ACK_BATCH: usize = 512;
/// A batch this small waits for more...
const LINGER_BELOW: usize = 64;
/// ...this long at most.
const ACK_LINGER: Duration = Duration::from_millis(2);

/// Moves what is already queued into `batch`, up to ACK_BATCH.
fn take_ready(pending: &mut mpsc::UnboundedReceiver<Ack>, batch: &mut Vec<Ack>) {
    while batch.len() < ACK_BATCH {
        match pending.try_recv() {
            Ok(ack) => batch.push(ack),
            Err(_) => break,
        }
    }
}

/// Acknowledges delivered entries of one source in batches: it takes what
/// has queued up since the last round trip (up to ACK_BATCH), and a batch
/// smaller than LINGER_BELOW waits up to ACK_LINGER for more. An ack call
/// costs Redis about as much as seven entries in it, and hookd a round
/// trip: under load the linger turns many small calls into a few large
/// ones, while an entry's ack comes at most ACK_LINGER later (its delivery
/// is done and its slot free before that). A failed
/// ack is retried briefly; if Redis stays away the entries remain pending
/// and are delivered again after claim_idle (at-least-once).
pub async fn run(
    queue: Queue,
    source: Arc<Source>,
    destination: Arc<Destination>,
    mut pending: mpsc::UnboundedReceiver<Ack>,
) {
    let mut batch: Vec<Ack> = Vec::with_capacity(ACK_BATCH);
    while let Some(first) = pending.recv().await {
        batch.push(first);
        take_ready(&mut pending, &mut batch);
        let until = tokio::time::Instant::now() + ACK_LINGER;
        while batch.len() < LINGER_BELOW {
            match tokio::time::timeout_at(until, pending.recv()).await {
                Ok(Some(ack)) => {
                    batch.push(ack);
                    take_ready(&mut pending, &mut batch);
                }
                // The linger is over, or every sender is gone
                // (shutdown): what is here goes now.
                Ok(None) | Err(_) => break,
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
