//! Runs `sfn::timestamp::parse` over every recorded Wait case that reads a timestamp
//! (`tests/conformance/cases/wait__*`): the timestamp must parse exactly when AWS accepted it.

use std::path::PathBuf;

use serde_json::Value as Json;

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases")
}

#[test]
fn wait_timestamps_parse_exactly_when_aws_accepted_them() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(cases_dir())
        .expect("conformance cases")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("wait__")))
        .collect();
    entries.sort();
    for path in entries {
        let case: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let states = case["definition"]["States"].as_object().unwrap();
        for state in states.values() {
            let text = match (&state["Timestamp"], &state["TimestampPath"]) {
                (Json::String(t), _) if !t.starts_with("{%") => t.clone(),
                (Json::String(_), _) | (_, Json::String(_)) => match &case["input"]["TimestampValue"] {
                    Json::String(t) => t.clone(),
                    _ => continue,
                },
                _ => continue,
            };
            let expected = &case["expected"];
            let aws_accepted = expected["status"] == "SUCCEEDED";
            if !aws_accepted {
                let cause = expected["cause"].as_str().unwrap_or("");
                assert!(cause.contains("ISO-8601"), "{}: unexpected failure {cause}", path.display());
            }
            assert_eq!(sfn::timestamp::parse(&text).is_some(), aws_accepted, "{}: {text:?}", path.display());
            checked += 1;
        }
    }
    // 2 literal Timestamp, 5 JSONata and 6 TimestampPath cases were recorded.
    assert_eq!(checked, 13, "number of recorded timestamp cases changed");
}
