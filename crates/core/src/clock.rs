//! Time as an injected dependency, so that expiry, rotation and dormancy are testable.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, as JWT `NumericDate` values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    pub fn seconds(self) -> i64 {
        self.0
    }

    /// `self + secs`, saturating: far-future arithmetic never wraps into the past.
    pub fn plus(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    pub fn minus(self, secs: i64) -> UnixTime {
        UnixTime(self.0.saturating_sub(secs))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        // A clock before 1970 is a broken host; treating it as the epoch keeps every
        // expiry check failing closed (everything looks expired or not yet valid).
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// A clock that tests set and advance by hand. Clones share the same time.
#[derive(Clone, Debug)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    pub fn new(at: i64) -> Self {
        FixedClock(Arc::new(AtomicI64::new(at)))
    }

    pub fn set(&self, at: i64) {
        self.0.store(at, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_is_shared_between_clones() {
        let a = FixedClock::new(100);
        let b = a.clone();
        b.advance(5);
        assert_eq!(a.now(), UnixTime(105));
        a.set(7);
        assert_eq!(b.now(), UnixTime(7));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixTime(i64::MAX).plus(10), UnixTime(i64::MAX));
        assert_eq!(UnixTime(i64::MIN).minus(10), UnixTime(i64::MIN));
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now().0 > 1_704_067_200);
    }
}
