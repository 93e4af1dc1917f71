//! `eval`: what the compiler's sub-languages (paths, intrinsic functions, Choice rules,
//! payload templates) read while they run, and how they fail.
//!
//! Input: an [`Env`] supplied by the VM (the current `$`, the context object `$$`, the
//! workflow variables, the arena, the execution's random source). Output: values or an
//! [`EvalError`] that the VM turns into an ASL error with AWS's cause wording.
//! Never touches: the program layout or execution scheduling.

use std::cell::Cell;

use bumpalo::Bump;

use crate::intern::Sym;
use crate::value::Value;

/// Everything a compiled expression may read. Implemented by the VM for each evaluation
/// (the same compiled path reads the effective input in `Parameters` and the task result
/// in `ResultSelector`).
pub trait Env<'a> {
    /// The arena new values are allocated in.
    fn bump(&self) -> &'a Bump;
    /// `$`: the value the expression is evaluated against.
    fn input(&self) -> Value<'a>;
    /// `$$`: the context object. Built on demand; only expressions that use `$$` pay for it.
    fn context(&self) -> Value<'a>;
    /// `$name`: a workflow variable visible from the current scope.
    fn variable(&self, name: Sym) -> Option<Value<'a>>;
    /// The next value of the execution's random source (injectable and seedable, so
    /// `States.UUID()`/`States.MathRandom` are deterministic in tests).
    fn random_u64(&self) -> u64;
    /// JSONata's `$states`: `input` (the state input), `context` (`$$`, built only when
    /// `context` is true: it costs more than the rest), and where the field being evaluated
    /// has them, `result` and `errorOutput`.
    fn states(&self, context: bool) -> Value<'a>;
    /// What JSONata's `$now()`/`$millis()` return: the engine's clock, in Unix milliseconds.
    fn now_millis(&self) -> i64;
    /// The execution's JSONata conversion memo, if it keeps one.
    fn jsonata_memo(&self) -> Option<&crate::jsonata::Memo>;
}

/// Which ASL error an evaluation failure raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `States.Runtime`: a path that does not resolve, a value of the wrong type where the
    /// engine needs one. Not catchable.
    Runtime,
    /// `States.IntrinsicFailure`: an intrinsic function rejected its arguments.
    IntrinsicFailure,
    /// `States.ResultPathMatchFailure`: `ResultPath` cannot be applied to the input.
    ResultPathMatchFailure,
    /// `States.QueryEvaluationError`: a JSONata expression failed, returned nothing, or
    /// returned a value of the wrong type. Catchable and retriable.
    QueryEvaluation,
}

impl ErrorKind {
    pub fn error_name(self) -> &'static str {
        match self {
            ErrorKind::Runtime => "States.Runtime",
            ErrorKind::IntrinsicFailure => "States.IntrinsicFailure",
            ErrorKind::ResultPathMatchFailure => "States.ResultPathMatchFailure",
            ErrorKind::QueryEvaluation => crate::jsonata::QUERY_EVALUATION_ERROR,
        }
    }
}

/// A failed evaluation: the error to raise and the detail text of its cause. The VM
/// prefixes runtime causes with AWS's "An error occurred while executing the state ..."
/// sentence, so `message` holds only the part after it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.error_name())]
pub struct EvalError {
    pub kind: ErrorKind,
    pub message: String,
}

impl EvalError {
    pub fn runtime(message: impl Into<String>) -> Self {
        EvalError { kind: ErrorKind::Runtime, message: message.into() }
    }

    pub fn intrinsic(message: impl Into<String>) -> Self {
        EvalError { kind: ErrorKind::IntrinsicFailure, message: message.into() }
    }

    pub fn query(message: impl Into<String>) -> Self {
        EvalError { kind: ErrorKind::QueryEvaluation, message: message.into() }
    }
}

/// A fixed environment for tests and tools: a given `$`, `$$` and variables, and a
/// deterministic random source (splitmix64 from a seed); `$states` is `{input: $,
/// context: $$}`, and `$now()` is `now_millis`.
pub struct StaticEnv<'a> {
    pub bump: &'a Bump,
    pub input: Value<'a>,
    pub context: Value<'a>,
    pub variables: Vec<(Sym, Value<'a>)>,
    pub seed: Cell<u64>,
    pub now_millis: i64,
}

impl<'a> StaticEnv<'a> {
    pub fn new(bump: &'a Bump, input: Value<'a>) -> Self {
        StaticEnv {
            bump,
            input,
            context: Value::EMPTY_OBJECT,
            variables: Vec::new(),
            seed: Cell::new(0x5eed),
            now_millis: 0,
        }
    }
}

impl<'a> Env<'a> for StaticEnv<'a> {
    fn bump(&self) -> &'a Bump {
        self.bump
    }
    fn input(&self) -> Value<'a> {
        self.input
    }
    fn context(&self) -> Value<'a> {
        self.context
    }
    fn variable(&self, name: Sym) -> Option<Value<'a>> {
        self.variables.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn random_u64(&self) -> u64 {
        splitmix64(&self.seed)
    }
    fn states(&self, context: bool) -> Value<'a> {
        let members = [("input", self.input), ("context", self.context)];
        crate::value::object(self.bump, &members[..if context { 2 } else { 1 }])
    }
    fn now_millis(&self) -> i64 {
        self.now_millis
    }
    fn jsonata_memo(&self) -> Option<&crate::jsonata::Memo> {
        None
    }
}

/// splitmix64: a tiny, good-enough generator for a `Cell<u64>` state.
pub fn splitmix64(state: &Cell<u64>) -> u64 {
    let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
    state.set(s);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
