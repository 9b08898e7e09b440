//! Why Redis cannot be reached. A failed PING only says that it failed;
//! fred reports each failed connection attempt (refused, a wrong
//! password, a TLS handshake) on its error channels, and that is what an
//! operator needs to read.

use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface};
use fred::prelude::Server;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;

use super::Queue;

/// What the pool's connections reported since the last look.
pub struct ConnectionErrors {
    receivers: Vec<Receiver<(FredError, Option<Server>)>>,
}

impl ConnectionErrors {
    /// The latest error reported since the last call, if any.
    pub fn latest(&mut self) -> Option<String> {
        let mut latest = None;
        for receiver in &mut self.receivers {
            loop {
                match receiver.try_recv() {
                    Ok((error, _)) => latest = Some(error.to_string()),
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
        }
        latest
    }
}

impl Queue {
    /// Subscribes to every pooled connection's errors: what they report
    /// from now on.
    pub fn connection_errors(&self) -> ConnectionErrors {
        ConnectionErrors {
            receivers: self.pool.clients().iter().map(|c| c.error_rx()).collect(),
        }
    }

    /// A PING within the health-check timeout, with why it failed.
    pub async fn check(&self) -> Result<(), String> {
        let options = fred::types::config::Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(self.ping_timeout),
            ..Default::default()
        };
        self.pool
            .next()
            .with_options(&options)
            .ping::<String>(None)
            .await
            .map(drop)
            .map_err(|e| format!("PING failed: {e}"))
    }
}
