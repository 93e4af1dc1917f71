//! Properties of the arena JSON value: parsing untrusted bytes never panics and reports an
//! offset inside the text; print → parse round-trips; the payload-size check agrees with the
//! real serialised length (and so does a `ResultPath` output's composed bound); doubles print like Java and read back to the same double.

use bumpalo::Bump;
use proptest::prelude::*;
use sfn::value::{parse_json, Value};

fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
        "[\\x00-\\x1f\"\\\\a-z]{0,8}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-z\"\\\\]{0,5}", inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_and_locates_errors(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let bump = Bump::new();
        if let Err(e) = parse_json(&bump, &bytes) {
            prop_assert!(e.offset <= bytes.len());
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn print_parse_round_trips(doc in json_strategy()) {
        let bump = Bump::new();
        let v = Value::from_serde(&bump, &doc);
        let text = v.to_json_string();
        let back = parse_json(&bump, text.as_bytes()).unwrap();
        prop_assert!(back.json_eq(&v), "{} vs {}", back, text);
        prop_assert_eq!(back.to_json_string(), text.clone());
        // serde_json reads our text to the same document.
        let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
        prop_assert!(Value::from_serde(&bump, &theirs).json_eq(&v));
    }

    #[test]
    fn size_check_agrees_with_serialisation(doc in json_strategy(), limit in 0usize..400) {
        let bump = Bump::new();
        let v = Value::from_serde(&bump, &doc);
        let len = v.to_json_string().len();
        prop_assert_eq!(v.fits_json_len(limit), len <= limit);
        prop_assert_eq!(v.json_len_capped(usize::MAX), len);
        match v.json_bound(limit) {
            Some(bound) => prop_assert!(len <= bound && bound <= limit, "{len} {bound} {limit}"),
            None => prop_assert!(len > limit),
        }
    }

    /// The VM passes a `ResultPath` output without walking it when the bounds of its
    /// parts and the path's growth add up to no more than the limit: that sum must never
    /// be under the output's real length.
    #[test]
    fn result_path_outputs_stay_within_the_composed_bound(
        raw in json_strategy(),
        res in json_strategy(),
        steps in prop::collection::vec(prop_oneof!["[a-z\u{e9}]{1,4}".prop_map(|k| format!(".{k}")), (0usize..3).prop_map(|i| format!("[{i}]"))], 0..4),
    ) {
        let bump = Bump::new();
        let path = sfn::paths::ReferencePath::parse(&format!("${}", steps.concat())).unwrap();
        let (raw, res) = (Value::from_serde(&bump, &raw), Value::from_serde(&bump, &res));
        if let Ok(out) = path.set(&bump, raw, res) {
            let bound = raw.json_bound(usize::MAX).unwrap() + res.json_bound(usize::MAX).unwrap() + path.growth_bound();
            let len = out.to_json_string().len();
            prop_assert!(len <= bound, "{} at {} gives {} bytes, bound {}", res, path.text(), len, bound);
        }
    }

    #[test]
    fn doubles_print_like_java_and_round_trip(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let mut out = Vec::new();
        sfn::value::write_java_double(f, &mut out);
        let text = String::from_utf8(out).unwrap();
        prop_assert_eq!(text.parse::<f64>().unwrap(), f, "{}", text);
        let abs = f.abs();
        let scientific = abs != 0.0 && !(1e-3..1e7).contains(&abs);
        prop_assert_eq!(text.contains('E'), scientific, "{}", text);
        prop_assert!(text.contains('.'), "{}", text);
    }
}

#[test]
fn java_double_examples() {
    let fmt = |f: f64| {
        let mut out = Vec::new();
        sfn::value::write_java_double(f, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(fmt(1.0), "1.0");
    assert_eq!(fmt(0.001), "0.001");
    assert_eq!(fmt(0.0001), "1.0E-4");
    assert_eq!(fmt(1234567.0), "1234567.0");
    assert_eq!(fmt(12345678.0), "1.2345678E7");
    assert_eq!(fmt(-2.5e-10), "-2.5E-10");
    assert_eq!(fmt(f64::MAX), "1.7976931348623157E308");
    assert_eq!(fmt(5e-324), "4.9E-324");
}
