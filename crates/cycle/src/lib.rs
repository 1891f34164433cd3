//! wvo's pure decision core: one control cycle as a function of a snapshot.
//!
//! ```text
//!  Snapshot (VAs in plan form, workload state, observed load and signals, inventory)
//!    ─► run_cycle ─► CycleOutcome (per variant: desired replicas and why)
//!  optimizer · demand (rise, backlog, forecast) · scale-down band · stabilizer ·
//!  make-before-break · strict tiers in actuation · scale to zero
//! ```
//!
//! Around the cycle, the controller's other decisions about a VariantAutoscaling:
//! [`admission`] (is the VA plannable; its error names the field), [`calibration`] (profiles
//! learned online), [`conditions`] and [`status`] (what its status says; None when unchanged),
//! and [`inventory`] (the accelerator inventory's keep-last-good).
//!
//! No I/O, no async, no clock (`now` is an input): the controller (`wvo-controller`) reads the
//! cluster into a [`Snapshot`] and writes the results; the benchmark simulator (`wvo-bench`)
//! calls the same function. A test (`tests/purity.rs`) checks that no kube client or runtime,
//! tokio, axum, reqwest or hyper is among this crate's dependencies (the CRD types come
//! through kube-core and kube-derive).

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admission;
pub mod calibration;
pub mod conditions;
pub mod cycle;
pub mod inventory;
pub mod stabilizer;
pub mod startup;
pub mod status;

pub use cycle::{
    run_cycle, CycleError, CycleOutcome, CycleState, ModelState, Snapshot, VariantState,
};

/// Token mix assumed for a model whose token means are not observed yet (an idle model):
/// mean prompt and output tokens.
pub const DEFAULT_TOKENS: (f64, f64) = (512.0, 256.0);

/// Default planning headroom of the controller: plan for demand x 1.1. The capacity at the SLO
/// is where the *mean* TTFT and ITL meet their targets; with no margin, Poisson bursts and the
/// lag of the rate estimate put a share of requests over the SLO (measured with `wvo bench`,
/// docs/bench.md). `wvo plan` keeps 0 (offline planning states its own headroom).
pub const DEFAULT_HEADROOM: f64 = 0.1;

/// Default scale-down hysteresis margin of the controller (a fraction of the observed arrival
/// rate): a scale-down only goes as far as the replicas left serve demand x (1 + headroom +
/// 0.05), so Poisson noise around a replica boundary does not flap N -> N+1 -> N every
/// stabilization window. Scale-up still happens below demand x (1 + headroom). Of 0, 0.03,
/// 0.05 and 0.1 measured with `wvo bench`, 0.05 is the smallest that stops the flapping in
/// `steady` and `step` (14 and 10 actions in 2 h down to 1 and 3, for ~14 % more cost there);
/// see docs/controller.md "Control semantics".
pub const DEFAULT_SCALE_DOWN_MARGIN: f64 = 0.05;
