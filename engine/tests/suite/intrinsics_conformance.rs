//! Runs the function calls of the recorded intrinsic conformance cases directly.
//!
//! Every case under `tests/conformance/cases/intrinsic_*.json` whose definition is a single
//! Pass state with `Parameters: {"FunctionResult.$": "<call>"}` is evaluated against the
//! case input, without the rest of the engine, and compared with the `FunctionResult` AWS
//! recorded (respecting the case's `compare.ignore_paths` and `compare.string_patterns`);
//! a FAILED case must fail with the recorded error name. Calls that read `$$` get a
//! plausible context object. Guards the intrinsics module on its own, so a regression
//! shows here before it is tangled with paths, templates and the VM.

use std::path::PathBuf;

use bumpalo::Bump;
use serde_json::{json, Value as Json};
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::intrinsics::Call;
use sfn::value::Value;

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases")
}

/// The call of a single-Pass-state case, if the case has that shape.
fn single_call(case: &Json) -> Option<&str> {
    let states = case["definition"]["States"].as_object()?;
    if states.len() != 1 {
        return None;
    }
    let state = states.values().next()?;
    let params = state["Parameters"].as_object()?;
    if state["Type"] != "Pass" || params.len() != 1 {
        return None;
    }
    params.get("FunctionResult.$")?.as_str()
}

/// A context object shaped like AWS's (key order matters: Format prints maps in order).
fn context(input: &Json) -> Json {
    json!({
        "Execution": {
            "Id": "arn:aws:states:us-east-1:111111111111:execution:sm-name-1:exec-name-1",
            "Input": input,
            "Name": "exec-name-1",
            "RoleArn": "arn:aws:iam::111111111111:role/sfn-role",
            "StartTime": "2024-01-01T00:00:00.000Z",
            "RedriveCount": 0
        },
        "StateMachine": {
            "Id": "arn:aws:states:us-east-1:111111111111:stateMachine:sm-name-1",
            "Name": "sm-name-1"
        },
        "State": {
            "EnteredTime": "2024-01-01T00:00:00.000Z",
            "Name": "State_0",
            "RetryCount": 0
        }
    })
}

fn check_case(name: &str, case: &Json, call_text: &str) -> Result<(), String> {
    let bump = Bump::new();
    let call = Call::parse(call_text, &mut Interner::new()).map_err(|e| e.to_string())?;
    let input = &case["input"];
    let mut env = StaticEnv::new(&bump, Value::from_serde(&bump, input));
    env.context = Value::from_serde(&bump, &context(input));
    let expected = &case["expected"];
    let result = call.eval(&env);
    if expected["status"] == "FAILED" {
        let e = result.err().ok_or("expected a failure, got a value")?;
        let want = expected["error"].as_str().unwrap_or_default();
        return if e.kind.error_name() == want {
            Ok(())
        } else {
            Err(format!("error {} (want {want}): {}", e.kind.error_name(), e.message))
        };
    }
    let got = result.map_err(|e| format!("failed: {e}"))?.to_serde();
    let want = &expected["output"]["FunctionResult"];
    let compare = &case["compare"];
    let ignored = compare["ignore_paths"].as_array().is_some_and(|paths| paths.iter().any(|p| p == "/FunctionResult"));
    if let Some(pattern) = compare["string_patterns"]["/FunctionResult"].as_str() {
        let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
        let s = got.as_str().ok_or("expected a string")?;
        return if re.is_match(s) { Ok(()) } else { Err(format!("{s:?} does not match {pattern}")) };
    }
    if ignored {
        return Ok(());
    }
    let bump2 = Bump::new();
    if Value::from_serde(&bump2, &got).json_eq(&Value::from_serde(&bump2, want)) {
        Ok(())
    } else {
        Err(format!("{name}: got {got}, want {want}"))
    }
}

#[test]
fn recorded_intrinsic_cases() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("conformance cases")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("intrinsic_") && n.ends_with(".json"))
        })
        .collect();
    paths.sort();
    let mut ran = 0;
    let mut failures = Vec::new();
    for path in &paths {
        let case: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(call) = single_call(&case) else {
            continue;
        };
        ran += 1;
        if let Err(e) = check_case(&name, &case, call) {
            failures.push(format!("{name}: {call}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of {ran} cases failed:\n{}", failures.len(), failures.join("\n"));
    // The corpus holds 89 such cases; a much smaller count means the filter broke.
    assert!(ran >= 80, "only {ran} cases ran");
}
