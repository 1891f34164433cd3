//! Watch caches of what every cycle reads: the VariantAutoscalings, Pods, HPAs and the
//! workloads the VAs target (one watch per kind, over the watched namespace or the whole
//! cluster), so a cycle reads memory instead of sending a GET and a LIST per variant.
//!
//! Each cache is a kube-runtime watcher: one LIST, then a WATCH kept open (re-listed with
//! backoff when the watch breaks). Each object is reduced as it arrives to what the cycle
//! reads of it ([`CachedPod`], [`CachedHpa`], a workload's replicas, selector and ready
//! count; VAs decoded) and the object itself dropped, which keeps the controller's memory
//! small at thousands of models. A workload kind is watched from the
//! first cycle a VA targets it; a workload whose kind has no `spec.replicas` and
//! `spec.selector` (a custom resource with its own `/scale` paths) is still read with a GET
//! of `/scale` and a LIST of its pods, as before.

use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, Selector, SelectorExt};
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
/// objects holds at once low (each page is parsed whole before its objects are reduced).
pub const LIST_PAGE_SIZE: u32 = 100;

/// The objects of one watch, each kept as what the cycle reads of it (`T`), by
/// (namespace, name).
struct Entries<T> {
    current: HashMap<(String, String), Arc<T>>,
    /// A re-list under way (from `Init` to `InitDone`): it replaces `current` whole.
    relisting: Option<HashMap<(String, String), Arc<T>>>,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Self {
            current: HashMap::new(),
            relisting: None,
        }
    }
}

/// A watch whose objects are reduced to `T` as they arrive (the object itself is dropped).
struct Compact<T> {
    entries: Arc<std::sync::RwLock<Entries<T>>>,
    /// True from the end of the first LIST.
    listed: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Compact<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> Compact<T> {
    /// Waits for the first LIST, up to [`SYNC_TIMEOUT`].
    async fn synced(&self, what: &str) -> Result<(), String> {
        let mut listed = self.listed.clone();
        let waited = tokio::time::timeout(SYNC_TIMEOUT, listed.wait_for(|listed| *listed))
            .await
            .map(|r| r.map(|_| ()));
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(format!("the {what} watch stopped")),
            Err(_) => Err(format!(
                "the {what} watch has not listed yet ({} s); retried next cycle",
                SYNC_TIMEOUT.as_secs()
            )),
        }
    }

    /// The entry of `namespace/name`.
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let entries = self.entries.read().ok()?;
        entries
            .current
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every entry (of `namespace` when given).
    fn all(&self, namespace: Option<&str>) -> Vec<Arc<T>> {
        let Ok(entries) = self.entries.read() else {
            return Vec::new();
        };
        entries
            .current
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Starts a watch of `api` whose objects are reduced by `compact` as they arrive. Watch
/// errors are counted in `errors` (the watcher re-lists with backoff).
fn watch_compact<K, T>(
    api: Api<K>,
    compact: fn(&K) -> T,
    errors: Arc<AtomicU64>,
    what: String,
) -> Compact<T>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    T: Send + Sync + 'static,
{
    let entries: Arc<std::sync::RwLock<Entries<T>>> = Arc::default();
    let (listed_tx, listed) = tokio::sync::watch::channel(false);
    let stream = watcher(api, list_config()).default_backoff();
    let shared = entries.clone();
    let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(cache = %what, error = %e, "watch failed; re-listing with backoff");
                    continue;
                }
            };
            let Ok(mut entries) = shared.write() else {
                return;
            };
            match event {
                watcher::Event::Apply(object) => {
                    entries
                        .current
                        .insert(key(&object), Arc::new(compact(&object)));
                }
                watcher::Event::Delete(object) => {
                    entries.current.remove(&key(&object));
                }
                watcher::Event::Init => entries.relisting = Some(HashMap::new()),
                watcher::Event::InitApply(object) => {
                    let entry = Arc::new(compact(&object));
                    entries
                        .relisting
                        .get_or_insert_with(HashMap::new)
                        .insert(key(&object), entry);
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
    Compact {
        entries,
        listed,
        task,
    }
}

/// A Pod as the cycle reads it.
#[derive(Debug, Clone)]
pub struct CachedPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels (for selectors).
    pub labels: BTreeMap<String, String>,
    /// Pending, and not scheduled because no node fits (PodScheduled False, Unschedulable).
    pub pending_unschedulable: bool,
    /// Some when its Ready condition is True: since when (None when the time is not given).
    pub ready_since: Option<Option<k8s_openapi::jiff::Timestamp>>,
    /// Its creation time.
    pub created: Option<k8s_openapi::jiff::Timestamp>,
    /// Whether one of its containers restarted.
    pub restarted: bool,
}

impl CachedPod {
    /// What the cycle reads of `pod`.
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
        Self {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            pending_unschedulable: status.and_then(|s| s.phase.as_deref()) == Some("Pending")
                && conditions.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                }),
            ready_since: conditions
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")
                .map(|c| c.last_transition_time.as_ref().map(|t| t.0)),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            restarted: status
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.restart_count > 0)),
        }
    }
}

/// An HPA as the cycle reads it: its name and the workload it targets.
#[derive(Debug, Clone)]
pub struct CachedHpa {
    /// Its name.
    pub name: String,
    /// `spec.scaleTargetRef.kind`.
    pub target_kind: String,
    /// `spec.scaleTargetRef.name`.
    pub target_name: String,
}

impl CachedHpa {
    /// What the cycle reads of `hpa`.
    pub fn from_hpa(hpa: &HorizontalPodAutoscaler) -> Self {
        Self {
            name: hpa.name_any(),
            target_kind: hpa.spec.scale_target_ref.kind.clone(),
            target_name: hpa.spec.scale_target_ref.name.clone(),
        }
    }
}

/// A workload as the cycle reads it: `spec.replicas`, `spec.selector` and
/// `status.readyReplicas` (a kind without the first two is read through `/scale`).
struct WorkloadEntry {
    resource_version: Option<String>,
    /// `spec.replicas`.
    replicas: Option<u32>,
    /// `spec.selector`, when it is a label selector.
    selector: Option<Selector>,
    /// `status.readyReplicas` (0 when absent).
    ready: u32,
}

fn workload_entry(object: &DynamicObject) -> WorkloadEntry {
    WorkloadEntry {
        resource_version: object.resource_version(),
        replicas: object
            .data
            .pointer("/spec/replicas")
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| u32::try_from(r).ok()),
        selector: object
            .data
            .pointer("/spec/selector")
            .filter(|s| s.is_object())
            .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
            .and_then(|s| Selector::try_from(s).ok()),
        ready: ready_replicas(object),
    }
}

/// A workload's `status.readyReplicas` (0 when absent).
pub(crate) fn ready_replicas(object: &DynamicObject) -> u32 {
    object
        .data
        .pointer("/status/readyReplicas")
        .and_then(serde_json::Value::as_u64)
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0)
}

/// One VA as the cache keeps it: decoded (only the typed form is kept, which is several
/// times smaller than the untyped JSON), or the object the types could not read and why.
#[derive(Clone)]
enum VaEntry {
    Decoded(Arc<VariantAutoscaling>),
    Undecodable(Box<DynamicObject>, String),
}

/// The VA watch: objects decoded as they arrive.
type VaCache = Compact<VaEntry>;

fn va_entry(object: &DynamicObject) -> VaEntry {
    match crate::reconciler::decode_va(object) {
        Ok(va) => VaEntry::Decoded(Arc::new(va)),
        Err(message) => {
            let mut object = object.clone();
            object.metadata.managed_fields = None;
            VaEntry::Undecodable(Box::new(object), message)
        }
    }
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
        pods: Vec<Arc<CachedPod>>,
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
    pods: Option<Compact<CachedPod>>,
    hpas: Option<Compact<CachedHpa>>,
    workloads: BTreeMap<(String, String), Compact<WorkloadEntry>>,
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

/// What was written of the object at `key`, while the cache still holds it at `version`, the
/// version it had when the write was made; a record the cache has moved past is dropped.
fn read_back<'w, K, T>(
    written: &'w mut HashMap<K, (Option<String>, T)>,
    key: &K,
    version: &Option<String>,
) -> Option<&'w T>
where
    K: std::hash::Hash + Eq,
{
    if written.get(key).is_some_and(|(at, _)| at != version) {
        written.remove(key);
    }
    written.get(key).map(|(_, value)| value)
}

/// The VAs of one cycle: each decoded on its own.
pub struct ListedVas {
    /// The VAs the types could read (shared with the cache; one whose status this
    /// controller wrote and the watch has not shown yet is a copy carrying that status).
    pub decoded: Vec<Arc<VariantAutoscaling>>,
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

    /// Starts the VA watch: each object is decoded on arrival (one the types cannot read
    /// is kept with the message naming its field).
    fn watch_vas(&self) -> VaCache {
        let resource = ApiResource::erase::<VariantAutoscaling>(&());
        watch_compact(
            self.api_untyped(&resource),
            va_entry,
            self.errors.clone(),
            "VariantAutoscalings".into(),
        )
    }

    /// Every VariantAutoscaling, each decoded on its own. Starts the VA, Pod and HPA watches
    /// on first use and waits for the VAs' first LIST (up to [`SYNC_TIMEOUT`]).
    pub async fn vas(&mut self) -> Result<ListedVas, String> {
        if self.vas.is_none() {
            self.vas = Some(self.watch_vas());
            self.pods = Some(watch_compact(
                self.api::<Pod>(),
                CachedPod::from_pod,
                self.errors.clone(),
                "Pods".into(),
            ));
            self.hpas = Some(watch_compact(
                self.api::<HorizontalPodAutoscaler>(),
                CachedHpa::from_hpa,
                self.errors.clone(),
                "HorizontalPodAutoscalers".into(),
            ));
        }
        let Some(vas) = &self.vas else {
            return Err("the VariantAutoscaling cache is not running".into());
        };
        vas.synced("VariantAutoscaling").await?;
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
            match entry.as_ref() {
                VaEntry::Decoded(va) => {
                    let mut va = va.clone();
                    if let Some(status) = written
                        .as_mut()
                        .and_then(|w| read_back(&mut w.statuses, key, &va.resource_version()))
                    {
                        let mut copy = VariantAutoscaling::clone(&va);
                        copy.status = Some(status.clone());
                        va = Arc::new(copy);
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
                let compact = watch_compact(
                    self.api_untyped(&resource),
                    workload_entry,
                    self.errors.clone(),
                    format!("{kind} ({api_version})"),
                );
                self.workloads.insert(key.clone(), compact);
            }
            if let Some(w) = self.workloads.get(&key) {
                if let Err(e) = w.synced(kind).await {
                    failed.insert(key, e);
                }
            }
        }
        if let Some(p) = &self.pods {
            if let Err(e) = p.synced("Pods").await {
                failed.insert(pod_key(), e);
            }
        }
        if let Some(h) = &self.hpas {
            if let Err(e) = h.synced("HorizontalPodAutoscalers").await {
                failed.insert(hpa_key(), e);
            }
        }
        self.unsynced = failed.keys().cloned().collect();
        failed
    }

    /// Whether the VA cache holds VA `namespace/name`.
    pub fn holds_va(&self, namespace: &str, name: &str) -> bool {
        self.vas
            .as_ref()
            .is_some_and(|v| v.get(namespace, name).is_some())
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
        let Some(cached) = self
            .workloads
            .get(&(api_version.to_string(), kind.to_string()))
        else {
            return;
        };
        let at = cached
            .get(namespace, name)
            .and_then(|o| o.resource_version.clone());
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
    pub fn hpas(&self, namespace: &str) -> Option<Vec<Arc<CachedHpa>>> {
        if self.unsynced.contains(&hpa_key()) {
            return None;
        }
        let h = self.hpas.as_ref()?;
        Some(h.all(Some(namespace)))
    }

    /// One cycle's view of the pods, indexed for selector lookups.
    pub fn pod_index(&self) -> PodIndex {
        PodIndex::new(self.pods.as_ref().map(|p| p.all(None)).unwrap_or_default())
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
        let cached = self.workloads.get(&kind_key)?;
        let Some(object) = cached.get(namespace, name) else {
            return Some(CachedWorkload::NotFound);
        };
        let (Some(mut replicas), Some(selector)) = (object.replicas, object.selector.as_ref())
        else {
            return Some(CachedWorkload::ReadScale);
        };
        if let Ok(mut written) = self.written.lock() {
            let key = (
                namespace.to_string(),
                api_version.to_string(),
                kind.to_string(),
                name.to_string(),
            );
            if let Some(wrote) = read_back(&mut written.replicas, &key, &object.resource_version) {
                replicas = *wrote;
            }
        }
        Some(CachedWorkload::Found {
            replicas,
            ready: object.ready,
            pods: pods.matching(namespace, selector),
        })
    }
}

fn pod_key() -> (String, String) {
    ("v1".into(), "Pod".into())
}

fn hpa_key() -> (String, String) {
    ("autoscaling/v2".into(), "HorizontalPodAutoscaler".into())
}

/// The pods of one cycle, indexed by namespace and by the value of each label key a
/// selector looked up (built on first use), so a workload's pods are found without a scan
/// of every pod.
pub struct PodIndex {
    pods: Vec<Arc<CachedPod>>,
    /// (label key) → (namespace, value) → indices into `pods`.
    by_label: HashMap<String, HashMap<(String, String), Vec<usize>>>,
    /// namespace → indices into `pods`.
    by_namespace: Option<HashMap<String, Vec<usize>>>,
}

impl PodIndex {
    fn new(pods: Vec<Arc<CachedPod>>) -> Self {
        Self {
            pods,
            by_label: HashMap::new(),
            by_namespace: None,
        }
    }

    /// The pods of `namespace` that `selector` matches.
    pub fn matching(&mut self, namespace: &str, selector: &Selector) -> Vec<Arc<CachedPod>> {
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
                        if let Some(v) = p.labels.get(&key) {
                            index
                                .entry((p.namespace.clone(), v.clone()))
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
                        index.entry(p.namespace.clone()).or_default().push(i);
                    }
                    index
                });
                index.get(namespace).cloned().unwrap_or_default()
            }
        };
        candidates
            .into_iter()
            .filter_map(|i| self.pods.get(i))
            .filter(|p| selector.matches(&p.labels))
            .cloned()
            .collect()
    }
}
