//! Differential test against `serde_json_path` (RFC 9535) on the subset where Jayway and
//! the RFC agree by definition: names, indexes (negative ones too), `*`, slices with a
//! non-negative start, and `..name`, with at most one step that can select several nodes.
//! (Outside it they differ on purpose: Jayway merges `['a','b']`, counts a negative slice
//! start from the end per index, aborts when `*` meets a scalar mid-path, and orders `..*`
//! by level.) A definite path's value must be the RFC's single node, its failure the
//! RFC's empty node list; an indefinite path's array must be the RFC's node list.

use bumpalo::Bump;
use proptest::prelude::*;
use serde_json::Value as Json;
use serde_json_path::JsonPath;
use sfn::intern::Interner;
use sfn::paths::Path;
use sfn::value::Value;

fn name() -> impl Strategy<Value = String> {
    "[a-c_]{1,2}|v|x"
}

/// Steps that select at most one node each.
fn single_step() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => name().prop_map(|n| format!(".{n}")),
        1 => name().prop_map(|n| format!("['{n}']")),
        2 => (-3i32..4).prop_map(|i| format!("[{i}]")),
    ]
}

/// Steps that may select several nodes.
fn multi_step() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[*]".to_owned()),
        Just(".*".to_owned()),
        (0i32..4, 0i32..5).prop_map(|(a, b)| format!("[{a}:{b}]")),
        (0i32..4).prop_map(|a| format!("[{a}:]")),
        (-3i32..4).prop_map(|b| format!("[:{b}]")),
        (-3i32..0).prop_map(|a| format!("[{a}:]")),
        (0i32..3, 0i32..3).prop_map(|(a, b)| format!("[{a},{b}]")),
        name().prop_map(|n| format!("..{n}")),
    ]
}

fn path_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(single_step(), 0..3),
        prop::option::of(multi_step()),
        prop::collection::vec(single_step(), 0..3),
    )
        .prop_map(|(a, m, b)| format!("${}{}{}", a.concat(), m.unwrap_or_default(), b.concat()))
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-5i64..5).prop_map(Json::from),
        "[a-c]{0,2}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((name(), inner), 0..5).prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

/// 1024 cases unless `PROPTEST_CASES` asks for more (or fewer).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_rfc9535_where_both_define_the_result(text in path_text(), doc in json()) {
        let rfc = JsonPath::parse(&text).map_err(|e| format!("{text}: {e}")).unwrap();
        let expected: Vec<Json> = rfc.query(&doc).all().into_iter().cloned().collect();
        let path = Path::parse(&text, &mut Interner::new()).unwrap();
        let bump = Bump::new();
        let got = path.eval_on(Value::from_serde(&bump, &doc), &bump);
        if path.is_definite() {
            match got {
                Ok(v) => prop_assert_eq!(vec![v.to_serde()], expected, "{}", text),
                Err(e) => prop_assert!(expected.is_empty(), "{text}: {} but RFC found {expected:?}", e.message),
            }
        } else {
            let got = got.unwrap().to_serde();
            prop_assert_eq!(got, Json::Array(expected), "{}", text);
        }
    }
}
