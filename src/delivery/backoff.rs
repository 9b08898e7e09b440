//! Retry delays: exponential backoff with optional full jitter, and the
//! destination's `Retry-After`.

use std::time::{Duration, SystemTime};

use crate::config::RetryConfig;

/// Delay before the attempt after `attempt` (1-based) failed:
/// `base · 2^(attempt-1)` capped at `max`; with jitter a uniform share of
/// that (`unit` in [0, 1)); never earlier than the destination's
/// Retry-After, which is itself capped at `max`.
pub fn backoff_delay(
    retry: &RetryConfig,
    attempt: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    let exponent = attempt.saturating_sub(1).min(40);
    let exponential = retry
        .base
        .checked_mul(1u32 << exponent.min(31))
        .unwrap_or(retry.max)
        .min(retry.max);
    let delay = if retry.jitter {
        exponential.mul_f64(unit.clamp(0.0, 1.0))
    } else {
        exponential
    };
    match retry_after {
        Some(asked) => delay.max(asked.min(retry.max)),
        None => delay,
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: bool) -> RetryConfig {
        RetryConfig {
            max_attempts: 8,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter,
        }
    }

    #[test]
    fn doubles_and_caps() {
        let p = policy(false);
        let secs: Vec<u64> = (1..=8)
            .map(|a| backoff_delay(&p, a, None, 0.5).as_secs())
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff_delay(&p, 1000, None, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_scales_within_the_window() {
        let p = policy(true);
        assert_eq!(backoff_delay(&p, 3, None, 0.0), Duration::ZERO);
        assert_eq!(backoff_delay(&p, 3, None, 0.5), Duration::from_secs(2));
        assert!(backoff_delay(&p, 3, None, 0.999) < Duration::from_secs(4));
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let p = policy(false);
        assert_eq!(
            backoff_delay(&p, 1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff_delay(&p, 1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(60)
        );
        assert_eq!(
            backoff_delay(&p, 5, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(16)
        );
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
