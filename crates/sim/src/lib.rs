//! Emulators for tests, the demo and the benchmark.
//!
//! - [`model_server`]: an emulated vLLM (or SGLang) server per replica, driven by the same
//!   `wvo_perf::batching` engine and profile as the planner, with the real `/metrics`
//!   names, and a minimal OpenAI-style `POST /v1/completions`.
//! - [`gateway`]: an emulated inference gateway (EPP): least-loaded routing to a model's
//!   ready servers, requests held while a model has none (flow control), and the
//!   flow-control queue gauge on `/metrics`.
//! - [`kube_api`]: an emulated Kubernetes API server with Deployment/ReplicaSet/Pod
//!   controllers and a kubelet.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod gateway;
pub mod kube_api;
pub mod model_server;
