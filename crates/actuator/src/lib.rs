//! wvo's writes to the cluster's workloads: a list of [`Action`]s in, one [`ActionResult`]
//! per action out, each write bounded in time and retried only when retrying can help.
//!
//! ```text
//!  CycleOutcome ─► controller: one Action per variant wvo changes
//!                     │  Actuator::apply(&[Action])   (a few at a time, results in order)
//!                     ▼
//!   Scale ────────► PATCH {workload}/scale            merge patch  {"spec":{"replicas":n}}
//!   HpaBounds ────► PATCH horizontalpodautoscalers/h  server-side apply (field manager,
//!                                                      force): spec.minReplicas/maxReplicas
//!                     │
//!        each call: call_timeout ─► 409, 429, 5xx, timeout, transport: wait backoff, again
//!                                  (at most `retries` more times); other 4xx: give up at once
//!                     ▼
//!   ActionResult { index, outcome: Applied | ActuationError, attempts }
//! ```
//!
//! The controller decides *what* to write (replicas from the plan, HPA bounds from
//! [`hpa_bounds`], which HPA targets the workload); this crate only writes it. HPA bounds are
//! written by server-side apply with a body holding only `spec.minReplicas` and
//! `spec.maxReplicas`: whoever created the HPA keeps `scaleTargetRef` and `metrics`, and the
//! field manager ([`ActuatorConfig::field_manager`]) owns the two bounds (`force` takes them
//! over from the HPA's author; a later `kubectl apply` of the bounds by a person conflicts,
//! which is the point: they are wvo's now).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) {
//! use wvo_actuator::{Action, Actuation, Actuator, ActuatorConfig, WorkloadRef};
//! let actuator = Actuator::new(client, ActuatorConfig::default());
//! let scale = Action {
//!     namespace: "llm".into(),
//!     workload: WorkloadRef::new("apps/v1", "Deployment", "llama-h100"),
//!     desired: 3,
//!     how: Actuation::Scale,
//! };
//! for result in actuator.apply(&[scale]).await {
//!     if let Err(e) = &result.outcome {
//!         eprintln!("action {} failed after {} attempt(s): {e}", result.index, result.attempts);
//!     }
//! }
//! # }
//! ```

// Production code handles what it cannot rule out; `unwrap()` is for tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;
use std::time::Duration;

/// The workload an action is about, as a VA's `scaleTargetRef` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadRef {
    /// `apiVersion` of the workload, e.g. `apps/v1` (`v1` for the core group).
    pub api_version: String,
    /// Kind, e.g. `Deployment`; its resource is the lower-case plural (`deployments`).
    pub kind: String,
    /// Object name.
    pub name: String,
}

impl WorkloadRef {
    /// A workload reference from its `apiVersion`, `kind` and name.
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }
}

/// How an action is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actuation {
    /// A merge patch of the workload's `/scale` subresource: `spec.replicas` = the action's
    /// `desired`.
    Scale,
    /// Server-side apply of the bounds of the HPA named `hpa` (in the action's namespace),
    /// which the caller found targeting the workload; the workload itself is not written.
    HpaBounds {
        /// Name of the HorizontalPodAutoscaler (autoscaling/v2).
        hpa: String,
        /// `spec.minReplicas`, replicas (see [`hpa_bounds`]).
        min: u32,
        /// `spec.maxReplicas`, replicas (at least 1 and at least `min`).
        max: u32,
    },
}

/// One write: set `workload` in `namespace` to `desired` replicas, `how`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Namespace of the workload (and of its HPA).
    pub namespace: String,
    /// The workload the decision is about.
    pub workload: WorkloadRef,
    /// The replicas decided, a count (for [`Actuation::HpaBounds`] only informational: the
    /// HPA scales within the bounds).
    pub desired: u32,
    /// Which write carries the decision.
    pub how: Actuation,
}

/// What the API server holds after a successful write, as it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The workload's `/scale` now has `spec.replicas` = `replicas` (the action's `desired`
    /// if the answer did not say).
    Scaled {
        /// Replicas, a count.
        replicas: u32,
    },
    /// The HPA now has these bounds (the requested ones if the answer did not say).
    Bounded {
        /// `spec.minReplicas`, replicas.
        min: u32,
        /// `spec.maxReplicas`, replicas.
        max: u32,
    },
}

/// Why a write failed, after its retries. Each message says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActuationError {
    /// The API server did not answer one call within [`ActuatorConfig::call_timeout`], on
    /// the last attempt.
    #[error("no answer from the API server within {after_ms} ms; check its load and the network to it (the write is tried again next cycle)")]
    Timeout {
        /// The per-call timeout that expired, ms.
        after_ms: u64,
    },
    /// 409 Conflict on every attempt: the object kept changing under the write.
    #[error("409 Conflict: {message}; something else keeps writing this object (another controller or autoscaler?); the write is tried again next cycle")]
    Conflict {
        /// The API server's message.
        message: String,
    },
    /// 404: the workload (or its `/scale` subresource) or the HPA does not exist.
    #[error("404 NotFound: {message}; the target was deleted or renamed, or its kind has no /scale subresource: fix the VariantAutoscaling's scaleTargetRef or recreate the target")]
    NotFound {
        /// The API server's message.
        message: String,
    },
    /// 403: the controller's identity may not make this write.
    #[error("403 Forbidden: {message}; grant wvo's ServiceAccount `patch` on this resource (deployments/scale or horizontalpodautoscalers) in its ClusterRole")]
    Forbidden {
        /// The API server's message.
        message: String,
    },
    /// The API server refused the write (400, 401, 422, other 4xx): retrying the same write
    /// cannot help.
    #[error("{code} rejected by the API server: {message}; fix the object or the VariantAutoscaling (the same write would be refused again)")]
    Rejected {
        /// HTTP status code.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// 429 or 5xx on every attempt: the API server is overloaded or failing.
    #[error("{code} from the API server on every attempt: {message}; it is overloaded or failing: check its health (the write is tried again next cycle)")]
    Unavailable {
        /// HTTP status code.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// No HTTP answer could be had or read (connection refused or reset, TLS, a response
    /// that does not decode).
    #[error("cannot talk to the API server: {0}; check the kubeconfig or in-cluster config and the network (the write is tried again next cycle)")]
    Transport(String),
    /// Not written: the caller's check said it may not write any more (this replica no
    /// longer holds the leader Lease), before this attempt was sent.
    #[error("not written: this replica may not write any more (it no longer holds the leader Lease); the leader writes it")]
    Withheld,
}

impl ActuationError {
    /// Whether trying the same write again may succeed: timeouts, conflicts, 429 and 5xx,
    /// transport failures. Not 404, 403 and other refusals.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Conflict { .. }
                | Self::Unavailable { .. }
                | Self::Transport(_)
        )
    }

    /// A short label, e.g. for metrics: `timeout`, `conflict`, `not_found`, `forbidden`,
    /// `rejected`, `unavailable`, `transport`, `withheld`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Conflict { .. } => "conflict",
            Self::NotFound { .. } => "not_found",
            Self::Forbidden { .. } => "forbidden",
            Self::Rejected { .. } => "rejected",
            Self::Unavailable { .. } => "unavailable",
            Self::Transport(_) => "transport",
            Self::Withheld => "withheld",
        }
    }

    /// The error a kube client call ended in.
    fn from_kube(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => {
                let message = status.message.clone();
                match status.code {
                    404 => Self::NotFound { message },
                    403 => Self::Forbidden { message },
                    409 => Self::Conflict { message },
                    code @ (429 | 500..=599) => Self::Unavailable { code, message },
                    code => Self::Rejected { code, message },
                }
            }
            other => Self::Transport(other.to_string()),
        }
    }
}

/// What came of one [`Action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionResult {
    /// Position of the action in the slice given to [`Actuator::apply`].
    pub index: usize,
    /// What the server holds now, or why the write failed after its retries.
    pub outcome: Result<Applied, ActuationError>,
    /// Calls made, 1 to `retries + 1` (0 when withheld before the first).
    pub attempts: u32,
}

/// Timeouts, retries and identity of the writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActuatorConfig {
    /// Deadline of one API call (connect, send, answer); default 10 s.
    pub call_timeout: Duration,
    /// Calls after the first one, at most, on a retryable failure
    /// ([`ActuationError::is_retryable`]); default 3.
    pub retries: u32,
    /// Wait before the first retry; it doubles before each next one (see
    /// [`backoff_delay`]); default 200 ms.
    pub backoff: Duration,
    /// Longest wait between two calls; default 2 s.
    pub max_backoff: Duration,
    /// Actions written at the same time, at most (at least 1); default 8.
    pub concurrency: usize,
    /// Field manager of the writes (server-side apply owner of the HPA bounds, and the
    /// manager recorded for `/scale` patches); default `wvo`.
    pub field_manager: String,
}

impl Default for ActuatorConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            concurrency: 8,
            field_manager: "wvo".into(),
        }
    }
}

/// The wait before retry number `retry` (1 for the first retry): `backoff` doubled
/// `retry - 1` times, at most `max_backoff`.
///
/// ```
/// use std::time::Duration;
/// use wvo_actuator::{backoff_delay, ActuatorConfig};
/// let c = ActuatorConfig::default(); // 200 ms, at most 2 s
/// assert_eq!(backoff_delay(&c, 1), Duration::from_millis(200));
/// assert_eq!(backoff_delay(&c, 3), Duration::from_millis(800));
/// assert_eq!(backoff_delay(&c, 10), Duration::from_secs(2));
/// ```
pub fn backoff_delay(config: &ActuatorConfig, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(20);
    config
        .backoff
        .saturating_mul(1u32 << doublings)
        .min(config.max_backoff)
}

/// The bounds wvo sets on an HPA for a decision of `desired` replicas: `minReplicas` =
/// the decision (at least 1 unless `scale_to_zero`), `maxReplicas` = the variant's max (or
/// 1.5x the decision), never below the min, and at least 1 (the API server requires it).
/// Returns (min, max), replicas.
pub fn hpa_bounds(desired: u32, variant_max: Option<u32>, scale_to_zero: bool) -> (u32, u32) {
    let min = if scale_to_zero {
        desired
    } else {
        desired.max(1)
    };
    let max = variant_max
        .unwrap_or(desired + desired.div_ceil(2))
        .max(min)
        .max(1);
    (min, max)
}

/// Writes [`Action`]s through a kube [`Client`] with [`ActuatorConfig`]'s limits.
#[derive(Clone)]
pub struct Actuator {
    client: Client,
    config: ActuatorConfig,
}

impl std::fmt::Debug for Actuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actuator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Actuator {
    /// An actuator writing through `client`.
    pub fn new(client: Client, config: ActuatorConfig) -> Self {
        Self { client, config }
    }

    /// Its settings.
    pub fn config(&self) -> &ActuatorConfig {
        &self.config
    }

    /// Writes every action, [`ActuatorConfig::concurrency`] at a time, and returns one
    /// result per action in the order of `actions`. A failed action does not stop the others.
    pub async fn apply(&self, actions: &[Action]) -> Vec<ActionResult> {
        self.apply_checked(actions, &|| Some(Duration::MAX)).await
    }

    /// [`apply`](Self::apply), asking `may_write` just before each call (retries included)
    /// how long the caller may still write: None ends that action with
    /// [`ActuationError::Withheld`] and nothing more of it is sent; `Some(d)` bounds the
    /// call's timeout by `d` (the call, and the kube client's own retries inside it, are
    /// cut when `d` runs out). A leader that loses its Lease mid-apply stops writing at its
    /// deadline instead of after its retries.
    pub async fn apply_checked(
        &self,
        actions: &[Action],
        may_write: &(dyn Fn() -> Option<Duration> + Sync),
    ) -> Vec<ActionResult> {
        // The futures are made before the stream (not by a `map` closure inside it): a
        // closure held across an await makes the caller's future not provably `Send`.
        let calls: Vec<_> = actions
            .iter()
            .enumerate()
            .map(|(index, action)| self.apply_one(index, action, may_write))
            .collect();
        futures::stream::iter(calls)
            .buffered(self.config.concurrency.max(1))
            .collect()
            .await
    }

    /// One action with its timeout and retries.
    async fn apply_one(
        &self,
        index: usize,
        action: &Action,
        may_write: &(dyn Fn() -> Option<Duration> + Sync),
    ) -> ActionResult {
        let mut attempts = 0;
        loop {
            let Some(left) = may_write() else {
                return ActionResult {
                    index,
                    outcome: Err(ActuationError::Withheld),
                    attempts,
                };
            };
            attempts += 1;
            let timeout = self.config.call_timeout.min(left);
            let error = match tokio::time::timeout(timeout, self.call(action)).await {
                Ok(Ok(applied)) => {
                    return ActionResult {
                        index,
                        outcome: Ok(applied),
                        attempts,
                    }
                }
                Ok(Err(e)) => ActuationError::from_kube(e),
                // Cut because the caller's time to write ran out.
                Err(_) if timeout < self.config.call_timeout && may_write().is_none() => {
                    return ActionResult {
                        index,
                        outcome: Err(ActuationError::Withheld),
                        attempts,
                    };
                }
                Err(_) => ActuationError::Timeout {
                    after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                },
            };
            if !error.is_retryable() || attempts > self.config.retries {
                return ActionResult {
                    index,
                    outcome: Err(error),
                    attempts,
                };
            }
            let wait = backoff_delay(&self.config, attempts);
            tracing::debug!(
                namespace = %action.namespace,
                workload = %action.workload.name,
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "actuation failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One API call for `action`.
    async fn call(&self, action: &Action) -> Result<Applied, kube::Error> {
        let ns = action.namespace.as_str();
        match &action.how {
            Actuation::Scale => {
                let w = &action.workload;
                let (group, version) = match w.api_version.split_once('/') {
                    Some((g, v)) => (g, v),
                    None => ("", w.api_version.as_str()),
                };
                let gvk = GroupVersionKind::gvk(group, version, &w.kind);
                let resource = ApiResource::from_gvk(&gvk);
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), ns, &resource);
                let params = PatchParams {
                    field_manager: Some(self.config.field_manager.clone()),
                    ..PatchParams::default()
                };
                let patch = json!({"spec": {"replicas": action.desired}});
                let scale = api
                    .patch_scale(&w.name, &params, &Patch::Merge(&patch))
                    .await?;
                let replicas = scale
                    .spec
                    .and_then(|s| s.replicas)
                    .and_then(|r| u32::try_from(r).ok())
                    .unwrap_or(action.desired);
                Ok(Applied::Scaled { replicas })
            }
            Actuation::HpaBounds { hpa, min, max } => {
                let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), ns);
                let body = json!({
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": hpa, "namespace": ns},
                    "spec": {"minReplicas": min, "maxReplicas": max},
                });
                let params = PatchParams::apply(&self.config.field_manager).force();
                let out = api.patch(hpa, &params, &Patch::Apply(&body)).await?;
                Ok(Applied::Bounded {
                    min: out
                        .spec
                        .min_replicas
                        .and_then(|m| u32::try_from(m).ok())
                        .unwrap_or(*min),
                    max: u32::try_from(out.spec.max_replicas).unwrap_or(*max),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_bounds_reach_zero_only_with_scale_to_zero_allowed() {
        assert_eq!(hpa_bounds(0, Some(4), false), (1, 4));
        assert_eq!(hpa_bounds(0, Some(4), true), (0, 4));
        assert_eq!(hpa_bounds(0, None, true), (0, 1));
        assert_eq!(hpa_bounds(3, None, false), (3, 5));
        assert_eq!(hpa_bounds(5, Some(2), true), (5, 5));
    }

    #[test]
    fn backoff_doubles_from_its_base_up_to_its_cap() {
        let c = ActuatorConfig {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..ActuatorConfig::default()
        };
        let waits: Vec<u128> = (1..=5).map(|r| backoff_delay(&c, r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(backoff_delay(&c, u32::MAX), Duration::from_millis(500));
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("m", "R")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn conflicts_throttling_and_server_errors_are_retried_other_refusals_are_not() {
        let retried = |code| ActuationError::from_kube(api_error(code)).is_retryable();
        for code in [409, 429, 500, 503, 504] {
            assert!(retried(code), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!retried(code), "{code}");
        }
        assert!(ActuationError::Timeout { after_ms: 1 }.is_retryable());
    }

    #[test]
    fn api_errors_map_to_their_variants() {
        let e = |code| ActuationError::from_kube(api_error(code));
        assert_eq!(e(404).kind(), "not_found");
        assert_eq!(e(403).kind(), "forbidden");
        assert_eq!(e(409).kind(), "conflict");
        assert_eq!(
            e(422),
            ActuationError::Rejected {
                code: 422,
                message: "m".into()
            }
        );
        assert_eq!(
            e(500),
            ActuationError::Unavailable {
                code: 500,
                message: "m".into()
            }
        );
    }
}
