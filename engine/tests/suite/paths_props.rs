//! Property tests for `paths`: parsing never panics (on any text, and on mutations of valid
//! paths); the canonical form parses back to an equal path; evaluation never panics and
//! keeps its contract (an indefinite path always yields an array); `ResultPath` placement
//! never panics and, when it succeeds, the value can be read back from where it was put.

use bumpalo::Bump;
use proptest::prelude::*;
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::paths::{Path, ReferencePath};
use sfn::value::Value;

/// Characters that steer the parser into its interesting corners.
const META: &str = "$@.[]'\"?()*:,-0123456789abcxyz =!<>~&|/\\{}é";

fn meta_char() -> impl Strategy<Value = char> {
    proptest::sample::select(META.chars().collect::<Vec<_>>())
}

fn meta_string() -> impl Strategy<Value = String> {
    prop::collection::vec(meta_char(), 0..40).prop_map(|cs| cs.into_iter().collect())
}

fn simple_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,4}"
}

/// Any name, written in bracket form with Jayway's escapes.
fn bracket_name() -> impl Strategy<Value = String> {
    "[a-z '\"\\\\\\]\\[.é()?@$*]{0,6}".prop_map(|n| {
        let mut out = String::from("['");
        for c in n.chars() {
            if c == '\\' || c == '\'' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("']");
        out
    })
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..1000).prop_map(|i| i.to_string()),
        (-100.0f64..100.0).prop_map(|f| format!("{f:.2}")),
        "[a-z0-9 ]{0,5}".prop_map(|s| format!("'{s}'")),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("null".to_owned()),
        Just("[1,'a',null]".to_owned()),
        Just("{'k':[1]}".to_owned()),
    ]
}

fn filter_path() -> impl Strategy<Value = String> {
    (prop_oneof![Just("@"), Just("$")], prop::collection::vec(simple_name(), 0..3))
        .prop_map(|(root, names)| format!("{root}{}", names.iter().map(|n| format!(".{n}")).collect::<String>()))
}

fn comparison() -> impl Strategy<Value = String> {
    let op = proptest::sample::select(vec![
        "==", "!=", "===", "!==", "<", "<=", ">", ">=", "in", "nin", "contains", "subsetof", "anyof", "noneof", "size",
        "empty",
    ]);
    prop_oneof![
        (filter_path(), op, literal()).prop_map(|(p, o, l)| format!("{p} {o} {l}")),
        (filter_path(), "[a-z.]{0,4}", any::<bool>())
            .prop_map(|(p, re, i)| format!("{p} =~ /{re}/{}", if i { "i" } else { "" })),
        filter_path(),
        filter_path().prop_map(|p| format!("!{p}")),
        (filter_path(), filter_path()).prop_map(|(a, b)| format!("{a} == {b}")),
    ]
}

fn filter_expr() -> impl Strategy<Value = String> {
    comparison().prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn step() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => simple_name().prop_map(|n| format!(".{n}")),
        2 => bracket_name(),
        1 => prop::collection::vec(bracket_name(), 2..4).prop_map(|ns| {
            // ['a']['b'] → ['a','b']
            let inner: Vec<String> = ns.iter().map(|n| n[1..n.len() - 1].to_owned()).collect();
            format!("[{}]", inner.join(","))
        }),
        3 => (-4i32..6).prop_map(|i| format!("[{i}]")),
        1 => prop::collection::vec(-4i32..6, 2..4)
            .prop_map(|is| format!("[{}]", is.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","))),
        1 => (prop::option::of(-4i32..6), prop::option::of(-4i32..6))
            .prop_filter("a slice needs a bound", |(a, b)| a.is_some() || b.is_some())
            .prop_map(|(a, b)| format!("[{}:{}]", a.map(|x| x.to_string()).unwrap_or_default(), b.map(|x| x.to_string()).unwrap_or_default())),
        1 => Just(".*".to_owned()),
        1 => Just("[*]".to_owned()),
        1 => simple_name().prop_map(|n| format!("..{n}")),
        1 => Just("..*".to_owned()),
        1 => (0i32..3).prop_map(|i| format!("..[{i}]")),
        1 => filter_expr().prop_map(|e| format!("[?({e})]")),
    ]
}

fn path_text() -> impl Strategy<Value = String> {
    (prop_oneof![3 => Just("$"), 1 => Just("$$"), 1 => Just("$v")], prop::collection::vec(step(), 0..6))
        .prop_map(|(root, steps)| format!("{root}{}", steps.concat()))
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        (-5i64..5).prop_map(serde_json::Value::from),
        (-5.0f64..5.0).prop_map(serde_json::Value::from),
        "[a-c5 ]{0,3}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-c_]{1,2}|v|x", inner), 0..5)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn mutate(text: &str, edits: &[(usize, u8, char)]) -> String {
    let mut cs: Vec<char> = text.chars().collect();
    for &(at, kind, c) in edits {
        let at = if cs.is_empty() { 0 } else { at % (cs.len() + 1) };
        match kind % 3 {
            0 if at < cs.len() => {
                cs.remove(at);
            }
            1 => cs.insert(at, c),
            _ if at < cs.len() => cs[at] = c,
            _ => cs.push(c),
        }
    }
    cs.into_iter().collect()
}

/// 512 cases per property unless `PROPTEST_CASES` asks for more (or fewer).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_any_text(text in any::<String>()) {
        let _ = Path::parse(&text, &mut Interner::new());
        let _ = ReferencePath::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_path_like_text(text in meta_string()) {
        let _ = Path::parse(&format!("${text}"), &mut Interner::new());
        let _ = Path::parse(&format!("$[?({text})]"), &mut Interner::new());
        let _ = ReferencePath::parse(&format!("${text}"));
    }

    #[test]
    fn parse_never_panics_on_mutated_paths(
        text in path_text(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), meta_char()), 1..4),
    ) {
        let mutated = mutate(&text, &edits);
        if let Ok(p) = Path::parse(&mutated, &mut Interner::new()) {
            // Whatever parses has a canonical form that parses to the same path.
            let again = Path::parse(&p.canonical(), &mut Interner::new());
            prop_assert!(again.as_ref() == Ok(&p), "{mutated} → {} → {again:?}", p.canonical());
        }
        let _ = ReferencePath::parse(&mutated);
    }

    #[test]
    fn canonical_form_round_trips(text in path_text()) {
        let mut names = Interner::new();
        let p = Path::parse(&text, &mut names);
        prop_assert!(p.is_ok(), "{text}: {p:?}");
        let p = p.unwrap();
        let canon = p.canonical();
        let again = Path::parse(&canon, &mut names);
        prop_assert!(again.as_ref() == Ok(&p), "{text} → {canon} → {again:?}");
        prop_assert_eq!(again.unwrap().canonical(), canon);
        prop_assert_eq!(p.to_string(), text);
    }

    #[test]
    fn eval_never_panics_and_keeps_its_contract(text in path_text(), doc in json(), var in json()) {
        let bump = Bump::new();
        let mut names = Interner::new();
        let p = Path::parse(&text, &mut names).unwrap();
        let input = Value::from_serde(&bump, &doc);
        let mut env = StaticEnv::new(&bump, input);
        env.context = input;
        env.variables.push((names.intern("v"), Value::from_serde(&bump, &var)));
        match p.eval(&env) {
            Ok(v) => prop_assert!(p.is_definite() || matches!(v, Value::Array(_)), "{text} gave {v}"),
            Err(e) => {
                prop_assert!(p.is_definite(), "{text} failed: {e}");
                prop_assert!(!e.message.is_empty());
            }
        }
        // The canonical form means the same thing.
        let again = Path::parse(&p.canonical(), &mut names).unwrap();
        let a = p.eval(&env).map(|v| v.to_json_string()).map_err(|e| e.message);
        let b = again.eval(&env).map(|v| v.to_json_string()).map_err(|e| e.message);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn result_path_places_values_where_paths_find_them(
        steps in prop::collection::vec(prop_oneof![simple_name().prop_map(|n| format!(".{n}")), (0usize..3).prop_map(|i| format!("[{i}]"))], 0..4),
        doc in json(),
    ) {
        let text = format!("${}", steps.concat());
        let rp = ReferencePath::parse(&text).unwrap();
        let bump = Bump::new();
        let target = Value::from_serde(&bump, &doc);
        let marker = Value::Str("marker");
        if let Ok(out) = rp.set(&bump, target, marker) {
            let read = Path::parse(&text, &mut Interner::new()).unwrap().eval_on(out, &bump);
            prop_assert_eq!(read.map(|v| v.to_json_string()), Ok("\"marker\"".to_owned()));
        }
    }
}
