//! Every instance obeys a destination's pause and breaker within a
//! second: per source, one task reads the state of all its destinations
//! from Redis a few times a second and hands each reader what changed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::route::Route;
use crate::queue::{DestinationState, Queue};
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
    // What the log last said of each destination. Kept apart from the
    // readers' status, which this process's own attempts update first
    // (so a breaker it opened would otherwise never be logged here).
    let mut logged: Vec<Option<DestinationState>> = vec![None; routes.len()];
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
                // The readers keep obeying the last state they read; what
                // is exported must not claim a state nobody can see (a
                // breaker alert would keep firing, a dashboard would say
                // healthy). The Redis-down log line covers the log.
                for route in &routes {
                    route.destination.metrics.state(DestinationState::Unknown);
                }
                continue;
            }
        };
        for ((route, status), logged) in routes.iter().zip(states).zip(logged.iter_mut()) {
            let destination = &route.destination;
            let state = status.state();
            destination.metrics.state(state);
            route.publish_state(status);
            if *logged != Some(state) {
                match *logged {
                    Some(from) => log_change(&source.name, &destination.name, from, state),
                    None => log_start(&source.name, &destination.name, state),
                }
                *logged = Some(state);
            }
        }
    }
}

/// A breaker opening is what an operator must notice; its closing, a
/// pause and a resume are news. Changes that repeat for as long as a
/// service misbehaves are left to debug: the cycle of probes while it
/// stays down (half open, open again, every cooldown), and healthy and
/// failing alternating with each failed attempt of one that fails now and
/// then (its failures are in the metrics, its dead letters warned about).
fn log_change(source: &str, destination: &str, from: DestinationState, to: DestinationState) {
    use DestinationState::{Failing, HalfOpen, Healthy, Open, Paused, Unknown};
    match (from, to) {
        (Open, HalfOpen)
        | (HalfOpen, Open)
        | (Healthy | Failing | Unknown, Healthy | Failing | Unknown) => {
            debug!(%source, %destination, %from, state = %to, "destination state changed");
        }
        (Paused, Open | HalfOpen) => info!(
            %source,
            %destination,
            %from,
            state = %to,
            "destination resumed with its breaker open: no attempts until a probe succeeds"
        ),
        // Straight to half open: a read missed the open state.
        (_, Open | HalfOpen) => warn!(
            %source,
            %destination,
            %from,
            state = %to,
            "destination breaker opened: no attempts until a probe succeeds"
        ),
        (Open | HalfOpen, Healthy) => info!(
            %source,
            %destination,
            %from,
            state = %to,
            "destination breaker closed: deliveries resume"
        ),
        _ => info!(%source, %destination, %from, state = %to, "destination state changed"),
    }
}

/// A destination held back when this process starts (state kept in Redis
/// across restarts) is said at once; any other is in the next change.
fn log_start(source: &str, destination: &str, state: DestinationState) {
    use DestinationState::{HalfOpen, Open, Paused};
    match state {
        Open | HalfOpen => warn!(
            %source,
            %destination,
            %state,
            "destination breaker is open: no attempts until a probe succeeds"
        ),
        Paused => warn!(
            %source,
            %destination,
            %state,
            "destination is paused: its events wait until it is resumed"
        ),
        _ => debug!(%source, %destination, %state, "destination state"),
    }
}
