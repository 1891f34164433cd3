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
//! A restarted controller reads each model's past arrival rate from Prometheus range
//! queries ([`range`]: [`PrometheusSource::arrival_rates`], pure
//! [`range::parse_range_response`]); the direct scrape has no past.
//!
//! Every figure is a [`Figure`]: known (value, age, metric used) or unknown with a reason.
//! Missing, stale, NaN or infinite data is unknown, never 0.

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod aggregate;
pub mod error;
pub mod http;
pub mod names;
pub mod observation;
pub mod pod;
pub mod prometheus;
pub mod range;
pub mod redact;
pub mod render;
pub mod scrape;
pub mod text;

pub use aggregate::Window;
pub use error::CollectorError;
pub use http::{install_crypto_provider, HttpConfig, TokenFile};
pub use names::Flavor;
pub use observation::{
    Figure, LoadFigures, ModelObservation, Observations, Target, VariantObservation,
};
pub use prometheus::{PrometheusConfig, PrometheusSource};
pub use range::{ModelRates, RatePoint, RateRange, MAX_POINTS_PER_REQUEST};
pub use redact::redact_url;
pub use render::{render_json, render_table};
pub use scrape::{ScrapeConfig, ScrapeSource};

use std::future::Future;

/// A place observations come from. Collection never fails as a whole: what could not be
/// read is unknown (with the reason) and listed in [`Observations::errors`].
pub trait MetricsSource: Send + Sync {
    /// Collect one set of observations.
    fn collect(&self) -> impl Future<Output = Observations> + Send;
}

impl MetricsSource for PrometheusSource {
    fn collect(&self) -> impl Future<Output = Observations> + Send {
        PrometheusSource::collect(self)
    }
}

impl MetricsSource for ScrapeSource {
    fn collect(&self) -> impl Future<Output = Observations> + Send {
        ScrapeSource::collect(self)
    }
}

/// Where [`observe`] reads from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceConfig {
    /// A Prometheus server.
    Prometheus(PrometheusConfig),
    /// Direct scrapes of the targets' URLs.
    Scrape(ScrapeConfig),
}

/// Everything [`observe`] needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ObserveConfig {
    /// The source.
    pub source: SourceConfig,
    /// Rate window and staleness limit (default 60 s each).
    pub window: Window,
    /// Pod -> model/variant mapping for the Prometheus source (empty: every pod found,
    /// variant `*`). The scrape source takes its targets from [`ScrapeConfig::targets`].
    pub targets: Vec<Target>,
}

/// One collection, for the CLI (`wvo observe`) and one-shot callers.
///
/// Errors only on unusable configuration (bad URL, unreadable CA file, no scrape
/// target). An unreachable, slow or failing source gives `Ok` with unknown figures and
/// [`Observations::errors`] filled; a caller that wants a non-zero exit can check
/// `errors` (see [`Observations::nothing_known`]).
pub async fn observe(cfg: &ObserveConfig) -> Result<Observations, CollectorError> {
    match &cfg.source {
        SourceConfig::Prometheus(p) => {
            let src = PrometheusSource::new(p.clone(), cfg.window, cfg.targets.clone())?;
            Ok(src.collect().await)
        }
        SourceConfig::Scrape(s) => {
            let src = ScrapeSource::new(s.clone(), cfg.window)?;
            Ok(src.collect().await)
        }
    }
}

impl Observations {
    /// True when errors occurred and no figure at all is known (e.g. Prometheus down):
    /// what a CLI should turn into a non-zero exit.
    pub fn nothing_known(&self) -> bool {
        !self.errors.is_empty()
            && self.models.iter().all(|m| {
                m.figures.arrival_rate_rps.value().is_none() && m.figures.running.value().is_none()
            })
    }
}
