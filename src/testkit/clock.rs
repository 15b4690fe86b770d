//! A controllable wall clock: `Clock::take()` moves every wall-clock reading of the process
//! (`util::now_unix`, `util::now_millis`: sessions, lockouts, audit times, usage hours, billing
//! periods) by `advance`, and puts it back on drop. Monotonic timers (rate limiters, timeouts)
//! are not moved.
//!
//! The clock is the process's: while one test holds it, another `take` waits, but tests that
//! do not take it still see the moved time. Put tests that move the clock in a test file of
//! their own (cargo runs each file as its own process).
//!
//! ```
//! use std::time::Duration;
//! use tenantd::testkit::{Clock, TestServer};
//!
//! let s = TestServer::start();
//! let world = s.seed(&[("acme", &["owner"])]);
//! let token = world.token("acme", "owner");
//! assert_eq!(s.get_as("/api/v1/auth/me", token).status, 200);
//! let clock = Clock::take();
//! clock.advance(Duration::from_secs(13 * 3600)); // past the 12-hour session lifetime
//! assert_eq!(s.get_as("/api/v1/auth/me", token).status, 401);
//! drop(clock);
//! ```

use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::util::CLOCK_SHIFT_MS;

static HELD: Mutex<()> = Mutex::new(());

/// The process's wall clock, held; moved back to real time on drop.
pub struct Clock {
    _held: MutexGuard<'static, ()>,
}

impl Clock {
    /// Takes the clock (waiting while another test holds it), at real time.
    pub fn take() -> Clock {
        let held = HELD.lock();
        CLOCK_SHIFT_MS.store(0, std::sync::atomic::Ordering::SeqCst);
        Clock { _held: held }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 2);
        CLOCK_SHIFT_MS.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// How far the clock is ahead of real time.
    pub fn shift(&self) -> Duration {
        Duration::from_millis(CLOCK_SHIFT_MS.load(std::sync::atomic::Ordering::SeqCst).max(0) as u64)
    }

    /// The moved time, in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        crate::util::now_unix()
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        CLOCK_SHIFT_MS.store(0, std::sync::atomic::Ordering::SeqCst);
    }
}
