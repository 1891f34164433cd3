//! wvo's controller: the control cycle and (feature by feature) its Kubernetes wiring.
//!
//! ```text
//!  VAs, inventory, workloads, pods ─┐
//!  collector observations ──────────┴─► Snapshot ─► run_cycle (pure) ─► CycleOutcome
//!                                     optimizer · scale-down band · stabilizer · make-before-break
//!  CycleOutcome ─► actuator (/scale, HPA bounds, metric, dry-run) ─► VA status, Events, API
//! ```
//!
//! The cycle is pure (`cycle::run_cycle`): tests and the benchmark simulator call it
//! directly with a snapshot; only the reconciler does I/O.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod cache;
pub mod history;
pub mod lease;
pub mod loads;
pub mod metrics;
pub mod persist;
pub mod reconciler;
pub mod runner;
pub mod scope;
pub mod status_api;
pub mod targets;
pub mod view;
pub mod whatif;

/// The pure decision core lives in `wvo-cycle`; its modules are re-exported here under their
/// old paths (`wvo_controller::cycle::...`).
pub use wvo_cycle::{calibration, cycle, stabilizer, startup};
pub use wvo_cycle::{
    run_cycle, CycleError, CycleOutcome, CycleState, ModelState, Snapshot, VariantState,
};
