//! What `kubectl logs` and `kubectl auth can-i` need from the emulator: the `pods/log`
//! subresource (plain text; no container runs here, so the lines describe the emulated
//! container) and `selfsubjectaccessreviews` (authorization.k8s.io/v1, create only),
//! decided for the requesting user by the RBAC evaluator of [`super::rbac`].

use super::error::ApiError;
use super::rbac::{self, TokenUser, AUTHENTICATED_GROUP};
use super::store::{ResourceInfo, Store};
use serde_json::{json, Value};
use std::collections::HashMap;

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// The body of `GET .../pods/{name}/log`: a few lines about the emulated container.
/// Query: `container` (required when the Pod has several, as on a real server),
/// `tailLines` (the last N lines), `timestamps` (each line prefixed with the container's
/// start time). A Pod whose container is not running answers 400 like the kubelet's
/// "is waiting to start".
pub fn pod_log(
    pods: &ResourceInfo,
    store: &Store,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let pod = store.get(pods, ns, name)?;
    let containers: Vec<&Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) => containers
            .iter()
            .find(|x| s(x, "/name") == c.as_str())
            .copied()
            .ok_or_else(|| {
                ApiError::bad_request(format!("container {c} is not valid for pod {name}"))
            })?,
        None => match containers.as_slice() {
            [only] => *only,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        },
    };
    let cname = s(container, "/name");
    let started = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|st| s(st, "/name") == cname))
        .map(|st| s(st, "/state/running/startedAt").to_string())
        .filter(|t| !t.is_empty());
    let Some(started) = started else {
        return Err(ApiError::bad_request(format!(
            "container {cname:?} in pod {name:?} is waiting to start: ContainerCreating"
        )));
    };
    let words = |p: &str| -> String {
        container
            .pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut lines = vec![
        format!("wvo emulator: container {cname} of pod {ns}/{name} is emulated (no process runs)"),
        format!("image: {}", s(container, "/image")),
        format!("command: {}", words("/command")),
        format!("args: {}", words("/args")),
        format!("node: {}", s(&pod, "/spec/nodeName")),
        format!("started: {started}"),
    ];
    if let Some(n) = q.get("tailLines").filter(|n| !n.is_empty()) {
        let n: usize = n
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid tailLines {n:?}")))?;
        lines = lines.split_off(lines.len().saturating_sub(n));
    }
    let stamp = q.get("timestamps").is_some_and(|t| t == "true");
    Ok(lines
        .into_iter()
        .map(|l| {
            if stamp {
                format!("{started} {l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect())
}

/// Who a request is, from its `Authorization: Bearer` token: the token table's user (with
/// its groups) when the token is there, else a user named by the token (the emulator's
/// convention, see `client_as`); `None` without a token.
pub fn requester(
    token: Option<&str>,
    table: impl FnOnce(&str) -> Option<TokenUser>,
) -> Option<(String, Vec<String>)> {
    let token = token.filter(|t| !t.is_empty())?;
    let (user, mut groups) = match table(token) {
        Some(u) => (u.username, u.groups),
        None => (token.to_string(), Vec::new()),
    };
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    Some((user, groups))
}

/// The user a request acts as with `Impersonate-User: user` (and `Impersonate-Group`
/// headers): allowed to the credential-less user (who may do everything here) and to a
/// token user whom RBAC grants `impersonate` on that user (`users`, core group), else 403
/// like the API server. The impersonated user is in the given groups plus
/// `system:authenticated`.
pub fn impersonate(
    store: &Store,
    requester: Option<(String, Vec<String>)>,
    user: &str,
    mut groups: Vec<String>,
) -> Result<(String, Vec<String>), ApiError> {
    if let Some((me, my_groups)) = requester {
        let attrs = rbac::Attributes::Resource {
            verb: "impersonate".into(),
            group: String::new(),
            resource: "users".into(),
            subresource: String::new(),
            namespace: String::new(),
            name: user.into(),
        };
        if rbac::authorize(store, &me, &my_groups, &attrs).is_none() {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("users {user:?} is forbidden: User {me:?} cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
            ));
        }
    }
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.into());
    }
    Ok((user.to_string(), groups))
}

/// The body of a created SelfSubjectAccessReview for `requester`: the RBAC evaluator's
/// decision for a user with a token; a request without one is the kubeconfig's
/// credential-less user, whom the emulator lets do everything (nothing is enforced), so it
/// is allowed.
pub fn self_subject_access_review(
    store: &Store,
    body: &Value,
    requester: Option<(String, Vec<String>)>,
) -> Result<Value, ApiError> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let status = match requester {
        None => json!({
            "allowed": true,
            "reason": "the wvo emulator lets requests without a bearer token do everything",
        }),
        Some((user, groups)) => {
            let mut sar_spec = spec.clone();
            if let Some(o) = sar_spec.as_object_mut() {
                o.insert("user".into(), json!(user));
                o.insert("groups".into(), json!(groups));
            }
            let review = rbac::subject_access_review(store, &json!({"spec": sar_spec}))?;
            review
                .get("status")
                .cloned()
                .unwrap_or(json!({"allowed": false}))
        }
    };
    Ok(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_from_token_table_or_token_name() {
        assert_eq!(requester(None, |_| None), None);
        assert_eq!(
            requester(Some("alice"), |_| None),
            Some(("alice".into(), vec![AUTHENTICATED_GROUP.to_string()]))
        );
        let r = requester(Some("t0k"), |_| {
            Some(TokenUser::new("bob").with_groups(&["team"]))
        });
        assert_eq!(
            r,
            Some((
                "bob".into(),
                vec!["team".into(), AUTHENTICATED_GROUP.into()]
            ))
        );
    }
}
