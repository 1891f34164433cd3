//! Validation of a custom object against its CRD schema, the way a real apiserver does it.
//!
//! [`Schema::compile`] reads one CRD version's `openAPIV3Schema` (regexes and CEL rules
//! compiled once; a rule that does not parse is refused as the apiserver refuses the CRD).
//! [`Schema::admit`] then runs the apiserver's steps on an object being written:
//!
//! 1. decode: unknown fields are pruned (`fieldValidation=Ignore`), pruned with a warning
//!    (`Warn`, the server default) or refused (`Strict`: `strict decoding error: unknown field
//!    "spec.foo"`); nulls in non-nullable fields are dropped; `default`s are applied;
//! 2. schema: type, ranges, lengths, counts, `enum`, `pattern`, `required`,
//!    `x-kubernetes-list-type` `set`/`map` uniqueness, each as a [`FieldError`];
//! 3. CEL `x-kubernetes-validations`, with `self` (and `oldSelf` on update), only when step 2
//!    found no blocking error, as in apiextensions-apiserver.
//!
//! Errors print like the apiserver's `field.Error`:
//! `spec.minReplicas: Invalid value: -1: spec.minReplicas in body should be greater than or equal to 0`.

mod cel;
mod gofmt;
mod walk;

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

pub use cel::CEL_FUNCTIONS;

/// The `fieldValidation` query parameter: what to do with unknown (and duplicate) fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the request (400 `strict decoding error: unknown field "..."`).
    Strict,
    /// Drop the fields and warn (the apiserver's default when the parameter is absent).
    #[default]
    Warn,
    /// Drop the fields silently.
    Ignore,
}

/// A `fieldValidation` value that is none of `Strict`, `Warn`, `Ignore`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "fieldValidation: Unsupported value: {0:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
)]
pub struct UnknownFieldValidation(pub String);

impl std::str::FromStr for FieldValidation {
    type Err = UnknownFieldValidation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Strict" => Ok(Self::Strict),
            "Warn" | "" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            other => Err(UnknownFieldValidation(other.to_string())),
        }
    }
}

/// The apiserver's field error types (`k8s.io/apimachinery/pkg/util/validation/field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Invalid value`: a value that breaks a rule (range, pattern, CEL rule...).
    Invalid,
    /// `Invalid value` for a value of the wrong JSON type.
    TypeInvalid,
    /// `Required value`: a required field is missing.
    Required,
    /// `Unsupported value`: not one of the `enum` values.
    NotSupported,
    /// `Duplicate value`: a repeated item of a `set` or key of a `map` list.
    Duplicate,
    /// `Too long`: a string over `maxLength`.
    TooLong,
    /// `Too many`: a list over `maxItems` or an object over `maxProperties`.
    TooMany,
    /// `Forbidden`: a CEL rule with `reason: FieldValueForbidden`.
    Forbidden,
    /// `Internal error`: a rule that could not be evaluated at all.
    Internal,
}

impl ErrorKind {
    /// How the error type prints (`Invalid value`, `Required value`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::Required => "Required value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Forbidden => "Forbidden",
            Self::Internal => "Internal error",
        }
    }

    /// The `reason` of the `Status` cause (`FieldValueInvalid`, ...).
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::Required => "FieldValueRequired",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Forbidden => "FieldValueForbidden",
            Self::Internal => "InternalError",
        }
    }

    /// Errors after which the apiserver does not run CEL rules (type, required, enum,
    /// length and count violations).
    pub fn blocks_cel(self) -> bool {
        matches!(
            self,
            Self::NotSupported | Self::Required | Self::TooLong | Self::TooMany | Self::TypeInvalid
        )
    }
}

/// One field error, as the apiserver reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The error type.
    pub kind: ErrorKind,
    /// The field's path (`spec.variants[0].minReplicas`), `<nil>` for the whole request.
    pub field: String,
    /// The offending value; `None` when the error type does not print one.
    pub value: Option<Value>,
    /// What is wrong (may be empty).
    pub detail: String,
}

impl FieldError {
    fn new(kind: ErrorKind, field: &str, value: Option<Value>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            field: if field.is_empty() {
                "<nil>".into()
            } else {
                field.into()
            },
            value,
            detail: detail.into(),
        }
    }

    /// The error without its field (`Invalid value: -1: ...`): a `Status` cause's `message`.
    pub fn body(&self) -> String {
        let mut s = self.kind.as_str().to_string();
        let prints_value = !matches!(
            self.kind,
            ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong | ErrorKind::Internal
        );
        if let (true, Some(v)) = (prints_value, &self.value) {
            s.push_str(": ");
            s.push_str(&gofmt::go_bad_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The errors of a refused object joined like the apiserver's aggregate: the one message,
/// or `[a, b]` (duplicates removed).
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let s = e.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    match seen.len() {
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// Why [`Schema::admit`] refused an object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// `fieldValidation=Strict` and the object had fields the schema does not know (paths).
    /// The apiserver answers 400 BadRequest.
    #[error("strict decoding error: {}", unknown_list(.0))]
    UnknownFields(Vec<String>),
    /// The object breaks the schema or a CEL rule. The apiserver answers 422 Invalid.
    #[error("{}", aggregate(.0))]
    Invalid(Vec<FieldError>),
}

fn unknown_list(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| format!("unknown field {}", gofmt::go_quote(p)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an admitted object brought back: the warnings to send (`Warning: 299` headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admitted {
    /// One warning per unknown field dropped under `fieldValidation=Warn`
    /// (`unknown field "spec.foo"`).
    pub warnings: Vec<String>,
}

/// A JSON type of `type:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Ty {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "object" => Self::Object,
            "array" => Self::Array,
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Array => "array",
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
        }
    }
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// One compiled schema node.
#[derive(Debug)]
struct Node {
    ty: Option<Ty>,
    nullable: bool,
    format: Option<String>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: bool,
    exclusive_maximum: bool,
    multiple_of: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    enumeration: Option<Vec<Value>>,
    pattern: Option<(String, Regex)>,
    required: Vec<String>,
    properties: BTreeMap<String, Node>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
    int_or_string: bool,
    preserve_unknown: bool,
    embedded_resource: bool,
    list_type: ListType,
    default: Option<Value>,
    rules: Vec<cel::Rule>,
}

/// One CRD version's compiled `openAPIV3Schema`.
#[derive(Debug)]
pub struct Schema {
    root: Node,
}

impl Schema {
    /// Compile an `openAPIV3Schema`. `base` is the path the errors name
    /// (`spec.versions[0].schema.openAPIV3Schema`). Errors: a `pattern` that is not a valid
    /// regex, a CEL rule that does not parse or calls a function the emulator's CEL does not
    /// have, an unknown `x-kubernetes-list-type`.
    pub fn compile(schema: &Value, base: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let root = Node::compile(schema, base, &mut errors);
        if errors.is_empty() {
            Ok(Self { root })
        } else {
            Err(errors)
        }
    }

    /// Run the apiserver's write path on `obj` (the whole object, as it would be stored):
    /// prune unknown fields, drop non-nullable nulls, apply defaults, then validate the
    /// schema and the CEL rules. `old` is the stored object on an update (for `oldSelf`).
    /// On success `obj` holds what to store.
    pub fn admit(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        mode: FieldValidation,
    ) -> Result<Admitted, Refusal> {
        let mut unknown = Vec::new();
        walk::normalize(&self.root, obj, "", &mut unknown, true);
        unknown.sort();
        unknown.dedup();
        let mut admitted = Admitted::default();
        match mode {
            FieldValidation::Strict if !unknown.is_empty() => {
                return Err(Refusal::UnknownFields(unknown))
            }
            FieldValidation::Warn => {
                admitted.warnings = unknown
                    .iter()
                    .map(|p| format!("unknown field {}", gofmt::go_quote(p)))
                    .collect();
            }
            _ => {}
        }
        let errors = self.validate(obj, old);
        if errors.is_empty() {
            Ok(admitted)
        } else {
            Err(Refusal::Invalid(errors))
        }
    }

    /// Validate an already pruned and defaulted object: schema errors, then (when none of
    /// them blocks) the CEL rules.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        walk::check(&self.root, obj, "", &mut errors, true);
        if errors.iter().any(|e| e.kind.blocks_cel()) {
            if self.root.has_rules() {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    "",
                    Some(Value::Null),
                    "some validation rules were not checked because the object was invalid; \
                     correct the existing errors to complete validation",
                ));
            }
            return errors;
        }
        walk::rules(&self.root, obj, old, "", &mut errors);
        errors
    }
}

fn u64_at(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

impl Node {
    fn compile(v: &Value, path: &str, errors: &mut Vec<FieldError>) -> Node {
        let ty = v.get("type").and_then(Value::as_str).and_then(Ty::parse);
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let child = |k: &str| format!("{path}.{k}");
        let pattern = v
            .get("pattern")
            .and_then(Value::as_str)
            .and_then(|p| match Regex::new(p) {
                Ok(r) => Some((p.to_string(), r)),
                Err(e) => {
                    errors.push(FieldError::new(
                        ErrorKind::Invalid,
                        &child("pattern"),
                        Some(Value::String(p.to_string())),
                        format!("must be a valid regular expression, but isn't: {e}"),
                    ));
                    None
                }
            });
        let mut properties = BTreeMap::new();
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let n = Node::compile(p, &format!("{path}.properties[{k}]"), errors);
                properties.insert(k.clone(), n);
            }
        }
        let additional = match v.get("additionalProperties") {
            Some(a) if a.is_object() => Some(Box::new(Node::compile(
                a,
                &child("additionalProperties"),
                errors,
            ))),
            _ => None,
        };
        let items = v
            .get("items")
            .filter(|i| i.is_object())
            .map(|i| Box::new(Node::compile(i, &child("items"), errors)));
        let list_type = match v.get("x-kubernetes-list-type").and_then(Value::as_str) {
            None | Some("atomic") => ListType::Atomic,
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                v.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Some(other) => {
                errors.push(FieldError::new(
                    ErrorKind::NotSupported,
                    &child("x-kubernetes-list-type"),
                    Some(Value::String(other.to_string())),
                    "supported values: \"atomic\", \"map\", \"set\"",
                ));
                ListType::Atomic
            }
        };
        let mut rules = Vec::new();
        if let Some(rs) = v.get("x-kubernetes-validations").and_then(Value::as_array) {
            for (i, r) in rs.iter().enumerate() {
                match cel::Rule::compile(r, &format!("{path}.x-kubernetes-validations[{i}]")) {
                    Ok(rule) => rules.push(rule),
                    Err(e) => errors.push(e),
                }
            }
        }
        Node {
            ty,
            nullable: flag("nullable"),
            format: v.get("format").and_then(Value::as_str).map(String::from),
            minimum: v.get("minimum").and_then(Value::as_f64),
            maximum: v.get("maximum").and_then(Value::as_f64),
            exclusive_minimum: flag("exclusiveMinimum"),
            exclusive_maximum: flag("exclusiveMaximum"),
            multiple_of: v.get("multipleOf").and_then(Value::as_f64),
            min_length: u64_at(v, "minLength"),
            max_length: u64_at(v, "maxLength"),
            min_items: u64_at(v, "minItems"),
            max_items: u64_at(v, "maxItems"),
            min_properties: u64_at(v, "minProperties"),
            max_properties: u64_at(v, "maxProperties"),
            enumeration: v.get("enum").and_then(Value::as_array).cloned(),
            pattern,
            required: v
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            properties,
            additional,
            items,
            int_or_string: flag("x-kubernetes-int-or-string"),
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields")
                || v.get("additionalProperties") == Some(&Value::Bool(true)),
            embedded_resource: flag("x-kubernetes-embedded-resource"),
            list_type,
            default: v.get("default").cloned(),
            rules,
        }
    }

    fn has_rules(&self) -> bool {
        !self.rules.is_empty()
            || self.properties.values().any(Node::has_rules)
            || self.additional.as_ref().is_some_and(|n| n.has_rules())
            || self.items.as_ref().is_some_and(|n| n.has_rules())
    }
}

#[cfg(test)]
mod tests;
