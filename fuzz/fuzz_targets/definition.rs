//! Fuzz target: definition bytes → `sfn::load` (parse, validate, compile), then a bounded
//! run of whatever loads.
//!
//! Guards the same property as `engine/tests/suite/validate_props.rs`, with coverage guidance:
//! no input panics, validation and loading agree, and a loaded program runs on `{}` with no
//! handlers until it finishes, blocks, or uses up its step budget. The first byte picks the
//! machine type (so Express-only checks are reached); the rest is the definition.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sfn::clock::{Clock, ManualClock};
use sfn::compile::Bindings;
use sfn::diag::Severity;
use sfn::validate::MachineType;
use sfn::vm::{Exec, ExecMeta, Poll};

/// States entered per `Exec::run` call, and calls before giving up on a looping machine.
const STEP_BUDGET: u32 = 200;
const MAX_ROUNDS: usize = 20;

fuzz_target!(|data: &[u8]| {
    let Some((&first, text)) = data.split_first() else { return };
    let machine_type = if first & 1 == 1 { MachineType::Express } else { MachineType::Standard };
    let diags = match sfn::parse::parse_definition(text) {
        Err(d) => d,
        Ok(doc) => sfn::validate::check(&doc, machine_type).1,
    };
    assert!(diags.iter().all(|d| !d.message.contains("internal error")), "{diags:?}");
    let valid = !diags.iter().any(|d| d.severity == Severity::Error);
    let prog = match sfn::load(text, machine_type, Bindings::default()) {
        Ok(prog) => {
            assert!(valid, "load accepted a definition with errors: {diags:?}");
            prog
        }
        Err(d) => {
            assert!(!valid, "validates cleanly, but load rejects it: {d:?}");
            return;
        }
    };
    let clock = ManualClock::fixed();
    let bump = bumpalo::Bump::new();
    let input = sfn::value::parse_json(&bump, b"{}").expect("{} parses");
    let meta = ExecMeta::local("Fuzz", "run", machine_type, clock.now());
    let mut exec = Exec::new(&prog, &bump, input, &meta, 7);
    for _ in 0..MAX_ROUNDS {
        match exec.run(&clock, STEP_BUDGET) {
            Poll::Finished => return,
            Poll::Yielded => {}
            Poll::Blocked { wake_at: Some(t) } => clock.sleep_until(t),
            Poll::Blocked { wake_at: None } => return,
        }
    }
});
