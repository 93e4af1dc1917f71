//! The `sfn` binary's contract: what `run`, `validate` and `compile` print and their exit
//! codes (0 carried out, 1 invalid definition for `validate`, 2 unusable files), and the whole
//! conformance corpus through `tests/conformance/check.py` against the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sfn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfn")).args(args).current_dir(repo()).output().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfn-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn run_prints_one_json_object_with_the_final_status() {
    let o = sfn(&[
        "run",
        "examples/rider-photo.express.asl.json",
        "--input",
        "examples/rider-photo.input.json",
        "--mocks",
        "examples/rider-photo.mocks.json",
        "--test-case",
        "NoFace",
        "--type",
        "express",
    ]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v, serde_json::json!({"status": "SUCCEEDED", "output": {"notified": true}}));

    let def = tmp("fail.json", r#"{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"E","Cause":"c"}}}"#);
    let o = sfn(&["run", def.to_str().unwrap()]);
    assert!(o.status.success(), "a FAILED execution is still a run carried out");
    assert_eq!(stdout(&o).trim(), r#"{"status":"FAILED","error":"E","cause":"c"}"#);

    let input = tmp("in.json", r#"{"a": 1}"#);
    let def = tmp("pass.json", r#"{"StartAt":"P","States":{"P":{"Type":"Wait","Seconds":3600,"End":true}}}"#);
    let o = sfn(&["run", def.to_str().unwrap(), "--input", input.to_str().unwrap(), "--wait-scale", "0"]);
    assert_eq!(stdout(&o).trim(), r#"{"status":"SUCCEEDED","output":{"a":1}}"#, "--wait-scale 0 skips the hour");
}

#[test]
fn unusable_files_exit_2_with_a_message() {
    let o = sfn(&["run", "no/such/file.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read no/such/file.json"));

    let def = tmp("bad.json", r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#);
    let o = sfn(&["run", def.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/States/A/Next") && err.contains("'B' is not a state"), "{err}");

    let ok = tmp("ok.json", r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}"#);
    let input = tmp("badinput.json", "{\"a\": [1, 2}");
    let o = sfn(&["run", ok.to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at byte 11"), "{o:?}");
}

#[test]
fn validate_reports_every_problem_and_exits_1() {
    let def = tmp(
        "invalid.json",
        r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Result": 1, "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL", "X"], "BackoffRate": 0.5}]}, "Lonely": {"Type": "Succeed"}}}"#,
    );
    let o = sfn(&["validate", def.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["result"], "FAIL");
    let locations: Vec<&str> =
        v["diagnostics"].as_array().unwrap().iter().map(|d| d["location"].as_str().unwrap()).collect();
    for want in ["/States/A/Result", "/States/A/Retry/0/ErrorEquals", "/States/A/Retry/0/BackoffRate", "/States/Lonely"]
    {
        assert!(locations.contains(&want), "missing {want} in {locations:?}");
    }
    let o = sfn(&["validate", "examples/selective-checkpointing.standard.asl.json"]);
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn jsonata_definitions_validate_and_run() {
    let o = sfn(&["validate", "examples/rider-photo-jsonata.express.asl.json", "--type", "express"]);
    assert!(o.status.success(), "{o:?}");
    let o = sfn(&[
        "run",
        "examples/rider-photo-jsonata.express.asl.json",
        "--input",
        "examples/rider-photo.input.json",
        "--mocks",
        "examples/rider-photo.mocks.json",
        "--test-case",
        "NoFace",
        "--type",
        "express",
    ]);
    assert_eq!(stdout(&o).trim(), r#"{"status":"SUCCEEDED","output":{"notified":true}}"#, "{o:?}");

    let def = tmp(
        "bad-jsonata.json",
        r#"{"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Output": "{% $states.input.( %}", "ResultPath": "$.x", "End": true}}}"#,
    );
    let o = sfn(&["validate", def.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let found: Vec<(&str, &str)> = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["code"].as_str().unwrap(), d["location"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [("FIELD_NOT_ALLOWED_IN_QUERY_LANGUAGE", "/States/A/ResultPath"), ("INVALID_JSONATA", "/States/A/Output")]
    );
}

#[test]
fn compile_disassembles() {
    let o = sfn(&["compile", "--disassemble", "tests/golden/pass4.asl.json"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), std::fs::read_to_string(repo().join("tests/golden/pass4.disasm")).unwrap());
}

/// The corpus through the binary, as users run it. The binary runs Standard semantics by
/// default (check.py does not pass the machine type), so the one Express case that checks
/// the express execution ARN can only pass in-process (engine/tests/suite/conformance.rs).
#[test]
fn check_py_against_the_binary_agrees_with_the_known_failures() {
    let report = std::env::temp_dir().join(format!("sfn-check-{}.json", std::process::id()));
    let engine = format!("{} run --wait-scale 0", env!("CARGO_BIN_EXE_sfn"));
    let status = Command::new("python3")
        .args(["tests/conformance/check.py", "--engine", &engine, "--jobs", "2", "--json"])
        .arg(&report)
        .arg("tests/conformance/cases")
        .current_dir(repo())
        .output()
        .expect("python3 is needed to run check.py");
    let summary = String::from_utf8_lossy(&status.stdout);
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let failed: std::collections::BTreeSet<String> = results
        .as_array()
        .or_else(|| results["results"].as_array())
        .expect("check.py --json report")
        .iter()
        .filter(|r| r["passed"] != true)
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    let known: std::collections::BTreeSet<String> =
        std::fs::read_to_string(repo().join("tests/conformance/known-failures.txt"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .chain(["express__query_runtime_memory".to_owned()])
            .collect();
    assert_eq!(failed, known, "check.py summary:\n{}", summary.lines().last().unwrap_or(""));
}
