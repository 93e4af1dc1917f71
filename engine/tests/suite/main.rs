//! The engine's integration tests, one module per concern, built as one test binary: each
//! test binary of a release build links (with thin LTO) the whole engine again, so one
//! binary instead of one per file is most of CI's build time saved. Run one module with
//! `cargo test --release -p sfn-engine --test suite conformance::`.
//! `paths_alloc.rs` stays a binary of its own: it installs a counting global allocator.

mod checkpointing;
mod choice_cases;
mod choice_props;
mod conformance;
mod crash_resume;
mod durable;
mod examples;
mod executor;
mod golden;
mod history;
mod intrinsics_conformance;
mod intrinsics_props;
mod jsonata_diff;
mod jsonata_fns;
mod jsonata_vm;
mod paths_corpus;
mod paths_props;
mod paths_rfc9535;
mod services;
mod store;
mod template_props;
mod tidy;
mod timestamp_cases;
mod validate_cases;
mod validate_props;
mod value_props;
mod vm;

/// Helpers the tests of the sharded engine (`executor`, `durable`) share.
pub mod support {
    use std::time::{Duration, Instant};

    use sfn::executor::{Engine, Input, MachineSpec, StateMachine};
    use sfn::validate::MachineType;

    pub fn register(engine: &Engine, name: &str, definition: &str, ty: MachineType) -> StateMachine {
        engine.register(MachineSpec::new(name, definition.as_bytes(), ty)).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn input(text: &str) -> Input {
        Input::from_json(text.to_owned()).expect("valid JSON")
    }

    /// Polls `cond` (real time) for up to 10 s.
    pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The libtest name of the test `name` in the module `module` (its `module_path!()`): how a
/// test re-runs this binary to run one test as a child process.
pub fn test_name(module: &str, name: &str) -> String {
    let path = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{path}::{name}")
}
