//! The physical time effect: wall-clock milliseconds, read only through this trait so tests
//! and simulations control time.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A reading of the physical clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PhysicalTime {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// How far off the reading may be, in milliseconds, if the source knows (`None` when it
    /// does not say, which is not the same as exact).
    pub uncertainty_ms: Option<u64>,
}

impl PhysicalTime {
    /// A reading known to be exact.
    pub const fn exact(ms: u64) -> Self {
        Self { ms, uncertainty_ms: Some(0) }
    }

    /// A reading whose error bound the source does not know.
    pub const fn unbounded(ms: u64) -> Self {
        Self { ms, uncertainty_ms: None }
    }
}

/// Why the physical time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The system clock is set before 1970.
    #[error("system clock reads {behind_ms} ms before the Unix epoch")]
    BeforeUnixEpoch {
        /// How far before the epoch.
        behind_ms: u64,
    },
    /// The reading does not fit in `u64` milliseconds.
    #[error("clock reading does not fit in u64 milliseconds")]
    OutOfRange,
    /// The clock source is unavailable (a simulated failure, a lost time service, ...).
    #[error("physical time unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
    },
}

/// A source of physical (wall-clock) time.
///
/// ```
/// use reconf_effects::{PhysicalTimeEffects, SimulatedClock, TimeError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), TimeError> {
/// let clock = SimulatedClock::new(1_000);
/// clock.advance_ms(250);
/// assert_eq!(clock.physical_time().await?.ms, 1_250);
///
/// clock.fail_next(1);
/// assert!(matches!(clock.physical_time().await, Err(TimeError::Unavailable { .. })));
/// assert_eq!(clock.physical_time().await?.ms, 1_250);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait PhysicalTimeEffects: Send + Sync {
    /// The current physical time.
    async fn physical_time(&self) -> Result<PhysicalTime, TimeError>;
}

#[async_trait]
impl<T: PhysicalTimeEffects + ?Sized> PhysicalTimeEffects for Arc<T> {
    async fn physical_time(&self) -> Result<PhysicalTime, TimeError> {
        (**self).physical_time().await
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock.
    pub const fn new() -> Self {
        Self
    }

    /// Reads the clock without going through the async trait.
    pub fn now(&self) -> Result<PhysicalTime, TimeError> {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Ok(PhysicalTime::unbounded(millis(since).ok_or(TimeError::OutOfRange)?)),
            Err(e) => Err(TimeError::BeforeUnixEpoch { behind_ms: millis(e.duration()).unwrap_or(u64::MAX) }),
        }
    }
}

#[async_trait]
impl PhysicalTimeEffects for SystemClock {
    async fn physical_time(&self) -> Result<PhysicalTime, TimeError> {
        self.now()
    }
}

fn millis(d: Duration) -> Option<u64> {
    u64::try_from(d.as_millis()).ok()
}

/// A clock under the test's control: set, advanced and made to fail explicitly, never by
/// the passage of real time.
///
/// Clones share one clock, so a test keeps a handle while the code under test reads another.
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug)]
struct SimState {
    ms: u64,
    uncertainty_ms: Option<u64>,
    failures_left: u64,
}

impl SimulatedClock {
    /// A clock reading `ms`, exact.
    pub fn new(ms: u64) -> Self {
        Self { state: Arc::new(Mutex::new(SimState { ms, uncertainty_ms: Some(0), failures_left: 0 })) }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // The state is a few plain integers, each written whole, so a panic elsewhere while
        // the lock was held cannot have left it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the reading. Going backwards is allowed: real clocks do, and tests need to.
    pub fn set(&self, ms: u64) {
        self.lock().ms = ms;
    }

    /// Moves the reading forward by `ms` (saturating).
    pub fn advance_ms(&self, ms: u64) {
        let mut s = self.lock();
        s.ms = s.ms.saturating_add(ms);
    }

    /// Moves the reading forward by `by` (saturating, truncated to whole milliseconds).
    pub fn advance(&self, by: Duration) {
        self.advance_ms(millis(by).unwrap_or(u64::MAX));
    }

    /// Sets the uncertainty later readings report.
    pub fn set_uncertainty(&self, uncertainty_ms: Option<u64>) {
        self.lock().uncertainty_ms = uncertainty_ms;
    }

    /// Makes the next `n` reads fail with [`TimeError::Unavailable`] (replacing any failures
    /// still pending; `0` cancels them).
    pub fn fail_next(&self, n: u64) {
        self.lock().failures_left = n;
    }

    /// The current reading, for assertions: neither fails nor uses up a pending failure.
    pub fn peek(&self) -> PhysicalTime {
        let s = self.lock();
        PhysicalTime { ms: s.ms, uncertainty_ms: s.uncertainty_ms }
    }
}

impl Default for SimulatedClock {
    /// A clock reading 0 (the epoch), exact.
    fn default() -> Self {
        Self::new(0)
    }
}

#[async_trait]
impl PhysicalTimeEffects for SimulatedClock {
    async fn physical_time(&self) -> Result<PhysicalTime, TimeError> {
        let mut s = self.lock();
        if s.failures_left > 0 {
            s.failures_left -= 1;
            return Err(TimeError::Unavailable {
                reason: format!("simulated clock failure ({} more pending)", s.failures_left),
            });
        }
        Ok(PhysicalTime { ms: s.ms, uncertainty_ms: s.uncertainty_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn system_clock_is_after_2020_and_monotone_enough() {
        let a = SystemClock::new().physical_time().await.unwrap();
        let b = SystemClock.physical_time().await.unwrap();
        assert!(a.ms > 1_577_836_800_000, "{a:?}");
        assert!(b.ms + 1_000 >= a.ms);
        assert_eq!(a.uncertainty_ms, None);
    }

    #[tokio::test]
    async fn simulated_clock_set_advance_and_share() {
        let clock = SimulatedClock::new(10);
        let other = clock.clone();
        clock.advance_ms(5);
        clock.advance(Duration::from_millis(7));
        assert_eq!(other.physical_time().await.unwrap(), PhysicalTime::exact(22));
        clock.set(3);
        assert_eq!(other.physical_time().await.unwrap().ms, 3);
        clock.advance_ms(u64::MAX);
        assert_eq!(other.peek().ms, u64::MAX);
        clock.set_uncertainty(Some(40));
        assert_eq!(other.physical_time().await.unwrap().uncertainty_ms, Some(40));
        assert_eq!(SimulatedClock::default().peek(), PhysicalTime::exact(0));
    }

    #[tokio::test]
    async fn simulated_clock_fails_exactly_the_next_n_reads() {
        let clock = SimulatedClock::new(1);
        clock.fail_next(2);
        assert_eq!(clock.peek().ms, 1, "peek neither fails nor consumes a failure");
        for _ in 0..2 {
            assert!(matches!(clock.physical_time().await, Err(TimeError::Unavailable { .. })));
        }
        assert_eq!(clock.physical_time().await.unwrap().ms, 1);
        clock.fail_next(5);
        clock.fail_next(0);
        assert!(clock.physical_time().await.is_ok());
    }

    #[tokio::test]
    async fn arc_and_dyn_clocks_work() {
        let clock: Arc<dyn PhysicalTimeEffects> = Arc::new(SimulatedClock::new(9));
        assert_eq!(clock.physical_time().await.unwrap().ms, 9);
    }
}
