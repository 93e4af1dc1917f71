//! `setup`: what a later `sfn` process needs to carry on with a store directory, kept in
//! `DIR/sfn-cli.json` beside the store's own file.
//!
//! Input: the machines, mocks and local Lambda commands an `sfn run` was given. Output:
//! the same, read back by `sfn task`/`sfn resume` (and merged by a later `sfn run` on the
//! same directory). Never touches: the store (definitions and handlers are not in it: the
//! store keeps executions, and only a definition's hash).
//!
//! The file (format 1), written whole to a temporary file and renamed into place:
//!
//! ```json
//! {"format": 1,
//!  "waitScale": 1.0,
//!  "clockOffsetNanos": 0,
//!  "machines": [{"name": "Checkpoint-UpdateDatabaseExpress", "type": "EXPRESS",
//!                "definition": "<the definition's exact text>",
//!                "mocks": {"file": {...}, "stateMachine": null, "testCase": null}}],
//!  "lambdas": [{"name": "Checkpoint-UpdateDatabaseLambdaFunction", "command": "cat"}],
//!  "tokens": ["<callback tokens still waiting when the last process exited>"]}
//! ```
//!
//! The definition is kept as text, byte for byte: an unfinished execution resumes only on
//! the definition it started with (the engine compares hashes). `mocks` is the mock
//! file's whole document and the selection `--name`/`--test-case` made, parsed again on
//! resume (absent: no mocks). `clockOffsetNanos` is how far `--wait-scale` moved the
//! clock ahead of wall time (see `clock`). `tokens` lets a later process tell that an
//! execution waits for a callback (the store routes tokens, but cannot list them).

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use sfn::mocks::{parse_mocks, MockSet};
use sfn::validate::MachineType;

pub const FILE: &str = "sfn-cli.json";
const FORMAT: u64 = 1;

/// A machine to register on every process using the directory.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineDef {
    pub name: String,
    pub machine_type: MachineType,
    pub definition: String,
    pub mocks: Option<MockRef>,
}

/// A mock file's document and the selection made in it.
#[derive(Clone, Debug, PartialEq)]
pub struct MockRef {
    pub file: Json,
    pub state_machine: Option<String>,
    pub test_case: Option<String>,
}

impl MockRef {
    pub fn parse(&self) -> Result<MockSet, String> {
        parse_mocks(&self.file, self.state_machine.as_deref(), self.test_case.as_deref())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    pub wait_scale: f64,
    pub clock_offset: i64,
    /// In registration order (Express ones are registered first, see `session`).
    pub machines: Vec<MachineDef>,
    /// Local Lambda functions: name, shell command.
    pub lambdas: Vec<(String, String)>,
    pub tokens: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { wait_scale: 1.0, clock_offset: 0, machines: Vec::new(), lambdas: Vec::new(), tokens: Vec::new() }
    }
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

fn type_name(t: MachineType) -> &'static str {
    match t {
        MachineType::Standard => "STANDARD",
        MachineType::Express => "EXPRESS",
    }
}

impl Setup {
    /// The directory's setup, or `None` when it has none.
    pub fn load(dir: &Path) -> Result<Option<Setup>, String> {
        let p = path(dir);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
        };
        Setup::from_json(&text).map(Some).map_err(|e| format!("{}: {e}", p.display()))
    }

    fn from_json(text: &[u8]) -> Result<Setup, String> {
        let doc: Json = serde_json::from_slice(text).map_err(|e| format!("not valid JSON: {e}"))?;
        if doc["format"].as_u64() != Some(FORMAT) {
            return Err(format!("format {} (this sfn reads format {FORMAT})", doc["format"]));
        }
        let text_of = |v: &Json, what: &str| v.as_str().map(str::to_owned).ok_or(format!("{what} is not a string"));
        let opt_text = |v: &Json| v.as_str().map(str::to_owned);
        let mut machines = Vec::new();
        for m in doc["machines"].as_array().ok_or("'machines' is not a list")? {
            let machine_type = match m["type"].as_str() {
                Some("STANDARD") => MachineType::Standard,
                Some("EXPRESS") => MachineType::Express,
                other => return Err(format!("machine type {other:?} is not STANDARD or EXPRESS")),
            };
            let mocks = match &m["mocks"] {
                Json::Null => None,
                r => Some(MockRef {
                    file: r["file"].clone(),
                    state_machine: opt_text(&r["stateMachine"]),
                    test_case: opt_text(&r["testCase"]),
                }),
            };
            machines.push(MachineDef {
                name: text_of(&m["name"], "a machine's name")?,
                machine_type,
                definition: text_of(&m["definition"], "a machine's definition")?,
                mocks,
            });
        }
        let mut lambdas = Vec::new();
        for l in doc["lambdas"].as_array().ok_or("'lambdas' is not a list")? {
            lambdas.push((text_of(&l["name"], "a function's name")?, text_of(&l["command"], "a function's command")?));
        }
        let tokens = doc["tokens"].as_array().map_or(Vec::new(), |a| a.iter().filter_map(opt_text).collect());
        Ok(Setup {
            wait_scale: doc["waitScale"].as_f64().unwrap_or(1.0),
            clock_offset: doc["clockOffsetNanos"].as_i64().unwrap_or(0),
            machines,
            lambdas,
            tokens,
        })
    }

    fn to_json(&self) -> Json {
        let machines: Vec<Json> = self
            .machines
            .iter()
            .map(|m| {
                let mocks = m.mocks.as_ref().map_or(
                    Json::Null,
                    |r| json!({"file": r.file, "stateMachine": r.state_machine, "testCase": r.test_case}),
                );
                json!({"name": m.name, "type": type_name(m.machine_type), "definition": m.definition, "mocks": mocks})
            })
            .collect();
        let lambdas: Vec<Json> = self.lambdas.iter().map(|(n, c)| json!({"name": n, "command": c})).collect();
        json!({
            "format": FORMAT,
            "waitScale": self.wait_scale,
            "clockOffsetNanos": self.clock_offset,
            "machines": machines,
            "lambdas": lambdas,
            "tokens": self.tokens,
        })
    }

    /// Writes the file (a temporary file renamed over the old one: a crash leaves one or
    /// the other, never half of one).
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let p = path(dir);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let text = serde_json::to_vec_pretty(&self.to_json()).expect("JSON values serialise");
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &p).map_err(|e| format!("cannot write {}: {e}", p.display()))
    }

    /// Adds (or replaces, by name) a machine; a replaced one keeps its place.
    pub fn put_machine(&mut self, m: MachineDef) {
        match self.machines.iter_mut().find(|x| x.name == m.name) {
            Some(slot) => *slot = m,
            None => self.machines.push(m),
        }
    }

    /// Adds (or replaces, by name) a local Lambda function.
    pub fn put_lambda(&mut self, name: String, command: String) {
        match self.lambdas.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = command,
            None => self.lambdas.push((name, command)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips() {
        let mut s = Setup { wait_scale: 0.5, clock_offset: 42, ..Setup::default() };
        s.put_machine(MachineDef {
            name: "Child".into(),
            machine_type: MachineType::Express,
            definition: "{\"StartAt\": \"P\"}\n".into(),
            mocks: None,
        });
        s.put_machine(MachineDef {
            name: "Parent".into(),
            machine_type: MachineType::Standard,
            definition: "{}".into(),
            mocks: Some(MockRef {
                file: json!({"A": [{"Return": 1}]}),
                state_machine: None,
                test_case: Some("T".into()),
            }),
        });
        s.put_lambda("f".into(), "cat".into());
        s.put_lambda("f".into(), "tr a b".into());
        s.tokens.push("tok".into());
        let text = serde_json::to_vec(&s.to_json()).unwrap();
        assert_eq!(Setup::from_json(&text).unwrap(), s);
        assert_eq!(s.lambdas, [("f".to_owned(), "tr a b".to_owned())], "replaced by name");
        assert!(Setup::from_json(b"{\"format\": 2}").unwrap_err().contains("format 2"));
    }
}
