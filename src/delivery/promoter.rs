//! Retries wait in Redis, never in a worker: the promoter moves those that
//! are due back into their streams, where any reader picks them up.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Shared;
use crate::queue::Promoted;
use crate::source::Sources;

/// Most retries moved back per promote call.
const PROMOTE_BATCH: usize = 512;
/// The promoter also looks for retries scheduled by other processes.
const PROMOTE_POLL: Duration = Duration::from_secs(1);

/// Moves due retries back into their streams; wakes at the earliest due
/// time it knows of, when this process schedules a retry, and at least every
/// PROMOTE_POLL for retries other processes scheduled.
pub async fn run(shared: Arc<Shared>, sources: Arc<Sources>, token: CancellationToken) {
    loop {
        let mut wait = PROMOTE_POLL;
        for source in sources.iter() {
            match shared.queue.promote(&source.keys, PROMOTE_BATCH).await {
                Ok(Promoted { moved, next_due }) => {
                    if moved as usize >= PROMOTE_BATCH {
                        wait = Duration::ZERO;
                    } else if let Some(next) = next_due {
                        wait = wait.min(next);
                    }
                    if moved > 0 {
                        debug!(source = %source.keys.source, moved, "retries due again");
                    }
                }
                Err(e) => debug!(source = %source.keys.source, error = %e, "promote failed"),
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = shared.retry_scheduled.notified() => {}
        }
    }
}
