//! `wvo run`: the controller. `wvo crds`: print the CRDs.

use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wvo_api::{PlanOptions, SolverChoice};
use wvo_controller::auth::{Auth, AuthMode, KubeAuthConfig};
use wvo_controller::loads::{CollectorLoads, LoadSource, StaticLoads};
use wvo_controller::metrics::Metrics;
use wvo_controller::reconciler::{ControllerConfig, Reconciler};
use wvo_controller::runner::{self, LeaderConfig};
use wvo_controller::view::{ControllerView, SharedView};

/// Arguments of `wvo run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Namespace of the inventory ConfigMap (and of the leader Lease).
    #[arg(long, env = "POD_NAMESPACE", default_value = "wvo-system")]
    pub inventory_namespace: String,
    /// Name of the inventory ConfigMap.
    #[arg(long, default_value = "wvo-inventory")]
    pub inventory_name: String,
    /// Only manage VariantAutoscalings in this namespace (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Seconds between control cycles.
    #[arg(long, default_value_t = 15)]
    pub interval_seconds: u64,
    /// Prometheus base URL to read model-server metrics from.
    #[arg(long)]
    pub prometheus_url: Option<String>,
    /// File holding a bearer token for Prometheus (or the scraped servers); read again at
    /// each request, so a rotated service-account token is used without a restart.
    #[arg(long)]
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// CA bundle (PEM) for Prometheus over https.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Scrape these model-server /metrics URLs directly instead of Prometheus (repeatable).
    #[arg(long = "scrape")]
    pub scrape: Vec<String>,
    /// Address of the status API, /metrics and probes.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Also serve KEDA's external scaler (gRPC over plain HTTP/2) on this address, e.g.
    /// `0.0.0.0:9090`: a ScaledObject per variant then follows wvo's plan (docs/keda.md).
    /// No authentication: let only KEDA's namespace reach it (NetworkPolicy).
    #[arg(long, value_name = "ADDRESS")]
    pub keda_listen: Option<SocketAddr>,
    /// Authentication of the status API: `kube` (bearer tokens checked with TokenReview and
    /// SubjectAccessReview; every endpoint but /healthz and /readyz) or `none`. Default:
    /// `kube` when --listen is not a loopback address, `none` on loopback.
    #[arg(long, value_name = "kube|none")]
    pub api_auth: Option<wvo_controller::auth::AuthMode>,
    /// Audience a caller's token must be valid for (repeatable; TokenReview
    /// `spec.audiences`). Default: the API server's own audience.
    #[arg(long = "api-auth-audience", value_name = "AUDIENCE")]
    pub api_auth_audiences: Vec<String>,
    /// Seconds a TokenReview or SubjectAccessReview answer is reused (0: never cached).
    #[arg(long, default_value_t = wvo_controller::auth::DEFAULT_CACHE_TTL.as_secs())]
    pub api_auth_cache_seconds: u64,
    /// Plan for demand x (1 + headroom).
    #[arg(long, default_value_t = wvo_controller::reconciler::DEFAULT_HEADROOM)]
    pub headroom: f64,
    /// Scale-down hysteresis margin, a fraction of the observed load: scale up below
    /// demand x (1 + headroom), scale down only as far as demand x (1 + headroom + margin) is
    /// still served. 0 turns the band off.
    #[arg(long, default_value_t = wvo_controller::reconciler::DEFAULT_SCALE_DOWN_MARGIN)]
    pub scale_down_margin: f64,
    /// `hpa` actuation may set an HPA's minReplicas to 0 (needs the HPAScaleToZero feature
    /// gate and an HPA on an Object or External metric); without it minReplicas stays >= 1.
    #[arg(long)]
    pub hpa_scale_to_zero: bool,
    /// Control-cycle intervals without a completed cycle after which /healthz answers 503
    /// (the kubelet then restarts the pod).
    #[arg(long, default_value_t = wvo_controller::view::DEFAULT_LIVENESS_CYCLES)]
    pub liveness_cycles: u32,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "wvo-leader")]
    pub lease_name: String,
    /// Lease duration in seconds: a dead or paused leader is replaced within it; the leader
    /// renews every third of it and stops writing max(1 s, a fifth of it) before it runs out
    /// by its own clock.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// This replica's identity (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Run without leader election (a single replica).
    #[arg(long)]
    pub no_leader_election: bool,
}

/// Runs the controller until SIGINT/SIGTERM.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    wvo_collector::install_crypto_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    if !(0.0..=wvo_api::validate::MAX_HEADROOM).contains(&args.headroom) {
        anyhow::bail!(
            "--headroom: must be a finite number between 0 and {} (fraction of demand), got {}",
            wvo_api::validate::MAX_HEADROOM,
            args.headroom
        );
    }
    if !(args.scale_down_margin.is_finite() && args.scale_down_margin >= 0.0) {
        anyhow::bail!(
            "--scale-down-margin: must be a finite number >= 0, got {}",
            args.scale_down_margin
        );
    }
    if args.prometheus_url.is_some() && !args.scrape.is_empty() {
        anyhow::bail!("give either --prometheus-url or --scrape, not both");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))?;
    Ok(ExitCode::SUCCESS)
}

fn load_source(args: &RunArgs) -> Result<Arc<dyn LoadSource>> {
    use wvo_collector::{
        HttpConfig, ObserveConfig, PrometheusConfig, ScrapeConfig, SourceConfig, Target, TokenFile,
    };
    // Read now (a missing file fails at start), then again at each request: the kubelet
    // rotates a projected service-account token in place.
    let bearer_token_file = match &args.bearer_token_file {
        Some(path) => Some(TokenFile::open(path).context("--bearer-token-file")?),
        None => None,
    };
    let http = HttpConfig {
        bearer_token_file,
        ca_file: args.ca_file.clone(),
        ..HttpConfig::default()
    };
    if let Some(url) = &args.prometheus_url {
        let config = ObserveConfig {
            source: SourceConfig::Prometheus(PrometheusConfig {
                base_url: url.clone(),
                namespace: args.namespace.clone(),
                model: None,
                http,
            }),
            window: Default::default(),
            targets: vec![],
        };
        return Ok(Arc::new(CollectorLoads::new(config)));
    }
    if !args.scrape.is_empty() {
        let config = ObserveConfig {
            source: SourceConfig::Scrape(ScrapeConfig {
                targets: args.scrape.iter().map(|u| Target::from_url(u)).collect(),
                http,
                ..ScrapeConfig::default()
            }),
            window: Default::default(),
            targets: vec![],
        };
        return Ok(Arc::new(CollectorLoads::new(config)));
    }
    tracing::warn!("no --prometheus-url or --scrape: every model's load is unknown, so wvo only scales up to minimums and never down");
    Ok(Arc::new(StaticLoads::default()))
}

/// Deadline to open a connection (TCP and TLS) to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline to send a request to the API server.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the next bytes of an answer. Above the 290 s that a kube watcher asks the
/// server to keep a watch open (`timeoutSeconds`), so a quiet watch is closed by the server
/// first and re-opened, not cut by the client; a plain request that gets no answer at all
/// is cut after this. The actuator's writes have their own, shorter deadline
/// (`wvo_actuator::ActuatorConfig::call_timeout`).
pub const READ_TIMEOUT: Duration = Duration::from_secs(295);

/// `config` with the controller's client timeouts ([`CONNECT_TIMEOUT`], [`READ_TIMEOUT`],
/// [`WRITE_TIMEOUT`]; kube 5 has no read timeout by default). The read timeout counts from
/// when a request is sent (`reset_reader_on_write`), not from when its pooled connection
/// went idle.
pub fn with_timeouts(mut config: kube::Config) -> kube::Config {
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.write_timeout = Some(WRITE_TIMEOUT);
    config.reset_reader_on_write = true;
    config
}

async fn run_async(args: &RunArgs) -> Result<()> {
    let kube_config = kube::Config::infer()
        .await
        .context("connecting to Kubernetes (in-cluster config or KUBECONFIG)")?;
    let client = kube::Client::try_from(with_timeouts(kube_config))
        .context("building the Kubernetes client")?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "wvo".into());
    let config = ControllerConfig {
        inventory_namespace: args.inventory_namespace.clone(),
        inventory_name: args.inventory_name.clone(),
        watch_namespace: args.namespace.clone(),
        options: PlanOptions {
            headroom: args.headroom,
            solver: SolverChoice::Auto,
            time_limit_seconds: None,
        },
        scale_down_margin: args.scale_down_margin,
        field_manager: "wvo".into(),
        identity: identity.clone(),
        calibration: Default::default(),
        demand: Some(wvo_controller::cycle::DemandOptions {
            cycle_seconds: args.interval_seconds.max(1) as f64,
            ..Default::default()
        }),
        hpa_scale_to_zero: args.hpa_scale_to_zero,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
    let keda_listener = match args.keda_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("--keda-listen {address}: cannot bind"))?,
        ),
        None => None,
    };
    let (mode, warning) = wvo_controller::auth::effective_mode(args.api_auth, &args.listen);
    if let Some(warning) = warning {
        tracing::warn!("INSECURE: {warning}");
    }
    let auth = match mode {
        AuthMode::None => Auth::none(),
        AuthMode::Kube => Auth::kube(
            client.clone(),
            KubeAuthConfig {
                audiences: args.api_auth_audiences.clone(),
                cache_ttl: Duration::from_secs(args.api_auth_cache_seconds),
                ..KubeAuthConfig::default()
            },
        ),
    };
    let election = (!args.no_leader_election).then(|| LeaderConfig {
        namespace: args.inventory_namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        duration_seconds: args.lease_seconds,
        // The safety margin: max(1 s, a fifth of the lease).
        grace_seconds: (args.lease_seconds / 5).max(1),
    });
    let controller = Controller {
        client,
        config,
        loads: load_source(args)?,
        listener,
        keda_listener,
        auth,
        interval: Duration::from_secs(args.interval_seconds.max(1)),
        election,
        view: Arc::new(RwLock::new(ControllerView {
            liveness_cycles: Some(args.liveness_cycles.max(1)),
            ..ControllerView::default()
        })),
        metrics: Arc::new(Metrics::new()),
    };
    run_controller(controller, shutdown_signal()).await
}

/// Everything the controller loop needs, however it was configured (`wvo run` flags, or
/// `wvo demo` against its emulated cluster).
pub struct Controller {
    /// Client of the cluster.
    pub client: kube::Client,
    /// Inventory, namespaces, planner options, identity.
    pub config: ControllerConfig,
    /// Where each model's load comes from.
    pub loads: Arc<dyn LoadSource>,
    /// Bound socket of the status API, /metrics and probes.
    pub listener: tokio::net::TcpListener,
    /// Bound socket of the KEDA external scaler (gRPC, h2c), if served.
    pub keda_listener: Option<tokio::net::TcpListener>,
    /// Authentication in front of the status API ([`Auth::none`] on loopback).
    pub auth: Auth,
    /// Time between control cycles.
    pub interval: Duration,
    /// Leader election on a Lease, or None for a single replica.
    pub election: Option<LeaderConfig>,
    /// What the status API shows (written after each cycle).
    pub view: SharedView,
    /// The controller's own metrics.
    pub metrics: Arc<Metrics>,
}

/// Serves the status API and runs control cycles (as leader) until `shutdown` completes;
/// releases the Lease on the way out. The one code path of `wvo run` and `wvo demo`.
pub async fn run_controller(
    c: Controller,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if let Ok(address) = c.listener.local_addr() {
        tracing::info!(address = %address, auth = ?c.auth.mode(), "status API, /metrics and probes");
    }
    let app = wvo_controller::status_api::secured_router(
        c.view.clone(),
        c.metrics.clone(),
        wvo_controller::whatif::WhatIfRunner::new(Default::default()),
        c.auth,
    );
    let listener = c.listener;
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "status API stopped");
        }
    });
    let (keda_stop, keda_stopped) = tokio::sync::oneshot::channel::<()>();
    let keda = c.keda_listener.map(|listener| {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(address = %address, "KEDA external scaler (gRPC, h2c, no authentication)");
        }
        let view = c.view.clone();
        tokio::spawn(async move {
            let stopped = async {
                let _ = keda_stopped.await;
            };
            if let Err(e) = wvo_keda::serve(listener, view, stopped).await {
                tracing::error!(error = %e, "KEDA external scaler stopped");
            }
        })
    });
    // Keep the election alive for the life of the loop. Every write of the reconciler
    // checks the election's guard first (always valid without election).
    let reconciler = Reconciler::new(
        c.client.clone(),
        c.config,
        c.loads,
        c.view.clone(),
        Some(c.metrics.clone()),
    );
    let mut election = None;
    let (leader, reconciler) = match &c.election {
        None => (runner::always_leader(), reconciler),
        Some(config) => {
            let e = runner::elect(c.client, config).await?;
            let receiver = e.leader.clone();
            let reconciler = reconciler.with_lease(e.guard());
            election = Some(e);
            (receiver, reconciler)
        }
    };
    runner::run(
        reconciler,
        c.view,
        Some(c.metrics),
        c.interval,
        leader,
        shutdown,
    )
    .await;
    if let Some(e) = election {
        // Hand the Lease over at once instead of making the other replica wait for expiry.
        e.release().await;
    }
    server.abort();
    if let Some(mut keda) = keda {
        // Ends the open streams and lets calls in flight finish, for at most 5 s.
        let _ = keda_stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), &mut keda)
            .await
            .is_err()
        {
            keda.abort();
        }
    }
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Prints the CRD manifests.
pub fn crds() -> Result<ExitCode> {
    crate::output::print(&wvo_api::crd::crd_yaml().context("rendering the CRDs")?)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_has_every_timeout_and_reads_outlast_a_watch() {
        let uri = "http://127.0.0.1:1".parse().expect("uri");
        let config = with_timeouts(kube::Config::new(uri));
        assert_eq!(config.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(config.write_timeout, Some(WRITE_TIMEOUT));
        assert_eq!(config.read_timeout, Some(READ_TIMEOUT));
        assert!(config.reset_reader_on_write);
        // kube's watcher asks the server to end a watch after 290 s (WatchParams default);
        // a read timeout below that would cut every quiet watch.
        assert!(READ_TIMEOUT > Duration::from_secs(290));
    }
}
