//! `store`: where Standard executions, their journals and histories, task tokens, and the
//! local queues and topics are kept.
//!
//! Input: writes from the executor (each execution's journal entries, history events and
//! record changes, task-token routes) and from the local service integrations (queue
//! messages, topic messages). Output: the same, read back: by a restarted engine resuming
//! unfinished executions, by the API (`DescribeExecution`, `ListExecutions`,
//! `GetExecutionHistory`) and by the CLI in another process.
//! Never touches: programs, executions' arenas, the clock (callers pass times in).
//!
//! [`Store`] is the contract; [`MemStore`] keeps everything in memory (tests, Express-only
//! embedders, `sfn run` without `--store`). [`RedbStore`] is the durable implementation
//! (one redb file): it commits groups of writes from many executions in one transaction
//! ([`Store::submit`]), and a write is durable when its acknowledgement runs.
//!
//! Journal entries and history events are opaque bytes here: the executor encodes them.
//! Every list is in insertion order; pages are cut by `max_results` and resumed with the
//! `next_token` the previous page returned (opaque to callers).

use std::fmt;
use std::sync::Arc;

mod memory;
mod redb;

pub use self::redb::{CommitStats, RedbStore};
pub use memory::MemStore;

/// An execution's status as `DescribeExecution` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Running => "RUNNING",
            RecordStatus::Succeeded => "SUCCEEDED",
            RecordStatus::Failed => "FAILED",
            RecordStatus::TimedOut => "TIMED_OUT",
            RecordStatus::Aborted => "ABORTED",
        }
    }

    pub fn parse(s: &str) -> Option<RecordStatus> {
        Some(match s {
            "RUNNING" => RecordStatus::Running,
            "SUCCEEDED" => RecordStatus::Succeeded,
            "FAILED" => RecordStatus::Failed,
            "TIMED_OUT" => RecordStatus::TimedOut,
            "ABORTED" => RecordStatus::Aborted,
            _ => return None,
        })
    }
}

/// One execution, as `DescribeExecution` shows it, plus what resuming it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub status: RecordStatus,
    /// The input as given (JSON text).
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Unix time, nanoseconds.
    pub start_date: i64,
    pub stop_date: Option<i64>,
    /// The execution's random seed (task tokens, `States.UUID`, jitter): replay needs it.
    pub seed: u64,
    /// Hex SHA-256 of the definition the execution started on; resuming on another
    /// definition is refused.
    pub definition_hash: String,
    /// The parent execution's ARN when a `states:startExecution` task started this one.
    pub started_by: Option<String>,
}

/// What [`Store::create_execution`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The record is stored (durably, with the writes given with it).
    New,
    /// An execution with this ARN exists already; nothing was written.
    Existing(Box<ExecutionRecord>),
}

/// One write of a group commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// An execution's next journal entry. `seq` counts from 0 per execution, with no gaps.
    Journal { execution_arn: Arc<str>, seq: u32, entry: Vec<u8> },
    /// A history event (`id` from 1), as the JSON `GetExecutionHistory` returns for it.
    Event { execution_arn: Arc<str>, id: u32, json: Vec<u8> },
    /// Replaces the execution's record (its end).
    Record(Box<ExecutionRecord>),
    /// A callback task now waits on `token` (`Some`) or no longer does (`None`).
    Token { token: String, execution_arn: Option<Arc<str>> },
}

/// Called once the writes it was submitted with are durable (or failed to be).
pub type CommitAck = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Filter for [`Store::list_executions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub state_machine_arn: Option<String>,
    pub status: Option<RecordStatus>,
}

/// A page of results and the token for the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// A message in a local queue (what `sqs:sendMessage` put there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMessage {
    pub message_id: String,
    pub body: String,
    /// Hex MD5 of `body`, as SQS reports it.
    pub md5_of_body: String,
    /// `MessageAttributes` as JSON text, when the sender gave any.
    pub attributes: Option<String>,
    /// Unix time, nanoseconds.
    pub sent_at: i64,
}

/// A message published to a local topic (what `sns:publish` sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMessage {
    pub message_id: String,
    pub message: String,
    pub subject: Option<String>,
    /// `MessageAttributes` as JSON text, when the publisher gave any.
    pub attributes: Option<String>,
    pub published_at: i64,
}

/// A store failure: the operation and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The queue or topic does not exist.
    NoSuchQueue(String),
    NoSuchTopic(String),
    /// A page token this store did not issue (or issued for another listing).
    InvalidToken(String),
    /// The storage itself failed (I/O, corruption, a full disk).
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoSuchQueue(q) => write!(f, "the queue '{q}' does not exist"),
            StoreError::NoSuchTopic(t) => write!(f, "the topic '{t}' does not exist"),
            StoreError::InvalidToken(t) => write!(f, "invalid page token '{t}'"),
            StoreError::Io(e) => write!(f, "store: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Where executions, journals, histories, tokens, queues and topics are kept.
///
/// Methods that return `Result` are synchronous and durable on return; [`Store::submit`]
/// is the fast path for the executor (a group commit). Reads see every write whose
/// acknowledgement has run.
pub trait Store: Send + Sync + 'static {
    /// Stores a new execution's record together with `first` (its first journal entry and
    /// events), unless an execution with the same ARN exists: then returns it unchanged.
    fn create_execution(&self, record: &ExecutionRecord, first: Vec<Write>) -> Result<Created, StoreError>;

    fn execution(&self, execution_arn: &str) -> Result<Option<ExecutionRecord>, StoreError>;

    /// Executions matching `filter`, most recently started first.
    fn list_executions(
        &self,
        filter: &ListFilter,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<ExecutionRecord>, StoreError>;

    /// Every RUNNING execution of a state machine (what a restart resumes).
    fn unfinished(&self, state_machine_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError>;

    /// An execution's journal entries in `seq` order.
    fn journal(&self, execution_arn: &str) -> Result<Vec<Vec<u8>>, StoreError>;

    /// An execution's history events (JSON), by id ascending, or descending with `reverse`.
    fn history(
        &self,
        execution_arn: &str,
        reverse: bool,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Vec<u8>>, StoreError>;

    /// The execution waiting on a callback task's token, if any.
    fn token(&self, token: &str) -> Result<Option<String>, StoreError>;

    /// Queues `writes`; `ack` runs once they are durable. Writes submitted earlier (by any
    /// caller) are durable no later than writes submitted after them.
    fn submit(&self, writes: Vec<Write>, ack: CommitAck);

    /// Returns once everything submitted before the call is durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Creates a queue (no-op if it exists).
    fn create_queue(&self, name: &str) -> Result<(), StoreError>;
    fn queues(&self) -> Result<Vec<String>, StoreError>;
    /// Appends a message (durable on return).
    fn send_message(&self, queue: &str, message: &QueueMessage) -> Result<(), StoreError>;
    /// Takes up to `max` of the oldest messages off the queue.
    fn receive_messages(&self, queue: &str, max: usize) -> Result<Vec<QueueMessage>, StoreError>;

    /// Creates a topic (no-op if it exists).
    fn create_topic(&self, name: &str) -> Result<(), StoreError>;
    fn topics(&self) -> Result<Vec<String>, StoreError>;
    /// Appends a message to the topic's log (durable on return); returns its position
    /// (from 0).
    fn publish(&self, topic: &str, message: &TopicMessage) -> Result<u64, StoreError>;
    /// Up to `max` messages from position `from` on, with their positions.
    fn topic_messages(&self, topic: &str, from: u64, max: usize) -> Result<Vec<(u64, TopicMessage)>, StoreError>;
}

/// Page tokens of the listing helpers below: the position to resume at, in decimal.
pub(crate) fn page<T: Clone>(
    items: impl ExactSizeIterator<Item = T>,
    max_results: usize,
    next_token: Option<&str>,
) -> Result<Page<T>, StoreError> {
    let skip = match next_token {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| StoreError::InvalidToken(t.to_owned()))?,
    };
    let total = items.len();
    let max = if max_results == 0 { 100 } else { max_results };
    let items: Vec<T> = items.skip(skip).take(max).collect();
    let next = skip + items.len();
    Ok(Page { items, next_token: (next < total).then(|| next.to_string()) })
}
