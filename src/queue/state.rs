//! A destination's shared state: paused by an operator, its circuit
//! breaker, and its last success and failure. It lives in Redis so every
//! instance obeys it and a restart keeps it.

use std::fmt;
use std::time::Duration;

use fred::interfaces::HashesInterface;
use fred::types::Value;

use super::reply::{redis, reply, value_string, value_u64};
use super::{DestinationKeys, Queue, QueueError};

/// The circuit breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    /// No attempts until this unix ms; then one probe decides.
    Open {
        until_ms: u64,
    },
    /// A probe is under way (its holder has it until `probe_until_ms`).
    HalfOpen {
        probe_until_ms: u64,
    },
}

/// What operators see of a destination (`hookd_destination_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DestinationState {
    Healthy,
    Failing,
    Open,
    HalfOpen,
    Paused,
    Unknown,
}

impl DestinationState {
    pub const ALL: [Self; 6] = [
        Self::Healthy,
        Self::Failing,
        Self::Open,
        Self::HalfOpen,
        Self::Paused,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Failing => "failing",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Paused => "paused",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DestinationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One read of a destination's state hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationStatus {
    pub paused: bool,
    pub breaker: Breaker,
    /// Consecutive failed attempts.
    pub failures: u64,
    pub last_success_ms: u64,
    pub last_failure_ms: u64,
    /// HTTP status of the last failure, if it had one.
    pub last_failure_status: Option<u16>,
}

impl Default for DestinationStatus {
    fn default() -> Self {
        Self {
            paused: false,
            breaker: Breaker::Closed,
            failures: 0,
            last_success_ms: 0,
            last_failure_ms: 0,
            last_failure_status: None,
        }
    }
}

/// What a take from a shared token bucket got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    pub granted: usize,
    /// When none was granted: how long until the next token.
    pub wait: Duration,
}

/// What a destination's reader may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Deliver as usual.
    Open,
    /// Deliver nothing: paused, or the breaker is open (until this unix ms)
    /// or a probe is under way elsewhere.
    Shut { until_ms: Option<u64> },
    /// The cooldown is over: try for the probe.
    Probe,
}

impl DestinationStatus {
    pub fn state(&self) -> DestinationState {
        if self.paused {
            return DestinationState::Paused;
        }
        match self.breaker {
            Breaker::Open { .. } => DestinationState::Open,
            Breaker::HalfOpen { .. } => DestinationState::HalfOpen,
            Breaker::Closed => match (self.last_success_ms, self.last_failure_ms) {
                (0, 0) => DestinationState::Unknown,
                (ok, failed) if ok >= failed => DestinationState::Healthy,
                _ => DestinationState::Failing,
            },
        }
    }

    pub fn gate(&self, now_ms: u64) -> Gate {
        if self.paused {
            return Gate::Shut { until_ms: None };
        }
        match self.breaker {
            Breaker::Closed => Gate::Open,
            Breaker::Open { until_ms } if now_ms < until_ms => Gate::Shut {
                until_ms: Some(until_ms),
            },
            Breaker::HalfOpen { probe_until_ms } if now_ms < probe_until_ms => Gate::Shut {
                until_ms: Some(probe_until_ms),
            },
            _ => Gate::Probe,
        }
    }

    fn parse(fields: &[Value]) -> Self {
        let text = |i: usize| fields.get(i).and_then(value_string).unwrap_or_default();
        let number = |i: usize| fields.get(i).and_then(value_u64).unwrap_or(0);
        let breaker = match text(1).as_str() {
            "open" => Breaker::Open {
                until_ms: number(2),
            },
            "half_open" => Breaker::HalfOpen {
                probe_until_ms: number(3),
            },
            _ => Breaker::Closed,
        };
        Self {
            paused: !text(0).is_empty(),
            breaker,
            failures: number(4),
            last_success_ms: number(5),
            last_failure_ms: number(6),
            last_failure_status: text(7).parse().ok(),
        }
    }
}

impl Queue {
    /// The state of each destination, in one round trip (`state.lua`).
    pub async fn states(
        &self,
        destinations: &[&DestinationKeys],
    ) -> Result<Vec<DestinationStatus>, QueueError> {
        const OP: &str = "state";
        if destinations.is_empty() {
            return Ok(Vec::new());
        }
        let result = self
            .eval(
                OP,
                &self.scripts.state,
                destinations.iter().map(|d| d.state.as_str()).collect(),
                Vec::new,
                None,
            )
            .await?;
        match result {
            Value::Array(rows) if rows.len() == destinations.len() => Ok(rows
                .iter()
                .map(|row| match row {
                    Value::Array(fields) => DestinationStatus::parse(fields),
                    _ => DestinationStatus::default(),
                })
                .collect()),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Takes up to `want` tokens of a destination's shared `rate_per_sec`
    /// bucket (`rate.lua`); a negative `want` gives tokens back.
    pub async fn take_tokens(
        &self,
        destination: &DestinationKeys,
        rate_per_sec: u32,
        want: i64,
    ) -> Result<Tokens, QueueError> {
        const OP: &str = "rate";
        let result = self
            .eval(
                OP,
                &self.scripts.rate,
                vec![destination.rate.as_str()],
                || vec![Value::from(i64::from(rate_per_sec)), Value::from(want)],
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 2 => Ok(Tokens {
                granted: value_u64(&parts[0]).unwrap_or(0) as usize,
                wait: Duration::from_millis(value_u64(&parts[1]).unwrap_or(0)),
            }),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Tries to become the one prober of an open breaker whose cooldown is
    /// over, for `lease`; true if this caller got it (`probe.lua`).
    pub async fn try_probe(
        &self,
        destination: &DestinationKeys,
        lease: Duration,
    ) -> Result<bool, QueueError> {
        let result = self
            .eval(
                "probe",
                &self.scripts.probe,
                vec![&destination.state],
                || vec![Value::Integer(lease.as_millis() as i64)],
                None,
            )
            .await?;
        Ok(value_u64(&result) == Some(1))
    }

    /// Pauses or resumes a destination for every instance.
    pub async fn set_paused(
        &self,
        destination: &DestinationKeys,
        paused: bool,
    ) -> Result<(), QueueError> {
        let client = self.pool.next();
        let key = destination.state.as_str();
        if paused {
            let _: Value = client
                .hset(key, ("paused", crate::clock::unix_ms().to_string()))
                .await
                .map_err(redis("hset"))?;
        } else {
            let _: Value = client.hdel(key, "paused").await.map_err(redis("hdel"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(breaker: Breaker, paused: bool) -> DestinationStatus {
        DestinationStatus {
            paused,
            breaker,
            ..DestinationStatus::default()
        }
    }

    #[test]
    fn pause_wins_over_the_breaker() {
        let s = status(Breaker::Open { until_ms: 10 }, true);
        assert_eq!(s.state(), DestinationState::Paused);
        assert_eq!(s.gate(100), Gate::Shut { until_ms: None });
    }

    #[test]
    fn an_open_breaker_shuts_until_its_cooldown_then_asks_for_a_probe() {
        let s = status(Breaker::Open { until_ms: 1000 }, false);
        assert_eq!(s.state(), DestinationState::Open);
        assert_eq!(
            s.gate(999),
            Gate::Shut {
                until_ms: Some(1000)
            }
        );
        assert_eq!(s.gate(1000), Gate::Probe);
        let probing = status(
            Breaker::HalfOpen {
                probe_until_ms: 2000,
            },
            false,
        );
        assert_eq!(probing.state(), DestinationState::HalfOpen);
        assert_eq!(
            probing.gate(1500),
            Gate::Shut {
                until_ms: Some(2000)
            }
        );
        // A prober that vanished leaves the lease to expire.
        assert_eq!(probing.gate(2000), Gate::Probe);
    }

    #[test]
    fn closed_is_healthy_failing_or_unknown_by_the_last_outcome() {
        let mut s = DestinationStatus::default();
        assert_eq!(s.state(), DestinationState::Unknown);
        assert_eq!(s.gate(5), Gate::Open);
        s.last_success_ms = 10;
        assert_eq!(s.state(), DestinationState::Healthy);
        s.last_failure_ms = 11;
        assert_eq!(s.state(), DestinationState::Failing);
    }

    #[test]
    fn state_hashes_parse() {
        let v = |s: &str| Value::from(s);
        let parsed = DestinationStatus::parse(&[
            v(""),
            v("open"),
            v("5000"),
            v(""),
            v("21"),
            v("100"),
            v("200"),
            v("503"),
        ]);
        assert_eq!(parsed.breaker, Breaker::Open { until_ms: 5000 });
        assert_eq!(parsed.failures, 21);
        assert_eq!(parsed.last_failure_status, Some(503));
        assert!(!parsed.paused);
    }
}
