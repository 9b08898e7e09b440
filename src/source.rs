//! A configured source, with everything derived from its configuration
//! once: its verifier, its Redis keys, its metrics, and what this process
//! has seen of its destination.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::clock::unix_ms;
use crate::config::{DestinationConfig, FieldSource, SourceConfig, VerifyConfig};
use crate::queue::SourceKeys;
use crate::telemetry::SourceMetrics;
use crate::verify::{KeyError, Verifier};

pub struct Source {
    pub name: String,
    pub keys: SourceKeys,
    pub verify: VerifyConfig,
    pub verifier: Verifier,
    pub id_from: FieldSource,
    pub event_type_from: FieldSource,
    pub destination: DestinationConfig,
    pub metrics: SourceMetrics,
    pub stats: DestinationStats,
}

impl Source {
    pub fn build(config: &SourceConfig, key_prefix: &str) -> Result<Self, KeyError> {
        Ok(Self {
            name: config.name.clone(),
            keys: SourceKeys::new(key_prefix, &config.name),
            verify: config.verify.clone(),
            verifier: Verifier::build(&config.verify)?,
            id_from: config.id_from.clone(),
            event_type_from: config.event_type_from.clone(),
            destination: config.destination.clone(),
            metrics: SourceMetrics::new(&config.name),
            stats: DestinationStats::default(),
        })
    }
}

/// Every source by name, in name order (listings are sorted).
#[derive(Default)]
pub struct Sources(BTreeMap<String, Arc<Source>>);

impl Sources {
    pub fn insert(&mut self, source: Source) {
        self.0.insert(source.name.clone(), Arc::new(source));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Source>> + Clone {
        self.0.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = &SourceKeys> + Clone {
        self.0.values().map(|s| &s.keys)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What this process last saw of a destination, for operators.
#[derive(Default)]
pub struct DestinationStats {
    pub in_flight: AtomicUsize,
    pub last_success_ms: AtomicU64,
    pub last_failure_ms: AtomicU64,
    /// HTTP status of the last failed attempt, 0 for none / no response.
    pub last_failure_status: AtomicU64,
}

/// How a destination looks from its last outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationState {
    Unknown,
    Healthy,
    Failing,
}

impl DestinationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Healthy => "healthy",
            Self::Failing => "failing",
        }
    }
}

impl DestinationStats {
    pub fn record(&self, success: bool, status: Option<u16>) {
        let now = unix_ms();
        if success {
            self.last_success_ms.store(now, Ordering::Relaxed);
        } else {
            self.last_failure_ms.store(now, Ordering::Relaxed);
            self.last_failure_status
                .store(status.map_or(0, u64::from), Ordering::Relaxed);
        }
    }

    /// Healthy if the last outcome was a success, failing if it was a
    /// failure, unknown before any delivery.
    pub fn state(&self) -> DestinationState {
        let ok = self.last_success_ms.load(Ordering::Relaxed);
        let failed = self.last_failure_ms.load(Ordering::Relaxed);
        match (ok, failed) {
            (0, 0) => DestinationState::Unknown,
            (ok, failed) if ok >= failed => DestinationState::Healthy,
            _ => DestinationState::Failing,
        }
    }
}
