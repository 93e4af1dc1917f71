//! `jsonata`: the JSONata expressions of JSONata-mode states (the text between `{%` and `%}`).
//!
//! Input: an expression's text, parsed once into an [`Expr`] (at compile time); per
//! evaluation, the arena values it may read: the context value `$`, the `$states` object
//! (`input`, `result`, `errorOutput`, `context`) and the workflow variables it names, plus
//! a random seed and the current time ([`Bindings`]).
//! Output: an arena [`Value`], or a [`QueryError`] carrying AWS's error name
//! (`States.QueryEvaluationError`) and the detail of its cause; a text that does not parse
//! is a [`JsonataError`] with the byte offset of the problem.
//! Never touches: the VM, the definition, I/O, the system clock or an OS random source.
//!
//! # Engine
//!
//! Expressions run on the `jsonata-core` crate (pinned to an exact version in the workspace
//! manifest), a port of the reference jsonata-js. AWS runs jsonata-js **2.0.6**;
//! `engine/tests/jsonata_diff.rs` runs every expression of the JSONata conformance cases and
//! a sample of the reference test suite through this module and through jsonata-js 2.0.6
//! itself, and lists each disagreement in `tests/jsonata/known-disagreements.txt`. The crate
//! is used only here, behind [`Expr`], [`Bindings`], [`QueryError`] and [`JsonataError`], so
//! it can be swapped without touching the rest of the engine.
//!
//! # The value boundary
//!
//! The crate evaluates over its own reference-counted values, so arena values are copied
//! into them before an evaluation and the result is copied back into the arena. Only what
//! an expression can reach is converted: the workflow variables it names, and of `$states`
//! only the fields it reads when it reads them as `$states.<field>` (the parsed expression
//! knows which). Numbers follow JavaScript, as in AWS: every JSONata number is a double, so
//! an integer beyond 2^53 loses precision on the way in. On the way out, a number with no
//! fractional part below 2^63 becomes [`Value::Int`] (JavaScript prints `3`, not `3.0`,
//! and AWS's Jackson then reads an integer); anything else stays [`Value::Float`] and is
//! printed Java-style by [`Value::write_json`] (`1e21` → `1.0E21`, as Jackson prints the
//! double that JavaScript's `1e+21` becomes); `-0` becomes `0` (`JSON.stringify(-0)` is
//! `"0"`, and `$parse("-0")` is recorded as `0`). Values JSON cannot hold follow
//! `JSON.stringify`: a function or `undefined` is dropped from an object and is `null` in
//! an array; a non-finite number is `null`.
//!
//! # AWS's functions and restrictions
//!
//! Beside the standard library AWS adds `$partition`, `$range`, `$hash`, `$random` (with an
//! optional seed), `$uuid` and `$parse`, and removes `$eval` (AWS developer guide,
//! "Transforming data with JSONata"). A call of `$eval` fails as the call of any function
//! that does not exist does on AWS (`T1006: Attempted to invoke a non-function`, recorded
//! for `$randomSeeded`). `$random`, `$uuid` and `$shuffle` draw from a splitmix64 stream
//! seeded by [`Bindings::random_seed`]; `$now` and `$millis` read [`Bindings::now_millis`]:
//! the engine's clock and random source, never the machine's. AWS does not document the
//! wording of its own functions' errors; ours are written in jsonata-js's style
//! (`T0410: Argument 1 of function "partition" does not match function signature`).
//!
//! # Errors
//!
//! Every evaluation failure is `States.QueryEvaluationError` (catchable and retriable). Its
//! cause names the expression and the field it was written in, which only the caller
//! knows, so [`QueryError::cause`] takes both and produces AWS's sentences (recorded in the
//! conformance cases):
//! - `The JSONata expression '<expr>' specified for the field '<field>' threw an error
//!   during evaluation. T1006: Attempted to invoke a non-function`
//! - `... returned nothing (undefined).` — AWS fails wherever an expression yields
//!   `undefined`, because JSON cannot hold it;
//! - `... returned an unexpected result type. Expected 'array', but was 'null' for value:
//!   null` — built by the caller with [`QueryError::unexpected_type`] where a field needs a
//!   type (Map `Items`).
//!
//! The VM adds AWS's "An error occurred while executing the state ..." prefix, as it does
//! for `States.Runtime` causes.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::LazyLock;

use bumpalo::Bump;
use indexmap::IndexMap;
use jsonata_core::ast::{AstNode, BinaryOp, PathStep, Stage};
use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError};
use jsonata_core::parser::{self, ParserError};
use jsonata_core::value::JValue;
use md5::Digest;

use crate::eval::splitmix64;
use crate::value::Value;

/// AWS's error for every failed JSONata evaluation.
pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";

/// A parsed JSONata expression. Parsed once; evaluated any number of times, from any thread
/// (it holds no reference-counted values).
pub struct Expr {
    source: Box<str>,
    ast: AstNode,
    /// The `$name`s the expression mentions, other than `states` and the AWS functions: the
    /// only workflow variables an evaluation converts.
    variables: Box<[Box<str>]>,
    /// How the expression reads `$states`.
    states: StatesUse,
    /// Which of the functions this module provides (or replaces) the expression names.
    functions: u16,
}

// The compiled program is shared between threads; a parsed expression must be too.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Expr>();
};

/// Which parts of `$states` an expression reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StatesUse {
    None,
    /// Only as `$states.<field>...`: these fields.
    Fields(Vec<Box<str>>),
    /// Some other way (`$states` alone, `$states[...]`, `$keys($states)`): all of it.
    Whole,
}

/// What an evaluation may read besides `$`.
pub struct Bindings<'a, 'b> {
    /// The `$states` object (`input`, `result`, `errorOutput`, `context` as the state
    /// provides them); `None` leaves `$states` undefined.
    pub states: Option<Value<'a>>,
    /// Looks up a workflow variable by name (without the `$`). Called once per variable the
    /// expression mentions, at the start of each evaluation.
    pub variables: &'b dyn Fn(&str) -> Option<Value<'a>>,
    /// Seeds the stream `$random()`, `$uuid()` and `$shuffle()` draw from. The caller takes
    /// it from the execution's random source, fresh for each evaluation, so that executions
    /// are deterministic under a fixed seed and two evaluations do not repeat each other.
    pub random_seed: u64,
    /// What `$now()` and `$millis()` return: milliseconds since the Unix epoch, from the
    /// engine's clock. jsonata-js fixes the time once per evaluation; so does this.
    pub now_millis: i64,
}

impl<'a> Bindings<'a, 'a> {
    /// No `$states`, no variables, seed 0, time 0 (tests and tools).
    pub fn empty() -> Bindings<'a, 'a> {
        Bindings { states: None, variables: &|_| None, random_seed: 0, now_millis: 0 }
    }
}

/// A JSONata text that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct JsonataError {
    /// JSONata's error code (`S0202`), when the parser gives one.
    pub code: Option<String>,
    /// The parser's message, including the code (`S0202: Expected ")", got "]"`).
    pub message: String,
    /// Byte offset into the expression where the problem shows: the end of the shortest
    /// prefix of the text that already fails for a reason other than ending too early (the
    /// text's length when it only ends too early, as with an unterminated string).
    pub position: usize,
}

/// Why an evaluation failed. Always [`QUERY_EVALUATION_ERROR`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// JSONata raised an error: `message` is its code and text (`T1006: Attempted to invoke
    /// a non-function`), or the text alone when it has no code.
    Evaluation { message: String },
    /// The expression returned `undefined` (nothing), which JSON cannot hold.
    Undefined,
    /// The value does not have the type the field needs (raised by the caller).
    UnexpectedType { expected: &'static str, actual: &'static str, value: String },
}

impl QueryError {
    /// The ASL error name.
    pub fn error_name(&self) -> &'static str {
        QUERY_EVALUATION_ERROR
    }

    /// JSONata's error code (`T1006`), for evaluation errors that have one.
    pub fn code(&self) -> Option<&str> {
        match self {
            QueryError::Evaluation { message } => jsonata_core::evaluator::error_code_prefix(message),
            _ => None,
        }
    }

    /// The error for a field that needs a value of type `expected` (`array`, `number`,
    /// `string`, ...) and got `value`.
    pub fn unexpected_type(expected: &'static str, value: Value<'_>) -> QueryError {
        QueryError::UnexpectedType { expected, actual: value.type_name(), value: value.to_json_string() }
    }

    /// AWS's cause text for this error, for `expression` (as written between `{%` and `%}`,
    /// trimmed) in `field` (`Output/FunctionResult`, `Arguments/FunctionName`, `Items`),
    /// without the VM's "An error occurred while executing the state ..." prefix.
    pub fn cause(&self, expression: &str, field: &str) -> String {
        let head = format!("The JSONata expression '{expression}' specified for the field '{field}'");
        match self {
            QueryError::Evaluation { message } => format!("{head} threw an error during evaluation. {message}"),
            QueryError::Undefined => format!("{head} returned nothing (undefined)."),
            QueryError::UnexpectedType { expected, actual, value } => {
                format!("{head} returned an unexpected result type. Expected '{expected}', but was '{actual}' for value: {value}")
            }
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Evaluation { message } => write!(f, "{QUERY_EVALUATION_ERROR}: {message}"),
            QueryError::Undefined => write!(f, "{QUERY_EVALUATION_ERROR}: returned nothing (undefined)"),
            QueryError::UnexpectedType { expected, actual, value } => {
                write!(f, "{QUERY_EVALUATION_ERROR}: expected '{expected}', but was '{actual}' for value: {value}")
            }
        }
    }
}

impl std::error::Error for QueryError {}

// ---------------------------------------------------------------------------------------
// Parsing

impl Expr {
    /// Parses an expression (the text between `{%` and `%}`).
    pub fn parse(source: &str) -> Result<Expr, JsonataError> {
        let ast = parser::parse(source).map_err(|e| parse_error(source, &e))?;
        if let Some(op) = newer_operator(&ast) {
            // `??` and `?:` arrived in jsonata-js 2.1; AWS's 2.0.6 reads `?` as the start of a
            // condition and fails on the second character.
            let at = source.find(op).map_or(source.len(), |p| p + 1);
            return Err(JsonataError {
                code: Some("S0211".into()),
                message: format!("S0211: The symbol {} cannot be used as a unary operator", &op[1..]),
                position: at + 1,
            });
        }
        let mut uses = Uses::default();
        uses.node(&ast);
        let states = if uses.states_whole || (uses.parent_operator && !uses.states_fields.is_empty()) {
            StatesUse::Whole
        } else if uses.states_fields.is_empty() {
            StatesUse::None
        } else {
            StatesUse::Fields(uses.states_fields)
        };
        Ok(Expr {
            source: source.into(),
            ast,
            variables: uses.variables.into_boxed_slice(),
            states,
            functions: uses.functions,
        })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The workflow variables the expression mentions (names without `$`; `states` is
    /// never one). Some may be bound inside the expression itself; the VM can use the list
    /// to report references to variables never assigned.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|v| &**v)
    }

    /// Whether the expression reads `$states` at all.
    pub fn reads_states(&self) -> bool {
        self.states != StatesUse::None
    }

    /// Evaluates against `input` (`$`) with `bindings`; the result is allocated in `bump`.
    pub fn eval<'a>(
        &self,
        bump: &'a Bump,
        input: Value<'a>,
        bindings: &Bindings<'a, '_>,
    ) -> Result<Value<'a>, QueryError> {
        let mut ctx = Context::new();
        if let Some(states) = bindings.states {
            match &self.states {
                StatesUse::None => {}
                StatesUse::Whole => ctx.bind("states".into(), to_jvalue(states)),
                StatesUse::Fields(fields) => {
                    let mut map = IndexMap::with_capacity(fields.len());
                    for field in fields {
                        if let Some(v) = states.get(field) {
                            map.insert(field.to_string(), to_jvalue(v));
                        }
                    }
                    ctx.bind("states".into(), JValue::object(map));
                }
            }
        }
        for name in self.variables.iter() {
            if let Some(v) = (bindings.variables)(name) {
                ctx.bind(name.to_string(), to_jvalue(v));
            }
        }
        let mut ev = Evaluator::with_context(ctx);
        if self.functions != 0 {
            let state = Rc::new(CallState { rng: Cell::new(bindings.random_seed), now_millis: bindings.now_millis });
            register_functions(&mut ev, self.functions, &state);
        }
        let result = ev.evaluate(&self.ast, &to_jvalue(input)).map_err(evaluation_error)?;
        from_jvalue(bump, &result)?.ok_or(QueryError::Undefined)
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

/// The error for `source`, located by re-parsing prefixes (the crate's parser errors carry
/// no position): the shortest prefix that fails "hard" (for a reason other than ending too
/// early) ends where the problem is. Only invalid definitions pay for this.
fn parse_error(source: &str, e: &ParserError) -> JsonataError {
    let message = e.to_string();
    let code = jsonata_core::evaluator::error_code_prefix(&message).map(str::to_owned);
    let ends: Vec<usize> = source.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
    // Binary search for the first prefix end whose parse fails hard. A prefix that fails
    // hard stays failing when extended (the parser reads left to right), so the predicate is
    // monotone for the errors that matter.
    let (mut lo, mut hi) = (0usize, ends.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails_hard(&source[..ends[mid]]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let position = ends.get(lo).copied().unwrap_or(source.len());
    JsonataError { code, message, position }
}

fn fails_hard(prefix: &str) -> bool {
    match parser::parse(prefix) {
        Ok(_) => false,
        Err(e) => {
            !matches!(
                e,
                ParserError::UnexpectedEnd
                    | ParserError::UnclosedString
                    | ParserError::UnclosedComment
                    | ParserError::UnclosedBacktick
            ) && !matches!(&e, ParserError::UnexpectedToken(t) if t == "Eof")
                && !matches!(&e, ParserError::Expected { found, .. } if found == "Eof")
        }
    }
}

/// The first operator jsonata-js 2.0.6 does not have (`??`, `?:`), if the expression uses one.
fn newer_operator(ast: &AstNode) -> Option<&'static str> {
    let mut found = None;
    walk(ast, &mut |n| {
        if let AstNode::Binary { op, .. } = n {
            match op {
                BinaryOp::Coalesce => found = found.or(Some("??")),
                BinaryOp::Default => found = found.or(Some("?:")),
                _ => {}
            }
        }
    });
    found
}

/// What an expression names, collected once at parse time.
#[derive(Default)]
struct Uses {
    variables: Vec<Box<str>>,
    states_fields: Vec<Box<str>>,
    states_whole: bool,
    /// The expression uses `%` (parent), which can climb from `$states.input` back to
    /// `$states` itself: then all of `$states` is converted.
    parent_operator: bool,
    functions: u16,
}

impl Uses {
    fn name(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        if name == "states" {
            self.states_whole = true;
            return;
        }
        if let Some(f) = Function::from_name(name) {
            self.functions |= f as u16;
        }
        if !self.variables.iter().any(|v| &**v == name) {
            self.variables.push(name.into());
        }
    }

    fn node(&mut self, n: &AstNode) {
        match n {
            AstNode::Variable(name) => self.name(name),
            AstNode::Function { name, args, .. } => {
                self.name(name.trim_start_matches('$'));
                args.iter().for_each(|a| self.node(a));
            }
            AstNode::Path { steps } => {
                let mut rest: &[PathStep] = steps;
                if let [head, field, ..] = &steps[..] {
                    if let (AstNode::Variable(v), AstNode::Name(f)) = (&head.node, &field.node) {
                        let plain = head.stages.is_empty()
                            && head.focus.is_none()
                            && head.index_var.is_none()
                            && head.ancestor_label.is_none();
                        if v == "states" && plain {
                            if !self.states_fields.iter().any(|x| &**x == f.as_str()) {
                                self.states_fields.push(f.as_str().into());
                            }
                            rest = &steps[1..];
                        }
                    }
                }
                for step in rest {
                    self.node(&step.node);
                    for stage in &step.stages {
                        self.stage(stage);
                    }
                }
            }
            AstNode::Parent(_) => self.parent_operator = true,
            other => children(other, &mut |c| self.node(c)),
        }
    }

    fn stage(&mut self, stage: &Stage) {
        if let Stage::Filter(e) = stage {
            self.node(e);
        }
    }
}

/// Calls `f` on `n` and every node below it.
fn walk(n: &AstNode, f: &mut dyn FnMut(&AstNode)) {
    f(n);
    children(n, &mut |c| walk(c, f));
}

/// Calls `f` on each direct child of `n`. Exhaustive on purpose: a new node kind in an
/// upgraded crate fails to compile here rather than hiding a variable reference.
fn children(n: &AstNode, f: &mut dyn FnMut(&AstNode)) {
    match n {
        AstNode::String(_)
        | AstNode::Name(_)
        | AstNode::Number(_)
        | AstNode::Boolean(_)
        | AstNode::Null
        | AstNode::Undefined
        | AstNode::Placeholder
        | AstNode::Regex { .. }
        | AstNode::Variable(_)
        | AstNode::ParentVariable(_)
        | AstNode::Wildcard
        | AstNode::Descendant
        | AstNode::Parent(_) => {}
        AstNode::Path { steps } => {
            for step in steps {
                f(&step.node);
                for stage in &step.stages {
                    if let Stage::Filter(e) = stage {
                        f(e);
                    }
                }
            }
        }
        AstNode::Binary { lhs, rhs, .. } => {
            f(lhs);
            f(rhs);
        }
        AstNode::Unary { operand, .. } => f(operand),
        AstNode::Function { args, .. } => args.iter().for_each(f),
        AstNode::Call { procedure, args } => {
            f(procedure);
            args.iter().for_each(f);
        }
        AstNode::Lambda { body, .. } => f(body),
        AstNode::Array(items) | AstNode::Block(items) | AstNode::ArrayGroup(items) => items.iter().for_each(f),
        AstNode::Object(pairs) => pairs.iter().for_each(|(k, v)| {
            f(k);
            f(v);
        }),
        AstNode::ObjectTransform { input, pattern } => {
            f(input);
            pattern.iter().for_each(|(k, v)| {
                f(k);
                f(v);
            });
        }
        AstNode::Conditional { condition, then_branch, else_branch } => {
            f(condition);
            f(then_branch);
            if let Some(e) = else_branch {
                f(e);
            }
        }
        AstNode::FunctionApplication(e) => f(e),
        AstNode::Sort { input, terms } => {
            f(input);
            terms.iter().for_each(|(t, _)| f(t));
        }
        AstNode::Transform { location, update, delete } => {
            f(location);
            f(update);
            if let Some(d) = delete {
                f(d);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The value boundary

/// Copies an arena value into the crate's representation.
pub fn to_jvalue(v: Value<'_>) -> JValue {
    match v {
        Value::Null => JValue::Null,
        Value::Bool(b) => JValue::Bool(b),
        Value::Int(i) => JValue::Number(i as f64),
        Value::Float(f) => JValue::Number(f),
        Value::Str(s) => JValue::string(s),
        Value::Array(items) => JValue::array(items.iter().map(|v| to_jvalue(*v)).collect()),
        Value::Object(members) => {
            let mut map = IndexMap::with_capacity(members.len());
            for (k, v) in members {
                map.insert((*k).to_owned(), to_jvalue(*v));
            }
            JValue::object(map)
        }
    }
}

/// Copies a result into the arena. `Ok(None)` is `undefined` (also a function, which JSON
/// cannot hold); see the module doc for numbers.
pub fn from_jvalue<'a>(bump: &'a Bump, v: &JValue) -> Result<Option<Value<'a>>, QueryError> {
    Ok(Some(match v {
        JValue::Null => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(f) => number(*f),
        JValue::String(s) => Value::Str(bump.alloc_str(s)),
        JValue::Array(items) => {
            let out = bump.alloc_slice_fill_copy(items.len(), Value::Null);
            for (slot, item) in out.iter_mut().zip(items.iter()) {
                *slot = from_jvalue(bump, item)?.unwrap_or(Value::Null);
            }
            Value::Array(out)
        }
        JValue::Object(map) => {
            let out = bump.alloc_slice_fill_copy(map.len(), ("", Value::Null));
            let mut n = 0;
            for (k, item) in map.iter() {
                if let Some(value) = from_jvalue(bump, item)? {
                    out[n] = (&*bump.alloc_str(k), value);
                    n += 1;
                }
            }
            Value::Object(&out[..n])
        }
        JValue::Undefined | JValue::Lambda(_) | JValue::Builtin { .. } | JValue::Regex { .. } => return Ok(None),
    }))
}

/// A JavaScript number as the engine's value (see the module doc).
fn number(f: f64) -> Value<'static> {
    if !f.is_finite() {
        Value::Null
    } else if f.fract() == 0.0 && f.abs() < (1u64 << 63) as f64 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

fn evaluation_error(e: EvaluatorError) -> QueryError {
    let message = e.message();
    // jsonata-core names the missing function after jsonata-js's sentence; AWS quotes the
    // sentence alone (`T1006: Attempted to invoke a non-function`).
    let message = match message.strip_prefix("T1006: Attempted to invoke a non-function") {
        Some(_) => "T1006: Attempted to invoke a non-function",
        None => message,
    };
    QueryError::Evaluation { message: message.to_owned() }
}

// ---------------------------------------------------------------------------------------
// AWS's functions, and the standard ones that must not read the machine's clock or random
// source

/// The functions this module provides or replaces, as bits of `Expr::functions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
enum Function {
    Partition = 1 << 0,
    Range = 1 << 1,
    Hash = 1 << 2,
    Random = 1 << 3,
    Uuid = 1 << 4,
    Parse = 1 << 5,
    Eval = 1 << 6,
    Now = 1 << 7,
    Millis = 1 << 8,
    Shuffle = 1 << 9,
}

impl Function {
    const ALL: [Function; 10] = [
        Function::Partition,
        Function::Range,
        Function::Hash,
        Function::Random,
        Function::Uuid,
        Function::Parse,
        Function::Eval,
        Function::Now,
        Function::Millis,
        Function::Shuffle,
    ];

    fn name(self) -> &'static str {
        match self {
            Function::Partition => "partition",
            Function::Range => "range",
            Function::Hash => "hash",
            Function::Random => "random",
            Function::Uuid => "uuid",
            Function::Parse => "parse",
            Function::Eval => "eval",
            Function::Now => "now",
            Function::Millis => "millis",
            Function::Shuffle => "shuffle",
        }
    }

    fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the crate has a built-in of this name (replaced rather than added).
    fn replaces_builtin(self) -> bool {
        matches!(self, Function::Random | Function::Eval | Function::Now | Function::Millis | Function::Shuffle)
    }
}

/// What the functions of one evaluation share.
struct CallState {
    rng: Cell<u64>,
    now_millis: i64,
}

impl CallState {
    /// A double in [0, 1) with 53 random bits, as `Math.random()` gives.
    fn next_f64(&self) -> f64 {
        unit_f64(splitmix64(&self.rng))
    }
}

fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn register_functions(ev: &mut Evaluator, used: u16, state: &Rc<CallState>) {
    for f in Function::ALL {
        if used & f as u16 == 0 {
            continue;
        }
        let st = Rc::clone(state);
        let host = move |args: &[JValue]| call(f, args, &st);
        let registered =
            if f.replaces_builtin() { ev.register_fn_override(f.name(), host) } else { ev.register_fn(f.name(), host) };
        // Both calls fail only for names the crate reserves (a built-in for `register_fn`, a
        // compiled built-in for the override); the names above are neither in the pinned
        // version, which the unit tests check by calling each function.
        debug_assert!(registered.is_ok(), "cannot register ${}: {registered:?}", f.name());
    }
}

fn call(f: Function, args: &[JValue], st: &CallState) -> Result<JValue, EvaluatorError> {
    match f {
        Function::Partition => partition(args),
        Function::Range => range(args),
        Function::Hash => hash(args),
        Function::Random => random(args, st),
        Function::Uuid => {
            arity("uuid", args, 0, 0)?;
            Ok(JValue::string(uuid_v4(st)))
        }
        Function::Parse => parse(args),
        Function::Eval => Err(EvaluatorError::ReferenceError("T1006: Attempted to invoke a non-function".into())),
        Function::Now => now(args, st),
        Function::Millis => {
            arity("millis", args, 0, 0)?;
            Ok(JValue::Number(st.now_millis as f64))
        }
        Function::Shuffle => shuffle(args, st),
    }
}

fn signature_error(name: &str, index: usize) -> EvaluatorError {
    EvaluatorError::TypeError(format!(
        "T0410: Argument {index} of function \"{name}\" does not match function signature"
    ))
}

fn arity(name: &str, args: &[JValue], min: usize, max: usize) -> Result<(), EvaluatorError> {
    if args.len() > max {
        return Err(signature_error(name, max + 1));
    }
    if args.len() < min {
        return Err(signature_error(name, args.len() + 1));
    }
    Ok(())
}

fn integer_arg(name: &str, args: &[JValue], index: usize) -> Result<Option<i64>, EvaluatorError> {
    match args.get(index) {
        None | Some(JValue::Undefined) => Ok(None),
        Some(JValue::Number(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(Some(*n as i64)),
        Some(_) => Err(signature_error(name, index + 1)),
    }
}

/// `$partition(array, size)`: the array cut into chunks of `size` (the last may be
/// shorter), as `States.ArrayPartition` does. Recorded: `$partition([0], 1)` is `[[0]]`.
fn partition(args: &[JValue]) -> Result<JValue, EvaluatorError> {
    arity("partition", args, 2, 2)?;
    let items: &[JValue] = match &args[0] {
        JValue::Undefined => return Ok(JValue::Undefined),
        JValue::Array(items) => items,
        _ => return Err(signature_error("partition", 1)),
    };
    let size = match integer_arg("partition", args, 1)? {
        Some(n) if n > 0 => n as usize,
        _ => return Err(signature_error("partition", 2)),
    };
    Ok(JValue::array(items.chunks(size).map(|c| JValue::array(c.to_vec())).collect()))
}

/// The most items `$range` makes: jsonata-js's bound on its own range operator (`[a..b]`).
const MAX_RANGE: usize = 10_000_000;

/// `$range(start, end, step)`: `start`, `start + step`, ... up to and including `end` (down
/// to, for a negative step). Recorded: `$range(0, 10, 3)` is `[0,3,6,9]` and
/// `$range(1, 9, 9)` is `1`: the result is a sequence, which JSONata unwraps when it holds
/// one item (and which is `undefined` when it holds none).
fn range(args: &[JValue]) -> Result<JValue, EvaluatorError> {
    arity("range", args, 3, 3)?;
    let mut nums = [0.0f64; 3];
    for (i, slot) in nums.iter_mut().enumerate() {
        match &args[i] {
            JValue::Undefined => return Ok(JValue::Undefined),
            JValue::Number(n) => *slot = *n,
            _ => return Err(signature_error("range", i + 1)),
        }
    }
    let [start, end, step] = nums;
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
        return Err(signature_error("range", 3));
    }
    let count = ((end - start) / step).floor();
    if count < 0.0 {
        return Ok(JValue::Undefined);
    }
    if count >= MAX_RANGE as f64 {
        return Err(EvaluatorError::EvaluationError(format!(
            "D2014: The size of the sequence allocated by the range function must not exceed {MAX_RANGE}, attempted to allocate {}",
            count + 1.0
        )));
    }
    let items = (0..=count as usize).map(|i| JValue::Number(start + i as f64 * step)).collect();
    Ok(JValue::sequence(items))
}

/// `$hash(string, algorithm)`: the lowercase hex digest, with `States.Hash`'s algorithms.
fn hash(args: &[JValue]) -> Result<JValue, EvaluatorError> {
    arity("hash", args, 2, 2)?;
    let data = match &args[0] {
        JValue::Undefined => return Ok(JValue::Undefined),
        JValue::String(s) => s.as_bytes(),
        _ => return Err(signature_error("hash", 1)),
    };
    let digest: Vec<u8> = match args[1].as_str() {
        Some("MD5") => md5::Md5::digest(data).to_vec(),
        Some("SHA-1") => sha1::Sha1::digest(data).to_vec(),
        Some("SHA-256") => sha2::Sha256::digest(data).to_vec(),
        Some("SHA-384") => sha2::Sha384::digest(data).to_vec(),
        Some("SHA-512") => sha2::Sha512::digest(data).to_vec(),
        Some(other) => {
            return Err(EvaluatorError::EvaluationError(format!(
                "The hash algorithm '{other}' is not supported; use one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"
            )))
        }
        None => return Err(signature_error("hash", 2)),
    };
    Ok(JValue::string(hex::encode(digest)))
}

/// `$random()`: the next double in [0, 1) of the evaluation's stream. `$random(seed)`: a
/// double in [0, 1) that depends only on the seed (a number), so the same seed always gives
/// the same value. AWS does not say which generator it uses; values differ from AWS's.
fn random(args: &[JValue], st: &CallState) -> Result<JValue, EvaluatorError> {
    arity("random", args, 0, 1)?;
    match args.first() {
        None | Some(JValue::Undefined) => Ok(JValue::Number(st.next_f64())),
        Some(JValue::Number(seed)) => {
            let bits = if seed.fract() == 0.0 && seed.abs() < 9.0e15 { *seed as i64 as u64 } else { seed.to_bits() };
            Ok(JValue::Number(unit_f64(splitmix64(&Cell::new(bits)))))
        }
        Some(_) => Err(signature_error("random", 1)),
    }
}

/// A version 4 UUID from the evaluation's stream.
fn uuid_v4(st: &CallState) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&splitmix64(&st.rng).to_le_bytes());
    bytes[8..].copy_from_slice(&splitmix64(&st.rng).to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// `$parse(text)`: the JSON value `text` holds. Recorded: `$parse("-0")` is `0`,
/// `$parse("[1, 2, \"HelloWorld\"]")` the array.
fn parse(args: &[JValue]) -> Result<JValue, EvaluatorError> {
    arity("parse", args, 1, 1)?;
    match &args[0] {
        JValue::Undefined => Ok(JValue::Undefined),
        JValue::String(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => Ok(JValue::from(v)),
            Err(e) => Err(EvaluatorError::EvaluationError(format!("The string '{s}' is not valid JSON: {e}"))),
        },
        _ => Err(signature_error("parse", 1)),
    }
}

/// `$now([picture [, timezone]])`: the evaluation's time as `$fromMillis` formats it.
fn now(args: &[JValue], st: &CallState) -> Result<JValue, EvaluatorError> {
    arity("now", args, 0, 2)?;
    static FROM_MILLIS: LazyLock<AstNode> =
        LazyLock::new(|| parser::parse("$fromMillis($ms, $picture, $tz)").expect("a fixed, valid expression"));
    let mut ctx = Context::new();
    ctx.bind("ms".into(), JValue::Number(st.now_millis as f64));
    for (name, arg) in ["picture", "tz"].into_iter().zip(args) {
        ctx.bind(name.into(), arg.clone());
    }
    Evaluator::with_context(ctx).evaluate(&FROM_MILLIS, &JValue::Null)
}

/// `$shuffle(array)`: a Fisher-Yates shuffle driven by the evaluation's stream.
fn shuffle(args: &[JValue], st: &CallState) -> Result<JValue, EvaluatorError> {
    arity("shuffle", args, 1, 1)?;
    let mut items = match &args[0] {
        JValue::Undefined => return Ok(JValue::Undefined),
        JValue::Array(items) => items.to_vec(),
        other => vec![other.clone()],
    };
    for i in (1..items.len()).rev() {
        let j = (st.next_f64() * (i + 1) as f64) as usize;
        items.swap(i, j);
    }
    Ok(JValue::array(items))
}
