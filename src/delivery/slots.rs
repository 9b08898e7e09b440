//! The slots a delivery needs before it may start: one of the global
//! `worker.concurrency` and one of its destination's `max_in_flight`.

use tokio::sync::OwnedSemaphorePermit;

/// A delivery's right to run: one global worker slot and one slot of its
/// destination. Dropping it frees both.
pub struct Permits {
    _worker: OwnedSemaphorePermit,
    _destination: OwnedSemaphorePermit,
}

/// The slots one read may fill: as many worker slots as destination slots,
/// held as two multi-permit grants so that a read asking for 64 entries and
/// getting 2 back costs two semaphore operations, not 128.
pub struct Grant {
    pub worker: OwnedSemaphorePermit,
    pub destination: OwnedSemaphorePermit,
}

impl Grant {
    pub fn len(&self) -> usize {
        self.destination.num_permits()
    }

    /// Gives back all but `n` slots (at least one is always kept).
    pub fn truncate(&mut self, n: usize) {
        let excess = self.len().saturating_sub(n.max(1));
        if excess > 0 {
            drop(self.worker.split(excess));
            drop(self.destination.split(excess));
        }
    }

    /// One delivery's slots, while any are left; what is left when the
    /// grant is dropped goes back at once.
    pub fn take_one(&mut self) -> Option<Permits> {
        if self.len() == 0 {
            return None;
        }
        Some(Permits {
            _worker: self.worker.split(1)?,
            _destination: self.destination.split(1)?,
        })
    }
}
