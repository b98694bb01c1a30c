//! Time: whole-second UTC timestamps, half-open periods, and clocks.
//!
//! Balances are integrated over whole seconds, so [`Timestamp`] is an `i64`
//! count of seconds since the Unix epoch; it prints and parses as RFC 3339.
//! [`Clock`] lets tests drive time by hand ([`ManualClock`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp string that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {0:?} is not RFC 3339 (e.g. 2026-11-23T12:00:00Z) or Unix seconds")]
pub struct BadTimestamp(pub String);

impl Timestamp {
    /// From Unix seconds.
    pub const fn from_unix(secs: i64) -> Self {
        Timestamp(secs)
    }

    /// Unix seconds.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp())
    }

    /// `self + secs`, saturating at the ends of `i64`.
    #[must_use]
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp(self.0, 0) {
            Some(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::Secs, true)),
            None => write!(f, "@{}", self.0),
        }
    }
}

/// Parses RFC 3339 (any offset, fractional seconds truncated) or a plain
/// integer of Unix seconds.
impl Timestamp {
    /// An RFC 3339 time only (no Unix seconds, no surrounding white
    /// space); fractions of a second are dropped.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, BadTimestamp> {
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Timestamp(dt.timestamp()))
            .map_err(|_| BadTimestamp(s.to_owned()))
    }
}

impl FromStr for Timestamp {
    type Err = BadTimestamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<i64>() {
            return Ok(Timestamp(secs));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|dt| Timestamp(dt.timestamp()))
            .map_err(|_| BadTimestamp(s.to_owned()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A half-open time range `[start, end)` with `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPeriod")]
pub struct Period {
    start: Timestamp,
    end: Timestamp,
}

#[derive(Deserialize)]
struct RawPeriod {
    start: Timestamp,
    end: Timestamp,
}

/// A period whose end is not after its start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period [{start}, {end}) is empty or reversed: end must be after start")]
pub struct PeriodError {
    /// Given start.
    pub start: Timestamp,
    /// Given end.
    pub end: Timestamp,
}

impl TryFrom<RawPeriod> for Period {
    type Error = PeriodError;
    fn try_from(r: RawPeriod) -> Result<Self, Self::Error> {
        Period::new(r.start, r.end)
    }
}

impl Period {
    /// `[start, end)`, if `start < end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Period, PeriodError> {
        if start < end {
            Ok(Period { start, end })
        } else {
            Err(PeriodError { start, end })
        }
    }

    /// Inclusive start.
    pub fn start(self) -> Timestamp {
        self.start
    }

    /// Exclusive end.
    pub fn end(self) -> Timestamp {
        self.end
    }

    /// Length in seconds (always > 0).
    pub fn secs(self) -> u64 {
        self.end.0.abs_diff(self.start.0)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests and simulation).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_rfc3339_and_unix_seconds() {
        let t: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        assert_eq!(t.unix(), 1_795_435_200);
        assert_eq!(t.to_string(), "2026-11-23T12:00:00Z");
        assert_eq!("2026-11-23T13:00:00+01:00".parse::<Timestamp>().unwrap(), t);
        assert_eq!("1795435200".parse::<Timestamp>().unwrap(), t);
        assert!("23/11/2026".parse::<Timestamp>().is_err());
    }

    #[test]
    fn periods_must_be_non_empty() {
        let a = Timestamp::from_unix(10);
        let b = Timestamp::from_unix(20);
        assert_eq!(Period::new(a, b).unwrap().secs(), 10);
        assert!(Period::new(b, a).is_err());
        assert!(Period::new(a, a).is_err());
        let bad = r#"{"start":"20","end":"10"}"#;
        assert!(serde_json::from_str::<Period>(bad).is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_unix(100));
        assert_eq!(c.now().unix(), 100);
        c.advance(5);
        assert_eq!(c.now().unix(), 105);
    }
}
