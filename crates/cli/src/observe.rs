//! `wvo observe`: what wvo sees of the model servers, from Prometheus or straight from the
//! pods' `/metrics`. Thin wiring of `wvo_collector::observe`.

use crate::output;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wvo_collector::{
    observe, render_json, render_table, HttpConfig, Observations, ObserveConfig, PrometheusConfig,
    ScrapeConfig, SourceConfig, Target, Window,
};

/// How to print the observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObserveOutput {
    /// One line per model (`ALL`) and per variant, `?` for unknown, then the reasons.
    Table,
    /// The observations as JSON (camelCase; every figure has `state: known|unknown`).
    Json,
}

/// Arguments of `wvo observe`.
#[derive(Args, Debug)]
#[command(after_help = "\
Exactly one source: --prometheus, or one or more --scrape.

Exit status: 0 when something was observed; 1 when nothing could be read (source down,
timed out, garbage) or no model server was found, with a one-line reason on stderr;
2 for bad flags.

Examples:
  wvo observe --prometheus http://prometheus.monitoring:9090 --namespace llm
  wvo observe --prometheus https://thanos:9091 --bearer-token-file /var/run/secrets/kubernetes.io/serviceaccount/token --ca-file ca.pem
  wvo observe --scrape http://10.0.0.5:8000/metrics --scrape http://10.0.0.6:8000/metrics -o json")]
pub struct ObserveArgs {
    /// Prometheus base URL (without /api/v1); one PromQL query per signal for all models.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Scrape a model server's /metrics URL directly (repeatable); rates come from two
    /// scrapes --interval apart.
    #[arg(long = "scrape", value_name = "URL")]
    pub scrape: Vec<String>,
    /// Only this Kubernetes namespace (Prometheus); with --scrape, the namespace shown.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this model id (`model_name` label), for either source.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ObserveOutput::Table)]
    pub output: ObserveOutput,
    /// Timeout of each HTTP request, connection included (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// File holding a bearer token sent as `Authorization: Bearer ...` (e.g. a
    /// service-account token); surrounding whitespace is ignored.
    #[arg(long, value_name = "PATH")]
    pub bearer_token_file: Option<PathBuf>,
    /// PEM bundle of extra CA certificates to trust (on top of the platform's).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Rate window of the Prometheus queries (whole seconds, at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,
    /// Samples older than this are stale, reported unknown.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub max_age: Duration,
    /// Gap between the two scrapes of --scrape (the rate window of a direct scrape).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
}

/// Parses `500ms`, `5s`, `2m`, `1h` or a bare number of seconds (`2.5`). Must be > 0.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 500ms, 5s, 2m)"))?;
    let secs = v * scale;
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("`{s}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A bad-flag error: one line on stderr, exit 2.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {}", msg.replace('\n', " "));
    ExitCode::from(2)
}

/// Builds the collector's configuration from the flags (reads the token file).
pub fn config(args: &ObserveArgs) -> std::result::Result<ObserveConfig, String> {
    let bearer_token = match &args.bearer_token_file {
        None => None,
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("--bearer-token-file {}: {e}", p.display()))?;
            let t = t.trim().to_string();
            if t.is_empty() {
                return Err(format!(
                    "--bearer-token-file {}: file is empty",
                    p.display()
                ));
            }
            Some(t)
        }
    };
    let http = HttpConfig {
        bearer_token,
        ca_file: args.ca_file.clone(),
        timeout: args.timeout,
        ..HttpConfig::default()
    };
    if args.window < Duration::from_secs(1) {
        return Err("--window must be at least 1s".into());
    }
    let window = Window {
        window_seconds: args.window.as_secs_f64(),
        max_age_seconds: args.max_age.as_secs_f64(),
    };
    let source = match (&args.prometheus, args.scrape.is_empty()) {
        (None, true) => {
            return Err("one source is needed: --prometheus URL or --scrape URL".into());
        }
        (Some(_), false) => {
            return Err("--prometheus and --scrape cannot be used together".into());
        }
        (Some(url), true) => SourceConfig::Prometheus(PrometheusConfig {
            base_url: url.trim_end_matches('/').to_string(),
            namespace: args.namespace.clone(),
            model: args.model.clone(),
            http,
        }),
        (None, false) => SourceConfig::Scrape(ScrapeConfig {
            targets: args
                .scrape
                .iter()
                .map(|u| {
                    let mut t = Target::from_url(u);
                    if let Some(ns) = &args.namespace {
                        t.namespace = ns.clone();
                    }
                    if let Some(m) = &args.model {
                        t.model = m.clone();
                    }
                    t
                })
                .collect(),
            http,
            interval: args.interval,
        }),
    };
    Ok(ObserveConfig {
        source,
        window,
        targets: vec![],
    })
}

/// Where the observations were read from, for messages (URLs redacted).
fn source_name(cfg: &ObserveConfig) -> String {
    match &cfg.source {
        SourceConfig::Prometheus(p) => wvo_collector::redact_url(&p.base_url),
        SourceConfig::Scrape(s) => s
            .targets
            .iter()
            .map(|t| wvo_collector::redact_url(&t.url))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Drops the query string of every URL in `s` (`http://p:9090/api/v1/query?query=...`
/// becomes `http://p:9090/api/v1/query?…`): PromQL makes error lines unreadably long.
pub fn elide_queries(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut token_start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == '(' {
            token_start = out.len() + c.len_utf8();
        }
        out.push(c);
        i += 1;
        if c == '?' && out[token_start..].starts_with("http") {
            out.push('…');
            while i < chars.len() {
                let d = chars[i];
                let ends_word = d == ':' && chars.get(i + 1).is_none_or(|n| n.is_whitespace());
                if d.is_whitespace() || d == ')' || ends_word {
                    break;
                }
                i += 1;
            }
        }
    }
    out
}

/// The errors in one short line: the first one (URLs without query strings) and how many
/// more there are.
fn summarize(errors: &[String]) -> String {
    let mut line = errors.first().map(|e| elide_queries(e)).unwrap_or_default();
    if errors.len() > 1 {
        line.push_str(&format!(" (and {} more errors)", errors.len() - 1));
    }
    line
}

/// Why nothing was observed, in one line (None when something was).
pub fn nothing_observed(obs: &Observations, source: &str) -> Option<String> {
    let line = if obs.nothing_known() {
        format!("nothing observed: {}", summarize(&obs.errors))
    } else if obs.models.is_empty() {
        let mut why = format!("nothing observed: no model-server metrics at {source}");
        if !obs.errors.is_empty() {
            why.push_str(&format!(": {}", summarize(&obs.errors)));
        }
        why
    } else {
        return None;
    };
    Some(line.replace(['\n', '\r'], " "))
}

/// Runs `wvo observe`: exit 0 when something was observed, 1 when nothing could be read
/// (one line on stderr), 2 for bad flags.
pub fn run(args: &ObserveArgs) -> Result<ExitCode> {
    let cfg = match config(args) {
        Ok(cfg) => cfg,
        Err(msg) => return Ok(usage_error(&msg)),
    };
    wvo_collector::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Every request is bounded by --timeout and the queries run concurrently; this is a
    // backstop so the command always ends.
    let deadline = args.interval + 3 * args.timeout + Duration::from_secs(5);
    let source = source_name(&cfg);
    let obs = match rt.block_on(async { tokio::time::timeout(deadline, observe(&cfg)).await }) {
        Err(_) => anyhow::bail!(
            "nothing observed: {source}: no result within {:.1} s",
            deadline.as_secs_f64()
        ),
        // Only unusable configuration (bad URL, unreadable CA file) fails here.
        Ok(Err(e)) => return Ok(usage_error(&e.to_string())),
        Ok(Ok(obs)) => obs,
    };
    match args.output {
        ObserveOutput::Json => output::println(&render_json(&obs))?,
        ObserveOutput::Table => output::print(&render_table(&obs))?,
    }
    if let Some(why) = nothing_observed(&obs, &source) {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn query_strings_are_elided() {
        let e = "query age: prometheus: http://p:9090/api/v1/query?query=up%7B%7D&time=1.5: \
                 request failed: error sending request for url \
                 (http://p:9090/api/v1/query?query=up%7B%7D&time=1.5): connection refused";
        assert_eq!(
            elide_queries(e),
            "query age: prometheus: http://p:9090/api/v1/query?…: request failed: error \
             sending request for url (http://p:9090/api/v1/query?…): connection refused"
        );
        let plain = "http://127.0.0.1:1/metrics: request failed: what? refused";
        assert_eq!(elide_queries(plain), plain);
    }
}
