//! `destination.rate_per_sec`: a token bucket in Redis that every instance
//! shares (`rate.lua`), so however many instances run, together they start
//! at most that many deliveries a second. The destination's reader takes
//! tokens before it reads, so pacing happens before entries are read and
//! no worker ever waits.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::queue::{DestinationKeys, Queue, Tokens};

/// How long to wait before asking again when Redis did not answer: the
/// read that would follow needs Redis too.
const UNANSWERED_RETRY: Duration = Duration::from_millis(500);
/// How long a refund may wait for Redis.
const REFUND_LIMIT: Duration = Duration::from_millis(500);

pub struct RateLimiter {
    /// None: unlimited.
    shared: Option<SharedBucket>,
}

struct SharedBucket {
    rate_per_sec: u32,
    queue: Queue,
    keys: DestinationKeys,
}

impl RateLimiter {
    pub fn unlimited() -> Self {
        Self { shared: None }
    }

    /// The destination's bucket; unlimited for a rate of 0.
    pub fn new(rate_per_sec: u32, queue: &Queue, keys: &DestinationKeys) -> Self {
        if rate_per_sec == 0 {
            return Self::unlimited();
        }
        Self {
            shared: Some(SharedBucket {
                rate_per_sec,
                queue: queue.clone(),
                keys: keys.clone(),
            }),
        }
    }

    /// Waits until at least one token is available and takes up to `want`.
    /// Returns None if cancelled while waiting.
    pub async fn acquire(&mut self, want: usize, token: &CancellationToken) -> Option<usize> {
        let Some(bucket) = &self.shared else {
            return Some(want);
        };
        if want == 0 {
            return Some(0);
        }
        loop {
            let take = bucket
                .queue
                .take_tokens(&bucket.keys, bucket.rate_per_sec, want as i64);
            let wait = tokio::select! {
                _ = token.cancelled() => return None,
                taken = take => match taken {
                    Ok(Tokens { granted, .. }) if granted > 0 => return Some(granted),
                    Ok(Tokens { wait, .. }) => wait.max(Duration::from_millis(1)),
                    Err(_) => UNANSWERED_RETRY,
                },
            };
            tokio::select! {
                _ = token.cancelled() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Gives back tokens taken for entries that were not there to read.
    /// Best effort, and bounded (a hung Redis must not hold the reader):
    /// a refund that does not arrive only slows the next second.
    pub async fn refund(&mut self, unused: usize) {
        let Some(bucket) = &self.shared else {
            return;
        };
        if unused > 0 {
            let give_back =
                bucket
                    .queue
                    .take_tokens(&bucket.keys, bucket.rate_per_sec, -(unused as i64));
            let _ = tokio::time::timeout(REFUND_LIMIT, give_back).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlimited_grants_everything() {
        let mut limiter = RateLimiter::unlimited();
        assert_eq!(
            limiter.acquire(64, &CancellationToken::new()).await,
            Some(64)
        );
    }
}
