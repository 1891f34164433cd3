//! wvo's shared data types.
//!
//! ```text
//!  PlanInput ──validate()──► (perf: capacity per replica) ──► optimizer ──► PlanOutput
//!  inventory · models[variants] · load · current · options
//! ```
//!
//! This crate holds only types and their validation: no I/O, no solver. The plan
//! input/output shapes are a fixed contract (camelCase JSON/YAML): `wvo plan` reads and
//! prints them, and the controller's what-if endpoint speaks them too.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(feature = "crd")]
pub mod crd;
pub mod plan;
pub mod validate;

pub use plan::*;
pub use validate::InputError;
