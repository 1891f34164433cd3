//! `wvo demo`: the whole system on one machine. An emulated Kubernetes API with a mixed GPU
//! fleet, four models with VariantAutoscalings and Deployments, an emulated vLLM server per
//! ready pod, a traffic generator sending real HTTP requests, and the real controller (the
//! `wvo run` code path: direct scrapes, kube client, status API).
//!
//! ```text
//!  traffic (Poisson, pattern over simulated time) ──HTTP──► model servers (one per ready pod)
//!     └ no ready server: gateway (holds the request) ─────────►  ▲ started/stopped from Pods
//!  controller (run_controller) ──scrape /metrics (servers, gateway)┘
//!      │ kube client ──► Kubernetes API emulator (nodes, inventory, VAs, Deployments → Pods)
//!      └ status API + dashboard on --listen ; one summary line per cycle on stdout
//! ```

mod cluster;
mod scenario;
mod servers;
mod stats;
mod traffic;

use anyhow::{Context, Result};
use clap::Args;
use scenario::{Timing, MODELS};
use stats::{Counts, Stats};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wvo_controller::metrics::Metrics;
use wvo_controller::reconciler::ControllerConfig;
use wvo_controller::targets::{ScrapeTargetLoads, SharedTargets};
use wvo_controller::view::{ControllerView, SharedView};

/// Arguments of `wvo demo`.
#[derive(Args, Debug)]
#[command(
    after_help = "What --speed N scales (simulated durations divided by N): the control \
cycle (15 s), the VAs' scale-down stabilization window (300 s), a pod's start-up delay (60 s), \
the traffic pattern's period (1800 s), the collector's first-scrape gap (5 s) and the gateway's \
hold of a request while its model has no ready server (300 s); the \
arrival rate is measured over one cycle but at least 4.5 s of wall time. Not scaled: \
request rates (req/s are real), the model servers' latencies (they serve in real time) and \
HTTP. Simulated time = wall time since the traffic started x N."
)]
pub struct DemoArgs {
    /// Run the clock N times faster (0.1 to 50): divides the cycle interval, stabilization
    /// window, pod start-up delay, traffic period and first-scrape gap by N.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// Stop after this many seconds of wall time once traffic has started (default: until
    /// Ctrl-C); then print a final summary and exit 0.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Address of the controller's status API and dashboard (127.0.0.1 only; port 0 picks a
    /// free one, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seed of the traffic generator (arrivals and lengths).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the demo until `--duration` or Ctrl-C.
pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    let timing = Timing::new(args.speed).map_err(anyhow::Error::msg)?;
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            anyhow::bail!("--duration: must be a number of seconds > 0, got {d}");
        }
    }
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "--listen {}: the demo binds 127.0.0.1 only; use e.g. 127.0.0.1:8080",
            args.listen
        );
    }
    wvo_collector::install_crypto_provider();
    // Logs go to stderr (warnings only unless RUST_LOG says otherwise): stdout is the
    // summary lines.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(demo(args, timing))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a line on stdout at once (the test and a user's pipe read it live). False when
/// stdout is gone (`wvo demo | head -3`): the demo then stops as on Ctrl-C.
fn say(line: &str) -> bool {
    crate::output::println(line).is_ok()
}

async fn demo(args: &DemoArgs, timing: Timing) -> Result<()> {
    let estimates = cluster::estimates()?;
    let api = Arc::new(cluster::start(&timing, &estimates).await?);
    // Removed on every way out of this function (a failed bind included).
    let kubeconfig_dir =
        TempDir::create(std::env::temp_dir().join(format!("wvo-demo-{}", std::process::id())))?;
    let kubeconfig = kubeconfig_dir.0.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml())
        .with_context(|| format!("writing {}", kubeconfig.display()))?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "--listen {}: cannot bind (is port in use? try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let status_addr = listener
        .local_addr()
        .context("--listen: no local address")?;

    // The gateway: requests of a model with no ready server wait there (its queue gauge is
    // scraped as the models' wake signal).
    let gateway = Arc::new(
        wvo_sim::gateway::Gateway::start(wvo_sim::gateway::GatewayConfig {
            hold: Duration::from_secs_f64(timing.gateway_hold_seconds),
            ..wvo_sim::gateway::GatewayConfig::default()
        })
        .await
        .context("starting the emulated gateway")?,
    );

    // Pods -> model servers -> routing pool, gateway backends and scrape targets.
    let targets = SharedTargets::default();
    let pool = servers::Pool::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let manager = tokio::spawn(servers::manage(
        api.clone(),
        estimates.clone(),
        pool.clone(),
        gateway.clone(),
        targets.clone(),
        timing,
        stop_rx.clone(),
    ));

    // The controller, through the same function as `wvo run`.
    let view: SharedView = Arc::new(RwLock::new(ControllerView::default()));
    let metrics = Arc::new(Metrics::new());
    let scrape = wvo_collector::ScrapeConfig {
        interval: Duration::from_secs_f64(timing.first_scrape_gap_seconds),
        ..wvo_collector::ScrapeConfig::default()
    };
    let loads = ScrapeTargetLoads::new(scrape, wvo_collector::Window::default(), Arc::new(targets))
        .context("setting up the scrape collector")?
        .with_rate_window(Duration::from_secs_f64(timing.rate_window_seconds));
    let controller = crate::run::Controller {
        client: kube::Client::try_from(crate::run::with_timeouts(
            api.config()
                .context("the emulated cluster's client config")?,
        ))
        .context("a client of the emulated cluster")?,
        config: ControllerConfig {
            identity: "wvo-demo".into(),
            // The controller's clock is the wall clock: its demand estimate runs in wall
            // seconds too (the rate window, scrape age, cycle, start-up and fall of `wvo
            // run`'s defaults, divided by the speed).
            demand: Some(timing.demand_options()),
            ..ControllerConfig::default()
        },
        loads: Arc::new(loads),
        listener,
        // The demo's VAs are in `scale` mode: the KEDA scaler would refuse them.
        keda_listener: None,
        // The demo binds loopback only (checked above): no authentication.
        auth: wvo_controller::auth::Auth::none(),
        interval: Duration::from_secs_f64(timing.cycle_seconds),
        election: None,
        view: view.clone(),
        metrics: metrics.clone(),
    };
    let mut controller_stop = stop_rx.clone();
    let controller_task = tokio::spawn(crate::run::run_controller(controller, async move {
        let _ = controller_stop.wait_for(|s| *s).await;
    }));

    print_header(
        &timing,
        status_addr,
        &api.url(),
        &gateway.url(),
        &kubeconfig,
    );

    // The clock starts when every model has a ready server, so no request is dropped for
    // lack of a first replica.
    say(&format!(
        "waiting for the first pods to start ({:.0} s simulated start-up = {:.1} s) ...",
        scenario::STARTUP_SECONDS,
        timing.startup_seconds
    ));
    let first_deadline = Instant::now() + Duration::from_secs_f64(timing.startup_seconds + 30.0);
    while !pool.every_model_ready() && Instant::now() < first_deadline {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = crate::run::shutdown_signal() => break,
        }
    }

    let clock = Instant::now();
    let stats = Arc::new(Mutex::new(Stats::new(MODELS.iter().map(|m| {
        let class = scenario::service_class(m.service_class);
        let targets = class.map_or((f64::INFINITY, f64::INFINITY), |c| (c.ttft_ms, c.itl_ms));
        (m.name.to_string(), targets)
    }))));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(300))
        .build()
        .context("building the traffic generator's HTTP client")?;
    let mut generators = Vec::new();
    for (i, model) in MODELS.iter().enumerate() {
        generators.push(tokio::spawn(traffic::generate(traffic::Generator {
            model: *model,
            pool: pool.clone(),
            gateway_url: gateway.url(),
            stats: stats.clone(),
            http: http.clone(),
            clock,
            timing,
            seed: args.seed.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64),
            stop: stop_rx.clone(),
        })));
    }

    let mut summary = Summary::new(timing.speed);
    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::from_std(clock + Duration::from_secs_f64(d)));
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(until_deadline);
    let shutdown = crate::run::shutdown_signal();
    tokio::pin!(shutdown);
    let mut seen_cycles = metrics.cycles();
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = &mut until_deadline => break,
            _ = &mut shutdown => break,
            _ = poll.tick() => {}
        }
        let cycles = metrics.cycles();
        if cycles == seen_cycles {
            continue;
        }
        seen_cycles = cycles;
        let sim = clock.elapsed().as_secs_f64() * timing.speed;
        let window = match stats.lock() {
            Ok(mut s) => s.take_window(),
            Err(p) => p.into_inner().take_window(),
        };
        let rows = match view.read() {
            Ok(v) => rows(&v, sim),
            Err(p) => rows(&p.into_inner(), sim),
        };
        if !say(&summary.line(sim, &rows, &window)) {
            tracing::info!("stdout closed: stopping the demo");
            break;
        }
    }

    let wall = clock.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let totals = match stats.lock() {
        Ok(s) => s.total().clone(),
        Err(p) => p.into_inner().total().clone(),
    };
    for line in summary.finish(wall, &totals) {
        if !say(&line) {
            break;
        }
    }
    for g in generators {
        let _ = g.await;
    }
    match tokio::time::timeout(Duration::from_secs(10), controller_task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "controller stopped with an error"),
        Ok(_) => {}
        Err(_) => tracing::warn!("controller did not stop within 10 s"),
    }
    let _ = manager.await;
    pool.clear();
    if let Ok(api) = Arc::try_unwrap(api) {
        api.shutdown().await;
    }
    drop(kubeconfig_dir);
    Ok(())
}

/// A directory removed with its contents when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn create(path: std::path::PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn print_header(
    timing: &Timing,
    status: SocketAddr,
    kube_url: &str,
    gateway_url: &str,
    kubeconfig: &std::path::Path,
) {
    let fleet: Vec<String> = scenario::FLEET
        .iter()
        .map(|g| {
            format!(
                "{} x {} (${:.2}/GPU-h)",
                g.nodes * g.gpus_per_node,
                g.name,
                g.cost_per_hour
            )
        })
        .collect();
    let models: Vec<String> = MODELS
        .iter()
        .map(|m| format!("{} ({})", m.name, m.model_id))
        .collect();
    say(&format!(
        "wvo demo: emulated cluster with {}; models {}",
        fleet.join(", "),
        models.join(", ")
    ));
    say(&format!(
        "speed {}x: control cycle {:.1} s, scale-down window {} s, pod start-up {:.1} s, traffic period {:.0} s (wall)",
        timing.speed,
        timing.cycle_seconds,
        timing.stabilization_seconds,
        timing.startup_seconds,
        timing.period_seconds
    ));
    say(&format!("dashboard:      http://{status}/"));
    say(&format!(
        "status API:     http://{status}/api/v1/models  (also /api/v1/plan, /api/v1/decisions, /api/v1/accelerators, /metrics, /healthz)"
    ));
    say(&format!(
        "Kubernetes API: {kube_url}  (kubectl --kubeconfig {} get va,deploy,pods -n {})",
        kubeconfig.display(),
        scenario::NAMESPACE
    ));
    say(&format!(
        "gateway (EPP):  {gateway_url}/v1/completions  (holds a request up to {:.0} s while its model has no ready server; /metrics)",
        timing.gateway_hold_seconds
    ));
    say("one line per control cycle: simulated time | per model: offered load (seen by wvo) and replicas per variant as desired/ready | cost of desired replicas | SLO attainment since the last line");
}

/// One model in a summary line.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// VA name.
    pub name: String,
    /// Offered load now, req/s.
    pub offered: f64,
    /// Load the controller planned with, req/s (None when never observed).
    pub seen: Option<f64>,
    /// (variant, desired, ready).
    pub variants: Vec<(String, u32, u32)>,
    /// Cost of the desired replicas, $/h.
    pub cost_per_hour: f64,
}

fn rows(view: &ControllerView, sim: f64) -> Vec<Row> {
    MODELS
        .iter()
        .map(|m| {
            let found = view.models.iter().find(|v| v.name == m.name);
            Row {
                name: m.name.to_string(),
                offered: scenario::rate(&m.pattern, sim, scenario::PATTERN_PERIOD_SECONDS),
                seen: found.and_then(|v| v.arrival_rate),
                variants: m
                    .variants
                    .iter()
                    .map(|var| {
                        let vv = found.and_then(|v| v.variants.iter().find(|x| x.name == var.name));
                        (
                            var.name.to_string(),
                            vv.map_or(0, |x| x.desired),
                            vv.map_or(0, |x| x.ready),
                        )
                    })
                    .collect(),
                cost_per_hour: found
                    .map_or(0.0, |v| v.variants.iter().map(|x| x.cost_per_hour).sum()),
            }
        })
        .collect()
}

/// Summary lines and the run's totals (pure: times are inputs).
#[derive(Clone, Debug)]
pub struct Summary {
    speed: f64,
    last_sim: f64,
    cost_dollars: f64,
    last_cost_per_hour: f64,
    last_desired: BTreeMap<(String, String), u32>,
    changes: u64,
    peak_replicas: u32,
    cycles: u64,
}

impl Summary {
    /// A summary at `speed` (simulated s per wall s).
    pub fn new(speed: f64) -> Summary {
        Summary {
            speed,
            last_sim: 0.0,
            cost_dollars: 0.0,
            last_cost_per_hour: 0.0,
            last_desired: BTreeMap::new(),
            changes: 0,
            peak_replicas: 0,
            cycles: 0,
        }
    }

    /// The line of a cycle that ended at simulated time `sim` (s), and accounts for it:
    /// cost since the last line at the last line's rate, replica changes, peak replicas.
    pub fn line(&mut self, sim: f64, rows: &[Row], window: &BTreeMap<String, Counts>) -> String {
        self.cycles += 1;
        self.cost_dollars += self.last_cost_per_hour * (sim - self.last_sim).max(0.0) / 3600.0;
        self.last_sim = sim;
        let cost: f64 = rows.iter().map(|r| r.cost_per_hour).sum();
        self.last_cost_per_hour = cost;
        let mut replicas = 0;
        let mut parts = vec![format!("t={sim:>6.0}s")];
        for r in rows {
            let seen = r.seen.map_or("?".to_string(), |s| format!("{s:.1}"));
            let mut part = format!("{} {:.1} req/s (seen {seen})", r.name, r.offered);
            for (variant, desired, ready) in &r.variants {
                part.push_str(&format!(" {variant}={desired}/{ready}"));
                replicas += desired;
                let key = (r.name.clone(), variant.clone());
                let before = self.last_desired.insert(key, *desired);
                if before.is_some_and(|b| b != *desired) {
                    self.changes += 1;
                }
            }
            parts.push(part);
        }
        self.peak_replicas = self.peak_replicas.max(replicas);
        parts.push(format!("${cost:.2}/h"));
        let all = stats::sum(window.values());
        parts.push(match all.attainment() {
            Some(a) => format!(
                "SLO {:.1}% of {} req, {} dropped",
                100.0 * a,
                all.ended,
                all.dropped
            ),
            None => "SLO - (no request ended)".to_string(),
        });
        parts.join(" | ")
    }

    /// The final summary after `wall` seconds of traffic, with every model's totals.
    pub fn finish(&mut self, wall: f64, totals: &BTreeMap<String, Counts>) -> Vec<String> {
        let sim = wall * self.speed;
        self.cost_dollars += self.last_cost_per_hour * (sim - self.last_sim).max(0.0) / 3600.0;
        self.last_sim = sim;
        let all = stats::sum(totals.values());
        let per_model: Vec<String> = totals
            .iter()
            .map(
                |(m, c)| match (c.attainment(), c.mean_ttft_ms(), c.mean_itl_ms()) {
                    (Some(a), Some(t), Some(i)) => {
                        format!("{m} {:.1}%, mean TTFT {t:.0} ms ITL {i:.0} ms", 100.0 * a)
                    }
                    (Some(a), _, _) => format!("{m} {:.1}%", 100.0 * a),
                    _ => format!("{m} -"),
                },
            )
            .collect();
        let attainment = all
            .attainment()
            .map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a));
        let average = if sim > 0.0 {
            self.cost_dollars * 3600.0 / sim
        } else {
            0.0
        };
        vec![
            format!(
                "done: {sim:.0} s simulated in {wall:.1} s wall (speed {}x), {} control cycles",
                self.speed, self.cycles
            ),
            format!(
                "requests {}: SLO attainment {attainment} ({}), dropped {}",
                all.ended,
                per_model.join("; "),
                all.dropped
            ),
            format!(
                "cost ${:.2} for the simulated time (average ${average:.2}/h), {} replica changes, peak {} replicas",
                self.cost_dollars, self.changes, self.peak_replicas
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, desired: u32, cost: f64) -> Row {
        Row {
            name: name.into(),
            offered: 4.0,
            seen: Some(3.95),
            variants: vec![("h100".into(), desired, 1), ("l40s".into(), 0, 0)],
            cost_per_hour: cost,
        }
    }

    #[test]
    fn a_line_shows_load_replicas_cost_and_attainment() {
        let mut s = Summary::new(10.0);
        let mut window = BTreeMap::new();
        let mut c = Counts::default();
        c.add(
            stats::Outcome::Served {
                ttft_ms: 1.0,
                itl_ms: 1.0,
            },
            10.0,
            10.0,
        );
        c.add(stats::Outcome::Dropped, 10.0, 10.0);
        window.insert("chat".to_string(), c);
        let line = s.line(15.0, &[row("chat", 2, 5.0)], &window);
        assert_eq!(
            line,
            "t=    15s | chat 4.0 req/s (seen 4.0) h100=2/1 l40s=0/0 | $5.00/h | SLO 50.0% of 2 req, 1 dropped"
        );
        let line = s.line(30.0, &[row("chat", 2, 5.0)], &BTreeMap::new());
        assert!(line.ends_with("SLO - (no request ended)"), "{line}");
    }

    #[test]
    fn cost_is_integrated_and_changes_are_counted() {
        let mut s = Summary::new(10.0);
        s.line(0.0, &[row("chat", 1, 3600.0)], &BTreeMap::new());
        s.line(1.0, &[row("chat", 3, 7200.0)], &BTreeMap::new());
        s.line(2.0, &[row("chat", 2, 0.0)], &BTreeMap::new());
        // 1 s at $3600/h + 1 s at $7200/h, then 1 s at $0/h (wall 0.3 s x speed 10 = 3 s).
        let lines = s.finish(0.3, &BTreeMap::new());
        assert!(lines[2].starts_with("cost $3.00 "), "{}", lines[2]);
        assert!(
            lines[2].contains("2 replica changes, peak 3 replicas"),
            "{}",
            lines[2]
        );
        assert!(lines[0].contains("3 control cycles"), "{}", lines[0]);
    }
}
