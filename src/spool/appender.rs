//! The thread that writes the spool: it takes every record waiting at
//! that moment, writes them to the current segment with one write and one
//! fsync (group commit), and answers each only then. It also seals
//! segments for the drainer and carries out the drainer's handover back
//! to Redis (hold, then release).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::{Appended, Divert, Inner, MAX_BATCH, SEGMENT_BYTES, Segment, SpoolError, segments};

/// A record waiting for its fsync.
pub(super) struct Pending {
    pub(super) record: Vec<u8>,
    pub(super) received_ms: u64,
    pub(super) why: Divert,
    pub(super) done: oneshot::Sender<Result<Appended, SpoolError>>,
}

pub(super) enum Command {
    Append(Pending),
    /// Seal the segment being written (the drainer wants it).
    Seal(oneshot::Sender<()>),
    /// The drainer is about to drain what is left: hold back appends that
    /// only keep order until `Release`.
    Hold(oneshot::Sender<()>),
    /// The drainer drained (or failed to drain) what was left: hand back to
    /// Redis if everything written is confirmed. Answers whether it did.
    Release(oneshot::Sender<bool>),
    /// Finish what is queued and end (shutdown).
    Stop,
}

/// The thread that appends and fsyncs.
pub(super) struct Appender {
    inner: Arc<Inner>,
    commands: mpsc::Receiver<Command>,
    active: Option<(u64, File, u64)>,
    next_seq: u64,
    /// Between the drainer's `Hold` and `Release`: appends that only keep
    /// order wait here.
    holding: bool,
    held: Vec<Pending>,
    /// An event had to be spooled during the hold: no handing back.
    forced_in_hold: bool,
    /// Why events are being refused, and how many so far, until an
    /// append succeeds.
    refusing: Option<(Refusing, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusing {
    Full,
    WriteFailed,
}

impl Refusing {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::WriteFailed => "write failed",
        }
    }
}

impl Appender {
    pub(super) fn new(inner: Arc<Inner>, commands: mpsc::Receiver<Command>, next_seq: u64) -> Self {
        Self {
            inner,
            commands,
            active: None,
            next_seq,
            holding: false,
            held: Vec::new(),
            forced_in_hold: false,
            refusing: None,
        }
    }

    pub(super) fn run(mut self) {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.commands.blocking_recv() {
            let mut stop = false;
            let mut seals = Vec::new();
            let mut holds = Vec::new();
            let mut releases = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(pending) => {
                        if self.holding && pending.why == Divert::KeepOrder {
                            self.held.push(pending);
                        } else {
                            batch.push(pending);
                        }
                    }
                    Command::Seal(sealed) => seals.push(sealed),
                    Command::Hold(held) => {
                        self.holding = true;
                        self.forced_in_hold = false;
                        holds.push(held);
                    }
                    Command::Release(released) => releases.push(released),
                    Command::Stop => stop = true,
                }
                if batch.len() < MAX_BATCH && !stop {
                    next = self.commands.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.write(&mut batch);
            }
            if !seals.is_empty() {
                self.seal();
                for sealed in seals {
                    let _ = sealed.send(());
                }
            }
            // Acknowledged after the batch is written: the drainer's last
            // step then sees everything written before the hold.
            for held in holds {
                let _ = held.send(());
            }
            for released in releases {
                let handed_back = self.release();
                let _ = released.send(handed_back);
            }
            if stop {
                self.holding = false;
                let mut held = std::mem::take(&mut self.held);
                self.write(&mut held);
                break;
            }
        }
        // Whatever still waits is answered "stopped" (503) by the drop.
    }

    /// Ends a hold: hands back to Redis if everything written is confirmed
    /// and nothing had to be spooled during it; the held events then go to
    /// Redis, else they are written now.
    fn release(&mut self) -> bool {
        if !self.holding {
            return false;
        }
        self.holding = false;
        let handed_back = !self.forced_in_hold && self.inner.events.load(Ordering::Acquire) == 0;
        if handed_back {
            self.inner.diverting.store(false, Ordering::Release);
        }
        // With diverting off, `write` sends each of them to Redis.
        let mut held = std::mem::take(&mut self.held);
        self.write(&mut held);
        handed_back
    }

    /// Writes the batch with one write and one fsync; answers every
    /// record. A full spool refuses the records that do not fit; an I/O
    /// error refuses the batch and cuts the file back to what was durable.
    /// An event that only kept order, arriving after the spool handed back
    /// to Redis, is not written but sent there.
    fn write(&mut self, batch: &mut Vec<Pending>) {
        let mut room = self.inner.room();
        let mut buffer = Vec::new();
        let mut accepted = Vec::new();
        let mut oldest = u64::MAX;
        let mut forced = false;
        let diverting = self.inner.diverting.load(Ordering::Acquire);
        for pending in batch.drain(..) {
            if pending.why == Divert::KeepOrder && !diverting {
                let _ = pending.done.send(Ok(Appended::ToRedis));
                continue;
            }
            if pending.record.len() as u64 > room {
                self.refusing(Refusing::Full, 1, None);
                let _ = pending.done.send(Err(SpoolError::Full));
                continue;
            }
            room -= pending.record.len() as u64;
            oldest = oldest.min(pending.received_ms);
            forced |= pending.why == Divert::RedisAway;
            buffer.extend_from_slice(&pending.record);
            accepted.push(pending.done);
        }
        if accepted.is_empty() {
            return;
        }
        let result = self.append_durably(&buffer, accepted.len() as u64, oldest);
        match result {
            Ok(()) => {
                if let Some((why, refused)) = self.refusing.take() {
                    info!(
                        after = why.as_str(),
                        refused, "the spool takes events again"
                    );
                }
                // Before any answer: a request sent after one of these
                // events was answered must follow it into the spool.
                self.inner.diverting.store(true, Ordering::Release);
                self.forced_in_hold |= forced && self.holding;
                self.inner.arrived.notify_one();
                for done in accepted {
                    let _ = done.send(Ok(Appended::Spooled));
                }
            }
            Err(e) => {
                self.refusing(Refusing::WriteFailed, accepted.len() as u64, Some(&e));
                for done in accepted {
                    let _ = done.send(Err(e.copy()));
                }
            }
        }
    }

    /// Counts refused events; says so once per streak (every refused
    /// request would otherwise log a line, thousands a second), and once
    /// when an append succeeds again.
    fn refusing(&mut self, why: Refusing, events: u64, error: Option<&SpoolError>) {
        match &mut self.refusing {
            Some((current, refused)) if *current == why => *refused += events,
            streak => {
                *streak = Some((why, events));
                match why {
                    Refusing::Full => warn!(
                        spool_bytes = self.inner.bytes.load(Ordering::Relaxed),
                        max_bytes = self.inner.max_bytes,
                        disk_free = segments::disk_free(&self.inner.dir),
                        "the spool is full (spool.max_bytes, or its disk): new events get 503 until it drains"
                    ),
                    Refusing::WriteFailed => error!(
                        error = error.map(tracing::field::display),
                        "spool write failed: new events get 503 until a write succeeds"
                    ),
                }
            }
        }
    }

    fn append_durably(
        &mut self,
        buffer: &[u8],
        events: u64,
        oldest: u64,
    ) -> Result<(), SpoolError> {
        if self.active.is_none() {
            let seq = self.next_seq;
            let path = segments::segment_path(&self.inner.dir, seq);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(|source| SpoolError::Io {
                    what: format!("creating {}", path.display()),
                    source,
                })?;
            segments::sync_dir(&self.inner.dir)?;
            self.next_seq += 1;
            if let Ok(mut segments) = self.inner.segments.lock() {
                segments.push_back(Segment {
                    seq,
                    events: 0,
                    bytes: 0,
                    oldest_ms: oldest,
                    sealed: false,
                    confirmed: 0,
                });
            }
            self.active = Some((seq, file, 0));
        }
        let Some((seq, file, len)) = self.active.as_mut() else {
            return Err(SpoolError::Stopped);
        };
        let written = file.write_all(buffer).and_then(|()| file.sync_data());
        if let Err(source) = written {
            // Nothing of this batch was answered: cut it so a restart does
            // not deliver events that got 503. If even that fails, start a
            // new segment; recovery treats the remains as a torn tail.
            let _ = file.set_len(*len);
            let seq = *seq;
            self.active = None;
            self.mark_sealed(seq);
            return Err(SpoolError::Io {
                what: "append".into(),
                source,
            });
        }
        *len += buffer.len() as u64;
        let (seq, full) = (*seq, *len >= SEGMENT_BYTES);
        if let Ok(mut segments) = self.inner.segments.lock()
            && let Some(segment) = segments.iter_mut().find(|s| s.seq == seq)
        {
            if segment.events == 0 {
                segment.oldest_ms = oldest;
            }
            segment.events += events;
            segment.bytes += buffer.len() as u64;
        }
        self.inner
            .bytes
            .fetch_add(buffer.len() as u64, Ordering::Relaxed);
        self.inner.events.fetch_add(events, Ordering::AcqRel);
        self.inner.publish();
        if full {
            self.seal();
        }
        Ok(())
    }

    fn seal(&mut self) {
        if let Some((seq, _, _)) = self.active.take() {
            self.mark_sealed(seq);
        }
    }

    fn mark_sealed(&self, seq: u64) {
        if let Ok(mut segments) = self.inner.segments.lock()
            && let Some(segment) = segments.iter_mut().find(|s| s.seq == seq)
        {
            segment.sealed = true;
        }
    }
}
