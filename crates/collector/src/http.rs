//! The HTTP client both sources use (reqwest, rustls with the ring provider).

use crate::error::{truncate, CollectorError};
use std::path::PathBuf;
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

/// HTTP settings shared by the sources.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// Bearer token sent as `Authorization: Bearer ...` (e.g. a service-account token).
    pub bearer_token: Option<String>,
    /// PEM file with extra CA certificates to trust (e.g. the cluster CA).
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request, connection included.
    pub timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bearer_token: None,
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }
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
/// naming the URL (without credentials); HTTP statuses are returned for the caller to judge.
pub async fn get(
    client: &reqwest::Client,
    cfg: &HttpConfig,
    url: reqwest::Url,
) -> Result<(u16, String), CollectorError> {
    let shown = without_credentials(&url);
    send(client, cfg, url, shown, true).await
}

/// Like [`get`], but errors name the URL as `shown` (e.g. the endpoint without its long
/// query string) and drop the client error's own copy of the URL.
pub(crate) async fn get_shown_as(
    client: &reqwest::Client,
    cfg: &HttpConfig,
    url: reqwest::Url,
    shown: &str,
) -> Result<(u16, String), CollectorError> {
    send(client, cfg, url, shown.to_string(), false).await
}

/// `url` as text without a user name or password in it.
pub(crate) fn without_credentials(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    // Fails only for URLs that cannot carry credentials: nothing to remove then.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

async fn send(
    client: &reqwest::Client,
    cfg: &HttpConfig,
    url: reqwest::Url,
    shown: String,
    keep_url_in_detail: bool,
) -> Result<(u16, String), CollectorError> {
    let mut req = client.get(url);
    if let Some(t) = &cfg.bearer_token {
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
            let e = if keep_url_in_detail {
                let mut e = e;
                if let Some(u) = e.url_mut() {
                    let _ = u.set_username("");
                    let _ = u.set_password(None);
                }
                e
            } else {
                e.without_url()
            };
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
            url: url.to_string(),
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
