//! Helpers shared by the integration tests.
#![allow(dead_code)]

use wvo_bench::policy::{Desired, Policy, View};
use wvo_bench::{BenchError, Scenario};

/// A fixed number of replicas of every variant, never changed.
pub struct Fixed(pub u32);

impl Policy for Fixed {
    fn name(&self) -> String {
        "fixed".into()
    }
    fn period_seconds(&self) -> f64 {
        f64::INFINITY
    }
    fn initial(&mut self, s: &Scenario) -> Result<Desired, BenchError> {
        Ok(s.models
            .iter()
            .map(|m| vec![self.0; m.variants.len()])
            .collect())
    }
    fn decide(&mut self, v: &View<'_>) -> Result<Desired, BenchError> {
        Ok(v.current())
    }
}

/// Every `period` s, alternately `low` and `high` replicas of every variant (starting with
/// `high` at the first decision); `low` at the start.
pub struct Flip {
    pub period: f64,
    pub low: u32,
    pub high: u32,
    pub up: bool,
}

impl Policy for Flip {
    fn name(&self) -> String {
        "flip".into()
    }
    fn period_seconds(&self) -> f64 {
        self.period
    }
    fn initial(&mut self, s: &Scenario) -> Result<Desired, BenchError> {
        Ok(s.models
            .iter()
            .map(|m| vec![self.low; m.variants.len()])
            .collect())
    }
    fn decide(&mut self, v: &View<'_>) -> Result<Desired, BenchError> {
        self.up = !self.up;
        let n = if self.up { self.high } else { self.low };
        Ok(v.scenario
            .models
            .iter()
            .map(|m| vec![n; m.variants.len()])
            .collect())
    }
}
