//! `sfn`: an Amazon States Language engine.
//!
//! A definition goes through one stage per module, in this order:
//! `parse` (JSON text → document) → `validate` (document → checked model, every problem
//! reported at once) → `compile` (model → flat [`program::Program`]) → `vm` (runs one
//! execution over arena [`value::Value`]s until it finishes or suspends).
//! `paths`, `intrinsics`, `choice` and `template` are the compiler's sub-languages; each
//! parses once at compile time and evaluates against an [`eval::Env`] at run time.
//! `jsonata` holds JSONata expressions (parsed once, evaluated over arena values through the
//! `jsonata-core` crate); `template::Query` is such an expression written in one field of a
//! JSONata-mode state, and is what `validate`, `compile` and `vm` handle.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod choice;
pub mod clock;
pub mod compile;
pub mod diag;
pub mod eval;
pub mod executor;
pub mod handlers;
pub mod history;
pub mod intern;
pub mod intrinsics;
pub mod jsonata;
pub mod local;
pub mod logs;
pub mod mocks;
pub mod parse;
pub mod paths;
pub mod program;
pub mod services;
pub mod store;
pub mod template;
pub mod timestamp;
pub mod validate;
pub mod value;
pub mod vm;

use diag::Diagnostic;

/// Parses, validates and compiles a definition in one call.
pub fn load(
    definition: &[u8],
    machine_type: validate::MachineType,
    bindings: compile::Bindings<'_>,
) -> Result<program::Program, Vec<Diagnostic>> {
    let doc = parse::parse_definition(definition)?;
    let machine = validate::validate(&doc, machine_type).map_err(|d| d.items)?;
    Ok(compile::compile(machine, bindings))
}
