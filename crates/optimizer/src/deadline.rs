//! The plan's solve-time budget: the one clock the optimizer reads (DESIGN.md: pure logic
//! takes a snapshot and returns a plan; the deadline only decides how hard to search).

use std::time::{Duration, Instant};

/// When a solve must stop searching and return the best plan found so far.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    end: Option<Instant>,
}

impl Deadline {
    /// A deadline `seconds` from now (non-finite or huge values mean no deadline).
    pub fn after(seconds: f64) -> Self {
        let end = if seconds.is_finite() && seconds >= 0.0 {
            Duration::try_from_secs_f64(seconds)
                .ok()
                .and_then(|d| Instant::now().checked_add(d))
        } else {
            None
        };
        Self { end }
    }

    /// No deadline: search until every step has finished (tests and benchmarks).
    pub fn none() -> Self {
        Self { end: None }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.end.is_some_and(|end| Instant::now() >= end)
    }

    /// Seconds left (infinite without a deadline, 0 once passed).
    pub fn remaining_seconds(&self) -> f64 {
        match self.end {
            None => f64::INFINITY,
            Some(end) => end.saturating_duration_since(Instant::now()).as_secs_f64(),
        }
    }

    /// A deadline at `fraction` (0..1) of the time left, never later than this one.
    pub fn share(&self, fraction: f64) -> Self {
        match self.end {
            None => *self,
            Some(_) => Self::after(self.remaining_seconds() * fraction.clamp(0.0, 1.0)),
        }
    }
}
