//! `loadgen`: an open-loop load generator for the sfn engine, and the checks built on it.
//!
//! Input: a scenario (built-in workflows or definition files), a target rate and duration,
//! a target (the embedded engine). Output: verdicts and figures, as text or one JSON
//! object per run. Never touches: the engine's internals (only its public embedding API,
//! behind the [`target::Target`] trait).
//!
//! Pipeline: [`scenario`] says what to start → [`schedule`] says when each start is meant
//! to be sent → [`run`] sends them open loop on a [`target::Target`] and drains → [`report`]
//! judges (check-rate) → [`sweep`] repeats that over rates to find the highest sustainable
//! one and [`chart`] draws it. [`cap`] is the 5-minute check (its own population, virtual
//! time). [`closed`] is the older closed-loop throughput mode (`loadgen run`).

pub mod cap;
pub mod chart;
pub mod closed;
pub mod progress;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod sweep;
pub mod sys;
pub mod target;
