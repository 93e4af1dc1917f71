//! The `sfn` binary's end-to-end tests, as one test binary (each test binary of a release
//! build links the whole engine again): `cli` runs, validates and disassembles definitions
//! and checks `check.py` against the binary; `standard` drives Standard executions, task
//! tokens, queues and topics through the CLI over a store directory.

mod cli;
mod standard;
