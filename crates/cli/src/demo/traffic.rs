//! The traffic generator: per model, Poisson arrivals at the pattern's rate (evaluated on
//! simulated time), each a real `POST /v1/completions` to the ready server with the fewest
//! requests in flight; while the model has no ready server, to the gateway, which holds it
//! until one is ready (or drops it after its hold). Prompts are 512 tokens; outputs are
//! geometric with mean 128.

use super::scenario::{self, Model, Timing};
use super::servers::{Backend, Pool};
use super::stats::{Outcome, Stats};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use wvo_perf::workload::SplitMix64;

/// One model's generator.
pub struct Generator {
    /// The model.
    pub model: Model,
    /// Ready servers.
    pub pool: Pool,
    /// Base URL of the gateway (it holds requests while a model has no ready server).
    pub gateway_url: String,
    /// Where outcomes go.
    pub stats: Arc<Mutex<Stats>>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Wall instant of simulated time 0.
    pub clock: Instant,
    /// Speed and period.
    pub timing: Timing,
    /// Seed of arrivals and lengths.
    pub seed: u64,
    /// Set to true to stop.
    pub stop: watch::Receiver<bool>,
}

fn record(stats: &Mutex<Stats>, model: &str, outcome: Outcome) {
    match stats.lock() {
        Ok(mut s) => s.record(model, outcome),
        Err(p) => p.into_inner().record(model, outcome),
    }
}

/// Sends requests until `stop`.
pub async fn generate(mut g: Generator) {
    let mut rng = SplitMix64::new(g.seed);
    let mut next = tokio::time::Instant::from_std(g.clock);
    loop {
        let sim = next
            .into_std()
            .saturating_duration_since(g.clock)
            .as_secs_f64()
            * g.timing.speed;
        let rate = scenario::rate(&g.model.pattern, sim, scenario::PATTERN_PERIOD_SECONDS);
        // A rate of 0 waits a second (wall) and looks again.
        let gap = if rate > 0.0 { rng.exp1() / rate } else { 1.0 };
        next += Duration::from_secs_f64(gap.min(60.0));
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = g.stop.changed() => break,
        }
        if *g.stop.borrow() {
            break;
        }
        if rate <= 0.0 {
            // Nothing arrives at rate 0: that second only looked again.
            continue;
        }
        let output = rng
            .geometric(scenario::MEAN_OUTPUT_TOKENS)
            .clamp(1, scenario::MAX_OUTPUT_TOKENS);
        let Some(backend) = g.pool.pick(g.model.name) else {
            let (http, stats, model) = (g.http.clone(), g.stats.clone(), g.model);
            let gateway = g.gateway_url.clone();
            tokio::spawn(async move {
                let outcome = send_held(&http, &gateway, model.model_id, output).await;
                record(&stats, model.name, outcome);
            });
            continue;
        };
        let http = g.http.clone();
        let stats = g.stats.clone();
        let model = g.model;
        tokio::spawn(async move {
            let outcome = send(&http, &backend, model.model_id, output).await;
            record(&stats, model.name, outcome);
        });
    }
}

/// Decrements a backend's in-flight count when the request ends, however it ends.
struct InFlight<'a>(&'a Backend);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn send(http: &reqwest::Client, backend: &Backend, model_id: &str, output: u32) -> Outcome {
    backend.inflight.fetch_add(1, Ordering::Relaxed);
    let _guard = InFlight(backend);
    match complete(http, &backend.url, model_id, output).await {
        Some(v) => outcome_of(&v),
        None => Outcome::Dropped,
    }
}

/// Sends a request to the gateway (the model has no ready server): its TTFT includes the
/// time it was held (the wall time to the answer minus the server's end-to-end time).
async fn send_held(http: &reqwest::Client, gateway: &str, model_id: &str, output: u32) -> Outcome {
    let sent = Instant::now();
    let Some(v) = complete(http, gateway, model_id, output).await else {
        return Outcome::Dropped;
    };
    let held_ms = v
        .pointer("/wvo/e2e_ms")
        .and_then(Value::as_f64)
        .map_or(0.0, |e2e| {
            (sent.elapsed().as_secs_f64() * 1000.0 - e2e).max(0.0)
        });
    match outcome_of(&v) {
        Outcome::Served { ttft_ms, itl_ms } => Outcome::Served {
            ttft_ms: ttft_ms + held_ms,
            itl_ms,
        },
        other => other,
    }
}

/// POSTs one completion of `output` tokens to `base`'s `/v1/completions`; the answer's JSON,
/// or None when it failed (transport, HTTP status or body).
async fn complete(
    http: &reqwest::Client,
    base: &str,
    model_id: &str,
    output: u32,
) -> Option<Value> {
    let body =
        json!({"model": model_id, "prompt_tokens": scenario::INPUT_TOKENS, "max_tokens": output});
    let response = http
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Value>().await.ok()
}

/// Latencies of a completion answer from the emulated server's `wvo` extension (ms):
/// TTFT, and ITL = (e2e - TTFT) / (generated tokens - 1).
pub fn outcome_of(v: &Value) -> Outcome {
    let ttft = v.pointer("/wvo/ttft_ms").and_then(Value::as_f64);
    let e2e = v.pointer("/wvo/e2e_ms").and_then(Value::as_f64);
    let tokens = v
        .pointer("/usage/completion_tokens")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    match (ttft, e2e) {
        (Some(ttft_ms), Some(e2e_ms)) => Outcome::Served {
            ttft_ms,
            itl_ms: if tokens > 1.0 {
                ((e2e_ms - ttft_ms) / (tokens - 1.0)).max(0.0)
            } else {
                0.0
            },
        },
        _ => Outcome::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itl_is_the_decode_time_per_token_after_the_first() {
        let v =
            json!({"usage": {"completion_tokens": 11}, "wvo": {"ttft_ms": 200.0, "e2e_ms": 700.0}});
        assert_eq!(
            outcome_of(&v),
            Outcome::Served {
                ttft_ms: 200.0,
                itl_ms: 50.0
            }
        );
        let one =
            json!({"usage": {"completion_tokens": 1}, "wvo": {"ttft_ms": 90.0, "e2e_ms": 90.0}});
        assert_eq!(
            outcome_of(&one),
            Outcome::Served {
                ttft_ms: 90.0,
                itl_ms: 0.0
            }
        );
        assert_eq!(outcome_of(&json!({"error": "x"})), Outcome::Dropped);
    }
}
