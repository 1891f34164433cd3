//! Direct scrape source: GET each pod's `/metrics`, rates from two scrapes.
//!
//! The source remembers each URL's last scrape. A collection scrapes every target once;
//! a target without a usable previous scrape (first collection, or the previous one is
//! older than twice the window) is scraped a second time after `interval`, so the first
//! call takes about `interval` longer than the next ones.

use crate::aggregate::{self, GatewayReadings, Slot, VariantKey, Window};
use crate::error::CollectorError;
use crate::http::{self, HttpConfig};
use crate::observation::{Observations, Target};
use crate::pod;
use crate::redact::redact_url;
use crate::text::{self, Exposition};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the scrape source needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// Pods to scrape, each with its metrics URL and its model/variant.
    pub targets: Vec<Target>,
    /// Token, CA file, timeout per scrape.
    pub http: HttpConfig,
    /// Gap between the two scrapes of a first collection.
    pub interval: Duration,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            targets: vec![],
            http: HttpConfig::default(),
            interval: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug)]
struct Snapshot {
    at: Instant,
    expo: Exposition,
}

/// Reads observations by scraping pods directly.
#[derive(Debug)]
pub struct ScrapeSource {
    cfg: ScrapeConfig,
    window: Window,
    client: reqwest::Client,
    last: Mutex<HashMap<String, Snapshot>>,
}

/// One target's scrapes: `(previous scrape and seconds since it, current scrape)`, or
/// the error (with the URL).
pub type ScrapeResult = Result<(Option<(Exposition, f64)>, Exposition), String>;

/// Parse a scraped body (pure): garbage is an error naming the URL and line.
pub fn on_response(url: &str, status: u16, body: &str) -> Result<Exposition, CollectorError> {
    http::check_status(url, status, body)?;
    text::parse(body).map_err(|e| CollectorError::Parse {
        url: url.to_string(),
        location: format!("line {}", e.line),
        problem: e.problem,
    })
}

/// Build observations from scrape results (pure): per target, the previous and current
/// scrape (`dt` seconds apart) or the error; `age` of the current scrapes, s.
pub fn observations_from_scrapes(
    targets: &[Target],
    scrapes: &[ScrapeResult],
    window: &Window,
    age_seconds: f64,
    now_unix: f64,
) -> Observations {
    let mut groups: BTreeMap<VariantKey, Vec<Slot>> = BTreeMap::new();
    let mut gateway = GatewayReadings::new();
    let mut gateway_running = GatewayReadings::new();
    let mut errors = Vec::new();
    for (t, r) in targets.iter().zip(scrapes) {
        let key_model = |m: &str| (t.namespace.clone(), m.to_string(), t.variant.clone());
        match r {
            Err(e) => {
                errors.push(e.clone());
                groups
                    .entry(key_model(&t.model))
                    .or_default()
                    .push(Slot::Missing {
                        pod: t.pod.clone(),
                        reason: e.clone(),
                    });
            }
            Ok((prev, cur)) => {
                let queues = pod::gateway_queues(cur);
                let running = pod::gateway_running(cur);
                let is_gateway = !queues.is_empty() || !running.is_empty();
                for (m, q) in queues {
                    gateway.insert((t.namespace.clone(), m), q.map(|r| (r, age_seconds)));
                }
                for (m, q) in running {
                    gateway_running.insert((t.namespace.clone(), m), q.map(|r| (r, age_seconds)));
                }
                let served = pod::models_in(cur);
                let models: Vec<String> = if t.model.is_empty() {
                    served.into_iter().collect()
                } else if served.contains(&t.model) {
                    vec![t.model.clone()]
                } else {
                    vec![]
                };
                // llama.cpp and TGI label no model: the server's one model is the target's
                // (empty when the caller named none).
                let models = if models.is_empty() && pod::has_unlabelled_server(cur) {
                    vec![t.model.clone()]
                } else {
                    models
                };
                if models.is_empty() {
                    if is_gateway {
                        continue; // a gateway (EPP) endpoint, not a model server
                    }
                    let e = if t.model.is_empty() {
                        format!(
                            "{}: no vLLM, SGLang, llama.cpp or TGI model-server metrics",
                            redact_url(&t.url)
                        )
                    } else {
                        format!(
                            "{}: no vLLM, SGLang, llama.cpp or TGI model-server metrics for model {}",
                            redact_url(&t.url),
                            t.model
                        )
                    };
                    errors.push(e.clone());
                    groups
                        .entry(key_model(&t.model))
                        .or_default()
                        .push(Slot::Missing {
                            pod: t.pod.clone(),
                            reason: e,
                        });
                    continue;
                }
                for m in models {
                    let pf = pod::from_scrapes(
                        &t.namespace,
                        &t.pod,
                        &m,
                        prev.as_ref().map(|(e, dt)| (e, *dt)),
                        cur,
                        age_seconds,
                    );
                    groups
                        .entry(key_model(&m))
                        .or_default()
                        .push(Slot::Pod(Box::new(pf)));
                }
            }
        }
    }
    aggregate::observations_with_gateway(
        "scrape",
        groups,
        aggregate::Gateway {
            queue: Some(&gateway),
            running: Some(&gateway_running),
            error: None,
        },
        window,
        now_unix,
        errors,
    )
}

impl ScrapeSource {
    /// A source scraping `cfg.targets`, rates over the time between scrapes; `window`
    /// gives the staleness limit and the reuse limit of a previous scrape (2 x window).
    pub fn new(cfg: ScrapeConfig, window: Window) -> Result<Self, CollectorError> {
        for t in &cfg.targets {
            let ok = reqwest::Url::parse(&t.url)
                .map(|u| matches!(u.scheme(), "http" | "https"))
                .unwrap_or(false);
            if !ok {
                return Err(CollectorError::Config {
                    field: "scrape URL",
                    problem: format!("`{}` is not an http(s) URL", redact_url(&t.url)),
                });
            }
        }
        if cfg.targets.is_empty() {
            return Err(CollectorError::Config {
                field: "scrape targets",
                problem: "at least one URL is needed".into(),
            });
        }
        Self::for_changing_targets(cfg, window)
    }

    async fn scrape_all(&self, urls: &[String]) -> Vec<Result<Snapshot, String>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, url) in urls.iter().enumerate() {
            let client = self.client.clone();
            let cfg = self.cfg.http.clone();
            let url = url.clone();
            let shown = redact_url(&url);
            set.spawn(async move {
                let res = match reqwest::Url::parse(&url) {
                    Err(e) => Err(format!("{shown}: {e}")),
                    Ok(u) => match http::get(&client, &cfg, u).await {
                        Err(e) => Err(e.to_string()),
                        Ok((status, body)) => on_response(&shown, status, &body)
                            .map(|expo| Snapshot {
                                at: Instant::now(),
                                expo,
                            })
                            .map_err(|e| e.to_string()),
                    },
                };
                (i, res)
            });
        }
        let mut out: Vec<Result<Snapshot, String>> = urls
            .iter()
            .map(|u| Err(format!("{}: not scraped", redact_url(u))))
            .collect();
        while let Some(j) = set.join_next().await {
            if let Ok((i, r)) = j {
                out[i] = r;
            }
        }
        out
    }

    /// A source whose targets are given at each collection
    /// ([`collect_targets`](Self::collect_targets)), for callers whose pods come and go
    /// (e.g. discovered from the cluster). `cfg.targets` may be empty; URLs are checked
    /// when collected.
    pub fn for_changing_targets(cfg: ScrapeConfig, window: Window) -> Result<Self, CollectorError> {
        let client = http::client(&cfg.http)?;
        Ok(ScrapeSource {
            cfg,
            window,
            client,
            last: Mutex::new(HashMap::new()),
        })
    }

    /// Scrape (twice where needed) and build the observations. Failures become unknown
    /// figures with the reason and entries in `errors`.
    pub async fn collect(&self) -> Observations {
        self.collect_from(&self.cfg.targets).await
    }

    /// Like [`collect`](Self::collect) for `targets` instead of the configured ones. The
    /// previous scrape of a URL is reused when it is still listed; URLs no longer listed
    /// are forgotten. A URL that is not http(s) is an error for its target.
    pub async fn collect_targets(&self, targets: &[Target]) -> Observations {
        let obs = self.collect_from(targets).await;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.retain(|url, _| targets.iter().any(|t| &t.url == url));
        obs
    }

    async fn collect_from(&self, targets: &[Target]) -> Observations {
        let urls: Vec<String> = targets.iter().map(|t| t.url.clone()).collect();
        let reuse_limit = Duration::from_secs_f64(2.0 * self.window.window_seconds.max(1.0));
        let previous: Vec<Option<Snapshot>> = {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            urls.iter()
                .map(|u| {
                    last.get(u)
                        .filter(|s| s.at.elapsed() <= reuse_limit)
                        .cloned()
                })
                .collect()
        };
        let mut first = self.scrape_all(&urls).await;
        let mut prevs: Vec<Option<Snapshot>> = previous;
        if prevs.iter().any(Option::is_none) {
            tokio::time::sleep(self.cfg.interval).await;
            let second = self.scrape_all(&urls).await;
            for i in 0..urls.len() {
                if prevs[i].is_none() {
                    prevs[i] = first[i].as_ref().ok().cloned();
                }
            }
            first = second;
        }
        let now = Instant::now();
        let mut scrapes = Vec::with_capacity(urls.len());
        let mut oldest = 0.0f64;
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            for (i, cur) in first.into_iter().enumerate() {
                match cur {
                    Err(e) => scrapes.push(Err(e)),
                    Ok(cur) => {
                        oldest = oldest.max(now.duration_since(cur.at).as_secs_f64());
                        let prev = prevs[i]
                            .as_ref()
                            .map(|p| (p.expo.clone(), cur.at.duration_since(p.at).as_secs_f64()));
                        last.insert(urls[i].clone(), cur.clone());
                        scrapes.push(Ok((prev, cur.expo)));
                    }
                }
            }
        }
        observations_from_scrapes(targets, &scrapes, &self.window, oldest, http::unix_now())
    }
}
