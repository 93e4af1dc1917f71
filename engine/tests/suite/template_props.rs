//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, `Assign` values):
//! compiling arbitrary JSON never panics and either succeeds or reports a located
//! diagnostic; a compiled template printed back to definition form compiles to the same
//! template and builds the same value (print → parse round trip); evaluation never panics.

use bumpalo::Bump;
use proptest::prelude::*;
use sfn::diag::Diagnostics;
use sfn::eval::StaticEnv;
use sfn::intern::Interner;
use sfn::program::ConstPool;
use sfn::template::{Consts, Template};
use sfn::value::Value;

/// Values for `.$` keys: valid paths and intrinsic calls, and junk.
fn dynamic_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("$".to_owned()),
        "[a-z]{1,4}".prop_map(|k| format!("$.{k}")),
        "[a-z]{1,4}".prop_map(|k| format!("$.items[0].{k}")),
        Just("$$.Execution.Input".to_owned()),
        Just("$.items[*]".to_owned()),
        "[a-z]{1,4}".prop_map(|k| format!("States.Format('x{{}}', $.{k})")),
        Just("States.Array(1, 'a', $.n)".to_owned()),
        "\\PC{0,10}",
    ]
}

fn template_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i32>().prop_map(|i| serde_json::json!(i)),
        "[a-z$.]{0,6}".prop_map(serde_json::Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    });
    prop::collection::vec(
        prop_oneof![
            ("[a-z]{1,4}", value).prop_map(|(k, v)| (k, v)),
            ("[a-z]{1,4}", dynamic_text()).prop_map(|(k, v)| (format!("{k}.$"), serde_json::Value::String(v))),
            ("[a-z]{1,4}", any::<i32>()).prop_map(|(k, v)| (format!("{k}.$"), serde_json::json!(v))),
        ],
        0..6,
    )
    .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect()))
}

fn input(bump: &Bump) -> Value<'_> {
    sfn::value::parse_json(bump, br#"{"a":1,"ab":"x","n":2,"items":[{"a":5}],"abc":[1,2]}"#).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compile_round_trips_and_eval_never_panics(doc in template_json()) {
        let mut names = Interner::new();
        let mut consts = Consts::default();
        let mut diags = Diagnostics::new();
        let Some(t) = Template::compile(&doc, "/P", &mut names, &mut consts, &mut diags) else {
            prop_assert!(!diags.is_empty(), "no template and no diagnostic");
            prop_assert!(diags.items.iter().all(|d| d.location.starts_with("/P")));
            return Ok(());
        };
        prop_assert!(diags.is_empty());
        let printed = t.to_definition(&consts);
        prop_assert_eq!(&printed, &doc);

        let mut consts2 = Consts::default();
        let t2 = Template::compile(&printed, "/P", &mut names, &mut consts2, &mut diags).unwrap();
        let pool = ConstPool::build(&consts.values);
        let pool2 = ConstPool::build(&consts2.values);
        let bump = Bump::new();
        let env = StaticEnv::new(&bump, input(&bump));
        match (t.eval(&env, pool.values()), t2.eval(&env, pool2.values())) {
            (Ok(a), Ok(b)) => prop_assert!(a.json_eq(&b)),
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
        }
    }
}
