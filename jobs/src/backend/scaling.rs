//! [`ScalingRamp`]: pace invocations to the rate at which Lambda adds capacity.
//!
//! AWS Lambda gives each function at most 1,000 new execution environments
//! per 10 seconds. A stage of 5,000 tasks fired at once gets most of them
//! throttled; their retries then back off for seconds and finish later than if
//! they had waited their turn. The ramp lets a function's invocations in
//! flight grow by `rate` per window from the first invocation on: `rate` at
//! once, `2 * rate` after one window, and so on. Spreading a stage over
//! several function names (or aliases) multiplies the rate, as each has its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// New execution environments AWS Lambda adds per function per window.
pub const LAMBDA_SCALING_RATE: usize = 1000;
/// The window of [`LAMBDA_SCALING_RATE`].
pub const LAMBDA_SCALING_WINDOW: Duration = Duration::from_secs(10);

/// Bounds one function's invocations in flight by a limit that grows with time.
#[derive(Debug)]
pub struct ScalingRamp {
    rate: usize,
    window: Duration,
    state: Mutex<RampState>,
    released: Notify,
}

#[derive(Debug, Default)]
struct RampState {
    started: Option<Instant>,
    in_flight: usize,
}

/// Held while invocations run; gives their slots back when dropped.
#[derive(Debug)]
pub struct RampPermit {
    ramp: Arc<ScalingRamp>,
    slots: usize,
}

impl Drop for RampPermit {
    fn drop(&mut self) {
        let mut state = self.ramp.state.lock().unwrap_or_else(|e| e.into_inner());
        state.in_flight -= self.slots;
        drop(state);
        self.ramp.released.notify_waiters();
    }
}

impl ScalingRamp {
    /// A ramp adding `rate` invocations in flight per `window`.
    pub fn new(rate: usize, window: Duration) -> Arc<Self> {
        Arc::new(Self {
            rate: rate.max(1),
            window: window.max(Duration::from_millis(1)),
            state: Mutex::new(RampState::default()),
            released: Notify::new(),
        })
    }

    /// Invocations allowed in flight `elapsed` after the first one.
    pub fn limit_after(&self, elapsed: Duration) -> usize {
        let windows = elapsed.as_nanos() / self.window.as_nanos();
        self.rate.saturating_mul(
            usize::try_from(windows)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
    }

    /// Waits until `slots` more invocations fit under the limit. A request
    /// larger than the limit goes ahead alone once nothing else is in flight.
    pub async fn acquire(self: &Arc<Self>, slots: usize) -> RampPermit {
        loop {
            let released = self.released.notified();
            let next_step = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let started = *state.started.get_or_insert(now);
                let limit = self.limit_after(now - started);
                if state.in_flight == 0 || state.in_flight + slots <= limit {
                    state.in_flight += slots;
                    return RampPermit {
                        ramp: Arc::clone(self),
                        slots,
                    };
                }
                let windows_done = (now - started).as_nanos() / self.window.as_nanos();
                started + self.window * (u32::try_from(windows_done + 1).unwrap_or(u32::MAX))
            };
            tokio::select! {
                _ = released => {}
                _ = tokio::time::sleep_until(next_step) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_grows_by_rate_per_window() {
        let ramp = ScalingRamp::new(1000, Duration::from_secs(10));
        assert_eq!(ramp.limit_after(Duration::ZERO), 1000);
        assert_eq!(ramp.limit_after(Duration::from_millis(9_999)), 1000);
        assert_eq!(ramp.limit_after(Duration::from_secs(10)), 2000);
        assert_eq!(ramp.limit_after(Duration::from_secs(95)), 10_000);
    }

    #[tokio::test]
    async fn acquisitions_beyond_the_limit_wait_for_the_next_window() {
        let window = Duration::from_secs(1);
        let ramp = ScalingRamp::new(2, window);
        let start = Instant::now();
        let first = ramp.acquire(1).await;
        let second = ramp.acquire(1).await;
        assert!(start.elapsed() < window, "two fit in the first window");
        // The third must wait for the second window even though nothing is released.
        let third = ramp.acquire(1).await;
        assert!(start.elapsed() >= window, "{:?}", start.elapsed());
        drop((first, second, third));
    }

    #[tokio::test]
    async fn a_release_lets_a_waiter_in() {
        let ramp = ScalingRamp::new(1, Duration::from_secs(3600));
        let first = ramp.acquire(1).await;
        let waiter = {
            let ramp = Arc::clone(&ramp);
            tokio::spawn(async move { ramp.acquire(1).await.slots })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the limit is one in flight");
        drop(first);
        assert_eq!(waiter.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_oversized_request_runs_alone() {
        let ramp = ScalingRamp::new(2, Duration::from_secs(3600));
        let big = ramp.acquire(5).await;
        assert_eq!(big.slots, 5);
    }
}
