//! Execution history and log records against AWS's recordings.
//!
//! Each file in `tests/history/` (see its README for provenance) names a definition — a
//! conformance case's, or its own — and the events AWS recorded for it: type, id,
//! `previousEventId` and details, as LocalStack's snapshots hold them. The VM runs the
//! definition with recording on; its events, written by `history::write_details`, must
//! match (timestamps aside). Files with `log` compare `logs::write_record` lines with the
//! CloudWatch records AWS wrote at a log level. Every conformance case also runs with
//! recording on, to check that ids are dense, each `previousEventId` points back, and
//! writing every event never panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bumpalo::Bump;
use serde_json::Value as Json;
use sfn::clock::{Clock, ManualClock, NANOS_PER_SEC};
use sfn::compile::Bindings;
use sfn::handlers::{Handler, Registry};
use sfn::history::{write_details, write_history_event, EventMask, HistoryEvent};
use sfn::logs::{write_record, LogLevel};
use sfn::mocks::parse_mocks;
use sfn::program::Program;
use sfn::validate::MachineType;
use sfn::value::parse_json;
use sfn::vm::{Exec, ExecInfo};

const EXECUTION_ARN: &str = "arn:aws:states:us-east-1:111111111111:execution:HistoryMachine:history-execution";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests")
}

/// One event as the tests compare it: details as parsed JSON.
#[derive(Debug)]
struct Event {
    id: u32,
    prev: u32,
    kind: &'static str,
    details: Json,
    timestamp: i64,
}

/// A snapshot's string that holds a JSON object or array compares as the parsed document
/// (LocalStack's snapshots parse such strings; AWS's own text may differ in spacing).
fn normalise(v: &mut Json) {
    match v {
        Json::String(s) => {
            let t = s.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                if let Ok(parsed) = serde_json::from_str::<Json>(s) {
                    *v = parsed;
                    normalise(v);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalise),
        Json::Object(members) => members.values_mut().for_each(normalise),
        _ => {}
    }
}

struct Setup {
    input: Vec<u8>,
    prog: Program,
    clock: Arc<ManualClock>,
}

fn setup(file: &Json) -> Result<Setup, String> {
    let case = match file.get("case").and_then(Json::as_str) {
        Some(name) => {
            let path = root().join("conformance/cases").join(format!("{name}.json"));
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
        }
        None => file.clone(),
    };
    let definition = serde_json::to_vec(&case["definition"]).unwrap();
    let input = serde_json::to_vec(case.get("input").unwrap_or(&Json::Object(Default::default()))).unwrap();
    let clock = Arc::new(ManualClock::fixed());
    let mut registry = Registry::new();
    // A task that answers after `seconds` of (virtual) time: AWS's timeouts, reproduced.
    let slow = file.get("slow_task");
    if let Some(slow) = slow {
        let seconds = slow["seconds"].as_i64().unwrap();
        let c = clock.clone();
        registry.register(
            slow["resource"].as_str().unwrap(),
            Handler::sync_json(move |_, _| {
                c.advance(seconds * NANOS_PER_SEC);
                Ok(Json::Object(Default::default()))
            }),
        );
    }
    let mocks = match (slow, case.get("mocks")) {
        (None, Some(m)) if !m.is_null() => Some(parse_mocks(m, None, None)?),
        _ => None,
    };
    let prog =
        sfn::load(&definition, MachineType::Standard, Bindings { handlers: Some(&registry), mocks: mocks.as_ref() })
            .map_err(|d| format!("definition rejected: {d:?}"))?;
    Ok(Setup { input, prog, clock })
}

/// Runs the program with `mask` recorded; returns the events with their details written
/// with and without execution data, and the number of events counted.
fn record(s: &Setup, mask: EventMask, include_data: bool, mut log: impl FnMut(&HistoryEvent<'_>)) -> (Vec<Event>, u32) {
    let bump = Bump::new();
    let input = parse_json(&bump, &s.input).unwrap();
    let meta = ExecInfo {
        execution_arn: EXECUTION_ARN,
        name: "history-execution",
        state_machine_arn: "arn:aws:states:us-east-1:111111111111:stateMachine:HistoryMachine",
        state_machine_name: "HistoryMachine",
        role_arn: "snf_role_arn",
        start_time: s.clock.now(),
        redrive_count: 0,
    };
    let mut exec = Exec::start(&s.prog, &bump, input, meta, 7);
    exec.record_events(mask);
    let mut events = Vec::new();
    let mut collect = |exec: &mut Exec<'_>| {
        exec.drain_events(|ev| {
            log(ev);
            let mut out = Vec::new();
            write_details(ev, include_data, &mut out);
            let mut details: Json = serde_json::from_slice(&out).expect("details are JSON");
            normalise(&mut details);
            events.push(Event {
                id: ev.id,
                prev: ev.previous_event_id,
                kind: ev.kind.as_str(),
                details,
                timestamp: ev.timestamp,
            });
        })
    };
    // The local driver, a turn at a time, draining after each (as the executor does).
    loop {
        match exec.run(&*s.clock, 1) {
            sfn::vm::Poll::Finished => break,
            sfn::vm::Poll::Yielded => {}
            sfn::vm::Poll::Blocked { wake_at } => {
                let calls = exec.take_async_calls();
                assert!(calls.is_empty(), "history cases use inline handlers and mocks only");
                s.clock.sleep_until(wake_at.expect("no callbacks in history cases"));
            }
        }
        collect(&mut exec);
    }
    collect(&mut exec);
    (events, exec.event_count())
}

fn expected_events(file: &Json) -> Vec<Json> {
    let mut events = file["events"].as_array().unwrap().clone();
    events.iter_mut().for_each(normalise);
    events
}

fn describe(e: &Event) -> String {
    format!("#{} (prev {}) {} {}", e.id, e.prev, e.kind, e.details)
}

/// Compares events with a recording. Events LocalStack masked (`"id": [0]`: a Parallel's
/// branches, whose interleaving AWS does not fix) compare as a set, by type and details.
fn compare(expected: &[Json], got: &[Event]) -> Result<(), String> {
    if expected.len() != got.len() {
        let list: Vec<_> = got.iter().map(describe).collect();
        return Err(format!("expected {} events, got {}:\n  {}", expected.len(), got.len(), list.join("\n  ")));
    }
    let mut i = 0;
    while i < expected.len() {
        if expected[i]["id"].is_array() {
            let end = (i..expected.len()).find(|&k| !expected[k]["id"].is_array()).unwrap_or(expected.len());
            let mut have: Vec<&Event> = got[i..end].iter().collect();
            for e in &expected[i..end] {
                match have.iter().position(|g| e["type"] == g.kind && e["details"] == g.details) {
                    Some(k) => {
                        have.swap_remove(k);
                    }
                    None => return Err(format!("masked events {i}..{end}: no event matches {e}")),
                }
            }
            i = end;
            continue;
        }
        let (e, g) = (&expected[i], &got[i]);
        let want = (e["id"].as_u64(), e["previousEventId"].as_u64(), e["type"].as_str());
        if want != (Some(g.id as u64), Some(g.prev as u64), Some(g.kind)) || e["details"] != g.details {
            return Err(format!("event {i}: expected {e}\n  got {}", describe(g)));
        }
        i += 1;
    }
    Ok(())
}

fn files() -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("history")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 8, "the recorded history cases are missing");
    out
}

#[test]
fn histories_match_aws_recordings() {
    let mut failures = Vec::new();
    for (name, file) in files() {
        let Some(_) = file.get("events") else { continue };
        let s = setup(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (got, counted) = record(&s, EventMask::ALL, true, |_| {});
        assert_eq!(counted as usize, got.len(), "{name}: every counted event is recorded under ALL");
        let start = s.clock.now().min(got[0].timestamp);
        assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp && w[0].timestamp >= start), "{name}");
        if let Err(e) = compare(&expected_events(&file), &got) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "histories differ from AWS's:\n{}", failures.join("\n"));
}

#[test]
fn log_records_match_aws_recordings() {
    let mut checked = 0;
    for (name, file) in files() {
        let Some(logs) = file.get("logs").and_then(Json::as_array) else { continue };
        let s = setup(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        for log in logs {
            let level = LogLevel::parse(log["level"].as_str().unwrap()).unwrap();
            let include = log["include_execution_data"].as_bool().unwrap();
            let mut lines = Vec::new();
            record(&s, level.mask(), include, |ev| {
                let mut buf = Vec::new();
                write_record(ev, EXECUTION_ARN, 0, include, &mut buf);
                lines.push(buf);
            });
            let want = log["records"].as_array().unwrap();
            assert_eq!(lines.len(), want.len(), "{name} {level:?}/{include}: {} records", lines.len());
            for (line, want) in lines.iter().zip(want) {
                let mut got: Json = serde_json::from_slice(line).unwrap();
                let ts = got["event_timestamp"].as_str().unwrap().to_owned();
                assert!(!ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()), "{name}: timestamp {ts}");
                assert_eq!(got["execution_arn"], EXECUTION_ARN);
                let mut want = want.clone();
                for k in ["event_timestamp", "execution_arn"] {
                    got[k] = Json::Null;
                    want[k] = Json::Null;
                }
                normalise(&mut got);
                normalise(&mut want);
                assert_eq!(got, want, "{name} {level:?}/{include}: {}", String::from_utf8_lossy(line));
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "log record cases are missing");
}

/// Every conformance case, recorded: ids run 1..=n with no gap, each `previousEventId`
/// points to an earlier event, and every event writes as JSON (with and without data).
#[test]
fn every_conformance_case_records_a_consistent_history() {
    let dir = root().join("conformance/cases");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let case: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if case["state_machine_type"] == "EXPRESS" {
            continue;
        }
        let file = serde_json::json!({ "case": path.file_stem().unwrap().to_str().unwrap() });
        // Definitions the engine rejects are known failures of the conformance suite.
        let Ok(s) = setup(&file) else { continue };
        let (events, counted) = record(&s, EventMask::ALL, true, |ev| {
            let mut out = Vec::new();
            write_history_event(ev, false, &mut out);
            serde_json::from_slice::<Json>(&out).expect("a history event is JSON");
        });
        assert_eq!(counted as usize, events.len(), "{}", path.display());
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.id as usize, i + 1, "{}: {}", path.display(), describe(e));
            assert!(e.prev < e.id, "{}: {}", path.display(), describe(e));
        }
        n += 1;
    }
    assert!(n > 500, "only {n} conformance cases ran");
}

/// Not in the recordings above: a state's `Assign` shows in its `…StateExited` as
/// `assignedVariables` (values as JSON strings, per AWS's API model), left out without
/// execution data; a level's mask records only its types, with the same ids.
#[test]
fn assigned_variables_and_level_filtering() {
    let file = serde_json::json!({
        "definition": {"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Assign": {"x": 1, "y.$": "$.v"}, "Next": "F"},
            "F": {"Type": "Fail", "Error": "E"}}},
        "input": {"v": {"k": "w"}}
    });
    let s = setup(&file).unwrap();
    let (all, _) = record(&s, EventMask::ALL, true, |_| {});
    let exited = &all[2];
    assert_eq!(exited.kind, "PassStateExited");
    assert_eq!(exited.details["assignedVariables"], serde_json::json!({"x": "1", "y": {"k": "w"}}));
    assert_eq!(exited.details["assignedVariablesDetails"], serde_json::json!({"truncated": false}));
    let (bare, _) = record(&s, EventMask::ALL, false, |_| {});
    assert_eq!(bare[2].details, serde_json::json!({"name": "A"}));
    let (errors, counted) = record(&s, LogLevel::Error.mask(), true, |_| {});
    let kinds: Vec<_> = errors.iter().map(|e| (e.id, e.prev, e.kind)).collect();
    assert_eq!(kinds, [(4, 3, "FailStateEntered"), (5, 4, "ExecutionFailed")]);
    assert_eq!(counted, 5);
}
