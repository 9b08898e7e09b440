//! `destination.rate_per_sec`: a token bucket owned by the source's reader,
//! so pacing happens before entries are read and no worker ever waits.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub struct RateLimiter {
    /// Tokens per second; 0 = unlimited.
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate_per_sec: u32) -> Self {
        Self {
            rate: f64::from(rate_per_sec),
            // Start with one second's worth so a burst after idling is allowed.
            tokens: f64::from(rate_per_sec),
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        // Capacity of one second's worth (at least one token).
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
    }

    /// Waits until at least one token is available and takes up to `want`.
    /// Returns None if cancelled while waiting.
    pub async fn acquire(&mut self, want: usize, token: &CancellationToken) -> Option<usize> {
        if self.rate <= 0.0 {
            return Some(want);
        }
        loop {
            self.refill();
            if self.tokens >= 1.0 {
                let take = (self.tokens.floor() as usize).min(want).max(1);
                self.tokens -= take as f64;
                return Some(take);
            }
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            tokio::select! {
                _ = token.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Returns tokens taken for entries that were not there to read.
    pub fn refund(&mut self, unused: usize) {
        if self.rate > 0.0 {
            self.tokens = (self.tokens + unused as f64).min(self.rate.max(1.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_configured_rate() {
        let token = CancellationToken::new();
        let mut limiter = RateLimiter::new(10);
        let start = Instant::now();
        let mut granted = 0;
        while granted < 30 {
            granted += limiter.acquire(5, &token).await.unwrap();
        }
        // 10 up front, then 20 more at 10/s: about two seconds.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(2200), "{elapsed:?}");
    }

    #[tokio::test]
    async fn unlimited_grants_everything() {
        let mut limiter = RateLimiter::new(0);
        assert_eq!(
            limiter.acquire(64, &CancellationToken::new()).await,
            Some(64)
        );
    }
}
