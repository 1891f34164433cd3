//! The plan's solve-time budget: the one clock the optimizer reads (DESIGN.md: pure logic
//! takes a snapshot and returns a plan; the deadline only decides how hard to search), and
//! the [`Cancel`] flag a caller raises to stop a solve nobody waits for any more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flag another thread raises to stop a solve early: the solve sees it wherever it checks
/// its [`Deadline`] (between steps, iterations and MILPs) and ends with
/// [`crate::PlanError::Cancelled`]. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag (idempotent; seen by every clone).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the flag was raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// When a solve must stop searching and return the best plan found so far; with a
/// [`Cancel`] flag, also when the flag is raised (the solve then returns no plan).
#[derive(Clone, Debug)]
pub struct Deadline {
    end: Option<Instant>,
    cancel: Option<Cancel>,
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
        Self { end, cancel: None }
    }

    /// No deadline: search until every step has finished (tests and benchmarks).
    pub fn none() -> Self {
        Self {
            end: None,
            cancel: None,
        }
    }

    /// This deadline, also passed as soon as `cancel` is raised.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Whether the solve was cancelled (its [`Cancel`] flag raised).
    pub fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(Cancel::is_cancelled)
    }

    /// Whether the deadline has passed (or the solve was cancelled).
    pub fn expired(&self) -> bool {
        self.cancelled() || self.end.is_some_and(|end| Instant::now() >= end)
    }

    /// Seconds left (infinite without a deadline, 0 once passed or cancelled).
    pub fn remaining_seconds(&self) -> f64 {
        if self.cancelled() {
            return 0.0;
        }
        match self.end {
            None => f64::INFINITY,
            Some(end) => end.saturating_duration_since(Instant::now()).as_secs_f64(),
        }
    }

    /// A deadline at `fraction` (0..1) of the time left, never later than this one, with
    /// the same cancel flag.
    pub fn share(&self, fraction: f64) -> Self {
        match self.end {
            None => self.clone(),
            Some(_) => Self {
                end: Self::after(self.remaining_seconds() * fraction.clamp(0.0, 1.0)).end,
                cancel: self.cancel.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_flag_expires_the_deadline_and_its_shares() {
        let cancel = Cancel::new();
        let deadline = Deadline::none().with_cancel(cancel.clone());
        let share = Deadline::after(3600.0)
            .with_cancel(cancel.clone())
            .share(0.5);
        assert!(!deadline.expired() && !share.expired());
        cancel.cancel();
        assert!(deadline.expired() && deadline.cancelled());
        assert!(share.expired() && share.cancelled());
        assert_eq!(deadline.remaining_seconds(), 0.0);
    }
}
