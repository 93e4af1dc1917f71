//! The JSONata module's own behaviour: AWS's functions (`$partition`, `$range`, `$hash`,
//! `$random`, `$uuid`, `$parse`) and restrictions (`$eval`), with the results and cause
//! texts AWS recorded where the conformance cases have them; the injected clock and random
//! source; what an evaluation converts; parse-error positions; and the value boundary
//! (arena → crate → arena is the identity on JSON values, numbers come back as JavaScript
//! prints them).

use std::cell::RefCell;

use bumpalo::Bump;
use proptest::prelude::*;
use sfn::jsonata::{Bindings, Expr, QueryError};
use sfn::value::{parse_json, Value};

/// Evaluates `src` with `$states.input` = `input` (JSON text), seed 7, time 0; returns the
/// result's JSON text or the error.
fn run(src: &str, input: &str) -> Result<String, QueryError> {
    run_with(src, input, 7, 0)
}

fn run_with(src: &str, input: &str, seed: u64, now: i64) -> Result<String, QueryError> {
    let bump = Bump::new();
    let input = parse_json(&bump, input.as_bytes()).unwrap();
    let states = sfn::value::object(&bump, &[("input", input)]);
    let expr = Expr::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let bindings = Bindings { states: Some(states), variables: &|_| None, random_seed: seed, now_millis: now };
    expr.eval(&bump, None, &bindings).map(|v| v.to_json_string())
}

fn ok(src: &str, input: &str) -> String {
    run(src, input).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn err(src: &str, input: &str) -> QueryError {
    match run(src, input) {
        Ok(v) => panic!("{src}: expected an error, got {v}"),
        Err(e) => e,
    }
}

/// The conformance cases' JSONata-function executions, with AWS's recorded outputs
/// (`tests/conformance/cases/jsonata_functions__*`).
#[test]
fn aws_functions_match_the_recorded_outputs() {
    let partition = "$partition($states.input.FunctionInput.fst, $states.input.FunctionInput.snd)";
    for (fst, snd, out) in [
        ("[0]", 1, "[[0]]"),
        ("[0]", 3, "[[0]]"),
        ("[0]", 5, "[[0]]"),
        ("[0,1]", 1, "[[0],[1]]"),
        ("[0,1]", 2, "[[0,1]]"),
        ("[0,1]", 3, "[[0,1]]"),
        ("[0,1]", 4, "[[0,1]]"),
        ("[0,1,2]", 1, "[[0],[1],[2]]"),
        ("[0,1,2]", 2, "[[0,1],[2]]"),
        ("[0,1,2]", 3, "[[0,1,2]]"),
        ("[0,1,2]", 5, "[[0,1,2]]"),
        ("[0,1,2,3]", 1, "[[0],[1],[2],[3]]"),
        ("[0,1,2,3]", 2, "[[0,1],[2,3]]"),
        ("[0,1,2,3]", 5, "[[0,1,2,3]]"),
    ] {
        let input = format!(r#"{{"FunctionInput":{{"fst":{fst},"snd":{snd}}}}}"#);
        assert_eq!(ok(partition, &input), out, "{fst} {snd}");
    }
    let range =
        "$range($states.input.FunctionInput.fst, $states.input.FunctionInput.snd, $states.input.FunctionInput.trd)";
    for (args, out) in [("0,9,3", "[0,3,6,9]"), ("0,10,3", "[0,3,6,9]"), ("1,9,9", "1"), ("1,9,2", "[1,3,5,7,9]")] {
        let a: Vec<&str> = args.split(',').collect();
        let input = format!(r#"{{"FunctionInput":{{"fst":{},"snd":{},"trd":{}}}}}"#, a[0], a[1], a[2]);
        assert_eq!(ok(range, &input), out, "{args}");
    }
    for (text, out) in
        [("-0", "0"), ("\"HelloWorld\"", "\"HelloWorld\""), ("[1, 2, \"HelloWorld\"]", "[1,2,\"HelloWorld\"]")]
    {
        let input = serde_json::json!({ "FunctionInput": text }).to_string();
        assert_eq!(ok("$parse($states.input.FunctionInput)", &input), out, "{text}");
    }
}

/// Cause texts recorded by AWS (conformance cases `jsonata_functions__math_random_seeded`,
/// `variables_assign__undefined_reference__*`, `map__map_state_items_eval_jsonata_fail__*`).
#[test]
fn causes_use_aws_wording() {
    let src = "$randomSeeded($states.input.FunctionInput.fst)";
    let e = err(src, r#"{"FunctionInput":"fst"}"#);
    assert_eq!(e.error_name(), "States.QueryEvaluationError");
    assert_eq!(e.code(), Some("T1006"));
    assert_eq!(
        e.cause(src, "Output/FunctionResult"),
        "The JSONata expression '$randomSeeded($states.input.FunctionInput.fst)' specified for the field \
         'Output/FunctionResult' threw an error during evaluation. T1006: Attempted to invoke a non-function"
    );
    let e = err("$doesNotExist", "{}");
    assert_eq!(e, QueryError::Undefined);
    assert_eq!(
        e.cause("$doesNotExist", "Assign/result"),
        "The JSONata expression '$doesNotExist' specified for the field 'Assign/result' returned nothing (undefined)."
    );
    let bump = Bump::new();
    let obj = parse_json(&bump, br#"{"foo":"bar"}"#).unwrap();
    assert_eq!(
        QueryError::unexpected_type("array", obj).cause("{'foo': 'bar'}", "Items"),
        "The JSONata expression '{'foo': 'bar'}' specified for the field 'Items' returned an unexpected result \
         type. Expected 'array', but was 'object' for value: {\"foo\":\"bar\"}"
    );
    assert_eq!(
        QueryError::unexpected_type("array", Value::Str("string")).cause("$ItemsVar", "Items"),
        "The JSONata expression '$ItemsVar' specified for the field 'Items' returned an unexpected result type. \
         Expected 'array', but was 'string' for value: \"string\""
    );
    assert!(QueryError::unexpected_type("array", Value::Null).to_string().contains("'null' for value: null"));
}

#[test]
fn eval_is_not_available() {
    let e = err("$eval('1 + 2')", "{}");
    assert_eq!(e, QueryError::Evaluation { message: "T1006: Attempted to invoke a non-function".into() });
    // Other errors keep their JSONata code and text.
    let e = err("$states.input.a + 's'", r#"{"a":1}"#);
    assert_eq!(e.code(), Some("T2002"));
    // In jsonata-js's words (the crate writes the operator unquoted).
    assert!(
        e.cause("x", "Output").ends_with(r#"T2002: The right side of the "+" operator must evaluate to a number"#),
        "{e}"
    );
    let e = err("$number('abc')", "{}");
    assert_eq!(e.to_string(), r#"States.QueryEvaluationError: D3030: Unable to cast value to a number: "abc""#);
}

#[test]
fn partition_and_range_reject_bad_arguments() {
    assert_eq!(err("$partition('abc', 2)", "{}").code(), Some("T0410"));
    assert_eq!(err("$partition([1,2], 0)", "{}").code(), Some("T0410"));
    assert_eq!(err("$partition([1,2], 1.5)", "{}").code(), Some("T0410"));
    assert_eq!(err("$partition([1,2])", "{}").code(), Some("T0410"));
    assert_eq!(err("$range(1, 5, 0)", "{}").code(), Some("T0410"));
    assert_eq!(err("$range(1, 5)", "{}").code(), Some("T0410"));
    assert_eq!(err("$range(1, 'a', 1)", "{}").code(), Some("T0410"));
    assert_eq!(err("$range(0, 1e9, 1)", "{}").code(), Some("D2014"));
    // Undefined in, undefined out (JSONata's convention for functions).
    assert_eq!(err("$partition($states.input.nope, 2)", "{}"), QueryError::Undefined);
    assert_eq!(ok("$range(10, 0, -5)", "{}"), "[10,5,0]");
    assert_eq!(ok("$range(0, 1, 0.25)", "{}"), "[0,0.25,0.5,0.75,1]");
    assert_eq!(err("$range(5, 1, 1)", "{}"), QueryError::Undefined);
    // A partition of an empty array is an empty array; a range result is a sequence that
    // keeps its items inside an array constructor.
    assert_eq!(ok("$partition([], 2)", "{}"), "[]");
    assert_eq!(ok("[$range(1, 1, 1)]", "{}"), "[1]");
}

#[test]
fn hash_gives_lowercase_hex_digests() {
    for (algo, digest) in [
        ("MD5", "900150983cd24fb0d6963f7d28e17f72"),
        ("SHA-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("SHA-256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "SHA-384",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            "SHA-512",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ] {
        assert_eq!(ok(&format!("$hash('abc', '{algo}')"), "{}"), format!("\"{digest}\""), "{algo}");
    }
    let e = err("$hash('abc', 'SHA-3')", "{}");
    assert!(e.to_string().contains("'SHA-3' is not supported"), "{e}");
    assert_eq!(err("$hash(1, 'MD5')", "{}").code(), Some("T0410"));
}

fn number(text: &str) -> f64 {
    text.parse().unwrap_or_else(|_| panic!("not a number: {text}"))
}

#[test]
fn random_and_uuid_come_from_the_injected_seed() {
    // Unseeded: a stream from the evaluation's seed; successive calls differ, the same seed
    // repeats the same values, another seed gives others.
    let a = ok("[$random(), $random()]", "{}");
    assert_eq!(ok("[$random(), $random()]", "{}"), a);
    let pair: Vec<f64> = serde_json::from_str(&a).unwrap();
    assert_ne!(pair[0], pair[1]);
    assert!(pair.iter().all(|r| (0.0..1.0).contains(r)), "{a}");
    assert_ne!(run_with("$random()", "{}", 8, 0).unwrap(), ok("$random()", "{}"));
    // Seeded: depends only on the seed, not on the evaluation's stream.
    let s = ok("$random(42)", "{}");
    assert_eq!(run_with("$random(42)", "{}", 12345, 0).unwrap(), s);
    assert_ne!(ok("$random(43)", "{}"), s);
    assert!((0.0..1.0).contains(&number(&s)));
    assert_eq!(err("$random('x')", "{}").code(), Some("T0410"));
    // Version-4 UUIDs, deterministic under a seed, distinct within an evaluation.
    let u = ok("[$uuid(), $uuid()]", "{}");
    let ids: Vec<String> = serde_json::from_str(&u).unwrap();
    assert_ne!(ids[0], ids[1]);
    let re = regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").unwrap();
    for id in &ids {
        assert!(re.is_match(id), "{id}");
    }
    assert_eq!(ok("[$uuid(), $uuid()]", "{}"), u);
    assert_ne!(run_with("$uuid()", "{}", 8, 0).unwrap(), ok("$uuid()", "{}"));
    // $shuffle: a permutation, deterministic under a seed.
    let s = ok("$shuffle([1,2,3,4,5,6,7,8])", "{}");
    assert_eq!(ok("$shuffle([1,2,3,4,5,6,7,8])", "{}"), s);
    let mut items: Vec<i64> = serde_json::from_str(&s).unwrap();
    items.sort();
    assert_eq!(items, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_ne!(run_with("$shuffle([1,2,3,4,5,6,7,8])", "{}", 8, 0).unwrap(), s);
}

#[test]
fn now_and_millis_read_the_injected_time() {
    let t = 1_700_000_000_123; // 2023-11-14T22:13:20.123Z
    assert_eq!(run_with("$millis()", "{}", 0, t).unwrap(), "1700000000123");
    assert_eq!(run_with("$now()", "{}", 0, t).unwrap(), "\"2023-11-14T22:13:20.123Z\"");
    assert_eq!(run_with("$now('[Y0001]-[M01]-[D01]')", "{}", 0, t).unwrap(), "\"2023-11-14\"");
    assert_eq!(run_with("$now('[H01]:[m01]', '+0100')", "{}", 0, t).unwrap(), "\"23:13\"");
    // Fixed for the whole evaluation, as in jsonata-js.
    assert_eq!(run_with("$millis() = $millis()", "{}", 0, t).unwrap(), "true");
}

#[test]
fn numbers_come_back_as_javascript_prints_them() {
    assert_eq!(ok("3 / 2 * 2", "{}"), "3");
    assert_eq!(ok("0.1 + 0.2", "{}"), "0.30000000000000004");
    assert_eq!(ok("1.5", "{}"), "1.5");
    assert_eq!(ok("-0", "{}"), "0");
    assert_eq!(ok("1e21", "{}"), "1.0E21");
    // JavaScript prints 1e20 as an integer and Jackson would read a BigInteger; the arena
    // value has no integers beyond i64 (value.rs's one documented deviation).
    assert_eq!(ok("1e20", "{}"), "1.0E20");
    assert_eq!(ok("123456789012", "{}"), "123456789012");
    assert_eq!(ok("1e-7", "{}"), "1.0E-7");
    assert_eq!(ok("$states.input.n", r#"{"n": 2.0}"#), "2");
    assert_eq!(ok("$states.input.n", r#"{"n": 9007199254740993}"#), "9007199254740992");
    // JSON.stringify semantics for what JSON cannot hold.
    assert_eq!(ok("{'a': 1, 'f': $string, 'u': $states.input.nope}", "{}"), r#"{"a":1}"#);
    assert_eq!(ok("[1, $string]", "{}"), "[1,null]");
    assert_eq!(err("$string", "{}"), QueryError::Undefined);
    // Keys keep their order, but for array-index keys, which JavaScript objects list first.
    assert_eq!(ok("{'z': 1, 'a': 2, 'm': 3}", "{}"), r#"{"z":1,"a":2,"m":3}"#);
    assert_eq!(ok("{'b': 1, '10': 2, '2': 3, '02': 4}", "{}"), r#"{"2":3,"10":2,"b":1,"02":4}"#);
    assert_eq!(ok("$states.input", r#"{"x": 1, "0": 2}"#), r#"{"0":2,"x":1}"#);
}

#[test]
fn only_named_variables_and_states_fields_are_read() {
    let bump = Bump::new();
    let looked_up = RefCell::new(Vec::new());
    let lookup = |name: &str| {
        looked_up.borrow_mut().push(name.to_owned());
        match name {
            "x" => Some(Value::Int(5)),
            "name" => Some(Value::Str("sfn")),
            _ => None,
        }
    };
    let input = parse_json(&bump, br#"{"a": 1}"#).unwrap();
    let context = parse_json(&bump, br#"{"State": {"Name": "S"}}"#).unwrap();
    let states = sfn::value::object(&bump, &[("input", input), ("context", context)]);
    let b = Bindings { states: Some(states), variables: &lookup, random_seed: 0, now_millis: 0 };

    let e = Expr::parse("$x + $states.input.a + ($y := 2; $y)").unwrap();
    assert!(e.reads_states());
    assert_eq!(e.variables().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), "8");
    assert_eq!(*looked_up.borrow(), ["x", "y"]);

    // `$states` read as a whole, and through a field other than `input`.
    let e = Expr::parse("$keys($states)").unwrap();
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), r#"["input","context"]"#);
    let e = Expr::parse("$states.context.State.Name & '/' & $name").unwrap();
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), r#""S/sfn""#);
    // Only the fields read are converted: `$states` holds `input` alone here.
    let e = Expr::parse("$states.input.a").unwrap();
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), "1");
    let e = Expr::parse("$states.input[0].a").unwrap();
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), "1");
    let e = Expr::parse("$count($states.*)").unwrap();
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), "2");
    // `%` can climb from `$states.input` back to `$states`.
    let e = Expr::parse("$states.input.%.context.State.Name").unwrap();
    assert_eq!(e.eval(&bump, None, &b).unwrap().to_json_string(), r#""S""#);
    let e = Expr::parse("1 + 1").unwrap();
    assert!(!e.reads_states());
    // Without `$states`, it is undefined.
    let e = Expr::parse("$states.input").unwrap();
    assert_eq!(e.eval(&bump, None, &Bindings::empty()), Err(QueryError::Undefined));
    // `$` is the input given.
    let e = Expr::parse("a").unwrap();
    assert_eq!(e.eval(&bump, Some(input), &Bindings::empty()).unwrap().to_json_string(), "1");
}

#[test]
fn parse_errors_say_where() {
    let e = Expr::parse("$states.input.a + )").unwrap_err();
    assert_eq!(e.position, 19, "{e:?}");
    assert!(e.code.is_some(), "{e:?}");
    let e = Expr::parse("'abc").unwrap_err();
    assert_eq!((e.code.as_deref(), e.position), (Some("S0101"), 4), "{e:?}");
    let e = Expr::parse("[1, 2").unwrap_err();
    assert_eq!(e.position, 5, "{e:?}");
    let e = Expr::parse("(1 + 2]) + 3").unwrap_err();
    assert_eq!(e.position, 7, "{e:?}");
    // Operators newer than AWS's jsonata-js 2.0.6 are rejected.
    for src in ["$states.input.a ?? 1", "$states.input.a ?: 1"] {
        let e = Expr::parse(src).unwrap_err();
        assert_eq!((e.code.as_deref(), e.position), (Some("S0211"), 18), "{src}: {e:?}");
    }
    assert!(Expr::parse("$states.input.a ? 1 : 2").is_ok());
}

fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    // Numbers the boundary keeps exactly: integers within ±2^53 (JSONata's numbers are
    // doubles) and doubles with a fractional part (an integral double comes back as an
    // integer, as JavaScript prints it; tested above).
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|i| serde_json::json!(i)),
        any::<f64>()
            .prop_filter("finite, fractional", |f| f.is_finite() && f.fract() != 0.0)
            .prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            // Keys that are not array indexes (those move first; tested above).
            prop::collection::vec(("([a-z_\"\\\\ é][\\PC]{0,4})?", inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arena_to_crate_to_arena_is_identity(doc in json_strategy()) {
        let bump = Bump::new();
        let v = Value::from_serde(&bump, &doc);
        let back = sfn::jsonata::boundary_round_trip(&bump, v).unwrap();
        prop_assert_eq!(back.to_json_string(), v.to_json_string());
        // The same through an evaluation (`$states.input` returns the input unchanged).
        let states = sfn::value::object(&bump, &[("input", v)]);
        let b = Bindings { states: Some(states), ..Bindings::empty() };
        let out = Expr::parse("$states.input").unwrap().eval(&bump, None, &b);
        // A one-element array is a singleton sequence only when built by a path; the input
        // array itself comes back whole.
        prop_assert_eq!(out.unwrap().to_json_string(), v.to_json_string());
    }

    #[test]
    fn parsing_never_panics_and_positions_stay_inside(src in "[ -~]{0,24}") {
        if let Err(e) = Expr::parse(&src) {
            prop_assert!(e.position <= src.len());
            prop_assert!(!e.message.is_empty());
        }
    }
}

/// Built-ins replaced where jsonata-core differs from jsonata-js under node (found by the
/// differential test).
#[test]
fn encodings_follow_jsonata_js_under_node() {
    assert_eq!(ok("$base64encode('héllo')", "{}"), r#""aOlsbG8=""#);
    assert_eq!(ok("$base64decode('aOlsbG8=')", "{}"), r#""héllo""#);
    assert_eq!(ok("$base64decode('aMOpbGxv')", "{}"), r#""hÃ©llo""#);
    assert_eq!(ok("$base64decode('aGk')", "{}"), r#""hi""#);
    assert_eq!(ok("$base64encode('')", "{}"), r#""""#);
    assert_eq!(ok("$encodeUrl('https://x.test/a b?q=é&r=1#f')", "{}"), r#""https://x.test/a%20b?q=%C3%A9&r=1#f""#);
    assert_eq!(err("$base64encode($states.input.nope)", "{}"), QueryError::Undefined);
    assert_eq!(err("$encodeUrl(1)", "{}").code(), Some("T0410"));
    // Called on the context, the crate's own function runs (UTF-8).
    assert_eq!(ok("$states.input.s.$base64encode()", r#"{"s":"héllo"}"#), r#""aMOpbGxv""#);
}

/// Values with what the direct evaluation must notice: integral doubles and integers past
/// 2^53 (JavaScript rewrites them), array-index keys (JavaScript moves them first), keys
/// shared between objects (`$merge` replaces them in place), arrays where objects are
/// expected.
fn tricky_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        (-1000i64..1000).prop_map(|i| serde_json::json!(i)),
        Just(serde_json::json!(9_007_199_254_740_993i64)),
        Just(serde_json::json!(3.0)),
        Just(serde_json::json!(2.5)),
        "[a-z]{0,3}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            4 => prop::collection::vec((prop::sample::select(vec!["a", "b", "errorInfo", "0", "10", "x y"]), inner), 0..5)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// The shapes evaluated without the crate (see `Expr::has_direct_shape`), among them the
/// rider-photo example's Outputs.
const DIRECT_SHAPES: &[&str] = &[
    "$states.input",
    "$states.input.a",
    "$states.input.a.b",
    "$states.result",
    "$v",
    "$v.a",
    "{'detectedFaceDetails': $states.result}",
    "{'x': $states.input.a, 'y': $v, 'lit': 'text', 'n': 3, 'f': 1.5, 'big': 1e21, 't': true, 'z': null}",
    "$merge([$states.input, {'detectedFaceDetails': $states.result}])",
    "$merge([$states.input, {'errorInfo': $states.errorOutput}])",
    "$merge([$states.input, $states.result, $v])",
    "$merge([$states.input.a, {'a': {'inner': $v.a}}, $merge([$v, $states.input])])",
    "$merge($states.input)",
    "$merge([])",
    "{'m': $merge([$states.result, $v])}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// The VM's evaluation (`eval_memo`: directly on the arena values where it can) gives
    /// exactly what the crate gives, result or error, including where a workflow variable
    /// named `merge` shadows the function.
    #[test]
    fn direct_evaluation_agrees_with_the_crate(
        input in tricky_json(),
        result in tricky_json(),
        var in tricky_json(),
        shadow_merge in prop::bool::weighted(0.1),
    ) {
        let bump = Bump::new();
        let (input, result, var) =
            (Value::from_serde(&bump, &input), Value::from_serde(&bump, &result), Value::from_serde(&bump, &var));
        let states = sfn::value::object(&bump, &[("input", input), ("result", result), ("errorOutput", result)]);
        let variables = |name: &str| match name {
            "v" => Some(var),
            "merge" if shadow_merge => Some(var),
            _ => None,
        };
        let b = Bindings { states: Some(states), variables: &variables, random_seed: 1, now_millis: 0 };
        for src in DIRECT_SHAPES {
            let expr = Expr::parse(src).unwrap();
            prop_assert!(expr.has_direct_shape(), "{}", src);
            let text = |r: Result<Value<'_>, QueryError>| r.map(|v| v.to_json_string()).map_err(|e| e.cause(src, "Output"));
            let by_crate = text(expr.eval(&bump, None, &b));
            let by_vm = text(expr.eval_memo(&bump, &b, None));
            prop_assert_eq!(by_vm, by_crate, "{}", src);
        }
    }
}

#[test]
fn only_the_direct_shapes_are_direct() {
    for src in [
        "$states.input.a[0]",
        "$states.input.*",
        "{'a': 1, 'a': 2}",
        "{'0': $states.input}",
        "{$states.input.k: 1}",
        "[$states.input]",
        "$merge([$states.input], 1)",
        "merge([$states.input])",
        "$states.input.a + 1",
    ] {
        assert!(!Expr::parse(src).unwrap().has_direct_shape(), "{src}");
    }
}
