//! `executor::shard`: one executor thread: its inbox, its table of executions, its arena
//! pool and its timers.
//!
//! Input: starts (its bounded inbox; its peers' when its own is empty), control messages
//! (answers of asynchronous handlers, re-runs, drain), the clock. Output: finished
//! executions (metrics, synchronous replies). Never touches: another shard's executions (a
//! re-run is handed over as a message), locks shared with other shards (the only mutex it
//! takes is its own histogram block's).
//!
//! A turn: take control messages, take up to `START_BATCH` starts (each is begun and run
//! at once, so a short execution never leaves the cache; with its own inbox empty, from
//! other shards' inboxes), fire due timers, give every ready execution one slice of
//! `step_budget` states, then park until the next timer or a message if nothing is ready.
//! Every execution sits in the table from the moment it leaves the inbox, so a panic
//! anywhere leaves it findable for a re-run.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bumpalo::Bump;
use crossbeam_utils::sync::Parker;

use super::arenas::ArenaPool;
use super::durable::{self, Durable, Entry, RecordingClock};
use super::live::{ExecBox, Live};
use super::table::Table;
use super::timers::{Timer, Timers};
use super::{
    fold_uuid, identity_key, BillingDetails, Control, DurableStart, EarlyCallback, Inbound, Inner, Start, StartBatch,
    SyncResult,
};
use crate::clock::Clock;
use crate::history::EventMask;
use crate::local::Status;
use crate::logs::LogLevel;
use crate::store::{RecordStatus, Write};
use crate::validate::MachineType;
use crate::value::JsonParser;
use crate::vm::{AsyncCall, CallbackError, Exec, Outcome, Poll};

/// Starts taken per turn before timers and parked executions get their share.
const START_BATCH: usize = 64;

/// Ended starts whose shared handles (the machine's and the input's `Arc`s) are released
/// together: the thread that starts executions increments those reference counts once
/// per start, so a release per execution moved their cache line between the two cores
/// twice per start; a batch moves it once.
const RETIRE_BATCH: usize = 64;

/// What a shard with no execution keeps for the next burst: pooled arenas (at most this
/// many, and this many bytes) and table slots (all of them, up to this many; a larger
/// table is given back whole). A burst of a million parked executions leaves the shard
/// as small as this once they have ended.
const IDLE_KEEP_ARENAS: usize = 1024;
const IDLE_KEEP_ARENA_BYTES: usize = 4 << 20;
const IDLE_KEEP_SLOTS: usize = 4096;
/// Execution rooms an idle shard keeps (a room is ~600 bytes; a fresh one is one
/// allocation, so this only spares the first starts after an idle spell).
const IDLE_KEEP_ROOMS: usize = 128;

const EXPRESS_CAP_CAUSE: &str = "The execution ran longer than the 300 seconds an Express execution may run.";
const STANDARD_CAP_CAUSE: &str = "The execution ran longer than the one year a Standard execution may run.";

struct Slot {
    gen: u32,
    live: Option<Live>,
    /// Arena bytes counted in the parked gauge while the execution waits.
    parked_bytes: usize,
}

enum Turn {
    Continue,
    Stop,
}

struct Shard {
    inner: Arc<Inner>,
    index: usize,
    parker: Parker,
    slots: Table<Slot>,
    free: Vec<u32>,
    held: usize,
    ready: VecDeque<u32>,
    timers: Timers,
    pool: ArenaPool,
    /// Rooms of ended executions, for the next ones (at most `IDLE_KEEP_ROOMS` once idle).
    exec_rooms: Vec<ExecBox>,
    parser: JsonParser,
    draining: Option<Instant>,
    parked: usize,
    parked_bytes: usize,
    /// One log record being formatted (reused).
    log_line: Vec<u8>,
    /// The machines and inputs of ended executions, released `RETIRE_BATCH` at a time and
    /// before the shard parks.
    retired: Vec<(super::StateMachine, super::Input)>,
    /// Asynchronous answers taken from the control queue (published with the gauges, once
    /// they have been handled).
    answers: u64,
    /// Set while `take_starts` begins starts one after another.
    taking: bool,
    /// An execution that finished while `taking`: it is finished (recorded and released)
    /// at the clock reading the next start begins with, or when `take_starts` ends, so a
    /// shard reads the clock once between two executions instead of twice. Its stop time is
    /// then later than its end by the next start's pop, never earlier; the next start's
    /// latency is exact.
    ended: Option<u32>,
    /// A batch being begun (`Engine::start_batch`) and the index of its next start: kept
    /// here, not on the stack, so a turn that ends (or panics) part-way loses none of it.
    batch: Option<(Box<StartBatch>, usize)>,
    /// The generation new slots start at: above every generation handed out before the
    /// table was last given back, so late answers and timers never match a new execution.
    gen_floor: u32,
}

/// The shard thread's body. Returns the number of executions it abandoned at shutdown.
pub(super) fn run(inner: Arc<Inner>, index: usize, parker: Parker) -> u64 {
    let pool = ArenaPool::new(inner.arena_bytes, inner.arena_keep_bytes);
    let mut shard = Shard {
        inner,
        index,
        parker,
        slots: Table::default(),
        free: Vec::new(),
        held: 0,
        ready: VecDeque::new(),
        timers: Timers::default(),
        pool,
        exec_rooms: Vec::new(),
        parser: JsonParser::new(),
        draining: None,
        parked: 0,
        parked_bytes: 0,
        log_line: Vec::new(),
        retired: Vec::with_capacity(RETIRE_BATCH),
        answers: 0,
        taking: false,
        ended: None,
        batch: None,
        gen_floor: 0,
    };
    loop {
        match catch_unwind(AssertUnwindSafe(|| shard.turn())) {
            Ok(Turn::Continue) => {}
            Ok(Turn::Stop) => return shard.abandon_all(),
            Err(payload) => shard.recover(&panic_message(&*payload)),
        }
    }
}

/// Drops the routes of the execution's callback tokens (it no longer waits on them).
fn unroute(inner: &Inner, live: &mut Live) {
    if !live.tokens.is_empty() {
        let mut table = inner.callbacks.lock();
        for t in live.tokens.drain(..) {
            table.remove(&t);
        }
    }
}

/// Tokens of the execution's callback tasks that timed out, for `TaskTimedOut` replies.
fn remember_expired(inner: &Inner, exec: &mut crate::vm::Exec<'_>) {
    let expired = exec.take_expired_tokens();
    if !expired.is_empty() {
        let mut set = inner.expired.lock();
        for t in expired {
            set.insert(t);
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

impl Shard {
    fn queues(&self) -> &super::ShardQueues {
        &self.inner.shards()[self.index]
    }

    fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    fn turn(&mut self) -> Turn {
        let inner = self.inner.clone();
        let q = &inner.shards()[self.index];
        while let Some(c) = q.control.pop() {
            match c {
                Control::Start(s) => self.begin(s),
                Control::Answer { slot, gen, call, result } => {
                    self.answers += 1;
                    self.answer(slot, gen, call, result)
                }
                Control::Drain(deadline) => self.draining = Some(deadline),
                Control::Callback { slot, gen, token, action, reply } => {
                    self.on_callback(slot, gen, EarlyCallback { token, action, reply })
                }
                Control::Committed { slot, gen, result } => self.committed(slot, gen, result),
                Control::Panic => panic!("shard {} was told to panic (test hook)", self.index),
            }
        }
        self.take_starts(&inner);
        if let Some(t) = self.timers.next() {
            let now = self.clock().now();
            if t <= now {
                self.fire_timers(now);
            }
        }
        for _ in 0..self.ready.len() {
            let Some(slot) = self.ready.pop_front() else { break };
            self.step(slot);
        }
        if let Some(deadline) = self.draining {
            let idle = self.held == 0 && self.batch.is_none() && q.starts.is_empty() && q.control.is_empty();
            if idle || Instant::now() >= deadline {
                return Turn::Stop;
            }
        }
        if self.ready.is_empty() && self.nothing_waiting(q) {
            if self.held == 0 {
                self.trim_idle();
            }
            self.publish_gauges();
            self.retired.clear();
            let mut wait = self.timers.next().map(|t| self.clock().real_wait(t));
            if let Some(deadline) = self.draining {
                let left = deadline.saturating_duration_since(Instant::now());
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            if self.draining.is_none() && self.look_before_parking(q, &mut wait) {
                return Turn::Continue;
            }
            // Tell senders to wake this shard, then look once more: a start pushed before
            // the flag was visible would otherwise wait for the next timer (the fence pairs
            // with the swap in `ShardQueues::wake`).
            q.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.nothing_waiting(q) {
                match wait {
                    Some(d) => self.parker.park_timeout(d),
                    None => self.parker.park(),
                }
            }
            q.sleeping.store(false, Ordering::Relaxed);
        }
        Turn::Continue
    }

    /// `EngineBuilder::park_spin`: looks for work for up to that long, or until `wait`
    /// (the next timer) is over, giving the core to any other runnable thread between
    /// looks; takes the time it looked off `wait`. True when work came: the shard goes
    /// round again instead of parking (and a timer that fell due parks it for no time).
    fn look_before_parking(&self, q: &super::ShardQueues, wait: &mut Option<Duration>) -> bool {
        let spin = self.inner.park_spin;
        if spin.is_zero() {
            return false;
        }
        let began = Instant::now();
        let until = began + wait.map_or(spin, |w| w.min(spin));
        let found = loop {
            std::thread::yield_now();
            if !self.nothing_waiting(q) {
                break true;
            }
            if Instant::now() >= until {
                break false;
            }
        };
        if let Some(w) = wait {
            *w = w.saturating_sub(began.elapsed());
        }
        found
    }

    /// No start in any inbox and no control message for this shard.
    fn nothing_waiting(&self, q: &super::ShardQueues) -> bool {
        self.batch.is_none() && q.control.is_empty() && self.inner.shards().iter().all(|s| s.starts.is_empty())
    }

    /// Begins up to `START_BATCH` starts: from this shard's inbox, then, when that runs
    /// out, from the other shards' (a start that has not begun belongs to no shard yet). A
    /// shard the OS has descheduled, or one busy with a long slice, would otherwise leave
    /// its queued starts waiting milliseconds while this one idles: the start-latency tail.
    fn take_starts(&mut self, inner: &Inner) {
        let shards = inner.shards();
        let mut n = START_BATCH;
        self.taking = true;
        for i in 0..shards.len() {
            let inbox = &shards[(self.index + i) % shards.len()].starts;
            while n > 0 {
                if let Some(s) = self.next_of_batch() {
                    self.begin(s);
                    n -= 1;
                    continue;
                }
                match inbox.pop() {
                    Some(Inbound::One(s)) => {
                        self.begin(s);
                        n -= 1;
                    }
                    Some(Inbound::Batch(b)) => self.batch = Some((b, 0)),
                    None => break,
                }
            }
        }
        self.taking = false;
        if let Some(slot) = self.ended.take() {
            let now = self.clock().now();
            self.finish(slot, now);
        }
    }

    /// The held batch's next start (its machine and input shared again, or moved out of
    /// the batch for its last start).
    fn next_of_batch(&mut self) -> Option<Start> {
        let (b, i) = self.batch.as_mut()?;
        let at = b.requested_at[*i];
        let key = identity_key(self.inner.seed, b.first_seq + *i as u64);
        let accepted_at = b.accepted_at;
        *i += 1;
        let (machine, input) = if *i == b.len() {
            let (b, _) = self.batch.take().expect("held");
            let StartBatch { machine, input, .. } = *b;
            (machine, input)
        } else {
            (b.machine.clone(), b.input.clone())
        };
        Some(Start { machine, input, key, accepted_at, requested_at: at, reruns: 0, extra: None })
    }

    /// Starts not begun yet: the held batch's rest.
    fn batch_left(&self) -> usize {
        self.batch.as_ref().map_or(0, |(b, i)| b.len() - i)
    }

    /// With no execution left, gives back what the last burst grew beyond the idle
    /// allowance (`IDLE_KEEP_*`). Every timer left is stale then (its slot's generation has
    /// moved on), so the timer heap goes too.
    fn trim_idle(&mut self) {
        let mut gave_back = self.pool.trim(IDLE_KEEP_ARENAS, IDLE_KEEP_ARENA_BYTES);
        if self.exec_rooms.len() > IDLE_KEEP_ROOMS {
            self.exec_rooms.truncate(IDLE_KEEP_ROOMS);
            self.exec_rooms.shrink_to_fit();
            gave_back = true;
        }
        if self.slots.len() > IDLE_KEEP_SLOTS {
            let newest = self.slots.iter().map(|s| s.gen).max().unwrap_or(0);
            self.gen_floor = self.gen_floor.max(newest.wrapping_add(1));
            self.slots = Table::default();
            self.free = Vec::new();
            self.ready = VecDeque::new();
            self.timers = Timers::default();
            gave_back = true;
        }
        if gave_back {
            if let Some(hook) = &self.inner.on_idle {
                hook();
            }
        }
    }

    fn publish_gauges(&self) {
        let g = &self.queues().gauges;
        let table = self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            + self.ready.capacity() * size_of::<u32>()
            + self.timers.len() * size_of::<Timer>()
            + (self.held + self.exec_rooms.len()) * size_of::<Exec<'static>>()
            + self.exec_rooms.capacity() * size_of::<ExecBox>();
        g.executions.set(self.held as u64);
        g.parked.set(self.parked as u64);
        g.arena_bytes.set(self.parked_bytes as u64);
        g.table_bytes.set(table as u64);
        g.pooled_arenas.set(self.pool.len() as u64);
        g.pooled_bytes.set(self.pool.bytes() as u64);
        g.timers.set(self.timers.len() as u64);
        g.next_timer.set(self.timers.next().unwrap_or(i64::MAX) as u64);
        // Last: a reader that sees the count sees the gauges of a shard that has handled
        // those answers.
        g.answers.set(self.answers);
    }

    // ---------------------------------------------------------------------------------
    // Starting and running

    fn begin(&mut self, mut start: Start) {
        if let Some(d) = start.take_durable() {
            return self.begin_durable(start, d);
        }
        // Read what is needed from the machine before the start moves into the table: no
        // reference-count traffic on the machine (shared with the starting thread's core).
        let machine = &*start.machine.0;
        let stats = &machine.stats[self.index];
        if start.reruns == 0 {
            stats.accepted.add(1);
        }
        let (max_nanos, level) = (machine.max_nanos, machine.logging.level);
        let now = self.clock().now();
        if let Some(ended) = self.ended.take() {
            // Its arena goes back to the pool before this start takes one.
            self.finish(ended, now);
        }
        let arena = self.pool.take(stats.arena_need.get() as usize);
        let cap = start.accepted_at.saturating_add(max_nanos);
        let seed = fold_uuid(start.uuid()) ^ start.reruns as u64;
        let slot = self.insert(start, arena, now, cap);
        let live = self.slots[slot as usize].live.as_mut().expect("just inserted");
        match live.begin(&mut self.parser, seed) {
            Ok(()) => {
                if level != LogLevel::Off {
                    if let Some(exec) = live.exec() {
                        exec.record_events(level.mask());
                    }
                }
                self.step(slot)
            }
            Err(e) => {
                // `Input` was checked by `start`; a parser disagreement still ends cleanly.
                let cause = format!("The execution input could not be parsed: {e}");
                self.finish_with(slot, now, Status::Failed, None, Some("States.Runtime"), Some(&cause));
            }
        }
    }

    /// A durable execution: its history is recorded and stored, and a resumed one replays
    /// its journal before it goes on.
    fn begin_durable(&mut self, start: Start, d: DurableStart) {
        let machine = &*start.machine.0;
        let stats = &machine.stats[self.index];
        if start.reruns == 0 && d.journal.is_empty() {
            stats.accepted.add(1);
        }
        let arena = self.pool.take(stats.arena_need.get() as usize);
        // The execution's clock starts when it was accepted (and stored), also on resume.
        let started = start.accepted_at;
        let cap = started.saturating_add(machine.max_nanos);
        let seed = d.record.seed;
        let slot = self.insert(start, arena, started, cap);
        let live = self.slots[slot as usize].live.as_mut().expect("just inserted");
        let dur = Box::new(Durable::new(Box::new(d.record)));
        if let Err(e) = live.begin(&mut self.parser, seed) {
            live.durable = Some(dur);
            let cause = format!("The execution input could not be parsed: {e}");
            return self.fail_durable(slot, &cause);
        }
        let exec = live.exec().expect("begun");
        exec.record_events(EventMask::ALL);
        if d.journal.is_empty() {
            live.durable = Some(dur);
            return self.step(slot);
        }
        let replayed = catch_unwind(AssertUnwindSafe(|| durable::replay(exec, &d.journal, 1)));
        live.durable = Some(dur);
        match replayed {
            Ok(Ok(r)) => {
                let dur = self.durable(slot).expect("set");
                dur.seq = r.entries;
                // Calls whose answers were not committed run again once the next slice is.
                dur.deferred = r.unanswered;
                self.step(slot);
            }
            Ok(Err(msg)) => self.fail_durable(slot, &format!("The execution cannot resume from its journal: {msg}")),
            Err(p) => self.fail_durable(
                slot,
                &format!("The execution cannot resume from its journal: replay panicked ({})", panic_message(&*p)),
            ),
        }
    }

    fn durable(&mut self, slot: u32) -> Option<&mut Durable> {
        self.slots.get_mut(slot as usize)?.live.as_mut()?.durable.as_deref_mut()
    }

    /// Ends a durable execution with `States.Runtime` and `cause`, stored.
    fn fail_durable(&mut self, slot: u32, cause: &str) {
        let now = self.clock().now();
        let store = self.inner.store.clone().expect("durable executions have a store");
        if let Some(d) = self.durable(slot) {
            let mut r = d.record.clone();
            r.status = RecordStatus::Failed;
            r.stop_date = Some(now);
            r.error = Some("States.Runtime".into());
            r.cause = Some(cause.to_owned());
            d.end(r, &*store);
        }
        self.finish_with(slot, now, Status::Failed, None, Some("States.Runtime"), Some(cause));
    }

    /// One state of a durable execution, then a group commit: the next state runs only
    /// once this one's journal entry and events are durable.
    fn step_durable(&mut self, slot: u32) {
        let inner = self.inner.clone();
        let Some(live) = self.slots[slot as usize].live.as_mut() else { return };
        let Some(d) = live.durable.as_deref_mut() else { return };
        if d.committing {
            d.wants_run = true;
            return;
        }
        let clock = RecordingClock { inner: &*inner.clock, reads: parking_lot::Mutex::new(Vec::new()) };
        let Some(exec) = live.exec() else { return };
        let polled = catch_unwind(AssertUnwindSafe(|| exec.run(&clock, 1)));
        let poll = match polled {
            Ok(p) => p,
            Err(payload) => return self.panicked(slot, &panic_message(&*payload)),
        };
        let calls = exec.take_async_calls();
        let waiting: Vec<&str> = exec.waiting_tokens();
        let mut d = live.durable.take().expect("durable");
        d.journal(&Entry::Run(clock.reads.into_inner()));
        live.drain_events(|ev, _| d.event(ev));
        d.deferred.extend(calls);
        d.route_tokens(&waiting);
        live.durable = Some(d);
        let now = inner.clock.now();
        match poll {
            Poll::Finished => return self.finish(slot, now),
            Poll::Yielded => {
                let live = self.slots[slot as usize].live.as_mut().expect("occupied");
                if now >= live.cap {
                    let cap = live.cap;
                    return self.cap_reached(slot, cap);
                }
                live.durable.as_deref_mut().expect("durable").wants_run = true;
            }
            Poll::Blocked { wake_at } => self.park(slot, wake_at),
        }
        self.commit(slot);
    }

    /// Submits what the durable execution in `slot` has pending; it waits for the
    /// acknowledgement ([`Control::Committed`]) before it runs again.
    fn commit(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let index = self.index;
        let weak = Arc::downgrade(&self.inner);
        let store = self.inner.store.clone().expect("durable executions have a store");
        let Some(d) = self.durable(slot) else { return };
        let writes = std::mem::take(&mut d.pending);
        let replies = std::mem::take(&mut d.replies);
        d.replies_in_commit.extend(replies);
        d.committing = true;
        store.submit(
            writes,
            Box::new(move |result| {
                if let Some(inner) = weak.upgrade() {
                    inner.shards()[index].send(Control::Committed {
                        slot,
                        gen,
                        result: result.map_err(|e| e.to_string()),
                    });
                }
            }),
        );
    }

    /// A durable execution's writes are durable: replies go out, the tasks it scheduled
    /// start, and it runs again if something woke it meanwhile.
    fn committed(&mut self, slot: u32, gen: u32, result: Result<(), String>) {
        if self.slots.get(slot as usize).is_none_or(|s| s.gen != gen) {
            return;
        }
        if let Err(e) = result {
            return self.fail_durable(slot, &format!("The store could not commit the execution's progress: {e}"));
        }
        let Some(d) = self.durable(slot) else { return };
        d.committing = false;
        let calls = std::mem::take(&mut d.deferred);
        for r in d.replies_in_commit.drain(..) {
            let _ = r.send(Ok(()));
        }
        let again = std::mem::take(&mut d.wants_run) || !d.pending.is_empty();
        for call in calls {
            if let Err(msg) = self.dispatch(slot, gen, call) {
                return self.panicked(slot, &msg);
            }
        }
        if again {
            self.unpark(slot);
        }
    }

    /// Puts a new execution in a free slot, built where it will stay.
    fn insert(&mut self, start: Start, arena: Box<Bump>, now: i64, cap: i64) -> u32 {
        self.held += 1;
        let slot = match self.free.pop() {
            Some(i) => i,
            None => self.slots.push(Slot { gen: self.gen_floor, live: None, parked_bytes: 0 }) as u32,
        };
        let room = self.exec_rooms.pop().unwrap_or_else(Box::new_uninit);
        self.slots[slot as usize].live = Some(Live::new(start, arena, room, now, cap));
        slot
    }

    /// Frees `slot`: the execution ends, its arena is handed back (not yet reset) and its
    /// start is retired.
    fn release(&mut self, slot: u32) -> Box<Bump> {
        let mut live = self.slots[slot as usize].live.take().expect("releasing an occupied slot");
        unroute(&self.inner, &mut live);
        if let Some(room) = live.take_room() {
            self.exec_rooms.push(room);
        }
        let (arena, start) = live.into_parts();
        self.forget(slot);
        self.retire(start);
        arena
    }

    /// Keeps an ended start's machine and input for a batched release (`RETIRE_BATCH`);
    /// the rest of it goes now.
    fn retire(&mut self, start: Start) {
        let Start { machine, input, .. } = start;
        if self.retired.len() == RETIRE_BATCH {
            self.retired.clear();
        }
        self.retired.push((machine, input));
    }

    /// Takes the execution out of `slot` whole (re-runs and shutdown need its start).
    fn remove(&mut self, slot: u32) -> Live {
        let mut live = self.slots[slot as usize].live.take().expect("removing an occupied slot");
        unroute(&self.inner, &mut live);
        self.forget(slot);
        live
    }

    /// The bookkeeping of a slot whose execution is gone: a new generation (late answers
    /// for the old one are ignored), the parked gauges, the free list.
    fn forget(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        if s.parked_bytes > 0 {
            self.parked_bytes -= s.parked_bytes;
            self.parked -= 1;
            s.parked_bytes = 0;
        }
        self.free.push(slot);
        self.held -= 1;
    }

    /// The execution in `slot` is running again (a timer fired, an answer came).
    fn unpark(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        if s.parked_bytes > 0 {
            self.parked_bytes -= s.parked_bytes;
            self.parked -= 1;
            s.parked_bytes = 0;
        }
        self.ready.push_back(slot);
    }

    /// One slice of `step_budget` states.
    fn step(&mut self, slot: u32) {
        if self.slots[slot as usize].live.as_ref().is_some_and(|l| l.durable.is_some()) {
            return self.step_durable(slot);
        }
        // Field borrows only (no `Arc` clone of the engine here: both shards would bump
        // the same reference count once per execution).
        let (polled, logs) = {
            let clock: &dyn Clock = &*self.inner.clock;
            let budget = self.inner.step_budget;
            let Some(live) = self.slots[slot as usize].live.as_mut() else { return };
            let logs = live.start.machine.0.logging.level != LogLevel::Off;
            let Some(exec) = live.exec() else { return };
            (catch_unwind(AssertUnwindSafe(|| exec.run(clock, budget))), logs)
        };
        if polled.is_ok() && logs {
            self.drain_logs(slot);
        }
        let inner = &*self.inner;
        let clock: &dyn Clock = &*inner.clock;
        match polled {
            Err(payload) => self.panicked(slot, &panic_message(&*payload)),
            Ok(Poll::Finished) if self.taking && self.ended.is_none() => self.ended = Some(slot),
            Ok(Poll::Finished) => {
                let now = clock.now();
                self.finish(slot, now)
            }
            Ok(Poll::Yielded) => {
                let Some(live) = self.slots[slot as usize].live.as_mut() else { return };
                let cap = live.cap;
                if clock.now() >= cap {
                    self.cap_reached(slot, cap);
                } else {
                    self.ready.push_back(slot);
                }
            }
            Ok(Poll::Blocked { wake_at }) => {
                let calls = match self.slots[slot as usize].live.as_mut().and_then(|l| l.exec()) {
                    Some(exec) => exec.take_async_calls(),
                    None => return,
                };
                let gen = self.slots[slot as usize].gen;
                for call in calls {
                    if let Err(msg) = self.dispatch(slot, gen, call) {
                        self.panicked(slot, &msg);
                        return;
                    }
                }
                self.park(slot, wake_at);
            }
        }
    }

    /// The execution in `slot` waits: its timer is armed at `wake_at` (or its cap), it
    /// counts as parked, and its callback tokens are routed.
    fn park(&mut self, slot: u32, wake_at: Option<i64>) {
        let s = &mut self.slots[slot as usize];
        let live = s.live.as_mut().expect("still occupied");
        let t = wake_at.unwrap_or(i64::MAX).min(live.cap);
        if t != live.armed {
            live.armed = t;
            self.timers.arm(Timer { at: t, slot, gen: s.gen });
        }
        if s.parked_bytes == 0 {
            s.parked_bytes = live.arena_bytes().max(1);
            self.parked_bytes += s.parked_bytes;
            self.parked += 1;
        }
        if live.start.machine.0.callbacks {
            self.route_tokens(slot);
        }
    }

    /// Keeps the routing table in step with the callback tasks the execution in `slot`
    /// waits on now.
    fn route_tokens(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(live) = self.slots[slot as usize].live.as_mut() else { return };
        if let Some(exec) = live.exec() {
            remember_expired(&self.inner, exec);
        }
        let mut waiting: Vec<Box<str>> =
            live.exec().map(|e| e.waiting_tokens().into_iter().map(Into::into).collect()).unwrap_or_default();
        waiting.extend(live.inflight_tokens.iter().map(|(_, t)| t.clone()));
        if waiting == live.tokens {
            return;
        }
        let mut table = self.inner.callbacks.lock();
        for t in live.tokens.drain(..) {
            table.remove(&t);
        }
        for t in &waiting {
            table.insert(t.clone(), (self.index as u32, slot, gen));
        }
        live.tokens = waiting;
    }

    /// A callback for the execution in `slot`: held if its task's handler has not returned
    /// yet, else applied and answered (a durable execution's once journaled).
    fn on_callback(&mut self, slot: u32, gen: u32, cb: EarlyCallback) {
        let live = self.slots.get_mut(slot as usize).filter(|s| s.gen == gen).and_then(|s| s.live.as_mut());
        if let Some(live) = live {
            if live.inflight_tokens.iter().any(|(_, t)| *t == cb.token) {
                live.early.push(cb);
                return;
            }
        }
        let EarlyCallback { token, action, reply } = cb;
        match self.callback(slot, gen, &token, action) {
            Ok(()) if self.durable(slot).is_some() => self.durable(slot).expect("checked").replies.push(reply),
            r => {
                let _ = reply.send(r);
            }
        }
    }

    fn callback(&mut self, slot: u32, gen: u32, token: &str, action: super::Callback) -> Result<(), CallbackError> {
        let clock = self.inner.clone();
        let s = self.slots.get_mut(slot as usize).filter(|s| s.gen == gen).ok_or(CallbackError::TaskDoesNotExist)?;
        let live = s.live.as_mut().ok_or(CallbackError::TaskDoesNotExist)?;
        let exec = live.exec().ok_or(CallbackError::TaskDoesNotExist)?;
        let entry = match action {
            super::Callback::Success(output) => {
                exec.send_task_success(token, output.as_bytes())?;
                Entry::Success { token: token.to_owned(), output: output.into() }
            }
            super::Callback::Failure { error, cause } => {
                exec.send_task_failure(token, &error, cause.as_deref())?;
                Entry::Failure { token: token.to_owned(), error: error.into(), cause: cause.map(Into::into) }
            }
            super::Callback::Heartbeat => {
                let rec = RecordingClock { inner: &*clock.clock, reads: parking_lot::Mutex::new(Vec::new()) };
                exec.send_task_heartbeat(token, &rec)?;
                // The heartbeat deadline moved: re-arm the timer on the next park.
                Entry::Heartbeat { token: token.to_owned(), reads: rec.reads.into_inner() }
            }
        };
        if let Some(d) = live.durable.as_deref_mut() {
            d.journal(&entry);
        }
        self.unpark(slot);
        Ok(())
    }

    /// Hands the execution's recorded history events, as CloudWatch-shaped log records, to
    /// the log writer. Never waits: a full writer queue drops (and counts) the line.
    fn drain_logs(&mut self, slot: u32) {
        let inner = self.inner.clone();
        let logs = inner.logs.read();
        let Some(writer) = logs.as_ref() else { return };
        let Some(live) = self.slots[slot as usize].live.as_mut() else { return };
        let include = live.start.machine.0.logging.include_execution_data;
        let line = &mut self.log_line;
        live.drain_events(|ev, arn| {
            line.clear();
            crate::logs::write_record(ev, arn, 0, include, line);
            writer.try_log(line);
        });
    }

    fn fire_timers(&mut self, now: i64) {
        while let Some(t) = self.timers.pop_due(now) {
            let s = &mut self.slots[t.slot as usize];
            if s.gen != t.gen {
                continue;
            }
            let Some(live) = s.live.as_mut() else { continue };
            if live.armed != t.at {
                continue;
            }
            live.armed = i64::MAX;
            if now >= live.cap {
                let cap = live.cap;
                self.cap_reached(t.slot, cap);
            } else {
                self.unpark(t.slot);
            }
        }
    }

    /// Starts an asynchronous handler on the tokio runtime; its answer (or panic) comes
    /// back as a control message.
    fn dispatch(&mut self, slot: u32, gen: u32, call: AsyncCall) -> Result<(), String> {
        let AsyncCall { id, handler, ctx, input } = call;
        if let Some(t) = &ctx.task_token {
            if let Some(live) = self.slots[slot as usize].live.as_mut() {
                live.inflight_tokens.push((id, t.as_str().into()));
            }
            self.route_tokens(slot);
        }
        let fut = catch_unwind(AssertUnwindSafe(|| handler.call(ctx, input))).map_err(|p| panic_message(&*p))?;
        if let Some(live) = self.slots[slot as usize].live.as_mut() {
            live.calls_in_flight += 1;
        }
        let rt = self.inner.tokio().clone();
        let weak = Arc::downgrade(&self.inner);
        let index = self.index;
        let task = rt.spawn(fut);
        rt.spawn(async move {
            let result = match task.await {
                Ok(answer) => Ok(answer),
                Err(e) if e.is_panic() => Err(panic_message(&*e.into_panic())),
                Err(_) => Err("the handler's task was cancelled".to_owned()),
            };
            if let Some(inner) = weak.upgrade() {
                inner.shards()[index].send(Control::Answer { slot, gen, call: id, result });
            }
        });
        Ok(())
    }

    fn answer(
        &mut self,
        slot: u32,
        gen: u32,
        call: u64,
        result: Result<Result<serde_json::Value, crate::handlers::TaskError>, String>,
    ) {
        let Some(s) = self.slots.get_mut(slot as usize) else { return };
        if s.gen != gen {
            return; // the execution ended (timed out, re-run) before the answer came
        }
        let Some(live) = s.live.as_mut() else { return };
        live.calls_in_flight = live.calls_in_flight.saturating_sub(1);
        match result {
            Ok(answer) => {
                if let Some(d) = live.durable.as_deref_mut() {
                    d.journal(&Entry::Answer { call, result: answer.clone() });
                }
                if let Some(exec) = live.exec() {
                    exec.complete_task(call, answer);
                }
                if let Some(i) = live.inflight_tokens.iter().position(|(c, _)| *c == call) {
                    let (_, token) = live.inflight_tokens.swap_remove(i);
                    let (early, rest): (Vec<_>, Vec<_>) = live.early.drain(..).partition(|cb| cb.token == token);
                    live.early = rest;
                    self.route_tokens(slot);
                    for cb in early {
                        self.on_callback(slot, gen, cb);
                    }
                }
                self.unpark(slot);
            }
            Err(msg) => self.panicked(slot, &msg),
        }
    }

    // ---------------------------------------------------------------------------------
    // Ending

    fn cap_reached(&mut self, slot: u32, cap: i64) {
        let live = self.slots[slot as usize].live.as_mut().expect("occupied");
        let cause = if live.start.machine.0.machine_type == MachineType::Express {
            EXPRESS_CAP_CAUSE
        } else {
            STANDARD_CAP_CAUSE
        };
        if let Some(d) = live.durable.as_deref_mut() {
            d.journal(&Entry::TimedOut { at: cap, cause: cause.to_owned() });
        }
        if let Some(exec) = live.exec() {
            exec.end_timed_out(cause, cap);
        }
        self.finish(slot, cap);
    }

    /// The execution in `slot` has an outcome; `stop` is its end time.
    fn finish(&mut self, slot: u32, stop: i64) {
        if self.slots[slot as usize].live.as_ref().is_some_and(|l| l.start.machine.0.logging.level != LogLevel::Off) {
            self.drain_logs(slot);
        }
        let live = self.slots[slot as usize].live.as_mut().expect("occupied");
        let mut dur = live.durable.take();
        if let Some(d) = dur.as_deref_mut() {
            live.drain_events(|ev, _| d.event(ev));
        }
        let exec = live.exec().expect("a finished execution exists");
        remember_expired(&self.inner, exec);
        let outcome = exec.outcome().expect("finished");
        let transitions = exec.transitions();
        let (status, output, error, cause) = match outcome {
            Outcome::Succeeded(v) => (Status::Succeeded, Some(v), None, None),
            Outcome::Failed(f) => (Status::Failed, None, f.error, f.cause),
            Outcome::TimedOut(f) => (Status::TimedOut, None, f.error, f.cause),
        };
        if let Some(mut d) = dur {
            // The end is stored with the last slice's entry and events, in one commit.
            let mut r = d.record.clone();
            r.status = match status {
                Status::Succeeded => RecordStatus::Succeeded,
                Status::Failed => RecordStatus::Failed,
                Status::TimedOut => RecordStatus::TimedOut,
            };
            r.output = output.map(|v| v.to_json_string());
            r.error = error.map(str::to_owned);
            r.cause = cause.map(str::to_owned);
            r.stop_date = Some(stop);
            d.end(r, &**self.inner.store.as_ref().expect("durable executions have a store"));
        }
        let stats = &live.start.machine.0.stats[self.index];
        stats.transitions.add(transitions);
        // The reply (if any) needs owned text; everything else reads the arena in place.
        let reply = live.start.take_reply().map(|tx| {
            let result = SyncResult {
                execution_arn: live.start.arn(),
                name: live.start.name_string(),
                status,
                output: output.map(|v| v.to_json_string()),
                error: error.map(str::to_owned),
                cause: cause.map(str::to_owned),
                start_date: live.start.accepted_at,
                stop_date: stop,
                billing: BillingDetails::new(stop - live.start.accepted_at, live.arena_bytes()),
                transitions,
            };
            (tx, result)
        });
        self.record_end(slot, stop, status);
        if let Some((tx, result)) = reply {
            let _ = tx.send(result);
        }
    }

    /// Ends an execution that produced no `Exec` outcome (its input failed to parse).
    fn finish_with(
        &mut self,
        slot: u32,
        stop: i64,
        status: Status,
        output: Option<String>,
        error: Option<&str>,
        cause: Option<&str>,
    ) {
        let live = self.slots[slot as usize].live.as_mut().expect("occupied");
        if let Some(tx) = live.start.take_reply() {
            let result = SyncResult {
                execution_arn: live.start.arn(),
                name: live.start.name_string(),
                status,
                output,
                error: error.map(str::to_owned),
                cause: cause.map(str::to_owned),
                start_date: live.start.accepted_at,
                stop_date: stop,
                billing: BillingDetails::new(stop - live.start.accepted_at, live.arena_bytes()),
                transitions: 0,
            };
            let _ = tx.send(result);
        }
        self.record_end(slot, stop, status);
    }

    /// Counts the end, frees the slot and returns the arena to the pool. The `Live` is
    /// dropped where it lies (no 700-byte moves on the hot path).
    fn record_end(&mut self, slot: u32, stop: i64, status: Status) {
        {
            let live = self.slots[slot as usize].live.as_ref().expect("occupied");
            let stats = &live.start.machine.0.stats[self.index];
            match status {
                Status::Succeeded => stats.succeeded.add(1),
                Status::Failed => stats.failed.add(1),
                Status::TimedOut => stats.timed_out.add(1),
            }
            stats.arena_need.set(live.arena_bytes() as u64);
            let mut h = stats.hist.lock();
            let latency = (live.started_at - live.start.requested_at).max(0) as u64;
            let duration = (stop - live.start.accepted_at).max(0) as u64;
            // Recording fails only for values a growing histogram cannot hold (never for
            // non-negative i64 nanoseconds).
            let _ = h.start_latency.record(latency);
            let _ = h.duration.record(duration);
        }
        let mut arena = self.release(slot);
        arena.reset();
        self.pool.give(arena);
    }

    /// A panic inside the execution in `slot` (a handler's or the VM's): tear it down and
    /// run it again from its input on the next shard, or fail it.
    fn panicked(&mut self, slot: u32, message: &str) {
        let mut live = self.remove(slot);
        live.teardown();
        let (mut arena, start) = live.into_parts();
        arena.reset();
        self.pool.give(arena);
        self.rerun_or_fail(start, message);
    }

    fn rerun_or_fail(&mut self, mut start: Start, message: &str) {
        let reply = start.take_reply();
        let stats = &start.machine.0.stats[self.index];
        let now = self.inner.clock.now();
        if let Some(tx) = reply {
            // StartSyncExecution is at most once: report the failure, do not run again.
            stats.failed.add(1);
            let _ = tx.send(SyncResult {
                execution_arn: start.arn(),
                name: start.name_string(),
                status: Status::Failed,
                output: None,
                error: Some("States.Runtime".into()),
                cause: Some(format!(
                    "The execution was torn down by a panic ({message}); synchronous executions run at most once."
                )),
                start_date: start.accepted_at,
                stop_date: now,
                billing: BillingDetails::new(now - start.accepted_at, 0),
                transitions: 0,
            });
            return;
        }
        if start.machine.0.durable {
            return self.rerun_durable(start, message);
        }
        if start.reruns >= self.inner.max_reruns {
            stats.failed.add(1);
            return;
        }
        stats.rerun.add(1);
        start.reruns += 1;
        let shards = self.inner.shards();
        shards[(self.index + 1) % shards.len()].send(Control::Start(start));
    }

    /// A durable execution torn down by a panic resumes from what the store has (its
    /// uncommitted slice runs again), or fails once it has panicked `max_reruns` times.
    fn rerun_durable(&mut self, mut start: Start, message: &str) {
        let stats = &start.machine.0.stats[self.index];
        let store = self.inner.store.clone().expect("durable executions have a store");
        let arn = start.arn();
        // Commits still in flight for this execution land before it is read back.
        let _ = store.flush();
        let record = match store.execution(&arn) {
            Ok(Some(r)) if r.status == RecordStatus::Running => r,
            _ => return,
        };
        if start.reruns >= self.inner.max_reruns {
            stats.failed.add(1);
            let mut r = record;
            r.status = RecordStatus::Failed;
            r.stop_date = Some(self.inner.clock.now());
            r.error = Some("States.Runtime".into());
            r.cause = Some(format!("The execution was torn down by a panic ({message}) too many times."));
            store.submit(vec![Write::Record(Box::new(r))], Box::new(|_| {}));
            return;
        }
        let journal = match store.journal(&arn) {
            Ok(j) => j,
            Err(_) => return,
        };
        stats.rerun.add(1);
        start.reruns += 1;
        start.set_durable(DurableStart { record, journal });
        let shards = self.inner.shards();
        shards[(self.index + 1) % shards.len()].send(Control::Start(start));
    }

    /// After a panic in the shard's own loop: every execution it held is run again, and
    /// the table is rebuilt (its counts may have been half-updated). Slot generations keep
    /// counting up, so answers for the torn-down executions are ignored when they come.
    fn recover(&mut self, message: &str) {
        let message = format!("shard {} panicked: {message}", self.index);
        self.taking = false;
        if let Some(slot) = self.ended.take() {
            // It ran to its end: record that rather than run it again.
            let now = self.clock().now();
            let finished = catch_unwind(AssertUnwindSafe(|| self.finish(slot, now)));
            if finished.is_err() {
                eprintln!("sfn: shard {}: finishing an ended execution panicked during recovery", self.index);
            }
        }
        self.ready.clear();
        self.timers.clear();
        self.free.clear();
        self.held = 0;
        self.parked = 0;
        self.parked_bytes = 0;
        let mut starts = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            s.gen = s.gen.wrapping_add(1);
            s.parked_bytes = 0;
            if let Some(mut live) = s.live.take() {
                unroute(&self.inner, &mut live);
                live.teardown();
                // The arena may hold half-written data; it is not reused.
                let (_arena, start) = live.into_parts();
                starts.push(start);
            }
            self.free.push(i as u32);
        }
        for start in starts {
            self.rerun_or_fail(start, &message);
        }
    }

    /// Shutdown: everything still here (running, parked, queued) is dropped and counted.
    fn abandon_all(&mut self) -> u64 {
        let mut abandoned = 0;
        let occupied: Vec<u32> =
            (0..self.slots.len() as u32).filter(|&i| self.slots[i as usize].live.is_some()).collect();
        for slot in occupied {
            let live = self.remove(slot);
            live.start.machine.0.stats[self.index].aborted.add(1);
            abandoned += 1;
        }
        let inner = self.inner.clone();
        let q = &inner.shards()[self.index];
        if let Some((b, _)) = &self.batch {
            let n = self.batch_left() as u64;
            let stats = &b.machine.0.stats[self.index];
            stats.accepted.add(n);
            stats.aborted.add(n);
            abandoned += n;
            self.batch = None;
        }
        while let Some(s) = q.starts.pop() {
            let n = s.starts() as u64;
            let stats = &s.machine().0.stats[self.index];
            stats.accepted.add(n);
            stats.aborted.add(n);
            abandoned += n;
        }
        while let Some(c) = q.control.pop() {
            if let Control::Start(s) = c {
                s.machine.0.stats[self.index].aborted.add(1);
                abandoned += 1;
            }
        }
        self.publish_gauges();
        abandoned
    }
}
