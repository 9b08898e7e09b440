//! Deadlines for a whole connection, which hyper does not enforce itself.
//!
//! hyper's `header_read_timeout` only starts once the auto builder has
//! chosen HTTP/1, so a connection that sends nothing, half an HTTP/2
//! preface, or a preface and then nothing, would stay open forever; and
//! neither protocol closes a keep-alive connection that simply sits idle.
//! Each connection therefore gets an [`Activity`] that its service updates
//! when a request starts and ends, and a watchdog future, [`expired`], that
//! resolves when the connection has had no request in progress for too
//! long: `header_read_timeout` before its first request's headers are in,
//! `idle_timeout` after that. Dropping the connection then closes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a connection is doing, as its requests report it.
pub struct Activity {
    opened: Instant,
    /// Requests whose headers are in and whose answer is not yet returned.
    active: AtomicUsize,
    /// Any request at all has started on this connection.
    served: AtomicBool,
    /// When the last request ended, in ms since `opened`.
    idle_since_ms: AtomicU64,
}

/// Marks one request in progress for as long as it lives.
pub struct RequestGuard(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            active: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Called by the service once a request's headers have been read.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.served.store(true, Ordering::SeqCst);
        self.active.fetch_add(1, Ordering::SeqCst);
        RequestGuard(self.clone())
    }

    fn elapsed_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Idle time counts from the end of the last request; stored before
        // the count drops so the watchdog never sees a stale start.
        self.0
            .idle_since_ms
            .store(self.0.elapsed_ms(), Ordering::SeqCst);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves once the connection should be closed: no request started
/// within `first_request`, or none in progress for `idle` since the last
/// one ended. A request in progress is never cut off here; the request's
/// own timeouts bound it.
///
/// Requests do not wake the watchdog (that would cost a task wake-up per
/// request); it wakes at its deadline, at least every `idle`, and reads
/// what happened meanwhile.
pub async fn expired(activity: &Activity, first_request: Duration, idle: Duration) {
    let ms = |d: Duration| d.as_millis() as u64;
    loop {
        let now = activity.elapsed_ms();
        if activity.active.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(idle).await;
            continue;
        }
        let due = if activity.served.load(Ordering::SeqCst) {
            activity.idle_since_ms.load(Ordering::SeqCst) + ms(idle)
        } else {
            ms(first_request)
        };
        if now >= due {
            return;
        }
        tokio::time::sleep(Duration::from_millis((due - now).min(ms(idle)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_secs(2);
    const IDLE: Duration = Duration::from_secs(5);

    async fn expires_after(activity: &Activity) -> Duration {
        let start = Instant::now();
        expired(activity, FIRST, IDLE).await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_expires_after_the_first_deadline() {
        let activity = Activity::new();
        let took = expires_after(&activity).await;
        assert!(
            took >= FIRST && took < FIRST + Duration::from_millis(50),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_idle_timeout_from_its_last_request() {
        let activity = Activity::new();
        drop(activity.request_started());
        tokio::time::advance(Duration::from_secs(1)).await;
        let took = expires_after(&activity).await;
        assert!(took >= Duration::from_secs(4) && took < IDLE, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_before_the_first_deadline_moves_it_to_idle_timeout() {
        let activity = Activity::new();
        let (first, idle) = (Duration::from_secs(30), Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(500)).await;
        drop(activity.request_started());
        let start = Instant::now();
        expired(&activity, first, idle).await;
        let took = start.elapsed();
        assert!(took <= idle + Duration::from_millis(50), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_keeps_the_connection() {
        let activity = Activity::new();
        let guard = activity.request_started();
        let watchdog = expired(&activity, FIRST, IDLE);
        tokio::pin!(watchdog);
        let outcome = tokio::time::timeout(Duration::from_secs(60), &mut watchdog).await;
        assert!(outcome.is_err(), "closed during a request");
        drop(guard);
        let start = Instant::now();
        watchdog.await;
        assert!(start.elapsed() <= IDLE + Duration::from_millis(50));
    }
}
