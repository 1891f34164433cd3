//! The long-running control loop: leader election, one cycle per interval while leader.

use crate::lease::{Elector, LeaseGuard, LeaseTiming};
use crate::reconciler::Reconciler;
use crate::view::SharedView;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use std::future::Future;
use std::sync::Arc;
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
    /// Lease duration, s (at least 1): a dead or paused leader is replaced within this time
    /// after its last renew; renewed every third of it.
    pub duration_seconds: u64,
    /// Safety margin, s: the leader stops writing this long before its lease runs out by
    /// its own clock (a write still on the wire, clock-rate drift); clamped to at least 1 s
    /// and at most half the duration (see [`LeaseTiming::new`]).
    pub grace_seconds: u64,
}

impl LeaderConfig {
    /// The election's times.
    pub fn timing(&self) -> LeaseTiming {
        LeaseTiming::new(self.duration_seconds, self.grace_seconds)
    }
}

/// Errors starting leader election.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The settings cannot make an election.
    #[error("leader election: {0}")]
    Lease(String),
}

/// A running leader election: the channel says whether this replica leads now, the
/// [`LeaseGuard`] whether it may write now. Dropping it stops the election task without
/// releasing the Lease (as a crash would: the guard then runs out at its deadline); use
/// [`Election::release`] for a clean hand-over.
pub struct Election {
    /// True while this replica holds the Lease.
    pub leader: watch::Receiver<bool>,
    guard: LeaseGuard,
    sender: Option<Arc<watch::Sender<bool>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    api: Api<Lease>,
    name: String,
    identity: String,
}

impl Election {
    /// The guard every write of this replica checks first ([`Reconciler::with_lease`]).
    pub fn guard(&self) -> LeaseGuard {
        self.guard.clone()
    }

    /// Gives the Lease up (the other replica takes over at once) and stops the task: the
    /// guard fails and `leader` turns false first, then the Lease's holder is cleared.
    /// Gives up after 5 s (the Lease then simply expires).
    pub async fn release(mut self) {
        self.guard.step_down();
        if let Some(sender) = self.sender.take() {
            sender.send_replace(false);
        }
        if let Some(task) = self.task.take() {
            task.abort();
            // Wait until it stopped: no renew of the elector may land after the release.
            let _ = task.await;
        }
        let released = tokio::time::timeout(
            Duration::from_secs(5),
            Elector::release(&self.api, &self.name, &self.identity),
        )
        .await;
        match released {
            Ok(Ok(true)) => tracing::info!(lease = %self.name, "leader Lease released"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the Lease was not released; it will expire instead")
            }
            Err(_) => {
                tracing::warn!("the Lease was not released in time; it will expire instead")
            }
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

/// Starts leader election on a `coordination.k8s.io/v1` Lease (see [`crate::lease`]): a
/// task that acquires and renews it and steps down on a renew failure within the lease.
pub async fn elect(client: Client, config: &LeaderConfig) -> Result<Election, RunnerError> {
    if config.duration_seconds == 0 || i32::try_from(config.duration_seconds).is_err() {
        return Err(RunnerError::Lease(format!(
            "the lease duration must be between 1 and {} s, got {}",
            i32::MAX,
            config.duration_seconds
        )));
    }
    if config.identity.is_empty() {
        return Err(RunnerError::Lease(
            "this replica's identity is empty: set --identity or POD_NAME".into(),
        ));
    }
    let guard = LeaseGuard::new();
    let (sender, leader) = watch::channel(false);
    let sender = Arc::new(sender);
    let elector = Elector::new(
        client.clone(),
        &config.namespace,
        &config.name,
        &config.identity,
        config.timing(),
        guard.clone(),
        sender.clone(),
    );
    let task = tokio::spawn(elector.run());
    Ok(Election {
        leader,
        guard,
        sender: Some(sender),
        task: Some(task),
        api: Api::namespaced(client, &config.namespace),
        name: config.name.clone(),
        identity: config.identity.clone(),
    })
}

/// A channel that always says "leader" (single replica, leader election off).
pub fn always_leader() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(true);
    // Keep the sender alive for the life of the process so `changed()` never errors.
    std::mem::forget(sender);
    receiver
}

/// Runs cycles every `interval` while `leader` says so and the reconciler's
/// [`LeaseGuard`] is valid, until `shutdown` completes. A replica that is not leader only
/// keeps its view's `leader` flag current; a cycle whose write the guard refused
/// ([`ControllerError::NotLeader`](crate::reconciler::ControllerError::NotLeader)) demotes it
/// until the next tick at which both say leader again.
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
        // The elector's word and the guard's deadline: a replica that resumes after a pause
        // past its deadline does not start a cycle before its elector renewed.
        let is_leader = *leader.borrow() && reconciler.lease().check().is_ok();
        set_leader(&view, metrics.as_deref(), is_leader);
        if !is_leader {
            heartbeat(&view);
            continue;
        }
        match reconciler.cycle().await {
            Err(crate::reconciler::ControllerError::NotLeader(why)) => {
                // A write was refused (logged and counted by the reconciler): demote until
                // the elector renews.
                tracing::info!(why = %why, "not leader any more; the cycle stopped writing");
                set_leader(&view, metrics.as_deref(), false);
                heartbeat(&view);
            }
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
        if v.leader != leader {
            v.leader = leader;
            v.cycle_signal.published();
        }
    }
    if let Some(m) = metrics {
        m.set_leader(leader);
    }
}
