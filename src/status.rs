//! Process-wide state the health probes, ingest and the monitor share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::queue::Unusable;

/// What the health check last found Redis to be.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

pub struct Status {
    draining: AtomicBool,
    /// UNKNOWN until the first health check is in.
    redis: AtomicU8,
    /// Why Redis is away, while it is (for the admin side).
    redis_error: Mutex<Option<Unusable>>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            redis: AtomicU8::new(UNKNOWN),
            redis_error: Mutex::new(None),
        }
    }
}

impl Status {
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// From the first shutdown signal on: readiness and ingest answer 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether Redis answered the last health check (false before the
    /// first: readiness waits for it).
    pub fn redis_up(&self) -> bool {
        self.redis.load(Ordering::Relaxed) == UP
    }

    /// Whether the last health check found Redis away. Not before the
    /// first one: at startup ingest tries Redis rather than assume it is
    /// away (and spool, or refuse, every event until the first check).
    pub fn redis_known_down(&self) -> bool {
        self.redis.load(Ordering::Relaxed) == DOWN
    }

    /// Why Redis is away, in the connection's or Redis's words (None
    /// while it answers).
    pub fn redis_error(&self) -> Option<Unusable> {
        self.redis_error
            .lock()
            .map(|error| error.clone())
            .unwrap_or_default()
    }

    /// Why Redis is away, for a request that found it known to be: the
    /// health check's finding, or "no answer" if Redis came back meanwhile.
    pub fn why_redis_is_away(&self) -> Unusable {
        self.redis_error()
            .unwrap_or_else(|| Unusable::Unreachable("no answer".into()))
    }

    pub fn set_redis_error(&self, error: Option<Unusable>) {
        if let Ok(mut slot) = self.redis_error.lock() {
            *slot = error;
        }
    }

    /// Records a health check; returns what the one before found (None
    /// for the first).
    pub fn set_redis_up(&self, up: bool) -> Option<bool> {
        match self
            .redis
            .swap(if up { UP } else { DOWN }, Ordering::Relaxed)
        {
            UNKNOWN => None,
            was => Some(was == UP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_is_neither_up_nor_known_down_before_the_first_check() {
        let status = Status::default();
        assert!(!status.redis_up() && !status.redis_known_down());
        assert_eq!(status.set_redis_up(false), None);
        assert!(status.redis_known_down() && !status.redis_up());
        assert_eq!(status.set_redis_up(true), Some(false));
        assert!(status.redis_up() && !status.redis_known_down());
        assert_eq!(status.set_redis_up(true), Some(true));
    }
}
