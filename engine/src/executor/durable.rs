//! `executor::durable`: what makes a Standard execution durable on a [`Store`]: its
//! journal, and replaying it after a restart.
//!
//! Input: a durable execution's run slices, task answers and callbacks, as the shard
//! applies them. Output: journal entries and history events for the store (group-committed,
//! one state per slice), and on resume an [`Exec`] rebuilt to exactly where the last commit
//! left it. Never touches: the store itself (the shard submits), queues, timers.
//!
//! The journal records every input the execution ever received from outside the VM, in
//! the order the shard applied them: each run slice with the clock readings it took, each
//! asynchronous task's answer, each callback, the timeout. The VM is deterministic given
//! those (its random source is seeded from the stored seed; mocks count invocations), so
//! replaying the journal against a fresh [`Exec`] rebuilds the execution without running
//! any task again: an answered call is answered from the journal. Calls that were
//! dispatched but whose answer was not committed run again (a task in flight at a crash
//! is retried by AWS too). A replay that asks the clock more or fewer times than the
//! journal recorded means the program is not the one that wrote it: the execution fails
//! with `States.Runtime` instead of going on from a wrong state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value as Json};

use crate::clock::Clock;
use crate::handlers::TaskError;
use crate::history::HistoryEvent;
use crate::store::{ExecutionRecord, Store, Write};
use crate::vm::{AsyncCall, CallbackError, Exec};

/// One journal entry.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Entry {
    /// A run slice and the clock readings it took.
    Run(Vec<i64>),
    Answer {
        call: u64,
        result: Result<Json, TaskError>,
    },
    Success {
        token: String,
        output: String,
    },
    Failure {
        token: String,
        error: String,
        cause: Option<String>,
    },
    Heartbeat {
        token: String,
        reads: Vec<i64>,
    },
    /// The maximum duration ended the execution at `at`.
    TimedOut {
        at: i64,
        cause: String,
    },
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let v = match self {
            Entry::Run(reads) => json!(["r", reads]),
            Entry::Answer { call, result: Ok(v) } => json!(["a", call, v]),
            Entry::Answer { call, result: Err(e) } => json!(["e", call, e.error, e.cause]),
            Entry::Success { token, output } => json!(["s", token, output]),
            Entry::Failure { token, error, cause } => json!(["f", token, error, cause]),
            Entry::Heartbeat { token, reads } => json!(["h", token, reads]),
            Entry::TimedOut { at, cause } => json!(["t", at, cause]),
        };
        serde_json::to_vec(&v).expect("JSON values serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, String> {
        let v: Json = serde_json::from_slice(bytes).map_err(|e| format!("journal entry is not JSON: {e}"))?;
        let a = v.as_array().ok_or("journal entry is not an array")?;
        let s =
            |i: usize| a.get(i).and_then(Json::as_str).map(str::to_owned).ok_or(format!("field {i} is not a string"));
        let n = |i: usize| a.get(i).and_then(Json::as_i64).ok_or(format!("field {i} is not an integer"));
        let reads = |i: usize| -> Result<Vec<i64>, String> {
            a.get(i)
                .and_then(Json::as_array)
                .ok_or(format!("field {i} is not an array"))?
                .iter()
                .map(|r| r.as_i64().ok_or_else(|| "a clock reading is not an integer".to_owned()))
                .collect()
        };
        let opt = |i: usize| a.get(i).and_then(Json::as_str).map(str::to_owned);
        Ok(match s(0)?.as_str() {
            "r" => Entry::Run(reads(1)?),
            "a" => Entry::Answer { call: n(1)? as u64, result: Ok(a.get(2).cloned().unwrap_or(Json::Null)) },
            "e" => Entry::Answer { call: n(1)? as u64, result: Err(TaskError { error: s(2)?, cause: opt(3) }) },
            "s" => Entry::Success { token: s(1)?, output: s(2)? },
            "f" => Entry::Failure { token: s(1)?, error: s(2)?, cause: opt(3) },
            "h" => Entry::Heartbeat { token: s(1)?, reads: reads(2)? },
            "t" => Entry::TimedOut { at: n(1)?, cause: s(2)? },
            other => return Err(format!("unknown journal entry kind {other:?}")),
        })
    }
}

/// The engine's clock, with every reading written down (for the journal).
pub(super) struct RecordingClock<'c> {
    pub inner: &'c dyn Clock,
    pub reads: Mutex<Vec<i64>>,
}

impl Clock for RecordingClock<'_> {
    fn now(&self) -> i64 {
        let t = self.inner.now();
        self.reads.lock().push(t);
        t
    }
    fn sleep_until(&self, t: i64) {
        self.inner.sleep_until(t)
    }
}

/// The readings a journal recorded, given back in order.
struct ReplayClock<'r> {
    reads: &'r [i64],
    next: AtomicUsize,
}

impl ReplayClock<'_> {
    fn exact(&self) -> bool {
        self.next.load(Ordering::Relaxed) == self.reads.len()
    }
}

impl Clock for ReplayClock<'_> {
    fn now(&self) -> i64 {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        // Past the end the replay has diverged (checked by `exact`); any value will do.
        self.reads.get(i).or(self.reads.last()).copied().unwrap_or(0)
    }
    fn sleep_until(&self, _t: i64) {}
}

/// A durable execution's bookkeeping inside its shard.
pub(super) struct Durable {
    pub arn: Arc<str>,
    /// The record as stored at the start (the end replaces it).
    pub record: Box<ExecutionRecord>,
    /// The next journal entry's number.
    pub seq: u32,
    /// Writes not yet submitted (entries and events since the last slice).
    pub pending: Vec<Write>,
    /// A group commit holding this execution's last slice is outstanding: it may not run
    /// again until the commit is acknowledged.
    pub committing: bool,
    /// Something made it runnable while it waited for its commit.
    pub wants_run: bool,
    /// Task calls scheduled by a slice not yet committed: dispatched once it is.
    pub deferred: Vec<AsyncCall>,
    /// Callback replies held until the callback's journal entry is committed: `replies`
    /// wait for the next submit, `replies_in_commit` for the outstanding commit.
    pub replies: Vec<tokio::sync::oneshot::Sender<Result<(), CallbackError>>>,
    pub replies_in_commit: Vec<tokio::sync::oneshot::Sender<Result<(), CallbackError>>>,
    /// The task tokens the store routes to this execution.
    pub tokens: Vec<Box<str>>,
    /// Event JSON being written (reused).
    buf: Vec<u8>,
}

impl Durable {
    pub fn new(record: Box<ExecutionRecord>) -> Durable {
        Durable {
            arn: record.execution_arn.as_str().into(),
            record,
            seq: 0,
            pending: Vec::new(),
            committing: false,
            wants_run: false,
            deferred: Vec::new(),
            replies: Vec::new(),
            replies_in_commit: Vec::new(),
            tokens: Vec::new(),
            buf: Vec::new(),
        }
    }

    pub fn journal(&mut self, e: &Entry) {
        self.pending.push(Write::Journal { execution_arn: self.arn.clone(), seq: self.seq, entry: e.encode() });
        self.seq += 1;
    }

    pub fn event(&mut self, ev: &HistoryEvent<'_>) {
        self.buf.clear();
        crate::history::write_history_event(ev, true, &mut self.buf);
        self.pending.push(Write::Event { execution_arn: self.arn.clone(), id: ev.id, json: self.buf.clone() });
    }

    /// The end: everything pending, the token routes removed and the final `record`, in
    /// one commit; held callback replies go out once it is durable.
    pub fn end(&mut self, record: Box<ExecutionRecord>, store: &dyn Store) {
        let mut writes = std::mem::take(&mut self.pending);
        for t in self.tokens.drain(..) {
            writes.push(Write::Token { token: t.into(), execution_arn: None });
        }
        writes.push(Write::Record(record));
        let mut replies = std::mem::take(&mut self.replies_in_commit);
        replies.append(&mut self.replies);
        store.submit(
            writes,
            Box::new(move |result| {
                for r in replies {
                    let _ = r.send(result.clone().map_err(|_| CallbackError::TaskDoesNotExist));
                }
            }),
        );
    }

    /// Store writes for the tokens `waiting` now (routes added and removed).
    pub fn route_tokens(&mut self, waiting: &[&str]) {
        if self.tokens.len() == waiting.len() && self.tokens.iter().zip(waiting).all(|(a, b)| &**a == *b) {
            return;
        }
        for t in self.tokens.drain(..) {
            if !waiting.contains(&&*t) {
                self.pending.push(Write::Token { token: t.into(), execution_arn: None });
            }
        }
        for t in waiting {
            self.pending.push(Write::Token { token: (*t).to_owned(), execution_arn: Some(self.arn.clone()) });
            self.tokens.push((*t).into());
        }
    }
}

/// What replaying a journal left behind.
pub(super) struct Replayed {
    /// Calls the journal scheduled but never answered: to dispatch again.
    pub unanswered: Vec<AsyncCall>,
    /// The journal had this many entries.
    pub entries: u32,
}

/// Re-applies `journal` to a fresh `exec` (its events are discarded: the store has them).
pub(super) fn replay(exec: &mut Exec<'_>, journal: &[Vec<u8>], budget: u32) -> Result<Replayed, String> {
    let mut outstanding: HashMap<u64, AsyncCall> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    for (i, bytes) in journal.iter().enumerate() {
        let entry = Entry::decode(bytes).map_err(|e| format!("journal entry {i}: {e}"))?;
        match entry {
            Entry::Run(reads) => {
                let clock = ReplayClock { reads: &reads, next: AtomicUsize::new(0) };
                exec.run(&clock, budget);
                if !clock.exact() {
                    return Err(format!(
                        "journal entry {i}: the run slice read the clock {} times, the journal recorded {}",
                        clock.next.load(Ordering::Relaxed),
                        reads.len()
                    ));
                }
                for call in exec.take_async_calls() {
                    order.push(call.id);
                    outstanding.insert(call.id, call);
                }
            }
            Entry::Answer { call, result } => {
                outstanding.remove(&call);
                exec.complete_task(call, result);
            }
            Entry::Success { token, output } => {
                exec.send_task_success(&token, output.as_bytes()).map_err(|e| format!("journal entry {i}: {e:?}"))?
            }
            Entry::Failure { token, error, cause } => exec
                .send_task_failure(&token, &error, cause.as_deref())
                .map_err(|e| format!("journal entry {i}: {e:?}"))?,
            Entry::Heartbeat { token, reads } => {
                let clock = ReplayClock { reads: &reads, next: AtomicUsize::new(0) };
                exec.send_task_heartbeat(&token, &clock).map_err(|e| format!("journal entry {i}: {e:?}"))?;
            }
            Entry::TimedOut { .. } => return Err(format!("journal entry {i}: the execution had already timed out")),
        }
        exec.drain_events(|_| {});
    }
    let unanswered = order.into_iter().filter_map(|id| outstanding.remove(&id)).collect();
    Ok(Replayed { unanswered, entries: journal.len() as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entries = [
            Entry::Run(vec![1, 2, 3]),
            Entry::Run(vec![]),
            Entry::Answer { call: 7, result: Ok(json!({"a": [1, "x"]})) },
            Entry::Answer { call: 8, result: Err(TaskError { error: "E".into(), cause: None }) },
            Entry::Answer { call: 9, result: Err(TaskError::new("E", "why")) },
            Entry::Success { token: "tok".into(), output: "{\"ok\":1}".into() },
            Entry::Failure { token: "tok".into(), error: "Rejected".into(), cause: Some("no".into()) },
            Entry::Heartbeat { token: "tok".into(), reads: vec![5] },
            Entry::TimedOut { at: 99, cause: "late".into() },
        ];
        for e in entries {
            assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }
        assert!(Entry::decode(b"[\"z\"]").unwrap_err().contains("unknown"));
        assert!(Entry::decode(b"{").is_err());
    }
}
