//! Every instance obeys a destination's pause and breaker within a
//! second: per source, one task reads the state of all its destinations
//! from Redis a few times a second and hands each reader what changed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::route::Route;
use crate::queue::Queue;
use crate::source::Source;

/// How often the state is read: a pause takes effect within this (plus one
/// blocking read that was already waiting).
pub const POLL: Duration = Duration::from_millis(250);

pub async fn run(
    queue: Queue,
    source: Arc<Source>,
    routes: Vec<Arc<Route>>,
    token: CancellationToken,
) {
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let read = tokio::select! {
            _ = token.cancelled() => return,
            read = queue.states(&keys) => read,
        };
        let states = match read {
            Ok(states) => states,
            Err(e) => {
                debug!(source = %source.name, error = %e, "cannot read destination state");
                continue;
            }
        };
        for (route, status) in routes.iter().zip(states) {
            let destination = &route.destination;
            destination.metrics.state(status.state());
            let was = route.status.borrow().state();
            if route.publish_state(status) && was != status.state() {
                info!(
                    source = %source.name,
                    destination = %destination.name,
                    state = %status.state(),
                    "destination state changed"
                );
            }
        }
    }
}
