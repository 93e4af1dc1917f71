//! [`RedbStore`]: the [`Store`] contract on disk, in one redb database file
//! (`<dir>/sfn.redb`), with group commit.
//!
//! Input: the same calls as [`super::MemStore`]. Output: the same answers, surviving the
//! process (and a crash: a write whose acknowledgement ran is on disk). Never touches the
//! executor, programs or the clock.
//!
//! Why redb: embedded (a library and one file, no server to run beside `sfn`), pure Rust
//! (no C toolchain, builds wherever the engine does), ACID transactions with durable
//! commits (`Durability::Immediate`: one `fdatasync` per commit, copy-on-write pages and a
//! checksummed header, so a crash leaves the last committed state), readers that never
//! block the writer (MVCC), and crash recovery on open.
//!
//! **Group commit.** One thread (`sfn-store-commit`) owns every write. [`Store::submit`]
//! only queues its writes (a crossbeam channel); the thread takes everything queued (up to
//! [`MAX_GROUP`] submissions), applies it in ONE write transaction, commits durably, then
//! runs the acknowledgements in submission order. An fsync costs the same for one
//! transition as for a hundred, so throughput grows with the number of executions waiting
//! (`benches/src/bin/store-commit.rs`, `results/store-commit.md`). The synchronous methods
//! (`create_execution`, `send_message`, `receive_messages`, `publish`, `create_queue`, ...)
//! go through the same queue and wait for their group's commit, so they are durable on
//! return and ordered with submitted writes. Reads use their own read transactions and see
//! every committed group. A failed commit fails every submission of its group with
//! [`StoreError::Io`] naming the file and the step; nothing of that group is stored.
//!
//! The queue is unbounded: callers bound what they have in flight (the executor: one
//! transition per execution, waiting for its acknowledgement).
//!
//! Acknowledgements run on the commit thread: they may call [`Store::submit`] (the next
//! transition) and read, but a synchronous write or [`Store::flush`] from an
//! acknowledgement would wait for itself, so it returns an error instead.
//!
//! **Layout.** Each execution gets a small integer id the first time its ARN is written
//! (`execution_ids`). Its journal entries and history events are stored in *bundles*
//! (`steps`): one row per execution per group, holding what that group wrote for it, keyed
//! by `(id, highest event id so far, highest journal seq + 1 so far)`, so an execution's
//! rows are contiguous and in order, and a history page starts with one seek by event id.
//! A B-tree write dirties a whole 4 KiB page; one row per execution per commit (instead of
//! a row per entry in a journal table and an event table) dirties one leaf per execution
//! per commit instead of two (see `Bundle`). Records are keyed by id and carry their listing
//! position (`listing`: creation order, read backwards for newest-first; `by_machine`: the
//! same per state machine). `running` holds `(state machine, id)` for RUNNING executions
//! only, so [`Store::unfinished`] reads just those, however many executions have finished.
//! Queues and topics get an id too; their messages are keyed by `(id, position)`. Records
//! and messages are encoded by hand (length-prefixed fields after a format byte): the
//! contract's types stay free of serde.
//!
//! Journal entries and events are expected in increasing seq / id order per execution (as
//! the executor writes them); reads skip an event id that does not increase, and a
//! journal entry is returned in the order written.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use redb::{Database, Durability, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::{
    CommitAck, Created, ExecutionRecord, ListFilter, Page, QueueMessage, RecordStatus, Store, StoreError, TopicMessage,
    Write,
};

/// The database file inside the store's directory.
pub const FILE_NAME: &str = "sfn.redb";

/// At most this many submissions share one transaction: bounds the transaction's size and
/// the latency of the first acknowledgement in it. With the executor waiting for each
/// execution's acknowledgement, a group holds at most one submission per execution in
/// flight, so this is reached only by bursts.
pub const MAX_GROUP: usize = 4096;

/// The longest pause between two arrivals while a group waits for the submitters the
/// previous group acknowledged (`Committer::gather`): a submitter thread that was woken by
/// its acknowledgement submits well within this unless it is descheduled.
const GATHER_IDLE: Duration = Duration::from_micros(200);

/// The longest a group waits for them in all.
const GATHER_MAX: Duration = Duration::from_millis(2);

/// Bumped when the layout below changes; a store of another format is refused on open.
const FORMAT: u64 = 1;

/// Counters and the format version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Execution ARN → its id.
const EXECUTION_IDS: TableDefinition<&str, u64> = TableDefinition::new("execution_ids");
/// Execution id → encoded record (with its listing position).
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// Listing position (creation order) → execution id.
const LISTING: TableDefinition<u64, u64> = TableDefinition::new("listing");
/// (state machine ARN, listing position) → execution id.
const BY_MACHINE: TableDefinition<(&str, u64), u64> = TableDefinition::new("by_machine");
/// (state machine ARN, execution id) of every RUNNING execution.
const RUNNING: TableDefinition<(&str, u64), ()> = TableDefinition::new("running");
/// (execution id, highest event id so far, highest journal seq + 1 so far) → a bundle: the
/// journal entries and history events one group wrote for that execution (see [`Bundle`]).
const STEPS: TableDefinition<(u64, u64, u64), &[u8]> = TableDefinition::new("steps");
/// Task token → the ARN of the execution waiting on it.
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// Queue name → queue id.
const QUEUES: TableDefinition<&str, u64> = TableDefinition::new("queues");
/// (queue id, position) → encoded message.
const QUEUE_MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("queue_messages");
/// Topic name → topic id.
const TOPICS: TableDefinition<&str, u64> = TableDefinition::new("topics");
/// (topic id, position) → encoded message.
const TOPIC_MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("topic_messages");

const NEXT_EXECUTION_ID: &str = "next_execution_id";
const NEXT_LISTING: &str = "next_listing_position";
const NEXT_QUEUE_ID: &str = "next_queue_id";
const NEXT_TOPIC_ID: &str = "next_topic_id";
const FORMAT_KEY: &str = "format";

/// The id cache of the commit thread is cleared past this many ARNs (finished executions
/// are rarely written again; a miss costs one B-tree lookup).
const ID_CACHE_MAX: usize = 1 << 16;

/// Default page size when a caller passes `max_results` 0 (as [`super::MemStore`]).
const DEFAULT_PAGE: usize = 100;

/// The durable [`Store`]: one redb file, one commit thread.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    stats: Arc<Counters>,
    jobs: Sender<Job>,
    committer: Option<JoinHandle<()>>,
    committer_id: ThreadId,
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`, creating the directory and
    /// `dir/`[`FILE_NAME`]. A file that is not a redb database, is corrupt, or is held open
    /// by another store (in this or another process) is an [`StoreError::Io`] naming it.
    /// After a crash, redb repairs the file here (its last committed state).
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("creating the store directory {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let named = |what: &str, e: &dyn Display| StoreError::Io(format!("{what} {}: {e}", path.display()));
        let db = Database::builder().create(&path).map_err(|e| named("opening the store", &e))?;
        // Every table exists from the start, so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| named("initialising the store", &e))?;
        {
            let init = || -> Result<(), StoreError> {
                let t = Tables::open(&txn, HashMap::new())?;
                let mut meta = t.meta;
                let format = meta.get(FORMAT_KEY).ctx("reading the format")?.map(|v| v.value());
                match format {
                    None => {
                        meta.insert(FORMAT_KEY, FORMAT).ctx("writing the format")?;
                    }
                    Some(FORMAT) => {}
                    Some(other) => {
                        return Err(StoreError::Io(format!("format {other}, this build reads format {FORMAT}")))
                    }
                }
                Ok(())
            };
            if let Err(StoreError::Io(e)) = init() {
                return Err(StoreError::Io(format!("initialising the store {}: {e}", path.display())));
            }
        }
        txn.commit().map_err(|e| named("initialising the store", &e))?;

        let db = Arc::new(db);
        let (jobs, queue) = crossbeam_channel::unbounded();
        let stats = Arc::new(Counters::default());
        let committer =
            Committer { db: db.clone(), path: path.clone(), queue, ids: HashMap::new(), stats: stats.clone() };
        let handle = std::thread::Builder::new()
            .name("sfn-store-commit".to_owned())
            .spawn(move || committer.run())
            .map_err(|e| StoreError::Io(format!("starting the commit thread of {}: {e}", path.display())))?;
        let committer_id = handle.thread().id();
        Ok(RedbStore { db, path, stats, jobs, committer: Some(handle), committer_id })
    }

    /// What the commit thread has done since the store was opened.
    pub fn stats(&self) -> CommitStats {
        let c = &self.stats;
        CommitStats {
            commits: c.commits.load(Ordering::Relaxed),
            submissions: c.submissions.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            busy_nanos: c.busy_nanos.load(Ordering::Relaxed),
            commit_nanos: c.commit_nanos.load(Ordering::Relaxed),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn closed(&self) -> StoreError {
        StoreError::Io(format!("the commit thread of {} has stopped", self.path.display()))
    }

    /// Refuses calls that would wait for the commit thread from the commit thread itself.
    fn not_from_ack(&self, what: &str) -> Result<(), StoreError> {
        if std::thread::current().id() == self.committer_id {
            return Err(StoreError::Io(format!(
                "{what} called from a commit acknowledgement of {} would wait for itself",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Runs `f` in the commit thread's next group and waits for that group's commit.
    fn call<R, F>(&self, what: &'static str, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&mut Tables<'t>) -> Result<R, StoreError> + Send + 'static,
    {
        self.not_from_ack(what)?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        let op = Call { what, f: Some(f), out: None, reply };
        self.jobs.send(Job::Op(Box::new(op))).map_err(|_| self.closed())?;
        answer.recv().map_err(|_| self.closed())?
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.db.begin_read().map_err(|e| StoreError::Io(format!("reading {}: {e}", self.path.display())))
    }

    /// Adds the file to an I/O error of a read.
    fn located(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Io(m) => StoreError::Io(format!("reading {}: {m}", self.path.display())),
            e => e,
        }
    }

    fn read_with<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let txn = self.read()?;
        f(&txn).map_err(|e| self.located(e))
    }
}

impl Drop for RedbStore {
    /// Drains: everything submitted before the drop is committed (and acknowledged) before
    /// the commit thread stops and the file is closed.
    ///
    /// When the last owner of the store was an acknowledgement (an `Arc` captured by an
    /// ack closure), the drop runs on the commit thread itself: it cannot wait for itself,
    /// so it only asks it to stop; the thread closes the file when it has drained.
    fn drop(&mut self) {
        let _ = self.jobs.send(Job::Stop);
        if let Some(h) = self.committer.take() {
            if std::thread::current().id() != self.committer_id {
                let _ = h.join();
            }
        }
    }
}

/// Counters of the commit thread ([`RedbStore::stats`]); the group size is
/// `submissions / commits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Jobs in those transactions: `submit` calls and synchronous writes.
    pub submissions: u64,
    /// [`Write`]s in them (a synchronous call counts as one).
    pub writes: u64,
    /// Groups whose transaction failed (every ack in them got the error).
    pub failed_commits: u64,
    /// Wall time spent on groups (opening the transaction, applying, committing),
    /// nanoseconds: the thread is idle the rest of the time.
    pub busy_nanos: u64,
    /// Of which in redb's `commit` (writing the dirty pages, `fdatasync`), nanoseconds.
    pub commit_nanos: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    submissions: AtomicU64,
    writes: AtomicU64,
    failed_commits: AtomicU64,
    busy_nanos: AtomicU64,
    commit_nanos: AtomicU64,
}

// ---------------------------------------------------------------------------------------
// The commit thread.

enum Job {
    Writes(Vec<Write>, CommitAck),
    Op(Box<dyn Op>),
    Flush(Sender<Result<(), StoreError>>),
    Stop,
}

impl Job {
    /// Writes the job carries, for [`CommitStats::writes`].
    fn write_count(&self) -> u64 {
        match self {
            Job::Writes(w, _) => w.len() as u64,
            Job::Op(_) => 1,
            Job::Flush(_) | Job::Stop => 0,
        }
    }

    /// Whether the job needs a write transaction.
    fn writes(&self) -> bool {
        match self {
            Job::Writes(w, _) => !w.is_empty(),
            Job::Op(_) => true,
            Job::Flush(_) | Job::Stop => false,
        }
    }

    fn apply(&mut self, t: &mut Tables<'_>) -> Result<(), StoreError> {
        match self {
            Job::Writes(writes, _) => {
                for w in writes.drain(..) {
                    t.apply(w)?;
                }
                Ok(())
            }
            Job::Op(op) => op.apply(t),
            Job::Flush(_) | Job::Stop => Ok(()),
        }
    }

    fn finish(self, commit: Result<(), StoreError>) {
        match self {
            Job::Writes(_, ack) => ack(commit),
            Job::Op(op) => op.finish(commit),
            Job::Flush(reply) => {
                let _ = reply.send(commit);
            }
            Job::Stop => {}
        }
    }
}

/// A synchronous call run inside a group: `apply` does its reads and writes (an `Io`
/// error fails the whole group; any other error is the call's answer and must be found
/// before it writes anything), `finish` answers once the group is committed.
trait Op: Send {
    fn apply(&mut self, t: &mut Tables<'_>) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Call<R, F> {
    what: &'static str,
    f: Option<F>,
    out: Option<Result<R, StoreError>>,
    reply: Sender<Result<R, StoreError>>,
}

impl<R, F> Op for Call<R, F>
where
    R: Send,
    F: for<'t> FnOnce(&mut Tables<'t>) -> Result<R, StoreError> + Send,
{
    fn apply(&mut self, t: &mut Tables<'_>) -> Result<(), StoreError> {
        let f = self.f.take().expect("a call is applied once (internal error)");
        match f(t) {
            Err(StoreError::Io(e)) => Err(StoreError::Io(format!("{}: {e}", self.what))),
            out => {
                self.out = Some(out);
                Ok(())
            }
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.out) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(out)) => out,
            (Ok(()), None) => Err(StoreError::Io(format!("{} was not applied (internal error)", self.what))),
        };
        let _ = self.reply.send(answer);
    }
}

struct Committer {
    db: Arc<Database>,
    path: PathBuf,
    queue: Receiver<Job>,
    /// ARN → execution id of committed executions (cleared when a commit fails).
    ids: HashMap<Arc<str>, u64>,
    stats: Arc<Counters>,
}

impl Committer {
    fn run(mut self) {
        let mut group: Vec<Job> = Vec::new();
        // Gathering (see `gather`): what the last group was, and how long it took.
        let mut expected = 0usize;
        let mut last_busy = Duration::ZERO;
        loop {
            let Ok(first) = self.queue.recv() else { return };
            group.push(first);
            self.drain_into(&mut group);
            self.gather(&mut group, expected, last_busy);
            let stop = group.iter().any(|j| matches!(j, Job::Stop));
            let started = Instant::now();
            let len = group.len();
            // The submitters of this group are acknowledged at the end of `process`: most
            // submit their next writes then. Those queued before arrived while it committed.
            let queued_before_acks = self.process(&mut group);
            last_busy = started.elapsed();
            expected = queued_before_acks + len;
            if stop {
                // Whatever acknowledgements submitted during the drain comes after the
                // drop began: refused, not lost silently.
                while let Ok(job) = self.queue.try_recv() {
                    let closed =
                        StoreError::Io(format!("{} is closed (submitted during its drop)", self.path.display()));
                    let _ = catch_unwind(AssertUnwindSafe(|| job.finish(Err(closed))));
                }
                return;
            }
        }
    }

    fn drain_into(&self, group: &mut Vec<Job>) {
        while group.len() < MAX_GROUP {
            match self.queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
    }

    /// Waits a little for the submitters just acknowledged, so they share this group's
    /// fsync instead of starting the next one. Without it, executions that each wait for
    /// their acknowledgement split into two cohorts that commit alternately: every fsync
    /// then carries half of them. Waits only while fewer than `expected` submissions are
    /// here, at most [`GATHER_IDLE`] between arrivals and a quarter of the last group's
    /// time in all (so a lone submitter never waits, and waiting costs at most a fraction
    /// of an fsync).
    fn gather(&self, group: &mut Vec<Job>, expected: usize, last_busy: Duration) {
        let deadline = Instant::now() + (last_busy / 4).min(GATHER_MAX);
        while group.len() < expected.min(MAX_GROUP) && !group.iter().any(|j| matches!(j, Job::Stop)) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.queue.recv_deadline(deadline.min(now + GATHER_IDLE)) {
                Ok(job) => {
                    group.push(job);
                    self.drain_into(group);
                }
                Err(_) => break,
            }
        }
    }

    /// Commits a group and answers every job in it, in order. Returns how many jobs were
    /// queued when the answers began.
    fn process(&mut self, group: &mut Vec<Job>) -> usize {
        // A group of flushes alone needs no transaction: every earlier group is done.
        let result = if group.iter().any(Job::writes) {
            let started = Instant::now();
            let writes: u64 = group.iter().map(Job::write_count).sum();
            let submissions = group.iter().filter(|j| j.writes()).count() as u64;
            let result = self.commit(group);
            let c = &self.stats;
            c.busy_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            if result.is_ok() {
                c.commits.fetch_add(1, Ordering::Relaxed);
                c.submissions.fetch_add(submissions, Ordering::Relaxed);
                c.writes.fetch_add(writes, Ordering::Relaxed);
            } else {
                c.failed_commits.fetch_add(1, Ordering::Relaxed);
            }
            result
        } else {
            Ok(())
        };
        let queued = self.queue.len();
        for job in group.drain(..) {
            // An acknowledgement that panics must not take the other ones (and the store)
            // with it.
            let r = result.clone();
            let _ = catch_unwind(AssertUnwindSafe(|| job.finish(r)));
        }
        queued
    }

    /// Applies the group in one write transaction and commits it durably.
    fn commit(&mut self, group: &mut [Job]) -> Result<(), StoreError> {
        let result = match catch_unwind(AssertUnwindSafe(|| self.try_commit(group))) {
            Ok(r) => r,
            Err(_) => Err(StoreError::Io("panic while applying the writes (internal error)".to_owned())),
        };
        result.map_err(|e| {
            // The transaction's new ids are gone with it.
            self.ids.clear();
            let e = match e {
                StoreError::Io(m) => m,
                e => e.to_string(),
            };
            StoreError::Io(format!("group commit of {} submissions to {}: {e}", group.len(), self.path.display()))
        })
    }

    fn try_commit(&mut self, group: &mut [Job]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().ctx("beginning the write transaction")?;
        txn.set_durability(Durability::Immediate);
        let applied = (|| {
            let mut t = Tables::open(&txn, std::mem::take(&mut self.ids))?;
            let r = group.iter_mut().try_for_each(|job| job.apply(&mut t)).and_then(|()| t.write_bundles());
            self.ids = t.into_ids();
            r
        })();
        match applied {
            Ok(()) => {
                let started = Instant::now();
                let r = txn.commit().ctx("commit (fsync)");
                self.stats.commit_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                r
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tables of one write transaction, and every write.

struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    execution_ids: Table<'t, &'static str, u64>,
    records: Table<'t, u64, &'static [u8]>,
    listing: Table<'t, u64, u64>,
    by_machine: Table<'t, (&'static str, u64), u64>,
    running: Table<'t, (&'static str, u64), ()>,
    steps: Table<'t, (u64, u64, u64), &'static [u8]>,
    tokens: Table<'t, &'static str, &'static str>,
    queues: Table<'t, &'static str, u64>,
    queue_messages: Table<'t, (u64, u64), &'static [u8]>,
    topics: Table<'t, &'static str, u64>,
    topic_messages: Table<'t, (u64, u64), &'static [u8]>,
    ids: HashMap<Arc<str>, u64>,
    /// This group's journal entries and events, per execution id, until `write_bundles`.
    bundles: BTreeMap<u64, Bundle>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction, ids: HashMap<Arc<str>, u64>) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META).ctx("opening table meta")?,
            execution_ids: txn.open_table(EXECUTION_IDS).ctx("opening table execution_ids")?,
            records: txn.open_table(RECORDS).ctx("opening table records")?,
            listing: txn.open_table(LISTING).ctx("opening table listing")?,
            by_machine: txn.open_table(BY_MACHINE).ctx("opening table by_machine")?,
            running: txn.open_table(RUNNING).ctx("opening table running")?,
            steps: txn.open_table(STEPS).ctx("opening table steps")?,
            tokens: txn.open_table(TOKENS).ctx("opening table tokens")?,
            queues: txn.open_table(QUEUES).ctx("opening table queues")?,
            queue_messages: txn.open_table(QUEUE_MESSAGES).ctx("opening table queue_messages")?,
            topics: txn.open_table(TOPICS).ctx("opening table topics")?,
            topic_messages: txn.open_table(TOPIC_MESSAGES).ctx("opening table topic_messages")?,
            ids,
            bundles: BTreeMap::new(),
        })
    }

    /// Stores each execution's bundle of this group under its next key.
    fn write_bundles(&mut self) -> Result<(), StoreError> {
        for (id, b) in std::mem::take(&mut self.bundles) {
            let (e0, j0) = {
                let last = self.steps.range((id, 0, 0)..=(id, u64::MAX, u64::MAX)).ctx("reading steps")?.next_back();
                match last {
                    Some(e) => {
                        let (_, e, j) = e.ctx("reading steps")?.0.value();
                        (e, j)
                    }
                    None => (0, 0),
                }
            };
            let mut key = (id, e0.max(b.max_event), j0.max(b.max_seq_end));
            if (key.1, key.2) <= (e0, j0) {
                // Only rewrites of earlier ids/seqs (outside the contract): still a new key.
                key = (id, e0, j0 + 1);
            }
            self.steps.insert(key, b.bytes.as_slice()).ctx("writing steps")?;
        }
        Ok(())
    }

    fn into_ids(self) -> HashMap<Arc<str>, u64> {
        self.ids
    }

    /// Takes the next value of a counter.
    fn next(&mut self, counter: &str) -> Result<u64, StoreError> {
        let n = self.meta.get(counter).ctx("reading a counter")?.map_or(0, |v| v.value());
        self.meta.insert(counter, n + 1).ctx("writing a counter")?;
        Ok(n)
    }

    /// The execution's id; a new one if the ARN was never written.
    fn id(&mut self, arn: &Arc<str>) -> Result<u64, StoreError> {
        if let Some(&id) = self.ids.get(arn) {
            return Ok(id);
        }
        let found = self.execution_ids.get(&**arn).ctx("reading execution_ids")?.map(|v| v.value());
        let id = match found {
            Some(id) => id,
            None => {
                let id = self.next(NEXT_EXECUTION_ID)?;
                self.execution_ids.insert(&**arn, id).ctx("writing execution_ids")?;
                id
            }
        };
        if self.ids.len() >= ID_CACHE_MAX {
            self.ids.clear();
        }
        self.ids.insert(arn.clone(), id);
        Ok(id)
    }

    fn existing_id(&self, arn: &str) -> Result<Option<u64>, StoreError> {
        if let Some(&id) = self.ids.get(arn) {
            return Ok(Some(id));
        }
        Ok(self.execution_ids.get(arn).ctx("reading execution_ids")?.map(|v| v.value()))
    }

    fn apply(&mut self, w: Write) -> Result<(), StoreError> {
        match w {
            Write::Journal { execution_arn, seq, entry } => {
                let id = self.id(&execution_arn)?;
                self.bundles.entry(id).or_default().push(JOURNAL_ITEM, seq, &entry);
            }
            Write::Event { execution_arn, id: event, json } => {
                let id = self.id(&execution_arn)?;
                self.bundles.entry(id).or_default().push(EVENT_ITEM, event, &json);
            }
            Write::Record(r) => self.put_record(&r)?,
            Write::Token { token, execution_arn: Some(arn) } => {
                self.tokens.insert(token.as_str(), &*arn).ctx("writing a task token")?;
            }
            Write::Token { token, execution_arn: None } => {
                self.tokens.remove(token.as_str()).ctx("removing a task token")?;
            }
        }
        Ok(())
    }

    /// Stores or replaces a record, keeping `listing`, `by_machine` and `running` in step.
    fn put_record(&mut self, r: &ExecutionRecord) -> Result<(), StoreError> {
        let id = self.id(&Arc::from(r.execution_arn.as_str()))?;
        let old = match self.records.get(id).ctx("reading a record")? {
            Some(v) => Some(decode_record(v.value())?),
            None => None,
        };
        let position = match &old {
            Some((position, old)) => {
                if old.state_machine_arn != r.state_machine_arn {
                    self.by_machine.remove((old.state_machine_arn.as_str(), *position)).ctx("writing by_machine")?;
                    self.by_machine.insert((r.state_machine_arn.as_str(), *position), id).ctx("writing by_machine")?;
                }
                if old.status == RecordStatus::Running {
                    self.running.remove((old.state_machine_arn.as_str(), id)).ctx("writing running")?;
                }
                *position
            }
            None => {
                let position = self.next(NEXT_LISTING)?;
                self.listing.insert(position, id).ctx("writing listing")?;
                self.by_machine.insert((r.state_machine_arn.as_str(), position), id).ctx("writing by_machine")?;
                position
            }
        };
        if r.status == RecordStatus::Running {
            self.running.insert((r.state_machine_arn.as_str(), id), ()).ctx("writing running")?;
        }
        self.records.insert(id, encode_record(position, r).as_slice()).ctx("writing a record")?;
        Ok(())
    }

    fn record(&self, id: u64) -> Result<Option<ExecutionRecord>, StoreError> {
        match self.records.get(id).ctx("reading a record")? {
            Some(v) => Ok(Some(decode_record(v.value())?.1)),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The contract.

impl Store for RedbStore {
    fn create_execution(&self, record: &ExecutionRecord, first: Vec<Write>) -> Result<Created, StoreError> {
        let record = record.clone();
        self.call("creating an execution", move |t| {
            if let Some(id) = t.existing_id(&record.execution_arn)? {
                if let Some(existing) = t.record(id)? {
                    return Ok(Created::Existing(Box::new(existing)));
                }
            }
            t.put_record(&record)?;
            for w in first {
                t.apply(w)?;
            }
            Ok(Created::New)
        })
    }

    fn execution(&self, execution_arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.read_with(|txn| {
            let ids = txn.open_table(EXECUTION_IDS).ctx("opening execution_ids")?;
            let Some(id) = ids.get(execution_arn).ctx("reading execution_ids")?.map(|v| v.value()) else {
                return Ok(None);
            };
            let records = txn.open_table(RECORDS).ctx("opening records")?;
            match records.get(id).ctx("reading a record")? {
                Some(v) => Ok(Some(decode_record(v.value())?.1)),
                None => Ok(None),
            }
        })
    }

    fn list_executions(
        &self,
        filter: &ListFilter,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<ExecutionRecord>, StoreError> {
        let max = if max_results == 0 { DEFAULT_PAGE } else { max_results };
        // The token is the listing position to resume at (going down).
        let start = match next_token {
            None => u64::MAX,
            Some(t) => parse_token(t, 'e')?,
        };
        self.read_with(|txn| {
            let records = txn.open_table(RECORDS).ctx("opening records")?;
            let mut items = Vec::new();
            let mut next = None;
            let mut visit = |position: u64, id: u64| -> Result<bool, StoreError> {
                let Some(v) = records.get(id).ctx("reading a record")? else { return Ok(true) };
                let (_, r) = decode_record(v.value())?;
                if filter.status.is_some_and(|s| s != r.status) {
                    return Ok(true);
                }
                if items.len() == max {
                    next = Some(format!("e{position}"));
                    return Ok(false);
                }
                items.push(r);
                Ok(true)
            };
            if let Some(machine) = filter.state_machine_arn.as_deref() {
                let index = txn.open_table(BY_MACHINE).ctx("opening by_machine")?;
                for e in index.range((machine, 0)..=(machine, start)).ctx("reading by_machine")?.rev() {
                    let (k, v) = e.ctx("reading by_machine")?;
                    if !visit(k.value().1, v.value())? {
                        break;
                    }
                }
            } else {
                let listing = txn.open_table(LISTING).ctx("opening listing")?;
                for e in listing.range(0..=start).ctx("reading listing")?.rev() {
                    let (k, v) = e.ctx("reading listing")?;
                    if !visit(k.value(), v.value())? {
                        break;
                    }
                }
            }
            Ok(Page { items, next_token: next })
        })
    }

    fn unfinished(&self, state_machine_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.read_with(|txn| {
            let running = txn.open_table(RUNNING).ctx("opening running")?;
            let records = txn.open_table(RECORDS).ctx("opening records")?;
            let mut out = Vec::new();
            for e in running.range((state_machine_arn, 0)..=(state_machine_arn, u64::MAX)).ctx("reading running")? {
                let (k, _) = e.ctx("reading running")?;
                if let Some(v) = records.get(k.value().1).ctx("reading a record")? {
                    out.push(decode_record(v.value())?.1);
                }
            }
            Ok(out)
        })
    }

    fn journal(&self, execution_arn: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read_with(|txn| {
            let ids = txn.open_table(EXECUTION_IDS).ctx("opening execution_ids")?;
            let Some(id) = ids.get(execution_arn).ctx("reading execution_ids")?.map(|v| v.value()) else {
                return Ok(Vec::new());
            };
            let steps = txn.open_table(STEPS).ctx("opening steps")?;
            let mut out = Vec::new();
            for e in steps.range((id, 0, 0)..=(id, u64::MAX, u64::MAX)).ctx("reading steps")? {
                for item in Items::new(e.ctx("reading steps")?.1.value())? {
                    let (kind, _, bytes) = item?;
                    if kind == JOURNAL_ITEM {
                        out.push(bytes.to_vec());
                    }
                }
            }
            Ok(out)
        })
    }

    fn history(
        &self,
        execution_arn: &str,
        reverse: bool,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Vec<u8>>, StoreError> {
        let max = if max_results == 0 { DEFAULT_PAGE } else { max_results };
        // The token is the event id to resume at; its letter says which direction.
        let (letter, first) = if reverse { ('r', u32::MAX) } else { ('f', 0) };
        let from = match next_token {
            None => first,
            Some(t) => u32::try_from(parse_token(t, letter)?).map_err(|_| StoreError::InvalidToken(t.to_owned()))?,
        };
        self.read_with(|txn| {
            let ids = txn.open_table(EXECUTION_IDS).ctx("opening execution_ids")?;
            let Some(id) = ids.get(execution_arn).ctx("reading execution_ids")?.map(|v| v.value()) else {
                return Ok(Page { items: Vec::new(), next_token: None });
            };
            let steps = txn.open_table(STEPS).ctx("opening steps")?;
            // The first bundle whose highest event id reaches `from` holds it (or, going
            // backwards from past the end, the last bundle).
            let x = u64::from(from);
            let seek = steps.range((id, x, 0)..=(id, u64::MAX, u64::MAX)).ctx("reading steps")?.next();
            let seek = match seek {
                Some(e) => Some(e.ctx("reading steps")?.0.value()),
                None => None,
            };
            let bundles = match (seek, reverse) {
                (Some(k), false) => steps.range(k..=(id, u64::MAX, u64::MAX)),
                (None, false) => return Ok(Page { items: Vec::new(), next_token: None }),
                (Some(k), true) => steps.range((id, 0, 0)..=k),
                (None, true) => steps.range((id, 0, 0)..=(id, u64::MAX, u64::MAX)),
            }
            .ctx("reading steps")?;
            let bundles: Box<dyn Iterator<Item = _>> =
                if reverse { Box::new(bundles.rev()) } else { Box::new(bundles) };
            let mut items = Vec::new();
            let mut next = None;
            // Ids already passed (guards against ids written out of order).
            let mut last: Option<u32> = None;
            'bundles: for e in bundles {
                let (_, v) = e.ctx("reading steps")?;
                let mut events: Vec<(u32, &[u8])> = Vec::new();
                for item in Items::new(v.value())? {
                    let (kind, n, bytes) = item?;
                    if kind == EVENT_ITEM {
                        events.push((n, bytes));
                    }
                }
                if reverse {
                    events.reverse();
                }
                for (n, bytes) in events {
                    let wanted = if reverse {
                        n <= from && last.is_none_or(|l| n < l)
                    } else {
                        n >= from && last.is_none_or(|l| n > l)
                    };
                    if !wanted {
                        continue;
                    }
                    if items.len() == max {
                        next = Some(format!("{letter}{n}"));
                        break 'bundles;
                    }
                    items.push(bytes.to_vec());
                    last = Some(n);
                }
            }
            Ok(Page { items, next_token: next })
        })
    }

    fn token(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.read_with(|txn| {
            let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            Ok(tokens.get(token).ctx("reading tokens")?.map(|v| v.value().to_owned()))
        })
    }

    fn submit(&self, writes: Vec<Write>, ack: CommitAck) {
        if let Err(crossbeam_channel::SendError(job)) = self.jobs.send(Job::Writes(writes, ack)) {
            job.finish(Err(self.closed()));
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.not_from_ack("flush")?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.jobs.send(Job::Flush(reply)).map_err(|_| self.closed())?;
        answer.recv().map_err(|_| self.closed())?
    }

    fn create_queue(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call("creating a queue", move |t| {
            if t.queues.get(name.as_str()).ctx("reading queues")?.is_none() {
                let id = t.next(NEXT_QUEUE_ID)?;
                t.queues.insert(name.as_str(), id).ctx("writing queues")?;
            }
            Ok(())
        })
    }

    fn queues(&self) -> Result<Vec<String>, StoreError> {
        self.read_with(|txn| names(&txn.open_table(QUEUES).ctx("opening queues")?))
    }

    fn send_message(&self, queue: &str, message: &QueueMessage) -> Result<(), StoreError> {
        let queue = queue.to_owned();
        let bytes = encode_queue_message(message);
        self.call("sending a message", move |t| {
            let Some(q) = t.queues.get(queue.as_str()).ctx("reading queues")?.map(|v| v.value()) else {
                return Err(StoreError::NoSuchQueue(queue));
            };
            let position = next_position(&t.queue_messages, q)?;
            t.queue_messages.insert((q, position), bytes.as_slice()).ctx("writing a queue message")?;
            Ok(())
        })
    }

    fn receive_messages(&self, queue: &str, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        let queue = queue.to_owned();
        self.call("receiving messages", move |t| {
            let Some(q) = t.queues.get(queue.as_str()).ctx("reading queues")?.map(|v| v.value()) else {
                return Err(StoreError::NoSuchQueue(queue));
            };
            let mut taken = Vec::new();
            for e in t.queue_messages.range((q, 0)..=(q, u64::MAX)).ctx("reading queue messages")?.take(max) {
                let (k, v) = e.ctx("reading queue messages")?;
                taken.push((k.value().1, decode_queue_message(v.value())?));
            }
            for (position, _) in &taken {
                t.queue_messages.remove((q, *position)).ctx("removing a queue message")?;
            }
            Ok(taken.into_iter().map(|(_, m)| m).collect())
        })
    }

    fn create_topic(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call("creating a topic", move |t| {
            if t.topics.get(name.as_str()).ctx("reading topics")?.is_none() {
                let id = t.next(NEXT_TOPIC_ID)?;
                t.topics.insert(name.as_str(), id).ctx("writing topics")?;
            }
            Ok(())
        })
    }

    fn topics(&self) -> Result<Vec<String>, StoreError> {
        self.read_with(|txn| names(&txn.open_table(TOPICS).ctx("opening topics")?))
    }

    fn publish(&self, topic: &str, message: &TopicMessage) -> Result<u64, StoreError> {
        let topic = topic.to_owned();
        let bytes = encode_topic_message(message);
        self.call("publishing a message", move |t| {
            let Some(id) = t.topics.get(topic.as_str()).ctx("reading topics")?.map(|v| v.value()) else {
                return Err(StoreError::NoSuchTopic(topic));
            };
            let position = next_position(&t.topic_messages, id)?;
            t.topic_messages.insert((id, position), bytes.as_slice()).ctx("writing a topic message")?;
            Ok(position)
        })
    }

    fn topic_messages(&self, topic: &str, from: u64, max: usize) -> Result<Vec<(u64, TopicMessage)>, StoreError> {
        self.read_with(|txn| {
            let topics = txn.open_table(TOPICS).ctx("opening topics")?;
            let Some(id) = topics.get(topic).ctx("reading topics")?.map(|v| v.value()) else {
                return Err(StoreError::NoSuchTopic(topic.to_owned()));
            };
            let messages = txn.open_table(TOPIC_MESSAGES).ctx("opening topic_messages")?;
            let mut out = Vec::new();
            for e in messages.range((id, from)..=(id, u64::MAX)).ctx("reading topic messages")?.take(max) {
                let (k, v) = e.ctx("reading topic messages")?;
                out.push((k.value().1, decode_topic_message(v.value())?));
            }
            Ok(out)
        })
    }
}

/// The position after the last message of a queue or topic (0 when it has none).
fn next_position(table: &impl ReadableTable<(u64, u64), &'static [u8]>, id: u64) -> Result<u64, StoreError> {
    let last = table.range((id, 0)..=(id, u64::MAX)).ctx("reading messages")?.next_back();
    match last {
        Some(e) => Ok(e.ctx("reading messages")?.0.value().1 + 1),
        None => Ok(0),
    }
}

fn names(table: &impl ReadableTable<&'static str, u64>) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for e in table.iter().ctx("listing names")? {
        out.push(e.ctx("listing names")?.0.value().to_owned());
    }
    Ok(out)
}

/// `"<letter><decimal>"`, as this store issues page tokens.
fn parse_token(token: &str, letter: char) -> Result<u64, StoreError> {
    token
        .strip_prefix(letter)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| StoreError::InvalidToken(token.to_owned()))
}

/// Turns any error into [`StoreError::Io`] saying what was being done.
trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T, E: Display> Ctx<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Io(format!("{what}: {e}")))
    }
}

// ---------------------------------------------------------------------------------------
// Bundles: what one group wrote for one execution, as a sequence of items, each
// `kind (1 byte) | number (u32) | length (u32) | bytes`, where kind 0 is a journal entry
// (number = seq) and 1 a history event (number = event id), in the order written.
//
// Why bundles: a B-tree write dirties a whole page, and executions' entries live in
// different pages. With a table for journals and one for events, every transition dirtied
// two 4 KiB pages (one per table) for ~540 bytes of data, and the commits were bound by the
// bytes written (`results/store-commit.md`). One row per execution per group dirties one.

const JOURNAL_ITEM: u8 = 0;
const EVENT_ITEM: u8 = 1;

#[derive(Default)]
struct Bundle {
    bytes: Vec<u8>,
    /// The highest event id in the bundle (0: none).
    max_event: u64,
    /// The highest journal seq + 1 in the bundle (0: none).
    max_seq_end: u64,
}

impl Bundle {
    fn push(&mut self, kind: u8, n: u32, bytes: &[u8]) {
        self.bytes.reserve(9 + bytes.len());
        self.bytes.push(kind);
        self.bytes.extend_from_slice(&n.to_le_bytes());
        self.bytes.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(bytes);
        match kind {
            JOURNAL_ITEM => self.max_seq_end = self.max_seq_end.max(u64::from(n) + 1),
            _ => self.max_event = self.max_event.max(u64::from(n)),
        }
    }
}

/// The items of a stored bundle.
struct Items<'a> {
    d: Dec<'a>,
}

impl<'a> Items<'a> {
    fn new(bytes: &'a [u8]) -> Result<Items<'a>, StoreError> {
        Ok(Items { d: Dec { bytes, what: "journal/history bundle" } })
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<(u8, u32, &'a [u8]), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.d.bytes.is_empty() {
            return None;
        }
        let mut item = || {
            let kind = self.d.u8()?;
            if kind > EVENT_ITEM {
                return Err(self.d.corrupt());
            }
            let n = self.d.u32()?;
            let len = self.d.u32()? as usize;
            Ok((kind, n, self.d.take(len)?))
        };
        let r = item();
        if r.is_err() {
            self.d.bytes = &[];
        }
        Some(r)
    }
}

// ---------------------------------------------------------------------------------------
// Encoding: a format byte, then fields; integers little-endian, strings as a u32 length and
// UTF-8 bytes, options as a 0/1 byte before the value.

const RECORD_V1: u8 = 1;
const MESSAGE_V1: u8 = 1;

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
        }
    }
}

struct Dec<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Dec<'a> {
    fn corrupt(&self) -> StoreError {
        StoreError::Io(format!("corrupt {} (could not decode it)", self.what))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(self.corrupt());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Result<String, StoreError> {
        let n = self.u32()? as usize;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt())
    }
    fn opt_str(&mut self) -> Result<Option<String>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            _ => Err(self.corrupt()),
        }
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.i64()?)),
            _ => Err(self.corrupt()),
        }
    }
    fn end(self) -> Result<(), StoreError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }
}

fn status_byte(s: RecordStatus) -> u8 {
    match s {
        RecordStatus::Running => 0,
        RecordStatus::Succeeded => 1,
        RecordStatus::Failed => 2,
        RecordStatus::TimedOut => 3,
        RecordStatus::Aborted => 4,
    }
}

fn encode_record(position: u64, r: &ExecutionRecord) -> Vec<u8> {
    let mut e =
        Enc(Vec::with_capacity(64 + r.execution_arn.len() + r.state_machine_arn.len() + r.name.len() + r.input.len()));
    e.u8(RECORD_V1);
    e.u64(position);
    e.u8(status_byte(r.status));
    e.u64(r.seed);
    e.i64(r.start_date);
    e.opt_i64(r.stop_date);
    e.str(&r.execution_arn);
    e.str(&r.state_machine_arn);
    e.str(&r.name);
    e.str(&r.input);
    e.opt_str(r.output.as_deref());
    e.opt_str(r.error.as_deref());
    e.opt_str(r.cause.as_deref());
    e.str(&r.definition_hash);
    e.opt_str(r.started_by.as_deref());
    e.0
}

/// The record and its listing position.
fn decode_record(bytes: &[u8]) -> Result<(u64, ExecutionRecord), StoreError> {
    let mut d = Dec { bytes, what: "execution record" };
    if d.u8()? != RECORD_V1 {
        return Err(d.corrupt());
    }
    let position = d.u64()?;
    let status = match d.u8()? {
        0 => RecordStatus::Running,
        1 => RecordStatus::Succeeded,
        2 => RecordStatus::Failed,
        3 => RecordStatus::TimedOut,
        4 => RecordStatus::Aborted,
        _ => return Err(d.corrupt()),
    };
    let seed = d.u64()?;
    let start_date = d.i64()?;
    let stop_date = d.opt_i64()?;
    let r = ExecutionRecord {
        execution_arn: d.str()?,
        state_machine_arn: d.str()?,
        name: d.str()?,
        status,
        input: d.str()?,
        output: d.opt_str()?,
        error: d.opt_str()?,
        cause: d.opt_str()?,
        start_date,
        stop_date,
        seed,
        definition_hash: d.str()?,
        started_by: d.opt_str()?,
    };
    d.end()?;
    Ok((position, r))
}

fn encode_queue_message(m: &QueueMessage) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(32 + m.message_id.len() + m.body.len() + m.md5_of_body.len()));
    e.u8(MESSAGE_V1);
    e.str(&m.message_id);
    e.str(&m.body);
    e.str(&m.md5_of_body);
    e.opt_str(m.attributes.as_deref());
    e.i64(m.sent_at);
    e.0
}

fn decode_queue_message(bytes: &[u8]) -> Result<QueueMessage, StoreError> {
    let mut d = Dec { bytes, what: "queue message" };
    if d.u8()? != MESSAGE_V1 {
        return Err(d.corrupt());
    }
    let m = QueueMessage {
        message_id: d.str()?,
        body: d.str()?,
        md5_of_body: d.str()?,
        attributes: d.opt_str()?,
        sent_at: d.i64()?,
    };
    d.end()?;
    Ok(m)
}

fn encode_topic_message(m: &TopicMessage) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(32 + m.message_id.len() + m.message.len()));
    e.u8(MESSAGE_V1);
    e.str(&m.message_id);
    e.str(&m.message);
    e.opt_str(m.subject.as_deref());
    e.opt_str(m.attributes.as_deref());
    e.i64(m.published_at);
    e.0
}

fn decode_topic_message(bytes: &[u8]) -> Result<TopicMessage, StoreError> {
    let mut d = Dec { bytes, what: "topic message" };
    if d.u8()? != MESSAGE_V1 {
        return Err(d.corrupt());
    }
    let m = TopicMessage {
        message_id: d.str()?,
        message: d.str()?,
        subject: d.opt_str()?,
        attributes: d.opt_str()?,
        published_at: d.i64()?,
    };
    d.end()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_failed_group_fails_every_ack_and_stores_nothing() {
        let dir = std::env::temp_dir().join(format!("sfn-store-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RedbStore::open(&dir).unwrap();
        let (_, queue) = crossbeam_channel::unbounded();
        let mut committer = Committer {
            db: store.db.clone(),
            path: store.path.clone(),
            queue,
            ids: HashMap::new(),
            stats: store.stats.clone(),
        };
        let arn: Arc<str> = Arc::from("arn:aws:states:us-east-1:1:execution:m:e");
        let answers = Arc::new(Mutex::new(Vec::new()));
        let ack = |n: u32| -> CommitAck {
            let answers = answers.clone();
            Box::new(move |r| answers.lock().unwrap().push((n, r)))
        };
        let journal = |seq| Write::Journal { execution_arn: arn.clone(), seq, entry: vec![1, 2, 3] };
        let (reply, answer) = crossbeam_channel::bounded(1);
        let failing = Call {
            what: "a failing step",
            f: Some(|_: &mut Tables<'_>| -> Result<(), StoreError> { Err(StoreError::Io("disk on fire".into())) }),
            out: None,
            reply,
        };
        let mut group = vec![
            Job::Writes(vec![journal(0)], ack(0)),
            Job::Op(Box::new(failing)),
            Job::Writes(vec![journal(1)], ack(1)),
        ];
        committer.process(&mut group);
        let answers = answers.lock().unwrap();
        assert_eq!(answers.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [0, 1]);
        let want =
            format!("group commit of 3 submissions to {}: a failing step: disk on fire", dir.join(FILE_NAME).display());
        for (_, r) in answers.iter() {
            assert_eq!(r, &Err(StoreError::Io(want.clone())));
        }
        assert_eq!(answer.try_recv().unwrap(), Err(StoreError::Io(want)));
        assert_eq!(store.journal(&arn).unwrap(), Vec::<Vec<u8>>::new(), "nothing of the failed group is stored");
        // The next group commits normally.
        let mut group = vec![Job::Writes(vec![journal(0)], Box::new(|r| r.unwrap()))];
        committer.process(&mut group);
        assert_eq!(store.journal(&arn).unwrap(), vec![vec![1, 2, 3]]);
        let stats = store.stats();
        assert_eq!((stats.commits, stats.failed_commits, stats.submissions, stats.writes), (1, 1, 1, 1));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn record() -> ExecutionRecord {
        ExecutionRecord {
            execution_arn: "arn:aws:states:us-east-1:123456789012:execution:m:e".to_owned(),
            state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:m".to_owned(),
            name: "e".to_owned(),
            status: RecordStatus::TimedOut,
            input: "{\"a\":1}".to_owned(),
            output: None,
            error: Some("States.Timeout".to_owned()),
            cause: Some(String::new()),
            start_date: -5,
            stop_date: Some(1_700_000_000_000_000_000),
            seed: u64::MAX,
            definition_hash: "ab".repeat(32),
            started_by: None,
        }
    }

    #[test]
    fn records_and_messages_round_trip() {
        let r = record();
        assert_eq!(decode_record(&encode_record(7, &r)).unwrap(), (7, r));
        let q = QueueMessage {
            message_id: "m".into(),
            body: "é".into(),
            md5_of_body: "x".into(),
            attributes: Some("{}".into()),
            sent_at: 3,
        };
        assert_eq!(decode_queue_message(&encode_queue_message(&q)).unwrap(), q);
        let t = TopicMessage {
            message_id: "m".into(),
            message: "hi".into(),
            subject: None,
            attributes: None,
            published_at: 9,
        };
        assert_eq!(decode_topic_message(&encode_topic_message(&t)).unwrap(), t);
    }

    #[test]
    fn truncated_or_padded_bytes_are_corrupt_not_a_panic() {
        let bytes = encode_record(1, &record());
        for n in 0..bytes.len() {
            assert!(matches!(decode_record(&bytes[..n]), Err(StoreError::Io(_))), "prefix of {n} bytes");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(matches!(decode_record(&padded), Err(StoreError::Io(_))));
    }

    #[test]
    fn tokens_carry_their_listing() {
        assert_eq!(parse_token("e12", 'e').unwrap(), 12);
        for bad in ["", "e", "12", "f12", "e-1", "e1x", "e+1", "e99999999999999999999999"] {
            assert!(matches!(parse_token(bad, 'e'), Err(StoreError::InvalidToken(_))), "{bad:?}");
        }
    }
}
