//! `logs`: Express (and Standard) execution logging as CloudWatch Logs records it, and the
//! background thread that writes the records.
//!
//! Input: [`HistoryEvent`]s drained from an execution (`vm::Exec::drain_events`) and the
//! state machine's [`LoggingConfig`]. Output: one JSON line per event, in AWS's log record
//! shape, written by a [`LogWriter`] thread to stdout, a JSON-lines file, an in-memory ring
//! (tests) or any `Write`.
//! Never touches: the VM or executions (the level becomes an [`EventMask`] the VM checks
//! before building an event). This module and its writer thread are the one place the
//! library does I/O and starts a thread.
//!
//! The writer never blocks a producer: [`LogWriter::try_log`] copies the line into a
//! recycled buffer and offers it to a bounded queue; when the queue is full the line is
//! dropped and counted ([`LogWriter::dropped`]). AWS's log delivery is best-effort too, and
//! an executor shard must not stall on a slow disk. The thread batches lines through a
//! `BufWriter`, flushing whenever the queue runs empty, and flushes on shutdown/drop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use crate::history::{write_details, EventMask, EventType, HistoryEvent};
use crate::value::write_json_string;

/// A state machine's `loggingConfiguration.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LogLevel {
    All,
    Error,
    Fatal,
    #[default]
    Off,
}

/// Event types logged at `ERROR` (AWS's documented table).
const ERROR_TYPES: [EventType; 22] = [
    EventType::ExecutionAborted,
    EventType::ExecutionFailed,
    EventType::ExecutionTimedOut,
    EventType::FailStateEntered,
    EventType::LambdaFunctionFailed,
    EventType::LambdaFunctionScheduleFailed,
    EventType::LambdaFunctionStartFailed,
    EventType::LambdaFunctionTimedOut,
    EventType::MapIterationAborted,
    EventType::MapIterationFailed,
    EventType::MapStateAborted,
    EventType::MapStateFailed,
    EventType::MapRunAborted,
    EventType::MapRunFailed,
    EventType::ParallelStateAborted,
    EventType::ParallelStateFailed,
    EventType::TaskFailed,
    EventType::TaskStartFailed,
    EventType::TaskStateAborted,
    EventType::TaskSubmitFailed,
    EventType::TaskTimedOut,
    EventType::WaitStateAborted,
];

/// Event types logged at `FATAL`.
const FATAL_TYPES: [EventType; 3] =
    [EventType::ExecutionAborted, EventType::ExecutionFailed, EventType::ExecutionTimedOut];

impl LogLevel {
    /// Parses AWS's spelling (`ALL`, `ERROR`, `FATAL`, `OFF`).
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s {
            "ALL" => Some(LogLevel::All),
            "ERROR" => Some(LogLevel::Error),
            "FATAL" => Some(LogLevel::Fatal),
            "OFF" => Some(LogLevel::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::All => "ALL",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
            LogLevel::Off => "OFF",
        }
    }

    /// The event types this level logs, for `Exec::record_events`.
    pub const fn mask(self) -> EventMask {
        match self {
            LogLevel::All => EventMask::ALL,
            LogLevel::Error => EventMask::of(&ERROR_TYPES),
            LogLevel::Fatal => EventMask::of(&FATAL_TYPES),
            LogLevel::Off => EventMask::NONE,
        }
    }
}

/// What a state machine's `loggingConfiguration` asks for (the destination is the
/// [`LogWriter`]'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LoggingConfig {
    pub level: LogLevel,
    pub include_execution_data: bool,
}

/// Appends one log record (no newline), the message CloudWatch Logs holds for `ev`:
/// `{"id":"3","type":"PassStateExited","details":{…},"previous_event_id":"2",
/// "event_timestamp":"1704067200123","execution_arn":"…","redrive_count":"0"}` — snake_case
/// top-level keys, every value a string, the timestamp in epoch milliseconds, `details`
/// the history event's details (`{}` when it has none).
pub fn write_record(
    ev: &HistoryEvent<'_>,
    execution_arn: &str,
    redrive_count: u32,
    include_execution_data: bool,
    out: &mut Vec<u8>,
) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(num.format(ev.id).as_bytes());
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(ev.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"details\":");
    write_details(ev, include_execution_data, out);
    out.extend_from_slice(b",\"previous_event_id\":\"");
    out.extend_from_slice(num.format(ev.previous_event_id).as_bytes());
    out.extend_from_slice(b"\",\"event_timestamp\":\"");
    out.extend_from_slice(num.format(ev.timestamp.div_euclid(1_000_000)).as_bytes());
    out.extend_from_slice(b"\",\"execution_arn\":");
    write_json_string(execution_arn, out);
    out.extend_from_slice(b",\"redrive_count\":\"");
    out.extend_from_slice(num.format(redrive_count).as_bytes());
    out.extend_from_slice(b"\"}");
}

/// The last `capacity` lines written, for tests. Cloning shares the ring.
#[derive(Clone, Debug)]
pub struct MemoryRing {
    inner: Arc<Mutex<RingInner>>,
}

#[derive(Debug)]
struct RingInner {
    lines: VecDeque<String>,
    capacity: usize,
    partial: Vec<u8>,
}

impl MemoryRing {
    pub fn new(capacity: usize) -> MemoryRing {
        MemoryRing {
            inner: Arc::new(Mutex::new(RingInner {
                lines: VecDeque::with_capacity(capacity),
                capacity: capacity.max(1),
                partial: Vec::new(),
            })),
        }
    }

    /// The lines held now, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).lines.iter().cloned().collect()
    }
}

impl Write for MemoryRing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.partial.extend_from_slice(buf);
        while let Some(nl) = ring.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = ring.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if ring.lines.len() == ring.capacity {
                ring.lines.pop_front();
            }
            ring.lines.push_back(text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a [`LogWriter`] writes.
pub enum Destination {
    Stdout,
    /// A JSON-lines file, appended to.
    File(File),
    Memory(MemoryRing),
    Other(Box<dyn Write + Send>),
}

impl Destination {
    /// Opens (creating, appending to) a JSON-lines file.
    pub fn file(path: &Path) -> io::Result<Destination> {
        Ok(Destination::File(File::options().create(true).append(true).open(path)?))
    }

    fn into_write(self) -> Box<dyn Write + Send> {
        match self {
            Destination::Stdout => Box::new(io::stdout()),
            Destination::File(f) => Box::new(f),
            Destination::Memory(m) => Box::new(m),
            Destination::Other(w) => w,
        }
    }
}

/// Counters a [`LogWriter`] keeps.
#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
}

/// Lines per batch before the writer looks at the queue again; flushes happen when the
/// queue is empty, so a burst becomes one `write` of up to the `BufWriter`'s 64 KiB.
const BATCH: usize = 256;

/// A background thread owning the log destination, fed through a bounded queue.
/// `try_log` never blocks; lines that find the queue full are dropped and counted.
pub struct LogWriter {
    lines: Option<Sender<Vec<u8>>>,
    /// Buffers the writer thread has emptied, for producers to reuse (no allocation per
    /// line once warm).
    spare: Receiver<Vec<u8>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl LogWriter {
    /// Starts the writer thread. `queue` is the number of lines that may wait (at least 1).
    pub fn start(destination: Destination, queue: usize) -> io::Result<LogWriter> {
        let queue = queue.max(1);
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(queue);
        let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<u8>>(queue);
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let out = destination.into_write();
        let thread = std::thread::Builder::new()
            .name("sfn-log-writer".into())
            .spawn(move || write_lines(rx, spare_tx, out, &thread_counters))?;
        Ok(LogWriter { lines: Some(tx), spare: spare_rx, counters, thread: Some(thread) })
    }

    /// Queues `line` (a record without its newline) unless the queue is full; returns
    /// whether it was queued. Never blocks.
    pub fn try_log(&self, line: &[u8]) -> bool {
        let Some(tx) = &self.lines else { return false };
        let mut buf = self.spare.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(line);
        match tx.try_send(buf) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lines dropped because the queue was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines handed to the destination so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Writes what is queued, flushes, stops the thread and reports its I/O error, if any.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        self.lines = None;
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("the log writer thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The writer thread: lines in batches, a flush whenever the queue runs dry, a last flush
/// when every sender is gone.
fn write_lines(
    rx: Receiver<Vec<u8>>,
    spare: Sender<Vec<u8>>,
    out: Box<dyn Write + Send>,
    counters: &Counters,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut first_error = None;
    while let Ok(line) = rx.recv() {
        let mut next = Some(line);
        let mut n = 0;
        while let Some(line) = next.take() {
            if first_error.is_none() {
                if let Err(e) = out.write_all(&line).and_then(|()| out.write_all(b"\n")) {
                    first_error = Some(e);
                } else {
                    counters.written.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = spare.try_send(line);
            n += 1;
            if n < BATCH {
                match rx.try_recv() {
                    Ok(l) => next = Some(l),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
                }
            }
        }
        if rx.is_empty() && first_error.is_none() {
            if let Err(e) = out.flush() {
                first_error = Some(e);
            }
        }
    }
    let flushed = out.flush();
    match first_error {
        Some(e) => Err(e),
        None => flushed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EventDetails;
    use crate::value::Value;
    use std::sync::mpsc;

    #[test]
    fn levels_are_aws_sets() {
        assert_eq!(LogLevel::All.mask(), EventMask::ALL);
        assert_eq!(LogLevel::Off.mask(), EventMask::NONE);
        let fatal: Vec<_> = LogLevel::Fatal.mask().types().collect();
        assert_eq!(fatal, [EventType::ExecutionAborted, EventType::ExecutionFailed, EventType::ExecutionTimedOut]);
        let error = LogLevel::Error.mask();
        assert_eq!(error.types().count(), 22);
        // Recorded (LocalStack test_logs, level ERROR): a Fail state's entry is logged,
        // its successful neighbours are not.
        assert!(error.contains(EventType::FailStateEntered));
        for t in [EventType::ExecutionStarted, EventType::PassStateEntered, EventType::TaskSucceeded] {
            assert!(!error.contains(t), "{t:?}");
        }
        // FATAL ⊂ ERROR ⊂ ALL.
        assert_eq!(LogLevel::Fatal.mask().0 & !error.0, 0);
        assert_eq!(error.0 & !EventMask::ALL.0, 0);
        for l in [LogLevel::All, LogLevel::Error, LogLevel::Fatal, LogLevel::Off] {
            assert_eq!(LogLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(LogLevel::parse("all"), None);
    }

    #[test]
    fn a_record_has_snake_case_keys_and_string_values() {
        let members = [("Arg1", Value::Str("argument1"))];
        let ev = HistoryEvent {
            id: 3,
            previous_event_id: 2,
            timestamp: 1_704_067_200_123_456_789,
            kind: EventType::PassStateExited,
            details: EventDetails::StateExited { name: "State_1", output: Value::Object(&members), assigned: &[] },
        };
        let mut out = Vec::new();
        write_record(&ev, "arn:aws:states:us-east-1:1:express:m:e:e", 0, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"3","type":"PassStateExited","details":{"name":"State_1","output":"{\"Arg1\":\"argument1\"}","outputDetails":{"truncated":false}},"previous_event_id":"2","event_timestamp":"1704067200123","execution_arn":"arn:aws:states:us-east-1:1:express:m:e:e","redrive_count":"0"}"#
        );
        let ev = HistoryEvent { kind: EventType::ParallelStateStarted, details: EventDetails::None, ..ev };
        let mut out = Vec::new();
        write_record(&ev, "a", 2, false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"3","type":"ParallelStateStarted","details":{},"previous_event_id":"2","event_timestamp":"1704067200123","execution_arn":"a","redrive_count":"2"}"#
        );
    }

    /// A destination whose first write waits until the test releases it.
    struct Gate {
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
        ring: MemoryRing,
        opened: bool,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.opened {
                self.opened = true;
                self.entered.send(()).unwrap();
                self.release.recv().unwrap();
            }
            self.ring.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let ring = MemoryRing::new(16);
        let gate = Gate { entered: entered_tx, release: release_rx, ring: ring.clone(), opened: false };
        let writer = LogWriter::start(Destination::Other(Box::new(gate)), 2).unwrap();
        // The thread takes line 0, flushes (the queue is empty) and blocks in the write.
        assert!(writer.try_log(b"line 0"));
        entered_rx.recv().unwrap();
        // Two lines fit the queue; the next two are dropped, at once.
        assert!(writer.try_log(b"line 1"));
        assert!(writer.try_log(b"line 2"));
        assert!(!writer.try_log(b"line 3"));
        assert!(!writer.try_log(b"line 4"));
        assert_eq!(writer.dropped(), 2);
        release_tx.send(()).unwrap();
        writer.shutdown().unwrap();
        assert_eq!(ring.lines(), ["line 0", "line 1", "line 2"]);
    }

    #[test]
    fn drop_flushes_everything_queued_and_files_get_json_lines() {
        let dir = std::env::temp_dir().join(format!("sfn-logs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let _ = std::fs::remove_file(&path);
        {
            let writer = LogWriter::start(Destination::file(&path).unwrap(), 1024).unwrap();
            for i in 0..500 {
                assert!(writer.try_log(format!("{{\"n\":\"{i}\"}}").as_bytes()));
            }
            assert_eq!(writer.dropped(), 0);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 500);
        assert_eq!(lines[499], r#"{"n":"499"}"#);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_memory_ring_keeps_the_last_lines() {
        let ring = MemoryRing::new(2);
        let writer = LogWriter::start(Destination::Memory(ring.clone()), 8).unwrap();
        for l in [&b"a"[..], b"b", b"c"] {
            assert!(writer.try_log(l));
        }
        writer.shutdown().unwrap();
        assert_eq!(ring.lines(), ["b", "c"]);
    }
}
