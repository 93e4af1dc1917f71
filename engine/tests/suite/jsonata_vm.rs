//! JSONata-mode states on the VM, on virtual time: the order of `Output` and `Assign`,
//! `$states.result`/`$states.errorOutput`, variable scopes of Parallel branches, Map
//! `Items`/`ItemSelector`, expressions in `Seconds`, constant and expression `Condition`s,
//! AWS's variable size limit, and `$millis()`/`$random()` drawn from the engine's clock
//! and seed. (The conformance cases recorded against AWS cover the rest.)

use serde_json::{json, Value as Json};
use sfn::clock::{Clock, ManualClock, NANOS_PER_SEC};
use sfn::compile::Bindings;
use sfn::handlers::{Handler, Registry, TaskError};
use sfn::local::{run_to_completion, RunOptions, RunResult, Status};
use sfn::validate::MachineType;
use sfn::vm::ExecMeta;

const OK: &str = "arn:aws:lambda:us-east-1:123456789012:function:ok";
const BOOM: &str = "arn:aws:lambda:us-east-1:123456789012:function:boom";

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(OK, Handler::sync_json(|_, input| Ok(json!({"v": 5, "got": input}))));
    r.register(BOOM, Handler::sync_json(|_, _| Err(TaskError::new("Boom", "it broke"))));
    r
}

fn run_seeded(def: &Json, input: &Json, clock: &ManualClock, seed: u64) -> RunResult {
    let text = serde_json::to_vec(def).unwrap();
    let reg = registry();
    let prog = sfn::load(&text, MachineType::Standard, Bindings { handlers: Some(&reg), mocks: None })
        .unwrap_or_else(|d| panic!("invalid test definition: {d:?}"));
    let meta = ExecMeta::local("M", "e", MachineType::Standard, clock.now());
    run_to_completion(&prog, &serde_json::to_vec(input).unwrap(), &RunOptions { clock, meta, seed }).unwrap()
}

fn run(def: &Json, input: &Json) -> RunResult {
    run_seeded(def, input, &ManualClock::fixed(), 1)
}

fn output(r: &RunResult) -> Json {
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    serde_json::from_str(r.output.as_deref().unwrap()).unwrap()
}

#[test]
fn output_sees_variables_as_of_state_entry_and_both_see_the_result() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"x": 1}, "Next": "T"},
        "T": {"Type": "Task", "Resource": OK, "Arguments": {"a": "{% $states.input.a %}"},
              "Output": "{% {'x': $x, 'r': $states.result.v, 'sent': $states.result.got} %}",
              "Assign": {"x": "{% $states.result.v %}", "y": "{% $x + 100 %}"}, "Next": "Check"},
        "Check": {"Type": "Pass", "Output": "{% {'prev': $states.input, 'x': $x, 'y': $y} %}", "End": true}
    }});
    assert_eq!(
        output(&run(&def, &json!({"a": 7, "b": 8}))),
        json!({"prev": {"x": 1, "r": 5, "sent": {"a": 7}}, "x": 5, "y": 101})
    );
}

#[test]
fn catcher_output_and_assign_read_the_error_output() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": BOOM, "End": true, "Catch": [{
            "ErrorEquals": ["States.ALL"], "Next": "After",
            "Output": "{% {'caught': $states.errorOutput.Error, 'in': $states.input.a} %}",
            "Assign": {"cause": "{% $states.errorOutput.Cause %}"}
        }]},
        "After": {"Type": "Pass", "Output": "{% {'o': $states.input, 'cause': $cause} %}", "End": true}
    }});
    assert_eq!(output(&run(&def, &json!({"a": 1}))), json!({"o": {"caught": "Boom", "in": 1}, "cause": "it broke"}));

    // Without Output a catcher passes the error output on, as AWS does.
    let mut plain = def.clone();
    plain["States"]["T"]["Catch"][0].as_object_mut().unwrap().remove("Output");
    plain["States"]["After"]["Output"] = json!("{% $states.input %}");
    assert_eq!(output(&run(&plain, &json!({"a": 1}))), json!({"Error": "Boom", "Cause": "it broke"}));
}

#[test]
fn parallel_branches_read_outer_variables_and_keep_their_own() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"v": "outer"}, "Next": "Par"},
        "Par": {"Type": "Parallel", "Next": "After",
            "Output": "{% {'branches': $states.result, 'v': $v} %}",
            "Branches": [
                {"StartAt": "B1", "States": {
                    "B1": {"Type": "Pass", "Assign": {"v": "inner"}, "Output": "{% $v %}", "Next": "B2"},
                    "B2": {"Type": "Pass", "Output": "{% [$states.input, $v] %}", "End": true}}},
                {"StartAt": "C1", "States": {"C1": {"Type": "Pass", "Output": "{% $v %}", "End": true}}}
            ]},
        "After": {"Type": "Pass", "Output": "{% [$states.input, $v] %}", "End": true}
    }});
    assert_eq!(
        output(&run(&def, &json!({}))),
        json!([{"branches": [["outer", "inner"], "outer"], "v": "outer"}, "outer"])
    );
}

#[test]
fn map_items_and_item_selector_read_the_map_context() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "M", "States": {
        "M": {"Type": "Map", "Items": "{% $states.input.xs %}", "End": true,
            "ItemSelector": {"v": "{% $states.context.Map.Item.Value * 10 %}", "i": "{% $states.context.Map.Item.Index %}",
                             "tag": "{% $states.input.tag %}"},
            "MaxConcurrency": "{% $states.input.mc %}",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}
    }});
    assert_eq!(
        output(&run(&def, &json!({"xs": [1, 2], "tag": "t", "mc": 1}))),
        json!([{"v": 10, "i": 0, "tag": "t"}, {"v": 20, "i": 1, "tag": "t"}])
    );
    // A literal Items array may hold expressions.
    let mut literal = def.clone();
    literal["States"]["M"]["Items"] = json!([3, "{% $states.input.tag %}"]);
    literal["States"]["M"]["ItemSelector"] = json!("{% $states.context.Map.Item.Value %}");
    assert_eq!(output(&run(&literal, &json!({"tag": "t", "mc": 0}))), json!([3, "t"]));
}

#[test]
fn wait_seconds_from_an_expression_and_a_bad_one_is_caught() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "End": true}
    }});
    let clock = ManualClock::fixed();
    let start = clock.now();
    let r = run_seeded(&def, &json!({"s": 30}), &clock, 1);
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!((clock.now() - start) / NANOS_PER_SEC, 30);

    let r = run(&def, &json!({"s": "soon"}));
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("States.QueryEvaluationError"));
    assert!(
        r.cause.as_deref().unwrap().ends_with("The Seconds field must be a non-negative integer, but was: \"soon\""),
        "{r:?}"
    );
}

#[test]
fn conditions_constant_or_computed_and_rule_outputs() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "C", "States": {
        "C": {"Type": "Choice", "Output": "{% 'state output' %}", "Assign": {"took": "default"},
            "Choices": [
                {"Condition": "{% $states.input.n > 10 %}", "Next": "Done", "Output": "{% 'big ' & $states.input.n %}",
                 "Assign": {"took": "big"}},
                {"Condition": false, "Next": "Done"}
            ],
            "Default": "Done"},
        "Done": {"Type": "Pass", "Output": "{% [$states.input, $took] %}", "End": true}
    }});
    assert_eq!(output(&run(&def, &json!({"n": 11}))), json!(["big 11", "big"]));
    assert_eq!(output(&run(&def, &json!({"n": 1}))), json!(["state output", "default"]));

    // JSONata's own errors, and a Condition that is not a boolean, fail the state.
    let r = run(&def, &json!({"n": "x"}));
    assert_eq!(r.error.as_deref(), Some("States.QueryEvaluationError"), "{r:?}");
    assert!(r.cause.as_deref().unwrap().contains("for the field 'Condition' threw an error during evaluation. T2009"));
    let mut not_bool = def.clone();
    not_bool["States"]["C"]["Choices"][0]["Condition"] = json!("{% $states.input.n %}");
    let r = run(&not_bool, &json!({"n": 1}));
    assert!(
        r.cause.as_deref().unwrap().ends_with(
            "The JSONata expression '$states.input.n' specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was 'number' for value: 1"
        ),
        "{r:?}"
    );
}

#[test]
fn variables_over_256_kib_fail_with_data_limit_exceeded() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"big": "{% $pad('', $states.input.n, 'x') %}"}, "End": true}
    }});
    assert_eq!(run(&def, &json!({"n": 1000})).status, Status::Succeeded);
    let r = run(&def, &json!({"n": 300_000}));
    assert_eq!((r.status, r.error.as_deref()), (Status::Failed, Some("States.DataLimitExceeded")), "{r:?}");
    assert!(r.cause.as_deref().unwrap().contains("the variable 'big'"), "{r:?}");

    // Two values that fit alone but not together.
    let two = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "QueryLanguage": "JSONata", "End": true,
              "Assign": {"a": "{% $pad('', 150000, 'x') %}", "b": "{% $pad('', 150000, 'y') %}"}}
    }});
    let r = run(&two, &json!({}));
    assert_eq!(r.error.as_deref(), Some("States.DataLimitExceeded"), "{r:?}");
}

#[test]
fn millis_and_random_come_from_the_engine_clock_and_seed() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Output": "{% {'ms': $millis(), 'r': $random(), 'u': $uuid()} %}", "End": true}
    }});
    let clock = ManualClock::fixed();
    let a = output(&run_seeded(&def, &json!({}), &clock, 7));
    assert_eq!(a["ms"], json!(clock.now() / 1_000_000));
    assert_eq!(a, output(&run_seeded(&def, &json!({}), &ManualClock::fixed(), 7)), "same seed, same draws");
    assert_ne!(a["u"], output(&run_seeded(&def, &json!({}), &ManualClock::fixed(), 8))["u"]);
}

#[test]
fn plain_paths_give_what_javascript_gives() {
    // `$states.input...` and `$var...` are read straight from the execution's values unless
    // JavaScript would rewrite them: integral doubles, array-index keys (moved first).
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"v": "{% $states.input.inner %}"},
              "Output": {"whole": "{% $states.input %}", "deep": "{% $states.input.inner.x %}"}, "Next": "B"},
        "B": {"Type": "Pass", "Output": {"prev": "{% $states.input %}", "v": "{% $v %}", "vx": "{% $v.x %}"}, "End": true}
    }});
    let input = json!({"b": 0.5, "10": "ten", "inner": {"x": 2.0, "y": "s"}, "big": 9007199254740993_i64});
    let out = output(&run(&def, &input));
    let whole = json!({"10": "ten", "b": 0.5, "inner": {"x": 2, "y": "s"}, "big": 9007199254740992_i64});
    assert_eq!(
        out.to_string(),
        json!({"prev": {"whole": whole, "deep": 2}, "v": {"x": 2, "y": "s"}, "vx": 2}).to_string()
    );

    // Values JavaScript keeps as they are come out unchanged.
    let plain = json!({"x": 0.5, "s": "x", "n": [1, {"k": null}], "t": true});
    let out = output(&run(&def, &json!({"inner": plain.clone()})));
    assert_eq!(out["v"].to_string(), plain.to_string());
}
