//! `template`: payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, the values
//! of `Assign`, Task `Credentials`) and their JSONata-mode counterparts (`Arguments`,
//! `Output`, `Assign`, `Items`, `ItemSelector`, and every field that takes one `{% %}`).
//!
//! Input at compile time: a JSON value from the definition whose object keys ending in
//! `.$` hold a path or an intrinsic call (JSONPath mode), or whose string values of the
//! form `{% expression %}` hold a JSONata expression (JSONata mode, [`Template::compile_jsonata`]).
//! Output: a [`Template`] tree in which every constant subtree has been folded into one
//! constant (built once, shared by every execution without copying) and every dynamic leaf
//! is a compiled path, intrinsic call or [`Query`].
//! At run time a template builds a new arena value against an [`Env`].
//! Never touches: the program layout or execution scheduling.
//!
//! AWS semantics (asl-features.md §4, LocalStack recordings): a `.$` key's value must be a
//! string holding a path (`$…`, `$$…`, `$name…`) or an intrinsic call (`States.…(…)`); the
//! suffix is stripped from the output key. Other keys are literal, even when their value
//! looks like a path. A definite path that selects nothing fails the state with
//! `States.Runtime` and the cause `The JSONPath '<path>' specified for the field '<key>.$'
//! could not be found in the input '<input JSON>'`.

use std::fmt;
use std::sync::Arc;

use crate::diag::{code, pointer_push, Diagnostics};
use crate::eval::{Env, EvalError};
use crate::intern::{Interner, Sym};
use crate::intrinsics::{self, Call};
use crate::jsonata::{Bindings, Expr, JsonataError, QueryError};
use crate::paths::{Path, Root};
use crate::value::Value;

/// Index of a constant in the program's constant pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConstId(pub u32);

/// Collects the constants of a definition while it is validated; becomes the program's
/// constant pool.
#[derive(Default, Debug)]
pub struct Consts {
    pub values: Vec<serde_json::Value>,
}

impl Consts {
    pub fn add(&mut self, v: serde_json::Value) -> ConstId {
        self.values.push(v);
        ConstId(self.values.len() as u32 - 1)
    }
}

/// A compiled payload template.
#[derive(Clone, Debug)]
pub enum Template {
    /// A subtree with no `.$` keys: built once.
    Const(ConstId),
    /// `"key.$": "$.path"`. `field` is the key as written (with `.$`), for error messages.
    Path { field: Box<str>, path: Path },
    /// `"key.$": "States.Fn(...)"`.
    Intrinsic { field: Box<str>, call: Call },
    /// An object with at least one dynamic member, keys in definition order (suffix stripped).
    Object(Box<[(Box<str>, Template)]>),
    /// An array with at least one dynamic element.
    Array(Box<[Template]>),
    /// `"{% expression %}"` (JSONata mode).
    Query(Arc<Query>),
}

/// A JSONata expression written as `"{% ... %}"` in one field of a definition, parsed once.
pub struct Query {
    expr: Expr,
    /// The interned names of the variables the expression mentions, in `expr.variables()`
    /// order.
    vars: Box<[Sym]>,
    /// Where it was written, as AWS names it in causes: `Output/FunctionResult`, `Items`.
    field: Box<str>,
}

impl Query {
    /// The expression inside a `{% ... %}` string, if `text` is one (the whole string, no
    /// spaces around the delimiters: anything else is a literal string, as in AWS).
    pub fn inner(text: &str) -> Option<&str> {
        (text.len() >= 4).then_some(text).and_then(|t| t.strip_prefix("{%")).and_then(|t| t.strip_suffix("%}"))
    }

    /// Parses the expression between the delimiters, written in `field`.
    pub fn parse(inner: &str, field: &str, names: &mut Interner) -> Result<Query, JsonataError> {
        let expr = Expr::parse(inner)?;
        let vars = expr.variables().map(|v| names.intern(v)).collect();
        Ok(Query { expr, vars, field: field.into() })
    }

    /// The expression as AWS quotes it in causes (trimmed).
    pub fn text(&self) -> &str {
        self.expr.source().trim()
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    /// Evaluates against `env`: `$states` from [`Env::states`], variables by name.
    pub fn eval<'a>(&self, env: &dyn Env<'a>) -> Result<Value<'a>, EvalError> {
        self.eval_query(env).map_err(|e| self.error(&e))
    }

    /// [`Query::eval`] keeping JSONata's error, for callers that add their own (a value of
    /// the wrong type).
    pub fn eval_query<'a>(&self, env: &dyn Env<'a>) -> Result<Value<'a>, QueryError> {
        let states = self.expr.reads_states().then(|| env.states(self.expr.reads_states_field("context")));
        let lookup = |name: &str| {
            let i = self.expr.variables().position(|v| v == name)?;
            env.variable(self.vars[i])
        };
        let bindings =
            Bindings { states, variables: &lookup, random_seed: env.random_u64(), now_millis: env.now_millis() };
        self.expr.eval_memo(env.bump(), &bindings, env.jsonata_memo())
    }

    /// `States.QueryEvaluationError` with AWS's cause for `e` raised by this expression.
    pub fn error(&self, e: &QueryError) -> EvalError {
        EvalError::query(e.cause(self.text(), &self.field))
    }

    /// The error for a value of the wrong type (`expected`: `array`, `boolean`, ...).
    pub fn type_error(&self, expected: &'static str, value: Value<'_>) -> EvalError {
        self.error(&QueryError::unexpected_type(expected, value))
    }
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Query({:?} in {})", self.expr.source(), self.field)
    }
}

impl PartialEq for Query {
    fn eq(&self, other: &Query) -> bool {
        self.expr.source() == other.expr.source() && self.field == other.field
    }
}

/// A dynamic leaf: what a `.$` value, `ErrorPath`/`CausePath`, or similar field holds.
#[derive(Clone, Debug)]
pub enum Dynamic {
    Path(Path),
    Intrinsic(Call),
}

impl Dynamic {
    /// Parses a `.$` value: a path or an intrinsic call.
    pub fn parse(text: &str, names: &mut Interner) -> Result<Dynamic, String> {
        if intrinsics::is_intrinsic(text) {
            Call::parse(text, names).map(Dynamic::Intrinsic).map_err(|e| e.to_string())
        } else if text.starts_with('$') {
            Path::parse(text, names).map(Dynamic::Path).map_err(|e| e.to_string())
        } else {
            Err(format!(
                "'{text}' is neither a path (starting with '$') nor an intrinsic function call (starting with 'States.')"
            ))
        }
    }

    pub fn uses_context(&self) -> bool {
        match self {
            Dynamic::Path(p) => p.root() == Root::Context,
            Dynamic::Intrinsic(c) => c.uses_context(),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Dynamic::Path(p) => p.text(),
            Dynamic::Intrinsic(c) => c.text(),
        }
    }
}

/// The delimiters a JSONata expression is written in, for messages and disassembly.
pub fn query_source(q: &Query) -> String {
    format!("{{%{}%}}", q.expr.source())
}

impl Template {
    /// Compiles `value` (found at JSON pointer `pointer`). Reports problems into `diags`
    /// and returns `None` if any `.$` member could not be compiled.
    pub fn compile(
        value: &serde_json::Value,
        pointer: &str,
        names: &mut Interner,
        consts: &mut Consts,
        diags: &mut Diagnostics,
    ) -> Option<Template> {
        let before = diags.len();
        let t = build(value, pointer, names, diags);
        (diags.len() == before).then_some(t).map(|t| fold(t, value, consts))
    }

    /// Compiles a JSONata-mode value found at `pointer` and written in `field` (`Output`,
    /// `Arguments`, `Assign/name`): `{% %}` strings at any depth become [`Query`] leaves
    /// (their field extended by the keys and indexes leading to them, as AWS names it:
    /// `Output/FunctionResult`); keys are literal (`.$` means nothing here).
    pub fn compile_jsonata(
        value: &serde_json::Value,
        pointer: &str,
        field: &str,
        names: &mut Interner,
        consts: &mut Consts,
        diags: &mut Diagnostics,
    ) -> Option<Template> {
        let before = diags.len();
        let t = build_jsonata(value, pointer, field, names, diags);
        (diags.len() == before).then_some(t).map(|t| fold(t, value, consts))
    }

    /// The template as it would be written in a definition (`.$` keys for dynamic members),
    /// given the constant pool it was compiled against. `compile` of the result gives back an
    /// equivalent template: the round trip the property tests check.
    pub fn to_definition(&self, consts: &Consts) -> serde_json::Value {
        match self {
            Template::Const(id) => consts.values[id.0 as usize].clone(),
            Template::Path { path, .. } => serde_json::Value::String(path.text().to_owned()),
            Template::Intrinsic { call, .. } => serde_json::Value::String(call.to_string()),
            Template::Query(q) => serde_json::Value::String(query_source(q)),
            Template::Object(members) => serde_json::Value::Object(
                members
                    .iter()
                    .map(|(k, t)| match t {
                        Template::Path { .. } | Template::Intrinsic { .. } => {
                            (format!("{k}.$"), t.to_definition(consts))
                        }
                        _ => (k.to_string(), t.to_definition(consts)),
                    })
                    .collect(),
            ),
            Template::Array(items) => serde_json::Value::Array(items.iter().map(|t| t.to_definition(consts)).collect()),
        }
    }

    /// True when evaluating the template may read the context object.
    pub fn uses_context(&self) -> bool {
        match self {
            Template::Const(_) => false,
            Template::Path { path, .. } => path.root() == Root::Context,
            Template::Intrinsic { call, .. } => call.uses_context(),
            // `$states.context` (with `$$.State.EnteredTime`), `$now()`: both read the
            // state's entry time.
            Template::Query(_) => true,
            Template::Object(members) => members.iter().any(|(_, t)| t.uses_context()),
            Template::Array(items) => items.iter().any(|t| t.uses_context()),
        }
    }

    /// Builds the template's value against `env`. `consts` is the program's constant pool.
    pub fn eval<'a>(&'a self, env: &dyn Env<'a>, consts: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
        match self {
            Template::Const(id) => Ok(consts[id.0 as usize]),
            Template::Path { field, path } => path.eval(env).map_err(|_| {
                EvalError::runtime(format!(
                    "The JSONPath '{}' specified for the field '{}' could not be found in the input '{}'",
                    path.text(),
                    field,
                    env.input().to_json_string()
                ))
            }),
            Template::Intrinsic { call, .. } => call.eval(env),
            Template::Query(q) => q.eval(env),
            Template::Object(members) => {
                let bump = env.bump();
                let out = bump.alloc_slice_fill_copy(members.len(), ("", Value::Null));
                for (slot, (key, t)) in out.iter_mut().zip(members.iter()) {
                    // Keys live in the program, which outlives the execution: no copy.
                    *slot = (&**key, t.eval(env, consts)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => {
                let out = env.bump().alloc_slice_fill_copy(items.len(), Value::Null);
                for (slot, t) in out.iter_mut().zip(items.iter()) {
                    *slot = t.eval(env, consts)?;
                }
                Ok(Value::Array(out))
            }
        }
    }
}

/// First pass: every object becomes `Object`, every leaf a `Const` placeholder or a
/// dynamic leaf. `fold` then merges constant subtrees.
fn build(value: &serde_json::Value, pointer: &str, names: &mut Interner, diags: &mut Diagnostics) -> Template {
    match value {
        serde_json::Value::Object(map) => {
            let mut members = Vec::with_capacity(map.len());
            for (key, v) in map {
                let here = pointer_push(pointer, key);
                if let Some(stripped) = key.strip_suffix(".$") {
                    let Some(text) = v.as_str() else {
                        diags.error(
                            code::WRONG_TYPE,
                            here,
                            format!(
                                "the value of '{key}' must be a string holding a path or an intrinsic function call"
                            ),
                        );
                        continue;
                    };
                    match Dynamic::parse(text, names) {
                        Ok(Dynamic::Path(path)) => {
                            members.push((stripped.into(), Template::Path { field: key.as_str().into(), path }))
                        }
                        Ok(Dynamic::Intrinsic(call)) => {
                            members.push((stripped.into(), Template::Intrinsic { field: key.as_str().into(), call }))
                        }
                        Err(msg) => {
                            let c = if intrinsics::is_intrinsic(text) { code::BAD_INTRINSIC } else { code::BAD_PATH };
                            diags.error(c, here, msg);
                        }
                    }
                } else {
                    members.push((key.as_str().into(), build(v, &here, names, diags)));
                }
            }
            Template::Object(members.into())
        }
        serde_json::Value::Array(items) => Template::Array(
            items.iter().enumerate().map(|(i, v)| build(v, &format!("{pointer}/{i}"), names, diags)).collect(),
        ),
        // Scalars are folded by the caller; the id is a placeholder until then.
        _ => Template::Const(ConstId(u32::MAX)),
    }
}

/// [`build`] for JSONata mode: `{% %}` strings are queries, everything else is literal.
fn build_jsonata(
    value: &serde_json::Value,
    pointer: &str,
    field: &str,
    names: &mut Interner,
    diags: &mut Diagnostics,
) -> Template {
    match value {
        serde_json::Value::Object(map) => Template::Object(
            map.iter()
                .map(|(key, v)| {
                    let t = build_jsonata(v, &pointer_push(pointer, key), &format!("{field}/{key}"), names, diags);
                    (key.as_str().into(), t)
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => Template::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| build_jsonata(v, &format!("{pointer}/{i}"), &format!("{field}/{i}"), names, diags))
                .collect(),
        ),
        serde_json::Value::String(s) => match Query::inner(s) {
            Some(inner) => match Query::parse(inner, field, names) {
                Ok(q) => Template::Query(Arc::new(q)),
                Err(e) => {
                    diags.error(
                        code::BAD_JSONATA,
                        pointer,
                        format!("invalid JSONata expression '{}': {e}", inner.trim()),
                    );
                    Template::Const(ConstId(u32::MAX))
                }
            },
            None => Template::Const(ConstId(u32::MAX)),
        },
        _ => Template::Const(ConstId(u32::MAX)),
    }
}

fn is_static(t: &Template) -> bool {
    match t {
        Template::Const(_) => true,
        Template::Path { .. } | Template::Intrinsic { .. } | Template::Query(_) => false,
        Template::Object(m) => m.iter().all(|(_, t)| is_static(t)),
        Template::Array(items) => items.iter().all(is_static),
    }
}

/// Replaces every maximal static subtree by one constant built from the source JSON.
fn fold(t: Template, source: &serde_json::Value, consts: &mut Consts) -> Template {
    if is_static(&t) {
        return Template::Const(consts.add(source.clone()));
    }
    match (t, source) {
        (Template::Object(members), serde_json::Value::Object(map)) => {
            // `members` follows `map`'s order, minus nothing (errors abort before folding).
            let folded = members
                .into_vec()
                .into_iter()
                .zip(map.values())
                .map(|((k, t), src)| (k, fold(t, src, consts)))
                .collect();
            Template::Object(folded)
        }
        (Template::Array(items), serde_json::Value::Array(src)) => {
            Template::Array(items.into_vec().into_iter().zip(src).map(|(t, s)| fold(t, s, consts)).collect())
        }
        (t, _) => t,
    }
}

impl fmt::Display for Template {
    /// A compact rendering for disassembly: constants as `#id`, dynamic leaves as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Template::Const(id) => write!(f, "#{}", id.0),
            Template::Path { path, .. } => write!(f, "{}", path.text()),
            Template::Intrinsic { call, .. } => write!(f, "{}", call.text()),
            Template::Query(q) => f.write_str(&query_source(q)),
            Template::Object(members) => {
                f.write_str("{")?;
                for (i, (k, t)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {t}")?;
                }
                f.write_str("}")
            }
            Template::Array(items) => {
                f.write_str("[")?;
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str("]")
            }
        }
    }
}
