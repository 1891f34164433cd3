//! `wvo bench-scale`: the controller's cost per cycle at 100 to thousands of VAs, against
//! the Kubernetes API emulator.
//!
//! The emulator runs in this process, seeded with N VAs (two variants each, a Deployment
//! per variant, Pods Ready). The controller runs in a child process (this binary, with
//! `--child`), so its memory and CPU are its own: it runs one cycle, prints what the cycle
//! cost (wall time, CPU time, RSS), and waits for a line on stdin before the next one. Between
//! two cycles the parent counts the API requests the emulator received, by verb, so each
//! cycle's requests are its own. The first cycle (watch caches listing, first status writes
//! and scales) is reported apart from the steady cycles that follow.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wvo_controller::loads::StaticLoads;
use wvo_controller::reconciler::{ControllerConfig, Reconciler};
use wvo_controller::view::ControllerView;
use wvo_sim::kube_api::{gpu_node, KubeApiOptions, KubeApiServer};

/// Namespace of the seeded models.
const NAMESPACE: &str = "llm";

/// Models per namespace (several namespaces, as in a shared cluster).
const VAS_PER_NAMESPACE: usize = 250;

/// `wvo bench-scale` flags.
#[derive(clap::Args, Debug)]
pub struct ScaleBenchArgs {
    /// VA counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000,3000")]
    pub vas: Vec<usize>,
    /// Steady cycles measured after the first one, per VA count.
    #[arg(long, default_value_t = 5)]
    pub cycles: usize,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub output: String,
    /// Internal: run as the measured controller against the kubeconfig at this path.
    #[arg(long, hide = true)]
    pub child: Option<std::path::PathBuf>,
    /// Internal (with `--child`): how many models were seeded (their loads are set).
    #[arg(long, hide = true, default_value_t = 0)]
    pub child_vas: usize,
}

/// What the child reports after each cycle (one JSON line).
#[derive(Debug, Serialize, Deserialize)]
struct CycleCost {
    /// Wall time of the cycle, s.
    seconds: f64,
    /// CPU time (user + system) of the controller process during the cycle, s.
    cpu_seconds: f64,
    /// Resident memory after the cycle, bytes.
    rss_bytes: u64,
    /// Peak resident memory so far, bytes.
    peak_rss_bytes: u64,
    /// Resident anonymous memory (heap, stacks) after the cycle, bytes: RSS without the
    /// mapped binary and libraries.
    anon_rss_bytes: u64,
    /// Whether the cycle planned (an error is printed in `error`).
    error: Option<String>,
}

/// One VA count's figures (`--output json`: camelCase fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleFigures {
    /// VariantAutoscalings.
    pub vas: usize,
    /// Variants (workloads) over all VAs.
    pub variants: usize,
    /// Pods in the cluster.
    pub pods: usize,
    /// First cycle: wall time, s.
    pub first_cycle_seconds: f64,
    /// First cycle: API requests by verb.
    pub first_cycle_requests: BTreeMap<String, usize>,
    /// Steady cycles: median wall time, s.
    pub cycle_seconds_median: f64,
    /// Steady cycles: slowest, s.
    pub cycle_seconds_max: f64,
    /// Steady cycles: mean API requests per cycle by verb (verb/resource/subresource).
    pub requests_per_cycle: BTreeMap<String, f64>,
    /// Steady cycles: mean CPU time per cycle, s.
    pub cpu_seconds_per_cycle: f64,
    /// Controller RSS after the last cycle, MiB.
    pub rss_mib: f64,
    /// Controller peak RSS, MiB.
    pub peak_rss_mib: f64,
    /// Controller anonymous RSS (heap and stacks, without the mapped binary) after the last
    /// cycle, MiB.
    pub anon_rss_mib: f64,
}

/// Runs `wvo bench-scale`.
pub fn run(args: &ScaleBenchArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(kubeconfig) = &args.child {
        return runtime.block_on(child(kubeconfig, args.child_vas));
    }
    if !matches!(args.output.as_str(), "table" | "json") {
        bail!("--output {}: use table or json", args.output);
    }
    if args.vas.is_empty() || args.vas.contains(&0) {
        bail!("--vas: give VA counts above 0, e.g. --vas 100,300,1000");
    }
    let mut all = Vec::new();
    for &n in &args.vas {
        let figures = runtime.block_on(measure(n, args.cycles.max(1)))?;
        if args.output == "table" {
            print_row(&figures, all.is_empty())?;
        }
        all.push(figures);
    }
    if args.output == "json" {
        crate::output::println(&serde_json::to_string_pretty(&all)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(f: &ScaleFigures, header: bool) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut text = String::new();
    if header {
        let _ = writeln!(
            text,
            "{:>6} {:>8} {:>6} | {:>9} {:>9} | {:>10} {:>10} {:>10} | {:>8} {:>8} {:>8} | {:>9}",
            "VAs",
            "variants",
            "pods",
            "first (s)",
            "reqs",
            "cycle (s)",
            "max (s)",
            "CPU (s)",
            "RSS MiB",
            "peak MiB",
            "anon MiB",
            "reqs/cycle"
        );
    }
    let first: usize = f.first_cycle_requests.values().sum();
    let steady: f64 = f.requests_per_cycle.values().sum();
    let _ = writeln!(
        text,
        "{:>6} {:>8} {:>6} | {:>9.3} {:>9} | {:>10.3} {:>10.3} {:>10.3} | {:>8.1} {:>8.1} {:>8.1} | {:>9.1}",
        f.vas,
        f.variants,
        f.pods,
        f.first_cycle_seconds,
        first,
        f.cycle_seconds_median,
        f.cycle_seconds_max,
        f.cpu_seconds_per_cycle,
        f.rss_mib,
        f.peak_rss_mib,
        f.anon_rss_mib,
        steady
    );
    let by_verb = |m: &BTreeMap<String, f64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        text,
        "       first cycle: {}",
        f.first_cycle_requests
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        text,
        "       per steady cycle: {}",
        if f.requests_per_cycle.is_empty() {
            "none".to_string()
        } else {
            by_verb(&f.requests_per_cycle)
        }
    );
    crate::output::print(&text)
}

fn namespace_of(i: usize) -> String {
    format!("{NAMESPACE}-{}", i / VAS_PER_NAMESPACE)
}

/// Seeds the emulator with `n` VAs and runs the child controller through `cycles` steady
/// cycles after the first.
async fn measure(n: usize, cycles: usize) -> Result<ScaleFigures> {
    let (api, pods) = seeded_world(n).await?;
    let variants_per_va = 2;

    let dir = std::env::temp_dir().join(format!("wvo-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_yaml())
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    let result = drive_child(&api, &kubeconfig, n, cycles).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (first, steady) = result?;
    api.shutdown().await;

    let mut seconds: Vec<f64> = steady.iter().map(|(c, _)| c.seconds).collect();
    seconds.sort_by(f64::total_cmp);
    let mut requests: BTreeMap<String, f64> = BTreeMap::new();
    for (_, r) in &steady {
        for (k, v) in r {
            *requests.entry(k.clone()).or_default() += *v as f64 / steady.len() as f64;
        }
    }
    let last = steady.last().map(|(c, _)| c).unwrap_or(&first.0);
    Ok(ScaleFigures {
        vas: n,
        variants: n * variants_per_va,
        pods,
        first_cycle_seconds: first.0.seconds,
        first_cycle_requests: first.1,
        cycle_seconds_median: seconds.get(seconds.len() / 2).copied().unwrap_or(0.0),
        cycle_seconds_max: seconds.last().copied().unwrap_or(0.0),
        requests_per_cycle: requests,
        cpu_seconds_per_cycle: steady.iter().map(|(c, _)| c.cpu_seconds).sum::<f64>()
            / steady.len().max(1) as f64,
        rss_mib: last.rss_bytes as f64 / 1_048_576.0,
        peak_rss_mib: last.peak_rss_bytes as f64 / 1_048_576.0,
        anon_rss_mib: last.anon_rss_bytes as f64 / 1_048_576.0,
    })
}

/// The scale-bench world in the API emulator: `n` VAs (two variants each, a Deployment per
/// variant, one Pod Ready per model), GPU nodes and the inventory ConfigMap
/// `wvo-system/wvo-inventory` with room to spare. Returns the emulator and its Pod count.
pub(crate) async fn seeded_world(n: usize) -> Result<(wvo_sim::kube_api::KubeApiHandle, usize)> {
    let api = KubeApiServer::start(KubeApiOptions {
        controller_interval: Duration::from_secs(1),
        controller_min_gap: Duration::from_millis(250),
        history_limit: 100_000,
        ..KubeApiOptions::default()
    })
    .await
    .context("starting the API emulator")?;
    let client = api.client().context("emulator client")?;
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(client.clone());
    {
        use kube::CustomResourceExt as _;
        crds.create(
            &Default::default(),
            &wvo_api::crd::VariantAutoscaling::crd(),
        )
        .await
        .context("creating the CRD")?;
    }
    // One replica per model on H100 (1 GPU) and room to spare on both products.
    let nodes = n.div_ceil(8) + 1;
    for i in 0..nodes {
        api.create(&gpu_node(&format!("h100-{i}"), "NVIDIA-H100-80GB-HBM3", 8))?;
        api.create(&gpu_node(&format!("l40s-{i}"), "NVIDIA-L40S", 8))?;
    }
    let gpus = nodes * 8;
    let inventory = format!(
        "accelerators:\n- {{name: H100, count: {gpus}, costPerHour: 4.1}}\n- {{name: L40S, count: {gpus}, costPerHour: 1.3}}\n"
    );
    let mut namespaces = vec!["wvo-system".to_string()];
    namespaces
        .extend((0..n.div_ceil(VAS_PER_NAMESPACE)).map(|k| namespace_of(k * VAS_PER_NAMESPACE)));
    for ns in &namespaces {
        api.create(
            &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )?;
    }
    api.create(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "wvo-inventory", "namespace": "wvo-system"},
        "data": {"inventory.yaml": inventory}
    }))?;
    for i in 0..n {
        let ns = namespace_of(i);
        let name = format!("model-{i}");
        for (variant, product, replicas) in [
            ("h100", "NVIDIA-H100-80GB-HBM3", 1),
            ("l40s", "NVIDIA-L40S", 0),
        ] {
            let deployment = format!("{name}-{variant}");
            api.create(&serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": deployment, "namespace": ns},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": deployment}},
                    "template": {
                        "metadata": {"labels": {"app": deployment}},
                        "spec": {
                            "nodeSelector": {"nvidia.com/gpu.product": product},
                            "containers": [{"name": "vllm", "image": "vllm/vllm-openai",
                                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]
                        }
                    }
                }
            }))?;
        }
        api.create(&serde_json::json!({
            "apiVersion": "wvo.dev/v1alpha1", "kind": "VariantAutoscaling",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "modelID": name,
                "variants": [
                    {"name": "h100", "scaleTargetRef": {"name": format!("{name}-h100")},
                     "accelerator": "H100", "maxRequestsPerSecond": 10},
                    {"name": "l40s", "scaleTargetRef": {"name": format!("{name}-l40s")},
                     "accelerator": "L40S", "maxRequestsPerSecond": 3}
                ]
            }
        }))?;
    }
    // Every seeded Pod Ready before the controller starts.
    let deadline = Instant::now() + Duration::from_secs(300);
    let pods = loop {
        api.tick();
        let pods = api.list("v1", "Pod", None);
        let ready = pods
            .iter()
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        if ready >= n {
            break pods.len();
        }
        if Instant::now() > deadline {
            bail!("the emulator made {ready} of {n} pods Ready in 300 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok((api, pods))
}

type Measured = (CycleCost, BTreeMap<String, usize>);

/// Most uncounted cycles run after the first one before the steady cycles are measured.
const MAX_SETTLE_CYCLES: usize = 5;

/// Runs the child through the first cycle and `cycles` more, counting requests per cycle.
async fn drive_child(
    api: &wvo_sim::kube_api::KubeApiHandle,
    kubeconfig: &std::path::Path,
    n: usize,
    cycles: usize,
) -> Result<(Measured, Vec<Measured>)> {
    let exe = std::env::current_exe().context("finding this binary")?;
    // A profiler to run the controller under, e.g. `WVO_BENCH_SCALE_WRAPPER=heaptrack`.
    let mut command = match std::env::var("WVO_BENCH_SCALE_WRAPPER") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            let mut c = tokio::process::Command::new(wrapper.trim());
            c.arg(exe);
            c
        }
        _ => tokio::process::Command::new(exe),
    };
    let mut child = command
        .arg("bench-scale")
        .arg("--child")
        .arg(kubeconfig)
        .arg("--child-vas")
        .arg(n.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the controller process")?;
    let mut stdin = child.stdin.take().context("the child's stdin")?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    api.clear_requests();
    let mut measured = Vec::with_capacity(cycles + 1);
    // The first cycle; then cycles to settle after its scales (uncounted: until one writes
    // nothing, at most MAX_SETTLE_CYCLES); then the steady ones.
    let mut settling = 0;
    let mut cycle = 0;
    while measured.len() < cycles + 1 {
        let line = loop {
            let line = tokio::time::timeout(Duration::from_secs(600), lines.next_line())
                .await
                .context("the controller took over 600 s for one cycle")??
                .context("the controller process ended early")?;
            // A wrapper's own output (a profiler's banner) is passed through.
            if line.starts_with('{') {
                break line;
            }
            eprintln!("{line}");
        };
        let cost: CycleCost = serde_json::from_str(&line)
            .with_context(|| format!("the controller printed {line:?}"))?;
        if let Some(e) = &cost.error {
            bail!("the measured cycle failed: {e}");
        }
        let mut by_verb: BTreeMap<String, usize> = BTreeMap::new();
        for r in api.requests() {
            *by_verb
                .entry(format!("{} {}", r.verb, r.rbac_resource()))
                .or_default() += 1;
        }
        if cycle == 0 {
            // The first cycle's scales: their pods Ready before the controller looks again.
            wait_settled(api).await?;
        }
        api.clear_requests();
        let wrote = by_verb
            .keys()
            .any(|k| !k.starts_with("get ") && !k.starts_with("list ") && !k.starts_with("watch "));
        if cycle == 0 {
            measured.push((cost, by_verb));
        } else if settling < MAX_SETTLE_CYCLES && (settling == 0 || wrote) {
            settling += 1;
        } else {
            measured.push((cost, by_verb));
        }
        cycle += 1;
        stdin.write_all(b"next\n").await?;
        stdin.flush().await?;
    }
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let mut it = measured.into_iter();
    let first = it.next().context("no cycle measured")?;
    Ok((first, it.collect()))
}

/// Waits until every Deployment has its replicas Ready (up to 300 s).
async fn wait_settled(api: &wvo_sim::kube_api::KubeApiHandle) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let unsettled = api
            .list("apps/v1", "Deployment", None)
            .iter()
            .filter(|d| {
                d["spec"]["replicas"].as_u64().unwrap_or(1)
                    != d["status"]["readyReplicas"].as_u64().unwrap_or(0)
            })
            .count();
        if unsettled == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{unsettled} Deployments not Ready 300 s after the first cycle");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The measured controller: one cycle per line read on stdin, a [`CycleCost`] line after each.
async fn child(kubeconfig: &std::path::Path, vas: usize) -> Result<ExitCode> {
    let text = std::fs::read_to_string(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let kc = kube::config::Kubeconfig::from_yaml(&text)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    let client = kube::Client::try_from(config)?;
    let loads = StaticLoads::default();
    for i in 0..vas {
        loads.set(
            &namespace_of(i),
            &format!("model-{i}"),
            Ok(wvo_api::ModelLoad {
                arrival_rate: 5.0,
                avg_input_tokens: Some(512.0),
                avg_output_tokens: Some(128.0),
            }),
        );
    }
    let view = Arc::new(std::sync::RwLock::new(ControllerView::default()));
    let mut reconciler = Reconciler::new(
        client,
        ControllerConfig {
            identity: "bench-scale".into(),
            ..ControllerConfig::default()
        },
        Arc::new(loads),
        view,
        None,
    );
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let result = reconciler.cycle().await;
        let seconds = started.elapsed().as_secs_f64();
        let (rss_bytes, peak_rss_bytes, anon_rss_bytes) = rss_bytes();
        let cost = CycleCost {
            seconds,
            cpu_seconds: cpu_seconds() - cpu_before,
            rss_bytes,
            peak_rss_bytes,
            anon_rss_bytes,
            error: result.err().map(|e| e.to_string()),
        };
        crate::output::println(&serde_json::to_string(&cost)?)?;
        if stdin.next_line().await?.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// User + system CPU time of this process, s (from `/proc/self/stat`, in USER_HZ = 100 ticks
/// per second on Linux); 0 where there is no /proc.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) close with ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident, peak resident and resident anonymous memory of this process, bytes (from
/// `/proc/self/status`).
fn rss_bytes() -> (u64, u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}
