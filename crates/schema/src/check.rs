//! Install-time checks of a CRD schema: what the apiserver verifies when a
//! CustomResourceDefinition is created, as far as it matters to wvo's CRD.
//!
//! ```text
//!  CRD (JSON) ─► every spec.versions[i].schema.openAPIV3Schema
//!                 ├─ structural: a type on every node, one items schema, no $ref/uniqueItems/…,
//!                 │              metadata restrictions, nullable/default (structural.rs)
//!                 ├─ formats:    the apiserver's known formats per type (warning otherwise)
//!                 ├─ list types: atomic/set/map, map keys scalar and required/defaulted
//!                 └─ CEL rules:  parse, estimated cost per rule × cardinality and per CRD (cost.rs)
//!  ─► Vec<Violation> (empty: a real apiserver installs it without a refusal or a warning)
//! ```
//!
//! The cost estimate follows the apiserver's approach (k8s.io/apiextensions-apiserver
//! `validation.go` and `schema/cel`, cel-go's static cost estimator) and is conservative: it
//! never estimates less than the apiserver would, so a rule this module accepts installs.

mod cost;
mod structural;

pub use cost::{
    rule_costs, RuleCost, MAX_REQUEST_SIZE_BYTES, STATIC_ESTIMATED_COST_LIMIT,
    STATIC_ESTIMATED_CRD_COST_LIMIT,
};

use serde_json::Value;

/// What the apiserver does about a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The CRD is refused (`CustomResourceDefinition.apiextensions.k8s.io "…" is invalid`).
    Refused,
    /// The CRD installs, with a warning (the setting is ignored, e.g. an unknown format).
    Warning,
}

/// Which rule a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A node has no `type` (and is neither int-or-string nor preserve-unknown-fields), or
    /// the root is not an object.
    MissingType,
    /// `type` is not one of the OpenAPI v3 types the apiserver accepts.
    UnsupportedType,
    /// A keyword the apiserver forbids in CRD schemas (`$ref`, `uniqueItems: true`,
    /// `additionalItems`, `patternProperties`, `definitions`, `dependencies`, `id`, an
    /// `items` array, `type: null`, `x-kubernetes-preserve-unknown-fields: false`).
    ForbiddenKeyword,
    /// `properties` together with an `additionalProperties` schema.
    PropertiesWithAdditionalProperties,
    /// The root `metadata` restricts more than `name` and `generateName`.
    MetadataRestricted,
    /// A value-validation junctor (`allOf`, `anyOf`, `oneOf`, `not`) holds a structural
    /// keyword (`type`, `default`, `nullable`, `description`, `additionalProperties`, an
    /// `x-kubernetes-*` extension).
    StructuralInJunctor,
    /// A `default` that does not fit its node (wrong type, `null` without `nullable`,
    /// under the root `metadata`).
    BadDefault,
    /// A `format` the apiserver does not know for the node's type: ignored, with a warning.
    UnknownFormat,
    /// A bad `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` or
    /// `x-kubernetes-map-type`.
    ListType,
    /// A bad `x-kubernetes-validations` entry (empty rule, bad message, unknown reason) or a
    /// rule that does not parse.
    BadRule,
    /// A rule's estimated cost (times the cardinality of its node) is over
    /// [`STATIC_ESTIMATED_COST_LIMIT`].
    RuleCostOverBudget,
    /// The rules of one version together are over [`STATIC_ESTIMATED_CRD_COST_LIMIT`].
    CrdCostOverBudget,
    /// A rule calls a function whose cost this estimator does not model, so the estimate
    /// cannot be trusted to be conservative.
    CostNotModelled,
    /// A key the CRD schema type (`JSONSchemaProps`) does not have: dropped by the
    /// apiserver, with a warning.
    UnknownKeyword,
}

impl ViolationKind {
    /// What the apiserver does about it.
    pub fn severity(self) -> Severity {
        match self {
            Self::UnknownFormat | Self::UnknownKeyword | Self::CostNotModelled => Severity::Warning,
            _ => Severity::Refused,
        }
    }
}

/// One thing a real apiserver would refuse or warn about in a CRD.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Violation {
    /// Which rule.
    pub kind: ViolationKind,
    /// Field path in the CRD, apiserver style, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule`.
    pub path: String,
    /// Apiserver-like message (`Required value: …`, `Forbidden: …`).
    pub message: String,
}

impl Violation {
    pub(crate) fn new(
        kind: ViolationKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }

    /// What the apiserver does about it.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

/// Checks every version's `openAPIV3Schema` of `crd` (a CustomResourceDefinition as JSON)
/// against the apiserver's install rules. Empty: no refusal and no warning.
pub fn check_crd(crd: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) else {
        out.push(Violation::new(
            ViolationKind::MissingType,
            "spec.versions",
            "Required value: a CRD needs spec.versions",
        ));
        return out;
    };
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => out.extend(check_schema(schema, &path)),
            None => out.push(Violation::new(
                ViolationKind::MissingType,
                path,
                "Required value: schemas are required",
            )),
        }
    }
    out
}

/// Checks one `openAPIV3Schema` (the root of a version's schema); `path` names it in the
/// violations.
pub fn check_schema(schema: &Value, path: &str) -> Vec<Violation> {
    let mut out = structural::check(schema, path);
    // The apiserver skips CEL when the schema is not structural (its types are unknown).
    if out.iter().all(|v| v.severity() == Severity::Warning) {
        out.extend(cost::check(schema, path));
    }
    out
}

#[cfg(test)]
mod tests;
