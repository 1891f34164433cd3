//! A conservative static cost estimate of a CRD's CEL rules, after the apiserver's approach:
//!
//! - Sizes come from the schema (k8s.io/apiserver `cel/common/schemas.go`): a string's
//!   `maxLength` × 4 bytes, else its longest `enum` value, else the request limit
//!   ([`MAX_REQUEST_SIZE_BYTES`] − 2); a list's `maxItems`, else as many items of its
//!   minimum serialized size as fit in a request (`(limit − 2) / (min size + 1)`).
//! - A rule's cost is cel-go's static estimate (identifiers and field selections 1,
//!   literals 0, calls 1 plus a traversal cost of 0.1 per byte of the strings or lists they
//!   scan, a comprehension its range + init + size × (condition + step) + result).
//! - It is multiplied by the cardinality of the node the rule sits on (the product of the
//!   `maxItems` of the lists above it; when one is unbounded, as many copies of the node as
//!   fit in a request) and compared with [`STATIC_ESTIMATED_COST_LIMIT`]; the sum over a
//!   version's rules with [`STATIC_ESTIMATED_CRD_COST_LIMIT`] (apiextensions `validation.go`).
//!
//! Conservative: every size and cost is rounded up and taken at its maximum (e.g. an
//! equality costs the traversal of the larger operand, where cel-go takes the smaller), and a
//! function it does not model is reported ([`super::ViolationKind::CostNotModelled`]) with a
//! linear estimate at ten times cel-go's traversal factor.

use super::{Violation, ViolationKind as K};
use cel_parser::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr};
use cel_parser::reference::Val;
use serde_json::{Map, Value};

/// The request size the apiserver assumes when a size is unbounded, bytes (3 MiB,
/// `k8s.io/apiserver/pkg/apis/cel` `MaxRequestSizeBytes`).
pub const MAX_REQUEST_SIZE_BYTES: u64 = 3 * 1024 * 1024;
/// Largest estimated cost of one rule (times its cardinality) the apiserver accepts
/// (`StaticEstimatedCostLimit`).
pub const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Largest estimated cost of all the rules of one version's schema the apiserver accepts
/// (`StaticEstimatedCRDCostLimit`).
pub const STATIC_ESTIMATED_CRD_COST_LIMIT: u64 = 100_000_000;

/// Cost of creating a list, map or message literal (cel-go).
const LIST_CREATE_COST: u64 = 10;
const MAP_CREATE_COST: u64 = 30;
const STRUCT_CREATE_COST: u64 = 40;
/// Minimum serialized sizes, bytes (k8s.io/apiserver `cel/types.go`).
const MIN_STRING_SIZE: u64 = 2;
const MIN_NUMBER_SIZE: u64 = 1;
const MIN_BOOL_SIZE: u64 = 4;
const MIN_COLLECTION_SIZE: u64 = 2;

/// The estimated cost of one rule (or messageExpression).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCost {
    /// Path of the rule in the CRD, e.g. `…properties[spec].x-kubernetes-validations[0].rule`.
    pub path: String,
    /// The CEL expression.
    pub expression: String,
    /// Estimated cost of one evaluation (cel-go cost units).
    pub per_evaluation: u64,
    /// How many times it may be evaluated per object (1 unless under a list).
    pub cardinality: u64,
    /// What the apiserver compares with [`STATIC_ESTIMATED_COST_LIMIT`] and adds to the
    /// CRD total: `per_evaluation × cardinality` (a messageExpression is not multiplied).
    pub total: u64,
}

/// The estimated cost of every rule of every version of `crd`, in schema order. Rules that
/// do not parse are left out (they are violations of [`super::check_crd`]).
pub fn rule_costs(crd: &Value) -> Vec<RuleCost> {
    let mut costs = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, version) in versions.iter().enumerate() {
        if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            walk(schema, &path, Some(1), &mut costs, &mut Vec::new());
        }
    }
    costs
}

/// The cost violations of one version's schema at `path`.
pub(super) fn check(schema: &Value, path: &str) -> Vec<Violation> {
    let mut costs = Vec::new();
    let mut out = Vec::new();
    walk(schema, path, Some(1), &mut costs, &mut out);
    let mut total: u64 = 0;
    for c in &costs {
        if c.total > STATIC_ESTIMATED_COST_LIMIT {
            out.push(Violation::new(
                K::RuleCostOverBudget,
                &c.path,
                format!(
                    "Forbidden: estimated rule cost exceeds budget by factor of {} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
                    factor(c.total, STATIC_ESTIMATED_COST_LIMIT)
                ),
            ));
        }
        total = total.saturating_add(c.total);
    }
    if total > STATIC_ESTIMATED_CRD_COST_LIMIT {
        out.push(Violation::new(
            K::CrdCostOverBudget,
            path,
            format!(
                "Forbidden: total CRD cost exceeds budget by factor of {} (try simplifying the rules, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
                factor(total, STATIC_ESTIMATED_CRD_COST_LIMIT)
            ),
        ));
    }
    out
}

/// How far over the limit, worded as the apiserver does.
fn factor(cost: u64, limit: u64) -> String {
    let f = cost as f64 / limit as f64;
    if f > 100.0 {
        "more than 100x".to_string()
    } else {
        format!("{f:.1}x")
    }
}

/// Walks the schema; `cardinality` is None under an unbounded list or map.
fn walk(
    schema: &Value,
    path: &str,
    cardinality: Option<u64>,
    costs: &mut Vec<RuleCost>,
    out: &mut Vec<Violation>,
) {
    let Some(s) = schema.as_object() else {
        return;
    };
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        let times = cardinality.unwrap_or_else(|| max_count(min_size(schema)));
        for (i, rule) in rules.iter().enumerate() {
            for (key, multiplied) in [("rule", true), ("messageExpression", false)] {
                let Some(text) = rule.get(key).and_then(Value::as_str) else {
                    continue;
                };
                if text.trim().is_empty() {
                    continue;
                }
                let at = format!("{path}.x-kubernetes-validations[{i}].{key}");
                match estimate(text, schema) {
                    Ok((per_evaluation, unmodelled)) => {
                        for f in unmodelled {
                            out.push(Violation::new(
                                K::CostNotModelled,
                                &at,
                                format!("Warning: the cost of function \"{f}\" is not modelled; estimated as linear in its arguments' sizes"),
                            ));
                        }
                        let cardinality = if multiplied { times } else { 1 };
                        costs.push(RuleCost {
                            path: at,
                            expression: text.to_string(),
                            per_evaluation,
                            cardinality,
                            total: per_evaluation.saturating_mul(cardinality),
                        });
                    }
                    Err(e) => out.push(Violation::new(
                        K::BadRule,
                        at,
                        format!("Invalid value: compilation failed: {e}"),
                    )),
                }
            }
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            walk(
                child,
                &format!("{path}.properties[{name}]"),
                cardinality,
                costs,
                out,
            );
        }
    }
    if let Some(items) = s.get("items").filter(|v| v.is_object()) {
        let n = s.get("maxItems").and_then(Value::as_u64);
        let card = cardinality.zip(n).map(|(c, n)| c.saturating_mul(n));
        walk(items, &format!("{path}.items"), card, costs, out);
    }
    if let Some(extra) = s.get("additionalProperties").filter(|v| v.is_object()) {
        let n = s.get("maxProperties").and_then(Value::as_u64);
        let card = cardinality.zip(n).map(|(c, n)| c.saturating_mul(n));
        walk(
            extra,
            &format!("{path}.additionalProperties"),
            card,
            costs,
            out,
        );
    }
}

/// How many values of `min_size` bytes fit in a request (the apiserver's `maxCardinality`).
fn max_count(min_size: u64) -> u64 {
    MAX_REQUEST_SIZE_BYTES / (min_size + 1)
}

fn flag(s: &Map<String, Value>, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Smallest JSON serialization of a value of `schema`, bytes (the apiserver's
/// `MinSerializedSize`: an object counts its required properties without a default).
fn min_size(schema: &Value) -> u64 {
    let Some(s) = schema.as_object() else {
        return 1;
    };
    if flag(s, "x-kubernetes-int-or-string") {
        return 1;
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") if s.get("additionalProperties").is_some_and(Value::is_object) => {
            MIN_COLLECTION_SIZE
        }
        Some("object") => {
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let props = s.get("properties").and_then(Value::as_object);
            let mut size = MIN_COLLECTION_SIZE;
            for name in required {
                if let Some(prop) = props.and_then(|p| p.get(name)) {
                    if prop.get("default").is_none() {
                        size = size.saturating_add(name.len() as u64 + min_size(prop) + 4);
                    }
                }
            }
            size
        }
        Some("array") => MIN_COLLECTION_SIZE,
        Some("string") => MIN_STRING_SIZE,
        Some("boolean") => MIN_BOOL_SIZE,
        _ => MIN_NUMBER_SIZE,
    }
}

/// The CEL type of a value, with the size bounds the estimate needs.
#[derive(Clone, Debug)]
enum Ty<'a> {
    /// An object with the given properties' schemas.
    Object(&'a Map<String, Value>),
    /// A list of at most `max` elements.
    List {
        elem: Box<Ty<'a>>,
        max: u64,
    },
    /// A map of at most `max` entries with string keys.
    Map {
        value: Box<Ty<'a>>,
        max: u64,
    },
    /// A string or bytes of at most this many bytes.
    Str(u64),
    Int,
    Double,
    Bool,
    Null,
    /// Anything, of at most this many bytes.
    Dyn(u64),
}

const UNBOUNDED: u64 = MAX_REQUEST_SIZE_BYTES - 2;

impl<'a> Ty<'a> {
    /// The CEL type of a value of `schema`.
    fn of(schema: &'a Value) -> Ty<'a> {
        let Some(s) = schema.as_object() else {
            return Ty::Dyn(UNBOUNDED);
        };
        let max_length = s.get("maxLength").and_then(Value::as_u64);
        if flag(s, "x-kubernetes-int-or-string") {
            return Ty::Dyn(max_length.map_or(UNBOUNDED, |n| n.saturating_mul(4)));
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => match s.get("additionalProperties").filter(|v| v.is_object()) {
                Some(extra) => Ty::Map {
                    value: Box::new(Ty::of(extra)),
                    max: s
                        .get("maxProperties")
                        .and_then(Value::as_u64)
                        .unwrap_or_else(|| UNBOUNDED / (min_size(extra) + 6)),
                },
                None => Ty::Object(s),
            },
            Some("array") => match s.get("items").filter(|v| v.is_object()) {
                Some(items) => Ty::List {
                    elem: Box::new(Ty::of(items)),
                    max: s
                        .get("maxItems")
                        .and_then(Value::as_u64)
                        .unwrap_or_else(|| UNBOUNDED / (min_size(items) + 1)),
                },
                None => Ty::Dyn(UNBOUNDED),
            },
            Some("string") => {
                let enum_max = s.get("enum").and_then(Value::as_array).map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .map(|v| v.len() as u64)
                        .max()
                        .unwrap_or(0)
                });
                Ty::Str(
                    max_length
                        .map(|n| n.saturating_mul(4))
                        .or(enum_max)
                        .unwrap_or(UNBOUNDED),
                )
            }
            Some("integer") => Ty::Int,
            Some("number") => Ty::Double,
            Some("boolean") => Ty::Bool,
            _ => Ty::Dyn(UNBOUNDED),
        }
    }

    /// Elements, entries or bytes: what a traversal of the value visits.
    fn size(&self) -> u64 {
        match self {
            Ty::List { max, .. } | Ty::Map { max, .. } => *max,
            Ty::Str(n) | Ty::Dyn(n) => *n,
            _ => 1,
        }
    }

    /// An upper bound of the serialized size, bytes (at most a request).
    fn bytes(&self) -> u64 {
        let b = match self {
            Ty::Str(n) | Ty::Dyn(n) => *n,
            Ty::Int | Ty::Double => 32,
            Ty::Bool | Ty::Null => 5,
            Ty::List { elem, max } => max.saturating_mul(elem.bytes().saturating_add(1)),
            Ty::Map { value, max } => max.saturating_mul(value.bytes().saturating_add(UNBOUNDED)),
            Ty::Object(props) => props
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter().fold(2u64, |acc, (name, prop)| {
                        acc.saturating_add(name.len() as u64 + 4)
                            .saturating_add(Ty::of(prop).bytes())
                    })
                })
                .unwrap_or(UNBOUNDED),
        };
        b.min(UNBOUNDED)
    }

    /// What iterating over the value binds to the first variable.
    fn elem(&self) -> Ty<'a> {
        match self {
            Ty::List { elem, .. } => (**elem).clone(),
            Ty::Map { .. } => Ty::Str(UNBOUNDED),
            _ => Ty::Dyn(UNBOUNDED),
        }
    }
}

/// cel-go's traversal cost of `bytes` bytes (0.1 per byte, rounded up).
fn traversal(bytes: u64) -> u64 {
    bytes.div_ceil(10)
}

/// An estimate: the most the expression costs and its type.
struct Est<'a> {
    cost: u64,
    ty: Ty<'a>,
}

struct Estimator<'a> {
    /// Variables in scope, innermost last.
    scope: Vec<(String, Ty<'a>)>,
    /// Functions whose cost is not modelled.
    unmodelled: Vec<String>,
}

/// The estimated cost of one evaluation of `rule` on a node of `schema`, and the functions
/// it calls whose cost is not modelled; Err when the rule does not parse.
fn estimate(rule: &str, schema: &Value) -> Result<(u64, Vec<String>), String> {
    let ast = parse(rule)?;
    let self_ty = Ty::of(schema);
    let mut e = Estimator {
        scope: vec![
            ("self".to_string(), self_ty.clone()),
            ("oldSelf".to_string(), self_ty),
        ],
        unmodelled: Vec::new(),
    };
    let cost = e.expr(&ast).cost;
    Ok((cost, e.unmodelled))
}

/// Parses a CEL expression. The parser (antlr4rust) panics on some truncated inputs
/// (`self.a <=`) instead of returning an error; that panic is caught and reported as a parse
/// error.
pub(crate) fn parse(rule: &str) -> Result<IdedExpr, String> {
    match std::panic::catch_unwind(|| cel_parser::Parser::new().parse(rule)) {
        Ok(Ok(ast)) => Ok(ast),
        Ok(Err(e)) => Err(e.to_string().replace('\n', " ")),
        Err(_) => Err("syntax error (the parser gave up on this input)".to_string()),
    }
}

impl<'a> Estimator<'a> {
    fn expr(&mut self, e: &IdedExpr) -> Est<'a> {
        match &e.expr {
            Expr::Unspecified => Est {
                cost: 0,
                ty: Ty::Dyn(UNBOUNDED),
            },
            Expr::Literal(v) => Est {
                cost: 0,
                ty: match v {
                    Val::String(s) => Ty::Str(s.len() as u64),
                    Val::Bytes(b) => Ty::Str(b.len() as u64),
                    Val::Int(_) | Val::UInt(_) => Ty::Int,
                    Val::Double(_) => Ty::Double,
                    Val::Boolean(_) => Ty::Bool,
                    Val::Null => Ty::Null,
                },
            },
            Expr::Ident(name) => Est {
                cost: 1,
                ty: self
                    .scope
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map_or(Ty::Dyn(UNBOUNDED), |(_, t)| t.clone()),
            },
            Expr::Select(sel) => {
                let operand = self.expr(&sel.operand);
                let ty = if sel.test {
                    Ty::Bool
                } else {
                    match &operand.ty {
                        Ty::Object(s) => s
                            .get("properties")
                            .and_then(|p| p.get(&sel.field))
                            .map_or(Ty::Dyn(UNBOUNDED), Ty::of),
                        Ty::Map { value, .. } => (**value).clone(),
                        _ => Ty::Dyn(UNBOUNDED),
                    }
                };
                Est {
                    cost: operand.cost.saturating_add(1),
                    ty,
                }
            }
            Expr::List(list) => {
                let elems: Vec<Est> = list.elements.iter().map(|x| self.expr(x)).collect();
                let cost = elems
                    .iter()
                    .fold(LIST_CREATE_COST, |acc, x| acc.saturating_add(x.cost));
                let elem = elems
                    .into_iter()
                    .map(|x| x.ty)
                    .max_by_key(Ty::bytes)
                    .unwrap_or(Ty::Dyn(UNBOUNDED));
                Est {
                    cost,
                    ty: Ty::List {
                        elem: Box::new(elem),
                        max: list.elements.len() as u64,
                    },
                }
            }
            Expr::Map(map) => self.entries(MAP_CREATE_COST, &map.entries),
            Expr::Struct(st) => self.entries(STRUCT_CREATE_COST, &st.entries),
            Expr::Call(call) => self.call(call),
            Expr::Comprehension(c) => self.comprehension(c),
        }
    }

    fn entries(&mut self, base: u64, entries: &[cel_parser::ast::IdedEntryExpr]) -> Est<'a> {
        let mut cost = base;
        for entry in entries {
            match &entry.expr {
                EntryExpr::StructField(f) => cost = cost.saturating_add(self.expr(&f.value).cost),
                EntryExpr::MapEntry(m) => {
                    cost = cost
                        .saturating_add(self.expr(&m.key).cost)
                        .saturating_add(self.expr(&m.value).cost);
                }
            }
        }
        Est {
            cost,
            ty: Ty::Dyn(UNBOUNDED),
        }
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Est<'a> {
        let range = self.expr(&c.iter_range);
        let n = range.ty.size();
        let init = self.expr(&c.accu_init);
        // The accumulator of map()/filter() grows to one element per iteration.
        let accu_ty = match init.ty {
            Ty::List { .. } => Ty::List {
                elem: Box::new(Ty::Dyn(UNBOUNDED)),
                max: n,
            },
            other => other,
        };
        let pushed = 2 + usize::from(c.iter_var2.is_some());
        self.scope.push((c.iter_var.clone(), range.ty.elem()));
        if let Some(v2) = &c.iter_var2 {
            let second = match &range.ty {
                Ty::List { elem, .. } => (**elem).clone(),
                Ty::Map { value, .. } => (**value).clone(),
                _ => Ty::Dyn(UNBOUNDED),
            };
            self.scope.push((v2.clone(), second));
        }
        self.scope.push((c.accu_var.clone(), accu_ty));
        let per_iteration = self
            .expr(&c.loop_cond)
            .cost
            .saturating_add(self.expr(&c.loop_step).cost);
        let result = self.expr(&c.result);
        self.scope.truncate(self.scope.len().saturating_sub(pushed));
        Est {
            cost: range
                .cost
                .saturating_add(init.cost)
                .saturating_add(n.saturating_mul(per_iteration))
                .saturating_add(result.cost),
            ty: result.ty,
        }
    }

    fn call(&mut self, call: &CallExpr) -> Est<'a> {
        let mut args: Vec<Est<'a>> = Vec::new();
        if let Some(target) = &call.target {
            args.push(self.expr(target));
        }
        for a in &call.args {
            args.push(self.expr(a));
        }
        let sum = args.iter().fold(0u64, |acc, a| acc.saturating_add(a.cost));
        let arg_ty = |i: usize| args.get(i).map_or(Ty::Dyn(UNBOUNDED), |a| a.ty.clone());
        let name = call.func_name.as_str();
        let (extra, ty) = match name {
            "_&&_" | "_||_" => (0, Ty::Bool),
            "_?_:_" => {
                // The condition, then the dearer branch.
                let cond = args.first().map_or(0, |a| a.cost);
                let branch = args.iter().skip(1).map(|a| a.cost).max().unwrap_or(0);
                let ty = args
                    .iter()
                    .skip(1)
                    .map(|a| a.ty.clone())
                    .max_by_key(Ty::bytes)
                    .unwrap_or(Ty::Dyn(UNBOUNDED));
                return Est {
                    cost: cond.saturating_add(branch),
                    ty,
                };
            }
            "!_" | "@not_strictly_false" => (1, Ty::Bool),
            "-_" => (1, arg_ty(0)),
            "_==_" | "_!=_" => {
                let bytes = args.iter().map(|a| a.ty.bytes()).max().unwrap_or(0);
                let scalar = args
                    .iter()
                    .all(|a| matches!(a.ty, Ty::Int | Ty::Double | Ty::Bool | Ty::Null));
                (1 + if scalar { 0 } else { traversal(bytes) }, Ty::Bool)
            }
            "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let bytes = args
                    .iter()
                    .filter(|a| matches!(a.ty, Ty::Str(_) | Ty::Dyn(_)))
                    .map(|a| a.ty.bytes())
                    .max()
                    .unwrap_or(0);
                (1 + traversal(bytes), Ty::Bool)
            }
            "_+_" => match (arg_ty(0), arg_ty(1)) {
                (Ty::Str(a), Ty::Str(b)) => (
                    1 + traversal(a.saturating_add(b)),
                    Ty::Str(a.saturating_add(b)),
                ),
                (Ty::List { elem, max: a }, Ty::List { max: b, .. }) => (
                    1 + traversal(a.saturating_add(b)),
                    Ty::List {
                        elem,
                        max: a.saturating_add(b),
                    },
                ),
                (Ty::Dyn(a), _) | (_, Ty::Dyn(a)) => (1 + traversal(a), Ty::Dyn(UNBOUNDED)),
                (t, _) => (1, t),
            },
            "_-_" | "_*_" | "_/_" | "_%_" => (1, arg_ty(0)),
            "_[_]" | "_[?_]" => {
                let container = arg_ty(0);
                let key = arg_ty(1);
                let ty = match &container {
                    Ty::List { elem, .. } => (**elem).clone(),
                    Ty::Map { value, .. } => (**value).clone(),
                    _ => Ty::Dyn(UNBOUNDED),
                };
                let lookup = if matches!(container, Ty::List { .. }) {
                    0
                } else {
                    traversal(key.bytes())
                };
                (1 + lookup, ty)
            }
            "@in" => {
                let elem = arg_ty(0);
                let extra = match arg_ty(1) {
                    Ty::List { elem: e, max } => {
                        let each = 1 + traversal(elem.bytes().max(e.bytes()));
                        max.saturating_mul(each)
                    }
                    other => traversal(elem.bytes().max(other.bytes())),
                };
                (1u64.saturating_add(extra), Ty::Bool)
            }
            "size" => (1, Ty::Int),
            "matches" => {
                let text = arg_ty(0).bytes();
                let regex = arg_ty(1).bytes().max(1);
                (
                    1u64.saturating_add(traversal(text).saturating_mul(regex)),
                    Ty::Bool,
                )
            }
            "contains" | "startsWith" | "endsWith" => {
                let bytes = arg_ty(0).bytes().saturating_add(arg_ty(1).bytes());
                (1 + traversal(bytes), Ty::Bool)
            }
            "int" | "uint" => (1, Ty::Int),
            "double" => (1, Ty::Double),
            "bool" => (1, Ty::Bool),
            "string" | "bytes" => {
                let bytes = arg_ty(0).bytes();
                (1 + traversal(bytes), Ty::Str(bytes.max(32)))
            }
            "dyn" => (1, arg_ty(0)),
            "type" | "duration" | "timestamp" => (1, Ty::Dyn(64)),
            other => {
                if !self.unmodelled.iter().any(|u| u == other) {
                    self.unmodelled.push(other.to_string());
                }
                let bytes = args
                    .iter()
                    .fold(0u64, |acc, a| acc.saturating_add(a.ty.bytes()));
                (1u64.saturating_add(bytes), Ty::Dyn(UNBOUNDED))
            }
        };
        Est {
            cost: sum.saturating_add(extra),
            ty,
        }
    }
}
