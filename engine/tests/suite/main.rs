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

/// The libtest name of the test `name` in the module `module` (its `module_path!()`): how a
/// test re-runs this binary to run one test as a child process.
pub fn test_name(module: &str, name: &str) -> String {
    let path = module.split_once("::").map_or(module, |(_, rest)| rest);
    format!("{path}::{name}")
}
