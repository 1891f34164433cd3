//! Request recording: every resource request the server receives, as the Kubernetes
//! authorizer sees it (user, verb, API group, resource, subresource, namespace, name), so
//! tests can check RBAC rules against what a client really did.
//!
//! The attributes are derived from the method and path the way the API server's
//! `RequestInfoFactory` does it, before routing: a request for an unknown resource or one that
//! fails (404, 409, injected faults) is recorded all the same, as it would be authorized.

use axum::http::{header, HeaderMap, Method, Uri};
use std::collections::HashMap;

/// The user of requests without an `Authorization: Bearer` header.
pub const ANONYMOUS: &str = "system:anonymous";

/// One request served by the emulator, as Kubernetes authorization attributes.
///
/// Verbs: GET of one object → `get`, GET of a collection → `list`, GET with `watch=true` →
/// `watch`, POST → `create`, PUT → `update`, PATCH → `patch`, DELETE of one object →
/// `delete`, DELETE of a collection → `deletecollection`. Empty strings stand for "none"
/// (core group, no subresource, cluster scope, no name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordedRequest {
    /// Who asked: the bearer token sent (the emulator does not authenticate; a token just
    /// names its user, see [`KubeApiHandle::client_as`](super::KubeApiHandle::client_as)),
    /// or [`ANONYMOUS`].
    pub user: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// API group: `""` for core/v1, else e.g. `apps`.
    pub api_group: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// Subresource, e.g. `scale` or `status`; `""` for none.
    pub subresource: String,
    /// Namespace; `""` for cluster-scoped requests (and all-namespace lists).
    pub namespace: String,
    /// Object name; `""` for collection requests.
    pub name: String,
}

impl RecordedRequest {
    /// `resource` or `resource/subresource`, as RBAC rules name it.
    pub fn rbac_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Namespace subresources that stay on the `namespaces` resource
/// (`/api/v1/namespaces/{name}/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// The authorization attributes of a request; `None` for non-resource requests (discovery,
/// `/version`, `/healthz`, ...), which the default `system:discovery` and
/// `system:public-info-viewer` roles grant to everyone.
pub(crate) fn attributes(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<RecordedRequest> {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let (api_group, mut parts) = match segs.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return None,
    };
    let q: HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    // The legacy `/watch/` prefix.
    if parts.first() == Some(&"watch") {
        verb = "watch".into();
        parts = &parts[1..];
    }
    let mut namespace = "";
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        namespace = parts[1];
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts = &parts[2..];
        }
    }
    let resource = parts.first().copied().unwrap_or_default();
    let mut name = parts.get(1).copied().unwrap_or_default().to_string();
    let subresource = parts.get(2).copied().unwrap_or_default();
    if name.is_empty() {
        match verb.as_str() {
            "get" => verb = "list".into(),
            "delete" => verb = "deletecollection".into(),
            _ => {}
        }
    }
    if matches!(verb.as_str(), "get" | "list")
        && q.get("watch").is_some_and(|w| w == "true" || w == "1")
    {
        verb = "watch".into();
    }
    // A list or watch of one object by `fieldSelector=metadata.name=x` is authorized on x.
    if matches!(verb.as_str(), "list" | "watch") && name.is_empty() {
        if let Some(fs) = q.get("fieldSelector") {
            let one: Vec<&str> = fs.split(',').collect();
            if let [only] = one.as_slice() {
                if let Some(n) = only
                    .strip_prefix("metadata.name==")
                    .or_else(|| only.strip_prefix("metadata.name="))
                {
                    name = n.to_string();
                }
            }
        }
    }
    let user = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(ANONYMOUS)
        .to_string();
    Some(RecordedRequest {
        user,
        verb,
        api_group: api_group.to_string(),
        resource: resource.to_string(),
        subresource: subresource.to_string(),
        namespace: namespace.to_string(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(method: Method, uri: &str) -> Option<RecordedRequest> {
        attributes(&method, &uri.parse().unwrap(), &HeaderMap::new())
    }

    fn short(r: &RecordedRequest) -> (String, String, String, String, String, String) {
        (
            r.verb.clone(),
            r.api_group.clone(),
            r.resource.clone(),
            r.subresource.clone(),
            r.namespace.clone(),
            r.name.clone(),
        )
    }

    fn t(
        v: &str,
        g: &str,
        r: &str,
        s: &str,
        ns: &str,
        n: &str,
    ) -> (String, String, String, String, String, String) {
        (v.into(), g.into(), r.into(), s.into(), ns.into(), n.into())
    }

    #[test]
    fn verbs_and_paths() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/a/pods/p",
                t("get", "", "pods", "", "a", "p"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods?labelSelector=x%3Dy",
                t("list", "", "pods", "", "a", ""),
            ),
            (
                Method::GET,
                "/api/v1/pods",
                t("list", "", "pods", "", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/nodes?watch=true&resourceVersion=3",
                t("watch", "", "nodes", "", "", ""),
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                t("get", "apps", "deployments", "scale", "a", "d"),
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                t("patch", "apps", "deployments", "scale", "a", "d"),
            ),
            (
                Method::PUT,
                "/apis/wvo.dev/v1alpha1/namespaces/a/variantautoscalings/v/status",
                t(
                    "update",
                    "wvo.dev",
                    "variantautoscalings",
                    "status",
                    "a",
                    "v",
                ),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/a/events",
                t("create", "events.k8s.io", "events", "", "a", ""),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps/c",
                t("delete", "", "configmaps", "", "a", "c"),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/configmaps",
                t("deletecollection", "", "configmaps", "", "a", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a",
                t("get", "", "namespaces", "", "a", "a"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                t("list", "", "namespaces", "", "", ""),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/a/status",
                t("update", "", "namespaces", "status", "a", "a"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/configmaps?fieldSelector=metadata.name%3Dc&watch=1",
                t("watch", "", "configmaps", "", "a", "c"),
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/a/pods",
                t("watch", "", "pods", "", "a", ""),
            ),
        ];
        for (m, uri, want) in cases {
            let got = attrs(m.clone(), uri)
                .unwrap_or_else(|| panic!("{m} {uri}: not a resource request"));
            assert_eq!(short(&got), want, "{m} {uri}");
            assert_eq!(got.user, ANONYMOUS);
        }
    }

    #[test]
    fn non_resource_requests_are_not_recorded() {
        for uri in [
            "/",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/readyz",
        ] {
            assert!(attrs(Method::GET, uri).is_none(), "{uri}");
        }
    }

    #[test]
    fn bearer_token_names_the_user() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Bearer system:serviceaccount:x:y".parse().unwrap(),
        );
        let r = attributes(&Method::GET, &"/api/v1/pods".parse().unwrap(), &h).unwrap();
        assert_eq!(r.user, "system:serviceaccount:x:y");
        assert_eq!(r.rbac_resource(), "pods");
    }
}
