//! `inspect`: the commands that read or feed a store directly, without an engine:
//! `sfn executions list|describe|history`, `sfn queue create|receive`,
//! `sfn topic create|tail`.
//!
//! Input: a store directory and the command's arguments. Output: JSON on stdout, shaped
//! like the AWS API's answers (DescribeExecution, GetExecutionHistory, ReceiveMessage),
//! one object per line where a command lists several things. Never touches: the engine
//! (no machine is registered, so nothing resumes), the setup file.
//!
//! A store is one redb file that one process at a time may open: these commands fail
//! with a message while an `sfn run` using the same directory is still running.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};
use sfn::store::{ExecutionRecord, ListFilter, RecordStatus, RedbStore, Store, StoreError};

use crate::session::{epoch_seconds, machine_arn, open_store, ACCOUNT, REGION};
use crate::Failure;

/// The largest page read from the store at once.
const PAGE: usize = 100;

/// A store that must exist already (commands that only read it).
fn existing(dir: &Path) -> Result<Arc<RedbStore>, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!("no store in {}: the directory does not exist", dir.display())));
    }
    open_store(dir)
}

fn failed(e: StoreError) -> Failure {
    match e {
        StoreError::NoSuchQueue(q) => {
            Failure::Aws(format!("QueueDoesNotExist: The specified queue does not exist: '{q}'"))
        }
        StoreError::NoSuchTopic(t) => Failure::Aws(format!("NotFound: Topic does not exist: '{t}'")),
        StoreError::InvalidToken(t) => Failure::Aws(format!("InvalidToken: Invalid Token: '{t}'")),
        StoreError::Io(e) => Failure::Usage(format!("the store failed: {e}")),
    }
}

/// One line on stdout. A reader that went away (`| head -1`) ends the command quietly,
/// as ripgrep does, instead of the panic `println!` would give.
fn print_line(v: &impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{v}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("sfn: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// A ListExecutions item.
fn list_item(r: &ExecutionRecord) -> Json {
    let mut m = Map::new();
    m.insert("executionArn".into(), json!(r.execution_arn));
    m.insert("stateMachineArn".into(), json!(r.state_machine_arn));
    m.insert("name".into(), json!(r.name));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert("startDate".into(), epoch_seconds(r.start_date));
    if let Some(t) = r.stop_date {
        m.insert("stopDate".into(), epoch_seconds(t));
    }
    Json::Object(m)
}

/// `sfn executions list`: one ListExecutions item per line, most recently started first.
pub fn list(dir: &Path, status: Option<&str>, machine: Option<&str>, max: Option<usize>) -> Result<(), Failure> {
    let status = match status {
        None => None,
        Some(s) => Some(RecordStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
            Failure::Usage(format!("--status {s}: one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED"))
        })?),
    };
    let state_machine_arn = machine.map(|m| if m.starts_with("arn:") { m.to_owned() } else { machine_arn(m) });
    let store = existing(dir)?;
    let filter = ListFilter { state_machine_arn, status };
    let mut left = max.unwrap_or(usize::MAX);
    let mut token: Option<String> = None;
    while left > 0 {
        let page = store.list_executions(&filter, left.min(PAGE), token.as_deref()).map_err(failed)?;
        for r in &page.items {
            print_line(&list_item(r));
        }
        left = left.saturating_sub(page.items.len());
        match page.next_token {
            Some(t) if !page.items.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(())
}

fn record(store: &RedbStore, arn: &str) -> Result<ExecutionRecord, Failure> {
    store
        .execution(arn)
        .map_err(failed)?
        .ok_or_else(|| Failure::Aws(format!("ExecutionDoesNotExist: Execution Does Not Exist: '{arn}'")))
}

/// `sfn executions describe`: DescribeExecution's fields (dates in epoch seconds with
/// milliseconds; input and output as JSON text, as AWS returns them).
pub fn describe(dir: &Path, arn: &str) -> Result<(), Failure> {
    let store = existing(dir)?;
    let r = record(&store, arn)?;
    let mut m = Map::new();
    m.insert("executionArn".into(), json!(r.execution_arn));
    m.insert("stateMachineArn".into(), json!(r.state_machine_arn));
    m.insert("name".into(), json!(r.name));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert("startDate".into(), epoch_seconds(r.start_date));
    if let Some(t) = r.stop_date {
        m.insert("stopDate".into(), epoch_seconds(t));
    }
    m.insert("input".into(), json!(r.input));
    m.insert("inputDetails".into(), json!({"included": true}));
    if let Some(o) = &r.output {
        m.insert("output".into(), json!(o));
        m.insert("outputDetails".into(), json!({"included": true}));
    }
    if let Some(e) = &r.error {
        m.insert("error".into(), json!(e));
    }
    if let Some(c) = &r.cause {
        m.insert("cause".into(), json!(c));
    }
    print_line(&Json::Object(m));
    Ok(())
}

/// `sfn executions history`: GetExecutionHistory's `{"events": [...], "nextToken": ...}`
/// (`nextToken` only when more events follow).
pub fn history(
    dir: &Path,
    arn: &str,
    reverse: bool,
    max: Option<usize>,
    next_token: Option<&str>,
) -> Result<(), Failure> {
    let store = existing(dir)?;
    record(&store, arn)?;
    let page = store.history(arn, reverse, max.unwrap_or(PAGE).max(1), next_token).map_err(failed)?;
    // The events are stored as the JSON AWS returns for them: spliced as they are.
    let mut out = String::from("{\"events\":[");
    for (i, ev) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&String::from_utf8_lossy(ev));
    }
    out.push(']');
    if let Some(t) = page.next_token {
        out.push_str(",\"nextToken\":");
        out.push_str(&Json::from(t).to_string());
    }
    out.push('}');
    print_line(&out);
    Ok(())
}

/// `sfn queue create`: prints CreateQueue's `QueueUrl`.
pub fn queue_create(dir: &Path, name: &str) -> Result<(), Failure> {
    open_store(dir)?.create_queue(name).map_err(failed)?;
    print_line(&json!({"QueueUrl": format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}")}));
    Ok(())
}

/// `sfn queue receive`: takes up to `max` messages off the queue, oldest first, one per
/// line (`MessageAttributes` when the sender gave any). No visibility timeout: a received
/// message is gone.
pub fn queue_receive(dir: &Path, name: &str, max: usize) -> Result<(), Failure> {
    let store = existing(dir)?;
    for m in store.receive_messages(name, max).map_err(failed)? {
        let mut o = Map::new();
        o.insert("MessageId".into(), json!(m.message_id));
        o.insert("Body".into(), json!(m.body));
        o.insert("MD5OfBody".into(), json!(m.md5_of_body));
        if let Some(a) = &m.attributes {
            o.insert("MessageAttributes".into(), serde_json::from_str(a).unwrap_or_else(|_| json!(a)));
        }
        print_line(&Json::Object(o));
    }
    Ok(())
}

/// `sfn topic create`: prints CreateTopic's `TopicArn`.
pub fn topic_create(dir: &Path, name: &str) -> Result<(), Failure> {
    open_store(dir)?.create_topic(name).map_err(failed)?;
    print_line(&json!({"TopicArn": format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}")}));
    Ok(())
}

/// `sfn topic tail`: every message published from position `from` on, one per line with
/// its position (the log is kept; tailing again shows the same messages).
pub fn topic_tail(dir: &Path, name: &str, from: u64) -> Result<(), Failure> {
    let store = existing(dir)?;
    let mut next = from;
    loop {
        let page = store.topic_messages(name, next, PAGE).map_err(failed)?;
        for (position, m) in &page {
            let mut o = Map::new();
            o.insert("position".into(), json!(position));
            o.insert("MessageId".into(), json!(m.message_id));
            o.insert("Message".into(), json!(m.message));
            if let Some(s) = &m.subject {
                o.insert("Subject".into(), json!(s));
            }
            if let Some(a) = &m.attributes {
                o.insert("MessageAttributes".into(), serde_json::from_str(a).unwrap_or_else(|_| json!(a)));
            }
            o.insert("Timestamp".into(), epoch_seconds(m.published_at));
            print_line(&Json::Object(o));
            next = position + 1;
        }
        if page.len() < PAGE {
            return Ok(());
        }
    }
}
