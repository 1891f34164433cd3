//! The leader writes only while its lease is valid by its own clock: a leader paused past its
//! lease writes nothing after it resumes, and a leader whose renews fail steps down within
//! the lease. Checked from the emulator's request log (who sent what, and when it arrived).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wvo_controller::lease::LeaseGuard;
use wvo_controller::loads::VariantPod;
use wvo_controller::loads::{BoxFuture, LoadSource, Loads, ModelKey, Observed, StaticLoads};
use wvo_controller::metrics::Metrics;
use wvo_controller::reconciler::Reconciler;
use wvo_controller::runner::{self, LeaderConfig};
use wvo_controller::view::{ControllerView, SharedView};
use wvo_e2e::{eventually, test_config, Cluster};
use wvo_sim::kube_api::RecordedRequest;

/// A short lease keeps the tests fast: renewed every 1 s, writes stop 1 s before it ends.
const LEASE_SECONDS: u64 = 3;
const MARGIN_SECONDS: u64 = 1;

fn lease(identity: &str) -> LeaderConfig {
    LeaderConfig {
        namespace: "wvo-system".into(),
        name: "wvo-leader".into(),
        identity: identity.into(),
        duration_seconds: LEASE_SECONDS,
        grace_seconds: MARGIN_SECONDS,
    }
}

fn is_write(r: &RecordedRequest) -> bool {
    matches!(
        r.verb.as_str(),
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

fn show(at: Instant, since: Instant, r: &RecordedRequest) -> String {
    let ms = |a: Instant, b: Instant| {
        if a >= b {
            format!("+{}", a.duration_since(b).as_millis())
        } else {
            format!("-{}", b.duration_since(a).as_millis())
        }
    };
    format!(
        "{} ms {} {} {}/{} {}/{}",
        ms(at, since),
        r.user,
        r.verb,
        r.resource,
        r.subresource,
        r.namespace,
        r.name
    )
}

fn new_view() -> SharedView {
    Arc::new(RwLock::new(ControllerView::default()))
}

/// Loads that, once armed, block the thread that reads them until thawed: the controller
/// that reads them runs on a runtime of its own thread, so its cycle, its elector, its watch
/// caches and its connections all stop at once, mid-cycle (after the cycle's reads, before
/// its writes), as a paused process (SIGSTOP, a long stall, a starved node) would. The
/// monotonic clock goes on meanwhile.
#[derive(Clone)]
struct FreezingLoads {
    inner: StaticLoads,
    armed: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    thaw: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

impl LoadSource for FreezingLoads {
    fn loads<'a>(&'a self, models: &'a [ModelKey]) -> BoxFuture<'a, Loads> {
        self.inner.loads(models)
    }

    fn observe<'a>(
        &'a self,
        models: &'a [ModelKey],
        pods: &'a [VariantPod],
    ) -> BoxFuture<'a, Observed> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let thaw = self.thaw.lock().unwrap_or_else(|p| p.into_inner()).take();
            self.frozen.store(true, Ordering::SeqCst);
            if let Some(thaw) = thaw {
                // Blocks the runtime's only thread: nothing of this controller runs.
                let _ = thaw.recv();
            }
            self.frozen.store(false, Ordering::SeqCst);
        }
        self.inner.observe(models, pods)
    }
}

/// Scales for `rate` req/s (H100 at 10, L40S at 3 each) are in place.
/// Controller `identity`, elected with `client`: its election, and its reconciler checking the
/// election's lease before each write.
async fn elected(
    client: kube::Client,
    identity: &str,
    loads: Arc<dyn LoadSource>,
    view: &SharedView,
    metrics: &Arc<Metrics>,
) -> (runner::Election, Reconciler) {
    let election = runner::elect(client.clone(), &lease(identity))
        .await
        .expect("elect");
    let reconciler = Reconciler::new(
        client,
        test_config(identity),
        loads,
        view.clone(),
        Some(metrics.clone()),
    )
    .with_lease(election.guard());
    (election, reconciler)
}

/// The control loop of `reconciler`: a cycle every 200 ms while `election` says it leads,
/// until `stopped` fires.
fn control_loop(
    reconciler: Reconciler,
    view: &SharedView,
    metrics: &Arc<Metrics>,
    election: &runner::Election,
    stopped: tokio::sync::oneshot::Receiver<()>,
) -> impl std::future::Future<Output = ()> {
    runner::run(
        reconciler,
        view.clone(),
        Some(metrics.clone()),
        Duration::from_millis(200),
        election.leader.clone(),
        async {
            let _ = stopped.await;
        },
    )
}

async fn serves(cluster: &Cluster, rate: f64) -> Option<()> {
    let h = cluster.replicas("llama-h100").await;
    let l = cluster.replicas("llama-l40s").await;
    (f64::from(h) * 10.0 + f64::from(l) * 3.0 >= rate).then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_writes_nothing_after_it_resumes() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);

    // Controller A, on a runtime of its own thread (so that it can be frozen whole).
    let loads = FreezingLoads {
        inner: cluster.loads.clone(),
        armed: Arc::new(AtomicBool::new(false)),
        frozen: Arc::new(AtomicBool::new(false)),
        thaw: Arc::new(Mutex::new(None)),
    };
    let mut a_config = cluster.api.config().expect("config");
    a_config.headers.push((
        axum::http::header::AUTHORIZATION,
        "Bearer a".parse().expect("header value"),
    ));
    let (a_view, a_metrics) = (new_view(), Arc::new(Metrics::new()));
    let (guard_tx, guard_rx) = mpsc::channel::<LeaseGuard>();
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a_thread = std::thread::spawn({
        let (loads, view, metrics) = (loads.clone(), a_view.clone(), a_metrics.clone());
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime of A");
            rt.block_on(async move {
                let client = kube::Client::try_from(a_config).expect("client of A");
                let (election, reconciler) =
                    elected(client, "a", Arc::new(loads), &view, &metrics).await;
                let _ = guard_tx.send(election.guard());
                control_loop(reconciler, &view, &metrics, &election, stopped_a).await;
                drop(election);
            });
        }
    });
    let a_guard = tokio::task::spawn_blocking(move || guard_rx.recv().expect("A's guard"))
        .await
        .expect("guard");
    eventually(15, "A to lead and act", || serves(&cluster, 35.0)).await;

    // Freeze A in its next cycle, between its reads and its writes.
    let (thaw, thaw_rx) = mpsc::channel::<()>();
    *loads.thaw.lock().expect("thaw") = Some(thaw_rx);
    loads.armed.store(true, Ordering::SeqCst);
    eventually(10, "A to freeze mid-cycle", || async {
        loads.frozen.load(Ordering::SeqCst).then_some(())
    })
    .await;
    // What A's frozen cycle will plan for when it resumes, and B for now.
    cluster.set_load("llama", 60.0);

    // Controller B takes over when A's lease expires by B's clock, and acts.
    let b_client = cluster.api.client_as("b").expect("client of B");
    let (b_view, b_metrics) = (new_view(), Arc::new(Metrics::new()));
    let (b_election, b_reconciler) = elected(
        b_client,
        "b",
        Arc::new(cluster.loads.clone()),
        &b_view,
        &b_metrics,
    )
    .await;
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let b_task = tokio::spawn(control_loop(
        b_reconciler,
        &b_view,
        &b_metrics,
        &b_election,
        stopped_b,
    ));
    eventually(15, "B to lead", || {
        let view = b_view.clone();
        async move { view.read().ok()?.leader.then_some(()) }
    })
    .await;
    eventually(15, "B to scale for 60 req/s", || serves(&cluster, 60.0)).await;
    let log = cluster.api.requests_timed();
    let (b_acquired, _) = log
        .iter()
        .find(|(_, r)| r.user == "b" && r.resource == "leases" && is_write(r))
        .cloned()
        .expect("B's acquiring write");
    let a_deadline = a_guard.valid_until().expect("A had renewed").into_std();
    assert!(
        b_acquired >= a_deadline + Duration::from_secs(MARGIN_SECONDS),
        "B took the Lease {} ms after A's deadline, before A's lease ran out",
        b_acquired.duration_since(a_deadline).as_millis()
    );

    // A resumes: its cycle goes on to its writes with a leader flag that still says true.
    let thawed = Instant::now();
    thaw.send(()).expect("thaw A");
    // Let A run on for a while: its elector sees B's Lease at once and reads it again every
    // second (as a follower); its loop ticks every 200 ms.
    let window = thawed + Duration::from_millis(1200);
    eventually(10, "A to run on for a second after it resumed", || async {
        cluster
            .api
            .requests_timed()
            .iter()
            .any(|(t, r)| *t > window && r.user == "a" && r.resource == "leases")
            .then_some(())
    })
    .await;

    let log = cluster.api.requests_timed();
    let late: Vec<String> = log
        .iter()
        .filter(|(t, r)| r.user == "a" && is_write(r) && *t >= b_acquired)
        .map(|(t, r)| show(*t, b_acquired, r))
        .collect();
    assert!(
        late.is_empty(),
        "A wrote after B acquired the Lease:\n  {}",
        late.join("\n  ")
    );
    // The resumed cycle did go on to its writes, and each was refused.
    let last_error = a_view.read().expect("view").last_error.clone();
    assert!(
        last_error
            .as_deref()
            .is_some_and(|e| e.contains("write refused")),
        "A's resumed cycle ended refused: {last_error:?}"
    );
    assert!(
        a_metrics
            .encode()
            .contains(r#"wvo_errors_total{kind="not_leader"}"#),
        "the refusal is counted"
    );
    assert!(!a_view.read().expect("view").leader, "A demoted");
    assert!(b_view.read().expect("view").leader, "B still leads");
    serves(&cluster, 60.0).await.expect("B's scale stands");

    let _ = stop_b.send(());
    let _ = b_task.await;
    b_election.release().await;
    let _ = stop_a.send(());
    tokio::task::spawn_blocking(move || a_thread.join())
        .await
        .expect("join")
        .expect("A's thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renew_failure_demotes_within_the_lease() {
    let cluster = Cluster::start().await;
    cluster.two_variant_va("llama", "llama", "").await;
    cluster.set_load("llama", 35.0);
    let client = cluster.api.client_as("a").expect("client of A");
    let (view, metrics) = (new_view(), Arc::new(Metrics::new()));
    let (election, reconciler) = elected(
        client,
        "a",
        Arc::new(cluster.loads.clone()),
        &view,
        &metrics,
    )
    .await;
    let guard = election.guard();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(control_loop(
        reconciler, &view, &metrics, &election, stopped,
    ));
    eventually(15, "A to lead and act", || serves(&cluster, 35.0)).await;

    // From now on every write fails (503): A's renews, and the scale-up it wants for the
    // new load, which the actuator retries with backoff.
    let injected = Instant::now();
    cluster.api.fail_next_writes(u32::MAX, 503);
    cluster.set_load("llama", 60.0);
    let mut leader = election.leader.clone();
    tokio::time::timeout(Duration::from_secs(10), leader.wait_for(|l| !*l))
        .await
        .expect("A steps down")
        .expect("election running");
    let demoted = Instant::now();
    let deadline = guard.valid_until().expect("A had renewed").into_std();
    let validity = Duration::from_secs(LEASE_SECONDS - MARGIN_SECONDS);
    let last_renew_sent = deadline - validity;
    println!(
        "demoted {} ms after the last successful renew was sent (lease {LEASE_SECONDS} s, deadline at {} ms)",
        demoted.duration_since(last_renew_sent).as_millis(),
        validity.as_millis()
    );
    assert!(
        demoted < last_renew_sent + Duration::from_secs(LEASE_SECONDS),
        "stepped down only after the lease ran out"
    );
    assert!(guard.check().is_err());

    // A lives on (its elector keeps trying, as a follower, every second): wait until it
    // has tried for more than a second after its deadline, longer than the backoff of the
    // actuator's retries.
    let window = deadline + Duration::from_millis(1500);
    eventually(
        10,
        "A to try the Lease again well after its deadline",
        || async {
            cluster
                .api
                .requests_timed()
                .iter()
                .any(|(t, r)| *t > window && r.user == "a" && r.resource == "leases")
                .then_some(())
        },
    )
    .await;
    let log = cluster.api.requests_timed();
    let a_writes = |from: Instant, to: Instant| -> Vec<String> {
        log.iter()
            .filter(|(t, r)| {
                r.user == "a" && is_write(r) && r.resource != "leases" && *t >= from && *t < to
            })
            .map(|(t, r)| show(*t, deadline, r))
            .collect()
    };
    // A wrote (tried to scale) while its renews were failing, within its lease ...
    assert!(
        !a_writes(injected, deadline).is_empty(),
        "A tried to write before its deadline (the test exercises the guard)"
    );
    // ... and nothing after its deadline (a write checked just before the deadline may still
    // be on the wire: 250 ms of loopback latency allowed, well inside the 1 s margin).
    let late = a_writes(deadline + Duration::from_millis(250), Instant::now());
    assert!(
        late.is_empty(),
        "A wrote after its deadline:\n  {}",
        late.join("\n  ")
    );

    // When the API server recovers, A (still the Lease's holder) leads again.
    cluster.api.fail_next_writes(0, 503);
    tokio::time::timeout(Duration::from_secs(10), leader.wait_for(|l| *l))
        .await
        .expect("A leads again")
        .expect("election running");
    eventually(15, "A to scale for 60 req/s", || serves(&cluster, 60.0)).await;
    let _ = stop.send(());
    let _ = task.await;
    election.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_at_once() {
    let cluster = Cluster::start().await;
    let a = runner::elect(cluster.api.client_as("a").expect("client"), &lease("a"))
        .await
        .expect("elect A");
    let mut a_leader = a.leader.clone();
    tokio::time::timeout(Duration::from_secs(10), a_leader.wait_for(|l| *l))
        .await
        .expect("A leads")
        .expect("election running");
    let b = runner::elect(cluster.api.client_as("b").expect("client"), &lease("b"))
        .await
        .expect("elect B");
    // B reads the Lease (held by A) before A lets it go.
    eventually(10, "B to see A's Lease", || async {
        cluster
            .api
            .requests()
            .iter()
            .any(|r| r.user == "b" && r.resource == "leases")
            .then_some(())
    })
    .await;
    assert!(!*b.leader.borrow(), "two leaders");
    let a_guard = a.guard();
    let released = Instant::now();
    a.release().await;
    assert!(a_guard.check().is_err(), "A writes nothing once released");
    let mut b_leader = b.leader.clone();
    tokio::time::timeout(Duration::from_secs(10), b_leader.wait_for(|l| *l))
        .await
        .expect("B leads")
        .expect("election running");
    let took = released.elapsed();
    println!("B took over {} ms after A released", took.as_millis());
    // B tries every third of the lease; without the release it would wait the whole lease
    // after it last saw A's renew.
    assert!(
        took < Duration::from_secs(LEASE_SECONDS) - Duration::from_millis(500),
        "took {took:?}"
    );
    let lease = cluster
        .api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "wvo-system",
            "wvo-leader",
        )
        .expect("the Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "one hand-over");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], LEASE_SECONDS);
    assert!(b.guard().check().is_ok());
    b.release().await;
}
