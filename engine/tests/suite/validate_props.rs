//! Property tests: no definition, however broken, makes the engine panic.
//!
//! Guards the front door of the pipeline. `sfn::load` (parse → validate → compile) must
//! return diagnostics, never panic, for (a) arbitrary bytes, arbitrary JSON built from ASL
//! words, and random ASL-shaped machines; and (b) valid definitions (the examples, the
//! JSONPath conformance definitions and the valid `tests/validate` cases) after random
//! mutations: a key deleted, a value replaced by a random JSON value or by another part of
//! the document, a state renamed, a `Type` changed, a key written twice, the text truncated
//! or garbage inserted. Whenever a definition validates, it must also compile, and running
//! it on input `{}` with no task handlers must finish or stop with an error — never panic.
//! The validator must never report an "(internal error)".
//!
//! Runs are bounded so a looping machine cannot hang the test: `ManualClock` makes Waits and
//! retry back-off instant, and the VM gets `STEP_BUDGET` states per round for at most
//! `MAX_ROUNDS` rounds. Case counts and the RNG seed are fixed, so a run is reproducible and
//! takes a few seconds in release mode. A failure prints the minimised definition; add it to
//! `tests/validate/` as a regression case once fixed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bumpalo::Bump;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use serde_json::{Map, Value as Json};
use sfn::clock::{Clock, ManualClock};
use sfn::compile::Bindings;
use sfn::diag::Severity;
use sfn::program::Program;
use sfn::validate::MachineType;
use sfn::vm::{Exec, ExecMeta, Poll};

/// States entered per `Exec::run` call, and calls before a run is abandoned as a loop.
const STEP_BUDGET: u32 = 200;
const MAX_ROUNDS: usize = 50;

/// A fixed case count and seed; `PROPTEST_CASES` overrides the count and `PROPTEST_RNG_SEED`
/// the seed, for longer exploratory runs.
fn config(cases: u32, seed: u64) -> ProptestConfig {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    ProptestConfig {
        cases: env("PROPTEST_CASES").map_or(cases, |c| c as u32),
        rng_seed: RngSeed::Fixed(env("PROPTEST_RNG_SEED").unwrap_or(seed)),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Valid (or nearly valid) definitions to mutate: examples, JSONPath conformance cases and
/// the valid validate cases.
fn corpus() -> &'static [(MachineType, Json)] {
    static CORPUS: OnceLock<Vec<(MachineType, Json)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = Vec::new();
        let ty = |s: Option<&str>| if s == Some("EXPRESS") { MachineType::Express } else { MachineType::Standard };
        for path in json_files(&repo_root().join("examples")) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".asl.json") {
                let doc = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let t = if name.contains(".express") { MachineType::Express } else { MachineType::Standard };
                out.push((t, doc));
            }
        }
        for path in json_files(&repo_root().join("tests/conformance/cases")) {
            let case: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if case["features"].as_array().is_some_and(|f| f.iter().any(|x| x == "JSONata")) {
                continue;
            }
            out.push((ty(case["state_machine_type"].as_str()), case["definition"].clone()));
        }
        for path in json_files(&repo_root().join("tests/validate")) {
            let case: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if case["expected"].as_array().is_some_and(Vec::is_empty) {
                out.push((ty(case["type"].as_str()), case["definition"].clone()));
            }
        }
        assert!(out.len() > 400, "corpus too small: {}", out.len());
        out
    })
}

/// Loads `text`; checks that validation and compilation agree and that no diagnostic is an
/// internal error; runs what loads.
fn check_definition(text: &[u8], machine_type: MachineType) {
    let diags = match sfn::parse::parse_definition(text) {
        Err(d) => d,
        Ok(doc) => sfn::validate::check(&doc, machine_type).1,
    };
    for d in &diags {
        assert!(!d.message.contains("internal error"), "internal error: {d}");
    }
    let valid = !diags.iter().any(|d| d.severity == Severity::Error);
    match sfn::load(text, machine_type, Bindings::default()) {
        Ok(prog) => {
            assert!(valid, "load accepted a definition with errors: {diags:?}");
            run_bounded(&prog, machine_type);
        }
        Err(d) => assert!(!valid, "validates cleanly, but load rejects it: {d:?}"),
    }
}

/// Runs `prog` on `{}` for at most `MAX_ROUNDS` × `STEP_BUDGET` states.
fn run_bounded(prog: &Program, machine_type: MachineType) {
    let clock = ManualClock::fixed();
    let bump = Bump::new();
    let input = sfn::value::parse_json(&bump, b"{}").unwrap();
    let meta = ExecMeta::local("Props", "run", machine_type, clock.now());
    let mut exec = Exec::new(prog, &bump, input, &meta, 7);
    for _ in 0..MAX_ROUNDS {
        match exec.run(&clock, STEP_BUDGET) {
            Poll::Finished => {
                assert!(exec.outcome().is_some(), "finished without an outcome");
                return;
            }
            Poll::Yielded => {}
            Poll::Blocked { wake_at } => {
                // No handlers are bound, so no task is ever handed to the driver.
                assert!(exec.take_async_calls().is_empty(), "an unbound task was started");
                match wake_at {
                    Some(t) => clock.sleep_until(t),
                    None => return,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generators

const KEYS: &[&str] = &[
    "StartAt",
    "States",
    "Type",
    "Next",
    "End",
    "Comment",
    "Version",
    "TimeoutSeconds",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Result",
    "Assign",
    "Retry",
    "Catch",
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Resource",
    "HeartbeatSeconds",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "Credentials",
    "Choices",
    "Default",
    "Variable",
    "And",
    "Or",
    "Not",
    "StringEquals",
    "NumericEquals",
    "BooleanEquals",
    "IsPresent",
    "IsNull",
    "TimestampEquals",
    "StringMatches",
    "NumericLessThanPath",
    "Seconds",
    "Timestamp",
    "SecondsPath",
    "TimestampPath",
    "Error",
    "Cause",
    "ErrorPath",
    "CausePath",
    "Branches",
    "ItemProcessor",
    "Iterator",
    "ProcessorConfig",
    "Mode",
    "ExecutionType",
    "ItemsPath",
    "ItemSelector",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentage",
    "ToleratedFailureCount",
    "Label",
    "ItemReader",
    "Output",
    "Arguments",
    "x.$",
    "y",
    "A",
    "B",
    "C",
];

const STRINGS: &[&str] = &[
    "Pass",
    "Task",
    "Choice",
    "Wait",
    "Succeed",
    "Fail",
    "Parallel",
    "Map",
    "A",
    "B",
    "C",
    "D",
    "$",
    "$.a",
    "$.a.b",
    "$.a[0]",
    "$['a']",
    "$$",
    "$$.Execution.Input",
    "$$.Map.Item.Value",
    "$$.Task.Token",
    "$x",
    "$.a[*]",
    "$..a",
    "$.",
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.Format('{}', $.a)",
    "States.Array(1, $.a)",
    "States.StringToJson($.s)",
    "States.MathAdd(1)",
    "States.ArrayRange(0, 5, 1)",
    "arn:aws:states:::lambda:invoke",
    "arn:aws:lambda:us-east-1:123456789012:function:f",
    "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
    "arn:aws:states:::states:startExecution.sync",
    "2024-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "INLINE",
    "DISTRIBUTED",
    "STANDARD",
    "EXPRESS",
    "JSONPath",
    "JSONata",
    "FULL",
    "NONE",
    "1.0",
    "",
    "a*b",
    "{% $x %}",
];

const TYPES_ALL: &[&str] = &["Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"];
const PATHS_OK: &[&str] =
    &["$", "$.a", "$.a.b", "$.a[0]", "$['a']", "$$", "$$.Execution.Input", "$$.Map.Item.Value", "$$.Task.Token", "$x"];
const PATHS_BAD: &[&str] = &["$.a[*]", "$..a", "$.", "a"];
const ERRORS: &[&str] = &["States.ALL", "States.TaskFailed", "States.Timeout", "Custom"];
const INTRINSICS: &[&str] = &[
    "States.Format('{}', $.a)",
    "States.Array(1, $.a)",
    "States.StringToJson($.s)",
    "States.MathAdd(1)",
    "States.ArrayRange(0, 5, 1)",
];
const RESOURCES_OK: &[&str] = &["arn:aws:states:::lambda:invoke", "arn:aws:lambda:us-east-1:123456789012:function:f"];
const RESOURCES_BAD: &[&str] =
    &["arn:aws:states:::sqs:sendMessage.waitForTaskToken", "arn:aws:states:::states:startExecution.sync", "f"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = Json> {
    prop::sample::select(list).prop_map(Json::from)
}

fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        prop_oneof![-3i64..120, Just(99_999_999), Just(100_000_000), Just(i64::MIN), Just(i64::MAX)]
            .prop_map(Json::from),
        prop_oneof![Just(0.5f64), Just(1.0), Just(2.5), Just(-1.5), Just(1e300), Just(100.0)].prop_map(Json::from),
        Just(Json::from(u64::MAX)),
        prop::sample::select(STRINGS).prop_map(|s| Json::String(s.to_owned())),
        "[ -~]{0,12}".prop_map(Json::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "[A-Za-z.$]{0,6}"]
}

/// Any JSON value, with ASL words as keys and strings.
fn json_value() -> impl Strategy<Value = Json> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

const NAMES: &[&str] = &["A", "B", "C", "D"];

fn name() -> impl Strategy<Value = Json> {
    prop::sample::select(NAMES).prop_map(|s| Json::String(s.to_owned()))
}

/// A value for field `key` that is usually of a plausible kind, so more of the machine gets
/// past the first checks.
fn field_value(key: &'static str) -> BoxedStrategy<Json> {
    let plausible: BoxedStrategy<Json> = match key {
        "Next" | "Default" | "StartAt" => name().boxed(),
        "End" => any::<bool>().prop_map(Json::Bool).boxed(),
        "Type" => pick(TYPES_ALL).boxed(),
        "InputPath" | "OutputPath" | "ResultPath" | "ItemsPath" | "SecondsPath" | "TimestampPath" | "ErrorPath"
        | "CausePath" => prop_oneof![8 => pick(PATHS_OK), 1 => pick(PATHS_BAD)].boxed(),
        "Seconds" | "TimeoutSeconds" | "HeartbeatSeconds" | "MaxConcurrency" | "ToleratedFailureCount" => {
            (0i64..5).prop_map(Json::from).boxed()
        }
        "Resource" => prop_oneof![8 => pick(RESOURCES_OK), 1 => pick(RESOURCES_BAD)].boxed(),
        "Retry" => prop::collection::vec(
            (pick(ERRORS), 0i64..3, 1i64..3, prop::sample::select(&[1.0, 1.5, 2.0][..]))
                .prop_map(|(e, a, i, b)| {
                    serde_json::json!({"ErrorEquals": [e], "MaxAttempts": a, "IntervalSeconds": i, "BackoffRate": b})
                }),
            0..3,
        )
        .prop_map(Json::Array)
        .boxed(),
        "Catch" => prop::collection::vec(
            (pick(ERRORS), name(), 0i64..3, 1i64..3).prop_map(|(e, n, a, i)| {
                serde_json::json!({"ErrorEquals": [e], "Next": n, "MaxAttempts": a, "IntervalSeconds": i})
            }),
            0..3,
        )
        .prop_map(Json::Array)
        .boxed(),
        "Choices" => prop::collection::vec(
            (pick(PATHS_OK), name()).prop_map(
                |(v, n)| serde_json::json!({"Variable": v, "IsPresent": true, "Next": n}),
            ),
            0..3,
        )
        .prop_map(Json::Array)
        .boxed(),
        "Parameters" | "ResultSelector" | "ItemSelector" | "Assign" => {
            let member = prop_oneof![
                (prop::sample::select(&["a", "x"][..]), scalar()),
                (
                    prop::sample::select(&["b.$", "c.$"][..]),
                    prop_oneof![4 => pick(PATHS_OK), 2 => pick(INTRINSICS), 1 => pick(PATHS_BAD)],
                ),
            ];
            prop::collection::vec(member, 0..3)
                .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
                .boxed()
        }
        "Error" | "Cause" | "Comment" => "[ -~]{0,8}".prop_map(Json::String).boxed(),
        "Branches" => prop::collection::vec(small_graph(), 0..3).prop_map(Json::Array).boxed(),
        "ItemProcessor" => small_graph().boxed(),
        _ => scalar().boxed(),
    };
    prop_oneof![20 => plausible, 1 => json_value()].boxed()
}

/// Optional fields of each state type (JSONPath mode), with required ones left out.
fn optional_fields(ty: &str) -> &'static [&'static str] {
    match ty {
        "Pass" => &["InputPath", "OutputPath", "Parameters", "ResultPath", "Result", "Assign", "Comment"],
        "Task" => &[
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "HeartbeatSeconds",
        ],
        "Choice" => &["InputPath", "OutputPath", "Default", "Assign"],
        "Wait" => &["InputPath", "OutputPath", "Assign"],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => {
            &["InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Assign", "Retry", "Catch"]
        }
        _ => &[
            "InputPath",
            "OutputPath",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "ItemsPath",
            "ItemSelector",
            "MaxConcurrency",
            "ToleratedFailureCount",
        ],
    }
}

/// A random state of type `ty` whose transitions go to `names`: the required fields, a few
/// optional ones, and now and then a field of any kind.
fn typed_state(ty: &'static str, names: Vec<String>, index: usize, depth: u32) -> BoxedStrategy<Json> {
    let target = prop::sample::select(names.clone()).prop_map(Json::String);
    // Mostly a chain: each state goes on to the next one and the last one ends.
    let last = index + 1 == names.len();
    let following = Json::String(names.get(index + 1).unwrap_or(&names[0]).clone());
    let transition = prop_oneof![
        if last { 1 } else { 12 } => Just(vec![("Next", following.clone())]),
        1 => target.clone().prop_map(|n| vec![("Next", n)]),
        if last { 12 } else { 1 } => Just(vec![("End", Json::Bool(true))]),
    ];
    let required: BoxedStrategy<Vec<(&'static str, Json)>> = match ty {
        "Pass" => transition.boxed(),
        "Task" => (transition, field_value("Resource"))
            .prop_map(|(mut t, r)| {
                t.push(("Resource", r));
                t
            })
            .boxed(),
        "Choice" => (
            prop::collection::vec(
                (pick(PATHS_OK), target.clone())
                    .prop_map(|(v, n)| serde_json::json!({"Variable": v, "IsPresent": true, "Next": n})),
                1..3,
            ),
            Just(following),
        )
            .prop_map(|(rules, default)| vec![("Choices", Json::Array(rules)), ("Default", default)])
            .boxed(),
        "Wait" => (
            transition,
            prop_oneof![
                (0i64..5).prop_map(|s| ("Seconds", Json::from(s))),
                Just(("Timestamp", Json::from("2024-01-01T00:00:10Z"))),
                Just(("SecondsPath", Json::from("$.a"))),
            ],
        )
            .prop_map(|(mut t, w)| {
                t.push(w);
                t
            })
            .boxed(),
        "Parallel" => (transition, prop::collection::vec(nested_graph(depth + 1), 1..3))
            .prop_map(|(mut t, b)| {
                t.push(("Branches", Json::Array(b)));
                t
            })
            .boxed(),
        "Map" => (transition, nested_graph(depth + 1))
            .prop_map(|(mut t, g)| {
                t.push(("ItemProcessor", g));
                t
            })
            .boxed(),
        _ => Just(Vec::new()).boxed(),
    };
    let optional = prop::collection::vec(
        prop::sample::select(optional_fields(ty)).prop_flat_map(move |k| {
            let value = match k {
                "Default" => prop::sample::select(names.clone()).prop_map(Json::String).boxed(),
                "Catch" => prop::collection::vec(
                    (pick(ERRORS), prop::sample::select(names.clone()))
                        .prop_map(|(e, n)| serde_json::json!({"ErrorEquals": [e], "Next": n, "ResultPath": "$.error"})),
                    0..2,
                )
                .prop_map(Json::Array)
                .boxed(),
                "Result" => json_value().boxed(),
                "ItemsPath" => Just(Json::from("$.a")).boxed(),
                _ => field_value(k),
            };
            value.prop_map(move |v| (k, v))
        }),
        0..3,
    );
    let stray = prop::option::weighted(0.1, (key(), json_value()));
    (required, optional, stray)
        .prop_map(move |(required, optional, stray)| {
            let mut m = Map::new();
            m.insert("Type".into(), Json::from(ty));
            for (k, v) in required.into_iter().chain(optional) {
                m.insert(k.to_owned(), v);
            }
            if let Some((k, v)) = stray {
                m.insert(k, v);
            }
            Json::Object(m)
        })
        .boxed()
}

/// A `{StartAt, States}` graph with states named `prefix1`, `prefix2`, ...; nested graphs
/// get their own prefix so that names stay unique across the machine (mostly).
fn graph(prefix: String, depth: u32) -> BoxedStrategy<Json> {
    let types: Vec<&'static str> = if depth >= 2 { TYPES_ALL[..6].to_vec() } else { TYPES_ALL.to_vec() };
    (1usize..5)
        .prop_flat_map(move |n| {
            let names: Vec<String> = (1..=n).map(|i| format!("{prefix}{i}")).collect();
            let states: Vec<BoxedStrategy<Json>> = (0..n)
                .map(|i| {
                    let names = names.clone();
                    // Succeed and Fail end the chain, so they mostly come last.
                    // A Choice cannot end the graph, so it rarely comes last.
                    let types: Vec<&'static str> = if i + 1 < n && i % 3 != 2 {
                        types.iter().copied().filter(|t| !matches!(*t, "Succeed" | "Fail")).collect()
                    } else if i + 1 == n && i % 3 != 2 {
                        types.iter().copied().filter(|t| *t != "Choice").collect()
                    } else {
                        types.clone()
                    };
                    prop::sample::select(types)
                        .prop_flat_map(move |ty| typed_state(ty, names.clone(), i, depth))
                        .boxed()
                })
                .collect();
            let start = prop_oneof![4 => Just(names[0].clone()), 1 => prop::sample::select(names.clone())];
            (Just(names), start, states)
        })
        .prop_map(|(names, start, states)| {
            let states: Map<String, Json> = names.into_iter().zip(states).collect();
            serde_json::json!({"StartAt": start, "States": states})
        })
        .boxed()
}

fn nested_graph(depth: u32) -> BoxedStrategy<Json> {
    "[a-z]{4}".prop_flat_map(move |prefix| graph(prefix, depth)).boxed()
}

/// A branch or processor for `field_value`: states without further nesting.
fn small_graph() -> impl Strategy<Value = Json> {
    nested_graph(2)
}

/// A random ASL-shaped machine, mostly well-formed, with Parallel and Map nested up to two
/// levels.
fn machine() -> impl Strategy<Value = Json> {
    (graph("S".into(), 0), prop::option::weighted(0.2, 1u64..5)).prop_map(|(mut doc, timeout)| {
        if let Some(t) = timeout {
            doc["TimeoutSeconds"] = Json::from(t);
        }
        doc
    })
}

// ---------------------------------------------------------------------------------------
// Mutations

#[derive(Debug, Clone)]
enum Mutation {
    DeleteKey(Index),
    Replace(Index, Json),
    /// Replace a value by a copy of another value of the same document.
    Graft(Index, Index),
    RenameState(Index, String),
    /// Replace a scalar by another of the same kind (string, number, boolean), which keeps
    /// more definitions valid and so exercises compile and run.
    Tweak(Index, Index, i64),
    ChangeType(Index, String),
}

#[derive(Debug, Clone)]
enum TextMutation {
    None,
    DuplicateKey(Index),
    Truncate(Index),
    Insert(Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::DeleteKey),
        1 => (any::<Index>(), json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Graft(a, b)),
        3 => (any::<Index>(), any::<Index>(), -2i64..200).prop_map(|(a, b, n)| Mutation::Tweak(a, b, n)),
        1 => (any::<Index>(), prop_oneof![prop::sample::select(NAMES).prop_map(str::to_owned), "[A-Za-z ]{0,3}"])
            .prop_map(|(i, n)| Mutation::RenameState(i, n)),
        1 => (any::<Index>(), prop_oneof![prop::sample::select(TYPES_ALL).prop_map(str::to_owned), "[a-z]{0,4}"])
            .prop_map(|(i, t)| Mutation::ChangeType(i, t)),
    ]
}

const GARBAGE: &[&[u8]] = &[b",", b"{", b"}", b"]", b"\"", b":", b"\\", b"null", b"\xff"];

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        3 => Just(TextMutation::None),
        1 => any::<Index>().prop_map(TextMutation::DuplicateKey),
        1 => any::<Index>().prop_map(TextMutation::Truncate),
        1 => (any::<Index>(), prop_oneof![
            prop::collection::vec(any::<u8>(), 1..4),
            prop::sample::select(GARBAGE).prop_map(<[u8]>::to_vec),
        ]).prop_map(|(i, g)| TextMutation::Insert(i, g)),
    ]
}

/// JSON pointers of every value in `doc` (the root excluded).
fn value_pointers(doc: &Json, at: String, out: &mut Vec<String>) {
    match doc {
        Json::Object(m) => {
            for (k, v) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                value_pointers(v, p, out);
            }
        }
        Json::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                value_pointers(v, p, out);
            }
        }
        _ => {}
    }
}

/// Splits a pointer into its parent and last token (unescaped).
fn split(pointer: &str) -> (&str, String) {
    let cut = pointer.rfind('/').unwrap();
    (&pointer[..cut], pointer[cut + 1..].replace("~1", "/").replace("~0", "~"))
}

fn apply(doc: &mut Json, m: &Mutation) {
    let mut ptrs = Vec::new();
    value_pointers(doc, String::new(), &mut ptrs);
    if ptrs.is_empty() {
        if let Mutation::Replace(_, v) = m {
            *doc = v.clone();
        }
        return;
    }
    match m {
        Mutation::DeleteKey(i) => {
            let (parent, key) = split(&ptrs[i.index(ptrs.len())]);
            match doc.pointer_mut(parent) {
                Some(Json::Object(o)) => {
                    o.shift_remove(&key);
                }
                Some(Json::Array(a)) => {
                    if let Ok(k) = key.parse::<usize>() {
                        a.remove(k);
                    }
                }
                _ => {}
            }
        }
        Mutation::Replace(i, v) => {
            if let Some(slot) = doc.pointer_mut(&ptrs[i.index(ptrs.len())]) {
                *slot = v.clone();
            }
        }
        Mutation::Graft(to, from) => {
            let from = doc.pointer(&ptrs[from.index(ptrs.len())]).cloned();
            if let (Some(v), Some(slot)) = (from, doc.pointer_mut(&ptrs[to.index(ptrs.len())])) {
                *slot = v;
            }
        }
        Mutation::RenameState(i, new) => {
            let states: Vec<&String> = ptrs.iter().filter(|p| split(p).0.ends_with("/States")).collect();
            if states.is_empty() {
                return;
            }
            let (parent, key) = split(states[i.index(states.len())]);
            let parent = parent.to_owned();
            if let Some(Json::Object(o)) = doc.pointer_mut(&parent) {
                // Rebuild to keep the order; renaming onto an existing name drops that one.
                let old = std::mem::take(o);
                *o = old.into_iter().map(|(k, v)| if k == key { (new.clone(), v) } else { (k, v) }).collect();
            }
        }
        Mutation::Tweak(i, pick, n) => {
            let scalars: Vec<&String> =
                ptrs.iter().filter(|p| doc.pointer(p).is_some_and(|v| !v.is_object() && !v.is_array())).collect();
            if scalars.is_empty() {
                return;
            }
            if let Some(slot) = doc.pointer_mut(scalars[i.index(scalars.len())]) {
                *slot = match slot {
                    Json::String(_) => Json::from(*pick.get(STRINGS)),
                    Json::Number(_) => Json::from(*n),
                    Json::Bool(b) => Json::Bool(!*b),
                    _ => Json::Null,
                };
            }
        }
        Mutation::ChangeType(i, ty) => {
            let types: Vec<&String> = ptrs.iter().filter(|p| p.ends_with("/Type")).collect();
            if types.is_empty() {
                return;
            }
            if let Some(slot) = doc.pointer_mut(types[i.index(types.len())]) {
                *slot = Json::String(ty.clone());
            }
        }
    }
}

/// Writes `doc` as JSON text, writing the first member of the `dup`-th object twice.
fn write_with_duplicate(doc: &Json, dup: usize, seen: &mut usize, out: &mut String) {
    match doc {
        Json::Object(m) => {
            let this = *seen;
            *seen += 1;
            out.push('{');
            for (n, (k, v)) in m.iter().enumerate() {
                let copies = if n == 0 && this == dup { 2 } else { 1 };
                for c in 0..copies {
                    if n > 0 || c > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    write_with_duplicate(v, dup, seen, out);
                }
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (n, v) in a.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_with_duplicate(v, dup, seen, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap()),
    }
}

fn count_objects(doc: &Json) -> usize {
    match doc {
        Json::Object(m) => 1 + m.values().map(count_objects).sum::<usize>(),
        Json::Array(a) => a.iter().map(count_objects).sum(),
        _ => 0,
    }
}

fn mutated_text(doc: &Json, text_mutation: &TextMutation) -> Vec<u8> {
    match text_mutation {
        TextMutation::DuplicateKey(i) => {
            let mut out = String::new();
            write_with_duplicate(doc, i.index(count_objects(doc).max(1)), &mut 0, &mut out);
            out.into_bytes()
        }
        TextMutation::None => serde_json::to_vec(doc).unwrap(),
        TextMutation::Truncate(i) => {
            let mut t = serde_json::to_vec(doc).unwrap();
            t.truncate(i.index(t.len().max(1)));
            t
        }
        TextMutation::Insert(i, garbage) => {
            let mut t = serde_json::to_vec(doc).unwrap();
            let at = i.index(t.len() + 1);
            t.splice(at..at, garbage.iter().copied());
            t
        }
    }
}

// ---------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config(3000, 0x5f11_0001))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_definition(&bytes, MachineType::Standard);
    }

    #[test]
    fn json_token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(&[
        "{", "}", "[", "]", ",", ":", "\"StartAt\"", "\"States\"", "\"A\"", "\"Type\"", "\"Pass\"",
        "\"End\"", "true", "null", "1", "-0", "1e999", "\"\\u0000\"", "\"\\ud800\"", " ", "\"", "\\",
    ][..]), 0..40)) {
        check_definition(tokens.concat().as_bytes(), MachineType::Standard);
    }
}

proptest! {
    #![proptest_config(config(4000, 0x5f11_0002))]

    #[test]
    fn arbitrary_json_never_panics(doc in json_value(), express in any::<bool>()) {
        let t = if express { MachineType::Express } else { MachineType::Standard };
        check_definition(&serde_json::to_vec(&doc).unwrap(), t);
    }

    #[test]
    fn random_machines_never_panic(doc in machine(), express in any::<bool>()) {
        let t = if express { MachineType::Express } else { MachineType::Standard };
        check_definition(&serde_json::to_vec(&doc).unwrap(), t);
    }
}

proptest! {
    #![proptest_config(config(10000, 0x5f11_0003))]

    #[test]
    fn mutated_definitions_never_panic(
        pick in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..3),
        text in text_mutation(),
    ) {
        let (machine_type, original) = &corpus()[pick.index(corpus().len())];
        let mut doc = original.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        check_definition(&mutated_text(&doc, &text), *machine_type);
    }
}

/// The corpus itself loads (apart from the known pending JSONPath syntax) and runs.
#[test]
fn corpus_definitions_run() {
    let mut loaded = 0;
    for (t, doc) in corpus() {
        let text = serde_json::to_vec(doc).unwrap();
        check_definition(&text, *t);
        loaded += sfn::load(&text, *t, Bindings::default()).is_ok() as usize;
    }
    assert!(loaded + 20 > corpus().len(), "only {loaded} of {} corpus definitions load", corpus().len());
}
