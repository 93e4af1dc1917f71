//! The selective-checkpointing example end to end on the embedded engine with a durable
//! store: a Standard parent waits twice for a task token sent through the local queue,
//! publishes to the local topic, and runs the Express child (four `lambda:invoke` updates)
//! synchronously; and the failure branch after a refused approval.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use sfn::executor::{Engine, Input, MachineSpec};
use sfn::handlers::Registry;
use sfn::services::{Functions, Services};
use sfn::store::{RecordStatus, RedbStore, Store};
use sfn::validate::MachineType;

const QUEUE: &str = "Checkpoint-SQSQueue";
const TOPIC: &str = "Checkpoint-SNSTopic";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sfn-checkpointing-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)).expect("example file")
}

fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct World {
    engine: Engine,
    store: Arc<RedbStore>,
    updates: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

fn world(tag: &str) -> World {
    let dir = TempDir::new(tag);
    let store = Arc::new(RedbStore::open(dir.path()).expect("store opens"));
    store.create_queue(QUEUE).unwrap();
    store.create_topic(TOPIC).unwrap();
    let updates = Arc::new(Mutex::new(Vec::new()));
    let functions = Functions::new();
    let seen = updates.clone();
    functions.register_sync("Checkpoint-UpdateDatabaseLambdaFunction", move |payload: Json| {
        seen.lock().unwrap().push(payload["Message"].as_str().unwrap_or_default().to_owned());
        Ok(json!({"updated": payload["Message"]}))
    });
    let mut registry = Registry::new();
    Services::new(store.clone(), functions, "us-east-1", "123456789012").register(&mut registry);
    let engine = Engine::builder().shards(2).handlers(registry).store(store.clone()).build();
    let child = example("selective-checkpointing.express-child.asl.json");
    engine
        .register(MachineSpec::new("Checkpoint-UpdateDatabaseExpress", &child, MachineType::Express))
        .unwrap_or_else(|e| panic!("{e}"));
    World { engine, store, updates, _dir: dir }
}

impl World {
    /// The next message on the queue: its body, parsed.
    fn receive(&self) -> Json {
        let m = eventually("a queue message", || self.store.receive_messages(QUEUE, 1).unwrap().pop());
        serde_json::from_str(&m.body).expect("the body is the JSON the definition built")
    }

    fn topic(&self) -> Vec<String> {
        self.store.topic_messages(TOPIC, 0, 100).unwrap().into_iter().map(|(_, m)| m.message).collect()
    }

    fn end(&self, arn: &str) -> sfn::store::ExecutionRecord {
        eventually("the execution's end", || {
            self.engine.describe_execution(arn).unwrap().filter(|r| r.status != RecordStatus::Running)
        })
    }

    fn history_types(&self, arn: &str) -> Vec<String> {
        let page = self.engine.execution_history(arn, false, 1000, None).unwrap();
        page.items
            .iter()
            .map(|b| serde_json::from_slice::<Json>(b).unwrap()["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[test]
fn approvals_then_the_express_child_then_shipping() {
    let w = world("happy");
    let parent = example("selective-checkpointing.standard.asl.json");
    let m = w
        .engine
        .register(MachineSpec::new("Checkpoint-Standard", &parent, MachineType::Standard))
        .unwrap_or_else(|e| panic!("{e}"));
    let arn = w.engine.start(&m, &Input::from_json(&b"{\"order\":42}"[..]).unwrap(), Some("order-42")).unwrap().arn();

    let approval = w.receive();
    assert_eq!(approval["MessageTitle"], "Order Request received. Pausing workflow to wait for manual approval. ");
    let token = approval["TaskToken"].as_str().expect("the token is in the message").to_owned();
    assert_eq!(w.engine.describe_execution(&arn).unwrap().unwrap().status, RecordStatus::Running);
    w.engine.send_task_success(&token, r#"{"approved":true}"#).wait().unwrap();

    let payment = w.receive();
    assert_eq!(
        payment["MessageTitle"],
        "Payment sent to third-party for processing. Pausing workflow to wait for response."
    );
    let token2 = payment["TaskToken"].as_str().unwrap().to_owned();
    assert_ne!(token, token2);
    w.engine.send_task_success(&token2, r#"{"paid":true}"#).wait().unwrap();

    let rec = w.end(&arn);
    assert_eq!(rec.status, RecordStatus::Succeeded, "{rec:?}");
    assert_eq!(
        *w.updates.lock().unwrap(),
        ["Update order history.", "Update data warehouse.", "Update customer profile.", "Update inventory."]
    );
    assert_eq!(
        w.topic(),
        [
            "Order has been approved. Resuming workflow.",
            "Payment processing succeeded. Resuming workflow.",
            "Order and payment received, database is updated and the package is ready to ship."
        ]
    );
    // The output is the last sns:publish response.
    let out: Json = serde_json::from_str(rec.output.as_deref().unwrap()).unwrap();
    assert!(out["MessageId"].is_string(), "{out}");

    let types = w.history_types(&arn);
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(types.first().map(String::as_str), Some("ExecutionStarted"));
    assert_eq!(types.last().map(String::as_str), Some("ExecutionSucceeded"));
    assert_eq!(count("TaskStateEntered"), 6, "{types:?}");
    assert_eq!(count("TaskSubmitted"), 2, "{types:?}");
    assert_eq!(count("TaskSucceeded"), 6, "{types:?}");
    // Used tokens are refused.
    assert!(w.engine.send_task_success(&token, "{}").wait().is_err());
}

#[test]
fn a_refused_approval_notifies_the_failure() {
    let w = world("refused");
    let parent = example("selective-checkpointing.standard.asl.json");
    let m = w.engine.register(MachineSpec::new("Checkpoint-Standard", &parent, MachineType::Standard)).unwrap();
    let arn = w.engine.start(&m, &Input::from_json(&b"{}"[..]).unwrap(), None).unwrap().arn();
    let token = w.receive()["TaskToken"].as_str().unwrap().to_owned();
    w.engine.send_task_failure(&token, "Rejected", Some("out of stock")).wait().unwrap();
    let rec = w.end(&arn);
    assert_eq!(rec.status, RecordStatus::Succeeded, "{rec:?}");
    assert_eq!(w.topic(), ["Order not approved. Order failed."]);
    assert!(w.updates.lock().unwrap().is_empty());
    assert!(w.history_types(&arn).contains(&"TaskFailed".to_owned()));
}
