//! The HTTP client both sources use (reqwest, rustls with the ring provider).

use crate::error::{truncate, CollectorError};
use crate::redact::redact_url;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Install rustls' `ring` crypto provider as the process default (idempotent).
///
/// The workspace builds reqwest with `rustls-no-provider` (kube uses ring; reqwest's
/// default would pull aws-lc-rs), so some provider must be installed before an https
/// client is built. The collector calls this itself when it builds a client; a binary
/// may call it earlier in `main`.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: fine either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// HTTP settings shared by the sources. Its `Debug` shows no token.
#[derive(Clone, PartialEq)]
pub struct HttpConfig {
    /// Bearer token sent as `Authorization: Bearer ...` (e.g. a service-account token).
    pub bearer_token: Option<String>,
    /// A file holding the bearer token, read again on every request so a rotated token is
    /// used without a restart; when set, it wins over `bearer_token`.
    pub bearer_token_file: Option<TokenFile>,
    /// PEM file with extra CA certificates to trust (e.g. the cluster CA).
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request, connection included.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field("bearer_token_file", &self.bearer_token_file)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bearer_token: None,
            bearer_token_file: None,
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl HttpConfig {
    /// The bearer token to send now: the token file's current content, else
    /// `bearer_token`.
    pub fn current_token(&self) -> Option<String> {
        match &self.bearer_token_file {
            Some(f) => Some(f.token()),
            None => self.bearer_token.clone(),
        }
    }
}

/// A bearer-token file (e.g. a projected service-account token, which the kubelet
/// rotates): read at start, then again at each use, so the newest token is sent. Its
/// `Debug` shows the path, never the token.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    /// The last token read that was not empty.
    last: Arc<Mutex<String>>,
}

impl TokenFile {
    /// Read the token in `path` (surrounding whitespace dropped). Errors: the file is
    /// unreadable or holds no token.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, CollectorError> {
        let path = path.into();
        let token = read_token(&path)?;
        Ok(TokenFile {
            path,
            last: Arc::new(Mutex::new(token)),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The token in the file now. A read that fails or finds the file empty (e.g. in the
    /// middle of a rotation) keeps the last token read, with a warning.
    pub fn token(&self) -> String {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match read_token(&self.path) {
            Ok(t) => *last = t,
            Err(e) => tracing::warn!(error = %e, "bearer token file: keeping the last token"),
        }
        last.clone()
    }
}

impl PartialEq for TokenFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The trimmed content of a token file; an empty file is an error.
fn read_token(path: &std::path::Path) -> Result<String, CollectorError> {
    let problem = |p: String| CollectorError::Config {
        field: "bearer token file",
        problem: format!("{}: {p}", path.display()),
    };
    let t = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
    let t = t.trim();
    if t.is_empty() {
        return Err(problem("file is empty".into()));
    }
    Ok(t.to_string())
}

/// Build a client from the settings.
pub fn client(cfg: &HttpConfig) -> Result<reqwest::Client, CollectorError> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout);
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|e| CollectorError::Config {
            field: "caFile",
            problem: format!("{}: {e}", path.display()),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CollectorError::Config {
                field: "caFile",
                problem: format!("{}: {e}", path.display()),
            })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| CollectorError::Config {
        field: "http client",
        problem: e.to_string(),
    })
}

/// GET `url`, returning (status, body). Transport failures and timeouts are errors
/// naming the URL redacted ([`redact_url`]); HTTP statuses are returned for the caller to
/// judge.
pub async fn get(
    client: &reqwest::Client,
    cfg: &HttpConfig,
    url: reqwest::Url,
) -> Result<(u16, String), CollectorError> {
    let shown = without_credentials(&url);
    send(client, cfg, url, shown).await
}

/// Like [`get`], but errors name the URL as `shown` (e.g. the endpoint without its long
/// query string).
pub(crate) async fn get_shown_as(
    client: &reqwest::Client,
    cfg: &HttpConfig,
    url: reqwest::Url,
    shown: &str,
) -> Result<(u16, String), CollectorError> {
    send(client, cfg, url, redact_url(shown)).await
}

/// `url` as text with its credentials redacted ([`redact_url`]).
pub(crate) fn without_credentials(url: &reqwest::Url) -> String {
    redact_url(url.as_str())
}

async fn send(
    client: &reqwest::Client,
    cfg: &HttpConfig,
    url: reqwest::Url,
    shown: String,
) -> Result<(u16, String), CollectorError> {
    let mut req = client.get(url);
    if let Some(t) = cfg.current_token() {
        req = req.bearer_auth(t);
    }
    let timeout_ms = cfg.timeout.as_millis() as u64;
    let fut = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body = resp.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    // The outer timeout bounds the body read too (reqwest's covers it, this is a backstop).
    match tokio::time::timeout(cfg.timeout + Duration::from_millis(250), fut).await {
        Err(_) => Err(CollectorError::Timeout {
            url: shown,
            timeout_ms,
        }),
        Ok(Err(e)) if e.is_timeout() => Err(CollectorError::Timeout {
            url: shown,
            timeout_ms,
        }),
        Ok(Err(e)) => {
            // The client error's own copy of the URL would repeat `shown`, unredacted.
            let e = e.without_url();
            Err(CollectorError::Http {
                url: shown,
                detail: crate::error::chain(&e),
                source: e,
            })
        }
        Ok(Ok((status, body))) => Ok((status, body)),
    }
}

/// Turn a non-2xx status into an error carrying the start of the body.
pub(crate) fn check_status(url: &str, status: u16, body: &str) -> Result<(), CollectorError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(CollectorError::Status {
            url: redact_url(url),
            status,
            body: truncate(body.trim(), 300),
        })
    }
}

/// Seconds since the Unix epoch now.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
