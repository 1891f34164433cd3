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

pub mod calibration;
pub mod cycle;
pub mod loads;
pub mod metrics;
pub mod persist;
pub mod reconciler;
pub mod runner;
pub mod stabilizer;
pub mod startup;
pub mod status_api;
pub mod targets;
pub mod view;

pub use cycle::{
    run_cycle, CycleError, CycleOutcome, CycleState, ModelState, Snapshot, VariantState,
};
