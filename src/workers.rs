//! The global delivery concurrency (`worker.concurrency`) and how much of
//! it is in use, shared by delivery, health and the gauges.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Workers {
    /// One permit per delivery that may run at once.
    pub slots: Arc<Semaphore>,
    max: usize,
    /// Deliveries actually running (readers also hold slots while reading).
    busy: Arc<AtomicUsize>,
}

/// Counts a running delivery for as long as it lives.
pub struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            busy: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    pub fn delivery_started(&self) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self.busy.clone())
    }
}
