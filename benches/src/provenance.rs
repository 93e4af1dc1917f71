//! Provenance of recorded figures: when, at which commit, on which machine.
//!
//! Input: the clock, `git` (if the current directory is inside the repository) and
//! `/proc/cpuinfo` (Linux). Output: the fields every line of `results/*.jsonl` carries.
//! Never touches: the engine.
//!
//! A figure without its machine and commit cannot be compared with a later one, so
//! `loadgen --json` and the `criterion-jsonl` recorder both stamp their lines from here.

use std::process::Command;

/// The machine a figure was measured on.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`, or "unknown".
    pub cpu: String,
}

pub fn machine() -> Machine {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Machine { cores, cpu }
}

/// Now, UTC, to the second: `2026-01-31T12:34:56Z`.
pub fn utc_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The checked-out commit (12 hex digits), with `-dirty` if tracked files differ from it
/// (the measured figures in `results/` themselves do not count: `record.sh` appends to them
/// between runs); `None` outside a git work tree.
pub fn git_commit() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if dirty {
        commit.push_str("-dirty");
    }
    Some(commit)
}

/// The 1-minute load average (`/proc/loadavg`), recorded beside figures because this
/// machine is shared: a load above the core count means the figures were measured while
/// other work competed for the cores. It includes the measuring process's own threads.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// `line` (a JSON object) with the fields every line of `results/*.jsonl` ends with:
/// `date`, `commit`, `machine`, `command` and `loadavg_1m`.
pub fn stamp(mut line: serde_json::Value, command: String) -> serde_json::Value {
    let machine = machine();
    if let Some(fields) = line.as_object_mut() {
        fields.insert("date".into(), utc_now().into());
        fields.insert("commit".into(), git_commit().into());
        fields.insert("machine".into(), serde_json::json!({"cores": machine.cores, "cpu": machine.cpu}));
        fields.insert("command".into(), command.into());
        fields.insert("loadavg_1m".into(), load_average().into());
    }
    line
}
