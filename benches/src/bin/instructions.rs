//! `instructions`: the deterministic regression gate. Counts the instructions each key
//! benchmark needs per iteration under valgrind's callgrind and compares them with the
//! committed baseline (`benches/instructions.baseline.json`); fails, naming the benchmark,
//! when one needs more than 5% more.
//!
//! ```text
//! instructions check              # measure, compare, exit 1 on a regression (CI)
//! instructions check --update     # measure and rewrite the baseline (deliberately)
//! instructions run BENCH N        # the measured program: N iterations of BENCH
//! ```
//!
//! Why instructions: wall time on a shared 2-core machine moves by 50% with the
//! neighbours' load (results/README.md, Noise); instruction counts of a single-threaded
//! loop are exact and repeatable. Why a difference of two runs: each benchmark is run for
//! N₁ and N₂ iterations and the count per iteration is (I₂ − I₁) / (N₂ − N₁), so process
//! start-up, compiling the definition and warming the arena cancel out.
//!
//! What is measured (each single-threaded, output checked before counting): one whole
//! execution (`Runner::run`: reset arena, parse input, run, write output) of pass4, rider,
//! choice-loop and map100, and compiling rider-photo (`sfn::load`). The sharded executor is
//! not in the gate: its shard threads park and wake depending on scheduling, so their
//! instruction counts are not repeatable.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::{json, Value};
use sfn_benches::{load, Runner, Workload};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A benchmark more expensive than its baseline by more than this fails the gate.
const TOLERANCE: f64 = 0.05;

/// (name, N₁, N₂): iteration counts large enough that one iteration's cost is the bulk of
/// the difference, small enough that the gate stays well under a minute.
const BENCHES: [(&str, u64, u64); 6] = [
    ("execute/pass4", 1_000, 3_000),
    ("execute/rider", 1_000, 3_000),
    ("execute/rider-jsonata", 300, 900),
    ("execute/choice-loop", 200, 600),
    ("execute/map100", 50, 150),
    ("compile/rider", 50, 150),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["run", bench, n] => {
            n.parse().map_err(|_| format!("N must be a number, not {n:?}")).and_then(|n| run(bench, n))
        }
        ["check"] => check(false),
        ["check", "--update"] => check(true),
        _ => Err("usage: instructions check [--update] | instructions run BENCH N".into()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("instructions: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The measured program.
fn run(bench: &str, n: u64) -> Result<ExitCode, String> {
    let (kind, name) = bench.split_once('/').ok_or_else(|| format!("unknown benchmark {bench:?}"))?;
    let w = Workload::ALL.into_iter().find(|w| w.name() == name).ok_or_else(|| format!("unknown workload {name:?}"))?;
    let prog = w.load();
    let mut runner = Runner::new(w.machine_type());
    w.check(&prog, &mut runner);
    match kind {
        "execute" => {
            let mut bytes = 0;
            for _ in 0..n {
                runner.run(&prog, std::hint::black_box(w.input())).map_err(|e| e.to_string())?;
                bytes += runner.output().len();
            }
            // The output of every iteration has the expected length (a cheap checksum).
            if bytes != n as usize * w.expected_output().len() {
                return Err(format!("{bench}: outputs changed during the loop"));
            }
        }
        "compile" => {
            let registry = w.registry();
            for _ in 0..n {
                let p = load(std::hint::black_box(w.definition()), w.machine_type(), Some(&registry), None)
                    .map_err(|d| format!("{d:?}"))?;
                std::hint::black_box(p);
            }
        }
        other => return Err(format!("unknown benchmark kind {other:?}")),
    }
    Ok(ExitCode::SUCCESS)
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("instructions.baseline.json")
}

fn tool_version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned())
}

/// Instructions of `instructions run BENCH N` under callgrind.
fn count(bench: &str, n: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out =
        std::env::temp_dir().join(format!("callgrind.{}.{}.{n}.out", std::process::id(), bench.replace('/', "-")));
    let status = Command::new("valgrind")
        .args(["--tool=callgrind", "--quiet"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .args(["run", bench, &n.to_string()])
        .status()
        .map_err(|e| format!("cannot run valgrind ({e}); install it (apt-get install -y valgrind)"))?;
    if !status.success() {
        return Err(format!("{bench} × {n} under callgrind exited with {status}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no instruction total in callgrind's output for {bench}"))
}

fn check(update: bool) -> Result<ExitCode, String> {
    let baseline: Option<Value> = std::fs::read_to_string(baseline_path())
        .ok()
        .map(|t| serde_json::from_str(&t).map_err(|e| format!("{} is not valid JSON: {e}", baseline_path().display())))
        .transpose()?;
    let rustc = tool_version("rustc", "--version");
    let valgrind = tool_version("valgrind", "--version");
    if let Some(b) = &baseline {
        for (what, now) in [("rustc", &rustc), ("valgrind", &valgrind)] {
            if b[what].as_str().is_some_and(|then| then != now) {
                eprintln!("instructions: note: the baseline was measured with {what} {}, this is {now}", b[what]);
            }
        }
    }
    let mut measured = serde_json::Map::new();
    let mut regressions = Vec::new();
    println!("{:<22} {:>12} {:>12} {:>8}", "benchmark", "baseline", "now", "change");
    for (bench, n1, n2) in BENCHES {
        let (i1, i2) = (count(bench, n1)?, count(bench, n2)?);
        let per = i2.saturating_sub(i1) / (n2 - n1);
        measured.insert(bench.into(), json!(per));
        let base = baseline.as_ref().and_then(|b| b["benchmarks"][bench].as_u64());
        let change = base.map(|b| per as f64 / b as f64 - 1.0);
        println!(
            "{bench:<22} {:>12} {per:>12} {:>8}",
            base.map_or("-".into(), |b| b.to_string()),
            change.map_or("new".into(), |c| format!("{:+.1}%", c * 100.0))
        );
        if let (Some(b), Some(c)) = (base, change) {
            if c > TOLERANCE {
                regressions.push(format!(
                    "{bench}: {per} instructions per iteration, {:+.1}% over the baseline {b}",
                    c * 100.0
                ));
            }
        } else if !update {
            regressions.push(format!("{bench}: no baseline (run `instructions check --update` and commit it)"));
        }
    }
    if update {
        let doc = json!({
            "about": "Instructions per iteration under valgrind's callgrind (benches/src/bin/instructions.rs). CI fails when a benchmark needs more than 5% more. Update deliberately: cargo run --release -p sfn-benches --bin instructions -- check --update, and say why in the commit.",
            "rustc": rustc,
            "valgrind": valgrind,
            "commit": sfn_benches::provenance::git_commit(),
            "date": sfn_benches::provenance::utc_now(),
            "benchmarks": measured,
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON") + "\n";
        std::fs::write(baseline_path(), text)
            .map_err(|e| format!("cannot write {}: {e}", baseline_path().display()))?;
        println!("wrote {}", baseline_path().display());
        return Ok(ExitCode::SUCCESS);
    }
    if regressions.is_empty() {
        println!("instructions: every benchmark within {:.0}% of its baseline", TOLERANCE * 100.0);
        Ok(ExitCode::SUCCESS)
    } else {
        for r in &regressions {
            eprintln!("instructions: REGRESSION {r}");
        }
        Ok(ExitCode::from(1))
    }
}
