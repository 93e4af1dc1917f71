//! Property tests for `sfn::choice` and `sfn::timestamp`.
//!
//! Choice: compiling any JSON object never panics and either yields a rule with no
//! diagnostic or reports at least one error; a compiled rule prints as JSON that compiles
//! back to the same rule; evaluation never panics on any input, and `Not`, `And` and `Or`
//! mean what they say. Timestamps: parsing never panics, what is written parses back, and
//! the accepted shapes agree with jiff on the instant.

use bumpalo::Bump;
use proptest::prelude::*;
use serde_json::{json, Map, Value as Json};
use sfn::choice::{java_compare, Rule};
use sfn::diag::Diagnostics;
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::timestamp::{self, Timestamp};
use sfn::value::Value;

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "StringMatches",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
    "StringEqualsPath",
    "StringLessThanPath",
    "StringGreaterThanPath",
    "StringLessThanEqualsPath",
    "StringGreaterThanEqualsPath",
    "NumericEqualsPath",
    "NumericLessThanPath",
    "NumericGreaterThanPath",
    "NumericLessThanEqualsPath",
    "NumericGreaterThanEqualsPath",
    "BooleanEqualsPath",
    "TimestampEqualsPath",
    "TimestampLessThanPath",
    "TimestampGreaterThanPath",
    "TimestampLessThanEqualsPath",
    "TimestampGreaterThanEqualsPath",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

const OTHER_KEYS: &[&str] = &[
    "Variable",
    "And",
    "Or",
    "Not",
    "Next",
    "Assign",
    "Comment",
    "Condition",
    "Output",
    "Bogus",
    "StringMatchesPath",
    "BooleanLessThan",
    "IsNothing",
    "",
];

/// Paths the rules read; `$.a`, `$.b`, `$.c.d` and `$.e[0]` are sometimes present in the
/// generated inputs, the others never.
const PATHS: &[&str] = &["$.a", "$.b", "$.c.d", "$.e[0]", "$", "$.missing", "$$.Execution.Id", "$v", "$nosuch"];

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-3i64..4).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![Just(0.0), Just(-0.0), Just(1.5), Just(2.0), Just(1e300)].prop_map(|f: f64| json!(f)),
        prop::sample::select(vec![
            "",
            "a",
            "b",
            "ab",
            "*",
            "\\*",
            "é",
            "\u{FF61}",
            "\u{1F600}",
            "2016-03-14T01:59:00Z",
            "2016-03-14T01:59:00.5+01:00",
            "2016-13-14T01:59:00Z",
            "2016-03-14t01:59z",
        ])
        .prop_map(|s| json!(s)),
        prop::sample::select(PATHS).prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Json::String),
    ]
}

fn any_json() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec(("[a-e]", inner), 0..4).prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

/// Arbitrary rule-shaped objects: random operator and field keys with random values,
/// nested through And/Or/Not.
fn any_rule_object() -> impl Strategy<Value = Json> {
    let key = prop_oneof![
        3 => prop::sample::select(OPERATORS).prop_map(String::from),
        2 => prop::sample::select(OTHER_KEYS).prop_map(String::from),
        1 => "[A-Za-z]{0,12}",
    ];
    let flat = prop::collection::vec((key.clone(), any_json()), 0..4)
        .prop_map(|kv| Json::Object(kv.into_iter().collect::<Map<_, _>>()));
    flat.prop_recursive(3, 24, 4, move |inner| {
        let value = prop_oneof![prop::collection::vec(inner.clone(), 0..3).prop_map(Json::Array), inner, any_json(),];
        prop::collection::vec((key.clone(), value), 0..4)
            .prop_map(|kv| Json::Object(kv.into_iter().collect::<Map<_, _>>()))
    })
}

/// A valid rule with one field added or replaced at the top, or one level down: mostly
/// invalid, sometimes still valid (`Comment`, `Next` at the top, a well-typed operand).
fn mutated_rule() -> impl Strategy<Value = Json> {
    let key = prop_oneof![
        prop::sample::select(OPERATORS).prop_map(String::from),
        prop::sample::select(OTHER_KEYS).prop_map(String::from),
    ];
    (valid_rule(), key, any_json(), any::<bool>()).prop_map(|(mut rule, key, value, deep)| {
        let target = match &mut rule {
            Json::Object(top) if deep => match top.values_mut().next() {
                Some(Json::Array(items)) => items.first_mut(),
                Some(nested @ Json::Object(_)) => Some(nested),
                _ => None,
            },
            _ => None,
        };
        match target {
            Some(Json::Object(fields)) => {
                fields.insert(key, value);
            }
            _ => {
                if let Json::Object(fields) = &mut rule {
                    fields.insert(key, value);
                }
            }
        }
        rule
    })
}

/// A well-typed operand for `op`.
fn operand(op: &'static str) -> BoxedStrategy<Json> {
    if op.ends_with("Path") {
        return prop::sample::select(PATHS).prop_map(|p| json!(p)).boxed();
    }
    if op.starts_with("Is") || op == "BooleanEquals" {
        return any::<bool>().prop_map(Json::Bool).boxed();
    }
    if op == "StringMatches" {
        return "[ab*\\\\.()]{0,6}".prop_map(Json::String).boxed();
    }
    if op.starts_with("String") {
        return prop_oneof![".{0,6}", "[ab]{0,3}"].prop_map(Json::String).boxed();
    }
    if op.starts_with("Numeric") {
        return prop_oneof![(-3i64..4).prop_map(|n| json!(n)), (-3.0f64..4.0).prop_map(|f| json!(f))].boxed();
    }
    prop::sample::select(vec!["2016-03-14T01:59:00Z", "2016-03-14T01:59:00.123456789-05:00", "1970-01-01T00:00Z"])
        .prop_map(|t| json!(t))
        .boxed()
}

/// Rules that compile: typed operands, composites with at least one member.
fn valid_rule() -> impl Strategy<Value = Json> {
    let test = (prop::sample::select(PATHS), prop::sample::select(OPERATORS))
        .prop_flat_map(|(variable, op)| operand(op).prop_map(move |v| json!({"Variable": variable, op: v})));
    test.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|rules| json!({"And": rules})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|rules| json!({"Or": rules})),
            inner.prop_map(|rule| json!({"Not": rule})),
        ]
    })
}

/// Inputs with `a`, `b`, `c.d` and `e[0]` sometimes present, of any type.
fn input() -> impl Strategy<Value = Json> {
    (
        prop::option::of(any_json()),
        prop::option::of(any_json()),
        prop::option::of(any_json()),
        prop::option::of(any_json()),
    )
        .prop_map(|(a, b, d, e)| {
            let mut obj = Map::new();
            if let Some(a) = a {
                obj.insert("a".into(), a);
            }
            if let Some(b) = b {
                obj.insert("b".into(), b);
            }
            if let Some(d) = d {
                obj.insert("c".into(), json!({ "d": d }));
            }
            if let Some(e) = e {
                obj.insert("e".into(), json!([e]));
            }
            Json::Object(obj)
        })
}

/// Whether a rule has a path rooted at `$$`: its `Variable` or a `…Path` operand (a
/// literal operand such as `"StringEquals": "$$"` is just a string).
fn reads_context(rule: &Json) -> bool {
    match rule {
        Json::Object(m) => m.iter().any(|(k, v)| match v {
            Json::String(s) => (k == "Variable" || k.ends_with("Path")) && s.starts_with("$$"),
            other => reads_context(other),
        }),
        Json::Array(items) => items.iter().any(reads_context),
        _ => false,
    }
}

fn compile(rule: &Json, names: &mut Interner) -> (Option<Rule>, Diagnostics) {
    let mut diags = Diagnostics::new();
    let compiled = Rule::compile(rule, "/States/C/Choices/0", false, names, &mut diags);
    (compiled, diags)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compile_never_panics_and_always_answers(rule in prop_oneof![any_rule_object(), valid_rule(), mutated_rule()]) {
        let (compiled, diags) = compile(&rule, &mut Interner::new());
        match compiled {
            Some(_) => prop_assert!(diags.is_empty(), "{:?}", diags.items),
            None => prop_assert!(diags.has_errors()),
        }
        for d in &diags.items {
            prop_assert!(d.location.starts_with("/States/C/Choices/0"), "{d}");
        }
    }

    #[test]
    fn compile_accepts_non_objects_with_a_diagnostic(value in any_json()) {
        let (compiled, diags) = compile(&value, &mut Interner::new());
        prop_assert_eq!(compiled.is_some(), !diags.has_errors());
    }

    #[test]
    fn display_round_trips(rule in valid_rule()) {
        let mut names = Interner::new();
        let (compiled, diags) = compile(&rule, &mut names);
        prop_assert!(diags.is_empty(), "{rule}: {:?}", diags.items);
        let compiled = compiled.unwrap();
        let printed = compiled.to_string();
        let reparsed: Json = serde_json::from_str(&printed).unwrap();
        let (again, diags) = compile(&reparsed, &mut names);
        prop_assert!(diags.is_empty());
        let again = again.unwrap();
        prop_assert_eq!(&again, &compiled);
        prop_assert_eq!(again.to_string(), printed);
    }

    #[test]
    fn eval_never_panics_and_composites_mean_what_they_say(rule in valid_rule(), input in input(), v in leaf()) {
        let mut names = Interner::new();
        let compiled = compile(&rule, &mut names).0.unwrap();
        let negated = compile(&json!({"Not": rule}), &mut names).0.unwrap();
        let both = compile(&json!({"And": [rule, rule]}), &mut names).0.unwrap();
        let either = compile(&json!({"Or": [rule]}), &mut names).0.unwrap();
        let bump = Bump::new();
        let mut env = StaticEnv::new(&bump, Value::from_serde(&bump, &input));
        env.variables.push((names.intern("v"), Value::from_serde(&bump, &v)));
        env.context = Value::from_serde(&bump, &json!({"Execution": {"Id": "arn:x"}}));
        let result = compiled.eval(&env);
        prop_assert_eq!(negated.eval(&env), result.clone().map(|b| !b));
        prop_assert_eq!(both.eval(&env), result.clone());
        prop_assert_eq!(either.eval(&env), result.clone());
        if let Err(e) = &result {
            prop_assert!(
                e.message.contains("The choice state's condition path references an invalid value.")
                    || e.message.starts_with("Invalid value provided at path"),
                "{}", e.message
            );
        }
        prop_assert_eq!(compiled.uses_context(), reads_context(&rule));
    }

    #[test]
    fn java_compare_is_utf16_order(a in ".{0,6}", b in ".{0,6}", prefix in ".{0,3}") {
        let (a, b) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
        prop_assert_eq!(java_compare(&a, &b), a.encode_utf16().cmp(b.encode_utf16()));
    }

    #[test]
    fn timestamp_parse_never_panics(s in ".{0,40}") {
        let _ = timestamp::parse(&s);
    }

    #[test]
    fn timestamp_parse_never_panics_on_near_misses(
        s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{0,10})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2}(:[0-9]{2})?)?)?"
    ) {
        if let Some(ts) = timestamp::parse(&s) {
            // Whatever parses is a real instant that prints.
            prop_assert_eq!(ts.format_iso_millis().len(), 24);
        }
    }

    #[test]
    fn timestamp_format_parse_round_trip(nanos in -62_167_219_200_000_000_000i128..253_402_300_799_999_999_999i128) {
        // Years 0000 to 9999: the four-digit years AWS's grammar has.
        let ts = Timestamp::from_unix_nanos(nanos);
        let text = ts.format_iso_millis();
        prop_assert_eq!(timestamp::parse(&text), Some(Timestamp::from_unix_millis(ts.unix_millis())), "{}", text);
    }

    #[test]
    fn timestamp_parse_agrees_with_jiff(
        secs in -62_167_219_200i64..253_402_300_799i64,
        nanos in 0u32..1_000_000_000,
        offset_minutes in -18 * 60..=18 * 60i32,
        digits in 0usize..=9,
        lower in any::<bool>(),
    ) {
        let instant = jiff::Timestamp::new(secs, nanos as i32).unwrap();
        let offset = jiff::tz::Offset::from_seconds(offset_minutes * 60).unwrap();
        let civil = offset.to_datetime(instant);
        let year = civil.year();
        prop_assume!((0..=9999).contains(&year));
        let fraction = format!("{:09}", civil.subsec_nanosecond());
        let zone = if offset_minutes == 0 && lower {
            "z".to_string()
        } else {
            let m = offset_minutes.abs();
            format!("{}{:02}:{:02}", if offset_minutes < 0 { '-' } else { '+' }, m / 60, m % 60)
        };
        let text = format!(
            "{year:04}-{:02}-{:02}{}{:02}:{:02}:{:02}.{}{zone}",
            civil.month(),
            civil.day(),
            if lower { 't' } else { 'T' },
            civil.hour(),
            civil.minute(),
            civil.second(),
            &fraction[..digits],
        );
        let truncated = (instant.as_nanosecond() - i128::from(civil.subsec_nanosecond()))
            + i128::from(fraction[..digits].parse::<u32>().unwrap_or(0)) * 10i128.pow(9 - digits as u32);
        prop_assert_eq!(timestamp::parse(&text).map(Timestamp::unix_nanos), Some(truncated), "{}", text);
    }
}
