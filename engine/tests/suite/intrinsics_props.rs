//! Property tests for the intrinsic-function parser and evaluator.
//!
//! Guards: parsing never panics (arbitrary text, token soup, and mutations of valid calls);
//! printing a parsed call and parsing it again gives an equal call and the same text;
//! evaluating any valid call against any input never panics.

use bumpalo::Bump;
use proptest::prelude::*;
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::intrinsics::Call;
use sfn::value::Value;

const PATHS: &[&str] = &[
    "$",
    "$.a",
    "$.b",
    "$.s",
    "$.n",
    "$.a.b",
    "$.a[0]",
    "$.c[1].a",
    "$['a b']",
    "$$.Execution.Input",
    "$$.Execution.Input.a",
    "$$.Nope",
    "$v",
    "$v.a",
];

const ALGORITHMS: &[&str] = &["'MD5'", "'SHA-1'", "'SHA-256'", "'SHA-384'", "'SHA-512'"];

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(PATHS).prop_map(str::to_owned)
}

/// Escapes the reserved characters of an intrinsic string literal.
fn escape(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        if matches!(c, '\'' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn string_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z{}'\\\\ ,()$.=\n]{0,8}".prop_map(|s| escape(&s)),
        prop::sample::select(&["'{\"a\":1}'", "'[1,2]'", "'aGVsbG8='", "'-1'", "'a,b'"][..])
            .prop_map(|s| escape(&s[1..s.len() - 1])),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        (-20i64..20).prop_map(|i| i.to_string()),
        (-1.0e6f64..1.0e6).prop_map(|x| format!("{x}")),
        any::<i64>().prop_map(|i| i.to_string()),
        prop::sample::select(&["1e3", "-2.5E-2", "0.5", "1e300", "12345678901234567890"][..]).prop_map(str::to_owned),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => string_lit(),
        2 => number(),
        1 => prop::sample::select(&["true", "false", "null"][..]).prop_map(str::to_owned),
        3 => path(),
    ]
}

fn sep() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&[",", ", ", " ,\t", ",\n  "][..])
}

fn join(args: &[String], sep: &str) -> String {
    args.join(sep)
}

/// A call that passes the static checks, nesting at most `1 + 2 * depth` deep.
fn call(depth: u32) -> BoxedStrategy<String> {
    let any_arg: BoxedStrategy<String> =
        if depth == 0 { leaf().boxed() } else { prop_oneof![3 => leaf(), 1 => call(depth - 1)].boxed() };
    // Something that is not a literal: a path or a call.
    let dynamic: BoxedStrategy<String> = if depth == 0 {
        path().boxed()
    } else {
        prop_oneof![2 => path(), 1 => call(depth - 1).prop_map(|c| format!("States.Array({c})"))].boxed()
    };
    let num = prop_oneof![number(), path(), Just("States.ArrayLength($.c)".to_owned())].boxed();
    let text = prop_oneof![string_lit(), path()].boxed();
    prop_oneof![
        (prop::collection::vec(any_arg.clone(), 0..4), sep())
            .prop_map(|(a, s)| format!("States.Array({})", join(&a, s))),
        (prop::collection::vec(any_arg.clone(), 0..3), "[a-z ]{0,3}", sep()).prop_map(|(a, filler, s)| {
            let template: String = a.iter().map(|_| format!("{filler}{{}}")).collect();
            let mut args = vec![format!("'{template}{filler}'")];
            args.extend(a);
            format!("States.Format({})", join(&args, s))
        }),
        // A template from a path is only checked at run time.
        (path(), prop::collection::vec(any_arg.clone(), 0..2)).prop_map(|(t, a)| {
            let rest: String = a.iter().map(|x| format!(", {x}")).collect();
            format!("States.Format({t}{rest})")
        }),
        text.clone().prop_map(|t| format!("States.StringToJson({t})")),
        dynamic.clone().prop_map(|d| format!("States.JsonToString({d})")),
        (dynamic.clone(), num.clone()).prop_map(|(d, n)| format!("States.ArrayPartition({d}, {n})")),
        (dynamic.clone(), any_arg.clone()).prop_map(|(d, v)| format!("States.ArrayContains({d}, {v})")),
        (num.clone(), num.clone(), num.clone()).prop_map(|(a, b, c)| format!("States.ArrayRange({a}, {b}, {c})")),
        (dynamic.clone(), num.clone()).prop_map(|(d, n)| format!("States.ArrayGetItem({d},{n})")),
        dynamic.clone().prop_map(|d| format!("States.ArrayLength({d})")),
        dynamic.clone().prop_map(|d| format!("States.ArrayUnique( {d} )")),
        text.clone().prop_map(|t| format!("States.Base64Encode({t})")),
        text.clone().prop_map(|t| format!("States.Base64Decode({t})")),
        (any_arg.clone(), prop::sample::select(ALGORITHMS)).prop_map(|(d, a)| format!("States.Hash({d}, {a})")),
        (dynamic.clone(), dynamic.clone(), prop_oneof![Just("false".to_owned()), path()])
            .prop_map(|(a, b, f)| format!("States.JsonMerge({a}, {b}, {f})")),
        (num.clone(), num.clone(), prop::option::of(num.clone())).prop_map(|(a, b, s)| {
            match s {
                Some(s) => format!("States.MathRandom({a}, {b}, {s})"),
                None => format!("States.MathRandom({a}, {b})"),
            }
        }),
        (num.clone(), num.clone()).prop_map(|(a, b)| format!("States.MathAdd({a}, {b})")),
        (text.clone(), text.clone()).prop_map(|(a, b)| format!("States.StringSplit({a}, {b})")),
        Just("States.UUID()".to_owned()),
    ]
    .boxed()
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        (-1.0e9f64..1.0e9).prop_map(J::from),
        "[a-z{} ,=A-Z0-9+/]{0,12}".prop_map(J::String),
        Just(J::String("{}".into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::vec((prop::sample::select(&["a", "b", "c", "s", "n", "a b"][..]), inner), 0..4)
                .prop_map(|kv| J::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// Applies small edits at character boundaries.
fn mutate(text: &str, edits: &[(usize, usize, u8)]) -> String {
    const TOKENS: &[&str] =
        &["(", ")", ",", "'", "\\", "$", "$$", "States.", "{}", "[", "]", " ", "1e9999", "-", ".", "\u{e9}"];
    let mut s = text.to_owned();
    for &(at, len, op) in edits {
        let boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let a = boundaries[at % boundaries.len()];
        let b = boundaries[(at + len % 6) % boundaries.len()].max(a);
        match op % 3 {
            0 => s.replace_range(a..b, ""),
            1 => s.insert_str(a, TOKENS[(len + op as usize) % TOKENS.len()]),
            _ => {
                let dup = s[a..b].to_owned();
                s.insert_str(b, &dup);
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = Call::parse(&text, &mut Interner::new());
        let _ = Call::parse(&format!("States.Array({text})"), &mut Interner::new());
    }

    #[test]
    fn parse_never_panics_on_token_soup(tokens in prop::collection::vec(prop::sample::select(&[
        "States.", "Format", "Array", "Hash", "(", ")", ",", " ", "'", "\\", "'x'", "{}", "{", "}",
        "$", "$$", ".a", "[0]", "['a'", "]", "1", "-", "1e5", "true", "null", "\u{1F600}",
    ][..]), 0..24)) {
        let text: String = tokens.concat();
        let _ = Call::parse(&text, &mut Interner::new());
    }

    #[test]
    fn parse_never_panics_on_mutated_calls(
        text in call(2),
        edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mutated = mutate(&text, &edits);
        let _ = Call::parse(&mutated, &mut Interner::new());
    }

    #[test]
    fn print_then_parse_round_trips(text in call(3)) {
        let mut names = Interner::new();
        let first = Call::parse(&text, &mut names)
            .map_err(|e| TestCaseError::fail(format!("generated call does not parse: {e}")))?;
        prop_assert_eq!(first.text(), text.as_str());
        let printed = first.to_string();
        let second = Call::parse(&printed, &mut names)
            .map_err(|e| TestCaseError::fail(format!("printed call does not parse: {printed}: {e}")))?;
        prop_assert_eq!(&second, &first);
        prop_assert_eq!(second.to_string(), printed);
    }

    #[test]
    fn eval_never_panics(text in call(3), input in json(), seed in any::<u64>()) {
        let mut names = Interner::new();
        let call = Call::parse(&text, &mut names).unwrap();
        let bump = Bump::new();
        let input = Value::from_serde(&bump, &input);
        let mut env = StaticEnv::new(&bump, input);
        env.context = Value::from_serde(&bump, &serde_json::json!({"Execution": {"Input": input.to_serde()}}));
        env.variables.push((names.intern("v"), input));
        env.seed.set(seed);
        match call.eval(&env) {
            Ok(v) => { let _ = v.to_json_string(); }
            Err(e) => prop_assert!(e.message.starts_with("The function '"), "{}", e.message),
        }
    }
}
