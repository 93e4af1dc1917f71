//! Runs every recorded-against-AWS conformance case in `tests/conformance/cases/` through the
//! engine in-process (on virtual time, so Waits and retry back-off cost nothing) and compares
//! with AWS's recorded result, using the rules of `tests/conformance/check.py`.
//!
//! `tests/conformance/known-failures.txt` lists the cases not passed yet, each with its
//! reason. The test fails when an unlisted case fails, and when a listed case passes (so the
//! list stays true). `UPDATE_KNOWN_FAILURES=1` rewrites the list from the current failures,
//! keeping the reasons already written for cases that still fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sfn::clock::ManualClock;
use sfn::compile::Bindings;
use sfn::local::{run_to_completion, RunOptions, RunResult, Status};
use sfn::mocks::parse_mocks;
use sfn::validate::MachineType;
use sfn::vm::ExecMeta;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

/// Runs one case; `Err` is the reason it does not match AWS.
fn run_case(case: &Json) -> Result<(), String> {
    let machine_type = match case["state_machine_type"].as_str() {
        Some("EXPRESS") => MachineType::Express,
        _ => MachineType::Standard,
    };
    let definition = serde_json::to_vec(&case["definition"]).unwrap();
    let input = serde_json::to_vec(case.get("input").unwrap_or(&Json::Object(Default::default()))).unwrap();
    let mocks = match case.get("mocks") {
        Some(m) => Some(parse_mocks(m, None, None).map_err(|e| format!("mocks: {e}"))?),
        None => None,
    };
    let prog =
        sfn::load(&definition, machine_type, Bindings { handlers: None, mocks: mocks.as_ref() }).map_err(|d| {
            format!("definition rejected: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))
        })?;
    let clock = ManualClock::fixed();
    let meta = ExecMeta::local(
        "ConformanceMachine",
        "0f1e2d3c-4b5a-4697-8877-665544332211",
        machine_type,
        sfn::clock::Clock::now(&clock),
    );
    let result = run_to_completion(&prog, &input, &RunOptions { clock: &clock, meta, seed: 7 })
        .map_err(|e| format!("input: {e}"))?;
    compare(case, &result)
}

fn compare(case: &Json, result: &RunResult) -> Result<(), String> {
    let exp = &case["expected"];
    let rules = case.get("compare").cloned().unwrap_or(Json::Null);
    let status = result.status.as_str();
    if exp["status"].as_str() != Some(status) {
        let extra = if result.status != Status::Succeeded {
            format!(" (error={:?}, cause={:?})", result.error, result.cause.as_deref().map(|c| short(c, 300)))
        } else {
            String::new()
        };
        return Err(format!("status: expected {}, got {status}{extra}", exp["status"]));
    }
    if status == "SUCCEEDED" {
        if let Some(expected) = exp.get("output") {
            let mut expected = expected.clone();
            let mut actual: Json = serde_json::from_str(result.output.as_deref().unwrap_or("null")).unwrap();
            let sentinel = serde_json::json!({"__ignored__": true});
            if let Some(paths) = rules.get("ignore_paths").and_then(Json::as_array) {
                for p in paths {
                    let p = p.as_str().unwrap();
                    match actual.pointer_mut(p) {
                        Some(v) => *v = sentinel.clone(),
                        None => return Err(format!("output{p}: path missing (value is not compared, but must exist)")),
                    }
                    if let Some(v) = expected.pointer_mut(p) {
                        *v = sentinel.clone();
                    }
                }
            }
            if let Some(patterns) = rules.get("string_patterns").and_then(Json::as_object) {
                for (p, pattern) in patterns {
                    let re = regex::Regex::new(&format!("(?s)^(?:{})$", pattern.as_str().unwrap())).unwrap();
                    match actual.pointer_mut(p) {
                        Some(Json::String(s)) if re.is_match(s) => *actual.pointer_mut(p).unwrap() = sentinel.clone(),
                        Some(v) => return Err(format!("output{p}: {v} does not match /{pattern}/")),
                        None => return Err(format!("output{p}: path missing")),
                    }
                    if let Some(v) = expected.pointer_mut(p) {
                        *v = sentinel.clone();
                    }
                }
            }
            json_diff(&expected, &actual, "").map_err(|d| format!("output{d}"))?;
        }
    } else {
        if let Some(e) = exp.get("error") {
            if e.as_str() != result.error.as_deref() {
                return Err(format!("error: expected {e}, got {:?}", result.error));
            }
        }
        if let Some(want) = exp.get("cause") {
            let got = result.cause.as_deref();
            match want {
                Json::Null if got.is_some() => {
                    return Err(format!("cause: AWS reported no cause, got {:?}", got.map(|c| short(c, 200))))
                }
                Json::Null => {}
                Json::String(w) if Some(w.as_str()) != got => {
                    return Err(format!("cause: expected {:?}, got {:?}", short(w, 300), got.map(|c| short(c, 300))))
                }
                Json::String(_) => {}
                doc => {
                    let parsed: Json = got
                        .and_then(|g| serde_json::from_str(g).ok())
                        .ok_or_else(|| format!("cause: expected a JSON document, got {got:?}"))?;
                    json_diff(doc, &parsed, "").map_err(|d| format!("cause (as JSON){d}"))?;
                }
            }
        }
        if let Some(pattern) = rules.get("cause_pattern").and_then(Json::as_str) {
            let re = regex::Regex::new(&format!("(?s)^(?:{pattern})$")).unwrap();
            match result.cause.as_deref() {
                Some(c) if re.is_match(c) => {}
                other => return Err(format!("cause: {:?} does not match /{pattern}/", other.map(|c| short(c, 300)))),
            }
        }
    }
    Ok(())
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n).collect::<String>() + "..."
    }
}

/// JSON equality as check.py defines it: numbers by value, objects by key set.
fn json_diff(a: &Json, b: &Json, at: &str) -> Result<(), String> {
    let here = if at.is_empty() { "/" } else { at };
    match (a, b) {
        (Json::Number(x), Json::Number(y)) if x.as_f64() == y.as_f64() => Ok(()),
        (Json::Array(x), Json::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{here}: array length expected {}, got {}", x.len(), y.len()));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(p, q, &format!("{at}/{i}"))?;
            }
            Ok(())
        }
        (Json::Object(x), Json::Object(y)) => {
            let missing: Vec<_> = x.keys().filter(|k| !y.contains_key(*k)).collect();
            let extra: Vec<_> = y.keys().filter(|k| !x.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!("{here}: keys differ (missing {missing:?}, unexpected {extra:?})"));
            }
            for (k, v) in x {
                json_diff(v, &y[k], &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")))?;
            }
            Ok(())
        }
        (x, y) if x == y => Ok(()),
        (x, y) => Err(format!("{here}: expected {}, got {}", short(&x.to_string(), 200), short(&y.to_string(), 200))),
    }
}

fn known_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("known-failures.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((name, reason)) => (name.to_owned(), reason.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

#[test]
fn conformance_cases_match_aws() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("cases")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let known = known_failures();
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let (mut jsonpath_total, mut jsonpath_passed) = (0, 0);
    for path in &files {
        let case: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap().to_owned();
        let jsonata = case["features"].as_array().is_some_and(|f| f.iter().any(|x| x == "JSONata"));
        let outcome = std::panic::catch_unwind(|| run_case(&case)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("PANIC: {msg}"))
        });
        if !jsonata {
            jsonpath_total += 1;
        }
        match outcome {
            Ok(()) => {
                if !jsonata {
                    jsonpath_passed += 1;
                }
            }
            Err(reason) => {
                failures.insert(name, reason);
            }
        }
    }
    let passed = files.len() - failures.len();
    println!(
        "conformance: {passed}/{} passed; JSONPath-mode cases {jsonpath_passed}/{jsonpath_total} ({:.1}%)",
        files.len(),
        100.0 * jsonpath_passed as f64 / jsonpath_total as f64
    );
    if std::env::var_os("UPDATE_KNOWN_FAILURES").is_some() {
        let mut text = String::from(
            "# Conformance cases the engine does not pass yet, one per line: case name, then the reason.\n\
             # Checked by engine/tests/suite/conformance.rs: an unlisted failure or a listed pass fails the test.\n",
        );
        for (name, reason) in &failures {
            let reason = known.get(name).cloned().unwrap_or_else(|| reason.replace('\n', " "));
            text.push_str(&format!("{name}  {reason}\n"));
        }
        std::fs::write(root().join("known-failures.txt"), text).unwrap();
        return;
    }
    let unexpected: Vec<_> = failures.iter().filter(|(n, _)| !known.contains_key(*n)).collect();
    let now_passing: Vec<_> = known.keys().filter(|n| !failures.contains_key(*n)).collect();
    for (n, r) in &unexpected {
        println!("FAIL {n}: {r}");
    }
    for n in &now_passing {
        println!("NOW PASSING (remove from known-failures.txt): {n}");
    }
    assert!(
        unexpected.is_empty() && now_passing.is_empty(),
        "{} unexpected failures, {} listed cases now pass",
        unexpected.len(),
        now_passing.len()
    );
}
