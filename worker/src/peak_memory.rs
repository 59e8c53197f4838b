//! A memory pool that remembers its high-water mark, for task reports.

use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::Result as DFResult;
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

use crate::spec::MemoryPoolKind;

/// A DataFusion pool of the task's kind, bounded by the task's memory limit,
/// plus a peak counter.
#[derive(Debug)]
pub struct PeakMemoryPool {
    inner: Box<dyn MemoryPool>,
    peak_bytes: AtomicUsize,
}

impl PeakMemoryPool {
    /// A fair spill pool of `limit_bytes`.
    pub fn new(limit_bytes: usize) -> Self {
        Self::of_kind(MemoryPoolKind::Fair, limit_bytes)
    }

    /// A pool of `kind` and `limit_bytes`.
    pub fn of_kind(kind: MemoryPoolKind, limit_bytes: usize) -> Self {
        let inner: Box<dyn MemoryPool> = match kind {
            MemoryPoolKind::Fair => Box::new(FairSpillPool::new(limit_bytes)),
            MemoryPoolKind::Greedy => Box::new(GreedyMemoryPool::new(limit_bytes)),
        };
        Self {
            inner,
            peak_bytes: AtomicUsize::new(0),
        }
    }

    /// Highest reservation total seen.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Ordering::Relaxed)
    }

    fn note(&self) {
        self.peak_bytes
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl MemoryPool for PeakMemoryPool {
    fn name(&self) -> &str {
        "PeakMemoryPool"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer);
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer);
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.note();
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink);
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DFResult<()> {
        self.inner.try_grow(reservation, additional)?;
        self.note();
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

impl std::fmt::Display for PeakMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PeakMemoryPool(peak={} bytes, {})",
            self.peak_bytes(),
            self.inner
        )
    }
}
