//! `local`: runs one execution to completion on the calling thread.
//!
//! Input: a compiled program, the input JSON text, a clock and execution metadata.
//! Output: the final status with the output or error/cause, as owned data.
//! Never touches: other executions, threads (asynchronous handlers' futures are polled right
//! here, one at a time).
//!
//! This is the driver behind `sfn run` and the conformance tests: it sleeps on the clock
//! while every frame waits (so `ManualClock` makes Waits and retries instant) and answers
//! asynchronous tasks by polling their futures. The sharded runtime drives the same
//! [`Exec`] with timers and queues instead.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, Wake};

use bumpalo::Bump;

use crate::clock::Clock;
use crate::program::Program;
use crate::value::{JsonError, JsonParser};
use crate::vm::{Exec, ExecMeta, Outcome, Poll};

/// Final status of an execution, as AWS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    TimedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
        }
    }
}

/// An execution's result, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub status: Status,
    /// Compact JSON text of the output (SUCCEEDED only).
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// States entered.
    pub transitions: u64,
}

impl RunResult {
    /// The one-line JSON object `sfn run` prints:
    /// `{"status":"SUCCEEDED","output":...}` or `{"status":"FAILED","error":...,"cause":...}`.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"status\":\"");
        out.push_str(self.status.as_str());
        out.push('"');
        if let Some(o) = &self.output {
            out.push_str(",\"output\":");
            out.push_str(o);
        }
        if self.status != Status::Succeeded {
            out.push_str(",\"error\":");
            out.push_str(&json_opt(&self.error));
            out.push_str(",\"cause\":");
            out.push_str(&json_opt(&self.cause));
        }
        out.push('}');
        out
    }
}

fn json_opt(s: &Option<String>) -> String {
    match s {
        Some(s) => {
            let mut v = Vec::new();
            crate::value::write_json_string(s, &mut v);
            String::from_utf8(v).expect("UTF-8 in, UTF-8 out")
        }
        None => "null".into(),
    }
}

/// How to run.
pub struct RunOptions<'c> {
    pub clock: &'c dyn Clock,
    pub meta: ExecMeta,
    /// Seed for `States.UUID`, `States.MathRandom`, jitter and task tokens.
    pub seed: u64,
}

/// An execution that cannot go on: it waits for a task callback (SendTaskSuccess/Failure)
/// and nothing in this driver can deliver one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwaitingCallback;

/// Runs an execution until it finishes: asynchronous tasks are polled on this thread, and
/// while every frame waits the driver sleeps on `clock` (instant on a `ManualClock`).
pub fn drive(exec: &mut Exec<'_>, clock: &dyn Clock) -> Result<(), AwaitingCallback> {
    loop {
        match exec.run(clock, u32::MAX) {
            Poll::Finished => return Ok(()),
            Poll::Yielded => continue,
            Poll::Blocked { wake_at } => {
                let calls = exec.take_async_calls();
                if !calls.is_empty() {
                    for call in calls {
                        let answer = block_on(call.handler.call(call.ctx, call.input));
                        exec.complete_task(call.id, answer);
                    }
                    continue;
                }
                match wake_at {
                    Some(t) => clock.sleep_until(t),
                    None => return Err(AwaitingCallback),
                }
            }
        }
    }
}

/// Parses `input` and runs the program to completion.
pub fn run_to_completion(prog: &Program, input: &[u8], opts: &RunOptions<'_>) -> Result<RunResult, JsonError> {
    let bump = Bump::new();
    let text_len = input.len();
    let input = JsonParser::new().parse(&bump, input)?;
    let mut exec = Exec::new(prog, &bump, input, &opts.meta, opts.seed);
    exec.input_text_len(text_len);
    if drive(&mut exec, opts.clock).is_err() {
        return Ok(RunResult {
            status: Status::Failed,
            output: None,
            error: Some("States.Runtime".into()),
            cause: Some(
                "The execution is waiting for a task callback (SendTaskSuccess/SendTaskFailure) that this driver cannot receive."
                    .into(),
            ),
            transitions: exec.transitions(),
        });
    }
    let transitions = exec.transitions();
    Ok(match exec.outcome().expect("finished") {
        Outcome::Succeeded(v) => RunResult {
            status: Status::Succeeded,
            output: Some(v.to_json_string()),
            error: None,
            cause: None,
            transitions,
        },
        Outcome::Failed(f) => RunResult {
            status: Status::Failed,
            output: None,
            error: f.error.map(str::to_owned),
            cause: f.cause.map(str::to_owned),
            transitions,
        },
        Outcome::TimedOut(f) => RunResult {
            status: Status::TimedOut,
            output: None,
            error: f.error.map(str::to_owned),
            cause: f.cause.map(str::to_owned),
            transitions,
        },
    })
}

/// Polls a future to completion on this thread, parking between wake-ups.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(ThreadWaker(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            TaskPoll::Ready(v) => return v,
            TaskPoll::Pending => std::thread::park(),
        }
    }
}
