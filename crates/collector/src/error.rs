//! The collector's one error type.

use crate::redact::redact_url;

/// Why collecting metrics failed. Every variant names the URL (and where relevant the
/// query or line) so the message a user reads says where to look; URLs are shown through
/// [`redact_url`], never with credentials.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The configuration is not usable (bad URL, unreadable CA file, ...).
    #[error("config {field}: {problem}")]
    Config {
        /// Which setting.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The HTTP request did not complete (connection refused, DNS, TLS, body read).
    #[error("{}: request failed: {detail}", redact_url(.url))]
    Http {
        /// The URL requested.
        url: String,
        /// The error and its causes, e.g. `... : Connection refused (os error 111)`.
        detail: String,
        /// The underlying client error.
        #[source]
        source: reqwest::Error,
    },
    /// No answer within the configured timeout.
    #[error("{}: no answer within {timeout_ms} ms", redact_url(.url))]
    Timeout {
        /// The URL requested.
        url: String,
        /// The timeout that elapsed, ms.
        timeout_ms: u64,
    },
    /// The server answered with a non-success HTTP status.
    #[error("{}: HTTP {status}: {body}", redact_url(.url))]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most 300 characters).
        body: String,
    },
    /// Prometheus answered `status: error` for a query.
    #[error("{}: query `{query}` failed: {error_type}: {error}", redact_url(.url))]
    Query {
        /// The Prometheus API URL.
        url: String,
        /// The PromQL query.
        query: String,
        /// Prometheus' `errorType`.
        error_type: String,
        /// Prometheus' `error` message.
        error: String,
    },
    /// The body is not what the endpoint should serve (bad text format, bad JSON shape).
    #[error("{}: unreadable response at {location}: {problem}", redact_url(.url))]
    Parse {
        /// The URL the body came from.
        url: String,
        /// Where in the body (e.g. `line 12`, `data.result[3].value`).
        location: String,
        /// What is wrong there.
        problem: String,
    },
}

impl CollectorError {
    /// Short machine-friendly kind of the error, usable as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            CollectorError::Config { .. } => "config",
            CollectorError::Http { .. } => "http",
            CollectorError::Timeout { .. } => "timeout",
            CollectorError::Status { .. } => "status",
            CollectorError::Query { .. } => "query",
            CollectorError::Parse { .. } => "parse",
        }
    }
}

/// The first `max` characters of `s` (on a char boundary), for error messages.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// An error and its chain of sources, joined by `: `.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}
