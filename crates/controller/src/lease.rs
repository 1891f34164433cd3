//! Leader election on a `coordination.k8s.io/v1` Lease, and the [`LeaseGuard`] every write
//! of the leader checks first.
//!
//! ```text
//!  elector task (one per replica)                       reconciler (leader only)
//!  every renew_every (duration / 3):                    before each write (status patch,
//!    GET lease ─► decide() ─► create / merge patch        /scale, HPA bounds, Event):
//!                 (pure)      with resourceVersion          guard.check()?
//!    success ─► guard.renewed(sent): valid_until =          Ok  ─► write
//!                 sent + duration - margin (monotonic)      Err ─► stop writing this cycle,
//!    failure ─► retry until valid_until, then step down            runner demotes
//!    held by another ─► step down; follower retries when its lease expires (by our clock)
//! ```
//!
//! Semantics are client-go's `leaderelection` (LeaseLock): the Lease's `holderIdentity`,
//! `leaseDurationSeconds`, `acquireTime`, `renewTime` and `leaseTransitions`, written with
//! optimistic concurrency (the `resourceVersion` read is a precondition of the write). A
//! replica that does not hold the Lease takes it only when `leaseDurationSeconds` have
//! passed, **by its own monotonic clock**, since it last saw the record change: the remote
//! `renewTime` is never compared with the local wall clock, so clock skew between nodes does
//! not matter. An empty `holderIdentity` (a released Lease) is free at once.
//!
//! The leader's side of the same bargain is the guard's deadline: `valid_until` is the
//! monotonic time just before its last successful renew was *sent*, plus the duration, minus
//! a margin. Any other replica saw that renew no earlier than it was sent, so it cannot take
//! over before `valid_until + margin`; the margin covers a write that is on the wire when the
//! deadline passes and clock-rate drift. The monotonic clock keeps running while the process
//! is paused (SIGSTOP, a long GC-like stall, a starved node): a leader that resumes after its
//! deadline finds [`LeaseGuard::check`] failing before it has renewed, whatever its elector
//! task believed before the pause. A renew that fails is retried until the deadline, and the
//! elector steps down (leader `false`) when it passes: a failing renew demotes within the
//! lease, not after some backoff.
//!
//! What the guard cannot cover: a pause *between* a successful check and the write leaving
//! the process (the API server has no fencing token for arbitrary writes). The window is the
//! few instructions from the check to the send.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The least safety margin between the guard's deadline and the lease's end: 1 s.
pub const MIN_MARGIN: Duration = Duration::from_secs(1);

/// Why this replica may not write now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLeader {
    /// The Lease was never acquired by this replica.
    #[error("this replica does not hold the leader Lease")]
    NotAcquired,
    /// The local deadline of the last successful renew has passed.
    #[error("the leader Lease ran out {late_ms} ms ago by this replica's clock (no successful renew in time); another replica may lead now")]
    Expired {
        /// How long ago the deadline passed, ms.
        late_ms: u64,
    },
    /// The elector gave the lead up (another replica holds the Lease, the renew failed for
    /// the whole lease, or the Lease was released).
    #[error("this replica stepped down as leader")]
    SteppedDown,
}

/// Whether this replica may write now: a cheap, shared view of the elector's state, read
/// before each write. Clones share one state.
///
/// ```
/// use wvo_controller::lease::LeaseGuard;
/// // --no-leader-election: always valid.
/// assert!(LeaseGuard::always().check().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct LeaseGuard(Arc<GuardInner>);

#[derive(Debug)]
struct GuardInner {
    always: bool,
    state: Mutex<GuardState>,
}

#[derive(Clone, Copy, Debug, Default)]
struct GuardState {
    /// Monotonic time up to which the last successful renew lets this replica write.
    valid_until: Option<Instant>,
    /// The elector holds the lead (false after a step-down until the next acquire).
    leading: bool,
}

impl LeaseGuard {
    /// A guard that is always valid (a single replica, leader election off).
    pub fn always() -> Self {
        Self(Arc::new(GuardInner {
            always: true,
            state: Mutex::new(GuardState::default()),
        }))
    }

    /// A guard that is not valid until [`renewed`](Self::renewed) (what an elector starts
    /// with).
    pub fn new() -> Self {
        Self(Arc::new(GuardInner {
            always: false,
            state: Mutex::new(GuardState::default()),
        }))
    }

    fn state(&self) -> GuardState {
        *self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut GuardState)) {
        f(&mut self.0.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Ok while this replica may write: it holds the lead and now is before the deadline of
    /// its last successful renew (monotonic clock). Always Ok for [`always`](Self::always).
    pub fn check(&self) -> Result<(), NotLeader> {
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) at a given monotonic time.
    pub fn check_at(&self, now: Instant) -> Result<(), NotLeader> {
        self.remaining_at(now).map(|_| ())
    }

    /// How long this replica may still write: the time left to the deadline
    /// ([`Duration::MAX`] for [`always`](Self::always)), or why it may not. A write is bounded
    /// by it (a call still waiting for its answer, or retried by the client, is cut at the
    /// deadline).
    pub fn remaining(&self) -> Result<Duration, NotLeader> {
        self.remaining_at(Instant::now())
    }

    /// [`remaining`](Self::remaining) at a given monotonic time.
    pub fn remaining_at(&self, now: Instant) -> Result<Duration, NotLeader> {
        if self.0.always {
            return Ok(Duration::MAX);
        }
        let state = self.state();
        match state.valid_until {
            None => Err(NotLeader::NotAcquired),
            Some(_) if !state.leading => Err(NotLeader::SteppedDown),
            Some(until) if now >= until => Err(NotLeader::Expired {
                late_ms: u64::try_from(now.duration_since(until).as_millis()).unwrap_or(u64::MAX),
            }),
            Some(until) => Ok(until - now),
        }
    }

    /// The deadline of the last successful renew (monotonic), kept after a step-down; None
    /// before the first acquire and for [`always`](Self::always).
    pub fn valid_until(&self) -> Option<Instant> {
        if self.0.always {
            return None;
        }
        self.state().valid_until
    }

    /// Records a successful acquire or renew whose request was sent at `sent` (monotonic,
    /// taken just before sending): valid until `sent + validity`, and leading.
    pub fn renewed(&self, sent: Instant, validity: Duration) {
        self.update(|s| {
            s.valid_until = Some(sent + validity);
            s.leading = true;
        });
    }

    /// Gives the lead up: [`check`](Self::check) fails from now on, until the next
    /// [`renewed`](Self::renewed).
    pub fn step_down(&self) {
        self.update(|s| s.leading = false);
    }

    /// Whether the elector holds the lead (it may still be past its deadline).
    fn leading(&self) -> bool {
        self.state().leading
    }
}

impl Default for LeaseGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// The times of an election, from [`LeaderConfig`](crate::runner::LeaderConfig).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// `leaseDurationSeconds` as a duration: another replica takes over this long after it
    /// last saw the Lease change.
    pub duration: Duration,
    /// How long before the lease's end (by this replica's clock) the leader stops writing:
    /// at least [`MIN_MARGIN`] (or half the duration, if less), at most half the duration.
    pub margin: Duration,
    /// Time between two renews, and between two tries of a follower: duration / 3.
    pub renew_every: Duration,
    /// Time between two tries of a leader whose renew failed: renew_every / 3, at least
    /// 100 ms (bounded by the deadline).
    pub retry_every: Duration,
}

impl LeaseTiming {
    /// The timing of a lease of `duration_seconds` (at least 1) with a margin of
    /// `margin_seconds`, clamped to [1 s, duration / 2].
    pub fn new(duration_seconds: u64, margin_seconds: u64) -> Self {
        let duration = Duration::from_secs(duration_seconds.max(1));
        let margin = Duration::from_secs(margin_seconds)
            .max(MIN_MARGIN)
            .min(duration / 2);
        let renew_every = duration / 3;
        Self {
            duration,
            margin,
            renew_every,
            retry_every: (renew_every / 3).max(Duration::from_millis(100)),
        }
    }

    /// How long a successful renew lets the leader write, counted from when it was sent:
    /// duration - margin.
    pub fn validity(&self) -> Duration {
        self.duration.saturating_sub(self.margin)
    }
}

/// The record as last seen, and when (monotonic): the observation clock of client-go.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The Lease's spec as read.
    pub record: LeaseSpec,
    /// When this replica first saw this record.
    pub at: Instant,
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Write this spec (acquire or renew).
    Take(LeaseSpec),
    /// Another replica holds it and it has not expired by our clock.
    Held {
        /// Its holder.
        holder: String,
        /// When it expires by our clock, unless it changes again.
        expires: Instant,
    },
}

/// Decides on a read of the Lease (`current`, None when it does not exist), updating the
/// observation clock `observed`: a changed record restarts it at `now`. A record held by
/// another identity is taken only when `now` is at least its `leaseDurationSeconds` after the
/// observation; an empty holder (released) is free at once. The written record keeps
/// `acquireTime` and `leaseTransitions` when `identity` already holds it, and otherwise
/// starts a new term (`leaseTransitions` + 1). `wall` is the wall-clock time written to
/// `renewTime` (and `acquireTime`); it is never compared with the remote timestamps.
pub fn decide(
    observed: &mut Option<Observed>,
    current: Option<&LeaseSpec>,
    identity: &str,
    timing: &LeaseTiming,
    now: Instant,
    wall: MicroTime,
) -> Decision {
    let duration_seconds = i32::try_from(timing.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(current) = current else {
        return Decision::Take(LeaseSpec {
            holder_identity: Some(identity.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            acquire_time: Some(wall.clone()),
            renew_time: Some(wall),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        });
    };
    if observed.as_ref().is_none_or(|o| &o.record != current) {
        *observed = Some(Observed {
            record: current.clone(),
            at: now,
        });
    }
    let holder = current.holder_identity.as_deref().filter(|h| !h.is_empty());
    let ours = holder == Some(identity);
    if let (Some(holder), false) = (holder, ours) {
        let seconds = current
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .unwrap_or(timing.duration.as_secs());
        let since = observed.as_ref().map_or(now, |o| o.at);
        let expires = since + Duration::from_secs(seconds);
        if now < expires {
            return Decision::Held {
                holder: holder.to_string(),
                expires,
            };
        }
    }
    let transitions = current.lease_transitions.unwrap_or(0);
    Decision::Take(LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration_seconds),
        acquire_time: if ours {
            current.acquire_time.clone().or_else(|| Some(wall.clone()))
        } else {
            Some(wall.clone())
        },
        renew_time: Some(wall),
        lease_transitions: Some(if ours {
            transitions
        } else {
            transitions.saturating_add(1)
        }),
        ..LeaseSpec::default()
    })
}

/// What one try of the elector came to.
enum Attempt {
    /// This replica holds the Lease; the write was sent at `sent` (monotonic).
    Leading { sent: Instant },
    /// Another replica holds it until `expires` (our clock).
    Held { holder: String, expires: Instant },
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// The elector task's state.
pub(crate) struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    guard: LeaseGuard,
    leader: Arc<watch::Sender<bool>>,
    observed: Option<Observed>,
}

impl Elector {
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
        guard: LeaseGuard,
        leader: Arc<watch::Sender<bool>>,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            guard,
            leader,
            observed: None,
        }
    }

    /// GET, then create or merge-patch with the read resourceVersion as precondition.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Instant::now();
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        match decide(
            &mut self.observed,
            spec.as_ref(),
            &self.identity,
            &self.timing,
            now,
            now_micro(),
        ) {
            Decision::Held { holder, expires } => Ok(Attempt::Held { holder, expires }),
            Decision::Take(record) => {
                let sent = Instant::now();
                match current {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(self.name.clone()),
                                ..ObjectMeta::default()
                            },
                            spec: Some(record.clone()),
                        };
                        self.api.create(&PostParams::default(), &lease).await?;
                    }
                    Some(lease) => {
                        let patch = json!({
                            "metadata": {"resourceVersion": lease.metadata.resource_version},
                            "spec": record,
                        });
                        self.api
                            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await?;
                    }
                }
                self.observed = Some(Observed {
                    record,
                    at: Instant::now(),
                });
                Ok(Attempt::Leading { sent })
            }
        }
    }

    fn set_leader(&self, leader: bool) {
        self.leader.send_if_modified(|l| {
            let changed = *l != leader;
            *l = leader;
            changed
        });
    }

    fn step_down(&self, why: &str) {
        if self.guard.leading() {
            tracing::warn!(lease = %self.name, identity = %self.identity, why, "stepping down as leader");
        }
        self.guard.step_down();
        self.set_leader(false);
    }

    /// Acquires, renews and steps down until the task is aborted.
    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            let leading = self.guard.leading();
            // A leader's try is bounded by what is left of its lease.
            let budget = if leading {
                match self.guard.valid_until() {
                    Some(until) if until > now => (until - now).min(self.timing.renew_every),
                    _ => {
                        self.step_down("the lease ran out before a renew succeeded");
                        continue;
                    }
                }
            } else {
                self.timing.renew_every
            };
            let result = tokio::time::timeout(budget, self.try_acquire_or_renew()).await;
            let after = Instant::now();
            let next = match result {
                Ok(Ok(Attempt::Leading { sent })) => {
                    self.guard.renewed(sent, self.timing.validity());
                    if !leading {
                        tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    }
                    self.set_leader(true);
                    after + self.timing.renew_every
                }
                Ok(Ok(Attempt::Held { holder, expires })) => {
                    if leading {
                        self.step_down(&format!("the Lease is held by {holder}"));
                    }
                    // Try again when it expires by our clock, or sooner to see a release.
                    expires.min(after + self.timing.renew_every)
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.name, error = %e, leading, "leader election: Lease not acquired or renewed");
                    after + self.retry_wait(leading)
                }
                Err(_) => {
                    tracing::warn!(lease = %self.name, timeout_ms = budget.as_millis() as u64, leading, "leader election: no answer from the API server in time");
                    after + self.retry_wait(leading)
                }
            };
            // A leader wakes at its deadline at the latest (and steps down there if no renew
            // succeeded by then).
            let wake = match (self.guard.leading(), self.guard.valid_until()) {
                (true, Some(until)) => next.min(until),
                _ => next,
            };
            tokio::time::sleep_until(wake).await;
        }
    }

    fn retry_wait(&self, leading: bool) -> Duration {
        if leading {
            self.timing.retry_every
        } else {
            self.timing.renew_every
        }
    }

    /// Gives the Lease up if this replica holds it: empty holder, `leaseDurationSeconds` 1,
    /// times now (as client-go releases), so another replica takes it at once.
    pub(crate) async fn release(
        api: &Api<Lease>,
        name: &str,
        identity: &str,
    ) -> Result<bool, kube::Error> {
        let Some(lease) = api.get_opt(name).await? else {
            return Ok(false);
        };
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(identity) {
            return Ok(false);
        }
        let now = now_micro();
        let patch = json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {
                "holderIdentity": null,
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
            },
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: &str) -> MicroTime {
        MicroTime(s.parse().unwrap())
    }

    fn held_by(holder: &str, renew: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(3),
            acquire_time: Some(wall("2026-01-01T00:00:00Z")),
            renew_time: Some(wall(renew)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn the_margin_is_at_least_a_second_and_at_most_half_the_lease() {
        let t = LeaseTiming::new(15, 3);
        assert_eq!(t.margin, Duration::from_secs(3));
        assert_eq!(t.validity(), Duration::from_secs(12));
        assert_eq!(t.renew_every, Duration::from_secs(5));
        assert_eq!(LeaseTiming::new(15, 0).margin, MIN_MARGIN);
        assert_eq!(LeaseTiming::new(4, 10).margin, Duration::from_secs(2));
        assert_eq!(LeaseTiming::new(1, 1).margin, Duration::from_millis(500));
        assert_eq!(LeaseTiming::new(0, 0).duration, Duration::from_secs(1));
        // A renew fails at most twice before the deadline (renew at duration / 3, validity
        // at least duration / 2).
        for d in 1..60 {
            let t = LeaseTiming::new(d, d / 5);
            assert!(t.renew_every < t.validity(), "{t:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_guard_is_valid_until_send_time_plus_duration_minus_margin() {
        let timing = LeaseTiming::new(3, 1);
        let guard = LeaseGuard::new();
        assert_eq!(guard.check(), Err(NotLeader::NotAcquired));
        let sent = Instant::now();
        // The answer took 300 ms: the deadline counts from the send, not the answer.
        tokio::time::advance(Duration::from_millis(300)).await;
        guard.renewed(sent, timing.validity());
        assert_eq!(guard.valid_until(), Some(sent + Duration::from_secs(2)));
        assert!(guard.check().is_ok());
        assert_eq!(guard.remaining(), Ok(Duration::from_millis(1700)));
        tokio::time::advance(Duration::from_millis(1699)).await;
        assert!(guard.check().is_ok(), "1 ms before the deadline");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(guard.check(), Err(NotLeader::Expired { late_ms: 0 }));
        // Clones share the state.
        let clone = guard.clone();
        guard.renewed(Instant::now(), timing.validity());
        assert!(clone.check().is_ok());
        clone.step_down();
        assert_eq!(guard.check(), Err(NotLeader::SteppedDown));
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_paused_past_its_deadline_finds_the_guard_failing_before_any_renew() {
        let timing = LeaseTiming::new(15, 3);
        let guard = LeaseGuard::new();
        guard.renewed(Instant::now(), timing.validity());
        // Nothing runs during the pause; the monotonic clock moves on.
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(guard.check(), Err(NotLeader::Expired { late_ms: 28_000 }));
        assert!(LeaseGuard::always().check().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_held_by_another_is_taken_only_a_duration_after_we_saw_it_change() {
        let timing = LeaseTiming::new(3, 1);
        let mut observed = None;
        // Its renewTime is hours old by our wall clock: it does not matter (skew).
        let record = held_by("b", "2026-01-01T00:00:00Z", 4);
        let t0 = Instant::now();
        let now = wall("2026-01-01T05:00:00Z");
        let d = decide(&mut observed, Some(&record), "a", &timing, t0, now.clone());
        assert_eq!(
            d,
            Decision::Held {
                holder: "b".into(),
                expires: t0 + Duration::from_secs(3)
            }
        );
        tokio::time::advance(Duration::from_millis(2999)).await;
        let d = decide(
            &mut observed,
            Some(&record),
            "a",
            &timing,
            Instant::now(),
            now.clone(),
        );
        assert!(matches!(d, Decision::Held { .. }));
        // b renews: the observation clock starts again.
        let renewed = held_by("b", "2026-01-01T00:00:02Z", 4);
        let t1 = Instant::now();
        let d = decide(&mut observed, Some(&renewed), "a", &timing, t1, now.clone());
        assert_eq!(
            d,
            Decision::Held {
                holder: "b".into(),
                expires: t1 + Duration::from_secs(3)
            }
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        let d = decide(
            &mut observed,
            Some(&renewed),
            "a",
            &timing,
            Instant::now(),
            now.clone(),
        );
        let Decision::Take(spec) = d else {
            panic!("expired: taken, got {d:?}")
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(5), "a new term");
        assert_eq!(spec.acquire_time, Some(now.clone()));
        assert_eq!(spec.renew_time, Some(now));
        assert_eq!(spec.lease_duration_seconds, Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_lease_is_renewed_at_once_keeping_its_term() {
        let timing = LeaseTiming::new(3, 1);
        let mut observed = None;
        let record = held_by("a", "2026-01-01T00:00:01Z", 2);
        let now = wall("2026-01-01T00:00:02Z");
        let Decision::Take(spec) = decide(
            &mut observed,
            Some(&record),
            "a",
            &timing,
            Instant::now(),
            now.clone(),
        ) else {
            panic!("ours")
        };
        assert_eq!(spec.acquire_time, record.acquire_time, "same term");
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(spec.renew_time, Some(now));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_or_missing_lease_is_taken_at_once() {
        let timing = LeaseTiming::new(15, 3);
        let now = wall("2026-01-01T00:00:02Z");
        let mut released = held_by("b", "2026-01-01T00:00:01Z", 7);
        released.holder_identity = None;
        released.lease_duration_seconds = Some(1);
        let Decision::Take(spec) = decide(
            &mut None,
            Some(&released),
            "a",
            &timing,
            Instant::now(),
            now.clone(),
        ) else {
            panic!("released: free")
        };
        assert_eq!(spec.lease_transitions, Some(8));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        let Decision::Take(spec) = decide(&mut None, None, "a", &timing, Instant::now(), now)
        else {
            panic!("missing: create")
        };
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    }
}
