//! Authentication and authorization of the status API, the way kube-rbac-proxy does it: the
//! caller's bearer token is checked with a TokenReview (authentication.k8s.io/v1), and the
//! user it names is authorized with a SubjectAccessReview (authorization.k8s.io/v1) on the
//! request's path and verb as a non-resource URL (`get` for GET and HEAD, `create` for POST).
//!
//! | answer | when |
//! |---|---|
//! | 401 | no `Authorization: Bearer` header, or the API server does not accept the token |
//! | 403 | the user may not use the path (no RBAC rule grants the `nonResourceURLs`) |
//! | 503 | the API server cannot be asked (unreachable, too slow, or refuses the controller's review): fail closed |
//!
//! The probes `/healthz` and `/readyz` and the dashboard page `/` (constant HTML, no data;
//! its script sends the token the user gives it) are always open. Errors are JSON
//! `{"error": "<one line>"}`.
//!
//! Tenant scoping: every authorized request carries an [`Access`]; the read endpoints ask it
//! which namespaces the caller may see ([`Access::visible`]): all of them when the caller may
//! `get` `variantautoscalings` (wvo.dev) cluster-wide, else those where a SubjectAccessReview
//! allows it (see [`crate::scope`]).
//!
//! Reviews are cached for [`KubeAuthConfig::cache_ttl`] in bounded caches
//! ([`KubeAuthConfig::cache_capacity`] entries each) keyed by a SHA-256 digest: the token
//! itself is kept only for the TokenReview call and never logged or put in an answer.

use crate::scope::Visible;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Paths answered without authentication: the kubelet's probes, and the dashboard page
/// (a constant HTML and script carrying no data: a browser cannot add a header to a page
/// load, so the page asks for a token and sends it with its own API calls).
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/"];

/// API group of the VariantAutoscaling resource (tenant scoping asks about it).
pub const VA_GROUP: &str = "wvo.dev";
/// Plural of the VariantAutoscaling resource.
pub const VA_RESOURCE: &str = "variantautoscalings";

/// How the status API authenticates callers (`wvo run --api-auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Nobody is authenticated: every caller sees everything (loopback only, by default).
    None,
    /// Bearer tokens checked with TokenReview and SubjectAccessReview.
    Kube,
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "kube" => Ok(Self::Kube),
            other => Err(format!(
                "--api-auth: unknown mode {other:?}; use `kube` (TokenReview + SubjectAccessReview) or `none`"
            )),
        }
    }
}

/// The mode in force for `listen`: `requested` if given, else [`AuthMode::Kube`] for a
/// non-loopback address and [`AuthMode::None`] for loopback. The second value is a warning
/// to log loudly when authentication is turned off on an address other hosts can reach.
pub fn effective_mode(
    requested: Option<AuthMode>,
    listen: &SocketAddr,
) -> (AuthMode, Option<String>) {
    let loopback = listen.ip().is_loopback();
    match requested {
        Some(AuthMode::None) if !loopback => (
            AuthMode::None,
            Some(format!(
                "--api-auth=none on {listen}, which is not loopback: anyone who can reach it reads every tenant's models, SLOs and costs and can run what-if plans; use --api-auth=kube or --listen 127.0.0.1:PORT"
            )),
        ),
        Some(mode) => (mode, None),
        None if loopback => (AuthMode::None, None),
        None => (AuthMode::Kube, None),
    }
}

/// Settings of [`AuthMode::Kube`].
#[derive(Clone, Debug)]
pub struct KubeAuthConfig {
    /// Audiences a token must be valid for (TokenReview `spec.audiences`); empty: the API
    /// server's own.
    pub audiences: Vec<String>,
    /// How long a review's answer is reused.
    pub cache_ttl: Duration,
    /// Most answers kept per cache (tokens; URL decisions; namespace decisions).
    pub cache_capacity: usize,
    /// Deadline of one review call to the API server.
    pub review_timeout: Duration,
}

/// Default of [`KubeAuthConfig::cache_ttl`].
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default of [`KubeAuthConfig::cache_capacity`].
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;
/// Default of [`KubeAuthConfig::review_timeout`].
pub const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for KubeAuthConfig {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            review_timeout: DEFAULT_REVIEW_TIMEOUT,
        }
    }
}

/// Why a review could not be made: the request is refused with 503 (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The API server did not answer in time.
    #[error("the Kubernetes API did not answer the {review} within {seconds} s")]
    Timeout {
        /// `TokenReview` or `SubjectAccessReview`.
        review: &'static str,
        /// The deadline, s.
        seconds: u64,
    },
    /// The API server could not be reached or answered with an error.
    #[error("the Kubernetes API cannot be asked for a {review}: {reason}")]
    Unavailable {
        /// `TokenReview` or `SubjectAccessReview`.
        review: &'static str,
        /// What the client saw (no token in it).
        reason: String,
    },
    /// The API server refused the controller's own review (its RBAC lacks the grant).
    #[error("the Kubernetes API refused the controller's {review} ({code}): check the controller's own credentials and grant its ServiceAccount `create` on {resource} (see deploy/base/rbac.yaml)")]
    Forbidden {
        /// `TokenReview` or `SubjectAccessReview`.
        review: &'static str,
        /// HTTP code of the refusal.
        code: u16,
        /// The resource to grant, e.g. `tokenreviews.authentication.k8s.io`.
        resource: &'static str,
    },
}

/// Who a token authenticated as (from a TokenReview).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub username: String,
    /// User UID, if any.
    pub uid: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes the authenticator gave.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A small cache with a time to live and a bound on entries, keyed by SHA-256 digests.
struct TtlCache<V> {
    entries: Mutex<HashMap<[u8; 32], (Instant, V)>>,
    ttl: Duration,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &[u8; 32]) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, v)| v.clone())
    }

    fn insert(&self, key: [u8; 32], value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop the one closest to expiry.
                if let Some(oldest) = entries.iter().min_by_key(|(_, (e, _))| *e).map(|(k, _)| *k) {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (now + self.ttl, value));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// SHA-256 of the parts, each length-prefixed (so ("ab","c") and ("a","bc") differ).
fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_le_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn user_key(user: &UserInfo) -> Vec<u8> {
    let mut k = Vec::new();
    let mut push = |s: &str| {
        k.extend_from_slice(&(s.len() as u64).to_le_bytes());
        k.extend_from_slice(s.as_bytes());
    };
    push(&user.username);
    push(user.uid.as_deref().unwrap_or_default());
    for g in &user.groups {
        push(g);
    }
    for (key, values) in &user.extra {
        push(key);
        for v in values {
            push(v);
        }
    }
    k
}

/// Asks the API server who a token is and what its user may do; caches the answers.
pub struct Reviewer {
    client: kube::Client,
    config: KubeAuthConfig,
    /// Token digest → the user, or None for a token the API server refused.
    tokens: TtlCache<Option<Arc<UserInfo>>>,
    /// (user, verb, path) digest → allowed.
    urls: TtlCache<bool>,
    /// (user, namespace) digest → may get VAs there ("" for every namespace).
    namespaces: TtlCache<bool>,
}

impl std::fmt::Debug for Reviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reviewer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Reviewer {
    /// A reviewer asking through `client` (the controller's own identity).
    pub fn new(client: kube::Client, config: KubeAuthConfig) -> Self {
        let ttl = config.cache_ttl;
        let cap = config.cache_capacity;
        Self {
            client,
            config,
            tokens: TtlCache::new(ttl, cap),
            urls: TtlCache::new(ttl, cap),
            namespaces: TtlCache::new(ttl, cap),
        }
    }

    async fn call<T>(
        &self,
        review: &'static str,
        resource: &'static str,
        fut: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ReviewError> {
        let seconds = self.config.review_timeout.as_secs().max(1);
        match tokio::time::timeout(self.config.review_timeout, fut).await {
            Err(_) => Err(ReviewError::Timeout { review, seconds }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) if s.code == 401 || s.code == 403 => {
                Err(ReviewError::Forbidden {
                    review,
                    code: s.code,
                    resource,
                })
            }
            Ok(Err(e)) => Err(ReviewError::Unavailable {
                review,
                reason: e.to_string(),
            }),
        }
    }

    /// Who `token` is, or None when the API server does not accept it (for the configured
    /// audiences).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Arc<UserInfo>>, ReviewError> {
        let key = digest(&[b"token", token.as_bytes()]);
        if let Some(hit) = self.tokens.get(&key) {
            return Ok(hit);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: (!self.config.audiences.is_empty())
                    .then(|| self.config.audiences.clone()),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = self
            .call(
                "TokenReview",
                "tokenreviews.authentication.k8s.io",
                api.create(&PostParams::default(), &review),
            )
            .await;
        drop(review);
        // The answer echoes the spec (the token): only its status is kept.
        let status = answer?.status.unwrap_or_default();
        let audiences_ok = self.config.audiences.is_empty()
            || status
                .audiences
                .iter()
                .flatten()
                .any(|a| self.config.audiences.contains(a));
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) if audiences_ok => u.username.map(|username| {
                Arc::new(UserInfo {
                    username,
                    uid: u.uid,
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default(),
                })
            }),
            _ => None,
        };
        self.tokens.insert(key, user.clone());
        Ok(user)
    }

    async fn review(
        &self,
        user: &UserInfo,
        resource: Option<ResourceAttributes>,
        non_resource: Option<NonResourceAttributes>,
    ) -> Result<bool, ReviewError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: resource,
                non_resource_attributes: non_resource,
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = self
            .call(
                "SubjectAccessReview",
                "subjectaccessreviews.authorization.k8s.io",
                api.create(&PostParams::default(), &review),
            )
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    /// Whether `user` may `verb` the URL `path` (a non-resource SubjectAccessReview).
    pub async fn allowed_url(
        &self,
        user: &UserInfo,
        verb: &str,
        path: &str,
    ) -> Result<bool, ReviewError> {
        let key = digest(&[b"url", &user_key(user), verb.as_bytes(), path.as_bytes()]);
        if let Some(hit) = self.urls.get(&key) {
            return Ok(hit);
        }
        let allowed = self
            .review(
                user,
                None,
                Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some(verb.to_string()),
                }),
            )
            .await?;
        self.urls.insert(key, allowed);
        Ok(allowed)
    }

    /// Whether `user` may `get` VariantAutoscalings in `namespace` ("": in every namespace).
    pub async fn may_get_vas(&self, user: &UserInfo, namespace: &str) -> Result<bool, ReviewError> {
        let key = digest(&[b"ns", &user_key(user), namespace.as_bytes()]);
        if let Some(hit) = self.namespaces.get(&key) {
            return Ok(hit);
        }
        let allowed = self
            .review(
                user,
                Some(ResourceAttributes {
                    group: Some(VA_GROUP.into()),
                    resource: Some(VA_RESOURCE.into()),
                    verb: Some("get".into()),
                    namespace: Some(namespace.to_string()),
                    ..ResourceAttributes::default()
                }),
                None,
            )
            .await?;
        self.namespaces.insert(key, allowed);
        Ok(allowed)
    }
}

/// Reviews of per-namespace access made at once for one request.
const NAMESPACE_REVIEWS_AT_ONCE: usize = 8;

/// What an authorized caller may see; put on every request by [`layer`].
#[derive(Clone, Debug)]
pub struct Access(AccessKind);

#[derive(Clone, Debug)]
enum AccessKind {
    /// No authentication (loopback, `--api-auth=none`): everything.
    Everything,
    /// An authenticated user, scoped by RBAC.
    User {
        reviewer: Arc<Reviewer>,
        user: Arc<UserInfo>,
    },
}

impl Access {
    /// Access to everything (no authentication).
    pub fn everything() -> Self {
        Self(AccessKind::Everything)
    }

    /// The authenticated user's name, if any.
    pub fn username(&self) -> Option<&str> {
        match &self.0 {
            AccessKind::Everything => None,
            AccessKind::User { user, .. } => Some(&user.username),
        }
    }

    /// Which of `namespaces` the caller may see: [`Visible::All`] without authentication or
    /// when the caller may `get` VariantAutoscalings cluster-wide, else the namespaces where
    /// a SubjectAccessReview allows it.
    pub async fn visible(
        &self,
        namespaces: impl IntoIterator<Item = String>,
    ) -> Result<Visible, ReviewError> {
        let AccessKind::User { reviewer, user } = &self.0 else {
            return Ok(Visible::All);
        };
        if reviewer.may_get_vas(user, "").await? {
            return Ok(Visible::All);
        }
        let wanted: BTreeSet<String> = namespaces.into_iter().filter(|n| !n.is_empty()).collect();
        let answers: Vec<(String, Result<bool, ReviewError>)> = futures::stream::iter(wanted)
            .map(|ns| async move {
                let allowed = reviewer.may_get_vas(user, &ns).await;
                (ns, allowed)
            })
            .buffer_unordered(NAMESPACE_REVIEWS_AT_ONCE)
            .collect()
            .await;
        let mut visible = BTreeSet::new();
        for (ns, allowed) in answers {
            if allowed? {
                visible.insert(ns);
            }
        }
        Ok(Visible::Only(visible))
    }
}

/// The authentication in front of the status API: none, or TokenReview and
/// SubjectAccessReview through a [`Reviewer`].
#[derive(Clone, Debug)]
pub struct Auth(Option<Arc<Reviewer>>);

impl Auth {
    /// No authentication: every caller gets [`Access::everything`].
    pub fn none() -> Self {
        Self(None)
    }

    /// Bearer tokens reviewed by the API server `client` talks to.
    pub fn kube(client: kube::Client, config: KubeAuthConfig) -> Self {
        Self(Some(Arc::new(Reviewer::new(client, config))))
    }

    /// The mode this is.
    pub fn mode(&self) -> AuthMode {
        if self.0.is_some() {
            AuthMode::Kube
        } else {
            AuthMode::None
        }
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"wvo\""),
        );
    }
    response
}

/// The RBAC verb of an HTTP method (as the API server maps it for non-resource URLs).
pub fn verb_of(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

fn bearer_token(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The middleware: authenticates and authorizes each request (probes excepted) and puts its
/// [`Access`] on the request for the handlers. Use with
/// `axum::middleware::from_fn_with_state(auth, layer)`.
pub async fn layer(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let Some(reviewer) = auth.0.clone() else {
        request.extensions_mut().insert(Access::everything());
        return next.run(request).await;
    };
    if OPEN_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let Some(token) = bearer_token(&request) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "authentication required: send `Authorization: Bearer <token>` with a Kubernetes token the API server accepts (e.g. `kubectl create token <serviceaccount>`)".into(),
        );
    };
    // Taken off the request at once: handlers and logs never see it.
    request.headers_mut().remove(header::AUTHORIZATION);
    let user = reviewer.authenticate(&token).await;
    drop(token);
    let user = match user {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::debug!(path = %path, "status API: token not accepted");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "invalid bearer token: the Kubernetes API did not authenticate it (expired, revoked, or not valid for this audience)".into(),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "status API: cannot authenticate (refusing requests)");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot authenticate the request: {e}"),
            );
        }
    };
    let verb = verb_of(request.method());
    match reviewer.allowed_url(&user, verb, &path).await {
        Ok(true) => {
            tracing::debug!(user = %user.username, verb, path = %path, "status API: allowed");
            request
                .extensions_mut()
                .insert(Access(AccessKind::User { reviewer, user }));
            next.run(request).await
        }
        Ok(false) => {
            tracing::debug!(user = %user.username, verb, path = %path, "status API: forbidden");
            refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "user {:?} may not {verb} {path}: grant it with a ClusterRole rule `nonResourceURLs: [\"{path}\"], verbs: [\"{verb}\"]` (see docs/controller.md, Securing the status API)",
                    user.username
                ),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "status API: cannot authorize (refusing requests)");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot authorize the request: {e}"),
            )
        }
    }
}

/// Adds the bearer-token scheme to an OpenAPI document: every operation but the probes
/// requires it and may answer 401, 403 and 503 (see the module doc).
pub fn describe(doc: &mut serde_json::Value) {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    doc["components"]["securitySchemes"]["bearerAuth"] = json!({
        "type": "http",
        "scheme": "bearer",
        "description": "A Kubernetes token (e.g. `kubectl create token <serviceaccount>`), checked with a TokenReview; the path is authorized with a SubjectAccessReview (nonResourceURLs, verb get or create). Required unless wvo runs with --api-auth=none (the default on loopback)."
    });
    doc["security"] = json!([{ "bearerAuth": [] }]);
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let open = OPEN_PATHS.contains(&path.as_str());
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
        {
            if open {
                operation["security"] = json!([]);
                continue;
            }
            let responses = &mut operation["responses"];
            responses["401"] =
                error("No bearer token, or the Kubernetes API did not authenticate it");
            responses["403"] =
                error("The user may not use this path (or, for one model, its namespace)");
            if responses.get("503").is_none() {
                responses["503"] =
                    error("The Kubernetes API cannot review the request (fail closed)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_address_unless_given() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(effective_mode(None, &lo), (AuthMode::None, None));
        assert_eq!(effective_mode(None, &v6), (AuthMode::None, None));
        assert_eq!(effective_mode(None, &any), (AuthMode::Kube, None));
        assert_eq!(
            effective_mode(Some(AuthMode::Kube), &lo),
            (AuthMode::Kube, None)
        );
        let (mode, warning) = effective_mode(Some(AuthMode::None), &any);
        assert_eq!(mode, AuthMode::None);
        assert!(warning.is_some_and(|w| w.contains("not loopback")));
        assert!("basic".parse::<AuthMode>().is_err());
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let cache = TtlCache::new(Duration::from_secs(60), 3);
        for i in 0u8..10 {
            cache.insert(digest(&[&[i]]), i);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&digest(&[&[9]])), Some(9), "the newest is kept");
        let expired = TtlCache::new(Duration::from_nanos(1), 3);
        expired.insert(digest(&[b"a"]), 1);
        std::thread::yield_now();
        let deadline = Instant::now() + Duration::from_secs(1);
        while expired.get(&digest(&[b"a"])).is_some() {
            assert!(Instant::now() < deadline, "an entry outlived its TTL");
        }
        let off = TtlCache::new(Duration::ZERO, 3);
        off.insert(digest(&[b"a"]), 1);
        assert_eq!(off.get(&digest(&[b"a"])), None);
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]), digest(&[b"x"]));
    }

    #[test]
    fn the_openapi_document_requires_the_token_except_on_probes() {
        let doc = crate::status_api::openapi_document();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
        assert!(doc["paths"]["/api/v1/models"]["get"]["responses"]["401"].is_object());
        assert!(doc["paths"]["/api/v1/whatif"]["post"]["responses"]["403"].is_object());
        assert!(doc["paths"]["/readyz"]["get"]["responses"]
            .get("401")
            .is_none());
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        let req = |v: &str| {
            axum::http::Request::builder()
                .header(header::AUTHORIZATION, v)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(bearer_token(&req("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&req("bearer  abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&req("Basic abc")), None);
        assert_eq!(bearer_token(&req("Bearer ")), None);
        assert_eq!(verb_of(&Method::POST), "create");
        assert_eq!(verb_of(&Method::GET), "get");
    }
}
