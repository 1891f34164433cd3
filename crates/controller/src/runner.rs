//! The long-running control loop: leader election, one cycle per interval while leader.

use crate::reconciler::Reconciler;
use crate::view::SharedView;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// Lease duration, s: a dead leader is replaced within this time.
    pub duration_seconds: u64,
    /// Renew this long before the lease expires, s.
    pub grace_seconds: u64,
}

/// Errors starting leader election.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The lease manager could not start.
    #[error("leader election: {0}")]
    Lease(String),
}

/// A running leader election: the channel says whether this replica leads now. Dropping it
/// stops the election task without releasing the Lease (as a crash would); use
/// [`Election::release`] for a clean hand-over.
pub struct Election {
    /// True while this replica holds the Lease.
    pub leader: watch::Receiver<bool>,
    task: Option<
        tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
    >,
}

impl Election {
    /// Gives the Lease up (the other replica takes over at once) and stops the task.
    /// Every clone of `leader` must be dropped first: the manager releases when its last
    /// receiver closes. Gives up after 5 s (the Lease then simply expires).
    pub async fn release(mut self) {
        let Some(task) = self.task.take() else { return };
        let (_, closed) = watch::channel(false);
        self.leader = closed;
        let abort = task.abort_handle();
        let released = tokio::time::timeout(Duration::from_secs(5), async move {
            if let Ok(Ok(manager)) = task.await {
                let _ = manager.release().await;
            }
        })
        .await;
        if released.is_err() {
            abort.abort();
            tracing::warn!("the Lease was not released in time; it will expire instead");
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts leader election on a `coordination.k8s.io` Lease.
pub async fn elect(client: Client, config: &LeaderConfig) -> Result<Election, RunnerError> {
    let manager = LeaseManagerBuilder::new(client, config.name.clone())
        .with_namespace(config.namespace.clone())
        .with_identity(config.identity.clone())
        .with_duration(config.duration_seconds)
        .with_grace(config.grace_seconds)
        .build()
        .await
        .map_err(|e| RunnerError::Lease(e.to_string()))?;
    let (leader, task) = manager.watch().await;
    Ok(Election {
        leader,
        task: Some(task),
    })
}

/// A channel that always says "leader" (single replica, leader election off).
pub fn always_leader() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(true);
    // Keep the sender alive for the life of the process so `changed()` never errors.
    std::mem::forget(sender);
    receiver
}

/// Runs cycles every `interval` while `leader` says so, until `shutdown` completes.
/// A replica that is not leader only keeps its view's `leader` flag current.
pub async fn run(
    mut reconciler: Reconciler,
    view: SharedView,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    interval: Duration,
    mut leader: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    if let Ok(mut v) = view.write() {
        let cycles = v
            .liveness_cycles
            .unwrap_or(crate::view::DEFAULT_LIVENESS_CYCLES)
            .max(1);
        v.liveness_window_seconds = Some(interval.as_secs_f64() * f64::from(cycles));
    }
    heartbeat(&view);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {}
            changed = leader.changed() => {
                if changed.is_err() {
                    // The election task ended: stop acting rather than act without a lease.
                    set_leader(&view, metrics.as_deref(), false);
                    if let Ok(mut v) = view.write() {
                        v.stopped = Some(
                            "leader election stopped: this replica no longer acts; restart it"
                                .to_string(),
                        );
                    }
                    tracing::error!("leader election stopped; not acting any more");
                    shutdown.await;
                    break;
                }
                // Act at once on becoming leader.
                if !*leader.borrow() {
                    set_leader(&view, metrics.as_deref(), false);
                    continue;
                }
            }
        }
        let is_leader = *leader.borrow();
        set_leader(&view, metrics.as_deref(), is_leader);
        if !is_leader {
            heartbeat(&view);
            continue;
        }
        match reconciler.cycle().await {
            Ok(report) => {
                heartbeat(&view);
                for (ns, name, from, to) in &report.actuations {
                    tracing::info!(namespace = %ns, workload = %name, from, to, "scaled");
                }
                for e in &report.errors {
                    tracing::warn!(error = %e, "cycle error");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cycle failed; the previous plan stays in force"),
        }
    }
}

/// Records that the loop did its job now (liveness).
fn heartbeat(view: &SharedView) {
    let now = crate::reconciler::now_seconds();
    if let Ok(mut v) = view.write() {
        v.heartbeat_unix = Some(now);
    }
}

fn set_leader(view: &SharedView, metrics: Option<&crate::metrics::Metrics>, leader: bool) {
    if let Ok(mut v) = view.write() {
        v.leader = leader;
    }
    if let Some(m) = metrics {
        m.set_leader(leader);
    }
}
