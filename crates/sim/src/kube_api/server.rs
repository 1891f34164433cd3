//! The HTTP layer: path routing, verbs, discovery documents and watch streams.

use super::audit::{self, RecordedRequest};
use super::day2;
use super::error::ApiError;
use super::patch::{
    json_patch, merge_patch, server_side_apply, strip_directives, ApplyScope, PatchKind,
};
use super::protobuf;
use super::rbac::{self, TokenUser};
use super::selector::{selector_to_string, FieldSelector, LabelSelector};
use super::store::{Change, EventKind, Part, ResourceInfo, Store, WriteOpts};
use super::{openapi, strategic, table};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};
use wvo_schema::validate::{FieldValidation, UnknownFieldValidation};

/// Failures injected by tests.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Remaining writes to fail, and with which code.
    pub fail_writes: u32,
    /// The code of injected write failures.
    pub fail_code: u16,
    /// Remaining updates/patches to answer with 409 Conflict.
    pub conflicts: u32,
    /// Remaining resource requests to hold before handling them, and for how long.
    pub delay_requests: u32,
    /// How long a delayed request is held.
    pub delay: Duration,
    /// Remaining reads (GET of an object or a list; not watches) to fail, and with which
    /// code.
    pub fail_reads: u32,
    /// The code of injected read failures.
    pub fail_read_code: u16,
}

/// State shared by the server, the controllers and the handle.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    pub close_watches: watch::Sender<u64>,
    pub open_watches: AtomicUsize,
    pub bookmark_interval: Duration,
    pub changed: Arc<Notify>,
    pub startup_delay: Duration,
    /// Resource requests received, in arrival order, with their arrival time (see
    /// [`super::audit`]).
    pub requests: Mutex<Vec<(std::time::Instant, RecordedRequest)>>,
    /// Resource requests held by a delay fault or being handled after one.
    pub held: AtomicUsize,
    /// The token table TokenReviews are answered from (token → user).
    pub tokens: Mutex<HashMap<String, TokenUser>>,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tokens(&self) -> MutexGuard<'_, HashMap<String, TokenUser>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn requests(&self) -> MutexGuard<'_, Vec<(std::time::Instant, RecordedRequest)>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Reply {
    Json(StatusCode, Value),
    /// A JSON answer with `Warning: 299` headers.
    Warned(StatusCode, Value, Vec<String>),
    Text(&'static str),
    /// A `text/plain` body (`pods/log`).
    Plain(String),
    Watch(Box<WatchReq>),
    /// A response built elsewhere (OpenAPI documents with their caching headers).
    Raw(Response),
}

fn ok(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(StatusCode::OK, v))
}

/// The one handler: every request goes through here.
pub(crate) async fn handle(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = audit::attributes(&method, &uri, &headers) {
        sh.requests().push((std::time::Instant::now(), r));
        // A slow server: the request is held, then handled as usual (a client that gave up
        // meanwhile may still see its write applied, as with a real API server).
        let delay = {
            let mut f = sh.faults();
            (f.delay_requests > 0).then(|| {
                f.delay_requests -= 1;
                f.delay
            })
        };
        if let Some(delay) = delay {
            // Counted until handled, or dropped with the connection of a client that gave up.
            let _held = HeldRequest::new(&sh.held);
            tokio::time::sleep(delay).await;
            return reply(&sh, &method, &uri, &headers, &body);
        }
    }
    reply(&sh, &method, &uri, &headers, &body)
}

/// One held request in [`Shared::held`], for as long as it lives.
struct HeldRequest<'a>(&'a AtomicUsize);

impl<'a> HeldRequest<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for HeldRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn reply(
    sh: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    match dispatch(sh, method, uri, headers, body) {
        Ok(Reply::Json(code, v)) => (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Ok(Reply::Warned(code, v, warnings)) => {
            let mut r = (
                code,
                [(header::CONTENT_TYPE, "application/json")],
                v.to_string(),
            )
                .into_response();
            for w in warnings {
                // RFC 7234 warn-text: a quoted string.
                let text = format!("299 - {}", json!(w));
                if let Ok(h) = header::HeaderValue::from_str(&text) {
                    r.headers_mut().append(header::WARNING, h);
                }
            }
            r
        }
        Ok(Reply::Text(t)) => (StatusCode::OK, t).into_response(),
        Ok(Reply::Plain(t)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], t).into_response()
        }
        Ok(Reply::Watch(w)) => start_watch(sh.clone(), *w),
        Ok(Reply::Raw(r)) => r,
        Err(e) => e.into_response(),
    }
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn dispatch(
    sh: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Reply, ApiError> {
    let path = uri.path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let q = query_map(uri);
    if *method == Method::GET {
        match segs.as_slice() {
            [] => {
                return ok(
                    json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
                )
            }
            ["healthz" | "livez" | "readyz"] => return Ok(Reply::Text("ok")),
            ["version"] => return ok(version_info()),
            ["openapi", ..] => {
                if let Some(r) = openapi::serve(&sh.store(), &segs, uri, headers) {
                    return r.map(Reply::Raw);
                }
            }
            ["api"] => return ok(api_versions(headers)),
            ["apis"] => return ok(group_list(&sh.store())),
            ["api", "v1"] => return resource_list(&sh.store(), "", "v1"),
            ["apis", g] => return api_group(&sh.store(), g),
            ["apis", g, v] => return resource_list(&sh.store(), g, v),
            _ => {}
        }
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let target = resolve(&sh.store(), group, version, rest, path)?;
    let is_write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if is_write {
        let mut f = sh.faults();
        if f.fail_writes > 0 {
            f.fail_writes -= 1;
            return Err(ApiError::injected(f.fail_code));
        }
        if f.conflicts > 0 && matches!(*method, Method::PUT | Method::PATCH) {
            f.conflicts -= 1;
            return Err(ApiError::conflict(
                &target.info.group,
                &target.info.plural,
                target.name.as_deref().unwrap_or_default(),
            ));
        }
    } else if *method == Method::GET && !q.get("watch").is_some_and(|v| v == "true" || v == "1") {
        let mut f = sh.faults();
        if f.fail_reads > 0 {
            f.fail_reads -= 1;
            return Err(ApiError::injected(f.fail_read_code));
        }
    }
    if let Some(reply) = review(sh, method, &target, headers, body, path) {
        return reply;
    }
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let validation: FieldValidation = q
        .get("fieldValidation")
        .map_or(Ok(FieldValidation::default()), |v| v.parse())
        .map_err(|e: UnknownFieldValidation| ApiError::bad_request(e.to_string()))?;
    let manager = update_manager(&q, headers);
    let ns = target.ns.clone().unwrap_or_default();
    let info = &target.info;
    match (
        method.clone(),
        target.name.as_deref(),
        target.sub.as_deref(),
    ) {
        (Method::GET, None, _) => {
            let watching = q.get("watch").is_some_and(|v| v == "true" || v == "1");
            if watching {
                let mut w = watch_request(&target, &q)?;
                if table::wants_table(headers) {
                    w.table = Some(table::Printer::new(&sh.store(), info, &q)?);
                }
                Ok(Reply::Watch(Box::new(w)))
            } else {
                let store = sh.store();
                as_table(&store, info, headers, &q, list(&store, &target, &q))
            }
        }
        (Method::GET, Some(name), Some("scale")) => {
            let obj = sh.store().get(info, &ns, name)?;
            ok(scale_of(info, &obj))
        }
        (Method::GET, Some(name), Some("log")) => Ok(Reply::Plain(day2::pod_log(
            info,
            &sh.store(),
            &ns,
            name,
            &q,
        )?)),
        (Method::GET, Some(name), _) => {
            let store = sh.store();
            as_table(&store, info, headers, &q, ok(store.get(info, &ns, name)?))
        }
        (Method::POST, None, _) if target.ns.is_some() || !info.namespaced => {
            let obj = parse_body(headers, body)?;
            let mut store = sh.store();
            let out = store.create(
                info,
                &ns,
                obj,
                WriteOpts {
                    dry_run,
                    manager: Some(manager),
                    validation: Some(validation),
                    ..WriteOpts::default()
                },
            )?;
            Ok(warned(&mut store, StatusCode::CREATED, out))
        }
        (Method::PUT, Some(name), sub) => {
            let obj = parse_body(headers, body)?;
            let mut store = sh.store();
            let opts = WriteOpts {
                dry_run,
                manager: Some(manager),
                validation: Some(validation),
                ..WriteOpts::default()
            };
            let out = match sub {
                Some("scale") => {
                    let cur = store.get(info, &ns, name)?;
                    set_scale(&mut store, info, &ns, name, cur, &obj, opts)?
                }
                Some("status") => store.replace(info, &ns, name, obj, Part::Status, opts)?,
                _ => store.replace(info, &ns, name, obj, Part::Main, opts)?,
            };
            Ok(warned(&mut store, StatusCode::OK, out))
        }
        (Method::PATCH, Some(name), sub) => {
            let opts = WriteOpts {
                dry_run,
                validation: Some(validation),
                patch: true,
                ..WriteOpts::default()
            };
            patch(sh, &target, name, sub, headers, body, &q, opts, manager)
        }
        (Method::DELETE, Some(name), None) => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
            };
            let rv = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
            let dry = dry_run
                || opts
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v == "All"));
            ok(sh.store().delete(info, &ns, name, rv, uid, dry)?)
        }
        (Method::DELETE, None, None) => {
            let labels = LabelSelector::parse(q.get("labelSelector").map_or("", |s| s))?;
            let fields = FieldSelector::parse(
                q.get("fieldSelector").map_or("", |s| s),
                &info.group,
                &info.plural,
            )?;
            let mut store = sh.store();
            let victims: Vec<(String, String)> = store
                .list(info, target.ns.as_deref())
                .iter()
                .filter(|s| labels.matches(&s.obj) && fields.matches(&s.obj))
                .map(|s| {
                    (
                        str_at(&s.obj, "/metadata/namespace").to_string(),
                        str_at(&s.obj, "/metadata/name").to_string(),
                    )
                })
                .collect();
            let mut items = Vec::new();
            for (n, name) in victims {
                items.push(store.delete(info, &n, &name, None, None, dry_run)?);
            }
            ok(list_doc(info, store.rv(), items, None))
        }
        _ => Err(ApiError::method_not_allowed(method.as_str(), path)),
    }
}

/// A GET's answer as a `Table` when the client asked for one (`kubectl get`).
fn as_table(
    store: &Store,
    info: &ResourceInfo,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    reply: Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    match reply? {
        Reply::Json(code, v) if table::wants_table(headers) => {
            let printer = table::Printer::new(store, info, q)?;
            Ok(Reply::Json(code, printer.table(&v, table::now())))
        }
        r => Ok(r),
    }
}

/// TokenReviews and SubjectAccessReviews: create-only, answered and never stored. None for
/// every other resource.
fn review(
    sh: &Arc<Shared>,
    method: &Method,
    target: &Target,
    headers: &HeaderMap,
    body: &Bytes,
    path: &str,
) -> Option<Result<Reply, ApiError>> {
    let review = match (target.info.group.as_str(), target.info.plural.as_str()) {
        ("authentication.k8s.io", "tokenreviews") => 0,
        ("authorization.k8s.io", "subjectaccessreviews") => 1,
        ("authorization.k8s.io", "selfsubjectaccessreviews") => 2,
        _ => return None,
    };
    if *method != Method::POST || target.name.is_some() {
        return Some(Err(ApiError::method_not_allowed(method.as_str(), path)));
    }
    let answer = parse_body(headers, body).and_then(|obj| match review {
        0 => rbac::token_review(&obj, |t| sh.tokens().get(t).cloned()),
        1 => rbac::subject_access_review(&sh.store(), &obj),
        _ => {
            let token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let who = day2::requester(token, |t| sh.tokens().get(t).cloned());
            let store = sh.store();
            let who = match headers
                .get("impersonate-user")
                .and_then(|v| v.to_str().ok())
            {
                Some(user) => {
                    let groups = headers
                        .get_all("impersonate-group")
                        .iter()
                        .filter_map(|v| v.to_str().ok().map(String::from))
                        .collect();
                    Some(day2::impersonate(&store, who, user, groups)?)
                }
                None => who,
            };
            day2::self_subject_access_review(&store, &obj, who)
        }
    });
    Some(answer.map(|v| Reply::Json(StatusCode::CREATED, v)))
}

/// The field manager of a non-apply write: `fieldManager`, else the User-Agent up to its
/// first '/', as the API server derives it.
fn update_manager(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.starts_with(protobuf::CONTENT_TYPE) {
        return protobuf::decode(body);
    }
    parse_doc(body, ct.contains("yaml"))
}

fn parse_doc(body: &Bytes, yaml: bool) -> Result<Value, ApiError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) if yaml => serde_norway::from_slice(body)
            .map_err(|y| ApiError::bad_request(format!("invalid body: {e}; as YAML: {y}")))?,
        Err(e) => return Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    };
    if v.is_object() || v.is_array() {
        Ok(v)
    } else {
        Err(ApiError::bad_request("body must be a JSON object"))
    }
}

/// A resolved resource path.
struct Target {
    info: ResourceInfo,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn resolve(
    store: &Store,
    group: &str,
    version: &str,
    rest: &[&str],
    path: &str,
) -> Result<Target, ApiError> {
    let namespaced_path = rest.len() >= 3
        && rest.first() == Some(&"namespaces")
        && store
            .info(group, version, rest[2])
            .is_some_and(|i| i.namespaced);
    let (ns, rest) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return Err(ApiError::no_route(path));
    }
    let plural = rest.first().copied().unwrap_or_default();
    let info = store
        .info(group, version, plural)
        .ok_or_else(|| ApiError::no_route(path))?;
    let name = rest.get(1).map(|s| s.to_string());
    let sub = rest.get(2).map(|s| s.to_string());
    if info.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::no_route(path));
    }
    match sub.as_deref() {
        None => {}
        Some("status") if info.status => {}
        Some("scale") if info.scale.is_some() => {}
        Some("log") if info.group.is_empty() && info.plural == "pods" => {}
        Some(_) => return Err(ApiError::no_route(path)),
    }
    Ok(Target {
        info,
        ns,
        name,
        sub,
    })
}

fn list_doc(info: &ResourceInfo, rv: u64, items: Vec<Value>, cont: Option<String>) -> Value {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    json!({
        "kind": format!("{}List", info.kind),
        "apiVersion": info.api_version(),
        "metadata": meta,
        "items": items,
    })
}

fn list(store: &Store, t: &Target, q: &HashMap<String, String>) -> Result<Reply, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", |s| s))?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map_or("", |s| s),
        &t.info.group,
        &t.info.plural,
    )?;
    let limit = match q.get("limit").filter(|s| !s.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    // continue token: "<rv>/<namespace>/<name>" of the last item of the previous page.
    let mut rv = store.rv();
    let mut after: Option<(String, String)> = None;
    if let Some(c) = q.get("continue").filter(|s| !s.is_empty()) {
        let mut parts = c.splitn(3, '/');
        let (Some(r), Some(n), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ApiError::bad_request(format!(
                "invalid continue token {c:?}"
            )));
        };
        let r: u64 = r
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid continue token {c:?}")))?;
        if r < store.compacted() {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            ));
        }
        rv = r;
        after = Some((n.to_string(), name.to_string()));
    }
    let mut items = Vec::new();
    let mut cont = None;
    for s in store.list(&t.info, t.ns.as_deref()) {
        let key = (
            str_at(&s.obj, "/metadata/namespace").to_string(),
            str_at(&s.obj, "/metadata/name").to_string(),
        );
        if after.as_ref().is_some_and(|a| key <= *a) {
            continue;
        }
        if !(labels.matches(&s.obj) && fields.matches(&s.obj)) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            if let Some(last) = items.last() {
                cont = Some(format!(
                    "{rv}/{}/{}",
                    str_at(last, "/metadata/namespace"),
                    str_at(last, "/metadata/name")
                ));
            }
            break;
        }
        items.push(Store::present(&t.info, &s.obj));
    }
    ok(list_doc(&t.info, rv, items, cont))
}

fn get_dotted<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    obj.pointer(&path.replace('.', "/"))
}

fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let paths = info.scale.clone();
    let (spec, status, sel) = match &paths {
        Some(p) => (
            get_dotted(obj, &p.spec_replicas).and_then(Value::as_i64),
            get_dotted(obj, &p.status_replicas).and_then(Value::as_i64),
            match &p.label_selector {
                Some(path) => get_dotted(obj, path)
                    .and_then(Value::as_str)
                    .map(String::from),
                None => obj.pointer("/spec/selector").map(selector_to_string),
            },
        ),
        None => (None, None, None),
    };
    let mut status_doc = json!({"replicas": status.unwrap_or(0)});
    if let (Some(s), Some(o)) = (sel, status_doc.as_object_mut()) {
        o.insert("selector".into(), json!(s));
    }
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": meta,
        "spec": {"replicas": spec.unwrap_or(0)},
        "status": status_doc,
    })
}

fn set_scale(
    store: &mut Store,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    mut cur: Value,
    scale: &Value,
    opts: WriteOpts,
) -> Result<Value, ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Scale.autoscaling {name:?} is invalid: spec.replicas: must be an integer >= 0"
            ))
        })?;
    let Some(paths) = &info.scale else {
        return Err(ApiError::no_route("scale"));
    };
    let keys: Vec<String> = paths
        .spec_replicas
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut target = &mut cur;
    for k in &keys {
        if !target.is_object() {
            *target = json!({});
        }
        let Some(o) = target.as_object_mut() else {
            return Err(ApiError::invalid("scale path is not an object"));
        };
        target = o.entry(k.clone()).or_insert(Value::Null);
    }
    *target = json!(replicas);
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if let Some(m) = cur.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv));
        }
    }
    let out = store.replace(info, ns, name, cur, Part::Main, opts)?;
    Ok(scale_of(info, &out))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    sh: &Arc<Shared>,
    t: &Target,
    name: &str,
    sub: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
    q: &HashMap<String, String>,
    base: WriteOpts,
    manager: String,
) -> Result<Reply, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind =
        PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let info = &t.info;
    // Patch metadata of a built-in kind; a custom resource has none (415).
    let strategic_root = match kind {
        PatchKind::Strategic => Some(
            strategic::root_type(&info.group, &info.kind)
                .ok_or_else(strategic::unsupported_for_custom)?,
        ),
        _ => None,
    };
    let ns = t.ns.clone().unwrap_or_default();
    let doc = parse_doc(body, kind == PatchKind::Apply)?;
    let force = q.get("force").is_some_and(|v| v == "true");
    if force && kind != PatchKind::Apply {
        return Err(ApiError::bad_request(
            "force is only allowed for apply patches",
        ));
    }
    let mut store = sh.store();
    let mut opts = WriteOpts {
        manager: (kind != PatchKind::Apply).then_some(manager),
        ..base
    };
    let apply_plain = |target: &mut Value| -> Result<(), ApiError> {
        match kind {
            PatchKind::Merge => merge_patch(target, &doc),
            PatchKind::Strategic => {
                strategic::strategic_merge_patch(target, &doc, strategic_root.unwrap_or("Object"))?
            }
            PatchKind::Apply => {
                let mut d = doc.clone();
                strip_directives(&mut d);
                if let Some(o) = d.as_object_mut() {
                    o.remove("apiVersion");
                    o.remove("kind");
                }
                merge_patch(target, &d)
            }
            PatchKind::Json => json_patch(target, &doc)?,
        }
        Ok(())
    };
    if sub == Some("scale") {
        let cur = store.get(info, &ns, name)?;
        let mut scale = scale_of(info, &cur);
        apply_plain(&mut scale)?;
        let out = set_scale(&mut store, info, &ns, name, cur, &scale, opts)?;
        return Ok(warned(&mut store, StatusCode::OK, out));
    }
    let part = if sub == Some("status") {
        Part::Status
    } else {
        Part::Main
    };
    if kind == PatchKind::Apply {
        let manager = q.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
        })?;
        if !doc.is_object() {
            return Err(ApiError::bad_request(
                "apply configuration must be an object",
            ));
        }
        if let Some(n) = doc.pointer("/metadata/name").and_then(Value::as_str) {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let scope = if part == Part::Status {
            ApplyScope::Status
        } else {
            ApplyScope::Main {
                status_subresource: info.status,
            }
        };
        let ns_key = if info.namespaced { ns.as_str() } else { "" };
        let existing = store
            .stored(info, ns_key, name)
            .map(|s| (s.obj.clone(), s.owners.clone()));
        let (obj, owners) = match &existing {
            Some((o, w)) => server_side_apply(Some(o), w, &doc, manager, force, scope)?,
            None => server_side_apply(None, &Default::default(), &doc, manager, force, scope)?,
        };
        opts.owners = Some(owners);
        return match existing {
            Some(_) => {
                let out = store.replace(info, &ns, name, obj, part, opts)?;
                Ok(warned(&mut store, StatusCode::OK, out))
            }
            None if part == Part::Status => {
                Err(ApiError::not_found(&info.group, &info.plural, name))
            }
            None => {
                let mut obj = obj;
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("name".into(), json!(name));
                }
                let out = store.create(info, &ns, obj, opts)?;
                Ok(warned(&mut store, StatusCode::CREATED, out))
            }
        };
    }
    let mut obj = store.get(info, &ns, name)?;
    apply_plain(&mut obj)?;
    let out = store.replace(info, &ns, name, obj, part, opts)?;
    Ok(warned(&mut store, StatusCode::OK, out))
}

/// A write's answer with the warnings the store collected for it.
fn warned(store: &mut Store, code: StatusCode, out: Value) -> Reply {
    let warnings = store.take_warnings();
    if warnings.is_empty() {
        Reply::Json(code, out)
    } else {
        Reply::Warned(code, out, warnings)
    }
}

fn version_info() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-wvo-emulator",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24 (emulated)",
        "compiler": "rustc", "platform": "linux/amd64",
    })
}

fn api_versions(headers: &HeaderMap) -> Value {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    })
}

fn groups(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in store.infos().filter(|r| !r.group.is_empty()) {
        let vs = g.entry(r.group.clone()).or_default();
        if !vs.contains(&r.version) {
            vs.push(r.version.clone());
        }
    }
    g
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(json!({}));
    json!({"name": name, "versions": vs, "preferredVersion": preferred})
}

fn group_list(store: &Store) -> Value {
    let gs: Vec<Value> = groups(store)
        .iter()
        .map(|(n, vs)| group_doc(n, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

fn api_group(store: &Store, name: &str) -> Result<Reply, ApiError> {
    let gs = groups(store);
    let vs = gs
        .get(name)
        .ok_or_else(|| ApiError::no_route(&format!("/apis/{name}")))?;
    let mut doc = group_doc(name, vs);
    if let Some(o) = doc.as_object_mut() {
        o.insert("kind".into(), json!("APIGroup"));
        o.insert("apiVersion".into(), json!("v1"));
    }
    ok(doc)
}

fn resource_list(store: &Store, group: &str, version: &str) -> Result<Reply, ApiError> {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for r in store
        .infos()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": verbs, "shortNames": r.short_names,
            "categories": table::categories(store, r),
        }));
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if r.group.is_empty() && r.plural == "pods" {
            resources.push(json!({
                "name": "pods/log", "singularName": "", "namespaced": true,
                "kind": "Pod", "verbs": ["get"],
            }));
        }
        if r.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "",
                "namespaced": r.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        let p = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        return Err(ApiError::no_route(&p));
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// A parsed watch request.
struct WatchReq {
    info: ResourceInfo,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// `None`: start with the current state (resourceVersion "" or "0").
    rv: Option<u64>,
    send_initial: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
    /// Objects sent as one-row Tables (`kubectl get -w`).
    table: Option<table::Printer>,
}

fn watch_request(t: &Target, q: &HashMap<String, String>) -> Result<WatchReq, ApiError> {
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
        ),
    };
    let timeout = match q.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(s) => Some(Duration::from_secs(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds {s:?}"))
        })?)),
        None => None,
    };
    Ok(WatchReq {
        info: t.info.clone(),
        ns: t.ns.clone(),
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", |s| s))?,
        fields: FieldSelector::parse(
            q.get("fieldSelector").map_or("", |s| s),
            &t.info.group,
            &t.info.plural,
        )?,
        rv,
        send_initial: q.get("sendInitialEvents").is_some_and(|v| v == "true"),
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        timeout,
        table: None,
    })
}

impl WatchReq {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn event_for(&self, ch: &Change) -> Option<Value> {
        if ch.gr != self.info.gr() || self.ns.as_ref().is_some_and(|n| *n != ch.ns) {
            return None;
        }
        let now = self.matches(&ch.obj);
        let typ = match ch.kind {
            EventKind::Added if now => "ADDED",
            EventKind::Deleted if now => "DELETED",
            EventKind::Modified => match (ch.old.as_ref().is_some_and(|o| self.matches(o)), now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            },
            _ => return None,
        };
        Some(json!({"type": typ, "object": self.present(&ch.obj)}))
    }

    /// An object as this watch sends it: as served, or as a one-row Table.
    fn present(&self, obj: &Value) -> Value {
        let o = Store::present(&self.info, obj);
        match &self.table {
            Some(p) => p.table(&o, table::now()),
            None => o,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {
            "kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta}})
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

struct WatchGuard(Arc<Shared>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn sleep_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn start_watch(sh: Arc<Shared>, w: WatchReq) -> Response {
    let mut close = sh.close_watches.subscribe();
    close.mark_unchanged();
    let mut initial: Vec<Bytes> = Vec::new();
    let mut ended = false;
    let (mut rx, mut last_rv) = {
        let store = sh.store();
        let cur = store.rv();
        let rx = store.subscribe();
        match w.rv {
            Some(n) if !w.send_initial => match store.changes_since(n) {
                Some(chs) => {
                    initial.extend(chs.iter().filter_map(|c| w.event_for(c)).map(|e| line(&e)));
                    (rx, cur.max(n))
                }
                None => {
                    let err = ApiError::expired(format!(
                        "too old resource version: {n} ({})",
                        store.compacted() + 1
                    ));
                    initial.push(line(&json!({"type": "ERROR", "object": err.to_status()})));
                    ended = true;
                    (rx, cur)
                }
            },
            _ => {
                for s in store.list(&w.info, w.ns.as_deref()) {
                    if w.matches(&s.obj) {
                        let ev = json!({"type": "ADDED", "object": w.present(&s.obj)});
                        initial.push(line(&ev));
                    }
                }
                if w.send_initial && w.bookmarks {
                    initial.push(line(&w.bookmark(cur, true)));
                }
                (rx, cur)
            }
        }
    };
    sh.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = WatchGuard(sh.clone());
    let (tx, body_rx) = mpsc::channel::<Bytes>(256);
    let interval = sh.bookmark_interval;
    tokio::spawn(async move {
        let _guard = guard;
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        if ended {
            return;
        }
        let deadline = w
            .timeout
            .and_then(|t| tokio::time::Instant::now().checked_add(t));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                _ = close.changed() => break,
                _ = sleep_opt(deadline) => break,
                _ = tx.closed() => break,
                _ = ticker.tick(), if w.bookmarks => {
                    if tx.send(line(&w.bookmark(last_rv, false))).await.is_err() {
                        break;
                    }
                }
                r = rx.recv() => match r {
                    Ok(ch) => {
                        if ch.rv <= last_rv {
                            continue;
                        }
                        last_rv = ch.rv;
                        if let Some(ev) = w.event_for(&ch) {
                            if tx.send(line(&ev)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
    let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
