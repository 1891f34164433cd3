//! Watch caches of what every cycle reads: the VariantAutoscalings, Pods, HPAs and the
//! workloads the VAs target (one watch per kind, over the watched namespace or the whole
//! cluster), so a cycle reads memory instead of sending a GET and a LIST per variant.
//!
//! Each cache is a kube-runtime reflector: one LIST, then a WATCH kept open (re-listed
//! with backoff when the watch breaks). Objects are stored stripped of what the cycle does
//! not read (managed fields, annotations, Pod specs, workload pod templates), which keeps
//! the controller's memory small at thousands of models. A workload kind is watched from the
//! first cycle a VA targets it; a workload whose kind has no `spec.replicas` and
//! `spec.selector` (a custom resource with its own `/scale` paths) is still read with a GET
//! of `/scale` and a LIST of its pods, as before.

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, Selector, SelectorExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wvo_api::crd::VariantAutoscaling;

/// How long a cycle waits for a new cache's first LIST before it reports the objects it
/// serves as unreadable for this cycle, s.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// How the caches list and watch: from any cached version (the API server's watch cache, as
/// controllers do), in pages of [`LIST_PAGE_SIZE`].
fn list_config() -> watcher::Config {
    watcher::Config::default()
        .any_semantic()
        .page_size(LIST_PAGE_SIZE)
}

/// Objects per page of a cache's LIST: smaller pages keep the memory a LIST of thousands of
/// objects holds at once low (each page is parsed whole before it is stripped).
pub const LIST_PAGE_SIZE: u32 = 100;

/// A reflector's store and the task that feeds it (stopped when dropped).
struct Reflected<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Reflected<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a reflector of `api` whose objects are passed through `strip` before they are
/// stored. Watch errors are counted in `errors` (the watcher re-lists with backoff).
fn reflect<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    strip: fn(&mut K),
    errors: Arc<AtomicU64>,
    what: String,
) -> Reflected<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Default + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let store = writer.as_reader();
    let stream = watcher(api, list_config())
        .default_backoff()
        .modify(strip)
        .reflect(writer);
    let task = tokio::spawn(async move {
        stream
            .for_each(|event| {
                if let Err(e) = event {
                    errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(cache = %what, error = %e, "watch failed; re-listing with backoff");
                }
                futures::future::ready(())
            })
            .await;
    });
    Reflected { store, task }
}

/// Keeps what identifies an object (name, namespace, uid, resourceVersion, generation,
/// creation time) and, with `labels`, its labels.
fn clear_metadata(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    labels: bool,
) {
    *meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation,
        creation_timestamp: meta.creation_timestamp.take(),
        labels: if labels { meta.labels.take() } else { None },
        ..Default::default()
    };
}

/// A Pod as the cycle reads it: labels (for selectors), phase, conditions (Ready,
/// PodScheduled) and each container's restart count.
fn strip_pod(pod: &mut Pod) {
    clear_metadata(&mut pod.metadata, true);
    pod.spec = None;
    if let Some(status) = pod.status.take() {
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase,
            conditions: status.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| k8s_openapi::api::core::v1::PodCondition { message: None, ..c })
                    .collect()
            }),
            container_statuses: status.container_statuses.map(|cs| {
                cs.into_iter()
                    .map(|c| k8s_openapi::api::core::v1::ContainerStatus {
                        name: c.name,
                        restart_count: c.restart_count,
                        ready: c.ready,
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        });
    }
}

/// An HPA as the cycle reads it: its target (and bounds).
fn strip_hpa(hpa: &mut HorizontalPodAutoscaler) {
    clear_metadata(&mut hpa.metadata, false);
    hpa.spec.metrics = None;
    hpa.spec.behavior = None;
    hpa.status = None;
}

/// A workload as the cycle reads it: `spec.replicas`, `spec.selector` and
/// `status.readyReplicas` (a kind without the first two is read through `/scale`).
fn strip_untyped(object: &mut DynamicObject) {
    clear_metadata(&mut object.metadata, false);
    let mut spec = serde_json::Map::new();
    let mut status = serde_json::Map::new();
    for key in ["replicas", "selector"] {
        if let Some(v) = object.data.pointer_mut(&format!("/spec/{key}")) {
            spec.insert(key.to_string(), v.take());
        }
    }
    if let Some(v) = object.data.pointer_mut("/status/readyReplicas") {
        status.insert("readyReplicas".to_string(), v.take());
    }
    object.data = serde_json::json!({"spec": spec, "status": status});
}

/// One VA as the cache keeps it: decoded (only the typed form is kept, which is several
/// times smaller than the untyped JSON), or the object the types could not read and why.
#[derive(Clone)]
enum VaEntry {
    Decoded(Box<VariantAutoscaling>),
    Undecodable(Box<DynamicObject>, String),
}

/// The VAs, as the VA watch last delivered them.
#[derive(Default)]
struct VaEntries {
    /// By (namespace, name).
    current: HashMap<(String, String), VaEntry>,
    /// A re-list under way (from `Init` to `InitDone`): it replaces `current` whole.
    relisting: Option<HashMap<(String, String), VaEntry>>,
}

/// The VA watch: a watcher whose objects are decoded as they arrive.
struct VaCache {
    entries: Arc<std::sync::RwLock<VaEntries>>,
    /// True from the end of the first LIST.
    listed: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for VaCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn va_entry(mut object: DynamicObject) -> ((String, String), VaEntry) {
    object.metadata.managed_fields = None;
    let key = (object.namespace().unwrap_or_default(), object.name_any());
    let entry = match crate::reconciler::decode_va(&object) {
        Ok(va) => VaEntry::Decoded(Box::new(va)),
        Err(message) => VaEntry::Undecodable(Box::new(object), message),
    };
    (key, entry)
}

/// The group/version and kind a `scaleTargetRef` names.
pub fn target_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// What the cache knows of one workload.
pub enum CachedWorkload {
    /// No such object (in a synced cache).
    NotFound,
    /// The object, with its replicas and the label selector of its pods.
    Found {
        /// `spec.replicas`.
        replicas: u32,
        /// `status.readyReplicas` (0 when absent).
        ready: u32,
        /// Its pods (those in its namespace matching its selector).
        pods: Vec<Arc<Pod>>,
    },
    /// The object exists but its replicas or selector are not at the apps/v1 paths: read it
    /// through `/scale` and a LIST of its pods.
    ReadScale,
}

/// A workload: (namespace, apiVersion, kind, name).
type WorkloadKey = (String, String, String, String);

/// The watch caches of one controller.
pub struct ClusterCache {
    client: Client,
    /// The namespace watched, or None for the whole cluster.
    namespace: Option<String>,
    vas: Option<VaCache>,
    pods: Option<Reflected<Pod>>,
    hpas: Option<Reflected<HorizontalPodAutoscaler>>,
    workloads: BTreeMap<(String, String), (ApiResource, Reflected<DynamicObject>)>,
    /// Watch failures seen (all caches).
    errors: Arc<AtomicU64>,
    /// Caches whose first LIST had not completed at the last [`ClusterCache::watch_workloads`]
    /// (their objects are read directly meanwhile): workload kinds, and `Pod` / `HorizontalPodAutoscaler`.
    unsynced: std::collections::BTreeSet<(String, String)>,
    /// What this controller wrote that the caches may not show yet (see [`Written`]).
    written: std::sync::Mutex<Written>,
}

/// Writes not yet seen through a watch. A watch delivers a write some time after it is
/// acknowledged; until the cached object changes from the version it had when the write was
/// made, the cycle reads what was written instead (a stale read would undo it: a scale made
/// again, a decision history entry dropped).
#[derive(Default)]
struct Written {
    /// (namespace, apiVersion, kind, name) → (the cached resourceVersion at the write, replicas).
    replicas: HashMap<WorkloadKey, (Option<String>, u32)>,
    /// (namespace, name) → (the cached resourceVersion at the write, the status written).
    statuses: HashMap<(String, String), (Option<String>, wvo_api::crd::VariantAutoscalingStatus)>,
}

/// The VAs of one cycle: each decoded on its own.
pub struct ListedVas {
    /// The VAs the types could read.
    pub decoded: Vec<VariantAutoscaling>,
    /// The objects they could not, with the message naming the field.
    pub undecodable: Vec<(DynamicObject, String)>,
}

impl ClusterCache {
    /// Caches over `namespace` (None: the whole cluster); nothing is watched before the
    /// first read.
    pub fn new(client: Client, namespace: Option<String>) -> Self {
        Self {
            client,
            namespace,
            vas: None,
            pods: None,
            hpas: None,
            workloads: BTreeMap::new(),
            errors: Arc::new(AtomicU64::new(0)),
            unsynced: std::collections::BTreeSet::new(),
            written: std::sync::Mutex::new(Written::default()),
        }
    }

    /// Watch failures seen so far (every cache; each is retried with backoff).
    pub fn watch_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    fn api_untyped(&self, resource: &ApiResource) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    fn untyped(
        &self,
        resource: &ApiResource,
        strip: fn(&mut DynamicObject),
        what: String,
    ) -> Reflected<DynamicObject> {
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let errors = self.errors.clone();
        let stream = watcher(self.api_untyped(resource), list_config())
            .default_backoff()
            .modify(strip)
            .reflect(writer);
        let task = tokio::spawn(async move {
            stream
                .for_each(|event| {
                    if let Err(e) = event {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(cache = %what, error = %e, "watch failed; re-listing with backoff");
                    }
                    futures::future::ready(())
                })
                .await;
        });
        Reflected { store, task }
    }

    /// Starts the VA watch: each object is decoded on arrival (one the types cannot read
    /// is kept with the message naming its field).
    fn watch_vas(&self) -> VaCache {
        let resource = ApiResource::erase::<VariantAutoscaling>(&());
        let entries: Arc<std::sync::RwLock<VaEntries>> = Arc::default();
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        let errors = self.errors.clone();
        let stream = watcher(self.api_untyped(&resource), list_config()).default_backoff();
        let shared = entries.clone();
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(cache = "VariantAutoscalings", error = %e, "watch failed; re-listing with backoff");
                        continue;
                    }
                };
                let Ok(mut entries) = shared.write() else {
                    return;
                };
                match event {
                    watcher::Event::Apply(object) => {
                        let (key, entry) = va_entry(object);
                        entries.current.insert(key, entry);
                    }
                    watcher::Event::Delete(object) => {
                        entries
                            .current
                            .remove(&(object.namespace().unwrap_or_default(), object.name_any()));
                    }
                    watcher::Event::Init => entries.relisting = Some(HashMap::new()),
                    watcher::Event::InitApply(object) => {
                        let (key, entry) = va_entry(object);
                        entries
                            .relisting
                            .get_or_insert_with(HashMap::new)
                            .insert(key, entry);
                    }
                    watcher::Event::InitDone => {
                        if let Some(listed) = entries.relisting.take() {
                            entries.current = listed;
                        }
                        let _ = listed_tx.send(true);
                    }
                }
            }
        });
        VaCache {
            entries,
            listed,
            task,
        }
    }

    /// Every VariantAutoscaling, each decoded on its own. Starts the VA, Pod and HPA watches
    /// on first use and waits for the VAs' first LIST (up to [`SYNC_TIMEOUT`]).
    pub async fn vas(&mut self) -> Result<ListedVas, String> {
        if self.vas.is_none() {
            self.vas = Some(self.watch_vas());
            self.pods = Some(reflect(
                self.api::<Pod>(),
                (),
                strip_pod,
                self.errors.clone(),
                "Pods".into(),
            ));
            self.hpas = Some(reflect(
                self.api::<HorizontalPodAutoscaler>(),
                (),
                strip_hpa,
                self.errors.clone(),
                "HorizontalPodAutoscalers".into(),
            ));
        }
        let Some(vas) = &self.vas else {
            return Err("the VariantAutoscaling cache is not running".into());
        };
        let mut listed_rx = vas.listed.clone();
        match tokio::time::timeout(SYNC_TIMEOUT, listed_rx.wait_for(|listed| *listed)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err("the VariantAutoscaling watch stopped".into()),
            Err(_) => {
                return Err(format!(
                    "the VariantAutoscaling watch has not listed yet ({} s); retried next cycle",
                    SYNC_TIMEOUT.as_secs()
                ))
            }
        }
        let entries = vas
            .entries
            .read()
            .map_err(|_| "the VariantAutoscaling cache is poisoned".to_string())?;
        let mut listed = ListedVas {
            decoded: Vec::with_capacity(entries.current.len()),
            undecodable: Vec::new(),
        };
        let mut written = self.written.lock().ok();
        for (key, entry) in &entries.current {
            match entry {
                VaEntry::Decoded(va) => {
                    let mut va = VariantAutoscaling::clone(va);
                    if let Some(written) = written.as_mut() {
                        match written.statuses.get(key) {
                            Some((at, status)) if *at == va.resource_version() => {
                                va.status = Some(status.clone());
                            }
                            Some(_) => {
                                written.statuses.remove(key);
                            }
                            None => {}
                        }
                    }
                    listed.decoded.push(va);
                }
                VaEntry::Undecodable(object, message) => listed
                    .undecodable
                    .push((DynamicObject::clone(object), message.clone())),
            }
        }
        Ok(listed)
    }

    /// Makes sure the workloads of each kind `(api_version, kind)` in `kinds` are watched, and
    /// waits for their first LIST and the Pod and HPA caches' ([`SYNC_TIMEOUT`] each); the
    /// caches of kinds no VA targets any more are stopped. Returns the caches not synced, and
    /// why: their objects are read directly this cycle.
    pub async fn watch_workloads(
        &mut self,
        kinds: &[(String, String)],
    ) -> BTreeMap<(String, String), String> {
        self.workloads.retain(|k, _| kinds.contains(k));
        let mut failed = BTreeMap::new();
        for (api_version, kind) in kinds {
            let key = (api_version.clone(), kind.clone());
            if !self.workloads.contains_key(&key) {
                let resource = target_resource(api_version, kind);
                let reflected =
                    self.untyped(&resource, strip_untyped, format!("{kind} ({api_version})"));
                self.workloads.insert(key.clone(), (resource, reflected));
            }
            if let Some((_, r)) = self.workloads.get(&key) {
                if let Err(e) = synced(&r.store, kind).await {
                    failed.insert(key, e);
                }
            }
        }
        if let Some(p) = &self.pods {
            if let Err(e) = synced(&p.store, "Pods").await {
                failed.insert(pod_key(), e);
            }
        }
        if let Some(h) = &self.hpas {
            if let Err(e) = synced(&h.store, "HorizontalPodAutoscalers").await {
                failed.insert(hpa_key(), e);
            }
        }
        self.unsynced = failed.keys().cloned().collect();
        failed
    }

    /// Whether the VA cache holds VA `namespace/name`.
    pub fn holds_va(&self, namespace: &str, name: &str) -> bool {
        self.vas.as_ref().is_some_and(|v| {
            v.entries.read().is_ok_and(|e| {
                e.current
                    .contains_key(&(namespace.to_string(), name.to_string()))
            })
        })
    }

    /// Records that the status of VA `va` (as read this cycle) was written as `status`: reads
    /// return it until the VA's cached version changes.
    pub fn wrote_status(
        &self,
        va: &VariantAutoscaling,
        status: wvo_api::crd::VariantAutoscalingStatus,
    ) {
        if let Ok(mut written) = self.written.lock() {
            written.statuses.insert(
                (va.namespace().unwrap_or_default(), va.name_any()),
                (va.resource_version(), status),
            );
        }
    }

    /// Records that workload `kind/name` in `namespace` was scaled to `replicas`: cached
    /// reads return that until the workload's cached version changes.
    pub fn wrote_replicas(
        &self,
        namespace: &str,
        api_version: &str,
        kind: &str,
        name: &str,
        replicas: u32,
    ) {
        let Some((resource, reflected)) = self
            .workloads
            .get(&(api_version.to_string(), kind.to_string()))
        else {
            return;
        };
        let key = ObjectRef::new_with(name, resource.clone()).within(namespace);
        let at = reflected.store.get(&key).and_then(|o| o.resource_version());
        if let Ok(mut written) = self.written.lock() {
            written.replicas.insert(
                (
                    namespace.to_string(),
                    api_version.to_string(),
                    kind.to_string(),
                    name.to_string(),
                ),
                (at, replicas),
            );
        }
    }

    /// The HPAs of `namespace`; None while the HPA cache has not listed (read them directly).
    pub fn hpas(&self, namespace: &str) -> Option<Vec<Arc<HorizontalPodAutoscaler>>> {
        if self.unsynced.contains(&hpa_key()) {
            return None;
        }
        let h = self.hpas.as_ref()?;
        Some(
            h.store
                .state_filter(|x| x.metadata.namespace.as_deref() == Some(namespace)),
        )
    }

    /// One cycle's view of the pods, indexed for selector lookups.
    pub fn pod_index(&self) -> PodIndex {
        PodIndex::new(
            self.pods
                .as_ref()
                .map(|p| p.store.state())
                .unwrap_or_default(),
        )
    }

    /// The workload `kind/name` in `namespace` as the cache knows it; None when its kind is
    /// not cached (not synced): the caller reads it directly.
    pub fn workload(
        &self,
        namespace: &str,
        api_version: &str,
        kind: &str,
        name: &str,
        pods: &mut PodIndex,
    ) -> Option<CachedWorkload> {
        let kind_key = (api_version.to_string(), kind.to_string());
        if self.unsynced.contains(&kind_key) || self.unsynced.contains(&pod_key()) {
            return None;
        }
        let (resource, reflected) = self.workloads.get(&kind_key)?;
        let key = ObjectRef::new_with(name, resource.clone()).within(namespace);
        let Some(object) = reflected.store.get(&key) else {
            return Some(CachedWorkload::NotFound);
        };
        let replicas = object
            .data
            .pointer("/spec/replicas")
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| u32::try_from(r).ok());
        let selector = object
            .data
            .pointer("/spec/selector")
            .filter(|s| s.is_object())
            .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
            .and_then(|s| Selector::try_from(s).ok());
        let (Some(mut replicas), Some(selector)) = (replicas, selector) else {
            return Some(CachedWorkload::ReadScale);
        };
        if let Ok(mut written) = self.written.lock() {
            let key = (
                namespace.to_string(),
                api_version.to_string(),
                kind.to_string(),
                name.to_string(),
            );
            match written.replicas.get(&key) {
                Some((at, wrote)) if *at == object.resource_version() => replicas = *wrote,
                Some(_) => {
                    written.replicas.remove(&key);
                }
                None => {}
            }
        }
        let ready = object
            .data
            .pointer("/status/readyReplicas")
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0);
        Some(CachedWorkload::Found {
            replicas,
            ready,
            pods: pods.matching(namespace, &selector),
        })
    }
}

fn pod_key() -> (String, String) {
    ("v1".into(), "Pod".into())
}

fn hpa_key() -> (String, String) {
    ("autoscaling/v2".into(), "HorizontalPodAutoscaler".into())
}

/// Waits for a store's first LIST, up to [`SYNC_TIMEOUT`].
async fn synced<K>(store: &Store<K>, what: &str) -> Result<(), String>
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    match tokio::time::timeout(SYNC_TIMEOUT, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(format!("the {what} watch stopped")),
        Err(_) => Err(format!(
            "the {what} watch has not listed yet ({} s); retried next cycle",
            SYNC_TIMEOUT.as_secs()
        )),
    }
}

/// The pods of one cycle, indexed by namespace and by the value of each label key a
/// selector looked up (built on first use), so a workload's pods are found without a scan
/// of every pod.
pub struct PodIndex {
    pods: Vec<Arc<Pod>>,
    /// (label key) → (namespace, value) → indices into `pods`.
    by_label: HashMap<String, HashMap<(String, String), Vec<usize>>>,
    /// namespace → indices into `pods`.
    by_namespace: Option<HashMap<String, Vec<usize>>>,
}

impl PodIndex {
    fn new(pods: Vec<Arc<Pod>>) -> Self {
        Self {
            pods,
            by_label: HashMap::new(),
            by_namespace: None,
        }
    }

    /// The pods of `namespace` that `selector` matches.
    pub fn matching(&mut self, namespace: &str, selector: &Selector) -> Vec<Arc<Pod>> {
        let no_labels = BTreeMap::new();
        // An equality term narrows the candidates through the index.
        let equal = selector.clone().into_iter().find_map(|e| match e {
            kube::core::Expression::Equal(k, v) => Some((k, v)),
            kube::core::Expression::In(k, vs) if vs.len() == 1 => {
                vs.into_iter().next().map(|v| (k, v))
            }
            _ => None,
        });
        let candidates: Vec<usize> = match equal {
            Some((key, value)) => {
                let pods = &self.pods;
                let index = self.by_label.entry(key.clone()).or_insert_with(|| {
                    let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
                    for (i, p) in pods.iter().enumerate() {
                        if let Some(v) = p.metadata.labels.as_ref().and_then(|l| l.get(&key)) {
                            index
                                .entry((p.namespace().unwrap_or_default(), v.clone()))
                                .or_default()
                                .push(i);
                        }
                    }
                    index
                });
                index
                    .get(&(namespace.to_string(), value))
                    .cloned()
                    .unwrap_or_default()
            }
            None => {
                let pods = &self.pods;
                let index = self.by_namespace.get_or_insert_with(|| {
                    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
                    for (i, p) in pods.iter().enumerate() {
                        index
                            .entry(p.namespace().unwrap_or_default())
                            .or_default()
                            .push(i);
                    }
                    index
                });
                index.get(namespace).cloned().unwrap_or_default()
            }
        };
        candidates
            .into_iter()
            .filter_map(|i| self.pods.get(i))
            .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&no_labels)))
            .cloned()
            .collect()
    }
}
