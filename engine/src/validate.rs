//! `validate`: JSON document → checked model of the state machine.
//!
//! Input: the definition as parsed by `parse`. Output: a [`Machine`] whose states refer to
//! each other by index, whose paths, templates, intrinsic calls and Choice rules are
//! already compiled — or every problem found, as diagnostics located by JSON pointer (the
//! way AWS's ValidateStateMachineDefinition reports them). The model cannot hold a dangling
//! transition or an unparsed path.
//! Never touches: the program layout (`compile`), execution (`vm`).
//!
//! Which fields each state type allows follows asl-features.md §2 (AWS's ASL JSON schema);
//! ranges follow AWS's schema and service quotas.
//!
//! Query languages: a state is JSONata when its own `QueryLanguage` says so, or else when
//! its graph's does (a Parallel branch or Map processor may set one), or else the
//! machine's. A JSONata state takes `Arguments`/`Output`/`Items`/`Condition` and `{% %}`
//! expressions, and none of the JSONPath fields; a JSONata machine cannot hold JSONPath
//! states. Every expression is parsed here, once.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use crate::choice::Rule;
use crate::diag::{code, pointer_push, Diagnostic, Diagnostics};
use crate::intern::{Interner, Sym};
use crate::paths::{Path, ReferencePath};
use crate::template::{ConstId, Consts, Dynamic, Template};
use crate::timestamp::{self, Timestamp};

/// Standard (durable, exactly-once) or Express (at-least-once, 5-minute cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MachineType {
    #[default]
    Standard,
    Express,
}

impl MachineType {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineType::Standard => "STANDARD",
            MachineType::Express => "EXPRESS",
        }
    }
}

/// A validated state machine.
#[derive(Debug)]
pub struct Machine {
    pub machine_type: MachineType,
    pub timeout_seconds: Option<u64>,
    pub root: Graph,
    /// Variable names (and other interned names) referenced by compiled expressions.
    pub names: Interner,
    /// Constants referenced by `ConstId`s in the model.
    pub consts: Consts,
}

/// The states of one machine, Parallel branch, or Map processor.
#[derive(Debug)]
pub struct Graph {
    pub start: usize,
    pub states: Vec<StateDef>,
    pub pointer: String,
}

#[derive(Debug)]
pub struct StateDef {
    pub name: String,
    pub pointer: String,
    pub kind: Kind,
    pub io: Io,
    pub assign: Option<Assign>,
    pub transition: Transition,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// Where a state goes when it completes normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Index of the next state in the same graph.
    Next(usize),
    End,
    /// Choice, Succeed and Fail have no `Next`/`End`.
    None,
}

/// `InputPath`/`OutputPath`: absent means `$`, `null` means `{}`.
#[derive(Debug, Clone, Default)]
pub enum PathField {
    #[default]
    Default,
    Null,
    Path(Path),
}

/// `ResultPath`: absent means `$` (the result replaces the input), `null` discards the
/// result.
#[derive(Debug, Clone, Default)]
pub enum ResultPathField {
    #[default]
    Default,
    Null,
    Path(ReferencePath),
}

#[derive(Debug, Default)]
pub struct Io {
    pub input_path: PathField,
    /// `Parameters`, or in JSONata mode `Arguments`.
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPathField,
    pub output_path: PathField,
    /// JSONata `Output`.
    pub output: Option<Template>,
    /// The state is in JSONata mode.
    pub jsonata: bool,
}

/// `Assign`: variable name → value template. All values are evaluated against the state's
/// values at once; the variables change after the state.
#[derive(Debug, Clone)]
pub struct Assign {
    pub vars: Vec<(Sym, Template)>,
}

#[derive(Debug)]
pub enum Kind {
    Pass { result: Option<ConstId> },
    Task(TaskDef),
    Choice { branches: Vec<ChoiceBranch>, default: Option<usize> },
    Wait(WaitDef),
    Succeed,
    Fail(FailDef),
    Parallel { branches: Vec<Graph> },
    Map(Box<MapDef>),
}

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail(_) => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

#[derive(Debug)]
pub struct ChoiceBranch {
    pub rule: Rule,
    pub next: usize,
    pub assign: Option<Assign>,
    /// JSONata `Output` of the rule.
    pub output: Option<Template>,
}

/// A number of seconds given literally or by a path into the state input.
#[derive(Debug, Clone)]
pub enum Seconds {
    Fixed(u64),
    Path(Path),
    /// `{% %}` (JSONata).
    Query(Template),
}

#[derive(Debug)]
pub struct TaskDef {
    pub resource: String,
    pub timeout: Option<Seconds>,
    pub heartbeat: Option<Seconds>,
    pub credentials: Option<Template>,
}

#[derive(Debug)]
pub enum WaitDef {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(Timestamp),
    TimestampPath(Path),
    /// JSONata `Seconds: "{% %}"`.
    SecondsQuery(Template),
    /// JSONata `Timestamp: "{% %}"`.
    TimestampQuery(Template),
}

/// A Fail state's error or cause: a literal or computed (`ErrorPath`/`CausePath`).
#[derive(Debug)]
pub enum FailText {
    Literal(String),
    Dynamic {
        field: &'static str,
        expr: Dynamic,
    },
    /// JSONata `Error`/`Cause: "{% %}"`.
    Query(Template),
}

#[derive(Debug)]
pub struct FailDef {
    pub error: Option<FailText>,
    pub cause: Option<FailText>,
}

/// Map processing mode. Distributed Maps run their items inside the execution, like inline
/// ones (there is no S3 here), but honour the tolerated-failure thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMode {
    Inline,
    Distributed,
}

/// A count or percentage given literally or by a path.
#[derive(Debug, Clone)]
pub enum Amount {
    Fixed(f64),
    Path(Path),
    /// `{% %}` (JSONata).
    Query(Template),
}

#[derive(Debug)]
pub struct MapDef {
    pub processor: Graph,
    pub mode: MapMode,
    pub items_path: Option<Path>,
    /// JSONata `Items`: an array (whose elements may hold `{% %}`) or one expression.
    pub items: Option<Template>,
    pub item_selector: Option<Template>,
    pub max_concurrency: Option<Amount>,
    pub tolerated_failure_count: Option<Amount>,
    pub tolerated_failure_percentage: Option<Amount>,
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub jitter_full: bool,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: usize,
    pub result_path: ResultPathField,
    pub assign: Option<Assign>,
    /// JSONata `Output` (default: the error output).
    pub output: Option<Template>,
}

/// Largest value of `TimeoutSeconds`, `HeartbeatSeconds`, `IntervalSeconds`, `MaxAttempts`.
pub const MAX_SECONDS: u64 = 99_999_999;
/// Largest `MaxDelaySeconds` (one year and a day).
pub const MAX_DELAY_SECONDS: u64 = 31_622_400;
/// Longest state name.
pub const MAX_STATE_NAME: usize = 80;

/// Every `States.*` error name AWS defines; others in `ErrorEquals` get a warning.
pub const KNOWN_STATES_ERRORS: &[&str] = &[
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
    "States.BranchFailed",
];

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

/// Fields each state type allows in JSONPath mode (besides `COMMON`).
fn allowed_fields(ty: &str) -> Option<&'static [&'static str]> {
    Some(match ty {
        "Pass" => &["Next", "End", "InputPath", "OutputPath", "Parameters", "ResultPath", "Result", "Assign"],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Resource",
            "Credentials",
        ],
        "Choice" => &["InputPath", "OutputPath", "Choices", "Default", "Assign"],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
            "Assign",
        ],
        "Succeed" => &["InputPath", "OutputPath"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Assign",
            "Retry",
            "Catch",
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "ItemSelector",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "Label",
        ],
        _ => return None,
    })
}

/// Fields each state type allows in JSONata mode (besides `COMMON`).
fn allowed_fields_jsonata(ty: &str) -> Option<&'static [&'static str]> {
    Some(match ty {
        "Pass" => &["Next", "End", "Output", "Assign"],
        "Task" => &[
            "Next",
            "End",
            "Arguments",
            "Output",
            "Assign",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "HeartbeatSeconds",
            "Resource",
            "Credentials",
        ],
        "Choice" => &["Choices", "Default", "Output", "Assign"],
        "Wait" => &["Next", "End", "Seconds", "Timestamp", "Output", "Assign"],
        "Succeed" => &["Output"],
        "Fail" => &["Error", "Cause"],
        "Parallel" => &["Next", "End", "Arguments", "Output", "Assign", "Retry", "Catch", "Branches"],
        "Map" => &[
            "Next",
            "End",
            "Output",
            "Assign",
            "Retry",
            "Catch",
            "ItemProcessor",
            "Iterator",
            "Items",
            "ItemSelector",
            "MaxConcurrency",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
            "Label",
        ],
        _ => return None,
    })
}

/// JSONata-only fields: named in the diagnostic when they appear in a JSONPath state.
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items", "Condition"];

/// JSONPath-only fields: named in the diagnostic when they appear in a JSONata state.
const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Result",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "ItemsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "Variable",
];

/// Validates a parsed definition as a machine of type `machine_type`. `Err` holds every
/// diagnostic (errors and warnings) when there is at least one error; warnings on a valid
/// definition are dropped — use [`check`] to see them.
pub fn validate(doc: &Json, machine_type: MachineType) -> Result<Machine, Diagnostics> {
    match check(doc, machine_type) {
        (Some(machine), _) => Ok(machine),
        (None, items) => Err(Diagnostics { items }),
    }
}

/// Validates a parsed definition and returns every diagnostic, warnings included, with the
/// model when there is no error (what `sfn validate` prints).
pub fn check(doc: &Json, machine_type: MachineType) -> (Option<Machine>, Vec<Diagnostic>) {
    let mut v = Validator {
        diags: Diagnostics::new(),
        names: Interner::new(),
        consts: Consts::default(),
        seen_names: HashMap::new(),
        all_names: HashSet::new(),
        machine_type,
        timeout_seconds: None,
        jsonata_machine: false,
        jsonata_default: false,
    };
    collect_state_names(doc, &mut v.all_names);
    let root = v.machine(doc);
    let root = match root {
        Some(root) if !v.diags.has_errors() => root,
        // The graph builders only give up after reporting why; a `None` without a
        // diagnostic would be a bug here, not in the definition.
        None if !v.diags.has_errors() => {
            v.diags.error(code::SCHEMA, "", "the definition could not be checked (internal error)");
            return (None, v.diags.items);
        }
        _ => return (None, v.diags.items),
    };
    let timeout_seconds = v.timeout_seconds;
    (Some(Machine { machine_type, timeout_seconds, root, names: v.names, consts: v.consts }), v.diags.items)
}

struct Validator {
    diags: Diagnostics,
    names: Interner,
    consts: Consts,
    /// Every state name seen so far (names are unique across the whole machine) → pointer.
    seen_names: HashMap<String, String>,
    /// Every state name in the definition, in any scope, gathered before checking starts, so
    /// that a transition into a branch listed later is still explained as a scope error.
    all_names: HashSet<String>,
    machine_type: MachineType,
    /// The machine's `TimeoutSeconds`, once checked.
    timeout_seconds: Option<u64>,
    /// The top level says `"QueryLanguage": "JSONata"`: no state may go back to JSONPath.
    jsonata_machine: bool,
    /// The query language of states that do not name one: the machine's, or the enclosing
    /// branch's or processor's.
    jsonata_default: bool,
}

impl Validator {
    fn machine(&mut self, doc: &Json) -> Option<Graph> {
        let Some(obj) = doc.as_object() else {
            // AWS reports an empty definition with this code and wording.
            self.diags.error(code::SCHEMA, "", "Definition must be a valid JSON object");
            return None;
        };
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "StartAt" | "States" | "Comment" | "Version" | "TimeoutSeconds" | "QueryLanguage"
            ) {
                self.diags.error(
                    code::UNKNOWN_FIELD,
                    pointer_push("", key),
                    format!("field '{key}' is not allowed at the top level of a state machine"),
                );
            }
        }
        if let Some(v) = obj.get("Version") {
            if v.as_str() != Some("1.0") {
                self.diags.error(code::BAD_ENUM, "/Version", "Version must be \"1.0\"");
            }
        }
        if let Some(v) = obj.get("Comment") {
            self.expect_string(v, "/Comment");
        }
        if let Some(v) = obj.get("TimeoutSeconds") {
            // The checked value, not `as_u64`: an integral float such as `60.0` is accepted
            // and must not be dropped.
            self.timeout_seconds = Some(self.integer(v, "/TimeoutSeconds", 0, MAX_SECONDS));
        }
        self.query_language(obj.get("QueryLanguage"), "/QueryLanguage");
        self.jsonata_machine = obj.get("QueryLanguage").and_then(Json::as_str) == Some("JSONata");
        self.jsonata_default = self.jsonata_machine;
        self.graph(doc, "")
    }

    /// Checks a `QueryLanguage` field; returns whether it says JSONata (`None` when absent
    /// or invalid).
    fn query_language(&mut self, v: Option<&Json>, pointer: &str) -> Option<bool> {
        match v {
            None => None,
            Some(Json::String(s)) if s == "JSONPath" => Some(false),
            Some(Json::String(s)) if s == "JSONata" => Some(true),
            Some(_) => {
                self.diags.error(code::BAD_ENUM, pointer, "QueryLanguage must be \"JSONPath\" or \"JSONata\"");
                None
            }
        }
    }

    /// A nested graph (Parallel branch, Map processor) whose own `QueryLanguage`, if any,
    /// becomes the default of its states.
    fn nested_graph(&mut self, obj: &Json, pointer: &str, language: Option<bool>) -> Option<Graph> {
        let outer = self.jsonata_default;
        if let Some(l) = language {
            self.jsonata_default = l;
        }
        let g = self.graph(obj, pointer);
        self.jsonata_default = outer;
        g
    }

    /// A JSONata value (`Output`, `Arguments`, `Items`, ...) at `pointer`, named `field` in
    /// causes.
    fn jsonata_template(&mut self, v: &Json, pointer: &str, field: &str) -> Option<Template> {
        Template::compile_jsonata(v, pointer, field, &mut self.names, &mut self.consts, &mut self.diags)
    }

    /// A field that takes a literal (checked by `literal`) or one `{% %}` expression.
    fn literal_or_query<T>(
        &mut self,
        v: &Json,
        pointer: &str,
        field: &str,
        literal: impl FnOnce(&mut Self) -> Option<T>,
        query: impl FnOnce(Template) -> T,
    ) -> Option<T> {
        match v.as_str().and_then(crate::template::Query::inner) {
            Some(_) => self.jsonata_template(v, pointer, field).map(query),
            None => literal(self),
        }
    }

    /// A `{StartAt, States}` object: the machine, a Parallel branch or a Map processor.
    fn graph(&mut self, obj: &Json, pointer: &str) -> Option<Graph> {
        let obj = obj.as_object()?;
        let start_at = self.required(obj, pointer, "StartAt", "a string", Json::as_str);
        let states_ptr = pointer_push(pointer, "States");
        let states = self.required(obj, pointer, "States", "an object", Json::as_object)?;
        if states.is_empty() {
            self.diags.error(code::SCHEMA, &states_ptr, "States must contain at least one state");
            return None;
        }
        // Names are resolved before the states are built, so forward references work.
        let index: HashMap<&str, usize> = states.keys().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
        for name in states.keys() {
            let here = pointer_push(&states_ptr, name);
            if name.is_empty() || name.chars().count() > MAX_STATE_NAME {
                self.diags.error(
                    code::BAD_STATE_NAME,
                    &here,
                    format!("state names must be 1 to {MAX_STATE_NAME} characters long"),
                );
            }
            if let Some(first) = self.seen_names.get(name) {
                self.diags.error(
                    code::DUPLICATE_STATE,
                    &here,
                    format!("state name '{name}' is already used at {first}; state names must be unique across the whole state machine, including Parallel branches and Map processors"),
                );
            } else {
                self.seen_names.insert(name.clone(), here);
            }
        }
        let start = start_at.and_then(|s| match index.get(s) {
            Some(&i) => Some(i),
            None => {
                self.diags.error(
                    code::NO_SUCH_STATE,
                    pointer_push(pointer, "StartAt"),
                    format!("StartAt '{s}' is not a state in this scope"),
                );
                None
            }
        });
        let mut built = Vec::with_capacity(states.len());
        for (name, state) in states {
            let here = pointer_push(&states_ptr, name);
            if let Some(s) = self.state(name, state, &here, &index) {
                built.push(s);
            }
        }
        let start = start?;
        self.reachability(states, &index, start, &states_ptr);
        if built.len() != states.len() {
            return None;
        }
        Some(Graph { start, states: built, pointer: pointer.to_owned() })
    }

    /// Reports unreachable states and a missing terminal state. Works on the raw states,
    /// so it runs even when some states have other errors; it is skipped when a reachable
    /// state's own transitions are broken (already reported), because the graph is then
    /// unknown and its conclusions would only echo that error.
    fn reachability(
        &mut self,
        states: &serde_json::Map<String, Json>,
        index: &HashMap<&str, usize>,
        start: usize,
        states_ptr: &str,
    ) {
        let raw: Vec<&Json> = states.values().collect();
        let mut seen = vec![false; raw.len()];
        let mut stack = vec![start];
        let mut terminal = false;
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let Some((targets, ends)) = raw_transitions(raw[i], index) else { return };
            terminal |= ends;
            stack.extend(targets);
        }
        for (i, name) in states.keys().enumerate() {
            if !seen[i] {
                self.diags.error(
                    code::UNREACHABLE,
                    pointer_push(states_ptr, name),
                    format!("state '{name}' is not reachable from StartAt"),
                );
            }
        }
        if !terminal {
            self.diags.error(
                code::NO_TERMINAL,
                states_ptr,
                "no reachable terminal state (a state with \"End\": true, a Succeed or a Fail state)",
            );
        }
    }

    fn state(&mut self, name: &str, json: &Json, pointer: &str, index: &HashMap<&str, usize>) -> Option<StateDef> {
        let Some(obj) = json.as_object() else {
            self.diags.error(code::WRONG_TYPE, pointer, format!("state '{name}' must be a JSON object"));
            return None;
        };
        // Warnings (e.g. an unknown `States.*` name in ErrorEquals) do not make a state unusable.
        let before = self.diags.error_count();
        let ty = self.required(obj, pointer, "Type", "a string", Json::as_str)?;
        let jsonata = self
            .query_language(obj.get("QueryLanguage"), &pointer_push(pointer, "QueryLanguage"))
            .unwrap_or(self.jsonata_default);
        let fields = if jsonata { allowed_fields_jsonata(ty) } else { allowed_fields(ty) };
        let Some(allowed) = fields else {
            self.diags.error(
                code::BAD_ENUM,
                pointer_push(pointer, "Type"),
                format!(
                    "unknown state type '{ty}' (expected Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"
                ),
            );
            return None;
        };
        for key in obj.keys() {
            if COMMON.contains(&key.as_str()) || allowed.contains(&key.as_str()) {
                continue;
            }
            self.field_not_allowed(key, &pointer_push(pointer, key), jsonata, &format!("a {ty} state"));
        }
        if let Some(c) = obj.get("Comment") {
            self.expect_string(c, &pointer_push(pointer, "Comment"));
        }
        if self.jsonata_machine && obj.get("QueryLanguage").and_then(Json::as_str) == Some("JSONPath") {
            // AWS's wording (LocalStack recording of ValidateStateMachineDefinition).
            self.diags.error(
                code::SCHEMA,
                pointer,
                "'QueryLanguage' can not be 'JSONPath' if set to 'JSONata' for whole state machine",
            );
        }

        let transition = self.transition(ty, obj, pointer, index);
        let io = if jsonata { self.io_jsonata(obj, pointer) } else { self.io(obj, pointer, ty) };
        let assign = obj.get("Assign").and_then(|a| self.assign(a, &pointer_push(pointer, "Assign"), jsonata));
        let retry = match obj.get("Retry") {
            Some(r) => self.retriers(r, &pointer_push(pointer, "Retry")),
            None => Vec::new(),
        };
        let catch = match obj.get("Catch") {
            Some(c) => self.catchers(c, &pointer_push(pointer, "Catch"), index, jsonata),
            None => Vec::new(),
        };
        let kind = match ty {
            "Pass" => Some(Kind::Pass { result: obj.get("Result").map(|r| self.consts.add(r.clone())) }),
            "Task" => self.task(obj, pointer, jsonata).map(Kind::Task),
            "Choice" => self.choice(obj, pointer, index, jsonata),
            "Wait" => self.wait(obj, pointer, jsonata).map(Kind::Wait),
            "Succeed" => Some(Kind::Succeed),
            "Fail" => Some(Kind::Fail(self.fail(obj, pointer, jsonata))),
            "Parallel" => self.parallel(obj, pointer),
            "Map" => self.map(obj, pointer, jsonata).map(|m| Kind::Map(Box::new(m))),
            _ => unreachable!("type checked above"),
        };
        if self.diags.error_count() != before {
            return None;
        }
        Some(StateDef {
            name: name.to_owned(),
            pointer: pointer.to_owned(),
            kind: kind?,
            io,
            assign,
            transition,
            retry,
            catch,
        })
    }

    /// Reports `key` as not allowed in `place`, naming the query language it belongs to when
    /// that is the reason.
    fn field_not_allowed(&mut self, key: &str, pointer: &str, jsonata: bool, place: &str) {
        if !jsonata && JSONATA_ONLY.contains(&key) {
            self.diags.error(code::BAD_MODE_FIELD, pointer, format!("field '{key}' is only allowed in JSONata states"));
        } else if jsonata && JSONPATH_ONLY.contains(&key) {
            self.diags.error(
                code::BAD_MODE_FIELD,
                pointer,
                format!("field '{key}' is only allowed in JSONPath states; this state uses JSONata"),
            );
        } else {
            self.diags.error(code::UNKNOWN_FIELD, pointer, format!("field '{key}' is not allowed in {place}"));
        }
    }

    fn io_jsonata(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str) -> Io {
        let mut io = Io { jsonata: true, ..Io::default() };
        if let Some(v) = obj.get("Arguments") {
            io.parameters = self.jsonata_template(v, &pointer_push(pointer, "Arguments"), "Arguments");
        }
        if let Some(v) = obj.get("Output") {
            io.output = self.jsonata_template(v, &pointer_push(pointer, "Output"), "Output");
        }
        io
    }

    fn transition(
        &mut self,
        ty: &str,
        obj: &serde_json::Map<String, Json>,
        pointer: &str,
        index: &HashMap<&str, usize>,
    ) -> Transition {
        let next = obj.get("Next");
        let end = obj.get("End");
        let takes_transition = !matches!(ty, "Choice" | "Succeed" | "Fail");
        if !takes_transition {
            // Field checks already reported Next/End as not allowed.
            return Transition::None;
        }
        let end_is_bad = end.is_some_and(|e| !e.is_boolean());
        if end_is_bad {
            self.diags.error(code::WRONG_TYPE, pointer_push(pointer, "End"), "End must be a boolean");
        }
        let ends = end.and_then(Json::as_bool) == Some(true);
        match (next, ends) {
            (Some(_), true) => {
                self.diags.error(code::NEXT_AND_END, pointer, "a state cannot have both 'Next' and \"End\": true");
                Transition::End
            }
            (Some(n), false) => match self.target(n, &pointer_push(pointer, "Next"), index) {
                Some(i) => Transition::Next(i),
                None => Transition::End,
            },
            (None, true) => Transition::End,
            // A mistyped `End` is already reported; "needs Next or End" would repeat it.
            (None, false) if end_is_bad => Transition::End,
            (None, false) => {
                self.diags.error(
                    code::NO_NEXT_OR_END,
                    pointer,
                    format!("a {ty} state needs either 'Next' or \"End\": true"),
                );
                Transition::End
            }
        }
    }

    /// Resolves a state name within the current graph.
    fn target(&mut self, v: &Json, pointer: &str, index: &HashMap<&str, usize>) -> Option<usize> {
        let Some(name) = v.as_str() else {
            self.diags.error(code::WRONG_TYPE, pointer, "a transition target must be a state name (string)");
            return None;
        };
        match index.get(name) {
            Some(&i) => Some(i),
            None => {
                let hint = if self.all_names.contains(name) {
                    " (it exists in another scope: transitions cannot enter or leave a Parallel branch or Map processor)"
                } else {
                    ""
                };
                self.diags.error(code::NO_SUCH_STATE, pointer, format!("'{name}' is not a state in this scope{hint}"));
                None
            }
        }
    }

    fn io(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str, ty: &str) -> Io {
        let mut io = Io::default();
        if let Some(v) = obj.get("InputPath") {
            io.input_path = self.path_field(v, &pointer_push(pointer, "InputPath"));
        }
        if let Some(v) = obj.get("OutputPath") {
            io.output_path = self.path_field(v, &pointer_push(pointer, "OutputPath"));
        }
        // On a Map state, `Parameters` is the deprecated name of `ItemSelector` (per item).
        if let Some(v) = obj.get("Parameters").filter(|_| ty != "Map") {
            io.parameters = self.template(v, &pointer_push(pointer, "Parameters"));
        }
        if let Some(v) = obj.get("ResultSelector") {
            io.result_selector = self.template(v, &pointer_push(pointer, "ResultSelector"));
        }
        if let Some(v) = obj.get("ResultPath") {
            io.result_path = self.result_path(v, &pointer_push(pointer, "ResultPath"));
        }
        io
    }

    fn path_field(&mut self, v: &Json, pointer: &str) -> PathField {
        match v {
            Json::Null => PathField::Null,
            Json::String(s) => self.path(s, pointer).map_or(PathField::Default, PathField::Path),
            _ => {
                self.diags.error(
                    code::WRONG_TYPE,
                    pointer,
                    format!("{} must be a path string or null", field_name(pointer)),
                );
                PathField::Default
            }
        }
    }

    fn path(&mut self, text: &str, pointer: &str) -> Option<Path> {
        match Path::parse(text, &mut self.names) {
            Ok(p) => Some(p),
            Err(e) => {
                self.diags.error(code::BAD_PATH, pointer, e.to_string());
                None
            }
        }
    }

    fn path_value(&mut self, v: &Json, pointer: &str) -> Option<Path> {
        match v.as_str() {
            Some(s) => self.path(s, pointer),
            None => {
                self.diags.error(code::WRONG_TYPE, pointer, format!("{} must be a path string", field_name(pointer)));
                None
            }
        }
    }

    fn result_path(&mut self, v: &Json, pointer: &str) -> ResultPathField {
        match v {
            Json::Null => ResultPathField::Null,
            Json::String(s) => match ReferencePath::parse(s) {
                Ok(p) => ResultPathField::Path(p),
                Err(e) => {
                    self.diags.error(code::BAD_REFERENCE_PATH, pointer, e.to_string());
                    ResultPathField::Default
                }
            },
            _ => {
                self.diags.error(code::WRONG_TYPE, pointer, "ResultPath must be a reference path string or null");
                ResultPathField::Default
            }
        }
    }

    fn template(&mut self, v: &Json, pointer: &str) -> Option<Template> {
        if !v.is_object() {
            self.diags.error(code::WRONG_TYPE, pointer, format!("{} must be a JSON object", field_name(pointer)));
            return None;
        }
        Template::compile(v, pointer, &mut self.names, &mut self.consts, &mut self.diags)
    }

    fn assign(&mut self, v: &Json, pointer: &str, jsonata: bool) -> Option<Assign> {
        let Some(map) = v.as_object() else {
            self.diags.error(code::WRONG_TYPE, pointer, "Assign must be a JSON object");
            return None;
        };
        let mut vars = Vec::with_capacity(map.len());
        let mut seen = HashSet::new();
        for (key, value) in map {
            let here = pointer_push(pointer, key);
            let name = if jsonata { key.as_str() } else { key.strip_suffix(".$").unwrap_or(key) };
            if !valid_variable_name(name) {
                self.diags.error(
                    code::BAD_VARIABLE,
                    &here,
                    format!("'{name}' is not a valid variable name (a letter or '_' followed by letters, digits or '_'; 'states' is reserved)"),
                );
                continue;
            }
            if !seen.insert(name.to_owned()) {
                self.diags.error(
                    code::BAD_VARIABLE,
                    &here,
                    format!("variable '{name}' is assigned twice in the same Assign"),
                );
                continue;
            }
            let template = if jsonata {
                match self.jsonata_template(value, &here, &format!("Assign/{key}")) {
                    Some(t) => t,
                    None => continue,
                }
            } else if key.ends_with(".$") {
                let Some(text) = value.as_str() else {
                    self.diags.error(
                        code::WRONG_TYPE,
                        &here,
                        format!("the value of '{key}' must be a string holding a path or an intrinsic function call"),
                    );
                    continue;
                };
                match Dynamic::parse(text, &mut self.names) {
                    Ok(Dynamic::Path(path)) => Template::Path { field: key.as_str().into(), path },
                    Ok(Dynamic::Intrinsic(call)) => Template::Intrinsic { field: key.as_str().into(), call },
                    Err(msg) => {
                        let c =
                            if crate::intrinsics::is_intrinsic(text) { code::BAD_INTRINSIC } else { code::BAD_PATH };
                        self.diags.error(c, &here, msg);
                        continue;
                    }
                }
            } else {
                match Template::compile(value, &here, &mut self.names, &mut self.consts, &mut self.diags) {
                    Some(t) => t,
                    None => continue,
                }
            };
            vars.push((self.names.intern(name), template));
        }
        Some(Assign { vars })
    }

    /// The objects of an array field (Retry, Catch), each with its pointer and whether it is
    /// the last element; a non-array field and non-object elements are reported.
    fn object_list<'j>(
        &mut self,
        v: &'j Json,
        pointer: &str,
        field: &str,
        item: &str,
    ) -> Vec<(String, &'j serde_json::Map<String, Json>, bool)> {
        let Some(items) = v.as_array() else {
            self.diags.error(code::WRONG_TYPE, pointer, format!("{field} must be an array"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, x) in items.iter().enumerate() {
            let here = format!("{pointer}/{i}");
            match x.as_object() {
                Some(obj) => out.push((here, obj, i + 1 == items.len())),
                None => self.diags.error(code::WRONG_TYPE, &here, format!("{item} must be an object")),
            }
        }
        out
    }

    fn retriers(&mut self, v: &Json, pointer: &str) -> Vec<Retrier> {
        let mut out = Vec::new();
        for (here, obj, is_last) in self.object_list(v, pointer, "Retry", "a retrier") {
            for key in obj.keys() {
                if !matches!(
                    key.as_str(),
                    "ErrorEquals"
                        | "IntervalSeconds"
                        | "MaxAttempts"
                        | "BackoffRate"
                        | "MaxDelaySeconds"
                        | "JitterStrategy"
                        | "Comment"
                ) {
                    self.diags.error(
                        code::UNKNOWN_FIELD,
                        pointer_push(&here, key),
                        format!("field '{key}' is not allowed in a retrier"),
                    );
                }
            }
            let error_equals = self.error_equals(obj.get("ErrorEquals"), &here, is_last);
            let interval_seconds = obj
                .get("IntervalSeconds")
                .map_or(1, |v| self.integer(v, &pointer_push(&here, "IntervalSeconds"), 1, MAX_SECONDS));
            let max_attempts = obj
                .get("MaxAttempts")
                .map_or(3, |v| self.integer(v, &pointer_push(&here, "MaxAttempts"), 0, MAX_SECONDS));
            let backoff_rate = match obj.get("BackoffRate") {
                None => 2.0,
                Some(v) => match v.as_f64() {
                    Some(b) if b >= 1.0 => b,
                    Some(_) => {
                        self.diags.error(
                            code::OUT_OF_RANGE,
                            pointer_push(&here, "BackoffRate"),
                            "BackoffRate must be at least 1.0",
                        );
                        2.0
                    }
                    None => {
                        self.diags.error(
                            code::WRONG_TYPE,
                            pointer_push(&here, "BackoffRate"),
                            "BackoffRate must be a number",
                        );
                        2.0
                    }
                },
            };
            let max_delay_seconds = obj
                .get("MaxDelaySeconds")
                .map(|v| self.integer(v, &pointer_push(&here, "MaxDelaySeconds"), 1, MAX_DELAY_SECONDS));
            let jitter_full = match obj.get("JitterStrategy") {
                None => false,
                Some(Json::String(s)) if s == "FULL" => true,
                Some(Json::String(s)) if s == "NONE" => false,
                Some(_) => {
                    self.diags.error(
                        code::BAD_ENUM,
                        pointer_push(&here, "JitterStrategy"),
                        "JitterStrategy must be \"FULL\" or \"NONE\"",
                    );
                    false
                }
            };
            if let Some(c) = obj.get("Comment") {
                self.expect_string(c, &pointer_push(&here, "Comment"));
            }
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                jitter_full,
            });
        }
        out
    }

    fn catchers(&mut self, v: &Json, pointer: &str, index: &HashMap<&str, usize>, jsonata: bool) -> Vec<Catcher> {
        let mut out = Vec::new();
        for (here, obj, is_last) in self.object_list(v, pointer, "Catch", "a catcher") {
            for key in obj.keys() {
                let allowed = match key.as_str() {
                    "ErrorEquals" | "Next" | "Assign" | "Comment" => true,
                    "ResultPath" => !jsonata,
                    "Output" => jsonata,
                    _ => false,
                };
                if !allowed {
                    self.field_not_allowed(key, &pointer_push(&here, key), jsonata, "a catcher");
                }
            }
            let error_equals = self.error_equals(obj.get("ErrorEquals"), &here, is_last);
            let next = match obj.get("Next") {
                Some(n) => self.target(n, &pointer_push(&here, "Next"), index),
                None => {
                    self.diags.error(code::MISSING_FIELD, &here, "missing required field 'Next'");
                    None
                }
            };
            let result_path = obj
                .get("ResultPath")
                .map_or(ResultPathField::Default, |v| self.result_path(v, &pointer_push(&here, "ResultPath")));
            let assign = obj.get("Assign").and_then(|a| self.assign(a, &pointer_push(&here, "Assign"), jsonata));
            let output =
                obj.get("Output").and_then(|o| self.jsonata_template(o, &pointer_push(&here, "Output"), "Output"));
            if let Some(c) = obj.get("Comment") {
                self.expect_string(c, &pointer_push(&here, "Comment"));
            }
            if let Some(next) = next {
                out.push(Catcher { error_equals, next, result_path, assign, output });
            }
        }
        out
    }

    fn error_equals(&mut self, v: Option<&Json>, pointer: &str, is_last: bool) -> Vec<String> {
        let here = pointer_push(pointer, "ErrorEquals");
        let Some(v) = v else {
            self.diags.error(code::MISSING_FIELD, pointer, "missing required field 'ErrorEquals'");
            return Vec::new();
        };
        let Some(items) = v.as_array() else {
            self.diags.error(code::WRONG_TYPE, &here, "ErrorEquals must be an array of error names");
            return Vec::new();
        };
        if items.is_empty() {
            self.diags.error(code::BAD_ERROR_EQUALS, &here, "ErrorEquals must name at least one error");
        }
        let mut out = Vec::new();
        for (i, e) in items.iter().enumerate() {
            match e.as_str() {
                Some(name) => {
                    if name.starts_with("States.") && !KNOWN_STATES_ERRORS.contains(&name) {
                        self.diags.warning(
                            code::BAD_ERROR_EQUALS,
                            format!("{here}/{i}"),
                            format!("'{name}' is not an error Step Functions defines"),
                        );
                    }
                    out.push(name.to_owned());
                }
                None => self.diags.error(code::WRONG_TYPE, format!("{here}/{i}"), "error names must be strings"),
            }
        }
        if out.iter().any(|e| e == "States.ALL") {
            if out.len() > 1 {
                self.diags.error(
                    code::BAD_ERROR_EQUALS,
                    &here,
                    "States.ALL must be the only error name in its ErrorEquals",
                );
            }
            if !is_last {
                self.diags.error(
                    code::BAD_ERROR_EQUALS,
                    &here,
                    "a retrier or catcher with States.ALL must be the last one",
                );
            }
        }
        out
    }

    fn task(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str, jsonata: bool) -> Option<TaskDef> {
        let resource = self.required(obj, pointer, "Resource", "a string", Json::as_str)?.to_owned();
        let res_ptr = pointer_push(pointer, "Resource");
        if !resource.starts_with("arn:") {
            self.diags.error(code::BAD_RESOURCE, &res_ptr, format!("Resource '{resource}' is not an ARN"));
        }
        let wait_for_token = resource.ends_with(".waitForTaskToken");
        if self.machine_type == MachineType::Express {
            // Code and wording follow AWS's ValidateStateMachineDefinition (LocalStack recording:
            // "Express state machine does not support '.waitForTaskToken' service integration").
            let pattern = if wait_for_token {
                Some(".waitForTaskToken")
            } else if resource.ends_with(".sync") || resource.contains(".sync:") {
                Some(".sync")
            } else {
                None
            };
            if let Some(pattern) = pattern {
                self.diags.error(
                    code::SCHEMA,
                    &res_ptr,
                    format!("Express state machine does not support '{pattern}' service integration (only request-response)"),
                );
            }
            if resource.contains(":activity:") {
                self.diags.error(code::SCHEMA, &res_ptr, "Express state machine does not support activities");
            }
        }
        if wait_for_token && jsonata {
            match obj.get("Arguments") {
                Some(p) if queries_task_token(p) => {}
                Some(_) => self.diags.error(
                    code::BAD_RESOURCE,
                    pointer_push(pointer, "Arguments"),
                    "a '.waitForTaskToken' task must pass the task token ($states.context.Task.Token) in its Arguments, in a {% %} expression",
                ),
                None => self.diags.error(
                    code::BAD_RESOURCE,
                    pointer,
                    "a '.waitForTaskToken' task must pass the task token ($states.context.Task.Token) in its Arguments, and it has none",
                ),
            }
        } else if wait_for_token {
            match obj.get("Parameters") {
                Some(p) if passes_task_token(p) => {}
                Some(_) => self.diags.error(
                    code::BAD_RESOURCE,
                    pointer_push(pointer, "Parameters"),
                    "a '.waitForTaskToken' task must pass the task token ($$.Task.Token) in its Parameters, in the value of a key ending in '.$'",
                ),
                None => self.diags.error(
                    code::BAD_RESOURCE,
                    pointer,
                    "a '.waitForTaskToken' task must pass the task token ($$.Task.Token) in its Parameters, and it has none",
                ),
            }
        }
        let timeout = self.seconds_pair(obj, pointer, "TimeoutSeconds", "TimeoutSecondsPath", jsonata);
        let heartbeat = self.seconds_pair(obj, pointer, "HeartbeatSeconds", "HeartbeatSecondsPath", jsonata);
        if let (Some(Seconds::Fixed(t)), Some(Seconds::Fixed(h))) = (&timeout, &heartbeat) {
            if h >= t {
                self.diags.error(
                    code::OUT_OF_RANGE,
                    pointer_push(pointer, "HeartbeatSeconds"),
                    "HeartbeatSeconds must be smaller than TimeoutSeconds",
                );
            }
        }
        let credentials = obj.get("Credentials").and_then(|c| self.template(c, &pointer_push(pointer, "Credentials")));
        Some(TaskDef { resource, timeout, heartbeat, credentials })
    }

    fn seconds_pair(
        &mut self,
        obj: &serde_json::Map<String, Json>,
        pointer: &str,
        fixed: &str,
        path: &str,
        jsonata: bool,
    ) -> Option<Seconds> {
        match (obj.get(fixed), obj.get(path)) {
            (Some(_), Some(_)) => {
                self.diags.error(code::SCHEMA, pointer, format!("'{fixed}' and '{path}' cannot both be set"));
                None
            }
            (Some(v), None) if jsonata => {
                let here = pointer_push(pointer, fixed);
                self.literal_or_query(
                    v,
                    &here,
                    fixed,
                    |s| Some(Seconds::Fixed(s.integer(v, &here, 1, MAX_SECONDS))),
                    Seconds::Query,
                )
            }
            (Some(v), None) => Some(Seconds::Fixed(self.integer(v, &pointer_push(pointer, fixed), 1, MAX_SECONDS))),
            (None, Some(v)) => self.path_value(v, &pointer_push(pointer, path)).map(Seconds::Path),
            (None, None) => None,
        }
    }

    fn choice(
        &mut self,
        obj: &serde_json::Map<String, Json>,
        pointer: &str,
        index: &HashMap<&str, usize>,
        jsonata: bool,
    ) -> Option<Kind> {
        let here = pointer_push(pointer, "Choices");
        let rules = self.required_list(obj, pointer, "Choices", "an array of rules", "rule")?;
        let mut branches = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{here}/{i}");
            let (rule, output) = if jsonata {
                self.condition_rule(r, &rp)
            } else {
                (Rule::compile(r, &rp, false, &mut self.names, &mut self.diags), None)
            };
            let next = match r.get("Next") {
                Some(n) => self.target(n, &pointer_push(&rp, "Next"), index),
                None => {
                    self.diags.error(code::MISSING_FIELD, &rp, "a top-level Choice rule needs 'Next'");
                    None
                }
            };
            let assign = r.get("Assign").and_then(|a| self.assign(a, &pointer_push(&rp, "Assign"), jsonata));
            if let (Some(rule), Some(next)) = (rule, next) {
                branches.push(ChoiceBranch { rule, next, assign, output });
            }
        }
        let default = obj.get("Default").and_then(|d| self.target(d, &pointer_push(pointer, "Default"), index));
        Some(Kind::Choice { branches, default })
    }

    /// A JSONata Choice rule: `Condition` (a `{% %}` expression or a boolean), `Next`,
    /// `Assign`, `Output`; returns the rule and its `Output`.
    fn condition_rule(&mut self, r: &Json, pointer: &str) -> (Option<Rule>, Option<Template>) {
        let Some(fields) = r.as_object() else {
            self.diags.error(code::WRONG_TYPE, pointer, "a choice rule must be an object");
            return (None, None);
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "Condition" | "Next" | "Assign" | "Output" | "Comment") {
                self.field_not_allowed(key, &pointer_push(pointer, key), true, "a JSONata choice rule");
            }
        }
        let here = pointer_push(pointer, "Condition");
        let rule = match fields.get("Condition") {
            None => {
                self.diags.error(code::MISSING_FIELD, pointer, "a JSONata choice rule needs a 'Condition'");
                None
            }
            // A constant condition: `And` of nothing is true, `Or` of nothing false.
            Some(Json::Bool(true)) => Some(Rule::And(Box::new([]))),
            Some(Json::Bool(false)) => Some(Rule::Or(Box::new([]))),
            Some(v) => match v.as_str().and_then(crate::template::Query::inner) {
                Some(inner) => match crate::template::Query::parse(inner, "Condition", &mut self.names) {
                    Ok(q) => Some(Rule::Condition(std::sync::Arc::new(q))),
                    Err(e) => {
                        self.diags.error(
                            code::BAD_JSONATA,
                            here,
                            format!("invalid JSONata expression '{}': {e}", inner.trim()),
                        );
                        None
                    }
                },
                None => {
                    self.diags.error(
                        code::WRONG_TYPE,
                        here,
                        "Condition must be a boolean or a JSONata expression written as \"{% ... %}\"",
                    );
                    None
                }
            },
        };
        let output =
            fields.get("Output").and_then(|o| self.jsonata_template(o, &pointer_push(pointer, "Output"), "Output"));
        (rule, output)
    }

    fn wait(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str, jsonata: bool) -> Option<WaitDef> {
        let present: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        if present.len() != 1 {
            self.diags.error(
                code::SCHEMA,
                pointer,
                format!(
                    "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath (found {})",
                    if present.is_empty() { "none".to_owned() } else { present.join(", ") }
                ),
            );
            return None;
        }
        let key = present[0];
        let here = pointer_push(pointer, key);
        let v = &obj[key];
        if jsonata && v.as_str().and_then(crate::template::Query::inner).is_some() {
            let t = self.jsonata_template(v, &here, key)?;
            return Some(if key == "Seconds" { WaitDef::SecondsQuery(t) } else { WaitDef::TimestampQuery(t) });
        }
        match key {
            "Seconds" => Some(WaitDef::Seconds(self.integer(v, &here, 0, MAX_SECONDS))),
            "Timestamp" => match v.as_str().map(|s| (s, timestamp::parse(s))) {
                Some((_, Some(t))) => Some(WaitDef::Timestamp(t)),
                Some((s, None)) => {
                    self.diags.error(
                        code::BAD_TIMESTAMP,
                        &here,
                        format!("'{s}' is not an RFC 3339 timestamp (e.g. 2016-03-14T01:59:00Z)"),
                    );
                    None
                }
                None => {
                    self.diags.error(code::WRONG_TYPE, &here, "Timestamp must be a string");
                    None
                }
            },
            "SecondsPath" => self.path_value(v, &here).map(WaitDef::SecondsPath),
            _ => self.path_value(v, &here).map(WaitDef::TimestampPath),
        }
    }

    fn fail(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str, jsonata: bool) -> FailDef {
        if jsonata {
            let mut text = |field: &str| {
                let v = obj.get(field)?;
                let here = pointer_push(pointer, field);
                match v.as_str() {
                    Some(s) if crate::template::Query::inner(s).is_some() => {
                        self.jsonata_template(v, &here, field).map(FailText::Query)
                    }
                    Some(s) => Some(FailText::Literal(s.to_owned())),
                    None => {
                        self.diags.error(code::WRONG_TYPE, here, format!("{field} must be a string"));
                        None
                    }
                }
            };
            return FailDef { error: text("Error"), cause: text("Cause") };
        }
        FailDef {
            error: self.fail_text(obj, pointer, "Error", "ErrorPath"),
            cause: self.fail_text(obj, pointer, "Cause", "CausePath"),
        }
    }

    fn fail_text(
        &mut self,
        obj: &serde_json::Map<String, Json>,
        pointer: &str,
        lit: &'static str,
        path: &'static str,
    ) -> Option<FailText> {
        match (obj.get(lit), obj.get(path)) {
            (Some(_), Some(_)) => {
                self.diags.error(code::SCHEMA, pointer, format!("'{lit}' and '{path}' cannot both be set"));
                None
            }
            (Some(v), None) => match v.as_str() {
                Some(s) => Some(FailText::Literal(s.to_owned())),
                None => {
                    self.diags.error(code::WRONG_TYPE, pointer_push(pointer, lit), format!("{lit} must be a string"));
                    None
                }
            },
            (None, Some(v)) => {
                let here = pointer_push(pointer, path);
                match v.as_str() {
                    Some(s) => match Dynamic::parse(s, &mut self.names) {
                        Ok(expr) => Some(FailText::Dynamic { field: path, expr }),
                        Err(msg) => {
                            let c =
                                if crate::intrinsics::is_intrinsic(s) { code::BAD_INTRINSIC } else { code::BAD_PATH };
                            self.diags.error(c, here, msg);
                            None
                        }
                    },
                    None => {
                        self.diags.error(
                            code::WRONG_TYPE,
                            here,
                            format!("{path} must be a path or intrinsic function string"),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    fn parallel(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str) -> Option<Kind> {
        let here = pointer_push(pointer, "Branches");
        let branches = self.required_list(obj, pointer, "Branches", "an array", "branch")?;
        let mut graphs = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            let bp = format!("{here}/{i}");
            if let Some(obj) = b.as_object() {
                for key in obj.keys() {
                    if !matches!(key.as_str(), "StartAt" | "States" | "Comment" | "QueryLanguage") {
                        self.diags.error(
                            code::UNKNOWN_FIELD,
                            pointer_push(&bp, key),
                            format!("field '{key}' is not allowed in a branch"),
                        );
                    }
                }
                let language = self.query_language(obj.get("QueryLanguage"), &pointer_push(&bp, "QueryLanguage"));
                if let Some(g) = self.nested_graph(b, &bp, language) {
                    graphs.push(g);
                }
            } else {
                self.diags.error(code::WRONG_TYPE, &bp, "a branch must be an object with StartAt and States");
            }
        }
        Some(Kind::Parallel { branches: graphs })
    }

    fn map(&mut self, obj: &serde_json::Map<String, Json>, pointer: &str, jsonata: bool) -> Option<MapDef> {
        for unsupported in ["ItemReader", "ItemBatcher", "ResultWriter"] {
            if obj.contains_key(unsupported) {
                self.diags.error(
                    code::UNSUPPORTED,
                    pointer_push(pointer, unsupported),
                    format!("{unsupported} (distributed Map with S3 items or results) is not supported yet"),
                );
            }
        }
        let (proc_key, processor_json) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
            (Some(_), Some(_)) => {
                self.diags.error(
                    code::SCHEMA,
                    pointer,
                    "'ItemProcessor' and its deprecated name 'Iterator' cannot both be set",
                );
                return None;
            }
            (Some(p), None) => ("ItemProcessor", p),
            (None, Some(p)) => ("Iterator", p),
            (None, None) => {
                self.diags.error(code::MISSING_FIELD, pointer, "missing required field 'ItemProcessor'");
                return None;
            }
        };
        let pp = pointer_push(pointer, proc_key);
        let Some(proc_obj) = processor_json.as_object() else {
            self.diags.error(code::WRONG_TYPE, &pp, "must be an object with StartAt and States");
            return None;
        };
        let mut mode = MapMode::Inline;
        for key in proc_obj.keys() {
            if !matches!(key.as_str(), "StartAt" | "States" | "Comment" | "ProcessorConfig" | "QueryLanguage") {
                self.diags.error(
                    code::UNKNOWN_FIELD,
                    pointer_push(&pp, key),
                    format!("field '{key}' is not allowed in {proc_key}"),
                );
            }
        }
        let language = self.query_language(proc_obj.get("QueryLanguage"), &pointer_push(&pp, "QueryLanguage"));
        if let Some(cfg) = proc_obj.get("ProcessorConfig") {
            let cp = pointer_push(&pp, "ProcessorConfig");
            match cfg.as_object() {
                Some(c) => {
                    for key in c.keys() {
                        if !matches!(key.as_str(), "Mode" | "ExecutionType") {
                            self.diags.error(
                                code::UNKNOWN_FIELD,
                                pointer_push(&cp, key),
                                format!("field '{key}' is not allowed in ProcessorConfig"),
                            );
                        }
                    }
                    match c.get("Mode").map(|m| m.as_str()) {
                        None | Some(Some("INLINE")) => {}
                        Some(Some("DISTRIBUTED")) => mode = MapMode::Distributed,
                        Some(_) => self.diags.error(
                            code::BAD_ENUM,
                            pointer_push(&cp, "Mode"),
                            "Mode must be \"INLINE\" or \"DISTRIBUTED\"",
                        ),
                    }
                    match c.get("ExecutionType").map(|m| m.as_str()) {
                        None if mode == MapMode::Distributed => self.diags.error(
                            code::MISSING_FIELD,
                            &cp,
                            "a DISTRIBUTED Map needs an ExecutionType (STANDARD or EXPRESS)",
                        ),
                        None | Some(Some("STANDARD" | "EXPRESS")) => {}
                        Some(_) => self.diags.error(
                            code::BAD_ENUM,
                            pointer_push(&cp, "ExecutionType"),
                            "ExecutionType must be \"STANDARD\" or \"EXPRESS\"",
                        ),
                    }
                }
                None => self.diags.error(code::WRONG_TYPE, &cp, "ProcessorConfig must be an object"),
            }
        }
        let processor = self.nested_graph(processor_json, &pp, language);
        let items_path = obj.get("ItemsPath").and_then(|v| self.path_value(v, &pointer_push(pointer, "ItemsPath")));
        let items = obj.get("Items").and_then(|v| {
            let here = pointer_push(pointer, "Items");
            if v.is_array() || v.as_str().and_then(crate::template::Query::inner).is_some() {
                self.jsonata_template(v, &here, "Items")
            } else {
                self.diags.error(
                    code::WRONG_TYPE,
                    here,
                    "Items must be an array or a JSONata expression written as \"{% ... %}\"",
                );
                None
            }
        });
        let item_selector = match (obj.get("ItemSelector"), obj.get("Parameters")) {
            (Some(v), _) if jsonata => self.jsonata_template(v, &pointer_push(pointer, "ItemSelector"), "ItemSelector"),
            (Some(_), Some(_)) => {
                self.diags.error(
                    code::SCHEMA,
                    pointer,
                    "'ItemSelector' and its deprecated name 'Parameters' cannot both be set on a Map state",
                );
                None
            }
            (Some(v), None) => self.template(v, &pointer_push(pointer, "ItemSelector")),
            (None, Some(v)) => self.template(v, &pointer_push(pointer, "Parameters")),
            (None, None) => None,
        };
        let max_concurrency = self.amount(obj, pointer, "MaxConcurrency", "MaxConcurrencyPath", jsonata);
        let tolerated_failure_count =
            self.amount(obj, pointer, "ToleratedFailureCount", "ToleratedFailureCountPath", jsonata);
        let tolerated_failure_percentage =
            self.amount(obj, pointer, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath", jsonata);
        if let Some(l) = obj.get("Label") {
            match l.as_str() {
                Some(s) if s.chars().count() <= 40 => {}
                Some(_) => self.diags.error(
                    code::OUT_OF_RANGE,
                    pointer_push(pointer, "Label"),
                    "Label must be at most 40 characters",
                ),
                None => self.diags.error(code::WRONG_TYPE, pointer_push(pointer, "Label"), "Label must be a string"),
            }
        }
        Some(MapDef {
            processor: processor?,
            mode,
            items_path,
            items,
            item_selector,
            max_concurrency,
            tolerated_failure_count,
            tolerated_failure_percentage,
        })
    }

    /// A Map count (`MaxConcurrency`, `ToleratedFailureCount`: integers from 0) or the
    /// tolerated percentage (a number from 0 to 100), literal or computed.
    fn amount(
        &mut self,
        obj: &serde_json::Map<String, Json>,
        pointer: &str,
        fixed: &str,
        path: &str,
        jsonata: bool,
    ) -> Option<Amount> {
        let integer = !fixed.ends_with("Percentage");
        let max = if integer { f64::INFINITY } else { 100.0 };
        match (obj.get(fixed), obj.get(path)) {
            (Some(_), Some(_)) => {
                self.diags.error(code::SCHEMA, pointer, format!("'{fixed}' and '{path}' cannot both be set"));
                None
            }
            (Some(v), None) if jsonata && v.as_str().and_then(crate::template::Query::inner).is_some() => {
                self.jsonata_template(v, &pointer_push(pointer, fixed), fixed).map(Amount::Query)
            }
            (Some(v), None) => {
                let here = pointer_push(pointer, fixed);
                match v.as_f64() {
                    Some(n) if integer && n.fract() != 0.0 => {
                        self.diags.error(code::WRONG_TYPE, here, format!("{fixed} must be an integer"));
                        None
                    }
                    Some(n) if n < 0.0 || n > max => {
                        self.diags.error(code::OUT_OF_RANGE, here, format!("{fixed} must be between 0 and {max}"));
                        None
                    }
                    Some(n) => Some(Amount::Fixed(n)),
                    None => {
                        self.diags.error(code::WRONG_TYPE, here, format!("{fixed} must be a number"));
                        None
                    }
                }
            }
            (None, Some(v)) => self.path_value(v, &pointer_push(pointer, path)).map(Amount::Path),
            (None, None) => None,
        }
    }

    /// An integer field in `min..=max`. Integral floats (`5.0`) count as integers; a
    /// negative or too large integer is out of range, anything else the wrong type.
    fn integer(&mut self, v: &Json, pointer: &str, min: u64, max: u64) -> u64 {
        let field = field_name(pointer);
        let integral = v.as_u64().is_some()
            || v.as_i64().is_some()
            || v.as_f64().is_some_and(|f| f.fract() == 0.0 && f.is_finite());
        let n = v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64).map(|f| f as u64));
        match n {
            Some(n) if (min..=max).contains(&n) => n,
            _ if integral => {
                self.diags.error(
                    code::OUT_OF_RANGE,
                    pointer,
                    format!("{field} must be an integer between {min} and {max}"),
                );
                min
            }
            _ => {
                self.diags.error(code::WRONG_TYPE, pointer, format!("{field} must be an integer"));
                min
            }
        }
    }

    /// A required field that `get` accepts (e.g. `Json::as_str`): reported missing at the
    /// object's pointer, or of the wrong type ("`field` must be `what`") at the field's.
    fn required<'j, T>(
        &mut self,
        obj: &'j serde_json::Map<String, Json>,
        pointer: &str,
        field: &str,
        what: &str,
        get: impl Fn(&'j Json) -> Option<T>,
    ) -> Option<T> {
        match obj.get(field) {
            Some(v) => {
                let got = get(v);
                if got.is_none() {
                    self.diags.error(code::WRONG_TYPE, pointer_push(pointer, field), format!("{field} must be {what}"));
                }
                got
            }
            None => {
                self.diags.error(code::MISSING_FIELD, pointer, format!("missing required field '{field}'"));
                None
            }
        }
    }

    /// A required array with at least one `item`.
    fn required_list<'j>(
        &mut self,
        obj: &'j serde_json::Map<String, Json>,
        pointer: &str,
        field: &str,
        what: &str,
        item: &str,
    ) -> Option<&'j Vec<Json>> {
        let list = self.required(obj, pointer, field, what, Json::as_array)?;
        if list.is_empty() {
            self.diags.error(
                code::SCHEMA,
                pointer_push(pointer, field),
                format!("{field} must contain at least one {item}"),
            );
            return None;
        }
        Some(list)
    }

    fn expect_string(&mut self, v: &Json, pointer: &str) {
        if !v.is_string() {
            self.diags.error(code::WRONG_TYPE, pointer, format!("{} must be a string", field_name(pointer)));
        }
    }
}

/// Variable names: a letter or `_`, then letters, digits or `_`; at most 80 characters;
/// `states` is reserved for JSONata's `$states`.
pub fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().count() <= 80
        && name != "states"
}

/// The states a raw state can go to next (Next, Default, each Choice rule's and catcher's
/// Next) and whether it can end its graph; `None` when that is not known because the
/// state's type or transitions are malformed.
fn raw_transitions(state: &Json, index: &HashMap<&str, usize>) -> Option<(Vec<usize>, bool)> {
    let resolve = |v: Option<&Json>| v.and_then(Json::as_str).and_then(|s| index.get(s).copied());
    let obj = state.as_object()?;
    let mut targets = Vec::new();
    let ends = match obj.get("Type")?.as_str()? {
        "Succeed" | "Fail" => true,
        "Choice" => {
            for rule in obj.get("Choices")?.as_array()? {
                targets.push(resolve(rule.get("Next"))?);
            }
            if let Some(d) = obj.get("Default") {
                targets.push(resolve(Some(d))?);
            }
            false
        }
        "Pass" | "Task" | "Wait" | "Parallel" | "Map" => {
            let ends = obj.get("End") == Some(&Json::Bool(true));
            match obj.get("Next") {
                Some(n) => targets.push(resolve(Some(n))?),
                None if ends => {}
                None => return None,
            }
            ends
        }
        _ => return None,
    };
    if let Some(catchers) = obj.get("Catch") {
        for c in catchers.as_array()? {
            targets.push(resolve(c.get("Next"))?);
        }
    }
    Some((targets, ends))
}

/// True when a payload template evaluates `$$.Task.Token` somewhere: in the value of a
/// `.$` key (a path or an intrinsic argument), at any depth. A literal string that merely
/// contains the text is sent as is, so it does not count.
fn passes_task_token(v: &Json) -> bool {
    match v {
        Json::Array(a) => a.iter().any(passes_task_token),
        Json::Object(m) => m.iter().any(|(k, v)| match v {
            Json::String(s) if k.ends_with(".$") => s.contains("$$.Task.Token"),
            v => passes_task_token(v),
        }),
        _ => false,
    }
}

/// True when a JSONata value reads `$states.context.Task.Token` in one of its `{% %}`
/// expressions.
fn queries_task_token(v: &Json) -> bool {
    match v {
        Json::Array(a) => a.iter().any(queries_task_token),
        Json::Object(m) => m.values().any(queries_task_token),
        Json::String(s) => crate::template::Query::inner(s).is_some_and(|e| e.contains("$states.context.Task.Token")),
        _ => false,
    }
}

/// The field a JSON pointer ends at (its last token), for messages: `/States/A/InputPath`
/// → `InputPath`.
fn field_name(pointer: &str) -> &str {
    pointer.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("the definition")
}

/// Adds the state names of `graph` (a `{StartAt, States}` object) and of every branch and
/// Map processor nested in it to `out`.
fn collect_state_names(graph: &Json, out: &mut HashSet<String>) {
    let Some(states) = graph.get("States").and_then(Json::as_object) else { return };
    for (name, state) in states {
        out.insert(name.clone());
        if let Some(branches) = state.get("Branches").and_then(Json::as_array) {
            for b in branches {
                collect_state_names(b, out);
            }
        }
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(p) = state.get(key) {
                collect_state_names(p, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(doc: serde_json::Value) -> Machine {
        let (m, diags) = check(&doc, MachineType::Standard);
        m.unwrap_or_else(|| panic!("{diags:?}"))
    }

    #[test]
    fn integral_float_timeout_is_kept() {
        let m = machine(serde_json::json!({
            "TimeoutSeconds": 60.0, "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}
        }));
        assert_eq!(m.timeout_seconds, Some(60));
    }

    #[test]
    fn warnings_do_not_drop_states() {
        let doc = serde_json::json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
            "Retry": [{"ErrorEquals": ["States.Timeot"]}]
        }}});
        let (m, diags) = check(&doc, MachineType::Standard);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(m.is_some() && validate(&doc, MachineType::Standard).is_ok());
    }
}
