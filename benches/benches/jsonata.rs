//! Guards the cost of JSONata expressions (`sfn::jsonata`) at the crate boundary, to know
//! what a JSONata-mode state pays beside its JSONPath twin (whole executions of both are
//! `execute/rider` and `execute/rider-jsonata`).
//!
//! - `jsonata/parse/*`: `Expr::parse`, done once per expression at compile time.
//! - `jsonata/eval/*`: `Expr::eval` into a reset arena, done per state per execution:
//!   `$states` conversion in, evaluation by the crate, result conversion out. `path` reads one
//!   field (`$states.input.userId`, the commonest expression), `output` builds an object
//!   from five fields of a rider-photo-sized input with two built-in calls, `whole` returns
//!   `$states.input` unchanged (conversion both ways dominates).
//! - `jsonata/boundary/rider`: the conversion alone, arena value → crate value → arena value,
//!   for the rider-photo workflow's final payload (`benches/data/rider.output.json`: 316
//!   bytes, nested objects, five doubles), the size of a typical state input.
//!
//! Each expression's result is checked once before timing.

use std::hint::black_box;

use bumpalo::Bump;
use criterion::{criterion_group, criterion_main, Criterion};
use sfn::jsonata::{boundary_round_trip, Bindings, Expr};
use sfn::value::{parse_json, Value};

// mimalloc, as in the `sfn` and `loadgen` binaries, so these figures are comparable with
// the other benches'.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RIDER: &[u8] = include_bytes!("../data/rider.output.json");

const EXPRESSIONS: [(&str, &str, &str); 3] = [
    ("path", "$states.input.userId", r#""user_a""#),
    (
        "output",
        "{'user': $states.input.userId, 'key': $states.input.s3Key, \
          'confidence': $round($states.input.detectedFaceDetails.Confidence, 1), \
          'faceId': $states.input.parallelResult[0], \
          'thumbnail': $uppercase($states.input.parallelResult[1].thumbnail.s3key)}",
        r#"{"user":"user_a","key":"1_happy_face.jpg","confidence":100,"faceId":"face-user_a-a1b2c3d4","thumbnail":"RESIZED-1_HAPPY_FACE.JPG"}"#,
    ),
    ("whole", "$states.input", ""),
];

fn jsonata(c: &mut Criterion) {
    let input_arena = Bump::new();
    let rider = parse_json(&input_arena, RIDER).expect("valid JSON");
    let context = parse_json(
        &input_arena,
        br#"{"Execution":{"Id":"arn:aws:states:us-east-1:111111111111:execution:M:e","Name":"e"},"State":{"Name":"S","EnteredTime":"2024-01-01T00:00:00.000Z"}}"#,
    )
    .unwrap();
    let states = sfn::value::object(&input_arena, &[("input", rider), ("context", context)]);
    let no_variables = |_: &str| None;
    let bindings = Bindings { states: Some(states), variables: &no_variables, random_seed: 1, now_millis: 0 };

    let mut group = c.benchmark_group("jsonata");
    for (name, src, expected) in EXPRESSIONS {
        let expr = Expr::parse(src).expect("valid expression");
        let check = Bump::new();
        let out = expr.eval(&check, None, &bindings).expect("evaluates").to_json_string();
        let expected = if expected.is_empty() { rider.to_json_string() } else { expected.to_owned() };
        assert_eq!(out, expected, "{name}");

        group.bench_function(format!("parse/{name}"), |b| b.iter(|| Expr::parse(black_box(src)).unwrap()));
        let mut arena = Bump::new();
        group.bench_function(format!("eval/{name}"), |b| {
            b.iter(|| {
                arena.reset();
                let v: Value<'_> = expr.eval(&arena, None, black_box(&bindings)).unwrap();
                black_box(v);
            })
        });
    }
    let mut arena = Bump::new();
    assert_eq!(boundary_round_trip(&arena, rider).unwrap().to_json_string(), rider.to_json_string());
    group.bench_function("boundary/rider", |b| {
        b.iter(|| {
            arena.reset();
            black_box(boundary_round_trip(&arena, black_box(rider)));
        })
    });
    group.finish();
}

criterion_group!(benches, jsonata);
criterion_main!(benches);
