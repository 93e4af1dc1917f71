//! The `loadgen` binary: argument parsing, files, exit codes. Everything else is in the
//! library (`loadgen::*`).
//!
//! Exit status: 0 when the check PASSed (or the run was carried out: `run`, `sweep`), 1 when
//! a check FAILed, 2 for bad arguments, an unreadable file, an invalid definition, input or
//! mock file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::cap::{self, CapSpec};
use loadgen::progress::{self, Mode};
use loadgen::report::{self, judge, Criteria};
use loadgen::run::{run, LoadSpec};
use loadgen::scenario::{self, Files, Scenario};
use loadgen::schedule::Arrivals;
use loadgen::sweep::{sweep_scenario, SweepSpec};
use loadgen::target::{Embedded, EmbeddedConfig, Target};

// mimalloc: the engine's hot path allocates nothing, but arenas grow through the global
// allocator while warming up, asynchronous handlers and the sender allocate, and shards and
// the sender run on different threads: mimalloc's thread-local heaps avoid the contention
// glibc's malloc shows there. It is also what the `sfn` binary uses, so both measure the
// same engine.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START_LATENCY_HELP: &str = "Start latency is measured from each start's INTENDED send time (its slot in the \
open-loop schedule, not when the sender got round to it: no coordinated omission) to the execution BEGINNING on \
the target: for the embedded engine, a shard has taken it from its inbox, set it up in an arena (parsing its input \
unless that was done when the input was checked) and entered its first state. It therefore includes the sender \
running late, time in the inbox, and waiting for a busy shard.";

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Open-loop load generator for the sfn engine: the 100k/s rate check, the 5-minute cap check, capacity sweeps",
    after_help = START_LATENCY_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Keep transparent huge pages for this process. By default loadgen turns them off:
    /// the first touch of each 2 MiB page stalls the faulting shard for milliseconds while
    /// the kernel zeroes it, which shows up as start latency (see `loadgen::sys`).
    #[arg(long, global = true)]
    thp: bool,
}

#[derive(Subcommand)]
enum Command {
    /// PASS when the achieved start rate is within 1% of the target, nothing is lost, and
    /// p99 start latency is under the bound (default: 100,000 starts/s for 10 s, 1 ms).
    #[command(after_help = START_LATENCY_HELP)]
    CheckRate(RateArgs),
    /// PASS when every Express execution that would run past 300 s ends TIMED_OUT
    /// (States.Timeout) exactly at the cap, none ends early, none is lost, and memory is
    /// returned. Virtual time by default (seconds of wall time).
    CheckCap(CapArgs),
    /// Finds the highest sustainable start rate per scenario and shard count (p99 start
    /// latency under the bound, nothing throttled or lost); prints a table, draws a chart.
    #[command(after_help = START_LATENCY_HELP)]
    Sweep(SweepArgs),
    /// Closed loop: executions back to back on N threads without the sharded runtime
    /// (throughput of the VM; latencies contain no queueing).
    Run(loadgen::closed::RunArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum ArrivalsArg {
    /// Evenly spaced starts.
    Constant,
    /// Poisson arrivals (exponential gaps), with exactly rate × duration starts.
    Poisson,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProgressArg {
    /// A progress bar on a terminal, plain lines otherwise.
    Auto,
    Lines,
    Quiet,
}

/// What to start, and how.
#[derive(clap::Args, Clone)]
struct WorkArgs {
    /// Built-in scenario [default: rider, or none with --definition].
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(scenario::NAMES))]
    scenario: Option<String>,
    /// A definition file (ASL JSON) instead of the scenario's: Tasks use the scenario's
    /// handlers (none without --scenario) or --mocks.
    #[arg(long)]
    definition: Option<PathBuf>,
    /// The execution input (a JSON file) [default: the scenario's, or {}].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Mocked Task responses (Step Functions Local MockConfigFile or the per-state list
    /// form); mocks take precedence over handlers.
    #[arg(long)]
    mocks: Option<PathBuf>,
    /// The MockConfigFile test case (default: the machine's only one).
    #[arg(long)]
    test_case: Option<String>,
    /// The state machine in a MockConfigFile (default: the file's only one).
    #[arg(long)]
    name: Option<String>,
}

/// The load of one run.
#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// Seconds of measured load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of the same load first, on separate machines, not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, value_enum, default_value = "constant")]
    arrivals: ArrivalsArg,
    /// Seed for Poisson arrivals and the engine's execution names.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Starts each shard's inbox holds before starts are throttled.
    #[arg(long, default_value_t = 65_536)]
    inbox_capacity: usize,
    /// The p99 start latency bound, microseconds.
    #[arg(long, default_value_t = 1000.0)]
    p99_bound_us: f64,
    /// Seconds to wait after the last start for every execution to end; what has not ended
    /// then is lost.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// The sender thread's timer slack, nanoseconds: how much later than asked the kernel
    /// may end a sleep between starts. 0 (the default) keeps the kernel's (50 µs); 1 wakes
    /// the sender on time. On this project's 2-vCPU VM, mixed at 100,000/s: with 1 the
    /// sender's p99 lateness fell from 200–520 µs to 57–85 µs (in 5 of 6 runs) and p50
    /// start latency halved, but the sender woke twice as often, at ~50 µs of CPU per
    /// wake-up (see `wake-jitter`), and took 0.9 instead of 0.4 of the two cores.
    #[arg(long, default_value_t = 0)]
    sender_timer_slack_ns: u64,
    /// The least time between two of the sender's wake-ups, microseconds: the starts due
    /// by then go out in one burst, each counted from its own intended time (so the wait
    /// is in the start latency). Every wake-up takes a core from a shard; on this
    /// project's 2-vCPU VM (rider, 2 shards, 3-s runs, three alternating runs each), 100
    /// against 0 (no interval): at 800,000/s 4.4–4.7 against 4.7–5.0 CPU-s and 2 of 3
    /// runs under the p99 bound against none; at 100,000/s 0.8–1.0 against 1.2–1.4 CPU-s,
    /// p50 start latency ~100 against ~48 µs.
    #[arg(long, default_value_t = 100)]
    send_interval_us: u64,
    /// Most starts of one machine the sender hands to the engine in one call
    /// (`Engine::start_batch`: one clock reading and one hand-off to a shard per call);
    /// 1 sends each start by itself (`Engine::start_requested`). Either way each start is
    /// counted from its own intended time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    start_batch: u64,
    /// How long an engine shard that runs out of work keeps looking for more before it
    /// parks, microseconds (`EngineBuilder::park_spin`; 0, the default, parks at once). A
    /// parked shard's next start waits for a wake-up; a looking shard keeps its core busy
    /// (it yields to other threads between looks, but shows as CPU time).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    park_spin_us: u64,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressArg,
}

#[derive(clap::Args)]
struct RateArgs {
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Target starts per second.
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Engine shards (threads).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Print exactly one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Exit 0 on a FAIL that is only about rate or latency (wall-clock figures on a shared
    /// machine); lost or failed executions still exit 1. For CI.
    #[arg(long)]
    advisory: bool,
}

#[derive(clap::Args)]
struct CapArgs {
    /// Executions per group (7 groups) per wave.
    #[arg(long, default_value_t = 5_000)]
    per_group: u64,
    /// Identical populations one after the other (2 or more checks that the second needs
    /// no more memory than the first).
    #[arg(long, default_value_t = 2)]
    waves: u32,
    #[arg(long, default_value_t = 2)]
    shards: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run on the system clock: the true 5 minutes (plus 40 s) per wave.
    #[arg(long)]
    real_time: bool,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SweepArgs {
    /// Scenarios to sweep, comma-separated (default: all built-in ones).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(scenario::NAMES))]
    scenarios: Vec<String>,
    /// Shard counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    shards: Vec<usize>,
    /// The first rate, starts/s.
    #[arg(long, default_value_t = 5_000.0)]
    from: f64,
    /// Multiply the rate by this after each sustainable point.
    #[arg(long, default_value_t = 2.0)]
    factor: f64,
    /// Never offer more than this, starts/s.
    #[arg(long, default_value_t = 4_000_000.0)]
    max_rate: f64,
    /// Bisection steps between the last sustainable and first unsustainable rate.
    #[arg(long, default_value_t = 3)]
    bisect: u32,
    /// Starts each point offers at least: at low rates a point runs longer than
    /// --duration, so that one stall of the machine is not its p99.
    #[arg(long, default_value_t = loadgen::sweep::MIN_POINT_STARTS)]
    min_point_starts: f64,
    #[command(flatten)]
    load: LoadArgs,
    /// Write the chart to PREFIX.svg and PREFIX.png.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Print one JSON object (every point, the maxima) instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.thp {
        loadgen::sys::disable_transparent_huge_pages();
    }
    let outcome = match cli.command {
        Command::Run(a) => loadgen::closed::run(&a).map(|()| ExitCode::SUCCESS),
        Command::CheckRate(a) => check_rate(&a),
        Command::CheckCap(a) => check_cap(&a),
        Command::Sweep(a) => sweep(&a),
    };
    outcome.unwrap_or_else(|msg| {
        eprintln!("loadgen: {msg}");
        ExitCode::from(2)
    })
}

fn positive(name: &str, x: f64) -> Result<f64, String> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(format!("{name} must be a number > 0, not {x}"))
    }
}

fn shards_ok(n: usize) -> Result<usize, String> {
    if (1..=1024).contains(&n) {
        Ok(n)
    } else {
        Err(format!("--shards must be between 1 and 1024, not {n}"))
    }
}

fn load_spec(a: &LoadArgs, rate: f64) -> Result<LoadSpec, String> {
    positive("--duration", a.duration)?;
    if !(a.warmup.is_finite() && a.warmup >= 0.0) {
        return Err(format!("--warmup must be a number of seconds >= 0, not {}", a.warmup));
    }
    positive("--p99-bound-us", a.p99_bound_us)?;
    positive("--drain-timeout", a.drain_timeout)?;
    if a.inbox_capacity == 0 {
        return Err("--inbox-capacity must be at least 1".into());
    }
    let offered = rate * a.duration;
    if offered > 1e10 {
        return Err(format!("--rate × --duration offers {offered:.0} starts; keep it under 10 billion"));
    }
    Ok(LoadSpec {
        rate,
        duration_s: a.duration,
        arrivals: match a.arrivals {
            ArrivalsArg::Constant => Arrivals::Constant,
            ArrivalsArg::Poisson => Arrivals::Poisson,
        },
        seed: a.seed,
        warmup_s: a.warmup,
        drain: Duration::from_secs_f64(a.drain_timeout),
        sender_timer_slack_ns: a.sender_timer_slack_ns,
        send_interval: Duration::from_micros(a.send_interval_us),
        start_batch: a.start_batch as usize,
    })
}

fn mode(p: ProgressArg) -> Mode {
    match p {
        ProgressArg::Auto => Mode::Auto,
        ProgressArg::Lines => Mode::Lines,
        ProgressArg::Quiet => Mode::Quiet,
    }
}

fn resolve(w: &WorkArgs) -> Result<Scenario, String> {
    let base = match (&w.scenario, &w.definition) {
        (Some(s), _) => Some(s.as_str()),
        (None, Some(_)) => None,
        (None, None) => Some("rider"),
    };
    let files = Files {
        definition: w.definition.as_deref(),
        input: w.input.as_deref(),
        mocks: w.mocks.as_deref(),
        test_case: w.test_case.as_deref(),
        mock_machine: w.name.as_deref(),
    };
    scenario::resolve(base, &files)
}

fn check_rate(a: &RateArgs) -> Result<ExitCode, String> {
    let rate = positive("--rate", a.rate)?;
    let shards = shards_ok(a.shards)?;
    let spec = load_spec(&a.load, rate)?;
    let scenario = resolve(&a.work)?;
    let target = Embedded::new(&EmbeddedConfig {
        shards,
        inbox_capacity: a.load.inbox_capacity,
        seed: a.load.seed,
        clock: None,
        park_spin: Duration::from_micros(a.load.park_spin_us),
    });
    // The output check runs on the warm-up machines: the measured ones count only load.
    let warm = target.prepare("warmup", &scenario, true)?;
    let machines = target.prepare("measure", &scenario, false)?;
    let mut progress = progress::sink(mode(a.load.progress));
    let mut r = run(&target, &machines, &warm, &scenario.weights(), &spec, progress.as_mut());
    target.shutdown();
    r.scenario = scenario.name.clone();
    r.shards = shards;
    r.park_spin_us = a.load.park_spin_us;
    let criteria = Criteria {
        rate_tolerance: 0.01,
        p99_bound_us: a.load.p99_bound_us,
        all_succeed: scenario.built_in(),
        no_throttling: false,
    };
    let v = judge(&r, &criteria);
    if a.json {
        println!("{}", report::to_json("check-rate", &r, &criteria, &v));
    } else {
        print!("{}", report::to_text("check-rate", &r, &criteria, &v));
    }
    let hard_failure =
        r.lost() > 0 || r.refused > 0 || (criteria.all_succeed && r.figures.failed + r.figures.timed_out > 0);
    Ok(if v.pass() || (a.advisory && !hard_failure) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn check_cap(a: &CapArgs) -> Result<ExitCode, String> {
    let shards = shards_ok(a.shards)?;
    if a.per_group == 0 || a.per_group > 1_000_000 {
        return Err(format!("--per-group must be between 1 and 1,000,000, not {}", a.per_group));
    }
    if a.waves == 0 || a.waves > 10 {
        return Err(format!("--waves must be between 1 and 10, not {}", a.waves));
    }
    let spec = CapSpec { per_group: a.per_group, waves: a.waves, shards, seed: a.seed, real_time: a.real_time };
    let r = cap::run(&spec, |line| eprintln!("loadgen: {line}"))?;
    if a.json {
        println!("{}", cap::to_json(&r));
    } else {
        print!("{}", cap::to_text(&r));
    }
    Ok(if r.pass() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn sweep(a: &SweepArgs) -> Result<ExitCode, String> {
    let from = positive("--from", a.from)?;
    let max_rate = positive("--max-rate", a.max_rate)?;
    if from > max_rate {
        return Err(format!("--from ({from}) is above --max-rate ({max_rate})"));
    }
    if !(a.factor.is_finite() && a.factor > 1.0) {
        return Err(format!("--factor must be a number > 1, not {}", a.factor));
    }
    if a.shards.is_empty() {
        return Err("--shards needs at least one shard count".into());
    }
    for &s in &a.shards {
        shards_ok(s)?;
    }
    let load = load_spec(&a.load, from)?;
    let names: Vec<String> = if a.scenarios.is_empty() {
        scenario::NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        a.scenarios.clone()
    };
    let spec = SweepSpec {
        shards: a.shards.clone(),
        from_rate: from,
        factor: a.factor,
        max_rate,
        bisect_steps: a.bisect,
        min_point_starts: positive("--min-point-starts", a.min_point_starts)?,
        load,
        criteria: Criteria {
            rate_tolerance: 0.01,
            p99_bound_us: a.load.p99_bound_us,
            all_succeed: true,
            no_throttling: true,
        },
        inbox_capacity: a.load.inbox_capacity,
        park_spin: Duration::from_micros(a.load.park_spin_us),
    };
    let mut progress = progress::sink(mode(a.load.progress));
    let mut all = Vec::new();
    for name in &names {
        let scenario = scenario::built_in(name)?;
        let series = sweep_scenario(&scenario, &spec, progress.as_mut(), |p| {
            eprintln!(
                "loadgen: sweep {} shards={} rate {:>9}/s: p50 {} p99 {} cpu {} steal {} {}",
                p.scenario,
                p.shards,
                report::thousands(p.rate as u64),
                report::us(p.p50_us),
                report::us(p.p99_us),
                p.cpu_cores.map_or("?".into(), |c| format!("{c:.2} cores")),
                p.steal_cores.map_or("?".into(), |c| format!("{c:.2}")),
                if p.sustainable { "ok".to_owned() } else { format!("NOT SUSTAINABLE: {}", p.why_not.join("; ")) }
            );
        })?;
        all.extend(series);
    }
    if let Some(prefix) = &a.chart {
        let caption = format!(
            "loadgen sweep, {} ({} cores), commit {}, {}",
            sfn_benches::provenance::machine().cpu,
            sfn_benches::provenance::machine().cores,
            sfn_benches::provenance::git_commit().unwrap_or_else(|| "unknown".into()),
            sfn_benches::provenance::utc_now()
        );
        let (svg, png) = loadgen::chart::render(&all, a.load.p99_bound_us, &caption)?;
        let svg_path = prefix.with_extension("svg");
        let png_path = prefix.with_extension("png");
        std::fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
        std::fs::write(&png_path, png).map_err(|e| format!("cannot write {}: {e}", png_path.display()))?;
        eprintln!("loadgen: wrote {} and {}", svg_path.display(), png_path.display());
    }
    if a.json {
        println!("{}", loadgen::sweep::to_json(&all, &spec));
    } else {
        print!("{}", loadgen::sweep::table(&all, &spec));
    }
    Ok(ExitCode::SUCCESS)
}
