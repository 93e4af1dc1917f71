//! Runs the recorded Choice executions (`tests/conformance/cases/choice_operators__*` and the
//! JSONPath `choice__*` cases) through `sfn::choice` alone: compile the rules, evaluate them
//! against the case input, and check that the branch taken is the one AWS took. Also
//! compiles every JSONPath Choice rule found anywhere in the corpus, which must compile
//! without a diagnostic.

use std::path::{Path, PathBuf};

use bumpalo::Bump;
use serde_json::Value as Json;
use sfn::choice::Rule;
use sfn::diag::{pointer_push, Diagnostics};
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::value::Value;

fn cases(prefix: &str) -> Vec<(PathBuf, Json)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("conformance cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let case = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, case)
        })
        .collect()
}

fn name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

fn compile(rule: &Json, pointer: &str, names: &mut Interner) -> Rule {
    let mut diags = Diagnostics::new();
    let compiled = Rule::compile(rule, pointer, false, names, &mut diags);
    assert!(diags.is_empty(), "{pointer}: {:?}", diags.items);
    compiled.expect("a rule without diagnostics")
}

#[test]
fn every_choice_operator_case_takes_the_branch_aws_took() {
    let cases = cases("choice_operators__");
    assert_eq!(cases.len(), 330, "the recorded corpus has 330 choice_operators cases");
    let mut failures = Vec::new();
    for (path, case) in &cases {
        let states = case["definition"]["States"].as_object().unwrap();
        let (state_name, choice) = states.iter().find(|(_, s)| s["Type"] == "Choice").unwrap();
        let rules = choice["Choices"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{}", name(path));
        assert_eq!(rules[0]["Next"], "ConditionTrue", "{}", name(path));
        assert_eq!(choice["Default"], "ConditionFalse", "{}", name(path));

        let mut names = Interner::new();
        let pointer = pointer_push(&pointer_push("/States", state_name), "Choices") + "/0";
        let rule = compile(&rules[0], &pointer, &mut names);

        let bump = Bump::new();
        let input = Value::from_serde(&bump, &case["input"]);
        let taken = match rule.eval(&StaticEnv::new(&bump, input)) {
            Ok(true) => "ConditionTrue",
            Ok(false) => "ConditionFalse",
            Err(e) => {
                failures.push(format!("{}: unexpected error {e}", name(path)));
                continue;
            }
        };
        let expected = &case["expected"];
        assert_eq!(expected["status"], "SUCCEEDED", "{}", name(path));
        let aws_took = expected["output"]["TestResult.$"].as_str().unwrap();
        if taken != aws_took {
            failures.push(format!("{}: took {taken}, AWS took {aws_took} ({rule})", name(path)));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases disagree:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// What a JSONPath `choice__*` case does after its first (Choice) state: these are all
/// Pass states without fields (output = input) or Fail states.
#[test]
fn jsonpath_choice_scenarios_end_as_aws_recorded() {
    let mut checked = 0;
    for (path, case) in cases("choice__") {
        let definition = &case["definition"];
        let states = definition["States"].as_object().unwrap();
        let start = definition["StartAt"].as_str().unwrap();
        let choice = &states[start];
        let mode = choice.get("QueryLanguage").or(definition.get("QueryLanguage"));
        if mode.and_then(Json::as_str) == Some("JSONata") {
            continue;
        }
        assert_eq!(choice["Type"], "Choice", "{}", name(&path));

        let mut names = Interner::new();
        let bump = Bump::new();
        let input = Value::from_serde(&bump, &case["input"]);
        let env = StaticEnv::new(&bump, input);
        let mut next = choice.get("Default").and_then(Json::as_str);
        for (i, rule) in choice["Choices"].as_array().unwrap().iter().enumerate() {
            let pointer = format!("/States/{start}/Choices/{i}");
            if compile(rule, &pointer, &mut names).eval(&env).unwrap() {
                next = rule["Next"].as_str();
                break;
            }
        }
        let expected = &case["expected"];
        match next.map(|n| &states[n]) {
            Some(state) if state["Type"] == "Pass" => {
                assert_eq!(state.as_object().unwrap().len(), 2, "{}: plain Pass states only", name(&path));
                assert_eq!(expected["status"], "SUCCEEDED", "{}", name(&path));
                assert_eq!(expected["output"], case["input"], "{}", name(&path));
            }
            Some(state) if state["Type"] == "Fail" => {
                assert_eq!(expected["status"], "FAILED", "{}", name(&path));
            }
            other => panic!("{}: unexpected next state {other:?}", name(&path)),
        }
        checked += 1;
    }
    assert_eq!(checked, 4, "number of JSONPath choice__ cases changed");
}

/// Every JSONPath Choice rule in the corpus (Map break conditions, variables, ...)
/// compiles cleanly, and prints back to JSON that compiles to the same rule.
#[test]
fn every_jsonpath_choice_rule_in_the_corpus_compiles() {
    fn walk(states: &Json, pointer: &str, mode: &str, found: &mut Vec<(String, Json)>) {
        for (name, state) in states.as_object().into_iter().flatten() {
            let at = pointer_push(pointer, name);
            let mode = state.get("QueryLanguage").and_then(Json::as_str).unwrap_or(mode);
            if state["Type"] == "Choice" && mode == "JSONPath" {
                for (i, rule) in state["Choices"].as_array().into_iter().flatten().enumerate() {
                    found.push((format!("{at}/Choices/{i}"), rule.clone()));
                }
            }
            for (i, branch) in state["Branches"].as_array().into_iter().flatten().enumerate() {
                walk(&branch["States"], &format!("{at}/Branches/{i}/States"), mode, found);
            }
            for key in ["Iterator", "ItemProcessor"] {
                walk(&state[key]["States"], &format!("{at}/{key}/States"), mode, found);
            }
        }
    }
    let mut count = 0;
    for (path, case) in cases("") {
        let definition = &case["definition"];
        let mode = definition.get("QueryLanguage").and_then(Json::as_str).unwrap_or("JSONPath");
        let mut found = Vec::new();
        walk(&definition["States"], "/States", mode, &mut found);
        for (pointer, rule) in found {
            let mut names = Interner::new();
            let compiled = compile(&rule, &pointer, &mut names);
            let printed: Json = serde_json::from_str(&compiled.to_string()).unwrap();
            assert_eq!(compile(&printed, &pointer, &mut names), compiled, "{}{pointer}", name(&path));
            count += 1;
        }
    }
    assert!(count >= 340, "only {count} rules found");
}
