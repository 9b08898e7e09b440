//! Process-wide state the health probes, ingest and the monitor share.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Status {
    draining: AtomicBool,
    redis_up: AtomicBool,
}

impl Status {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// From the first shutdown signal on: readiness and ingest answer 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether Redis answered the last health check.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Ordering::Relaxed)
    }

    /// Records a health check; returns what it was before.
    pub fn set_redis_up(&self, up: bool) -> bool {
        self.redis_up.swap(up, Ordering::Relaxed)
    }

    pub fn ready(&self) -> bool {
        self.redis_up() && !self.draining()
    }
}
