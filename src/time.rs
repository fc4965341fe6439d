//! Time as data: every core takes `now: Time` and reports its next deadline.
//!
//! `Time` is milliseconds since the Unix epoch. The daemon feeds wall-clock time; the
//! simulator starts at a chosen epoch and jumps from event to event. Nothing in the
//! library reads the clock.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time, in milliseconds since the Unix epoch.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Time(pub u64);

impl Time {
    /// Monday 2026-01-05 00:00 UTC: the simulator's default epoch (a weekday).
    pub const SIM_EPOCH: Time = Time(1_767_571_200_000);

    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    pub fn from_secs_f64(s: f64) -> Self {
        Time((s * 1000.0).round().max(0.0) as u64)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Seconds elapsed since `earlier`, as f64 (zero if `earlier` is later).
    pub fn secs_since(self, earlier: Time) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / 1000.0
    }

    /// Minutes after midnight, in a zone `utc_offset_min` minutes east of UTC.
    pub fn minute_of_day(self, utc_offset_min: i32) -> u32 {
        let local = self.0 as i64 / 60_000 + i64::from(utc_offset_min);
        local.rem_euclid(24 * 60) as u32
    }
}

/// The wall clock as a [`Time`]. Only the shells (the daemon, the SIP transport, the
/// load tool) call it; every core is given `now`.
pub fn wall_clock() -> Time {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Time(d.as_millis() as u64)
}

/// How long a shell sleeps before its core's deadline `t`: from the wall clock until
/// `t`, zero when past, at most an hour.
pub fn wait_until(t: Time) -> Duration {
    let wait = t.as_millis().saturating_sub(wall_clock().as_millis());
    Duration::from_millis(wait.min(3_600_000))
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.as_millis() as u64))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(d.as_millis() as u64))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// Seconds as a `Duration`, clamping negative and non-finite values to zero.
pub fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s)
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time(1_000);
        assert_eq!(t + Duration::from_millis(500), Time(1_500));
        assert_eq!(t - Duration::from_secs(5), Time(0));
        assert_eq!(Time(500).since(t), Duration::ZERO);
        assert_eq!(Time(3_500).secs_since(t), 2.5);
    }

    #[test]
    fn minute_of_day_honours_offset() {
        let nine = Time::SIM_EPOCH + Duration::from_secs(9 * 3600);
        assert_eq!(nine.minute_of_day(0), 540);
        assert_eq!(nine.minute_of_day(60), 600);
        assert_eq!(nine.minute_of_day(-600), 1380);
    }
}
