//! `handlers`: what a Task state calls.
//!
//! Input: handlers registered by the embedding program by `Resource` ARN (exact, or a
//! pattern such as "any Lambda function"), and mocked responses. Output: a [`Binding`] per
//! Task, resolved once at compile time, which the VM invokes.
//! Never touches: the program layout, execution scheduling, I/O (asynchronous handlers do
//! their I/O in the future they return; the driver polls it).
//!
//! A synchronous handler runs inline on the executing thread and builds its result straight
//! into the execution's arena. An asynchronous handler receives owned JSON and returns a
//! future; the execution is suspended until the driver delivers the answer. Handlers must be
//! idempotent: like AWS, the engine may run a task again (Retry, or an Express execution
//! re-run after a crash).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::template::ConstId;
use crate::value::{Arena, Value};

/// A task's failure: the error name Retry/Catch match, and an optional cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    pub error: String,
    pub cause: Option<String>,
}

impl TaskError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskError { error: error.into(), cause: Some(cause.into()) }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(c) => write!(f, "{}: {c}", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// What a handler knows about the invocation.
#[derive(Clone, Copy, Debug)]
pub struct TaskContext<'c> {
    pub state_name: &'c str,
    pub resource: &'c str,
    /// 0 for the first attempt, then 1, 2, … for retries.
    pub retry_count: u32,
    /// `$$.Task.Token` for `.waitForTaskToken` tasks.
    pub task_token: Option<&'c str>,
    pub execution_arn: &'c str,
}

/// An owned copy of [`TaskContext`] for asynchronous handlers.
#[derive(Clone, Debug)]
pub struct OwnedTaskContext {
    pub state_name: String,
    pub resource: String,
    pub retry_count: u32,
    pub task_token: Option<String>,
    pub execution_arn: String,
    /// The execution's asynchronous call number: the same for the same call after a
    /// durable execution resumes (and different for every other call), so a handler can
    /// make its side effect idempotent with it.
    pub invocation: u64,
}

/// A handler that answers inline.
pub trait SyncHandler: Send + Sync {
    fn call<'a>(&self, ctx: &TaskContext<'_>, input: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError>;
}

impl<F> SyncHandler for F
where
    F: for<'a> Fn(&TaskContext<'_>, Value<'a>, Arena<'a>) -> Result<Value<'a>, TaskError> + Send + Sync,
{
    fn call<'a>(&self, ctx: &TaskContext<'_>, input: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
        self(ctx, input, arena)
    }
}

/// The future an asynchronous handler returns.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, TaskError>> + Send>>;

/// A handler that answers later (I/O). The execution is suspended meanwhile.
pub trait AsyncHandler: Send + Sync {
    fn call(&self, ctx: OwnedTaskContext, input: serde_json::Value) -> TaskFuture;
}

impl<F> AsyncHandler for F
where
    F: Fn(OwnedTaskContext, serde_json::Value) -> TaskFuture + Send + Sync,
{
    fn call(&self, ctx: OwnedTaskContext, input: serde_json::Value) -> TaskFuture {
        self(ctx, input)
    }
}

#[derive(Clone)]
pub enum Handler {
    Sync(Arc<dyn SyncHandler>),
    Async(Arc<dyn AsyncHandler>),
}

impl Handler {
    /// A synchronous handler from a closure over arena values.
    pub fn sync<F>(f: F) -> Handler
    where
        F: for<'a> Fn(&TaskContext<'_>, Value<'a>, Arena<'a>) -> Result<Value<'a>, TaskError> + Send + Sync + 'static,
    {
        Handler::Sync(Arc::new(f))
    }

    /// A synchronous handler from a closure over owned JSON (convenient, slower: the input
    /// and result are converted at the boundary).
    pub fn sync_json<F>(f: F) -> Handler
    where
        F: Fn(&TaskContext<'_>, serde_json::Value) -> Result<serde_json::Value, TaskError> + Send + Sync + 'static,
    {
        Handler::sync(move |ctx: &TaskContext<'_>, input: Value<'_>, arena: Arena<'_>| {
            f(ctx, input.to_serde()).map(|out| arena.from_serde(&out))
        })
    }

    /// An asynchronous handler.
    pub fn future<F, Fut>(f: F) -> Handler
    where
        F: Fn(OwnedTaskContext, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, TaskError>> + Send + 'static,
    {
        Handler::Async(Arc::new(move |ctx, input| -> TaskFuture { Box::pin(f(ctx, input)) }))
    }
}

/// Handlers by resource. Exact ARNs win over patterns; patterns are tried in registration
/// order. A pattern is a resource ARN in which `*` matches any run of characters, e.g.
/// `arn:aws:lambda:*:*:function:*` for every Lambda function.
#[derive(Clone, Default)]
pub struct Registry {
    exact: HashMap<String, Handler>,
    patterns: Vec<(String, Handler)>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, resource: impl Into<String>, handler: Handler) -> &mut Self {
        let resource = resource.into();
        if resource.contains('*') {
            self.patterns.push((resource, handler));
        } else {
            self.exact.insert(resource, handler);
        }
        self
    }

    pub fn resolve(&self, resource: &str) -> Option<&Handler> {
        self.exact.get(resource).or_else(|| self.patterns.iter().find(|(p, _)| glob_match(p, resource)).map(|(_, h)| h))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.patterns.is_empty()
    }

    /// Registers `handler` for `resource` unless an exact registration exists already
    /// (the engine's built-in integrations give way to the embedder's own).
    pub fn register_default(&mut self, resource: &str, handler: Handler) -> &mut Self {
        if !self.exact.contains_key(resource) {
            self.exact.insert(resource.to_owned(), handler);
        }
        self
    }

    /// The same registry with every synchronous handler turned into an asynchronous one
    /// (same answer, over owned JSON). Durable executions need every task answer to pass
    /// through the driver, which journals it: an inline handler would run again on resume.
    pub fn to_async(&self) -> Registry {
        let wrap = |h: &Handler| match h {
            Handler::Async(_) => h.clone(),
            Handler::Sync(s) => {
                let s = s.clone();
                Handler::Async(Arc::new(move |ctx: OwnedTaskContext, input: serde_json::Value| -> TaskFuture {
                    let bump = bumpalo::Bump::new();
                    let borrowed = TaskContext {
                        state_name: &ctx.state_name,
                        resource: &ctx.resource,
                        retry_count: ctx.retry_count,
                        task_token: ctx.task_token.as_deref(),
                        execution_arn: &ctx.execution_arn,
                    };
                    let answer =
                        s.call(&borrowed, Value::from_serde(&bump, &input), Arena::new(&bump)).map(|v| v.to_serde());
                    Box::pin(std::future::ready(answer))
                }))
            }
        };
        Registry {
            exact: self.exact.iter().map(|(k, h)| (k.clone(), wrap(h))).collect(),
            patterns: self.patterns.iter().map(|(k, h)| (k.clone(), wrap(h))).collect(),
        }
    }
}

/// `*` matches any run of characters; everything else is literal.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(pos) => rest = &rest[pos + mid.len()..],
            None => return false,
        }
    }
    true
}

/// One mocked answer.
#[derive(Clone, Debug)]
pub enum MockReply {
    /// The task's raw result (a constant of the program).
    Return(ConstId),
    Throw {
        error: String,
        cause: Option<String>,
    },
}

/// Mocked answers for one Task state, by invocation number (0 = first invocation; retries
/// and Map iterations count). `None` is a gap in the mock file: that invocation fails.
#[derive(Clone, Debug)]
pub struct MockBinding {
    pub test_case: Option<String>,
    pub replies: Vec<Option<MockReply>>,
}

/// What a Task invokes, fixed at compile time.
#[derive(Clone)]
pub enum Binding {
    Handler(Handler),
    Mock(Arc<MockBinding>),
    /// Neither a handler nor a mock: invoking it fails the execution (`States.Runtime`),
    /// since no answer could be right.
    Unbound,
}

impl Binding {
    pub fn describe(&self) -> &'static str {
        match self {
            Binding::Handler(Handler::Sync(_)) => "sync-handler",
            Binding::Handler(Handler::Async(_)) => "async-handler",
            Binding::Mock(_) => "mock",
            Binding::Unbound => "unbound",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("arn:aws:lambda:*:*:function:*", "arn:aws:lambda:us-east-1:1:function:f"));
        assert!(!glob_match("arn:aws:lambda:*:*:function:*", "arn:aws:states:::lambda:invoke"));
        assert!(glob_match("a*c", "abc"));
        assert!(glob_match("a*c", "ac"));
        assert!(!glob_match("a*c", "ab"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn exact_wins_over_pattern() {
        let mut r = Registry::new();
        r.register("arn:x:*", Handler::sync_json(|_, _| Ok(serde_json::json!(1))));
        r.register("arn:x:y", Handler::sync_json(|_, _| Ok(serde_json::json!(2))));
        assert!(r.resolve("arn:x:y").is_some());
        assert!(r.resolve("arn:x:z").is_some());
        assert!(r.resolve("arn:q").is_none());
    }
}
