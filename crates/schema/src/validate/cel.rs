//! CEL `x-kubernetes-validations` with `cel-interpreter`: compile once, bind `self` (and
//! `oldSelf`), turn the outcome into the apiserver's field errors.
//!
//! Supported: the CEL core (operators, `?:`, `in`, indexing), the macros `has`, `all`,
//! `exists`, `exists_one`, `map`, `filter`, and the functions in [`CEL_FUNCTIONS`]. Not
//! supported: the Kubernetes CEL libraries (`isSorted`, `indexOf`, `lowerAscii`, `url`,
//! `quantity`, `format`, ...): a CRD whose rules call them is refused with a message that
//! names the function, rather than accepted and never enforced. No cost estimate or
//! runtime cost limit.

use super::{ErrorKind, FieldError, Node, Ty};
use cel_interpreter::objects::{Key, Map as CelMap};
use cel_interpreter::{Context, ExecutionError, Program, Value as Cel};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The functions (called as `f(x)` or `x.f(..)`) the emulator's CEL evaluates.
pub const CEL_FUNCTIONS: &[&str] = &[
    "contains",
    "size",
    "max",
    "min",
    "startsWith",
    "endsWith",
    "string",
    "bytes",
    "double",
    "int",
    "uint",
    "matches",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

/// One compiled `x-kubernetes-validations` entry.
pub(super) struct Rule {
    source: String,
    program: Program,
    message: Option<String>,
    message_expression: Option<Program>,
    field_path: Option<String>,
    reason: ErrorKind,
    /// Refers to `oldSelf`: only evaluated on an update with an old value.
    transition: bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("rule", &self.source).finish()
    }
}

fn compile_expr(src: &str, path: &str, what: &str) -> Result<Program, FieldError> {
    let invalid = |detail: String| {
        FieldError::new(
            ErrorKind::Invalid,
            &format!("{path}.{what}"),
            Some(Value::String(src.to_string())),
            detail,
        )
    };
    let program = catch_unwind(|| Program::compile(src))
        .map_err(|_| {
            invalid(
                "compilation failed: Syntax error: the rule does not parse (cel-parser gave no \
             position: an operator may be missing its operand)"
                    .into(),
            )
        })?
        .map_err(|e| invalid(format!("compilation failed: {e}")))?;
    let refs = program.references();
    let mut unsupported: Vec<&str> = refs
        .functions()
        .into_iter()
        .filter(|f| f.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|f| !CEL_FUNCTIONS.contains(f))
        .collect();
    unsupported.sort_unstable();
    if let Some(f) = unsupported.first() {
        return Err(invalid(format!(
            "compilation failed: function {f:?} is not implemented by the emulator's CEL \
             (cel-interpreter); supported: {}",
            CEL_FUNCTIONS.join(", ")
        )));
    }
    Ok(program)
}

impl Rule {
    /// Compile one rule object (`rule`, `message`, `messageExpression`, `fieldPath`,
    /// `reason`); `path` names it in errors.
    pub(super) fn compile(v: &Value, path: &str) -> Result<Rule, FieldError> {
        let source = v
            .get("rule")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| FieldError::new(ErrorKind::Required, &format!("{path}.rule"), None, ""))?
            .to_string();
        let program = compile_expr(&source, path, "rule")?;
        let message_expression = match v.get("messageExpression").and_then(Value::as_str) {
            Some(m) if !m.trim().is_empty() => Some(compile_expr(m, path, "messageExpression")?),
            _ => None,
        };
        let reason = match v.get("reason").and_then(Value::as_str) {
            None | Some("FieldValueInvalid") => ErrorKind::Invalid,
            Some("FieldValueForbidden") => ErrorKind::Forbidden,
            Some("FieldValueRequired") => ErrorKind::Required,
            Some("FieldValueDuplicate") => ErrorKind::Duplicate,
            Some(other) => {
                return Err(FieldError::new(
                    ErrorKind::NotSupported,
                    &format!("{path}.reason"),
                    Some(Value::String(other.into())),
                    "supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                ))
            }
        };
        let transition = program.references().has_variable("oldSelf");
        Ok(Rule {
            source,
            program,
            message: v
                .get("message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(String::from),
            message_expression,
            field_path: v
                .get("fieldPath")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(String::from),
            reason,
            transition,
        })
    }

    /// Evaluate the rule on a node's value (`self`) and old value (`oldSelf`); the error to
    /// report, if any. A transition rule without an old value is not evaluated.
    pub(super) fn evaluate(
        &self,
        node: &Node,
        this: &Cel,
        old: Option<&Cel>,
        path: &str,
    ) -> Option<FieldError> {
        if self.transition && old.is_none() {
            return None;
        }
        let type_name = Value::String(node_type_name(node).into());
        let outcome = run(&self.program, this, old);
        let field = match &self.field_path {
            Some(fp) => join_field_path(path, fp),
            None => path.to_string(),
        };
        match outcome {
            Ok(Cel::Bool(true)) => None,
            Ok(Cel::Bool(false)) => {
                let detail = self.message_for(this, old);
                Some(match self.reason {
                    ErrorKind::Duplicate => {
                        FieldError::new(ErrorKind::Duplicate, &field, Some(type_name), "")
                    }
                    kind @ (ErrorKind::Forbidden | ErrorKind::Required) => {
                        FieldError::new(kind, &field, None, detail)
                    }
                    _ => FieldError::new(ErrorKind::Invalid, &field, Some(type_name), detail),
                })
            }
            Ok(other) => Some(FieldError::new(
                ErrorKind::Invalid,
                path,
                Some(type_name),
                format!(
                    "rule did not evaluate to a bool (got {}): {}",
                    other.type_of(),
                    self.source.trim()
                ),
            )),
            Err(e) => Some(FieldError::new(
                ErrorKind::Invalid,
                path,
                Some(type_name),
                format!("{e} evaluating rule: {}", self.source.trim()),
            )),
        }
    }

    fn message_for(&self, this: &Cel, old: Option<&Cel>) -> String {
        if let Some(expr) = &self.message_expression {
            if let Ok(Cel::String(s)) = run(expr, this, old) {
                if !s.trim().is_empty() && !s.contains('\n') {
                    return s.to_string();
                }
            }
        }
        match &self.message {
            Some(m) => m.clone(),
            None => format!("failed rule: {}", self.source.trim()),
        }
    }
}

/// Run a program with `self` and `oldSelf` bound. A panic inside the interpreter (it has a
/// few `todo!()`s, e.g. a comprehension over a string) becomes an error, never a crash.
fn run(program: &Program, this: &Cel, old: Option<&Cel>) -> Result<Cel, String> {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut ctx = Context::default();
        ctx.add_variable_from_value("self", this.clone());
        if let Some(o) = old {
            ctx.add_variable_from_value("oldSelf", o.clone());
        }
        program.execute(&ctx)
    }));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err("internal error: the CEL interpreter failed on this value".into()),
    }
}

/// CEL-go's wording for the common runtime errors.
fn describe(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::UndeclaredReference(r) => format!("undeclared reference to '{r}'"),
        other => format!("no such overload: {other}"),
    }
}

/// The `Invalid value` a failed rule prints: the node's schema type.
fn node_type_name(node: &Node) -> &'static str {
    match node.ty {
        Some(t) => t.as_str(),
        None if node.int_or_string => "integer-or-string",
        None => "object",
    }
}

/// `fieldPath` (`.spec.foo`, `.a['b.c']`, `.list[0]`) appended to the rule's path.
fn join_field_path(path: &str, fp: &str) -> String {
    let rel = fp.replace("['", "[").replace("']", "]");
    let rel = rel.trim_start_matches('.');
    match (path.is_empty(), rel.starts_with('[')) {
        (true, _) => rel.to_string(),
        (false, true) => format!("{path}{rel}"),
        (false, false) => format!("{path}.{rel}"),
    }
}

/// A JSON value as CEL sees it under `node`: integers as `int`, numbers as `double`, objects
/// as maps with string keys, absent fields absent (so `has()` works).
pub(super) fn to_cel(node: &Node, v: &Value) -> Cel {
    to_cel_opt(Some(node), v)
}

fn to_cel_opt(node: Option<&Node>, v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            let ty = node.and_then(|n| n.ty);
            match (ty, n.as_i64()) {
                (Some(Ty::Number), _) => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
                (_, Some(i)) => Cel::Int(i),
                (Some(Ty::Integer), None) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Cel::Int(f as i64),
                    Some(f) => Cel::Float(f),
                    None => Cel::Null,
                },
                (_, None) => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_node = node.and_then(|n| n.items.as_deref());
            Cel::List(Arc::new(
                items.iter().map(|x| to_cel_opt(item_node, x)).collect(),
            ))
        }
        Value::Object(map) => {
            let mut m: HashMap<Key, Cel> = HashMap::with_capacity(map.len());
            for (k, x) in map {
                let child = node.and_then(|n| n.properties.get(k).or(n.additional.as_deref()));
                m.insert(Key::String(Arc::new(k.clone())), to_cel_opt(child, x));
            }
            Cel::Map(CelMap { map: Arc::new(m) })
        }
    }
}
