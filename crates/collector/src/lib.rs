//! wvo's collector: what the model servers are doing, from Prometheus or straight from
//! the pods' `/metrics`.
//!
//! ```text
//!  Prometheus HTTP API ──(one PromQL query per signal, all models)──┐
//!                                                                   ├─► PodFigures ─► aggregate ─► Observations
//!  pod /metrics (two scrapes) ──text::parse──► pod::from_scrapes ───┘    (per pod)   (pure)       per model & variant
//! ```
//!
//! I/O lives in [`prometheus::PrometheusSource`] and [`scrape::ScrapeSource`] (both
//! implement [`MetricsSource`]); everything from a response body onwards is pure and
//! tested without a network: [`text::parse`], [`prometheus::parse_response`],
//! [`prometheus::pods_from_results`], [`pod::from_scrapes`], [`aggregate`].
//!
//! Every figure is a [`Figure`]: known (value, age, metric used) or unknown with a reason.
//! Missing, stale, NaN or infinite data is unknown, never 0.

pub mod aggregate;
pub mod error;
pub mod names;
pub mod observation;
pub mod pod;
pub mod text;

pub use aggregate::Window;
pub use error::CollectorError;
pub use names::Flavor;
pub use observation::{
    Figure, LoadFigures, ModelObservation, Observations, Target, VariantObservation,
};
