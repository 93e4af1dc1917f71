//! The conformance corpus (recorded against AWS) seen from `paths` alone: every JSONPath in
//! a JSONPath-mode definition parses; the `jsonpath__*` cases' Pass-state parameters select
//! what AWS output; and the path failures AWS recorded carry Jayway's message as the cause
//! ends with it (the VM adds the "An error occurred while executing the state" prefix).

use std::path::PathBuf;

use bumpalo::Bump;
use serde_json::Value as Json;
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::paths::{Path, ReferencePath};
use sfn::value::Value;

fn cases() -> Vec<Json> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("conformance cases") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("case file");
            out.push(serde_json::from_str(&text).expect("case JSON"));
        }
    }
    assert!(out.len() > 600, "expected the whole corpus, found {}", out.len());
    out
}

/// Every `(field, path)` in JSONPath-mode parts of a definition.
fn paths_in(v: &Json, jsonata: bool, out: &mut Vec<(String, String)>) {
    match v {
        Json::Object(map) => {
            let jsonata = match map.get("QueryLanguage").and_then(Json::as_str) {
                Some(lang) => lang == "JSONata",
                None => jsonata,
            };
            for (k, x) in map {
                if let (Json::String(s), false) = (x, jsonata) {
                    let is_path_field = k.ends_with(".$") || k.ends_with("Path") || k == "Variable";
                    if is_path_field && s.starts_with('$') {
                        out.push((k.clone(), s.clone()));
                    }
                }
                paths_in(x, jsonata, out);
            }
        }
        Json::Array(items) => items.iter().for_each(|x| paths_in(x, jsonata, out)),
        _ => {}
    }
}

#[test]
fn every_corpus_path_parses() {
    let mut count = 0;
    for case in cases() {
        let mut found = Vec::new();
        paths_in(&case["definition"], false, &mut found);
        for (field, path) in found {
            count += 1;
            if field == "ResultPath" {
                ReferencePath::parse(&path).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
            } else {
                Path::parse(&path, &mut Interner::new()).unwrap_or_else(|e| panic!("{}: {e}", case["name"]));
            }
        }
    }
    assert!(count > 500, "only {count} paths found");
}

fn eval(path: &str, doc: &Json) -> Result<Json, String> {
    let bump = Bump::new();
    let env = StaticEnv::new(&bump, Value::from_serde(&bump, doc));
    let p = Path::parse(path, &mut Interner::new()).map_err(|e| e.to_string())?;
    p.eval(&env).map(|v| v.to_serde()).map_err(|e| e.message)
}

#[test]
fn jsonpath_cases_select_what_aws_output() {
    let mut checked = 0;
    for case in cases() {
        let name = case["name"].as_str().unwrap_or_default();
        if !name.starts_with("jsonpath__") {
            continue;
        }
        let def = &case["definition"];
        let start = def["StartAt"].as_str().unwrap_or_default();
        let params = def["States"][start]["Parameters"].as_object().expect("Parameters");
        let mut output = serde_json::Map::new();
        for (k, v) in params {
            let key = k.strip_suffix(".$").expect("only .$ fields in these cases");
            let path = v.as_str().expect("path");
            output.insert(key.to_owned(), eval(path, &case["input"]).unwrap_or_else(|e| panic!("{name}: {e}")));
        }
        assert_eq!(Json::Object(output), case["expected"]["output"], "{name}");
        checked += 1;
    }
    assert_eq!(checked, 11);
}

#[test]
fn recorded_path_failures_carry_jayways_messages() {
    for case in cases() {
        let name = case["name"].as_str().unwrap_or_default();
        let def = &case["definition"];
        let (doc, field) = match name {
            "error_handling__invalid_jsonpath__st_invalid_jsonpath_in_inputpath" => (&case["input"], "InputPath"),
            "error_handling__invalid_jsonpath__st_invalid_jsonpath_in_outputpath" => (&case["input"], "OutputPath"),
            // OutputPath applies to the Lambda's result, replayed by the mock.
            "error_handling__catch_states_runtime" => (&case["mocks"]["RaiseRuntime"][0]["Return"], "OutputPath"),
            _ => continue,
        };
        let start = def["StartAt"].as_str().unwrap_or_default();
        let path = def["States"][start][field].as_str().expect("path field");
        let message = eval(path, doc).expect_err(name);
        let cause = case["expected"]["cause"].as_str().expect("cause");
        let tail = format!("Invalid path '{path}' : {message}");
        assert!(cause.ends_with(&tail), "{name}: cause {cause:?} does not end with {tail:?}");
    }
}

#[test]
fn unresolvable_template_and_fail_paths_fail() {
    for (name, state, field) in [
        ("error_handling__invalid_jsonpath__invalid_jsonpath_in_string_expr_jsonpath", "pass", "value.$"),
        ("error_handling__invalid_jsonpath__invalid_jsonpath_in_errorpath", "fail", "ErrorPath"),
        ("error_handling__invalid_jsonpath__st_invalid_jsonpath_in_causepath", "fail", "CausePath"),
    ] {
        let case = cases().into_iter().find(|c| c["name"] == name).expect(name);
        let def = &case["definition"]["States"][state];
        let path = def[field].as_str().or_else(|| def["Parameters"][field].as_str()).expect("path");
        // The Fail state's input is the Pass state's Parameters output.
        let doc = if state == "fail" {
            case["definition"]["States"]["pass"]["Parameters"].clone()
        } else {
            case["input"].clone()
        };
        assert!(eval(path, &doc).is_err(), "{name}: {path} should not resolve");
    }
}
