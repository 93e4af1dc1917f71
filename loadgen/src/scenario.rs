//! `scenario`: what a run starts: one or more workflows (components), each with its
//! definition, input, task handlers or mocks, expected output and weight in the mix.
//!
//! Input: a scenario name, or definition/input/mock files. Output: [`Scenario`]. Never
//! touches: the engine (targets register the components), the clock.
//!
//! Built-in workflows are compiled into the binary (`benches/data/`, `examples/`,
//! `loadgen/data/`), so loadgen runs from a fresh clone without anything beside the
//! repository. Each built-in component carries its expected output, which a target checks
//! once before any load: a scenario that changed behaviour fails loudly instead of looking
//! fast.

use std::path::Path;

use sfn::handlers::{Handler, Registry, TaskContext, TaskError};
use sfn::mocks::{parse_mocks, MockSet};
use sfn::validate::MachineType;
use sfn::value::{Arena, Value};
use sfn_benches::Workload;

/// The built-in scenarios, as named on the command line.
pub const NAMES: [&str; 7] = ["pass4", "rider", "rider-jsonata", "choice-loop", "map100", "checkpoint", "mixed"];

/// One workflow of a scenario.
#[derive(Clone)]
pub struct Component {
    /// The state machine's name (AWS naming rules).
    pub name: String,
    pub definition: Vec<u8>,
    /// Where the definition came from, for messages.
    pub definition_source: String,
    pub input: Vec<u8>,
    pub input_source: String,
    pub machine_type: MachineType,
    pub handlers: Registry,
    pub mocks: Option<MockSet>,
    /// The compact JSON output every execution must produce (built-in components only).
    pub expected_output: Option<String>,
    /// Share of the starts, relative to the other components' weights.
    pub weight: u32,
}

/// What a run starts.
#[derive(Clone)]
pub struct Scenario {
    pub name: String,
    pub components: Vec<Component>,
}

impl Scenario {
    /// Every component is built in (so every execution must succeed with its expected
    /// output).
    pub fn built_in(&self) -> bool {
        self.components.iter().all(|c| c.expected_output.is_some())
    }

    pub fn weights(&self) -> Vec<u32> {
        self.components.iter().map(|c| c.weight).collect()
    }
}

/// A built-in scenario by name.
pub fn built_in(name: &str) -> Result<Scenario, String> {
    let components = match name {
        "pass4" => vec![workload(Workload::Pass4, 1)],
        "rider" => vec![workload(Workload::Rider, 1)],
        "rider-jsonata" => vec![workload(Workload::RiderJsonata, 1)],
        "choice-loop" => vec![workload(Workload::ChoiceLoop, 1)],
        "map100" => vec![workload(Workload::Map100, 1)],
        "checkpoint" => vec![checkpoint(1)],
        // Mostly short executions, as a service sees them, with a share that parks on a
        // timer (one-second Wait) and a few long ones (100-iteration loop, 100-item Map).
        "mixed" => vec![
            workload(Workload::Pass4, 30),
            workload(Workload::Rider, 30),
            checkpoint(20),
            wait(15),
            workload(Workload::ChoiceLoop, 4),
            workload(Workload::Map100, 1),
        ],
        other => {
            return Err(format!("unknown scenario {other:?}; the built-in scenarios are {}", NAMES.join(", ")));
        }
    };
    Ok(Scenario { name: name.to_owned(), components })
}

/// Files given on the command line, and the scenario whose handlers and input they use.
pub struct Files<'a> {
    pub definition: Option<&'a Path>,
    pub input: Option<&'a Path>,
    pub mocks: Option<&'a Path>,
    /// MockConfigFile test case and state machine (default: the file's only one).
    pub test_case: Option<&'a str>,
    pub mock_machine: Option<&'a str>,
}

/// The scenario to run: `base` (a built-in name, or `None` for "a definition file"),
/// with its definition, input or mocks replaced by files. Replacing anything makes the
/// component custom: its output is no longer checked.
pub fn resolve(base: Option<&str>, files: &Files<'_>) -> Result<Scenario, String> {
    let custom = files.definition.is_some() || files.input.is_some() || files.mocks.is_some();
    let Some(mut scenario) = base.map(built_in).transpose()? else {
        let Some(def) = files.definition else {
            return Err("give --scenario NAME or --definition FILE".into());
        };
        let name = machine_name(def);
        let component = Component {
            name: name.clone(),
            definition: Vec::new(),
            definition_source: String::new(),
            input: b"{}".to_vec(),
            input_source: "{} (no --input given)".into(),
            machine_type: MachineType::Express,
            handlers: Registry::new(),
            mocks: None,
            expected_output: None,
            weight: 1,
        };
        let mut s = Scenario { name, components: vec![component] };
        apply_files(&mut s.components[0], files)?;
        return Ok(s);
    };
    if custom {
        if scenario.components.len() > 1 {
            return Err(format!(
                "--definition, --input and --mocks replace a single workflow; scenario {:?} mixes {}",
                scenario.name,
                scenario.components.len()
            ));
        }
        apply_files(&mut scenario.components[0], files)?;
        scenario.name = format!("{}+files", scenario.name);
    }
    Ok(scenario)
}

fn apply_files(c: &mut Component, files: &Files<'_>) -> Result<(), String> {
    if let Some(p) = files.definition {
        c.definition = read(p)?;
        c.definition_source = p.display().to_string();
    }
    if let Some(p) = files.input {
        c.input = read(p)?;
        c.input_source = p.display().to_string();
    }
    if let Some(p) = files.mocks {
        let doc: serde_json::Value =
            serde_json::from_slice(&read(p)?).map_err(|e| format!("{} is not valid JSON: {e}", p.display()))?;
        c.mocks =
            Some(parse_mocks(&doc, files.mock_machine, files.test_case).map_err(|e| format!("{}: {e}", p.display()))?);
    }
    c.expected_output = None;
    Ok(())
}

/// A state machine name from a file name: its stem up to the first dot, with characters
/// AWS does not allow in names replaced.
fn machine_name(path: &Path) -> String {
    let stem = path.file_name().and_then(|f| f.to_str()).unwrap_or("definition");
    let stem = stem.split('.').next().filter(|s| !s.is_empty()).unwrap_or("definition");
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(60)
        .collect();
    name
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn workload(w: Workload, weight: u32) -> Component {
    let source = match w {
        Workload::Rider => "examples/rider-photo.express.asl.json".to_owned(),
        Workload::RiderJsonata => "examples/rider-photo-jsonata.express.asl.json".to_owned(),
        other => format!("benches/data/{}.asl.json", other.name()),
    };
    let input_source = match w {
        Workload::Rider | Workload::RiderJsonata => "examples/rider-photo.input.json".to_owned(),
        other => format!("benches/data/{}.input.json", other.name()),
    };
    Component {
        name: w.name().to_owned(),
        definition: w.definition().to_vec(),
        definition_source: format!("built-in {source}"),
        input: w.input().to_vec(),
        input_source: format!("built-in {input_source}"),
        machine_type: w.machine_type(),
        handlers: w.registry(),
        mocks: None,
        expected_output: Some(w.expected_output().to_owned()),
        weight,
    }
}

/// The selective-checkpointing sample's Express child: four `lambda:invoke` tasks, each
/// answered inline with the shape Lambda's integration returns.
fn checkpoint(weight: u32) -> Component {
    let mut handlers = Registry::new();
    handlers.register("arn:aws:states:::lambda:invoke", Handler::sync(lambda_invoke));
    Component {
        name: "checkpoint".into(),
        definition: include_bytes!("../../examples/selective-checkpointing.express-child.asl.json").to_vec(),
        definition_source: "built-in examples/selective-checkpointing.express-child.asl.json".into(),
        input: include_bytes!("../data/checkpoint.input.json").to_vec(),
        input_source: "built-in loadgen/data/checkpoint.input.json".into(),
        machine_type: MachineType::Express,
        handlers,
        mocks: None,
        expected_output: Some(include_str!("../data/checkpoint.output.json").trim_end().to_owned()),
        weight,
    }
}

/// `lambda:invoke`'s result: `{"ExecutedVersion", "Payload", "StatusCode"}`, the payload
/// saying which back-end system the function updated.
fn lambda_invoke<'a>(_: &TaskContext<'_>, input: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    let Some(message) = input.get("Payload").and_then(|p| p.get("Message")) else {
        return Err(TaskError::new("Lambda.InvalidRequestContentException", "the payload has no Message"));
    };
    let function = input.get("FunctionName").unwrap_or(Value::Null);
    let payload = arena.object(&[("updated", message), ("function", function), ("ok", Value::Bool(true))]);
    Ok(arena.object(&[
        ("ExecutedVersion", Value::Str("$LATEST")),
        ("Payload", payload),
        ("StatusCode", Value::Int(200)),
    ]))
}

/// Pass, a one-second Wait, Pass: an execution that parks on a timer.
fn wait(weight: u32) -> Component {
    Component {
        name: "wait".into(),
        definition: include_bytes!("../data/wait.asl.json").to_vec(),
        definition_source: "built-in loadgen/data/wait.asl.json".into(),
        input: include_bytes!("../data/wait.input.json").to_vec(),
        input_source: "built-in loadgen/data/wait.input.json".into(),
        machine_type: MachineType::Express,
        handlers: Registry::new(),
        mocks: None,
        expected_output: Some(include_str!("../data/wait.output.json").trim_end().to_owned()),
        weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_resolves_with_positive_weights() {
        for name in NAMES {
            let s = built_in(name).unwrap();
            assert!(s.built_in(), "{name}");
            assert!(s.components.iter().all(|c| c.weight > 0), "{name}");
        }
        let mixed = built_in("mixed").unwrap();
        assert!(mixed.components.iter().any(|c| c.name == "wait"), "mixed includes executions that Wait");
    }

    #[test]
    fn unknown_scenarios_and_mixed_replacements_are_refused_by_name() {
        let e = built_in("nope").err().unwrap();
        assert!(e.contains("\"nope\"") && e.contains("rider"), "{e}");
        let files = Files {
            definition: Some(Path::new("x.json")),
            input: None,
            mocks: None,
            test_case: None,
            mock_machine: None,
        };
        let e = resolve(Some("mixed"), &files).err().unwrap();
        assert!(e.contains("mixes 6"), "{e}");
        let none = Files { definition: None, input: None, mocks: None, test_case: None, mock_machine: None };
        assert!(resolve(None, &none).err().unwrap().contains("--scenario"));
    }

    #[test]
    fn file_names_become_valid_machine_names() {
        assert_eq!(machine_name(Path::new("/a/order flow.asl.json")), "order_flow");
        assert_eq!(machine_name(Path::new(".hidden")), "definition");
    }
}
