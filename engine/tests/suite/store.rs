//! The `Store` contract, written once over `&dyn Store` and run against `MemStore` and
//! `RedbStore` (modules `mem` and `redb` below: one test per check and implementation),
//! then what only the durable store promises: everything survives a reopen, a drop drains
//! what was submitted, a locked or corrupt file is a clear error, and a SIGKILLed process
//! loses no acknowledged write (`redb_crash_keeps_every_acknowledged_write`, which re-runs
//! this test binary as the child that is killed).

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfn::store::{
    Created, ExecutionRecord, ListFilter, QueueMessage, RecordStatus, RedbStore, Store, StoreError, TopicMessage, Write,
};

// ---------------------------------------------------------------------------------------
// Helpers.

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("sfn-store-{tag}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MACHINE_A: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:a";
const MACHINE_B: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:b";

fn arn(machine: &str, name: &str) -> String {
    let m = machine.rsplit(':').next().unwrap();
    format!("arn:aws:states:us-east-1:123456789012:execution:{m}:{name}")
}

fn record(machine: &str, name: &str, start: i64) -> ExecutionRecord {
    ExecutionRecord {
        execution_arn: arn(machine, name),
        state_machine_arn: machine.to_owned(),
        name: name.to_owned(),
        status: RecordStatus::Running,
        input: format!("{{\"name\":\"{name}\"}}"),
        output: None,
        error: None,
        cause: None,
        start_date: start,
        stop_date: None,
        seed: start as u64 * 31,
        definition_hash: "0f".repeat(32),
        started_by: None,
    }
}

fn finished(mut r: ExecutionRecord, status: RecordStatus) -> ExecutionRecord {
    r.status = status;
    r.stop_date = Some(r.start_date + 1_000);
    match status {
        RecordStatus::Succeeded => r.output = Some("{\"ok\":true}".to_owned()),
        _ => {
            r.error = Some("States.TaskFailed".to_owned());
            r.cause = Some("boom".to_owned());
        }
    }
    r
}

fn journal(arn: &str, seq: u32) -> Write {
    Write::Journal { execution_arn: arn.into(), seq, entry: format!("entry {seq} of {arn}").into_bytes() }
}

fn event(arn: &str, id: u32) -> Write {
    Write::Event {
        execution_arn: arn.into(),
        id,
        json: format!("{{\"id\":{id},\"execution\":\"{arn}\"}}").into_bytes(),
    }
}

/// Submits and waits for the acknowledgement.
fn submit_wait(store: &dyn Store, writes: Vec<Write>) -> Result<(), StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    store.submit(writes, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).expect("acknowledged within 10 s")
}

fn create(store: &dyn Store, r: &ExecutionRecord) {
    let first = vec![journal(&r.execution_arn, 0), event(&r.execution_arn, 1)];
    assert_eq!(store.create_execution(r, first).unwrap(), Created::New);
}

fn names(items: &[ExecutionRecord]) -> Vec<&str> {
    items.iter().map(|r| r.name.as_str()).collect()
}

fn queue_message(n: u32) -> QueueMessage {
    QueueMessage {
        message_id: format!("m-{n}"),
        body: format!("body {n}"),
        md5_of_body: format!("{n:032x}"),
        attributes: n.is_multiple_of(2).then(|| "{\"k\":{\"DataType\":\"String\",\"StringValue\":\"v\"}}".to_owned()),
        sent_at: 1_000 + n as i64,
    }
}

fn topic_message(n: u32) -> TopicMessage {
    TopicMessage {
        message_id: format!("t-{n}"),
        message: format!("message {n}"),
        subject: (n % 2 == 1).then(|| format!("subject {n}")),
        attributes: None,
        published_at: 2_000 + n as i64,
    }
}

// ---------------------------------------------------------------------------------------
// The contract: each check runs against both stores.

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod mem {
            $(
                #[test]
                fn $check() {
                    super::$check(&sfn::store::MemStore::new());
                }
            )*
        }
        mod redb {
            $(
                #[test]
                fn $check() {
                    let dir = super::TempDir::new(stringify!($check));
                    let store = sfn::store::RedbStore::open(dir.path()).unwrap();
                    super::$check(&store);
                    drop(store);
                }
            )*
        }
    };
}

contract!(
    create_then_existing_is_unchanged,
    record_replacement,
    list_filters_newest_first_and_pages,
    unfinished_lists_running_executions_of_one_machine,
    journals_in_seq_order,
    history_pages_both_ways,
    task_tokens_set_and_remove,
    queues_fifo_and_receive_removes,
    topics_positions_from_and_max,
    submit_acks_in_order_and_reads_see_them,
    concurrent_submitters,
);

fn create_then_existing_is_unchanged(s: &dyn Store) {
    let r = record(MACHINE_A, "one", 10);
    assert_eq!(s.execution(&r.execution_arn).unwrap(), None);
    create(s, &r);
    assert_eq!(s.execution(&r.execution_arn).unwrap(), Some(r.clone()));
    assert_eq!(s.journal(&r.execution_arn).unwrap().len(), 1);

    // The same ARN again, with another input and first writes: the stored record comes
    // back and nothing is written.
    let mut again = r.clone();
    again.input = "{\"other\":1}".to_owned();
    again.start_date = 99;
    let first = vec![journal(&r.execution_arn, 0), journal(&r.execution_arn, 1), event(&r.execution_arn, 2)];
    assert_eq!(s.create_execution(&again, first).unwrap(), Created::Existing(Box::new(r.clone())));
    assert_eq!(s.execution(&r.execution_arn).unwrap(), Some(r.clone()));
    assert_eq!(
        s.journal(&r.execution_arn).unwrap(),
        vec![b"entry 0 of ".iter().copied().chain(r.execution_arn.bytes()).collect::<Vec<u8>>()]
    );
    assert_eq!(s.history(&r.execution_arn, false, 0, None).unwrap().items.len(), 1);
    assert_eq!(s.list_executions(&ListFilter::default(), 0, None).unwrap().items, vec![r]);
}

fn record_replacement(s: &dyn Store) {
    let a = record(MACHINE_A, "a", 1);
    let b = record(MACHINE_A, "b", 2);
    create(s, &a);
    create(s, &b);
    let done = finished(a.clone(), RecordStatus::Succeeded);
    submit_wait(s, vec![journal(&a.execution_arn, 1), Write::Record(Box::new(done.clone()))]).unwrap();
    assert_eq!(s.execution(&a.execution_arn).unwrap(), Some(done.clone()));
    assert_eq!(s.unfinished(MACHINE_A).unwrap(), vec![b.clone()]);
    // Replacing a record keeps its place in listings (start order).
    let all = s.list_executions(&ListFilter::default(), 10, None).unwrap();
    assert_eq!(all.items, vec![b.clone(), done.clone()]);
    // Replaced again (e.g. a redrive): RUNNING again, back in `unfinished`.
    submit_wait(s, vec![Write::Record(Box::new(a.clone()))]).unwrap();
    assert_eq!(s.execution(&a.execution_arn).unwrap(), Some(a.clone()));
    let mut names: Vec<String> = s.unfinished(MACHINE_A).unwrap().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    // A record written for an ARN never created is a new execution (newest).
    let c = record(MACHINE_B, "c", 3);
    submit_wait(s, vec![Write::Record(Box::new(c.clone()))]).unwrap();
    assert_eq!(s.execution(&c.execution_arn).unwrap(), Some(c.clone()));
    assert_eq!(s.list_executions(&ListFilter::default(), 1, None).unwrap().items, vec![c]);
}

fn list_filters_newest_first_and_pages(s: &dyn Store) {
    // 12 executions, alternating machines; every third one finished.
    let mut all = Vec::new();
    for i in 0..12u32 {
        let machine = if i.is_multiple_of(2) { MACHINE_A } else { MACHINE_B };
        let r = record(machine, &format!("x{i:02}"), 100 + i as i64);
        create(s, &r);
        let r = if i.is_multiple_of(3) {
            let f = finished(r, if i.is_multiple_of(2) { RecordStatus::Failed } else { RecordStatus::Succeeded });
            submit_wait(s, vec![Write::Record(Box::new(f.clone()))]).unwrap();
            f
        } else {
            r
        };
        all.push(r);
    }
    all.reverse(); // newest first
    let expect = |pred: &dyn Fn(&ExecutionRecord) -> bool| -> Vec<ExecutionRecord> {
        all.iter().filter(|r| pred(r)).cloned().collect()
    };
    let filters = [
        (ListFilter::default(), expect(&|_| true)),
        (
            ListFilter { state_machine_arn: Some(MACHINE_A.to_owned()), status: None },
            expect(&|r| r.state_machine_arn == MACHINE_A),
        ),
        (
            ListFilter { state_machine_arn: None, status: Some(RecordStatus::Running) },
            expect(&|r| r.status == RecordStatus::Running),
        ),
        (
            ListFilter { state_machine_arn: Some(MACHINE_B.to_owned()), status: Some(RecordStatus::Succeeded) },
            expect(&|r| r.state_machine_arn == MACHINE_B && r.status == RecordStatus::Succeeded),
        ),
        (
            ListFilter {
                state_machine_arn: Some("arn:aws:states:us-east-1:123456789012:stateMachine:none".to_owned()),
                status: None,
            },
            Vec::new(),
        ),
        (ListFilter { state_machine_arn: None, status: Some(RecordStatus::Aborted) }, Vec::new()),
    ];
    for (filter, expected) in &filters {
        // One page (0 means the default page size, at least 12).
        let page = s.list_executions(filter, 0, None).unwrap();
        assert_eq!(names(&page.items), names(expected), "{filter:?}");
        assert_eq!(page.next_token, None, "{filter:?}");
        // Pages of 1, 2, 5 chained by their tokens.
        for size in [1, 2, 5] {
            let mut got = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                let page = s.list_executions(filter, size, token.as_deref()).unwrap();
                assert!(page.items.len() <= size);
                pages += 1;
                got.extend(page.items);
                match page.next_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
                assert!(pages <= 12, "tokens must make progress");
            }
            assert_eq!(names(&got), names(expected), "{filter:?} in pages of {size}");
            assert_eq!(
                pages,
                expected.len().div_ceil(size).max(1),
                "{filter:?} in pages of {size}: no empty last page"
            );
        }
    }
    for bad in ["garbage", "-1", ""] {
        assert!(
            matches!(s.list_executions(&ListFilter::default(), 2, Some(bad)), Err(StoreError::InvalidToken(_))),
            "token {bad:?}"
        );
    }
}

fn unfinished_lists_running_executions_of_one_machine(s: &dyn Store) {
    let mut running_a = Vec::new();
    for i in 0..300 {
        let machine = if i % 3 == 2 { MACHINE_B } else { MACHINE_A };
        let r = record(machine, &format!("u{i:03}"), i);
        create(s, &r);
        if i % 10 == 7 && machine == MACHINE_A {
            running_a.push(r);
        } else {
            let status = [RecordStatus::Succeeded, RecordStatus::Failed, RecordStatus::TimedOut, RecordStatus::Aborted]
                [i as usize % 4];
            submit_wait(s, vec![Write::Record(Box::new(finished(r, status)))]).unwrap();
        }
    }
    let mut got = s.unfinished(MACHINE_A).unwrap();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got, running_a);
    assert_eq!(s.unfinished(MACHINE_B).unwrap(), Vec::new());
    assert_eq!(s.unfinished("arn:aws:states:us-east-1:123456789012:stateMachine:none").unwrap(), Vec::new());
}

fn journals_in_seq_order(s: &dyn Store) {
    let a = record(MACHINE_A, "ja", 1);
    let b = record(MACHINE_A, "jb", 2);
    create(s, &a);
    create(s, &b);
    // Interleaved submissions of two executions, several entries per submission.
    for seq in (1..40).step_by(3) {
        let mut writes = Vec::new();
        for k in 0..3 {
            writes.push(journal(&a.execution_arn, seq + k));
            writes.push(journal(&b.execution_arn, seq + k));
        }
        submit_wait(s, writes).unwrap();
    }
    for r in [&a, &b] {
        let got = s.journal(&r.execution_arn).unwrap();
        let want: Vec<Vec<u8>> =
            (0..40).map(|seq| format!("entry {seq} of {}", r.execution_arn).into_bytes()).collect();
        assert_eq!(got, want);
    }
    assert_eq!(s.journal(&arn(MACHINE_A, "nobody")).unwrap(), Vec::<Vec<u8>>::new());
}

fn history_pages_both_ways(s: &dyn Store) {
    let r = record(MACHINE_A, "h", 1);
    create(s, &r); // event 1
    let other = record(MACHINE_A, "h2", 2);
    create(s, &other);
    for id in 2..=25 {
        submit_wait(s, vec![event(&r.execution_arn, id), event(&other.execution_arn, id)]).unwrap();
    }
    let want: Vec<Vec<u8>> =
        (1..=25).map(|id| format!("{{\"id\":{id},\"execution\":\"{}\"}}", r.execution_arn).into_bytes()).collect();
    let all = s.history(&r.execution_arn, false, 0, None).unwrap();
    assert_eq!(all.items, want);
    assert_eq!(all.next_token, None);
    for reverse in [false, true] {
        let mut expected = want.clone();
        if reverse {
            expected.reverse();
        }
        let mut got = Vec::new();
        let mut token: Option<String> = None;
        let mut sizes = Vec::new();
        loop {
            let page = s.history(&r.execution_arn, reverse, 10, token.as_deref()).unwrap();
            sizes.push(page.items.len());
            got.extend(page.items);
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(sizes, [10, 10, 5], "reverse: {reverse}");
        assert_eq!(got, expected, "reverse: {reverse}");
    }
    // Many events in one submission (one commit), read in pages that start and end
    // inside it.
    submit_wait(s, (26..=40).map(|id| event(&r.execution_arn, id)).collect()).unwrap();
    let want: Vec<Vec<u8>> =
        (1..=40).map(|id| format!("{{\"id\":{id},\"execution\":\"{}\"}}", r.execution_arn).into_bytes()).collect();
    for reverse in [false, true] {
        let mut expected = want.clone();
        if reverse {
            expected.reverse();
        }
        for size in [1, 3, 7, 40, 41] {
            let mut got = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = s.history(&r.execution_arn, reverse, size, token.as_deref()).unwrap();
                assert!(page.items.len() <= size);
                got.extend(page.items);
                match page.next_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
            assert_eq!(got, expected, "reverse: {reverse}, pages of {size}");
        }
    }
    assert!(matches!(s.history(&r.execution_arn, false, 10, Some("nope")), Err(StoreError::InvalidToken(_))));
    assert!(matches!(s.history(&r.execution_arn, true, 10, Some("nope")), Err(StoreError::InvalidToken(_))));
    let none = s.history(&arn(MACHINE_A, "nobody"), false, 10, None).unwrap();
    assert_eq!((none.items.len(), none.next_token), (0, None));
}

fn task_tokens_set_and_remove(s: &dyn Store) {
    let a = arn(MACHINE_A, "t1");
    let b = arn(MACHINE_A, "t2");
    assert_eq!(s.token("tok-1").unwrap(), None);
    submit_wait(
        s,
        vec![
            Write::Token { token: "tok-1".to_owned(), execution_arn: Some(a.as_str().into()) },
            Write::Token { token: "tok-2".to_owned(), execution_arn: Some(b.as_str().into()) },
        ],
    )
    .unwrap();
    assert_eq!(s.token("tok-1").unwrap().as_deref(), Some(a.as_str()));
    assert_eq!(s.token("tok-2").unwrap().as_deref(), Some(b.as_str()));
    submit_wait(s, vec![Write::Token { token: "tok-1".to_owned(), execution_arn: None }]).unwrap();
    assert_eq!(s.token("tok-1").unwrap(), None);
    assert_eq!(s.token("tok-2").unwrap().as_deref(), Some(b.as_str()));
    // Removing a token that is not there is not an error.
    submit_wait(s, vec![Write::Token { token: "tok-9".to_owned(), execution_arn: None }]).unwrap();
}

fn queues_fifo_and_receive_removes(s: &dyn Store) {
    assert_eq!(s.send_message("q", &queue_message(0)), Err(StoreError::NoSuchQueue("q".to_owned())));
    assert_eq!(s.receive_messages("q", 1), Err(StoreError::NoSuchQueue("q".to_owned())));
    assert_eq!(s.queues().unwrap(), Vec::<String>::new());
    s.create_queue("q").unwrap();
    s.create_queue("a-queue").unwrap();
    s.create_queue("q").unwrap(); // no-op
    assert_eq!(s.queues().unwrap(), ["a-queue", "q"]);
    assert_eq!(s.receive_messages("q", 10).unwrap(), Vec::new());
    for n in 0..5 {
        s.send_message("q", &queue_message(n)).unwrap();
    }
    s.send_message("a-queue", &queue_message(100)).unwrap();
    assert_eq!(s.receive_messages("q", 2).unwrap(), vec![queue_message(0), queue_message(1)]);
    s.send_message("q", &queue_message(5)).unwrap();
    assert_eq!(s.receive_messages("q", 0).unwrap(), Vec::new());
    assert_eq!(s.receive_messages("q", 10).unwrap(), (2..6).map(queue_message).collect::<Vec<_>>());
    assert_eq!(s.receive_messages("q", 10).unwrap(), Vec::new());
    // After a queue was emptied, order still holds.
    s.send_message("q", &queue_message(6)).unwrap();
    s.send_message("q", &queue_message(7)).unwrap();
    assert_eq!(s.receive_messages("q", 10).unwrap(), vec![queue_message(6), queue_message(7)]);
    assert_eq!(s.receive_messages("a-queue", 10).unwrap(), vec![queue_message(100)]);
}

fn topics_positions_from_and_max(s: &dyn Store) {
    assert_eq!(s.publish("t", &topic_message(0)), Err(StoreError::NoSuchTopic("t".to_owned())));
    assert_eq!(s.topic_messages("t", 0, 10), Err(StoreError::NoSuchTopic("t".to_owned())));
    s.create_topic("t").unwrap();
    s.create_topic("other").unwrap();
    s.create_topic("t").unwrap(); // no-op
    assert_eq!(s.topics().unwrap(), ["other", "t"]);
    assert_eq!(s.topic_messages("t", 0, 10).unwrap(), Vec::new());
    for n in 0..5 {
        assert_eq!(s.publish("t", &topic_message(n)).unwrap(), n as u64);
    }
    assert_eq!(s.publish("other", &topic_message(50)).unwrap(), 0);
    let all: Vec<(u64, TopicMessage)> = (0..5).map(|n| (n as u64, topic_message(n))).collect();
    assert_eq!(s.topic_messages("t", 0, 100).unwrap(), all);
    assert_eq!(s.topic_messages("t", 1, 2).unwrap(), all[1..3].to_vec());
    assert_eq!(s.topic_messages("t", 4, 2).unwrap(), all[4..].to_vec());
    assert_eq!(s.topic_messages("t", 5, 2).unwrap(), Vec::new());
    assert_eq!(s.topic_messages("t", 0, 0).unwrap(), Vec::new());
    // Reading does not consume.
    assert_eq!(s.topic_messages("t", 0, 100).unwrap(), all);
    assert_eq!(s.topic_messages("other", 0, 100).unwrap(), vec![(0, topic_message(50))]);
}

fn submit_acks_in_order_and_reads_see_them(s: &dyn Store) {
    let r = record(MACHINE_A, "acks", 1);
    create(s, &r);
    // 200 submissions without waiting; acknowledgements report to this thread, which
    // reads as each one arrives: an acknowledged write must be visible.
    let (tx, rx) = std::sync::mpsc::channel();
    for seq in 1..=200u32 {
        let tx = tx.clone();
        s.submit(
            vec![journal(&r.execution_arn, seq), event(&r.execution_arn, seq + 1)],
            Box::new(move |result| tx.send((seq, result)).unwrap()),
        );
    }
    for want in 1..=200u32 {
        let (seq, result) = rx.recv_timeout(Duration::from_secs(10)).expect("acknowledged within 10 s");
        assert_eq!(seq, want, "acknowledgements run in submission order");
        assert_eq!(result, Ok(()));
        let stored = s.journal(&r.execution_arn).unwrap();
        assert!(stored.len() > seq as usize, "ack {seq} ran, yet a read finds {} entries", stored.len());
        assert_eq!(stored[seq as usize], format!("entry {seq} of {}", r.execution_arn).into_bytes());
    }
    s.flush().unwrap();
    assert_eq!(s.journal(&r.execution_arn).unwrap().len(), 201);
    assert_eq!(s.history(&r.execution_arn, false, 1000, None).unwrap().items.len(), 201);
    // Synchronous writes are ordered with submitted ones: a submission made before a
    // synchronous call is acknowledged by the time that call returns.
    let (tx, rx) = std::sync::mpsc::channel();
    s.submit(vec![journal(&r.execution_arn, 201)], Box::new(move |r| tx.send(r).unwrap()));
    s.create_queue("after").unwrap();
    assert_eq!(rx.try_recv().expect("acknowledged before the later synchronous write returned"), Ok(()));
    // flush waits for what was submitted before it.
    let (tx, rx) = std::sync::mpsc::channel();
    s.submit(vec![journal(&r.execution_arn, 202)], Box::new(move |r| tx.send(r).unwrap()));
    s.flush().unwrap();
    assert_eq!(rx.try_recv().expect("acknowledged before flush returned"), Ok(()));
    // An empty submission is acknowledged too.
    submit_wait(s, Vec::new()).unwrap();
}

fn concurrent_submitters(s: &dyn Store) {
    let records: Vec<ExecutionRecord> = (0..8).map(|i| record(MACHINE_A, &format!("c{i}"), i)).collect();
    for r in &records {
        create(s, r);
    }
    std::thread::scope(|scope| {
        for r in &records {
            scope.spawn(move || {
                for seq in 1..=50 {
                    submit_wait(s, vec![journal(&r.execution_arn, seq), event(&r.execution_arn, seq + 1)]).unwrap();
                }
            });
        }
    });
    for r in &records {
        let want: Vec<Vec<u8>> =
            (0..=50).map(|seq| format!("entry {seq} of {}", r.execution_arn).into_bytes()).collect();
        assert_eq!(s.journal(&r.execution_arn).unwrap(), want);
        assert_eq!(s.history(&r.execution_arn, true, 0, None).unwrap().items.len(), 51);
    }
}

// ---------------------------------------------------------------------------------------
// RedbStore only.

/// Writes one of everything, for the reopen checks.
fn populate(s: &dyn Store) -> (ExecutionRecord, ExecutionRecord) {
    let running = record(MACHINE_A, "keep-running", 1);
    let done = record(MACHINE_B, "keep-done", 2);
    create(s, &running);
    create(s, &done);
    let done = finished(done, RecordStatus::Failed);
    submit_wait(
        s,
        vec![
            journal(&running.execution_arn, 1),
            event(&running.execution_arn, 2),
            Write::Record(Box::new(done.clone())),
            Write::Token { token: "tok".to_owned(), execution_arn: Some(running.execution_arn.as_str().into()) },
        ],
    )
    .unwrap();
    s.create_queue("q").unwrap();
    s.send_message("q", &queue_message(1)).unwrap();
    s.send_message("q", &queue_message(2)).unwrap();
    s.create_topic("t").unwrap();
    s.publish("t", &topic_message(1)).unwrap();
    (running, done)
}

#[test]
fn redb_reopen_keeps_everything() {
    let dir = TempDir::new("reopen");
    let (running, done) = {
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.path(), dir.path().join("sfn.redb"));
        populate(&s)
    };
    let third = record(MACHINE_A, "third", 3);
    {
        let s = RedbStore::open(dir.path()).unwrap();
        assert_eq!(s.execution(&running.execution_arn).unwrap(), Some(running.clone()));
        assert_eq!(s.execution(&done.execution_arn).unwrap(), Some(done.clone()));
        assert_eq!(
            s.list_executions(&ListFilter::default(), 0, None).unwrap().items,
            vec![done.clone(), running.clone()]
        );
        assert_eq!(s.unfinished(MACHINE_A).unwrap(), vec![running.clone()]);
        assert_eq!(s.unfinished(MACHINE_B).unwrap(), Vec::new());
        assert_eq!(s.journal(&running.execution_arn).unwrap().len(), 2);
        assert_eq!(s.history(&running.execution_arn, false, 0, None).unwrap().items.len(), 2);
        assert_eq!(s.token("tok").unwrap().as_deref(), Some(running.execution_arn.as_str()));
        assert_eq!(s.queues().unwrap(), ["q"]);
        assert_eq!(s.topics().unwrap(), ["t"]);
        assert_eq!(s.topic_messages("t", 0, 10).unwrap(), vec![(0, topic_message(1))]);
        // Changes after a reopen: counters and positions go on where they were.
        assert_eq!(s.receive_messages("q", 1).unwrap(), vec![queue_message(1)]);
        assert_eq!(s.publish("t", &topic_message(2)).unwrap(), 1);
        create(&s, &third);
        submit_wait(&s, vec![journal(&running.execution_arn, 2)]).unwrap();
    }
    let s = RedbStore::open(dir.path()).unwrap();
    assert_eq!(
        names(&s.list_executions(&ListFilter::default(), 0, None).unwrap().items),
        ["third", "keep-done", "keep-running"]
    );
    let mut unfinished = s.unfinished(MACHINE_A).unwrap();
    unfinished.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(unfinished, vec![running.clone(), third]);
    assert_eq!(s.journal(&running.execution_arn).unwrap().len(), 3);
    assert_eq!(s.receive_messages("q", 10).unwrap(), vec![queue_message(2)]);
    assert_eq!(s.topic_messages("t", 0, 10).unwrap(), vec![(0, topic_message(1)), (1, topic_message(2))]);
    assert_eq!(s.publish("t", &topic_message(3)).unwrap(), 2);
}

#[test]
fn redb_drop_drains_submitted_writes() {
    let dir = TempDir::new("drain");
    let r = record(MACHINE_A, "drain", 1);
    let acked = Arc::new(AtomicUsize::new(0));
    {
        let s = RedbStore::open(dir.path()).unwrap();
        create(&s, &r);
        for seq in 1..=500 {
            let acked = acked.clone();
            s.submit(
                vec![journal(&r.execution_arn, seq)],
                Box::new(move |res| {
                    res.unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
        // Dropped at once: the drop waits for the queue to drain.
    }
    assert_eq!(acked.load(Ordering::SeqCst), 500);
    let s = RedbStore::open(dir.path()).unwrap();
    assert_eq!(s.journal(&r.execution_arn).unwrap().len(), 501);
}

#[test]
fn redb_last_owner_dropped_in_an_ack() {
    // The executor's acks hold the store; when the last one goes, the store is dropped on
    // the commit thread, which must not wait for itself.
    let dir = TempDir::new("last-owner");
    let r = record(MACHINE_A, "last", 1);
    let (tx, rx) = std::sync::mpsc::channel();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    {
        let s = Arc::new(RedbStore::open(dir.path()).unwrap());
        create(&*s, &r);
        let held = s.clone();
        s.submit(
            vec![journal(&r.execution_arn, 1)],
            Box::new(move |res| {
                // Until this test's own handle is gone, so this one is the last.
                wait.recv_timeout(Duration::from_secs(10)).unwrap();
                tx.send(res).unwrap();
                drop(held);
            }),
        );
    }
    go.send(()).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), Ok(()));
    // The commit thread closes the file once it has drained; then it opens again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        match RedbStore::open(dir.path()) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("the store did not close: {e}"),
        }
    };
    assert_eq!(s.journal(&r.execution_arn).unwrap().len(), 2);
}

#[test]
fn redb_acks_may_submit_but_not_wait() {
    let dir = TempDir::new("ack-calls");
    let s = Arc::new(RedbStore::open(dir.path()).unwrap());
    let r = record(MACHINE_A, "chain", 1);
    create(&*s, &r);
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = s.clone();
    let arn = r.execution_arn.clone();
    s.submit(
        vec![journal(&r.execution_arn, 1)],
        Box::new(move |res| {
            res.unwrap();
            // A synchronous call from an ack would wait for its own thread: refused.
            let flushed = inner.flush();
            let queued = inner.create_queue("from-ack");
            // Submitting the next write is what the executor does.
            let tx2 = tx.clone();
            inner.submit(vec![journal(&arn, 2)], Box::new(move |res| tx2.send(("second", Ok(res))).unwrap()));
            tx.send(("first", Err((flushed, queued)))).unwrap();
        }),
    );
    let (what, first) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(what, "first");
    let (flushed, queued) = first.unwrap_err();
    assert!(matches!(&flushed, Err(StoreError::Io(m)) if m.contains("acknowledgement")), "{flushed:?}");
    assert!(matches!(&queued, Err(StoreError::Io(m)) if m.contains("acknowledgement")), "{queued:?}");
    let (what, second) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((what, second), ("second", Ok(Ok(()))));
    assert_eq!(s.journal(&r.execution_arn).unwrap().len(), 3);
    assert_eq!(s.queues().unwrap(), Vec::<String>::new());
}

#[test]
fn redb_open_locked_or_corrupt_is_a_clear_error() {
    let dir = TempDir::new("locked");
    let first = RedbStore::open(dir.path()).unwrap();
    let file = dir.path().join("sfn.redb");
    match RedbStore::open(dir.path()) {
        Err(StoreError::Io(m)) => assert!(m.contains(&file.display().to_string()), "{m}"),
        Err(e) => panic!("expected Io, got {e:?}"),
        Ok(_) => panic!("a store open elsewhere must not open twice"),
    }
    drop(first);
    RedbStore::open(dir.path()).unwrap();

    let corrupt = TempDir::new("corrupt");
    std::fs::create_dir_all(corrupt.path()).unwrap();
    let file = corrupt.path().join("sfn.redb");
    std::fs::write(&file, vec![0x5a; 16 * 1024]).unwrap();
    match RedbStore::open(corrupt.path()) {
        Err(StoreError::Io(m)) => assert!(m.contains(&file.display().to_string()), "{m}"),
        Err(e) => panic!("expected Io, got {e:?}"),
        Ok(_) => panic!("a file of garbage must not open"),
    }

    // The directory cannot be created (a file is in the way).
    let blocked = TempDir::new("blocked");
    std::fs::write(blocked.path(), b"not a directory").unwrap();
    let blocked_path = blocked.path().to_owned();
    match RedbStore::open(&blocked_path) {
        Err(StoreError::Io(m)) => assert!(m.contains(&blocked_path.display().to_string()), "{m}"),
        other => panic!("expected Io, got {:?}", other.err()),
    }
    let _ = std::fs::remove_file(&blocked_path);
}

// ---------------------------------------------------------------------------------------
// The crash test: a child process (this binary, running `crash_child`) submits writes
// from several threads and prints each acknowledged (execution, seq); the parent SIGKILLs
// it mid-run, reopens the store and requires every acknowledged write, with no gaps.

const CRASH_DIR: &str = "SFN_STORE_CRASH_CHILD_DIR";
const CRASH_EXECUTIONS: usize = 8;

fn crash_record(e: usize) -> ExecutionRecord {
    record(MACHINE_A, &format!("crash-{e}"), e as i64)
}

/// Does nothing unless run as the crash test's child.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else { return };
    let store = RedbStore::open(Path::new(&dir)).unwrap();
    // Bounded even if the parent never kills it.
    let deadline = Instant::now() + Duration::from_secs(30);
    std::thread::scope(|scope| {
        for e in 0..CRASH_EXECUTIONS {
            let store = &store;
            scope.spawn(move || {
                let r = crash_record(e);
                create(store, &r);
                println_ack(e, 0);
                let mut seq = 1;
                while Instant::now() < deadline {
                    submit_wait(store, vec![journal(&r.execution_arn, seq), event(&r.execution_arn, seq + 1)]).unwrap();
                    println_ack(e, seq);
                    seq += 1;
                }
            });
        }
    });
}

fn println_ack(e: usize, seq: u32) {
    // Straight to the process's stdout (not the test harness's captured output); one
    // write per line.
    let mut out = std::io::stdout().lock();
    writeln!(out, "ack {e} {seq}").unwrap();
    out.flush().unwrap();
}

/// Kills the child if the parent fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn redb_crash_keeps_every_acknowledged_write() {
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args(["--exact", crate::test_name(module_path!(), "crash_child").as_str(), "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (lines, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut acked = [None::<u32>; CRASH_EXECUTIONS];
    let mut count = 0usize;
    let note = |line: &str, acked: &mut [Option<u32>; CRASH_EXECUTIONS], count: &mut usize| {
        // The harness's "test crash_child ... " has no newline: the first ack follows it.
        let Some(at) = line.find("ack ") else { return };
        let rest = &line[at + 4..];
        let (e, seq) = rest.split_once(' ').unwrap();
        let (e, seq): (usize, u32) = (e.parse().unwrap(), seq.parse().unwrap());
        assert_eq!(acked[e].map_or(0, |s| s + 1), seq, "the child acknowledges each execution's seqs in order");
        acked[e] = Some(seq);
        *count += 1;
    };
    // Kill after enough acknowledgements (writes are in flight then), or after 8 s.
    let deadline = Instant::now() + Duration::from_secs(8);
    while count < 2_000 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => note(&line, &mut acked, &mut count),
            Err(_) => break,
        }
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    // What the child printed before it died: acknowledged, so durable.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        note(&line, &mut acked, &mut count);
    }
    reader.join().unwrap();
    assert!(count >= 50, "the child acknowledged only {count} writes before the kill");

    let reopened = Instant::now();
    let s = RedbStore::open(dir.path()).unwrap();
    println!("killed after {count} acknowledgements; reopened (with repair) in {:?}", reopened.elapsed());
    for (e, acked) in acked.iter().enumerate() {
        let r = crash_record(e);
        let entries = s.journal(&r.execution_arn).unwrap();
        if let Some(seq) = acked {
            assert!(entries.len() > *seq as usize, "execution {e}: acknowledged seq {seq}, stored {}", entries.len());
            assert_eq!(s.execution(&r.execution_arn).unwrap(), Some(r.clone()));
        }
        // No gaps: entry i is seq i.
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry, &format!("entry {i} of {}", r.execution_arn).into_bytes(), "execution {e}");
        }
        // Each submission's journal entry and event were committed together.
        let events = s.history(&r.execution_arn, false, 1_000_000, None).unwrap().items;
        assert_eq!(events.len(), entries.len(), "execution {e}: events and journal entries of one submission");
    }
}
