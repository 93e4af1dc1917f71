//! Runs the `loadgen` binary briefly so its commands, argument handling and JSON reports do
//! not rot. Counts and shapes are asserted; wall-clock verdicts are not (they live in results/).
//! The closed-loop `run`: a short run of each scenario reports executions; bad arguments or files exit 2.

use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).output().expect("loadgen runs")
}

/// A 0.2-s `check-rate --json` on one shard, no warm-up, quiet; `extra` arguments last.
fn short_check_rate(scenario: &str, rate: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "check-rate",
        "--scenario",
        scenario,
        "--rate",
        rate,
        "--duration",
        "0.2",
        "--warmup",
        "0",
        "--shards",
        "1",
        "--progress",
        "quiet",
        "--json",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

#[test]
fn short_runs_report_json() {
    for scenario in ["pass4", "rider"] {
        let out = loadgen(&[
            "run",
            "--scenario",
            scenario,
            "--duration",
            "0.05",
            "--warmup",
            "0",
            "--threads",
            "2",
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(report["mode"], "closed-loop");
        assert_eq!(report["scenario"], scenario);
        assert_eq!(report["threads"], 2);
        assert_eq!(report["first_status"], "SUCCEEDED");
        assert!(report["executions"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(report["failed"], 0);
        // 10 ms CPU-time resolution: over 50 ms only the presence of the figure is checked.
        assert!(report["cpu_share"].as_f64().is_some_and(|s| s >= 0.0), "{report}");
        let expected_transitions = if scenario == "pass4" { 4 } else { 6 };
        assert_eq!(
            report["transitions"].as_u64().unwrap(),
            expected_transitions * report["executions"].as_u64().unwrap()
        );
    }
}

#[test]
fn human_report_says_closed_loop() {
    let out = loadgen(&["run", "--scenario", "pass4", "--duration", "0.02", "--warmup", "0"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CLOSED-LOOP") && text.contains("no open-loop rate control"), "{text}");
}

#[test]
fn bad_arguments_and_files_exit_2() {
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_def = dir.join("bad.asl.json");
    std::fs::write(&bad_def, r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#).unwrap();
    let bad_input = dir.join("bad.input.json");
    std::fs::write(&bad_input, "{not json").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["run", "--scenario", "nope"], "invalid value"),
        (&["run", "--scenario", "pass4", "--duration", "0"], "--duration"),
        (&["run", "--scenario", "pass4", "--threads", "0"], "--threads"),
        (&["run", "--scenario", "pass4", "--definition", bad_def.to_str().unwrap()], "is not a valid definition"),
        (&["run", "--scenario", "pass4", "--input", bad_input.to_str().unwrap()], "is not valid JSON"),
        (&["run", "--scenario", "rider", "--mocks", "/nonexistent/mocks.json"], "cannot read"),
    ];
    for (args, message) in cases {
        let out = loadgen(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn json_of(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "exactly one line on stdout: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("one JSON object: {e}: {text}"))
}

#[test]
fn check_rate_json_has_the_documented_shape_and_counts_every_start() {
    // 400 starts at a low rate: the counts are exact; the verdict depends on the machine's
    // timing and is not asserted here (speed targets live in results/).
    for scenario in ["pass4", "checkpoint", "mixed"] {
        let out = short_check_rate(scenario, "2000", &[]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
        let j = json_of(&out);
        assert_eq!(j["target_rate"], 2000.0);
        assert_eq!(j["accepted"], 400, "{j}");
        assert_eq!(j["throttled"], 0);
        assert_eq!(j["lost"], 0, "{j}");
        assert_eq!(j["succeeded"], 400, "{j}");
        assert_eq!((j["failed"].as_u64(), j["timed_out"].as_u64()), (Some(0), Some(0)));
        for q in ["p50", "p99", "p999", "max"] {
            assert!(j["start_latency_us"][q].as_f64().is_some_and(|x| x >= 0.0), "{q}: {j}");
        }
        for q in ["p50", "p99", "max"] {
            assert!(j["duration_us"][q].as_f64().is_some_and(|x| x > 0.0), "{q}: {j}");
        }
        assert!(j["cpu_seconds"].is_number() && j["peak_rss_bytes"].as_u64().unwrap() > 0);
        assert!(j["rerun"].is_number());
        let verdict = j["verdict"].as_str().unwrap();
        assert_eq!(out.status.code(), Some(if verdict == "PASS" { 0 } else { 1 }), "{j}");
        assert!(verdict == "PASS" || !j["failures"].as_array().unwrap().is_empty());
    }
}

#[test]
fn the_sender_wakes_at_most_once_per_send_interval() {
    // 4,000 starts in 0.2 s (one every 50 µs). A sleep never ends early, so with a 20-ms
    // interval the sender cannot wake more than 0.2 / 0.02 + 1 times; with no interval it
    // sleeps before nearly every start (a machine that stalled the sender for most of the
    // run could make it fewer than that bound, nothing could make it more).
    let wakeups = |interval_us: &str| {
        let out = short_check_rate("pass4", "20000", &["--send-interval-us", interval_us]);
        let j = json_of(&out);
        assert_eq!(j["accepted"], 4000, "{j}");
        assert_eq!(j["send_interval_us"].as_u64(), interval_us.parse().ok(), "{j}");
        j["sender_wakeups"].as_u64().expect("sender_wakeups")
    };
    let bounded = wakeups("20000");
    assert!(bounded <= 11, "{bounded} wake-ups in 0.2 s with a 20-ms interval");
    let unbounded = wakeups("0");
    assert!(unbounded > 11, "{unbounded} wake-ups with no interval");
}

#[test]
fn shards_that_look_for_work_before_parking_count_every_start_and_say_so() {
    for (spin, text) in [("0", None), ("300", Some("looking 300 µs for work before parking"))] {
        let out = short_check_rate("pass4", "2000", &["--park-spin-us", spin]);
        let j = json_of(&out);
        assert_eq!(
            (j["accepted"].as_u64(), j["succeeded"].as_u64(), j["lost"].as_u64()),
            (Some(400), Some(400), Some(0))
        );
        assert_eq!(j["park_spin_us"].as_u64(), spin.parse().ok(), "{j}");
        let target = j["target"].as_str().expect("target");
        match text {
            Some(t) => assert!(target.contains(t), "{target}"),
            None => assert!(!target.contains("looking"), "{target}"),
        }
    }
}

#[test]
fn check_rate_summary_defines_start_latency() {
    let out = loadgen(&["check-rate", "--scenario", "pass4", "--rate", "1000", "--duration", "0.1", "--warmup", "0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("intended send → execution begun") && text.contains("verdict"), "{text}");
    let help = loadgen(&["check-rate", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("INTENDED send time"));
}

#[test]
fn check_cap_on_virtual_time_passes_and_reports_the_cap_counts() {
    let out = loadgen(&["check-cap", "--per-group", "200", "--json"]);
    let j = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{j}");
    assert_eq!(j["verdict"], "PASS");
    assert_eq!(j["accepted"], 2 * 7 * 200);
    assert_eq!(j["lost"], 0);
    // Machine-wide steal over the run: a number of seconds on Linux, null elsewhere.
    assert!(j["steal_seconds"].as_f64().is_some_and(|x| x >= 0.0) || j["steal_seconds"].is_null(), "{j}");
    assert_eq!(j["timed_out"], 2 * 5 * 200);
    assert_eq!(j["succeeded"], 2 * 2 * 200);
    assert_eq!(j["cap"]["time"], "virtual");
    assert_eq!(j["cap"]["timed_out_at_cap"], 2 * 4 * 200);
    assert_eq!(j["cap"]["ended_early"], 0);
    assert_eq!(j["cap"]["groups"].as_array().unwrap().len(), 7);
    assert_eq!(j["cap"]["memory"]["after_wave"][1]["parked"], 0);
    // 300 s, within the histograms' 1% precision.
    let max = j["duration_us"]["max"].as_f64().unwrap();
    assert!((max - 300e6).abs() <= 3e6, "{max}");
}

#[test]
fn sweep_writes_a_table_json_and_chart() {
    let dir = std::env::temp_dir().join(format!("loadgen-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("chart");
    let out = loadgen(&[
        "sweep",
        "--scenarios",
        "pass4",
        "--shards",
        "1",
        "--from",
        "1000",
        "--max-rate",
        "2000",
        "--min-point-starts",
        "100",
        "--duration",
        "0.1",
        "--warmup",
        "0",
        "--progress",
        "quiet",
        "--json",
        "--chart",
        prefix.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = json_of(&out);
    let series = j["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["scenario"], "pass4");
    assert!(!series[0]["points"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.contains("pass4"));
    assert_eq!(&std::fs::read(dir.join("chart.png")).unwrap()[1..4], b"PNG");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open_loop_commands_refuse_bad_arguments_and_definitions_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("loadgen-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_def = dir.join("bad.asl.json");
    std::fs::write(&bad_def, r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#).unwrap();
    let not_json = dir.join("nojson.asl.json");
    std::fs::write(&not_json, "{\"StartAt\": ").unwrap();
    let bad_input = dir.join("bad.input.json");
    std::fs::write(&bad_input, "{not json").unwrap();
    let (b, n, i) = (bad_def.to_str().unwrap(), not_json.to_str().unwrap(), bad_input.to_str().unwrap());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["check-rate", "--rate", "0"], "--rate must be a number > 0"),
        (vec!["check-rate", "--rate=-5"], "--rate must be a number > 0"),
        (vec!["check-rate", "--rate", "NaN"], "--rate must be a number > 0"),
        (vec!["check-rate", "--duration", "0"], "--duration"),
        (vec!["check-rate", "--shards", "0"], "--shards must be between 1 and 1024"),
        (vec!["check-rate", "--warmup=-1"], "--warmup"),
        (vec!["check-rate", "--p99-bound-us", "0"], "--p99-bound-us"),
        (vec!["check-rate", "--scenario", "nope"], "invalid value 'nope'"),
        (vec!["check-rate", "--arrivals", "bursty"], "invalid value 'bursty'"),
        (vec!["check-rate", "--definition", b], "is not a valid definition"),
        (vec!["check-rate", "--definition", b], "/States/A/Next"),
        (vec!["check-rate", "--definition", n], "is not a valid definition"),
        (vec!["check-rate", "--scenario", "pass4", "--input", i], "is not valid"),
        (vec!["check-rate", "--scenario", "mixed", "--definition", b], "replace a single workflow"),
        (vec!["check-rate", "--mocks", "/nonexistent/mocks.json"], "cannot read /nonexistent/mocks.json"),
        (vec!["check-cap", "--per-group", "0"], "--per-group"),
        (vec!["check-cap", "--waves", "0"], "--waves"),
        (vec!["sweep", "--factor", "1"], "--factor must be a number > 1"),
        (vec!["sweep", "--from", "5000", "--max-rate", "1000"], "is above --max-rate"),
        (vec!["sweep", "--shards", "0"], "--shards must be between 1 and 1024"),
        (vec!["sweep", "--min-point-starts", "0"], "--min-point-starts must be a number > 0"),
    ];
    for (args, message) in cases {
        let out = loadgen(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
