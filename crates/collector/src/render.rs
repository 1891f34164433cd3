//! Rendering observations for people (table) and programs (JSON).

use crate::observation::{Figure, LoadFigures, Observations};
use std::fmt::Write as _;

/// Pretty JSON of the observations (camelCase; every figure has `state: known|unknown`).
pub fn render_json(obs: &Observations) -> String {
    serde_json::to_string_pretty(obs).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn cell(f: &Figure, scale: f64, decimals: usize) -> String {
    match f.value() {
        Some(v) => format!("{:.*}", decimals, v * scale),
        None => "?".into(),
    }
}

fn row(
    out: &mut String,
    name: &str,
    variant: &str,
    pods: usize,
    f: &LoadFigures,
    gw: (&str, &str),
) {
    let _ = writeln!(
        out,
        "{:<40} {:<12} {:>4} {:>8} {:>7} {:>7} {:>5} {:>5} {:>7} {:>5} {:>9} {:>13} {:>13} {:>7} {:>5} {:>5} {:>5}",
        name,
        variant,
        pods,
        cell(&f.arrival_rate_rps, 1.0, 2),
        cell(&f.avg_input_tokens, 1.0, 0),
        cell(&f.avg_output_tokens, 1.0, 0),
        cell(&f.running, 1.0, 0),
        cell(&f.waiting, 1.0, 0),
        cell(&f.in_flight_growth_rps, 1.0, 2),
        cell(&f.kv_usage, 100.0, 0),
        cell(&f.kv_capacity_tokens, 1.0, 0),
        format!(
            "{}/{}",
            cell(&f.ttft_mean_seconds, 1000.0, 0),
            cell(&f.ttft_p95_seconds, 1000.0, 0)
        ),
        format!(
            "{}/{}",
            cell(&f.itl_mean_seconds, 1000.0, 1),
            cell(&f.itl_p95_seconds, 1000.0, 1)
        ),
        cell(&f.preemptions_per_second, 1.0, 2),
        cell(&f.ready_replicas, 1.0, 0),
        gw.0,
        gw.1,
    );
}

fn reasons(out: &mut String, who: &str, f: &LoadFigures) {
    let named = [
        ("arrivalRateRps", &f.arrival_rate_rps),
        ("avgInputTokens", &f.avg_input_tokens),
        ("avgOutputTokens", &f.avg_output_tokens),
        ("running", &f.running),
        ("waiting", &f.waiting),
        ("inFlightGrowthRps", &f.in_flight_growth_rps),
        ("kvUsage", &f.kv_usage),
        ("kvCapacityTokens", &f.kv_capacity_tokens),
        ("ttftMeanSeconds", &f.ttft_mean_seconds),
        ("ttftP95Seconds", &f.ttft_p95_seconds),
        ("itlMeanSeconds", &f.itl_mean_seconds),
        ("itlP95Seconds", &f.itl_p95_seconds),
        ("preemptionsPerSecond", &f.preemptions_per_second),
    ];
    for (n, fig) in named {
        if let Some(r) = fig.reason() {
            let _ = writeln!(out, "  {who} {n}: {r}");
        }
    }
}

/// A fixed-width table: one line per model (variant `ALL`) and per variant, then the
/// reasons of every unknown figure (`?`) and the collection errors.
///
/// Units: REQ/s completions per s; GROW/s growth of running + waiting, req/s; IN/OUT tok
/// tokens per request; KV% percent; KVCAP tok tokens;
/// TTFT ms (mean/p95); ITL ms (mean/p95); PRE/s preemptions per s; GWQ gateway queue,
/// GWRUN requests running as the gateway counts them (both requests).
pub fn render_table(obs: &Observations) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "source: {}  window: {:.0}s  max age: {:.0}s",
        obs.source, obs.window_seconds, obs.max_age_seconds
    );
    let _ = writeln!(
        out,
        "{:<40} {:<12} {:>4} {:>8} {:>7} {:>7} {:>5} {:>5} {:>7} {:>5} {:>9} {:>13} {:>13} {:>7} {:>5} {:>5} {:>5}",
        "MODEL", "VARIANT", "PODS", "REQ/s", "IN tok", "OUT tok", "RUN", "WAIT", "GROW/s", "KV%", "KVCAP tok",
        "TTFT ms", "ITL ms", "PRE/s", "READY", "GWQ", "GWRUN"
    );
    let mut notes = String::new();
    for m in &obs.models {
        // llama.cpp and TGI label no model: without a target naming it, it is unnamed.
        let model = if m.model.is_empty() {
            "(unnamed: no model_name label)"
        } else {
            m.model.as_str()
        };
        let name = if m.namespace.is_empty() {
            model.to_string()
        } else {
            format!("{}/{}", m.namespace, model)
        };
        let pods: usize = m.variants.iter().map(|v| v.pods.len()).sum();
        row(
            &mut out,
            &name,
            "ALL",
            pods,
            &m.figures,
            (
                &cell(&m.gateway_queue, 1.0, 0),
                &cell(&m.gateway_running, 1.0, 0),
            ),
        );
        reasons(&mut notes, &format!("{name}:"), &m.figures);
        if let Some(r) = m.gateway_queue.reason() {
            let _ = writeln!(notes, "  {name}: gatewayQueue: {r}");
        }
        if let Some(r) = m.gateway_running.reason() {
            let _ = writeln!(notes, "  {name}: gatewayRunning: {r}");
        }
        for v in &m.variants {
            row(&mut out, "", &v.variant, v.pods.len(), &v.figures, ("", ""));
            reasons(&mut notes, &format!("{name}/{}:", v.variant), &v.figures);
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nunknown (?):");
        out.push_str(&notes);
    }
    if !obs.errors.is_empty() {
        let _ = writeln!(out, "\nerrors:");
        for e in &obs.errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}
