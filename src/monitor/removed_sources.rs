//! Streams of sources the configuration no longer names. hookd reads only
//! the sources it is configured with, so the events a removed source had
//! not delivered would wait in Redis unseen; once Redis first answers they
//! are reported, as the groups of removed destinations are. Nothing is
//! deleted: configuring the source again delivers them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::queue::{OrphanGroup, Queue, SourceKeys};
use crate::source::Sources;

pub struct RemovedSources {
    pub queue: Queue,
    pub sources: Arc<Sources>,
    /// `redis.key_prefix`: where the streams are.
    pub prefix: String,
}

impl RemovedSources {
    pub async fn report(self, token: CancellationToken) {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = self.report_once() => {}
        }
    }

    async fn report_once(&self) {
        // Redis may be away (or refuse hookd) at startup; the report waits
        // for it.
        while self
            .queue
            .wait_usable(Duration::from_secs(60))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let names = match self.queue.stream_sources(&self.prefix).await {
            Ok(names) => names,
            Err(error) => {
                warn!(%error, "could not look for the streams of sources no longer configured");
                return;
            }
        };
        for name in names.iter().filter(|n| self.sources.get(n).is_none()) {
            let keys = SourceKeys::new(&self.prefix, name);
            let Ok(depths) = self.queue.depths(&keys, &[]).await else {
                continue;
            };
            let holding: Vec<&OrphanGroup> = depths
                .orphans
                .iter()
                .filter(|group| group.holds_events())
                .collect();
            if holding.is_empty() {
                continue;
            }
            warn!(
                source = %name,
                destinations = %describe(&holding),
                dlq = depths.dlq,
                "a source no longer configured has undelivered events; they stay in redis, \
                 undelivered, until the source is configured again"
            );
        }
    }
}

/// `billing (backlog 3, pending 1), analytics (backlog unknown, pending 0)`
fn describe(groups: &[&OrphanGroup]) -> String {
    let mut text = String::new();
    for group in groups {
        if !text.is_empty() {
            text.push_str(", ");
        }
        let backlog = group
            .backlog
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        text.push_str(&format!(
            "{} (backlog {backlog}, pending {})",
            group.name, group.pending
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_described_with_their_depths() {
        let billing = OrphanGroup {
            name: "billing".into(),
            backlog: Some(3),
            pending: 1,
            last_read_ago: None,
        };
        let analytics = OrphanGroup {
            name: "analytics".into(),
            backlog: None,
            pending: 0,
            last_read_ago: None,
        };
        assert_eq!(
            describe(&[&billing, &analytics]),
            "billing (backlog 3, pending 1), analytics (backlog unknown, pending 0)"
        );
    }
}
