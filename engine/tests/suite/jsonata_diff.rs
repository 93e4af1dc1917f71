//! Differential test of the JSONata module against the reference implementation: every
//! expression of `tests/jsonata/*.jsonl` (each `{% ... %}` of the JSONata conformance cases,
//! and a sample of jsonata-js's own test suite; see `tests/jsonata/README.md`) runs through
//! `sfn::jsonata::Expr` and through jsonata-js 2.0.6, the version AWS runs, under node
//! (`tests/jsonata/node/run.js`). Results are compared as compact JSON text (so key order
//! and integer-versus-double matter), `undefined` as such, and errors by their
//! `<code>: <message>` text, which is what AWS quotes in a cause.
//!
//! `tests/jsonata/known-disagreements.txt` lists each known disagreement (expression id,
//! kind, reason). The test fails when an unlisted disagreement appears and when a listed one
//! disappears. `UPDATE_KNOWN_DISAGREEMENTS=1` rewrites the list from the current ones,
//! keeping the reasons already written.
//!
//! The reference needs node and the pinned package (`npm ci --prefix tests/jsonata/node`,
//! which `.ci/run` does). Without them the test fails when `CI=true` and otherwise prints a
//! loud skip notice.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bumpalo::Bump;
use serde_json::Value as Json;
use sfn::jsonata::{Bindings, Expr, QueryError};
use sfn::value::Value;

/// The jsonata-js version AWS Step Functions runs (AWS developer guide).
const REFERENCE_VERSION: &str = "2.0.6";
const LISTS: [&str; 3] = ["conformance-exprs.jsonl", "asl-exprs.jsonl", "suite-sample.jsonl"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/jsonata")
}

/// What evaluating an expression gave, in comparable form.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Compact JSON text of the result.
    Value(String),
    Undefined,
    /// `<code>: <message>` (or the message alone when there is no code), and the code.
    Error {
        code: Option<String>,
        message: String,
    },
}

impl Outcome {
    fn describe(&self) -> String {
        let mut s = match self {
            Outcome::Value(v) => v.clone(),
            Outcome::Undefined => "undefined".into(),
            Outcome::Error { message, .. } => format!("error {message}"),
        };
        if s.len() > 160 {
            let mut end = 160;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
        }
        s
    }
}

fn load_cases() -> Vec<Json> {
    let mut cases = Vec::new();
    for list in LISTS {
        let text = std::fs::read_to_string(dir().join(list)).unwrap_or_else(|e| panic!("{list}: {e}"));
        cases.extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str::<Json>(l).unwrap()));
    }
    cases
}

/// Our side: the module as the VM will call it.
fn ours(case: &Json) -> Outcome {
    let expr = match Expr::parse(case["expr"].as_str().unwrap()) {
        Ok(e) => e,
        Err(e) => return Outcome::Error { code: e.code.clone(), message: e.message },
    };
    let bump = Bump::new();
    let input = case.get("input").map(|v| Value::from_serde(&bump, v));
    let bindings = case.get("bindings").and_then(Json::as_object);
    let states = bindings.and_then(|b| b.get("states")).map(|v| Value::from_serde(&bump, v));
    let lookup = |name: &str| bindings.and_then(|b| b.get(name)).map(|v| Value::from_serde(&bump, v));
    let b = Bindings { states, variables: &lookup, random_seed: 1, now_millis: 0 };
    // A case without "input" runs with `$` undefined, on both sides.
    match expr.eval(&bump, input, &b) {
        Ok(v) => Outcome::Value(v.to_json_string()),
        Err(QueryError::Undefined) => Outcome::Undefined,
        Err(e @ QueryError::Evaluation { .. }) => {
            let code = e.code().map(str::to_owned);
            let QueryError::Evaluation { message } = e else { unreachable!() };
            Outcome::Error { code, message }
        }
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

/// The reference side, or why it cannot run.
fn reference(cases: &[Json]) -> Result<HashMap<String, Outcome>, String> {
    let node_dir = dir().join("node");
    let pkg = node_dir.join("node_modules/jsonata/package.json");
    let pkg: Json = match std::fs::read_to_string(&pkg) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", pkg.display()))?,
        Err(_) => return Err(format!("{} is missing: run `npm ci --prefix tests/jsonata/node`", pkg.display())),
    };
    if pkg["version"] != REFERENCE_VERSION {
        // A wrong version is a broken set-up, not a reason to skip.
        panic!("tests/jsonata/node has jsonata {} installed, not {REFERENCE_VERSION}: run `npm ci`", pkg["version"]);
    }
    let mut child = Command::new("node")
        .arg(node_dir.join("run.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let mut input = Vec::new();
    for case in cases {
        serde_json::to_writer(&mut input, case).unwrap();
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| format!("node: {e}"))?;
    writer.join().unwrap().map_err(|e| format!("writing to node: {e}"))?;
    assert!(output.status.success(), "tests/jsonata/node/run.js failed: {}", output.status);
    let bump = Bump::new();
    let mut out = HashMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let r: Json = serde_json::from_str(line).unwrap();
        let outcome = if let Some(v) = r.get("value") {
            // Through the engine's value, so numbers are compared as the engine would keep
            // what JavaScript printed (`3` an integer, `1e+21` a double).
            Outcome::Value(Value::from_serde(&bump, v).to_json_string())
        } else if r.get("undefined").is_some() {
            Outcome::Undefined
        } else {
            let e = &r["error"];
            Outcome::Error {
                code: e["code"].as_str().map(str::to_owned),
                message: e["message"].as_str().unwrap().to_owned(),
            }
        };
        out.insert(r["id"].as_str().unwrap().to_owned(), outcome);
    }
    assert_eq!(out.len(), cases.len(), "node answered {} of {} expressions", out.len(), cases.len());
    Ok(out)
}

/// The kind of a disagreement, or `None` when both agree.
fn disagreement(ours: &Outcome, theirs: &Outcome) -> Option<&'static str> {
    match (ours, theirs) {
        _ if ours == theirs => None,
        (Outcome::Value(_), Outcome::Value(_)) => Some("value"),
        (Outcome::Error { code: a, .. }, Outcome::Error { code: b, .. }) if a == b => Some("message"),
        (Outcome::Error { .. }, Outcome::Error { .. }) => Some("code"),
        _ => Some("outcome"),
    }
}

fn read_known() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(dir().join("known-disagreements.txt")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(3, "  ");
            let id = parts.next().unwrap().to_owned();
            let kind = parts.next().unwrap_or("").to_owned();
            let reason = parts.next().unwrap_or("").to_owned();
            (id, (kind, reason))
        })
        .collect()
}

#[test]
fn jsonata_agrees_with_the_reference_implementation() {
    let cases = load_cases();
    let mut ids = std::collections::HashSet::new();
    for c in &cases {
        assert!(ids.insert(c["id"].as_str().unwrap()), "duplicate id {}", c["id"]);
    }
    let theirs = match reference(&cases) {
        Ok(r) => r,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the JSONata reference cannot run in CI: {why}")
        }
        Err(why) => {
            eprintln!("\n{}\nSKIPPED jsonata_diff: {why}\n{}\n", "!".repeat(72), "!".repeat(72));
            return;
        }
    };
    let mut found: BTreeMap<String, (&'static str, String)> = BTreeMap::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let ours = ours(case);
        let reference = &theirs[id];
        if let Some(kind) = disagreement(&ours, reference) {
            let detail = format!("ours: {} | jsonata-js: {}", ours.describe(), reference.describe());
            found.insert(id.to_owned(), (kind, detail));
        }
    }
    let from = |prefix: &str| cases.iter().filter(|c| c["id"].as_str().unwrap().starts_with(prefix)).count();
    let (conformance, asl, suite) = (from("conformance/"), from("asl/"), from("suite/"));
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, _) in found.values() {
        *by_kind.entry(kind).or_default() += 1;
    }
    println!(
        "jsonata_diff: {} expressions ({conformance} from conformance cases, {asl} written for ASL's concerns, \
         {suite} from the jsonata-js suite); {} agree, {} disagree {by_kind:?}",
        cases.len(),
        cases.len() - found.len(),
        found.len()
    );
    let known = read_known();
    if std::env::var_os("UPDATE_KNOWN_DISAGREEMENTS").is_some() {
        let mut text = String::from(
            "# Expressions on which sfn::jsonata and jsonata-js 2.0.6 disagree, one per line:\n\
             # id, kind (value | outcome | code | message), reason. Checked by engine/tests/suite/jsonata_diff.rs:\n\
             # an unlisted disagreement, or a listed one that went away, fails the test.\n",
        );
        for (id, (kind, detail)) in &found {
            let reason = known.get(id).map(|(_, r)| r.clone()).unwrap_or_else(|| detail.clone());
            text.push_str(&format!("{id}  {kind}  {reason}\n"));
        }
        std::fs::write(dir().join("known-disagreements.txt"), text).unwrap();
        return;
    }
    let mut problems = 0;
    for (id, (kind, detail)) in &found {
        match known.get(id) {
            None => {
                println!("NEW DISAGREEMENT {id} ({kind}): {detail}");
                problems += 1;
            }
            Some((k, _)) if k != kind => {
                println!("CHANGED DISAGREEMENT {id}: listed as {k}, now {kind}: {detail}");
                problems += 1;
            }
            Some(_) => {}
        }
    }
    for id in known.keys().filter(|id| !found.contains_key(*id)) {
        println!("NOW AGREES (remove from known-disagreements.txt): {id}");
        problems += 1;
    }
    assert_eq!(problems, 0, "the disagreements differ from tests/jsonata/known-disagreements.txt (see above)");
}
