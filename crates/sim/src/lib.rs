//! Emulators for tests, the demo and the benchmark.
//!
//! - [`model_server`]: an emulated vLLM (or SGLang) server per replica, driven by the same
//!   `wvo_perf::batching` engine and profile as the planner, with the real `/metrics`
//!   names, and a minimal OpenAI-style `POST /v1/completions`.

#![warn(missing_docs)]

pub mod kube_api;
pub mod model_server;
