//! Authentication and authorization reviews: `tokenreviews` (authentication.k8s.io/v1)
//! answered from a token table the test configures, and `subjectaccessreviews`
//! (authorization.k8s.io/v1) answered by an RBAC evaluator over the stored Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings (rbac.authorization.k8s.io/v1).
//!
//! The evaluator follows the RBAC authorizer's rules: a ClusterRoleBinding grants its
//! ClusterRole's rules everywhere (resource requests in every namespace, cluster-scoped
//! resources and non-resource URLs); a RoleBinding grants the rules of its Role (same
//! namespace) or of a ClusterRole only for resource requests in its own namespace.
//! Not implemented: aggregated ClusterRoles (`aggregationRule`), the default roles and
//! bindings of a real cluster (`cluster-admin`, `system:discovery`, ...), `extra` and
//! `uid` matching, field and label selectors in resource attributes.

use super::error::ApiError;
use super::store::{ResourceInfo, Store};
use serde_json::{json, Value};

/// The API server's own audience: what a token without explicit audiences is bound to,
/// and what a TokenReview without `spec.audiences` checks against.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Group every authenticated user belongs to (added by the API server's authenticator).
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Who a bearer token authenticates as, in the emulator's token table
/// ([`KubeApiHandle::add_token`](super::KubeApiHandle::add_token)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUser {
    /// User name, e.g. `alice` or `system:serviceaccount:team-a:reader`.
    pub username: String,
    /// Groups besides [`AUTHENTICATED_GROUP`], which every review adds.
    pub groups: Vec<String>,
    /// Audiences the token is valid for; empty means only [`API_AUDIENCE`].
    pub audiences: Vec<String>,
}

impl TokenUser {
    /// A user with no groups, valid for the API server's audience.
    pub fn new(username: &str) -> Self {
        Self {
            username: username.into(),
            groups: Vec::new(),
            audiences: Vec::new(),
        }
    }

    /// The same user in `groups`.
    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// The same user with a token bound to `audiences`.
    pub fn with_audiences(mut self, audiences: &[&str]) -> Self {
        self.audiences = audiences.iter().map(|a| a.to_string()).collect();
        self
    }
}

/// The body of a created TokenReview for request `body`, given the token table lookup. Like
/// the real API server, it echoes the spec (token included: clients' types require it).
pub(crate) fn token_review(
    body: &Value,
    lookup: impl FnOnce(&str) -> Option<TokenUser>,
) -> Result<Value, ApiError> {
    let token = body
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "TokenReview.authentication.k8s.io \"\" is invalid: spec.token: Required value: token is required",
        ));
    }
    let requested: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let asked = if requested.is_empty() {
        vec![API_AUDIENCE.to_string()]
    } else {
        requested.clone()
    };
    let spec = json!({ "token": token, "audiences": requested });
    let review = |status: Value| {
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": spec,
            "status": status,
        })
    };
    let Some(user) = lookup(token) else {
        return Ok(review(json!({
            "authenticated": false,
            "error": "invalid bearer token",
        })));
    };
    let bound = if user.audiences.is_empty() {
        vec![API_AUDIENCE.to_string()]
    } else {
        user.audiences.clone()
    };
    let matched: Vec<String> = asked
        .iter()
        .filter(|a| bound.contains(a))
        .cloned()
        .collect();
    if matched.is_empty() {
        return Ok(review(json!({
            "authenticated": false,
            "error": format!(
                "token audiences {bound:?} are invalid for the target audiences {asked:?}"
            ),
        })));
    }
    let mut groups = user.groups.clone();
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    Ok(review(json!({
        "authenticated": true,
        "user": { "username": user.username, "groups": groups },
        "audiences": matched,
    })))
}

/// What a SubjectAccessReview asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attributes {
    /// A resource request.
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    /// A non-resource request (a URL path).
    NonResource { verb: String, path: String },
}

/// The body of a created SubjectAccessReview for request `body`, decided by the RBAC rules
/// in `store`.
pub(crate) fn subject_access_review(store: &Store, body: &Value) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let user = s(&spec, "user");
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(ApiError::invalid(
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    let attrs = match (spec.get("resourceAttributes"), spec.get("nonResourceAttributes")) {
        (Some(r), None) => Attributes::Resource {
            verb: s(r, "verb"),
            group: s(r, "group"),
            resource: s(r, "resource"),
            subresource: s(r, "subresource"),
            namespace: s(r, "namespace"),
            name: s(r, "name"),
        },
        (None, Some(n)) => Attributes::NonResource {
            verb: s(n, "verb"),
            path: s(n, "path"),
        },
        _ => {
            return Err(ApiError::invalid(
                "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ))
        }
    };
    let decision = authorize(store, &user, &groups, &attrs);
    let mut status = json!({ "allowed": decision.is_some() });
    if let Some(reason) = decision {
        status["reason"] = json!(reason);
    }
    let mut out = body.clone();
    if let Some(o) = out.as_object_mut() {
        o.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
        o.insert("kind".into(), json!("SubjectAccessReview"));
        o.entry("metadata").or_insert_with(|| json!({}));
        o.insert("status".into(), status);
    }
    Ok(out)
}

fn rbac_info(store: &Store, plural: &str) -> Option<ResourceInfo> {
    store.info("rbac.authorization.k8s.io", "v1", plural)
}

/// Why RBAC allows `attrs` to `user` in `groups` (the binding and role), or None when no
/// rule does.
pub(crate) fn authorize(
    store: &Store,
    user: &str,
    groups: &[String],
    attrs: &Attributes,
) -> Option<String> {
    let subject_matches = |binding: &Value| {
        let binding_ns = binding
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        binding
            .get("subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|s| {
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                match s.get("kind").and_then(Value::as_str) {
                    Some("User") => name == user,
                    Some("Group") => groups.iter().any(|g| g == name),
                    Some("ServiceAccount") => {
                        let ns = s
                            .get("namespace")
                            .and_then(Value::as_str)
                            .filter(|n| !n.is_empty())
                            .unwrap_or(binding_ns);
                        user == format!("system:serviceaccount:{ns}:{name}")
                    }
                    _ => false,
                }
            })
    };
    let role_rules = |kind: &str, ns: &str, name: &str| -> Vec<Value> {
        let (plural, ns) = match kind {
            "ClusterRole" => ("clusterroles", ""),
            "Role" => ("roles", ns),
            _ => return Vec::new(),
        };
        rbac_info(store, plural)
            .and_then(|info| store.get(&info, ns, name).ok())
            .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    };
    let binding_grants = |binding: &Value, ns: &str, kind_of_binding: &str| -> Option<String> {
        if !subject_matches(binding) {
            return None;
        }
        let role_kind = binding
            .pointer("/roleRef/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role_name = binding
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let binding_name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        role_rules(role_kind, ns, role_name)
            .iter()
            .any(|rule| rule_allows(rule, attrs))
            .then(|| {
                let at = if ns.is_empty() {
                    String::new()
                } else {
                    format!(" in namespace \"{ns}\"")
                };
                format!(
                    "RBAC: allowed by {kind_of_binding} \"{binding_name}\" of {role_kind} \"{role_name}\" to {user:?}{at}"
                )
            })
    };
    if let Some(info) = rbac_info(store, "clusterrolebindings") {
        for b in store.list(&info, None) {
            if b.obj.pointer("/roleRef/kind").and_then(Value::as_str) != Some("ClusterRole") {
                continue;
            }
            if let Some(why) = binding_grants(&b.obj, "", "ClusterRoleBinding") {
                return Some(why);
            }
        }
    }
    // RoleBindings count only for resource requests in their own namespace.
    let Attributes::Resource { namespace, .. } = attrs else {
        return None;
    };
    if namespace.is_empty() {
        return None;
    }
    let info = rbac_info(store, "rolebindings")?;
    store
        .list(&info, Some(namespace))
        .iter()
        .find_map(|b| binding_grants(&b.obj, namespace, "RoleBinding"))
}

fn strings<'a>(rule: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Whether one PolicyRule allows `attrs`, as the RBAC authorizer matches it.
pub(crate) fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verb_ok = |verb: &str| strings(rule, "verbs").any(|v| v == "*" || v == verb);
    match attrs {
        Attributes::NonResource { verb, path } => {
            verb_ok(verb)
                && strings(rule, "nonResourceURLs").any(|u| {
                    u == "*"
                        || u == path
                        || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                })
        }
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resource_ok = strings(rule, "resources").any(|r| {
                r == "*"
                    || r == combined
                    || (!subresource.is_empty()
                        && r.strip_prefix("*/").is_some_and(|s| s == subresource))
            });
            let names: Vec<&str> = strings(rule, "resourceNames").collect();
            let name_ok = names.is_empty() || names.iter().any(|n| n == name);
            verb_ok(verb)
                && strings(rule, "apiGroups").any(|g| g == "*" || g == group)
                && resource_ok
                && name_ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn resource_rules_match_like_rbac() {
        let rule = json!({"apiGroups": ["apps"], "resources": ["deployments", "*/scale"], "verbs": ["get", "patch"]});
        assert!(rule_allows(
            &rule,
            &res("get", "apps", "deployments", "", "x")
        ));
        assert!(rule_allows(
            &rule,
            &res("patch", "apps", "statefulsets", "scale", "x")
        ));
        assert!(!rule_allows(
            &rule,
            &res("patch", "apps", "deployments", "status", "x")
        ));
        assert!(!rule_allows(
            &rule,
            &res("delete", "apps", "deployments", "", "x")
        ));
        assert!(!rule_allows(&rule, &res("get", "", "deployments", "", "x")));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["*"]});
        assert!(rule_allows(&named, &res("get", "", "configmaps", "", "a")));
        assert!(!rule_allows(&named, &res("get", "", "configmaps", "", "b")));
        assert!(!rule_allows(&named, &res("list", "", "configmaps", "", "")));
    }

    #[test]
    fn non_resource_rules_match_paths_and_prefixes() {
        let rule = json!({"nonResourceURLs": ["/metrics", "/api/v1/models/*"], "verbs": ["get"]});
        let nr = |verb: &str, path: &str| Attributes::NonResource {
            verb: verb.into(),
            path: path.into(),
        };
        assert!(rule_allows(&rule, &nr("get", "/metrics")));
        assert!(rule_allows(&rule, &nr("get", "/api/v1/models/a/b")));
        assert!(!rule_allows(&rule, &nr("get", "/api/v1/models")));
        assert!(!rule_allows(&rule, &nr("create", "/metrics")));
        // A resource rule grants no URL, a URL rule no resource.
        let resource_rule = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(!rule_allows(&resource_rule, &nr("get", "/metrics")));
        assert!(!rule_allows(&rule, &res("get", "", "pods", "", "")));
    }

    #[test]
    fn token_reviews_check_the_table_and_audiences() {
        let table =
            |t: &str| (t == "good").then(|| TokenUser::new("alice").with_groups(&["team-a"]));
        let r = token_review(&json!({"spec": {"token": "good"}}), table).unwrap();
        assert_eq!(r["status"]["authenticated"], true);
        assert_eq!(r["status"]["user"]["username"], "alice");
        assert_eq!(
            r["status"]["user"]["groups"],
            json!(["team-a", AUTHENTICATED_GROUP])
        );
        let r = token_review(&json!({"spec": {"token": "bad"}}), table).unwrap();
        assert_eq!(r["status"]["authenticated"], false);
        // A token for the API server is not valid for another audience.
        let r = token_review(
            &json!({"spec": {"token": "good", "audiences": ["wvo"]}}),
            table,
        )
        .unwrap();
        assert_eq!(r["status"]["authenticated"], false);
        let bound = |_: &str| Some(TokenUser::new("bob").with_audiences(&["wvo", "other"]));
        let r = token_review(
            &json!({"spec": {"token": "x", "audiences": ["wvo", "third"]}}),
            bound,
        )
        .unwrap();
        assert_eq!(r["status"]["authenticated"], true);
        assert_eq!(r["status"]["audiences"], json!(["wvo"]));
        assert!(token_review(&json!({"spec": {}}), table).is_err());
    }
}
