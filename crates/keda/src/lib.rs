//! wvo as a KEDA external scaler: KEDA's `externalscaler.proto` gRPC service, answered from
//! the controller's view, so a KEDA ScaledObject per variant follows wvo's global,
//! cost-aware plan (docs/keda.md).
//!
//! ```text
//!  control loop ──► SharedView (models → variants → desired) ──┐ CycleSignal
//!                                                              ▼
//!  KEDA operator ──gRPC (h2c)──► Scaler: IsActive · StreamIsActive · GetMetricSpec · GetMetrics
//!        │                              (scaler::parse_key, desired_replicas, metric_value)
//!        ▼
//!  HPA (External metric, AverageValue 1) ──► /scale of the variant's workload
//! ```
//!
//! The decisions are pure functions in [`scaler`] (tested without a server); [`service`]
//! only reads the view and maps errors to gRPC status codes.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod scaler;
pub mod service;

/// The messages, server and client generated from KEDA's `externalscaler.proto`
/// (crates/keda/proto; package `externalscaler`) at build time.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

pub use service::{serve, Scaler};
