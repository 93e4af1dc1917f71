//! `closed`: `loadgen run`, the closed-loop throughput measurement: executions back to
//! back on N threads, reporting throughput and per-execution latency.
//!
//! Input: a scenario (a built-in workload from `sfn_benches`, optionally with its
//! definition, input or mocks replaced by files), a duration and a thread count. Output: a
//! human-readable report, or one JSON object with `--json`.
//! Never touches: the network, the sharded runtime (each thread runs executions directly).
//!
//! CLOSED LOOP: each thread starts its next execution the moment the previous one
//! finishes, so it measures how many executions the VM can complete per thread, and the
//! latency of an execution on an otherwise idle thread. Its latencies contain no queueing
//! delay and must not be read as latency under a given offered load (coordinated
//! omission): that is what the open-loop commands (`check-rate`, `sweep`) measure.
//!
//! Each thread is what a shard is: its own reused arena, JSON parser and output buffer
//! (`sfn_benches::Runner`); the program is compiled once and shared read-only through an
//! `Arc`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde_json::json;
use sfn::local::Status;
use sfn::mocks::{parse_mocks, MockSet};
use sfn::program::Program;
use sfn::validate::MachineType;
use sfn_benches::{provenance, Runner, Workload};

/// Latencies above this are clamped into the histogram's top bucket (and still counted).
const MAX_LATENCY_NS: u64 = 60 * 1_000_000_000;

#[derive(Clone, Copy, ValueEnum)]
pub enum ScenarioArg {
    /// Four Pass states shaping a small object (no tasks).
    Pass4,
    /// The rider-photo workflow with inline handlers for its Lambda tasks.
    Rider,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TypeArg {
    Standard,
    Express,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The built-in workload: its definition, input and inline task handlers.
    #[arg(long, value_enum)]
    scenario: ScenarioArg,
    /// Replace the scenario's definition (ASL JSON). Tasks whose Resource matches one of
    /// the scenario's handlers use it; others need --mocks.
    #[arg(long)]
    definition: Option<PathBuf>,
    /// Replace the scenario's execution input (a JSON file).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Mocked Task responses (Step Functions Local MockConfigFile or per-state list form);
    /// mocks take precedence over the scenario's handlers.
    #[arg(long)]
    mocks: Option<PathBuf>,
    /// The MockConfigFile test case to use (default: the machine's only one).
    #[arg(long)]
    test_case: Option<String>,
    /// The state machine in a MockConfigFile (default: the file's only one).
    #[arg(long)]
    name: Option<String>,
    /// Standard or Express semantics.
    #[arg(long = "type", value_enum, default_value = "express")]
    machine_type: TypeArg,
    /// Seconds to measure, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to run before measuring (arenas grow, caches warm); not reported.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Worker threads, each with its own arena and parser.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print one JSON object on stdout instead of the report.
    #[arg(long)]
    json: bool,
}

/// What to run, resolved from the arguments.
struct Setup {
    workload: Workload,
    definition_name: String,
    definition: Vec<u8>,
    input_name: String,
    input: Vec<u8>,
    mocks_name: Option<String>,
    machine_type: MachineType,
    /// The scenario's own definition and input, unmocked: the output must be the expected one.
    builtin: bool,
}

/// Totals of one thread.
struct ThreadReport {
    executions: u64,
    failed: u64,
    transitions: u64,
    latency: Histogram<u64>,
    /// CPU time the thread got while measuring, if the OS tells.
    cpu_secs: Option<f64>,
}

pub fn run(args: &RunArgs) -> Result<(), String> {
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(format!("--duration must be a number of seconds > 0, not {}", args.duration));
    }
    if !(args.warmup.is_finite() && args.warmup >= 0.0) {
        return Err(format!("--warmup must be a number of seconds >= 0, not {}", args.warmup));
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let setup = resolve(args)?;
    let mocks: Option<MockSet> = match &args.mocks {
        Some(p) => {
            let doc: serde_json::Value =
                serde_json::from_slice(&read(p)?).map_err(|e| format!("{} is not valid JSON: {e}", p.display()))?;
            Some(
                parse_mocks(&doc, args.name.as_deref(), args.test_case.as_deref())
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let registry = setup.workload.registry();
    let prog =
        sfn_benches::load(&setup.definition, setup.machine_type, Some(&registry), mocks.as_ref()).map_err(|diags| {
            let list: String = diags.iter().map(|d| format!("\n  {d}")).collect();
            format!("{} is not a valid definition:{list}", setup.definition_name)
        })?;
    let prog = Arc::new(prog);

    // One execution up front: proves the input parses, and that the built-in scenario
    // still produces its expected output.
    let mut probe = Runner::new(setup.machine_type);
    let status = probe
        .run(&prog, &setup.input)
        .map_err(|e| format!("the execution input {} is not valid JSON: {e}", setup.input_name))?;
    if setup.builtin {
        setup.workload.check(&prog, &mut probe);
    }
    let first_output = probe.output_str().to_owned();

    let warmup = Duration::from_secs_f64(args.warmup);
    let measure = Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let reports: Vec<ThreadReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|_| {
                let prog = Arc::clone(&prog);
                let input = setup.input.as_slice();
                let machine_type = setup.machine_type;
                s.spawn(move || worker(&prog, input, machine_type, started + warmup, started + warmup + measure))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker thread panicked")).collect()
    });
    let elapsed = measure.as_secs_f64();

    let mut latency = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds");
    let (mut executions, mut failed, mut transitions) = (0u64, 0u64, 0u64);
    let mut cpu_secs = Some(0.0);
    for r in &reports {
        latency.add(&r.latency).expect("same bounds");
        executions += r.executions;
        failed += r.failed;
        transitions += r.transitions;
        cpu_secs = cpu_secs.zip(r.cpu_secs).map(|(a, b)| a + b);
    }
    // Share of the threads' wall time they spent on a CPU; well under 1 means the
    // machine's other work took the cores, and executions/s understates the engine.
    let cpu_share = cpu_secs.map(|c| c / (elapsed * args.threads as f64));
    let per_cpu_sec = cpu_secs.filter(|&c| c > 0.0).map(|c| (executions as f64 / c).round());
    let q = |p: f64| latency.value_at_quantile(p);
    let machine = provenance::machine();
    if args.json {
        let line = json!({
            "mode": "closed-loop",
            "note": "back-to-back executions per thread; no open-loop rate control, latencies exclude queueing",
            "date": provenance::utc_now(),
            "commit": provenance::git_commit(),
            "machine": {"cores": machine.cores, "cpu": machine.cpu},
            "scenario": setup.workload.name(),
            "definition": setup.definition_name,
            "input": setup.input_name,
            "mocks": setup.mocks_name,
            "first_status": status.as_str(),
            "threads": args.threads,
            "duration_s": elapsed,
            "warmup_s": args.warmup,
            "executions": executions,
            "failed": failed,
            "transitions": transitions,
            "executions_per_s": (executions as f64 / elapsed).round(),
            "transitions_per_s": (transitions as f64 / elapsed).round(),
            "cpu_s": cpu_secs,
            "cpu_share": cpu_share.map(|x| (x * 1000.0).round() / 1000.0),
            "executions_per_cpu_s": per_cpu_sec,
            "latency_ns": {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": latency.max(), "mean": latency.mean().round()},
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "loadavg_1m": provenance::load_average(),
        });
        println!("{line}");
    } else {
        println!("loadgen: CLOSED-LOOP throughput (each thread starts the next execution as soon as the last");
        println!("         finishes; no open-loop rate control yet, so latencies contain no queueing delay)");
        println!(
            "machine      {} cores, {} (load average {})",
            machine.cores,
            machine.cpu,
            provenance::load_average().map_or("unknown".into(), |l| l.to_string())
        );
        println!("scenario     {}", setup.workload.name());
        println!("definition   {}", setup.definition_name);
        println!("input        {}", setup.input_name);
        if let Some(m) = &setup.mocks_name {
            println!("mocks        {m}");
        }
        println!("first run    {} {}", status.as_str(), ellipsize(&first_output, 100));
        println!("threads      {}   measured {:.1} s after {:.1} s warm-up", args.threads, elapsed, args.warmup);
        println!(
            "executions   {executions} ({}/s), {failed} not SUCCEEDED",
            thousands((executions as f64 / elapsed).round() as u64)
        );
        println!("transitions  {transitions} ({}/s)", thousands((transitions as f64 / elapsed).round() as u64));
        if let (Some(c), Some(share), Some(per)) = (cpu_secs, cpu_share, per_cpu_sec) {
            println!(
                "cpu          {c:.2} s on CPU ({:.0}% of the threads' wall time), {}/s per CPU-second",
                share * 100.0,
                thousands(per as u64)
            );
        }
        println!(
            "latency      p50 {}  p99 {}  p999 {}  max {}  (per execution, one thread)",
            micros(q(0.5)),
            micros(q(0.99)),
            micros(q(0.999)),
            micros(latency.max())
        );
    }
    Ok(())
}

fn resolve(args: &RunArgs) -> Result<Setup, String> {
    let workload = match args.scenario {
        ScenarioArg::Pass4 => Workload::Pass4,
        ScenarioArg::Rider => Workload::Rider,
    };
    let builtin_name = |what: &str| format!("built-in {} {what}", workload.name());
    let (definition_name, definition) = match &args.definition {
        Some(p) => (p.display().to_string(), read(p)?),
        None => (builtin_name("definition"), workload.definition().to_vec()),
    };
    let (input_name, input) = match &args.input {
        Some(p) => (p.display().to_string(), read(p)?),
        None => (builtin_name("input"), workload.input().to_vec()),
    };
    let machine_type = match args.machine_type {
        TypeArg::Standard => MachineType::Standard,
        TypeArg::Express => MachineType::Express,
    };
    Ok(Setup {
        workload,
        definition_name,
        definition,
        input_name,
        input,
        mocks_name: args.mocks.as_ref().map(|p| p.display().to_string()),
        machine_type,
        builtin: args.definition.is_none()
            && args.input.is_none()
            && args.mocks.is_none()
            && machine_type == workload.machine_type(),
    })
}

/// One thread: executions back to back until `end`; only those that start after
/// `measure_from` are counted.
fn worker(
    prog: &Program,
    input: &[u8],
    machine_type: MachineType,
    measure_from: Instant,
    end: Instant,
) -> ThreadReport {
    let mut runner = Runner::new(machine_type);
    let mut latency = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds");
    let (mut executions, mut failed, mut transitions) = (0u64, 0u64, 0u64);
    let mut t0 = Instant::now();
    while t0 < measure_from {
        runner.run(prog, input).expect("the input parsed in the probe run");
        t0 = Instant::now();
    }
    let cpu0 = crate::sys::thread_cpu_seconds();
    while t0 < end {
        let status = runner.run(prog, input).expect("the input parsed in the probe run");
        // One clock read per execution serves as this one's end and the next one's start.
        let t1 = Instant::now();
        latency.saturating_record((t1 - t0).as_nanos() as u64);
        executions += 1;
        transitions += runner.transitions();
        failed += u64::from(status != Status::Succeeded);
        t0 = t1;
    }
    let cpu_secs = cpu0.zip(crate::sys::thread_cpu_seconds()).map(|(a, b)| b - a);
    ThreadReport { executions, failed, transitions, latency, cpu_secs }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn micros(ns: u64) -> String {
    format!("{:.2} µs", ns as f64 / 1000.0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
