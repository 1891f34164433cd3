//! Errors: [`ApiError`] is what a request gets back (a `metav1.Status`), [`KubeApiError`] is
//! what the handle's own methods return.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A request failure, answered as a `metav1.Status` JSON object with `code` and `reason`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code (also `Status.code`).
    pub code: u16,
    /// `Status.reason`, e.g. `NotFound`, `AlreadyExists`, `Conflict`, `Expired`.
    pub reason: String,
    /// Human-readable `Status.message`.
    pub message: String,
    /// `Status.details` (name, group, kind, causes), when known.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with the given code, reason and message and no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        self.details = Some(Value::Object(d));
        self
    }

    /// 404 NotFound for `plural[.group] "name"`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    /// 404 NotFound for a path that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        )
        .with_details(group, plural, name)
    }

    /// 409 Conflict for a stale `resourceVersion` (the real API server's message).
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// 410 Expired: the requested resourceVersion is older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 Invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 422 Invalid for an object that breaks its schema: `Kind.group "name" is invalid: ...`
    /// with one `details.causes` entry (`reason`, `message`, `field`) per field error, as
    /// the apiserver's `NewInvalid` builds it.
    pub fn invalid_fields(
        group: &str,
        kind: &str,
        name: &str,
        errors: &[wvo_schema::validate::FieldError],
    ) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(
                |e| json!({"reason": e.kind.cause_reason(), "message": e.body(), "field": e.field}),
            )
            .collect();
        let mut e = Self::new(
            422,
            "Invalid",
            format!(
                "{qualified_kind} {} is invalid: {}",
                json!(name),
                wvo_schema::validate::aggregate(errors)
            ),
        )
        .with_details(group, kind, name);
        if let Some(d) = e.details.as_mut().and_then(Value::as_object_mut) {
            d.insert("causes".into(), Value::Array(causes));
        }
        e
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method ({method}) on the requested resource ({path})"),
        )
    }

    /// An injected failure with an arbitrary code (reason chosen from the code).
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        let message = if code == 409 {
            "Operation cannot be fulfilled: the object has been modified; please apply your \
             changes to the latest version and try again (injected)"
                .to_string()
        } else {
            format!("injected failure {code}")
        };
        Self::new(code, reason, message)
    }

    /// The `metav1.Status` JSON object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(d), Some(obj)) = (&self.details, s.as_object_mut()) {
            obj.insert("details".into(), d.clone());
        }
        s
    }
}

/// `plural` for the core group, `plural.group` otherwise (how the API server names resources).
pub(crate) fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_status().to_string(),
        )
            .into_response()
    }
}

/// Errors of [`KubeApiHandle`](super::KubeApiHandle) methods (not of requests).
#[derive(Debug, thiserror::Error)]
pub enum KubeApiError {
    /// The listening socket could not be opened.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server URL did not parse as a URI.
    #[error("server url {url}: {message}")]
    Url {
        /// The URL.
        url: String,
        /// Why it did not parse.
        message: String,
    },
    /// A user name given to `client_as` cannot be sent as a bearer token.
    #[error("user {user:?} cannot be sent as a bearer token")]
    User {
        /// The user name.
        user: String,
    },
    /// The kube client could not be built.
    #[error("kube client: {0}")]
    Client(#[source] kube::Error),
    /// The generated kubeconfig could not be loaded by kube.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// An object given to an admin method could not be serialized.
    #[error("serialize object: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The store refused an admin operation.
    #[error("{0}")]
    Api(#[from] ApiError),
}
