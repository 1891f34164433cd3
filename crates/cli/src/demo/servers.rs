//! One emulated vLLM server per ready pod: started when the emulator's kubelet marks a pod
//! Ready (after the start-up delay), drained and stopped when the pod goes. Keeps the
//! traffic generator's routing pool, the gateway's backends and the collector's scrape
//! targets (the servers and the gateway) current.

use super::cluster::{Estimates, VARIANT_LABEL, VA_LABEL};
use super::scenario::{Timing, MODELS, NAMESPACE};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use wvo_collector::Target;
use wvo_controller::targets::SharedTargets;
use wvo_sim::gateway::Gateway;
use wvo_sim::kube_api::KubeApiHandle;
use wvo_sim::model_server::{ModelServer, ReplicaConfig, ServerConfig};

/// Simulated seconds a removed pod's server keeps serving its in-flight requests.
pub const DRAIN_SECONDS: f64 = 30.0;

/// A ready server the traffic generator can send to.
#[derive(Clone, Debug)]
pub struct Backend {
    /// `http://127.0.0.1:<port>` of its server.
    pub url: String,
    /// Requests sent to it and not finished.
    pub inflight: Arc<AtomicUsize>,
}

/// Ready servers per model (VA name), shared with the traffic generator.
#[derive(Clone, Debug, Default)]
pub struct Pool(Arc<Mutex<BTreeMap<String, Vec<Backend>>>>);

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Backend>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The backend of `model` with the fewest requests in flight (the first on a tie), as a
    /// least-outstanding-requests gateway routes; None when no server of the model is ready.
    pub fn pick(&self, model: &str) -> Option<Backend> {
        self.lock()
            .get(model)?
            .iter()
            .min_by_key(|b| b.inflight.load(Ordering::Relaxed))
            .cloned()
    }

    /// True when every model has at least one ready server.
    pub fn every_model_ready(&self) -> bool {
        let pool = self.lock();
        MODELS
            .iter()
            .all(|m| pool.get(m.name).is_some_and(|b| !b.is_empty()))
    }

    fn set(&self, by_model: BTreeMap<String, Vec<Backend>>) {
        *self.lock() = by_model;
    }

    /// Forgets every backend.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

struct Running {
    model: String,
    variant: String,
    server: ModelServer,
    inflight: Arc<AtomicUsize>,
}

/// A ready pod as read from the emulator: (name, VA, variant).
fn ready_pods(pods: &[Value]) -> Vec<(String, String, String)> {
    pods.iter()
        .filter(|p| {
            p.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Ready")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                })
        })
        .filter_map(|p| {
            let name = p.pointer("/metadata/name")?.as_str()?.to_string();
            let labels = p.pointer("/metadata/labels")?;
            let va = labels.get(VA_LABEL)?.as_str()?.to_string();
            let variant = labels.get(VARIANT_LABEL)?.as_str()?.to_string();
            Some((name, va, variant))
        })
        .collect()
}

/// Follows the pods until `stop`: a server per ready pod, routing pool, gateway backends and
/// targets kept current. Polls the emulator's store every 50 ms (in process, no HTTP).
pub async fn manage(
    api: Arc<KubeApiHandle>,
    estimates: Estimates,
    pool: Pool,
    gateway: Arc<Gateway>,
    targets: SharedTargets,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) {
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let drain = Duration::from_secs_f64(DRAIN_SECONDS / timing.speed);
    publish(&running, &pool, &gateway, &targets);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let ready = ready_pods(&api.list("v1", "Pod", Some(NAMESPACE)));
        let live: BTreeSet<&str> = ready.iter().map(|(n, _, _)| n.as_str()).collect();
        let gone: Vec<String> = running
            .keys()
            .filter(|k| !live.contains(k.as_str()))
            .cloned()
            .collect();
        let mut changed = !gone.is_empty();
        for pod in gone {
            if let Some(r) = running.remove(&pod) {
                tokio::spawn(drain_and_stop(r, drain));
            }
        }
        for (pod, va, variant) in &ready {
            if running.contains_key(pod) {
                continue;
            }
            let Some(model) = MODELS.iter().find(|m| m.name == va) else {
                continue;
            };
            let Some(profile) = estimates
                .get(&(va.clone(), variant.clone()))
                .and_then(|e| e.profile().map(|p| (p, e.kv_cache_tokens)))
            else {
                continue;
            };
            let mut replica = ReplicaConfig::new(model.model_id, profile.0);
            replica.num_gpu_blocks = (profile.1 / replica.block_size).max(1);
            match ModelServer::start(ServerConfig {
                replica,
                speed: 1.0,
            })
            .await
            {
                Ok(server) => {
                    running.insert(
                        pod.clone(),
                        Running {
                            model: va.clone(),
                            variant: variant.clone(),
                            server,
                            inflight: Arc::new(AtomicUsize::new(0)),
                        },
                    );
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(pod = %pod, error = %e, "could not start the model server")
                }
            }
        }
        if changed {
            publish(&running, &pool, &gateway, &targets);
        }
    }
    pool.clear();
    targets.set(Vec::new());
    // Dropping a server stops it at once (its in-flight requests end; the run is over).
    drop(running);
}

fn publish(
    running: &BTreeMap<String, Running>,
    pool: &Pool,
    gateway: &Gateway,
    targets: &SharedTargets,
) {
    let mut by_model: BTreeMap<String, Vec<Backend>> = BTreeMap::new();
    let mut list = Vec::with_capacity(running.len());
    for (pod, r) in running {
        by_model.entry(r.model.clone()).or_default().push(Backend {
            url: r.server.url(),
            inflight: r.inflight.clone(),
        });
        let model_id = MODELS
            .iter()
            .find(|m| m.name == r.model)
            .map_or(r.model.as_str(), |m| m.model_id);
        list.push(Target {
            namespace: NAMESPACE.to_string(),
            model: model_id.to_string(),
            variant: r.variant.clone(),
            pod: pod.clone(),
            url: r.server.metrics_url(),
        });
    }
    // The gateway routes by served model id and knows every model (its queue gauge is the
    // models' wake signal, 0 while none is held).
    for m in MODELS {
        let urls = by_model
            .get(m.name)
            .map_or_else(Vec::new, |b| b.iter().map(|b| b.url.clone()).collect());
        gateway.set_backends(m.model_id, urls);
    }
    list.push(Target {
        namespace: NAMESPACE.to_string(),
        model: String::new(),
        variant: "gateway".to_string(),
        pod: "gateway".to_string(),
        url: gateway.metrics_url(),
    });
    pool.set(by_model);
    targets.set(list);
}

/// Lets a removed pod's server finish what it has in flight (at most `grace`), then stops it.
async fn drain_and_stop(r: Running, grace: Duration) {
    let until = Instant::now() + grace;
    while r.inflight.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Dropped, not shut down gracefully: a graceful stop would wait for requests the
    // stopped engine never finishes.
    drop(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_ready_labelled_pods_get_a_server() {
        let pod = |name: &str, ready: &str, labelled: bool| {
            let labels = if labelled {
                json!({VA_LABEL: "chat", VARIANT_LABEL: "h100"})
            } else {
                json!({"app": "x"})
            };
            json!({"metadata": {"name": name, "labels": labels},
                   "status": {"conditions": [{"type": "Ready", "status": ready}]}})
        };
        let pods = vec![
            pod("a", "True", true),
            pod("b", "False", true),
            pod("c", "True", false),
            json!({"metadata": {"name": "d"}}),
        ];
        assert_eq!(
            ready_pods(&pods),
            vec![("a".to_string(), "chat".to_string(), "h100".to_string())]
        );
    }

    #[test]
    fn the_pool_routes_to_the_least_loaded_server() {
        let pool = Pool::default();
        let b = |url: &str, n: usize| Backend {
            url: url.into(),
            inflight: Arc::new(AtomicUsize::new(n)),
        };
        pool.set(BTreeMap::from([(
            "chat".to_string(),
            vec![b("x", 3), b("y", 1), b("z", 1)],
        )]));
        assert_eq!(pool.pick("chat").map(|b| b.url), Some("y".to_string()));
        assert!(pool.pick("code").is_none());
        assert!(!pool.every_model_ready());
    }
}
