//! `executor::live`: one running execution owned by a shard: its arena, its [`Exec`] and the
//! start request it came from.
//!
//! Input: a [`Start`] and a pooled arena. Output: an execution the shard can run, park and
//! finish. Never touches: queues, timers, other executions.
//!
//! An [`Exec`] borrows its arena, its program and its metadata strings. A shard keeps
//! thousands of executions in one table, so the borrow is erased here, in one place, under
//! the rules written next to the `unsafe` blocks: the arena is heap-allocated and reached
//! through a raw pointer (moving a [`Live`] never moves it), the program and the machine's
//! strings are kept alive by the `Arc` inside the start request, and the execution is
//! dropped before either. The execution itself (about 600 bytes) lives in a box the shard
//! pools ([`ExecBox`]), so the table's slots stay small and moving a `Live` never copies
//! it; it is kept out of the arena, whose first 1 KiB chunk holds a parked execution's
//! data.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use bumpalo::Bump;

use super::Start;
use crate::validate::MachineType;
use crate::value::{JsonError, JsonParser, Value};
use crate::vm::{Exec, ExecInfo};

/// Room for one execution, pooled by the shard and reused by the next.
pub(super) type ExecBox = Box<MaybeUninit<Exec<'static>>>;

/// A shard-owned execution.
pub(super) struct Live {
    /// Where the execution is built; `None` only after [`Live::take_room`].
    /// Safety: the execution borrows `*arena` and data owned by `start.machine`; it is
    /// dropped in place by [`Live::teardown`] before any of them goes.
    room: Option<ExecBox>,
    /// `room` holds an execution: false until the input is parsed and after a panic tore
    /// the execution down.
    built: bool,
    /// `None` only after [`Live::take_arena`].
    arena: Option<NonNull<Bump>>,
    pub start: Start,
    /// When the shard took the start (clock nanoseconds).
    pub started_at: i64,
    /// The instant the execution must have ended by (the Express cap or the maximum
    /// duration), on the engine's clock.
    pub cap: i64,
    /// The timer armed for this execution (`i64::MAX`: none).
    pub armed: i64,
    /// Asynchronous handler calls in flight.
    pub calls_in_flight: u32,
    /// Tokens of this execution's callback tasks registered for routing.
    pub tokens: Vec<Box<str>>,
    /// Callback tasks whose handler is still running: (call, token). Their tokens are
    /// routed already, since whoever the handler tells may answer before it returns.
    pub inflight_tokens: Vec<(u64, Box<str>)>,
    /// Callbacks that arrived before their task's handler returned, applied after it.
    pub early: Vec<super::EarlyCallback>,
    /// A durable (stored, journaled) execution's bookkeeping.
    pub durable: Option<Box<super::durable::Durable>>,
    /// The execution ARN, in the arena (empty until `begin`). Safety: as the execution's
    /// borrows; never handed out beyond `&self`.
    execution_arn: &'static str,
}

// Safety: `Exec` holds arena references and `Cell`s, which are not `Send`, and (when it
// runs JSONata) its memo of the jsonata crate's reference-counted values, shared with
// nothing outside the execution; a `Live` is moved between threads only as a whole
// (never while borrowed), together with the arena and the `Arc`s that everything it
// references hangs off, so no reference outlives or escapes its owner. Only the owning
// shard's thread touches it.
unsafe impl Send for Live {}

impl Live {
    /// Takes ownership of `arena` (from the shard's pool) for `start`.
    pub fn new(start: Start, arena: Box<Bump>, room: ExecBox, started_at: i64, cap: i64) -> Live {
        Live {
            room: Some(room),
            built: false,
            arena: Some(NonNull::from(Box::leak(arena))),
            start,
            started_at,
            cap,
            armed: i64::MAX,
            calls_in_flight: 0,
            tokens: Vec::new(),
            inflight_tokens: Vec::new(),
            early: Vec::new(),
            durable: None,
            execution_arn: "",
        }
    }

    /// Parses the input into the arena and creates the execution.
    pub fn begin(&mut self, parser: &mut JsonParser, seed: u64) -> Result<(), JsonError> {
        self.teardown();
        // Safety: the arena lives until `Live` is dropped or `into_arena` is called, both
        // of which drop the execution first; the program and the machine's strings are
        // owned by `self.start.machine` (an `Arc` that `Live` holds for the same span).
        // Nothing else holds a mutable reference to the arena while the execution lives.
        let bump: &'static Bump = unsafe { self.arena.expect("a live execution has its arena").as_ref() };
        let machine: &'static super::MachineEntry =
            unsafe { &*(&**self.start.machine.0 as *const super::MachineEntry) };
        let input = match self.start.input.parsed() {
            // Safety: the values live in the input's own frozen arena, owned through an
            // `Arc` by `self.start.input`, which `Live` holds until after the execution is
            // dropped (as it holds the machine); nothing writes to them.
            Some(v) => unsafe { std::mem::transmute::<Value<'_>, Value<'static>>(v) },
            None => parser.parse(bump, self.start.input.as_bytes())?,
        };
        // Names and ARNs are written straight into the arena (no formatting machinery: this
        // runs once per start).
        let name: &str = match self.start.given_name() {
            Some(n) => bump.alloc_str(n),
            None => bump.alloc_str(hyphenated(self.start.generated_name()).as_str()),
        };
        let mut arn =
            bumpalo::collections::String::with_capacity_in(machine.exec_arn_prefix.len() + name.len() + 37, bump);
        arn.push_str(&machine.exec_arn_prefix);
        arn.push_str(name);
        if machine.machine_type == MachineType::Express {
            arn.push(':');
            arn.push_str(hyphenated(self.start.uuid()).as_str());
        }
        let arn = arn.into_bump_str();
        self.execution_arn = arn;
        let info = ExecInfo {
            execution_arn: arn,
            name,
            state_machine_arn: &machine.arn,
            state_machine_name: &machine.name,
            role_arn: &machine.role_arn,
            start_time: self.started_at,
            redrive_count: 0,
        };
        let room = self.room.as_mut().expect("a live execution has its room");
        Exec::start_in(room, &machine.program, bump, input, info, seed)
            .input_text_len(self.start.input.as_bytes().len());
        self.built = true;
        Ok(())
    }

    pub fn exec(&mut self) -> Option<&mut Exec<'static>> {
        // Safety: `built` says `room` holds an initialised `Exec` (cleared when it is
        // dropped); it is reachable only through `&mut self`.
        match (self.built, self.room.as_mut()) {
            (true, Some(room)) => Some(unsafe { room.assume_init_mut() }),
            _ => None,
        }
    }

    /// Sends the history events recorded since the last call to `f` with the execution's
    /// ARN (Express log records carry it).
    pub fn drain_events(&mut self, mut f: impl FnMut(&crate::history::HistoryEvent<'_>, &str)) {
        let arn = self.execution_arn;
        if let Some(exec) = self.exec() {
            exec.drain_events(|ev| f(ev, arn));
        }
    }

    /// Bytes the arena holds (its chunks' capacity).
    pub fn arena_bytes(&self) -> usize {
        // Safety: shared read of the arena's chunk list; no allocation is in progress
        // (the shard is single-threaded and not inside `Exec::run`).
        self.arena.map_or(0, |a| unsafe { a.as_ref() }.allocated_bytes())
    }

    /// Drops the execution (after a panic, or before a fresh `begin`).
    pub fn teardown(&mut self) {
        // The value may be half-updated after a panic; dropping it only releases arena
        // vectors (no-ops in bumpalo) and the outbox of pending calls.
        if std::mem::take(&mut self.built) {
            if let Some(room) = self.room.as_mut() {
                // Safety: `built` said `room` holds an initialised `Exec`, which nothing
                // else references (`exec()` borrows `self`); `built` is cleared, so it is
                // dropped once.
                unsafe { room.assume_init_drop() };
            }
        }
        self.execution_arn = "";
    }

    /// Ends the execution in place and takes its arena (not yet reset); what is left of
    /// the `Live` (the start request) is dropped with it, without moving it.
    pub fn take_arena(&mut self) -> Box<Bump> {
        self.teardown();
        let arena = self.arena.take().expect("a live execution has its arena");
        // Safety: the execution is gone, so nothing borrows the arena; the pointer came
        // from `Box::leak` and is taken out of `self`, so it is released exactly once.
        unsafe { Box::from_raw(arena.as_ptr()) }
    }

    /// Ends the execution and takes the room it was built in, for the next one.
    pub fn take_room(&mut self) -> Option<ExecBox> {
        self.teardown();
        self.room.take()
    }

    /// Ends the execution and gives back the arena (not yet reset) and the start request.
    pub fn into_parts(mut self) -> (Box<Bump>, Start) {
        let arena = self.take_arena();
        let mut this = std::mem::ManuallyDrop::new(self);
        // Safety: `this` is never dropped; `start` is moved out exactly once and every
        // other field that owns memory is dropped in place exactly once (the execution and
        // the arena are gone already).
        unsafe {
            let start = std::ptr::read(&this.start);
            std::ptr::drop_in_place(&mut this.tokens);
            std::ptr::drop_in_place(&mut this.inflight_tokens);
            std::ptr::drop_in_place(&mut this.early);
            std::ptr::drop_in_place(&mut this.durable);
            std::ptr::drop_in_place(&mut this.room);
            (arena, start)
        }
    }
}

/// Two lowercase hex digits per byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    t
};

/// A UUID's text: lowercase, hyphenated 8-4-4-4-12, as `uuid`'s `hyphenated()` writes
/// it, with one table lookup per byte (every start formats two).
struct Hyphenated([u8; 36]);

fn hyphenated(u: u128) -> Hyphenated {
    let mut out = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in u.to_be_bytes().into_iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        out[at..at + 2].copy_from_slice(&HEX_PAIRS[byte as usize]);
        at += 2;
    }
    Hyphenated(out)
}

impl Hyphenated {
    fn as_str(&self) -> &str {
        // Safety: every byte is an ASCII hex digit or a hyphen.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Safety: the execution (which borrows the arena and the machine) goes first; the
        // arena pointer came from `Box::leak` and is released exactly once, here or in
        // `take_arena` (which takes it out). `start` (holding the machine) is dropped
        // after this body, when the execution is gone.
        self.teardown();
        if let Some(arena) = self.arena {
            unsafe { drop(Box::from_raw(arena.as_ptr())) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hyphenated;

    #[test]
    fn hyphenated_matches_the_uuid_crate() {
        let mut x = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for u in [0, u128::MAX, 1, 1 << 127, x] {
            assert_eq!(hyphenated(u).as_str(), uuid::Uuid::from_u128(u).hyphenated().to_string());
        }
        for _ in 0..1000 {
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15).wrapping_add(0x9e37);
            assert_eq!(hyphenated(x).as_str(), uuid::Uuid::from_u128(x).hyphenated().to_string());
        }
    }
}
